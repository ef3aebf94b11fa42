//! The original state service's benchmark table (performance.md §1), for libstate
//! and raw sled side by side in the same run, at 1K, 100K and 1M records.
//!
//! Keys: random 10-character alphanumeric strings; values: 100 random bytes.
//! `cargo bench -p state-core --bench ops` (all sizes), or e.g.
//! `LIBSTATE_BENCH_SIZES=1000,100000 cargo bench -p state-core --bench ops -- get1`.
//! Also: `durable` (sync-mode set vs the disk's append+fdatasync floor) and `sweep`
//! (expired keys removed per second).

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use state_core::{Bucket, Cursor, Engine, ManualClock, Store};

const KEY_LEN: usize = 10;
const VALUE_LEN: usize = 100;
const MULTI: usize = 1000;
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The page cache both libstate and raw sled get, so the comparison is like for like.
const CACHE: u64 = state_core::DEFAULT_CACHE_SIZE;

fn sizes() -> Vec<usize> {
    std::env::var("LIBSTATE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000])
}

fn keys(n: usize, seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            (0..KEY_LEN)
                .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
                .collect()
        })
        .collect()
}

fn value(rng: &mut SmallRng) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_LEN];
    rng.fill_bytes(&mut v);
    v
}

/// What the benchmark needs from a store under test.
trait Target {
    fn set(&self, k: &str, v: &[u8]);
    fn get(&self, k: &str) -> usize;
    fn set_multiple(&self, kv: &[(String, Vec<u8>)]);
    fn get_multiple(&self, ks: &[String]) -> usize;
    fn seek(&self, k: &str) -> usize;
    /// Steps a persistent cursor once (wrapping to the first key at the end).
    fn next1(&mut self) -> usize;
    /// Seeks to `k`, then steps 1000 times.
    fn next_1000(&self, k: &str) -> usize;
    /// The same with borrowed entries where the store offers them (libstate's
    /// `next_n_with`; raw sled's iterator hands out shared `IVec`s either way).
    fn next_1000_lent(&self, k: &str) -> usize;
}

struct Libstate {
    _store: Store,
    bucket: Bucket,
    cursor: Cursor,
}

