//! Library-allocated results and the functions that free them.
//!
//! Every buffer libstate returns (values, keys, names, JSON responses) is allocated by
//! libstate with one extra NUL byte after its `len` bytes, so text can be used as a C
//! string directly; the NUL is not counted in `len`. A returned pointer is never NULL.
//! Release each with the matching free function, passing back the length you got.

use std::ffi::{c_char, c_void};
use std::ptr;

use state_core::Entry;

use crate::boundary::run_void;

/// A key with its value, returned by cursors and `state_get_multiple`.
///
/// Both buffers belong to the caller; release them with `state_entry_free` (or
/// `state_entries_free` for a whole list). `key` is NUL-terminated; `value` has a NUL
/// byte after its `value_len` bytes as well.
#[repr(C)]
#[derive(Debug)]
pub struct state_entry {
    /// The key, `key_len` bytes of UTF-8 plus a terminating NUL.
    pub key: *mut c_char,
    /// Length of `key` in bytes, without the NUL.
    pub key_len: usize,
    /// The value, `value_len` bytes (plus a NUL byte not counted in `value_len`).
    pub value: *mut u8,
    /// Length of `value` in bytes.
    pub value_len: usize,
}

/// A list of entries in key order (descending for `state_cursor_prev_n`).
///
/// Owned by the caller; release it with `state_entries_free`, which frees every
/// entry. `items` is NULL when `len` is 0.
#[repr(C)]
#[derive(Debug)]
pub struct state_entries {
    /// The entries.
    pub items: *mut state_entry,
    /// Number of entries.
    pub len: usize,
}

/// A list of NUL-terminated UTF-8 strings (bucket names).
///
/// Owned by the caller; release it with `state_strings_free`. `items` is NULL when
/// `len` is 0.
#[repr(C)]
#[derive(Debug)]
pub struct state_strings {
    /// The strings.
    pub items: *mut *mut c_char,
    /// Number of strings.
    pub len: usize,
}

/// Copies `bytes` into a new library buffer with a trailing NUL byte.
pub(crate) fn buf_from(bytes: &[u8]) -> *mut u8 {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.extend_from_slice(bytes);
    v.push(0);
    Box::into_raw(v.into_boxed_slice()).cast()
}

/// Frees a buffer made by [`buf_from`].
///
/// # Safety
/// `p` is NULL or came from `buf_from` of exactly `len` bytes and was not freed yet.
pub(crate) unsafe fn buf_free(p: *mut u8, len: usize) {
    if p.is_null() {
        return;
    }
    // SAFETY: by the contract, `p` is a boxed slice of `len + 1` bytes from buf_from.
    drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, len + 1)) });
}

/// Converts a core entry into a C entry (new buffers).
pub(crate) fn entry_from((key, value): Entry) -> state_entry {
    state_entry {
        key: buf_from(key.as_bytes()).cast(),
        key_len: key.len(),
        value: buf_from(&value),
        value_len: value.len(),
    }
}

/// Converts entries into a C list (new buffers).
pub(crate) fn entries_from(entries: impl IntoIterator<Item = Entry>) -> state_entries {
    let items: Box<[state_entry]> = entries.into_iter().map(entry_from).collect();
    let len = items.len();
    if len == 0 {
        return state_entries {
            items: ptr::null_mut(),
            len: 0,
        };
    }
    state_entries {
        items: Box::into_raw(items).cast(),
        len,
    }
}

/// Converts strings into a C list (new buffers).
pub(crate) fn strings_from(strings: Vec<String>) -> state_strings {
    let items: Box<[*mut c_char]> = strings
        .iter()
        .map(|s| buf_from(s.as_bytes()).cast())
        .collect();
    let len = items.len();
    if len == 0 {
        return state_strings {
            items: ptr::null_mut(),
            len: 0,
        };
    }
    state_strings {
        items: Box::into_raw(items).cast(),
        len,
    }
}

/// Frees a buffer returned by libstate (a value from `state_get`, a response from
/// `state_service_handle`, ...). `len` must be the length returned with it.
/// `state_free(NULL, 0)` does nothing.
///
/// Thread-safe.
///
/// # Safety
/// `buf` is NULL or a buffer returned by libstate with length `len`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn state_free(buf: *mut c_void, len: usize) {
    // SAFETY: forwarded contract.
    run_void(|| unsafe { buf_free(buf.cast(), len) });
}

/// Frees the key and value of `entry` and sets its fields to NULL / 0, so freeing it
/// twice does nothing. `entry` may be NULL.
///
/// Thread-safe for distinct entries.
///
/// # Safety
/// `entry` is NULL or points to an entry filled by libstate (or already freed by this
/// function).
#[no_mangle]
pub unsafe extern "C" fn state_entry_free(entry: *mut state_entry) {
    run_void(|| {
        if entry.is_null() {
            return;
        }
        // SAFETY: non-NULL and, by the contract, a valid entry we own.
        let e = unsafe { &mut *entry };
        // SAFETY: the buffers came from buf_from with these lengths (or are NULL).
        unsafe {
            buf_free(e.key.cast(), e.key_len);
            buf_free(e.value, e.value_len);
        }
        *e = state_entry {
            key: ptr::null_mut(),
            key_len: 0,
            value: ptr::null_mut(),
            value_len: 0,
        };
    });
}

/// Frees every entry of `list` and the list's array, and sets it to NULL / 0, so
/// freeing it twice does nothing. `list` may be NULL.
///
/// Thread-safe for distinct lists.
///
/// # Safety
/// `list` is NULL or points to a list filled by libstate (or already freed by this
/// function).
#[no_mangle]
pub unsafe extern "C" fn state_entries_free(list: *mut state_entries) {
    run_void(|| {
        if list.is_null() {
            return;
        }
        // SAFETY: non-NULL and, by the contract, a valid list we own.
        let l = unsafe { &mut *list };
        if !l.items.is_null() {
            // SAFETY: `items` is the boxed slice of `len` entries made by entries_from.
            let items = unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(l.items, l.len)) };
            for mut e in items.into_vec() {
                // SAFETY: each entry was filled by entry_from.
                unsafe { state_entry_free(&mut e) };
            }
        }
        l.items = ptr::null_mut();
        l.len = 0;
    });
}

/// Frees every string of `list` and the list's array, and sets it to NULL / 0, so
/// freeing it twice does nothing. `list` may be NULL.
///
/// Thread-safe for distinct lists.
///
/// # Safety
/// `list` is NULL or points to a list filled by libstate (or already freed by this
/// function).
#[no_mangle]
pub unsafe extern "C" fn state_strings_free(list: *mut state_strings) {
    run_void(|| {
        if list.is_null() {
            return;
        }
        // SAFETY: non-NULL and, by the contract, a valid list we own.
        let l = unsafe { &mut *list };
        if !l.items.is_null() {
            // SAFETY: `items` is the boxed slice of `len` pointers made by strings_from.
            let items = unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(l.items, l.len)) };
            for s in items.iter() {
                // SAFETY: each string came from buf_from; its length is up to its NUL
                // (names contain no NUL).
                unsafe {
                    let len = std::ffi::CStr::from_ptr(*s).to_bytes().len();
                    buf_free(s.cast(), len);
                }
            }
        }
        l.items = ptr::null_mut();
        l.len = 0;
    });
}
