//! The opt-in client-side cache ([`crate::Options::cache`]): values of keys this
//! handle read, kept until the server says they changed.
//!
//! A listener thread holds a RESP3 connection of its own with `CLIENT TRACKING ON
//! BCAST` (every change to the client's own bucket is pushed to it) and drops
//! each invalidated key, or everything on a null invalidation (FLUSHDB) and
//! whenever that connection is lost or replaced (a server restart); until it is
//! tracking again, reads go to the server and nothing is cached.
//!
//! A miss places a marker for the key before its `GET` is sent; the value is kept
//! only if the marker is still there when the reply comes, so an invalidation
//! that arrives while the read is in flight (or before its reply) is never undone
//! by it. This handle's own writes drop their keys (and markers) once the server
//! replied, so a read after a write never sees what was there before it. A key
//! with a time to live is kept until its deadline as measured from before the
//! `GET` was sent (its `PTTL` comes in the same round trip), less a millisecond
//! for the server's whole-millisecond count, so it never outlives the server's
//! copy.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{PushInfo, PushKind, Value};

use crate::conn::Pool;

/// How long the listener waits for a push before it checks whether its handle
/// is gone (the most a dropped handle's thread and connection outlive it).
const POLL: Duration = Duration::from_millis(500);
/// The longest wait between attempts to bring the listener's connection back.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// What one entry costs beyond its key and value bytes, for
/// [`CacheOptions::max_bytes`].
const ENTRY_OVERHEAD: usize = 64;

/// The client-side cache's bounds ([`crate::Options::cache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// Most keys kept (present or known missing); past it the oldest is dropped.
    pub max_entries: usize,
    /// Most bytes of keys and values kept (plus 64 bytes an entry); past it the
    /// oldest entries are dropped. A value larger than this is not cached.
    pub max_bytes: usize,
}

impl CacheOptions {
    /// At most `max_entries` keys, and 64 MiB.
    pub fn entries(max_entries: usize) -> CacheOptions {
        CacheOptions {
            max_entries,
            max_bytes: 64 << 20,
        }
    }
}

impl Default for CacheOptions {
    /// 10 000 keys, 64 MiB.
    fn default() -> CacheOptions {
        CacheOptions::entries(10_000)
    }
}

enum Slot {
    /// A read of the key is in flight (its fill id).
    Filling(u64),
    /// The key's value (`None`: missing), until `deadline` if it expires.
    Value {
        value: Option<Vec<u8>>,
        deadline: Option<Instant>,
        /// Which insertion this is, for the eviction queue.
        id: u64,
    },
}

#[derive(Default)]
struct State {
    map: HashMap<String, Slot>,
    /// Values in insertion order (key, insertion id); entries whose key was
    /// dropped or replaced since are skipped.
    order: VecDeque<(String, u64)>,
    values: usize,
    bytes: usize,
    next_id: u64,
    /// The listener is connected and tracking: entries may be kept.
    live: bool,
    /// The pool's count of lost connections when last looked at.
    lost_seen: u64,
}

impl State {
    fn remove(&mut self, key: &str) {
        if let Some(Slot::Value { value, .. }) = self.map.remove(key) {
            self.values -= 1;
            self.bytes -= cost(key, value.as_deref());
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.values = 0;
        self.bytes = 0;
    }
}

fn cost(key: &str, value: Option<&[u8]>) -> usize {
    ENTRY_OVERHEAD + key.len() + value.map_or(0, <[u8]>::len)
}

/// What [`Cache::lookup`] found.
pub(crate) enum Lookup {
    /// The cached value (`None`: the key is known to be missing).
    Hit(Option<Vec<u8>>),
    /// Not cached: read it, then [`Cache::fill`] with this id.
    Miss(u64),
    /// The cache is not tracking (listener down): read without caching.
    Off,
}

/// One handle's cache, shared by its clones.
pub(crate) struct Cache {
    state: Mutex<State>,
    opts: CacheOptions,
    /// Set when the handle is dropped: the listener ends.
    stop: Arc<AtomicBool>,
    /// The pool's count of lost connections ([`Pool::lost`]).
    lost: Arc<AtomicU64>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Cache")
            .field("opts", &self.opts)
            .field("values", &s.values)
            .field("bytes", &s.bytes)
            .field("live", &s.live)
            .finish()
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Cache {
    /// A cache for `pool`'s server, with its listener thread started; returns
    /// once the listener is tracking (or its first attempt failed: then the cache
    /// stays off until the listener connects).
    pub(crate) fn start(pool: &Arc<Pool>, opts: CacheOptions) -> Arc<Cache> {
        let cache = Arc::new(Cache {
            state: Mutex::new(State::default()),
            opts,
            stop: Arc::new(AtomicBool::new(false)),
            lost: Arc::clone(&pool.lost),
        });
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let weak = Arc::downgrade(&cache);
        let pool = Arc::clone(pool);
        let stop = Arc::clone(&cache.stop);
        let spawned = std::thread::Builder::new()
            .name("state-client-cache".into())
            .spawn(move || listen(&weak, &pool, &stop, ready_tx));
        if spawned.is_ok() {
            // The listener's first connection attempt is bounded by the pool's
            // timeout; the sender is dropped if the thread ends first.
            let _ = ready_rx.recv();
        }
        cache
    }

    /// The cached value of `key`, or a fill id to read it with.
    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        let mut s = self.state.lock();
        self.check_lost(&mut s);
        if !s.live {
            return Lookup::Off;
        }
        match s.map.get(key) {
            Some(Slot::Value {
                value, deadline, ..
            }) => {
                if deadline.is_none_or(|d| Instant::now() < d) {
                    return Lookup::Hit(value.clone());
                }
                s.remove(key);
            }
            // Another thread is reading it: read too, without caching.
            Some(Slot::Filling(_)) => return Lookup::Off,
            None => {}
        }
        s.next_id += 1;
        let id = s.next_id;
        s.map.insert(key.to_string(), Slot::Filling(id));
        Lookup::Miss(id)
    }

