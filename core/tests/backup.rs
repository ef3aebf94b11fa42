//! `Store::backup`: a point-in-time copy of a store that keeps being written.
//!
//! A single writer applies a numbered sequence of writes; the copy must equal the
//! store after exactly P of them for some P between the writes acknowledged before
//! the backup began and those begun before it returned. A second writer's atomic
//! two-key batches must never be split, and a bucket removed during the backup is in
//! the copy whole or not at all. Both local engines.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use state_core::{Engine, ErrorKind, Store};

const ENGINES: [Engine; 2] = [Engine::Sled, Engine::Memfile];
/// Keys the numbered writer cycles over.
const KEYS: u64 = 3_000;
/// Records loaded before the backup, so that it takes a while.
const PRELOAD: usize = 100_000;

/// The numbered writer's write `i`: a set of `key = i`, or (one in five) a delete.
fn op(i: u64) -> (String, Option<String>) {
    if i % 5 == 3 {
        (format!("k{:05}", (i * 7919) % KEYS), None)
    } else {
        (format!("k{:05}", i % KEYS), Some(i.to_string()))
    }
}

fn contents(store: &Store, bucket: &str) -> BTreeMap<String, Vec<u8>> {
    let b = store.bucket(bucket).unwrap();
    b.iter().map(|r| r.unwrap()).collect()
}

fn preload(store: &Store) {
    let bulk = store.bucket("bulk").unwrap();
    for chunk in 0..(PRELOAD / 10_000) {
        let items: Vec<(String, Vec<u8>)> = (0..10_000)
            .map(|i| (format!("r{:07}", chunk * 10_000 + i), vec![b'x'; 64]))
            .collect();
        bulk.set_multiple(items).unwrap();
    }
    let doomed = store.bucket("doomed").unwrap();
    doomed
        .set_multiple((0..5_000).map(|i| (format!("d{i:05}"), b"d".to_vec())))
        .unwrap();
    let ttl = store.bucket("sessions").unwrap();
    ttl.set_with_ttl("s1", "token", Duration::from_secs(3600))
        .unwrap();
}

#[test]
fn backup_under_concurrent_writes_is_point_in_time() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::builder()
            .engine(engine)
            .open(tmp.path().join("s"))
            .unwrap();
        preload(&store);

        // Writer 1: the numbered sequence. `acked` counts writes that returned,
        // `started` writes that began.
        let acked = Arc::new(AtomicU64::new(0));
        let started = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let w1 = {
            let (b, acked, started, stop) = (
                store.bucket("seq").unwrap(),
                acked.clone(),
                started.clone(),
                stop.clone(),
            );
            thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    started.store(i + 1, Ordering::SeqCst);
                    match op(i) {
                        (k, Some(v)) => b.set(&k, v).unwrap(),
                        (k, None) => {
                            b.delete(&k).unwrap();
                        }
                    }
                    acked.store(i + 1, Ordering::SeqCst);
                    i += 1;
                }
            })
        };
        // Writer 2: atomic pairs.
        let w2 = {
            let (b, stop) = (store.bucket("pairs").unwrap(), stop.clone());
            thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let v = i.to_string();
                    b.set_multiple([("a", v.as_bytes()), ("b", v.as_bytes())])
                        .unwrap();
                    i += 1;
                }
            })
        };
        // Wait until both writers are going, by what they wrote.
        while acked.load(Ordering::SeqCst) < 2_000
            || store.bucket("pairs").unwrap().len().unwrap() < 2
        {
            thread::yield_now();
        }
        // Remove a bucket about when the backup starts: before, during or after it.
        let remover = {
            let store = store.clone();
            thread::spawn(move || {
                store.remove_bucket("doomed").unwrap();
            })
        };
        let before = acked.load(Ordering::SeqCst);
        let dest = tmp.path().join("copy");
        let report = store.backup(&dest).unwrap();
        let after = started.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        w1.join().unwrap();
        w2.join().unwrap();
        remover.join().unwrap();
        assert!(
            report.write_pause < Duration::from_millis(50),
            "{engine}: writers were held {:?}",
            report.write_pause
        );

        assert_eq!(Engine::detect(&dest).unwrap(), Some(engine));
        let copy = Store::builder()
            .engine(engine)
            .sweep_interval(None)
            .open(&dest)
            .unwrap();
        let check = copy.check().unwrap();
        assert!(check.is_ok(), "{engine}: {:?}", check.problem_messages());
        assert_eq!(report.records, check.records(), "{engine}");

        // Find P: replay the sequence from the start, counting keys whose value
        // differs from the copy's.
        let got = contents(&copy, "seq");
        let mut state: HashMap<String, String> = HashMap::new();
        let mut mismatched = got.len();
        let mut matches = Vec::new();
        for i in 0..after {
            if i >= before && mismatched == 0 {
                matches.push(i);
            }
            let (k, v) = op(i);
            let was_ok = state.get(&k).map(|s| s.as_bytes()) == got.get(&k).map(Vec::as_slice);
            match v {
                Some(v) => state.insert(k.clone(), v),
                None => state.remove(&k),
            };
            let now_ok = state.get(&k).map(|s| s.as_bytes()) == got.get(&k).map(Vec::as_slice);
            mismatched =
                mismatched + usize::from(was_ok && !now_ok) - usize::from(!was_ok && now_ok);
        }
        if mismatched == 0 {
            matches.push(after);
        }
        assert!(
            !matches.is_empty(),
            "{engine}: the copy's {} keys match no prefix of the writes between {before} and {after}",
            got.len()
        );

        let pairs = contents(&copy, "pairs");
        assert_eq!(
            pairs.get("a"),
            pairs.get("b"),
            "{engine}: a batch was split"
        );
        assert!(pairs.contains_key("a"), "{engine}");
        let doomed = copy.bucket("doomed").unwrap().len().unwrap();
        assert!(
            doomed == 0 || doomed == 5_000,
            "{engine}: {doomed} of 5000 records"
        );
        assert_eq!(copy.bucket("bulk").unwrap().len().unwrap(), PRELOAD as u64);
        let ttl = copy.bucket("sessions").unwrap().ttl("s1").unwrap();
        assert!(
            matches!(ttl, state_core::Ttl::Expires(d) if d > Duration::from_secs(3000)),
            "{engine}: {ttl:?}"
        );
        copy.close().unwrap();
        store.close().unwrap();
    }
}

#[test]
fn backup_refuses_an_existing_destination_or_one_inside_the_store() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::builder()
            .engine(engine)
            .open(tmp.path().join("s"))
            .unwrap();
        store.bucket("b").unwrap().set("k", "v").unwrap();
        std::fs::create_dir(tmp.path().join("taken")).unwrap();
        let err = store.backup(tmp.path().join("taken")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = store
            .backup(tmp.path().join("s").join("inner"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        // Nothing partial is left beside the destination.
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
        // A backup of an idle store is an exact copy, and the store goes on.
        let r = store.backup(tmp.path().join("copy")).unwrap();
        assert_eq!((r.buckets, r.records, r.captured), (1, 1, 0));
        store.bucket("b").unwrap().set("k2", "v2").unwrap();
        store.close().unwrap();
        let copy = Store::builder()
            .engine(engine)
            .open(tmp.path().join("copy"))
            .unwrap();
        assert_eq!(contents(&copy, "b").len(), 1);
        copy.close().unwrap();
    }
}
