//! The memfile engine: every entry in memory, every write call appended to a log as
//! one checksummed record before it returns, compacted into snapshots in the
//! background. File format and crash-safety argument: `docs/memfile-format.md`.
//!
//! Concurrency: readers take a read lock on the state (never blocked by compaction
//! for longer than a writer is). Writers hold the `writer` mutex across log append and
//! state update, so the log's order is the order in which writes became visible.
//! Compaction switches logs under the writer mutex (a pointer swap) and copies the
//! state in chunks of [`snapshot::CHUNK_ENTRIES`] under short read locks.

mod compact;
mod files;
mod format;
pub(crate) mod fuzzing;
mod log;
mod open;
mod snapshot;
mod state;

use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::cell::{Cell, RefCell};
use std::ops::Deref;

use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use self::log::LogFile;
use self::state::{Entry, State};
use super::{BucketHint, EngineFactory, StorageEngine, StoreContext, Visit, WriteOp};
use crate::error::{Error, Result};
use crate::fileio::{FileIo, Io};

/// The memfile engine's options: when its log is compacted into a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemfileConfig {
    /// Compaction starts when the logs since the last snapshot hold at least this
    /// many bytes (default 4 MiB)...
    pub compact_min_log_bytes: u64,
    /// ...and at least this many times the live data (default 2; must be > 0). At
    /// open the factor is 1, so the next open loads a snapshot.
    pub compact_ratio: u64,
    /// The file-changing calls (the real ones unless a test installed a hook).
    io: Io,
}

impl Default for MemfileConfig {
    fn default() -> MemfileConfig {
        MemfileConfig {
            compact_min_log_bytes: 4 << 20,
            compact_ratio: 2,
            io: Io::real(),
        }
    }
}

impl MemfileConfig {
    /// This config with another minimum log size for compaction, in bytes.
    pub fn compact_min_log_bytes(mut self, bytes: u64) -> MemfileConfig {
        self.compact_min_log_bytes = bytes;
        self
    }

    /// This config with another log-to-live-data ratio for compaction (must be > 0).
    pub fn compact_ratio(mut self, ratio: u64) -> MemfileConfig {
        self.compact_ratio = ratio;
        self
    }

    /// Test hook: the engine's file-changing calls, and the store's marker file
    /// writes, go through `io` (see [`crate::fileio`]), so tests can fail them or
    /// record them for power-loss images.
    #[doc(hidden)]
    pub fn with_file_io(mut self, io: Arc<dyn FileIo>) -> MemfileConfig {
        self.io = Io::custom(io);
        self
    }
}

impl EngineFactory for MemfileConfig {
    fn name(&self) -> &str {
        "memfile"
    }

    fn open(&self, dir: &Path, _store: &StoreContext) -> Result<Box<dyn StorageEngine>> {
        if self.compact_ratio == 0 {
            return Err(Error::invalid("compact_ratio must be greater than zero"));
        }
        Ok(Box::new(MemfileEngine::open(dir, self.clone())?))
    }

    fn recognize(&self, dir: &Path) -> Result<Option<String>> {
        files::first_own_file(dir)
    }
}

/// Batches of at least this many operations look their keys up once before taking the
/// write lock ([`State::warm`]): at 1M records, Set Multiple 1000 spent half its time
/// waiting for one key's cache misses after another.
const WARM_MIN_OPS: usize = 8;

/// Entries visited per read-lock acquisition in `scan`, so a long scan lets writers in.
const SCAN_CHUNK: usize = 256;

pub(crate) struct MemfileEngine {
    inner: Arc<Inner>,
    compactor: Option<compact::Compactor>,
    /// Until [`StorageEngine::finish_open`]: the file changes the open will make.
    pending: Option<open::Repairs>,
}

/// What the engine and its compaction thread share.
pub(super) struct Inner {
    dir: PathBuf,
    state: RwLock<State>,
    writer: Mutex<Writer>,
    config: MemfileConfig,
    /// Held for the engine's lifetime: the exclusive `flock` on `memfile.lock`.
    _lock: File,
}

