//! The sled 0.34 engine (the default).
//!
//! Layout: one sled tree for the whole store, keys `bucket 0x00 key`. Bucket names
//! never contain NUL, so the prefix is unambiguous and a bucket is one contiguous
//! range. One tree instead of one per bucket because many sled trees blow up disk
//! space (sled#1484) and a batch across trees would need a transaction.
//!
//! Deliberate configuration (see docs/design.md, "sled engine"):
//! - a page cache of 128 MiB by default instead of sled's 1 GiB (see
//!   [`DEFAULT_CACHE_SIZE`]);
//! - sled's own background flusher runs at the store's flush interval (it also
//!   garbage-collects sled's segments, which keeps memory bounded), but durability
//!   does not rely on it: the store's own flush calls [`StorageEngine::sync`], which
//!   is sled's `flush` (only `sync_file_range` on Linux, which does not reach the
//!   device) followed by a real `fdatasync` of sled's log file and blob files;
//! - after each multi-record sled batch the engine has crossbeam-epoch free the
//!   tree-node copies the batch left behind (`collect_garbage`): sled 0.34 alone
//!   let them pile up, 3.2 GiB peak RSS for 1M records in 10K-record batches;
//! - `open` runs inside `catch_unwind`, because sled 0.34 can panic on a
//!   crash-damaged directory (sled#1387); the panic becomes a *corrupt* error.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{EngineFactory, StorageEngine, StoreContext, Visit, WriteOp};
use crate::error::{plain_io_error, Error, Result};
use crate::fileio::{FileIo, Io};

/// Default page-cache size of the sled engine: 128 MiB, not sled's 1 GiB. The
/// process's peak while loading 1M records is 2-3 times the cache (291 MiB in
/// 1000-record batches, about 400 MiB in 10K-record ones); a smaller cache lowers it
/// (32 MiB: 133 and 277 MiB) but holds less of the store (docs/benchmarks.md).
pub const DEFAULT_CACHE_SIZE: u64 = 128 << 20;

/// Files that show a directory holds a sled store.
const SLED_FILES: [&str; 3] = ["conf", "db", "blobs"];

/// The sled engine's options.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SledConfig {
    /// sled's page-cache size in bytes (default [`DEFAULT_CACHE_SIZE`]). sled's real
    /// memory use can be a few times this figure. Must be > 0.
    pub cache_size: u64,
    /// The file calls libstate itself makes on a sled store (its syncs of sled's
    /// files, the store's marker): real unless a test installed another.
    io: Io,
}

impl Default for SledConfig {
    fn default() -> SledConfig {
        SledConfig {
            cache_size: DEFAULT_CACHE_SIZE,
            io: Io::real(),
        }
    }
}

impl SledConfig {
    /// This config with another page-cache size (bytes; must be > 0).
    pub fn cache_size(mut self, bytes: u64) -> SledConfig {
        self.cache_size = bytes;
        self
    }

    /// Test hook: the file calls libstate makes on this store — `fdatasync` of
    /// sled's log and blob files, directory syncs, the store's marker file — go
    /// through `io` (see [`crate::fileio`]), so tests can fail them. sled's own file
    /// calls do not (sled 0.34 has no such seam).
    #[doc(hidden)]
    pub fn with_file_io(mut self, io: Arc<dyn FileIo>) -> SledConfig {
        self.io = Io::custom(io);
        self
    }
}

impl EngineFactory for SledConfig {
    fn name(&self) -> &str {
        "sled"
    }

    /// Opens sled in `dir`; sled's own flusher runs at the store's flush interval.
    fn open(&self, dir: &Path, store: &StoreContext) -> Result<Box<dyn StorageEngine>> {
        if self.cache_size == 0 {
            return Err(Error::invalid("cache_size must be greater than zero"));
        }
        Ok(Box::new(SledEngine::open(
            dir,
            self.cache_size,
            store.flush_interval,
            self.io.clone(),
        )?))
    }

