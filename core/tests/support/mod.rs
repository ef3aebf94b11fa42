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
