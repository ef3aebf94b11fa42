//! check (verification) and compact (reclaiming space), against both engines.

mod common;

use common::{wait_unlocked, Env, ENGINES};
use predicates::prelude::*;
use predicates::str::contains;

/// `rounds` loads of the same `n` keys with fresh 1000-byte values, so the store
/// holds garbage to reclaim, plus a key with a TTL.
fn churn(env: &Env, engine: &str, n: usize, rounds: usize) {
    for round in 0..rounds {
        let lines: String = (0..n)
            .map(|i| {
                let value = state_core::encode_value(&vec![(round * 7 + i) as u8; 1000]);
                format!("{{\"bucket\":\"b\",\"key\":\"k{i:06}\",\"value\":\"{value}\"}}\n")
            })
            .collect();
        std::fs::write(env.file("round.jsonl"), lines).unwrap();
        env.ok(&["--engine", engine, "load", "round.jsonl"]);
    }
    env.ok(&["set", "sessions", "s1", "token", "--ttl", "1h"]);
}

#[test]
fn check_passes_on_a_sound_store_and_reports_what_it_read() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        env.state(&["check"])
            .assert()
            .success()
            .stdout(contains(
                "bucket user1: 6 records, 1 with a TTL (0 expired, not yet swept)",
            ))
            .stdout(contains(
                "ok: 2 buckets, 8 records read, 1 with a TTL, expiry index consistent",
            ));
        let out = env.ok(&["--json", "check"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ok"], true, "{engine}");
        assert_eq!(v["records"], 8);
        assert_eq!(v["with_ttl"], 1);
        assert_eq!(v["indexed_ttl"], 1);
        assert_eq!(v["problems"], serde_json::json!([]));
    }
}

