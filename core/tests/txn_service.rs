//! Transactions (`Bucket::transaction`) on both engines. (The service's quotas and
//! cursors, built on them, are tested in service/tests/service.rs.)

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use state_core::{Engine, ErrorKind, Expiry, ManualClock, Store, Ttl};

const ENGINES: [Engine; 2] = [Engine::Sled, Engine::Memfile];

fn with_store(engine: Engine, clock: Option<Arc<ManualClock>>, f: impl FnOnce(Store)) {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Store::builder().engine(engine);
    if let Some(c) = clock {
        b = b.clock(c).sweep_interval(None);
    }
    let store = b.open(dir.path().join("s")).unwrap();
    f(store.clone());
    store.close().unwrap();
}

fn incr(tx: &mut state_core::Txn<'_>, key: &str) -> state_core::Result<u64> {
    let n = match tx.get(key)? {
        Some(s) => std::str::from_utf8(&s.value)
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        None => 0,
    } + 1;
    tx.put(key, n.to_string().into_bytes(), Expiry::Keep)?;
    Ok(n)
}

#[test]
fn concurrent_increments_lose_no_update() {
    for engine in ENGINES {
        with_store(engine, None, |store| {
            let b = store.bucket("c").unwrap();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || {
                        for _ in 0..250 {
                            b.transaction(|tx| incr(tx, "n")).unwrap();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"1000"[..]));
        });
    }
}

#[test]
fn a_failed_transaction_writes_nothing() {
    for engine in ENGINES {
        with_store(engine, None, |store| {
            let b = store.bucket("c").unwrap();
            b.set("a", b"1").unwrap();
            let r: state_core::Result<()> = b.transaction(|tx| {
                tx.put("a", b"2".to_vec(), Expiry::Never)?;
                tx.put("b", b"2".to_vec(), Expiry::Never)?;
                Err(state_core::Error::InvalidArgument("stop".into()))
            });
            assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidArgument);
            assert_eq!(b.get("a").unwrap().as_deref(), Some(&b"1"[..]));
            assert_eq!(b.get("b").unwrap(), None);
            // A bad key inside is an error the transaction can go on after.
            b.transaction(|tx| {
                assert!(tx.put("", b"x".to_vec(), Expiry::Never).is_err());
                tx.put("c", b"3".to_vec(), Expiry::Never)
            })
            .unwrap();
            assert_eq!(b.get("c").unwrap().as_deref(), Some(&b"3"[..]));
        });
    }
}

#[test]
fn reads_see_the_transactions_own_writes_and_keys_merge_them() {
    for engine in ENGINES {
        with_store(engine, None, |store| {
            let b = store.bucket("c").unwrap();
            b.set_multiple([("a", b"1"), ("c", b"3"), ("e", b"5")])
                .unwrap();
            b.transaction(|tx| {
                assert!(tx.delete("c")?);
                assert!(!tx.delete("zz")?);
                tx.put("b", b"2".to_vec(), Expiry::Never)?;
                tx.put("f", b"6".to_vec(), Expiry::Never)?;
                assert_eq!(tx.get("b")?.unwrap().value, b"2");
                assert!(tx.get("c")?.is_none());
                // Lent reads see the same: own writes and deletes, stored values.
                assert_eq!(tx.get_with("b", <[u8]>::to_vec)?, Some(b"2".to_vec()));
                assert_eq!(tx.get_with("c", <[u8]>::len)?, None);
                assert_eq!(tx.get_with("e", <[u8]>::to_vec)?, Some(b"5".to_vec()));
                assert_eq!(tx.get_with("zz", <[u8]>::len)?, None);
                assert!(tx.get_with("", <[u8]>::len).is_err());
                assert_eq!(tx.keys(None, 100)?, ["a", "b", "e", "f"]);
                assert_eq!(tx.keys(Some("a"), 2)?, ["b", "e"]);
                assert_eq!(tx.keys(Some("e"), 2)?, ["f"]);
                Ok(())
            })
            .unwrap();
            let keys: Vec<String> = b.iter().map(|e| e.unwrap().0).collect();
            assert_eq!(keys, ["a", "b", "e", "f"]);
            assert_eq!(b.transaction(|tx| tx.clear()).unwrap(), 4);
            assert!(b.is_empty().unwrap());
        });
    }
}

#[test]
fn expiry_inside_a_transaction_keeps_the_index_exact() {
    for engine in ENGINES {
        let clock = Arc::new(ManualClock::new(1_000_000));
        with_store(engine, Some(clock.clone()), |store| {
            let b = store.bucket("c").unwrap();
            b.set_with_ttl("k", b"v", Duration::from_secs(10)).unwrap();
            // KEEPTTL keeps the deadline; Never clears it; At sets it.
            b.transaction(|tx| tx.put("k", b"w".to_vec(), Expiry::Keep))
                .unwrap();
            assert_eq!(b.ttl("k").unwrap(), Ttl::Expires(Duration::from_secs(10)));
            b.transaction(|tx| tx.put("k", b"x".to_vec(), Expiry::At(1_005_000)))
                .unwrap();
            assert_eq!(b.ttl("k").unwrap(), Ttl::Expires(Duration::from_secs(5)));
            assert!(b.transaction(|tx| tx.set_expiry("k", None)).unwrap());
            assert_eq!(b.ttl("k").unwrap(), Ttl::NoExpiry);
            assert!(!b.transaction(|tx| tx.set_expiry("nope", Some(1))).unwrap());
            // A deadline in the past deletes.
            b.transaction(|tx| tx.put("k", b"y".to_vec(), Expiry::At(5)))
                .unwrap();
            assert_eq!(b.get("k").unwrap(), None);
            // After the deadline the record is invisible to the transaction too.
            b.set_with_ttl("t", b"v", Duration::from_secs(1)).unwrap();
            clock.advance(1000);
            assert!(b.transaction(|tx| Ok(tx.get("t")?.is_none())).unwrap());
            // Nothing is left for the sweeper but stale entries, and no live record
            // is removed by it.
            b.set("keep", b"1").unwrap();
            clock.advance(100_000);
            store.sweep_expired().unwrap();
            assert_eq!(b.get("keep").unwrap().as_deref(), Some(&b"1"[..]));
            assert_eq!(b.len().unwrap(), 1);
        });
    }
}
