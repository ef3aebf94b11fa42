//! The test fixtures of `state-core`, one module shared by every test binary (each
//! declares `mod support;`, or `#[path = "../support/mod.rs"] mod support;` from a
//! directory of its own) and uses the parts it needs:
//!
//! - `arbitrary`: arbitrary JSON and a store's whole contents, for the bad-input
//!   property tests (also used by `service/tests/bad_input.rs`);
//! - `crash`: SIGKILL crash tests, a writer killed in a child process many times;
//! - `fault`: file I/O that injects faults (failed or short calls, ENOSPC, EIO) or
//!   records every call for power-loss images, for memfile and sled;
//! - `memfile`: memfile stores, churn until a snapshot, its files, a writer killed
//!   in a child process;
//! - `redis` (feature `redis`): real redis-server processes and clusters, and the
//!   Redis engine with a namespace per store directory.

#![allow(dead_code)]

pub mod arbitrary;
pub mod crash;
pub mod fault;
pub mod memfile;
#[cfg(feature = "redis")]
pub mod redis;

/// Whether the volume cases run at their full size: `LIBSTATE_TEST_SCALE=full`, as
/// `make soak` sets it. `make test` runs them at a tenth of it (and the Redis engines'
/// model check with fewer cases), which exercises the same code paths within CI's
/// time budget; the full size is for finding what only volume shows.
pub fn full_scale() -> bool {
    std::env::var("LIBSTATE_TEST_SCALE").is_ok_and(|v| v == "full")
}
