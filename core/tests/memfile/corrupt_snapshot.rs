//! A snapshot is only ever renamed into place complete, so any defect in one is
//! damage: *corrupt* naming the snapshot file, files untouched, never an empty store.

use crate::support::memfile as support;

use std::path::{Path, PathBuf};

use self::support::{churn, dir_contents, files, open, wait_for_snapshot};
use state_core::{Engine, ErrorKind, Store};

/// A closed store whose state lives in a snapshot (after one compaction).
fn compacted_store(dir: &Path) -> PathBuf {
    let store = open(dir);
    let b = store.bucket("data").unwrap();
    for i in 0..500 {
        b.set(&format!("k{i:04}"), format!("SNAPVALUE-{i}"))
            .unwrap();
    }
    churn(&store, "churn");
    wait_for_snapshot(dir, 2);
    store.close().unwrap();
    let snaps = files(dir, "snapshot-");
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    snaps[0].clone()
}

fn assert_corrupt_naming(dir: &Path, file: &Path) {
    let before = dir_contents(dir);
    let err = Store::builder()
        .engine(Engine::Memfile)
        .open(dir)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(err.to_string().contains(name), "{err}");
    assert_eq!(dir_contents(dir), before, "a failed open changed the files");
}

#[test]
fn a_flipped_byte_in_the_snapshot_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let snap = compacted_store(dir.path());
    let mut bytes = std::fs::read(&snap).unwrap();
    let at = bytes
        .windows(12)
        .position(|w| w == b"SNAPVALUE-25")
        .unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&snap, &bytes).unwrap();
    assert_corrupt_naming(dir.path(), &snap);
}

#[test]
fn a_truncated_snapshot_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let snap = compacted_store(dir.path());
    let bytes = std::fs::read(&snap).unwrap();
    for cut in [bytes.len() - 1, bytes.len() / 2, 40, 10] {
        std::fs::write(&snap, &bytes[..cut]).unwrap();
        assert_corrupt_naming(dir.path(), &snap);
    }
}

#[test]
fn a_damaged_snapshot_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let snap = compacted_store(dir.path());
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[14] ^= 0x01; // inside the generation number
    std::fs::write(&snap, &bytes).unwrap();
    assert_corrupt_naming(dir.path(), &snap);
}

#[test]
fn a_missing_log_after_the_snapshot_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    compacted_store(dir.path());
    let logs = files(dir.path(), "log-");
    assert_eq!(logs.len(), 1, "{logs:?}");
    std::fs::remove_file(&logs[0]).unwrap();
    assert_corrupt_naming(dir.path(), &logs[0]);
}

#[test]
fn the_intact_snapshot_opens_with_all_data() {
    let dir = tempfile::tempdir().unwrap();
    compacted_store(dir.path());
    let store = open(dir.path());
    let b = store.bucket("data").unwrap();
    assert_eq!(b.len().unwrap(), 500);
    assert_eq!(b.get("k0025").unwrap().unwrap(), b"SNAPVALUE-25");
}