    fn recognize(&self, dir: &Path) -> Result<Option<String>> {
        for name in SLED_FILES {
            match std::fs::symlink_metadata(dir.join(name)) {
                Ok(_) => return Ok(Some(name.to_string())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&dir.join(name), e)),
            }
        }
        Ok(None)
    }
}

/// Keys removed per batch when dropping a bucket, to bound memory.
const REMOVE_CHUNK: usize = 10_000;

pub(crate) struct SledEngine {
    db: sled::Db,
    path: PathBuf,
    /// sled's log file, opened read-only to fdatasync it: fsync on any descriptor of
    /// a file flushes that file's data and the device cache.
    log: File,
    /// Large values live in files under `blobs/`, which sled writes without any
    /// sync; these are the ones already made durable (blob files never change).
    synced_blobs: parking_lot::Mutex<HashSet<OsString>>,
    /// Set once sled has reported an I/O error (a full disk, a failing device). sled
    /// 0.34 then never finishes dropping its `Db`: the drop waits forever for a
    /// flush that cannot happen (seen on a full tmpfs). Such an engine is abandoned
    /// when dropped instead (see `Drop`), so closing returns.
    failed: std::sync::atomic::AtomicBool,
    /// Set when an `fdatasync` libstate made failed: what it covered may be lost
    /// and a later sync that succeeds would not prove otherwise, so every write and
    /// sync is refused until the store is reopened.
    sync_failed: parking_lot::Mutex<Option<String>>,
    io: Io,
}

impl Drop for SledEngine {
    fn drop(&mut self) {
        if self.failed.load(std::sync::atomic::Ordering::Acquire) {
            // Keep one reference to the `Db` for the rest of the process, so its
            // never-ending drop never runs. Its threads, memory and file lock stay
            // until the process exits; reopening the directory in this process is
            // *locked* until then (the close error says so).
            std::mem::forget(self.db.clone());
        }
    }
}

impl SledEngine {
    /// Opens (or creates) a sled store in the existing directory `path`.
    pub(crate) fn open(
        path: &Path,
        cache_bytes: u64,
        flush_every: std::time::Duration,
        io: Io,
    ) -> Result<SledEngine> {
        // sled's flusher also garbage-collects its segments; without it sled's memory
        // grows several-fold under sustained writes (measured: docs/benchmarks.md).
        let flush_every_ms = u64::try_from(flush_every.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(flush_every_ms))
            .mode(sled::Mode::LowSpace);
        let db = open_catching(path, || config.open())?;
        let log_path = path.join("db");
        let log = File::open(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let engine = SledEngine {
            db,
            path: path.to_path_buf(),
            log,
            synced_blobs: parking_lot::Mutex::new(HashSet::new()),
            failed: std::sync::atomic::AtomicBool::new(false),
            sync_failed: parking_lot::Mutex::new(None),
            io,
        };
        // sled created its files; make their directory entries durable.
        engine.io.sync_dir(path).map_err(|e| Error::io(path, e))?;
        Ok(engine)
    }

    /// fsyncs blob files sled wrote since the last sync, and their directory.
    fn sync_blobs(&self) -> Result<()> {
        let dir = self.path.join("blobs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut synced = self.synced_blobs.lock();
        let mut present = HashSet::new();
        let mut new = false;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                let path = entry.path();
                match File::open(&path).and_then(|f| self.io.sync_data(&f, &path)) {
                    Ok(()) => new = true,
                    // sled garbage-collected it meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(&path, e)),
                }
            }
            present.insert(name);
        }
        *synced = present;
        if new {
            self.io.sync_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(())
    }

    /// *I/O* error if a sync failed earlier (see `sync_failed`).
    #[inline]
    fn check_synced(&self) -> Result<()> {
        match &*self.sync_failed.lock() {
            None => Ok(()),
            Some(why) => Err(Error::io(
                &self.path.join("db"),
                io::Error::other(format!(
                    "{why}; this store refuses writes and syncs until it is reopened"
                )),
            )),
        }
    }

    /// Refuses every later write and sync, saying `why`.
    fn poison(&self, why: String) {
        let mut failed = self.sync_failed.lock();
        if failed.is_none() {
            *failed = Some(why);
        }
    }

    /// Records that a sync of `path` failed with `e` and returns its error.
    fn sync_failed(&self, path: &Path, e: io::Error) -> Error {
        self.poison(format!("a sync of {} failed ({e})", path.display()));
        Error::io(path, e)
    }

    fn map_err(&self, e: sled::Error) -> Error {
        if matches!(e, sled::Error::Io(_)) {
            self.failed
                .store(true, std::sync::atomic::Ordering::Release);
        }
        map_error(&self.path, e)
    }
}

/// Runs sled's open, turning a panic (sled 0.34 panics on some damaged stores,
/// sled#1387) into a *corrupt* error naming the store.
fn open_catching(path: &Path, open: impl FnOnce() -> sled::Result<sled::Db>) -> Result<sled::Db> {
    match catch_unwind(AssertUnwindSafe(open)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(map_open_error(path, e)),
        Err(panic) => Err(corrupt_after_open(
            path,
            format!("sled panicked while opening it ({})", panic_message(&panic)),
        )),
    }
}

/// A *corrupt* error found while or after sled opened the store: sled may have
/// rewritten parts of its files during its own recovery by then.
fn corrupt_after_open(path: &Path, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        detail: format!(
            "{}; libstate changed none of its files, but sled may have rewritten parts \
             of them while opening the store: keep a copy of the directory before \
             anything else",
            detail.into()
        ),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_string()
    }
}

