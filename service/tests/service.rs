//! The state service on the local engines: the original's JSON messages, client
//! isolation, quotas (read from the source the host provides), server-side
//! cursors, bad requests (arbitrary ones: bad_input.rs), and docs/service.md's
//! method table against [`state_service::METHODS`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use state_core::{Engine, ErrorKind, ManualClock, Store, Usage};
use state_service::{ErrorKind as Kind, Quota, QuotaSource, QuotaTable, StateService, METHODS};

const ENGINES: [Engine; 2] = [Engine::Sled, Engine::Memfile];
const INVALID: Kind = Kind::Store(ErrorKind::InvalidArgument);
const T0: u64 = 1_700_000_000_000;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn open(engine: Engine, dir: &Path) -> Store {
    Store::builder().engine(engine).open(dir.join("s")).unwrap()
}

fn open_at(engine: Engine, dir: &Path, clock: &Arc<ManualClock>) -> Store {
    Store::builder()
        .engine(engine)
        .clock(clock.clone())
        .sweep_interval(None)
        .open(dir.join("s"))
        .unwrap()
}

fn with_store(engine: Engine, clock: Option<Arc<ManualClock>>, f: impl FnOnce(Store)) {
    let dir = tmp();
    let mut b = Store::builder().engine(engine);
    if let Some(c) = clock {
        b = b.clock(c).sweep_interval(None);
    }
    let store = b.open(dir.path().join("s")).unwrap();
    f(store.clone());
    store.close().unwrap();
}

macro_rules! on_every_engine {
    ($($case:ident),* $(,)?) => {
        mod every_engine {
            $(
                #[test]
                fn $case() {
                    for engine in super::ENGINES {
                        super::$case(engine);
                    }
                }
            )*
        }
    };
}

on_every_engine!(
    service_methods_speak_the_original_json,
    service_rejects_unknown_methods_and_bad_json,
    service_clients_are_isolated,
    service_ttl_methods,
);

