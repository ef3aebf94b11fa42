//! Peak memory and time of loading records through `set_multiple` and of opening
//! the loaded store, on the sled engine (issue 16 goal: 1M records loaded in
//! batches of 10K and the 1M-record store opened, each <= 512 MiB peak RSS; open
//! <= 1 s), next to raw sled doing the same with libstate's cache size, without
//! (`raw-sled`) and with (`raw-sled+collect`) the garbage collection libstate runs
//! after each sled batch.
//!
//! Each step runs in a child process of its own, so each peak RSS (VmHWM) is its
//! own: `load` creates the store, `open` opens it again and reads one key (ready
//! to serve), `open+scan` opens it and reads every record.
//!
//! `make bench-memory`, or `cargo bench -p state-core --bench load_rss`; the
//! environment sets the sizes: `LIBSTATE_BENCH_RECORDS` (default 1000000),
//! `LIBSTATE_BENCH_BATCH` (default 10000), `LIBSTATE_BENCH_CACHE_MIB` (default
//! libstate's cache), `LIBSTATE_BENCH_VARIANTS` (comma-separated, default
//! `libstate-sled,raw-sled,raw-sled+collect`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

const VALUE_LEN: usize = 100;
const BUCKET: &str = "load";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn records() -> usize {
    env_or("LIBSTATE_BENCH_RECORDS", 1_000_000)
}

fn batch_len() -> usize {
    env_or("LIBSTATE_BENCH_BATCH", 10_000)
}

fn cache_bytes() -> u64 {
    env_or::<u64>(
        "LIBSTATE_BENCH_CACHE_MIB",
        state_core::DEFAULT_CACHE_SIZE >> 20,
    ) << 20
}

/// Peak resident set size of this process, from /proc/self/status (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The key of record `i`: 10 hex digits spread over the key space like random
/// keys, but reproducibly.
fn key(i: usize) -> String {
    format!(
        "{:010x}",
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24
    )
}

fn batch(start: usize, len: usize, rng: &mut SmallRng) -> Vec<(String, Vec<u8>)> {
    (start..start + len)
        .map(|i| {
            let mut v = vec![0u8; VALUE_LEN];
            rng.fill_bytes(&mut v);
            (key(i), v)
        })
        .collect()
}

fn raw_sled(dir: &Path) -> sled::Db {
    sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes())
        .open()
        .unwrap()
}

fn open_libstate(dir: &Path) -> state_core::Store {
    state_core::Store::builder()
        .cache_size(cache_bytes())
        .open(dir)
        .unwrap()
}

/// Runs one step in this (child) process and prints its figures.
fn child(variant: &str, step: &str, dir: &Path, n: usize) {
    let mut rng = SmallRng::seed_from_u64(9);
    let batch_len = batch_len();
    let probe = key(n / 2);
    let start = Instant::now();
    let mut seen = 0usize;
    match (variant, step) {
        ("libstate-sled", "load") => {
            let store = open_libstate(dir);
            let b = store.bucket(BUCKET).unwrap();
            for i in (0..n).step_by(batch_len) {
                b.set_multiple(batch(i, batch_len.min(n - i), &mut rng))
                    .unwrap();
            }
            store.close().unwrap();
        }
        ("libstate-sled", "open") => {
            let store = open_libstate(dir);
            assert!(store.bucket(BUCKET).unwrap().get(&probe).unwrap().is_some());
            seen = 1;
        }
        ("libstate-sled", "open+scan") => {
            let store = open_libstate(dir);
            let b = store.bucket(BUCKET).unwrap();
            let mut c = b.cursor().unwrap();
            seen = usize::from(c.first().unwrap().is_some());
            loop {
                let got = c.next_n(1000).unwrap().len();
                if got == 0 {
                    break;
                }
                seen += got;
            }
            assert_eq!(seen, n);
        }
        ("raw-sled" | "raw-sled+collect", "load") => {
            let db = raw_sled(dir);
            for i in (0..n).step_by(batch_len) {
                let len = batch_len.min(n - i);
                let mut b = sled::Batch::default();
                for (k, v) in batch(i, len, &mut rng) {
                    b.insert(k.as_bytes(), v);
                }
                db.apply_batch(b).unwrap();
                if variant == "raw-sled+collect" {
                    // What libstate's sled engine does after a batch (`collect_garbage`).
                    for _ in 0..4 + len / 128 {
                        sled::pin().flush();
                    }
                }
            }
            db.flush().unwrap();
        }
        ("raw-sled" | "raw-sled+collect", "open") => {
            let db = raw_sled(dir);
            assert!(db.get(probe.as_bytes()).unwrap().is_some());
            seen = 1;
        }
        ("raw-sled" | "raw-sled+collect", "open+scan") => {
            let db = raw_sled(dir);
            seen = db.iter().count();
            assert_eq!(seen, n);
        }
        _ => panic!("unknown variant {variant} or step {step}"),
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| {variant} | {step} | {n} | {batch_len} | {} | {:.0} MiB | {secs:.2} s |",
        cache_bytes() >> 20,
        peak_rss_kib() as f64 / 1024.0,
    );
    if step == "load" {
        return;
    }
    assert!(seen > 0, "{variant} {step}: nothing read");
}

fn main() {
    if let (Ok(variant), Ok(step), Ok(dir)) = (
        std::env::var("LIBSTATE_LOAD_CHILD"),
        std::env::var("LIBSTATE_LOAD_STEP"),
        std::env::var("LIBSTATE_LOAD_DIR"),
    ) {
        child(&variant, &step, Path::new(&dir), records());
        return;
    }
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let exe = std::env::current_exe().unwrap();
    let variants = std::env::var("LIBSTATE_BENCH_VARIANTS")
        .unwrap_or("libstate-sled,raw-sled,raw-sled+collect".to_string());
    println!("| variant | step | records | batch | cache MiB | peak RSS | time |");
    println!("|---|---|---|---|---|---|---|");
    for variant in variants.split(',') {
        let dir = tempfile::tempdir().unwrap();
        for step in ["load", "open", "open", "open+scan"] {
            let status = Command::new(&exe)
                .env("LIBSTATE_LOAD_CHILD", variant)
                .env("LIBSTATE_LOAD_STEP", step)
                .env("LIBSTATE_LOAD_DIR", dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "{variant} {step} failed");
        }
    }
}
