//! The memfile engine's own tests, one binary with a module per concern: its files
//! and lock, torn tails, corrupt records and snapshots, random damage, compaction
//! (concurrent and reopened), injected disk faults (chosen and scheduled) and
//! power-loss images. Fixtures: the crate's `support` module (`support::memfile`:
//! stores, churn, files, a writer killed in a child process; `support::fault`: the
//! fault-injecting and recording file I/O, shared with the sled tests).

#[path = "../support/mod.rs"]
mod support;

mod compaction_concurrent_writes;
mod corrupt_middle_record;
mod corrupt_snapshot;
mod fault_schedule;
mod faults;
mod files_and_lock;
mod power_loss;
mod random_damage;
mod reopen_after_compaction;
mod torn_tail;
