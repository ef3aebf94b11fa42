//! Peak memory while loading records through `set_multiple` in batches of 1000
//! (issue target: 1M records <= 512 MiB peak RSS with the sled engine), next to
//! raw sled with its default 1 GiB cache and with libstate's cache size. Each
//! variant runs in a child process of its own, so each peak RSS is its own.
//!
//! `cargo bench -p state-core --bench load_rss` (1M records), or
//! `LIBSTATE_BENCH_RECORDS=100000 cargo bench -p state-core --bench load_rss`.

use std::process::Command;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

const BATCH: usize = 1000;
const VALUE_LEN: usize = 100;

fn records() -> usize {
    std::env::var("LIBSTATE_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
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

fn batch(start: usize, rng: &mut SmallRng) -> Vec<(String, Vec<u8>)> {
    (start..start + BATCH)
        .map(|i| {
            let mut v = vec![0u8; VALUE_LEN];
            rng.fill_bytes(&mut v);
            // Spread keys over the key space like random keys, but reproducibly.
            (
                format!(
                    "{:010x}",
                    (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24
                ),
                v,
            )
        })
        .collect()
}

fn child(variant: &str, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SmallRng::seed_from_u64(9);
    let start = Instant::now();
    match variant {
        "libstate-sled" => {
            let cache_mib: u64 = std::env::var("LIBSTATE_BENCH_CACHE_MIB")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(state_core::DEFAULT_CACHE_SIZE >> 20);
            let store = state_core::Store::builder()
                .cache_size(cache_mib << 20)
                .open(dir.path())
                .unwrap();
            let b = store.bucket("load").unwrap();
            for i in (0..n).step_by(BATCH) {
                b.set_multiple(batch(i, &mut rng)).unwrap();
            }
            store.flush().unwrap();
            store.close().unwrap();
        }
        raw => {
            let mut cfg = sled::Config::new().path(dir.path());
            if raw == "raw-sled-32MiB-cache" {
                cfg = cfg.cache_capacity(state_core::DEFAULT_CACHE_SIZE);
            }
            let db = cfg.open().unwrap();
            for i in (0..n).step_by(BATCH) {
                let mut b = sled::Batch::default();
                for (k, v) in batch(i, &mut rng) {
                    b.insert(k.as_bytes(), v);
                }
                db.apply_batch(b).unwrap();
            }
            db.flush().unwrap();
        }
    }
    println!(
        "{variant}\t{n}\tpeak_rss_mib={:.0}\tload_s={:.2}",
        peak_rss_kib() as f64 / 1024.0,
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    if let Ok(variant) = std::env::var("LIBSTATE_LOAD_CHILD") {
        child(&variant, records());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for variant in [
        "libstate-sled",
        "raw-sled-32MiB-cache",
        "raw-sled-default-1GiB-cache",
    ] {
        let status = Command::new(&exe)
            .env("LIBSTATE_LOAD_CHILD", variant)
            .status()
            .unwrap();
        assert!(status.success(), "{variant} failed");
    }
}
