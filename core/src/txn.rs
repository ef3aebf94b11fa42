//! [`Txn`]: atomic read-modify-write on one bucket ([`Bucket::transaction`]).
//!
//! A transaction reads the bucket under the store's write lock, so no other write
//! (from any thread of this process) can come between its reads and its writes, and
//! applies everything it changed as one atomic batch: after a crash either all of it
//! is present or none. This is what the service's read-modify-write commands (Redis
//! INCR, APPEND, SET NX/XX/GET, MULTI/EXEC, quotas) are built on.
//!
//! Reads inside a transaction see its own earlier writes. Expired records are
//! invisible, as everywhere. The expiry index is kept exact: a transaction that
//! overwrites or deletes a record with a deadline also removes that deadline's index
//! entry.

use std::collections::btree_map::Entry as MapEntry;
use std::collections::BTreeMap;
use std::ops::Bound;

use crate::bucket::Bucket;
use crate::commit::{Op, Prior, PutKind};
use crate::engine::{Reader, Visit};
use crate::error::{Error, Result};
use crate::limits;
use crate::record::{self, Stored};
use crate::store::Shared;
use crate::watch::Seen;

/// A live record as a transaction sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The value.
    pub value: Vec<u8>,
    /// When the record expires (unix milliseconds), if it does.
    pub expires_at_ms: Option<u64>,
}

/// What a write inside a transaction does to the record's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No expiry: the record lives until deleted (what a plain `set` does).
    Never,
    /// Keep the deadline the live record has (none for a new record), like Redis's
    /// `KEEPTTL`.
    Keep,
    /// Expire at this absolute time, in unix milliseconds. A time that has already
    /// passed makes the write a delete, as Redis does for `SET ... PXAT` in the past.
    At(u64),
}

/// Change in a bucket's usage that a transaction would make, counted over live
/// records: keys plus values in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageDelta {
    /// Records added minus records removed.
    pub records: i64,
    /// Key and value bytes added minus bytes removed.
    pub bytes: i64,
}

/// A bucket's usage: live records, and their keys plus values in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Live records.
    pub records: u64,
    /// Bytes of keys plus values of the live records.
    pub bytes: u64,
}

impl Usage {
    /// This usage changed by `d`, never below zero.
    pub fn apply(self, d: UsageDelta) -> Usage {
        Usage {
            records: self.records.saturating_add_signed(d.records),
            bytes: self.bytes.saturating_add_signed(d.bytes),
        }
    }
}

/// One key's state in a transaction: what was stored when the transaction first
/// read it (its raw deadline, even if expired, so the index entry can be removed),
/// and what the transaction has made of it.
#[derive(Debug)]
struct KeyState {
    /// The record as stored before the transaction: `None` if absent; the deadline
    /// is kept even when the record has expired.
    original: Option<(Option<u64>, usize)>,
    /// Whether `original` was live at the transaction's `now`.
    original_live: bool,
    /// The record now: `None` if absent (or expired).
    current: Option<Record>,
    /// Whether the transaction wrote this key.
    dirty: bool,
    /// Whether it wrote the value (not only the deadline).
    value_written: bool,
}

