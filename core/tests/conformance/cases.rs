//! The conformance cases. Each takes the engine under test.

/// This file, so the suite can check that every case written here is listed.
pub const SOURCE: &str = include_str!("cases.rs");

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;

use state_core::{EngineConfig, ErrorKind, Position, Store};
use tempfile::TempDir;

fn tmp() -> TempDir {
    tempfile::tempdir().unwrap()
}

fn open(engine: &EngineConfig, dir: &Path) -> Store {
    Store::builder().engine(engine).open(dir).unwrap()
}

fn open_sync(engine: &EngineConfig, dir: &Path) -> Store {
    Store::builder()
        .engine(engine)
        .sync(true)
        .open(dir)
        .unwrap()
}

fn keys_of(entries: &[(String, Vec<u8>)]) -> Vec<&str> {
    entries.iter().map(|(k, _)| k.as_str()).collect()
}

/// A bucket holding k000, k002, ..., k398 (even numbers: gaps for seek tests).
fn fill_even(store: &Store, bucket: &str, n: usize) {
    let b = store.bucket(bucket).unwrap();
    b.set_multiple((0..n).map(|i| (format!("k{:03}", i * 2), format!("v{}", i * 2))))
        .unwrap();
}

pub fn write_read_close_reopen(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("user1").unwrap();
    b.set("layout", br#"{"cols":3}"#).unwrap();
    b.set("empty", b"").unwrap();
    assert_eq!(b.get("layout").unwrap().unwrap(), br#"{"cols":3}"#);
    store.close().unwrap();

    let store = open(engine, dir.path());
    let b = store.bucket("user1").unwrap();
    assert_eq!(b.get("layout").unwrap().unwrap(), br#"{"cols":3}"#);
    assert_eq!(b.get("empty").unwrap().unwrap(), b"");
    assert_eq!(b.get("missing").unwrap(), None);
    store.close().unwrap();
}

pub fn delete_missing_key_succeeds_and_reports_absent(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    assert!(!b.delete("nope").unwrap());
    assert_eq!(b.len().unwrap(), 0);
}

pub fn delete_existing_key_reports_it_existed(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set("k", b"v").unwrap();
    assert!(b.delete("k").unwrap());
    assert_eq!(b.get("k").unwrap(), None);
    assert!(!b.delete("k").unwrap());
}

pub fn empty_key_is_rejected_and_nothing_written(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    assert_eq!(
        b.set("", b"v").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(b.get("").unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(b.delete("").unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        b.cursor().unwrap().seek("").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(b.len().unwrap(), 0);
    assert!(store.bucket_names().unwrap().is_empty());
}

pub fn oversized_key_is_rejected(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let max = "k".repeat(state_core::limits::MAX_KEY_LEN);
    b.set(&max, b"v").unwrap();
    let over = "k".repeat(state_core::limits::MAX_KEY_LEN + 1);
    let err = b.set(&over, b"v").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("1025 bytes"), "{err}");
    assert_eq!(b.len().unwrap(), 1);
}

pub fn oversized_value_is_rejected_and_nothing_written(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let big = vec![7u8; state_core::limits::DEFAULT_MAX_VALUE_SIZE + 1];
    let err = b.set("big", &big).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.to_string().contains("\"big\""),
        "message names the key: {err}"
    );
    assert_eq!(b.get("big").unwrap(), None);
    let exact = vec![7u8; state_core::limits::DEFAULT_MAX_VALUE_SIZE];
    b.set("exact", &exact).unwrap();
    assert_eq!(b.get("exact").unwrap().unwrap().len(), exact.len());
}

pub fn configured_value_limit_is_enforced(engine: &EngineConfig) {
    let dir = tmp();
    let store = Store::builder()
        .engine(engine)
        .max_value_size(8)
        .open(dir.path())
        .unwrap();
    let b = store.bucket("b").unwrap();
    b.set("ok", [0u8; 8]).unwrap();
    assert_eq!(
        b.set("no", [0u8; 9]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        b.set_multiple([("a", &[0u8; 1][..]), ("b", &[0u8; 9][..])])
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(b.get("a").unwrap(), None);
    let err = Store::builder()
        .engine(engine)
        .max_value_size(0)
        .open(tmp().path())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

pub fn bad_bucket_names_are_rejected(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    for bad in ["", "a\0b", "tab\there", "nl\n", &"b".repeat(256)] {
        let err = store.bucket(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
    store
        .bucket(&"b".repeat(255))
        .unwrap()
        .set("k", b"v")
        .unwrap();
    store
        .bucket("ünïcødé / and spaces")
        .unwrap()
        .set("k", b"v")
        .unwrap();
    assert_eq!(store.bucket_names().unwrap().len(), 2);
}

pub fn seek_to_existing_key_returns_that_key(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 200);
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    let (k, v) = c.seek("k100").unwrap().unwrap();
    assert_eq!((k.as_str(), v.as_slice()), ("k100", &b"v100"[..]));
    assert_eq!(c.key(), Some("k100"));
}

pub fn seek_between_keys_returns_the_next(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 200);
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    assert_eq!(c.seek("k101").unwrap().unwrap().0, "k102");
    assert_eq!(c.seek("a").unwrap().unwrap().0, "k000");
    assert_eq!(c.next().unwrap().unwrap().0, "k002");
}

pub fn seek_past_the_end_returns_none_then_prev_gives_last(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 200);
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    assert_eq!(c.seek("z").unwrap(), None);
    assert_eq!(c.position(), &Position::AfterLast);
    assert_eq!(c.prev().unwrap().unwrap().0, "k398");
}

pub fn walk_200_forward_then_back_arrives_at_same_key(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 500);
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    let start = c.seek("k100").unwrap().unwrap().0;
    for _ in 0..200 {
        c.next().unwrap().unwrap();
    }
    assert_eq!(c.key(), Some("k500"));
    for _ in 0..200 {
        c.prev().unwrap().unwrap();
    }
    assert_eq!(c.key(), Some(start.as_str()));
}

pub fn next_n_and_prev_n_counts_and_end_of_range(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 10); // k000..k018
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    let got = c.next_n(4).unwrap();
    assert_eq!(keys_of(&got), ["k000", "k002", "k004", "k006"]);
    assert_eq!(c.key(), Some("k006"));
    let got = c.prev_n(2).unwrap();
    assert_eq!(
        keys_of(&got),
        ["k004", "k002"],
        "ordered in the direction of travel"
    );
    let got = c.next_n(100).unwrap();
    assert_eq!(got.len(), 8, "fewer than asked: the end was reached");
    assert_eq!(got.last().unwrap().0, "k018");
    assert_eq!(c.position(), &Position::AfterLast);
    assert!(c.next_n(5).unwrap().is_empty());
    let got = c.prev_n(3).unwrap();
    assert_eq!(keys_of(&got), ["k018", "k016", "k014"]);
    assert!(c.next_n(0).unwrap().is_empty());
    assert_eq!(c.key(), Some("k014"), "next_n(0) does not move");
    let got = c.prev_n(100).unwrap();
    assert_eq!(got.len(), 7);
    assert_eq!(c.position(), &Position::BeforeFirst);
}

pub fn first_and_last_on_empty_bucket(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    store.bucket("other").unwrap().set("x", b"1").unwrap();
    let mut c = store.bucket("empty").unwrap().cursor().unwrap();
    assert_eq!(c.first().unwrap(), None);
    assert_eq!(c.last().unwrap(), None);
    assert_eq!(c.next().unwrap(), None);
    assert_eq!(c.prev().unwrap(), None);
    assert!(c.next_n(3).unwrap().is_empty());
    assert_eq!(c.seek("a").unwrap(), None);
}

pub fn new_cursor_next_returns_first(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 3);
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    assert_eq!(c.position(), &Position::BeforeFirst);
    assert_eq!(c.next().unwrap().unwrap().0, "k000");
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    assert_eq!(c.first().unwrap().unwrap().0, "k000");
    assert_eq!(c.last().unwrap().unwrap().0, "k004");
}

pub fn next_past_end_then_prev_returns_last(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 3);
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    c.last().unwrap();
    assert_eq!(c.next().unwrap(), None);
    assert_eq!(c.position(), &Position::AfterLast);
    assert_eq!(c.next().unwrap(), None, "stays after-last");
    assert_eq!(c.prev().unwrap().unwrap().0, "k004");
}

pub fn prev_past_start_then_next_returns_first(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 3);
    let mut c = store.bucket("b").unwrap().cursor().unwrap();
    c.first().unwrap();
    assert_eq!(c.prev().unwrap(), None);
    assert_eq!(c.position(), &Position::BeforeFirst);
    assert_eq!(c.prev().unwrap(), None);
    assert_eq!(c.next().unwrap().unwrap().0, "k000");
}

pub fn cursor_steps_by_key_under_concurrent_writes(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 5); // k000 k002 k004 k006 k008
    let b = store.bucket("b").unwrap();
    let mut c = b.cursor().unwrap();
    assert_eq!(c.seek("k002").unwrap().unwrap().0, "k002");
    b.delete("k002").unwrap(); // the cursor's own key goes away
    b.set("k003", b"new").unwrap(); // a key appears right after it
    b.delete("k004").unwrap();
    assert_eq!(
        c.next().unwrap().unwrap(),
        ("k003".to_string(), b"new".to_vec())
    );
    assert_eq!(c.next().unwrap().unwrap().0, "k006");
    assert_eq!(c.prev().unwrap().unwrap().0, "k003");
    assert_eq!(c.prev().unwrap().unwrap().0, "k000");
}

