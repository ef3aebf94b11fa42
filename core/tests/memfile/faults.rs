//! Injected disk faults in the memfile engine's file calls (through the test hook
//! `MemfileConfig::with_file_io`): each failing call is an *I/O* error naming the
//! file and the OS error, nothing acknowledged is lost, reads keep working, a failed
//! sync is never followed by a write reported durable before the store is reopened,
//! and after the fault clears the store reopens with what was acknowledged.

use crate::support::fault as support;

use std::path::Path;
use std::sync::Arc;

use self::support::{
    assert_io, builder, contents, get, model, os_text, reopen_contents, set, Call, Fault, FaultIo,
    Model, EDQUOT, EIO, ENOSPC,
};
use state_core::Store;

fn open_with(io: &Arc<FaultIo>, dir: &Path, sync: bool) -> Store {
    builder(io.clone(), sync).open(dir).unwrap()
}

#[test]
fn a_failed_or_short_append_is_an_io_error_naming_the_log_and_loses_nothing() {
    for errno in [ENOSPC, EIO, EDQUOT] {
        for fault in [Fault::Fail(errno), Fault::Short(errno)] {
            let dir = tempfile::tempdir().unwrap();
            let io = FaultIo::new();
            io.without_map();
            let store = open_with(&io, dir.path(), true);
            set(&store, "a", b"value a").unwrap();
            io.fail_next(Call::Write, "log-", fault);
            let e = set(&store, "c", &[7u8; 300]).unwrap_err();
            assert_io(&e, "log-", os_text(errno));
            assert!(!io.armed(), "the fault was injected");
            // Reads go on; the failed write changed nothing in memory.
            assert_eq!(get(&store, "a").unwrap(), b"value a");
            assert_eq!(get(&store, "c"), None);
            // The failed record was cut off: later writes land after "a".
            set(&store, "d", b"value d").unwrap();
            store.close().unwrap();
            assert_eq!(
                reopen_contents(dir.path()).unwrap(),
                model(&[("a", b"value a"), ("d", b"value d")]),
                "{fault:?}"
            );
        }
    }
}

#[test]
fn a_failed_append_that_cannot_be_cut_back_refuses_writes_until_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::new();
    io.without_map();
    let store = open_with(&io, dir.path(), true);
    set(&store, "a", b"value a").unwrap();
    io.fail_next(Call::Write, "log-", Fault::Short(EIO));
    io.fail_next(Call::SetLen, "log-", Fault::Fail(EIO));
    let e = set(&store, "c", &[7u8; 300]).unwrap_err();
    assert_io(&e, "log-", os_text(EIO));
    let e = set(&store, "d", b"value d").unwrap_err();
    assert_io(&e, "log-", "until it is reopened");
    assert!(e.to_string().contains("could not be undone"), "{e}");
    assert_eq!(get(&store, "a").unwrap(), b"value a", "reads go on");
    let _ = store.close();
    // The half-written record is a torn tail: dropped at the next open.
    assert_eq!(
        reopen_contents(dir.path()).unwrap(),
        model(&[("a", b"value a")])
    );
}

#[test]
fn a_failed_sync_fails_the_write_and_poisons_the_writer_until_reopen() {
    support::failed_sync_refuses_writes_until_reopen(&support::MEMFILE, |_, e| {
        assert!(e.to_string().contains("a sync of the log failed"), "{e}");
    });
}

#[test]
fn a_failed_flush_in_periodic_mode_is_not_retried_into_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::new();
    let store = open_with(&io, dir.path(), false);
    set(&store, "a", b"value a").unwrap();
    set(&store, "b", b"value b").unwrap();
    io.fail_next(Call::SyncData, "log-", Fault::Fail(EIO));
    let e = store.flush().unwrap_err();
    assert_io(&e, "log-", os_text(EIO));
    // A second flush would fsync successfully, and must not be believed.
    let e = store.flush().unwrap_err();
    assert_io(&e, "log-", "until it is reopened");
    let e = set(&store, "c", b"value c").unwrap_err();
    assert_io(&e, "log-", "until it is reopened");
    assert_eq!(get(&store, "b").unwrap(), b"value b", "reads go on");
    let _ = store.close();
    // Acknowledged (returned Ok) before the fault: still there after reopening.
    assert_eq!(
        reopen_contents(dir.path()).unwrap(),
        model(&[("a", b"value a"), ("b", b"value b")])
    );
}

