//! Change notifications: [`Bucket::watch`](crate::Bucket::watch) hands out a [`Watcher`] that receives an
//! [`Event`] for every committed change to the keys of one bucket under a prefix.
//!
//! A leaf of the write path: the commit point (`crate::commit`) derives a batch's
//! changes and publishes them here, under the store's write lock, once the engine
//! has applied the write (never for a write the engine refused): so every watcher
//! sees the changes of a bucket in commit order, a batch as its events in batch
//! order, and none before the write is visible to reads. Publishing only copies the event into each matching watcher's
//! bounded queue (one allocation shared by all of them); it never waits for a
//! watcher. A watcher whose queue is full misses events, and learns how many from a
//! [`Notice::Lagged`] in the place where they would have been.
//!
//! A store without watchers pays one relaxed atomic load per write. Watchers are
//! registered under the write lock, so a watcher sees every write that commits
//! after [`Bucket::watch`](crate::Bucket::watch) returns, and none that committed before.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Default number of notices a watcher's queue holds before it starts missing events.
pub const DEFAULT_WATCH_CAPACITY: usize = 1024;

/// What happened to a key. The names are those of Redis's keyspace events where
/// Redis has one (`set`, `del` is `delete` here, `expire`, `persist`, `expired`), so
/// a front end can name its notifications after them; whether a `Set` created the
/// key is [`Event::is_new`] (Redis's `new` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The key's value was set (created or overwritten, by `set`, a batch, a
    /// transaction or an import); the event carries the new value, and
    /// [`Event::is_new`] says whether the key was absent (or expired) before.
    Set,
    /// The key was deleted (by `delete`, a transaction, or removing its bucket).
    Delete,
    /// The key's deadline was set or changed without changing its value
    /// ([`crate::Bucket::expire`], a transaction's `set_expiry` with a deadline).
    Expire,
    /// The key's deadline was removed without changing its value
    /// ([`crate::Bucket::persist`], a transaction's `set_expiry(None)`).
    Persist,
    /// The key's deadline had passed and its record was removed: by the sweeper, up
    /// to one sweep interval after the deadline, or by a write that found it expired
    /// (a `delete` of it, a transaction deleting it, removing its bucket).
    Expired,
}

impl EventKind {
    /// Every kind, in the order of their C constants (`STATE_EVENT_*`), for bindings
    /// and their tests.
    pub const ALL: &'static [EventKind] = &[
        EventKind::Set,
        EventKind::Delete,
        EventKind::Expired,
        EventKind::Expire,
        EventKind::Persist,
    ];

    /// The kind's name: `"set"`, `"delete"`, `"expire"`, `"persist"` or `"expired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Set => "set",
            EventKind::Delete => "delete",
            EventKind::Expire => "expire",
            EventKind::Persist => "persist",
            EventKind::Expired => "expired",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct EventInner {
    key: Box<str>,
    kind: EventKind,
    new: bool,
    value: Option<Box<[u8]>>,
    label: Option<&'static str>,
}

/// One committed change to a key. Cheap to clone: every watcher that receives the
/// same change shares one copy.
#[derive(Clone)]
pub struct Event {
    inner: Arc<EventInner>,
}

impl Event {
    fn new(
        key: &str,
        kind: EventKind,
        new: bool,
        value: Option<&[u8]>,
        label: Option<&'static str>,
    ) -> Event {
        Event {
            inner: Arc::new(EventInner {
                key: key.into(),
                kind,
                new,
                value: value.map(Box::from),
                label,
            }),
        }
    }

    /// The key that changed.
    pub fn key(&self) -> &str {
        &self.inner.key
    }

    /// What happened to it.
    pub fn kind(&self) -> EventKind {
        self.inner.kind
    }

    /// For [`EventKind::Set`]: whether the key was created (it had no live record
    /// before); `false` for an overwrite and for the other kinds.
    pub fn is_new(&self) -> bool {
        self.inner.new
    }

    /// The new value for [`EventKind::Set`]; `None` for the other kinds.
    pub fn value(&self) -> Option<&[u8]> {
        self.inner.value.as_deref()
    }

