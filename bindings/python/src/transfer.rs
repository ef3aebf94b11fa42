//! Python file objects as Rust readers and writers, for `Store`'s export and
//! import (the methods are in `store.rs`).

use std::io::{self, Read, Write};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use state_core::Format;

use crate::boundary::attached;

/// `(name, records, with_ttl, expired_unswept, problems)` per bucket.
pub(crate) type BucketRow = (String, u64, u64, u64, Vec<String>);

/// A Python file object's `write`, as a Rust writer. Errors raised by Python are
/// kept to be raised again once the core has stopped.
///
/// The file object is borrowed, not owned: the writer is dropped inside the core's
/// call, with the GIL released, and the extension is built without pyo3's
/// reference pool (docs/python.md, "Building"), where dropping a Python reference
/// without the GIL aborts the process. The caller's reference outlives the call.
pub(crate) struct PyWriter<'a> {
    pub(crate) file: &'a Py<PyAny>,
    pub(crate) raised: &'a Mutex<Option<PyErr>>,
}

impl Write for PyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Python::attach(|py| {
            match self
                .file
                .call_method1(py, "write", (PyBytes::new(py, buf),))
            {
                Ok(_) => Ok(buf.len()),
                Err(e) => {
                    let msg = e.to_string();
                    *self.raised.lock() = Some(e);
                    Err(io::Error::other(msg))
                }
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A Python file object's `read`, as a Rust reader (it must return bytes). Borrows
/// the file object, as [`PyWriter`] does.
pub(crate) struct PyReader<'a> {
    pub(crate) file: &'a Py<PyAny>,
    pub(crate) raised: &'a Mutex<Option<PyErr>>,
}

impl Read for PyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Python::attach(|py| {
            let got = self
                .file
                .call_method1(py, "read", (buf.len(),))
                .and_then(|b| b.extract::<Vec<u8>>(py));
            match got {
                Ok(bytes) if bytes.len() <= buf.len() => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    Ok(bytes.len())
                }
                Ok(bytes) => Err(io::Error::other(format!(
                    "read({}) returned {} bytes",
                    buf.len(),
                    bytes.len()
                ))),
                Err(e) => {
                    let msg = e.to_string();
                    *self.raised.lock() = Some(e);
                    Err(io::Error::other(msg))
                }
            }
        })
    }
}

pub(crate) fn format_of(name: &str) -> PyResult<Format> {
    attached(|| name.parse::<Format>())
}

/// Raises the Python exception a file object raised, if any, else `result`.
pub(crate) fn reraise<T>(raised: Mutex<Option<PyErr>>, result: PyResult<T>) -> PyResult<T> {
    match (raised.into_inner(), result) {
        (Some(e), Err(_)) => Err(e),
        (_, r) => r,
    }
}
