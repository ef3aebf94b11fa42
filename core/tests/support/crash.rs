//! Crash tests with real processes, shared by `crash_sled.rs` and `crash_memfile.rs`.
//!
//! The test binary re-executes itself as a child (environment variables select the
//! child role and the test to run). The child writes continuously: single sets,
//! atomic batches, deletes and (in periodic mode) explicit flushes, and prints one
//! line per acknowledged operation. The parent kills it with SIGKILL at a random
//! moment, reopens the store and checks what the durability mode promises:
//!
//! - the store opens without error, every value is the one written for its key, and
//!   every batch is all there or not at all;
//! - sync mode: every acknowledged write is present (and every acknowledged delete
//!   absent);
//! - periodic mode: everything acknowledged before the child's last completed flush.
//!
//! Rounds build on one store, so earlier rounds' data is re-checked after every kill.
//! `STATE_CRASH_KILLS` sets the kills per test (default 25; `make soak` raises it).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use state_core::{Engine, ErrorKind, Store};

const ENV_DIR: &str = "STATE_CRASH_CHILD_DIR";
const ENV_ENGINE: &str = "STATE_CRASH_CHILD_ENGINE";
const ENV_SYNC: &str = "STATE_CRASH_CHILD_SYNC";
const ENV_ROUND: &str = "STATE_CRASH_CHILD_ROUND";
const BUCKET: &str = "crash";
/// The child stops by itself after this long, should its parent be gone.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

/// Held while spawning a child and while the parent has a store open. A child
/// spawned by another test's thread gets a copy of every open descriptor until it
/// execs, including a store's lock file, whose `flock` then outlives the parent's
/// close for a moment: a child of this test starting in that moment would find the
/// store locked.
static SPAWN_GUARD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Kills per crash test: `STATE_CRASH_KILLS` or 25.
pub fn kills() -> usize {
    std::env::var("STATE_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25)
}

/// The value written for `key`: derived from the key, so any present value can be
/// checked. The four `big-*` keys, overwritten again and again, carry 24 KiB values,
/// so the memfile engine's log outgrows the live data and compacts during the runs.
fn value_for(key: &str) -> Vec<u8> {
    let mut v = format!("value-of-{key}").into_bytes();
    if key.starts_with("big-") {
        v.resize(24 << 10, b'#');
    }
    v
}

/// Runs the child role if this process was started as one; returns whether it was.
pub fn child_main() -> bool {
    let (Ok(dir), Ok(engine), Ok(sync), Ok(round)) = (
        std::env::var(ENV_DIR),
        std::env::var(ENV_ENGINE),
        std::env::var(ENV_SYNC),
        std::env::var(ENV_ROUND),
    ) else {
        return false;
    };
    let engine: Engine = engine.parse().unwrap();
    let sync = sync == "1";
    // sled releases its directory lock a moment after the parent's close() returns
    // (its threads hold it briefly, sled#1289), so a *locked* error is retried.
    let opened = Instant::now();
    let store = loop {
        match Store::builder().engine(engine).sync(sync).open(&dir) {
            Ok(s) => break s,
            Err(e)
                if e.kind() == ErrorKind::Locked && opened.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("child: cannot open the store: {e}"),
        }
    };
    let b = store.bucket(BUCKET).unwrap();
    let mut out = std::io::stdout().lock();
    // Each line is written and flushed before the next operation starts; a failed
    // write means the parent is gone, and the child stops.
    let mut say =
        |line: String| -> bool { writeln!(out, "{line}").and_then(|_| out.flush()).is_ok() };
    if !say("OPEN".into()) {
        return true;
    }
    let started = Instant::now();
    let mut acked: Vec<String> = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < CHILD_LIFETIME {
        n += 1;
        let line = if n.is_multiple_of(5) {
            let keys: Vec<String> = (0..3).map(|j| format!("r{round}-{}", n * 10 + j)).collect();
            say(format!("TRY {}", keys.join(" ")));
            b.set_multiple(keys.iter().map(|k| (k, value_for(k))))
                .unwrap();
            acked.extend(keys.iter().cloned());
            format!("SET {}", keys.join(" "))
        } else if n.is_multiple_of(7) && acked.len() > 4 {
            let k = acked.swap_remove((n as usize * 31) % acked.len());
            // Announced first: a delete in flight at the kill may or may not persist.
            say(format!("TRYDEL {k}"));
            b.delete(&k).unwrap();
            format!("DEL {k}")
        } else if n.is_multiple_of(3) {
            let k = format!("big-{}", n % 4);
            // Announced first: big keys are set again after being deleted, and a set in
            // flight at the kill may or may not persist.
            say(format!("TRYSET {k}"));
            b.set(&k, value_for(&k)).unwrap();
            acked.push(k.clone());
            format!("SET {k}")
        } else {
            let k = format!("r{round}-{}", n * 10);
            b.set(&k, value_for(&k)).unwrap();
            acked.push(k.clone());
            format!("SET {k}")
        };
        if !say(line) {
            return true;
        }
        if !sync && n.is_multiple_of(20) {
            store.flush().unwrap();
            if !say("FLUSHED".into()) {
                return true;
            }
        }
    }
    true
}

/// What the parent knows about a key after a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fact {
    Present,
    Absent,
}

