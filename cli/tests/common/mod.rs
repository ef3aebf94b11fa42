//! Helpers for tests that run the real `state` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;

/// The engines every engine-dependent test runs against.
pub const ENGINES: [&str; 2] = ["sled", "memfile"];

/// A temporary directory with a store path inside it.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub store: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("state-data");
        Env { tmp, store }
    }

    /// A file path inside the temporary directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `state --store STORE ARGS...`, run in the temporary directory.
    pub fn state(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("state").unwrap();
        cmd.current_dir(self.tmp.path())
            .env_remove("STATE_STORE")
            .arg("--store")
            .arg(&self.store)
            .args(args);
        cmd
    }

    /// Runs `state ARGS...`, asserts success, returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.state(args).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    /// Creates the store with `engine` and a few records of every kind.
    pub fn seed(&self, engine: &str) {
        self.state(&[
            "--engine",
            engine,
            "set",
            "user1",
            "layout",
            r#"{"cols":3}"#,
        ])
        .assert()
        .success();
        self.ok(&["set", "user1", "theme", "dark"]);
        self.ok(&["set", "user1", "widget/a", "A"]);
        self.ok(&["set", "user1", "widget/b", "B"]);
        self.ok(&["set", "user1", "widget/c", "C"]);
        self.ok(&["set", "user1", "session", "tok", "--ttl", "1h"]);
        self.state(&["set", "device-7", "bin", "-"])
            .write_stdin(vec![0u8, 255, 10, 13])
            .assert()
            .success();
        self.ok(&["set", "device-7", "ключ/ü", "ünïcödé"]);
    }
}

/// Waits until no other open file description holds the flock on `file` (sled
/// releases its lock a little after its `Db` is dropped).
pub fn wait_unlocked(file: &Path) {
    use rustix::fs::{flock, FlockOperation};
    let f = std::fs::File::open(file).unwrap();
    let start = Instant::now();
    loop {
        if flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok() {
            flock(&f, FlockOperation::Unlock).unwrap();
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{} stayed locked",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