/// The log's write side.
pub(super) struct Writer {
    log: Arc<LogFile>,
    /// Logs switched away from whose last records may not be synced yet; `sync`
    /// syncs them (oldest first) before the current log.
    retired: Vec<Arc<LogFile>>,
    /// Length of the current log's records (the file may be longer: see
    /// [`log::Appender`]).
    log_len: u64,
    /// Writes records to the current log.
    appender: log::Appender,
    /// Bytes of the logs newer than the snapshot, before the current one.
    older_logs_bytes: u64,
    /// Sequence number of the next record.
    next_seq: u64,
    /// Every record with a smaller sequence number has been synced (a sync that
    /// covered it returned). Written into each record ([`log::Head`]), so recovery
    /// can tell damage in synced data from an unsynced tail.
    synced_seq: u64,
    /// Set when the log can no longer be trusted: a failed append could not be undone
    /// (the log's end is unknown), or a sync failed (the kernel may have dropped the
    /// pages it could not write, and a later sync that succeeds would not cover
    /// them). Every later write and sync is refused until the store is reopened,
    /// which reads the log again.
    failed: Option<String>,
    /// Whether a compaction has been requested or is running.
    compacting: bool,
    /// Log size under which a compaction that failed is not retried.
    retry_above: u64,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Reused: where each put's entry lies in `buf`.
    entries: Vec<std::ops::Range<usize>>,
}

impl Writer {
    /// The error for any write or sync once [`Writer::failed`] is set.
    #[inline]
    fn check_failed(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(self.refusal(why)),
        }
    }

    #[cold]
    fn refusal(&self, why: &str) -> Error {
        Error::io(
            &self.log.path,
            std::io::Error::other(format!(
                "{why}; this store refuses writes and syncs until it is reopened"
            )),
        )
    }

    /// The [`log::Head`] of the next record.
    fn head(&self) -> log::Head {
        log::Head {
            seq: self.next_seq,
            synced: self.synced_seq,
        }
    }

    /// Bytes of log that a compaction would fold into a snapshot.
    fn log_bytes(&self) -> u64 {
        self.older_logs_bytes + self.log_len
    }

    /// Appends the record in `self.buf` (a frame at its start). On failure, cuts the
    /// log back so no partial record stays in front of later ones.
    fn append(&mut self) -> Result<()> {
        self.check_failed()?;
        if let Err(e) = self.appender.append(&self.log, self.log_len, &self.buf) {
            if let Err(e2) = self.appender.cut_back(&self.log, self.log_len) {
                self.failed = Some(format!(
                    "a write failed and could not be undone ({e}; then truncating failed: {e2})"
                ));
            }
            return Err(Error::io(&self.log.path, e));
        }
        self.log_len += self.buf.len() as u64;
        self.next_seq += 1;
        Ok(())
    }
}

impl MemfileEngine {
    /// Opens (creating if needed) a memfile store in the existing directory `dir`:
    /// takes the lock, loads the newest snapshot, replays the logs after it. Reads
    /// work at once; nothing in the directory changes (torn tails, leftovers) and
    /// nothing may be written until [`StorageEngine::finish_open`].
    ///
    /// # Errors
    /// *locked* if another process has it open; *corrupt* (files untouched) if a
    /// snapshot or a log record other than a torn last one fails its checks;
    /// *I/O*.
    pub(crate) fn open(dir: &Path, config: MemfileConfig) -> Result<MemfileEngine> {
        let (inner, repairs) = open::open(dir, config)?;
        Ok(MemfileEngine {
            inner: Arc::new(inner),
            compactor: None,
            pending: Some(repairs),
        })
    }

    /// Requests a compaction if the log has outgrown the live data. At open, the
    /// threshold is 1x instead of 2x, so the next open loads a snapshot.
    fn maybe_compact(&self, w: &mut Writer, at_open: bool) {
        if w.compacting || w.failed.is_some() {
            return;
        }
        let log = w.log_bytes();
        let config = &self.inner.config;
        if log < config.compact_min_log_bytes || log < w.retry_above {
            return;
        }
        let live = self.inner.state.read().live_bytes;
        let ratio = if at_open { 1 } else { config.compact_ratio };
        if log >= live.saturating_mul(ratio) {
            w.compacting = true;
            if let Some(c) = &self.compactor {
                c.request();
            }
        }
    }

