//! The memfile engine's directory: file names, the process lock, creating files with
//! mode 0600.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::{Error, Result};
use crate::fileio::Io;

/// Name of the lock file (held with an exclusive `flock` while the store is open).
pub(super) const LOCK_FILE: &str = "memfile.lock";

/// A file of the memfile engine, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum FileName {
    /// `log-<gen>`: the log started at generation `gen`.
    Log(u64),
    /// `log-<gen>.tmp`: a log being created.
    LogTmp(u64),
    /// `snapshot-<gen>`: the state up to the start of `log-<gen>`.
    Snapshot(u64),
    /// `snapshot-<gen>.tmp`: a snapshot being written.
    SnapshotTmp(u64),
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileName::Log(g) => write!(f, "log-{g:020}"),
            FileName::LogTmp(g) => write!(f, "log-{g:020}.tmp"),
            FileName::Snapshot(g) => write!(f, "snapshot-{g:020}"),
            FileName::SnapshotTmp(g) => write!(f, "snapshot-{g:020}.tmp"),
        }
    }
}

impl FileName {
    /// Parses one of our names; `None` for any other file.
    pub(super) fn parse(name: &str) -> Option<FileName> {
        let (stem, tmp) = match name.strip_suffix(".tmp") {
            Some(s) => (s, true),
            None => (name, false),
        };
        let (kind, digits) = stem.split_once('-')?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let gen: u64 = digits.parse().ok()?;
        match (kind, tmp) {
            ("log", false) => Some(FileName::Log(gen)),
            ("log", true) => Some(FileName::LogTmp(gen)),
            ("snapshot", false) => Some(FileName::Snapshot(gen)),
            ("snapshot", true) => Some(FileName::SnapshotTmp(gen)),
            _ => None,
        }
    }
}

/// Our files found in a directory.
#[derive(Debug, Default)]
pub(super) struct Listing {
    pub logs: Vec<u64>,
    pub snapshots: Vec<u64>,
    pub tmp: Vec<FileName>,
}

/// Lists the memfile files in `dir` (sorted by generation).
pub(super) fn list(dir: &Path) -> Result<Listing> {
    let mut out = Listing::default();
    for item in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let item = item.map_err(|e| Error::io(dir, e))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        match FileName::parse(name) {
            Some(FileName::Log(g)) => out.logs.push(g),
            Some(FileName::Snapshot(g)) => out.snapshots.push(g),
            Some(t) => out.tmp.push(t),
            None => {}
        }
    }
    out.logs.sort_unstable();
    out.snapshots.sort_unstable();
    Ok(out)
}

/// Takes the directory's lock file, or *locked* if another process holds it.
pub(super) fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = open_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            path: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

fn open_options() -> OpenOptions {
    crate::fs::private_file_options()
}

/// The first of our files in `dir`, if any: the directory holds a memfile store.
pub(super) fn first_own_file(dir: &Path) -> Result<Option<String>> {
    let items = match fs::read_dir(dir) {
        Ok(items) => items,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for item in items {
        let item = item.map_err(|e| Error::io(dir, e))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == LOCK_FILE || FileName::parse(name).is_some() {
            return Ok(Some(name.to_string()));
        }
    }
    Ok(None)
}

/// Creates a new file (mode 0600) for writing; an existing one is replaced.
pub(super) fn create_new(io: &Io, path: &Path) -> Result<File> {
    io.create(path).map_err(|e| Error::io(path, e))
}

/// fsyncs `dir`, so creations, renames and removals in it are durable.
pub(super) fn sync_dir(io: &Io, dir: &Path) -> Result<()> {
    io.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Removes one of our files; a file already gone is fine.
pub(super) fn remove(io: &Io, dir: &Path, name: FileName) -> Result<()> {
    let path = dir.join(name.to_string());
    match io.remove(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Bytes of all files in `dir`.
pub(super) fn disk_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for item in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let item = item.map_err(|e| Error::io(dir, e))?;
        // A file removed between listing and stat (a finishing compaction) counts 0.
        if let Ok(m) = item.metadata() {
            if m.is_file() {
                total += m.len();
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            FileName::Log(1),
            FileName::LogTmp(2),
            FileName::Snapshot(u64::MAX),
            FileName::SnapshotTmp(0),
        ] {
            assert_eq!(FileName::parse(&n.to_string()), Some(n));
        }
        assert_eq!(FileName::parse("log-1"), None);
        assert_eq!(FileName::parse("memfile.lock"), None);
        assert_eq!(FileName::parse("other-00000000000000000001"), None);
    }
}
