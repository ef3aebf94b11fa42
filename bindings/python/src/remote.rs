//! `RemoteBucket`: the bucket of a `state serve` (`libstate.connect(url)`), with the
//! embedded `Bucket`'s Python interface, over `state_client::RemoteBucket`.
//!
//! Only translation lives here: every call is the client crate's, made with the GIL
//! released (each one is a network round trip, see [`crate::boundary::detached`]),
//! and its errors go through the one mapping, [`crate::boundary::service_to_py_err`].

use std::ops::Bound as KeyBound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use state_client::{Entry, Options, RemoteBucket, RemoteCursor, RemoteIter, RemoteWatcher, Ttl};

use crate::boundary::{attached, detached_service, invalid, StoreClosed};
use crate::bucket::{collect_pairs, convert_pairs, list_of_pairs, ttl_arg, Batch};
use crate::convert::{entry_tuple, key_str, seconds, value_bytes};
use crate::iter::Mode;

/// The error of any call on a closed remote bucket (or on its cursors, iterators).
fn closed_err() -> PyErr {
    StoreClosed::new_err("the remote bucket is closed")
}

/// The closed flag shared by a bucket and the cursors and iterators taken from it.
type Closed = Arc<AtomicBool>;

fn check_open(closed: &Closed) -> PyResult<()> {
    if closed.load(Ordering::Acquire) {
        Err(closed_err())
    } else {
        Ok(())
    }
}

/// The bucket of the client a `state serve` signed this connection in as.
///
/// The public `libstate.RemoteBucket` subclasses this and adds the
/// `MutableMapping` mixins; get one with `libstate.connect(url)`.
#[pyclass(frozen, subclass, name = "RemoteBucket", module = "libstate._native")]
pub(crate) struct PyRemoteBucket {
    /// `None` once closed (the idle connections are then dropped with it).
    inner: Mutex<Option<RemoteBucket>>,
    closed: Closed,
    endpoint: String,
}

impl PyRemoteBucket {
    /// The client handle (a cheap clone), or `StoreClosed`.
    fn handle(&self) -> PyResult<RemoteBucket> {
        self.inner.lock().clone().ok_or_else(closed_err)
    }

    /// Runs `f` on the handle with the GIL released.
    fn call<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&RemoteBucket) -> state_client::Result<T> + Send,
    ) -> PyResult<T> {
        let b = self.handle()?;
        detached_service(py, || f(&b))
    }

    fn lookup<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        // A client-side cache hit needs no round trip: answered with the GIL held.
        if let Some(b) = self.inner.lock().as_ref() {
            if let Some(v) = b.get_cached(key) {
                return Ok(v.map(|v| PyBytes::new(py, &v)));
            }
        }
        Ok(self.call(py, |b| b.get(key))?.map(|v| PyBytes::new(py, &v)))
    }

    fn write_batch(
        &self,
        py: Python<'_>,
        batch: &Batch<'_>,
        ttl: Option<Duration>,
    ) -> PyResult<()> {
        let pairs = batch.iter().map(|(k, v)| (*k, &**v));
        match ttl {
            None => self.call(py, |b| b.set_multiple(pairs)),
            Some(ttl) => self.call(py, |b| b.set_multiple_with_ttl(pairs, ttl)),
        }
    }

    fn iterator(
        &self,
        mode: Mode,
        lower: KeyBound<&str>,
        upper: KeyBound<&str>,
        reverse: bool,
    ) -> PyResult<PyRemoteIterator> {
        let b = self.handle()?;
        Ok(PyRemoteIterator {
            inner: Mutex::new(b.range((lower, upper))),
            mode,
            reverse,
            closed: Arc::clone(&self.closed),
        })
    }
}

