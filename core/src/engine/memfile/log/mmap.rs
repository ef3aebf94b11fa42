//! The mapped window of the log file (Linux): preallocated chunks, each record
//! copied into a shared mapping of the chunk it falls in. See [`super::Appender`].

use std::io;
use std::sync::atomic::{compiler_fence, Ordering};

use super::{LogFile, CHUNK};
use crate::engine::memfile::format::FRAME_HEADER_LEN;

/// Records larger than this are written with `pwrite(2)`: copying them into the
/// mapping costs a page fault per fresh page, more than the system call (Set
/// Multiple 1000, 130 KB records, measured 0.45 ms mapped vs 0.35 ms written at
/// 100K records), while a small record saves the call (Set 1 1.5 -> 0.7 us).
pub(super) const MAP_MAX: usize = 16 << 10;

/// The mapped chunk of the log that appends are copied into.
#[derive(Default)]
pub(super) struct Window {
    /// The file's preallocated size, if known (it is read on first use).
    allocated: Option<u64>,
    /// File offset of `map`'s first byte, and the mapping.
    map: Option<(u64, memmap2::MmapMut)>,
}

/// What [`Window::append`] did.
pub(super) enum Outcome {
    /// The frame is in the log.
    Copied,
    /// Nothing written: this frame is for `pwrite` (too big, or crossing a chunk).
    Write,
    /// Nothing written: preallocating or mapping failed other than for want of
    /// space; use `pwrite` from now on.
    Unusable,
}

/// Whether `file` lies on a file system where the mapping is used (ext2/3/4, XFS,
/// tmpfs: see `fileio::map_suits`).
#[cfg(test)]
pub(super) fn suits(file: &std::fs::File) -> bool {
    crate::fileio::Io::real().may_map(file, std::path::Path::new(""))
}

impl Window {
    #[allow(unsafe_code)]
    /// Copies `frame` to offset `at` of `file`, preallocating first. Errors are
    /// those of running out of space (*no space*, *quota*); other failures of
    /// `fallocate` or `mmap` are [`Outcome::Unusable`].
    #[inline]
    pub(super) fn append(&mut self, log: &LogFile, at: u64, frame: &[u8]) -> io::Result<Outcome> {
        let file = &log.file;
        let end = at + frame.len() as u64;
        let start = at / CHUNK * CHUNK;
        let allocated = match self.allocated {
            Some(a) => a,
            None => match file.metadata() {
                Ok(m) => m.len(),
                Err(_) => return Ok(Outcome::Unusable),
            },
        };
        self.allocated = Some(allocated);
        // Preallocate through the end of this record's chunk(s) first, so a full
        // disk is an error here rather than a SIGBUS on a mapped page.
        let want = end.div_ceil(CHUNK) * CHUNK;
        if want > allocated {
            if let Err(e) = log
                .io
                .fallocate(file, &log.path, allocated, want - allocated)
            {
                use rustix::io::Errno;
                let errno = e.raw_os_error().map(Errno::from_raw_os_error);
                return match errno {
                    Some(Errno::NOSPC | Errno::DQUOT) => Err(e),
                    _ => Ok(Outcome::Unusable),
                };
            }
            self.allocated = Some(want);
        }
        if end > start + CHUNK || frame.len() > MAP_MAX {
            self.map = None;
            return Ok(Outcome::Write);
        }
        let map = match &mut self.map {
            Some((s, m)) if *s == start => m,
            slot => {
                *slot = None;
                if log.io.before_map(&log.path).is_err() {
                    return Ok(Outcome::Unusable);
                }
                // SAFETY: the mapping covers [start, start + CHUNK), inside the
                // file's allocated size (`want` above is a multiple of CHUNK past
                // `start`), and the file is only shrunk after the mapping is
                // dropped (`Appender::cut_back`). No other process writes the file
                // (the store's directory lock), and within this one only the writer
                // holding the log writes to it, through this mapping or, with the
                // mapping dropped first, through `pwrite`. Nothing reads through the
                // mapping, so no Rust reference observes a change made behind it.
                let m = unsafe {
                    memmap2::MmapOptions::new()
                        .offset(start)
                        .len(CHUNK as usize)
                        .map_mut(file)
                };
                let Ok(m) = m else {
                    return Ok(Outcome::Unusable);
                };
                &mut slot.insert((start, m)).1
            }
        };
        let at = (at - start) as usize;
        let (header, payload) = frame.split_at(FRAME_HEADER_LEN.min(frame.len()));
        map[at..at + header.len()].copy_from_slice(header);
        // The header's bytes are stored before any of the payload's (see
        // `Appender` for why this order makes a cut-short copy a torn tail).
        compiler_fence(Ordering::SeqCst);
        map[at + header.len()..at + frame.len()].copy_from_slice(payload);
        Ok(Outcome::Copied)
    }
}
