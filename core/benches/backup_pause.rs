//! How long `Store::backup` holds writers up: a writer sets keys in a loop while a
//! backup of a store of N records runs; the writer's per-call latency is compared
//! with the same writer's before the backup (docs/service.md, "Backup and
//! restore").
//!
//! `cargo bench -p state-core --bench backup_pause`; `LIBSTATE_BACKUP_SIZES`
//! (default `100000,1000000`) and `LIBSTATE_BACKUP_ENGINES` (default
//! `sled,memfile`) choose the runs. Prints one line per run.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use state_core::{Engine, Store};

/// Latencies of one phase, in nanoseconds.
#[derive(Default)]
struct Phase {
    lat: Vec<u64>,
}

impl Phase {
    fn summary(&mut self) -> String {
        if self.lat.is_empty() {
            return "no writes".into();
        }
        self.lat.sort_unstable();
        let q = |p: f64| {
            let i = ((self.lat.len() as f64 - 1.0) * p).round() as usize;
            Duration::from_nanos(self.lat[i])
        };
        format!(
            "{} writes, p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
            self.lat.len(),
            q(0.5),
            q(0.99),
            q(0.999),
            q(1.0)
        )
    }
}

fn run(engine: Engine, n: usize) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = Store::builder()
        .engine(engine)
        .open(tmp.path().join("s"))
        .expect("open");
    let bulk = store.bucket("bulk").expect("bucket");
    for start in (0..n).step_by(10_000) {
        let items: Vec<(String, Vec<u8>)> = (start..(start + 10_000).min(n))
            .map(|i| (format!("r{i:08}"), vec![b'x'; 100]))
            .collect();
        bulk.set_multiple(items).expect("load");
    }
    store.flush().expect("flush");

    // 0: baseline, 1: during the backup, 2: stop.
    let phase = Arc::new(AtomicU8::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let writer = {
        let (b, phase, started) = (
            store.bucket("hot").expect("bucket"),
            phase.clone(),
            started.clone(),
        );
        thread::spawn(move || {
            let mut phases = [Phase::default(), Phase::default()];
            let mut i = 0u64;
            loop {
                let p = phase.load(Ordering::Acquire);
                if p >= 2 {
                    break;
                }
                let t = Instant::now();
                b.set(&format!("w{:05}", i % 20_000), i.to_le_bytes())
                    .expect("set");
                phases[usize::from(p)]
                    .lat
                    .push(t.elapsed().as_nanos() as u64);
                started.store(true, Ordering::Release);
                i += 1;
            }
            phases
        })
    };
    while !started.load(Ordering::Acquire) {
        thread::yield_now();
    }
    thread::sleep(Duration::from_secs(1));
    phase.store(1, Ordering::Release);
    let dest = tmp.path().join("copy");
    let t = Instant::now();
    let report = store.backup(&dest).expect("backup");
    let took = t.elapsed();
    phase.store(2, Ordering::Release);
    let [mut before, mut during] = writer.join().expect("writer");
    println!(
        "{engine} {n} records: backup {took:?} ({} records copied, {} captured), write lock held \
         at most {:?}\n  writer before: {}\n  writer during: {}",
        report.records,
        report.captured,
        report.write_pause,
        before.summary(),
        during.summary()
    );
    store.close().expect("close");
}

fn main() {
    let sizes = std::env::var("LIBSTATE_BACKUP_SIZES").unwrap_or("100000,1000000".into());
    let engines = std::env::var("LIBSTATE_BACKUP_ENGINES").unwrap_or("sled,memfile".into());
    for engine in engines.split(',') {
        let engine: Engine = engine.parse().expect("engine name");
        for n in sizes.split(',') {
            run(engine, n.trim().parse().expect("size"));
        }
    }
}
