//! Version and last-error functions.

use std::ffi::{c_char, c_uint};

use crate::boundary::last_error_ptr;

/// libstate's version as a static NUL-terminated string, e.g. `"0.1.0"` (the same as
/// the `STATE_VERSION` macro of the header the program was compiled with, unless it
/// runs against a different library). Must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn state_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// libstate's version as `MAJOR * 1000000 + MINOR * 1000 + PATCH` (compare with the
/// `STATE_VERSION_NUMBER` macro to detect a header/library mismatch). Thread-safe.
#[no_mangle]
pub extern "C" fn state_version_number() -> c_uint {
    const fn parse(s: &str) -> u32 {
        let b = s.as_bytes();
        let mut i = 0;
        let mut n = 0u32;
        while i < b.len() {
            n = n * 10 + (b[i] - b'0') as u32;
            i += 1;
        }
        n
    }
    const N: u32 = parse(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + parse(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + parse(env!("CARGO_PKG_VERSION_PATCH"));
    N
}

/// The message of the last failed libstate call on the calling thread, naming the
/// offending key, bucket, path or argument (e.g. `"invalid argument: key must not be
/// empty"`). Never NULL; `""` if no call on this thread has failed yet.
///
/// The string belongs to libstate and stays valid until the next failing libstate call
/// on the same thread; copy it to keep it. Successful calls and `STATE_NOT_FOUND`
/// leave it unchanged. Thread-safe (each thread has its own message).
#[no_mangle]
pub extern "C" fn state_last_error_message() -> *const c_char {
    last_error_ptr()
}
