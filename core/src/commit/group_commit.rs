//! Group commit: a writer that needs durability either runs one engine sync that
//! covers every write completed before it started, or waits for the one running.
//!
//! Plain leader/follower group commit splits steady concurrent writers into two
//! alternating halves: the writers a sync releases write again while the next sync,
//! led by those who waited, is already running, so each sync covers about half of
//! them (4 writers measured 1.9-2.4x one writer). So a leader first *gathers*: if more
//! writers were busy during the previous sync than writes are now pending, it waits
//! for their writes — at most half the previous sync's duration (capped at
//! [`MAX_GATHER`]), and never with a single writer, whose latency stays that of one
//! sync.
//!
//! A failed sync fails every writer waiting for it, not only its leader: after a
//! failed fsync the kernel may have dropped the dirty pages it could not write, so a
//! retry that succeeds proves nothing about the writes the failed one covered.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::Result;
use crate::Error;

/// The longest a leader waits to gather writers before it syncs.
const MAX_GATHER: Duration = Duration::from_millis(1);

/// The group commit of one store; see the module docs.
pub(crate) struct GroupSync {
    written: AtomicU64,
    state: Mutex<SyncState>,
    done: Condvar,
    /// Wakes a gathering leader when a write is noted.
    gathered: Condvar,
    /// Durable write calls in progress (between `begin` and the end of their sync).
    active: AtomicUsize,
    /// The most durable write calls in progress at once since the last sync started.
    peak: AtomicUsize,
}

struct SyncState {
    /// Writes up to this sequence number are durable.
    synced: u64,
    /// Whether a leader is running a sync.
    running: bool,
    /// How long the last sync took.
    last_sync: Duration,
    /// Counts finished syncs, so a waiter knows whether the one it waited for ended.
    syncs_finished: u64,
    /// The last failed sync: the writes it failed (up to this sequence number) and
    /// its error.
    failed: Option<(u64, Error)>,
    /// Writers waiting for a running sync.
    waiting: usize,
}

/// A durable write call in progress; see [`GroupSync::begin`].
pub(crate) struct DurableWrite<'a>(&'a GroupSync);

impl Drop for DurableWrite<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl GroupSync {
    pub(crate) fn new() -> GroupSync {
        GroupSync {
            written: AtomicU64::new(0),
            state: Mutex::new(SyncState {
                synced: 0,
                running: false,
                last_sync: Duration::ZERO,
                syncs_finished: 0,
                failed: None,
                waiting: 0,
            }),
            done: Condvar::new(),
            gathered: Condvar::new(),
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Marks a durable write call as in progress until the guard drops.
    pub(crate) fn begin(&self) -> DurableWrite<'_> {
        let n = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        DurableWrite(self)
    }

    /// Records a completed write; returns its sequence number.
    pub(crate) fn note_write(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Records a completed durable write and wakes a gathering leader.
    pub(crate) fn note_durable_write(&self) -> u64 {
        let seq = self.note_write();
        // Taking the lock orders this with the leader's check-then-wait.
        drop(self.state.lock());
        self.gathered.notify_all();
        seq
    }

    /// The sequence number of the last write noted.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Returns once writes up to `seq` are durable, running `sync` (the engine's) as
    /// the leader or waiting for the leader's. A failed sync's error reaches its
    /// leader and every writer that waited for it.
    pub(crate) fn sync_through(&self, seq: u64, sync: impl Fn() -> Result<()>) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.synced >= seq {
                return Ok(());
            }
            if st.running {
                let finished = st.syncs_finished;
                st.waiting += 1;
                while st.running && st.syncs_finished == finished {
                    self.done.wait(&mut st);
                }
                st.waiting -= 1;
                if let Some((through, e)) = &st.failed {
                    if st.synced < seq && seq <= *through {
                        return Err(e.duplicate());
                    }
                }
                continue;
            }
            st.running = true;
            self.gather(&mut st);
            let target = self.written();
            let started = Instant::now();
            let result = MutexGuard::unlocked(&mut st, &sync);
            st.last_sync = started.elapsed();
            st.running = false;
            st.syncs_finished += 1;
            match result {
                Ok(()) => st.synced = st.synced.max(target),
                Err(e) => {
                    // Every write noted by now may have been among the pages it lost.
                    st.failed = Some((self.written(), e.duplicate()));
                    self.done.notify_all();
                    return Err(e);
                }
            }
            self.done.notify_all();
        }
    }

