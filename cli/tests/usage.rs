//! Arguments, engines, the store location and exit code 2 for bad usage.

mod common;

use common::Env;
use predicates::prelude::*;
use predicates::str::contains;

#[test]
fn help_documents_every_subcommand_and_the_exit_codes() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    for cmd in [
        "buckets",
        "info",
        "get",
        "set",
        "del",
        "keys",
        "ttl",
        "expire",
        "persist",
        "rm-bucket",
        "dump",
        "load",
        "check",
        "compact",
    ] {
        assert!(
            help.contains(&format!("  {cmd} ")),
            "{cmd} missing from:\n{help}"
        );
    }
    assert!(help.contains("Exit codes:"), "{help}");
    assert!(help.contains("3  store error"), "{help}");
}

#[test]
fn bad_arguments_exit_2() {
    let env = Env::new();
    env.state(&["frobnicate"]).assert().code(2);
    env.state(&["get", "only-bucket"]).assert().code(2);
    env.state(&["keys", "b", "--limit", "many"])
        .assert()
        .code(2);
    env.state(&["--engine", "lmdb", "info"])
        .assert()
        .code(2)
        .stderr(contains("unknown engine \"lmdb\""));
    env.state(&["dump", "--format", "xml"]).assert().code(2);
}

#[test]
fn raw_and_json_together_are_a_usage_error() {
    let env = Env::new();
    env.ok(&["set", "b", "k", "v"]);
    env.state(&["--json", "get", "b", "k", "--raw"])
        .assert()
        .code(2)
        .stderr(contains("--raw and --json"));
}

#[test]
fn the_engine_is_detected_and_a_wrong_one_is_refused() {
    let env = Env::new();
    env.ok(&["--engine", "memfile", "set", "b", "k", "v"]);
    assert!(env.ok(&["info"]).contains("engine    memfile"));
    env.state(&["--engine", "sled", "get", "b", "k"])
        .assert()
        .code(2)
        .stderr(contains("was created with engine \"memfile\""));
}

#[test]
fn the_store_defaults_to_state_data_or_state_store_and_is_created_only_by_writes() {
    let env = Env::new();
    let mut cmd = assert_cmd::Command::cargo_bin("state").unwrap();
    cmd.current_dir(env.tmp.path())
        .env_remove("STATE_STORE")
        .args(["set", "b", "k", "v"])
        .assert()
        .success();
    assert!(env
        .tmp
        .path()
        .join("state-data")
        .join("libstate.meta")
        .exists());
    let elsewhere = env.tmp.path().join("elsewhere");
    let mut cmd = assert_cmd::Command::cargo_bin("state").unwrap();
    cmd.current_dir(env.tmp.path())
        .env("STATE_STORE", &elsewhere)
        .args(["get", "b", "k"])
        .assert()
        .code(3)
        .stderr(contains("no store at").and(contains("does not exist")));
    assert!(!elsewhere.exists());
    // A directory that holds no store is not turned into one by a read.
    std::fs::create_dir(&elsewhere).unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("state").unwrap();
    cmd.current_dir(env.tmp.path())
        .env("STATE_STORE", &elsewhere)
        .args(["keys", "b"])
        .assert()
        .code(3)
        .stderr(contains("holds no libstate store"));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}
