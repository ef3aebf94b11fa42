//! The commit point: the one way a write reaches a user bucket.
//!
//! Every writer (the [`crate::Bucket`] methods, a transaction's commit, the expiry
//! sweeper, removing a bucket, an import) describes what it does to a bucket as
//! typed operations ([`Op`]): a put with its deadline and what the key held before,
//! a delete of what was there, an index entry found stale. [`derive`] turns one batch
//! of them into the three things a write is made of, so no writer builds any of them
//! by hand:
//!
//! ```text
//!  Bucket / Txn / sweeper / import          (what to change: Op, Prior)
//!        │  Committer::apply (blind)  or  Committer::rmw (closure over a Reader
//!        │                                  returning its result and its Ops)
//!        ▼
//!  ┌─ under the store's write lock ───────────────────────────────────────────┐
//!  │ 1. (rmw, or watched blind write) read what each key holds: a Reader       │
//!  │ 2. derive(ops): encoded records (record), expiry-index puts and deletes   │
//!  │    (expiry), watch changes (watch::Change) — one function                 │
//!  │ 3. engine.write(batch) (through a running backup's tap), or              │
//!  │    shared between processes; a lost race goes back to 1, and too many    │
//!  │    lost races in a row are a *conflict* error                             │
//!  │ 4. only after the engine accepted it: Hub::publish(changes)               │
//!  └──────────────────────────────────────────────────────────────────────────┘
//!        ▼
//!  5. durability: note the write; in sync mode wait for the group sync
//! ```
//!
//! Removing a bucket is the one write that is not a batch of puts and deletes (the
//! engine drops the bucket and its index whole); it goes through the same lock,
//! derives its watch changes with the same [`change_of`], and publishes after the
//! engine's removal succeeded.
//!
//! Each commit also adds its change to the store's record counts ([`counts`]), once
//! something asked for them.

mod counts;
mod group_commit;
pub(crate) mod tap;

use self::counts::Counts;
pub(crate) use self::group_commit::GroupSync;
use self::tap::Tap;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::{Bound, Range};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::engine::{Reader, StorageEngine, Visit, WriteOp};
use crate::error::{Error, Result};
use crate::expiry;
use crate::record::{self, Stored};
use crate::watch::{Change, EventKind, Hub, Role};

/// How often a read-modify-write is tried before a conflict with other processes is
/// reported (each failed try means another process's write to the bucket committed).
const MAX_RMW_ATTEMPTS: usize = 1000;

/// What a key held before a write, as far as its writer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prior {
    /// Not read: a plain `set` does not pay a read. An index entry for a deadline
    /// the record had stays behind, stale, and the sweeper drops it in its time.
    Unknown,
    /// No record.
    Missing,
    /// A live record, with its deadline if it has one.
    Live { deadline: Option<u64> },
    /// A record whose deadline has passed, still stored.
    Expired { deadline: u64 },
}

impl Prior {
    /// What a read of the key found.
    pub(crate) fn of<V>(stored: &Stored<V>) -> Prior {
        match *stored {
            Stored::Missing => Prior::Missing,
            Stored::Live { deadline_ms, .. } => Prior::Live {
                deadline: deadline_ms,
            },
            Stored::Expired { deadline_ms } => Prior::Expired {
                deadline: deadline_ms,
            },
        }
    }

    /// The deadline of the stored record, live or expired, if known.
    fn deadline(self) -> Option<u64> {
        match self {
            Prior::Live { deadline } => deadline,
            Prior::Expired { deadline } => Some(deadline),
            Prior::Unknown | Prior::Missing => None,
        }
    }
}

/// What a put changes, for its watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutKind {
    /// The value (and with it the deadline): a [`EventKind::Set`].
    Value,
    /// Only the deadline of a live record, its value rewritten as it was: an
    /// [`EventKind::Expire`], or [`EventKind::Persist`] when the deadline goes.
    Deadline,
}

/// One typed write to a user bucket.
#[derive(Debug, Clone)]
pub(crate) enum Op<'a> {
    /// Store `value` under `key`, expiring at `deadline` (unix ms) or never.
    Put {
        key: Cow<'a, [u8]>,
        value: Cow<'a, [u8]>,
        deadline: Option<u64>,
        /// What the key held: the deadline this put replaces.
        prior: Prior,
        kind: PutKind,
    },
    /// Remove `key`, which held `prior` (a `Missing` prior makes it a no-op).
    Delete { key: Cow<'a, [u8]>, prior: Prior },
    /// Remove the index entry (`deadline`, `key`), which no longer describes its
    /// record (the sweeper's stale entries). No event.
    DropIndex { key: Cow<'a, [u8]>, deadline: u64 },
    /// No write: labels the change a `Put` or `Delete` of the same batch makes to
    /// `key` (`None`: labelled with nothing). Watchers that take labels get one
    /// event per label, in op order, instead of the change's own; a label of a key
    /// the batch does not change is dropped. See [`crate::Txn::label`].
    Label {
        key: Cow<'a, [u8]>,
        label: Option<&'static str>,
    },
}

impl<'a> Op<'a> {
    /// A put of a new value.
    pub(crate) fn put(
        key: impl Into<Cow<'a, [u8]>>,
        value: impl Into<Cow<'a, [u8]>>,
        deadline: Option<u64>,
        prior: Prior,
    ) -> Op<'a> {
        Op::Put {
            key: key.into(),
            value: value.into(),
            deadline,
            prior,
            kind: PutKind::Value,
        }
    }

    /// The key the op is about.
    pub(crate) fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. }
            | Op::Delete { key, .. }
            | Op::DropIndex { key, .. }
            | Op::Label { key, .. } => key,
        }
    }

    fn prior(&self) -> Option<Prior> {
        match self {
            Op::Put { prior, .. } | Op::Delete { prior, .. } => Some(*prior),
            Op::DropIndex { .. } | Op::Label { .. } => None,
        }
    }

    /// What the key holds after this op (`None`: the op does not touch the record).
    fn after(&self) -> Option<Prior> {
        match self {
            Op::Put { deadline, .. } => Some(Prior::Live {
                deadline: *deadline,
            }),
            Op::Delete { .. } => Some(Prior::Missing),
            Op::DropIndex { .. } | Op::Label { .. } => None,
        }
    }
}

