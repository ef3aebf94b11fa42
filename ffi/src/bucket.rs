//! Bucket functions: open/close, get (copied or lent), set, delete, get_multiple,
//! set_multiple.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use crate::any::AnyBucket;
use crate::boundary::{
    arg_array, arg_bytes, arg_out, arg_sized_out, arg_str, put, put_opt, put_sized, run, Fail,
};
use crate::buffers::{buf_from, entries_from, state_entries};
use crate::handles::{get, register, state_bucket, state_store, unregister, with};
use crate::status::state_status;

/// Opens bucket `name` of `store` and writes its handle to `*bucket`. Buckets need no
/// creating: a bucket exists while it holds a record. Release with `state_bucket_close`.
///
/// Thread-safe; a bucket handle may be shared between threads.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, not a store handle, name empty, over 255
/// bytes, not UTF-8 or with a control character), `STATE_CLOSED`.
///
/// # Safety
/// `store` is only looked up; `name` is a NUL-terminated string; `bucket` is valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn state_bucket_open(
    store: *mut state_store,
    name: *const c_char,
    bucket: *mut *mut state_bucket,
) -> state_status {
    run(|| {
        let s = get(store, "store")?;
        // SAFETY: forwarded contract.
        let name = unsafe { arg_str(name, "name") }?;
        let out = arg_out(bucket, "bucket")?;
        let h = register::<state_bucket>(Arc::new(AnyBucket::Local(s.bucket(name)?)))?;
        // SAFETY: checked non-NULL, writable by the contract.
        unsafe { put(out, h) };
        Ok(state_status::STATE_OK)
    })
}

/// Releases a bucket handle, of `state_bucket_open` or `state_connect`. Its data
/// stays in the store (on the server); a remote bucket's idle connections are
/// closed.
///
/// Thread-safe. A handle that is already closed gives `STATE_CLOSED` (never a crash).
///
/// # Safety
/// `bucket` is any value; it is only looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn state_bucket_close(bucket: *mut state_bucket) -> state_status {
    run(|| {
        unregister(bucket, "bucket")?;
        Ok(state_status::STATE_OK)
    })
}

/// Reads the value of `key`. On `STATE_OK`, `*value` is a new buffer of `*value_len`
/// bytes (followed by a NUL byte not counted in the length; never NULL, even for an
/// empty value) that the caller releases with `state_free(*value)`.
/// A missing or expired key gives `STATE_NOT_FOUND` and leaves the out-parameters alone.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, key empty, over 1024 bytes or not UTF-8),
/// `STATE_CLOSED`, `STATE_IO`, `STATE_CORRUPT`.
///
/// # Safety
/// `bucket` is only looked up; `key` is a NUL-terminated string; `value` and
/// `value_len` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn state_get(
    bucket: *mut state_bucket,
    key: *const c_char,
    value: *mut *mut u8,
    value_len: *mut usize,
) -> state_status {
    run(|| {
        with(bucket, "bucket", |b| {
            // SAFETY: forwarded contract.
            let key = unsafe { arg_str(key, "key") }?;
            let value = arg_out(value, "value")?;
            let value_len = arg_out(value_len, "value_len")?;
            // Copied once, from the store straight into the caller's buffer.
            match b.get_with(key, |v| (buf_from(v), v.len()))? {
                Some((buf, len)) => {
                    // SAFETY: checked non-NULL, writable by the contract.
                    unsafe {
                        put(value, buf);
                        put(value_len, len);
                    }
                    Ok(state_status::STATE_OK)
                }
                None => Ok(state_status::STATE_NOT_FOUND),
            }
        })
    })
}

/// The callback of `state_get_with`: receives the caller's `ctx` and the value, lent
/// for the duration of the call (`value` is never NULL, even for an empty value).
pub type state_value_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, value: *const u8, value_len: usize)>;

/// Reads the value of `key` without copying it: calls `visit(ctx, value, value_len)`
/// once with the store's own bytes, which stay valid only until `visit` returns (copy
/// what you keep). No allocation, nothing to free: the fastest way to read.
/// Returns `STATE_OK` after calling `visit`, or `STATE_NOT_FOUND` for a missing or
/// expired key, without calling it.
///
/// `visit` runs while the store's read lock is held. It may read the same store
/// (`state_get`, cursors, ...); a write, flush or close of the same store from inside
/// it fails with `STATE_INVALID_ARGUMENT` (it would deadlock), and a slow `visit`
/// delays writers. It must return normally: no `longjmp` out of it, no C++ exception
/// through it. On a bucket of `state_connect`, `value` is the reply's bytes and no
/// lock is held (writes from inside `visit` work).
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL `bucket`, `key` or `visit`; key empty, over 1024
/// bytes or not UTF-8), `STATE_CLOSED`, `STATE_IO`, `STATE_CORRUPT`.
///
/// # Safety
/// `bucket` is only looked up; `key` is a NUL-terminated string; `visit` is NULL or a
/// function that may be called with `ctx`.
#[no_mangle]
pub unsafe extern "C" fn state_get_with(
    bucket: *mut state_bucket,
    key: *const c_char,
    visit: state_value_fn,
    ctx: *mut c_void,
) -> state_status {
    run(|| {
        with(bucket, "bucket", |b| {
            // SAFETY: forwarded contract.
            let key = unsafe { arg_str(key, "key") }?;
            let Some(visit) = visit else {
                return Err(Fail::Invalid("visit is NULL".into()));
            };
            let found = b.get_with(key, |v| {
                // SAFETY: `visit` may be called with `ctx` by the contract; `v` is
                // valid for reads of `v.len()` bytes for the duration of the call (and
                // its pointer is non-NULL even when empty).
                unsafe { visit(ctx, v.as_ptr(), v.len()) }
            })?;
            Ok(if found.is_some() {
                state_status::STATE_OK
            } else {
                state_status::STATE_NOT_FOUND
            })
        })
    })
}

