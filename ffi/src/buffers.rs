//! Library-allocated results and the functions that free them.
//!
//! Every buffer libstate returns (values, keys, names, JSON responses) is allocated by
//! libstate with one extra NUL byte after its `len` bytes, so text can be used as a C
//! string directly; the NUL is not counted in `len`. A returned pointer is never NULL.
//! Each buffer records its own length in a header in front of it, so releasing one
//! needs only its pointer (a wrong length cannot be passed). Release each with the
//! matching free function.

use std::alloc::{alloc, dealloc, Layout};
use std::ffi::{c_char, c_void};
use std::ptr;

use state_core::Entry;

use crate::boundary::{run_void, StructSize};

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

/// A list of entries in key order (descending for `state_cursor_prev_n`). Set
/// `struct_size` to `sizeof(state_entries)` before the call that fills it
/// (`state_entries list = {.struct_size = sizeof list};`).
///
/// Step through `items` by `entry_size` bytes, not by `sizeof(state_entry)`:
/// `STATE_ENTRY_AT(&list, i)` is the `i`th entry. A later release may append fields
/// to `state_entry`; its lists then have a larger `entry_size`, and a program built
/// against this header still finds every entry and reads the fields it knows.
///
/// Owned by the caller; release it with `state_entries_free`, which frees every
/// entry. `items` is NULL when `len` is 0.
#[repr(C)]
#[derive(Debug)]
pub struct state_entries {
    /// Set by the caller to `sizeof(state_entries)`; later releases append fields
    /// and fill only those that `struct_size` covers.
    pub struct_size: usize,
    /// Set by the library: the size in bytes of each element of `items` (the
    /// library's `sizeof(state_entry)`, never smaller than this header's), the
    /// stride to step through the list with.
    pub entry_size: usize,
    /// The entries, `entry_size` bytes apart.
    pub items: *mut state_entry,
    /// Number of entries.
    pub len: usize,
}

impl StructSize for state_entries {
    fn set_struct_size(&mut self, n: usize) {
        self.struct_size = n;
    }
}

/// A list of NUL-terminated UTF-8 strings (bucket names). Set `struct_size` to
/// `sizeof(state_strings)` before the call that fills it
/// (`state_strings names = {.struct_size = sizeof names};`).
///
/// Owned by the caller; release it with `state_strings_free`. `items` is NULL when
/// `len` is 0.
#[repr(C)]
#[derive(Debug)]
pub struct state_strings {
    /// Set by the caller to `sizeof(state_strings)`; later releases append fields
    /// and fill only those that `struct_size` covers.
    pub struct_size: usize,
    /// The strings.
    pub items: *mut *mut c_char,
    /// Number of strings.
    pub len: usize,
}

impl StructSize for state_strings {
    fn set_struct_size(&mut self, n: usize) {
        self.struct_size = n;
    }
}

/// Bytes in front of every buffer: its length, so `state_free` needs none from the
/// caller. 16 keeps the buffer itself aligned as `malloc` would align it.
const HEADER: usize = 16;

/// The allocation layout of a buffer of `len` bytes (header, bytes, NUL).
fn layout_for(len: usize) -> Option<Layout> {
    let size = len.checked_add(HEADER + 1)?;
    Layout::from_size_align(size, HEADER).ok()
}

/// Copies `bytes` into a new library buffer with a trailing NUL byte. The buffer
/// records its own length in a header in front of it, so [`buf_free`] takes only
/// the pointer. Aborts (as `Vec` does) if memory is exhausted.
pub(crate) fn buf_from(bytes: &[u8]) -> *mut u8 {
    let Some(layout) = layout_for(bytes.len()) else {
        // A slice is never within HEADER + 1 bytes of isize::MAX.
        std::alloc::handle_alloc_error(Layout::new::<[u8; HEADER]>())
    };
    // SAFETY: `layout` has a non-zero size (at least HEADER + 1).
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `base` is a fresh allocation of HEADER + len + 1 bytes aligned to
    // HEADER (>= align_of::<usize>()): the length fits at its start, the bytes at
    // HEADER.., the NUL at HEADER + len; the source slice cannot overlap it.
    unsafe {
        base.cast::<usize>().write(bytes.len());
        let data = base.add(HEADER);
        ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        data.add(bytes.len()).write(0);
        data
    }
}

/// Frees a buffer made by [`buf_from`], whatever its length.
///
/// # Safety
/// `p` is NULL or came from `buf_from` and was not freed yet.
pub(crate) unsafe fn buf_free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // SAFETY: by the contract `p` is HEADER bytes into an allocation made by
    // buf_from, whose first bytes hold the length it was allocated with; so `base`
    // and the recomputed layout are exactly those of the allocation.
    unsafe {
        let base = p.sub(HEADER);
        let len = base.cast::<usize>().read();
        if let Some(layout) = layout_for(len) {
            dealloc(base, layout);
        }
    }
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

/// Converts entries into a C list (new buffers); `struct_size` is set when it is
/// written (`put_sized`).
pub(crate) fn entries_from(entries: impl IntoIterator<Item = Entry>) -> state_entries {
    let items: Box<[state_entry]> = entries.into_iter().map(entry_from).collect();
    let len = items.len();
    state_entries {
        struct_size: 0,
        entry_size: std::mem::size_of::<state_entry>(),
        items: if len == 0 {
            ptr::null_mut()
        } else {
            Box::into_raw(items).cast()
        },
        len,
    }
}

/// Converts strings into a C list (new buffers); `struct_size` is set when it is
/// written (`put_sized`).
pub(crate) fn strings_from(strings: Vec<String>) -> state_strings {
    let items: Box<[*mut c_char]> = strings
        .iter()
        .map(|s| buf_from(s.as_bytes()).cast())
        .collect();
    let len = items.len();
    state_strings {
        struct_size: 0,
        items: if len == 0 {
            ptr::null_mut()
        } else {
            Box::into_raw(items).cast()
        },
        len,
    }
}

/// Frees a buffer returned by libstate (a value from `state_get`, a response from
/// `state_service_handle`, the problems of a check, ...). The library remembers
/// each buffer's length, so none is passed. `state_free(NULL)` does nothing.
///
/// Thread-safe.
///
/// # Safety
/// `buf` is NULL or a buffer returned by libstate, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn state_free(buf: *mut c_void) {
    // SAFETY: forwarded contract.
    run_void(|| unsafe { buf_free(buf.cast()) });
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
        // SAFETY: the buffers came from buf_from (or are NULL).
        unsafe {
            buf_free(e.key.cast());
            buf_free(e.value);
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
                // SAFETY: each string came from buf_from.
                unsafe { buf_free(s.cast()) };
            }
        }
        l.items = ptr::null_mut();
        l.len = 0;
    });
}
