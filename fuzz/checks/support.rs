//! What the fuzz checks share: a memfile store in a temporary directory, with small
//! values so inputs stay cheap.

use state_core::{Engine, Store};

/// A fresh memfile store (the directory lives as long as the returned guard).
pub fn memfile_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .engine(Engine::Memfile)
        .max_value_size(1 << 16)
        .open(dir.path().join("s"))
        .unwrap();
    (dir, store)
}