    /// For a watcher that takes labels ([`WatchOptions::labels`]): the label the
    /// writer gave this step of the change ([`crate::Txn::label`]), e.g. the name a
    /// front end gives its notification (`"incrby"`, `"rename_from"`). `None` for
    /// an unlabelled change and for every event of a watcher without labels.
    pub fn label(&self) -> Option<&'static str> {
        self.inner.label
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("key", &self.key())
            .field("kind", &self.kind())
            .field("new", &self.is_new())
            .field("value", &self.value().map(String::from_utf8_lossy))
            .field("label", &self.label())
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.key() == other.key()
            && self.kind() == other.kind()
            && self.is_new() == other.is_new()
            && self.value() == other.value()
            && self.label() == other.label()
    }
}

impl Eq for Event {}

/// What a [`Watcher`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A committed change.
    Change(Event),
    /// The watcher's queue was full and this many events were dropped for it, here:
    /// the changes before this notice and after it were delivered, the ones in
    /// between were not. Read the keys again to resynchronize.
    Lagged(u64),
}

/// Why [`Watcher::try_recv`] or [`Watcher::recv_timeout`] returned no notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing is queued (within the timeout); the watcher is still live.
    Empty,
    /// The watcher has ended (the store closed, or [`Watcher::end`] was called) and
    /// every notice queued before that has been received.
    Ended,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecvError::Empty => "no event queued",
            RecvError::Ended => "the watcher has ended",
        })
    }
}

impl std::error::Error for RecvError {}

/// A callback a watcher calls whenever a notice becomes available or it ends.
type Waker = Arc<dyn Fn() + Send + Sync>;

struct QueueState {
    items: VecDeque<Notice>,
    /// Events dropped since the last notice queued (reported as `Lagged`).
    missed: u64,
    ended: bool,
    waker: Option<Waker>,
    /// Bytes of keys and values queued (see [`notice_bytes`]).
    bytes: usize,
    /// Threads waiting on `ready` (in `recv` or `recv_timeout`).
    sleepers: usize,
    /// Whether a wake-up of those threads is on its way since the last of them
    /// went to sleep (so a stream of writes asks for one, not one each).
    woken: bool,
}

/// One watcher's side of the hub: its filter and its bounded queue.
struct Queue {
    bucket: Box<str>,
    prefix: Box<str>,
    /// The store handle it was made through (closing that handle ends it).
    handle: usize,
    capacity: usize,
    /// Most bytes of queued keys and values (one notice is always let in).
    max_bytes: usize,
    /// Whether set events carry the value.
    values: bool,
    /// Whether it takes labelled events (see [`WatchOptions::labels`]).
    labels: bool,
    state: Mutex<QueueState>,
    ready: Condvar,
}

impl Queue {
    /// Waits on `ready` (the caller holds `s`, the lock of `state`) until woken or
    /// `deadline`; returns whether it timed out. Writers learn from `sleepers` that
    /// a wake-up is needed.
    fn sleep(
        &self,
        s: &mut parking_lot::MutexGuard<'_, QueueState>,
        deadline: Option<Instant>,
    ) -> bool {
        s.sleepers += 1;
        s.woken = false;
        let timed_out = match deadline {
            Some(d) => self.ready.wait_until(s, d).timed_out(),
            None => {
                self.ready.wait(s);
                false
            }
        };
        s.sleepers -= 1;
        timed_out
    }

    fn matches(&self, c: &Change<'_>) -> bool {
        c.key.starts_with(self.prefix.as_bytes())
    }

    /// Marks the queue ended and wakes whoever waits on it.
    fn end(&self) {
        let waker = {
            let mut s = self.state.lock();
            if s.ended {
                return;
            }
            s.ended = true;
            s.waker.take()
        };
        self.ready.notify_all();
        if let Some(w) = waker {
            w();
        }
    }
}

