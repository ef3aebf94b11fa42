//! `state compact`: rewrite the store into a fresh directory and swap it in.
//!
//! Neither engine exposes an on-demand compaction through the public API (memfile
//! compacts its log by itself in the background; sled never gives space back to the
//! file system), so compaction is a copy, which works the same for both:
//!
//! 1. Open the store (this process now owns it; nobody else can write) with the
//!    clock frozen at the current time and no sweeper, so every TTL converts to its
//!    exact original deadline and expired records are left behind.
//! 2. Create `.NAME.compact` beside the store (failing if it exists: an earlier run
//!    was interrupted), open a fresh store there with the same engine and copy
//!    every live record with its deadline, hashing what was read.
//! 3. Close the copy (a full flush), reopen it and hash it again: the digests and
//!    counts must match. Close both stores.
//! 4. Swap the two directories in one atomic `renameat2(RENAME_EXCHANGE)` (on file
//!    systems without it: two renames, undone if the second fails), sync the parent
//!    directory, and delete the old store, which now sits at `.NAME.compact`.
//!
//! Any failure before step 4 deletes the copy and leaves the store untouched. The
//! store is never absent from its path when the exchange works; with the two-rename
//! fallback, a crash between the renames leaves it at `.NAME.compact-old`, which the
//! error message names. One caveat: between closing the store (step 3) and the swap
//! there is a moment in which another process could open the old store; do not run
//! `compact` while services may open the store.

use std::fs;
use std::hash::DefaultHasher;
use std::hash::Hasher as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::HumanBytes;
use serde_json::json;
use state_core::{Engine, Store, Ttl};

use crate::fail::{CmdResult, Failure};
use crate::open::{self, Access, Target, Time};
use crate::output::Output;

/// Records per `set_multiple` batch while copying.
const BATCH_RECORDS: usize = 10_000;
/// Bytes per batch while copying.
const BATCH_BYTES: usize = 8 << 20;

/// What a pass over a store saw.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    buckets: u64,
    records: u64,
    digest: u64,
}

/// `state compact`.
pub fn compact(target: &Target, out: &mut Output) -> CmdResult {
    let engine = target.engine_for(Access::Existing)?;
    let now = open::now_ms();
    let store = open::open_dir(&target.dir, engine, Time::FrozenAt(now))?;
    // The canonical path: a symlinked --store swaps the real directory.
    let dir = store.path().to_path_buf();
    let (parent, name) = match (dir.parent(), dir.file_name()) {
        (Some(p), Some(n)) => (p.to_path_buf(), n.to_string_lossy().into_owned()),
        _ => {
            return Err(Failure::usage(format!(
                "cannot compact {}: it has no parent directory",
                dir.display()
            )))
        }
    };
    let before = dir_bytes(&dir)?;
    let tmp = parent.join(format!(".{name}.compact"));
    let copied = open::with_store(store, |store| {
        let mut guard = TempDir::create(&tmp)?;
        let tally = copy_verified(store, &tmp, engine, now)?;
        guard.keep();
        Ok(tally)
    })?;
    swap(&dir, &tmp, &parent)?;
    let after = dir_bytes(&dir)?;
    let removed_old = remove_with_retry(&tmp);
    if out.json {
        out.json_line(&json!({
            "path": dir,
            "engine": engine.as_str(),
            "buckets": copied.buckets,
            "records": copied.records,
            "before_bytes": before,
            "after_bytes": after,
        }))?;
    } else {
        out.line(format!(
            "compacted {}: {} -> {} ({} records in {} buckets)",
            dir.display(),
            HumanBytes(before),
            HumanBytes(after),
            copied.records,
            copied.buckets
        ))?;
    }
    if let Err(e) = removed_old {
        eprintln!(
            "state: warning: the old store's files are still at {} ({e}); delete that directory",
            tmp.display()
        );
    }
    Ok(())
}

/// Copies `src` into a new store in `dst`, then reopens the copy and checks that it
/// holds exactly what was read.
fn copy_verified(src: &Store, dst: &Path, engine: Engine, now: u64) -> CmdResult<Tally> {
    let copy = open::open_dir(dst, engine, Time::FrozenAt(now))?;
    let read = open::with_store(copy, |copy| copy_all(src, copy))?;
    let check = open::open_dir(dst, engine, Time::FrozenAt(now))?;
    let written = open::with_store(check, tally)?;
    if written != read {
        return Err(Failure::store(format!(
            "compact: the copy in {} does not match the store (read {} records in {} buckets, \
             the copy holds {} in {}, digests {:016x} / {:016x}); the store was left untouched",
            dst.display(),
            read.records,
            read.buckets,
            written.records,
            written.buckets,
            read.digest,
            written.digest
        )));
    }
    Ok(read)
}

/// Adds one record to a digest; lengths keep field boundaries unambiguous.
fn hash_record(h: &mut DefaultHasher, bucket: &str, key: &str, value: &[u8], ttl: Option<u64>) {
    for field in [bucket.as_bytes(), key.as_bytes(), value] {
        h.write_u64(field.len() as u64);
        h.write(field);
    }
    h.write_u64(ttl.map_or(0, |t| t + 1));
}

fn ttl_ms(ttl: Ttl) -> Option<u64> {
    match ttl {
        Ttl::Expires(d) => Some(d.as_millis() as u64),
        _ => None,
    }
}

