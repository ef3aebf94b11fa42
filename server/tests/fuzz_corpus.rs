//! The RESP fuzz target's corpus (fuzz/corpus/resp/) replayed on stable.

use std::path::PathBuf;

#[path = "../../fuzz/checks/resp.rs"]
mod resp;
#[path = "../../fuzz/checks/support.rs"]
mod support;

#[test]
fn resp_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/resp");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        resp::check(&data);
        n += 1;
    }
    assert!(n > 0, "the resp corpus is empty");
}