    fn check_ops(ops: &[WriteOp<'_>]) -> Result<()> {
        if ops.is_empty() {
            return Err(Error::Internal("an empty write reached the engine".into()));
        }
        Ok(())
    }
}

/// Makes every record appended so far durable: the retired logs (oldest first, so a
/// record never reaches the disk ahead of those before it), then the current one.
///
/// A failed sync marks the writer failed ([`Writer::failed`]): this and every later
/// write and sync fail until the store is reopened. Retrying would be wrong — after a
/// failed `fsync` Linux may have marked the pages it could not write clean, so a
/// later `fsync` that succeeds says nothing about them (PostgreSQL's "fsyncgate").
pub(super) fn sync_logs(inner: &Inner) -> Result<()> {
    let (retired, current, through) = {
        let w = inner.writer.lock();
        w.check_failed()?;
        (w.retired.clone(), Arc::clone(&w.log), w.next_seq)
    };
    let outcome = retired
        .iter()
        .chain(std::iter::once(&current))
        .try_for_each(|log| log.sync());
    let mut w = inner.writer.lock();
    if let Err(e) = outcome {
        w.failed.get_or_insert_with(|| {
            format!(
                "a sync of the log failed ({e}), so records written before it may not be on disk"
            )
        });
        return Err(e);
    }
    w.synced_seq = w.synced_seq.max(through);
    if !retired.is_empty() {
        w.retired
            .retain(|l| !retired.iter().any(|done| Arc::ptr_eq(l, done)));
    }
    Ok(())
}

/// How a chunk of a scan ended.
enum Chunk<'a> {
    /// The visitor said stop.
    Stopped,
    /// The range ended.
    Ended,
    /// [`SCAN_CHUNK`] entries were visited; the last one is given, to resume after.
    Full(&'a Entry),
}

/// How many entries ahead of the visitor a scan prefetches.
const PREFETCH_AHEAD: usize = 8;

/// Visits up to [`SCAN_CHUNK`] entries of `it`.
///
/// Entries are separate allocations, in memory in the order they were written, not in
/// key order: without help every step of a scan waits for a cache miss (95% of a
/// scan's time in a profile). A second iterator runs [`PREFETCH_AHEAD`] entries ahead
/// and asks the CPU to fetch them, so the misses overlap.
fn visit_chunk<'a>(
    it: impl Iterator<Item = &'a Entry> + Clone,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
) -> Chunk<'a> {
    let mut ahead = it.clone();
    for e in ahead.by_ref().take(PREFETCH_AHEAD) {
        e.prefetch();
    }
    let mut n = 0;
    for e in it {
        if let Some(next) = ahead.next() {
            next.prefetch();
        }
        if visit(e.key(), e.value()) == Visit::Stop {
            return Chunk::Stopped;
        }
        n += 1;
        if n == SCAN_CHUNK {
            return Chunk::Full(e);
        }
    }
    Chunk::Ended
}

thread_local! {
    /// The engine (its `Inner`'s address) whose state this thread holds read guards
    /// on through [`Inner::read_state`], how many, and how many guards
    /// `READING_MORE` holds: the common case, in a `Cell` without a destructor, so
    /// each access is one thread-local load or store (in a shared library such as
    /// the C or Python module's, each is a call).
    static READING: Cell<(usize, u32, u32)> = const { Cell::new((0, 0, 0)) };
    /// Other engines read at the same time (a visitor of one engine reading
    /// another): one element per guard.
    static READING_MORE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A read guard on an engine's state, remembered on this thread while it lives.
struct StateRead<'a> {
    guard: RwLockReadGuard<'a, State>,
    addr: usize,
    /// Whether it is counted in `READING` (else listed in `READING_MORE`).
    counted: bool,
}

impl Deref for StateRead<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.guard
    }
}

impl Drop for StateRead<'_> {
    #[inline]
    fn drop(&mut self) {
        READING.with(|r| {
            let (addr, n, more) = r.get();
            if self.counted {
                r.set(if n <= 1 {
                    (0, 0, more)
                } else {
                    (addr, n - 1, more)
                });
            } else {
                forget_more(self.addr);
                r.set((addr, n, more.saturating_sub(1)));
            }
        });
    }
}

/// Records a guard on `addr` in `READING_MORE`; returns whether it held one already.
#[cold]
fn remember_more(addr: usize) -> bool {
    READING_MORE.with(|list| {
        let mut list = list.borrow_mut();
        let nested = list.contains(&addr);
        list.push(addr);
        nested
    })
}

/// Removes one guard on `addr` from `READING_MORE`.
#[cold]
fn forget_more(addr: usize) {
    READING_MORE.with(|list| {
        let mut list = list.borrow_mut();
        if let Some(i) = list.iter().rposition(|&a| a == addr) {
            list.swap_remove(i);
        }
    });
}

impl Inner {
    /// A read guard on the state. A read nested inside a visitor of this engine (see
    /// the trait's "Reads may nest") finds this thread already holding one: it is then
    /// taken recursively, since queueing behind a waiting writer would wait for this
    /// thread's own guard. Reads of other engines, and first reads, queue fairly.
    #[inline]
    fn read_state(&self) -> StateRead<'_> {
        let addr = std::ptr::from_ref(self) as usize;
        // Recorded before the lock is taken (taking it cannot fail), so that one
        // thread-local access does both.
        let (nested, counted) = READING.with(|r| {
            let (held, n, more) = r.get();
            if held == addr || (held == 0 && more == 0) {
                r.set((addr, n + 1, more));
                (held == addr, true)
            } else {
                r.set((held, n, more + 1));
                (remember_more(addr), false)
            }
        });
        let guard = if nested {
            self.state.read_recursive()
        } else {
            self.state.read()
        };
        StateRead {
            guard,
            addr,
            counted,
        }
    }
}

