//! Cursor functions: open/close, first, last, next, prev, seek, next_n, prev_n.
//!
//! A cursor stands on an entry, before the first or after the last; a new one stands
//! before the first. Stepping is by key, never by snapshot: each step returns the
//! nearest live key after (or before) the current key at the time of the step, so a
//! cursor stays valid while other threads write. Calls on one cursor are serialized
//! internally, so a cursor may be used from any thread.

use std::ffi::c_char;
use std::sync::Arc;

use parking_lot::Mutex;
use state_core::Entry;

use crate::any::AnyCursor;

use crate::boundary::{arg_out, arg_sized_out, arg_str, put, put_sized, run, Fail};
use crate::buffers::{entries_from, entry_from, state_entries, state_entry};
use crate::handles::{get, register, state_bucket, state_cursor, unregister};
use crate::status::state_status;

/// Opens a cursor on `bucket`, standing before the first entry, and writes its handle
/// to `*cursor`. Release with `state_cursor_close`.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, not a bucket handle), `STATE_CLOSED`.
///
/// # Safety
/// `bucket` is only looked up; `cursor` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_open(
    bucket: *mut state_bucket,
    cursor: *mut *mut state_cursor,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        let out = arg_out(cursor, "cursor")?;
        let h = register::<state_cursor>(Arc::new(Mutex::new(b.cursor()?)))?;
        // SAFETY: checked non-NULL, writable by the contract.
        unsafe { put(out, h) };
        Ok(state_status::STATE_OK)
    })
}

/// Releases a cursor handle.
///
/// Thread-safe. A handle that is already closed gives `STATE_CLOSED` (never a crash).
///
/// # Safety
/// `cursor` is any value; it is only looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_close(cursor: *mut state_cursor) -> state_status {
    run(|| {
        unregister(cursor, "cursor")?;
        Ok(state_status::STATE_OK)
    })
}

/// Runs one single-step cursor move and writes the entry it lands on.
fn step(
    cursor: *mut state_cursor,
    entry: *mut state_entry,
    mv: impl FnOnce(&mut AnyCursor) -> Result<Option<Entry>, Fail>,
) -> state_status {
    run(|| {
        let c = get(cursor, "cursor")?;
        let out = arg_out(entry, "entry")?;
        let found = mv(&mut c.lock())?;
        match found {
            Some(e) => {
                // SAFETY: checked non-NULL; writable by the caller's contract.
                unsafe { put(out, entry_from(e)) };
                Ok(state_status::STATE_OK)
            }
            None => Ok(state_status::STATE_NOT_FOUND),
        }
    })
}

/// Runs a multi-step cursor move and writes the entries stepped onto.
fn steps(
    cursor: *mut state_cursor,
    entries: *mut state_entries,
    mv: impl FnOnce(&mut AnyCursor) -> Result<Vec<Entry>, Fail>,
) -> state_status {
    run(|| {
        let c = get(cursor, "cursor")?;
        // SAFETY: NULL, or its struct_size readable, by the caller's contract.
        let out = unsafe { arg_sized_out(entries, "entries") }?;
        let list = mv(&mut c.lock())?;
        // SAFETY: checked; writable for struct_size bytes by the caller's contract.
        unsafe { put_sized(out, entries_from(list)) };
        Ok(state_status::STATE_OK)
    })
}

/// Moves to the first entry and writes it to `*entry` (release with
/// `state_entry_free`). An empty bucket gives `STATE_NOT_FOUND` and leaves the cursor
/// after the last entry.
///
/// Thread-safe (calls on one cursor are serialized).
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, not a cursor handle), `STATE_CLOSED`,
/// `STATE_IO`.
///
/// # Safety
/// `cursor` is only looked up; `entry` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_first(
    cursor: *mut state_cursor,
    entry: *mut state_entry,
) -> state_status {
    step(cursor, entry, |c| c.first())
}

