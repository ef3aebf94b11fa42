//! Injected disk faults in the file calls libstate itself makes on a sled store
//! (through the test hook `SledConfig::with_file_io`): `fdatasync` of sled's log,
//! and the store's marker file. sled's own writes have no such seam (sled 0.34); a
//! real full disk under sled is `full_disk.rs`. A failed sync is an *I/O* error
//! naming the file, is never followed by a write reported durable before the store
//! is reopened, reads keep working, and the store reopens with what was
//! acknowledged.

mod support;

use support::fault;

use fault::{assert_io, get, model, os_text, set, Call, Fault, FaultIo, EIO, SLED};
use state_core::ErrorKind;

#[test]
fn a_failed_sync_of_sleds_log_fails_the_write_and_refuses_writes_until_reopen() {
    fault::failed_sync_refuses_writes_until_reopen(&fault::SLED, |store, _| {
        // Removing a bucket is a write too.
        let e = store.remove_bucket("b").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    });
}

#[test]
fn a_failed_flush_in_periodic_mode_is_not_retried_into_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::new();
    let store = SLED.open(&io, dir.path(), false);
    set(&store, "a", b"value a").unwrap();
    io.fail_next(Call::SyncData, "db", Fault::Fail(EIO));
    let e = store.flush().unwrap_err();
    assert_io(&e, "db", os_text(EIO));
    // A second flush would find the fault gone: it must not report success.
    let e = store.flush().unwrap_err();
    assert_io(&e, "db", "until it is reopened");
    let e = set(&store, "b", b"value b").unwrap_err();
    assert_io(&e, "db", "until it is reopened");
    assert_eq!(get(&store, "a").unwrap(), b"value a");
    let _ = store.close();
    // sled wrote "a" to its log before the failed sync: a process that did not
    // crash keeps it.
    assert_eq!(
        SLED.reopen_contents(dir.path()).unwrap(),
        model(&[("a", b"value a")])
    );
}

#[test]
fn a_failed_marker_write_fails_the_checkpoint_naming_the_marker() {
    fault::failed_marker_write_fails_only_that_checkpoint(&fault::SLED);
}
