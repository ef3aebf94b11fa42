//! [`Bucket`]: one client's ordered key space inside a store.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Bound, ControlFlow, RangeBounds};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::commit::{Op, Prior, PutKind};
use crate::engine::{BucketHint, Reader, StorageEngine, Visit};
use crate::error::{Error, Result};
use crate::expiry::{self, Ttl};
use crate::lend::Lending;
use crate::limits;
use crate::record::{self, Stored};
use crate::store::{Shared, Store};
use crate::watch::{KeyWatch, Seen, WatchOptions, Watcher};

/// A named bucket: an ordered map from string keys to byte values.
///
/// Cheap to clone, `Send + Sync`; all clones see the same data. Keys are UTF-8
/// strings of 1..=1024 bytes, ordered byte-wise; values are bytes up to the store's
/// maximum value size. Every read treats an expired record as absent.
#[derive(Clone)]
pub struct Bucket {
    store: Store,
    name: Arc<str>,
    /// Where the engine keeps this bucket, remembered for point reads.
    hint: BucketHint,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &&*self.name)
            .field("store", &self.store.path())
            .finish()
    }
}

/// A key with its value, as returned by cursors and iterators.
pub type Entry = (String, Vec<u8>);

impl Bucket {
    pub(crate) fn new(store: Store, name: &str) -> Bucket {
        Bucket {
            store,
            name: Arc::from(name),
            hint: BucketHint::new(),
        }
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store this bucket belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn shared(&self) -> Result<&Shared> {
        self.store.shared()
    }

    /// The value of `key`, or `None` if it is missing (or expired).
    ///
    /// # Errors
    /// *invalid argument* for an empty or over-long key; *closed*; engine errors.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        limits::check_key(key)?;
        let shared = self.shared()?;
        let engine = shared.engine()?;
        self.get_in(shared, &*engine, key)
    }

    fn get_in(
        &self,
        shared: &Shared,
        engine: &dyn StorageEngine,
        key: &str,
    ) -> Result<Option<Vec<u8>>> {
        let mut out: Result<Option<Vec<u8>>> = Ok(None);
        engine.get_hinted(&self.name, &self.hint, key.as_bytes(), &mut |raw| {
            out = live_value(shared, raw).map(|v| v.map(<[u8]>::to_vec));
        })?;
        out
    }

    /// Whether `key` is present (and not expired).
    pub fn contains_key(&self, key: &str) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Calls `f` with the value of `key` lent straight from the store, without
    /// copying it, and returns what `f` returns; `None` (and `f` is not called) if the
    /// key is missing or expired. The fastest way to read: use it to parse, compare
    /// or copy a value into a buffer of your own.
    ///
    /// `f` runs while the store's read lock is held: it may read this store (any
    /// bucket), but writing, flushing or closing this store from inside it fails with
    /// *invalid argument* (it would deadlock), and a long-running `f` delays writers.
    ///
    /// # Errors
    /// *invalid argument* for an empty or over-long key; *closed*; engine errors.
    pub fn get_with<T>(&self, key: &str, f: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        limits::check_key(key)?;
        let shared = self.shared()?;
        let engine = shared.engine()?;
        let mut f = Some(f);
        let mut out: Result<Option<T>> = Ok(None);
        let _lending = Lending::start(shared);
        engine.get_hinted(&self.name, &self.hint, key.as_bytes(), &mut |raw| {
            out = live_value(shared, raw).map(|v| v.and_then(|v| f.take().map(|f| f(v))));
        })?;
        out
    }

