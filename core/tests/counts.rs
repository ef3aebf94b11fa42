//! `Store::counts`: bucket and record counts kept as writes commit. After a mixed
//! workload (blind and read-modify-write puts, repeated keys in one batch, deletes,
//! transactions, expiry and the sweeper, imports, removed buckets, a compaction),
//! they equal a full count of what the store holds, and a reopened store counts
//! the same again. Both local engines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use state_core::{Engine, Expiry, Format, ManualClock, Store, StoreCounts};

const ENGINES: [Engine; 2] = [Engine::Sled, Engine::Memfile];

fn open(engine: Engine, dir: &std::path::Path, clock: &Arc<ManualClock>) -> Store {
    Store::builder()
        .engine(engine)
        .clock(clock.clone())
        .sweep_interval(None)
        .open(dir)
        .unwrap()
}

/// What a full scan finds: live records per bucket (every record is live unless the
/// test let some expire without sweeping; `expired` says how many per bucket).
fn scanned(store: &Store, expired: &BTreeMap<&str, u64>) -> (u64, u64) {
    let mut buckets = 0;
    let mut records = 0;
    for name in store.bucket_names().unwrap() {
        let stored = store.bucket(&name).unwrap().iter().count() as u64
            + expired.get(name.as_str()).copied().unwrap_or(0);
        assert!(stored > 0, "bucket {name} is listed but holds nothing");
        buckets += 1;
        records += stored;
    }
    (buckets, records)
}

fn counts(store: &Store) -> (u64, u64) {
    let c: StoreCounts = store
        .counts()
        .unwrap()
        .expect("a local engine keeps counts");
    (c.buckets, c.records)
}