impl Drop for MemfileEngine {
    fn drop(&mut self) {
        if let Some(repairs) = self.pending.take() {
            // Opened but never finished (the store refused what was loaded): leave
            // the files as they were.
            repairs.abandon();
            return;
        }
        if let Some(c) = self.compactor.take() {
            c.stop();
        }
        // Drop the log's preallocated tail. Best effort: if this fails, the next open
        // reads the zeros as the log's end and cuts them off itself.
        let mut w = self.inner.writer.lock();
        let w = &mut *w;
        let _ = w.appender.cut_back(&w.log, w.log_len);
    }
}

impl MemfileEngine {
    /// [`StorageEngine::write`]; returns whether the last op's key was stored
    /// before it (what [`StorageEngine::write_one`] reports).
    fn write_reporting(&self, ops: &[WriteOp<'_>]) -> Result<bool> {
        debug_assert!(self.pending.is_none(), "a write before finish_open");
        Self::check_ops(ops)?;
        let mut guard = self.inner.writer.lock();
        let w = &mut *guard;
        w.buf.clear();
        w.entries.clear();
        w.buf.extend_from_slice(&[0u8; format::FRAME_HEADER_LEN]);
        let head = w.head();
        log::encode_batch(&mut w.buf, head, ops, &mut w.entries)?;
        format::seal_frame(&mut w.buf, 0)?;
        w.append()?;
        let mut replaced = false;
        {
            // Entries are made under the state lock, each just before it replaces the
            // old one: an overwrite of a value of the same length is copied in place
            // (no allocation), and otherwise the allocator hands the freed entry's
            // memory to the next. Measured faster (Set Multiple 1000 at 100K 0.85-0.88
            // ms vs 1.09-1.10 ms) than allocating them all before taking the lock.
            let mut made = w.entries.iter().map(|r| &w.buf[r.clone()]);
            if ops.len() >= WARM_MIN_OPS {
                // Under the read lock: readers go on meanwhile.
                self.inner.state.read().warm(ops);
            }
            let mut st = self.inner.state.write();
            for op in ops {
                replaced = match *op {
                    WriteOp::Put { bucket, .. } => match made.next() {
                        Some(e) => st.put_encoded(bucket, e),
                        None => false,
                    },
                    WriteOp::Delete { bucket, key } => st.delete(bucket, key),
                };
            }
        }
        self.maybe_compact(w, false);
        Ok(replaced)
    }
}

impl StorageEngine for MemfileEngine {
    fn finish_open(&mut self) -> Result<()> {
        let Some(repairs) = self.pending.take() else {
            return Ok(());
        };
        repairs.apply(&self.inner.config.io, &self.inner.dir)?;
        self.compactor = Some(compact::Compactor::start(&self.inner)?);
        self.maybe_compact(&mut self.inner.writer.lock(), true);
        Ok(())
    }

    fn compact(&self) -> Result<bool> {
        compact::compact_now(&self.inner).map(|()| true)
    }

    fn damaged(&self, path: &Path, detail: String) -> Error {
        match self.pending.as_ref().map(|r| &r.dropped) {
            Some(dropped) if !dropped.is_empty() => Error::corrupt(
                path,
                format!(
                    "{detail} (the memfile engine read these as torn tails: {})",
                    dropped.join("; ")
                ),
            ),
            _ => Error::corrupt(path, detail),
        }
    }

    fn get(&self, bucket: &str, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.get_hinted(bucket, &BucketHint::new(), key, visit)
    }

