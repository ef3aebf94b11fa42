//! `libstate._native`: the pyo3 glue between the `libstate` Python package and
//! `state-core` (and `state-client`, for `libstate.connect`).
//!
//! This crate only translates: Python arguments into core calls, core results into
//! Python objects, and core errors into the exception tree of `libstate._errors`
//! (in one place, [`boundary::to_py_err`]). Every core call goes through
//! [`boundary`], which catches panics (so none reaches Python) and releases the GIL
//! around work that can block. Behaviour lives in `state-core`.
//!
//! The public classes are Python subclasses of the ones defined here (see
//! `python/libstate/__init__.py`), which add the `MutableMapping` mixins and
//! documentation-friendly helpers.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod boundary;
mod bucket;
mod clock;
mod convert;
mod cursor;
mod iter;
mod remote;
mod service;
mod store;
mod transfer;
mod watch;

use pyo3::prelude::*;

/// The native module. Not for direct use: import `libstate`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::PyStore>()?;
    m.add_class::<clock::PyManualClock>()?;
    m.add_class::<bucket::PyBucket>()?;
    m.add_class::<cursor::PyCursor>()?;
    m.add_class::<iter::PyBucketIterator>()?;
    m.add_class::<service::PyStateService>()?;
    m.add_class::<watch::PyWatcher>()?;
    m.add_class::<remote::PyRemoteBucket>()?;
    m.add_class::<remote::PyRemoteCursor>()?;
    m.add_class::<remote::PyRemoteIterator>()?;
    m.add_class::<remote::PyRemoteWatcher>()?;
    m.add_function(wrap_pyfunction!(boundary::_error_kinds, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DEFAULT_FLUSH_INTERVAL",
        state_core::DEFAULT_FLUSH_INTERVAL.as_secs_f64(),
    )?;
    m.add(
        "DEFAULT_SWEEP_INTERVAL",
        state_core::DEFAULT_SWEEP_INTERVAL.as_secs_f64(),
    )?;
    m.add("DEFAULT_CACHE_SIZE", state_core::DEFAULT_CACHE_SIZE)?;
    m.add(
        "DEFAULT_MAX_VALUE_SIZE",
        state_core::limits::DEFAULT_MAX_VALUE_SIZE,
    )?;
    m.add(
        "DEFAULT_MAX_BATCH_SIZE",
        state_core::limits::DEFAULT_MAX_BATCH_SIZE,
    )?;
    m.add("DEFAULT_WATCH_CAPACITY", state_core::DEFAULT_WATCH_CAPACITY)?;
    m.add(
        "DEFAULT_TIMEOUT",
        state_client::DEFAULT_TIMEOUT.as_secs_f64(),
    )?;
    m.add("MAX_KEY_LEN", state_core::limits::MAX_KEY_LEN)?;
    m.add(
        "MAX_BUCKET_NAME_LEN",
        state_core::limits::MAX_BUCKET_NAME_LEN,
    )?;
    Ok(())
}
