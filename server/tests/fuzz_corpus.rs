//! The server fuzz targets' corpora (fuzz/corpus/resp/, fuzz/corpus/http/) replayed
//! on stable.

use std::path::PathBuf;

#[path = "../../fuzz/checks/http.rs"]
mod http;
#[path = "../../fuzz/checks/resp.rs"]
mod resp;
#[path = "../../fuzz/checks/support.rs"]
mod support;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the {target} corpus is empty");
    for p in files {
        check(&std::fs::read(&p).unwrap());
    }
}

#[test]
fn resp_corpus() {
    replay("resp", resp::check);
}

#[test]
fn http_corpus() {
    replay("http", http::check);
}