pub fn two_clients_buckets_are_isolated(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let a = store.bucket("client-a").unwrap();
    let b = store.bucket("client-b").unwrap();
    a.set("k", b"from a").unwrap();
    b.set("k", b"from b").unwrap();
    a.set("only-a", b"1").unwrap();
    assert_eq!(a.get("k").unwrap().unwrap(), b"from a");
    assert_eq!(b.get("k").unwrap().unwrap(), b"from b");
    assert_eq!(b.get("only-a").unwrap(), None);
    assert_eq!(b.len().unwrap(), 1);
    let mut c = b.cursor().unwrap();
    assert_eq!(keys_of(&c.next_n(10).unwrap()), ["k"]);
    b.delete("k").unwrap();
    assert_eq!(a.get("k").unwrap().unwrap(), b"from a");
    // A bucket whose name is a prefix of another's sees only its own keys.
    let short = store.bucket("client").unwrap();
    short.set("z", b"1").unwrap();
    assert_eq!(short.iter().count(), 1);
    assert_eq!(short.cursor().unwrap().last().unwrap().unwrap().0, "z");
}

pub fn get_multiple_omits_missing_keys(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set_multiple([("a", b"1"), ("b", b"2")]).unwrap();
    let got = b.get_multiple(["a", "missing", "b", "a"]).unwrap();
    let want: BTreeMap<String, Vec<u8>> = [
        ("a".to_string(), b"1".to_vec()),
        ("b".to_string(), b"2".to_vec()),
    ]
    .into();
    assert_eq!(got, want);
    assert!(b.get_multiple(Vec::<String>::new()).unwrap().is_empty());
    assert_eq!(
        b.get_multiple(["a", ""]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

pub fn set_multiple_writes_all(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set("a", b"old").unwrap();
    b.set_multiple([("a", b"1"), ("b", b"2"), ("a", b"3")])
        .unwrap();
    assert_eq!(
        b.get("a").unwrap().unwrap(),
        b"3",
        "the last value of a repeated key wins"
    );
    assert_eq!(b.get("b").unwrap().unwrap(), b"2");
    b.set_multiple(Vec::<(String, Vec<u8>)>::new()).unwrap();
    assert_eq!(b.len().unwrap(), 2);
}

pub fn set_multiple_with_a_bad_key_writes_nothing(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let err = b
        .set_multiple([("a", b"1"), ("", b"2"), ("c", b"3")])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(b.len().unwrap(), 0);
    assert_eq!(b.get("a").unwrap(), None);
}

pub fn set_multiple_over_batch_limit_is_too_large(engine: &EngineConfig) {
    let dir = tmp();
    let store = Store::builder()
        .engine(engine)
        .max_batch_size(1000)
        .open(dir.path())
        .unwrap();
    let b = store.bucket("b").unwrap();
    let items: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| (format!("k{i:02}"), vec![0; 100]))
        .collect();
    let err = b.set_multiple(items).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(err.to_string().contains("split"), "{err}");
    assert_eq!(b.len().unwrap(), 0);
    let small: Vec<(String, Vec<u8>)> =
        (0..5).map(|i| (format!("k{i:02}"), vec![0; 100])).collect();
    b.set_multiple(small).unwrap();
    assert_eq!(b.len().unwrap(), 5);
}

pub fn len_counts_live_records(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    assert_eq!(b.len().unwrap(), 0);
    assert!(b.is_empty().unwrap());
    fill_even(&store, "b", 50);
    fill_even(&store, "other", 7);
    assert_eq!(b.len().unwrap(), 50);
    assert!(!b.is_empty().unwrap());
    b.delete("k000").unwrap();
    assert_eq!(b.len().unwrap(), 49);
}

pub fn bucket_names_and_remove_bucket(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    assert!(store.bucket_names().unwrap().is_empty());
    for name in ["zeta", "alpha", "alph", "mid"] {
        store.bucket(name).unwrap().set("k", b"v").unwrap();
    }
    fill_even(&store, "big", 300);
    assert_eq!(
        store.bucket_names().unwrap(),
        ["alph", "alpha", "big", "mid", "zeta"]
    );
    assert!(store.remove_bucket("alph").unwrap());
    assert!(store.remove_bucket("big").unwrap());
    assert!(!store.remove_bucket("never").unwrap());
    assert_eq!(store.bucket_names().unwrap(), ["alpha", "mid", "zeta"]);
    assert_eq!(store.bucket("big").unwrap().len().unwrap(), 0);
    assert_eq!(
        store.bucket("alpha").unwrap().get("k").unwrap().unwrap(),
        b"v"
    );
    assert_eq!(
        store.remove_bucket("").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    store.close().unwrap();
    let store = open(engine, dir.path());
    assert_eq!(store.bucket_names().unwrap(), ["alpha", "mid", "zeta"]);
}

pub fn iterators_full_reverse_range_prefix(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let keys = ["a", "app", "apple", "apply", "b", "ba", "c"];
    b.set_multiple(keys.iter().map(|k| (*k, k.as_bytes())))
        .unwrap();
    let all: Vec<String> = b.iter().map(|r| r.unwrap().0).collect();
    assert_eq!(all, keys);
    let rev: Vec<String> = b.iter().rev().map(|r| r.unwrap().0).collect();
    assert_eq!(rev, keys.iter().rev().copied().collect::<Vec<_>>());
    let range: Vec<String> = b.range("app".."b").map(|r| r.unwrap().0).collect();
    assert_eq!(range, ["app", "apple", "apply"]);
    let incl: Vec<String> = b.range("b"..="c").map(|r| r.unwrap().0).collect();
    assert_eq!(incl, ["b", "ba", "c"]);
    let from: Vec<String> = b.range("b"..).rev().map(|r| r.unwrap().0).collect();
    assert_eq!(from, ["c", "ba", "b"]);
    let pre: Vec<String> = b.prefix("app").map(|r| r.unwrap().0).collect();
    assert_eq!(pre, ["app", "apple", "apply"]);
    let pre_rev: Vec<String> = b.prefix("app").rev().map(|r| r.unwrap().0).collect();
    assert_eq!(pre_rev, ["apply", "apple", "app"]);
    assert_eq!(b.prefix("zz").count(), 0);
    assert_eq!(b.range("c".."a").count(), 0, "an inverted range is empty");
    let (k, v) = b.iter().next().unwrap().unwrap();
    assert_eq!((k.as_str(), v.as_slice()), ("a", &b"a"[..]));
}

pub fn iterator_ends_meet_in_the_middle(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 500);
    let b = store.bucket("b").unwrap();
    let mut it = b.iter();
    let mut front = Vec::new();
    let mut back = Vec::new();
    while let Some(r) = it.next() {
        front.push(r.unwrap().0);
        if let Some(r) = it.next_back() {
            back.push(r.unwrap().0);
        }
        if let Some(r) = it.next_back() {
            back.push(r.unwrap().0);
        }
    }
    assert!(it.next_back().is_none());
    back.reverse();
    front.extend(back);
    let want: Vec<String> = (0..500).map(|i| format!("k{:03}", i * 2)).collect();
    assert_eq!(front, want, "every key exactly once, in order");
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Layout {
    cols: u32,
    widgets: Vec<String>,
}

pub fn json_round_trip_and_type_mismatch(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let layout = Layout {
        cols: 3,
        widgets: vec!["clock".into(), "temp".into()],
    };
    b.set_json("layout", &layout).unwrap();
    assert_eq!(b.get_json::<Layout>("layout").unwrap(), Some(layout));
    assert_eq!(b.get_json::<Layout>("missing").unwrap(), None);
    b.set("raw", b"not json").unwrap();
    let err = b.get_json::<Layout>("raw").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("\"raw\""), "{err}");
}

pub fn use_after_close_is_a_closed_error(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set("k", b"v").unwrap();
    let mut c = b.cursor().unwrap();
    let mut it = b.iter();
    let clone = store.clone();
    store.close().unwrap();
    store.close().unwrap(); // closing again does nothing
    let closed = |r: state_core::Result<()>| assert_eq!(r.unwrap_err().kind(), ErrorKind::Closed);
    closed(b.get("k").map(drop));
    closed(b.set("k", b"v"));
    closed(b.delete("k").map(drop));
    closed(b.len().map(drop));
    closed(b.get_multiple(["k"]).map(drop));
    closed(b.set_multiple([("k", b"v")]));
    closed(c.next().map(drop));
    closed(c.first().map(drop));
    closed(c.next_n(0).map(drop));
    closed(b.cursor().map(drop));
    closed(it.next().unwrap().map(drop));
    assert!(it.next().is_none(), "an iterator ends after its error");
    closed(store.bucket("b").map(drop));
    closed(clone.bucket_names().map(drop));
    closed(clone.flush());
    closed(clone.info().map(drop));
    // The data is still there for a new handle.
    let store = open(engine, dir.path());
    assert_eq!(store.bucket("b").unwrap().get("k").unwrap().unwrap(), b"v");
}

pub fn second_open_in_process_shares_the_store(engine: &EngineConfig) {
    let dir = tmp();
    let one = open(engine, dir.path());
    let two = open(engine, dir.path());
    one.bucket("b").unwrap().set("k", b"1").unwrap();
    assert_eq!(two.bucket("b").unwrap().get("k").unwrap().unwrap(), b"1");
    one.close().unwrap();
    // The other handle stays usable.
    two.bucket("b").unwrap().set("k2", b"2").unwrap();
    assert_eq!(one.bucket("b").unwrap_err().kind(), ErrorKind::Closed);
    // Opening through a different spelling of the same path shares it too.
    let three = open(engine, &dir.path().join(".").join("."));
    assert_eq!(three.bucket("b").unwrap().get("k2").unwrap().unwrap(), b"2");
}

pub fn store_closes_with_its_last_handle(engine: &EngineConfig) {
    let dir = tmp();
    let one = open(engine, dir.path());
    let two = open(engine, dir.path());
    one.bucket("b").unwrap().set("k", b"1").unwrap();
    drop(one);
    two.bucket("b").unwrap().set("k", b"2").unwrap();
    two.close().unwrap();
    // Fully closed: another process could now open it, and so can we.
    let three = open(engine, dir.path());
    assert_eq!(three.bucket("b").unwrap().get("k").unwrap().unwrap(), b"2");
}

pub fn reopen_after_close_in_same_process(engine: &EngineConfig) {
    let dir = tmp();
    for round in 0..10u8 {
        let store = open(engine, dir.path());
        let b = store.bucket("b").unwrap();
        if round > 0 {
            assert_eq!(b.get("round").unwrap().unwrap(), [round - 1]);
        }
        b.set("round", [round]).unwrap();
        store.close().unwrap();
    }
}

pub fn open_on_a_regular_file_fails_clearly(engine: &EngineConfig) {
    let dir = tmp();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"hello").unwrap();
    let err = Store::builder().engine(engine).open(&file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(err.to_string().contains("plain-file"), "{err}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"hello",
        "the file is untouched"
    );
    let err = Store::builder().engine(engine).open("").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

pub fn open_in_an_unwritable_place_fails_clearly(engine: &EngineConfig) {
    // /proc refuses new directories even to root, so this holds in CI as root.
    let err = Store::builder()
        .engine(engine)
        .open("/proc/libstate-test/store")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(
        err.to_string().contains("/proc/libstate-test/store"),
        "{err}"
    );
    // A directory without write permission (effective only when not root).
    let dir = tmp();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    let probe = std::fs::File::create(ro.join("probe"));
    if probe.is_err() {
        let err = Store::builder().engine(engine).open(&ro).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::Io), "{err}");
        assert!(err.to_string().contains("ro"), "{err}");
    }
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o700)).unwrap();
}

