//! Online backup: [`Store::backup`] writes a point-in-time copy of an open store
//! while reads and writes go on.
//!
//! How the copy stays point-in-time without stopping writers: at the start the
//! backup takes the store's write lock just long enough to install a [`Capture`]
//! (the instant T0 of the copy). From then on every write, under the write lock as
//! always, first records the value each key it touches had before (its *pre-image*:
//! the value, or "absent"), once per key. The backup meanwhile scans the live engine
//! a chunk at a time and, for each key it read, keeps the live value only if the key
//! was not captured by the time it looks (a key not yet captured after its value was
//! read had not been written since T0, so that value is the T0 value). Once the scan
//! is over the capture is removed (the write lock again, as briefly) and every
//! captured pre-image that existed at T0 is written to the copy. The copy therefore
//! holds exactly the store at T0: every write that returned before the backup began,
//! none that began after.
//!
//! What it costs: writers wait for the write lock twice, each time for as long as it
//! takes to swap one pointer; during the backup each write reads the old value of a
//! key it is the first to touch since T0 (one engine read) and the capture keeps
//! it in memory until the backup ends (at most one copy of each record written
//! during the backup). Readers take no lock of the backup's. Removing a bucket during
//! a backup first captures the bucket's records, so that one call takes time in
//! proportion to the bucket's size.

use std::fs;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint;
use crate::commit::tap::Capture;
use crate::engine::{Engine, StorageEngine, Visit, WriteOp};
use crate::error::{Error, Result};
use crate::lend;
use crate::maintenance::{close_engine, dir_bytes, open_like, remove_with_retry};
use crate::store::{Shared, Store};

/// Records read from the live store per scan (and written to the copy per batch).
const CHUNK_RECORDS: usize = 10_000;
/// Bytes read from the live store per scan.
const CHUNK_BYTES: usize = 8 << 20;

/// What [`Store::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The copy's directory.
    pub path: PathBuf,
    /// Buckets in the copy holding at least one stored record (libstate's internal
    /// buckets not counted).
    pub buckets: u64,
    /// Stored records in the copy, over user buckets (records that have expired
    /// but were not swept yet included, as in [`crate::CheckReport::records`]).
    pub records: u64,
    /// Bytes of the copy's files.
    pub bytes: u64,
    /// The longest time the backup held the store's write lock (installing or
    /// removing its capture): the longest a writer waited for it.
    pub write_pause: Duration,
    /// Records whose old value writers captured during the backup.
    pub captured: u64,
}

/// Removes the capture when the backup ends, however it ends.
struct Installed<'a> {
    shared: &'a Shared,
    capture: Arc<Capture>,
    pause: Duration,
    done: bool,
}

impl Installed<'_> {
    /// Removes the capture: from here no write changes it.
    fn remove(&mut self) {
        if !self.done {
            self.done = true;
            let pause = self.shared.exclude_writers(|| {
                let start = Instant::now();
                self.shared.backup_tap().remove();
                start.elapsed()
            });
            self.pause = self.pause.max(pause);
        }
    }
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        self.remove();
    }
}

impl Store {
    /// Writes a point-in-time copy of this store to the new directory `dest`, while
    /// the store stays open for reads and writes.
    ///
    /// The copy holds every write that returned before the backup began and none
    /// that began after it, and opens as a store of the same engine (a sled store's
    /// copy is a sled store, a memfile store's a memfile store), with every record's
    /// deadline. Readers are never blocked. Writers wait for the store's write lock
    /// twice, each time only while the backup swaps a pointer
    /// ([`BackupReport::write_pause`]); meanwhile each write first reads the old
    /// value of a key no write touched since the backup began, and those old values
    /// stay in memory until it ends. Removing a bucket during a backup first reads
    /// the whole bucket.
    ///
    /// The copy is built in `.NAME.partial-PID` beside `dest` and renamed to `dest`
    /// once complete and synced, so `dest` never holds a partial copy. One backup
    /// runs at a time per store.
    ///
    /// # Errors
    /// *invalid argument* for a store kept on a Redis server (back it up with
    /// Redis's own tools: `BGSAVE`, `redis-cli --rdb FILE`), or one other processes
    /// share, if `dest` lies inside the store's directory, if another backup of the
    /// store is running, or when called from inside a lending callback; *I/O* (kind
    /// `AlreadyExists`) if `dest` exists; *closed*; *I/O* and engine errors (the
    /// partial copy is then deleted).
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        let shared = self.shared()?;
        lend::refuse(shared, "back up the store")?;
        if shared.opts.engine == Engine::Redis {
            return Err(Error::invalid(format!(
                "the store {} is kept on a Redis server, so its backups belong to Redis: \
                 run BGSAVE there (or `redis-cli --rdb FILE` from here) and copy the RDB \
                 or AOF files it writes",
                shared.path.display()
            )));
        }
        if shared.opts.shared_engine {
            return Err(Error::invalid(format!(
                "the store {} is shared by several processes ({} engine); back it up with \
                 that engine's own tools",
                shared.path.display(),
                shared.opts.engine_name
            )));
        }
        let dest = dest.as_ref();
        let tmp = partial_dir(shared, dest)?;
        make_partial(&tmp)?;
        match copy_into(shared, &tmp) {
            Ok(mut report) => {
                if let Err(e) = fs::rename(&tmp, dest) {
                    let _ = remove_with_retry(&tmp);
                    return Err(Error::io(dest, e));
                }
                if let Some(parent) = dest.parent() {
                    crate::fs::sync_dir(parent)?;
                }
                report.path = dest.to_path_buf();
                report.bytes = dir_bytes(dest)?;
                Ok(report)
            }
            Err(e) => {
                let _ = remove_with_retry(&tmp);
                Err(e)
            }
        }
    }
}