#[test]
fn a_full_disk_at_preallocation_fails_the_write_and_other_fallocate_errors_fall_back() {
    let probe = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(probe.path().join("x")).unwrap();
    if !state_core::fileio::FileIo::may_map(&state_core::fileio::Real, &f, probe.path()) {
        eprintln!("this file system does not use the mapped log; nothing to test");
        return;
    }
    for (errno, fails) in [(ENOSPC, true), (EDQUOT, true), (EIO, false)] {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultIo::new();
        let store = open_with(&io, dir.path(), false);
        // Preallocation happens per 1 MiB chunk: write until the next one is needed.
        io.fail_next(Call::Fallocate, "log-", Fault::Fail(errno));
        let value = vec![1u8; 50_000];
        let mut acked = Model::new();
        let mut failed = 0;
        for i in 0..40 {
            let key = format!("k{i:02}");
            match set(&store, &key, &value) {
                Ok(()) => {
                    acked
                        .entry("b".into())
                        .or_default()
                        .insert(key, value.clone());
                }
                Err(e) => {
                    assert_io(&e, "log-", os_text(errno));
                    failed += 1;
                }
            }
        }
        assert!(!io.armed(), "a chunk was preallocated");
        assert_eq!(failed, usize::from(fails), "{errno}");
        assert_eq!(contents(&store), acked, "reads go on");
        store.close().unwrap();
        assert_eq!(reopen_contents(dir.path()).unwrap(), acked);
    }
}

#[test]
fn a_failed_mapping_falls_back_to_pwrite() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::new();
    io.fail(Call::Map, "log-", 0, u64::MAX, Fault::Fail(ENOSPC));
    let store = open_with(&io, dir.path(), false);
    for i in 0..50 {
        set(&store, &format!("k{i}"), b"v").unwrap();
    }
    store.close().unwrap();
    let probe = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(probe.path().join("x")).unwrap();
    let maps = state_core::fileio::FileIo::may_map(&state_core::fileio::Real, &f, probe.path());
    // Mapped at most once: after a failure the log never tries again.
    assert_eq!(io.injected(), u64::from(maps));
    assert_eq!(reopen_contents(dir.path()).unwrap()["b"].len(), 50);
}

#[test]
fn failures_during_compaction_fail_it_and_writes_go_on() {
    for (call, name) in [
        (Call::Create, "log-"),
        (Call::SyncAll, "log-"),
        (Call::Rename, "log-"),
        (Call::Write, "snapshot-"),
        (Call::SyncAll, "snapshot-"),
        (Call::Rename, "snapshot-"),
        (Call::SyncDir, ""),
        (Call::Remove, "log-"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultIo::new();
        let store = open_with(&io, dir.path(), true);
        set(&store, "a", b"value a").unwrap();
        set(&store, "a", b"value a2").unwrap();
        io.fail_next(call, name, Fault::Fail(EIO));
        let e = store.compact().unwrap_err();
        assert!(!io.armed(), "{call:?} {name}");
        let file = if name.is_empty() {
            dir.path().file_name().unwrap().to_str().unwrap()
        } else {
            name
        };
        assert_io(&e, file, os_text(EIO));
        set(&store, "b", b"value b").unwrap();
        assert_eq!(get(&store, "a").unwrap(), b"value a2");
        // The next compaction, without a fault, goes through.
        store.compact().unwrap();
        set(&store, "c", b"value c").unwrap();
        store.close().unwrap();
        assert_eq!(
            reopen_contents(dir.path()).unwrap(),
            model(&[("a", b"value a2"), ("b", b"value b"), ("c", b"value c")]),
            "{call:?} {name}"
        );
    }
}

#[test]
fn a_log_that_cannot_be_opened_fails_the_open_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::new();
    let store = open_with(&io, dir.path(), false);
    set(&store, "a", b"value a").unwrap();
    store.close().unwrap();
    io.fail_next(Call::Open, "log-", Fault::Fail(EIO));
    let e = builder(io.clone(), false).open(dir.path()).unwrap_err();
    assert_io(&e, "log-", os_text(EIO));
    assert_eq!(
        reopen_contents(dir.path()).unwrap(),
        model(&[("a", b"value a")])
    );
}

#[test]
fn a_failed_marker_write_fails_the_checkpoint_naming_the_marker() {
    support::failed_marker_write_fails_only_that_checkpoint(&support::MEMFILE);
}
