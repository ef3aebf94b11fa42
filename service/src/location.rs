//! Where a store and its server's socket are found by default: one rule for the
//! `state` CLI, `state serve` and the libstate client (`state-client`).

use std::path::{Path, PathBuf};

/// The environment variable naming the store directory (the CLI's `--store`).
pub const STORE_ENV: &str = "STATE_STORE";
/// The store directory used when neither `--store` nor [`STORE_ENV`] names one,
/// relative to the current directory.
pub const DEFAULT_STORE_DIR: &str = "state-data";
/// The file name of `state serve`'s Unix socket inside the store directory.
pub const SOCKET_NAME: &str = "state.sock";

/// The default store directory: [`STORE_ENV`] if set and not empty, else
/// [`DEFAULT_STORE_DIR`] (relative to the current directory).
pub fn default_store_dir() -> PathBuf {
    match std::env::var_os(STORE_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_STORE_DIR),
    }
}

/// The socket `state serve` listens on by default for the store in `store_dir`.
pub fn socket_in(store_dir: &Path) -> PathBuf {
    store_dir.join(SOCKET_NAME)
}

/// The default store's socket: [`socket_in`] of [`default_store_dir`].
pub fn default_socket() -> PathBuf {
    socket_in(&default_store_dir())
}
