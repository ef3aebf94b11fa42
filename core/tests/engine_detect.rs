//! `Engine::detect`: telling which engine made a store, from its marker file.

use state_core::{Engine, ErrorKind, Store};

#[test]
fn detect_names_the_engine_each_store_was_created_with() {
    for engine in [Engine::Sled, Engine::Memfile] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let store = Store::builder().engine(engine).open(&path).unwrap();
        store.bucket("b").unwrap().set("k", b"v").unwrap();
        store.close().unwrap();
        assert_eq!(Engine::detect(&path).unwrap(), Some(engine));
    }
}

#[test]
fn detect_gives_none_for_a_missing_or_empty_directory_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Engine::detect(dir.path().join("missing")).unwrap(), None);
    assert_eq!(Engine::detect(dir.path()).unwrap(), None);
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert_eq!(Engine::detect(&file).unwrap(), None);
}

#[test]
fn detect_reports_an_unreadable_marker_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libstate.meta"), b"{oops").unwrap();
    let err = Engine::detect(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    std::fs::write(
        dir.path().join("libstate.meta"),
        br#"{"format":1,"engine":"lmdb","generation":0}"#,
    )
    .unwrap();
    let err = Engine::detect(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("lmdb"), "{err}");
}

/// The Redis engine chosen by name has no server: the store's path must be the
/// URL. A directory is refused with the builder's one message, before anything is
/// created (it once silently made a sled store there).
#[test]
fn the_redis_engine_by_name_needs_a_url_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("not-a-url");
    let e = Store::builder()
        .engine(Engine::Redis)
        .open(&dir)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(
        e.to_string()
            .contains("engine \"redis\" needs the server's URL as the store path"),
        "{e}"
    );
    assert!(!dir.exists());
}