/// One change as the commit point derives it (`crate::commit`), before it becomes
/// an [`Event`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    pub key: &'a [u8],
    pub kind: EventKind,
    /// A `Set` that created the key.
    pub new: bool,
    /// The new value (user bytes, not the stored encoding) of a `Set`.
    pub value: Option<&'a [u8]>,
    /// Whether this is a change itself or one label of it.
    pub role: Role,
}

/// What a [`Change`] is to the watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The change a write made to a key (what every watcher without labels gets).
    /// `labelled`: its writer labelled it in the same batch, so watchers that take
    /// labels get its [`Role::Label`] entries instead.
    Change { labelled: bool },
    /// One label of the key's change in the same batch, in the order the writer
    /// gave them (`None`: labelled with nothing, which watchers that take labels
    /// are not told). Only watchers that take labels get these.
    Label(Option<&'static str>),
}

/// The watchers of one store. Lives in the store's shared state.
#[derive(Default)]
pub(crate) struct Hub {
    /// Number of registered watchers and key watches: the writers' fast check.
    count: AtomicUsize,
    watchers: Mutex<Vec<Arc<Queue>>>,
    /// Registered key watches ([`KeyWatch`]).
    key_watches: Mutex<Vec<Arc<KeyWatchInner>>>,
    /// Wakes watcher threads for writers that have several to wake.
    notifier: Arc<Notifier>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.notifier.stop();
    }
}

/// The store's one notifier: a thread that wakes the watcher threads a write left
/// something for (those asleep in [`Watcher::recv`] or [`Watcher::recv_timeout`]),
/// so that a writer never wakes them one by one. A writer with one such thread to
/// wake wakes it itself (one futex call either way, and one hop less); with more, it
/// hands them all to the notifier and wakes it once, or not at all while the
/// notifier is still awake working through earlier ones. Started on first use; ends
/// with the store's hub.
#[derive(Default)]
struct Notifier {
    state: Mutex<NotifierState>,
    ready: Condvar,
}

#[derive(Default)]
struct NotifierState {
    /// Queues whose sleeping threads are to be woken.
    pending: Vec<Arc<Queue>>,
    /// Whether the thread runs.
    started: bool,
    /// Whether the thread is awake (or about to be): no need to wake it.
    awake: bool,
    stop: bool,
}

impl Notifier {
    /// Has the threads waiting on `queues` woken.
    fn wake(self: &Arc<Notifier>, queues: &mut Vec<Arc<Queue>>) {
        let mut s = self.state.lock();
        if s.stop {
            drop(s);
            queues.drain(..).for_each(|q| {
                q.ready.notify_all();
            });
            return;
        }
        s.pending.append(queues);
        if !s.started {
            let me = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("libstate-watch".into())
                .spawn(move || me.run());
            if spawned.is_err() {
                // No thread to be had: wake them here.
                let pending = std::mem::take(&mut s.pending);
                drop(s);
                pending.iter().for_each(|q| {
                    q.ready.notify_all();
                });
                return;
            }
            s.started = true;
            s.awake = true;
        } else if !s.awake {
            s.awake = true;
            self.ready.notify_one();
        }
    }

    fn run(&self) {
        let mut batch: Vec<Arc<Queue>> = Vec::new();
        let mut s = self.state.lock();
        loop {
            if s.pending.is_empty() {
                if s.stop {
                    return;
                }
                s.awake = false;
                self.ready.wait(&mut s);
                continue;
            }
            std::mem::swap(&mut batch, &mut s.pending);
            parking_lot::MutexGuard::unlocked(&mut s, || {
                for q in batch.drain(..) {
                    q.ready.notify_all();
                }
            });
        }
    }

    /// Ends the thread once it has woken what is pending.
    fn stop(&self) {
        let mut s = self.state.lock();
        s.stop = true;
        self.ready.notify_one();
    }
}

impl Hub {
    /// Whether any watcher is registered. Writers call it under the store's write
    /// lock, which registration also takes, so a relaxed load is exact.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// Whether some watcher or key watch watches bucket `name`.
    pub(crate) fn watches_bucket(&self, name: &str) -> bool {
        self.active()
            && (self.watchers.lock().iter().any(|q| &*q.bucket == name)
                || self.key_watches.lock().iter().any(|w| &*w.bucket == name))
    }