#[pymethods]
impl PyRemoteBucket {
    /// Connects to the server at `url` (`state+unix:///path/state.sock`,
    /// `state://[NAME:TOKEN@]host:port`, `states://...`; `None`: the default
    /// store's socket), signing in with `token` if given, each connection attempt
    /// and reply waiting at most `timeout` seconds; `cache`: keep up to that many
    /// values read, until the server invalidates them (client-side cache; off by
    /// default). Use `libstate.connect`.
    #[new]
    #[pyo3(signature = (url = None, *, token = None, timeout = state_client::DEFAULT_TIMEOUT.as_secs_f64(), cache = None))]
    fn new(
        py: Python<'_>,
        url: Option<&str>,
        token: Option<String>,
        timeout: f64,
        cache: Option<usize>,
    ) -> PyResult<PyRemoteBucket> {
        if cache == Some(0) {
            return Err(invalid(
                "invalid argument: cache must be a number of entries > 0 (or None), got 0",
            ));
        }
        let timeout = seconds("timeout", timeout)?;
        if timeout.is_zero() {
            return Err(invalid(
                "invalid argument: timeout must be > 0 seconds, got 0",
            ));
        }
        let options = Options {
            timeout,
            token,
            cache: cache.map(state_client::CacheOptions::entries),
            ..Options::default()
        };
        let b = detached_service(py, || state_client::connect_with(url, options))?;
        Ok(PyRemoteBucket {
            endpoint: b.endpoint().to_string(),
            inner: Mutex::new(Some(b)),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The server's URL, without any token.
    #[getter]
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether the client-side cache is on and tracking the server's
    /// invalidations (`False` without `cache=`, and while it reconnects).
    #[getter]
    fn cache_live(&self) -> bool {
        self.inner
            .lock()
            .as_ref()
            .is_some_and(RemoteBucket::cache_is_live)
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Checks that the server answers and the client is signed in.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        self.call(py, RemoteBucket::ping)
    }

    /// `bucket[key]`: the value of `key`; `KeyError` if it is missing or expired.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        match self.lookup(py, key_str(key)?)? {
            Some(v) => Ok(v),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// `bucket[key] = value`: sets `key` (clearing any expiry).
    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.set(py, key, value, None)
    }

    /// `del bucket[key]`: removes `key`; `KeyError` if it was missing.
    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = key_str(key)?;
        if self.call(py, |b| b.delete(k))? {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.clone().unbind()))
        }
    }

    /// `key in bucket`; a non-str `key` is simply not in the bucket.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(k) = key.cast::<PyString>() else {
            return Ok(false);
        };
        let k = k.to_str()?;
        self.call(py, |b| b.contains_key(k))
    }

    /// `len(bucket)`: the number of live records (one `DBSIZE`).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let n = self.call(py, RemoteBucket::len)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// `bool(bucket)`: whether the bucket holds a live record.
    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(!self.call(py, RemoteBucket::is_empty)?)
    }

    /// Iterates over the keys in ascending order.
    fn __iter__(&self) -> PyResult<PyRemoteIterator> {
        self.iterator(Mode::Keys, KeyBound::Unbounded, KeyBound::Unbounded, false)
    }

    /// Iterates over the keys in descending order.
    fn __reversed__(&self) -> PyResult<PyRemoteIterator> {
        self.iterator(Mode::Keys, KeyBound::Unbounded, KeyBound::Unbounded, true)
    }

    /// The value of `key`, or `default` if it is missing or expired.
    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.lookup(py, key_str(key)?)? {
            Some(v) => Ok(v.into_any()),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// Sets `key` to the bytes-like `value`; `ttl` (seconds > 0) makes it expire,
    /// `None` clears any expiry. As `Bucket.set`.
    #[pyo3(signature = (key, value, ttl = None))]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
    ) -> PyResult<()> {
        let k = key_str(key)?;
        let bytes = value_bytes(k, value)?;
        let bytes: &[u8] = &bytes;
        match ttl_arg(ttl)? {
            None => self.call(py, |b| b.set(k, bytes)),
            Some(ttl) => self.call(py, |b| b.set_with_ttl(k, bytes, ttl)),
        }
    }

    /// Gives the existing `key` a time to live of `ttl` seconds (> 0); `False`,
    /// doing nothing, if it is missing.
    fn expire(&self, py: Python<'_>, key: &Bound<'_, PyAny>, ttl: f64) -> PyResult<bool> {
        let k = key_str(key)?;
        let ttl = attached(|| state_core::ttl_from_secs_f64(ttl))?;
        self.call(py, |b| b.expire(k, ttl))
    }

    /// Removes the expiry of `key`; returns whether it had one.
    fn persist(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = key_str(key)?;
        self.call(py, |b| b.persist(k))
    }

    /// The seconds `key` has left to live, or `None` if it does not expire;
    /// `KeyError` if it is missing.
    fn ttl(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
        let k = key_str(key)?;
        match self.call(py, |b| b.ttl(k))? {
            Ttl::NoExpiry => Ok(None),
            Ttl::Expires(left) => Ok(Some(left.as_secs_f64())),
            _ => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Removes `key`; returns whether it existed.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = key_str(key)?;
        self.call(py, |b| b.delete(k))
    }

    /// The values of those `keys` that are present, as a dict in key order, in one
    /// round trip (`MGET`).
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        if keys.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err(
                "get_many takes an iterable of keys, not a single str",
            ));
        }
        let objs = keys.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        let ks = objs.iter().map(key_str).collect::<PyResult<Vec<&str>>>()?;
        let found = self.call(py, |b| b.get_multiple(&ks))?;
        let out = PyDict::new(py);
        for (k, v) in found {
            out.set_item(PyString::new(py, &k), PyBytes::new(py, &v))?;
        }
        Ok(out)
    }

    /// Sets every `(key, value)` of `items` in one atomic batch (all or none);
    /// `ttl` applies to every key. As `Bucket.set_many`.
    #[pyo3(signature = (items, ttl = None))]
    fn set_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>, ttl: Option<f64>) -> PyResult<()> {
        let ttl = ttl_arg(ttl)?;
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

    /// `(key, value)` pairs with `start <= key < end`, ascending (or descending
    /// with `reverse=True`), fetched in growing chunks.
    #[pyo3(signature = (start = None, end = None, *, reverse = false))]
    fn range(
        &self,
        start: Option<&str>,
        end: Option<&str>,
        reverse: bool,
    ) -> PyResult<PyRemoteIterator> {
        let lower = start.map_or(KeyBound::Unbounded, KeyBound::Included);
        let upper = end.map_or(KeyBound::Unbounded, KeyBound::Excluded);
        self.iterator(Mode::Items, lower, upper, reverse)
    }

    /// `(key, value)` pairs whose keys start with `prefix`.
    #[pyo3(signature = (prefix, *, reverse = false))]
    fn prefix(&self, prefix: &str, reverse: bool) -> PyResult<PyRemoteIterator> {
        let b = self.handle()?;
        Ok(PyRemoteIterator {
            inner: Mutex::new(b.prefix(prefix)),
            mode: Mode::Items,
            reverse,
            closed: Arc::clone(&self.closed),
        })
    }

    /// Keys, values or pairs (`mode` 0, 1, 2); backs `keys()`, `values()`, `items()`.
    #[pyo3(signature = (mode, reverse = false))]
    fn _iterate(&self, mode: u8, reverse: bool) -> PyResult<PyRemoteIterator> {
        let mode = Mode::from_u8(mode)?;
        self.iterator(mode, KeyBound::Unbounded, KeyBound::Unbounded, reverse)
    }

    /// A new cursor, positioned before the first key.
    fn cursor(&self) -> PyResult<PyRemoteCursor> {
        let b = self.handle()?;
        let c = attached(|| b.cursor().map_err(service_core))?;
        Ok(PyRemoteCursor {
            inner: Mutex::new(Some(c)),
            closed: Arc::clone(&self.closed),
        })
    }

    /// Closes the handle: its idle connections are dropped, and every later call
    /// on it (and on its cursors and iterators) raises `StoreClosed`. Idempotent.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        *self.inner.lock() = None;
    }

    /// Returns the bucket itself; the `with` block closes it on exit.
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Closes the bucket. Exceptions from the `with` block propagate.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<libstate.RemoteBucket at {:?}>", self.endpoint)
    }
}

