//! `Bucket`: one ordered key space of a store, as a Python mapping.

use std::borrow::Cow;
use std::ops::Bound as KeyBound;
use std::time::Duration;

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use state_core::{ttl_from_secs_f64, Bucket, Engine, Ttl};

use crate::boundary::{attached, detached};
use crate::convert::{key_str, value_bytes};
use crate::cursor::PyCursor;
use crate::iter::{Mode, PyBucketIterator};
use crate::store::PyStore;

/// Whether point reads (`get`, `[]`, `in`) on a store with `engine` release the GIL,
/// decided by measurement (`bench.py gil`, docs/bench-python.md): a sled read can
/// page in from disk, and releasing cost nothing measurable on one thread while
/// helping several; a memfile read never touches the disk and the release only
/// cost throughput under contention. Engines added later release it (the safe side).
fn detach_point_reads(engine: Engine) -> bool {
    !matches!(engine, Engine::Memfile)
}

/// An ordered map from str keys to bytes values inside a store.
///
/// The public `libstate.Bucket` subclasses this and adds the `MutableMapping`
/// mixins; get one with `Store.bucket(name)`.
#[pyclass(frozen, subclass, name = "Bucket", module = "libstate._native")]
pub(crate) struct PyBucket {
    pub(crate) inner: Bucket,
    /// See [`detach_point_reads`].
    detach_reads: bool,
}

impl PyBucket {
    /// Writes converted pairs as one batch, with the GIL released.
    fn write_batch(
        &self,
        py: Python<'_>,
        batch: &[(&str, Cow<'_, [u8]>)],
        ttl: Option<Duration>,
    ) -> PyResult<()> {
        let pairs = batch.iter().map(|(k, v)| (*k, &**v));
        match ttl {
            None => detached(py, || self.inner.set_multiple(pairs)),
            Some(ttl) => detached(py, || self.inner.set_multiple_with_ttl(pairs, ttl)),
        }
    }

    /// The value of `key` as `bytes`. With the GIL kept (`detach` false), the bytes
    /// object is made straight from the value the store lends (one copy, not two):
    /// making a `bytes` runs no Python code, so nothing can re-enter the store.
    #[inline]
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        detach: bool,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if detach {
            Ok(detached(py, || self.inner.get(key))?.map(|v| PyBytes::new(py, &v)))
        } else {
            attached(|| self.inner.get_with(key, |v| PyBytes::new(py, v)))
        }
    }

    fn write_one(
        &self,
        py: Python<'_>,
        key: &str,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        let bytes = value_bytes(key, value)?;
        let bytes: &[u8] = &bytes;
        match ttl_arg(ttl)? {
            None => detached(py, || self.inner.set(key, bytes)),
            Some(ttl) => detached(py, || self.inner.set_with_ttl(key, bytes, ttl)),
        }
    }

    fn iterator(
        &self,
        mode: Mode,
        lower: KeyBound<&str>,
        upper: KeyBound<&str>,
        reverse: bool,
    ) -> PyBucketIterator {
        let own = |b: KeyBound<&str>| b.map(str::to_string);
        PyBucketIterator::new(self.inner.clone(), (own(lower), own(upper)), mode, reverse)
    }
}

#[pymethods]
impl PyBucket {
    /// The bucket `name` of `store`. Raises `InvalidArgument` for an invalid name and
    /// `StoreClosed` if the store is closed. Use `Store.bucket(name)`.
    #[new]
    fn new(store: &Bound<'_, PyStore>, name: &str) -> PyResult<PyBucket> {
        let store = &store.get().inner;
        let inner = attached(|| store.bucket(name))?;
        Ok(PyBucket {
            inner,
            detach_reads: detach_point_reads(store.engine()),
        })
    }

    /// The bucket's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// `bucket[key]`: the value of `key`; `KeyError` if it is missing or expired.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let k = key_str(key)?;
        match self.lookup(py, k, self.detach_reads)? {
            Some(v) => Ok(v),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// `bucket[key] = value`: sets `key` (clearing any expiry). `value` is bytes-like.
    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.write_one(py, key_str(key)?, value, None)
    }

