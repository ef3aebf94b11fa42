//! `BucketIterator`: Python iteration over a bucket (keys, values or items).

use std::collections::VecDeque;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use state_core::{Entry, Iter};

use crate::boundary::{attached, detached, invalid};
use crate::convert::entry_tuple;

/// Entries fetched per GIL release: enough to amortise the release, small enough to
/// keep memory flat and the first item quick.
const BATCH: usize = 256;

/// What an iterator yields.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    Keys,
    Values,
    Items,
}

impl Mode {
    pub(crate) fn from_u8(m: u8) -> PyResult<Mode> {
        match m {
            0 => Ok(Mode::Keys),
            1 => Ok(Mode::Values),
            2 => Ok(Mode::Items),
            _ => Err(invalid(format!(
                "invalid argument: iteration mode {m} (expected 0, 1 or 2)"
            ))),
        }
    }
}

struct State {
    iter: Box<dyn Iterator<Item = state_core::Result<Entry>> + Send>,
    buf: VecDeque<Entry>,
    /// The underlying iterator is exhausted (or failed).
    done: bool,
    /// An error met while refilling, raised once the entries read before it are out.
    failed: Option<state_core::Error>,
}

/// An iterator over a bucket's live records in key order (or reverse order).
///
/// Records are read in batches, stepping by key: no lock or snapshot is held between
/// batches, so other threads may write meanwhile and their writes may or may not be
/// seen. Raises `StoreClosed` once the store is closed.
#[pyclass(frozen, name = "BucketIterator", module = "libstate._native")]
pub(crate) struct PyBucketIterator {
    state: Mutex<State>,
    mode: Mode,
}

impl PyBucketIterator {
    pub(crate) fn new(iter: Iter, mode: Mode, reverse: bool) -> PyBucketIterator {
        let iter: Box<dyn Iterator<Item = state_core::Result<Entry>> + Send> = if reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        PyBucketIterator {
            state: Mutex::new(State {
                iter,
                buf: VecDeque::new(),
                done: false,
                failed: None,
            }),
            mode,
        }
    }

    fn to_py<'py>(&self, py: Python<'py>, e: Entry) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.mode {
            Mode::Keys => PyString::new(py, &e.0).into_any(),
            Mode::Values => PyBytes::new(py, &e.1).into_any(),
            Mode::Items => entry_tuple(py, e)?.into_any(),
        })
    }
}

#[pymethods]
impl PyBucketIterator {
    /// Returns the iterator itself.
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The next key, value or `(key, value)` pair.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        // Fast path: a buffered entry, taken under the GIL without blocking (the lock
        // is only ever held briefly, or inside a GIL-free refill).
        let buffered = attached(|| Ok(self.state.lock().buf.pop_front()))?;
        if let Some(e) = buffered {
            return Ok(Some(self.to_py(py, e)?));
        }
        let next = detached(py, || {
            let mut st = self.state.lock();
            if st.buf.is_empty() && !st.done {
                // Entries read before an error are yielded first; the error is raised
                // when they run out.
                while st.buf.len() < BATCH {
                    match st.iter.next() {
                        Some(Ok(e)) => st.buf.push_back(e),
                        Some(Err(err)) => {
                            st.failed = Some(err);
                            break;
                        }
                        None => break,
                    }
                }
                st.done = st.buf.len() < BATCH;
            }
            match st.buf.pop_front() {
                Some(e) => Ok(Some(e)),
                None => st.failed.take().map_or(Ok(None), Err),
            }
        })?;
        next.map(|e| self.to_py(py, e)).transpose()
    }
}