impl Target for Libstate {
    fn set(&self, k: &str, v: &[u8]) {
        self.bucket.set(k, v).unwrap();
    }
    fn get(&self, k: &str) -> usize {
        self.bucket.get(k).unwrap().map_or(0, |v| v.len())
    }
    fn set_multiple(&self, kv: &[(String, Vec<u8>)]) {
        self.bucket
            .set_multiple(kv.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .unwrap();
    }
    fn get_multiple(&self, ks: &[String]) -> usize {
        self.bucket.get_multiple(ks).unwrap().len()
    }
    fn seek(&self, k: &str) -> usize {
        let mut c = self.bucket.cursor().unwrap();
        c.seek(k).unwrap().map_or(0, |(_, v)| v.len())
    }
    fn next1(&mut self) -> usize {
        match self.cursor.next().unwrap() {
            Some((_, v)) => v.len(),
            None => self.cursor.first().unwrap().map_or(0, |(_, v)| v.len()),
        }
    }
    fn next_1000(&self, k: &str) -> usize {
        let mut c = self.bucket.cursor().unwrap();
        c.seek(k).unwrap();
        c.next_n(1000).unwrap().len()
    }
    fn next_1000_lent(&self, k: &str) -> usize {
        let mut c = self.bucket.cursor().unwrap();
        c.seek(k).unwrap();
        let mut n = 0;
        c.next_n_with(1000, |key, value| n += key.len() + value.len())
            .unwrap();
        n
    }
}

struct RawSled {
    db: sled::Db,
    at: Option<sled::IVec>,
}

impl Target for RawSled {
    fn set(&self, k: &str, v: &[u8]) {
        self.db.insert(k, v).unwrap();
    }
    fn get(&self, k: &str) -> usize {
        self.db.get(k).unwrap().map_or(0, |v| v.len())
    }
    fn set_multiple(&self, kv: &[(String, Vec<u8>)]) {
        let mut batch = sled::Batch::default();
        for (k, v) in kv {
            batch.insert(k.as_str(), v.as_slice());
        }
        self.db.apply_batch(batch).unwrap();
    }
    fn get_multiple(&self, ks: &[String]) -> usize {
        let mut out = std::collections::BTreeMap::new();
        for k in ks {
            if let Some(v) = self.db.get(k).unwrap() {
                out.insert(k.clone(), v.to_vec());
            }
        }
        out.len()
    }
    fn seek(&self, k: &str) -> usize {
        self.db.range(k..).next().map_or(0, |r| r.unwrap().1.len())
    }
    fn next1(&mut self) -> usize {
        let next = match &self.at {
            Some(k) => self.db.get_gt(k).unwrap(),
            None => None,
        };
        let next = next.or_else(|| self.db.first().unwrap());
        let len = next.as_ref().map_or(0, |(_, v)| v.len());
        self.at = next.map(|(k, _)| k);
        len
    }
    fn next_1000(&self, k: &str) -> usize {
        let mut n = 0;
        for item in self.db.range(k..).take(1000) {
            let (key, value) = item.unwrap();
            n += key.len() + value.len();
        }
        n
    }
    fn next_1000_lent(&self, k: &str) -> usize {
        self.next_1000(k)
    }
}

fn open_libstate(dir: &std::path::Path, data: &[(String, Vec<u8>)], engine: Engine) -> Libstate {
    let store = Store::builder()
        .engine(engine)
        .cache_size(CACHE)
        .open(dir)
        .unwrap();
    let bucket = store.bucket("bench").unwrap();
    for chunk in data.chunks(MULTI) {
        bucket
            .set_multiple(chunk.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .unwrap();
    }
    store.flush().unwrap();
    let cursor = bucket.cursor().unwrap();
    Libstate {
        _store: store,
        bucket,
        cursor,
    }
}

fn open_raw_sled(dir: &std::path::Path, data: &[(String, Vec<u8>)]) -> RawSled {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE)
        .open()
        .unwrap();
    for chunk in data.chunks(MULTI) {
        let mut batch = sled::Batch::default();
        for (k, v) in chunk {
            batch.insert(k.as_str(), v.as_slice());
        }
        db.apply_batch(batch).unwrap();
    }
    db.flush().unwrap();
    RawSled { db, at: None }
}

fn run_ops(c: &mut Criterion, n: usize, name: &str, t: &mut dyn Target, keys: &[String]) {
    let mut group = c.benchmark_group(format!("ops-{n}"));
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let mut rng = SmallRng::seed_from_u64(7);
    let v = value(&mut rng);
    let pick = |rng: &mut SmallRng| keys[rng.gen_range(0..keys.len())].as_str();

    group.bench_function(BenchmarkId::new("get1", name), |b| {
        b.iter(|| black_box(t.get(pick(&mut rng))))
    });
    group.bench_function(BenchmarkId::new("set1", name), |b| {
        b.iter(|| t.set(pick(&mut rng), &v))
    });
    group.bench_function(BenchmarkId::new("seek1", name), |b| {
        b.iter(|| black_box(t.seek(pick(&mut rng))))
    });
    group.bench_function(BenchmarkId::new("next1", name), |b| {
        b.iter(|| black_box(t.next1()))
    });
    group.bench_function(BenchmarkId::new("next1000", name), |b| {
        b.iter(|| black_box(t.next_1000(pick(&mut rng))))
    });
    group.bench_function(BenchmarkId::new("next1000lent", name), |b| {
        b.iter(|| black_box(t.next_1000_lent(pick(&mut rng))))
    });
    group.bench_function(BenchmarkId::new("set1000x", name), |b| {
        b.iter(|| {
            for _ in 0..MULTI {
                t.set(pick(&mut rng), &v);
            }
        })
    });
    group.bench_function(BenchmarkId::new("get1000x", name), |b| {
        b.iter(|| {
            let mut n = 0;
            for _ in 0..MULTI {
                n += t.get(pick(&mut rng));
            }
            black_box(n)
        })
    });
    group.bench_function(BenchmarkId::new("setmultiple1000", name), |b| {
        b.iter_batched(
            || {
                (0..MULTI)
                    .map(|_| (pick(&mut rng).to_string(), v.clone()))
                    .collect::<Vec<_>>()
            },
            |kv| t.set_multiple(&kv),
            BatchSize::LargeInput,
        )
    });
    group.bench_function(BenchmarkId::new("getmultiple1000", name), |b| {
        b.iter_batched(
            || {
                (0..MULTI)
                    .map(|_| pick(&mut rng).to_string())
                    .collect::<Vec<_>>()
            },
            |ks| black_box(t.get_multiple(&ks)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn ops(c: &mut Criterion) {
    for n in sizes() {
        let ks = keys(n, 42);
        let mut rng = SmallRng::seed_from_u64(1);
        let data: Vec<(String, Vec<u8>)> =
            ks.iter().map(|k| (k.clone(), value(&mut rng))).collect();
        {
            let dir = tempfile::tempdir().unwrap();
            let mut raw = open_raw_sled(dir.path(), &data);
            run_ops(c, n, "raw-sled", &mut raw, &ks);
        }
        {
            let dir = tempfile::tempdir().unwrap();
            let mut ls = open_libstate(dir.path(), &data, Engine::Sled);
            run_ops(c, n, "libstate-sled", &mut ls, &ks);
        }
        {
            let dir = tempfile::tempdir().unwrap();
            let mut ls = open_libstate(dir.path(), &data, Engine::Memfile);
            run_ops(c, n, "libstate-memfile", &mut ls, &ks);
        }
    }
}

/// A durable write: libstate sync mode vs the disk's own append + fdatasync.
fn durable(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("floor"))
        .unwrap();
    let rec = [0x5Au8; 128];
    group.bench_function("disk-append-fdatasync", |b| {
        b.iter(|| {
            file.write_all(&rec).unwrap();
            file.sync_data().unwrap();
        })
    });
    let store = Store::builder()
        .engine(Engine::Sled)
        .sync(true)
        .open(dir.path().join("sync-store"))
        .unwrap();
    let bucket = store.bucket("b").unwrap();
    let v = [7u8; VALUE_LEN];
    let mut i = 0u64;
    group.bench_function("libstate-sled-sync-set1", |b| {
        b.iter(|| {
            i += 1;
            bucket.set(&format!("k{:09}", i % 100_000), v).unwrap();
        })
    });
    // 4 writer threads: durable sets per second vs one writer (group commit).
    for threads in [1usize, 4] {
        group.throughput(Throughput::Elements(threads as u64 * 50));
        group.bench_function(
            BenchmarkId::new("libstate-sled-sync-writers", threads),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::thread::scope(|s| {
                            for t in 0..threads {
                                let bucket = bucket.clone();
                                s.spawn(move || {
                                    for j in 0..50 {
                                        bucket.set(&format!("t{t}-{j}"), v).unwrap();
                                    }
                                });
                            }
                        });
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
    store.close().unwrap();
}

/// Expired keys removed per second by the sweeper.
fn sweep(c: &mut Criterion) {
    let mut group = c.benchmark_group("sweep");
    group.sample_size(10);
    const EXPIRING: usize = 10_000;
    group.throughput(Throughput::Elements(EXPIRING as u64));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Store::builder()
        .clock(Arc::new(clock.clone()))
        .sweep_interval(None)
        .open(dir.path())
        .unwrap();
    let keep = store.bucket("keep").unwrap();
    let ks = keys(100_000, 3);
    for chunk in ks.chunks(MULTI) {
        keep.set_multiple(chunk.iter().map(|k| (k.as_str(), [1u8; VALUE_LEN])))
            .unwrap();
    }
    let temp = store.bucket("temp").unwrap();
    group.bench_function("sled-10k-expired-among-100k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for chunk in ks[..EXPIRING].chunks(MULTI) {
                    temp.set_multiple_with_ttl(
                        chunk.iter().map(|k| (k.as_str(), [2u8; VALUE_LEN])),
                        Duration::from_secs(1),
                    )
                    .unwrap();
                }
                clock.advance(1000);
                let start = Instant::now();
                let n = store.sweep_expired().unwrap();
                total += start.elapsed();
                assert_eq!(n, EXPIRING as u64);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, ops, durable, sweep);
criterion_main!(benches);
