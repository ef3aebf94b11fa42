//! Expiry (TTL) functions: set with a TTL, expire, persist, ttl.
//!
//! TTLs are whole milliseconds (`int64_t`); a zero or negative TTL is
//! `STATE_INVALID_ARGUMENT` (the rule is the core's `ttl_from_millis`). An expired key
//! is invisible to every read from the moment it expires. Deadlines are absolute
//! wall-clock times, so they survive restarts.

use std::ffi::{c_char, c_void};

use state_core::{ttl_from_millis, Ttl};

use crate::boundary::{arg_array, arg_bytes, arg_out, arg_str, put, put_opt, run, Fail};
use crate::bucket::state_kv;
use crate::handles::{get, state_bucket};
use crate::status::state_status;

/// The value `state_ttl` writes for a key that exists and does not expire.
pub const STATE_NO_EXPIRY: i64 = -1;

/// Sets `key` to the `value_len` bytes at `value` with a time to live of `ttl_ms`
/// milliseconds: from then on the key is invisible to every read, and it is removed
/// soon after.
///
/// Thread-safe.
///
/// # Errors
/// As `state_set`, and `STATE_INVALID_ARGUMENT` for `ttl_ms <= 0` (nothing is written).
///
/// # Safety
/// As `state_set`.
#[no_mangle]
pub unsafe extern "C" fn state_set_with_ttl(
    bucket: *mut state_bucket,
    key: *const c_char,
    value: *const c_void,
    value_len: usize,
    ttl_ms: i64,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let key = unsafe { arg_str(key, "key") }?;
        // SAFETY: forwarded contract.
        let value = unsafe { arg_bytes(value.cast(), value_len, "value") }?;
        b.set_with_ttl(key, value, ttl_from_millis(ttl_ms)?)?;
        Ok(state_status::STATE_OK)
    })
}

/// Like `state_set_multiple`, giving every key a time to live of `ttl_ms`
/// milliseconds. Atomic: all keys and their expiry, or nothing.
///
/// Thread-safe.
///
/// # Errors
/// As `state_set_multiple`, and `STATE_INVALID_ARGUMENT` for `ttl_ms <= 0`.
///
/// # Safety
/// As `state_set_multiple`.
#[no_mangle]
pub unsafe extern "C" fn state_set_multiple_with_ttl(
    bucket: *mut state_bucket,
    items: *const state_kv,
    n_items: usize,
    ttl_ms: i64,
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
        b.set_multiple_with_ttl(&pairs, ttl_from_millis(ttl_ms)?)?;
        Ok(state_status::STATE_OK)
    })
}

/// Gives the existing key `key` a time to live of `ttl_ms` milliseconds from now,
/// replacing any it had. A missing (or expired) key gives `STATE_NOT_FOUND` and
/// nothing changes.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, bad key, `ttl_ms <= 0`), `STATE_CLOSED`,
/// `STATE_IO`.
///
/// # Safety
/// `bucket` is only looked up; `key` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn state_expire(
    bucket: *mut state_bucket,
    key: *const c_char,
    ttl_ms: i64,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let key = unsafe { arg_str(key, "key") }?;
        if b.expire(key, ttl_from_millis(ttl_ms)?)? {
            Ok(state_status::STATE_OK)
        } else {
            Ok(state_status::STATE_NOT_FOUND)
        }
    })
}

/// Removes the time to live of `key`, so it no longer expires. `*had_ttl` (if
/// `had_ttl` is not NULL) tells whether it had one (`false` for a missing key or a
/// key without expiry).
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, bad key), `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `bucket` is only looked up; `key` is a NUL-terminated string; `had_ttl` is NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_persist(
    bucket: *mut state_bucket,
    key: *const c_char,
    had_ttl: *mut bool,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let key = unsafe { arg_str(key, "key") }?;
        let had = b.persist(key)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { put_opt(had_ttl, had) };
        Ok(state_status::STATE_OK)
    })
}

/// Writes the remaining time to live of `key` in milliseconds to `*remaining_ms`, or
/// `STATE_NO_EXPIRY` (-1) if the key does not expire. A missing (or expired) key gives
/// `STATE_NOT_FOUND` and leaves `*remaining_ms` alone.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, bad key), `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `bucket` is only looked up; `key` is a NUL-terminated string; `remaining_ms` is
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_ttl(
    bucket: *mut state_bucket,
    key: *const c_char,
    remaining_ms: *mut i64,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let key = unsafe { arg_str(key, "key") }?;
        let out = arg_out(remaining_ms, "remaining_ms")?;
        let ms = match b.ttl(key)? {
            Ttl::Missing => return Ok(state_status::STATE_NOT_FOUND),
            Ttl::NoExpiry => STATE_NO_EXPIRY,
            Ttl::Expires(left) => i64::try_from(left.as_millis()).unwrap_or(i64::MAX),
        };
        // SAFETY: checked non-NULL, writable by the contract.
        unsafe { put(out, ms) };
        Ok(state_status::STATE_OK)
    })
}