fn map_open_error(path: &Path, e: sled::Error) -> Error {
    // A copy sled made of an OS error is that OS error again, so the checks below
    // see its code (see `plain_io_error`).
    let e = match e {
        sled::Error::Io(io) => sled::Error::Io(plain_io_error(io)),
        other => other,
    };
    match e {
        sled::Error::Io(io) if is_lock_error(&io) => Error::Locked {
            path: path.to_path_buf(),
        },
        // sled writes while it opens a store (its recovery and a new segment), so a
        // full file system refuses even a store that would only be read.
        sled::Error::Io(io) if is_out_of_space(&io) => Error::io(
            path,
            io::Error::new(
                io.kind(),
                format!(
                    "{io}: sled writes while it opens a store, so it needs some free \
                     space on this file system even to read it; free space and retry"
                ),
            ),
        ),
        sled::Error::Unsupported(msg) => {
            corrupt_after_open(path, format!("sled cannot open it: {msg}"))
        }
        sled::Error::Corruption { at, .. } => corrupt_after_open(path, corruption_detail(at)),
        other => map_error(path, other),
    }
}

/// sled reports a held lock only as an I/O error with this text (sled 0.34.7,
/// `config.rs` `try_lock`); there is no structured way to detect it.
fn is_lock_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// ENOSPC or EDQUOT.
fn is_out_of_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122))
}

fn map_error(path: &Path, e: sled::Error) -> Error {
    match e {
        sled::Error::Io(io) => Error::io(path, io),
        sled::Error::Corruption { at, .. } => Error::corrupt(path, corruption_detail(at)),
        other => Error::Internal(format!("sled: {other}")),
    }
}

fn corruption_detail(at: Option<sled::DiskPtr>) -> String {
    match at {
        Some(at) => format!("sled found corruption at {at:?}"),
        None => "sled found corruption".to_string(),
    }
}

/// `bucket 0x00`: the first byte string of a bucket's range.
fn prefix(bucket: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(bucket.len() + 1);
    p.extend_from_slice(bucket.as_bytes());
    p.push(0);
    p
}

/// `bucket 0x01`: the first byte string after a bucket's range.
fn prefix_end(bucket: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(bucket.len() + 1);
    p.extend_from_slice(bucket.as_bytes());
    p.push(1);
    p
}

