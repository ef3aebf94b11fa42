//! A crash during an append leaves a torn last record: it is dropped, the log is cut
//! back to the last good record, and the store opens with everything before it.

use crate::support::memfile as support;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use self::support::{child_hook, dir_contents, only_log, open, write_in_killed_child};

/// Writes a and b (closing the store: they are durable and checkpointed), then c in
/// a process that is killed (c is the log's last record, written after the last
/// checkpoint, as in a crash). Returns the log length after b and after c, with the
/// log cut back to end at c (a killed writer may leave a preallocated tail of zeros;
/// `a_killed_writer_leaves_a_zero_tail_that_reads_as_the_end` covers that layout).
fn three_records(test_name: &str, dir: &Path) -> (u64, u64) {
    let store = open(dir);
    let b = store.bucket("b").unwrap();
    b.set("a", b"value a").unwrap();
    b.set("b", b"value b").unwrap();
    store.close().unwrap();
    let after_b = std::fs::metadata(only_log(dir)).unwrap().len();
    write_in_killed_child(&format!("torn_tail::{test_name}"), dir, "b", "c", "value c");
    let log = only_log(dir);
    let after_c = records_end(&log);
    assert!(after_c > after_b);
    cut(&log, after_c);
    (after_b, after_c)
}

/// Where the log's records end: after its last non-zero byte (every record these
/// tests write ends with a value's last byte, which is not zero).
fn records_end(log: &Path) -> u64 {
    let bytes = std::fs::read(log).unwrap();
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1)
}

/// Opens, checks a and b survive and c is gone, the log was cut back to `good_len`,
/// and that writing after the repair works across a reopen.
fn check_recovered(dir: &Path, good_len: u64) {
    let store = open(dir);
    let b = store.bucket("b").unwrap();
    assert_eq!(b.get("a").unwrap().unwrap(), b"value a");
    assert_eq!(b.get("b").unwrap().unwrap(), b"value b");
    assert_eq!(b.get("c").unwrap(), None);
    assert_eq!(std::fs::metadata(only_log(dir)).unwrap().len(), good_len);
    b.set("d", b"value d").unwrap();
    store.close().unwrap();
    let store = open(dir);
    let b = store.bucket("b").unwrap();
    let keys: Vec<String> = b.iter().map(|e| e.unwrap().0).collect();
    assert_eq!(keys, ["a", "b", "d"]);
    store.close().unwrap();
}

fn cut(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn every_cut_inside_the_last_record_drops_only_that_record() {
    child_hook();
    let dir = tempfile::tempdir().unwrap();
    let (after_b, after_c) = three_records(
        "every_cut_inside_the_last_record_drops_only_that_record",
        dir.path(),
    );
    let log = only_log(dir.path());
    // The whole directory (log and the store's checkpoint marker), restored each time.
    let files = dir_contents(dir.path());
    for len in after_b + 1..after_c {
        for (path, bytes) in &files {
            std::fs::write(path, bytes).unwrap();
        }
        let full = std::fs::read(&log).unwrap();
        std::fs::write(&log, &full[..len as usize]).unwrap();
        check_recovered(dir.path(), after_b);
    }
}

#[test]
fn a_zero_filled_tail_is_dropped() {
    child_hook();
    let dir = tempfile::tempdir().unwrap();
    let (after_b, after_c) = three_records("a_zero_filled_tail_is_dropped", dir.path());
    let log = only_log(dir.path());
    // Power loss after the file grew but before c's data reached the disk.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.truncate(after_b as usize);
    bytes.resize(after_c as usize + 4096, 0);
    std::fs::write(&log, &bytes).unwrap();
    check_recovered(dir.path(), after_b);
}

#[test]
fn a_damaged_last_record_is_dropped() {
    child_hook();
    let dir = tempfile::tempdir().unwrap();
    let (after_b, after_c) = three_records("a_damaged_last_record_is_dropped", dir.path());
    let log = only_log(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[after_c as usize - 2] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    check_recovered(dir.path(), after_b);
}

#[test]
fn a_cut_at_a_record_boundary_loses_nothing_before_it() {
    child_hook();
    let dir = tempfile::tempdir().unwrap();
    let (after_b, _) = three_records(
        "a_cut_at_a_record_boundary_loses_nothing_before_it",
        dir.path(),
    );
    cut(&only_log(dir.path()), after_b);
    check_recovered(dir.path(), after_b);
}

#[test]
fn appending_garbage_bytes_after_the_last_record_is_a_torn_tail() {
    child_hook();
    let dir = tempfile::tempdir().unwrap();
    let (_, after_c) = three_records(
        "appending_garbage_bytes_after_the_last_record_is_a_torn_tail",
        dir.path(),
    );
    let log = only_log(dir.path());
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&[1, 2, 3]).unwrap();
    drop(f);
    let store = open(dir.path());
    assert_eq!(
        store.bucket("b").unwrap().get("c").unwrap().unwrap(),
        b"value c"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().len(), after_c);
}

#[test]
fn a_killed_writer_leaves_a_zero_tail_that_reads_as_the_end() {
    child_hook();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.bucket("b").unwrap().set("a", b"value a").unwrap();
    store.close().unwrap();
    write_in_killed_child(
        "torn_tail::a_killed_writer_leaves_a_zero_tail_that_reads_as_the_end",
        dir.path(),
        "b",
        "c",
        "value c",
    );
    let log = only_log(dir.path());
    let end = records_end(&log);
    let len = std::fs::metadata(&log).unwrap().len();
    if cfg!(target_os = "linux") {
        // The log is preallocated ahead of its records there (log::Appender).
        assert!(
            len > end,
            "expected a zero tail: {len} bytes, records end at {end}"
        );
    }
    let store = open(dir.path());
    let b = store.bucket("b").unwrap();
    assert_eq!(b.get("a").unwrap().unwrap(), b"value a");
    assert_eq!(b.get("c").unwrap().unwrap(), b"value c");
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        end,
        "the zeros are cut off"
    );
    b.set("d", b"value d").unwrap();
    store.close().unwrap();
    assert_eq!(
        records_end(&log),
        std::fs::metadata(&log).unwrap().len(),
        "close cuts the tail"
    );
    let store = open(dir.path());
    let keys: Vec<String> = store
        .bucket("b")
        .unwrap()
        .iter()
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(keys, ["a", "c", "d"]);
    store.close().unwrap();
}
