//! `Bucket::get_multiple_sorted` and `ScanRange`, the batch reads bindings use.

use std::ops::Bound;

use state_core::{Engine, ScanRange, Store};

fn open(engine: Engine, dir: &std::path::Path) -> Store {
    Store::builder().engine(engine).open(dir).unwrap()
}

#[test]
fn get_multiple_sorted_gives_found_keys_in_key_order_each_once() {
    for engine in [Engine::Sled, Engine::Memfile] {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(engine, tmp.path());
        let b = store.bucket("b").unwrap();
        b.set_multiple([
            ("b", "2"),
            ("a", "1"),
            ("abcdefghij", "3"),
            ("abcdefghia", "4"),
        ])
        .unwrap();
        let keys = ["b", "missing", "abcdefghij", "a", "b", "abcdefghia"];
        let found = b.get_multiple_sorted(&keys).unwrap();
        let got: Vec<(&str, &[u8])> = found.iter().map(|(i, v)| (keys[i], v)).collect();
        assert_eq!(
            got,
            [
                ("a", &b"1"[..]),
                ("abcdefghia", b"4"),
                ("abcdefghij", b"3"),
                ("b", b"2")
            ],
            "{engine}"
        );
        assert_eq!(found.len(), 4);
        assert!(b.get_multiple_sorted(&["zz"]).unwrap().is_empty());
        assert!(b.get_multiple_sorted(&[""]).is_err());
        store.close().unwrap();
    }
}

#[test]
fn scan_range_resumes_after_the_last_key_of_each_batch_in_both_directions() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(Engine::Memfile, tmp.path());
    let b = store.bucket("b").unwrap();
    b.set_multiple((0..7).map(|i| (format!("k{i}"), "v")))
        .unwrap();
    for reverse in [false, true] {
        let mut range = ScanRange::new(Bound::Included("k1".into()), Bound::Unbounded, reverse);
        let mut batches = Vec::new();
        while !range.is_done() {
            let mut keys = Vec::new();
            range
                .next_batch(&b, 2, |k, _| keys.push(k.to_string()))
                .unwrap();
            batches.push(keys);
        }
        let mut expected: Vec<String> = (1..7).map(|i| format!("k{i}")).collect();
        if reverse {
            expected.reverse();
        }
        assert_eq!(batches.concat(), expected, "reverse={reverse}");
        // 6 keys in batches of 2: the fourth batch finds the end.
        assert_eq!(batches.len(), 4);
        assert_eq!(range.next_batch(&b, 2, |_, _| {}).unwrap(), 0);
    }
}

#[test]
fn scan_range_sees_a_key_written_ahead_of_it_between_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(Engine::Sled, tmp.path());
    let b = store.bucket("b").unwrap();
    b.set_multiple([("a", "1"), ("c", "3")]).unwrap();
    let mut range = ScanRange::new(Bound::Unbounded, Bound::Unbounded, false);
    let mut seen = Vec::new();
    range
        .next_batch(&b, 1, |k, _| seen.push(k.to_string()))
        .unwrap();
    b.set("b", "2").unwrap();
    b.set("0", "early").unwrap();
    while !range.is_done() {
        range
            .next_batch(&b, 1, |k, _| seen.push(k.to_string()))
            .unwrap();
    }
    assert_eq!(seen, ["a", "b", "c"]);
    store.close().unwrap();
}
