//! Export and import through readers and writers: JSON lines with deadlines,
//! progress, bucket selection, errors naming the line.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use state_core::{Engine, ErrorKind, Format, ImportProgress, ManualClock, Store, Ttl};

const ENGINES: [Engine; 2] = [Engine::Sled, Engine::Memfile];

fn open(engine: Engine, dir: &Path, clock: &Arc<ManualClock>) -> Store {
    Store::builder()
        .engine(engine)
        .clock(clock.clone())
        .sweep_interval(None)
        .open(dir)
        .unwrap()
}

fn seed(store: &Store) {
    let u = store.bucket("user1").unwrap();
    u.set("layout", r#"{"cols":3}"#).unwrap();
    u.set("bin", [0u8, 255, 10]).unwrap();
    u.set_with_ttl("session", "tok", Duration::from_secs(3600))
        .unwrap();
    u.set_with_ttl("old", "x", Duration::from_secs(1)).unwrap();
    store.bucket("device-7").unwrap().set("k", "v").unwrap();
}

#[test]
fn jsonl_round_trips_values_and_exact_deadlines_and_leaves_out_expired_records() {
    for engine in ENGINES {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = open(engine, &tmp.path().join("a"), &clock);
        seed(&store);
        clock.advance(2_000);
        let mut out = Vec::new();
        let report = store.export_to(&mut out, Format::JsonLines).unwrap();
        assert_eq!((report.buckets, report.records, report.with_ttl), (2, 4, 1));
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains(
            r#"{"bucket":"user1","key":"session","value":"dG9r","expires_at_ms":4600000}"#
        ));
        assert!(!text.contains("\"old\""));

        let copy = open(engine, &tmp.path().join("b"), &clock);
        let loaded = copy
            .import_from(&out[..], Format::JsonLines, |_| {})
            .unwrap();
        assert_eq!((loaded.buckets, loaded.records), (2, 4));
        let s = copy.bucket("user1").unwrap();
        assert_eq!(
            s.ttl("session").unwrap(),
            Ttl::Expires(Duration::from_millis(3_598_000))
        );
        let mut again = Vec::new();
        copy.export_to(&mut again, Format::JsonLines).unwrap();
        assert_eq!(again, out, "{engine}");
        store.close().unwrap();
        copy.close().unwrap();
    }
}

#[test]
fn jsonl_import_skips_records_whose_deadline_has_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(Engine::Memfile, &tmp.path().join("a"), &clock);
    let text = "{\"bucket\":\"b\",\"key\":\"gone\",\"value\":\"\",\"expires_at_ms\":1000}\n\
                {\"bucket\":\"b\",\"key\":\"kept\",\"value\":\"\"}\n";
    let r = store
        .import_from(text.as_bytes(), Format::JsonLines, |_| {})
        .unwrap();
    assert_eq!((r.records, r.expired_skipped), (1, 1));
    assert_eq!(store.bucket("b").unwrap().len().unwrap(), 1);
    store.close().unwrap();
}

#[test]
fn a_refused_jsonl_line_is_named_and_the_records_before_it_are_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(Engine::Sled, &tmp.path().join("a"), &clock);
    let text = "{\"bucket\":\"b\",\"key\":\"a\",\"value\":\"MQ==\"}\n\
                {\"bucket\":\"b\",\"key\":\"b\",\"value\":\"Mg==\"}\n\
                \n\
                {\"bucket\":\"b\",\"key\":\"c\",\"valeu\":\"Mw==\"}\n";
    let mut last = ImportProgress::default();
    let err = store
        .import_from(text.as_bytes(), Format::JsonLines, |p| last = *p)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let msg = err.to_string();
    assert!(
        msg.contains("line 4: column") && msg.contains("valeu"),
        "{msg}"
    );
    assert_eq!((last.line, last.records_done), (4, 2));
    assert_eq!(store.bucket("b").unwrap().len().unwrap(), 2);
    // A key the store refuses is traced to its line, inside a batch.
    let bad = "{\"bucket\":\"c\",\"key\":\"ok\",\"value\":\"\"}\n{\"bucket\":\"c\",\"key\":\"\",\"value\":\"\"}\n";
    let err = store
        .import_from(bad.as_bytes(), Format::JsonLines, |p| last = *p)
        .unwrap_err();
    assert!(
        err.to_string().contains("line 2: invalid argument"),
        "{err}"
    );
    assert_eq!(last.records_done, 1);
    store.close().unwrap();
}

#[test]
fn export_with_writes_only_the_named_buckets_and_reports_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(Engine::Memfile, &tmp.path().join("a"), &clock);
    seed(&store);
    let mut out = Vec::new();
    let mut calls = Vec::new();
    let names = vec!["device-7".to_string(), "device-7".to_string()];
    let r = store
        .export_with(&mut out, Format::Json, Some(&names), |p| {
            calls.push((p.buckets_done, p.buckets_total, p.records_done))
        })
        .unwrap();
    assert_eq!(r.records, 1);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\n  \"device-7\": {\n    \"k\": \"dg==\"\n  }\n}\n"
    );
    assert_eq!(calls, [(1, 1, 1)]);
    store.close().unwrap();
}

#[test]
fn export_json_to_a_writer_matches_the_file_export_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(Engine::Sled, &tmp.path().join("a"), &clock);
    seed(&store);
    let mut out = Vec::new();
    store.export_json_to(&mut out).unwrap();
    store.export_json(tmp.path().join("f.json")).unwrap();
    assert_eq!(out, std::fs::read(tmp.path().join("f.json")).unwrap());
    store.close().unwrap();
}

#[test]
fn a_failing_writer_is_an_io_error_on_the_output() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(Engine::Sled, &tmp.path().join("a"), &clock);
    seed(&store);
    let err = store.export_to(Broken, Format::JsonLines).unwrap_err();
    match err {
        state_core::Error::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::BrokenPipe)
        }
        other => panic!("{other}"),
    }
    store.close().unwrap();
}

#[test]
fn json_from_a_reader_names_line_and_column_without_a_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(Engine::Sled, &tmp.path().join("a"), &clock);
    let err = store.import_json_from(&b"{\"b\": [1]}"[..]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid argument: line 1 column"),
        "{err}"
    );
    std::fs::write(tmp.path().join("x.json"), "{\"b\": [1]}").unwrap();
    let err = store.import_json(tmp.path().join("x.json")).unwrap_err();
    assert!(err.to_string().contains("x.json: line 1 column"), "{err}");
    store.close().unwrap();
}

#[test]
fn formats_parse_from_names_and_paths() {
    assert_eq!("jsonl".parse::<Format>().unwrap(), Format::JsonLines);
    assert_eq!("json".parse::<Format>().unwrap(), Format::Json);
    assert!("xml".parse::<Format>().is_err());
    assert_eq!(Format::from_path(Path::new("a.ndjson")), Format::JsonLines);
    assert_eq!(Format::from_path(Path::new("a.json")), Format::Json);
}

#[test]
fn import_file_names_the_file_in_messages_and_io_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = open(Engine::Memfile, &tmp.path().join("a"), &clock);
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"bucket\":\"b\"}\n").unwrap();
    let err = store
        .import_file(&bad, Format::JsonLines, |_| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("bad.jsonl: line 1: column"),
        "{err}"
    );
    let missing = tmp.path().join("missing.json");
    match store
        .import_file(&missing, Format::Json, |_| {})
        .unwrap_err()
    {
        state_core::Error::Io { path, .. } => assert_eq!(path, missing),
        other => panic!("{other}"),
    }
    store.close().unwrap();
}
