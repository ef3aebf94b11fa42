//! Change notifications: [`Bucket::watch`] hands out a [`Watcher`] that receives an
//! [`Event`] for every committed change to the keys of one bucket under a prefix.
//!
//! Events are published by the writer, under the store's write lock, right after the
//! engine applied a write: so every watcher sees the changes of a bucket in commit
//! order, a batch as its events in batch order, and none before the write is
//! visible to reads. Publishing only copies the event into each matching watcher's
//! bounded queue (one allocation shared by all of them); it never waits for a
//! watcher. A watcher whose queue is full misses events, and learns how many from a
//! [`Notice::Lagged`] in the place where they would have been.
//!
//! A store without watchers pays one relaxed atomic load per write. Watchers are
//! registered under the write lock, so a watcher sees every write that commits
//! after [`Bucket::watch`] returns, and none that committed before.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::bucket::Bucket;
use crate::engine::WriteOp;
use crate::error::{Error, Result};
use crate::limits::MAX_KEY_LEN;
use crate::record;
use crate::store::{is_user_bucket, Store};

/// Default number of notices a watcher's queue holds before it starts missing events.
pub const DEFAULT_WATCH_CAPACITY: usize = 1024;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The key was set (created or overwritten); the event carries the new value.
    Set,
    /// The key was deleted (by `delete`, a transaction, or removing its bucket).
    Delete,
    /// The key expired and was removed: by the sweeper, or by a write that found it
    /// expired (a `delete` of it, a transaction touching it).
    Expire,
}

impl EventKind {
    /// The kind's name: `"set"`, `"delete"` or `"expire"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Set => "set",
            EventKind::Delete => "delete",
            EventKind::Expire => "expire",
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
    value: Option<Box<[u8]>>,
}

/// One committed change to a key. Cheap to clone: every watcher that receives the
/// same change shares one copy.
#[derive(Clone)]
pub struct Event {
    inner: Arc<EventInner>,
}

impl Event {
    fn new(key: &str, kind: EventKind, value: Option<&[u8]>) -> Event {
        Event {
            inner: Arc::new(EventInner {
                key: key.into(),
                kind,
                value: value.map(Box::from),
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

    /// The new value for [`EventKind::Set`]; `None` for the other kinds.
    pub fn value(&self) -> Option<&[u8]> {
        self.inner.value.as_deref()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("key", &self.key())
            .field("kind", &self.kind())
            .field("value", &self.value().map(String::from_utf8_lossy))
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.key() == other.key() && self.kind() == other.kind() && self.value() == other.value()
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
    state: Mutex<QueueState>,
    ready: Condvar,
}

impl Queue {
    fn matches(&self, c: &Change<'_>) -> bool {
        c.bucket == &*self.bucket && c.key.starts_with(self.prefix.as_bytes())
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

/// One change as the write paths report it, before it becomes an [`Event`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    pub bucket: &'a str,
    pub key: &'a [u8],
    pub kind: EventKind,
    /// The new value (user bytes, not the stored encoding) of a `Set`.
    pub value: Option<&'a [u8]>,
}

/// A [`Change`] held back by [`Hub::capture`] until its write is committed.
pub(crate) struct OwnedChange {
    bucket: String,
    key: Vec<u8>,
    kind: EventKind,
    value: Option<Vec<u8>>,
}

impl From<&Change<'_>> for OwnedChange {
    fn from(c: &Change<'_>) -> OwnedChange {
        OwnedChange {
            bucket: c.bucket.to_string(),
            key: c.key.to_vec(),
            kind: c.kind,
            value: c.value.map(<[u8]>::to_vec),
        }
    }
}

thread_local! {
    /// Changes published on this thread while [`Hub::capture`] runs.
    static CAPTURED: std::cell::RefCell<Option<Vec<OwnedChange>>> =
        const { std::cell::RefCell::new(None) };
}

/// The watchers of one store. Lives in the store's shared state.
#[derive(Default)]
pub(crate) struct Hub {
    /// Number of registered watchers: the writers' fast check.
    count: AtomicUsize,
    watchers: Mutex<Vec<Arc<Queue>>>,
}

impl Hub {
    /// Whether any watcher is registered. Writers call it under the store's write
    /// lock, which registration also takes, so a relaxed load is exact.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// Runs `f`, holding back what it publishes on this thread, and returns it: a
    /// read-modify-write on an engine shared between processes runs its writes
    /// deferred and may run again after a conflict, so its changes are published
    /// (with [`Hub::publish_owned`]) only once its commit has succeeded.
    pub(crate) fn capture<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<OwnedChange>) {
        let outer = CAPTURED.with(|c| c.borrow_mut().replace(Vec::new()));
        let out = f();
        let captured = CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
        (out, captured.unwrap_or_default())
    }

    /// Publishes changes held back by [`Hub::capture`].
    pub(crate) fn publish_owned(&self, changes: &[OwnedChange]) {
        if changes.is_empty() {
            return;
        }
        let refs: Vec<Change<'_>> = changes
            .iter()
            .map(|c| Change {
                bucket: &c.bucket,
                key: &c.key,
                kind: c.kind,
                value: c.value.as_deref(),
            })
            .collect();
        self.publish(&refs);
    }

    /// Whether some watcher watches bucket `name`.
    pub(crate) fn watches_bucket(&self, name: &str) -> bool {
        self.active() && self.watchers.lock().iter().any(|q| &*q.bucket == name)
    }

    /// Registers a watcher. The caller holds the store's write lock.
    fn register(
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
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                missed: 0,
                ended: false,
                waker: None,
                bytes: 0,
            }),
            ready: Condvar::new(),
        });
        let mut list = self.watchers.lock();
        list.push(Arc::clone(&queue));
        self.count.store(list.len(), Ordering::Relaxed);
        Watcher {
            queue,
            hub: Arc::clone(self),
        }
    }