/// Calls `f` with `bucket 0x00 key`, built on the stack when short (no allocation
/// on the point-lookup and single-write paths).
fn with_full_key<R>(bucket: &str, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const STACK: usize = 128;
    let (b, n) = (bucket.len(), bucket.len() + 1 + key.len());
    if n <= STACK {
        let mut buf = [0u8; STACK];
        buf[..b].copy_from_slice(bucket.as_bytes());
        buf[b + 1..n].copy_from_slice(key);
        f(&buf[..n])
    } else {
        f(&full_key(bucket, key))
    }
}

fn full_key(bucket: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + 1 + key.len());
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

impl StorageEngine for SledEngine {
    /// sled recovers its files in place while it opens, before the store can check
    /// anything: the error must not claim they are untouched.
    fn damaged(&self, path: &Path, detail: String) -> Error {
        corrupt_after_open(path, detail)
    }

    fn get(&self, bucket: &str, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match with_full_key(bucket, key, |k| self.db.get(k)) {
            Ok(Some(v)) => {
                visit(&v);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => Err(self.map_err(e)),
        }
    }

    fn write(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        // A single write skips sled's batch machinery (it takes a global write lock);
        // write_one checks the sync state itself.
        if let [op] = ops {
            return self.write_one(op).map(drop);
        }
        self.check_synced()?;
        let mut batch = sled::Batch::default();
        for op in ops {
            match *op {
                WriteOp::Put { bucket, key, value } => batch.insert(full_key(bucket, key), value),
                WriteOp::Delete { bucket, key } => batch.remove(full_key(bucket, key)),
            }
        }
        let r = self.db.apply_batch(batch).map_err(|e| self.map_err(e));
        collect_garbage(ops.len());
        r
    }

    fn write_one(&self, op: &WriteOp<'_>) -> Result<Option<bool>> {
        self.check_synced()?;
        let r = match *op {
            WriteOp::Put { bucket, key, value } => {
                with_full_key(bucket, key, |k| self.db.insert(k, value))
            }
            WriteOp::Delete { bucket, key } => with_full_key(bucket, key, |k| self.db.remove(k)),
        };
        r.map(|old| Some(old.is_some()))
            .map_err(|e| self.map_err(e))
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
        let lo = match lower {
            Bound::Unbounded => Bound::Included(prefix(bucket)),
            Bound::Included(k) => Bound::Included(full_key(bucket, k)),
            Bound::Excluded(k) => Bound::Excluded(full_key(bucket, k)),
        };
        let hi = match upper {
            Bound::Unbounded => Bound::Excluded(prefix_end(bucket)),
            Bound::Included(k) => Bound::Included(full_key(bucket, k)),
            Bound::Excluded(k) => Bound::Excluded(full_key(bucket, k)),
        };
        if range_is_empty(&lo, &hi) {
            return Ok(());
        }
        let skip = bucket.len() + 1;
        let mut iter = self.db.range::<Vec<u8>, _>((lo, hi));
        loop {
            let item = if reverse {
                iter.next_back()
            } else {
                iter.next()
            };
            let Some(item) = item else { return Ok(()) };
            let (k, v) = item.map_err(|e| self.map_err(e))?;
            let Some(user_key) = k.get(skip..) else {
                return Err(Error::corrupt(
                    &self.path,
                    "a stored key is shorter than its bucket prefix",
                ));
            };
            if visit(user_key, &v) == Visit::Stop {
                return Ok(());
            }
        }
    }

    fn count(&self, bucket: &str) -> Result<u64> {
        let mut n = 0u64;
        for item in self.db.scan_prefix(prefix(bucket)).keys() {
            item.map_err(|e| self.map_err(e))?;
            n += 1;
        }
        Ok(n)
    }

    fn bucket_names(&self) -> Result<Vec<String>> {
        // Skip-scan: jump from one bucket's range to the next.
        let mut names = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let next = self.db.range::<Vec<u8>, _>(from.clone()..).next();
            let Some(item) = next else { return Ok(names) };
            let (k, _) = item.map_err(|e| self.map_err(e))?;
            let Some(sep) = k.iter().position(|&b| b == 0) else {
                return Err(Error::corrupt(
                    &self.path,
                    "a stored key has no bucket prefix",
                ));
            };
            let name = std::str::from_utf8(&k[..sep])
                .map_err(|_| Error::corrupt(&self.path, "a bucket name is not UTF-8"))?;
            from = prefix_end(name);
            names.push(name.to_string());
        }
    }

