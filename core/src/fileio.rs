//! The file-changing calls of the memfile engine and of the store's checkpoint
//! marker, behind one seam so tests can make them fail or record them.
//!
//! Only the *write* side goes through here: creating and opening files for writing,
//! positioned writes, `fdatasync`/`fsync`, `ftruncate`, `fallocate`, renames,
//! removals, directory syncs, and whether the log may be appended through a shared
//! mapping. Reads (loading a snapshot, replaying a log) use the files directly: the
//! memfile engine serves reads from memory, so nothing a read does is worth
//! injecting faults into below the open.
//!
//! The default is [`Io::real`]: a match on a `None` before each call, inlined, and
//! the mapped append path of the log does not go through here at all except for
//! `fallocate` once per 1 MiB chunk, so the hot path costs what it did.
//!
//! This module is public but hidden from the docs: it is a test hook, reached through
//! [`crate::engine::MemfileConfig::with_file_io`]. It is compiled in every build (a
//! cargo feature would have to be enabled for the integration tests by a
//! self-dev-dependency, and a test built without it would silently test nothing);
//! nothing changes unless a [`FileIo`] is installed.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// The file-changing calls, each given the path of the file it concerns (so an
/// implementation can tell files apart and an error can name them). Every method has
/// the real behaviour as its default, so an implementation overrides only what it
/// changes and calls [`Real`]'s method to pass a call through.
pub trait FileIo: Send + Sync + 'static {
    /// Creates `path` (mode 0600, truncating an existing file), open for reading and
    /// writing.
    fn create(&self, path: &Path) -> io::Result<File> {
        crate::fs::private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Opens the existing file `path` for reading and writing.
    fn open_write(&self, path: &Path) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
    }

    /// Writes all of `buf` at `offset` of `file` (`pwrite(2)` until done).
    fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        let _ = path;
        write_all_at(file, buf, offset)
    }

    /// `fdatasync(2)`: the file's data and size reach stable storage.
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        let _ = path;
        file.sync_data()
    }

    /// `fsync(2)`.
    fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        let _ = path;
        file.sync_all()
    }

    /// `ftruncate(2)` to `len` bytes.
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        let _ = path;
        file.set_len(len)
    }

    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    /// `fsync(2)` of the directory `dir`, making creations, renames and removals of
    /// files in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir).and_then(|d| d.sync_all())
    }

    /// `fallocate(2)` of `len` bytes at `offset` (Linux; used only on the mapped
    /// append path). `ENOSPC`/`EDQUOT` fail the write; other errors make the log
    /// fall back to `pwrite` for good.
    fn fallocate(&self, file: &File, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        let _ = path;
        fallocate(file, offset, len)
    }

    /// Whether the log at `path` may be appended through a shared mapping. The real
    /// answer asks the file system (see the log's `Appender`); an implementation that
    /// needs to see every write (a recorder) says no, so every record is written
    /// with [`FileIo::write_at`].
    fn may_map(&self, file: &File, path: &Path) -> bool {
        let _ = path;
        map_suits(file)
    }

    /// Called before a chunk of the log at `path` is mapped; an error makes the log
    /// fall back to `pwrite` for good (as a failed `mmap(2)` does).
    fn before_map(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }
}

/// The real calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Real;

impl FileIo for Real {}

/// Which [`FileIo`] an engine uses: the real calls unless a test installed another.
#[derive(Clone, Default)]
pub struct Io(Option<Arc<dyn FileIo>>);

impl Io {
    /// The real calls.
    pub fn real() -> Io {
        Io(None)
    }

    /// Calls go to `io`.
    pub fn custom(io: Arc<dyn FileIo>) -> Io {
        Io(Some(io))
    }

    /// Whether this is the real file system (no test hook installed).
    pub fn is_real(&self) -> bool {
        self.0.is_none()
    }

    #[inline]
    fn get(&self) -> &dyn FileIo {
        match &self.0 {
            Some(io) => &**io,
            None => &Real,
        }
    }

    pub(crate) fn create(&self, path: &Path) -> io::Result<File> {
        self.get().create(path)
    }

    pub(crate) fn open_write(&self, path: &Path) -> io::Result<File> {
        self.get().open_write(path)
    }

    #[inline]
    pub(crate) fn write_at(
        &self,
        file: &File,
        path: &Path,
        buf: &[u8],
        offset: u64,
    ) -> io::Result<()> {
        match &self.0 {
            None => write_all_at(file, buf, offset),
            Some(io) => io.write_at(file, path, buf, offset),
        }
    }

    pub(crate) fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        self.get().sync_data(file, path)
    }

    pub(crate) fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        self.get().sync_all(file, path)
    }

    pub(crate) fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.get().set_len(file, path, len)
    }

    pub(crate) fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.get().rename(from, to)
    }

    pub(crate) fn remove(&self, path: &Path) -> io::Result<()> {
        self.get().remove(path)
    }

    pub(crate) fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.get().sync_dir(dir)
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn fallocate(
        &self,
        file: &File,
        path: &Path,
        offset: u64,
        len: u64,
    ) -> io::Result<()> {
        self.get().fallocate(file, path, offset, len)
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn may_map(&self, file: &File, path: &Path) -> bool {
        self.get().may_map(file, path)
    }

    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn before_map(&self, path: &Path) -> io::Result<()> {
        self.get().before_map(path)
    }
}

impl fmt::Debug for Io {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Io(custom)"
        } else {
            "Io(real)"
        })
    }
}

/// Two configs are equal when they use the same hook (the same `Arc`).
impl PartialEq for Io {
    fn eq(&self, other: &Io) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Io {}

fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(buf)
    }
}

#[cfg(target_os = "linux")]
fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    loop {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, len) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn fallocate(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// File systems known to allocate blocks on `fallocate`, so that a later write
/// fault into the preallocated range cannot fail for want of space.
#[cfg(target_os = "linux")]
const PREALLOCATING: [u64; 3] = [
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // XFS
    0x0102_1994, // tmpfs
];

#[cfg(target_os = "linux")]
fn map_suits(file: &File) -> bool {
    rustix::fs::fstatfs(file)
        .is_ok_and(|s| u64::try_from(s.f_type).is_ok_and(|t| PREALLOCATING.contains(&t)))
}

#[cfg(not(target_os = "linux"))]
fn map_suits(_file: &File) -> bool {
    false
}
