//! `Watcher`: a bucket's change notifications as a Python iterator (and, through
//! the `libstate.Watcher` subclass, an async iterator).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::prelude::*;
use state_core::{Notice, RecvError, Watcher};

use crate::boundary::{attached, detached};
use crate::bucket::PyBucket;

/// How long one GIL-free wait lasts before Python's signal handlers get a chance
/// (so Ctrl-C interrupts a blocked `for event in watcher`).
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What `_recv` returns: `(kind, key, value, missed, new)`; kind is an
/// `EventKind`'s name (`"set"`, `"delete"`, `"expire"`, `"persist"`, `"expired"`),
/// `"lagged"` or `"ended"`.
type Raw = (&'static str, Option<String>, Option<Vec<u8>>, u64, bool);

fn raw(n: Notice) -> Raw {
    match n {
        Notice::Change(e) => (
            e.kind().as_str(),
            Some(e.key().to_string()),
            e.value().map(<[u8]>::to_vec),
            0,
            e.is_new(),
        ),
        Notice::Lagged(missed) => ("lagged", None, None, missed, false),
    }
}

const ENDED: Raw = ("ended", None, None, 0, false);

/// The changes under a key prefix of one bucket; get one with `Bucket.watch`.
/// The public `libstate.Watcher` subclass makes it an iterator and an async
/// iterator of `libstate.Event`.
#[pyclass(frozen, subclass, name = "Watcher", module = "libstate._native")]
pub(crate) struct PyWatcher {
    inner: Watcher,
    /// The read end of the wake-up socket for event loops, once asked for; the
    /// watcher's waker writes a byte to the other end.
    wakeup: Mutex<Option<UnixStream>>,
}

impl PyWatcher {
    pub(crate) fn new(inner: Watcher) -> PyWatcher {
        PyWatcher {
            inner,
            wakeup: Mutex::new(None),
        }
    }
}

#[pymethods]
impl PyWatcher {
    /// Watches the keys of `bucket` starting with `prefix`, with a queue of
    /// `capacity` events (`libstate.Bucket.watch` is the documented way in).
    #[new]
    #[pyo3(signature = (bucket, prefix = "", capacity = state_core::DEFAULT_WATCH_CAPACITY))]
    fn py_new(bucket: &PyBucket, prefix: &str, capacity: usize) -> PyResult<PyWatcher> {
        let w = attached(|| bucket.inner.watch_with_capacity(prefix, capacity))?;
        Ok(PyWatcher::new(w))
    }

    /// The next notice as `(kind, key, value, missed)`, waiting at most `timeout`
    /// seconds (`None`: until one comes), with the GIL released; `None` if none came
    /// in time. Kind `"ended"` once the watcher has ended and is drained.
    #[pyo3(signature = (timeout = None))]
    fn _recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Raw>> {
        let deadline = match timeout {
            Some(t) if t.is_finite() && t > 0.0 => {
                Some(Instant::now() + Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX / 4))
            }
            Some(_) => {
                return attached(|| {
                    Ok(match self.inner.try_recv() {
                        Ok(n) => Some(raw(n)),
                        Err(RecvError::Empty) => None,
                        Err(RecvError::Ended) => Some(ENDED),
                    })
                })
            }
            None => None,
        };
        loop {
            let slice = deadline.map_or(WAIT_SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
            });
            let got = detached(py, || Ok(self.inner.recv_timeout(slice)))?;
            match got {
                Ok(n) => return Ok(Some(raw(n))),
                Err(RecvError::Ended) => return Ok(Some(ENDED)),
                Err(RecvError::Empty) => {
                    py.check_signals()?;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// A file descriptor that becomes readable whenever a notice is queued or the
    /// watcher ends (for `loop.add_reader`); `_drain_wakeup` empties it.
    fn _wakeup_fd(&self) -> PyResult<i32> {
        let mut slot = self.wakeup.lock();
        if let Some(s) = slot.as_ref() {
            return Ok(s.as_raw_fd());
        }
        let (reader, writer) = UnixStream::pair()
            .and_then(|(r, w)| {
                r.set_nonblocking(true)?;
                w.set_nonblocking(true)?;
                Ok((r, w))
            })
            .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
        let fd = reader.as_raw_fd();
        // A full socket already means "readable": a failed write loses nothing.
        self.inner.set_waker(move || {
            let _ = (&writer).write(&[1]);
        });
        *slot = Some(reader);
        Ok(fd)
    }

    /// Empties the wake-up socket.
    fn _drain_wakeup(&self) {
        if let Some(s) = self.wakeup.lock().as_ref() {
            let mut buf = [0u8; 256];
            while matches!((&*s).read(&mut buf), Ok(n) if n > 0) {}
        }
    }

    /// The watched key prefix.
    #[getter]
    fn prefix(&self) -> String {
        self.inner.prefix().to_string()
    }

    /// Ends the watcher: no more events are queued, and a `for` loop over it
    /// finishes once the events queued before have been yielded.
    fn close(&self) {
        self.inner.end();
    }

    /// Whether the watcher has ended (events may still be queued).
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_ended()
    }
}