    /// Visits the live records with keys in `range` (e.g. `..`, `"a".."m"`, `"k"..`)
    /// in key order, or descending with `reverse`, lending each key and value to `f`
    /// without copying them; `f` returns [`ControlFlow::Break`] to stop early. The
    /// fastest way to read many records — [`Bucket::range`] and [`Cursor`] return
    /// owned copies instead.
    ///
    /// Like a cursor, a scan does not see a snapshot: records written while it runs
    /// may or may not be visited, but every record is visited at most once, in order.
    /// `f` runs while the store's read lock is held (released and retaken every few
    /// hundred records): it may read this store, but writing, flushing or closing this
    /// store from inside it fails with *invalid argument* (it would deadlock).
    ///
    /// # Errors
    /// *closed*; *corrupt* if a stored record cannot be decoded; engine errors.
    pub fn scan<'r, R: RangeBounds<&'r str>>(
        &self,
        range: R,
        reverse: bool,
        mut f: impl FnMut(&str, &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        let bound = |b: Bound<&&'r str>| b.map(|s| *s);
        self.visit_live(
            bound(range.start_bound()),
            bound(range.end_bound()),
            reverse,
            true,
            None,
            &mut |k, v| match f(k, v) {
                ControlFlow::Continue(()) => Visit::Continue,
                ControlFlow::Break(()) => Visit::Stop,
            },
        )
    }

    /// Sets `key` to `value`, replacing any previous value and clearing its expiry.
    ///
    /// # Errors
    /// *invalid argument* for a bad key or a value over the store's limit (nothing is
    /// written); *closed*; engine errors.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        let value = value.as_ref();
        let shared = self.shared()?;
        limits::check_key(key)?;
        limits::check_value(key, value, shared.opts.max_value_size)?;
        shared.apply(
            &self.name,
            &[Op::put(key.as_bytes(), value, None, Prior::Unknown)],
        )
    }

    /// Sets `key` to `value` with a time to live: from `ttl` from now on, the key is
    /// invisible to every read, and the sweeper removes it soon after. The deadline
    /// is stored as absolute wall-clock time, so it survives restarts.
    ///
    /// # Errors
    /// As [`Bucket::set`], and *invalid argument* for a zero `ttl`.
    pub fn set_with_ttl(&self, key: &str, value: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        self.set_multiple_inner(std::iter::once((key, value)), Some(ttl))
    }

    /// Removes `key`. Returns whether it existed (an expired key did not). Removing a
    /// missing key is not an error.
    pub fn delete(&self, key: &str) -> Result<bool> {
        limits::check_key(key)?;
        let shared = self.shared()?;
        shared.rmw(&self.name, |reader| {
            let mut found = Stored::Missing;
            reader.get(&self.name, key.as_bytes(), &mut |raw| {
                found = match stored(shared, raw, &mut None) {
                    Ok(s) => s.map(drop),
                    // A record with a damaged header is still removed.
                    Err(_) => Stored::Live {
                        value: (),
                        deadline_ms: None,
                    },
                };
            })?;
            let existed = found.live().is_some();
            let ops = match found {
                Stored::Missing => Vec::new(),
                _ => vec![Op::Delete {
                    key: key.as_bytes().into(),
                    prior: Prior::of(&found),
                }],
            };
            Ok((existed, ops))
        })
    }