/// Copies every live record with its remaining TTL (exact, as both clocks are frozen
/// at the same instant).
fn copy_all(src: &Store, dst: &Store) -> CmdResult<Tally> {
    let mut t = Tally::default();
    let mut h = DefaultHasher::new();
    for name in src.bucket_names()? {
        let from = src.bucket(&name)?;
        let to = dst.bucket(&name)?;
        let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
        let mut bytes = 0usize;
        let mut any = false;
        for item in from.iter() {
            let (key, value) = item?;
            let ttl = ttl_ms(from.ttl(&key)?);
            hash_record(&mut h, &name, &key, &value, ttl);
            t.records += 1;
            any = true;
            match ttl {
                Some(ms) => to.set_with_ttl(&key, &value, Duration::from_millis(ms))?,
                None => {
                    bytes += key.len() + value.len();
                    batch.push((key, value));
                    if batch.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES {
                        to.set_multiple(batch.drain(..))?;
                        bytes = 0;
                    }
                }
            }
        }
        to.set_multiple(batch)?;
        t.buckets += u64::from(any);
    }
    t.digest = h.finish();
    Ok(t)
}

/// Reads a whole store into a tally.
fn tally(store: &Store) -> CmdResult<Tally> {
    let mut t = Tally::default();
    let mut h = DefaultHasher::new();
    for name in store.bucket_names()? {
        let b = store.bucket(&name)?;
        let mut any = false;
        for item in b.iter() {
            let (key, value) = item?;
            hash_record(&mut h, &name, &key, &value, ttl_ms(b.ttl(&key)?));
            t.records += 1;
            any = true;
        }
        t.buckets += u64::from(any);
    }
    t.digest = h.finish();
    Ok(t)
}

/// The temporary directory of the copy; deleted on drop unless kept.
struct TempDir<'a> {
    path: &'a Path,
    keep: bool,
}

impl<'a> TempDir<'a> {
    fn create(path: &'a Path) -> CmdResult<TempDir<'a>> {
        let mut b = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Failure::store(format!(
                    "compact: {} already exists: an earlier compaction was interrupted",
                    path.display()
                ))
                .with_hint(
                    "the store itself is intact; once no `state compact` is running, \
                     delete that directory and run compact again",
                )
            } else {
                Failure::store(format!("compact: cannot create {}: {e}", path.display()))
            }
        })?;
        Ok(TempDir { path, keep: false })
    }

    fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = remove_with_retry(self.path);
        }
    }
}

/// Deletes a store directory. sled's threads may still hold files of a store that
/// was just closed for a moment, so a failure is retried for a few seconds.
fn remove_with_retry(path: &Path) -> std::io::Result<()> {
    let mut last = Ok(());
    for attempt in 0..50 {
        last = fs::remove_dir_all(path);
        match &last {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => std::thread::sleep(Duration::from_millis(20 + 10 * attempt)),
        }
    }
    last
}

/// Puts the copy at `dir` and the old store at `tmp`.
fn swap(dir: &Path, tmp: &Path, parent: &Path) -> CmdResult {
    let failed =
        |what: &str, e: &dyn std::fmt::Display| Failure::store(format!("compact: {what}: {e}"));
    match exchange(dir, tmp) {
        Ok(()) => {}
        Err(e) if exchange_unsupported(&e) => swap_by_renames(dir, tmp)?,
        Err(e) => {
            let _ = remove_with_retry(tmp);
            return Err(failed(
                &format!(
                    "swapping {} and {} failed (the store was left untouched)",
                    tmp.display(),
                    dir.display()
                ),
                &e,
            ));
        }
    }
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| failed(&format!("syncing {}", parent.display()), &e))
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Errors meaning "this file system (or kernel) cannot exchange": fall back.
fn exchange_unsupported(e: &std::io::Error) -> bool {
    const EINVAL: i32 = 22;
    const ENOSYS: i32 = 38;
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(EINVAL) | Some(ENOSYS))
}

/// The fallback: store -> `.NAME.compact-old`, copy -> store, old -> `tmp`. If the
/// second rename fails, the first is undone.
fn swap_by_renames(dir: &Path, tmp: &Path) -> CmdResult {
    let mut old: PathBuf = tmp.as_os_str().to_owned().into();
    old.as_mut_os_string().push("-old");
    fs::rename(dir, &old).map_err(|e| {
        let _ = remove_with_retry(tmp);
        Failure::store(format!(
            "compact: moving {} aside failed (the store was left untouched): {e}",
            dir.display()
        ))
    })?;
    if let Err(e) = fs::rename(tmp, dir) {
        return Err(match fs::rename(&old, dir) {
            Ok(()) => {
                let _ = remove_with_retry(tmp);
                Failure::store(format!(
                    "compact: moving the copy into place failed (the store was put back): {e}"
                ))
            }
            Err(e2) => Failure::store(format!(
                "compact: moving the copy into place failed ({e}) and so did moving the \
                 store back ({e2}): the store is at {} and its compacted copy at {}",
                old.display(),
                tmp.display()
            ))
            .with_hint(format!(
                "rename {} to {} by hand",
                old.display(),
                dir.display()
            )),
        });
    }
    fs::rename(&old, tmp).map_err(|e| {
        Failure::store(format!(
            "compact: the store was compacted but its old files could not be moved to {}: {e}; \
             delete {} by hand",
            tmp.display(),
            old.display()
        ))
    })
}

/// Bytes of all files under `dir` (apparent sizes, like `du -b`).
pub fn dir_bytes(dir: &Path) -> CmdResult<u64> {
    let fail = |p: &Path, e: std::io::Error| {
        Failure::store(format!("cannot measure {}: {e}", p.display()))
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| fail(&d, e))? {
            let entry = entry.map_err(|e| fail(&d, e))?;
            let meta = entry.metadata().map_err(|e| fail(&entry.path(), e))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}
