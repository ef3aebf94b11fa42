//! Transactions (`Bucket::transaction`), the service's quotas and its server-side
//! cursors, on both engines.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use state_core::{Engine, ErrorKind, Expiry, ManualClock, Quota, StateService, Store, Ttl, Usage};

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

#[test]
fn quotas_refuse_growth_and_allow_shrinking() {
    for engine in ENGINES {
        with_store(engine, None, |store| {
            let svc = StateService::new(store.clone());
            svc.set_quota(
                "u",
                Quota {
                    max_records: Some(2),
                    max_bytes: Some(16),
                    max_value_size: Some(8),
                },
            );
            svc.set("u", "a", b"12345", None).unwrap();
            svc.set("u", "b", b"12345", None).unwrap();
            let e = svc.set("u", "c", b"1", None).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
            assert!(e.to_string().contains("max_records of 2"), "{e}");
            assert_eq!(svc.client("u").unwrap().get("c").unwrap(), None);
            // Overwriting in place is fine; growing past max_bytes is not.
            svc.set("u", "a", b"1234567", None).unwrap();
            let e = svc.set("u", "b", b"12345678", None).unwrap_err();
            assert!(e.to_string().contains("max_bytes of 16"), "{e}");
            let e = svc.set("u", "a", b"123456789", None).unwrap_err();
            assert!(e.to_string().contains("max_value_size of 8"), "{e}");
            let e = svc
                .handle("u", "setMultiple", r#"{"kv":{"x":"MQ==","y":"MQ=="}}"#)
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
            assert_eq!(
                svc.usage("u").unwrap(),
                Usage {
                    records: 2,
                    bytes: 14
                }
            );
            // Deleting always works, and frees room.
            let deleted = svc.handle("u", "delete", r#"{"key":"a"}"#).unwrap();
            assert!(deleted.contains(r#""found":true"#), "{deleted}");
            svc.set("u", "c", b"1", None).unwrap();
            assert_eq!(
                svc.usage("u").unwrap(),
                Usage {
                    records: 2,
                    bytes: 8
                }
            );
            // Another client is not limited.
            for i in 0..5 {
                svc.set("v", &format!("k{i}"), b"123456789", None).unwrap();
            }
        });
    }
}

#[test]
fn quota_counts_again_before_refusing_after_keys_expired() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    with_store(Engine::Memfile, Some(clock.clone()), |store| {
        let svc = StateService::new(store);
        svc.set_quota(
            "u",
            Quota {
                max_records: Some(1),
                ..Quota::default()
            },
        );
        svc.set("u", "a", b"1", Some(Duration::from_secs(1)))
            .unwrap();
        assert!(svc.set("u", "b", b"1", None).is_err());
        clock.advance(2000);
        // "a" expired without the service hearing of it: the refusal is recounted.
        svc.set("u", "b", b"1", None).unwrap();
    });
}

#[test]
fn cursors_are_owner_checked_expire_when_idle_and_bounded() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    with_store(Engine::Memfile, Some(clock.clone()), |store| {
        let svc = StateService::new(store);
        svc.set_cursor_limits(Duration::from_secs(10), 2);
        svc.client("a")
            .unwrap()
            .set_multiple([("k1", b"1"), ("k2", b"2"), ("k3", b"3")])
            .unwrap();
        let id = svc.open_cursor("a").unwrap();
        let first = svc.with_cursor("a", id, |c| c.next()).unwrap();
        assert_eq!(first.unwrap().0, "k1");
        // Another client cannot use (or release) it.
        assert!(svc.with_cursor("b", id, |c| c.next()).is_err());
        assert!(!svc.release_cursor("b", id));
        // Still usable by its owner, and keeps its position.
        let next = svc.with_cursor("a", id, |c| c.next()).unwrap();
        assert_eq!(next.unwrap().0, "k2");
        // Idle for its lifespan: gone.
        clock.advance(10_000);
        assert!(svc.with_cursor("a", id, |c| c.next()).is_err());
        // At most two per client: the least recently used goes.
        let c1 = svc.open_cursor("a").unwrap();
        clock.advance(1);
        let c2 = svc.open_cursor("a").unwrap();
        clock.advance(1);
        svc.with_cursor("a", c1, |c| c.next()).unwrap();
        clock.advance(1);
        let c3 = svc.open_cursor("a").unwrap();
        assert_eq!(svc.cursor_count("a"), 2);
        assert!(svc.with_cursor("a", c2, |c| c.next()).is_err());
        assert!(svc.with_cursor("a", c1, |c| c.next()).is_ok());
        assert!(svc.release_cursor("a", c3));
        assert!(!svc.release_cursor("a", c3));
    });
}

#[test]
fn the_cursor_methods_over_json() {
    for engine in ENGINES {
        with_store(engine, None, |store| {
            let svc = StateService::new(store);
            svc.handle(
                "u",
                "setMultiple",
                r#"{"kv":{"a":"MQ==","b":"Mg==","c":"Mw=="}}"#,
            )
            .unwrap();
            let r = svc.handle("u", "getCursor", "{}").unwrap();
            let v: serde_json::Value = serde_json::from_str(&r).unwrap();
            let key = v["cursorKey"].as_str().unwrap().to_string();
            let call = |m: &str, extra: &str| {
                let body = format!(r#"{{"cursorKey":"{key}"{extra}}}"#);
                serde_json::from_str::<serde_json::Value>(&svc.handle("u", m, &body).unwrap())
                    .unwrap()
            };
            assert_eq!(
                call("cursorFirst", ""),
                serde_json::json!({"key":"a","value":"MQ==","valid":true})
            );
            assert_eq!(
                call("cursorNextN", r#","limit":1"#),
                serde_json::json!({"values":[{"key":"b","value":"Mg=="}],"itemsRemaining":true})
            );
            assert_eq!(
                call("cursorNextN", r#","limit":5"#),
                serde_json::json!({"values":[{"key":"c","value":"Mw=="}],"itemsRemaining":false})
            );
            assert_eq!(call("cursorNext", "")["valid"], false);
            assert_eq!(call("cursorPrev", "")["key"], "c");
            assert_eq!(call("cursorSeek", r#","key":"bb""#)["key"], "c");
            assert_eq!(
                call("cursorPrevN", r#","limit":2"#),
                serde_json::json!({"values":[{"key":"b","value":"Mg=="},{"key":"a","value":"MQ=="}],"itemsRemaining":false})
            );
            assert_eq!(call("cursorLast", "")["key"], "c");
            // Another client cannot use it.
            let body = format!(r#"{{"cursorKey":"{key}"}}"#);
            assert!(svc.handle("other", "cursorNext", &body).is_err());
            assert_eq!(call("cursorRelease", ""), serde_json::json!({"found":true}));
            assert!(svc.handle("u", "cursorNext", &body).is_err());
            assert!(svc
                .handle(
                    "u",
                    "cursorNextN",
                    &format!(r#"{{"cursorKey":"{key}","limit":0}}"#)
                )
                .is_err());
        });
    }
}