    /// Number of registered watchers (key watches not counted).
    pub(crate) fn count(&self) -> usize {
        self.watchers.lock().len()
    }

    /// Recounts watchers and key watches for [`Hub::active`].
    fn recount(&self, watchers: usize) {
        let keys = self.key_watches.lock().len();
        self.count.store(watchers + keys, Ordering::Relaxed);
    }

    /// Registers a key watch. The caller holds the store's write lock.
    pub(crate) fn register_keys(
        self: &Arc<Hub>,
        bucket: &str,
        hasher: DigestHasher,
        digests: bool,
        keys: HashMap<Box<[u8]>, Seen>,
    ) -> KeyWatch {
        let inner = Arc::new(KeyWatchInner {
            bucket: bucket.into(),
            keys,
            hasher,
            digests,
            touched: AtomicBool::new(false),
        });
        let watchers = self.watchers.lock();
        self.key_watches.lock().push(Arc::clone(&inner));
        self.recount(watchers.len());
        KeyWatch {
            inner,
            hub: Arc::clone(self),
        }
    }

    fn unregister_keys(&self, inner: &Arc<KeyWatchInner>) {
        let watchers = self.watchers.lock();
        self.key_watches.lock().retain(|w| !Arc::ptr_eq(w, inner));
        self.recount(watchers.len());
    }

