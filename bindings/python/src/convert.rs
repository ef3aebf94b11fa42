//! Conversions between Python objects and the core's keys, values and entries.

use std::borrow::Cow;
use std::time::Duration;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString, PyTuple};

use crate::boundary::invalid;

/// Borrows the bytes of a bytes-like value (`bytes` without copying; `bytearray`,
/// `memoryview` and other byte buffers by copy). A `str` is refused with a message
/// pointing at the two ways to store text.
pub(crate) fn value_bytes<'a>(key: &str, value: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return Ok(Cow::Owned(b.to_vec()));
    }
    if value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "value for key {key:?} is a str, but values are bytes: store text with \
             value.encode() (and .decode() on the way back), or structured data with \
             set_json()"
        )));
    }
    match PyBuffer::<u8>::get(value) {
        Ok(buf) => Ok(Cow::Owned(buf.to_vec(value.py())?)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "value for key {key:?} must be bytes-like (bytes, bytearray, memoryview), not {}",
            type_name(value)
        ))),
    }
}

/// The `str` of a key argument, with a clear message for anything else.
#[inline]
pub(crate) fn key_str<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    // An exact `str` (nearly every key) is told by its type pointer; the general
    // check asks the type for its flags, a call into the interpreter.
    if let Ok(s) = key.cast_exact::<PyString>() {
        return s.to_str();
    }
    match key.cast::<PyString>() {
        Ok(s) => s.to_str(),
        Err(_) => Err(PyTypeError::new_err(format!(
            "keys are str, not {}",
            type_name(key)
        ))),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// A `(key, value)` tuple.
pub(crate) fn entry_tuple<'py>(
    py: Python<'py>,
    (key, value): (String, Vec<u8>),
) -> PyResult<Bound<'py, PyTuple>> {
    pair_tuple(py, &key, &value)
}

/// Entries copied out of the store in one go (under its read lock, without the GIL),
/// packed into two buffers instead of two allocations per entry; Python objects are
/// made from them afterwards, with the GIL held.
#[derive(Default)]
pub(crate) struct Packed {
    keys: String,
    values: Vec<u8>,
    /// Per entry: where its key and its value end in `keys` and `values`.
    ends: Vec<(usize, usize)>,
}

impl Packed {
    pub(crate) fn push(&mut self, key: &str, value: &[u8]) {
        self.keys.push_str(key);
        self.values.extend_from_slice(value);
        self.ends.push((self.keys.len(), self.values.len()));
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The `i`-th entry.
    pub(crate) fn get(&self, i: usize) -> (&str, &[u8]) {
        let (k0, v0) = match i.checked_sub(1) {
            Some(p) => self.ends[p],
            None => (0, 0),
        };
        let (k1, v1) = self.ends[i];
        (&self.keys[k0..k1], &self.values[v0..v1])
    }
}

/// A `(key, value)` tuple from borrowed parts.
pub(crate) fn pair_tuple<'py>(
    py: Python<'py>,
    key: &str,
    value: &[u8],
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            PyString::new(py, key).into_any(),
            PyBytes::new(py, value).into_any(),
        ],
    )
}

/// A duration in seconds (int or float) as a [`Duration`]; negative, NaN or infinite
/// values are an *invalid argument* naming `what`. Zero passes through, for the core
/// to judge.
pub(crate) fn seconds(what: &str, secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        invalid(format!(
            "invalid argument: {what} must be a finite number of seconds >= 0, got {secs}"
        ))
    })
}

/// A byte size from a Python int; negative values are an *invalid argument*.
pub(crate) fn size<T: TryFrom<i64>>(what: &str, n: i64) -> PyResult<T> {
    T::try_from(n).map_err(|_| {
        invalid(format!(
            "invalid argument: {what} must be between 1 and the platform's limit, got {n}"
        ))
    })
}