pub fn sync_mode_writes_are_readable_and_survive_reopen(engine: &EngineConfig) {
    let dir = tmp();
    let store = open_sync(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set("k", b"v").unwrap();
    b.set_multiple([("a", b"1"), ("b", b"2")]).unwrap();
    assert!(b.delete("a").unwrap());
    store.close().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    assert_eq!(b.get("k").unwrap().unwrap(), b"v");
    assert_eq!(b.get("a").unwrap(), None);
    assert_eq!(b.get("b").unwrap().unwrap(), b"2");
}

/// Group commit with gathering: writers of uneven speed (one stops early, so the
/// leaders' expected group shrinks while they wait) all finish, every write is there
/// after a reopen, and syncs were shared. The engine's first sync is held until every
/// writer has a write in the engine, so the writers that come after it must share the
/// next one: fewer syncs than writes, however the threads are scheduled.
pub fn concurrent_sync_writers_share_syncs_and_lose_nothing(engine: &EngineConfig) {
    let dir = tmp();
    let probe = Arc::new(Probe::default());
    let counting = EngineConfig::Custom(Arc::new(Counting {
        inner: engine.clone(),
        probe: probe.clone(),
    }));
    let store = open_sync(&counting, dir.path());
    let counts = [60usize, 60, 60, 5];
    let (writes_before, syncs_before) = probe.hold_first_sync_until(counts.len() as u64);
    thread::scope(|s| {
        for (t, &n) in counts.iter().enumerate() {
            let b = store.bucket("b").unwrap();
            s.spawn(move || {
                for i in 0..n {
                    b.set(&format!("t{t}-{i:03}"), format!("{t}/{i}")).unwrap();
                }
            });
        }
    });
    let (writes, syncs) = probe.counts();
    let (writes, syncs) = (writes - writes_before, syncs - syncs_before);
    assert!(writes >= counts.iter().sum::<usize>() as u64);
    assert!(
        syncs < writes,
        "{syncs} syncs for {writes} sync-mode writes: none shared"
    );
    store.flush().unwrap();
    store.close().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    assert_eq!(b.len().unwrap(), counts.iter().sum::<usize>() as u64);
    for (t, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let v = b.get(&format!("t{t}-{i:03}")).unwrap().unwrap();
            assert_eq!(v, format!("{t}/{i}").as_bytes());
        }
    }
}

