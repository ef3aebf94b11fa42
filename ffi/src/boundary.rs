//! The panic boundary every export passes through: argument checks (NULL, UTF-8),
//! `catch_unwind`, error mapping and the thread-local last-error message, all here.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::fmt::Display;
use std::panic::{self, AssertUnwindSafe};

use crate::status::{state_status, status_of, status_of_service};

/// Why a call failed, before it becomes a status code and a message.
#[derive(Debug)]
pub(crate) enum Fail {
    /// An error from the core; its kind picks the status code.
    Core(state_core::Error),
    /// An error from the service (the core's, or *quota exceeded*).
    Service(::state_service::Error),
    /// A bad argument caught at the boundary (NULL, invalid UTF-8, not a handle).
    Invalid(String),
    /// A handle that was closed.
    Closed(String),
}

impl From<state_core::Error> for Fail {
    fn from(e: state_core::Error) -> Fail {
        Fail::Core(e)
    }
}

impl From<::state_service::Error> for Fail {
    fn from(e: ::state_service::Error) -> Fail {
        Fail::Service(e)
    }
}

impl Fail {
    fn into_parts(self) -> (state_status, String) {
        match self {
            Fail::Core(e) => (status_of(e.kind()), e.to_string()),
            Fail::Service(e) => (status_of_service(e.kind()), e.to_string()),
            Fail::Invalid(m) => (
                state_status::STATE_INVALID_ARGUMENT,
                format!("invalid argument: {m}"),
            ),
            Fail::Closed(m) => (state_status::STATE_CLOSED, m),
        }
    }
}

/// The result type of an export's body: `Ok` carries `STATE_OK` or `STATE_NOT_FOUND`.
pub(crate) type Outcome = Result<state_status, Fail>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: String) {
    // Interior NULs cannot appear in a C string; show them escaped instead.
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    // Fails only while the thread is being torn down; the status still tells the error.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = c);
}

/// Runs an export's body: catches panics, maps failures to a status code and records
/// the message in the thread's last-error slot. The one place errors are translated.
pub(crate) fn run(body: impl FnOnce() -> Outcome) -> state_status {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(fail)) => {
            let (status, msg) = fail.into_parts();
            set_last_error(msg);
            status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(format!(
                "internal error: libstate panicked ({what}); please report this bug"
            ));
            state_status::STATE_INTERNAL
        }
    }
}

/// Like [`run`] for functions that cannot report a status (the `_free` functions):
/// a panic is swallowed rather than allowed to cross the boundary.
pub(crate) fn run_void(body: impl FnOnce()) {
    let _ = run(|| {
        body();
        Ok(state_status::STATE_OK)
    });
}

/// The thread's last error message, as a pointer valid until the next failing call on
/// this thread.
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unmodified
/// for `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, name: impl Display) -> Result<&'a str, Fail> {
    if p.is_null() {
        return Err(Fail::Invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string living for 'a.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Fail::Invalid(format!(
            "{name} is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// A required NUL-terminated string argument taken as raw bytes (paths).
///
/// # Safety
/// As for [`arg_str`].
pub(crate) unsafe fn arg_cstr<'a>(p: *const c_char, name: impl Display) -> Result<&'a CStr, Fail> {
    if p.is_null() {
        return Err(Fail::Invalid(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string living for 'a.
    Ok(unsafe { CStr::from_ptr(p) })
}

/// A byte buffer argument: `len` bytes at `p`. `p` may be NULL only when `len` is 0.
///
/// # Safety
/// `p` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn arg_bytes<'a>(
    p: *const u8,
    len: usize,
    name: impl Display,
) -> Result<&'a [u8], Fail> {
    // SAFETY: forwarded contract (`len` readable bytes at a non-NULL `p`).
    unsafe { arg_array(p, len, name) }
}

/// An array argument of `len` elements. `p` may be NULL only when `len` is 0.
///
/// # Safety
/// `p` is NULL or valid for reads of `len` elements of `T` for `'a`.
pub(crate) unsafe fn arg_array<'a, T>(
    p: *const T,
    len: usize,
    name: impl Display,
) -> Result<&'a [T], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Fail::Invalid(format!(
            "{name} is NULL but its length is {len}"
        )));
    }
    // SAFETY: non-NULL, and the caller guarantees `len` readable elements living for 'a.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Checks that a required out-parameter is not NULL. The pointer is written (with
/// [`put`]) only once the call has succeeded.
pub(crate) fn arg_out<T>(p: *mut T, name: impl Display) -> Result<*mut T, Fail> {
    if p.is_null() {
        return Err(Fail::Invalid(format!("{name} is NULL")));
    }
    Ok(p)
}

/// An out-struct that starts with `size_t struct_size` (docs/versioning.md, "Structs
/// that grow"): the caller sets it to `sizeof` the struct as the caller was compiled.
pub(crate) trait StructSize {
    /// Sets the struct's `struct_size` field.
    fn set_struct_size(&mut self, n: usize);
}

