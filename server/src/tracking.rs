//! Client-side caching's server half: `CLIENT TRACKING` (Redis's), with RESP3
//! invalidation pushes (`>2 invalidate [keys]`, or `>2 invalidate _` for "forget
//! everything") on the tracking connection itself.
//!
//! Each tracking connection has a core watcher on its own client's bucket (so it
//! only ever hears of its own keys) whose waker runs on the writing thread, under
//! the store's write lock: it moves the events into the connection's pending list,
//! marked as the connection's own when the write came from the connection itself
//! ([`as_writer`], for NOLOOP). The connection loop ([`crate::conn`]) then turns
//! them into pushes after the replies of the requests it just ran
//! ([`Tracking::drain`]):
//!
//! - default mode: the keys the connection read (read-only data commands; with
//!   OPTIN only after `CLIENT CACHING YES`, with OPTOUT unless `CLIENT CACHING NO`)
//!   are remembered in a table; a change to one is pushed once, and the key is
//!   forgotten. The table holds at most `--tracking-table-max-keys` keys: past it
//!   the oldest is invalidated and forgotten.
//! - BCAST: every change to a key under one of the prefixes (none given: every
//!   key), one push per prefix with the batch's keys, sorted.
//! - NOLOOP: no push for the connection's own writes.
//! - FLUSHDB, a watcher that fell behind (more than [`PENDING_MAX`] changes
//!   waiting) or a store that closed: one `invalidate` with a null, and the table
//!   is emptied.
//!
//! A key's invalidation is queued before the write that changed it is
//! acknowledged to its writer (the waker runs inside the commit), and a key read
//! is remembered before any later change of it is looked at, so a connection
//! always hears of a change made after a read it was sent the reply of: the push
//! follows that reply on the connection. An expiring key is invalidated when the
//! server removes it (its `expired` event: by the sweeper, up to one sweep
//! interval after its deadline).

use std::cell::Cell;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use state_core::{Bucket, Notice, RecvError, WatchOptions, Watcher};
use tokio::sync::Notify;

use crate::resp::Out;

/// Most changes waiting for a connection's next drain; past it the connection
/// is told to forget everything instead (a null invalidation).
pub(crate) const PENDING_MAX: usize = 64 * 1024;

/// The label FLUSHDB gives its deletes: the tracking watcher turns it into one
/// null invalidation, keyspace notifications leave it out (Redis sends none).
pub(crate) const FLUSH_LABEL: &str = "flushdb";