/// Counts the writes and syncs that reach an engine, and can hold its next sync
/// until a number of writes have arrived (a handshake, not a sleep).
#[derive(Debug, Default)]
pub struct Probe {
    state: std::sync::Mutex<ProbeState>,
    changed: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct ProbeState {
    /// Writes that have entered the engine (they may still be running).
    entered: u64,
    writes: u64,
    syncs: u64,
    /// The next sync waits until `writes` reaches this.
    hold_sync_until: Option<u64>,
}

impl Probe {
    /// Holds the next sync until `more` further writes have reached the engine;
    /// returns the counts so far.
    fn hold_first_sync_until(&self, more: u64) -> (u64, u64) {
        let mut st = self.state.lock().unwrap();
        st.hold_sync_until = Some(st.writes + more);
        (st.writes, st.syncs)
    }

    fn counts(&self) -> (u64, u64) {
        let st = self.state.lock().unwrap();
        (st.writes, st.syncs)
    }

    /// Writes that have entered the engine so far.
    pub fn entered(&self) -> u64 {
        self.state.lock().unwrap().entered
    }

    /// Waits until `n` writes have entered the engine: a writer thread has got past
    /// the store's own locks and is in (or blocked inside) the engine's `write`.
    pub fn wait_entered(&self, n: u64) {
        let st = self.state.lock().unwrap();
        let (_st, timeout) = self
            .changed
            .wait_timeout_while(st, std::time::Duration::from_secs(60), |st| st.entered < n)
            .unwrap();
        assert!(!timeout.timed_out(), "the writer never reached the engine");
    }

