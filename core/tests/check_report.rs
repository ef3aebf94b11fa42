//! `Store::check`: every bad record of a bucket, TTL counts, the expiry index.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use state_core::{Engine, ManualClock, Store};

fn open_sled(dir: &Path) -> Store {
    Store::builder().engine(Engine::Sled).open(dir).unwrap()
}

/// Waits until sled's lock on its log is free again after a close.
fn reopen_raw(dir: &Path) -> sled::Db {
    for _ in 0..200 {
        if let Ok(db) = sled::open(dir) {
            return db;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sled stayed locked");
}

#[test]
fn check_reports_every_bad_record_of_a_bucket_not_only_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = open_sled(&dir);
    let b = store.bucket("c").unwrap();
    b.set_multiple([("a", "1"), ("m", "2"), ("z", "3")])
        .unwrap();
    store.close().unwrap();
    {
        let db = reopen_raw(&dir);
        db.insert(b"c\x00b-bad", &[7u8, 1, 2][..]).unwrap();
        db.insert(b"c\x00n-bad", &[9u8][..]).unwrap();
        db.insert(b"c\x00o-\xff", &[0u8, b'x'][..]).unwrap();
        db.flush().unwrap();
    }
    let store = open_sled(&dir);
    let report = store.check().unwrap();
    store.close().unwrap();
    assert!(!report.is_ok());
    let c = &report.buckets[0];
    assert_eq!(c.name, "c");
    assert_eq!(c.records, 3);
    let bad: Vec<(&str, Option<&str>)> = c
        .problems
        .iter()
        .map(|p| (p.key.as_str(), p.after.as_deref()))
        .collect();
    assert_eq!(
        bad,
        [
            ("b-bad", Some("a")),
            ("n-bad", Some("m")),
            ("o-\u{FFFD}", Some("m"))
        ]
    );
    assert!(c.problems[0].detail.contains("unknown header"));
    assert!(c.problems[2].detail.contains("not UTF-8"));
    assert_eq!(report.problem_count(), 3);
    let messages = report.problem_messages();
    assert!(messages[0].starts_with("bucket c: reading after key \"a\": key \"b-bad\""));
}

#[test]
fn check_counts_ttls_and_expired_records_the_sweeper_has_not_removed() {
    for engine in [Engine::Sled, Engine::Memfile] {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = Store::builder()
            .engine(engine)
            .clock(clock.clone())
            .sweep_interval(None)
            .open(tmp.path().join("s"))
            .unwrap();
        let b = store.bucket("b").unwrap();
        b.set("plain", "v").unwrap();
        b.set_with_ttl("short", "v", Duration::from_secs(1))
            .unwrap();
        b.set_with_ttl("long", "v", Duration::from_secs(3600))
            .unwrap();
        clock.advance(5_000);
        let report = store.check().unwrap();
        assert!(report.is_ok(), "{engine}: {:?}", report.problem_messages());
        assert_eq!(report.records(), 3, "{engine}");
        assert_eq!(report.with_ttl(), 2);
        assert_eq!(report.expired_unswept(), 1);
        assert_eq!(report.indexed_ttl, Some(2));
        store.close().unwrap();
    }
}

#[test]
fn check_reports_a_record_whose_ttl_has_no_expiry_index_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = open_sled(&dir);
    store
        .bucket("b")
        .unwrap()
        .set_with_ttl("k", "v", Duration::from_secs(3600))
        .unwrap();
    store.close().unwrap();
    {
        let db = reopen_raw(&dir);
        let index: Vec<_> = db
            .scan_prefix(b"\x03expiry\x1fb\x00")
            .keys()
            .map(|k| k.unwrap())
            .collect();
        assert_eq!(index.len(), 1);
        db.remove(&index[0]).unwrap();
        db.flush().unwrap();
    }
    let store = open_sled(&dir);
    let report = store.check().unwrap();
    store.close().unwrap();
    assert_eq!(report.indexed_ttl, Some(0));
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].contains("1 records carry a deadline but 0 are indexed"));
}

#[test]
fn check_of_a_closed_store_is_a_closed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_sled(&tmp.path().join("s"));
    store.close().unwrap();
    assert_eq!(
        store.check().unwrap_err().kind(),
        state_core::ErrorKind::Closed
    );
}