/// `RemoteBucket::cursor` cannot fail today; its error, if it ever does, is the
/// core's part of the service error (the closure of [`attached`] takes core errors).
fn service_core(e: state_client::Error) -> state_core::Error {
    match e {
        state_client::Error::Store(e) => e,
        other => state_core::Error::Internal(other.to_string()),
    }
}

/// An iterator over a remote bucket's records in key order (or reverse order),
/// fetched in chunks (16 entries, doubling to 1024) without holding anything on
/// the server.
#[pyclass(frozen, name = "RemoteIterator", module = "libstate._native")]
pub(crate) struct PyRemoteIterator {
    inner: Mutex<RemoteIter>,
    mode: Mode,
    reverse: bool,
    closed: Closed,
}

#[pymethods]
impl PyRemoteIterator {
    /// Returns the iterator itself.
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// The next key, value or `(key, value)` pair.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        check_open(&self.closed)?;
        let next = detached_service(py, || {
            let mut it = self.inner.lock();
            let n = if self.reverse {
                it.next_back()
            } else {
                it.next()
            };
            n.transpose()
        })?;
        let Some((k, v)) = next else {
            return Ok(None);
        };
        Ok(Some(match self.mode {
            Mode::Keys => PyString::new(py, &k).into_any(),
            Mode::Values => PyBytes::new(py, &v).into_any(),
            Mode::Items => entry_tuple(py, (k, v))?.into_any(),
        }))
    }
}

/// A cursor over a remote bucket; each step is one request, and the position is
/// kept here, so it holds nothing on the server.
#[pyclass(frozen, name = "RemoteCursor", module = "libstate._native")]
pub(crate) struct PyRemoteCursor {
    /// `None` once the cursor is closed.
    inner: Mutex<Option<RemoteCursor>>,
    closed: Closed,
}

