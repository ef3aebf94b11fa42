//! The one boundary between Python and the core: panic catching, GIL release and
//! the mapping of [`state_core::ErrorKind`] to Python exceptions.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;
use state_core::{Error, ErrorKind};

/// The exception classes, defined in plain Python (`libstate/_errors.py`) so they can
/// inherit from two bases (`InvalidArgument` is also a `ValueError`, `StoreIOError`
/// also an `OSError`), pickle, and carry docstrings.
mod exc {
    pyo3::import_exception!(libstate._errors, InvalidArgument);
    pyo3::import_exception!(libstate._errors, StoreLocked);
    pyo3::import_exception!(libstate._errors, CorruptStore);
    pyo3::import_exception!(libstate._errors, StoreIOError);
    pyo3::import_exception!(libstate._errors, TooLarge);
    pyo3::import_exception!(libstate._errors, StoreClosed);
    pyo3::import_exception!(libstate._errors, QuotaExceeded);
    pyo3::import_exception!(libstate._errors, Conflict);
    pyo3::import_exception!(libstate._errors, InternalError);
}

pub(crate) use exc::{InvalidArgument, StoreClosed};

/// Maps a core error to its Python exception, keeping the core's message. The only
/// place that knows which exception stands for which [`ErrorKind`].
pub(crate) fn to_py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::InvalidArgument => exc::InvalidArgument::new_err(msg),
        ErrorKind::Locked => exc::StoreLocked::new_err(msg),
        ErrorKind::Corrupt => exc::CorruptStore::new_err(msg),
        ErrorKind::Io => {
            // OSError(errno, strerror) fills in `.errno`, as Python's own I/O errors do.
            let errno = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .and_then(std::io::Error::raw_os_error);
            match errno {
                Some(n) => exc::StoreIOError::new_err((n, msg)),
                None => exc::StoreIOError::new_err(msg),
            }
        }
        ErrorKind::TooLarge => exc::TooLarge::new_err(msg),
        ErrorKind::Closed => exc::StoreClosed::new_err(msg),
        ErrorKind::Conflict => exc::Conflict::new_err(msg),
        // Internal, and any kind a newer core adds before this mapping learns it
        // (the tests iterate `ErrorKind::ALL` through `_error_kinds`, so such a kind
        // fails them).
        _ => exc::InternalError::new_err(msg),
    }
}

/// `[(kind name, exception class)]` for every kind of the core's `ErrorKind::ALL`,
/// as [`to_py_err`] maps it: the tests check that every kind has its own class.
#[pyfunction]
pub(crate) fn _error_kinds(py: Python<'_>) -> Vec<(&'static str, Py<PyAny>)> {
    ErrorKind::ALL
        .iter()
        .map(|&k| {
            let class = to_py_err(Error::example(k, "example")).get_type(py);
            (k.as_str(), class.into_any().unbind())
        })
        .collect()
}

/// Maps a service error to its Python exception: the core's kinds as
/// [`to_py_err`], and the service's own *quota exceeded* as `QuotaExceeded`.
pub(crate) fn service_to_py_err(e: state_service::Error) -> PyErr {
    match e {
        state_service::Error::Store(e) => to_py_err(e),
        state_service::Error::QuotaExceeded(_) => exc::QuotaExceeded::new_err(e.to_string()),
        // A kind a newer service adds before this mapping learns it.
        _ => exc::InternalError::new_err(e.to_string()),
    }
}

fn panic_to_py_err(payload: Box<dyn Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    exc::InternalError::new_err(format!(
        "internal error: libstate panicked ({what}); please report this"
    ))
}

/// Runs `f` with the GIL held; a core error or a panic becomes a Python exception.
/// For operations too short to be worth releasing the GIL (see docs/bench-python.md).
/// Inlined: it wraps every point read.
#[inline]
pub(crate) fn attached<T>(f: impl FnOnce() -> state_core::Result<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py_err(e)),
        Err(p) => Err(panic_to_py_err(p)),
    }
}

/// Runs `f` with the GIL released, so other Python threads run meanwhile: for
/// anything that can block (disk, fsync, waiting for a lock, batches, scans).
/// A core error or a panic becomes a Python exception.
///
/// `f` must not touch Python objects, and must not wait for anything that is held
/// while the GIL is being acquired (the binding's own locks are only ever held
/// inside such closures or for non-blocking work under the GIL).
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> state_core::Result<T> + Send,
) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py_err(e)),
        Err(p) => Err(panic_to_py_err(p)),
    }
}

/// [`detached`] for the service's calls, whose errors are the service's.
pub(crate) fn detached_service<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> state_service::Result<T> + Send,
) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(service_to_py_err(e)),
        Err(p) => Err(panic_to_py_err(p)),
    }
}

/// An *invalid argument* error raised by the binding's own argument conversion.
pub(crate) fn invalid(msg: impl Into<String>) -> PyErr {
    InvalidArgument::new_err(msg.into())
}
