//! Background compaction: fold the logs into a new snapshot and delete what it covers.
//!
//! Steps (crash states for each: docs/memfile-format.md, "Compaction"):
//! 1. create `log-(g+1)` durably (temporary name, sync, rename, sync directory);
//! 2. switch writers to it (a pointer swap under the writer mutex);
//! 3. sync the older logs;
//! 4. write `snapshot-(g+1).tmp` from the live state in chunks, sync it;
//! 5. sync the logs again, so every write the snapshot may reflect is durable;
//! 6. rename it to `snapshot-(g+1)`, sync the directory;
//! 7. delete older snapshots and logs, sync the directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::files::{self, FileName};
use super::format::{FileHeader, FILE_HEADER_LEN};
use super::log::LogFile;
use super::snapshot;
use super::{sync_logs, Inner};
use crate::error::{Error, Result};

struct Control {
    requested: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
}

/// The compaction thread of one engine.
pub(super) struct Compactor {
    control: Arc<Control>,
    thread: JoinHandle<()>,
}

impl Compactor {
    pub(super) fn start(inner: &Arc<Inner>) -> Result<Compactor> {
        let control = Arc::new(Control {
            requested: Mutex::new(false),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let c = Arc::clone(&control);
        let inner = Arc::clone(inner);
        let thread = std::thread::Builder::new()
            .name("libstate-compact".into())
            .spawn(move || run(&inner, &c))
            .map_err(|e| Error::Internal(format!("cannot start the compaction thread: {e}")))?;
        Ok(Compactor { control, thread })
    }

    /// Asks for one compaction (the caller has set `Writer::compacting`).
    pub(super) fn request(&self) {
        *self.control.requested.lock() = true;
        self.control.wake.notify_one();
    }

    /// Stops the thread and waits for it. A compaction requested or in progress is
    /// finished first (as LevelDB's close does): abandoning it would leave the next
    /// open to replay the whole log again, and a store that is opened and closed
    /// quickly would never get a snapshot.
    pub(super) fn stop(self) {
        self.control.stop.store(true, Ordering::SeqCst);
        {
            let _g = self.control.requested.lock();
            self.control.wake.notify_one();
        }
        // The thread only ends by returning; a panic there is a bug we cannot act on.
        let _ = self.thread.join();
    }
}

fn run(inner: &Inner, c: &Control) {
    loop {
        {
            let mut requested = c.requested.lock();
            while !*requested && !c.stop.load(Ordering::SeqCst) {
                c.wake.wait(&mut requested);
            }
            if !*requested {
                return;
            }
            *requested = false;
        }
        let outcome = compact(inner);
        let mut w = inner.writer.lock();
        w.compacting = false;
        match outcome {
            Ok(()) => w.retry_above = 0,
            // Retried once the log has grown by another minimum step, so a full
            // disk does not turn every write into a compaction attempt.
            Err(_) => w.retry_above = w.log_bytes() + inner.config.compact_min_log_bytes,
        }
        drop(w);
        if c.stop.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// One compaction on request (`Store::compact`), in the calling thread: waits for a
/// background compaction in progress to finish first, as two must never overlap.
pub(super) fn compact_now(inner: &Inner) -> Result<()> {
    loop {
        let mut w = inner.writer.lock();
        if !w.compacting {
            w.compacting = true;
            break;
        }
        drop(w);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let outcome = compact(inner);
    let mut w = inner.writer.lock();
    w.compacting = false;
    if outcome.is_ok() {
        w.retry_above = 0;
    }
    outcome
}

/// One compaction.
pub(super) fn compact(inner: &Inner) -> Result<()> {
    let dir = &inner.dir;
    let io = &inner.config.io;
    let new_gen = {
        let w = inner.writer.lock();
        // No compaction of a log that can no longer be trusted (see `Writer::failed`).
        w.check_failed()?;
        w.log.gen + 1
    };

    // 1-2. A fresh log, then the switch.
    let new_log = Arc::new(LogFile::create(io, dir, new_gen)?);
    let (next_seq, mut old_appender, old_log, old_len) = {
        let mut w = inner.writer.lock();
        // Set meanwhile: the new log stays unused (an empty log, replayed as such).
        w.check_failed()?;
        let w = &mut *w;
        let fresh = w.appender.fresh();
        let old_appender = std::mem::replace(&mut w.appender, fresh);
        let old = std::mem::replace(&mut w.log, new_log);
        w.retired.push(Arc::clone(&old));
        let old_len = w.log_len;
        w.older_logs_bytes += w.log_len;
        w.log_len = FILE_HEADER_LEN as u64;
        (w.next_seq, old_appender, old, old_len)
    };
    // The old log's preallocated tail goes, after the switch so writers never wait
    // for it (best effort: a zero tail left by a failure here reads as the log's end
    // at the next open).
    let _ = old_appender.cut_back(&old_log, old_len);
    drop(old_log);

    // 3-5.
    sync_logs(inner)?;
    let tmp = dir.join(FileName::SnapshotTmp(new_gen).to_string());
    let header = FileHeader {
        gen: new_gen,
        next_seq,
    };
    if let Err(e) = snapshot::write(io, &inner.state, &tmp, header) {
        let _ = files::remove(io, dir, FileName::SnapshotTmp(new_gen));
        return Err(e);
    }
    sync_logs(inner)?;

    // 6.
    let path = dir.join(FileName::Snapshot(new_gen).to_string());
    io.rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    files::sync_dir(io, dir)?;

    // 7. The new snapshot plus log-(g+1) on are the store now.
    let listing = files::list(dir)?;
    for &g in listing.snapshots.iter().filter(|&&g| g < new_gen) {
        files::remove(io, dir, FileName::Snapshot(g))?;
    }
    {
        let mut w = inner.writer.lock();
        w.retired.retain(|l| l.gen >= new_gen);
        w.older_logs_bytes = 0;
    }
    for &g in listing.logs.iter().filter(|&&g| g < new_gen) {
        files::remove(io, dir, FileName::Log(g))?;
    }
    files::sync_dir(io, dir)?;
    Ok(())
}
