//! The memfile engine's files are private (0600), its directory refuses a second
//! process (see the conformance suite) and it will not open a sled store's directory.

use crate::support::memfile as support;

use self::support::{churn, open, wait_for_snapshot};
use state_core::{Engine, ErrorKind, Store};

#[cfg(unix)]
#[test]
fn every_file_is_0600_and_the_directory_0700() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("store");
    let store = open(&dir);
    churn(&store, "b");
    wait_for_snapshot(&dir, 2);
    store.close().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{p:?}");
        seen += 1;
    }
    assert!(seen >= 3, "expected lock, log and snapshot files");
}

#[test]
fn a_sled_directory_is_refused_not_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .engine(Engine::Sled)
        .open(dir.path())
        .unwrap();
    store.bucket("b").unwrap().set("k", b"v").unwrap();
    store.close().unwrap();
    let err = Store::builder()
        .engine(Engine::Memfile)
        .open(dir.path())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("sled"), "{err}");
}
