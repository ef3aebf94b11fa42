//! Store maintenance: [`Store::check`] (verify every record) and [`Store::compact`]
//! (give space back to the file system).

use std::fmt;
use std::fs;
use std::hash::{DefaultHasher, Hasher as _};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::engine::{self, StorageEngine, StoreContext, Visit, WriteOp};
use crate::error::{Error, Result};
use crate::expiry;
use crate::record;
use crate::store::{self, is_user_bucket, Shared, Store};

/// Stored records read per engine read lock while scanning, so a long scan lets
/// writers in.
const SCAN_CHUNK: usize = 1024;
/// Records per batch written to a compaction copy.
const COPY_BATCH_RECORDS: usize = 10_000;
/// Bytes per batch written to a compaction copy.
const COPY_BATCH_BYTES: usize = 8 << 20;

/// What [`Store::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Every bucket, in byte order, with what was read from it.
    pub buckets: Vec<BucketCheck>,
    /// Records carrying a deadline that the expiry index covers; `None` if the
    /// index could not be read (a problem says why).
    pub indexed_ttl: Option<u64>,
    /// Problems not tied to one bucket (listing buckets, the expiry index).
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problem_count() == 0
    }

    /// Number of problems found, over all buckets and the store.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
            + self
                .buckets
                .iter()
                .map(|b| b.problems.len() + usize::from(b.count_mismatch.is_some()))
                .sum::<usize>()
    }

    /// Readable records over all buckets (expired ones not yet swept included).
    pub fn records(&self) -> u64 {
        self.buckets.iter().map(|b| b.records).sum()
    }

    /// Readable records that carry a deadline.
    pub fn with_ttl(&self) -> u64 {
        self.buckets.iter().map(|b| b.with_ttl).sum()
    }

    /// Records whose deadline has passed but that the sweeper has not removed yet.
    pub fn expired_unswept(&self) -> u64 {
        self.buckets.iter().map(|b| b.expired_unswept).sum()
    }

    /// Every problem as one line of text (bucket problems prefixed with
    /// `bucket NAME: `, control characters in names escaped), buckets first.
    pub fn problem_messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for b in &self.buckets {
            let name = escaped(&b.name);
            for p in &b.problems {
                out.push(format!("bucket {name}: {p}"));
            }
            if let Some((counted, read)) = b.count_mismatch {
                out.push(format!(
                    "bucket {name}: the engine counts {counted} records but {read} could be read"
                ));
            }
        }
        out.extend(self.problems.iter().cloned());
        out
    }
}

/// What [`Store::check`] read from one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketCheck {
    /// The bucket's name.
    pub name: String,
    /// Records that could be read (expired ones not yet swept included).
    pub records: u64,
    /// Readable records that carry a deadline.
    pub with_ttl: u64,
    /// Readable records whose deadline has passed (the sweeper has not removed them).
    pub expired_unswept: u64,
    /// Every record that could not be read, in key order.
    pub problems: Vec<RecordProblem>,
    /// `(engine's count, records seen)` if the engine counts a different number of
    /// records than a scan of the bucket met.
    pub count_mismatch: Option<(u64, u64)>,
}

/// One stored record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordProblem {
    /// The record's key (invalid UTF-8 replaced by U+FFFD).
    pub key: String,
    /// The last readable key before it in the bucket, if any.
    pub after: Option<String>,
    /// What is wrong with it.
    pub detail: String,
}

impl fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.after {
            Some(k) => write!(f, "reading after key {k:?}: ")?,
            None => f.write_str("reading its first record: ")?,
        }
        write!(f, "key {:?}: {}", self.key, self.detail)
    }
}

/// What [`Store::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Bytes of the store's files before (apparent sizes, like `du -b`).
    pub before_bytes: u64,
    /// Bytes of the store's files after.
    pub after_bytes: u64,
    /// Buckets holding at least one record afterwards.
    pub buckets: u64,
    /// Records afterwards (expired records are removed first).
    pub records: u64,
}

