//! Watch benchmark (issue 17; figures in docs/watch.md): writes per second with 0
//! and 10 watchers on the written prefix, and the in-process delivery latency
//! (from just before `set` to the watcher's `recv` returning), per engine.
//!
//! `cargo bench -p state-core --bench watch` (`WATCH_WRITES=N` to change the count).
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use state_core::{Engine, Notice, Store};

fn writes_per_sec(engine: Engine, watchers: usize, n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder().engine(engine).open(dir.path()).unwrap();
    let b = store.bucket("bench").unwrap();
    let start = Arc::new(Barrier::new(watchers + 1));
    // Each watcher drains its queue on its own thread, as a real consumer would.
    let consumers: Vec<_> = (0..watchers)
        .map(|_| {
            let w = b.watch("k").unwrap();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut got = 0u64;
                while let Some(n) = w.recv() {
                    got += match n {
                        Notice::Change(_) => 1,
                        Notice::Lagged(m) => m,
                    };
                }
                got
            })
        })
        .collect();
    start.wait();
    let v = [7u8; 100];
    let t = Instant::now();
    for i in 0..n {
        b.set(&format!("k{:08}", i % 10_000), v).unwrap();
    }
    let el = t.elapsed();
    store.close().unwrap();
    for c in consumers {
        c.join().unwrap();
    }
    n as f64 / el.as_secs_f64()
}

fn latency_p50(engine: Engine, n: usize) -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder().engine(engine).open(dir.path()).unwrap();
    let b = store.bucket("bench").unwrap();
    let w = b.watch("k").unwrap();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<Instant>();
    // The consumer waits in recv; it reports when each event arrived.
    let consumer = thread::spawn(move || {
        for _ in 0..n {
            match w.recv() {
                Some(Notice::Change(_)) => ack_tx.send(Instant::now()).unwrap(),
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let sent = Instant::now();
        b.set(&format!("k{i}"), b"v").unwrap();
        // One write in flight at a time: delivery latency, not queueing.
        let got = ack_rx.recv().unwrap();
        lat.push(got - sent);
    }
    consumer.join().unwrap();
    lat.sort();
    store.close().unwrap();
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100])
}

fn main() {
    let n: usize = std::env::var("WATCH_WRITES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    for engine in [Engine::Memfile, Engine::Sled] {
        // Interleave runs so a noisy neighbour hits both alike; report the best.
        let mut none = 0f64;
        let mut ten = 0f64;
        for _ in 0..3 {
            none = none.max(writes_per_sec(engine, 0, n));
            ten = ten.max(writes_per_sec(engine, 10, n));
        }
        let (p50, p99) = latency_p50(engine, 20_000);
        println!(
            "{engine:?}: writes/s no watcher {none:.0}, 10 watchers {ten:.0} ({:.2}x); in-process delivery p50 {:.1} us, p99 {:.1} us",
            ten / none,
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
}
