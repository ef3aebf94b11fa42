//! `state_status`: the result of every fallible call, mapped from
//! [`state_core::ErrorKind`] in exactly one place ([`status_of`]).

use std::ffi::{c_char, c_int, CStr};

use state_core::ErrorKind;

/// The result of every fallible libstate call.
///
/// `STATE_OK` is 0, so `if (rc != STATE_OK)` tests for failure. `STATE_NOT_FOUND` is
/// not an error: it reports a missing key or a cursor that ran off an end, and it
/// leaves `state_last_error_message()` unchanged. Every other code is an error and
/// sets that message. Later versions may add codes: treat an unknown code as an error.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum state_status {
    /// Success.
    STATE_OK = 0,
    /// The key is missing (or expired), or the cursor ran off an end. Not an error.
    STATE_NOT_FOUND = 1,
    /// A caller error: a NULL pointer where one is required, a string that is not
    /// valid UTF-8, a handle that is not a libstate handle (or of the wrong type), or
    /// a key, bucket name, value, TTL or option that breaks a documented rule.
    /// Nothing was written. The message names the offending argument.
    STATE_INVALID_ARGUMENT = 2,
    /// Another process holds the store directory.
    STATE_LOCKED = 3,
    /// Stored data failed a check. libstate changed none of the store's files (with
    /// the sled engine, sled itself may have rewritten parts of them while opening;
    /// the message says so).
    STATE_CORRUPT = 4,
    /// The operating system reported an I/O error.
    STATE_IO = 5,
    /// A request exceeded a configured size limit (e.g. the batch size). Nothing was written.
    STATE_TOO_LARGE = 6,
    /// The handle was closed, or the store it came from was closed.
    STATE_CLOSED = 7,
    /// A bug in libstate (for example a caught panic). Please report it.
    STATE_INTERNAL = 8,
    /// A write through the state service would take the client over its quota
    /// (records, bytes or value size). Nothing was written.
    STATE_QUOTA_EXCEEDED = 9,
    /// A read-modify-write (a transaction, `state_delete`, `state_expire`, ...) on a
    /// store other processes write at the same time (a Redis URL) lost the race to
    /// their writes too many times in a row. Nothing was written; retry the call.
    STATE_CONFLICT = 10,
}

/// The one mapping from core error kinds to C status codes.
pub(crate) fn status_of(kind: ErrorKind) -> state_status {
    match kind {
        ErrorKind::InvalidArgument => state_status::STATE_INVALID_ARGUMENT,
        ErrorKind::Locked => state_status::STATE_LOCKED,
        ErrorKind::Corrupt => state_status::STATE_CORRUPT,
        ErrorKind::Io => state_status::STATE_IO,
        ErrorKind::TooLarge => state_status::STATE_TOO_LARGE,
        ErrorKind::Closed => state_status::STATE_CLOSED,
        ErrorKind::Conflict => state_status::STATE_CONFLICT,
        ErrorKind::Internal => state_status::STATE_INTERNAL,
        // ErrorKind is non_exhaustive: a kind added to the core without a C code of
        // its own is still an error, never a success.
        _ => state_status::STATE_INTERNAL,
    }
}

/// The one mapping from the service's error kinds to C status codes: the core's
/// kinds as [`status_of`], and the service's own.
pub(crate) fn status_of_service(kind: ::state_service::ErrorKind) -> state_status {
    match kind {
        ::state_service::ErrorKind::Store(k) => status_of(k),
        ::state_service::ErrorKind::QuotaExceeded => state_status::STATE_QUOTA_EXCEEDED,
        // ErrorKind is non_exhaustive: a kind added without a C code of its own is
        // still an error, never a success.
        _ => state_status::STATE_INTERNAL,
    }
}

/// A static, NUL-terminated name for a status code: `"ok"`, `"not found"`,
/// `"invalid argument"`, ... and `"unknown status"` for any other value.
///
/// Takes an `int` rather than `state_status` so that any value from C is safe to pass.
/// The string must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn state_status_str(status: c_int) -> *const c_char {
    let s: &'static CStr = match status {
        0 => c"ok",
        1 => c"not found",
        2 => c"invalid argument",
        3 => c"locked",
        4 => c"corrupt",
        5 => c"I/O",
        6 => c"too large",
        7 => c"closed",
        8 => c"internal",
        9 => c"quota exceeded",
        10 => c"conflict",
        _ => c"unknown status",
    };
    s.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind the core has (`ErrorKind::ALL`) has a code of its own, named as
    /// the kind is: only *internal* maps to `STATE_INTERNAL`.
    #[test]
    fn every_error_kind_has_its_own_code() {
        let mut seen = std::collections::HashSet::new();
        for &kind in ErrorKind::ALL {
            let status = status_of(kind);
            assert!(seen.insert(status), "{kind} shares {status:?}");
            assert_ne!(status, state_status::STATE_OK);
            assert_ne!(status, state_status::STATE_NOT_FOUND);
            assert_eq!(
                status == state_status::STATE_INTERNAL,
                kind == ErrorKind::Internal,
                "{kind}"
            );
            // SAFETY: state_status_str returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(state_status_str(status as c_int)) };
            assert_eq!(name.to_str().ok(), Some(kind.as_str()));
        }
    }

    #[test]
    fn the_services_quota_error_has_its_own_code() {
        let kind = ::state_service::ErrorKind::QuotaExceeded;
        assert_eq!(status_of_service(kind), state_status::STATE_QUOTA_EXCEEDED);
        // SAFETY: state_status_str returns a static NUL-terminated string.
        let name = unsafe {
            CStr::from_ptr(state_status_str(
                state_status::STATE_QUOTA_EXCEEDED as c_int,
            ))
        };
        assert_eq!(name.to_str().ok(), Some(kind.as_str()));
        assert_eq!(
            status_of_service(::state_service::ErrorKind::Store(ErrorKind::Closed)),
            state_status::STATE_CLOSED
        );
    }
}