impl Store {
    /// Reads every stored record of every bucket and reports each one that cannot
    /// be read — every bad record, not only a bucket's first — plus whether the
    /// expiry index covers every record that carries a deadline.
    ///
    /// Opening the store already ran the engine's own verification (checksums) and
    /// the checkpoint check; this adds the record level: each record's header, its
    /// key's UTF-8, each bucket's count against the engine's, and the expiry index
    /// (fewer index entries than records with a TTL means the sweeper would never
    /// remove some of them). Expired records not yet swept are read and counted.
    /// Nothing is changed. Writes may go on meanwhile; the report is then per record,
    /// not a point-in-time image.
    ///
    /// # Errors
    /// *closed*; engine errors that stop the whole scan. Damage found in records is
    /// not an error: it is in the report ([`CheckReport::is_ok`]).
    pub fn check(&self) -> Result<CheckReport> {
        let shared = self.shared()?;
        let now = shared.opts.clock.now_ms();
        let mut report = CheckReport::default();
        let names = match shared.engine()?.bucket_names() {
            Ok(n) => n,
            Err(e) => {
                report.problems.push(format!("listing buckets: {e}"));
                return Ok(report);
            }
        };
        for name in names.into_iter().filter(|n| is_user_bucket(n)) {
            report.buckets.push(check_bucket(shared, &name, now)?);
        }
        let with_ttl = report.with_ttl();
        let indexed = shared
            .engine()
            .and_then(|engine| expiry::indexed(engine::Reader::new(&*engine), &shared.path));
        match indexed {
            Ok(n) => {
                if n != with_ttl {
                    report.problems.push(format!(
                        "expiry index: {with_ttl} records carry a deadline but {n} are indexed; \
                         the sweeper would never remove the others after they expire"
                    ));
                }
                report.indexed_ttl = Some(n);
            }
            Err(e) => report.problems.push(format!("expiry index: {e}")),
        }
        Ok(report)
    }

    /// Gives disk space back to the file system, keeping every live record and its
    /// deadline. Expired records are removed first.
    ///
    /// - **memfile**: folds the logs into a new snapshot (its background compaction,
    ///   run now). Reads and writes go on meanwhile.
    /// - **sled** (which never shrinks its files): copy, verify, swap. Every record is
    ///   copied into a fresh store in `.NAME.compact` beside the store directory, the
    ///   copy is closed, reopened and compared with what was read (counts and a
    ///   digest), then the two directories are exchanged in one atomic rename
    ///   (`renameat2(RENAME_EXCHANGE)`; elsewhere two renames, the first undone if
    ///   the second fails) and the old files deleted. Every operation on the store,
    ///   from any handle, waits until this returns. Needs free space for a copy.
    ///
    /// A `.NAME.compact` directory left by an interrupted compaction stops any
    /// compaction (whatever the engine) until it is deleted: it may hold the only
    /// copy of a store whose swap was cut short.
    ///
    /// # Errors
    /// *I/O* (kind `AlreadyExists`) if `.NAME.compact` exists; *corrupt* if the
    /// copy does not match what was read (the store is left untouched and the copy
    /// deleted); *invalid argument* when called from inside a lending callback;
    /// *closed*; *I/O* and engine errors. If a failure leaves the store's engine
    /// unable to reopen after the swap, the store is closed for every handle and
    /// the error says where its files are.
    pub fn compact(&self) -> Result<CompactReport> {
        let shared = self.shared()?;
        let dir = shared.path.clone();
        let tmp = compact_dir_for(&dir)?;
        if fs::symlink_metadata(&tmp).is_ok() {
            return Err(leftover(&tmp));
        }
        self.sweep_expired()?;
        let before_bytes = dir_bytes(&dir)?;
        let own = shared.engine()?.compact()?;
        if !own {
            shared.with_engine_slot(|slot| copy_verify_swap(shared, slot, &dir, &tmp))?;
        }
        let mut report = CompactReport {
            before_bytes,
            after_bytes: dir_bytes(&dir)?,
            ..CompactReport::default()
        };
        for name in self.bucket_names()? {
            let n = self.bucket(&name)?.len()?;
            if n > 0 {
                report.buckets += 1;
                report.records += n;
            }
        }
        Ok(report)
    }
}

