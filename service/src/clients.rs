//! What the service keeps per client besides its bucket: the usage its quota is
//! checked against, and server-side cursors (the original's cursor cache).
//!
//! Every front end (`state serve`'s Redis protocol and HTTP, the C and Python
//! bindings) uses these, so the rules live here once: a write over quota writes
//! nothing; a cursor belongs to the client that made it, is dropped after an idle
//! lifespan, and each client holds a bounded number of them (the least recently
//! used goes first).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use state_core::{Cursor, Txn, Usage, UsageDelta};

use crate::error::{Error, Result};
use crate::quota::Quota;
use crate::{DEFAULT_CURSOR_LIFESPAN, DEFAULT_MAX_CURSORS};

#[derive(Debug, Default)]
struct ClientState {
    /// An upper bound of the bucket's usage, kept from the writes made through the
    /// service since it was first counted (a record that expired since is still in
    /// it). `None` until a quota-checked write needs it.
    usage_bound: Option<Usage>,
    /// When (the store's clock, unix ms) a write over the bound last recounted the
    /// bucket, and how long the count took.
    recounted: Option<(u64, Duration)>,
}

/// A client's recounts before refusals take at most one part in this many of the
/// time: after a recount that took `t`, the next waits `RECOUNT_DUTY * t`.
const RECOUNT_DUTY: u32 = 100;

struct HeldCursor {
    owner: Arc<str>,
    cursor: Cursor,
    last_used_ms: u64,
}

/// The service's per-client state.
pub(crate) struct Clients {
    clients: Mutex<HashMap<Arc<str>, ClientState>>,
    cursors: Mutex<HashMap<u64, HeldCursor>>,
    next_cursor: AtomicU64,
    id_hasher: RandomState,
    pub(crate) cursor_lifespan: Mutex<Duration>,
    pub(crate) max_cursors: Mutex<usize>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("clients", &self.clients.lock().len())
            .field("cursors", &self.cursors.lock().len())
            .finish()
    }
}

impl Clients {
    pub(crate) fn new() -> Clients {
        Clients {
            clients: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            next_cursor: AtomicU64::new(1),
            id_hasher: RandomState::new(),
            cursor_lifespan: Mutex::new(DEFAULT_CURSOR_LIFESPAN),
            max_cursors: Mutex::new(DEFAULT_MAX_CURSORS),
        }
    }

    /// Checks a transaction's change against the client's `quota` (called under the
    /// store's write lock, before the commit), and records the new usage bound.
    pub(crate) fn check(
        &self,
        client: &str,
        quota: Quota,
        tx: &Txn<'_>,
        d: UsageDelta,
    ) -> Result<()> {
        if quota.is_unlimited() {
            return Ok(());
        }
        if let Some(max) = quota.max_value_size {
            if let Some((key, len)) = tx.largest_new_value() {
                if len as u64 > max {
                    return Err(Error::QuotaExceeded(format!(
                        "client {client:?}: value of key {key:?} is {len} bytes, over the \
                         client's max_value_size of {max}"
                    )));
                }
            }
        }
        let bound = self.clients.lock().get(client).and_then(|c| c.usage_bound);
        let before = match bound {
            Some(b) => b,
            None => tx.stored_usage()?,
        };
        let mut after = before.apply(d);
        let grows = d.records > 0 || d.bytes > 0;
        if grows && over(&quota, after).is_some() && bound.is_some() {
            // The bound is exact for the writes made through the service; it still
            // counts records that expired since, and misses writes made around the
            // service (the embedded API, another process sharing the engine). So a
            // write the bound would refuse is recounted first, but the recounts of
            // one client take at most 1/RECOUNT_DUTY of the time (each waits 100x
            // as long as the last one took): a client at its quota cannot make every
            // refused write rescan its bucket under the store's write lock.
            let now = tx.now_ms();
            let due = self
                .clients
                .lock()
                .get(client)
                .and_then(|c| c.recounted)
                .is_none_or(|(at_ms, took)| {
                    let wait = took.as_millis().saturating_mul(u128::from(RECOUNT_DUTY));
                    u128::from(now.saturating_sub(at_ms)) >= wait
                });
            if due {
                let started = std::time::Instant::now();
                after = tx.stored_usage()?.apply(d);
                if let Some(c) = self.clients.lock().get_mut(client) {
                    c.recounted = Some((now, started.elapsed()));
                }
            }
        }
        if grows {
            if let Some(why) = over(&quota, after) {
                return Err(Error::QuotaExceeded(format!("client {client:?}: {why}")));
            }
        }
        let mut map = self.clients.lock();
        map.entry(Arc::from(client)).or_default().usage_bound = Some(after);
        Ok(())
    }

