//! Whatever a client sends — a file to import — the store answers with a result or
//! an error and stays as it was on error: never a panic, never half a write.
//! Property tests over arbitrary and near-valid input. (The service's JSON requests
//! get the same test in service/tests/bad_input.rs.)

#[path = "support/arbitrary.rs"]
mod arbitrary;

use arbitrary::{contents, json_value};
use proptest::prelude::*;
use state_core::{Engine, ErrorKind, Store};

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