    fn remove_bucket(&self, bucket: &str) -> Result<bool> {
        self.check_synced()?;
        let mut any = false;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for item in self
                .db
                .scan_prefix(prefix(bucket))
                .keys()
                .take(REMOVE_CHUNK)
            {
                batch.remove(item.map_err(|e| self.map_err(e))?);
                n += 1;
            }
            if n == 0 {
                return Ok(any);
            }
            any = true;
            let r = self.db.apply_batch(batch).map_err(|e| self.map_err(e));
            collect_garbage(n);
            r?;
        }
    }

    fn sync(&self) -> Result<()> {
        self.check_synced()?;
        self.db.flush().map_err(|e| self.map_err(e))?;
        self.sync_blobs().map_err(|e| {
            self.poison(format!("a sync of sled's blob files failed ({e})"));
            e
        })?;
        let db = self.path.join("db");
        self.io
            .sync_data(&self.log, &db)
            .map_err(|e| self.sync_failed(&db, e))
    }

    fn file_io(&self) -> Io {
        self.io.clone()
    }

    fn disk_size(&self) -> Result<u64> {
        self.db.size_on_disk().map_err(|e| self.map_err(e))
    }

    fn lock_file(&self) -> Option<PathBuf> {
        // An engine abandoned after an I/O error keeps its lock: nothing to wait for.
        if self.failed.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        // sled 0.34 takes its exclusive lock on the log file itself (config.rs).
        Some(self.path.join("db"))
    }
}

/// Frees the node copies a sled batch of `writes` writes left for later.
///
/// sled 0.34 replaces a tree node by a modified copy on every write and hands the
/// old copy to crossbeam-epoch, which frees it only once no thread can still see
/// it. crossbeam collects on every 128th pin of a thread, 8 bags of 64 objects at
/// a time: 4 objects per pin. A single insert pins once and leaves about one old
/// node (a split a few more), so collection keeps up; a batch pins once for all
/// its writes, so it does not, and the backlog grew without bound: loading 1M
/// records in 10K-record batches peaked at 3.2 GiB RSS, almost all of it old node
/// copies (heaptrack: `Node::apply` under `PageCache::link`, and `split_node`).
/// So after a batch, collect: each flush moves this thread's bag to the global
/// queue, tries to advance the epoch (freeing needs two advances) and frees up to
/// 8 bags (512 objects) whose epoch has passed. One flush per 128 writes allows 4
/// objects per write, plus 4 flushes for the epoch. What cannot be freed yet
/// (another thread still pinned) waits for the next collection.
fn collect_garbage(writes: usize) {
    let flushes = 4 + writes / 128;
    for _ in 0..flushes {
        // A guard of its own: sled's guard dereferences to crossbeam-epoch's, whose
        // `flush` does the collecting on sled's (the default) collector. `sled::pin`
        // is public but hidden from sled's docs; sled is pinned to 0.34.7.
        sled::pin().flush();
    }
}

