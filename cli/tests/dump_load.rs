//! dump and load: the original's JSON format and JSON lines, round trips, the
//! original's own store files, malformed input.

mod common;

use common::{Env, ENGINES};
use predicates::prelude::*;
use predicates::str::contains;

fn read(env: &Env, name: &str) -> String {
    std::fs::read_to_string(env.file(name)).unwrap()
}

#[test]
fn dump_writes_the_originals_json_format() {
    let env = Env::new();
    env.seed("sled");
    let out = env.ok(&["dump", "device-7"]);
    assert_eq!(
        out,
        "{\n  \"device-7\": {\n    \"bin\": \"AP8KDQ==\",\n    \"ключ/ü\": \"w7xuw69jw7Zkw6k=\"\n  }\n}\n"
    );
    // A TTL cannot be represented in this format: say so on stderr.
    env.state(&["dump", "user1"])
        .assert()
        .success()
        .stderr(contains("--format jsonl keeps them"));
}

#[test]
fn dump_load_dump_round_trips_identically_in_both_formats_and_engines() {
    for engine in ENGINES {
        for format in ["json", "jsonl"] {
            let env = Env::new();
            env.seed(engine);
            env.ok(&["dump", "--format", format, "-o", "first"]);
            let other = Env {
                store: env.tmp.path().join("other-store"),
                ..env
            };
            other.ok(&["--engine", engine, "load", "first", "--format", format]);
            other.ok(&["dump", "--format", format, "-o", "second"]);
            let env = other;
            assert_eq!(
                read(&env, "first"),
                read(&env, "second"),
                "{engine} {format}"
            );
            assert!(!read(&env, "first").is_empty());
        }
    }
}

#[test]
fn jsonl_keeps_ttls_as_absolute_deadlines() {
    let env = Env::new();
    env.seed("memfile");
    let out = env.ok(&["dump", "user1", "--format", "jsonl"]);
    let session: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["key"] == "session")
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = session["expires_at_ms"].as_u64().unwrap();
    assert!(
        at > now + 3_500_000 && at <= now + 3_600_000,
        "{at} vs {now}"
    );
    assert!(out.lines().filter(|l| l.contains("expires_at_ms")).count() == 1);
}

#[test]
fn dump_to_a_file_matches_the_cores_exporter_byte_for_byte() {
    let env = Env::new();
    env.seed("memfile");
    env.ok(&["dump", "-o", "cli.json"]);
    let store = state_core::Store::builder()
        .engine(state_core::Engine::Memfile)
        .open(&env.store)
        .unwrap();
    store.export_json(env.file("core.json")).unwrap();
    store.close().unwrap();
    assert_eq!(read(&env, "cli.json"), read(&env, "core.json"));
}

#[test]
fn dump_of_a_missing_bucket_exits_1_before_writing() {
    let env = Env::new();
    env.seed("sled");
    env.state(&["dump", "user1", "ghost", "-o", "out.json"])
        .assert()
        .code(1)
        .stderr(contains("bucket \"ghost\" not found"));
    assert!(!env.file("out.json").exists());
}

#[test]
fn load_reads_an_original_store_file_and_prints_a_one_line_summary() {
    let env = Env::new();
    // As the original wrote it: indented JSON, Go's base64, an empty bucket.
    std::fs::write(
        env.file("state.json"),
        r#"{
  "user1": {
    "layout": "eyJjb2xzIjozfQ==",
    "empty": ""
  },
  "device-7": {
    "bin": "AP8KDQ=="
  },
  "nothing": {}
}"#,
    )
    .unwrap();
    env.state(&["load", "state.json"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(
            r"^loaded 3 records \(14 B of values\) into 2 buckets from state\.json in \d+\.\d\d s\n$",
        )
        .unwrap())
        // Not a terminal: no progress bar.
        .stderr("");
    assert_eq!(env.ok(&["get", "user1", "layout"]), "{\"cols\":3}\n");
    assert_eq!(env.ok(&["get", "user1", "empty"]), "\n");
    assert_eq!(env.ok(&["buckets"]), "device-7\nuser1\n");
}

