//! Server time per GET, without the network: pipelined `GET` commands parsed,
//! executed and answered by the connection's request loop in-process (the fuzz
//! harness: one connection's bytes in, its replies out; runs of GETs squashed as
//! `state serve` squashes them), beside the core's own point reads on the same
//! keys in the same run. `cargo bench -p state-server --bench get_time`.
//!
//! Two store sizes (`GET_TIME_N`, a comma-separated list of record counts,
//! default `1000,100000`): at 1,000 records the store fits in the CPU's caches,
//! so the figures are the code's own cost; at 100,000 every read of a random key
//! waits on memory (a few dependent cache misses), which the last row measures
//! for a plain `HashMap<String, Vec<u8>>` of the same keys.
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use state_core::{Engine, Store};
use state_server::fuzzing::Harness;
use state_service::StateService;

const CLIENT: &str = "bench";
/// GET commands per pipelined buffer.
const BATCH: usize = 10_000;
const ROUNDS: usize = 15;

fn main() {
    let sizes: Vec<usize> = std::env::var("GET_TIME_N")
        .unwrap_or_else(|_| "1000,100000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    println!("memfile, {ROUNDS} rounds of {BATCH} GETs of random keys, median ns per GET:");
    print!("| path |");
    for n in &sizes {
        print!(" {n} records |");
    }
    print!("\n|---|");
    for _ in &sizes {
        print!("---:|");
    }
    println!();
    let rows: Vec<[f64; 4]> = sizes.iter().map(|&n| measure(n)).collect();
    let names = [
        "server: RESP `GET` parsed, executed, answered (pipelined, no network)",
        "core: `Bucket::get` (owned copy)",
        "core: `Bucket::get_with` (lent)",
        "std `HashMap<String, Vec<u8>>::get` of the same keys (the memory's floor)",
    ];
    for (i, name) in names.iter().enumerate() {
        print!("| {name} |");
        for r in &rows {
            print!(" {:.0} |", r[i]);
        }
        println!();
    }
}

/// The medians of one store size: server, `get`, `get_with`, `HashMap::get`.
fn measure(n: usize) -> [f64; 4] {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(dir.path())
        .expect("open store");
    let svc = StateService::new(store.clone());
    let harness = Harness::new(svc.clone());
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let keys: Vec<String> = (0..n)
        .map(|_| {
            (0..10)
                .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
                .collect()
        })
        .collect();
    let value = vec![b'v'; 100];
    for chunk in keys.chunks(1000) {
        let mut cmd = resp_command(&[b"MSET"]);
        let mut args = 1;
        for k in chunk {
            push_bulk(&mut cmd, k.as_bytes());
            push_bulk(&mut cmd, &value);
            args += 2;
        }
        set_count(&mut cmd, args);
        let reply = harness.run(CLIENT, &cmd);
        assert_eq!(reply, b"+OK\r\n", "MSET failed");
    }
    let bucket = svc.client(CLIENT).expect("the client's bucket");
    let map: HashMap<String, Vec<u8>> = keys.iter().map(|k| (k.clone(), value.clone())).collect();

    let mut server = Vec::new();
    let mut get = Vec::new();
    let mut get_with = Vec::new();
    let mut std_map = Vec::new();
    for _ in 0..ROUNDS {
        let batch: Vec<&String> = (0..BATCH).filter_map(|_| keys.choose(&mut rng)).collect();
        let mut buf = Vec::new();
        for k in &batch {
            buf.extend_from_slice(&resp_command(&[b"GET", k.as_bytes()]));
        }
        let t = Instant::now();
        let reply = harness.run(CLIENT, &buf);
        server.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
        assert_eq!(
            reply.len(),
            BATCH * (b"$100\r\n".len() + 102),
            "every GET found"
        );

        let t = Instant::now();
        for k in &batch {
            black_box(bucket.get(k).expect("get"));
        }
        get.push(t.elapsed().as_nanos() as f64 / BATCH as f64);

        let t = Instant::now();
        for k in &batch {
            black_box(bucket.get_with(k, |v| v[0]).expect("get_with"));
        }
        get_with.push(t.elapsed().as_nanos() as f64 / BATCH as f64);

        let t = Instant::now();
        for k in &batch {
            black_box(map.get(k.as_str()).map(|v| v[0]));
        }
        std_map.push(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    drop(bucket);
    drop(harness);
    drop(svc);
    store.close().expect("close");
    [
        median(&mut server),
        median(&mut get),
        median(&mut get_with),
        median(&mut std_map),
    ]
}

fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        push_bulk(&mut out, a);
    }
    out
}

fn push_bulk(out: &mut Vec<u8>, a: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
    out.extend_from_slice(a);
    out.extend_from_slice(b"\r\n");
}

/// Rewrites the leading `*N` of a command built incrementally.
fn set_count(cmd: &mut Vec<u8>, args: usize) {
    let end = cmd.iter().position(|&b| b == b'\r').unwrap_or(0);
    cmd.splice(0..end, format!("*{args}").into_bytes());
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
