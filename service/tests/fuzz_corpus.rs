//! The `service` fuzz target's corpus (fuzz/corpus/service) replayed on stable:
//! every input libFuzzer kept stays a regression test.

use std::path::PathBuf;

#[path = "../../fuzz/checks/service.rs"]
mod service;
#[path = "../../fuzz/checks/support.rs"]
mod support;

#[test]
fn service_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/service");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of service is empty");
    for p in files {
        service::check(&std::fs::read(&p).unwrap());
    }
}
