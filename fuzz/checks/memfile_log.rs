//! A memfile store whose log holds arbitrary bytes after its header opens or is
//! refused as corrupt, never a panic; what opens can be read whole.

use state_core::{Engine, ErrorKind, Store};

pub fn check(data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(&path)
        .unwrap();
    store.bucket("b").unwrap().set("k", b"v").unwrap();
    store.close().unwrap();
    let log = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log-"))
        })
        .expect("a memfile store has a log");
    let mut bytes = std::fs::read(&log).unwrap();
    // Keep the file header (the first 32 bytes or what there is) and replace the rest.
    bytes.truncate(32.min(bytes.len()));
    bytes.extend_from_slice(data);
    std::fs::write(&log, &bytes).unwrap();
    match Store::builder().engine(Engine::Memfile).open(&path) {
        Ok(store) => {
            for name in store.bucket_names().unwrap() {
                for entry in store.bucket(&name).unwrap().iter() {
                    if let Err(e) = entry {
                        assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
                    }
                }
            }
            let _ = store.close();
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::InvalidArgument),
            "{e}"
        ),
    }
}