    /// Marks the key watches of `bucket` whose keys `changes` wrote.
    fn touch_keys(&self, bucket: &str, changes: &[Change<'_>]) {
        let list = self.key_watches.lock();
        for w in list.iter().filter(|w| &*w.bucket == bucket) {
            if w.touched.load(Ordering::Relaxed) {
                continue;
            }
            let hit = changes.iter().any(|c| {
                if !matches!(c.role, Role::Change { .. }) {
                    return false;
                }
                match w.keys.get(c.key) {
                    // Removing a record that had already expired when the key was
                    // watched changes nothing the watcher saw (as in Redis).
                    Some(Seen::Gone) => c.kind != EventKind::Expired,
                    Some(Seen::Live { .. }) => true,
                    None => false,
                }
            });
            if hit {
                w.touched.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Registers a watcher. The caller holds the store's write lock.
    pub(crate) fn register(
        self: &Arc<Hub>,
        bucket: &str,
        prefix: &str,
        handle: usize,
        opts: WatchOptions,
    ) -> Watcher {
        let queue = Arc::new(Queue {
            bucket: bucket.into(),
            prefix: prefix.into(),
            handle,
            capacity: opts.capacity,
            max_bytes: opts.max_bytes,
            values: opts.values,
            labels: opts.labels,
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                missed: 0,
                ended: false,
                waker: None,
                bytes: 0,
                sleepers: 0,
                woken: false,
            }),
            ready: Condvar::new(),
        });
        let mut list = self.watchers.lock();
        list.push(Arc::clone(&queue));
        self.recount(list.len());
        Watcher {
            queue,
            hub: Arc::clone(self),
        }
    }

    fn unregister(&self, queue: &Arc<Queue>) {
        let mut list = self.watchers.lock();
        list.retain(|q| !Arc::ptr_eq(q, queue));
        self.recount(list.len());
    }

    /// Ends the watchers made through store handle `handle` (that handle closed).
    pub(crate) fn end_handle(&self, handle: usize) {
        let ended: Vec<Arc<Queue>> = {
            let mut list = self.watchers.lock();
            let (ended, kept) = list.drain(..).partition(|q| q.handle == handle);
            *list = kept;
            self.recount(list.len());
            ended
        };
        ended.iter().for_each(|q| q.end());
    }

    /// Ends every watcher (the store closed).
    pub(crate) fn end_all(&self) {
        let ended: Vec<Arc<Queue>> = {
            let mut list = self.watchers.lock();
            let ended = std::mem::take(&mut *list);
            self.recount(0);
            ended
        };
        ended.iter().for_each(|q| q.end());
    }

    /// Publishes the changes one committed write made to `bucket`, in order. The
    /// commit point calls it under the store's write lock (that is what makes the
    /// order the commit order) once the engine has applied the write.
    pub(crate) fn publish(&self, bucket: &str, changes: &[Change<'_>]) {
        if changes.is_empty() {
            return;
        }
        self.touch_keys(bucket, changes);
        let mut wakers: Vec<Waker> = Vec::new();
        let mut sleeping: Vec<Arc<Queue>> = Vec::new();
        {
            let list = self.watchers.lock();
            // One shared copy of each event with its value, and one without (for
            // watchers that take keys only); on the stack for a single change.
            let mut one: [[Option<Event>; 2]; 1] = [[None, None]];
            let mut many: Vec<[Option<Event>; 2]>;
            let events: &mut [[Option<Event>; 2]] = if changes.len() == 1 {
                &mut one
            } else {
                many = vec![[None, None]; changes.len()];
                &mut many
            };
            for q in list.iter() {
                if &*q.bucket != bucket {
                    continue;
                }
                let mut queued = false;
                let mut s = q.state.lock();
                if s.ended {
                    continue;
                }
                for (c, slots) in changes.iter().zip(events.iter_mut()) {
                    let label = match c.role {
                        Role::Change { labelled } if !(labelled && q.labels) => None,
                        Role::Label(Some(l)) if q.labels => Some(l),
                        _ => continue,
                    };
                    if !q.matches(c) {
                        continue;
                    }
                    let Ok(key) = std::str::from_utf8(c.key) else {
                        continue;
                    };
                    let value = if q.values { c.value } else { None };
                    let size = notice_bytes(key, value);
                    let full = s.items.len() >= q.capacity
                        || (!s.items.is_empty() && s.bytes.saturating_add(size) > q.max_bytes);
                    if full {
                        s.missed += 1;
                        continue;
                    }
                    if s.missed > 0 {
                        let missed = std::mem::take(&mut s.missed);
                        s.items.push_back(Notice::Lagged(missed));
                    }
                    let slot = &mut slots[usize::from(q.values)];
                    let ev =
                        slot.get_or_insert_with(|| Event::new(key, c.kind, c.new, value, label));
                    s.items.push_back(Notice::Change(ev.clone()));
                    s.bytes += size;
                    queued = true;
                }
                if queued {
                    if let Some(w) = &s.waker {
                        wakers.push(Arc::clone(w));
                    }
                    if s.sleepers > 0 && !s.woken {
                        s.woken = true;
                        sleeping.push(Arc::clone(q));
                    }
                }
            }
        }
        match sleeping.len() {
            0 => {}
            1 => {
                sleeping[0].ready.notify_all();
            }
            _ => self.notifier.wake(&mut sleeping),
        }
        for w in wakers {
            w();
        }
    }
}

/// What a key held when a [`KeyWatch`] was registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// No live record (none, or one whose deadline had passed).
    Gone,
    /// A live record with this deadline; `digest` is a hash of its stored bytes,
    /// kept only for an engine other processes share (their writes do not pass
    /// through this process's hub).
    Live {
        deadline: Option<u64>,
        digest: Option<u64>,
    },
}

/// The hash of a [`KeyWatch`]'s record digests: seeded at random per watch.
pub(crate) type DigestHasher = foldhash::quality::RandomState;

/// A fresh [`DigestHasher`].
pub(crate) fn digest_hasher() -> DigestHasher {
    DigestHasher::default()
}

pub(crate) struct KeyWatchInner {
    bucket: Box<str>,
    keys: HashMap<Box<[u8]>, Seen>,
    hasher: DigestHasher,
    /// Whether live records were digested (an engine other processes share).
    digests: bool,
    /// Set (under the store's write lock) by the first write to a watched key.
    touched: AtomicBool,
}

/// Optimistic locking on keys of one bucket, as Redis's WATCH: made by
/// [`Bucket::watch_keys`](crate::Bucket::watch_keys), it notes every write that
/// commits to one of its keys after it was made, by anyone (another thread, a
/// transaction, the expiry sweeper, removing the bucket), even a write that leaves
/// the value and deadline exactly as they were; and a key that was live then and
/// whose deadline has passed since counts as changed even before its record is
/// removed. Removing a record that had already expired when the key was watched
/// is no change. [`Txn::watched_changed`](crate::Txn::watched_changed) checks it
/// inside the transaction that is to depend on it, so the check and that
/// transaction's writes are one atomic step.
///
/// On an engine other processes share (Redis), their writes are seen by comparing
/// each watched live record with what was stored then (a 64-bit hash): a change of
/// value, deadline or existence is seen, a write of the very same record by
/// another process is not.
///
/// Dropping it unregisters it; while any is registered, blind writes of the store
/// read each key's prior record first (as they do while a [`Watcher`] exists).
pub struct KeyWatch {
    inner: Arc<KeyWatchInner>,
    hub: Arc<Hub>,
}

impl fmt::Debug for KeyWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyWatch")
            .field("bucket", &&*self.inner.bucket)
            .field("keys", &self.inner.keys.len())
            .field("touched", &self.inner.touched.load(Ordering::Relaxed))
            .finish()
    }
}