    /// Forgets the usage bound, so the next check counts again (after writes made
    /// outside the service, e.g. a bucket removed).
    pub(crate) fn forget_usage(&self, client: &str) {
        if let Some(c) = self.clients.lock().get_mut(client) {
            c.usage_bound = None;
        }
    }

    fn new_cursor_id(&self) -> u64 {
        let n = self.next_cursor.fetch_add(1, Ordering::Relaxed);
        // Not guessable in sequence (they are owner-checked anyway); positive as an
        // i64 and never 0, which SCAN reserves for "start" and "done".
        (self.id_hasher.hash_one(n) >> 1).max(1)
    }

    /// Stores `cursor` for `owner`, evicting the owner's least recently used cursor
    /// if it holds too many, and expired cursors of anyone. Returns its id.
    pub(crate) fn add_cursor(&self, owner: &str, cursor: Cursor, now_ms: u64) -> u64 {
        let lifespan = ms(*self.cursor_lifespan.lock());
        let max = (*self.max_cursors.lock()).max(1);
        let mut map = self.cursors.lock();
        map.retain(|_, c| now_ms.saturating_sub(c.last_used_ms) < lifespan);
        let mine: Vec<(u64, u64)> = map
            .iter()
            .filter(|(_, c)| &*c.owner == owner)
            .map(|(id, c)| (c.last_used_ms, *id))
            .collect();
        if mine.len() >= max {
            let mut mine = mine;
            mine.sort_unstable();
            for (_, id) in mine.iter().take(mine.len() + 1 - max) {
                map.remove(id);
            }
        }
        let mut id = self.new_cursor_id();
        while map.contains_key(&id) {
            id = self.new_cursor_id();
        }
        map.insert(
            id,
            HeldCursor {
                owner: Arc::from(owner),
                cursor,
                last_used_ms: now_ms,
            },
        );
        id
    }

    /// Takes cursor `id` out of the table for `owner` to use; put it back with
    /// [`Clients::put_back`]. *invalid argument* if it does not exist, has expired or
    /// belongs to another client (the message does not say which).
    pub(crate) fn take_cursor(&self, owner: &str, id: u64, now_ms: u64) -> Result<Cursor> {
        let lifespan = ms(*self.cursor_lifespan.lock());
        let mut map = self.cursors.lock();
        match map.get(&id) {
            Some(c) if &*c.owner == owner && now_ms.saturating_sub(c.last_used_ms) < lifespan => {
                map.remove(&id)
                    .map(|c| c.cursor)
                    .ok_or_else(|| unknown_cursor(id))
            }
            Some(c) if now_ms.saturating_sub(c.last_used_ms) >= lifespan => {
                map.remove(&id);
                Err(unknown_cursor(id))
            }
            _ => Err(unknown_cursor(id)),
        }
    }

    /// Returns a cursor taken with [`Clients::take_cursor`] under the same id.
    pub(crate) fn put_back(&self, owner: &str, id: u64, cursor: Cursor, now_ms: u64) {
        self.cursors.lock().insert(
            id,
            HeldCursor {
                owner: Arc::from(owner),
                cursor,
                last_used_ms: now_ms,
            },
        );
    }

    /// Drops cursor `id` if `owner` holds it. Returns whether it did.
    pub(crate) fn release_cursor(&self, owner: &str, id: u64) -> bool {
        let mut map = self.cursors.lock();
        match map.get(&id) {
            Some(c) if &*c.owner == owner => map.remove(&id).is_some(),
            _ => false,
        }
    }

    /// How many cursors `owner` holds (expired ones not yet dropped included).
    pub(crate) fn cursor_count(&self, owner: &str) -> usize {
        self.cursors
            .lock()
            .values()
            .filter(|c| &*c.owner == owner)
            .count()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unknown_cursor(id: u64) -> Error {
    Error::Store(state_core::Error::InvalidArgument(format!(
        "no cursor {id}: it was released, expired after being idle, or was never yours"
    )))
}

fn over(q: &Quota, u: Usage) -> Option<String> {
    if let Some(max) = q.max_records {
        if u.records > max {
            return Some(format!(
                "the write would make {} records, over the client's max_records of {max}",
                u.records
            ));
        }
    }
    if let Some(max) = q.max_bytes {
        if u.bytes > max {
            return Some(format!(
                "the write would make {} bytes of keys and values, over the client's \
                 max_bytes of {max}",
                u.bytes
            ));
        }
    }
    None
}