fn service_methods_speak_the_original_json(engine: Engine) {
    let dir = tmp();
    let svc = StateService::new(open(engine, dir.path()));
    // "value" is base64 of b"value", as Go's encoding/json writes a []byte.
    assert_eq!(
        svc.handle("u1", "set", r#"{"key":"k","value":"dmFsdWU="}"#)
            .unwrap(),
        "{}"
    );
    assert_eq!(
        svc.client("u1").unwrap().get("k").unwrap().unwrap(),
        b"value"
    );
    let got: serde_json::Value =
        serde_json::from_str(&svc.handle("u1", "get", r#"{"key":"k"}"#).unwrap()).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"key":"k","found":true,"value":"dmFsdWU="})
    );
    let got: serde_json::Value =
        serde_json::from_str(&svc.handle("u1", "get", r#"{"key":"nope"}"#).unwrap()).unwrap();
    assert_eq!(
        got,
        serde_json::json!({"key":"nope","found":false,"value":null})
    );
    svc.handle(
        "u1",
        "setMultiple",
        r#"{"kv":{"a":"MQ==","b":"Mg==","n":null}}"#,
    )
    .unwrap();
    let got: serde_json::Value = serde_json::from_str(
        &svc.handle("u1", "getMultiple", r#"{"keys":["a","b","n","zz"]}"#)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        got,
        serde_json::json!({"kv":{"a":"MQ==","b":"Mg==","n":""}})
    );
    let got: serde_json::Value =
        serde_json::from_str(&svc.handle("u1", "delete", r#"{"key":"a"}"#).unwrap()).unwrap();
    assert_eq!(got, serde_json::json!({"key":"a","found":true}));
    let got: serde_json::Value =
        serde_json::from_str(&svc.handle("u1", "delete", r#"{"key":"a"}"#).unwrap()).unwrap();
    assert_eq!(got, serde_json::json!({"key":"a","found":false}));
}

fn service_rejects_unknown_methods_and_bad_json(engine: Engine) {
    let dir = tmp();
    let svc = StateService::new(open(engine, dir.path()));
    let cases = [
        ("frobnicate", "{}", "unknown method"),
        ("get", "{not json", "malformed"),
        ("get", r#"{"keys":["a"]}"#, "malformed"),
        ("set", r#"{"key":"k","value":"***"}"#, "malformed"),
        ("set", r#"{"key":"k"}"#, "missing field `value`"),
        ("set", r#"{"key":"","value":"MQ=="}"#, "empty"),
        ("getMultiple", r#"{"keys":"a"}"#, "malformed"),
        ("setMultiple", r#"[1,2]"#, "malformed"),
    ];
    for (method, args, want) in cases {
        let err = svc.handle("u1", method, args).unwrap_err();
        assert_eq!(err.kind(), INVALID, "{method} {args}");
        assert!(err.to_string().contains(want), "{method} {args}: {err}");
    }
    assert_eq!(
        svc.handle("", "get", r#"{"key":"k"}"#).unwrap_err().kind(),
        INVALID
    );
    assert!(svc.store().bucket_names().unwrap().is_empty());
}

fn service_clients_are_isolated(engine: Engine) {
    let dir = tmp();
    let svc = StateService::new(open(engine, dir.path()));
    svc.handle("alice", "set", r#"{"key":"secret","value":"YQ=="}"#)
        .unwrap();
    let got: serde_json::Value =
        serde_json::from_str(&svc.handle("bob", "get", r#"{"key":"secret"}"#).unwrap()).unwrap();
    assert_eq!(got["found"], false);
    svc.handle("bob", "delete", r#"{"key":"secret"}"#).unwrap();
    assert_eq!(
        svc.client("alice").unwrap().get("secret").unwrap().unwrap(),
        b"a"
    );
}

fn service_ttl_methods(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let svc = StateService::new(open_at(engine, dir.path(), &clock));
    let json = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap();
    svc.handle("u", "set", r#"{"key":"s","value":"eA==","ttlMs":2000}"#)
        .unwrap();
    assert_eq!(
        json(svc.handle("u", "ttl", r#"{"key":"s"}"#).unwrap()),
        serde_json::json!({"key":"s","found":true,"ttlMs":2000})
    );
    assert_eq!(
        json(svc.handle("u", "persist", r#"{"key":"s"}"#).unwrap()),
        serde_json::json!({"key":"s","found":true})
    );
    assert_eq!(
        json(svc.handle("u", "ttl", r#"{"key":"s"}"#).unwrap()),
        serde_json::json!({"key":"s","found":true,"ttlMs":null})
    );
    assert_eq!(
        json(
            svc.handle("u", "expire", r#"{"key":"s","ttlMs":100}"#)
                .unwrap()
        ),
        serde_json::json!({"key":"s","found":true})
    );
    clock.advance(100);
    assert_eq!(
        json(svc.handle("u", "ttl", r#"{"key":"s"}"#).unwrap()),
        serde_json::json!({"key":"s","found":false,"ttlMs":null})
    );
    assert_eq!(
        json(
            svc.handle("u", "expire", r#"{"key":"s","ttlMs":100}"#)
                .unwrap()
        ),
        serde_json::json!({"key":"s","found":false})
    );
    for bad in [
        r#"{"key":"s","value":"eA==","ttlMs":0}"#,
        r#"{"key":"s","value":"eA==","ttlMs":-5}"#,
        r#"{"key":"s","value":"eA==","ttlMs":"soon"}"#,
    ] {
        let err = svc.handle("u", "set", bad).unwrap_err();
        assert_eq!(err.kind(), INVALID, "{bad}");
    }
}

#[test]
fn quotas_refuse_growth_and_allow_shrinking() {
    for engine in ENGINES {
        with_store(engine, None, |store| {
            let quotas = Arc::new(QuotaTable::new());
            quotas.set(
                "u",
                Quota {
                    max_records: Some(2),
                    max_bytes: Some(16),
                    max_value_size: Some(8),
                },
            );
            let svc = StateService::new(store.clone()).with_quotas(quotas);
            svc.set("u", "a", b"12345", None).unwrap();
            svc.set("u", "b", b"12345", None).unwrap();
            let e = svc.set("u", "c", b"1", None).unwrap_err();
            assert_eq!(e.kind(), Kind::QuotaExceeded);
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
            assert_eq!(e.kind(), Kind::QuotaExceeded);
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
        let quotas = Arc::new(QuotaTable::new());
        quotas.set(
            "u",
            Quota {
                max_records: Some(1),
                ..Quota::default()
            },
        );
        let svc = StateService::new(store).with_quotas(quotas);
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

#[test]
fn quotas_are_read_from_the_source_at_each_write() {
    // The host's source is asked at every quota-checked write: a change there
    // applies to the next write, with nothing pushed into the service.
    #[derive(Debug)]
    struct Flip(std::sync::atomic::AtomicBool);
    impl QuotaSource for Flip {
        fn quota(&self, _: &str) -> Quota {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                Quota {
                    max_records: Some(1),
                    ..Quota::default()
                }
            } else {
                Quota::default()
            }
        }
    }
    let source = Arc::new(Flip(std::sync::atomic::AtomicBool::new(false)));
    with_store(Engine::Memfile, None, |store| {
        let svc = StateService::new(store).with_quotas(source.clone());
        svc.set("u", "a", b"1", None).unwrap();
        svc.set("u", "b", b"1", None).unwrap();
        source.0.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(svc.quota("u").max_records, Some(1));
        let e = svc.set("u", "c", b"1", None).unwrap_err();
        assert_eq!(e.kind(), Kind::QuotaExceeded);
        assert_eq!(e.kind().as_str(), "quota exceeded");
        assert!(e.as_store().is_none());
        source.0.store(false, std::sync::atomic::Ordering::SeqCst);
        svc.set("u", "c", b"1", None).unwrap();
        assert_eq!(svc.usage("u").unwrap().records, 3);
    });
}

#[test]
fn a_refused_transaction_is_the_services_error_and_writes_nothing() {
    with_store(Engine::Sled, None, |store| {
        let quotas = Arc::new(QuotaTable::new());
        quotas.set(
            "u",
            Quota {
                max_value_size: Some(2),
                ..Quota::default()
            },
        );
        let svc = StateService::new(store).with_quotas(quotas);
        let e = svc
            .transaction("u", |tx| {
                tx.put("a", b"1".to_vec(), state_core::Expiry::Never)?;
                tx.put("b", b"123".to_vec(), state_core::Expiry::Never)
            })
            .unwrap_err();
        assert!(matches!(e, state_service::Error::QuotaExceeded(_)), "{e:?}");
        assert!(e.to_string().starts_with("quota exceeded: "), "{e}");
        assert_eq!(svc.client("u").unwrap().len().unwrap(), 0);
        // An error of the transaction's own is the core's, unchanged.
        let e = svc
            .transaction("u", |tx| {
                tx.put("", b"1".to_vec(), state_core::Expiry::Never)
            })
            .unwrap_err();
        assert_eq!(e.kind(), INVALID);
    });
}

#[test]
fn the_docs_table_is_the_method_table() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/service.md"))
        .unwrap();
    let table = state_service::markdown_table();
    assert!(
        docs.contains(&table),
        "docs/service.md's method table differs from state_service::METHODS; it should read:\n{table}"
    );
    // And every method the table names is answered (an unknown one is refused).
    let dir = tmp();
    let svc = StateService::new(open(Engine::Memfile, dir.path()));
    for m in METHODS {
        if let Err(e) = svc.handle("u", m.name, "{}") {
            assert!(!e.to_string().contains("unknown method"), "{}: {e}", m.name);
        }
    }
    let e = svc.handle("u", "nope", "{}").unwrap_err();
    assert!(e.to_string().contains("unknown method"), "{e}");
}
