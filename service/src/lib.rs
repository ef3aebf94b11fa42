//! # state-service: libstate's per-client state service
//!
//! The tier between the store (`state-core`) and its front ends (`state serve`,
//! the C ABI, the Python module): [`StateService`] gives each client exactly one
//! bucket, named by its authenticated id, with
//!
//! - quotas (records, bytes, value size) read from a [`QuotaSource`] the host
//!   provides (`state serve`'s client list; [`QuotaTable`] for code), refused with
//!   [`Error::QuotaExceeded`] and nothing written;
//! - server-side cursors, owned by the client that opened them, dropped when idle;
//! - the original HiveOT state service's JSON messages ([`StateService::handle`],
//!   the methods of [`METHODS`], docs/service.md).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use std::sync::Arc;
//! use state_service::{Quota, QuotaTable, StateService};
//!
//! let quotas = Arc::new(QuotaTable::new());
//! quotas.set("dashboard", Quota { max_records: Some(1), ..Quota::default() });
//! let store = state_core::Store::open(dir.path().join("state-data"))?;
//! let svc = StateService::new(store).with_quotas(quotas);
//! svc.handle("dashboard", "set", r#"{"key":"a","value":"MQ=="}"#)?;
//! let over = svc.handle("dashboard", "set", r#"{"key":"b","value":"Mg=="}"#);
//! assert_eq!(over.unwrap_err().kind(), state_service::ErrorKind::QuotaExceeded);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]

mod clients;
mod error;
mod location;
mod methods;
mod quota;
mod service;

use std::time::Duration;

pub use error::{Error, ErrorKind, Result};
pub use location::{
    default_socket, default_store_dir, socket_in, DEFAULT_STORE_DIR, SOCKET_NAME, STORE_ENV,
};
pub use methods::{markdown_table, method_named, Method, MAX_CURSOR_N, METHODS};
pub use quota::{Quota, QuotaSource, QuotaTable, Unlimited};
pub use service::StateService;

/// How long an unused server-side cursor lives by default.
pub const DEFAULT_CURSOR_LIFESPAN: Duration = Duration::from_secs(60);
/// How many server-side cursors one client may hold by default.
pub const DEFAULT_MAX_CURSORS: usize = 100;
