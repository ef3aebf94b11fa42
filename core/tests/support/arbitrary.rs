//! Input for the bad-input property tests, shared by `core/tests/bad_input.rs` (files
//! offered to import) and `service/tests/bad_input.rs` (the service's JSON requests,
//! which include this file by path): arbitrary JSON of the shapes the messages
//! use, and a store's whole contents, to show that a refused input changed nothing.

use proptest::prelude::*;
use state_core::Store;

/// JSON values of the shapes the service expects, with wrong types and odd strings
/// mixed in.
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
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
pub type Contents = Vec<(String, Vec<(String, Vec<u8>)>)>;

pub fn contents(store: &Store) -> Contents {
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