    /// `del bucket[key]`: removes `key`; `KeyError` if it was missing.
    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = key_str(key)?;
        if detached(py, || self.inner.delete(k))? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// `key in bucket`. A non-str `key` is simply not in the bucket; an invalid str
    /// key (empty, over 1024 bytes) raises `InvalidArgument`.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(k) = key.cast::<PyString>() else {
            return Ok(false);
        };
        let k = k.to_str()?;
        Ok(self.lookup(py, k, self.detach_reads)?.is_some())
    }

    /// `len(bucket)`: the number of live records. Reads every key (O(n)).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let n = detached(py, || self.inner.len())?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// `bool(bucket)`: whether the bucket holds a live record (reads at most one).
    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(!detached(py, || self.inner.is_empty())?)
    }

    /// Iterates over the keys in ascending order.
    fn __iter__(&self) -> PyBucketIterator {
        self.iterator(Mode::Keys, KeyBound::Unbounded, KeyBound::Unbounded, false)
    }

    /// Iterates over the keys in descending order.
    fn __reversed__(&self) -> PyBucketIterator {
        self.iterator(Mode::Keys, KeyBound::Unbounded, KeyBound::Unbounded, true)
    }

    /// The value of `key`, or `default` if it is missing or expired.
    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.lookup(py, key_str(key)?, self.detach_reads)? {
            Some(v) => Ok(v.into_any()),
            None => Ok(default.map_or_else(|| py.None().into_bound(py), Bound::clone)),
        }
    }

    /// `get` that always releases the GIL (for the GIL measurement in the benchmark).
    fn _get_detached<'py>(
        &self,
        py: Python<'py>,
        key: &str,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        self.lookup(py, key, true)
    }

    /// `get` that never releases the GIL (for the GIL measurement in the benchmark).
    fn _get_attached<'py>(
        &self,
        py: Python<'py>,
        key: &str,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        self.lookup(py, key, false)
    }

    /// Sets `key` to the bytes-like `value`, replacing any previous value. With
    /// `ttl=None` the key does not expire (any previous expiry is cleared); with a
    /// number of seconds > 0 it expires that long from now. A `str` value raises
    /// `TypeError` (use `.encode()` or `set_json()`); an invalid key, an over-large
    /// value or a TTL <= 0 raises `InvalidArgument` and nothing is written.
    #[pyo3(signature = (key, value, ttl = None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        self.write_one(py, key_str(key)?, value, ttl)
    }

    /// Gives the existing `key` a time to live of `ttl` seconds from now (> 0),
    /// replacing any it had. Returns `False`, and does nothing, if the key is missing
    /// or expired.
    fn expire(&self, py: Python<'_>, key: &Bound<'_, PyAny>, ttl: f64) -> PyResult<bool> {
        let k = key_str(key)?;
        let ttl = attached(|| ttl_from_secs_f64(ttl))?;
        detached(py, || self.inner.expire(k, ttl))
    }

    /// Removes the expiry of `key`, so it no longer expires. Returns whether it had
    /// one (`False` for a missing key or a key without expiry).
    fn persist(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = key_str(key)?;
        detached(py, || self.inner.persist(k))
    }

    /// The seconds `key` has left to live (a float, millisecond precision), or `None`
    /// if it does not expire. A missing or expired key raises `KeyError`, as
    /// `bucket[key]` does.
    fn ttl(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let k = key_str(key)?;
        match detached(py, || self.inner.ttl(k))? {
            Ttl::NoExpiry => Ok(None),
            Ttl::Expires(left) => Ok(Some(left.as_secs_f64())),
            // Missing, and any state a newer core adds: the key cannot be read.
            _ => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Removes `key`; returns whether it existed (an expired key did not). Removing a
    /// missing key is not an error.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = key_str(key)?;
        detached(py, || self.inner.delete(k))
    }

    /// The values of those `keys` that are present, as a dict in key order; missing
    /// and expired keys are simply absent. `keys` is an iterable of str (a single str
    /// is refused, as it would be read as its characters).
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if keys.is_instance_of::<PyString>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "get_many takes an iterable of keys, not a single str",
            ));
        }
        // The caller's key objects are kept (plain str ones become the dict's keys,
        // their hash already computed); their text is borrowed, not copied.
        let objs = keys.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        let ks = objs.iter().map(key_str).collect::<PyResult<Vec<&str>>>()?;
        // The core looks the keys up with the GIL released and returns the values
        // found in key order, each key once, in one buffer.
        let found = detached(py, || self.inner.get_multiple_sorted(&ks))?;
        let out = PyDict::new(py);
        for (i, v) in found.iter() {
            let value = PyBytes::new(py, v);
            let k = &objs[i];
            if k.is_exact_instance_of::<PyString>() {
                out.set_item(k, value)?;
            } else {
                // A str subclass may hash or compare differently: the dict gets a str.
                out.set_item(PyString::new(py, key_str(k)?), value)?;
            }
        }
        Ok(out)
    }

    /// Sets every `(key, value)` of `items` (a mapping, or an iterable of pairs) in
    /// one atomic batch: all are written or none. A repeated key keeps its last value.
    /// `ttl` (seconds > 0) applies to every key; `None` clears their expiry. Raises
    /// `InvalidArgument` for any bad key, value or TTL and `TooLarge` when the batch
    /// exceeds the store's `max_batch_size`; in both cases nothing is written.
    #[pyo3(signature = (items, ttl = None))]
    fn set_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>, ttl: Option<f64>) -> PyResult<()> {
        let ttl = ttl_arg(ttl)?;
        // The common shape, a list of 2-tuples: the keys are usually old objects
        // spread over the heap, so a key a few items ahead is prefetched while this
        // one is converted (reading each cold key was a sixth of a 1000-item call).
        // The items are borrowed, not counted: taking a reference would touch each
        // key object before its prefetch.
        if let Some(tuples) = list_of_pairs(items) {
            let parts = tuples
                .iter()
                .map(|t| Ok((t.get_borrowed_item(0)?, t.get_borrowed_item(1)?)))
                .collect::<PyResult<Vec<_>>>()?;
            let batch = convert_pairs(parts.iter().map(|(k, v)| (&**k, &**v)))?;
            return self.write_batch(py, &batch, ttl);
        }
        let pairs = collect_pairs(items)?;
        self.write_batch(py, &convert_pairs(pairs.iter().map(|(k, v)| (k, v)))?, ttl)
    }

    /// Removes every record of the bucket.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        detached(py, || {
            self.inner
                .store()
                .remove_bucket(self.inner.name())
                .map(drop)
        })
    }

    /// `(key, value)` pairs with `start <= key < end` (either bound may be None), in
    /// ascending key order, or descending with `reverse=True`.
    #[pyo3(signature = (start = None, end = None, *, reverse = false))]
    fn range(&self, start: Option<&str>, end: Option<&str>, reverse: bool) -> PyBucketIterator {
        let lower = start.map_or(KeyBound::Unbounded, KeyBound::Included);
        let upper = end.map_or(KeyBound::Unbounded, KeyBound::Excluded);
        self.iterator(Mode::Items, lower, upper, reverse)
    }

    /// `(key, value)` pairs whose keys start with `prefix`, in ascending key order, or
    /// descending with `reverse=True`.
    #[pyo3(signature = (prefix, *, reverse = false))]
    fn prefix(&self, prefix: &str, reverse: bool) -> PyBucketIterator {
        PyBucketIterator::new(
            self.inner.clone(),
            state_core::prefix_bounds(prefix),
            Mode::Items,
            reverse,
        )
    }

    /// Keys, values or `(key, value)` pairs (`mode` 0, 1, 2) in key order; backs the
    /// views returned by `keys()`, `values()` and `items()`.
    #[pyo3(signature = (mode, reverse = false))]
    fn _iterate(&self, mode: u8, reverse: bool) -> PyResult<PyBucketIterator> {
        let mode = Mode::from_u8(mode)?;
        Ok(self.iterator(mode, KeyBound::Unbounded, KeyBound::Unbounded, reverse))
    }

    /// A new cursor over this bucket, positioned before the first key.
    fn cursor(&self) -> PyResult<PyCursor> {
        let c = attached(|| self.inner.cursor())?;
        Ok(PyCursor::new(c))
    }

    fn __repr__(&self) -> String {
        format!(
            "<libstate.Bucket {:?} of {:?}>",
            self.inner.name(),
            self.inner.store().path().display().to_string()
        )
    }
}