/// A bucket or key name for a one-line message: control characters escaped.
fn escaped(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.escape_debug().to_string()
    } else {
        s.to_string()
    }
}

/// Visits every stored entry of `bucket` (raw key and stored value, expired or not),
/// in key order, a chunk per read lock; `visit` runs with no lock held.
pub(crate) fn scan_stored(
    shared: &Shared,
    bucket: &str,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<()>,
) -> Result<()> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        {
            let engine = shared.engine()?;
            let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            engine.scan(bucket, lower, Bound::Unbounded, false, &mut |k, v| {
                chunk.push((k.to_vec(), v.to_vec()));
                if chunk.len() >= SCAN_CHUNK {
                    Visit::Stop
                } else {
                    Visit::Continue
                }
            })?;
        }
        let full = chunk.len() >= SCAN_CHUNK;
        for (k, v) in &chunk {
            visit(k, v)?;
        }
        match chunk.pop() {
            Some((k, _)) if full => after = Some(k),
            _ => return Ok(()),
        }
    }
}

fn check_bucket(shared: &Shared, name: &str, now_ms: u64) -> Result<BucketCheck> {
    let mut r = BucketCheck {
        name: name.to_string(),
        ..BucketCheck::default()
    };
    let mut last_good: Option<String> = None;
    let mut seen = 0u64;
    let scanned = scan_stored(shared, name, |k, raw| {
        seen += 1;
        let key = record::key_str(k);
        let decoded = record::decode(raw, &shared.path);
        match (key, decoded) {
            (Some(key), Ok(rec)) => {
                r.records += 1;
                if let Some(d) = rec.deadline_ms {
                    r.with_ttl += 1;
                    if d <= now_ms {
                        r.expired_unswept += 1;
                    }
                }
                last_good = Some(key.to_string());
            }
            (None, _) => r.problems.push(RecordProblem {
                key: String::from_utf8_lossy(k).into_owned(),
                after: last_good.clone(),
                detail: "the key is not UTF-8".into(),
            }),
            (Some(key), Err(e)) => r.problems.push(RecordProblem {
                key: key.to_string(),
                after: last_good.clone(),
                detail: e.to_string(),
            }),
        }
        Ok(())
    });
    if let Err(e) = scanned {
        r.problems.push(RecordProblem {
            key: String::new(),
            after: last_good,
            detail: format!("the scan stopped: {e}"),
        });
        return Ok(r);
    }
    let counted = shared.engine()?.count(name)?;
    if counted != seen {
        r.count_mismatch = Some((counted, seen));
    }
    Ok(r)
}

/// `.NAME.compact` beside the store directory `dir`.
fn compact_dir_for(dir: &Path) -> Result<PathBuf> {
    match (dir.parent(), dir.file_name()) {
        (Some(parent), Some(name)) => {
            let mut n = std::ffi::OsString::from(".");
            n.push(name);
            n.push(".compact");
            Ok(parent.join(n))
        }
        _ => Err(Error::invalid(format!(
            "cannot compact {}: it has no parent directory",
            dir.display()
        ))),
    }
}

fn leftover(tmp: &Path) -> Error {
    Error::io(
        tmp,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists: an earlier compaction was interrupted; the store itself is \
             intact: once no compaction is running, delete that directory and compact again",
        ),
    )
}

/// What a pass over an engine saw: buckets, records and a digest of them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    buckets: u64,
    records: u64,
    digest: u64,
}

/// Adds one entry to a digest; lengths keep field boundaries unambiguous.
fn hash_entry(h: &mut DefaultHasher, bucket: &str, key: &[u8], value: &[u8]) {
    for field in [bucket.as_bytes(), key, value] {
        h.write_u64(field.len() as u64);
        h.write(field);
    }
}