/// Moves to the last entry and writes it to `*entry` (release with
/// `state_entry_free`). An empty bucket gives `STATE_NOT_FOUND` and leaves the cursor
/// before the first entry.
///
/// Thread-safe (calls on one cursor are serialized).
///
/// # Errors
/// As `state_cursor_first`.
///
/// # Safety
/// `cursor` is only looked up; `entry` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_last(
    cursor: *mut state_cursor,
    entry: *mut state_entry,
) -> state_status {
    step(cursor, entry, |c| c.last())
}

/// Steps to the smallest live key greater than the current one and writes that entry
/// to `*entry` (release with `state_entry_free`). From before-first this is the first
/// entry. At the end it gives `STATE_NOT_FOUND` and the cursor stands after the last
/// entry, from where `state_cursor_prev` returns the last entry.
///
/// Thread-safe (calls on one cursor are serialized).
///
/// # Errors
/// As `state_cursor_first`.
///
/// # Safety
/// `cursor` is only looked up; `entry` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_next(
    cursor: *mut state_cursor,
    entry: *mut state_entry,
) -> state_status {
    step(cursor, entry, |c| c.next())
}

/// Steps to the greatest live key smaller than the current one and writes that entry
/// to `*entry` (release with `state_entry_free`). From after-last this is the last
/// entry. At the start it gives `STATE_NOT_FOUND` and the cursor stands before the
/// first entry.
///
/// Thread-safe (calls on one cursor are serialized).
///
/// # Errors
/// As `state_cursor_first`.
///
/// # Safety
/// `cursor` is only looked up; `entry` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_prev(
    cursor: *mut state_cursor,
    entry: *mut state_entry,
) -> state_status {
    step(cursor, entry, |c| c.prev())
}

/// Moves to the first entry whose key is `>= key` (whether or not `key` exists) and
/// writes it to `*entry` (release with `state_entry_free`). If no key follows, gives
/// `STATE_NOT_FOUND` and the cursor stands after the last entry.
///
/// Thread-safe (calls on one cursor are serialized).
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL argument, bad key), `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `cursor` is only looked up; `key` is a NUL-terminated string; `entry` is valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_seek(
    cursor: *mut state_cursor,
    key: *const c_char,
    entry: *mut state_entry,
) -> state_status {
    step(cursor, entry, |c| {
        // SAFETY: forwarded contract.
        let key = unsafe { arg_str(key, "key") }?;
        c.seek(key)
    })
}

/// Exactly `n` calls of `state_cursor_next`: writes the entries stepped onto, in
/// ascending key order, to `*entries` (release with `state_entries_free`). Fewer than
/// `n` entries means the end was reached (the cursor then stands after the last
/// entry). `n == 0` returns an empty list and does not move. Always `STATE_OK` on
/// success, even when the list is empty.
///
/// Thread-safe (calls on one cursor are serialized).
///
/// # Errors
/// As `state_cursor_first`, and `STATE_INVALID_ARGUMENT` for an
/// `entries->struct_size` smaller than this library's `state_entries`.
///
/// # Safety
/// `cursor` is only looked up; `entries` is NULL or valid for a read of its
/// `struct_size` field and a write of `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_next_n(
    cursor: *mut state_cursor,
    n: usize,
    entries: *mut state_entries,
) -> state_status {
    steps(cursor, entries, |c| c.next_n(n))
}

/// Exactly `n` calls of `state_cursor_prev`: writes the entries stepped onto, in
/// descending key order, to `*entries` (release with `state_entries_free`). Fewer than
/// `n` entries means the start was reached (the cursor then stands before the first
/// entry).
///
/// Thread-safe (calls on one cursor are serialized).
///
/// # Errors
/// As `state_cursor_first`, and `STATE_INVALID_ARGUMENT` for an
/// `entries->struct_size` smaller than this library's `state_entries`.
///
/// # Safety
/// `cursor` is only looked up; `entries` is NULL or valid for a read of its
/// `struct_size` field and a write of `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn state_cursor_prev_n(
    cursor: *mut state_cursor,
    n: usize,
    entries: *mut state_entries,
) -> state_status {
    steps(cursor, entries, |c| c.prev_n(n))
}
