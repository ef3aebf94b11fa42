//! Injected disk faults in the file calls libstate itself makes on a sled store
//! (through the test hook `SledConfig::with_file_io`): `fdatasync` of sled's log,
//! and the store's marker file. sled's own writes have no such seam (sled 0.34); a
//! real full disk under sled is `full_disk.rs`. A failed sync is an *I/O* error
//! naming the file, is never followed by a write reported durable before the store
//! is reopened, reads keep working, and the store reopens with what was
//! acknowledged.

#[path = "fault_support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;

use state_core::{ErrorKind, Store};
use support::{
    assert_io, get, model, os_text, reopen_sled_contents, set, sled_builder, Call, Fault, FaultIo,
    EDQUOT, EIO, ENOSPC,
};

fn open_with(io: &Arc<FaultIo>, dir: &Path, sync: bool) -> Store {
    sled_builder(io.clone(), sync).open(dir).unwrap()
}

#[test]
fn a_failed_sync_of_sleds_log_fails_the_write_and_refuses_writes_until_reopen() {
    for errno in [ENOSPC, EIO, EDQUOT] {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultIo::new();
        let store = open_with(&io, dir.path(), true);
        set(&store, "a", b"value a").unwrap();
        io.fail_next(Call::SyncData, "db", Fault::Fail(errno));
        let e = set(&store, "b", b"value b").unwrap_err();
        assert_io(&e, "db", os_text(errno));
        assert!(!io.armed());
        // The fault is gone, but what the failed sync covered may be lost and a sync
        // that succeeds now would not prove otherwise: nothing is reported durable
        // again until the store is reopened.
        let e = set(&store, "c", b"value c").unwrap_err();
        assert_io(&e, "db", "until it is reopened");
        let e = store.flush().unwrap_err();
        assert_io(&e, "db", "until it is reopened");
        let e = store.remove_bucket("b").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        assert_eq!(get(&store, "a").unwrap(), b"value a", "reads go on");
        assert_eq!(get(&store, "c"), None);
        let _ = store.close();
        let after = reopen_sled_contents(dir.path()).unwrap();
        // "b" returned an error: it may or may not be there; "c" was refused.
        let without_b = model(&[("a", b"value a")]);
        let with_b = model(&[("a", b"value a"), ("b", b"value b")]);
        assert!(after == without_b || after == with_b, "{after:?}");
        // Reopened, the store writes and syncs again.
        let store = open_with(&io, dir.path(), true);
        set(&store, "d", b"value d").unwrap();
        store.close().unwrap();
        assert_eq!(
            reopen_sled_contents(dir.path()).unwrap()["b"]["d"],
            b"value d".to_vec()
        );
    }
}

#[test]
fn a_failed_flush_in_periodic_mode_is_not_retried_into_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::new();
    let store = open_with(&io, dir.path(), false);
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
        reopen_sled_contents(dir.path()).unwrap(),
        model(&[("a", b"value a")])
    );
}

#[test]
fn a_failed_marker_write_fails_the_checkpoint_naming_the_marker() {
    for call in [Call::Create, Call::Write, Call::SyncData, Call::Rename] {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultIo::new();
        let store = open_with(&io, dir.path(), false);
        set(&store, "a", b"value a").unwrap();
        // Closing checkpoints: the engine syncs, then the marker is rewritten.
        io.fail_next(call, "libstate.meta", Fault::Fail(ENOSPC));
        let e = store.close().unwrap_err();
        assert_io(&e, "libstate.meta", os_text(ENOSPC));
        // The engine's data is durable; the marker keeps its older generation, which
        // the engine's is not below, so the store opens with everything.
        let store = open_with(&io, dir.path(), false);
        set(&store, "b", b"value b").unwrap();
        store.close().unwrap();
        assert_eq!(
            reopen_sled_contents(dir.path()).unwrap(),
            model(&[("a", b"value a"), ("b", b"value b")]),
            "{call:?}"
        );
    }
}