    fn unregister(&self, queue: &Arc<Queue>) {
        let mut list = self.watchers.lock();
        list.retain(|q| !Arc::ptr_eq(q, queue));
        self.count.store(list.len(), Ordering::Relaxed);
    }

    /// Ends the watchers made through store handle `handle` (that handle closed).
    pub(crate) fn end_handle(&self, handle: usize) {
        let ended: Vec<Arc<Queue>> = {
            let mut list = self.watchers.lock();
            let (ended, kept) = list.drain(..).partition(|q| q.handle == handle);
            *list = kept;
            self.count.store(list.len(), Ordering::Relaxed);
            ended
        };
        ended.iter().for_each(|q| q.end());
    }

    /// Ends every watcher (the store closed).
    pub(crate) fn end_all(&self) {
        let ended: Vec<Arc<Queue>> = {
            let mut list = self.watchers.lock();
            self.count.store(0, Ordering::Relaxed);
            std::mem::take(&mut *list)
        };
        ended.iter().for_each(|q| q.end());
    }

    /// Publishes the changes of one committed write, in order. The caller holds the
    /// store's write lock (that is what makes the order the commit order) and has
    /// checked [`Hub::active`].
    pub(crate) fn publish(&self, changes: &[Change<'_>]) {
        if CAPTURED.with(|c| {
            let mut c = c.borrow_mut();
            match c.as_mut() {
                Some(buf) => {
                    buf.extend(changes.iter().map(OwnedChange::from));
                    true
                }
                None => false,
            }
        }) {
            return;
        }
        let mut wakers: Vec<Waker> = Vec::new();
        {
            let list = self.watchers.lock();
            // One shared copy of each event with its value, and one without (for
            // watchers that take keys only).
            let mut events: Vec<[Option<Event>; 2]> = vec![[None, None]; changes.len()];
            for q in list.iter() {
                let mut queued = false;
                let mut s = q.state.lock();
                if s.ended {
                    continue;
                }
                for (c, slots) in changes.iter().zip(events.iter_mut()) {
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
                    let ev = slot.get_or_insert_with(|| Event::new(key, c.kind, value));
                    s.items.push_back(Notice::Change(ev.clone()));
                    s.bytes += size;
                    queued = true;
                }
                if queued {
                    if let Some(w) = &s.waker {
                        wakers.push(Arc::clone(w));
                    }
                    drop(s);
                    q.ready.notify_one();
                }
            }
        }
        for w in wakers {
            w();
        }
    }

    /// Publishes a batch of engine writes to user buckets: a put is a `Set` of the
    /// decoded value (even one whose TTL ran out while it was written: its expiry
    /// event follows when it is swept), a delete is a `Delete`.
    pub(crate) fn publish_ops(&self, ops: &[WriteOp<'_>]) {
        let mut changes = Vec::with_capacity(ops.len());
        for op in ops {
            match *op {
                WriteOp::Put { bucket, key, value } if is_user_bucket(bucket) => {
                    let Ok(rec) = record::decode(value, std::path::Path::new("")) else {
                        continue;
                    };
                    changes.push(Change {
                        bucket,
                        key,
                        kind: EventKind::Set,
                        value: Some(rec.value),
                    });
                }
                WriteOp::Delete { bucket, key } if is_user_bucket(bucket) => {
                    changes.push(Change {
                        bucket,
                        key,
                        kind: EventKind::Delete,
                        value: None,
                    });
                }
                _ => {}
            }
        }
        if !changes.is_empty() {
            self.publish(&changes);
        }
    }
}

/// Receives the changes under a key prefix of one bucket; made by [`Bucket::watch`].
///
/// How a [`Watcher`] queues the notices it has not received yet
/// ([`Bucket::watch_with`]).
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
}

/// Default [`WatchOptions::max_bytes`]: 64 MiB.
pub const DEFAULT_WATCH_MAX_BYTES: usize = 64 << 20;

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            capacity: DEFAULT_WATCH_CAPACITY,
            max_bytes: DEFAULT_WATCH_MAX_BYTES,
            values: true,
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
        }
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
                // batch without the writer paying a futex wake per event.
                yielded = true;
                parking_lot::MutexGuard::unlocked(&mut s, std::thread::yield_now);
                continue;
            }
            self.queue.ready.wait(&mut s);
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
            match deadline {
                Some(d) => {
                    if self.queue.ready.wait_until(&mut s, d).timed_out() {
                        return match take(&mut s) {
                            Some(n) => Ok(n),
                            None if s.ended => Err(RecvError::Ended),
                            None => Err(RecvError::Empty),
                        };
                    }
                }
                None => self.queue.ready.wait(&mut s),
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

impl Store {
    /// Number of live watchers on this store (all handles), for tests and metrics.
    ///
    /// # Errors
    /// *closed* if this handle was closed.
    pub fn watcher_count(&self) -> Result<usize> {
        Ok(self.shared()?.watch.count.load(Ordering::Relaxed))
    }
}

impl Bucket {
    /// Watches the keys of this bucket that start with `prefix` (`""`: every key).
    /// The watcher receives an [`Event`] for every change committed after this call
    /// returns: sets (with the new value), deletes and expiries, in commit order, a
    /// batch (`set_multiple`, a transaction) as its events in order, each only after
    /// the write is visible to reads (in sync mode possibly before it is durable).
    /// Changing only a key's TTL (`expire`, `persist`) is no event.
    ///
    /// Expiry events come when the expired record is removed: by the background
    /// sweeper, so up to one sweep interval (default 1 s) after the deadline, or at
    /// [`crate::Store::sweep_expired`], or earlier if a write (a `delete`, a
    /// transaction) touches the expired key. Reads do not remove expired records and
    /// send no event.
    ///
    /// The queue holds [`DEFAULT_WATCH_CAPACITY`] notices; see
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
        if prefix.len() > MAX_KEY_LEN {
            return Err(Error::invalid(format!(
                "watch prefix is {} bytes, more than the longest key ({MAX_KEY_LEN})",
                prefix.len()
            )));
        }
        if capacity == 0 {
            return Err(Error::invalid("watch capacity must be at least 1"));
        }
        let handle = self.store().handle_id();
        let shared = self.shared()?;
        shared.register_watch(|hub| hub.register(self.name(), prefix, handle, opts))
    }
}
