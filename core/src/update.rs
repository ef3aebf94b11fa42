//! [`Bucket::update`]: a read-modify-write of one key, written once.
//!
//! What a [`crate::Txn`] does for any number of keys, for exactly one and without
//! the transaction's bookkeeping: the value is lent to the closure straight from the
//! engine, the new value is built in a buffer the thread reuses, and the commit point
//! writes it as one op (`Committer::update`). On the memfile engine, with nobody
//! watching the bucket, an update that keeps the value's length allocates nothing
//! (`core/tests/update_alloc.rs`). The server's INCR, APPEND, SETNX, GETSET, GETDEL
//! and their kin run on it outside MULTI.
//!
//! [`Bucket::update_many`] runs the same per-key update over several keys and
//! commits all their writes as one batch (`Committer::update_many`): a later
//! update of a key in the batch reads what the earlier one wrote, and watchers hear
//! of each key's change as if it had been written alone. The server runs a
//! pipelined run of INCR/INCRBY/DECR/DECRBY on it.

use std::cell::Cell;
use std::collections::HashMap;

use crate::bucket::Bucket;
use crate::clock::Clock;
use crate::commit::{ManyBufs, ManyWrite, One, Prior, UpdateBufs};
use crate::error::Result;
use crate::lend::Lending;
use crate::limits;
use crate::record::Stored;
use crate::txn::Expiry;

/// What an update writes, as the closure last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Nothing,
    Put(Expiry),
    Delete,
}

/// One key's read-modify-write in progress: the closure of [`Bucket::update`] (and
/// of [`Bucket::update_many`], once per key) reads
/// the key's live value from it and says what to write in its place (nothing, if it
/// says nothing).
pub struct Update<'a> {
    value: Option<&'a [u8]>,
    expires_at_ms: Option<u64>,
    buf: &'a mut Vec<u8>,
    labels: &'a mut Vec<&'static str>,
    write: Write,
    clock: &'a dyn Clock,
    now: &'a Cell<Option<u64>>,
}

impl std::fmt::Debug for Update<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Update")
            .field("value", &self.value.map(String::from_utf8_lossy))
            .field("expires_at_ms", &self.expires_at_ms)
            .field("write", &self.write)
            .finish()
    }
}

impl<'a> Update<'a> {
    /// The key's live value, lent from the store; `None` if the key is missing or
    /// expired. Borrowed for the whole update, not from `self`, so it can be read
    /// while the new value is written.
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// When the live record expires (unix milliseconds), if it does; `None` also
    /// when there is no live record.
    pub fn expires_at_ms(&self) -> Option<u64> {
        self.expires_at_ms
    }

    /// The update's clock reading (unix milliseconds): expiry is judged at this one
    /// instant, read at most once per update.
    pub fn now_ms(&self) -> u64 {
        match self.now.get() {
            Some(now) => now,
            None => {
                let now = self.clock.now_ms();
                self.now.set(Some(now));
                now
            }
        }
    }

    /// Writes `value` with the given expiry (replacing what an earlier call of this
    /// update said to write). [`Expiry::Keep`] keeps the live record's deadline (none
    /// for a new record); a deadline already passed makes the write a delete.
    pub fn put(&mut self, value: &[u8], expiry: Expiry) {
        self.buf.clear();
        self.buf.extend_from_slice(value);
        self.write = Write::Put(expiry);
    }

    /// Writes the value `fill` appends to the (empty) buffer it is given, with the
    /// given expiry as in [`Update::put`], and returns what `fill` returns. The
    /// buffer is reused by the thread's next update: building the value here costs
    /// no allocation once the buffer has grown to the size.
    pub fn put_with<R>(&mut self, expiry: Expiry, fill: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        self.buf.clear();
        let out = fill(self.buf);
        self.write = Write::Put(expiry);
        out
    }

    /// Deletes the key (nothing happens if it has no record).
    pub fn delete(&mut self) {
        self.write = Write::Delete;
    }

    /// Labels the change this update makes with `label`, for watchers that take
    /// labels ([`crate::WatchOptions::labels`]), as [`crate::Txn::label`] labels a
    /// transaction's: they get one event per label, in the order given, each
    /// carrying the key's change; watchers without labels get the change as if
    /// unlabelled. Labels of an update that writes nothing are dropped. A front
    /// end names its notifications with it (the Redis server labels an `INCR`
    /// `"incrby"`, after `"new"` when it creates the key). Costs no allocation
    /// once the thread's label list has grown to the number given.
    pub fn label(&mut self, label: &'static str) {
        self.labels.push(label);
    }
}

