//! Whatever a client sends — a file to import — the store answers with a result or
//! an error and stays as it was on error: never a panic, never half a write.
//! Property tests over arbitrary and near-valid input. (The service's JSON requests
//! get the same test in service/tests/service.rs.)

use proptest::prelude::*;
use state_core::{Engine, ErrorKind, Store};

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