    fn entering(&self) {
        self.state.lock().unwrap().entered += 1;
        self.changed.notify_all();
    }

    fn wrote(&self) {
        self.state.lock().unwrap().writes += 1;
        self.changed.notify_all();
    }

    fn before_sync(&self) {
        let mut st = self.state.lock().unwrap();
        if let Some(until) = st.hold_sync_until.take() {
            let (guard, timeout) = self
                .changed
                .wait_timeout_while(st, std::time::Duration::from_secs(60), |st| {
                    st.writes < until
                })
                .unwrap();
            assert!(!timeout.timed_out(), "the writers never reached the engine");
            st = guard;
        }
        st.syncs += 1;
    }
}

/// The engine under test wrapped so that it reports to a new [`Probe`].
pub fn probed(inner: &EngineConfig) -> (EngineConfig, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let config = EngineConfig::Custom(Arc::new(Counting {
        inner: inner.clone(),
        probe: probe.clone(),
    }));
    (config, probe)
}

/// A factory for the engine under test whose engines report to a [`Probe`]. It
/// keeps the inner engine's name, so the store reopens with the plain engine.
#[derive(Debug)]
struct Counting {
    inner: EngineConfig,
    probe: Arc<Probe>,
}

impl state_core::engine::EngineFactory for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn open(
        &self,
        dir: &Path,
        store: &state_core::engine::StoreContext,
    ) -> state_core::Result<Box<dyn state_core::engine::StorageEngine>> {
        let inner = match &self.inner {
            EngineConfig::Sled(c) => c.open(dir, store)?,
            EngineConfig::Memfile(c) => c.open(dir, store)?,
            EngineConfig::Custom(f) => f.open(dir, store)?,
            other => panic!("no factory for {other:?}"),
        };
        Ok(Box::new(Probed {
            inner,
            probe: self.probe.clone(),
        }))
    }
}