#[test]
fn check_reads_expired_records_the_sweeper_has_not_removed_yet() {
    let env = Env::new();
    env.ok(&["set", "b", "short", "v", "--ttl", "100ms"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.state(&["check"]).assert().success().stdout(contains(
        "bucket b: 1 records, 1 with a TTL (1 expired, not yet swept)",
    ));
}

#[test]
fn check_reports_an_unreadable_record_and_a_missing_expiry_index_entry() {
    let env = Env::new();
    env.ok(&["--engine", "sled", "set", "b", "k", "v", "--ttl", "1h"]);
    env.ok(&["set", "c", "a", "fine"]);
    {
        // Below libstate: drop the expiry index entry of b/k (in bucket b's index,
        // the companion bucket "\x03expiry\x1fb") and store a record whose header
        // no libstate version writes.
        let db = sled::open(&env.store).unwrap();
        let index: Vec<_> = db
            .scan_prefix(b"\x03expiry\x1fb\x00")
            .keys()
            .map(|k| k.unwrap())
            .collect();
        assert_eq!(index.len(), 1);
        db.remove(&index[0]).unwrap();
        db.insert(b"c\x00b-bad", &[7u8, 1, 2][..]).unwrap();
        db.flush().unwrap();
    }
    wait_unlocked(&env.store.join("db"));
    env.state(&["check"])
        .assert()
        .code(3)
        .stdout(contains("FAILED: 2 problems"))
        .stdout(contains("bucket c: reading after key \"a\"").and(contains("unknown header")))
        .stdout(contains(
            "expiry index: 1 records carry a deadline but 0 are indexed",
        ))
        .stderr(contains("check found 2 problems"));
}

#[test]
fn check_of_a_damaged_store_exits_3_naming_the_damage() {
    for engine in ENGINES {
        let env = Env::new();
        churn(&env, engine, 500, 1);
        match engine {
            // An emptied log: sled alone would open it as an empty store.
            "sled" => std::fs::OpenOptions::new()
                .write(true)
                .open(env.store.join("db"))
                .unwrap()
                .set_len(0)
                .unwrap(),
            // One flipped byte in the middle of the log fails its record's checksum.
            _ => {
                let log = std::fs::read_dir(&env.store)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
                    .max_by_key(|p| std::fs::metadata(p).unwrap().len())
                    .unwrap();
                let mut bytes = std::fs::read(&log).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xFF;
                std::fs::write(&log, bytes).unwrap();
            }
        }
        env.state(&["check"])
            .assert()
            .code(3)
            .stderr(contains("check: the store cannot be opened").and(contains("corrupt")));
    }
}

#[test]
fn check_of_a_missing_store_exits_3_and_creates_nothing() {
    let env = Env::new();
    env.state(&["check"])
        .assert()
        .code(3)
        .stderr(contains("no store at").and(contains("does not exist")));
    assert!(!env.store.exists());
}

#[test]
fn compact_reclaims_space_keeps_every_record_and_ttl_and_reports_bytes() {
    for engine in ENGINES {
        let env = Env::new();
        churn(&env, engine, 2000, 4);
        let before = env.ok(&["dump", "--format", "jsonl"]);
        let out = env.ok(&["--json", "compact"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let (b, a) = (
            v["before_bytes"].as_u64().unwrap(),
            v["after_bytes"].as_u64().unwrap(),
        );
        assert!(a < b, "{engine}: {b} -> {a}");
        assert_eq!(v["records"], 2001);
        assert_eq!(v["engine"], engine);
        // Same records, values and deadlines.
        assert_eq!(env.ok(&["dump", "--format", "jsonl"]), before, "{engine}");
        env.ok(&["check"]);
        assert!(!env.tmp.path().join(".state-data.compact").exists());
        env.state(&["compact"]).assert().success().stdout(
            predicate::str::is_match(
                r"^compacted .*state-data: .* -> .* \(2001 records in 2 buckets\)\n$",
            )
            .unwrap(),
        );
    }
}

#[test]
fn compact_refuses_to_run_over_a_leftover_copy_and_leaves_the_store_alone() {
    let env = Env::new();
    env.seed("memfile");
    let before = env.ok(&["dump", "--format", "jsonl"]);
    let leftover = env.tmp.path().join(".state-data.compact");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("marker"), b"x").unwrap();
    env.state(&["compact"])
        .assert()
        .code(3)
        .stderr(contains("already exists").and(contains("interrupted")))
        .stderr(contains("hint:"));
    assert_eq!(env.ok(&["dump", "--format", "jsonl"]), before);
    assert!(leftover.join("marker").exists());
}

#[test]
fn backup_writes_a_copy_that_checks_and_refuses_an_existing_destination() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        let copy = env.file("copy");
        let copy_arg = copy.to_str().unwrap();
        env.state(&["backup", copy_arg])
            .assert()
            .success()
            .stdout(contains("8 records in 2 buckets"));
        // The copy is a store of the same engine that passes `state check`.
        let meta = std::fs::read_to_string(copy.join("libstate.meta")).unwrap();
        assert!(meta.contains(engine), "{engine}: {meta}");
        let on_copy = |args: &[&str]| {
            let mut cmd = assert_cmd::Command::cargo_bin("state").unwrap();
            cmd.env_remove("STATE_STORE")
                .arg("--store")
                .arg(&copy)
                .args(args);
            cmd
        };
        on_copy(&["check"])
            .assert()
            .success()
            .stdout(contains("ok: 2 buckets, 8 records read, 1 with a TTL"));
        on_copy(&["get", "user1", "theme"])
            .assert()
            .success()
            .stdout("dark\n");
        // A backup never overwrites: exit code 3, and the copy is untouched.
        env.state(&["backup", copy_arg])
            .assert()
            .code(3)
            .stderr(contains("already exists"));
        let out = env.ok(&["--json", "backup", env.file("copy2").to_str().unwrap()]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v["records"].as_u64(), v["engine"].as_str()),
            (Some(8), Some(engine))
        );
    }
}
