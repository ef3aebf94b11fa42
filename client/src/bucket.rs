//! [`RemoteBucket`]: the embedded bucket's methods over the server.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{cmd, Cmd, Connection};
use serde::de::DeserializeOwned;
use serde::Serialize;
use state_core::{limits, Error as CoreError, Ttl};

use crate::cache::{Cache, Lookup};
use crate::conn::Pool;
use crate::cursor::{RemoteCursor, RemoteIter};
use crate::errors::Doing;
use crate::target::Target;
use crate::txn::{self, RemoteTxn};
use crate::watch::RemoteWatcher;
use crate::{Options, Result};

/// The signed-in client's bucket on a server: the embedded bucket's API over the
/// Redis protocol. Cheap to clone; `Send + Sync`; clones share their connections.
///
/// Every method checks its arguments as the embedded bucket does (the same
/// *invalid argument* errors, before anything is sent), then makes one round trip
/// (a transaction: one per read and one to commit).
#[derive(Debug, Clone)]
pub struct RemoteBucket {
    pool: Arc<Pool>,
    /// The client-side cache ([`crate::Options::cache`]).
    cache: Option<Arc<Cache>>,
}

/// A key's TTL as milliseconds for the server, rounded up as the embedded store
/// rounds it (a key never expires before its TTL has passed); *invalid argument*
/// for zero, as embedded.
pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64> {
    // The core's own rule, from a zero clock.
    Ok(state_core::deadline(0, ttl)?.max(1))
}

impl RemoteBucket {
    /// Connects (one connection, checked with an ECHO, which needs a signed-in
    /// client) and returns the handle.
    pub(crate) fn open(target: Target, options: Options) -> Result<RemoteBucket> {
        let pool = Arc::new(Pool::new(&target, &options)?);
        let mut b = RemoteBucket { pool, cache: None };
        b.ping()?;
        if let Some(opts) = options.cache {
            b.cache = Some(Cache::start(&b.pool, opts));
        }
        Ok(b)
    }

    /// The server this handle talks to, as a URL without the token.
    pub fn endpoint(&self) -> &str {
        &self.pool.endpoint
    }

    /// Checks that the server answers and the client is signed in.
    ///
    /// # Errors
    /// *I/O* if the server cannot be reached; *invalid argument* if it refuses the
    /// credentials.
    pub fn ping(&self) -> Result<()> {
        // A cheap command that needs a signed-in client (PING does not).
        self.read(cmd("ECHO").arg("state-client").to_owned(), |_: Vec<u8>| ())
    }

    fn read<R: redis::FromRedisValue, T>(&self, c: Cmd, then: impl FnOnce(R) -> T) -> Result<T> {
        self.pool
            .run(Doing::Read, |conn: &mut Connection| c.query::<R>(conn))
            .map(then)
    }

    fn write<R: redis::FromRedisValue>(&self, c: Cmd) -> Result<R> {
        self.pool
            .run(Doing::Write, |conn: &mut Connection| c.query::<R>(conn))
    }