    /// The cached value of `key`, if any (no marker is placed).
    pub(crate) fn peek(&self, key: &str) -> Option<Option<Vec<u8>>> {
        let mut s = self.state.lock();
        self.check_lost(&mut s);
        if !s.live {
            return None;
        }
        match s.map.get(key) {
            Some(Slot::Value {
                value, deadline, ..
            }) if deadline.is_none_or(|d| Instant::now() < d) => Some(value.clone()),
            _ => None,
        }
    }

    /// Keeps what the read of fill `id` returned, if nothing invalidated the key
    /// since the read was sent. `deadline`: when the key expires.
    pub(crate) fn fill(
        &self,
        key: &str,
        id: u64,
        value: Option<Vec<u8>>,
        deadline: Option<Instant>,
    ) {
        let mut s = self.state.lock();
        self.check_lost(&mut s);
        if !matches!(s.map.get(key), Some(Slot::Filling(f)) if *f == id) {
            return;
        }
        let size = cost(key, value.as_deref());
        if !s.live || size > self.opts.max_bytes || self.opts.max_entries == 0 {
            s.map.remove(key);
            return;
        }
        s.values += 1;
        s.bytes += size;
        s.order.push_back((key.to_string(), id));
        s.map.insert(
            key.to_string(),
            Slot::Value {
                value,
                deadline,
                id,
            },
        );
        while s.values > self.opts.max_entries || s.bytes > self.opts.max_bytes {
            let Some((old, old_id)) = s.order.pop_front() else {
                break;
            };
            if matches!(s.map.get(&old), Some(Slot::Value { id, .. }) if *id == old_id) {
                s.remove(&old);
            }
        }
        if s.order.len() > 2 * s.values + 64 {
            let State { map, order, .. } = &mut *s;
            order.retain(|(k, i)| matches!(map.get(k), Some(Slot::Value { id, .. }) if id == i));
        }
    }

    /// A connection of the handle was lost since last looked: the server may have
    /// restarted, so nothing kept can be trusted.
    fn check_lost(&self, s: &mut State) {
        let lost = self.lost.load(Ordering::Relaxed);
        if lost != s.lost_seen {
            s.lost_seen = lost;
            s.clear();
        }
    }

    /// Drops a read that failed (its marker).
    pub(crate) fn abandon(&self, key: &str, id: u64) {
        let mut s = self.state.lock();
        if matches!(s.map.get(key), Some(Slot::Filling(f)) if *f == id) {
            s.map.remove(key);
        }
    }

    /// Drops `keys` (this handle wrote them, or the server invalidated them).
    pub(crate) fn forget<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        let mut s = self.state.lock();
        for k in keys {
            s.remove(k);
            s.map.remove(k);
        }
    }

    /// Drops everything; `live` says whether entries may be kept from now on.
    fn reset(&self, live: bool) {
        let mut s = self.state.lock();
        s.clear();
        s.live = live;
    }

    /// Drops everything (a transaction wrote keys this handle does not list).
    pub(crate) fn forget_all(&self) {
        self.state.lock().clear();
    }

    /// How many values are cached (for tests and stats).
    pub(crate) fn len(&self) -> usize {
        self.state.lock().values
    }

    /// Whether the listener is tracking (entries may be kept).
    pub(crate) fn is_live(&self) -> bool {
        self.state.lock().live
    }
}