impl Bucket {
    /// Reads `key`, lets `f` compute what to write, and writes it once: an atomic
    /// read-modify-write of one key, cheaper than a [`Bucket::transaction`] (no
    /// per-key state, the value lent to `f` rather than copied, the new value built
    /// in a buffer the thread reuses). `f` reads the live value with
    /// [`Update::value`] and says what to write with [`Update::put`],
    /// [`Update::put_with`] or [`Update::delete`]; if it says nothing, nothing is
    /// written. It may label the change for watchers with [`Update::label`]. An
    /// error from `f` writes nothing and is returned.
    ///
    /// ```
    /// # fn main() -> state_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use state_core::{Expiry, Store};
    /// let store = Store::open(dir.path().join("s"))?;
    /// let b = store.bucket("user1")?;
    /// let count = |u: &mut state_core::Update<'_>| {
    ///     let n: u64 = match u.value() {
    ///         Some(v) => String::from_utf8_lossy(v).parse().unwrap_or(0),
    ///         None => 0,
    ///     };
    ///     u.put((n + 1).to_string().as_bytes(), Expiry::Keep);
    ///     Ok(n + 1)
    /// };
    /// assert_eq!(b.update("visits", count)?, 1);
    /// assert_eq!(b.update("visits", count)?, 2);
    /// // Append to a value; the old value is lent, the new one built in place.
    /// let len = b.update("log", |u| {
    ///     let old = u.value().unwrap_or_default();
    ///     Ok(u.put_with(Expiry::Keep, |buf| {
    ///         buf.extend_from_slice(old);
    ///         buf.extend_from_slice(b"entry;");
    ///         buf.len()
    ///     }))
    /// })?;
    /// assert_eq!(len, 6);
    /// # Ok(()) }
    /// ```
    ///
    /// No other write of this store comes between the read and the write. `f` runs
    /// under the store's write lock and, on engines that lend from memory, its read
    /// lock: keep it short. It may read this store; writing, flushing or closing it
    /// from inside `f` fails with *invalid argument*. With an engine that several
    /// processes open at once (Redis), the update is optimistic across processes as
    /// a transaction is: `f` may run again if another process wrote to the bucket
    /// meanwhile, so it should have no effects beyond the [`Update`] (or undo them at
    /// its start).
    ///
    /// # Errors
    /// *invalid argument* for a bad key, or a value over the store's maximum
    /// (nothing is written); *corrupt* if the stored record cannot be decoded;
    /// whatever `f` returns; *closed*; *conflict* (see [`Bucket::transaction`]);
    /// engine errors.
    pub fn update<T>(
        &self,
        key: &str,
        mut f: impl FnMut(&mut Update<'_>) -> Result<T>,
    ) -> Result<T> {
        limits::check_key(key)?;
        let shared = self.shared()?;
        let name = self.name();
        let ctx = Ctx {
            clock: &*shared.opts.clock,
            now: Cell::new(None),
            max_value: shared.opts.max_value_size,
        };
        shared.update(name, key.as_bytes(), |reader, bufs| {
            let UpdateBufs { value: buf, labels } = bufs;
            ctx.now.set(None);
            // `f` runs on the lent value and under the write lock: a write of this
            // store from inside it is refused instead of deadlocking.
            let _lending = Lending::start(shared);
            let mut result: Option<Result<(T, One)>> = None;
            reader.get(name, key.as_bytes(), &mut |raw| {
                result = Some(
                    Stored::of(raw, &shared.path, || ctx.now_ms())
                        .and_then(|s| ctx.run(key, s, buf, labels, &mut f)),
                );
            })?;
            match result {
                Some(r) => r,
                None => ctx.run(key, Stored::Missing, buf, labels, &mut f),
            }
        })
    }

    /// [`Bucket::update`] of each of `keys` in turn, committed as one write: `f`
    /// is called once per key, in order, with the key's place in `keys` and its
    /// [`Update`] (the same API as [`Bucket::update`]'s), and what all the calls
    /// say to write goes to the engine as one batch, in one pass through the
    /// store's write lock. Returns what `f` returned for each key, in order.
    ///
    /// Each key's update sees what the updates before it in the batch left: a key
    /// that comes twice is read the second time as the first call wrote it (value,
    /// deadline, or gone), so `update_many(["n", "n"], incr)` counts 1 then 2 as two
    /// [`Bucket::update`]s would. Expiry is as [`Bucket::update`] keeps it
    /// ([`Update::now_ms`] is read at most once for the whole batch). Watchers hear
    /// of the batch exactly as of that many [`Bucket::update`]s one after the
    /// other: each key's change, with its labels ([`Update::label`]) for watchers
    /// that take them, in the order of `keys`; an update that writes nothing tells
    /// nobody, as one alone does.
    ///
    /// A per-key failure the caller wants to answer for that key alone (a value
    /// that is not a number, say) belongs in `T`, as `Ok(Err(..))` from `f`
    /// without a put: that key writes nothing and the batch goes on.
    ///
    /// ```
    /// # fn main() -> state_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use state_core::{Expiry, Store};
    /// let store = Store::open(dir.path().join("s"))?;
    /// let b = store.bucket("counters")?;
    /// b.set("text", b"abc")?;
    /// let by = [1, 5, 1, 2];
    /// let counts = b.update_many(&["a", "b", "a", "text"], |i, u| {
    ///     let old = match u.value() {
    ///         None => 0,
    ///         Some(v) => match std::str::from_utf8(v).map(str::parse::<i64>) {
    ///             Ok(Ok(n)) => n,
    ///             // This key writes nothing; the batch goes on.
    ///             _ => return Ok(Err("not a number")),
    ///         },
    ///     };
    ///     let new = old + by[i];
    ///     u.put(new.to_string().as_bytes(), Expiry::Keep);
    ///     Ok(Ok(new))
    /// })?;
    /// assert_eq!(counts, [Ok(1), Ok(5), Ok(2), Err("not a number")]);
    /// assert_eq!(b.get("a")?.as_deref(), Some(&b"2"[..]));
    /// # Ok(()) }
    /// ```
    ///
    /// The batch is one write: no other write of this store comes between its
    /// reads and its commit, and after a crash either all of it or none of it is
    /// stored. `f` runs under the store's write lock (and, on engines that lend from
    /// memory, their read lock while a stored value is lent) for the whole batch:
    /// keep the batch short. As in [`Bucket::update`], `f` may read this store, a
    /// write from inside it fails with *invalid argument*, and with an engine that
    /// several processes open at once (Redis) the whole batch may run again (every
    /// key from the first) if another process wrote to the bucket meanwhile.
    ///
    /// # Errors
    /// Any error writes nothing of the batch and tells no watcher: *invalid
    /// argument* for a bad key (checked before `f` is first called) or a value over
    /// the store's maximum; *corrupt* if a stored record cannot be decoded; the
    /// first error `f` returns (`f` is not called for the keys after it);
    /// *closed*; *conflict* (see [`Bucket::transaction`]); engine errors. To learn
    /// which key failed, run the keys through [`Bucket::update`] one by one.
    pub fn update_many<K, T>(
        &self,
        keys: &[K],
        mut f: impl FnMut(usize, &mut Update<'_>) -> Result<T>,
    ) -> Result<Vec<T>>
    where
        K: AsRef<str>,
    {
        for key in keys {
            limits::check_key(key.as_ref())?;
        }
        let shared = self.shared()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let name = self.name();
        let ctx = Ctx {
            clock: &*shared.opts.clock,
            now: Cell::new(None),
            max_value: shared.opts.max_value_size,
        };
        shared.update_many(name, keys, |reader, bufs| {
            ctx.now.set(None);
            let _lending = Lending::start(shared);
            let mut results = Vec::with_capacity(keys.len());
            // Where each key's latest write of the batch is: found by a look back
            // through the writes in a short batch, through a map in a long one.
            let mut latest: Option<HashMap<&[u8], usize, foldhash::fast::RandomState>> =
                (keys.len() > LOOK_BACK)
                    .then(|| HashMap::with_capacity_and_hasher(keys.len(), Default::default()));
            for (i, key) in keys.iter().enumerate() {
                let key = key.as_ref();
                let ManyBufs {
                    value: buf,
                    values,
                    labels,
                    writes,
                } = &mut *bufs;
                let earlier = match &latest {
                    Some(map) => map.get(key.as_bytes()).copied(),
                    None => writes.iter().rposition(|w| keys[w.key].as_ref() == key),
                };
                let first_label = labels.len();
                let mut g = |u: &mut Update<'_>| f(i, u);
                let (out, one) = match earlier {
                    // Written earlier in the batch: that write is what it holds.
                    Some(w) => {
                        let w = &writes[w];
                        let stored = match w.one {
                            One::Put { deadline, .. } => Stored::Live {
                                value: &values[w.value.clone()],
                                deadline_ms: deadline,
                            },
                            One::Delete { .. } | One::Nothing => Stored::Missing,
                        };
                        ctx.run(key, stored, buf, labels, &mut g)?
                    }
                    None => {
                        let mut result: Option<Result<(T, One)>> = None;
                        reader.get(name, key.as_bytes(), &mut |raw| {
                            result = Some(
                                Stored::of(raw, &shared.path, || ctx.now_ms())
                                    .and_then(|s| ctx.run(key, s, buf, labels, &mut g)),
                            );
                        })?;
                        match result {
                            Some(r) => r?,
                            None => ctx.run(key, Stored::Missing, buf, labels, &mut g)?,
                        }
                    }
                };
                results.push(out);
                if one == One::Nothing {
                    // Labels of an update that writes nothing are dropped.
                    labels.truncate(first_label);
                    continue;
                }
                let first_byte = values.len();
                if let One::Put { .. } = one {
                    values.extend_from_slice(buf);
                }
                if let Some(map) = &mut latest {
                    map.insert(key.as_bytes(), writes.len());
                }
                writes.push(ManyWrite {
                    key: i,
                    one,
                    value: first_byte..values.len(),
                    labels: first_label..labels.len(),
                });
            }
            Ok(results)
        })
    }
}

/// Past this many keys, [`Bucket::update_many`] finds a key's earlier write in the
/// batch through a map instead of a look back.
const LOOK_BACK: usize = 16;

/// What every key's update of one [`Bucket::update`] or [`Bucket::update_many`]
/// shares: the clock, its one reading, the store's value limit.
struct Ctx<'c> {
    clock: &'c dyn Clock,
    now: Cell<Option<u64>>,
    max_value: usize,
}

impl Ctx<'_> {
    /// The clock reading of the update (read on first use).
    fn now_ms(&self) -> u64 {
        match self.now.get() {
            Some(n) => n,
            None => {
                let n = self.clock.now_ms();
                self.now.set(Some(n));
                n
            }
        }
    }

