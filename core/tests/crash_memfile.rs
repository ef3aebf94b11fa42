//! SIGKILL crash tests for the memfile engine (harness: `support/crash.rs`).

mod support;

use support::crash as crash_support;

use state_core::Engine;

#[test]
fn memfile_sync_mode_keeps_every_acknowledged_write_across_sigkill() {
    if crash_support::child_main() {
        return;
    }
    crash_support::run_parent(
        Engine::Memfile,
        true,
        "memfile_sync_mode_keeps_every_acknowledged_write_across_sigkill",
        true,
    );
}

/// memfile hands every write to the OS before acknowledging it, so a process crash
/// (unlike a power loss) loses nothing even in periodic mode: checked here.
#[test]
fn memfile_periodic_mode_keeps_every_acknowledged_write_across_sigkill() {
    if crash_support::child_main() {
        return;
    }
    crash_support::run_parent(
        Engine::Memfile,
        false,
        "memfile_periodic_mode_keeps_every_acknowledged_write_across_sigkill",
        true,
    );
}
