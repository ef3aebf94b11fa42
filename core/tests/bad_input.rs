//! Whatever a client sends — the service's JSON requests, a file to import — the
//! store answers with a result or an error and stays as it was on error: never a
//! panic, never half a write. Property tests over arbitrary and near-valid input.

use proptest::prelude::*;
use state_core::{Engine, ErrorKind, StateService, Store};

const METHODS: [&str; 9] = [
    "get",
    "set",
    "delete",
    "getMultiple",
    "setMultiple",
    "expire",
    "persist",
    "ttl",
    "nope",
];

/// JSON values of the shapes the service expects, with wrong types and odd strings
/// mixed in.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        "[A-Za-z0-9+/=]{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("key".to_string()),
                    Just("value".to_string()),
                    Just("keys".to_string()),
                    Just("kv".to_string()),
                    Just("ttlMs".to_string()),
                    ".{0,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every bucket with its entries, in order.
type Contents = Vec<(String, Vec<(String, Vec<u8>)>)>;

fn contents(store: &Store) -> Contents {
    store
        .bucket_names()
        .unwrap()
        .into_iter()
        .map(|name| {
            let b = store.bucket(&name).unwrap();
            let entries = b.iter().map(|e| e.unwrap()).collect();
            (name, entries)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any request gets a reply or an error; an error changes nothing.
    #[test]
    fn service_requests_reply_or_fail_cleanly(
        engine_is_sled in any::<bool>(),
        client in prop_oneof![Just("client".to_string()), ".{0,10}"],
        method in proptest::sample::select(&METHODS[..]),
        body in prop_oneof![
            json_value().prop_map(|v| v.to_string()),
            ".{0,40}",
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let engine = if engine_is_sled { Engine::Sled } else { Engine::Memfile };
        let store = Store::builder().engine(engine).open(dir.path()).unwrap();
        let svc = StateService::new(store.clone());
        svc.handle("client", "set", r#"{"key":"k","value":"dg=="}"#).unwrap();
        let before = contents(&store);
        match svc.handle(&client, method, &body) {
            Ok(reply) => {
                prop_assert!(serde_json::from_str::<serde_json::Value>(&reply).is_ok(), "{reply}");
            }
            Err(e) => {
                prop_assert!(
                    matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::TooLarge),
                    "{method} {body:?}: {e}"
                );
                prop_assert_eq!(contents(&store), before);
            }
        }
        store.close().unwrap();
    }

    /// Any file offered to `import_json` is imported or refused; a refused file
    /// leaves the store as it was.
    #[test]
    fn imports_load_or_are_refused_whole(
        doc in prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::btree_map(
                ".{0,8}",
                proptest::collection::btree_map(".{0,8}", json_value(), 0..3),
                0..3
            )
            .prop_map(|m| serde_json::to_vec(&m).unwrap()),
            proptest::collection::vec(any::<u8>(), 0..64),
        ],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::builder().engine(Engine::Memfile).open(dir.path().join("s")).unwrap();
        store.bucket("existing").unwrap().set("k", b"v").unwrap();
        let before = contents(&store);
        let file = dir.path().join("in.json");
        std::fs::write(&file, &doc).unwrap();
        if let Err(e) = store.import_json(&file) {
            prop_assert!(
                matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::TooLarge),
                "{e}"
            );
            prop_assert_eq!(contents(&store), before);
        }
        store.close().unwrap();
    }
}