    /// The values of those `keys` that are present; missing (and expired) keys are
    /// simply absent from the result, and a repeated key appears once.
    ///
    /// # Errors
    /// *invalid argument* for an empty or over-long key (nothing is read); *closed*;
    /// *corrupt* if a stored record cannot be decoded; engine errors.
    pub fn get_multiple<I, K>(&self, keys: I) -> Result<BTreeMap<String, Vec<u8>>>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let keys: Vec<K> = keys.into_iter().collect();
        // Gathered in key order, then built in one pass (BTreeMap's bulk build from
        // sorted input), instead of a search per insert; a repeated key's copies
        // hold the same value, and one is kept.
        let mut found: Vec<(String, Vec<u8>)> = Vec::with_capacity(keys.len());
        self.get_multiple_with(&keys, |i, v| {
            found.push((keys[i].as_ref().to_string(), v.to_vec()));
        })?;
        Ok(found.into_iter().collect())
    }

    /// Looks up a batch of keys and calls `f(i, value)` for each `keys[i]` that is
    /// present and live, in the order of `keys` (a repeated key is visited at each of
    /// its positions), lending the value without copying it. Faster than one
    /// [`Bucket::get_with`] per key: the memfile engine looks the whole batch up
    /// under one read lock, so the cache misses of a big store overlap.
    ///
    /// `f` runs while the store's read lock is held, with the restrictions of
    /// [`Bucket::get_with`]: reading this store is fine, writing, flushing or
    /// closing it from inside `f` fails with *invalid argument*.
    ///
    /// # Errors
    /// *invalid argument* for an empty or over-long key (nothing is read and `f` is
    /// not called); *closed*; *corrupt* if a stored record cannot be decoded (`f`
    /// may have been called for earlier keys); engine errors.
    pub fn get_multiple_with<K: AsRef<str>>(
        &self,
        keys: &[K],
        mut f: impl FnMut(usize, &[u8]),
    ) -> Result<()> {
        let raw: Vec<&[u8]> = keys
            .iter()
            .map(|k| limits::check_key(k.as_ref()).map(|()| k.as_ref().as_bytes()))
            .collect::<Result<_>>()?;
        let shared = self.shared()?;
        let engine = shared.engine()?;
        let _lending = Lending::start(shared);
        let mut now: Option<u64> = None;
        let mut failed: Option<Error> = None;
        engine.get_many(&self.name, &raw, &mut |i, raw_value| {
            if failed.is_some() {
                return;
            }
            match stored(shared, raw_value, &mut now) {
                Ok(s) => {
                    if let Some(v) = s.live() {
                        f(i, v);
                    }
                }
                Err(e) => failed = Some(e),
            }
        })?;
        failed.map_or(Ok(()), Err)
    }

    /// Sets several keys in one atomic batch: after a crash either all or none are
    /// present. Clears the expiry of each key set. If a key repeats, its last value
    /// wins. An empty batch does nothing.
    ///
    /// # Errors
    /// *invalid argument* for any bad key or value, *too large* if the batch's keys
    /// and values exceed the store's `max_batch_size`; in both cases nothing is written.
    pub fn set_multiple<I, K, V>(&self, items: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.set_multiple_inner(items, None)
    }

    /// Like [`Bucket::set_multiple`], giving every key the same time to live (see
    /// [`Bucket::set_with_ttl`]). Atomic: all keys and their expiry, or nothing.
    ///
    /// # Errors
    /// As [`Bucket::set_multiple`], and *invalid argument* for a zero `ttl`.
    pub fn set_multiple_with_ttl<I, K, V>(&self, items: I, ttl: Duration) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.set_multiple_inner(items, Some(ttl))
    }

    fn set_multiple_inner<I, K, V>(&self, items: I, ttl: Option<Duration>) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let shared = self.shared()?;
        let deadline = match ttl {
            Some(ttl) => Some(expiry::deadline(shared.opts.clock.now_ms(), ttl)?),
            None => None,
        };
        self.set_multiple_until(items, deadline)
    }

    /// [`Bucket::set_multiple`] with every key expiring at the absolute `deadline`
    /// (unix ms), or never; used by imports that carry deadlines.
    pub(crate) fn set_multiple_until<I, K, V>(&self, items: I, deadline: Option<u64>) -> Result<()>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let shared = self.shared()?;
        let max_value = shared.opts.max_value_size;
        let max_batch = shared.opts.max_batch_size;
        let items: Vec<(K, V)> = items.into_iter().collect();
        let mut total = 0usize;
        for (k, v) in &items {
            let (key, value) = (k.as_ref(), v.as_ref());
            limits::check_key(key)?;
            limits::check_value(key, value, max_value)?;
            total = total.saturating_add(key.len() + value.len());
            if total > max_batch {
                return Err(Error::TooLarge(format!(
                    "set_multiple on bucket {:?} exceeds the store's max_batch_size of {max_batch} bytes; split the batch",
                    &*self.name
                )));
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        let ops: Vec<Op<'_>> = items
            .iter()
            .map(|(k, v)| Op::put(k.as_ref().as_bytes(), v.as_ref(), deadline, Prior::Unknown))
            .collect();
        shared.apply(&self.name, &ops)
    }

    /// Gives an existing key a time to live of `ttl` from now, replacing any it had.
    /// Returns `false` (and does nothing) if the key is missing or expired.
    ///
    /// # Errors
    /// *invalid argument* for a bad key or a zero `ttl`; *closed*; engine errors.
    pub fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        limits::check_key(key)?;
        let shared = self.shared()?;
        let new_deadline = expiry::deadline(shared.opts.clock.now_ms(), ttl)?;
        self.rewrite_deadline(shared, key, Some(new_deadline), |_| true)
    }

    /// Removes the time to live of `key`, so it no longer expires. Returns whether
    /// it had one (`false` for a missing key or a key without expiry).
    pub fn persist(&self, key: &str) -> Result<bool> {
        limits::check_key(key)?;
        let shared = self.shared()?;
        self.rewrite_deadline(shared, key, None, |old| old.is_some())
    }

    /// Rewrites a live record's deadline (the commit point moves its index entry)
    /// if `wanted(old)`.
    fn rewrite_deadline(
        &self,
        shared: &Shared,
        key: &str,
        deadline: Option<u64>,
        wanted: impl Fn(Option<u64>) -> bool,
    ) -> Result<bool> {
        shared.rmw(&self.name, |reader| {
            let mut found = Ok(Stored::Missing);
            reader.get(&self.name, key.as_bytes(), &mut |raw| {
                found = stored(shared, raw, &mut None).map(|s| s.map(<[u8]>::to_vec));
            })?;
            let found = found?;
            let prior = Prior::of(&found);
            let old = found.deadline_ms();
            let Some(value) = found.live() else {
                return Ok((false, Vec::new()));
            };
            if !wanted(old) {
                return Ok((false, Vec::new()));
            }
            Ok((
                true,
                vec![Op::Put {
                    key: key.as_bytes().into(),
                    value: value.into(),
                    deadline,
                    prior,
                    kind: PutKind::Deadline,
                }],
            ))
        })
    }

    /// The remaining time to live of `key`: [`Ttl::Missing`] if it does not exist
    /// (or has expired), [`Ttl::NoExpiry`], or [`Ttl::Expires`] with the time left.
    pub fn ttl(&self, key: &str) -> Result<Ttl> {
        limits::check_key(key)?;
        let shared = self.shared()?;
        let engine = shared.engine()?;
        let mut now = None;
        let mut found = Ok(Stored::Missing);
        engine.get(&self.name, key.as_bytes(), &mut |raw| {
            found = stored(shared, raw, &mut now).map(|s| s.map(drop));
        })?;
        Ok(match found? {
            Stored::Missing | Stored::Expired { .. } => Ttl::Missing,
            Stored::Live {
                deadline_ms: None, ..
            } => Ttl::NoExpiry,
            Stored::Live {
                deadline_ms: Some(d),
                ..
            } => {
                let now = now.unwrap_or_else(|| shared.opts.clock.now_ms());
                Ttl::Expires(Duration::from_millis(d.saturating_sub(now)))
            }
        })
    }

    /// Number of live records. Costs what the engine's count costs (O(records) for
    /// an engine that reads every key to count) plus O(expired records).
    pub fn len(&self) -> Result<u64> {
        let shared = self.shared()?;
        let engine = shared.engine()?;
        let stored = engine.count(&self.name)?;
        // Expired records not yet swept are still stored: count them out.
        let now = shared.opts.clock.now_ms();
        let expired =
            expiry::expired_in_bucket(Reader::new(&*engine), &shared.path, &self.name, now)?;
        Ok(stored.saturating_sub(expired))
    }

    /// Whether the bucket holds no live record.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.iter().next().transpose()?.is_none())
    }

    /// The value of `key` deserialized from JSON, or `None` if missing.
    ///
    /// # Errors
    /// *invalid argument* if the stored value is not JSON of type `T`.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::invalid(format!(
                    "value of key {key:?} in bucket {:?} is not the JSON expected: {e}",
                    &*self.name
                ))
            }),
        }
    }

    /// Stores `value` serialized as JSON (clearing any expiry).
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| {
            Error::invalid(format!(
                "value for key {key:?} cannot be serialized as JSON: {e}"
            ))
        })?;
        self.set(key, bytes)
    }

    /// Up to `limit` live entries within the bounds, in key order (descending if
    /// `reverse`), appended to `out`. Returns whether the range ended before `limit`.
    pub(crate) fn fetch(
        &self,
        lower: Bound<&str>,
        upper: Bound<&str>,
        reverse: bool,
        limit: usize,
        out: &mut Vec<Entry>,
    ) -> Result<bool> {
        let taken = self.visit_n(lower, upper, reverse, false, limit, &mut |k, v, _| {
            out.push((k.to_string(), v.to_vec()));
        })?;
        Ok(taken < limit)
    }

    /// Visits up to `n` live entries within the bounds (see [`Bucket::visit_live`]);
    /// returns how many it visited. The third argument of `visit` says whether the
    /// entry is the `n`-th, the last one it will be given.
    pub(crate) fn visit_n(
        &self,
        lower: Bound<&str>,
        upper: Bound<&str>,
        reverse: bool,
        lending: bool,
        n: usize,
        visit: &mut dyn FnMut(&str, &[u8], bool),
    ) -> Result<usize> {
        if n == 0 {
            // Still report use of a closed store.
            self.shared()?;
            return Ok(0);
        }
        let mut taken = 0usize;
        self.visit_live(lower, upper, reverse, lending, Some(n), &mut |k, v| {
            taken += 1;
            visit(k, v, taken == n);
            if taken == n {
                Visit::Stop
            } else {
                Visit::Continue
            }
        })?;
        Ok(taken)
    }

    /// Visits the live entries within the bounds in key order (descending if
    /// `reverse`) until `visit` says stop (which it does after `limit` visits, if
    /// given: the engine reads that many ahead). With `lending`, `visit` runs user
    /// code: the store is marked as lending on this thread meanwhile (see
    /// `crate::lend`).
    pub(crate) fn visit_live(
        &self,
        lower: Bound<&str>,
        upper: Bound<&str>,
        reverse: bool,
        lending: bool,
        limit: Option<usize>,
        visit: &mut dyn FnMut(&str, &[u8]) -> Visit,
    ) -> Result<()> {
        let shared = self.shared()?;
        let engine = shared.engine()?;
        let lower = lower.map(str::as_bytes);
        let upper = upper.map(str::as_bytes);
        let mut failure: Option<Error> = None;
        let mut now: Option<u64> = None;
        let _lending = lending.then(|| Lending::start(shared));
        let mut each = |k: &[u8], raw: &[u8]| {
            let value = match stored(shared, raw, &mut now).map(Stored::live) {
                Ok(Some(v)) => v,
                Ok(None) => return Visit::Continue,
                Err(e) => {
                    failure = Some(e);
                    return Visit::Stop;
                }
            };
            let Some(key) = record::key_str(k) else {
                failure = Some(Error::corrupt(&shared.path, "a stored key is not UTF-8"));
                return Visit::Stop;
            };
            visit(key, value)
        };
        match limit {
            Some(n) => engine.scan_limited(&self.name, lower, upper, reverse, n, &mut each)?,
            None => engine.scan(&self.name, lower, upper, reverse, &mut each)?,
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Store {
    /// A bucket by name. Buckets need no creating: a bucket exists while it holds a
    /// record. Cheap; the returned [`Bucket`] is `Clone + Send + Sync`.
    ///
    /// # Errors
    /// *invalid argument* if the name is empty, longer than 255 bytes or contains a
    /// control character; *closed* if this handle was closed.
    pub fn bucket(&self, name: &str) -> Result<Bucket> {
        self.shared()?;
        limits::check_bucket_name(name)?;
        Ok(Bucket::new(self.clone(), name))
    }

    /// Number of live watchers on this store (all handles), for tests and metrics.
    ///
    /// # Errors
    /// *closed* if this handle was closed.
    pub fn watcher_count(&self) -> Result<usize> {
        Ok(self.shared()?.watch().count())
    }
}

impl Bucket {
    /// Watches the keys of this bucket that start with `prefix` (`""`: every key).
    /// The watcher receives an [`Event`](crate::Event) for every change committed
    /// after this call returns, in commit order, a batch (`set_multiple`, a
    /// transaction) as its events in order, each only after the write is visible to
    /// reads (in sync mode possibly before it is durable). Each event has a kind
    /// ([`EventKind`](crate::EventKind)): a set (with the new value, and whether it
    /// created the key), a delete, an *expire* or *persist* when only the key's
    /// deadline was set, changed or removed, and *expired* when a record whose
    /// deadline passed was removed.
    ///
    /// *Expired* events come when the expired record is removed: by the background
    /// sweeper, so up to one sweep interval (default 1 s) after the deadline, or at
    /// [`crate::Store::sweep_expired`], or earlier if a write (a `delete`, a
    /// transaction) touches the expired key. Reads do not remove expired records and
    /// send no event.
    ///
    /// The queue holds [`DEFAULT_WATCH_CAPACITY`](crate::DEFAULT_WATCH_CAPACITY) notices; see
    /// [`Bucket::watch_with_capacity`].
    ///
    /// # Errors
    /// *invalid argument* for a prefix longer than the longest key (1024 bytes);
    /// *closed*.
    pub fn watch(&self, prefix: &str) -> Result<Watcher> {
        self.watch_with(prefix, WatchOptions::default())
    }

    /// Like [`Bucket::watch`] with a queue of `capacity` notices (at least 1).
    ///
    /// # Errors
    /// As [`Bucket::watch`], and *invalid argument* for a zero capacity.
    pub fn watch_with_capacity(&self, prefix: &str, capacity: usize) -> Result<Watcher> {
        self.watch_with(
            prefix,
            WatchOptions {
                capacity,
                ..WatchOptions::default()
            },
        )
    }

    /// Like [`Bucket::watch`] with the queue's bounds and contents chosen by `opts`.
    ///
    /// # Errors
    /// As [`Bucket::watch`], and *invalid argument* for a zero capacity.
    pub fn watch_with(&self, prefix: &str, opts: WatchOptions) -> Result<Watcher> {
        let capacity = opts.capacity;
        limits::check_watch_prefix(prefix)?;
        if capacity == 0 {
            return Err(Error::invalid("watch capacity must be at least 1"));
        }
        let handle = self.store().handle_id();
        let shared = self.shared()?;
        shared.register_watch(|hub| hub.register(self.name(), prefix, handle, opts))
    }

    /// Watches `keys` of this bucket for optimistic locking, as Redis's WATCH: the
    /// returned [`KeyWatch`] notes every write to one of them that commits after
    /// this call returns (see [`KeyWatch`] for exactly what counts), and
    /// [`Txn::watched_changed`](crate::Txn::watched_changed) tells a transaction
    /// whether any happened. What each key holds is read under the store's write
    /// lock, so no write falls between the read and the registration.
    ///
    /// # Errors
    /// *invalid argument* for a bad key; *corrupt* for an undecodable record;
    /// *closed*; engine errors.
    pub fn watch_keys(&self, keys: &[&str]) -> Result<KeyWatch> {
        for k in keys {
            limits::check_key(k)?;
        }
        let shared = self.shared()?;
        let bucket = self.name();
        shared.register_watch(|hub| {
            use std::hash::BuildHasher;
            let engine = shared.engine()?;
            let hasher = crate::watch::digest_hasher();
            // Another process's writes pass through no hub of this one: keep a
            // hash of each record to compare.
            let digests = engine.version(bucket)?.is_some();
            let now = shared.opts.clock.now_ms();
            let mut seen = std::collections::HashMap::with_capacity(keys.len());
            for k in keys {
                let mut found = Ok(Seen::Gone);
                engine.get(bucket, k.as_bytes(), &mut |raw| {
                    found = Stored::of(raw, &shared.path, || now).map(|s| match s {
                        Stored::Live { deadline_ms, .. } => Seen::Live {
                            deadline: deadline_ms,
                            digest: digests.then(|| hasher.hash_one(raw)),
                        },
                        _ => Seen::Gone,
                    });
                })?;
                seen.insert(Box::from(k.as_bytes()), found?);
            }
            Ok(hub.register_keys(bucket, hasher, digests, seen))
        })?
    }
}

/// The value of the stored record `raw` if it is live: [`stored`] with the common
/// case (no deadline) inline, for point reads.
#[inline]
fn live_value<'a>(shared: &Shared, raw: &'a [u8]) -> Result<Option<&'a [u8]>> {
    match raw.split_first() {
        Some((&record::PLAIN, value)) => Ok(Some(value)),
        _ => stored(shared, raw, &mut None).map(Stored::live),
    }
}

