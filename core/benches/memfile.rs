//! memfile engine benchmark: the figures of issue 3 / performance.md §4, with a
//! `RwLock<BTreeMap>` baseline measured in the same run (this machine is shared and
//! noisy, so compare within one run).
//!
//! `cargo bench -p state-core --bench memfile` (sizes: `MEMFILE_BENCH_N`, default
//! "100000 1000000"; data under `MEMFILE_BENCH_DIR`, default a temp dir). Each size
//! runs in a child process of its own, so RSS figures are that size's alone.
//! Keys: random 10-character strings; values: 100 random bytes (as the original's
//! benchmark). Per-operation times are medians of groups of 20 operations.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use state_core::{Engine, Store};

const KEYLEN: usize = 10;
const VALLEN: usize = 100;
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const GROUP: usize = 20;

fn main() {
    // `cargo bench` passes `--bench`; a child gets its size through the environment.
    if let Ok(n) = std::env::var("MEMFILE_BENCH_CHILD_N") {
        run_size(n.parse().expect("MEMFILE_BENCH_CHILD_N"));
        return;
    }
    println!("# memfile benchmark");
    machine();
    // MEMFILE_BENCH_DURABLE_ONLY=1: only the sync-mode phase (seconds, not minutes).
    if std::env::var_os("MEMFILE_BENCH_DURABLE_ONLY").is_some() {
        let tmp = tempdir();
        let ks = keys(100_000, 0xC0FFEE);
        durable(tmp.path(), &ks, &mut SmallRng::seed_from_u64(7));
        return;
    }
    let sizes = std::env::var("MEMFILE_BENCH_N").unwrap_or_else(|_| "100000 1000000".into());
    for n in sizes.split_whitespace() {
        let status = std::process::Command::new(std::env::current_exe().expect("current_exe"))
            .env("MEMFILE_BENCH_CHILD_N", n)
            .status()
            .expect("spawn");
        assert!(status.success(), "size {n} failed");
    }
}

fn machine() {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {model}, {cpus} CPUs");
}

/// A temporary directory, under `MEMFILE_BENCH_DIR` if set.
fn tempdir() -> tempfile::TempDir {
    match std::env::var("MEMFILE_BENCH_DIR") {
        Ok(b) => tempfile::tempdir_in(b).expect("tempdir"),
        Err(_) => tempfile::tempdir().expect("tempdir"),
    }
}

fn keys(n: usize, seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            (0..KEYLEN)
                .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
                .collect()
        })
        .collect()
}

fn value(rng: &mut SmallRng) -> Vec<u8> {
    let mut v = vec![0u8; VALLEN];
    rng.fill_bytes(&mut v);
    v
}

/// Median per-operation time in ns of `reps` groups of `GROUP` calls of `op`.
fn per_op(reps: usize, mut op: impl FnMut(usize)) -> f64 {
    let mut samples = Vec::with_capacity(reps);
    let mut i = 0;
    for _ in 0..reps {
        let t = Instant::now();
        for _ in 0..GROUP {
            op(i);
            i += 1;
        }
        samples.push(t.elapsed().as_nanos() as f64 / GROUP as f64);
    }
    median(samples)
}

/// Median time in ns of `reps` single calls of `op`.
fn per_call(reps: usize, mut op: impl FnMut(usize)) -> f64 {
    per_call_timed(reps, |i| {
        let t = Instant::now();
        op(i);
        t.elapsed()
    })
}

/// Median in ns of the durations `op` reports itself (for timing part of a call).
fn per_call_timed(reps: usize, mut op: impl FnMut(usize) -> Duration) -> f64 {
    median((0..reps).map(|i| op(i).as_nanos() as f64).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn snapshot_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn snapshot_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.starts_with("snapshot-") && !n.ends_with(".tmp")
                })
                .count()
        })
        .unwrap_or(0)
}

