//! `state client`: names, the `unix:` namespace, and the client list's file safety
//! (written through an exclusive 0600 temporary file; refused when others could
//! have written it).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Env;
use predicates::prelude::*;
use predicates::str::contains;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

/// The user this test runs as (the owner of what it creates).
fn euid() -> u32 {
    let d = tempfile::tempdir().unwrap();
    std::fs::metadata(d.path()).unwrap().uid()
}

#[test]
fn add_writes_a_0600_list_and_leaves_planted_files_alone() {
    let env = Env::new();
    std::fs::create_dir(&env.store).unwrap();
    chmod(&env.store, 0o700);
    // Another user's trap at the name the list used to be written through.
    let planted = env.store.join(".clients.toml.tmp");
    std::fs::write(&planted, "planted").unwrap();
    chmod(&planted, 0o666);
    if euid() == 0 {
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    }
    let token = env.ok(&["client", "add", "alice"]);
    assert_eq!(token.trim().len(), 43, "{token}");
    let list = env.store.join("clients.toml");
    let m = std::fs::symlink_metadata(&list).unwrap();
    assert!(m.is_file());
    assert_eq!(m.uid(), euid());
    assert_eq!(mode(&list), 0o600);
    assert_ne!(m.ino(), std::fs::metadata(&planted).unwrap().ino());
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "planted");
    let mut names: Vec<String> = std::fs::read_dir(&env.store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".clients.toml.tmp", "clients.toml"],
        "no temporary file left"
    );
}

#[test]
fn a_list_or_directory_others_can_write_is_refused_naming_it_and_the_fix() {
    let env = Env::new();
    env.ok(&["client", "add", "alice"]);
    let list = env.store.join("clients.toml");
    chmod(&list, 0o666);
    for args in [&["client", "list"][..], &["client", "add", "bob"][..]] {
        env.state(args)
            .assert()
            .code(3)
            .stderr(contains(list.display().to_string()))
            .stderr(contains(format!("chmod go-w {}", list.display())));
    }
    chmod(&list, 0o600);
    chmod(&env.store, 0o777);
    env.state(&["client", "add", "bob"])
        .assert()
        .code(3)
        .stderr(contains(format!("chmod go-w {}", env.store.display())));
    // The list in a world-writable directory named with --clients: refused too.
    let open = env.file("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o1777);
    let elsewhere = open.join("clients.toml");
    env.state(&[
        "client",
        "--clients",
        elsewhere.to_str().unwrap(),
        "add",
        "carol",
    ])
    .assert()
    .code(3)
    .stderr(contains("writable by its group and every user (mode 1777)"))
    .stderr(contains(format!("chmod go-w {}", open.display())));
    assert!(!elsewhere.exists());
    chmod(&env.store, 0o700);
    assert_eq!(env.ok(&["client", "list"]), "alice\n");
}

#[test]
fn state_serve_refuses_an_untrusted_list() {
    let env = Env::new();
    env.ok(&["client", "add", "alice"]);
    chmod(&env.store.join("clients.toml"), 0o646);
    env.state(&[
        "serve",
        "--unix",
        "off",
        "--resp",
        "127.0.0.1:0",
        "--http",
        "off",
    ])
    .timeout(std::time::Duration::from_secs(60))
    .assert()
    .code(2)
    .stdout(contains("ready").not())
    .stderr(contains("chmod go-w"))
    .stderr(contains("clients.toml"));
}

#[test]
fn names_are_a_small_ascii_set_compared_exactly() {
    let env = Env::new();
    env.ok(&["client", "add", "alice"]);
    for bad in [
        "Alice",         // differs only in case from alice
        "\u{430}lice",   // Cyrillic a
        "alice ",        // trailing space
        "al\u{202e}ice", // right-to-left override
        "a:b",           // the namespace separator
        "ünïcode",
        &"n".repeat(65),
    ] {
        env.state(&["client", "add", bad])
            .assert()
            .code(2)
            .stdout("");
    }
    env.state(&["client", "add", "\u{430}lice"])
        .assert()
        .stderr(contains("ASCII letters, digits, '.', '_' and '-'"));
    env.state(&["client", "add", "Alice"])
        .assert()
        .stderr(contains("only in case"));
    // rm compares exactly, too.
    env.state(&["client", "rm", "ALICE"]).assert().code(1);
    env.state(&["client", "rm", "alice "]).assert().code(1);
    assert_eq!(env.ok(&["client", "list"]), "alice\n");
}

#[test]
fn unix_users_are_their_own_namespace() {
    let env = Env::new();
    // A token client root is not the Unix user root.
    let t = env.ok(&["client", "add", "root"]);
    assert_eq!(t.trim().len(), 43);
    env.state(&["client", "add", "unix:alice", "--max-records", "5"])
        .assert()
        .success()
        .stdout("")
        .stderr(contains(
            "Unix user alice may now use the socket, as client unix:alice",
        ));
    env.state(&["client", "add", "unix:alice"]).assert().code(2);
    env.state(&["client", "add", "unix:bad name"])
        .assert()
        .code(2);
    env.state(&["client", "add", "unix:"]).assert().code(2);
    assert_eq!(
        env.ok(&["client", "list"]),
        "root\nunix:alice max_records=5\n"
    );
    let text = std::fs::read_to_string(env.store.join("clients.toml")).unwrap();
    assert!(text.contains("[unix.alice]"), "{text}");
    env.ok(&["client", "rm", "unix:alice"]);
    env.state(&["client", "rm", "unix:alice"]).assert().code(1);
    assert_eq!(env.ok(&["client", "list"]), "root\n");
}
