//! `libstate.ManualClock`: a clock tests move by hand, for stores opened with
//! `clock=`. It wraps the core's [`state_core::ManualClock`].

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use state_core::{Clock, ManualClock, SystemClock};

/// A wall clock that only moves when told to: `advance(seconds)` or `set(unix
/// seconds)`. A store opened with `clock=` judges every TTL by it, so tests of
/// expiry need no sleeping.
#[pyclass(name = "ManualClock", module = "libstate._native", frozen, subclass)]
pub struct PyManualClock {
    pub(crate) inner: Arc<ManualClock>,
}

fn millis(what: &str, seconds: f64) -> PyResult<u64> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "{what} must be a finite number of seconds >= 0, got {seconds}"
        )));
    }
    let ms = (seconds * 1000.0).round();
    if ms > u64::MAX as f64 {
        return Err(PyValueError::new_err(format!(
            "{what} of {seconds} s is too large"
        )));
    }
    Ok(ms as u64)
}

#[pymethods]
impl PyManualClock {
    /// A clock reading `start` (unix seconds; default: the current wall-clock time).
    #[new]
    #[pyo3(signature = (start = None))]
    fn new(start: Option<f64>) -> PyResult<PyManualClock> {
        let start_ms = match start {
            Some(s) => millis("start", s)?,
            None => SystemClock.now_ms(),
        };
        Ok(PyManualClock {
            inner: Arc::new(ManualClock::new(start_ms)),
        })
    }

    /// Moves the clock forward by `seconds` (>= 0; millisecond resolution).
    fn advance(&self, seconds: f64) -> PyResult<()> {
        self.inner.advance(millis("advance", seconds)?);
        Ok(())
    }

    /// Sets the clock to `unix_seconds`.
    fn set(&self, unix_seconds: f64) -> PyResult<()> {
        self.inner.set(millis("set", unix_seconds)?);
        Ok(())
    }

    /// The clock's reading, in unix seconds.
    fn now(&self) -> f64 {
        self.inner.now_ms() as f64 / 1000.0
    }
}