thread_local! {
    /// The connection whose request this thread is running (0: none), read by
    /// the tracking wakers, which run on the writing thread.
    static WRITER: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` with this thread's writes marked as connection `id`'s own (NOLOOP).
pub(crate) fn as_writer<T>(id: u64, f: impl FnOnce() -> T) -> T {
    let before = WRITER.with(|w| w.replace(id));
    let r = f();
    WRITER.with(|w| w.set(before));
    r
}

/// Changes the waker moved out of the watcher, waiting for the connection.
#[derive(Default)]
struct Pending {
    /// Changed keys, and whether the connection itself wrote them.
    keys: Vec<(Box<str>, bool)>,
    /// Everything must be forgotten (FLUSHDB, overflow, the store closed).
    flush: bool,
}

impl Pending {
    fn overflow(&mut self) {
        self.flush = true;
        self.keys = Vec::new();
    }
}

/// The keys a default-mode connection read, oldest first.
#[derive(Default)]
struct Table {
    keys: HashSet<Box<str>>,
    /// Insertion order; may hold keys already forgotten (skipped when evicting,
    /// compacted when it grows past twice the table).
    order: VecDeque<Box<str>>,
}

impl Table {
    fn insert(&mut self, key: &str) {
        if !self.keys.contains(key) {
            self.keys.insert(key.into());
            self.order.push_back(key.into());
        }
    }

    fn remove(&mut self, key: &str) -> bool {
        let removed = self.keys.remove(key);
        if removed && self.order.len() > 2 * self.keys.len() + 64 {
            let keys = &self.keys;
            self.order.retain(|k| keys.contains(k));
        }
        removed
    }

    /// Forgets and returns the oldest key.
    fn evict(&mut self) -> Option<Box<str>> {
        while let Some(k) = self.order.pop_front() {
            if self.keys.remove(&k) {
                return Some(k);
            }
        }
        None
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.order.clear();
    }
}

/// Options of `CLIENT TRACKING ON`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    pub(crate) bcast: bool,
    pub(crate) optin: bool,
    pub(crate) optout: bool,
    pub(crate) noloop: bool,
    pub(crate) prefixes: Vec<Vec<u8>>,
}

/// One connection's tracking state (`CLIENT TRACKING ON`).
pub(crate) struct Tracking {
    id: u64,
    opts: Options,
    /// BCAST prefixes, sorted, none overlapping.
    prefixes: BTreeSet<Vec<u8>>,
    /// CLIENT CACHING YES/NO was given and has not lapsed yet.
    caching: bool,
    table: Table,
    max_keys: usize,
    pending: Arc<Mutex<Pending>>,
    /// Keys the table let go of for its limit, to be invalidated.
    evicted: Vec<Box<str>>,
    ready: Arc<Notify>,
    /// The bucket watched (its name) and the watcher.
    watcher: Option<(String, Arc<Watcher>)>,
}

impl Tracking {
    /// Tracking for connection `id` on `bucket`; `ready` is woken when a change is
    /// waiting; the table holds at most `max_keys` keys.
    pub(crate) fn new(
        id: u64,
        bucket: &Bucket,
        opts: Options,
        max_keys: usize,
        ready: Arc<Notify>,
    ) -> state_core::Result<Tracking> {
        let mut t = Tracking {
            id,
            opts: Options::default(),
            prefixes: BTreeSet::new(),
            caching: false,
            table: Table::default(),
            max_keys: max_keys.max(1),
            pending: Arc::default(),
            evicted: Vec::new(),
            ready,
            watcher: None,
        };
        t.reconfigure(opts);
        t.rebind(bucket)?;
        Ok(t)
    }

    /// `CLIENT TRACKING ON` again: the new options replace the old, prefixes are
    /// added (the caller checked they are compatible, [`Tracking::check`]).
    pub(crate) fn reconfigure(&mut self, opts: Options) {
        self.prefixes.extend(opts.prefixes.iter().cloned());
        self.opts = opts;
        self.caching = false;
    }

    /// Refuses options Redis refuses, with its words: PREFIX without BCAST,
    /// BCAST with OPTIN/OPTOUT, both OPTIN and OPTOUT, a switch of BCAST or of
    /// OPTIN/OPTOUT while on, and overlapping prefixes.
    pub(crate) fn check(now: Option<&Tracking>, o: &Options) -> Result<(), String> {
        if !o.bcast && !o.prefixes.is_empty() {
            return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
        }
        if let Some(t) = now {
            if t.opts.bcast != o.bcast {
                return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into());
            }
        }
        if o.bcast && (o.optin || o.optout) {
            return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
        }
        if o.optin && o.optout {
            return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
        }
        if let Some(t) = now {
            if (o.optin && t.opts.optout) || (o.optout && t.opts.optin) {
                return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into());
            }
        }
        // Redis's order: each given prefix against the ones already on, then
        // against those given after it.
        let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
        let on: Vec<&[u8]> = now
            .map(|t| t.prefixes.iter().map(Vec::as_slice).collect())
            .unwrap_or_default();
        for (i, p) in o.prefixes.iter().enumerate() {
            if let Some(q) = on.iter().find(|q| overlap(p, q)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(q)
                ));
            }
            if let Some(q) = o.prefixes[i + 1..].iter().find(|q| overlap(p, q)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(q)
                ));
            }
        }
        Ok(())
    }

    /// Watches `bucket` (after AUTH as another client: its bucket instead, and
    /// everything read before is to be forgotten).
    pub(crate) fn rebind(&mut self, bucket: &Bucket) -> state_core::Result<()> {
        if self
            .watcher
            .as_ref()
            .is_some_and(|(c, _)| c == bucket.name())
        {
            return Ok(());
        }
        if self.watcher.is_some() {
            self.pending.lock().overflow();
        }
        let opts = WatchOptions::new(PENDING_MAX, 64 << 20, false).with_labels(true);
        let w = Arc::new(bucket.watch_with("", opts)?);
        let weak: Weak<Watcher> = Arc::downgrade(&w);
        let pending = Arc::clone(&self.pending);
        let ready = Arc::clone(&self.ready);
        let id = self.id;
        w.set_waker(move || {
            // On the writing thread, under the store's write lock: quick, no store.
            if let Some(w) = weak.upgrade() {
                let own = WRITER.with(Cell::get) == id;
                let mut p = pending.lock();
                loop {
                    match w.try_recv() {
                        Ok(Notice::Change(e)) if e.label() == Some(FLUSH_LABEL) => p.overflow(),
                        Ok(Notice::Change(e)) => {
                            if p.flush {
                                continue;
                            }
                            if p.keys.len() >= PENDING_MAX {
                                p.overflow();
                            } else {
                                p.keys.push((e.key().into(), own));
                            }
                        }
                        Ok(Notice::Lagged(_)) | Err(RecvError::Ended) => {
                            p.overflow();
                            break;
                        }
                        Err(RecvError::Empty) => break,
                    }
                }
            }
            ready.notify_one();
        });
        self.watcher = Some((bucket.name().to_string(), w));
        Ok(())
    }

    /// CLIENT CACHING YES / NO: applies to the next command. The caller checked
    /// the mode ([`Tracking::optin`], [`Tracking::optout`]).
    pub(crate) fn set_caching(&mut self) {
        self.caching = true;
    }

    /// Whether NOLOOP was given.
    pub(crate) fn noloop(&self) -> bool {
        self.opts.noloop
    }

    /// Whether OPTIN was given.
    pub(crate) fn optin(&self) -> bool {
        self.opts.optin
    }

    /// Whether OPTOUT was given.
    pub(crate) fn optout(&self) -> bool {
        self.opts.optout
    }

    /// Called after every command: CLIENT CACHING's choice lapses after the
    /// next command that is not a CLIENT subcommand, outside MULTI (`keep`: this
    /// one was such a command), as in Redis.
    pub(crate) fn command_done(&mut self, keep: bool) {
        if !keep {
            self.caching = false;
        }
    }

    /// Remembers the keys a read-only command read (default mode, as OPTIN /
    /// OPTOUT and CLIENT CACHING say); keys past the table's limit push out the
    /// oldest, which are invalidated at the next [`Tracking::drain`].
    pub(crate) fn read<'a>(&mut self, keys: impl Iterator<Item = &'a [u8]>) {
        if self.opts.bcast {
            return;
        }
        let cached = self.caching;
        if (self.opts.optin && !cached) || (self.opts.optout && cached) {
            return;
        }
        for k in keys {
            let Ok(k) = std::str::from_utf8(k) else {
                continue;
            };
            self.table.insert(k);
            while self.table.keys.len() > self.max_keys {
                match self.table.evict() {
                    Some(old) => self.evicted.push(old),
                    None => break,
                }
            }
        }
    }

    /// Writes the invalidations of the changes waiting (when `push`: RESP3; a
    /// RESP2 connection cannot be sent pushes, as in Redis, but its table is kept
    /// the same way).
    pub(crate) fn drain(&mut self, push: bool, out: &mut Out) {
        for k in std::mem::take(&mut self.evicted) {
            if push {
                invalidate(out, &[&k]);
            }
        }
        let (keys, flush) = {
            let mut p = self.pending.lock();
            if p.keys.is_empty() && !p.flush {
                return;
            }
            (std::mem::take(&mut p.keys), std::mem::take(&mut p.flush))
        };
        if flush {
            self.table.clear();
            if push {
                out.push(2);
                out.bulk(b"invalidate");
                out.null();
            }
            return;
        }
        let noloop = self.opts.noloop;
        if self.opts.bcast {
            let all = [Vec::new()];
            let prefixes: Vec<&Vec<u8>> = if self.prefixes.is_empty() {
                all.iter().collect()
            } else {
                self.prefixes.iter().collect()
            };
            for p in prefixes {
                let hit: BTreeSet<&str> = keys
                    .iter()
                    .filter(|(k, own)| !(noloop && *own) && k.as_bytes().starts_with(p))
                    .map(|(k, _)| &**k)
                    .collect();
                if push && !hit.is_empty() {
                    invalidate(out, &hit.into_iter().collect::<Vec<_>>());
                }
            }
            return;
        }
        for (k, own) in &keys {
            if self.table.remove(k) && push && !(noloop && *own) {
                invalidate(out, &[k]);
            }
        }
    }

    /// CLIENT TRACKINGINFO.
    pub(crate) fn info(t: Option<&Tracking>, out: &mut Out) {
        out.map(3);
        out.bulk(b"flags");
        let mut flags: Vec<&str> = Vec::new();
        match t {
            None => flags.push("off"),
            Some(t) => {
                flags.push("on");
                let cached = t.caching;
                if t.opts.bcast {
                    flags.push("bcast");
                }
                if t.opts.optin {
                    flags.push("optin");
                    if cached {
                        flags.push("caching-yes");
                    }
                }
                if t.opts.optout {
                    flags.push("optout");
                    if cached {
                        flags.push("caching-no");
                    }
                }
                if t.opts.noloop {
                    flags.push("noloop");
                }
            }
        }
        out.set(flags.len());
        for f in flags {
            out.bulk(f.as_bytes());
        }
        out.bulk(b"redirect");
        out.int(if t.is_some() { 0 } else { -1 });
        out.bulk(b"prefixes");
        let prefixes: Vec<&Vec<u8>> = t.map(|t| t.prefixes.iter().collect()).unwrap_or_default();
        out.array(prefixes.len());
        for p in prefixes {
            out.bulk(p);
        }
    }

    /// How many keys the table holds.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.keys.len()
    }
}

/// `>2 invalidate [keys]`.
fn invalidate(out: &mut Out, keys: &[&str]) {
    out.push(2);
    out.bulk(b"invalidate");
    out.array(keys.len());
    for k in keys {
        out.bulk(k.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> (tempfile::TempDir, state_core::Store, Bucket) {
        let dir = tempfile::tempdir().unwrap();
        let store = state_core::Store::open(dir.path().join("s")).unwrap();
        let b = store.bucket("c1").unwrap();
        (dir, store, b)
    }

    fn text(out: &Out) -> String {
        String::from_utf8_lossy(&out.buf).into_owned()
    }

    #[test]
    fn a_read_key_is_invalidated_once_and_forgotten() {
        let (_d, _s, b) = bucket();
        let mut t = Tracking::new(7, &b, Options::default(), 10, Arc::default()).unwrap();
        let mut out = Out::new(true);
        t.read([&b"k"[..]].into_iter());
        b.set("k", "1").unwrap();
        b.set("other", "1").unwrap();
        t.drain(true, &mut out);
        assert_eq!(text(&out), ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
        out.buf.clear();
        b.set("k", "2").unwrap();
        t.drain(true, &mut out);
        assert!(out.buf.is_empty());
    }

    #[test]
    fn noloop_skips_the_connections_own_writes_only() {
        let (_d, _s, b) = bucket();
        let opts = Options {
            noloop: true,
            ..Options::default()
        };
        let mut t = Tracking::new(7, &b, opts, 10, Arc::default()).unwrap();
        let mut out = Out::new(true);
        t.read([&b"k"[..]].into_iter());
        as_writer(7, || b.set("k", "1")).unwrap();
        t.drain(true, &mut out);
        assert!(out.buf.is_empty());
        t.read([&b"k"[..]].into_iter());
        as_writer(8, || b.set("k", "2")).unwrap();
        t.drain(true, &mut out);
        assert!(text(&out).contains("invalidate"));
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest() {
        let (_d, _s, b) = bucket();
        let mut t = Tracking::new(1, &b, Options::default(), 2, Arc::default()).unwrap();
        let mut out = Out::new(true);
        for k in ["a", "b", "c"] {
            t.read([k.as_bytes()].into_iter());
        }
        assert_eq!(t.tracked(), 2);
        t.drain(true, &mut out);
        assert_eq!(text(&out), ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n");
    }

    #[test]
    fn overflow_becomes_one_null_invalidation() {
        let (_d, _s, b) = bucket();
        let mut t = Tracking::new(1, &b, Options::default(), 10, Arc::default()).unwrap();
        let mut out = Out::new(true);
        t.read([&b"k"[..]].into_iter());
        t.pending.lock().overflow();
        t.drain(true, &mut out);
        assert_eq!(text(&out), ">2\r\n$10\r\ninvalidate\r\n_\r\n");
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn overlapping_prefixes_are_refused() {
        let o = Options {
            bcast: true,
            prefixes: vec![b"a:".to_vec(), b"a:b".to_vec()],
            ..Options::default()
        };
        assert!(Tracking::check(None, &o).unwrap_err().contains("overlaps"));
    }
}