/// An engine that delegates everything and reports writes and syncs.
struct Probed {
    inner: Box<dyn state_core::engine::StorageEngine>,
    probe: Arc<Probe>,
}

impl state_core::engine::StorageEngine for Probed {
    fn finish_open(&mut self) -> state_core::Result<()> {
        self.inner.finish_open()
    }
    fn damaged(&self, path: &Path, detail: String) -> state_core::Error {
        self.inner.damaged(path, detail)
    }
    fn get(
        &self,
        bucket: &str,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]),
    ) -> state_core::Result<bool> {
        self.inner.get(bucket, key, visit)
    }
    fn get_many(
        &self,
        bucket: &str,
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, &[u8]),
    ) -> state_core::Result<()> {
        self.inner.get_many(bucket, keys, visit)
    }
    fn write(&self, ops: &[state_core::engine::WriteOp<'_>]) -> state_core::Result<()> {
        self.probe.entering();
        let r = self.inner.write(ops);
        self.probe.wrote();
        r
    }
    fn scan(
        &self,
        bucket: &str,
        lower: std::ops::Bound<&[u8]>,
        upper: std::ops::Bound<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> state_core::engine::Visit,
    ) -> state_core::Result<()> {
        self.inner.scan(bucket, lower, upper, reverse, visit)
    }
    fn count(&self, bucket: &str) -> state_core::Result<u64> {
        self.inner.count(bucket)
    }
    fn bucket_names(&self) -> state_core::Result<Vec<String>> {
        self.inner.bucket_names()
    }
    fn remove_bucket(&self, bucket: &str) -> state_core::Result<bool> {
        self.inner.remove_bucket(bucket)
    }
    fn sync(&self) -> state_core::Result<()> {
        self.probe.before_sync();
        self.inner.sync()
    }
    fn disk_size(&self) -> state_core::Result<u64> {
        self.inner.disk_size()
    }
    fn compact(&self) -> state_core::Result<bool> {
        self.inner.compact()
    }
    fn lock_file(&self) -> Option<std::path::PathBuf> {
        self.inner.lock_file()
    }
}

