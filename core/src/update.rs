//! [`Bucket::update`]: a read-modify-write of one key, written once.
//!
//! What a [`crate::Txn`] does for any number of keys, for exactly one and without
//! the transaction's bookkeeping: the value is lent to the closure straight from the
//! engine, the new value is built in a buffer the thread reuses, and the commit point
//! writes it as one op (`Committer::update`). On the memfile engine, with nobody
//! watching the bucket, an update that keeps the value's length allocates nothing
//! (`core/tests/update_alloc.rs`). The server's INCR, APPEND, SETNX, GETSET, GETDEL
//! and their kin run on it outside MULTI.

use std::cell::Cell;

use crate::bucket::Bucket;
use crate::clock::Clock;
use crate::commit::{One, Prior, UpdateBufs};
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

/// One key's read-modify-write in progress: the closure of [`Bucket::update`] reads
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
        let max_value = shared.opts.max_value_size;
        let clock = &*shared.opts.clock;
        shared.update(name, key.as_bytes(), |reader, bufs| {
            let UpdateBufs { value: buf, labels } = bufs;
            let now = Cell::new(None);
            let read_now = || match now.get() {
                Some(n) => n,
                None => {
                    let n = clock.now_ms();
                    now.set(Some(n));
                    n
                }
            };
            let mut run = |stored: Stored<&[u8]>,
                           buf: &mut Vec<u8>,
                           labels: &mut Vec<&'static str>|
             -> Result<(T, One)> {
                let mut u = Update {
                    value: stored.live(),
                    expires_at_ms: match stored {
                        Stored::Live { deadline_ms, .. } => deadline_ms,
                        _ => None,
                    },
                    buf,
                    labels,
                    write: Write::Nothing,
                    clock,
                    now: &now,
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
                        limits::check_value(key, buf, max_value)?;
                        match expiry {
                            Expiry::Never => One::Put {
                                deadline: None,
                                prior,
                            },
                            Expiry::Keep => One::Put {
                                deadline: live_deadline,
                                prior,
                            },
                            Expiry::At(d) if d <= read_now() => delete,
                            Expiry::At(d) => One::Put {
                                deadline: Some(d),
                                prior,
                            },
                        }
                    }
                };
                Ok((out, one))
            };
            // `f` runs on the lent value and under the write lock: a write of this
            // store from inside it is refused instead of deadlocking.
            let _lending = Lending::start(shared);
            let mut result: Option<Result<(T, One)>> = None;
            reader.get(name, key.as_bytes(), &mut |raw| {
                result =
                    Some(Stored::of(raw, &shared.path, read_now).and_then(|s| run(s, buf, labels)));
            })?;
            match result {
                Some(r) => r,
                None => run(Stored::Missing, buf, labels),
            }
        })
    }
}