fn row(name: &str, memfile: f64, baseline: Option<f64>, unit: &str) {
    match baseline {
        Some(b) => println!(
            "| {name} | {memfile:.3} {unit} | {b:.3} {unit} | {:.2}x |",
            memfile / b
        ),
        None => println!("| {name} | {memfile:.3} {unit} | — | — |"),
    }
}

/// Reads a byte of a value, as the reference harness's `touch`.
fn touch(v: &[u8]) -> usize {
    v.len() + usize::from(v.first().copied().unwrap_or(0))
}

/// The per-operation table: memfile against the baseline map in the same run.
/// Reads come in two forms: owned copies (`get`, `next_n`, and the map cloning) and
/// lent (`get_with`, `next_n_with`, and the map touching a byte, as the reference
/// harness does). `writes` adds the write rows.
fn ops_table(
    b: &state_core::Bucket,
    baseline: &RwLock<BTreeMap<String, Vec<u8>>>,
    ks: &[String],
    rng: &mut SmallRng,
    writes: bool,
) {
    use std::ops::Bound;
    let n = ks.len();
    // Keys packed in one buffer, as the reference harness keeps them, so that
    // fetching the key to look up does not add a cache miss of its own.
    let flat: String = ks.concat();
    let key = |i: usize| &flat[i * KEYLEN..(i + 1) * KEYLEN];
    println!("| operation | memfile | BTreeMap+RwLock | ratio |\n|---|---|---|---|");
    let idx: Vec<usize> = (0..200_000).map(|_| rng.gen_range(0..n)).collect();
    let at = |i: usize| key(idx[i % idx.len()]);

    let get_m = per_op(10_000, |i| {
        black_box(b.get(at(i)).expect("get"));
    });
    let get_b = per_op(10_000, |i| {
        black_box(baseline.read().get(at(i)).cloned());
    });
    row(
        "Get 1 (`get`, owned copy)",
        get_m / 1000.0,
        Some(get_b / 1000.0),
        "us",
    );
    let get_m = per_op(10_000, |i| {
        black_box(b.get_with(at(i), touch).expect("get_with"));
    });
    let get_b = per_op(10_000, |i| {
        black_box(baseline.read().get(at(i)).map(|v| touch(v)));
    });
    row(
        "Get 1 (`get_with`, lent)",
        get_m / 1000.0,
        Some(get_b / 1000.0),
        "us",
    );

    let seek_m = per_op(5_000, |i| {
        let mut c = b.cursor().expect("cursor");
        black_box(c.seek(at(i)).expect("seek"));
    });
    let seek_b = per_op(5_000, |i| {
        let m = baseline.read();
        black_box(
            m.range::<str, _>((Bound::Included(at(i)), Bound::Unbounded))
                .next()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    });
    row("Seek 1", seek_m / 1000.0, Some(seek_b / 1000.0), "us");

    // Next 1000 is timed after the seek, as in the reference harness.
    let next_m = per_call_timed(500, |i| {
        let mut c = b.cursor().expect("cursor");
        c.seek(at(i)).expect("seek");
        let t = Instant::now();
        black_box(c.next_n(1000).expect("next_n"));
        t.elapsed()
    });
    let next_b = per_call_timed(500, |i| {
        let m = baseline.read();
        let mut it = m.range::<str, _>((Bound::Included(at(i)), Bound::Unbounded));
        black_box(it.next().map(|(k, v)| (k.clone(), v.clone())));
        let t = Instant::now();
        let v: Vec<(String, Vec<u8>)> =
            it.take(1000).map(|(k, v)| (k.clone(), v.clone())).collect();
        black_box(v);
        t.elapsed()
    });
    row(
        "Next 1000 (`next_n`, owned copies)",
        next_m / 1000.0,
        Some(next_b / 1000.0),
        "us",
    );
    let next_m = per_call_timed(500, |i| {
        let mut c = b.cursor().expect("cursor");
        c.seek(at(i)).expect("seek");
        let t = Instant::now();
        let mut s = 0;
        c.next_n_with(1000, |_, v| s += touch(v))
            .expect("next_n_with");
        black_box(s);
        t.elapsed()
    });
    let next_b = per_call_timed(500, |i| {
        let m = baseline.read();
        let mut it = m.range::<str, _>((Bound::Included(at(i)), Bound::Unbounded));
        black_box(it.next().map(|(_, v)| touch(v)));
        let t = Instant::now();
        let s: usize = it.take(1000).map(|(_, v)| touch(v)).sum();
        black_box(s);
        t.elapsed()
    });
    row(
        "Next 1000 (`next_n_with`, lent)",
        next_m / 1000.0,
        Some(next_b / 1000.0),
        "us",
    );
    if !writes {
        return;
    }

    let vals: Vec<Vec<u8>> = (0..1000).map(|_| value(rng)).collect();
    let set_m = per_op(5_000, |i| {
        b.set(at(i), &vals[i % vals.len()]).expect("set");
    });
    let set_b = per_op(5_000, |i| {
        baseline
            .write()
            .insert(at(i).to_string(), vals[i % vals.len()].clone());
    });
    row(
        "Set 1 (periodic, overwrite)",
        set_m / 1000.0,
        Some(set_b / 1000.0),
        "us",
    );

    let setm_m = per_call(200, |i| {
        let items = (0..1000).map(|j| (at(i * 1000 + j), &vals[j]));
        b.set_multiple(items).expect("set_multiple");
    });
    let setm_b = per_call(200, |i| {
        let mut m = baseline.write();
        for (j, v) in vals.iter().enumerate() {
            m.insert(at(i * 1000 + j).to_string(), v.clone());
        }
    });
    row("Set Multiple 1000", setm_m / 1e6, Some(setm_b / 1e6), "ms");
}

fn run_size(n: usize) {
    let tmp = tempdir();
    let dir = tmp.path().join("store");
    let ks = keys(n, 0xC0FFEE);
    let mut rng = SmallRng::seed_from_u64(7);
    let rss_keys = status_kib("VmRSS:");

    // Load in batches of 1000 (set_multiple), periodic mode.
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(&dir)
        .expect("open");
    let b = store.bucket("bench").expect("bucket");
    let t = Instant::now();
    for chunk in ks.chunks(1000) {
        let items: Vec<(&str, Vec<u8>)> = chunk
            .iter()
            .map(|k| (k.as_str(), value(&mut rng)))
            .collect();
        b.set_multiple(items).expect("load");
    }
    let load = t.elapsed();
    let rss_loaded = status_kib("VmRSS:").saturating_sub(rss_keys);
    let hwm = status_kib("VmHWM:");
    println!("\n## N = {n}\n");
    println!(
        "load {n} records (set_multiple x1000): {:.2} s; RSS of the store {:.1} MiB (process peak {:.1} MiB incl. the benchmark's own keys)",
        load.as_secs_f64(),
        rss_loaded as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    // Baseline: the same data in a RwLock<BTreeMap<String, Vec<u8>>>, inserted in
    // the same (random) order as the store was loaded.
    let mut map = BTreeMap::new();
    for k in &ks {
        map.insert(k.clone(), value(&mut rng));
    }
    let baseline = RwLock::new(map);
    println!("\n### Right after loading in random key order\n");
    ops_table(&b, &baseline, &ks, &mut rng, true);
    drop(baseline);
    // Let the log's growth from the overwrites fold into a snapshot, then close.
    store.flush().expect("flush");
    store.close().expect("close");
    let raw = (n * (KEYLEN + VALLEN)) as u64;

    // Open 1: replays the log (and starts a compaction, as the log >= live data).
    let t = Instant::now();
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(&dir)
        .expect("reopen");
    let open_log = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while snapshot_count(&dir) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    store.close().expect("close");
    let disk = dir_bytes(&dir);
    let snap = snapshot_bytes(&dir);
    let t = Instant::now();
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(&dir)
        .expect("reopen");
    let open_snap = t.elapsed();
    let b = store.bucket("bench").expect("bucket");
    assert!(b.get(&ks[0]).expect("get").is_some());
    let open_report = format!(
        "\nopen: {:.3} s replaying the log, {:.3} s from a snapshot",
        open_log.as_secs_f64(),
        open_snap.as_secs_f64()
    );
    // As the reference harness (shared/bench/rust-engines) measures: on a store
    // opened from its files, against a BTreeMap loaded from a sorted snapshot.
    let mut sorted: Vec<&String> = ks.iter().collect();
    sorted.sort_unstable();
    let mut map = BTreeMap::new();
    for k in sorted {
        map.insert(k.clone(), value(&mut rng));
    }
    let baseline = RwLock::new(map);
    println!("\n### After reopening from the snapshot (the reference harness's method)\n");
    ops_table(&b, &baseline, &ks, &mut rng, false);
    drop(baseline);
    println!("{open_report}");
    println!(
        "disk: snapshot {:.1} MiB for {:.1} MiB of keys+values = {:.2}x; whole directory (snapshot + log since) {:.1} MiB = {:.2}x",
        snap as f64 / 1048576.0,
        raw as f64 / 1048576.0,
        snap as f64 / raw as f64,
        disk as f64 / 1048576.0,
        disk as f64 / raw as f64
    );
    store.close().expect("close");

    if n <= 100_000 {
        durable(&tmp.path().join("sync"), &ks, &mut rng);
    }
}

/// Rounds of the one-writer / four-writer comparison in sync mode.
const ROUNDS: usize = 7;
/// Sync-mode sets per phase (split between the writers).
const SETS_PER_PHASE: usize = 2000;

/// Sync mode: one writer against the disk's append+fdatasync floor, then one writer
/// and 4 writers in alternating rounds.
fn durable(dir: &Path, ks: &[String], rng: &mut SmallRng) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let floor_path = dir.join("floor");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&floor_path)
        .expect("floor file");
    let rec = [0x5au8; 140];
    let floor = per_call(300, |_| {
        f.write_all(&rec).expect("append");
        f.sync_data().expect("fdatasync");
    });
    drop(f);
    let store = Store::builder()
        .engine(Engine::Memfile)
        .sync(true)
        .open(dir.join("store"))
        .expect("open sync");
    let b = store.bucket("bench").expect("bucket");
    let v = value(rng);
    let one = per_call(300, |i| {
        b.set(&ks[i % ks.len()], &v).expect("set");
    });
    println!(
        "\nsync mode: set {:.0} us vs the disk's append+fdatasync {:.0} us = {:.2}x",
        one / 1000.0,
        floor / 1000.0,
        one / floor
    );
    let rate = |threads: usize| -> f64 {
        let per = SETS_PER_PHASE / threads;
        let barrier = Arc::new(Barrier::new(threads + 1));
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let b = store.bucket("bench").expect("bucket");
                let barrier = Arc::clone(&barrier);
                let keys: Vec<String> = ks[t * per..(t + 1) * per].to_vec();
                let v = v.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    for k in &keys {
                        b.set(k, &v).expect("set");
                    }
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        for h in hs {
            h.join().expect("writer");
        }
        (per * threads) as f64 / t.elapsed().as_secs_f64()
    };
    // fsync latency on a virtual disk drifts over seconds, so one writer and four
    // alternate, and each round's ratio is taken against its own one-writer phase.
    let mut ratios = Vec::new();
    let (mut r1s, mut r4s) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let r1 = rate(1);
        let r4 = rate(4);
        ratios.push(r4 / r1);
        r1s.push(r1);
        r4s.push(r4);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (lo, hi) = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "sync mode throughput ({ROUNDS} alternating rounds of {SETS_PER_PHASE} sets): 1 writer {:.0} sets/s, 4 writers {:.0} sets/s (medians); 4 writers / 1 writer per round: median {:.2}x, range {lo:.2}-{hi:.2}x",
        med(&mut r1s),
        med(&mut r4s),
        med(&mut ratios),
    );
    store.close().expect("close");
}