/// An open transaction on one bucket; see [`Bucket::transaction`].
pub struct Txn<'a> {
    bucket: &'a Bucket,
    shared: &'a Shared,
    reader: Reader<'a>,
    now: u64,
    keys: BTreeMap<String, KeyState>,
    /// The labels given ([`Txn::label`]), in order.
    labels: Vec<(String, Option<&'static str>)>,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("bucket", &self.bucket.name())
            .field("now", &self.now)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl<'a> Txn<'a> {
    /// The transaction's clock reading (unix milliseconds): expiry is judged at this
    /// one instant for the whole transaction.
    pub fn now_ms(&self) -> u64 {
        self.now
    }

    /// The bucket this transaction works on.
    pub fn bucket(&self) -> &Bucket {
        self.bucket
    }

    fn state(&mut self, key: &str) -> Result<&mut KeyState> {
        limits::check_key(key)?;
        match self.keys.entry(key.to_string()) {
            MapEntry::Occupied(o) => Ok(o.into_mut()),
            MapEntry::Vacant(v) => {
                let now = self.now;
                let mut found: Option<Result<Stored<Vec<u8>>>> = None;
                self.reader
                    .get(self.bucket.name(), key.as_bytes(), &mut |raw| {
                        found = Some(
                            record::Stored::of(raw, &self.shared.path, || now)
                                .map(|s| s.map(<[u8]>::to_vec)),
                        );
                    })?;
                let stored = found.transpose()?.unwrap_or(Stored::Missing);
                let state = match stored {
                    Stored::Missing => KeyState {
                        original: None,
                        original_live: false,
                        current: None,
                        dirty: false,
                        value_written: false,
                    },
                    Stored::Expired { deadline_ms } => KeyState {
                        original: Some((Some(deadline_ms), 0)),
                        original_live: false,
                        current: None,
                        dirty: false,
                        value_written: false,
                    },
                    Stored::Live { value, deadline_ms } => KeyState {
                        original: Some((deadline_ms, value.len())),
                        original_live: true,
                        current: Some(Record {
                            value,
                            expires_at_ms: deadline_ms,
                        }),
                        dirty: false,
                        value_written: false,
                    },
                };
                Ok(v.insert(state))
            }
        }
    }

    /// The live record of `key`, if any, including this transaction's own writes.
    ///
    /// # Errors
    /// *invalid argument* for a bad key; *corrupt* for an undecodable record; engine
    /// errors.
    pub fn get(&mut self, key: &str) -> Result<Option<&Record>> {
        Ok(self.state(key)?.current.as_ref())
    }

    /// Lends the live value of `key` to `f` without copying it (this transaction's
    /// own write if it made one, else the stored value), and returns what `f`
    /// returns; `None` if there is no live record. A read that only lends keeps
    /// nothing in the transaction.
    ///
    /// # Errors
    /// As [`Txn::get`].
    pub fn get_with<T>(&mut self, key: &str, f: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        limits::check_key(key)?;
        if let Some(state) = self.keys.get(key) {
            return Ok(state.current.as_ref().map(|r| f(&r.value)));
        }
        let now = self.now;
        let path = &self.shared.path;
        let mut f = Some(f);
        let mut result: Result<Option<T>> = Ok(None);
        self.reader
            .get(self.bucket.name(), key.as_bytes(), &mut |raw| {
                result = record::Stored::of(raw, path, || now).map(|s| match s {
                    Stored::Live { value, .. } => f.take().map(|f| f(value)),
                    _ => None,
                });
            })?;
        result
    }

    /// Whether `key` holds a live record.
    ///
    /// # Errors
    /// As [`Txn::get`].
    pub fn contains(&mut self, key: &str) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Sets `key` to `value` with the given expiry.
    ///
    /// # Errors
    /// *invalid argument* for a bad key or a value over the store's maximum; the
    /// transaction can go on (nothing of this call was recorded).
    pub fn put(&mut self, key: &str, value: Vec<u8>, expiry: Expiry) -> Result<()> {
        limits::check_key(key)?;
        limits::check_value(key, &value, self.shared.opts.max_value_size)?;
        let now = self.now;
        let state = self.state(key)?;
        let deadline = match expiry {
            Expiry::Never => None,
            Expiry::Keep => state.current.as_ref().and_then(|s| s.expires_at_ms),
            Expiry::At(d) if d <= now => {
                state.current = None;
                state.dirty = true;
                return Ok(());
            }
            Expiry::At(d) => Some(d),
        };
        state.current = Some(Record {
            value,
            expires_at_ms: deadline,
        });
        state.dirty = true;
        state.value_written = true;
        Ok(())
    }

    /// Removes `key`. Returns whether it held a live record.
    ///
    /// # Errors
    /// As [`Txn::get`].
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        let state = self.state(key)?;
        let existed = state.current.take().is_some();
        state.dirty |= existed || state.original.is_some();
        Ok(existed)
    }

    /// Sets the deadline of a live record (`None`: no expiry), keeping its value; a
    /// deadline already passed deletes it. Returns `false` (changing nothing) if the
    /// key is missing.
    ///
    /// # Errors
    /// As [`Txn::get`].
    pub fn set_expiry(&mut self, key: &str, expires_at_ms: Option<u64>) -> Result<bool> {
        let now = self.now;
        let state = self.state(key)?;
        let Some(current) = state.current.as_mut() else {
            return Ok(false);
        };
        match expires_at_ms {
            Some(d) if d <= now => state.current = None,
            other => current.expires_at_ms = other,
        }
        state.dirty = true;
        Ok(true)
    }

    /// Labels the change this transaction makes to `key` with `label`, for
    /// watchers that take labels ([`crate::WatchOptions::labels`]): they get one
    /// event per label, in the order labels were given across the whole
    /// transaction, each carrying its label and the key's change (the final one:
    /// a transaction makes one change per key). A front end names its
    /// notifications with it (the Redis server labels an `INCR` `"incrby"`, a
    /// `RENAME` `"rename_from"` and `"rename_to"`). A label of a key the
    /// transaction ends up not changing is dropped; watchers without labels get
    /// the change as if unlabelled.
    ///
    /// # Errors
    /// *invalid argument* for a bad key.
    pub fn label(&mut self, key: &str, label: &'static str) -> Result<()> {
        limits::check_key(key)?;
        self.labels.push((key.to_string(), Some(label)));
        Ok(())
    }

    /// Labels the change this transaction makes to `key` with nothing: watchers
    /// that take labels are not told of it (unless another label of it is
    /// given); watchers without labels are (the Redis server's FLUSHDB, which
    /// Redis announces with no keyspace event).
    ///
    /// # Errors
    /// *invalid argument* for a bad key.
    pub fn label_none(&mut self, key: &str) -> Result<()> {
        limits::check_key(key)?;
        self.labels.push((key.to_string(), None));
        Ok(())
    }

    /// Whether a key of `watch` (made by [`Bucket::watch_keys`] on this bucket)
    /// has changed since it was watched: a write of this process to it committed,
    /// a key live then has passed its deadline by this transaction's clock, or
    /// (on an engine other processes share) its stored record differs from the
    /// one then. Checked inside the transaction, so a transaction that goes on
    /// only when nothing changed is atomic with the check.
    ///
    /// # Errors
    /// *invalid argument* for a watch of another bucket; engine errors.
    pub fn watched_changed(&mut self, watch: &crate::KeyWatch) -> Result<bool> {
        if watch.bucket_name() != self.bucket.name() {
            return Err(Error::invalid(format!(
                "a key watch of bucket {:?} checked in a transaction on {:?}",
                watch.bucket_name(),
                self.bucket.name()
            )));
        }
        if watch.touched() {
            return Ok(true);
        }
        for (key, seen) in watch.seen() {
            if let Seen::Live {
                deadline: Some(d), ..
            } = seen
            {
                if d <= self.now {
                    return Ok(true);
                }
            }
            if !watch.digests() {
                continue;
            }
            let now = self.now;
            let mut live = None;
            self.reader.get(self.bucket.name(), key, &mut |raw| {
                live = match record::Stored::of(raw, &self.shared.path, || now) {
                    Ok(Stored::Live { .. }) | Err(_) => Some(watch.digest(raw)),
                    Ok(_) => None,
                };
            })?;
            let then = match seen {
                Seen::Live { digest, .. } => digest,
                Seen::Gone => None,
            };
            if live != then {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Live keys of the bucket as this transaction sees them, in key order, from
    /// `after` (exclusive; `None`: from the start), at most `limit` of them.
    ///
    /// # Errors
    /// *corrupt* for an undecodable record; engine errors.
    pub fn keys(&mut self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let mut stored: Vec<String> = Vec::new();
        let lower = match after {
            Some(a) => Bound::Excluded(a.as_bytes()),
            None => Bound::Unbounded,
        };
        let now = self.now;
        let mut bad = None;
        // Enough stored keys to fill `limit` even if some were deleted here.
        let want = limit.saturating_add(self.keys.len());
        self.reader.scan(
            self.bucket.name(),
            lower,
            Bound::Unbounded,
            false,
            &mut |k, raw| {
                let live = matches!(
                    record::Stored::of(raw, &self.shared.path, || now),
                    Ok(Stored::Live { .. }) | Err(_)
                );
                match record::key_str(k) {
                    Some(k) if live => stored.push(k.to_string()),
                    Some(_) => {}
                    None => bad = Some(k.to_vec()),
                }
                if bad.is_some() || stored.len() >= want {
                    Visit::Stop
                } else {
                    Visit::Continue
                }
            },
        )?;
        if let Some(k) = bad {
            return Err(Error::corrupt(
                &self.shared.path,
                format!(
                    "a key in bucket {:?} is not UTF-8: {k:?}",
                    self.bucket.name()
                ),
            ));
        }
        let scanned_all = stored.len() < want;
        let last_scanned = stored.last().cloned();
        let mut keys: Vec<String> = stored
            .into_iter()
            .filter(|k| self.keys.get(k).is_none_or(|s| s.current.is_some()))
            .collect();
        // Keys this transaction created within the scanned range.
        for (k, state) in &self.keys {
            let in_range = after.is_none_or(|a| k.as_str() > a)
                && (scanned_all || last_scanned.as_ref().is_some_and(|l| k <= l));
            if in_range && state.current.is_some() && !state.original_live {
                keys.push(k.clone());
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys.truncate(limit);
        Ok(keys)
    }

    /// Deletes every live record of the bucket. Returns how many there were.
    ///
    /// # Errors
    /// As [`Txn::keys`].
    pub fn clear(&mut self) -> Result<u64> {
        let mut removed = 0u64;
        let mut after: Option<String> = None;
        loop {
            let keys = self.keys(after.as_deref(), 1024)?;
            let Some(last) = keys.last().cloned() else {
                break;
            };
            for k in &keys {
                if self.delete(k)? {
                    removed += 1;
                }
            }
            after = Some(last);
        }
        Ok(removed)
    }

    /// The change in live records and bytes that committing now would make.
    pub fn usage_delta(&self) -> UsageDelta {
        let mut d = UsageDelta::default();
        for (k, state) in self.keys.iter().filter(|(_, s)| s.dirty) {
            if let (true, Some((_, len))) = (state.original_live, state.original) {
                d.records -= 1;
                d.bytes -= to_i64(k.len() + len);
            }
            if let Some(s) = &state.current {
                d.records += 1;
                d.bytes += to_i64(k.len() + s.value.len());
            }
        }
        d
    }

    /// The bucket's live records and their key plus value bytes as stored before
    /// this transaction's changes. O(records): quotas call it only to confirm a
    /// refusal.
    ///
    /// # Errors
    /// Engine errors.
    pub fn stored_usage(&self) -> Result<Usage> {
        let now = self.now;
        let mut u = Usage::default();
        self.reader.scan(
            self.bucket.name(),
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, raw| {
                if let Ok(Stored::Live { value, .. }) =
                    record::Stored::of(raw, &self.shared.path, || now)
                {
                    u.records += 1;
                    u.bytes += (k.len() + value.len()) as u64;
                }
                Visit::Continue
            },
        )?;
        Ok(u)
    }

    /// The key and length of the largest value this transaction writes, if any.
    pub fn largest_new_value(&self) -> Option<(&str, usize)> {
        self.keys
            .iter()
            .filter(|(_, s)| s.dirty)
            .filter_map(|(k, s)| s.current.as_ref().map(|c| (k.as_str(), c.value.len())))
            .max_by_key(|(_, len)| *len)
    }

    /// Whether the transaction has anything to write.
    pub fn is_dirty(&self) -> bool {
        self.keys.values().any(|s| s.dirty)
    }

    /// The transaction's changes as the commit point's ops, one per key it wrote
    /// (a key created and deleted again, or given back the deadline it had, is
    /// none).
    ///
    /// # Errors
    /// *too large* if the values written exceed the store's `max_batch_size`.
    fn into_ops(self) -> Result<Vec<Op<'static>>> {
        let mut total = 0usize;
        let mut ops = Vec::new();
        for (k, state) in self.keys {
            if !state.dirty {
                continue;
            }
            let prior = match (state.original, state.original_live) {
                (None, _) => Prior::Missing,
                (Some((deadline, _)), true) => Prior::Live { deadline },
                (Some((deadline, _)), false) => Prior::Expired {
                    deadline: deadline.unwrap_or(0),
                },
            };
            let key = k.into_bytes();
            match state.current {
                Some(rec) => {
                    let kind = if state.value_written {
                        PutKind::Value
                    } else {
                        PutKind::Deadline
                    };
                    if kind == PutKind::Deadline
                        && prior
                            == (Prior::Live {
                                deadline: rec.expires_at_ms,
                            })
                    {
                        continue;
                    }
                    total = total.saturating_add(key.len() + rec.value.len());
                    ops.push(Op::Put {
                        key: key.into(),
                        value: rec.value.into(),
                        deadline: rec.expires_at_ms,
                        prior,
                        kind,
                    });
                }
                None if prior == Prior::Missing => {}
                None => ops.push(Op::Delete {
                    key: key.into(),
                    prior,
                }),
            }
        }
        // The labels of the keys that change, in the order given (the changes are
        // in key order).
        let changes = ops.len();
        for (key, label) in self.labels {
            let changed = ops[..changes]
                .binary_search_by(|op| op.key().cmp(key.as_bytes()))
                .is_ok();
            if changed {
                ops.push(Op::Label {
                    key: key.into_bytes().into(),
                    label,
                });
            }
        }
        let max_batch = self.shared.opts.max_batch_size;
        if total > max_batch {
            return Err(Error::TooLarge(format!(
                "a transaction on bucket {:?} writes more than the store's \
                 max_batch_size of {max_batch} bytes",
                self.bucket.name()
            )));
        }
        Ok(ops)
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Bucket {
    /// Runs `f` as one atomic read-modify-write transaction on this bucket: no other
    /// write of this store comes between its reads and its writes, and everything it
    /// wrote is applied as one atomic batch when `f` returns `Ok`. If `f` returns an
    /// error, nothing is written and the error is returned.
    ///
    /// `f` runs under the store's write lock: keep it short, and do not use the
    /// store from inside it other than through the [`Txn`] (a write there would
    /// wait for the lock this call holds).
    ///
    /// With an engine that several processes open at once (Redis), the transaction
    /// is optimistic across processes: if another process wrote to this bucket
    /// between `f`'s reads and the commit, nothing is written and `f` runs again
    /// on a fresh [`Txn`], so `f` may run more than once and should have no effects
    /// beyond the `Txn` (or undo them at its start).
    ///
    /// ```
    /// # fn main() -> state_core::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use state_core::{Expiry, Store};
    /// let store = Store::open(dir.path().join("s"))?;
    /// let b = store.bucket("user1")?;
    /// let n = b.transaction(|tx| {
    ///     let n = match tx.get("visits")? {
    ///         Some(s) => String::from_utf8_lossy(&s.value).parse::<u64>().unwrap_or(0),
    ///         None => 0,
    ///     } + 1;
    ///     tx.put("visits", n.to_string().into_bytes(), Expiry::Keep)?;
    ///     Ok(n)
    /// })?;
    /// assert_eq!(n, 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// Whatever `f` returns; *too large* if the changes exceed the store's
    /// `max_batch_size`; *closed*; engine errors.
    pub fn transaction<T>(&self, f: impl FnMut(&mut Txn<'_>) -> Result<T>) -> Result<T> {
        self.transaction_checked(f, |_, _| Ok(()))
    }

    /// Like [`Bucket::transaction`], calling `check` with the usage change before
    /// committing; an error from `check` writes nothing and is returned (the
    /// `state-service` crate's quotas use this).
    ///
    /// # Errors
    /// As [`Bucket::transaction`]; whatever `check` returns.
    pub fn transaction_checked<T>(
        &self,
        mut f: impl FnMut(&mut Txn<'_>) -> Result<T>,
        mut check: impl FnMut(&Txn<'_>, UsageDelta) -> Result<()>,
    ) -> Result<T> {
        let shared = self.shared()?;
        shared.rmw(self.name(), |reader| {
            let mut tx = Txn {
                bucket: self,
                shared,
                reader,
                now: shared.opts.clock.now_ms(),
                keys: BTreeMap::new(),
                labels: Vec::new(),
            };
            let out = f(&mut tx)?;
            if tx.is_dirty() {
                check(&tx, tx.usage_delta())?;
            }
            Ok((out, tx.into_ops()?))
        })
    }
}