impl KeyWatch {
    /// The watched bucket's name.
    pub fn bucket_name(&self) -> &str {
        &self.inner.bucket
    }

    /// Whether a write of this process to a watched key has committed since the
    /// watch was made (the check that needs no read; see
    /// [`Txn::watched_changed`](crate::Txn::watched_changed) for the whole one).
    pub fn touched(&self) -> bool {
        self.inner.touched.load(Ordering::Relaxed)
    }

    /// The watched keys and what each held when watched.
    pub(crate) fn seen(&self) -> impl Iterator<Item = (&[u8], Seen)> {
        self.inner.keys.iter().map(|(k, s)| (&**k, *s))
    }

    /// Whether other processes' writes must be looked for by reading the records
    /// again (an engine they share), and the digest of a stored record.
    pub(crate) fn digests(&self) -> bool {
        self.inner.digests
    }

    /// The digest of stored record `raw`, comparable with [`Seen::Live`]'s.
    pub(crate) fn digest(&self, raw: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.inner.hasher.hash_one(raw)
    }
}

impl Drop for KeyWatch {
    fn drop(&mut self) {
        self.hub.unregister_keys(&self.inner);
    }
}

/// Receives the changes under a key prefix of one bucket; made by [`Bucket::watch`](crate::Bucket::watch).
///
/// How a [`Watcher`] queues the notices it has not received yet
/// ([`Bucket::watch_with`](crate::Bucket::watch_with)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// Most notices queued ([`DEFAULT_WATCH_CAPACITY`] by default; at least 1).
    pub capacity: usize,
    /// Most bytes queued, counting each event's key and value plus 64 bytes
    /// ([`DEFAULT_WATCH_MAX_BYTES`] by default). One event is always queued into an
    /// empty queue, however large.
    pub max_bytes: usize,
    /// Whether [`EventKind::Set`] events carry the new value (`true` by default);
    /// without, [`Event::value`] is `None` and a watcher that needs only keys pins
    /// no values.
    pub values: bool,
    /// Whether the watcher takes labelled events (`false` by default): for a
    /// change its writer labelled ([`crate::Txn::label`]), one event per label, in
    /// the order the writer gave them across the batch, each with its
    /// [`Event::label`] (and the kind, value and newness of the key's change), and
    /// none for a change labelled with nothing ([`crate::Txn::label_none`]);
    /// unlabelled changes as usual. A front end that names its notifications per
    /// command (the Redis server's keyspace events) uses this.
    pub labels: bool,
}

/// Default [`WatchOptions::max_bytes`]: 64 MiB.
pub const DEFAULT_WATCH_MAX_BYTES: usize = 64 << 20;

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            capacity: DEFAULT_WATCH_CAPACITY,
            max_bytes: DEFAULT_WATCH_MAX_BYTES,
            values: true,
            labels: false,
        }
    }
}