/// The items of `items` if it is a list of 2-tuples.
pub(crate) fn list_of_pairs<'py>(items: &Bound<'py, PyAny>) -> Option<Vec<Bound<'py, PyTuple>>> {
    let list = items.cast::<PyList>().ok()?;
    list.iter()
        .map(|item| item.cast_into::<PyTuple>().ok().filter(|t| t.len() == 2))
        .collect()
}

/// A batch to write: keys and values, borrowed from the caller's objects when they
/// can be.
pub(crate) type Batch<'a> = Vec<(&'a str, Cow<'a, [u8]>)>;

/// Checks and converts `(key, value)` pairs for a batch, prefetching each key object
/// [`PREFETCH_AHEAD`] items before it is read.
pub(crate) fn convert_pairs<'a, 'py: 'a>(
    pairs: impl Iterator<Item = (&'a Bound<'py, PyAny>, &'a Bound<'py, PyAny>)> + Clone,
) -> PyResult<Batch<'a>> {
    let mut ahead = pairs.clone().skip(PREFETCH_AHEAD);
    let mut batch = Vec::with_capacity(pairs.size_hint().0);
    for (k, v) in pairs {
        if let Some((next, _)) = ahead.next() {
            prefetch(next.as_ptr().cast());
        }
        let k = key_str(k)?;
        batch.push((k, value_bytes(k, v)?));
    }
    Ok(batch)
}