    fn get_hinted(
        &self,
        bucket: &str,
        hint: &BucketHint,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<bool> {
        let st = self.inner.read_state();
        match st.buckets.get_hinted(bucket, hint).and_then(|b| b.get(key)) {
            Some(e) => {
                visit(e.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get_many(
        &self,
        bucket: &str,
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<()> {
        // Random keys of a big store are cache misses (hash slot, then entry). Looking
        // a chunk up in a tight loop first lets the CPU overlap those misses across
        // keys, where a visit after each look-up would wait for every one in turn.
        // One read lock per chunk, so a huge batch does not hold writers off.
        for (n, chunk) in keys.chunks(SCAN_CHUNK).enumerate() {
            let st = self.inner.read_state();
            let Some(map) = st.buckets.get(bucket) else {
                continue;
            };
            let found: Vec<Option<&Entry>> = chunk.iter().map(|k| map.get(k)).collect();
            for (i, e) in found.into_iter().enumerate() {
                if let Some(e) = e {
                    visit(n * SCAN_CHUNK + i, e.value());
                }
            }
        }
        Ok(())
    }

    fn write(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        self.write_reporting(ops).map(drop)
    }

    fn write_one(&self, op: &WriteOp<'_>) -> Result<Option<bool>> {
        self.write_reporting(std::slice::from_ref(op)).map(Some)
    }

    fn reports_prior(&self) -> bool {
        true
    }

    fn scan(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()> {
        // Visits under the read lock in chunks, resuming after the last key seen.
        let mut resume: Option<Vec<u8>> = None;
        loop {
            let st = self.inner.read_state();
            let Some(map) = st.buckets.get(bucket) else {
                return Ok(());
            };
            let (lo, hi) = match (&resume, reverse) {
                (None, _) => (lower, upper),
                (Some(k), false) => (Bound::Excluded(k.as_slice()), upper),
                (Some(k), true) => (lower, Bound::Excluded(k.as_slice())),
            };
            let last = match map.entries_within(lo, hi) {
                None => return Ok(()),
                Some(r) if reverse => visit_chunk(r.rev(), visit),
                Some(r) => visit_chunk(r, visit),
            };
            match last {
                Chunk::Stopped => return Ok(()),
                Chunk::Full(e) => {
                    let k = resume.get_or_insert_with(Vec::new);
                    k.clear();
                    k.extend_from_slice(e.key());
                }
                Chunk::Ended => return Ok(()),
            }
        }
    }

    fn count(&self, bucket: &str) -> Result<u64> {
        let st = self.inner.read_state();
        Ok(st.buckets.get(bucket).map_or(0, |b| b.len() as u64))
    }

    fn bucket_names(&self) -> Result<Vec<String>> {
        let st = self.inner.read_state();
        let mut names: Vec<String> = st.buckets.keys().map(|k| k.to_string()).collect();
        names.sort_unstable();
        Ok(names)
    }

    fn remove_bucket(&self, bucket: &str) -> Result<bool> {
        debug_assert!(self.pending.is_none(), "a write before finish_open");
        let mut guard = self.inner.writer.lock();
        let w = &mut *guard;
        if !self.inner.state.read().buckets.contains_key(bucket) {
            return Ok(false);
        }
        w.buf.clear();
        w.buf.extend_from_slice(&[0u8; format::FRAME_HEADER_LEN]);
        let head = w.head();
        log::encode_remove_bucket(&mut w.buf, head, bucket)?;
        format::seal_frame(&mut w.buf, 0)?;
        w.append()?;
        let removed = self.inner.state.write().remove_bucket(bucket);
        self.maybe_compact(w, false);
        Ok(removed)
    }

    fn sync(&self) -> Result<()> {
        sync_logs(&self.inner)
    }

    fn disk_size(&self) -> Result<u64> {
        files::disk_size(&self.inner.dir)
    }

    fn lock_file(&self) -> Option<PathBuf> {
        Some(self.inner.dir.join(files::LOCK_FILE))
    }

    fn file_io(&self) -> Io {
        self.inner.config.io.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this thread's bookkeeping says it holds a read guard on `inner`.
    fn held(inner: &Inner) -> bool {
        let addr = std::ptr::from_ref(inner) as usize;
        READING.get().0 == addr || READING_MORE.with(|r| r.borrow().contains(&addr))
    }

    #[test]
    fn read_guards_are_tracked_per_engine_in_any_drop_order() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = MemfileEngine::open(da.path(), MemfileConfig::default()).unwrap();
        let b = MemfileEngine::open(db.path(), MemfileConfig::default()).unwrap();
        let (a, b) = (&*a.inner, &*b.inner);
        let ra = a.read_state();
        let rb = b.read_state();
        assert!(held(a) && held(b));
        // `a` released first: `b`, still held, must still count as held, or a read
        // of `b` nested in its visitor would queue behind a waiting writer.
        drop(ra);
        assert!(!held(a) && held(b));
        let rb2 = b.read_state();
        let ra2 = a.read_state();
        assert!(held(a) && held(b));
        drop(rb);
        assert!(held(b), "one of two guards on b is left");
        drop(rb2);
        assert!(!held(b) && held(a));
        drop(ra2);
        assert!(!held(a) && !held(b));
        assert_eq!(READING.get(), (0, 0, 0));
        assert!(READING_MORE.with(|r| r.borrow().is_empty()));
    }
}