/// Sets `key` to the `value_len` bytes at `value` (`value` may be NULL when
/// `value_len` is 0), replacing any previous value and clearing its expiry.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, bad key, value over the store's
/// `max_value_size`; nothing is written), `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `bucket` is only looked up; `key` is a NUL-terminated string; `value` is valid for
/// reads of `value_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn state_set(
    bucket: *mut state_bucket,
    key: *const c_char,
    value: *const c_void,
    value_len: usize,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let key = unsafe { arg_str(key, "key") }?;
        // SAFETY: forwarded contract.
        let value = unsafe { arg_bytes(value.cast(), value_len, "value") }?;
        b.set(key, value)?;
        Ok(state_status::STATE_OK)
    })
}

/// Removes `key`. Removing a missing key succeeds; `*existed` (if `existed` is not
/// NULL) tells whether the key was there (an expired key was not).
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, bad key), `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `bucket` is only looked up; `key` is a NUL-terminated string; `existed` is NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_delete(
    bucket: *mut state_bucket,
    key: *const c_char,
    existed: *mut bool,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let key = unsafe { arg_str(key, "key") }?;
        let had = b.delete(key)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { put_opt(existed, had) };
        Ok(state_status::STATE_OK)
    })
}

/// Reads the `n_keys` keys at `keys` and writes the ones present to `*entries`, in key
/// order; missing and expired keys are simply absent, and a repeated key appears once.
/// Release the list with `state_entries_free`. `keys` may be NULL when `n_keys` is 0.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument or key, a bad key, an
/// `entries->struct_size` smaller than this library's `state_entries`),
/// `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `bucket` is only looked up; `keys` is valid for reads of `n_keys` pointers, each a
/// NUL-terminated string; `entries` is NULL or valid for a read of its `struct_size`
/// field and a write of `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn state_get_multiple(
    bucket: *mut state_bucket,
    keys: *const *const c_char,
    n_keys: usize,
    entries: *mut state_entries,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let raw = unsafe { arg_array(keys, n_keys, "keys") }?;
        // SAFETY: NULL, or its struct_size readable, by the contract.
        let out = unsafe { arg_sized_out(entries, "entries") }?;
        let keys = raw
            .iter()
            .enumerate()
            // SAFETY: each pointer is NULL or a NUL-terminated string by the contract.
            .map(|(i, &k)| unsafe { arg_str(k, format_args!("keys[{i}]")) })
            .collect::<Result<Vec<&str>, _>>()?;
        let found = b.get_multiple(&keys)?;
        // SAFETY: checked, writable for struct_size bytes by the contract.
        unsafe { put_sized(out, entries_from(found)) };
        Ok(state_status::STATE_OK)
    })
}

/// One key/value pair to write with `state_set_multiple`. The caller owns the memory.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct state_kv {
    /// The key, a NUL-terminated UTF-8 string.
    pub key: *const c_char,
    /// The value's bytes (may be NULL when `value_len` is 0).
    pub value: *const c_void,
    /// Length of `value` in bytes.
    pub value_len: usize,
}

/// Writes the `n_items` pairs at `items` in one atomic batch: after a crash either all
/// or none are present. Clears each key's expiry. If a key repeats, its last value
/// wins. An empty batch does nothing (`items` may then be NULL).
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, a bad key or value), `STATE_TOO_LARGE`
/// (keys + values exceed the store's `max_batch_size`) — in both cases nothing is
/// written; `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `bucket` is only looked up; `items` is valid for reads of `n_items` pairs whose
/// keys and values are valid as described in `state_kv`.
#[no_mangle]
pub unsafe extern "C" fn state_set_multiple(
    bucket: *mut state_bucket,
    items: *const state_kv,
    n_items: usize,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let raw = unsafe { arg_array(items, n_items, "items") }?;
        let pairs = raw
            .iter()
            .enumerate()
            .map(|(i, kv)| {
                // SAFETY: each pair's key and value are valid by the contract.
                unsafe {
                    Ok((
                        arg_str(kv.key, format_args!("items[{i}].key"))?,
                        arg_bytes(
                            kv.value.cast(),
                            kv.value_len,
                            format_args!("items[{i}].value"),
                        )?,
                    ))
                }
            })
            .collect::<Result<Vec<(&str, &[u8])>, Fail>>()?;
        b.set_multiple(&pairs)?;
        Ok(state_status::STATE_OK)
    })
}