/// Reads every stored entry of every bucket (libstate's internal buckets included)
/// of `engine`, calling `each` with each chunk of one bucket.
fn walk(
    engine: &dyn StorageEngine,
    mut each: impl FnMut(&str, &[(Vec<u8>, Vec<u8>)]) -> Result<()>,
) -> Result<Tally> {
    let mut t = Tally::default();
    let mut h = DefaultHasher::new();
    for name in engine.bucket_names()? {
        let mut after: Option<Vec<u8>> = None;
        let mut any = false;
        loop {
            let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut bytes = 0usize;
            let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            engine.scan(&name, lower, Bound::Unbounded, false, &mut |k, v| {
                bytes += k.len() + v.len();
                chunk.push((k.to_vec(), v.to_vec()));
                if chunk.len() >= COPY_BATCH_RECORDS || bytes >= COPY_BATCH_BYTES {
                    Visit::Stop
                } else {
                    Visit::Continue
                }
            })?;
            let full = chunk.len() >= COPY_BATCH_RECORDS || bytes >= COPY_BATCH_BYTES;
            for (k, v) in &chunk {
                hash_entry(&mut h, &name, k, v);
            }
            t.records += chunk.len() as u64;
            any |= !chunk.is_empty();
            each(&name, &chunk)?;
            match chunk.pop() {
                Some((k, _)) if full => after = Some(k),
                _ => break,
            }
        }
        t.buckets += u64::from(any);
    }
    t.digest = h.finish();
    Ok(t)
}

/// Opens an engine of the store's kind on `dir`.
pub(crate) fn open_like(shared: &Shared, dir: &Path) -> Result<Box<dyn StorageEngine>> {
    let context = StoreContext::new(shared.opts.flush_interval, shared.opts.sync);
    let mut e = engine::open(&shared.opts.config, dir, &context)?;
    e.finish_open()?;
    Ok(e)
}

/// Drops an engine and waits until its file lock is released.
pub(crate) fn close_engine(engine: Box<dyn StorageEngine>) {
    let lock = engine.lock_file();
    drop(engine);
    if let Some(file) = lock {
        store::wait_for_lock_release(&file);
    }
}

/// The copying compaction, with the engine slot held exclusively.
fn copy_verify_swap(
    shared: &Shared,
    slot: &mut Option<Box<dyn StorageEngine>>,
    dir: &Path,
    tmp: &Path,
) -> Result<()> {
    let Some(engine) = slot.as_deref() else {
        return Err(Error::Closed);
    };
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(tmp).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            leftover(tmp)
        } else {
            Error::io(tmp, e)
        }
    })?;
    if let Err(e) = copy_and_verify(shared, engine, tmp) {
        let _ = remove_with_retry(tmp);
        return Err(e);
    }
    // The copy is complete and verified; from here the old engine goes.
    if let Some(old) = slot.take() {
        close_engine(old);
    }
    let swapped = swap(dir, tmp);
    let reopened = open_like(shared, dir);
    match (swapped, reopened) {
        (Ok(()), Ok(engine)) => {
            *slot = Some(engine);
            // The old store's files now sit at `tmp`; failing to delete them loses
            // nothing, so it is not an error of the compaction.
            let _ = remove_with_retry(tmp);
            Ok(())
        }
        (Err(e), Ok(engine)) => {
            // The swap failed and was undone: the store is as it was.
            *slot = Some(engine);
            let _ = remove_with_retry(tmp);
            Err(e)
        }
        (Ok(()), Err(e)) => Err(Error::Internal(format!(
            "compacted {} but could not reopen it ({e}); the store is closed and its \
             previous files are at {}",
            dir.display(),
            tmp.display()
        ))),
        (Err(e), Err(e2)) => Err(Error::Internal(format!(
            "compacting {} failed ({e}) and reopening it failed too ({e2}); the store is \
             closed",
            dir.display()
        ))),
    }
}

