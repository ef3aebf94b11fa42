//! Round-trip figures of the client against a running `state serve`:
//! `cargo run --release -p state-client --example bench_get -- URL [N]`.
//! Prints the mean time of a `get` of a 100-byte value, of a `set`, of a
//! `get_multiple` of 1000 keys (one request), and of a cursor `next_n(100)`;
//! then a repeated `get` of cached keys with the client-side cache on
//! (`Options::cache`), beside an embedded memfile store's `get` of the same keys
//! in a temporary directory (the cache's goal: at most 2x the embedded read).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: bench_get URL [N]")?;
    let n: u32 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let b = state_client::connect(&url)?;
    let keys: Vec<String> = (0..1000).map(|i| format!("bench/{i:04}")).collect();
    b.set_multiple(keys.iter().map(|k| (k.as_str(), [b'v'; 100])))?;
    let per_op = |start: Instant, ops: u32| start.elapsed().as_secs_f64() * 1e6 / f64::from(ops);

    let t = Instant::now();
    for i in 0..n {
        let _ = b.get(&keys[(i % 1000) as usize])?;
    }
    println!("get (100 B):            {:8.2} us", per_op(t, n));
    let t = Instant::now();
    for i in 0..n {
        b.set(&keys[(i % 1000) as usize], [b'w'; 100])?;
    }
    println!("set (100 B):            {:8.2} us", per_op(t, n));
    let rounds = (n / 100).max(10);
    let t = Instant::now();
    for _ in 0..rounds {
        assert_eq!(b.get_multiple(&keys)?.len(), 1000);
    }
    println!("get_multiple(1000):     {:8.2} us", per_op(t, rounds));
    let t = Instant::now();
    for _ in 0..rounds {
        let mut c = b.cursor()?;
        assert_eq!(c.next_n(100)?.len(), 100);
    }
    println!("cursor next_n(100):     {:8.2} us", per_op(t, rounds));

    // The client-side cache: every key read once, then read again and again.
    let opts = state_client::Options {
        cache: Some(state_client::CacheOptions::entries(10_000)),
        ..state_client::Options::default()
    };
    let cached = state_client::connect_with(Some(&url), opts)?;
    for k in &keys {
        let _ = cached.get(k)?;
    }
    let reps = n.max(1) * 50;
    let t = Instant::now();
    for i in 0..reps {
        let _ = cached.get(&keys[(i % 1000) as usize])?;
    }
    let cached_ns = per_op(t, reps) * 1e3;
    println!(
        "cached get (100 B):     {:8.0} ns  ({} of {} keys cached)",
        cached_ns,
        cached.cached_len(),
        keys.len()
    );
    let dir = std::env::temp_dir().join(format!("bench_get-{}", std::process::id()));
    let store = state_core::Store::builder()
        .engine(state_core::Engine::Memfile)
        .open(&dir)?;
    let e = store.bucket("bench")?;
    e.set_multiple(keys.iter().map(|k| (k.as_str(), [b'w'; 100])))?;
    let t = Instant::now();
    for i in 0..reps {
        let _ = e.get(&keys[(i % 1000) as usize])?;
    }
    let embedded_ns = per_op(t, reps) * 1e3;
    println!("embedded memfile get:   {embedded_ns:8.0} ns");
    println!(
        "cached / embedded:      {:8.2}x (goal <= 2x)",
        cached_ns / embedded_ns
    );
    drop(e);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
