//! `BucketIterator`: Python iteration over a bucket (keys, values or items).

use std::ops::Bound as KeyBound;
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use state_core::{Bucket, ScanRange};

use crate::boundary::{detached, invalid};
use crate::convert::{pair_tuple, Packed};

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
    /// The keys still to visit, narrowed after each batch by the core.
    range: ScanRange,
    /// The current batch, and the next entry of it to yield. Shared, so the Python
    /// objects are made after the lock is released (making them may run the garbage
    /// collector, and with it arbitrary `__del__` code that could use this iterator).
    buf: Arc<Packed>,
    next: usize,
    /// The range is exhausted (or failed).
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
    bucket: Bucket,
    state: Mutex<State>,
    mode: Mode,
}

impl PyBucketIterator {
    pub(crate) fn new(
        bucket: Bucket,
        (lower, upper): (KeyBound<String>, KeyBound<String>),
        mode: Mode,
        reverse: bool,
    ) -> PyBucketIterator {
        PyBucketIterator {
            bucket,
            state: Mutex::new(State {
                range: ScanRange::new(lower, upper, reverse),
                buf: Arc::new(Packed::default()),
                next: 0,
                done: false,
                failed: None,
            }),
            mode,
        }
    }

    /// Takes the entry at `st.next`: the batch it is in and its index.
    fn take(st: &mut State) -> Option<(Arc<Packed>, usize)> {
        if st.next >= st.buf.len() {
            return None;
        }
        st.next += 1;
        Some((Arc::clone(&st.buf), st.next - 1))
    }

    /// Entry `i` of `batch` as the Python object this iterator yields.
    fn to_py<'py>(
        &self,
        py: Python<'py>,
        (batch, i): (Arc<Packed>, usize),
    ) -> PyResult<Bound<'py, PyAny>> {
        let (k, v) = batch.get(i);
        Ok(match self.mode {
            Mode::Keys => PyString::new(py, k).into_any(),
            Mode::Values => PyBytes::new(py, v).into_any(),
            Mode::Items => pair_tuple(py, k, v)?.into_any(),
        })
    }

    /// Reads the next batch into `st.buf` (the GIL is released by the caller).
    fn refill(&self, st: &mut State) {
        let keys_only = matches!(self.mode, Mode::Keys);
        let mut buf = Packed::default();
        let r = st.range.next_batch(&self.bucket, BATCH, |k, v| {
            buf.push(k, if keys_only { &[] } else { v });
        });
        st.buf = Arc::new(buf);
        st.next = 0;
        if let Err(e) = r {
            st.failed = Some(e);
        }
        st.done = st.range.is_done();
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
        let buffered = Self::take(&mut self.state.lock());
        if let Some(item) = buffered {
            return self.to_py(py, item).map(Some);
        }
        let next = detached(py, || {
            let mut st = self.state.lock();
            if st.next >= st.buf.len() && !st.done {
                self.refill(&mut st);
            }
            match Self::take(&mut st) {
                Some(item) => Ok(Some(item)),
                // Entries read before an error are yielded first; the error is raised
                // when they run out.
                None => st.failed.take().map_or(Ok(None), Err),
            }
        })?;
        next.map(|item| self.to_py(py, item)).transpose()
    }
}
