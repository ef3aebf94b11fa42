//! Helpers shared by the memfile engine tests (`memfile_*.rs`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use state_core::{Engine, Store};

pub fn open(dir: &Path) -> Store {
    Store::builder().engine(Engine::Memfile).open(dir).unwrap()
}

pub fn open_sync(dir: &Path) -> Store {
    Store::builder()
        .engine(Engine::Memfile)
        .sync(true)
        .open(dir)
        .unwrap()
}

/// Files of the store whose names start with `prefix` ("log-", "snapshot-"), sorted.
pub fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(prefix) && !name.ends_with(".tmp")
        })
        .collect();
    v.sort();
    v
}

/// The single log file of a store that has never compacted.
pub fn only_log(dir: &Path) -> PathBuf {
    let logs = files(dir, "log-");
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs[0].clone()
}

/// The generation in a file name like `snapshot-00000000000000000003`.
pub fn gen_of(p: &Path) -> u64 {
    let name = p.file_name().unwrap().to_str().unwrap();
    name.rsplit('-').next().unwrap().parse().unwrap()
}

/// Newest snapshot generation, if any.
pub fn snapshot_gen(dir: &Path) -> Option<u64> {
    files(dir, "snapshot-").iter().map(|p| gen_of(p)).max()
}

/// Waits (up to 60 s) until a snapshot of generation >= `gen` exists.
pub fn wait_for_snapshot(dir: &Path, gen: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshot_gen(dir).is_none_or(|g| g < gen) {
        assert!(Instant::now() < deadline, "no snapshot {gen} appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Overwrites one key with 64 KiB values until the log is ~5 MiB: enough to make
/// the engine compact (its threshold is 4 MiB and twice the live data).
pub fn churn(store: &Store, bucket: &str) {
    let b = store.bucket(bucket).unwrap();
    let v = vec![7u8; 64 << 10];
    for _ in 0..80 {
        b.set("churn", &v).unwrap();
    }
}

/// Every file in `dir` with its bytes, to prove a failed open touched nothing.
pub fn dir_contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

const CHILD_ENV: &str = "MEMFILE_TEST_CHILD";

/// If this process was started by [`write_in_killed_child`], writes as asked and waits
/// to be killed (never returning); otherwise does nothing. Call it first in every
/// test that uses `write_in_killed_child`.
pub fn child_hook() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.splitn(4, '\n').collect();
    let [dir, bucket, key, value] = parts[..] else {
        panic!("bad child spec {spec:?}")
    };
    // No periodic flush or checkpoint: the kill must find c as the log's last record.
    let store = Store::builder()
        .engine(Engine::Memfile)
        .flush_interval(Duration::from_secs(3600))
        .open(dir)
        .unwrap();
    store.bucket(bucket).unwrap().set(key, value).unwrap();
    println!("WRITTEN");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::process::exit(1);
}

/// Sets `key` in a child process that is then killed with SIGKILL: the write reaches
/// the log but the store is never closed (no flush, no checkpoint), as in a crash.
/// `test_name` is the calling test with its module path in the `memfile` binary
/// (`torn_tail::name`), which must call [`child_hook`] first.
pub fn write_in_killed_child(test_name: &str, dir: &Path, bucket: &str, key: &str, value: &str) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(
            CHILD_ENV,
            format!("{}\n{bucket}\n{key}\n{value}", dir.display()),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let written = out
        .lines()
        .any(|l| l.map(|l| l.ends_with("WRITTEN")).unwrap_or(false));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(written, "the child did not write");
}
