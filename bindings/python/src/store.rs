//! `Store`: an open store directory.

use std::io::BufWriter;
use std::path::PathBuf;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use state_core::{Engine, Store};

use crate::boundary::{attached, detached};
use crate::convert::{seconds, size};
use crate::transfer::{format_of, reraise, BucketRow, PyReader, PyWriter};

/// An open store: a directory of named buckets. Use `libstate.open()`.
///
/// Safe to share between threads. Opening a directory that is already open in this
/// process returns another handle on the same store; the store is flushed and
/// released when its last handle is closed (or garbage-collected). After `close()`,
/// every operation on this handle, and on buckets and cursors taken from it, raises
/// `StoreClosed`.
#[pyclass(frozen, subclass, name = "Store", module = "libstate._native")]
pub(crate) struct PyStore {
    pub(crate) inner: Store,
}

#[pymethods]
impl PyStore {
    /// Opens (creating if needed) the store in directory `path`. See `libstate.open()`.
    #[new]
    #[pyo3(signature = (path, engine = "sled", *, sync = false,
                        flush_interval = state_core::DEFAULT_FLUSH_INTERVAL.as_secs_f64(),
                        cache_size = state_core::DEFAULT_CACHE_SIZE as i64,
                        max_value_size = state_core::limits::DEFAULT_MAX_VALUE_SIZE as i64,
                        max_batch_size = state_core::limits::DEFAULT_MAX_BATCH_SIZE as i64,
                        sweep_interval = Some(state_core::DEFAULT_SWEEP_INTERVAL.as_secs_f64()),
                        clock = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        engine: &str,
        sync: bool,
        flush_interval: f64,
        cache_size: i64,
        max_value_size: i64,
        max_batch_size: i64,
        sweep_interval: Option<f64>,
        clock: Option<PyRef<'_, crate::clock::PyManualClock>>,
    ) -> PyResult<PyStore> {
        let sweep_interval = sweep_interval
            .map(|s| seconds("sweep_interval", s))
            .transpose()?;
        let engine: Engine = attached(|| engine.parse())?;
        let builder = Store::builder()
            .engine(engine)
            .sync(sync)
            .flush_interval(seconds("flush_interval", flush_interval)?)
            .cache_size(size("cache_size", cache_size)?)
            .max_value_size(size("max_value_size", max_value_size)?)
            .max_batch_size(size("max_batch_size", max_batch_size)?)
            .sweep_interval(sweep_interval);
        let builder = match clock {
            Some(c) => {
                let c: std::sync::Arc<dyn state_core::Clock> = c.inner.clone();
                builder.clock(c)
            }
            None => builder,
        };
        let inner = detached(py, || builder.open(&path))?;
        Ok(PyStore { inner })
    }

    /// The store directory (canonical path), as a str.
    #[getter]
    fn path(&self) -> String {
        self.inner.path().to_string_lossy().into_owned()
    }

    /// The storage engine's name (`"sled"`, ...).
    #[getter]
    fn engine(&self) -> &'static str {
        self.inner.engine().as_str()
    }

    /// Names of the buckets that hold at least one record, in key (byte) order.
    fn bucket_names(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        detached(py, || self.inner.bucket_names())
    }

    /// Removes bucket `name` with all its records; returns whether it held any.
    /// Raises `InvalidArgument` for an invalid bucket name.
    fn remove_bucket(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        detached(py, || self.inner.remove_bucket(name))
    }

    /// Makes every write so far durable (fdatasync), whatever the durability mode.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        detached(py, || self.inner.flush())
    }

    /// Removes every expired record now and returns how many were removed (the
    /// background sweeper does this every `sweep_interval` seconds). Expired records
    /// are invisible to reads either way; sweeping reclaims their space.
    fn sweep_expired(&self, py: Python<'_>) -> PyResult<u64> {
        detached(py, || self.inner.sweep_expired())
    }

    /// `(path, engine, buckets, records, expiring, disk_bytes, engine_details)`, the
    /// fields of the core's `StoreInfo` in its order; `Store.info()` wraps it in a
    /// named tuple. Counting records reads every key.
    fn _info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let info = detached(py, || self.inner.info())?;
        let path = info.path.to_string_lossy().into_owned();
        (
            path,
            info.engine.as_str(),
            info.buckets,
            info.records,
            info.expiring,
            info.disk_bytes,
            info.engine_details,
        )
            .into_pyobject(py)
    }

    /// `(buckets, indexed_ttl, store_problems)`: see `Store.check()`.
    #[allow(clippy::type_complexity)]
    fn _check(&self, py: Python<'_>) -> PyResult<(Vec<BucketRow>, Option<u64>, Vec<String>)> {
        let report = detached(py, || self.inner.check())?;
        let rows = report
            .buckets
            .iter()
            .map(|b| {
                let mut problems: Vec<String> = b.problems.iter().map(|p| p.to_string()).collect();
                if let Some((counted, read)) = b.count_mismatch {
                    problems.push(format!(
                        "the engine counts {counted} records but {read} could be read"
                    ));
                }
                (
                    b.name.clone(),
                    b.records,
                    b.with_ttl,
                    b.expired_unswept,
                    problems,
                )
            })
            .collect();
        Ok((rows, report.indexed_ttl, report.problems.clone()))
    }

    /// `(before_bytes, after_bytes, buckets, records)`: see `Store.compact()`.
    fn _compact(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64)> {
        let r = detached(py, || self.inner.compact())?;
        Ok((r.before_bytes, r.after_bytes, r.buckets, r.records))
    }

    /// `(path, buckets, records, bytes, write_pause_seconds)`: see `Store.backup()`.
    fn _backup(&self, py: Python<'_>, dest: PathBuf) -> PyResult<(PathBuf, u64, u64, u64, f64)> {
        let r = detached(py, || self.inner.backup(&dest))?;
        Ok((
            r.path,
            r.buckets,
            r.records,
            r.bytes,
            r.write_pause.as_secs_f64(),
        ))
    }

    /// Exports to a file path (atomically); returns `(buckets, records, with_ttl)`.
    #[pyo3(signature = (path, format, buckets = None))]
    fn _export_path(
        &self,
        py: Python<'_>,
        path: PathBuf,
        format: &str,
        buckets: Option<Vec<String>>,
    ) -> PyResult<(u64, u64, u64)> {
        let format = format_of(format)?;
        let r = detached(py, || {
            self.inner
                .export_file(&path, format, buckets.as_deref(), |_| {})
        })?;
        Ok((r.buckets, r.records, r.with_ttl))
    }

    /// Exports to a binary file object (its `write` is called with chunks of up to
    /// 1 MiB); returns `(buckets, records, with_ttl)`.
    #[pyo3(signature = (file, format, buckets = None))]
    fn _export_file(
        &self,
        py: Python<'_>,
        file: Py<PyAny>,
        format: &str,
        buckets: Option<Vec<String>>,
    ) -> PyResult<(u64, u64, u64)> {
        let format = format_of(format)?;
        let raised = Mutex::new(None);
        let result = detached(py, || {
            let w = BufWriter::with_capacity(
                1 << 20,
                PyWriter {
                    file: &file,
                    raised: &raised,
                },
            );
            self.inner
                .export_with(w, format, buckets.as_deref(), |_| {})
        });
        let r = reraise(raised, result)?;
        Ok((r.buckets, r.records, r.with_ttl))
    }

    /// Imports a file path (format from its extension if None); returns `(buckets, records, value_bytes, expired_skipped)`.
    #[pyo3(signature = (path, format = None))]
    fn _import_path(
        &self,
        py: Python<'_>,
        path: PathBuf,
        format: Option<&str>,
    ) -> PyResult<(u64, u64, u64, u64)> {
        let format = match format {
            Some(f) => format_of(f)?,
            None => state_core::Format::from_path(&path),
        };
        let r = detached(py, || self.inner.import_file(&path, format, |_| {}))?;
        Ok((r.buckets, r.records, r.value_bytes, r.expired_skipped))
    }

    /// Imports from a binary file object (its `read(n)` must return bytes); returns
    /// `(buckets, records, value_bytes, expired_skipped)`.
    fn _import_file(
        &self,
        py: Python<'_>,
        file: Py<PyAny>,
        format: &str,
    ) -> PyResult<(u64, u64, u64, u64)> {
        let format = format_of(format)?;
        let raised = Mutex::new(None);
        let result = detached(py, || {
            let r = PyReader {
                file: &file,
                raised: &raised,
            };
            self.inner.import_from(r, format, |_| {})
        });
        let r = reraise(raised, result)?;
        Ok((r.buckets, r.records, r.value_bytes, r.expired_skipped))
    }

    /// Closes this handle (and the buckets and cursors taken from it). When it is the
    /// store's last handle, the store is flushed and its files released; a failing
    /// flush raises. Closing a closed store does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        detached(py, || self.inner.close())
    }

    /// Returns the store itself; the `with` block closes it on exit.
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Closes the store. Exceptions from the `with` block propagate.
    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<libstate.Store {:?} engine={}>",
            self.inner.path().display().to_string(),
            self.inner.engine()
        )
    }
}