impl PyRemoteCursor {
    /// Runs `f` on the cursor with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut RemoteCursor) -> state_client::Result<T> + Send,
    ) -> PyResult<T> {
        check_open(&self.closed)?;
        let out = detached_service(py, || match self.inner.lock().as_mut() {
            Some(c) => f(c).map(Some),
            None => Ok(None),
        })?;
        out.ok_or_else(|| StoreClosed::new_err("the cursor is closed"))
    }

    fn one<'py>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&mut RemoteCursor) -> state_client::Result<Option<Entry>> + Send,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.with(py, f)?.map(|e| entry_tuple(py, e)).transpose()
    }

    fn many<'py>(&self, py: Python<'py>, back: bool, n: usize) -> PyResult<Bound<'py, PyList>> {
        let got = self.with(py, |c| if back { c.prev_n(n) } else { c.next_n(n) })?;
        let items = got
            .into_iter()
            .map(|e| entry_tuple(py, e))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

#[pymethods]
impl PyRemoteCursor {
    /// Moves to the first entry and returns it; `None` if the bucket is empty.
    fn first<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, RemoteCursor::first)
    }

    /// Moves to the last entry and returns it; `None` if the bucket is empty.
    fn last<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, RemoteCursor::last)
    }

    /// Steps to the smallest live key greater than the current one.
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, RemoteCursor::next)
    }

    /// Steps to the greatest live key smaller than the current one.
    fn prev<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, RemoteCursor::prev)
    }

    /// Moves to the first entry whose key is `>= key` and returns it.
    fn seek<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.one(py, |c| c.seek(key))
    }

    /// Exactly `n` calls of `next()`, in one request.
    fn next_n<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        self.many(py, false, n)
    }

    /// Exactly `n` calls of `prev()`, in one request.
    fn prev_n<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyList>> {
        self.many(py, true, n)
    }

    /// The key the cursor stands on, or `None` before the start or after the end.
    #[getter]
    fn key(&self) -> PyResult<Option<String>> {
        check_open(&self.closed)?;
        match self.inner.lock().as_ref() {
            Some(c) => Ok(c.key().map(str::to_string)),
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

/// How long one GIL-free wait of a watcher lasts before Python's signal handlers
/// get a chance (so Ctrl-C interrupts a blocked `for event in watcher`).
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What `_recv` returns, as the embedded watcher's: `(kind, key, value, missed,
/// new)`; `value` is always `None` (keyspace notifications carry none).
type Raw = (&'static str, Option<String>, Option<Vec<u8>>, u64, bool);

/// The changes under a key prefix of a remote bucket; the public
/// `libstate.RemoteWatcher` subclass makes it an iterator and an async iterator.
#[pyclass(frozen, subclass, name = "RemoteWatcher", module = "libstate._native")]
pub(crate) struct PyRemoteWatcher {
    /// `None` once closed (its connection dropped).
    inner: Mutex<Option<RemoteWatcher>>,
    prefix: String,
}

#[pymethods]
impl PyRemoteWatcher {
    /// Watches the keys of `bucket` starting with `prefix`, on a connection of
    /// its own (`libstate.RemoteBucket.watch` is the documented way in).
    #[new]
    #[pyo3(signature = (bucket, prefix = ""))]
    fn py_new(py: Python<'_>, bucket: &PyRemoteBucket, prefix: &str) -> PyResult<PyRemoteWatcher> {
        let w = bucket.call(py, |b| b.watch(prefix))?;
        Ok(PyRemoteWatcher {
            inner: Mutex::new(Some(w)),
            prefix: prefix.to_string(),
        })
    }

    /// The next notice, waiting at most `timeout` seconds (`None`: until one
    /// comes) with the GIL released; `None` if none came in time; kind `"ended"`
    /// once closed. A lost connection raises `StoreIOError` (the watcher has ended).
    #[pyo3(signature = (timeout = None))]
    fn _recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Raw>> {
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + seconds("timeout", t.max(0.0))?),
            None => None,
        };
        loop {
            let slice = deadline.map_or(WAIT_SLICE, |d| {
                d.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
            });
            // A zero wait still looks once (a notice already received is returned).
            let slice = slice.max(Duration::from_millis(1));
            let got = detached_service(py, || match self.inner.lock().as_mut() {
                None => Ok(Some(None)),
                Some(w) => w.recv_timeout(slice).map(|e| e.map(Some)),
            })?;
            match got {
                Some(None) => return Ok(Some(("ended", None, None, 0, false))),
                Some(Some(e)) => {
                    return Ok(Some((e.kind.as_str(), Some(e.key), None, 0, e.new)));
                }
                None => {
                    py.check_signals()?;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The watched key prefix.
    #[getter]
    fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Ends the watcher and drops its connection.
    fn close(&self) {
        *self.inner.lock() = None;
    }

    /// Whether the watcher was closed.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().is_none()
    }
}
