//! A store held by another process: the *locked* message and what to do.

mod common;

use common::{Env, ENGINES};
use predicates::prelude::*;
use predicates::str::contains;
use state_core::{Engine, Store};

#[test]
fn a_store_held_by_another_process_gives_the_locked_message_and_what_to_do() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        // This test process is the "other process": it holds the store open.
        let store = Store::builder()
            .engine(engine.parse::<Engine>().unwrap())
            .open(&env.store)
            .unwrap();
        let dir = store.path().display().to_string();
        for cmd in [
            &["get", "user1", "layout"][..],
            &["set", "b", "k", "v"],
            &["check"],
        ] {
            env.state(cmd)
                .assert()
                .code(3)
                .stderr(contains(format!(
                    "store {dir} is locked by another process"
                )))
                .stderr(contains("hint: one process owns a store at a time"))
                .stderr(contains(format!("and process {} (", std::process::id())));
        }
        store.close().unwrap();
    }
}

#[test]
fn the_locked_message_comes_at_once_not_after_a_wait() {
    let env = Env::new();
    env.seed("sled");
    let store = Store::open(&env.store).unwrap();
    let start = std::time::Instant::now();
    env.state(&["info"])
        .assert()
        .code(3)
        .stderr(contains("locked").and(contains("hint:")));
    // Not a timing test of speed: a hang would be a bug, so bound it generously.
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    store.close().unwrap();
}
