//! `Cursor`: a movable position in a bucket's key order.

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use state_core::{Cursor, Entry, Position};

use crate::boundary::{detached, StoreClosed};
use crate::convert::{entry_tuple, pair_tuple, Packed};

/// A cursor over one bucket, stepping by key (see the `libstate.Cursor` docs).
#[pyclass(frozen, name = "Cursor", module = "libstate._native")]
pub(crate) struct PyCursor {
    /// `None` once the cursor is closed.
    inner: Mutex<Option<Cursor>>,
}

impl PyCursor {
    pub(crate) fn new(c: Cursor) -> PyCursor {
        PyCursor {
            inner: Mutex::new(Some(c)),
        }
    }

    /// Runs `f` on the cursor with the GIL released (each step reads the engine).
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Cursor) -> state_core::Result<T> + Send,
    ) -> PyResult<T> {
        let mut closed = false;
        let out = detached(py, || {
            let mut guard = self.inner.lock();
            match guard.as_mut() {
                Some(c) => f(c).map(Some),
                None => {
                    closed = true;
                    Ok(None)
                }
            }
        })?;
        match out {
            Some(v) if !closed => Ok(v),
            _ => Err(StoreClosed::new_err("the cursor is closed")),
        }
    }

    fn one<'py>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&mut Cursor) -> state_core::Result<Option<Entry>> + Send,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.with(py, f)?.map(|e| entry_tuple(py, e)).transpose()
    }

    /// Up to `n` steps (`back` for prev), packed without the GIL, then as a list.
    fn many<'py>(&self, py: Python<'py>, back: bool, n: usize) -> PyResult<Bound<'py, PyList>> {
        let packed = self.with(py, |c| {
            let mut p = Packed::default();
            let push = |k: &str, v: &[u8]| p.push(k, v);
            if back {
                c.prev_n_with(n, push)?;
            } else {
                c.next_n_with(n, push)?;
            }
            Ok(p)
        })?;
        let items = (0..packed.len())
            .map(|i| {
                let (k, v) = packed.get(i);
                pair_tuple(py, k, v)
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

#[pymethods]
impl PyCursor {
    /// Moves to the first entry and returns it as `(key, value)`; `None` (cursor after
    /// the end) if the bucket is empty.
    fn first<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, Cursor::first)
    }

    /// Moves to the last entry and returns it; `None` (cursor before the start) if the
    /// bucket is empty.
    fn last<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, Cursor::last)
    }

    /// Steps to the smallest live key greater than the current one and returns its
    /// entry. From before the start this is the first entry; past the end it returns
    /// `None` and the cursor stays after the end, from where `prev()` returns the
    /// last entry.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, Cursor::next)
    }

    /// Steps to the greatest live key smaller than the current one and returns its
    /// entry; symmetrical to `next()`.
    fn prev<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, Cursor::prev)
    }

    /// Moves to the first entry whose key is `>= key` and returns it; if none follows,
    /// returns `None` and the cursor is after the end. Raises `InvalidArgument` for an
    /// empty or over-long key.
    fn seek<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, |c| c.seek(key))
    }

    /// Exactly `n` calls of `next()`: the entries stepped onto, in ascending order.
    /// Fewer than `n` means the end was reached.
    fn next_n<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        self.many(py, false, n)
    }

    /// Exactly `n` calls of `prev()`: the entries stepped onto, in descending order.
    /// Fewer than `n` means the start was reached.
    fn prev_n<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        self.many(py, true, n)
    }

    /// The key the cursor stands on, or `None` before the start or after the end.
    #[getter]
    fn key(&self) -> PyResult<Option<String>> {
        match self.inner.lock().as_ref() {
            Some(c) => Ok(match c.position() {
                Position::At(k) => Some(k.clone()),
                _ => None,
            }),
            None => Err(StoreClosed::new_err("the cursor is closed")),
        }
    }

    /// Closes the cursor: any later call raises `StoreClosed`. Idempotent.
    fn close(&self) {
        *self.inner.lock() = None;
    }

    /// Returns the cursor itself; the `with` block closes it on exit.
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Closes the cursor. Exceptions from the `with` block propagate.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    /// Returns the cursor itself: iterating a cursor calls `next()` until the end.
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// `next(cursor)`: the next entry; `StopIteration` at the end.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.next(py)
    }
}
