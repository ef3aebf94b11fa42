//! The fuzz targets' corpora (fuzz/corpus/) replayed on stable: every input that
//! libFuzzer kept (and every crash it found, once fixed) stays a regression test.

use std::path::PathBuf;

#[path = "../../fuzz/checks/import.rs"]
mod import;
#[path = "../../fuzz/checks/memfile_log.rs"]
mod memfile_log;
#[path = "../../fuzz/checks/memfile_snapshot.rs"]
mod memfile_snapshot;
#[path = "../../fuzz/checks/support.rs"]
mod support;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus of {target} is empty");
    files
}

#[test]
fn import_corpus() {
    for (_, data) in corpus("import") {
        import::check(&data);
    }
}

#[test]
fn memfile_log_corpus() {
    for (_, data) in corpus("memfile_log") {
        memfile_log::check(&data);
    }
}

#[test]
fn memfile_snapshot_corpus() {
    for (_, data) in corpus("memfile_snapshot") {
        memfile_snapshot::check(&data);
    }
}
