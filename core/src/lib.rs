//! # state-core: the libstate store
//!
//! An embeddable key-value **state store**: a directory holds named [`Bucket`]s
//! (one per user, device or service), each an ordered map from string keys to byte
//! values, with atomic batches, [`Cursor`]s and JSON helpers. The per-client
//! state service (quotas, server-side cursors, the HiveOT state service's RPC
//! messages) is the `state-service` crate, built on this one.
//!
//! ```
//! # fn main() -> state_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! use state_core::Store;
//!
//! let store = Store::open(dir.path().join("state-data"))?;
//! let b = store.bucket("user1")?;
//! b.set("layout", br#"{"cols":3}"#)?;
//! assert_eq!(b.get("layout")?.as_deref(), Some(&br#"{"cols":3}"#[..]));
//! b.set_multiple([("a", b"1"), ("b", b"2")])?;
//! let mut c = b.cursor()?;
//! assert_eq!(c.seek("a")?.map(|(k, _)| k).as_deref(), Some("a"));
//! store.close()?;
//! # Ok(()) }
//! ```
//!
//! Guarantees (docs/guarantees.md has them in full): keys 1..=1024 bytes of UTF-8, bucket names 1..=255
//! bytes without control characters, values up to 16 MiB by default; writes are
//! durable within the flush interval (default 500 ms) or at once in sync mode; one
//! process owns a store directory at a time.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
// `unsafe` is allowed item by item, each with its SAFETY comment: `record::key_str`,
// and in the memfile engine the in-place entry (`state::Entry`: its construction, reads,
// `overwrite_value`, `Send`/`Sync`, `prefetch`; the in-place puts that call it,
// `state::overwrite_in_index` from `BucketMap::put_encoded` and, while loading,
// `LoadingBucket::put_encoded`) and the mapped log window (`log::mmap`).
#![deny(unsafe_code)]

mod backup;
mod batch_reads;
mod bucket;
mod checkpoint;
mod clock;
mod commit;
mod cursor;
pub mod engine;
mod error;
mod expiry;
#[doc(hidden)]
pub mod fileio;
mod fs;
pub mod go_bytes;
mod iter;
mod lend;
pub mod limits;
mod maintenance;
mod probe;
mod record;
mod store;
mod transfer;
mod txn;
mod update;
mod watch;

/// The memfile snapshot format reached without a store, for the fuzz targets (fuzz/)
/// and their corpus replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::engine::memfile::fuzzing::{
        read_snapshot, snapshot_file, write_snapshot, Snapshot,
    };
}

pub use backup::BackupReport;
pub use batch_reads::{FoundValues, ScanRange};
pub use bucket::{prefix_bounds, Bucket, Entry};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cursor::{Cursor, Position};
pub use engine::{Engine, EngineConfig, RedisConfig, DEFAULT_CACHE_SIZE};
pub use error::{Error, ErrorKind, Result};
pub use expiry::{deadline, ttl_from_millis, ttl_from_secs_f64, Ttl};
pub use iter::Iter;
pub use maintenance::{BucketCheck, CheckReport, CompactReport, RecordProblem};
pub use store::{
    Store, StoreBuilder, StoreCounts, StoreInfo, DEFAULT_FLUSH_INTERVAL, DEFAULT_SWEEP_INTERVAL,
};
pub use transfer::{
    encode_value, ExportProgress, ExportReport, Format, ImportProgress, ImportReport,
};
pub use txn::{Expiry, Record, Txn, Usage, UsageDelta};
pub use update::Update;
pub use watch::{
    Event, EventKind, KeyWatch, Notice, RecvError, WatchOptions, Watcher, DEFAULT_WATCH_CAPACITY,
    DEFAULT_WATCH_MAX_BYTES,
};