/// Copies every entry of `src` into a new engine in `tmp` with the store marker,
/// then reopens the copy and checks that it holds exactly what was read.
fn copy_and_verify(shared: &Shared, src: &dyn StorageEngine, tmp: &Path) -> Result<()> {
    let copy = open_like(shared, tmp)?;
    let read = walk(src, |bucket, chunk| {
        if chunk.is_empty() {
            return Ok(());
        }
        let ops: Vec<WriteOp<'_>> = chunk
            .iter()
            .map(|(k, v)| WriteOp::Put {
                bucket,
                key: k,
                value: v,
            })
            .collect();
        copy.write(&ops)
    });
    let synced = read.and_then(|t| copy.sync().map(|()| t));
    close_engine(copy);
    let read = synced?;
    if let Some(marker) = checkpoint::read_marker(&shared.path)? {
        checkpoint::write_marker(
            &crate::fileio::Io::real(),
            tmp,
            &shared.opts.engine_name,
            marker.generation,
        )?;
    }
    let check = open_like(shared, tmp)?;
    let written = walk(&*check, |_, _| Ok(()));
    close_engine(check);
    let written = written?;
    if written != read {
        return Err(Error::corrupt(
            tmp,
            format!(
                "the compaction copy does not match the store (read {} records in {} buckets, \
                 the copy holds {} in {}, digests {:016x} / {:016x}); the store was left as it was",
                read.records,
                read.buckets,
                written.records,
                written.buckets,
                read.digest,
                written.digest
            ),
        ));
    }
    Ok(())
}

/// Deletes a directory. sled's threads may still hold files of an engine that was
/// just dropped for a moment, so a failure is retried for a few seconds.
pub(crate) fn remove_with_retry(path: &Path) -> io::Result<()> {
    let mut last = Ok(());
    for attempt in 0..50 {
        last = fs::remove_dir_all(path);
        match &last {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20 + 10 * attempt)),
        }
    }
    last
}

/// Puts the copy at `dir` and the old store at `tmp`, then syncs the parent.
fn swap(dir: &Path, tmp: &Path) -> Result<()> {
    match exchange(dir, tmp) {
        Ok(()) => {}
        Err(e) if exchange_unsupported(&e) => swap_by_renames(dir, tmp)?,
        Err(e) => return Err(Error::io(dir, e)),
    }
    match dir.parent() {
        Some(parent) => crate::fs::sync_dir(parent),
        None => Ok(()),
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Errors meaning "this file system (or kernel) cannot exchange": fall back.
fn exchange_unsupported(e: &io::Error) -> bool {
    const EINVAL: i32 = 22;
    const ENOSYS: i32 = 38;
    e.kind() == io::ErrorKind::Unsupported || matches!(e.raw_os_error(), Some(EINVAL | ENOSYS))
}

/// The fallback: store -> `.NAME.compact-old`, copy -> store, old -> `tmp`. If the
/// second rename fails, the first is undone.
fn swap_by_renames(dir: &Path, tmp: &Path) -> Result<()> {
    let mut old = tmp.as_os_str().to_owned();
    old.push("-old");
    let old = PathBuf::from(old);
    fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    if let Err(e) = fs::rename(tmp, dir) {
        return match fs::rename(&old, dir) {
            Ok(()) => Err(Error::io(dir, e)),
            Err(e2) => Err(Error::Internal(format!(
                "moving the compacted copy into place failed ({e}) and so did moving the \
                 store back ({e2}): the store is at {} and its compacted copy at {}; rename \
                 the first to {} by hand",
                old.display(),
                tmp.display(),
                dir.display()
            ))),
        };
    }
    fs::rename(&old, tmp).map_err(|e| Error::io(&old, e))
}

/// Bytes of all files under `dir` (apparent sizes, like `du -b`). A file removed
/// while it is measured (a finishing compaction) counts 0.
pub(crate) fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&entry.path(), e)),
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