#[test]
fn counts_follow_every_kind_of_write_and_equal_a_full_scan() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = open(engine, &dir, &clock);
        let a = store.bucket("a").unwrap();
        // Written before counting starts: the first call counts them.
        a.set("before1", b"x").unwrap();
        a.set("before2", b"x").unwrap();
        assert_eq!(counts(&store), (1, 2), "{engine:?}");

        // Blind puts: new keys, an overwrite, a batch repeating a key.
        a.set("k1", b"1").unwrap();
        a.set("k1", b"1 again").unwrap();
        a.set_multiple([
            ("k2", &b"2"[..]),
            ("k3", b"3"),
            ("k2", b"2b"),
            ("k1", b"1c"),
        ])
        .unwrap();
        assert_eq!(counts(&store), (1, 5), "{engine:?}");
        // Deletes: present, missing.
        assert!(a.delete("before1").unwrap());
        assert!(!a.delete("nothing").unwrap());
        assert_eq!(counts(&store), (1, 4), "{engine:?}");

        // Records with a time to live, some of which expire.
        let t = store.bucket("t").unwrap();
        t.set_with_ttl("short1", b"s", Duration::from_secs(1))
            .unwrap();
        t.set_with_ttl("short2", b"s", Duration::from_secs(1))
            .unwrap();
        t.set_multiple_with_ttl([("long", &b"l"[..])], Duration::from_secs(3600))
            .unwrap();
        t.set("plain", b"p").unwrap();
        assert!(t.expire("plain", Duration::from_secs(1)).unwrap());
        assert!(t.persist("plain").unwrap());
        assert_eq!(counts(&store), (2, 8), "{engine:?}");
        clock.advance(2_000);
        // Expired but not swept: still stored, still counted.
        let expired = BTreeMap::from([("t", 2)]);
        assert_eq!(counts(&store), scanned(&store, &expired), "{engine:?}");
        assert_eq!(counts(&store), (2, 8), "{engine:?}");
        // A put over an expired record replaces it (no new record)...
        t.set("short1", b"back").unwrap();
        assert_eq!(counts(&store), (2, 8), "{engine:?}");
        // ...and the sweeper removes the other.
        assert_eq!(store.sweep_expired().unwrap(), 1);
        assert_eq!(counts(&store), (2, 7), "{engine:?}");
        assert_eq!(
            counts(&store),
            scanned(&store, &BTreeMap::new()),
            "{engine:?}"
        );

        // A transaction: inserts, an overwrite, a delete, a put already expired
        // (a delete), and its net change.
        let x = store.bucket("x").unwrap();
        x.set("keep", b"k").unwrap();
        x.set("drop", b"d").unwrap();
        x.set("past", b"p").unwrap();
        let now = store.clock_now_ms();
        x.transaction(|tx| {
            tx.put("n1", b"1".to_vec(), Expiry::Never)?;
            tx.put("n2", b"2".to_vec(), Expiry::Keep)?;
            tx.put("keep", b"k2".to_vec(), Expiry::Never)?;
            tx.delete("drop")?;
            tx.put("past", b"p".to_vec(), Expiry::At(now - 1))?;
            Ok(())
        })
        .unwrap();
        assert_eq!(counts(&store), (3, 10), "{engine:?}");
        // A transaction that fails writes nothing and counts nothing.
        let failed: state_core::Result<()> = x.transaction(|tx| {
            tx.put("n3", b"3".to_vec(), Expiry::Never)?;
            Err(state_core::Error::InvalidArgument("no".into()))
        });
        assert!(failed.is_err());
        assert_eq!(counts(&store), (3, 10), "{engine:?}");

        // An import: new records and an overwrite, in a new and an existing bucket.
        let lines = concat!(
            r#"{"bucket":"imp","key":"i1","value":"MQ=="}"#,
            "\n",
            r#"{"bucket":"imp","key":"i2","value":"Mg=="}"#,
            "\n",
            r#"{"bucket":"a","key":"k1","value":"Mw=="}"#,
            "\n",
        );
        store
            .import_from(lines.as_bytes(), Format::JsonLines, |_| {})
            .unwrap();
        let json = r#"{"imp2": {"j1": "MQ==", "j2": "Mg=="}, "a": {"k3": "NA=="}}"#;
        store
            .import_from(json.as_bytes(), Format::Json, |_| {})
            .unwrap();
        assert_eq!(counts(&store), (5, 14), "{engine:?}");

        // Removing buckets: one with records, one without.
        assert!(store.remove_bucket("imp").unwrap());
        assert!(!store.remove_bucket("never").unwrap());
        assert_eq!(counts(&store), (4, 12), "{engine:?}");
        // A bucket emptied record by record is no longer counted as a bucket.
        for k in ["j1", "j2"] {
            assert!(store.bucket("imp2").unwrap().delete(k).unwrap());
        }
        assert_eq!(counts(&store), (3, 10), "{engine:?}");

        // A compaction copies what is stored: the counts stay.
        store.compact().unwrap();
        assert_eq!(counts(&store), (3, 10), "{engine:?}");
        assert_eq!(
            counts(&store),
            scanned(&store, &BTreeMap::new()),
            "{engine:?}"
        );
        // Store::info agrees (every record live now).
        let info = store.info().unwrap();
        assert_eq!((info.buckets, info.records), (3, 10), "{engine:?}");

        // Reopened, the store counts again from what the engine holds.
        store.close().unwrap();
        let store = open(engine, &dir, &clock);
        assert_eq!(counts(&store), (3, 10), "{engine:?}");
        assert_eq!(
            counts(&store),
            scanned(&store, &BTreeMap::new()),
            "{engine:?}"
        );
        store.close().unwrap();
    }
}

/// Watched and counted at once, with random writes from several threads: the counts
/// still equal a full scan.
#[test]
fn counts_stay_exact_under_concurrent_writers() {
    // Watched, every blind put's prior is read first; unwatched, a single put's
    // prior comes from the engine's write itself.
    for (engine, watched) in ENGINES.into_iter().flat_map(|e| [(e, true), (e, false)]) {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = open(engine, &tmp.path().join("s"), &clock);
        assert_eq!(counts(&store), (0, 0));
        let watcher = watched.then(|| store.bucket("w0").unwrap().watch("").unwrap());
        std::thread::scope(|s| {
            for w in 0..4u64 {
                let store = store.clone();
                s.spawn(move || {
                    let b = store.bucket(&format!("w{}", w % 2)).unwrap();
                    let mut x = w + 1;
                    for _ in 0..2_000 {
                        // xorshift: a fixed pseudo-random sequence per thread.
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = format!("k{}", x % 300);
                        match x % 4 {
                            0 => drop(b.delete(&key).unwrap()),
                            1 => b
                                .set_multiple([(key.as_str(), &b"m"[..]), ("fixed", &b"f"[..])])
                                .unwrap(),
                            _ => b.set(&key, b"v").unwrap(),
                        }
                    }
                });
            }
        });
        drop(watcher);
        assert_eq!(
            counts(&store),
            scanned(&store, &BTreeMap::new()),
            "{engine:?}, watched: {watched}"
        );
        store.close().unwrap();
    }
}