/// Runs `kills()` rounds of spawn / random SIGKILL / reopen / check against one store.
/// `test_name` is the `#[test]` function that calls this (the child runs it too).
/// `all_acked_survive`: also require every acknowledged write in periodic mode (true
/// for an engine that hands each write to the OS before acknowledging it).
pub fn run_parent(engine: Engine, sync: bool, test_name: &str, all_acked_survive: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut facts: BTreeMap<String, Fact> = BTreeMap::new();
    let mut rng = Rng::seeded();
    let mut total_acked = 0usize;
    for round in 0..kills() {
        let lines = run_child(dir.path(), engine, sync, round, test_name, &mut rng);
        total_acked += lines.iter().filter(|l| l.starts_with("SET ")).count();
        check_round(
            dir.path(),
            engine,
            sync,
            all_acked_survive,
            &lines,
            &mut facts,
            round,
        );
    }
    assert!(total_acked > 0, "the children never acknowledged a write");
}

fn run_child(
    dir: &Path,
    engine: Engine,
    sync: bool,
    round: usize,
    test_name: &str,
    rng: &mut Rng,
) -> Vec<String> {
    let err_dir = tempfile::tempdir().unwrap();
    let err_path = err_dir.path().join("child-stderr");
    let guard = SPAWN_GUARD.lock().unwrap_or_else(|p| p.into_inner());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV_DIR, dir)
        .env(ENV_ENGINE, engine.as_str())
        .env(ENV_SYNC, if sync { "1" } else { "0" })
        .env(ENV_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .unwrap();
    drop(guard);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // Wait until the child has the store open, then kill it 0-40 ms later.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "round {round}: the child did not open the store; its stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        };
        // libtest prints "test <name> ... " without a newline before the child speaks.
        let open = line.ends_with("OPEN");
        lines.push(line);
        if open {
            break;
        }
    }
    std::thread::sleep(Duration::from_micros(rng.below(40_000)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

#[allow(clippy::too_many_arguments)]
fn check_round(
    dir: &Path,
    engine: Engine,
    sync: bool,
    all_acked_survive: bool,
    lines: &[String],
    facts: &mut BTreeMap<String, Fact>,
    round: usize,
) {
    // Lines up to the cut-off are promised; later ones make their keys unknown.
    let cutoff = if sync || all_acked_survive {
        lines.len()
    } else {
        lines
            .iter()
            .rposition(|l| l == "FLUSHED")
            .map_or(0, |i| i + 1)
    };
    let mut batches: Vec<Vec<String>> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let keys: Vec<String> = rest.split_whitespace().map(String::from).collect();
        match verb {
            "TRY" => batches.push(keys),
            "TRYDEL" | "TRYSET" => {
                for k in keys {
                    facts.remove(&k);
                }
            }
            "SET" | "DEL" => {
                for k in keys {
                    if i < cutoff {
                        let f = if verb == "SET" {
                            Fact::Present
                        } else {
                            Fact::Absent
                        };
                        facts.insert(k, f);
                    } else {
                        facts.remove(&k);
                    }
                }
            }
            _ => {}
        }
    }

    let _guard = SPAWN_GUARD.lock().unwrap_or_else(|p| p.into_inner());
    let store = Store::builder()
        .engine(engine)
        .open(dir)
        .unwrap_or_else(|e| panic!("round {round}: the store did not open after SIGKILL: {e}"));
    let b = store.bucket(BUCKET).unwrap();
    let present: BTreeMap<String, Vec<u8>> = b.iter().map(|e| e.unwrap()).collect();
    for (k, v) in &present {
        assert_eq!(*v, value_for(k), "round {round}: wrong value for {k}");
    }
    for (k, f) in facts.iter() {
        let there = present.contains_key(k);
        match f {
            Fact::Present => assert!(there, "round {round}: acknowledged {k} is missing"),
            Fact::Absent => assert!(!there, "round {round}: deleted {k} is back"),
        }
    }
    for batch in &batches {
        // A later delete may have picked a batch key: count only keys no delete names.
        let deleted = |k: &String| {
            lines
                .iter()
                .any(|l| l.strip_prefix("TRYDEL ") == Some(k.as_str()))
        };
        let live: Vec<&String> = batch.iter().filter(|k| !deleted(k)).collect();
        let n = live.iter().filter(|k| present.contains_key(**k)).count();
        assert!(
            n == 0 || n == live.len(),
            "round {round}: batch {batch:?} is partly present ({n} of {})",
            live.len()
        );
    }
    // Close flushes: what the parent saw is now durable, so it stays promised.
    for (k, _) in present {
        facts.entry(k).or_insert(Fact::Present);
    }
    store.close().unwrap();
}

/// xorshift64*, seeded from the clock (the seed is printed for reruns).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("STATE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash test seed: {seed} (STATE_CRASH_SEED)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