/// Checks `dest` and returns the directory the copy is built in.
fn partial_dir(shared: &Shared, dest: &Path) -> Result<PathBuf> {
    match fs::symlink_metadata(dest) {
        Ok(_) => {
            return Err(Error::io(
                dest,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "already exists: a backup is written to a new directory",
                ),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(dest, e)),
    }
    let name = dest.file_name().ok_or_else(|| {
        Error::invalid(format!(
            "backup destination {} names no directory",
            dest.display()
        ))
    })?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = fs::canonicalize(&parent).map_err(|e| Error::io(&parent, e))?;
    if parent.starts_with(&shared.path) {
        return Err(Error::invalid(format!(
            "backup destination {} is inside the store directory {}",
            dest.display(),
            shared.path.display()
        )));
    }
    let mut n = std::ffi::OsString::from(".");
    n.push(name);
    n.push(format!(".partial-{}", std::process::id()));
    Ok(parent.join(n))
}

fn make_partial(tmp: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(tmp).map_err(|e| Error::io(tmp, e))
}

/// Copies the store as it is now into the empty directory `tmp` and writes its
/// marker; returns the report, less its path and size.
fn copy_into(shared: &Shared, tmp: &Path) -> Result<BackupReport> {
    let copy = open_like(shared, tmp)?;
    let finished = copy_records(shared, &*copy).and_then(|(write_pause, captured)| {
        copy.sync()?;
        let generation = checkpoint::engine_generation(tmp, &*copy)?;
        let mut report = BackupReport {
            path: tmp.to_path_buf(),
            buckets: 0,
            records: 0,
            bytes: 0,
            write_pause,
            captured,
        };
        for name in copy.bucket_names()? {
            if crate::store::is_user_bucket(&name) {
                let n = copy.count(&name)?;
                report.buckets += u64::from(n > 0);
                report.records += n;
            }
        }
        Ok((report, generation))
    });
    close_engine(copy);
    let (report, generation) = finished?;
    checkpoint::write_marker(
        &crate::fileio::Io::real(),
        tmp,
        &shared.opts.engine_name,
        generation,
    )?;
    Ok(report)
}

/// Copies every record as of T0 into `copy`; returns the longest write pause and
/// how many records writers captured.
fn copy_records(shared: &Shared, copy: &dyn StorageEngine) -> Result<(Duration, u64)> {
    let capture = Arc::new(Capture::default());
    let pause = shared.exclude_writers(|| {
        let start = Instant::now();
        if !shared.backup_tap().install(Arc::clone(&capture)) {
            return Err(Error::invalid(format!(
                "a backup of {} is already running",
                shared.path.display()
            )));
        }
        Ok(start.elapsed())
    })?;
    let mut installed = Installed {
        shared,
        capture,
        pause,
        done: false,
    };
    let names = shared.engine()?.bucket_names()?;
    for name in &names {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let mut bytes = 0usize;
            {
                let engine = shared.engine()?;
                let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                engine.scan(name, lower, Bound::Unbounded, false, &mut |k, v| {
                    bytes += k.len() + v.len();
                    chunk.push((k.to_vec(), v.to_vec()));
                    if chunk.len() >= CHUNK_RECORDS || bytes >= CHUNK_BYTES {
                        Visit::Stop
                    } else {
                        Visit::Continue
                    }
                })?;
            }
            let full = chunk.len() >= CHUNK_RECORDS || bytes >= CHUNK_BYTES;
            let next = if full {
                chunk.last().map(|(k, _)| k.clone())
            } else {
                None
            };
            // Only after reading: a key captured by now may have changed since T0
            // (its pre-image is copied at the end); one not captured by now had not.
            {
                let pre = installed.capture.pre.lock();
                if let Some(keys) = pre.get(name.as_str()) {
                    chunk.retain(|(k, _)| !keys.contains_key(k));
                }
            }
            write_chunk(copy, name, &chunk)?;
            match next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
    }
    installed.remove();
    let pre = std::mem::take(&mut *installed.capture.pre.lock());
    let mut captured = 0u64;
    for (bucket, keys) in pre {
        captured += keys.len() as u64;
        let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (k, v) in keys {
            if let Some(v) = v {
                batch.push((k, v));
            }
            if batch.len() >= CHUNK_RECORDS {
                write_chunk(copy, &bucket, &batch)?;
                batch.clear();
            }
        }
        write_chunk(copy, &bucket, &batch)?;
    }
    Ok((installed.pause, captured))
}

fn write_chunk(copy: &dyn StorageEngine, bucket: &str, chunk: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
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
}