    /// A new leader's wait for the writers that were busy during the last sync.
    fn gather(&self, st: &mut MutexGuard<'_, SyncState>) {
        let expected = self
            .peak
            .swap(self.active.load(Ordering::SeqCst), Ordering::SeqCst);
        if expected <= 1 {
            return;
        }
        let deadline = Instant::now() + (st.last_sync / 2).min(MAX_GATHER);
        while self.written().saturating_sub(st.synced) < expected as u64 {
            if self.gathered.wait_until(st, deadline).timed_out() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    use std::sync::Barrier;
    use std::thread;

    use super::*;
    use crate::ErrorKind;

    fn io_error() -> Error {
        Error::io(
            std::path::Path::new("/store/log"),
            std::io::Error::other("disk on fire"),
        )
    }

    /// Blocks the calling thread until `n` writers wait for the running sync.
    fn until_waiting(g: &GroupSync, n: usize) {
        while g.state.lock().waiting < n {
            thread::yield_now();
        }
    }

    #[test]
    fn writes_noted_before_a_sync_share_it() {
        const N: usize = 8;
        let g = GroupSync::new();
        let syncs = AtomicUsize::new(0);
        let all_noted = Barrier::new(N);
        thread::scope(|s| {
            for _ in 0..N {
                s.spawn(|| {
                    let seq = g.note_durable_write();
                    all_noted.wait();
                    g.sync_through(seq, || {
                        syncs.fetch_add(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(syncs.load(Ordering::SeqCst), 1, "one sync for {N} writers");
        assert_eq!(g.state.lock().synced, N as u64);
    }

    #[test]
    fn a_waiter_whose_write_came_late_leads_the_next_sync() {
        let g = GroupSync::new();
        let (entered_tx, entered) = mpsc::channel::<String>();
        let (release, release_rx) = mpsc::channel::<()>();
        let release_rx = parking_lot::Mutex::new(release_rx);
        let (g, sync) = (&g, &|| {
            let name = thread::current().name().unwrap_or("?").to_string();
            entered_tx.send(name).unwrap();
            release_rx.lock().recv().unwrap();
            Ok(())
        });
        thread::scope(|s| {
            let seq_a = g.note_durable_write();
            let a = thread::Builder::new()
                .name("a".into())
                .spawn_scoped(s, move || g.sync_through(seq_a, sync))
                .unwrap();
            assert_eq!(entered.recv().unwrap(), "a");
            // `a`'s sync covers only write 1; write 2 comes while it runs.
            let seq_b = g.note_durable_write();
            let b = thread::Builder::new()
                .name("b".into())
                .spawn_scoped(s, move || g.sync_through(seq_b, sync))
                .unwrap();
            until_waiting(g, 1);
            release.send(()).unwrap();
            a.join().unwrap().unwrap();
            assert_eq!(entered.recv().unwrap(), "b", "b leads the second sync");
            release.send(()).unwrap();
            b.join().unwrap().unwrap();
        });
        assert_eq!(g.state.lock().synced, 2);
        assert!(entered.try_recv().is_err(), "exactly two syncs");
    }

    #[test]
    fn a_failed_sync_fails_every_writer_that_waited_for_it() {
        const N: usize = 5;
        let g = GroupSync::new();
        let syncs = AtomicUsize::new(0);
        let all_noted = Barrier::new(N);
        let results: Vec<Result<()>> = thread::scope(|s| {
            let handles: Vec<_> = (0..N)
                .map(|_| {
                    s.spawn(|| {
                        let seq = g.note_durable_write();
                        all_noted.wait();
                        g.sync_through(seq, || {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            // Fail only once every other writer waits for this sync.
                            until_waiting(&g, N - 1);
                            Err(io_error())
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        for r in results {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Io);
            assert!(e.to_string().contains("disk on fire"), "{e}");
        }
        // A later write syncs again and succeeds.
        let seq = g.note_durable_write();
        g.sync_through(seq, || Ok(())).unwrap();
    }
}