/// What the stored record `raw` is now (see [`Stored`]). `now` caches the clock
/// across a batch; it is read only for a record with a deadline.
fn stored<'a>(shared: &Shared, raw: &'a [u8], now: &mut Option<u64>) -> Result<Stored<&'a [u8]>> {
    Stored::of(raw, &shared.path, || {
        *now.get_or_insert_with(|| shared.opts.clock.now_ms())
    })
}

/// The key range holding exactly the keys that start with `prefix`: what
/// [`Bucket::prefix`] iterates, as bounds for [`Bucket::scan`] (pass
/// `(lower.as_ref().map(String::as_str), upper.as_ref().map(String::as_str))`).
pub fn prefix_bounds(prefix: &str) -> (Bound<String>, Bound<String>) {
    (
        Bound::Included(prefix.to_string()),
        prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded),
    )
}

/// The smallest string greater than every string starting with `prefix`, if any.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        // The next scalar value after c (skipping the surrogate gap).
        let next = match c {
            '\u{D7FF}' => Some('\u{E000}'),
            char::MAX => None,
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{prefix_bounds, prefix_successor};
    use std::ops::Bound;

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(
            prefix_bounds("ab"),
            (Bound::Included("ab".into()), Bound::Excluded("ac".into()))
        );
        assert_eq!(
            prefix_bounds("\u{10FFFF}"),
            (Bound::Included("\u{10FFFF}".into()), Bound::Unbounded)
        );
    }
}