/// sled panics on a range whose start is after its end; such a range is simply empty.
fn range_is_empty(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    let (l, l_incl) = match lo {
        Bound::Included(l) => (l, true),
        Bound::Excluded(l) => (l, false),
        Bound::Unbounded => return false,
    };
    let (h, h_incl) = match hi {
        Bound::Included(h) => (h, true),
        Bound::Excluded(h) => (h, false),
        Bound::Unbounded => return false,
    };
    match l.cmp(h) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => !(l_incl && h_incl),
        std::cmp::Ordering::Less => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn a_panic_while_opening_is_a_corrupt_error() {
        let err = open_catching(Path::new("/some/store"), || {
            panic!("tried to serialize Uninitialized")
        })
        .err()
        .unwrap();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.to_string().contains("/some/store"), "{err}");
        assert!(err.to_string().contains("Uninitialized"), "{err}");
    }

    #[test]
    fn lock_errors_are_recognised() {
        let e = sled::Error::Io(io::Error::other(
            "could not acquire lock on \"/x/db\": WouldBlock",
        ));
        assert_eq!(map_open_error(Path::new("/x"), e).kind(), ErrorKind::Locked);
        let e = sled::Error::Io(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(map_open_error(Path::new("/x"), e).kind(), ErrorKind::Io);
    }

    /// sled 0.34 hands later callers a copy of an I/O error made with `{:?}`; the
    /// store's error reads as the OS error all the same.
    #[test]
    fn copies_sled_makes_of_an_os_error_read_as_the_os_error() {
        let copy = sled::Error::Io(io::Error::from_raw_os_error(28)).clone();
        assert!(format!("{copy:?}").contains("Os { code: 28"), "{copy:?}");
        let want = "I/O error on /x: No space left on device (os error 28)";
        assert_eq!(map_error(Path::new("/x"), copy.clone()).to_string(), want);
        let opened = map_open_error(Path::new("/x"), copy.clone().clone());
        assert!(opened.to_string().starts_with(want), "{opened}");
        assert!(opened.to_string().contains("free space"), "{opened}");
    }

    /// The garbage collection after a batch (`collect_garbage`) must leave what the
    /// batch wrote intact, in batches and in a bucket removal of several chunks.
    #[test]
    fn large_batches_and_a_chunked_bucket_removal_keep_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(
            dir.path(),
            8 << 20,
            std::time::Duration::from_secs(60),
            Io::real(),
        )
        .unwrap();
        let n = 2 * REMOVE_CHUNK + 1;
        let keys: Vec<String> = (0..n).map(|i| format!("k{i:06}")).collect();
        for chunk in keys.chunks(5000) {
            let mut ops: Vec<WriteOp<'_>> = chunk
                .iter()
                .map(|k| WriteOp::Put {
                    bucket: "big",
                    key: k.as_bytes(),
                    value: k.as_bytes(),
                })
                .collect();
            ops.push(WriteOp::Put {
                bucket: "other",
                key: chunk[0].as_bytes(),
                value: b"v",
            });
            engine.write(&ops).unwrap();
        }
        engine
            .write(&[
                WriteOp::Delete {
                    bucket: "big",
                    key: keys[0].as_bytes(),
                },
                WriteOp::Delete {
                    bucket: "big",
                    key: keys[1].as_bytes(),
                },
            ])
            .unwrap();
        assert_eq!(engine.count("big").unwrap(), n as u64 - 2);
        let mut got = Vec::new();
        assert!(engine
            .get("big", keys[n - 1].as_bytes(), &mut |v| got = v.to_vec())
            .unwrap());
        assert_eq!(got, keys[n - 1].as_bytes());
        assert!(engine.remove_bucket("big").unwrap());
        assert_eq!(engine.count("big").unwrap(), 0);
        assert_eq!(engine.count("other").unwrap(), 5);
        assert_eq!(engine.bucket_names().unwrap(), vec!["other".to_string()]);
    }

    #[test]
    fn full_keys_on_stack_and_heap_agree() {
        for key_len in [0usize, 5, 200] {
            let key = vec![b'k'; key_len];
            with_full_key("bkt", &key, |k| assert_eq!(k, full_key("bkt", &key)));
        }
    }

    #[test]
    fn inverted_ranges_are_empty() {
        let b = |s: &str| s.as_bytes().to_vec();
        assert!(range_is_empty(
            &Bound::Included(b("b")),
            &Bound::Excluded(b("a"))
        ));
        assert!(range_is_empty(
            &Bound::Included(b("a")),
            &Bound::Excluded(b("a"))
        ));
        assert!(!range_is_empty(
            &Bound::Included(b("a")),
            &Bound::Included(b("a"))
        ));
        assert!(!range_is_empty(&Bound::Unbounded, &Bound::Excluded(b("a"))));
    }
}