    /// Runs `f` on `key`'s record `stored`, with the value buffer `buf` and the
    /// label list `labels`; returns what `f` returned and what to write.
    #[inline]
    fn run<T>(
        &self,
        key: &str,
        stored: Stored<&[u8]>,
        buf: &mut Vec<u8>,
        labels: &mut Vec<&'static str>,
        f: impl FnOnce(&mut Update<'_>) -> Result<T>,
    ) -> Result<(T, One)> {
        buf.clear();
        let mut u = Update {
            value: stored.live(),
            expires_at_ms: match stored {
                Stored::Live { deadline_ms, .. } => deadline_ms,
                _ => None,
            },
            buf,
            labels,
            write: Write::Nothing,
            clock: self.clock,
            now: &self.now,
        };
        let out = f(&mut u)?;
        let (write, live_deadline) = (u.write, u.expires_at_ms);
        let prior = Prior::of(&stored);
        let delete = if prior == Prior::Missing {
            One::Nothing
        } else {
            One::Delete { prior }
        };
        let one = match write {
            Write::Nothing => One::Nothing,
            Write::Delete => delete,
            Write::Put(expiry) => {
                limits::check_value(key, buf, self.max_value)?;
                match expiry {
                    Expiry::Never => One::Put {
                        deadline: None,
                        prior,
                    },
                    Expiry::Keep => One::Put {
                        deadline: live_deadline,
                        prior,
                    },
                    Expiry::At(d) if d <= self.now_ms() => delete,
                    Expiry::At(d) => One::Put {
                        deadline: Some(d),
                        prior,
                    },
                }
            }
        };
        Ok((out, one))
    }
}