    /// A write of `keys`: once the server replied (or failed), the cache drops
    /// them, so no later read of this handle sees what was there before.
    fn write_keys<'k, R: redis::FromRedisValue>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
        c: Cmd,
    ) -> Result<R> {
        let r = self.write(c);
        if let Some(cache) = &self.cache {
            cache.forget(keys);
        }
        r
    }

    /// Whether the client-side cache is on and tracking (see [`crate::Options::cache`]);
    /// `false` without one, and while its listener is reconnecting.
    pub fn cache_is_live(&self) -> bool {
        self.cache.as_ref().is_some_and(|c| c.is_live())
    }

    /// The value of `key` if the client-side cache holds it (`Some(None)`: known
    /// missing), without asking the server; `None` if it is not cached (or there
    /// is no cache). The same guarantees as a cached [`RemoteBucket::get`].
    pub fn get_cached(&self, key: &str) -> Option<Option<Vec<u8>>> {
        self.cache.as_ref().and_then(|c| c.peek(key))
    }

    /// How many keys the client-side cache holds (0 without one).
    pub fn cached_len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// The value of `key`, or `None` if it is missing (or expired). With the
    /// client-side cache ([`crate::Options::cache`]), a cached key is answered
    /// without a round trip (see the crate's docs for what a reader may see).
    ///
    /// # Errors
    /// *invalid argument* for a bad key; *I/O* for a lost connection.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        limits::check_key(key)?;
        let uncached = || {
            // Built in place: `cmd(..).arg(..).to_owned()` would copy the command.
            let mut c = cmd("GET");
            c.arg(key);
            self.read(c, |v: Option<Vec<u8>>| v)
        };
        let Some(cache) = &self.cache else {
            return uncached();
        };
        let fill = match cache.lookup(key) {
            Lookup::Hit(v) => return Ok(v),
            Lookup::Off => return uncached(),
            Lookup::Miss(fill) => fill,
        };
        // The value and its time to live in one round trip; the deadline counts
        // from before the request left, less a millisecond (the server counts
        // whole milliseconds: its PTTL may be up to 1 ms long), so it is never
        // later than the server's.
        let mut sent = Instant::now();
        let mut p = redis::pipe();
        p.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let r = self.pool.run(Doing::Read, |conn: &mut Connection| {
            sent = Instant::now();
            p.query::<(Option<Vec<u8>>, i64)>(conn)
        });
        match r {
            Ok((value, pttl)) => {
                let deadline = u64::try_from(pttl)
                    .ok()
                    .map(|ms| sent + Duration::from_millis(ms.saturating_sub(1)));
                cache.fill(key, fill, value.clone(), deadline);
                Ok(value)
            }
            Err(e) => {
                cache.abandon(key, fill);
                Err(e)
            }
        }
    }

    /// Whether `key` holds a live value.
    ///
    /// # Errors
    /// As [`RemoteBucket::get`].
    pub fn contains_key(&self, key: &str) -> Result<bool> {
        limits::check_key(key)?;
        self.read(cmd("EXISTS").arg(key).to_owned(), |n: i64| n > 0)
    }

    /// The value of `key` lent to `f` (the embedded bucket lends the store's own
    /// bytes; here they are the reply's).
    ///
    /// # Errors
    /// As [`RemoteBucket::get`].
    pub fn get_with<T>(&self, key: &str, f: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        Ok(self.get(key)?.map(|v| f(&v)))
    }

    /// Sets `key` to `value`, clearing any expiry.
    ///
    /// # Errors
    /// *invalid argument* for a bad key or a value over the store's limit;
    /// *quota exceeded*; *I/O* (the write may or may not have been applied).
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        limits::check_key(key)?;
        let mut c = cmd("SET");
        c.arg(key).arg(value.as_ref());
        self.write_keys::<()>([key], c)
    }

    /// Sets `key` to `value`, expiring after `ttl` (rounded up to milliseconds).
    ///
    /// # Errors
    /// As [`RemoteBucket::set`], and *invalid argument* for a zero `ttl`.
    pub fn set_with_ttl(&self, key: &str, value: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        limits::check_key(key)?;
        let ms = ttl_ms(ttl)?;
        self.write_keys::<()>(
            [key],
            cmd("SET")
                .arg(key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(ms)
                .to_owned(),
        )
    }

    /// Deletes `key`; returns whether it existed.
    ///
    /// # Errors
    /// As [`RemoteBucket::set`].
    pub fn delete(&self, key: &str) -> Result<bool> {
        limits::check_key(key)?;
        self.write_keys::<i64>([key], cmd("DEL").arg(key).to_owned())
            .map(|n| n > 0)
    }

    /// The values of those `keys` that are present, in one round trip; missing keys
    /// are absent from the result.
    ///
    /// # Errors
    /// *invalid argument* for any bad key (nothing is sent); *I/O*.
    pub fn get_multiple<I, K>(&self, keys: I) -> Result<BTreeMap<String, Vec<u8>>>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let keys: Vec<K> = keys.into_iter().collect();
        for k in &keys {
            limits::check_key(k.as_ref())?;
        }
        let mut out = BTreeMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        let mut c = cmd("MGET");
        for k in &keys {
            c.arg(k.as_ref());
        }
        let values = self.read(c, |v: Vec<Option<Vec<u8>>>| v)?;
        for (k, v) in keys.iter().zip(values) {
            if let Some(v) = v {
                out.entry(k.as_ref().to_string()).or_insert(v);
            }
        }
        Ok(out)
    }

    /// Sets several keys in one atomic batch (all or none, also when one value is
    /// refused), clearing their expiry. An empty batch does nothing.
    ///
    /// # Errors
    /// *invalid argument* for a bad key (nothing is sent) or value; *too large*
    /// over the store's batch limit; *quota exceeded*; *I/O*.
    pub fn set_multiple<I, K, V>(&self, items: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.batch(items, None)
    }

    /// Like [`RemoteBucket::set_multiple`], every key expiring after `ttl`.
    ///
    /// # Errors
    /// As [`RemoteBucket::set_multiple`], and *invalid argument* for a zero `ttl`.
    pub fn set_multiple_with_ttl<I, K, V>(&self, items: I, ttl: Duration) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.batch(items, Some(ttl_ms(ttl)?))
    }

    fn batch<I, K, V>(&self, items: I, ttl_ms: Option<u64>) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let mut c = cmd("STATE.BATCH");
        let mut n = 0usize;
        let mut keys: Vec<String> = Vec::new();
        for (k, v) in items {
            limits::check_key(k.as_ref())?;
            if self.cache.is_some() {
                keys.push(k.as_ref().to_string());
            }
            match ttl_ms {
                Some(ms) => c.arg("SETPX").arg(k.as_ref()).arg(v.as_ref()).arg(ms),
                None => c.arg("SET").arg(k.as_ref()).arg(v.as_ref()),
            };
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        self.write_keys::<()>(keys.iter().map(String::as_str), c)
    }

    /// Gives a live key a time to live of `ttl` from now; returns `false` (doing
    /// nothing) if it is missing.
    ///
    /// # Errors
    /// *invalid argument* for a bad key or a zero `ttl`; *I/O*.
    pub fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        limits::check_key(key)?;
        let ms = ttl_ms(ttl)?;
        self.write_keys::<i64>([key], cmd("PEXPIRE").arg(key).arg(ms).to_owned())
            .map(|n| n > 0)
    }

    /// Removes `key`'s time to live; returns whether it had one.
    ///
    /// # Errors
    /// *invalid argument* for a bad key; *I/O*.
    pub fn persist(&self, key: &str) -> Result<bool> {
        limits::check_key(key)?;
        self.write_keys::<i64>([key], cmd("PERSIST").arg(key).to_owned())
            .map(|n| n > 0)
    }

    /// The remaining time to live of `key`.
    ///
    /// # Errors
    /// *invalid argument* for a bad key; *I/O*.
    pub fn ttl(&self, key: &str) -> Result<Ttl> {
        limits::check_key(key)?;
        let ms = self.read(cmd("PTTL").arg(key).to_owned(), |ms: i64| ms)?;
        Ok(match ms {
            -2 => Ttl::Missing,
            -1 => Ttl::NoExpiry,
            ms => Ttl::Expires(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    /// How many live records the bucket holds.
    ///
    /// # Errors
    /// *I/O*.
    pub fn len(&self) -> Result<u64> {
        self.read(cmd("DBSIZE").to_owned(), |n: u64| n)
    }

    /// Whether the bucket holds no live record.
    ///
    /// # Errors
    /// *I/O*.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The value of `key` deserialized from JSON (the original's typed `Get`), or
    /// `None` if missing.
    ///
    /// # Errors
    /// *invalid argument* if the value is not JSON of type `T`; as
    /// [`RemoteBucket::get`].
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                CoreError::InvalidArgument(format!(
                    "value of key {key:?} at {} is not the JSON expected: {e}",
                    self.endpoint()
                ))
                .into()
            }),
        }
    }

    /// Stores `value` as JSON (the original's typed `Put`), clearing any expiry.
    ///
    /// # Errors
    /// *invalid argument* if `value` cannot be serialized; as
    /// [`RemoteBucket::set`].
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            CoreError::InvalidArgument(format!(
                "value for key {key:?} cannot be serialized as JSON: {e}"
            ))
        })?;
        self.set(key, bytes)
    }

    /// A cursor positioned before the first key. Its position lives in the
    /// cursor (each step is one `STATE.RANGE` request), so it holds nothing on
    /// the server and survives reconnections.
    ///
    /// # Errors
    /// None today; a `Result` as the embedded `Bucket::cursor` returns one.
    pub fn cursor(&self) -> Result<RemoteCursor> {
        Ok(RemoteCursor::new(Arc::clone(&self.pool)))
    }

    /// All live records in key order (fetched in growing chunks); `.rev()` for
    /// descending order.
    pub fn iter(&self) -> RemoteIter {
        RemoteIter::new(Arc::clone(&self.pool), Bound::Unbounded, Bound::Unbounded)
    }

    /// Live records with keys in `range` (e.g. `"a".."m"`), in key order.
    pub fn range<'r, R: RangeBounds<&'r str>>(&self, range: R) -> RemoteIter {
        let own = |b: Bound<&&str>| match b {
            Bound::Included(s) => Bound::Included((*s).to_string()),
            Bound::Excluded(s) => Bound::Excluded((*s).to_string()),
            Bound::Unbounded => Bound::Unbounded,
        };
        RemoteIter::new(
            Arc::clone(&self.pool),
            own(range.start_bound()),
            own(range.end_bound()),
        )
    }

    /// Live records whose keys start with `prefix`, in key order.
    pub fn prefix(&self, prefix: &str) -> RemoteIter {
        let (lower, upper) = state_core::prefix_bounds(prefix);
        RemoteIter::new(Arc::clone(&self.pool), lower, upper)
    }

    /// Runs `f` as one atomic read-modify-write transaction, as the embedded
    /// [`state_core::Bucket::transaction`] does: what `f` wrote is applied as one
    /// batch if no key it read was changed by anyone else in between; otherwise
    /// nothing is written and `f` runs again on a fresh [`RemoteTxn`] (up to 1000
    /// times, then *conflict*). An error from `f` writes nothing.
    ///
    /// Over the wire this is Redis's optimistic locking: each key `f` reads is
    /// `WATCH`ed before it is read, and the writes go as one `STATE.BATCH` inside
    /// `MULTI`/`EXEC`, which the server refuses if a watched key changed. `f` may
    /// run more than once, so it should have no effects beyond the transaction.
    ///
    /// # Errors
    /// Whatever `f` returns; *conflict*; *quota exceeded*; *I/O* (a connection lost
    /// while `f` was reading is retried once; one lost while committing is
    /// reported, the outcome unknown).
    pub fn transaction<T>(
        &self,
        f: impl FnMut(&mut RemoteTxn<'_>) -> state_core::Result<T>,
    ) -> Result<T> {
        let r = txn::run(&self.pool, f);
        if let Some(cache) = &self.cache {
            // The keys it wrote are the transaction's business: drop them all.
            cache.forget_all();
        }
        r
    }

    /// The changes to keys starting with `prefix` (all keys: `""`), from now on,
    /// through the server's keyspace notifications on a connection of the
    /// watcher's own. Once this returns, every later change reaches it.
    ///
    /// # Errors
    /// *invalid argument* for a prefix longer than the longest key (as embedded);
    /// *I/O* if the server cannot be reached.
    pub fn watch(&self, prefix: &str) -> Result<RemoteWatcher> {
        limits::check_watch_prefix(prefix)?;
        let conn = self.pool.open()?;
        RemoteWatcher::subscribe(conn, &self.pool.endpoint, prefix)
    }

    /// Reads `key`, computes its new value with `f` (`None`: delete it) and writes
    /// it, atomically (a [`RemoteBucket::transaction`] of one key; `f` may run
    /// again after a conflict). Returns the new value.
    ///
    /// # Errors
    /// As [`RemoteBucket::transaction`].
    pub fn update(
        &self,
        key: &str,
        mut f: impl FnMut(Option<&[u8]>) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>> {
        limits::check_key(key)?;
        self.transaction(|tx| {
            let old = tx.get(key)?.map(|r| r.value.clone());
            let new = f(old.as_deref());
            match &new {
                Some(v) => tx.put(key, v.clone(), state_core::Expiry::Keep)?,
                None => {
                    tx.delete(key)?;
                }
            }
            Ok(new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_handle_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<RemoteBucket>();
    }

    #[test]
    fn ttls_round_up_and_zero_is_refused() {
        assert_eq!(ttl_ms(Duration::from_micros(1)).unwrap(), 1);
        assert_eq!(ttl_ms(Duration::from_millis(1500)).unwrap(), 1500);
        assert!(ttl_ms(Duration::ZERO).unwrap_err().is_invalid_argument());
    }
}
