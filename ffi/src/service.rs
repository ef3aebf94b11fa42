//! The per-client state service (the HiveOT `stateapi` JSON messages).

use std::ffi::c_char;
use std::sync::Arc;

use state_core::Store;

use crate::boundary::{arg_out, arg_str, put, run};
use crate::buffers::buf_from;
use crate::handles::{get, register, state_service, state_store, unregister};
use crate::status::state_status;

/// Opens the state service over `store` and writes its handle to `*service`. Each
/// client reaches only the bucket named by its client id. Release with
/// `state_service_close`; closing the store makes the service report `STATE_CLOSED`.
///
/// Thread-safe; a service handle may be shared between threads.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, not a store handle).
///
/// # Safety
/// `store` is only looked up; `service` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_service_open(
    store: *mut state_store,
    service: *mut *mut state_service,
) -> state_status {
    run(|| {
        let s = get(store, "store")?;
        let out = arg_out(service, "service")?;
        let h = register::<state_service>(Arc::new(::state_service::StateService::new(
            Store::clone(&s),
        )))?;
        // SAFETY: checked non-NULL, writable by the contract.
        unsafe { put(out, h) };
        Ok(state_status::STATE_OK)
    })
}

/// Releases a service handle.
///
/// Thread-safe. A handle that is already closed gives `STATE_CLOSED` (never a crash).
///
/// # Safety
/// `service` is any value; it is only looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn state_service_close(service: *mut state_service) -> state_status {
    run(|| {
        unregister(service, "service")?;
        Ok(state_status::STATE_OK)
    })
}

/// Handles one RPC message of the state service for client `client_id` and writes the
/// JSON response to `*response` (`*response_len` bytes, NUL-terminated; release with
/// `state_free(*response)`).
///
/// The methods, their arguments and responses are the state service's
/// (`state_service::METHODS`), listed in docs/service.md ("HTTP"); this function
/// only passes them through. Values are base64 strings (Go's `[]byte` JSON
/// encoding). A `get` of a missing key is `STATE_OK` with `"found":false`.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, unknown method, malformed JSON, bad client
/// id, key or value; the message says which), `STATE_QUOTA_EXCEEDED` (a write over
/// the client's quota), `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `service` is only looked up; `client_id`, `method` and `json_args` are
/// NUL-terminated strings; `response` and `response_len` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn state_service_handle(
    service: *mut state_service,
    client_id: *const c_char,
    method: *const c_char,
    json_args: *const c_char,
    response: *mut *mut c_char,
    response_len: *mut usize,
) -> state_status {
    run(|| {
        let svc = get(service, "service")?;
        // SAFETY: forwarded contract.
        let (client_id, method, json_args) = unsafe {
            (
                arg_str(client_id, "client_id")?,
                arg_str(method, "method")?,
                arg_str(json_args, "json_args")?,
            )
        };
        let response = arg_out(response, "response")?;
        let response_len = arg_out(response_len, "response_len")?;
        let reply = svc.handle(client_id, method, json_args)?;
        // SAFETY: checked non-NULL, writable by the contract.
        unsafe {
            put(response, buf_from(reply.as_bytes()).cast());
            put(response_len, reply.len());
        }
        Ok(state_status::STATE_OK)
    })
}
