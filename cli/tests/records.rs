//! The record-level subcommands, run as the real binary against both engines:
//! buckets, info, get, set, del, keys, ttl, expire, persist, rm-bucket.

mod common;

use common::{Env, ENGINES};
use predicates::prelude::*;
use predicates::str::contains;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn buckets_lists_names_in_byte_order_as_text_and_json() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        assert_eq!(env.ok(&["buckets"]), "device-7\nuser1\n", "{engine}");
        assert_eq!(
            json(&env.ok(&["--json", "buckets"])),
            serde_json::json!(["device-7", "user1"])
        );
    }
}

#[test]
fn info_reports_engine_counts_expiring_keys_and_disk_bytes() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        let text = env.ok(&["info"]);
        assert!(text.contains(&format!("engine    {engine}")), "{text}");
        assert!(text.contains("buckets   2"), "{text}");
        assert!(text.contains("records   8"), "{text}");
        assert!(text.contains("expiring  1"), "{text}");
        let v = json(&env.ok(&["--json", "info"]));
        assert_eq!(v["engine"], engine);
        assert_eq!(v["buckets"], 2);
        assert_eq!(v["records"], 8);
        assert_eq!(v["expiring"], 1);
        assert!(v["disk_bytes"].as_u64().unwrap() > 0);
    }
}

#[test]
fn get_prints_text_binary_as_base64_raw_bytes_and_json() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        assert_eq!(env.ok(&["get", "user1", "layout"]), "{\"cols\":3}\n");
        assert_eq!(env.ok(&["get", "device-7", "bin"]), "base64:AP8KDQ==\n");
        env.state(&["get", "device-7", "bin", "--raw"])
            .assert()
            .success()
            .stdout(predicate::eq(&[0u8, 255, 10, 13][..]));
        assert_eq!(env.ok(&["get", "device-7", "ключ/ü"]), "ünïcödé\n");
        let v = json(&env.ok(&["--json", "get", "device-7", "bin"]));
        assert_eq!(
            v,
            serde_json::json!({"bucket": "device-7", "key": "bin", "found": true, "value": "AP8KDQ=="})
        );
    }
}

#[test]
fn get_of_a_missing_key_exits_1_and_says_so() {
    let env = Env::new();
    env.seed("sled");
    env.state(&["get", "user1", "nope"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("key \"nope\" not found in bucket \"user1\""));
    let out = env
        .state(&["--json", "get", "user1", "nope"])
        .assert()
        .code(1);
    let v = json(std::str::from_utf8(&out.get_output().stdout).unwrap());
    assert_eq!(v["found"], false);
    assert_eq!(v["value"], serde_json::Value::Null);
}

#[test]
fn set_takes_the_value_from_the_argument_a_file_or_stdin() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        std::fs::write(env.file("v.bin"), [1u8, 2, 3]).unwrap();
        env.ok(&["set", "b", "from-file", "--file", "v.bin"]);
        env.state(&["set", "b", "from-stdin", "-"])
            .write_stdin("piped\n")
            .assert()
            .success();
        env.state(&["set", "b", "from-stdin-file", "--file", "-"])
            .write_stdin("also piped")
            .assert()
            .success();
        env.state(&["get", "b", "from-file", "--raw"])
            .assert()
            .stdout(predicate::eq(&[1u8, 2, 3][..]));
        assert_eq!(env.ok(&["get", "b", "from-stdin"]), "piped\n\n");
        assert_eq!(env.ok(&["get", "b", "from-stdin-file"]), "also piped\n");
        env.ok(&["set", "b", "negative", "--", "-5"]);
        assert_eq!(env.ok(&["get", "b", "negative"]), "-5\n");
        let v = json(&env.ok(&["--json", "set", "b", "k", "vv", "--ttl", "90s"]));
        assert_eq!(v["bytes"], 2);
        assert_eq!(v["ttl_ms"], 90_000);
    }
}

#[test]
fn set_without_a_ttl_clears_the_old_one_and_with_one_sets_it() {
    let env = Env::new();
    env.seed("memfile");
    env.ok(&["set", "user1", "session", "fresh"]);
    assert_eq!(env.ok(&["ttl", "user1", "session"]), "no expiry\n");
    env.ok(&["set", "user1", "session", "again", "--ttl", "10m"]);
    let v = json(&env.ok(&["--json", "ttl", "user1", "session"]));
    let ms = v["ttl_ms"].as_u64().unwrap();
    assert!(ms > 590_000 && ms <= 600_000, "{ms}");
}

#[test]
fn set_rejects_bad_input_with_exit_2_and_writes_nothing() {
    let env = Env::new();
    env.seed("sled");
    env.state(&["set", "user1", "", "v"])
        .assert()
        .code(2)
        .stderr(contains("invalid argument"));
    env.state(&["set", "bad\u{7}bucket", "k", "v"])
        .assert()
        .code(2)
        .stderr(contains("invalid argument"));
    env.state(&["set", "user1", "k", "v", "--ttl", "soon"])
        .assert()
        .code(2)
        .stderr(contains("expected e.g. 30s"));
    env.state(&["set", "user1", "k", "v", "--ttl", "0s"])
        .assert()
        .code(2)
        .stderr(contains("TTL"));
    env.state(&["set", "user1", "k"])
        .assert()
        .code(2)
        .stderr(contains("VALUE"));
    env.state(&["set", "user1", "k", "--file", "missing.bin"])
        .assert()
        .code(2)
        .stderr(contains("missing.bin"));
    env.state(&["get", "user1", "k"]).assert().code(1);
}