/// The watch change an op makes, if any: the one place that names event kinds.
/// (A [`Op::Label`] is made a change by [`labelled_changes`], which knows the
/// key's change.)
pub(crate) fn change_of<'o>(op: &'o Op<'_>) -> Option<Change<'o>> {
    let role = Role::Change { labelled: false };
    match op {
        Op::Put {
            key,
            value,
            prior,
            kind: PutKind::Value,
            ..
        } => Some(Change {
            key,
            kind: EventKind::Set,
            new: matches!(prior, Prior::Missing | Prior::Expired { .. }),
            value: Some(value),
            role,
        }),
        Op::Put {
            key,
            deadline,
            kind: PutKind::Deadline,
            ..
        } => Some(Change {
            key,
            kind: if deadline.is_some() {
                EventKind::Expire
            } else {
                EventKind::Persist
            },
            new: false,
            value: None,
            role,
        }),
        Op::Delete { key, prior } => {
            let kind = match prior {
                Prior::Missing => return None,
                Prior::Expired { .. } => EventKind::Expired,
                Prior::Live { .. } | Prior::Unknown => EventKind::Delete,
            };
            Some(Change {
                key,
                kind,
                new: false,
                value: None,
                role,
            })
        }
        Op::DropIndex { .. } | Op::Label { .. } => None,
    }
}

/// The changes of a batch in op order: each `Put`'s and `Delete`'s (marked
/// labelled when the batch labels its key), and each [`Op::Label`] as a label
/// entry carrying its key's change.
fn labelled_changes<'o>(ops: &'o [Op<'_>]) -> Vec<Change<'o>> {
    let mut changes: Vec<Change<'o>> = ops.iter().filter_map(change_of).collect();
    if !ops.iter().any(|op| matches!(op, Op::Label { .. })) {
        return changes;
    }
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        if let Op::Label { key, label } = op {
            let Some(c) = changes.iter_mut().find(|c| c.key == &**key) else {
                continue;
            };
            c.role = Role::Change { labelled: true };
            out.push(Change {
                role: Role::Label(*label),
                ..*c
            });
        }
    }
    // The changes themselves first (watchers without labels take these), then
    // the label entries in the writer's order.
    changes.extend(out);
    changes
}

/// One engine write of a derived batch, pointing into the [`Scratch`] buffers and
/// the ops.
#[derive(Debug, Clone)]
enum Planned {
    /// Put op `op`'s key with the encoded record `records[range]`.
    Put { op: usize, record: Range<usize> },
    /// Delete op `op`'s key.
    Delete { op: usize },
    /// Put the index key `index[range]`.
    IndexPut(Range<usize>),
    /// Delete the index key `index[range]`.
    IndexDelete(Range<usize>),
}

/// The buffers a derived batch lives in, reused per thread.
#[derive(Debug, Default)]
struct Scratch {
    /// Encoded records, back to back.
    records: Vec<u8>,
    /// Expiry-index keys, back to back.
    index: Vec<u8>,
    writes: Vec<Planned>,
    /// Whether a write touches the expiry index.
    indexed: bool,
}

/// Buffers larger than this are not kept for the next batch.
const SCRATCH_KEEP: usize = 64 << 10;

impl Scratch {
    fn clear(&mut self) {
        self.records.clear();
        self.index.clear();
        self.writes.clear();
        self.indexed = false;
    }

    fn index_op(&mut self, put: bool, deadline: u64, key: &[u8]) {
        let start = self.index.len();
        expiry::index_key_into(&mut self.index, deadline, key);
        let range = start..self.index.len();
        self.writes.push(if put {
            Planned::IndexPut(range)
        } else {
            Planned::IndexDelete(range)
        });
        self.indexed = true;
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's cleared scratch buffers (fresh ones if they are in
/// use further up the stack).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            s.clear();
            let out = f(&mut s);
            if s.records.capacity() > SCRATCH_KEEP || s.index.capacity() > SCRATCH_KEEP {
                *s = Scratch::default();
            }
            out
        }
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Derives from `ops` what committing them writes and tells: the encoded records
/// and expiry-index operations (planned into `s`), and, if `watched`, the watch
/// changes in op order. `parts` (the end of each part, ascending, the last
/// `ops.len()`) cuts the batch into writes that watchers hear of as if each had
/// committed alone ([`Committer::update_many`]): each part's changes and labels
/// ([`labelled_changes`]) follow the previous part's. `None`: one part.
fn derive<'o>(
    ops: &'o [Op<'_>],
    s: &mut Scratch,
    watched: bool,
    parts: Option<&[usize]>,
) -> Vec<Change<'o>> {
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Put {
                key,
                value,
                deadline,
                prior,
                ..
            } => {
                let start = s.records.len();
                record::encode_into(&mut s.records, value, *deadline);
                s.writes.push(Planned::Put {
                    op: i,
                    record: start..s.records.len(),
                });
                let old = prior.deadline();
                if old != *deadline {
                    if let Some(d) = old {
                        s.index_op(false, d, key);
                    }
                    if let Some(d) = *deadline {
                        s.index_op(true, d, key);
                    }
                }
            }
            Op::Delete { key, prior } => {
                if *prior == Prior::Missing {
                    continue;
                }
                s.writes.push(Planned::Delete { op: i });
                if let Some(d) = prior.deadline() {
                    s.index_op(false, d, key);
                }
            }
            Op::DropIndex { key, deadline } => s.index_op(false, *deadline, key),
            Op::Label { .. } => {}
        }
    }
    if !watched {
        return Vec::new();
    }
    let Some(ends) = parts else {
        return labelled_changes(ops);
    };
    let mut changes = Vec::with_capacity(ops.len());
    let mut start = 0;
    for &end in ends {
        changes.extend(labelled_changes(&ops[start..end]));
        start = end;
    }
    changes
}

