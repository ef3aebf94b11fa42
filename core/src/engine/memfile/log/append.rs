//! How records reach the current log file: through the mapped window where the file
//! system suits it, with `pwrite(2)` otherwise.

#[cfg(target_os = "linux")]
use super::mmap as mapped;
use super::LogFile;

/// Bytes by which a log file is preallocated at a time, and the size of the window
/// of it that is mapped for appends (Linux).
#[cfg(target_os = "linux")]
pub(crate) const CHUNK: u64 = 1 << 20;

/// How records reach the current log file.
///
/// On Linux, on file systems that allocate for real when asked to (ext2/3/4, XFS,
/// tmpfs), the file is preallocated in [`CHUNK`]s with `fallocate` and each record is
/// copied into a shared mapping of the chunk it falls in: the bytes are in the
/// kernel's page cache once the copy is done (so a process crash loses nothing, as
/// with `write(2)`), without a system call per record. A record that would cross the
/// end of the mapped chunk or is larger than [`mapped::MAP_MAX`] is written with
/// `pwrite(2)` instead, as is every record on other file systems (a copy-on-write file
/// system may fail a write fault for want of space, which a mapping reports as
/// `SIGBUS`) or once preallocating or mapping failed other than for want of space. The
/// file therefore ends in zeros after the last record until the log is finished (cut
/// back to its records at close and when a compaction switches logs); recovery reads
/// a zero tail as the end of the log.
///
/// Crash ordering: a record's 12-byte frame header is copied before its payload, so a
/// copy cut short by a crash leaves either a damaged header followed only by zeros or
/// a valid header whose payload fails its checksum followed only by zeros — both a
/// torn tail to recovery, never damage in the middle of the log.
#[derive(Default)]
pub(in crate::engine::memfile) struct Appender {
    #[cfg(target_os = "linux")]
    mode: Mode,
}

/// Whether an [`Appender`] uses the mapping.
#[cfg(target_os = "linux")]
#[derive(Default)]
enum Mode {
    /// Not known yet: the first append checks the file system.
    #[default]
    Unchecked,
    /// Records go through the mapped window (or `pwrite` when it says so).
    Mapped(mapped::Window),
    /// Every record with `pwrite`: the file system does not suit the mapping, or
    /// preallocating or mapping failed.
    Plain,
}

impl Appender {
    /// An appender that never maps: every record with `pwrite(2)`.
    #[cfg(test)]
    pub(in crate::engine::memfile) fn plain() -> Appender {
        Appender {
            #[cfg(target_os = "linux")]
            mode: Mode::Plain,
        }
    }

    /// Writes the frame `frame` at offset `at`, the log's end (everything from `at` on
    /// is zeros or unused).
    pub(in crate::engine::memfile) fn append(
        &mut self,
        log: &LogFile,
        at: u64,
        frame: &[u8],
    ) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            if let Mode::Unchecked = self.mode {
                self.mode = if log.io.may_map(&log.file, &log.path) {
                    Mode::Mapped(mapped::Window::default())
                } else {
                    Mode::Plain
                };
            }
            if let Mode::Mapped(window) = &mut self.mode {
                match window.append(log, at, frame)? {
                    mapped::Outcome::Copied => return Ok(()),
                    mapped::Outcome::Write => {}
                    mapped::Outcome::Unusable => self.mode = Mode::Plain,
                }
            }
        }
        log.io.write_at(&log.file, &log.path, frame, at)
    }

    /// An appender for the next log of the same directory (what was learnt about the
    /// file system carries over; no mapping does).
    pub(in crate::engine::memfile) fn fresh(&self) -> Appender {
        Appender {
            #[cfg(target_os = "linux")]
            mode: match self.mode {
                Mode::Unchecked => Mode::Unchecked,
                Mode::Mapped(_) => Mode::Mapped(mapped::Window::default()),
                Mode::Plain => Mode::Plain,
            },
        }
    }

    /// Cuts the file back to `len` bytes (the records before a failed append, or the
    /// end of a finished log), unmapping first so nothing maps past the end.
    pub(in crate::engine::memfile) fn cut_back(
        &mut self,
        log: &LogFile,
        len: u64,
    ) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Mode::Mapped(window) = &mut self.mode {
            // Unmapped, and the file's size read again at the next append.
            *window = mapped::Window::default();
        }
        log.io.set_len(&log.file, &log.path, len)
    }
}
