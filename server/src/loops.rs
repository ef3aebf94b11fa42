//! The Redis-protocol event loops: one current-thread tokio runtime per worker
//! thread ([`crate::Config::threads`]). The accept loops hand each new connection to
//! the next loop in turn (round-robin), and the connection lives on that thread
//! from then on: a request is read, run and answered there, with no wake-up
//! crossing threads. Work that may block (a write waiting for fsync in sync mode,
//! commands whose work grows with the data) leaves the loop for tokio's blocking
//! pool ([`crate::cmd::runs_long`]), so it never stalls the loop's other
//! connections.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// A connection's future, made on the accepting thread and run on a loop.
type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The running loops.
pub(crate) struct Loops {
    /// Each loop's queue of new connections; emptied by [`Loops::stop`].
    senders: parking_lot::Mutex<Vec<mpsc::UnboundedSender<Job>>>,
    /// How many loops run (the round-robin's modulus).
    count: usize,
    next: AtomicUsize,
    threads: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

/// The default number of loops: one per two cores, at least one.
pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

impl Loops {
    /// Starts `n` loops (at least 1), each on a thread of its own.
    ///
    /// # Errors
    /// A runtime or a thread that cannot be started.
    pub(crate) fn start(n: usize) -> io::Result<Loops> {
        let n = n.max(1);
        let mut senders = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let thread = std::thread::Builder::new()
                .name(format!("state-loop-{i}"))
                .spawn(move || {
                    // Its request counts go to a shard of the metrics of its own.
                    crate::metrics::set_thread_shard(i + 1);
                    rt.block_on(async move {
                        while let Some(job) = rx.recv().await {
                            tokio::spawn(job);
                        }
                    });
                })?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Loops {
            senders: parking_lot::Mutex::new(senders),
            count: n,
            next: AtomicUsize::new(0),
            threads: parking_lot::Mutex::new(threads),
        })
    }

    /// Runs `job` on the next loop in turn. After [`Loops::stop`] it is dropped
    /// unrun (the server is shutting down).
    pub(crate) fn run(&self, job: impl Future<Output = ()> + Send + 'static) {
        let i = self.next.fetch_add(1, Relaxed) % self.count;
        if let Some(tx) = self.senders.lock().get(i) {
            // A loop that has ended drops the job (and the connection with it).
            let _ = tx.send(Box::pin(job));
        }
    }

    /// Ends the loops once their queues are empty, and waits for their threads.
    /// Call it after every connection has ended: tasks still running on a loop
    /// are dropped when its runtime ends.
    pub(crate) fn stop(&self) {
        self.senders.lock().clear();
        for t in self.threads.lock().drain(..) {
            if t.join().is_err() {
                tracing::error!("an event loop thread panicked");
            }
        }
    }
}
