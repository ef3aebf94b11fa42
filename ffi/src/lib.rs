//! # state-ffi: the C ABI of libstate
//!
//! Builds `libstate.so` / `libstate.a`; the header `include/state.h` is generated from
//! this crate by cbindgen (`make header`) and checked by `tests/header.rs`.
//!
//! This crate only translates: every export passes through [`boundary::run`] (NULL and
//! UTF-8 checks, `catch_unwind`, error mapping from [`state_core::ErrorKind`], the
//! thread-local last-error message), handles are registry tokens ([`handles`]) so that
//! closed handles are detected rather than dereferenced, and results are
//! library-allocated buffers freed by the matching `state_*_free`. Behaviour lives in
//! `state-core` (embedded buckets) and `state-client` (buckets of a `state serve`,
//! from `state_connect`).

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Every export takes C pointers, so unsafe code is allowed crate-wide here (the
// workspace denies it); each unsafe operation is still its own block with a SAFETY
// comment (`unsafe_op_in_unsafe_fn`, `clippy::undocumented_unsafe_blocks`).
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![allow(non_camel_case_types)]

mod any;
mod boundary;
mod bucket;
mod buffers;
mod cursor;
mod handles;
mod maintenance;
mod remote;
mod service;
mod sigpipe;
mod status;
mod store;
mod ttl;
mod version;
mod watch;

pub use bucket::{
    state_bucket_close, state_bucket_open, state_delete, state_get, state_get_multiple,
    state_get_with, state_kv, state_set, state_set_multiple, state_value_fn,
};
pub use buffers::{
    state_entries, state_entries_free, state_entry, state_entry_free, state_free, state_strings,
    state_strings_free,
};
pub use cursor::{
    state_cursor_close, state_cursor_first, state_cursor_last, state_cursor_next,
    state_cursor_next_n, state_cursor_open, state_cursor_prev, state_cursor_prev_n,
    state_cursor_seek,
};
pub use handles::{state_bucket, state_cursor, state_service, state_store};
pub use maintenance::{
    state_backup, state_backup_report, state_check, state_check_report, state_check_report_free,
    state_compact, state_compact_report, state_export, state_import, state_progress_fn,
    STATE_FORMAT_JSON, STATE_FORMAT_JSON_LINES,
};
pub use remote::{state_connect, state_connect_options, state_connect_options_init};
pub use service::{state_service_close, state_service_handle, state_service_open};
pub use status::{state_status, state_status_str};
pub use store::{
    state_bucket_names, state_bucket_remove, state_close, state_flush, state_info, state_info_free,
    state_open, state_options, state_options_init, state_store_info,
};
pub use ttl::{
    state_expire, state_persist, state_set_multiple_with_ttl, state_set_with_ttl, state_ttl,
    STATE_NO_EXPIRY,
};
pub use version::{state_last_error_message, state_version, state_version_number};
pub use watch::{
    state_event, state_unwatch, state_watch, state_watch_fn, state_watcher, STATE_EVENT_DELETE,
    STATE_EVENT_EXPIRE, STATE_EVENT_EXPIRED, STATE_EVENT_LAGGED, STATE_EVENT_PERSIST,
    STATE_EVENT_SET,
};