/// The listener thread: (re)connects, turns tracking on, and applies every push
/// until the handle is dropped.
fn listen(cache: &Weak<Cache>, pool: &Pool, stop: &AtomicBool, ready: mpsc::Sender<()>) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    while !stop.load(Ordering::Relaxed) {
        let (tx, rx) = mpsc::channel::<PushInfo>();
        let conn = pool.open_tracking().and_then(|mut c| {
            c.set_push_sender(tx);
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("BCAST")
                .query::<()>(&mut c)?;
            c.set_read_timeout(Some(POLL))?;
            Ok(c)
        });
        let mut conn = match conn {
            Ok(c) => c,
            Err(_) => {
                ready.take();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        // Tracking from here on: whatever was kept before may have changed
        // unseen.
        match cache.upgrade() {
            Some(c) => c.reset(true),
            None => return,
        }
        ready.take();
        loop {
            // Every push goes to `rx` as it is parsed (also after a timed-out
            // read, which makes the redis crate skip the next reply; the listener
            // reads nothing but pushes).
            let r = conn.recv_response();
            let Some(c) = cache.upgrade() else { return };
            let mut broken = false;
            while let Ok(push) = rx.try_recv() {
                match push.kind {
                    PushKind::Invalidate => match push.data.first() {
                        Some(Value::Array(keys)) => c.forget(keys.iter().filter_map(|k| match k {
                            Value::BulkString(b) => std::str::from_utf8(b).ok(),
                            _ => None,
                        })),
                        // A null (FLUSHDB, or the server forgot what it tracks).
                        _ => c.reset(true),
                    },
                    PushKind::Disconnection => broken = true,
                    _ => {}
                }
            }
            match r {
                Ok(Value::Push { .. }) => {}
                Err(e) if e.is_timeout() => {}
                // Anything but a push, or a lost connection: out of step with the
                // server; start again from nothing.
                Ok(_) | Err(_) => broken = true,
            }
            if broken {
                c.reset(false);
                break;
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(opts: CacheOptions) -> Cache {
        let c = Cache {
            state: Mutex::new(State::default()),
            opts,
            stop: Arc::new(AtomicBool::new(false)),
            lost: Arc::default(),
        };
        c.reset(true);
        c
    }

    fn id(l: Lookup) -> u64 {
        match l {
            Lookup::Miss(id) => id,
            _ => panic!("expected a miss"),
        }
    }

    #[test]
    fn an_invalidation_during_a_read_is_not_undone_by_it() {
        let c = cache(CacheOptions::default());
        let fill = id(c.lookup("k"));
        c.forget(["k"]);
        c.fill("k", fill, Some(b"old".to_vec()), None);
        assert!(matches!(c.lookup("k"), Lookup::Miss(_)));
    }

    #[test]
    fn hits_until_forgotten_or_expired() {
        let c = cache(CacheOptions::default());
        let fill = id(c.lookup("k"));
        c.fill("k", fill, Some(b"v".to_vec()), None);
        assert!(matches!(c.lookup("k"), Lookup::Hit(Some(v)) if v == b"v"));
        c.forget(["k"]);
        let fill = id(c.lookup("k"));
        c.fill("k", fill, Some(b"v".to_vec()), Some(Instant::now()));
        assert!(matches!(c.lookup("k"), Lookup::Miss(_)));
    }

    #[test]
    fn bounded_by_entries_and_bytes_oldest_first() {
        let c = cache(CacheOptions {
            max_entries: 2,
            max_bytes: 1 << 20,
        });
        for k in ["a", "b", "c"] {
            let f = id(c.lookup(k));
            c.fill(k, f, None, None);
        }
        assert_eq!(c.len(), 2);
        assert!(matches!(c.lookup("a"), Lookup::Miss(_)));
        let c = cache(CacheOptions {
            max_entries: 100,
            max_bytes: 2 * ENTRY_OVERHEAD + 10,
        });
        for k in ["a", "b", "c"] {
            let f = id(c.lookup(k));
            c.fill(k, f, Some(vec![0; 4]), None);
        }
        assert_eq!(c.len(), 2);
        let f = id(c.lookup("big"));
        c.fill("big", f, Some(vec![0; 1000]), None);
        assert!(matches!(c.lookup("big"), Lookup::Miss(_)));
    }

    #[test]
    fn nothing_is_kept_while_not_tracking() {
        let c = cache(CacheOptions::default());
        let f = id(c.lookup("k"));
        c.reset(false);
        c.fill("k", f, None, None);
        assert!(matches!(c.lookup("k"), Lookup::Off));
        assert_eq!(c.len(), 0);
    }
}
