//! `StateService`: the per-client RPC layer of the original state service.

use pyo3::prelude::*;
use state_service::StateService;

use crate::boundary::detached_service;
use crate::store::PyStore;

/// The state service over a store: each client reaches only the bucket named by its
/// authenticated id. `handle()` speaks the original JSON messages.
#[pyclass(frozen, subclass, name = "StateService", module = "libstate._native")]
pub(crate) struct PyStateService {
    inner: StateService,
    store: Py<PyStore>,
}

#[pymethods]
impl PyStateService {
    /// A service over `store`.
    #[new]
    fn new(store: Bound<'_, PyStore>) -> PyStateService {
        PyStateService {
            inner: StateService::new(store.get().inner.clone()),
            store: store.unbind(),
        }
    }

    /// The store behind the service.
    #[getter]
    fn store(&self, py: Python<'_>) -> Py<PyStore> {
        self.store.clone_ref(py)
    }

    /// Handles one RPC message for `client_id` and returns the JSON response. The
    /// methods are the state service's, listed in docs/service.md ("HTTP"); values
    /// are base64 strings. An unknown method or malformed arguments raise
    /// `InvalidArgument`, a write over the client's quota `QuotaExceeded`.
    fn handle(
        &self,
        py: Python<'_>,
        client_id: &str,
        method: &str,
        args: &str,
    ) -> PyResult<String> {
        detached_service(py, || self.inner.handle(client_id, method, args))
    }
}