/// How many items ahead `set_many` prefetches keys.
const PREFETCH_AHEAD: usize = 8;

/// Hints the CPU to bring the two cache lines at `p` (an object's header and, for a
/// short str, its text) into cache. No effect on other architectures than x86-64.
#[inline]
#[allow(unsafe_code)]
fn prefetch(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE, which `prefetcht0` belongs to, is part of the x86-64 baseline;
        // a prefetch only hints the cache: it never faults, whatever the address, and
        // reads nothing into the program. The address is a live object's anyway.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A `ttl=` argument in seconds, checked by the core's rule (> 0, finite).
pub(crate) fn ttl_arg(ttl: Option<f64>) -> PyResult<Option<Duration>> {
    ttl.map(|secs| attached(|| ttl_from_secs_f64(secs)))
        .transpose()
}

/// The `(key, value)` pairs of a mapping (through `.items()`) or of an iterable of
/// pairs, as Python objects (converted by the caller).
pub(crate) fn collect_pairs<'py>(
    items: &Bound<'py, PyAny>,
) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    if let Ok(d) = items.cast::<PyDict>() {
        return Ok(d.iter().collect());
    }
    let source = if items.hasattr("items")? {
        items.call_method0("items")?
    } else {
        items.clone()
    };
    let mut out = Vec::with_capacity(source.len().unwrap_or(0));
    for pair in source.try_iter()? {
        let pair = pair?;
        let t = pair.cast::<PyTuple>().ok().filter(|t| t.len() == 2);
        match t {
            Some(t) => out.push((t.get_item(0)?, t.get_item(1)?)),
            None => {
                let (k, v): (Bound<'py, PyAny>, Bound<'py, PyAny>) =
                    pair.extract().map_err(|_| {
                        pyo3::exceptions::PyTypeError::new_err(
                            "set_many takes a mapping or an iterable of (key, value) pairs",
                        )
                    })?;
                out.push((k, v));
            }
        }
    }
    Ok(out)
}