/// What a single-key read-modify-write ([`Committer::update`]) writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum One {
    /// Nothing.
    Nothing,
    /// The value buffer, expiring at `deadline`; the key held `prior`.
    Put { deadline: Option<u64>, prior: Prior },
    /// A delete of what the key held (`prior`, not [`Prior::Missing`]).
    Delete { prior: Prior },
}

/// The buffers of one single-key read-modify-write ([`Committer::update`]),
/// reused per thread: the value it writes and the labels it gives its change.
#[derive(Debug, Default)]
pub(crate) struct UpdateBufs {
    /// The value a put writes.
    pub(crate) value: Vec<u8>,
    /// The labels of the key's change, in order (see [`Op::Label`]).
    pub(crate) labels: Vec<&'static str>,
}

impl UpdateBufs {
    const fn new() -> UpdateBufs {
        UpdateBufs {
            value: Vec::new(),
            labels: Vec::new(),
        }
    }
}

/// Most labels an update's thread buffer keeps for the next update.
const LABELS_KEEP: usize = 64;

thread_local! {
    static VALUE: RefCell<UpdateBufs> = const { RefCell::new(UpdateBufs::new()) };
}

/// Runs `f` with this thread's buffers for [`Committer::update`] and the record
/// of [`Committer::put_alone`] (fresh ones if they are in use further up the
/// stack: an update of another store from inside an update's closure).
fn with_update_bufs<R>(f: impl FnOnce(&mut UpdateBufs) -> R) -> R {
    VALUE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let out = f(&mut bufs);
            if bufs.value.capacity() > SCRATCH_KEEP {
                bufs.value = Vec::new();
            }
            if bufs.labels.capacity() > LABELS_KEEP {
                bufs.labels = Vec::new();
            }
            out
        }
        Err(_) => f(&mut UpdateBufs::default()),
    })
}

/// One key's write in a multi-key read-modify-write ([`Committer::update_many`]).
#[derive(Debug, Clone)]
pub(crate) struct ManyWrite {
    /// The key's place in the caller's list of keys.
    pub(crate) key: usize,
    /// What it writes (a put's value is `value`); never [`One::Nothing`].
    pub(crate) one: One,
    /// A put's value in [`ManyBufs::values`].
    pub(crate) value: Range<usize>,
    /// Its change's labels in [`ManyBufs::labels`], in order.
    pub(crate) labels: Range<usize>,
}

/// The buffers of one multi-key read-modify-write ([`Committer::update_many`]),
/// reused per thread.
#[derive(Debug, Default)]
pub(crate) struct ManyBufs {
    /// The value the key being updated writes (copied to `values` once it is done).
    pub(crate) value: Vec<u8>,
    /// The values the batch puts, back to back.
    pub(crate) values: Vec<u8>,
    /// The labels of the batch's changes, back to back.
    pub(crate) labels: Vec<&'static str>,
    /// The batch's writes, in the order the keys were updated.
    pub(crate) writes: Vec<ManyWrite>,
}

impl ManyBufs {
    fn clear(&mut self) {
        self.value.clear();
        self.values.clear();
        self.labels.clear();
        self.writes.clear();
    }
}

/// Most writes and labels a multi-key update's thread buffers keep for the next.
const MANY_KEEP: usize = 1024;

thread_local! {
    static MANY: RefCell<ManyBufs> = RefCell::new(ManyBufs::default());
}

/// Runs `f` with this thread's buffers for [`Committer::update_many`] (fresh ones if
/// they are in use further up the stack).
fn with_many_bufs<R>(f: impl FnOnce(&mut ManyBufs) -> R) -> R {
    MANY.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let out = f(&mut bufs);
            if bufs.values.capacity() > SCRATCH_KEEP
                || bufs.value.capacity() > SCRATCH_KEEP
                || bufs.writes.capacity() > MANY_KEEP
                || bufs.labels.capacity() > MANY_KEEP
            {
                *bufs = ManyBufs::default();
            }
            out
        }
        Err(_) => f(&mut ManyBufs::default()),
    })
}

/// The error of a read-modify-write that lost the race to other processes
/// [`MAX_RMW_ATTEMPTS`] times in a row.
fn conflict(bucket: &str) -> Error {
    Error::Conflict(format!(
        "a read-modify-write of bucket {bucket:?} conflicted with other processes' \
         writes {MAX_RMW_ATTEMPTS} times in a row; retry it"
    ))
}

