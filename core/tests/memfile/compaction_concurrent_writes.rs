//! Compactions run while several threads write and read: no write is lost, readers
//! always see a value some writer wrote, and the reopened store equals the model.

use crate::support::memfile as support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use self::support::{open, snapshot_gen};

const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 50;

/// Value of `key` at step `n`: the key and counter, padded to 8 KiB so the log grows
/// past the compaction threshold quickly.
fn value(key: &str, n: u64) -> Vec<u8> {
    let mut v = format!("{key}={n};").into_bytes();
    v.resize(8 << 10, b'.');
    v
}

#[test]
fn compaction_during_concurrent_writes_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let stop = Arc::new(AtomicBool::new(false));

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let b = store.bucket(&format!("writer{w}")).unwrap();
        let stop = Arc::clone(&stop);
        writers.push(thread::spawn(move || {
            let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("k{:03}", n as usize % KEYS_PER_WRITER);
                match n % 10 {
                    // Batches span compaction chunk boundaries.
                    0 => {
                        let items: Vec<(String, Vec<u8>)> = (0..5)
                            .map(|j| {
                                let k = format!("k{:03}", (n as usize + j * 7) % KEYS_PER_WRITER);
                                let v = value(&k, n);
                                (k, v)
                            })
                            .collect();
                        b.set_multiple(items.iter().map(|(k, v)| (k, v))).unwrap();
                        model.extend(items);
                    }
                    7 => {
                        b.delete(&key).unwrap();
                        model.remove(&key);
                    }
                    _ => {
                        let v = value(&key, n);
                        b.set(&key, &v).unwrap();
                        model.insert(key, v);
                    }
                }
            }
            model
        }));
    }
    // Entries the reader has checked so far: the test runs until it has seen some,
    // so a reader scheduled late cannot make it fail.
    let read_count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let reader = {
        let store = store.clone();
        let stop = Arc::clone(&stop);
        let read_count = Arc::clone(&read_count);
        thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for w in 0..WRITERS {
                    let b = store.bucket(&format!("writer{w}")).unwrap();
                    for e in b.iter() {
                        let (k, v) = e.unwrap();
                        // Whole values only: same-length overwrites are copied into
                        // the entry in place, so check every byte, not just the head.
                        let n = std::str::from_utf8(&v)
                            .ok()
                            .and_then(|s| s.strip_prefix(&format!("{k}=")))
                            .and_then(|s| s.split(';').next())
                            .and_then(|n| n.parse::<u64>().ok());
                        assert!(n.is_some_and(|n| v == value(&k, n)), "torn read of {k}");
                        reads += 1;
                        read_count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            reads
        })
    };

    // Let at least three compactions happen under load.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while snapshot_gen(dir.path()).is_none_or(|g| g < 4) || read_count.load(Ordering::Relaxed) == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "compaction never ran 3 times"
        );
        thread::sleep(std::time::Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let models: Vec<BTreeMap<String, Vec<u8>>> =
        writers.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(reader.join().unwrap() > 0);

    let check = |store: &state_core::Store| {
        for (w, model) in models.iter().enumerate() {
            let b = store.bucket(&format!("writer{w}")).unwrap();
            let got: BTreeMap<String, Vec<u8>> = b.iter().map(|e| e.unwrap()).collect();
            assert!(got == *model, "writer{w}: store and model differ");
        }
    };
    check(&store);
    store.close().unwrap();
    let store = open(dir.path());
    check(&store);
    store.close().unwrap();
}
