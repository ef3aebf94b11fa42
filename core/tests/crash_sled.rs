//! SIGKILL crash tests for the sled engine (harness: `support/crash.rs`).

mod support;

use support::crash as crash_support;

use state_core::Engine;

#[test]
fn sled_sync_mode_keeps_every_acknowledged_write_across_sigkill() {
    if crash_support::child_main() {
        return;
    }
    crash_support::run_parent(
        Engine::Sled,
        true,
        "sled_sync_mode_keeps_every_acknowledged_write_across_sigkill",
        false,
    );
}

#[test]
fn sled_periodic_mode_keeps_writes_flushed_before_sigkill() {
    if crash_support::child_main() {
        return;
    }
    crash_support::run_parent(
        Engine::Sled,
        false,
        "sled_periodic_mode_keeps_writes_flushed_before_sigkill",
        false,
    );
}
