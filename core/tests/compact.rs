//! `Store::compact`: memfile's own compaction, sled's copy-verify-swap.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use state_core::{Engine, ErrorKind, ManualClock, Store, Ttl};

const ENGINES: [Engine; 2] = [Engine::Sled, Engine::Memfile];

fn open(engine: Engine, dir: &Path, clock: &Arc<ManualClock>) -> Store {
    Store::builder()
        .engine(engine)
        .clock(clock.clone())
        .sweep_interval(None)
        .open(dir)
        .unwrap()
}

/// Every record with its TTL: bucket -> key -> (value, ttl).
fn contents(store: &Store) -> BTreeMap<String, BTreeMap<String, (Vec<u8>, Ttl)>> {
    let mut out = BTreeMap::new();
    for name in store.bucket_names().unwrap() {
        let b = store.bucket(&name).unwrap();
        let mut m = BTreeMap::new();
        for item in b.iter() {
            let (k, v) = item.unwrap();
            let ttl = b.ttl(&k).unwrap();
            m.insert(k, (v, ttl));
        }
        out.insert(name, m);
    }
    out
}

/// Writes the same keys `rounds` times, so the store holds garbage to reclaim.
fn churn(store: &Store, n: usize, rounds: usize) {
    let b = store.bucket("b").unwrap();
    for round in 0..rounds {
        let items: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| (format!("k{i:06}"), vec![(round * 7 + i) as u8; 1000]))
            .collect();
        b.set_multiple(items).unwrap();
    }
    let s = store.bucket("sessions").unwrap();
    s.set_with_ttl("s1", "token", Duration::from_secs(3600))
        .unwrap();
    s.set_with_ttl("gone", "x", Duration::from_secs(1)).unwrap();
}

#[test]
fn compact_reclaims_space_and_keeps_every_live_record_and_ttl() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = open(engine, &dir, &clock);
        churn(&store, 2000, 4);
        clock.advance(5_000);
        let before = contents(&store);
        let other = open(engine, &dir, &clock);
        let report = store.compact().unwrap();
        assert!(
            report.after_bytes < report.before_bytes,
            "{engine}: {report:?}"
        );
        assert_eq!((report.records, report.buckets), (2001, 2), "{engine}");
        assert_eq!(contents(&store), before, "{engine}");
        // Another handle on the same store works on the compacted files.
        other.bucket("b").unwrap().set("after", "1").unwrap();
        assert_eq!(
            store.bucket("b").unwrap().get("after").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        other.close().unwrap();
        store.close().unwrap();
        assert!(!tmp.path().join(".s.compact").exists(), "{engine}");
        let store = open(engine, &dir, &clock);
        let mut expected = before;
        expected
            .get_mut("b")
            .unwrap()
            .insert("after".into(), (b"1".to_vec(), Ttl::NoExpiry));
        assert_eq!(contents(&store), expected, "{engine}");
        assert!(store.check().unwrap().is_ok());
        store.close().unwrap();
    }
}

#[test]
fn compact_refuses_to_run_over_a_leftover_copy_and_leaves_the_store_alone() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = open(engine, &dir, &clock);
        churn(&store, 10, 2);
        let before = contents(&store);
        let leftover = tmp.path().join(".s.compact");
        std::fs::create_dir(&leftover).unwrap();
        std::fs::write(leftover.join("marker"), b"x").unwrap();
        let err = store.compact().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{engine}");
        assert!(err.to_string().contains("interrupted"), "{err}");
        assert_eq!(contents(&store), before);
        assert!(leftover.join("marker").exists());
        store.close().unwrap();
    }
}

#[test]
fn compact_inside_a_lending_callback_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(Engine::Sled, &tmp.path().join("s"), &clock);
    let b = store.bucket("b").unwrap();
    b.set("k", "v").unwrap();
    let inner = b
        .get_with("k", |_| store.compact().unwrap_err().kind())
        .unwrap();
    assert_eq!(inner, Some(ErrorKind::InvalidArgument));
    store.close().unwrap();
}
