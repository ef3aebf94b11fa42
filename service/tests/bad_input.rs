//! Whatever a client sends to the state service — any method name, any body — it
//! answers with a JSON reply or a client error, and an error changes nothing: never
//! a panic, never half a write. Property tests over arbitrary and near-valid
//! requests, on both local engines. (Files offered to the core's import get the
//! same test in core/tests/bad_input.rs; the input strategies are shared.)

#[path = "../../core/tests/support/arbitrary.rs"]
mod arbitrary;

use arbitrary::{contents, json_value};
use proptest::prelude::*;
use state_core::{Engine, ErrorKind, Store};
use state_service::{ErrorKind as Kind, StateService, METHODS};

/// Every method's name, and one that is none.
fn method_names() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).chain(["nope"]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any request gets a reply or an error; an error changes nothing.
    #[test]
    fn service_requests_reply_or_fail_cleanly(
        engine_is_sled in any::<bool>(),
        client in prop_oneof![Just("client".to_string()), ".{0,10}"],
        method in proptest::sample::select(method_names()),
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
                    matches!(e.kind(), Kind::Store(ErrorKind::InvalidArgument | ErrorKind::TooLarge)),
                    "{method} {body:?}: {e}"
                );
                prop_assert_eq!(contents(&store), before);
            }
        }
        store.close().unwrap();
    }
}