/// Calls `f` with the engine batch planned in `s` (on the stack for a few writes).
fn with_write_ops<R>(
    bucket: &str,
    index_bucket: &str,
    ops: &[Op<'_>],
    s: &Scratch,
    f: impl FnOnce(&[WriteOp<'_>]) -> R,
) -> R {
    const INLINE: usize = 4;
    let op_of = |p: &Planned| -> WriteOp<'_> {
        match p {
            Planned::Put { op, record } => WriteOp::Put {
                bucket,
                key: ops[*op].key(),
                value: &s.records[record.clone()],
            },
            Planned::Delete { op } => WriteOp::Delete {
                bucket,
                key: ops[*op].key(),
            },
            Planned::IndexPut(r) => WriteOp::Put {
                bucket: index_bucket,
                key: &s.index[r.clone()],
                value: &[],
            },
            Planned::IndexDelete(r) => WriteOp::Delete {
                bucket: index_bucket,
                key: &s.index[r.clone()],
            },
        }
    };
    let n = s.writes.len();
    if n <= INLINE {
        let mut inline = [WriteOp::Delete {
            bucket: "",
            key: &[],
        }; INLINE];
        for (slot, p) in inline.iter_mut().zip(&s.writes) {
            *slot = op_of(p);
        }
        f(&inline[..n])
    } else {
        let all: Vec<WriteOp<'_>> = s.writes.iter().map(op_of).collect();
        f(&all)
    }
}

/// The write side of one store: its write lock, its watchers, its group sync. Owned
/// by the store's shared state; every write to a user bucket goes through it.
pub(crate) struct Committer {
    /// Serializes writes: engines see one write at a time, a read-modify-write's
    /// reads and its commit are atomic against every other writer of the process,
    /// and watchers see commits in order.
    lock: Mutex<()>,
    hub: Arc<Hub>,
    sync: GroupSync,
    /// Sync mode: every write waits until it is durable.
    durable: bool,
    clock: Arc<dyn Clock>,
    /// A running online backup's hold on the engine writes (see [`tap`]).
    tap: Tap,
    /// Records removed after their deadline passed (by the sweeper or a write
    /// that found them expired) since the store opened in this process.
    expired: AtomicU64,
    /// Bucket and record counts kept as writes commit (see [`counts`]).
    counts: Counts,
}

impl Committer {
    /// The write side of a store in sync mode (`durable`) or not, judging expiry by
    /// `clock`.
    pub(crate) fn new(durable: bool, clock: Arc<dyn Clock>) -> Committer {
        Committer {
            lock: Mutex::new(()),
            hub: Arc::default(),
            sync: GroupSync::new(),
            durable,
            clock,
            tap: Tap::default(),
            expired: AtomicU64::new(0),
            counts: Counts::default(),
        }
    }

    /// Records removed after their deadline passed since the store opened here.
    pub(crate) fn expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// The number of buckets holding a record and the number of stored records
    /// (expired ones not yet swept included), kept as writes commit. The first call
    /// counts once, with writes held off (O(buckets) on an engine that counts a
    /// bucket in O(1), O(records) on others); later calls cost O(1). `None` for an
    /// engine other processes write to (`shared`): their writes are not seen here.
    pub(crate) fn counts(
        &self,
        engine: &dyn StorageEngine,
        shared: bool,
    ) -> Result<Option<(u64, u64)>> {
        if shared {
            return Ok(None);
        }
        if let Some(totals) = self.counts.totals() {
            return Ok(Some(totals));
        }
        let _w = self.lock.lock();
        if !self.counts.on() {
            let mut counted = Vec::new();
            for name in engine.bucket_names()? {
                if crate::limits::is_user_bucket(&name) {
                    let n = engine.count(&name)?;
                    counted.push((name, n));
                }
            }
            self.counts.start(counted);
        }
        Ok(self.counts.totals())
    }

    /// Whether commits keep the counts (they stop only when a change is unknown).
    #[cfg(test)]
    pub(crate) fn counting(&self) -> bool {
        self.counts.on()
    }

    /// Each bucket's stored records, if [`Committer::counts`] started counting.
    pub(crate) fn bucket_counts(&self) -> Option<HashMap<String, u64>> {
        self.counts.per_bucket()
    }

    /// Where a running online backup captures what writes overwrite.
    pub(crate) fn tap(&self) -> &Tap {
        &self.tap
    }

    /// The store's watchers.
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The store's group sync (flushes and checkpoints sync through it too).
    pub(crate) fn sync(&self) -> &GroupSync {
        &self.sync
    }

    /// Runs `f` with no write in progress and none starting (watch registration,
    /// the checkpoint's generation record).
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _w = self.lock.lock();
        f()
    }

    /// Commits `ops`, which need no read (their priors may be [`Prior::Unknown`]).
    /// When someone watches the store, the priors are read first (under the lock,
    /// and for an engine shared between processes as a read-modify-write), so the
    /// events say whether each key is new.
    pub(crate) fn apply(
        &self,
        engine: &dyn StorageEngine,
        bucket: &str,
        ops: &[Op<'_>],
    ) -> Result<()> {
        self.durably(engine, || {
            let watched = self.hub.active();
            // A single put with nobody watching (a plain `set`, the commonest write):
            // no derivation, no scratch batch.
            if !watched {
                if let Some(wrote) = self.put_alone(engine, bucket, ops)? {
                    return Ok(((), wrote));
                }
            }
            // Watchers need to know whether each key is new; the counts, whether it
            // existed.
            if (watched || self.counts.on())
                && ops.iter().any(|op| op.prior() == Some(Prior::Unknown))
            {
                let ((), wrote) = self.retry(engine, bucket, watched, |reader| {
                    Ok(((), self.resolve(reader, bucket, ops)?))
                })?;
                return Ok(((), wrote));
            }
            let wrote = self.commit_ops(engine, bucket, None, ops, watched)?;
            Ok(((), wrote == Some(true)))
        })
    }

    /// Runs the read-modify-write `f` of `bucket` (and its companion buckets) and
    /// commits the ops it returns, once: `f` reads through the [`Reader`] and returns
    /// its result and its ops. Atomic against every other writer of the store: in
    /// this process by the write lock, and for an engine other processes share (its
    /// `version` is `Some`) by committing with `write_if_unchanged`, `f` running
    /// again from the start when another process wrote to the bucket in between.
    ///
    /// # Errors
    /// `f`'s errors; *conflict* if other processes won the race
    /// [`MAX_RMW_ATTEMPTS`] times in a row; engine errors.
    pub(crate) fn rmw<'o, T>(
        &self,
        engine: &dyn StorageEngine,
        bucket: &str,
        f: impl FnMut(Reader<'_>) -> Result<(T, Vec<Op<'o>>)>,
    ) -> Result<T> {
        self.durably(engine, || {
            let watched = self.hub.active();
            self.retry(engine, bucket, watched, f)
        })
    }

    /// A read-modify-write of the single key `key` of `bucket`: `f` reads through
    /// the [`Reader`], may fill the value buffer and the label list it is given
    /// (both cleared before each try) and says what to write ([`One`]); the put's
    /// value is that buffer, and the key's change carries the labels as a
    /// transaction's [`Op::Label`]s do (for watchers that take labels, in the order
    /// given). Atomic as [`Committer::rmw`] is (`f` runs again after a lost race
    /// with another process), without its list of ops: on an engine that
    /// overwrites a same-length value in place (memfile) and with nobody watching,
    /// a steady stream of updates allocates nothing, labelled or not.
    ///
    /// # Errors
    /// As [`Committer::rmw`].
    pub(crate) fn update<T>(
        &self,
        engine: &dyn StorageEngine,
        bucket: &str,
        key: &[u8],
        mut f: impl FnMut(Reader<'_>, &mut UpdateBufs) -> Result<(T, One)>,
    ) -> Result<T> {
        self.durably(engine, || {
            let watched = self.hub.active();
            with_update_bufs(|bufs| {
                for _ in 0..MAX_RMW_ATTEMPTS {
                    let version = engine.version(bucket)?;
                    bufs.value.clear();
                    bufs.labels.clear();
                    let (out, one) = f(Reader::new(engine), bufs)?;
                    let op = match one {
                        One::Nothing => return Ok((out, false)),
                        One::Put { deadline, prior } => {
                            Op::put(key, bufs.value.as_slice(), deadline, prior)
                        }
                        One::Delete { prior } => Op::Delete {
                            key: key.into(),
                            prior,
                        },
                    };
                    // Labels matter to watchers only: unwatched, the op goes alone
                    // (on the stack); watched, the publish allocates anyway.
                    let labelled: Vec<Op<'_>>;
                    let ops = if watched && !bufs.labels.is_empty() {
                        labelled = std::iter::once(op.clone())
                            .chain(bufs.labels.iter().map(|&label| Op::Label {
                                key: key.into(),
                                label: Some(label),
                            }))
                            .collect();
                        &labelled[..]
                    } else {
                        std::slice::from_ref(&op)
                    };
                    if let Some(wrote) = self.commit_ops(engine, bucket, version, ops, watched)? {
                        return Ok((out, wrote));
                    }
                }
                Err(conflict(bucket))
            })
        })
    }

    /// A read-modify-write of several keys of `bucket` (`keys`), committed as one
    /// batch: `f` reads through the [`Reader`] and records each key's write in the
    /// [`ManyBufs`] it is given (cleared before each try): a [`ManyWrite`] per key
    /// that writes, in the order the keys were updated (a key may come more than
    /// once; a later write of it sees the earlier one's result, which `f` must
    /// arrange). The writes go to the engine as one batch, atomically as
    /// [`Committer::rmw`] (`f` runs again after a lost race with another process);
    /// watchers hear of each write, with its labels, as if it had committed alone,
    /// one after the other in the order given.
    ///
    /// # Errors
    /// As [`Committer::rmw`].
    pub(crate) fn update_many<T, K: AsRef<str>>(
        &self,
        engine: &dyn StorageEngine,
        bucket: &str,
        keys: &[K],
        mut f: impl FnMut(Reader<'_>, &mut ManyBufs) -> Result<T>,
    ) -> Result<T> {
        self.durably(engine, || {
            let watched = self.hub.active();
            with_many_bufs(|bufs| {
                for _ in 0..MAX_RMW_ATTEMPTS {
                    let version = engine.version(bucket)?;
                    bufs.clear();
                    let out = f(Reader::new(engine), bufs)?;
                    if bufs.writes.is_empty() {
                        return Ok((out, false));
                    }
                    let labels = if watched { bufs.labels.len() } else { 0 };
                    let mut ops: Vec<Op<'_>> = Vec::with_capacity(bufs.writes.len() + labels);
                    let mut parts: Vec<usize> = Vec::new();
                    for w in &bufs.writes {
                        let key = keys[w.key].as_ref().as_bytes();
                        ops.push(match w.one {
                            One::Nothing => continue,
                            One::Put { deadline, prior } => {
                                Op::put(key, &bufs.values[w.value.clone()], deadline, prior)
                            }
                            One::Delete { prior } => Op::Delete {
                                key: key.into(),
                                prior,
                            },
                        });
                        // Labels and the parts matter to watchers only.
                        if watched {
                            ops.extend(bufs.labels[w.labels.clone()].iter().map(|&label| {
                                Op::Label {
                                    key: key.into(),
                                    label: Some(label),
                                }
                            }));
                            parts.push(ops.len());
                        }
                    }
                    let parts = watched.then_some(parts.as_slice());
                    if let Some(wrote) =
                        self.commit_parts(engine, bucket, version, &ops, watched, parts)?
                    {
                        return Ok((out, wrote));
                    }
                }
                Err(conflict(bucket))
            })
        })
    }

    /// Writes `ops` to libstate's own internal buckets (no user bucket: nothing to
    /// derive, no event), the way every write goes: under the lock, through a
    /// running backup's tap, with the durability mode.
    pub(crate) fn internal(&self, engine: &dyn StorageEngine, ops: &[WriteOp<'_>]) -> Result<()> {
        self.durably(engine, || {
            self.tap.run(engine, |engine| engine.write(ops))?;
            Ok(((), true))
        })
    }

    /// Removes `bucket` and its expiry index. Its watchers learn of each record it
    /// held (a delete, or an expiry for one already expired). Returns whether it
    /// held any record.
    pub(crate) fn remove_bucket(&self, engine: &dyn StorageEngine, bucket: &str) -> Result<bool> {
        self.durably(engine, || {
            let mut gone: Vec<Op<'static>> = Vec::new();
            if self.hub.watches_bucket(bucket) {
                let now = self.clock.now_ms();
                engine.scan(
                    bucket,
                    Bound::Unbounded,
                    Bound::Unbounded,
                    false,
                    &mut |k, raw| {
                        let prior = match Stored::of(raw, Path::new(""), || now) {
                            Ok(s) => Prior::of(&s),
                            Err(_) => Prior::Live { deadline: None },
                        };
                        gone.push(Op::Delete {
                            key: Cow::Owned(k.to_vec()),
                            prior,
                        });
                        Visit::Continue
                    },
                )?;
            }
            let removed = self
                .tap
                .run(engine, |engine| {
                    let removed = engine.remove_bucket(bucket)?;
                    // Its expiry index goes with it (after the records: a crash between
                    // the two leaves index entries the sweeper drops as stale).
                    engine.remove_bucket(&expiry::index_bucket(bucket))?;
                    Ok(removed)
                })
                .inspect_err(|_| {
                    // An engine may have removed part of the bucket: count again.
                    self.counts.stop();
                })?;
            self.counts.removed(bucket);
            let changes: Vec<Change<'_>> = gone.iter().filter_map(change_of).collect();
            self.hub.publish(bucket, &changes);
            Ok((removed, removed))
        })
    }

    /// Runs `f` under the write lock; if it wrote, applies the durability mode.
    fn durably<T>(
        &self,
        engine: &dyn StorageEngine,
        f: impl FnOnce() -> Result<(T, bool)>,
    ) -> Result<T> {
        let _durable = self.durable.then(|| self.sync.begin());
        let (out, wrote) = {
            let _w = self.lock.lock();
            f()?
        };
        if wrote {
            if self.durable {
                let seq = self.sync.note_durable_write();
                self.sync.sync_through(seq, || engine.sync())?;
            } else {
                self.sync.note_write();
            }
        }
        Ok(out)
    }

    /// The version loop of a read-modify-write (see [`Committer::rmw`]); the caller
    /// holds the write lock. Returns `f`'s result and whether anything was written.
    fn retry<'o, T>(
        &self,
        engine: &dyn StorageEngine,
        bucket: &str,
        watched: bool,
        mut f: impl FnMut(Reader<'_>) -> Result<(T, Vec<Op<'o>>)>,
    ) -> Result<(T, bool)> {
        for _ in 0..MAX_RMW_ATTEMPTS {
            let version = engine.version(bucket)?;
            let (out, ops) = f(Reader::new(engine))?;
            if ops.is_empty() {
                return Ok((out, false));
            }
            if let Some(wrote) = self.commit_ops(engine, bucket, version, &ops, watched)? {
                return Ok((out, wrote));
            }
        }
        Err(conflict(bucket))
    }

    /// Derives and writes one batch, conditionally on `version` if given, then
    /// publishes its changes. Returns whether it wrote anything, or `None` if the
    /// version had changed (nothing written, nothing published).
    fn commit_ops(
        &self,
        engine: &dyn StorageEngine,
        bucket: &str,
        version: Option<u64>,
        ops: &[Op<'_>],
        watched: bool,
    ) -> Result<Option<bool>> {
        self.commit_parts(engine, bucket, version, ops, watched, None)
    }

    /// [`Committer::commit_ops`] of a batch whose `parts` watchers hear of as
    /// separate writes (see [`derive`]).
    fn commit_parts(
        &self,
        engine: &dyn StorageEngine,
        bucket: &str,
        version: Option<u64>,
        ops: &[Op<'_>],
        watched: bool,
        parts: Option<&[usize]>,
    ) -> Result<Option<bool>> {
        with_scratch(|s| {
            let changes = derive(ops, s, watched, parts);
            if s.writes.is_empty() {
                return Ok(Some(false));
            }
            let index_bucket = if s.indexed {
                expiry::index_bucket(bucket)
            } else {
                String::new()
            };
            let committed = with_write_ops(bucket, &index_bucket, ops, s, |w| {
                self.tap.run(engine, |engine| match version {
                    Some(v) => engine.write_if_unchanged(bucket, v, w),
                    None => engine.write(w).map(|()| true),
                })
            })?;
            if !committed {
                return Ok(None);
            }
            let expired = ops
                .iter()
                .filter(|op| {
                    matches!(
                        op,
                        Op::Delete {
                            prior: Prior::Expired { .. },
                            ..
                        }
                    )
                })
                .count();
            if expired > 0 {
                self.expired.fetch_add(expired as u64, Ordering::Relaxed);
            }
            self.counts.committed(bucket, ops);
            if watched {
                self.hub.publish(bucket, &changes);
            }
            Ok(Some(true))
        })
    }

    /// Commits `ops` if they are a single put that touches no expiry-index entry
    /// (its deadline is the one the key had, typically none and none) into an
    /// unwatched bucket: the record is encoded into this thread's buffer and written
    /// as the one engine op, without [`derive`]'s batch. With the record counts on,
    /// a put whose prior is unknown takes its prior from the write itself
    /// ([`StorageEngine::write_one`]) where the engine reports it, and otherwise
    /// is left to the general path, which reads it first. `None`: nothing written,
    /// take the general path.
    fn put_alone(
        &self,
        engine: &dyn StorageEngine,
        bucket: &str,
        ops: &[Op<'_>],
    ) -> Result<Option<bool>> {
        let [op @ Op::Put {
            key,
            value,
            deadline,
            prior,
            ..
        }] = ops
        else {
            return Ok(None);
        };
        if prior.deadline() != *deadline {
            return Ok(None);
        }
        let report = *prior == Prior::Unknown && self.counts.on();
        if report && !engine.reports_prior() {
            return Ok(None);
        }
        let replaced = with_update_bufs(|bufs| {
            let record = &mut bufs.value;
            record.clear();
            record::encode_into(record, value, *deadline);
            let w = WriteOp::Put {
                bucket,
                key,
                value: record,
            };
            self.tap.run(engine, |engine| {
                if report {
                    engine.write_one(&w)
                } else {
                    engine.write(std::slice::from_ref(&w)).map(|()| None)
                }
            })
        })?;
        if !report {
            self.counts.committed(bucket, ops);
            return Ok(Some(true));
        }
        let prior = match replaced {
            Some(true) => Prior::Live { deadline: None },
            Some(false) => Prior::Missing,
            // Written, but what it replaced is unknown: the counts stop.
            None => Prior::Unknown,
        };
        let mut resolved = op.clone();
        if let Op::Put { prior: p, .. } = &mut resolved {
            *p = prior;
        }
        self.counts
            .committed(bucket, std::slice::from_ref(&resolved));
        Ok(Some(true))
    }

    /// `ops` with every unknown prior read from the engine (a later op on a key
    /// sees what the earlier ones left).
    ///
    /// This runs for every blind put while the store is watched or counted (as
    /// under `state serve`), so it stays cheap: an earlier op on the same key is
    /// found by a look back through the ops already resolved (a short batch, the
    /// common case, needs no map and copies no key), and the clock is read once,
    /// only if a record read has a deadline.
    fn resolve<'o>(&self, reader: Reader<'_>, bucket: &str, ops: &[Op<'o>]) -> Result<Vec<Op<'o>>> {
        /// Past this many ops, earlier keys are found through a map instead.
        const LOOK_BACK: usize = 16;
        let mut now = None;
        let mut known: HashMap<&[u8], Prior> = HashMap::new();
        let mut out: Vec<Op<'o>> = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let mut op = op.clone();
            if op.prior() == Some(Prior::Unknown) {
                let key = op.key();
                let earlier = if ops.len() <= LOOK_BACK {
                    ops[..i]
                        .iter()
                        .rev()
                        .find(|o| o.key() == key && o.after().is_some())
                        .and_then(Op::after)
                } else {
                    known.get(key).copied()
                };
                let prior = match earlier {
                    Some(p) => p,
                    None => {
                        let mut prior = Prior::Missing;
                        let clock = &self.clock;
                        reader.get(bucket, key, &mut |raw| {
                            let now = || *now.get_or_insert_with(|| clock.now_ms());
                            prior = match Stored::of(raw, Path::new(""), now) {
                                Ok(s) => Prior::of(&s),
                                Err(_) => Prior::Live { deadline: None },
                            };
                        })?;
                        prior
                    }
                };
                match &mut op {
                    Op::Put { prior: p, .. } | Op::Delete { prior: p, .. } => *p = prior,
                    Op::DropIndex { .. } | Op::Label { .. } => {}
                }
            }
            if ops.len() > LOOK_BACK {
                if let Some(after) = op.after() {
                    known.insert(ops[i].key(), after);
                }
            }
            out.push(op);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(ops: &[Op<'_>]) -> (Vec<String>, Vec<(EventKind, bool)>) {
        with_scratch(|s| {
            let changes = derive(ops, s, true, None);
            let writes = with_write_ops("b", "i", ops, s, |w| {
                w.iter()
                    .map(|op| match op {
                        WriteOp::Put { bucket, key, .. } => format!("put {bucket} {key:?}"),
                        WriteOp::Delete { bucket, key } => format!("del {bucket} {key:?}"),
                    })
                    .collect()
            });
            (writes, changes.iter().map(|c| (c.kind, c.new)).collect())
        })
    }

    fn ik(d: u64, k: &[u8]) -> String {
        let mut v = Vec::new();
        expiry::index_key_into(&mut v, d, k);
        format!("{v:?}")
    }

    #[test]
    fn a_put_replacing_a_deadline_moves_its_index_entry_and_says_whether_it_is_new() {
        let ops = [
            Op::put(
                &b"a"[..],
                &b"1"[..],
                Some(9),
                Prior::Live { deadline: Some(5) },
            ),
            Op::put(&b"b"[..], &b"2"[..], None, Prior::Expired { deadline: 3 }),
            Op::put(
                &b"c"[..],
                &b"3"[..],
                Some(7),
                Prior::Live { deadline: Some(7) },
            ),
        ];
        let (writes, changes) = planned(&ops);
        assert_eq!(
            writes,
            vec![
                format!("put b {:?}", b"a"),
                format!("del i {}", ik(5, b"a")),
                format!("put i {}", ik(9, b"a")),
                format!("put b {:?}", b"b"),
                format!("del i {}", ik(3, b"b")),
                format!("put b {:?}", b"c"),
            ]
        );
        assert_eq!(
            changes,
            vec![
                (EventKind::Set, false),
                (EventKind::Set, true),
                (EventKind::Set, false)
            ]
        );
    }

    #[test]
    fn deletes_name_what_they_removed_and_a_missing_key_is_no_write() {
        let ops = [
            Op::Delete {
                key: Cow::Borrowed(b"live"),
                prior: Prior::Live { deadline: None },
            },
            Op::Delete {
                key: Cow::Borrowed(b"old"),
                prior: Prior::Expired { deadline: 4 },
            },
            Op::Delete {
                key: Cow::Borrowed(b"none"),
                prior: Prior::Missing,
            },
            Op::DropIndex {
                key: Cow::Borrowed(b"stale"),
                deadline: 2,
            },
            Op::Put {
                key: Cow::Borrowed(b"t"),
                value: Cow::Borrowed(b"v"),
                deadline: None,
                prior: Prior::Live { deadline: Some(8) },
                kind: PutKind::Deadline,
            },
        ];
        let (writes, changes) = planned(&ops);
        assert_eq!(
            writes,
            vec![
                format!("del b {:?}", b"live"),
                format!("del b {:?}", b"old"),
                format!("del i {}", ik(4, b"old")),
                format!("del i {}", ik(2, b"stale")),
                format!("put b {:?}", b"t"),
                format!("del i {}", ik(8, b"t")),
            ]
        );
        assert_eq!(
            changes,
            vec![
                (EventKind::Delete, false),
                (EventKind::Expired, false),
                (EventKind::Persist, false)
            ]
        );
    }

    /// An engine whose writes fail, or (with `version`) always lose the race.
    struct Refusing {
        version: Option<u64>,
    }

    impl StorageEngine for Refusing {
        fn get(&self, _: &str, _: &[u8], _: &mut dyn FnMut(&[u8])) -> Result<bool> {
            Ok(false)
        }
        fn write(&self, _: &[WriteOp<'_>]) -> Result<()> {
            Err(Error::io(
                Path::new("/refusing"),
                std::io::Error::from_raw_os_error(28),
            ))
        }
        fn scan(
            &self,
            _: &str,
            _: Bound<&[u8]>,
            _: Bound<&[u8]>,
            _: bool,
            _: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
        ) -> Result<()> {
            Ok(())
        }
        fn count(&self, _: &str) -> Result<u64> {
            Ok(0)
        }
        fn bucket_names(&self) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn remove_bucket(&self, _: &str) -> Result<bool> {
            self.write(&[]).map(|()| true)
        }
        fn sync(&self) -> Result<()> {
            Ok(())
        }
        fn disk_size(&self) -> Result<u64> {
            Ok(0)
        }
        fn version(&self, _: &str) -> Result<Option<u64>> {
            Ok(self.version)
        }
        fn write_if_unchanged(&self, _: &str, _: u64, _: &[WriteOp<'_>]) -> Result<bool> {
            Ok(false)
        }
    }

    fn watched() -> (Committer, crate::watch::Watcher) {
        let c = Committer::new(false, Arc::new(crate::clock::ManualClock::new(1_000)));
        let w = c
            .hub()
            .register("b", "", 1, crate::watch::WatchOptions::default());
        (c, w)
    }

    #[test]
    fn a_failed_engine_write_publishes_nothing() {
        let (c, w) = watched();
        let engine = Refusing { version: None };
        let ops = [Op::put(&b"k"[..], &b"v"[..], None, Prior::Missing)];
        let e = c.apply(&engine, "b", &ops).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Io);
        let e = c.rmw(&engine, "b", |_| Ok(((), ops.to_vec()))).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Io);
        assert_eq!(w.try_recv(), Err(crate::RecvError::Empty));
        assert_eq!(c.sync().written(), 0, "no write was noted");
    }

    #[test]
    fn a_race_lost_every_time_is_a_conflict_and_publishes_nothing() {
        let (c, w) = watched();
        let engine = Refusing { version: Some(7) };
        let mut tries = 0;
        let e = c
            .rmw(&engine, "b", |_| {
                tries += 1;
                Ok((
                    (),
                    vec![Op::put(&b"k"[..], &b"v"[..], None, Prior::Missing)],
                ))
            })
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert!(e.kind().is_retryable());
        assert_eq!(tries, MAX_RMW_ATTEMPTS);
        assert_eq!(w.try_recv(), Err(crate::RecvError::Empty));
    }
}
