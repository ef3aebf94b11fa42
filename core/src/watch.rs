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

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
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
}

/// One committed change to a key. Cheap to clone: every watcher that receives the
/// same change shares one copy.
#[derive(Clone)]
pub struct Event {
    inner: Arc<EventInner>,
}

impl Event {
    fn new(key: &str, kind: EventKind, new: bool, value: Option<&[u8]>) -> Event {
        Event {
            inner: Arc::new(EventInner {
                key: key.into(),
                kind,
                new,
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

    /// For [`EventKind::Set`]: whether the key was created (it had no live record
    /// before); `false` for an overwrite and for the other kinds.
    pub fn is_new(&self) -> bool {
        self.inner.new
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
            .field("new", &self.is_new())
            .field("value", &self.value().map(String::from_utf8_lossy))
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.key() == other.key()
            && self.kind() == other.kind()
            && self.is_new() == other.is_new()
            && self.value() == other.value()
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
}

/// The watchers of one store. Lives in the store's shared state.
#[derive(Default)]
pub(crate) struct Hub {
    /// Number of registered watchers: the writers' fast check.
    count: AtomicUsize,
    watchers: Mutex<Vec<Arc<Queue>>>,
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

    /// Whether some watcher watches bucket `name`.
    pub(crate) fn watches_bucket(&self, name: &str) -> bool {
        self.active() && self.watchers.lock().iter().any(|q| &*q.bucket == name)
    }

    /// Number of registered watchers.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
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

    /// Publishes the changes one committed write made to `bucket`, in order. The
    /// commit point calls it under the store's write lock (that is what makes the
    /// order the commit order) once the engine has applied the write.
    pub(crate) fn publish(&self, bucket: &str, changes: &[Change<'_>]) {
        if changes.is_empty() {
            return;
        }
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
                    let ev = slot.get_or_insert_with(|| Event::new(key, c.kind, c.new, value));
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