#[test]
fn load_reports_json_summary_and_reads_stdin() {
    let env = Env::new();
    let out = env
        .state(&["--json", "load", "-"])
        .write_stdin(r#"{"b": {"k": "dg=="}}"#)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["records"], 1);
    assert_eq!(v["buckets"], 1);
    assert_eq!(v["file"], "standard input");
    env.state(&["load", "-", "--format", "jsonl"])
        .write_stdin("{\"bucket\":\"b\",\"key\":\"j\",\"value\":\"dw==\"}\n")
        .assert()
        .success();
    assert_eq!(env.ok(&["keys", "b", "-v"]), "j\tw\nk\tv\n");
}

#[test]
fn a_malformed_json_file_is_rejected_with_line_and_column_and_nothing_written() {
    let env = Env::new();
    std::fs::write(
        env.file("bad.json"),
        "{\n  \"b\": {\n    \"k\": \"dg==\",\n    \"x\" 5\n  }\n}\n",
    )
    .unwrap();
    env.state(&["load", "bad.json"])
        .assert()
        .code(2)
        .stderr(contains("bad.json: line 4 column"));
    // A bad base64 value names its place too.
    std::fs::write(env.file("b64.json"), "{\"b\": {\"k\": \"***\"}}").unwrap();
    env.state(&["load", "b64.json"])
        .assert()
        .code(2)
        .stderr(contains("line 1 column").and(contains("base64")));
    env.state(&["load", "-"])
        .write_stdin("{\"b\": [1]}")
        .assert()
        .code(2)
        .stderr(contains("standard input: line 1 column"));
    env.state(&["buckets"]).assert().success().stdout("");
}

#[test]
fn a_malformed_jsonl_line_is_rejected_with_its_line_and_column() {
    let env = Env::new();
    let text = "{\"bucket\":\"b\",\"key\":\"a\",\"value\":\"MQ==\"}\n\
                {\"bucket\":\"b\",\"key\":\"b\",\"value\":\"Mg==\"}\n\
                \n\
                {\"bucket\":\"b\",\"key\":\"c\",\"valeu\":\"Mw==\"}\n";
    std::fs::write(env.file("bad.jsonl"), text).unwrap();
    env.state(&["load", "bad.jsonl"])
        .assert()
        .code(2)
        .stderr(contains("bad.jsonl: line 4: column").and(contains("valeu")))
        .stderr(contains("the 2 records before line 4 were loaded"));
    assert_eq!(env.ok(&["keys", "b"]), "a\nb\n");
    // A key the store refuses is traced back to its line as well.
    std::fs::write(
        env.file("badkey.jsonl"),
        "{\"bucket\":\"c\",\"key\":\"ok\",\"value\":\"\"}\n{\"bucket\":\"c\",\"key\":\"\",\"value\":\"\"}\n",
    )
    .unwrap();
    env.state(&["load", "badkey.jsonl"])
        .assert()
        .code(2)
        .stderr(contains("badkey.jsonl: line 2: invalid argument"));
}

#[test]
fn jsonl_load_skips_records_that_already_expired() {
    let env = Env::new();
    std::fs::write(
        env.file("old.jsonl"),
        "{\"bucket\":\"b\",\"key\":\"gone\",\"value\":\"\",\"expires_at_ms\":1000}\n\
         {\"bucket\":\"b\",\"key\":\"kept\",\"value\":\"\"}\n",
    )
    .unwrap();
    env.state(&["load", "old.jsonl"])
        .assert()
        .success()
        .stdout(contains("loaded 1 records").and(contains("skipped 1 already expired")));
    assert_eq!(env.ok(&["keys", "b"]), "kept\n");
}

#[test]
fn load_of_a_missing_file_exits_2_and_creates_no_store() {
    let env = Env::new();
    env.state(&["load", "nope.json"])
        .assert()
        .code(2)
        .stderr(contains("nope.json"));
    assert!(!env.store.exists());
}