pub fn flush_and_info_report_the_store(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let empty = store.info().unwrap();
    assert_eq!((empty.buckets, empty.records), (0, 0));
    assert_eq!(empty.engine, engine.engine());
    fill_even(&store, "a", 10);
    fill_even(&store, "b", 5);
    store.flush().unwrap();
    let info = store.info().unwrap();
    assert_eq!(info.buckets, 2);
    assert_eq!(info.records, 15);
    if engine.shared_between_processes() {
        // Kept on a server: nothing local, and the engine describes the server.
        assert!(info.engine_details.is_some());
    } else {
        assert!(info.disk_bytes > 0);
    }
    assert_eq!(info.path, std::fs::canonicalize(dir.path()).unwrap());
    assert_eq!(store.path(), info.path);
    assert_eq!(store.engine(), engine.engine());
    assert_eq!(store.engine_name(), engine.name());
}

pub fn concurrent_writers_and_readers(engine: &EngineConfig) {
    let dir = tmp();
    let store = open(engine, dir.path());
    let mut threads = Vec::new();
    for t in 0..4 {
        let b = store.bucket(&format!("t{t}")).unwrap();
        let shared = store.bucket("shared").unwrap();
        threads.push(thread::spawn(move || {
            for i in 0..500 {
                let key = format!("k{i:04}");
                b.set(&key, format!("{t}-{i}")).unwrap();
                shared.set(&format!("{t}-{key}"), b"x").unwrap();
                assert_eq!(b.get(&key).unwrap().unwrap(), format!("{t}-{i}").as_bytes());
                if i % 50 == 0 {
                    let mut c = shared.cursor().unwrap();
                    let page = c.next_n(20).unwrap();
                    assert!(page.windows(2).all(|w| w[0].0 < w[1].0));
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    for t in 0..4 {
        assert_eq!(store.bucket(&format!("t{t}")).unwrap().len().unwrap(), 500);
    }
    assert_eq!(store.bucket("shared").unwrap().len().unwrap(), 2000);
}

pub fn persistence_round_trip_100k(engine: &EngineConfig) {
    let dir = tmp();
    let n = 100_000usize;
    let value = |i: usize| format!("value-{i}-{}", "x".repeat(i % 50));
    {
        let store = open(engine, dir.path());
        let b = store.bucket("bulk").unwrap();
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            b.set_multiple(chunk.iter().map(|&i| (format!("key{i:06}"), value(i))))
                .unwrap();
        }
        store.close().unwrap();
    }
    let store = open(engine, dir.path());
    let b = store.bucket("bulk").unwrap();
    assert_eq!(b.len().unwrap(), n as u64);
    let mut count = 0;
    for (i, entry) in b.iter().enumerate() {
        let (k, v) = entry.unwrap();
        assert_eq!(k, format!("key{i:06}"));
        assert_eq!(v, value(i).as_bytes());
        count += 1;
    }
    assert_eq!(count, n);
}

const CHILD_DIR: &str = "LIBSTATE_TEST_LOCK_CHILD_DIR";
const CHILD_ENGINE: &str = "LIBSTATE_TEST_LOCK_CHILD_ENGINE";
const CHILD_MODE: &str = "LIBSTATE_TEST_LOCK_CHILD_MODE";
const READY: &str = "LIBSTATE-CHILD-READY";

/// Body of the `lock_holder_child` test: when started by `locked_by_another_process`,
/// opens the store, says so, and holds it until its stdin closes. `engine_named`
/// gives the config of the engine suite whose name the parent passed.
pub fn lock_holder_child_main(engine_named: impl Fn(&str) -> EngineConfig) {
    let (Ok(dir), Ok(engine)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ENGINE)) else {
        return;
    };
    let engine = &engine_named(&engine);
    if std::env::var(CHILD_MODE).as_deref() == Ok("open-once") {
        // One attempt, no retry: the parent closed the store just before.
        match Store::builder().engine(engine).open(Path::new(&dir)) {
            Ok(store) => {
                let v = store.bucket("b").unwrap().get("parent").unwrap();
                println!(
                    "{READY} {}",
                    String::from_utf8_lossy(&v.unwrap_or_default())
                );
            }
            Err(e) => println!("OPEN-FAILED {e}"),
        }
        return;
    }
    let store = open(engine, Path::new(&dir));
    store.bucket("b").unwrap().set("child", b"here").unwrap();
    store.flush().unwrap();
    println!("{READY}");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    store.close().unwrap();
}

pub fn locked_by_another_process(engine: &EngineConfig) {
    let dir = tmp();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "lock_holder_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_ENGINE, crate::suite::current())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    assert!(
        lines.any(|l| l.map(|l| l.contains(READY)).unwrap_or(false)),
        "the child never opened the store"
    );
    if engine.shared_between_processes() {
        // No lock: a second process opens the store while the first has it open,
        // and each sees the other's writes.
        let store = open(engine, dir.path());
        let b = store.bucket("b").unwrap();
        assert_eq!(b.get("child").unwrap().unwrap(), b"here");
        b.set("parent", b"too").unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
        assert_eq!(b.get("parent").unwrap().unwrap(), b"too");
        return;
    }
    let err = Store::builder()
        .engine(engine)
        .open(dir.path())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    let canonical = std::fs::canonicalize(dir.path()).unwrap();
    assert!(
        err.to_string().contains(&*canonical.to_string_lossy()),
        "{err}"
    );
    drop(child.stdin.take()); // the child closes the store and exits
    assert!(child.wait().unwrap().success());
    let store = open(engine, dir.path());
    assert_eq!(
        store.bucket("b").unwrap().get("child").unwrap().unwrap(),
        b"here"
    );
}

pub fn random_operations_match_a_btreemap_model(engine: &EngineConfig) {
    crate::model::run(engine);
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Store>();
    is::<state_core::Bucket>();
    is::<state_core::Cursor>();
}

pub fn large_values_survive_a_sync_mode_reopen(engine: &EngineConfig) {
    // Large values take other paths in some engines (sled keeps them in blob files).
    let dir = tmp();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let store = open_sync(engine, dir.path());
    store.bucket("b").unwrap().set("big", &big).unwrap();
    store.close().unwrap();
    let store = open(engine, dir.path());
    assert_eq!(store.bucket("b").unwrap().get("big").unwrap().unwrap(), big);
}

pub fn another_process_opens_right_after_close(engine: &EngineConfig) {
    let dir = tmp();
    for round in 0..3 {
        let store = open(engine, dir.path());
        store
            .bucket("b")
            .unwrap()
            .set("parent", format!("v{round}"))
            .unwrap();
        store.close().unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "lock_holder_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ENGINE, crate::suite::current())
            .env(CHILD_MODE, "open-once")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("{READY} v{round}")),
            "the store was still locked after close() returned: {stdout}"
        );
    }
}