impl WatchOptions {
    /// Options with `capacity` notices, `max_bytes` bytes, and values or not.
    pub fn new(capacity: usize, max_bytes: usize, values: bool) -> WatchOptions {
        WatchOptions {
            capacity,
            max_bytes,
            values,
            labels: false,
        }
    }

    /// These options with labelled events or not (see [`WatchOptions::labels`]).
    pub fn with_labels(self, labels: bool) -> WatchOptions {
        WatchOptions { labels, ..self }
    }
}

/// A watcher queues up to its capacity of notices (and of bytes, see
/// [`WatchOptions`]); when the queue is full, further
/// events are dropped for this watcher only and a [`Notice::Lagged`] with their
/// number takes their place. Writers never wait for a watcher.
///
/// It ends when the store closes (its last handle is closed or dropped), when the
/// store handle it was made through is closed, or when [`Watcher::end`] is called;
/// the notices queued before that are still received, then [`Watcher::recv`]
/// returns `None`. Dropping a watcher unregisters it. `Send + Sync`: one thread may
/// wait in `recv` while another calls `end`.
pub struct Watcher {
    queue: Arc<Queue>,
    hub: Arc<Hub>,
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("bucket", &&*self.queue.bucket)
            .field("prefix", &&*self.queue.prefix)
            .field("capacity", &self.queue.capacity)
            .finish()
    }
}

impl Watcher {
    /// The watched key prefix.
    pub fn prefix(&self) -> &str {
        &self.queue.prefix
    }

    /// The watched bucket's name.
    pub fn bucket_name(&self) -> &str {
        &self.queue.bucket
    }

    /// The next notice, waiting for one; `None` once the watcher has ended and its
    /// queue is drained.
    pub fn recv(&self) -> Option<Notice> {
        let mut s = self.queue.state.lock();
        let mut yielded = false;
        loop {
            if let Some(n) = take(&mut s) {
                return Some(n);
            }
            if s.ended {
                return None;
            }
            if !yielded {
                // Give the writers one turn before sleeping: under a stream of
                // writes the queue refills meanwhile and this watcher takes a
                // batch without anyone paying a futex wake per event.
                yielded = true;
                parking_lot::MutexGuard::unlocked(&mut s, std::thread::yield_now);
                continue;
            }
            self.queue.sleep(&mut s, None);
        }
    }

    /// The next notice if one is queued, without waiting.
    ///
    /// # Errors
    /// [`RecvError::Empty`] if none is queued; [`RecvError::Ended`] if the watcher
    /// has ended and its queue is drained.
    pub fn try_recv(&self) -> std::result::Result<Notice, RecvError> {
        let mut s = self.queue.state.lock();
        match take(&mut s) {
            Some(n) => Ok(n),
            None if s.ended => Err(RecvError::Ended),
            None => Err(RecvError::Empty),
        }
    }

    /// The next notice, waiting at most `timeout` for one.
    ///
    /// # Errors
    /// [`RecvError::Empty`] if none came in time; [`RecvError::Ended`] as
    /// [`Watcher::try_recv`].
    pub fn recv_timeout(&self, timeout: Duration) -> std::result::Result<Notice, RecvError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut s = self.queue.state.lock();
        loop {
            if let Some(n) = take(&mut s) {
                return Ok(n);
            }
            if s.ended {
                return Err(RecvError::Ended);
            }
            if self.queue.sleep(&mut s, deadline) {
                return match take(&mut s) {
                    Some(n) => Ok(n),
                    None if s.ended => Err(RecvError::Ended),
                    None => Err(RecvError::Empty),
                };
            }
        }
    }

    /// Calls `waker` whenever a notice is queued and when the watcher ends (and once
    /// now if a notice is already queued or it has ended), replacing any previous
    /// waker. For event loops: the waker only signals (e.g. wakes a task, writes to
    /// a pipe), the loop then drains with [`Watcher::try_recv`].
    ///
    /// `waker` runs on the writing thread while the store's write lock is held, or
    /// on the thread that ends the watcher: it must be quick, must not block and
    /// must not use the store.
    pub fn set_waker(&self, waker: impl Fn() + Send + Sync + 'static) {
        let waker: Waker = Arc::new(waker);
        let now = {
            let mut s = self.queue.state.lock();
            let now = s.ended || !s.items.is_empty() || s.missed > 0;
            if !s.ended {
                s.waker = Some(Arc::clone(&waker));
            }
            now
        };
        if now {
            waker();
        }
    }

    /// Ends the watcher: no more events are queued for it, and a thread waiting in
    /// [`Watcher::recv`] wakes up (and gets what was queued, then `None`).
    pub fn end(&self) {
        self.hub.unregister(&self.queue);
        self.queue.end();
    }

    /// Whether the watcher has ended (it may still hold queued notices).
    pub fn is_ended(&self) -> bool {
        self.queue.state.lock().ended
    }
}