#[test]
fn a_short_ttl_makes_the_key_disappear() {
    let env = Env::new();
    env.ok(&["set", "b", "k", "v", "--ttl", "300ms"]);
    std::thread::sleep(std::time::Duration::from_millis(600));
    env.state(&["get", "b", "k"]).assert().code(1);
}

#[test]
fn del_removes_a_key_and_exits_1_when_it_did_not_exist() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        env.state(&["del", "user1", "theme"])
            .assert()
            .success()
            .stdout("");
        env.state(&["get", "user1", "theme"]).assert().code(1);
        env.state(&["del", "user1", "theme"])
            .assert()
            .code(1)
            .stderr(contains("not found"));
        let v = json(&env.ok(&["--json", "del", "user1", "layout"]));
        assert_eq!(v["found"], true);
    }
}

#[test]
fn keys_lists_in_order_with_prefix_from_limit_reverse_and_values() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        assert_eq!(
            env.ok(&["keys", "user1"]),
            "layout\nsession\ntheme\nwidget/a\nwidget/b\nwidget/c\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--prefix", "widget/"]),
            "widget/a\nwidget/b\nwidget/c\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--from", "t", "--limit", "2"]),
            "theme\nwidget/a\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--reverse", "--limit", "2"]),
            "widget/c\nwidget/b\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--reverse", "--from", "t"]),
            "session\nlayout\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--prefix", "widget/", "--from", "widget/b"]),
            "widget/b\nwidget/c\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--prefix", "widget/", "--from", "widget/b", "-r"]),
            "widget/b\nwidget/a\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--prefix", "widget/", "--from", "a"]),
            "widget/a\nwidget/b\nwidget/c\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--prefix", "widget/", "--from", "a", "-r"]),
            ""
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--prefix", "widget/", "--from", "x", "-r", "-n", "1"]),
            "widget/c\n"
        );
        assert_eq!(
            env.ok(&["keys", "user1", "--prefix", "widget/", "--from", "x"]),
            ""
        );
        assert_eq!(
            env.ok(&["keys", "device-7", "--values"]),
            "bin\tbase64:AP8KDQ==\nключ/ü\tünïcödé\n"
        );
        let v = json(&env.ok(&[
            "--json", "keys", "user1", "--prefix", "widget/", "-v", "-n", "2",
        ]));
        assert_eq!(
            v,
            serde_json::json!([{"key": "widget/a", "value": "QQ=="}, {"key": "widget/b", "value": "Qg=="}])
        );
        assert_eq!(env.ok(&["keys", "nobody"]), "");
        assert_eq!(
            json(&env.ok(&["--json", "keys", "nobody"])),
            serde_json::json!([])
        );
    }
}

#[test]
fn ttl_expire_and_persist_manage_expiry() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        assert_eq!(env.ok(&["ttl", "user1", "theme"]), "no expiry\n");
        assert!(env
            .ok(&["ttl", "user1", "session"])
            .starts_with("expires in 59m"));
        env.ok(&["expire", "user1", "theme", "30s"]);
        let v = json(&env.ok(&["--json", "ttl", "user1", "theme"]));
        assert_eq!(v["found"], true);
        let ms = v["ttl_ms"].as_u64().unwrap();
        assert!(ms > 25_000 && ms <= 30_000, "{ms}");
        env.ok(&["persist", "user1", "theme"]);
        assert_eq!(env.ok(&["ttl", "user1", "theme"]), "no expiry\n");
        // Persisting a key without a TTL is fine; it says so.
        env.state(&["persist", "user1", "theme"])
            .assert()
            .success()
            .stderr(contains("had no TTL"));
        let v = json(&env.ok(&["--json", "persist", "user1", "layout"]));
        assert_eq!(
            (v["found"].clone(), v["had_ttl"].clone()),
            (true.into(), false.into())
        );
        for cmd in [
            &["ttl", "user1", "nope"][..],
            &["expire", "user1", "nope", "5s"],
            &["persist", "user1", "nope"],
        ] {
            env.state(cmd)
                .assert()
                .code(1)
                .stderr(contains("not found"));
        }
        env.state(&["expire", "user1", "theme", "0ms"])
            .assert()
            .code(2);
    }
}

#[test]
fn rm_bucket_removes_every_record_and_exits_1_for_a_missing_bucket() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        env.ok(&["rm-bucket", "user1"]);
        assert_eq!(env.ok(&["buckets"]), "device-7\n");
        env.state(&["get", "user1", "layout"]).assert().code(1);
        env.state(&["rm-bucket", "user1"])
            .assert()
            .code(1)
            .stderr(contains("bucket \"user1\" not found"));
    }
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let env = Env::new();
    let lines: String = (0..20_000)
        .map(|i| format!("{{\"bucket\":\"b\",\"key\":\"k{i:06}\",\"value\":\"\"}}\n"))
        .collect();
    std::fs::write(env.file("many.jsonl"), lines).unwrap();
    env.ok(&["load", "many.jsonl"]);
    // `state keys b | head -1`: stdout closes after the first line.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("state"))
        .args(["--store"])
        .arg(&env.store)
        .args(["keys", "b"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// The Redis engine chosen by name needs the server's URL as `--store`: given a
/// directory, `state` fails with the core's one message and creates nothing (it
/// once made a sled store there).
#[test]
fn engine_redis_without_a_url_fails_and_creates_nothing() {
    let env = Env::new();
    env.state(&["--engine", "redis", "set", "u", "k", "v"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "engine \"redis\" needs the server's URL as the store path",
        ));
    assert!(
        !env.store.exists(),
        "nothing was created at {:?}",
        env.store
    );
}
