//! The store's background threads: the periodic flush (checkpoints, and in
//! periodic mode the durability window) and the expiry sweeper.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Shared;
use crate::error::{Error, Result};

/// The store's background threads: the periodic flush and the expiry sweeper.
pub(super) struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl Background {
    pub(super) fn start(shared: &Arc<Shared>) -> Result<Background> {
        let mut bg = Background {
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            threads: Vec::new(),
        };
        // In periodic mode this is the durability window; in sync mode writes are
        // already durable and it only records checkpoints.
        bg.spawn(shared, "libstate-flush", shared.opts.flush_interval, |s| {
            // A failed background flush is retried at the next tick; an explicit
            // flush() reports the error to its caller.
            let _ = s.checkpoint();
        })?;
        if let Some(interval) = shared.opts.sweep_interval {
            bg.spawn(shared, "libstate-sweep", interval, |s| {
                // Errors here (e.g. the store closing) are retried at the next tick.
                let _ = s.sweep();
            })?;
        }
        Ok(bg)
    }

    /// Runs `task` every `interval` until stopped. The thread holds only a weak
    /// reference, so it never keeps a store alive.
    fn spawn(
        &mut self,
        shared: &Arc<Shared>,
        name: &str,
        interval: Duration,
        task: fn(&Shared),
    ) -> Result<()> {
        let weak = Arc::downgrade(shared);
        let stop = Arc::clone(&self.stop);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || loop {
                {
                    let (lock, cv) = &*stop;
                    let mut stopped = lock.lock();
                    let deadline = Instant::now() + interval;
                    while !*stopped {
                        if cv.wait_until(&mut stopped, deadline).timed_out() {
                            break;
                        }
                    }
                    if *stopped {
                        return;
                    }
                }
                let Some(shared) = weak.upgrade() else { return };
                task(&shared);
            })
            .map_err(|e| Error::Internal(format!("cannot start thread {name}: {e}")))?;
        self.threads.push(thread);
        Ok(())
    }

    pub(super) fn stop(self) {
        {
            let (lock, cv) = &*self.stop;
            *lock.lock() = true;
            cv.notify_all();
        }
        for t in self.threads {
            // The threads only end by returning; a panic there is a bug we can't act on.
            let _ = t.join();
        }
    }
}