/// What a queued notice counts against [`WatchOptions::max_bytes`]: its key and
/// value plus a fixed overhead.
fn notice_bytes(key: &str, value: Option<&[u8]>) -> usize {
    64 + key.len() + value.map_or(0, <[u8]>::len)
}

/// The next notice of a queue: its first item, or the count of events missed since
/// the last one queued.
fn take(s: &mut QueueState) -> Option<Notice> {
    if let Some(n) = s.items.pop_front() {
        if let Notice::Change(e) = &n {
            s.bytes = s.bytes.saturating_sub(notice_bytes(e.key(), e.value()));
        }
        return Some(n);
    }
    if s.missed > 0 {
        return Some(Notice::Lagged(std::mem::take(&mut s.missed)));
    }
    None
}

impl Iterator for &Watcher {
    type Item = Notice;

    fn next(&mut self) -> Option<Notice> {
        self.recv()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_change(key: &[u8]) -> Change<'_> {
        Change {
            key,
            kind: EventKind::Set,
            new: true,
            value: Some(b"v"),
            role: Role::Change { labelled: false },
        }
    }

    /// Waits (yielding, bounded) until the consumer of `w` sleeps in its queue.
    fn until_asleep(w: &Watcher) {
        for _ in 0..10_000_000 {
            if w.queue.state.lock().sleepers > 0 {
                return;
            }
            std::thread::yield_now();
        }
        panic!("the consumer never went to sleep");
    }

    #[test]
    fn sleeping_consumers_are_woken_by_the_notifier_or_directly() {
        let hub = Arc::new(Hub::default());
        let watchers: Vec<Arc<Watcher>> = (0..3)
            .map(|_| Arc::new(hub.register("b", "k", 1, WatchOptions::default())))
            .collect();
        let consumers: Vec<_> = watchers
            .iter()
            .map(|w| {
                let w = Arc::clone(w);
                std::thread::spawn(move || match w.recv() {
                    Some(Notice::Change(e)) => e.key().to_string(),
                    other => panic!("{other:?}"),
                })
            })
            .collect();
        watchers.iter().for_each(|w| until_asleep(w));
        // Three asleep: one wake-up of the notifier, which wakes them all.
        hub.publish("b", &[set_change(b"k1")]);
        for c in consumers {
            assert_eq!(c.join().unwrap(), "k1");
        }
        assert!(hub.notifier.state.lock().started, "the notifier ran");

        // One asleep: the writer wakes it itself; the others' queues just fill.
        let w = Arc::clone(&watchers[0]);
        let one = std::thread::spawn(move || w.recv().map(|n| format!("{n:?}")));
        until_asleep(&watchers[0]);
        hub.publish("b", &[set_change(b"k2")]);
        assert!(one.join().unwrap().unwrap().contains("k2"));
        for w in &watchers[1..] {
            assert!(matches!(w.try_recv(), Ok(Notice::Change(e)) if e.key() == "k2"));
        }
        assert!(hub.notifier.state.lock().pending.is_empty());
        drop(watchers);
        let notifier = Arc::clone(&hub.notifier);
        drop(hub);
        assert!(
            notifier.state.lock().stop,
            "the hub's end stops the notifier"
        );
    }
}
