//! Import and export of the original state service's store file
//! (`{bucketID: {key: base64-value}}`), with both engines.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use state_core::{Engine, ErrorKind, Store};

const ENGINES: [Engine; 2] = [Engine::Sled, Engine::Memfile];

fn open(engine: Engine, dir: &Path) -> Store {
    Store::builder().engine(engine).open(dir).unwrap()
}

/// Everything in a store: bucket -> key -> value.
fn dump(store: &Store) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for name in store.bucket_names().unwrap() {
        let b = store.bucket(&name).unwrap();
        out.insert(name, b.iter().map(|e| e.unwrap()).collect());
    }
    out
}

/// A file as the original wrote it (indented, Go base64).
fn original_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("state.json");
    let text = format!(
        r#"{{
  "user1": {{
    "layout": "{}",
    "empty": ""
  }},
  "device-7": {{
    "bin": "{}"
  }},
  "nothing": {{}}
}}"#,
        B64.encode(br#"{"cols":3}"#),
        B64.encode([0u8, 255, 10, 13])
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn import_of_an_original_store_file_loads_every_bucket_and_reports_counts() {
    for engine in ENGINES {
        let files = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = open(engine, dir.path());
        store.bucket("user1").unwrap().set("kept", b"old").unwrap();
        store
            .bucket("user1")
            .unwrap()
            .set("layout", b"old")
            .unwrap();
        let report = store.import_json(original_file(files.path())).unwrap();
        assert_eq!((report.buckets, report.records), (2, 3), "{engine}");
        assert_eq!(report.value_bytes, 10 + 4);
        let u = store.bucket("user1").unwrap();
        assert_eq!(u.get("layout").unwrap().unwrap(), br#"{"cols":3}"#);
        assert_eq!(u.get("empty").unwrap().unwrap(), b"");
        assert_eq!(u.get("kept").unwrap().unwrap(), b"old");
        let d = store.bucket("device-7").unwrap();
        assert_eq!(d.get("bin").unwrap().unwrap(), [0u8, 255, 10, 13]);
        assert_eq!(store.bucket_names().unwrap(), ["device-7", "user1"]);
    }
}

fn assert_rejected_and_nothing_written(engine: Engine, text: &str, expect: &[&str]) {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("bad.json");
    std::fs::write(&path, text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let err = store.import_json(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    for e in expect {
        assert!(err.to_string().contains(e), "{err} lacks {e:?}");
    }
    assert!(dump(&store).is_empty(), "a rejected file left data behind");
}

#[test]
fn malformed_json_is_rejected_with_line_and_column() {
    for engine in ENGINES {
        assert_rejected_and_nothing_written(
            engine,
            "{\n  \"a\": {\"k\": \"dg==\"},\n  \"b\": {\"k\": \"dg==\",}\n}",
            &["line 3 column", "bad.json"],
        );
        assert_rejected_and_nothing_written(engine, "[1, 2]", &["line 1 column"]);
        assert_rejected_and_nothing_written(
            engine,
            "{\"a\": {\"k\": 5}}",
            &["line 1 column", "base64 string"],
        );
    }
}

#[test]
fn a_bad_value_in_a_later_bucket_rejects_the_whole_file() {
    for engine in ENGINES {
        // The first bucket is fine; the second has invalid base64 on line 3.
        assert_rejected_and_nothing_written(
            engine,
            "{\"good\": {\"k\": \"dg==\"},\n\"bad\": {\"k1\": \"dg==\",\n \"k2\": \"not base64!\"}}",
            &["line 3 column", "not base64"],
        );
        assert_rejected_and_nothing_written(
            engine,
            "{\"good\": {\"k\": \"dg==\"}, \"bad\\u0001name\": {\"k\": \"dg==\"}}",
            &["bucket", "control"],
        );
        assert_rejected_and_nothing_written(
            engine,
            "{\"good\": {\"k\": \"dg==\"}, \"b\": {\"\": \"dg==\"}}",
            &["key must not be empty"],
        );
        assert_rejected_and_nothing_written(
            engine,
            "{\"b\": {\"k\": \"dg==\", \"k\": \"dg==\"}}",
            &["appears twice"],
        );
    }
}

#[test]
fn a_bucket_over_the_batch_limit_is_too_large_and_nothing_is_written() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("big.json");
    let big = B64.encode(vec![1u8; 600]);
    std::fs::write(
        &path,
        format!("{{\"a\": {{\"k\": \"dg==\"}}, \"b\": {{\"k1\": \"{big}\", \"k2\": \"{big}\"}}}}"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .engine(Engine::Memfile)
        .max_batch_size(1000)
        .open(dir.path())
        .unwrap();
    let err = store.import_json(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(dump(&store).is_empty());
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(Engine::Memfile, dir.path());
    let err = store.import_json(dir.path().join("nope.json")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("nope.json"), "{err}");
}

#[test]
fn export_then_import_round_trips_between_engines() {
    for (from, to) in [
        (Engine::Sled, Engine::Memfile),
        (Engine::Memfile, Engine::Sled),
    ] {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let src = open(from, a.path());
        for bucket in ["z-last", "a-first", "mid \"quoted\" ünïcode"] {
            let bk = src.bucket(bucket).unwrap();
            for i in 0..50u32 {
                let v: Vec<u8> = (0..i).map(|j| (i * 7 + j) as u8).collect();
                bk.set(&format!("key\t{i:02}\\ \u{e9}"), v).unwrap();
            }
        }
        let path = files.path().join("export.json");
        std::fs::write(&path, b"previous content").unwrap();
        src.export_json(&path).unwrap();
        let parsed: BTreeMap<String, BTreeMap<String, String>> =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(parsed.len(), 3);

        let dst = open(to, b.path());
        let report = dst.import_json(&path).unwrap();
        assert_eq!((report.buckets, report.records), (3, 150));
        assert_eq!(dump(&dst), dump(&src), "{from} -> {to}");

        // And back again: the second export is byte-identical to the first.
        let again = files.path().join("again.json");
        dst.export_json(&again).unwrap();
        assert_eq!(
            std::fs::read(&again).unwrap(),
            std::fs::read(&path).unwrap()
        );
    }
}

#[test]
fn export_of_an_empty_store_is_an_empty_object_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(Engine::Memfile, dir.path());
    let path = dir.path().join("out.json");
    store.export_json(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::json!({})
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn import_progress_is_reported_before_writing_and_after_each_bucket() {
    for engine in ENGINES {
        let files = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = open(engine, dir.path());
        let mut seen = Vec::new();
        let report = store
            .import_json_with_progress(original_file(files.path()), |p| {
                // The first call comes before anything is written.
                if seen.is_empty() {
                    assert!(store.bucket_names().unwrap().is_empty());
                }
                seen.push((
                    p.buckets_done,
                    p.buckets_total,
                    p.records_done,
                    p.records_total,
                ));
            })
            .unwrap();
        // Buckets are written in file order: user1 (2 records), then device-7 (1);
        // the empty bucket "nothing" is neither counted nor written.
        assert_eq!(seen, [(0, 2, 0, 3), (1, 2, 2, 3), (2, 2, 3, 3)], "{engine}");
        assert_eq!(report.records, 3);
    }
}

#[test]
fn a_rejected_file_reports_no_progress() {
    let files = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open(Engine::Memfile, dir.path());
    let bad = files.path().join("bad.json");
    std::fs::write(&bad, r#"{"b": {"k": "not base64!"}}"#).unwrap();
    let mut calls = 0;
    assert!(store
        .import_json_with_progress(&bad, |_| calls += 1)
        .is_err());
    assert_eq!(calls, 0);
}

#[test]
fn a_nil_value_in_an_original_store_file_imports_as_empty() {
    // Go's encoding/json writes a nil []byte as null: the original could write
    // {"k": null}, and its reader took it back as an empty value. So does import
    // (the one Go []byte codec, state_core::go_bytes, which the service shares).
    for engine in ENGINES {
        let files = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = files.path().join("state.json");
        std::fs::write(&path, r#"{"user1": {"nil": null, "v": "dg=="}}"#).unwrap();
        let store = open(engine, dir.path());
        store.import_json(&path).unwrap();
        let b = store.bucket("user1").unwrap();
        assert_eq!(b.get("nil").unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(b.get("v").unwrap().as_deref(), Some(&b"v"[..]));
        store.close().unwrap();
    }
}