/// A checked sized out-struct: where to write, and the caller's `struct_size`.
pub(crate) struct SizedOut<T> {
    p: *mut T,
    size: usize,
}

/// Checks a sized out-struct (see [`StructSize`]) that may be NULL: `None` for
/// NULL, else its `struct_size`, which must cover every field of this release
/// (a caller compiled against an older, shorter layout gets
/// `STATE_INVALID_ARGUMENT`, never a write past its struct).
///
/// # Safety
/// `p` is NULL or points to a `T` whose first field, `struct_size`, the caller set
/// (valid for a read of a `usize` at `p`).
pub(crate) unsafe fn arg_sized_out_opt<T: StructSize>(
    p: *mut T,
    name: impl Display,
) -> Result<Option<SizedOut<T>>, Fail> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; `T` is `#[repr(C)]` with `struct_size: usize` first (every
    // StructSize implementor), so the first usize of `*p` is that field, which the
    // caller set and which is aligned as `T` is.
    let size = unsafe { p.cast::<usize>().read() };
    let needed = std::mem::size_of::<T>();
    if size < needed {
        return Err(Fail::Invalid(format!(
            "{name}->struct_size is {size}, less than this library's {needed} bytes: \
             set it to sizeof the struct, from this library's state.h"
        )));
    }
    Ok(Some(SizedOut { p, size }))
}

/// [`arg_sized_out_opt`] for a required out-struct.
///
/// # Safety
/// As [`arg_sized_out_opt`].
pub(crate) unsafe fn arg_sized_out<T: StructSize>(
    p: *mut T,
    name: impl Display,
) -> Result<SizedOut<T>, Fail> {
    // SAFETY: the same contract.
    match unsafe { arg_sized_out_opt(p, &name) }? {
        Some(out) => Ok(out),
        None => Err(Fail::Invalid(format!("{name} is NULL"))),
    }
}

/// Writes a result through a checked sized out-struct, keeping the caller's
/// `struct_size` (the bytes past this release's fields are left alone).
///
/// # Safety
/// `out` came from [`arg_sized_out`] and the caller guarantees its pointer is
/// valid for a write of `struct_size` (at least `size_of::<T>()`) bytes.
pub(crate) unsafe fn put_sized<T: StructSize>(out: SizedOut<T>, mut value: T) {
    value.set_struct_size(out.size);
    // SAFETY: guaranteed by this function's contract.
    unsafe { out.p.write(value) }
}

/// Writes a result through a checked out-parameter.
///
/// # Safety
/// `p` came from [`arg_out`] (non-NULL) and the caller guarantees it is valid for a
/// write of `T`. The old contents are not dropped (they are caller memory).
pub(crate) unsafe fn put<T>(p: *mut T, value: T) {
    // SAFETY: guaranteed by this function's contract.
    unsafe { p.write(value) }
}

/// Writes through an optional out-parameter if it is not NULL.
///
/// # Safety
/// `p` is NULL or valid for a write of `T`.
pub(crate) unsafe fn put_opt<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: non-NULL, and valid for writes by this function's contract.
        unsafe { p.write(value) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn last_error() -> String {
        // SAFETY: last_error_ptr returns a valid NUL-terminated thread-local string.
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn panic_becomes_internal_status_with_message() {
        let status = run(|| panic!("boom in the core"));
        assert_eq!(status, state_status::STATE_INTERNAL);
        assert!(last_error().contains("libstate panicked (boom in the core)"));
        let status = run(|| std::panic::panic_any(42_u8));
        assert_eq!(status, state_status::STATE_INTERNAL);
        assert!(last_error().contains("unknown panic"));
    }

    #[test]
    fn panic_in_a_void_function_is_swallowed() {
        run_void(|| panic!("in a free function"));
        assert!(last_error().contains("in a free function"));
    }

    #[test]
    fn core_errors_map_by_kind_and_keep_their_message() {
        let status = run(|| Err(state_core::Error::TooLarge("batch of 9 bytes".into()).into()));
        assert_eq!(status, state_status::STATE_TOO_LARGE);
        assert_eq!(last_error(), "too large: batch of 9 bytes");
        let status = run(|| Err(state_core::Error::Closed.into()));
        assert_eq!(status, state_status::STATE_CLOSED);
    }

    #[test]
    fn success_and_not_found_leave_the_message_alone() {
        let _ = run(|| Err(Fail::Invalid("first".into())));
        assert_eq!(run(|| Ok(state_status::STATE_OK)), state_status::STATE_OK);
        assert_eq!(
            run(|| Ok(state_status::STATE_NOT_FOUND)),
            state_status::STATE_NOT_FOUND
        );
        assert_eq!(last_error(), "invalid argument: first");
    }

    #[test]
    fn interior_nul_in_a_message_is_escaped() {
        let _ = run(|| Err(Fail::Invalid("a\0b".into())));
        assert_eq!(last_error(), "invalid argument: a\\0b");
    }
}
