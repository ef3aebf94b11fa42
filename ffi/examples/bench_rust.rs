//! The Rust half of `make bench-c`: the workload of tests/bench.c (Get 1 / Set 1 /
//! Set Multiple 1000 on 100K records, same key sequence) through the Rust API, so the
//! C ABI's cost per call is the difference between the two reports.
//! Usage: bench_rust STORE_DIR (`STATE_BENCH_ENGINE=memfile` for the memfile engine).

// It calls the exports as a C program does.
#![allow(unsafe_code)]

use std::time::Instant;

use std::ffi::CString;

use state::{state_bucket, state_status, state_store};
use state_core::Store;

const RECORDS: usize = 100_000;
const ROUNDS: usize = 7;
const KEY_LEN: usize = 10;
const VALUE_LEN: usize = 100;

/// xorshift64*: the same generator as tests/bench.c.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per operation of `n` operations run by `f`.
fn per_op(n: usize, f: impl FnOnce()) -> f64 {
    let t0 = Instant::now();
    f();
    t0.elapsed().as_nanos() as f64 / n as f64
}

/// Per-round figures of the two APIs, measured in alternating rounds.
#[derive(Default)]
struct Pair {
    rust: Vec<f64>,
    c: Vec<f64>,
}

impl Pair {
    fn report(self, name: &str, unit: &str, scale: f64) {
        let diffs: Vec<f64> = self.c.iter().zip(&self.rust).map(|(c, r)| c - r).collect();
        println!(
            "{name:<22} Rust {:>9.1} {unit}   C ABI {:>9.1} {unit}   C - Rust (median of paired rounds) {:>+8.1} ns",
            median(self.rust) / scale,
            median(self.c) / scale,
            median(diffs)
        );
    }
}

fn c_open(dir: &str, engine: &str) -> *mut state_store {
    let path = CString::new(dir).unwrap_or_default();
    let engine = CString::new(engine).unwrap_or_default();
    let mut opts = std::mem::MaybeUninit::<state::state_options>::uninit();
    let size = std::mem::size_of::<state::state_options>();
    // SAFETY: `opts` is writable for `size` bytes.
    let rc = unsafe { state::state_options_init(opts.as_mut_ptr(), size) };
    assert_eq!(rc, state_status::STATE_OK);
    // SAFETY: initialized by state_options_init just above.
    let mut opts = unsafe { opts.assume_init() };
    opts.engine = engine.as_ptr();
    let mut st = std::ptr::null_mut();
    // SAFETY: NUL-terminated path, options naming a live engine string, writable
    // out-parameter.
    let rc = unsafe { state::state_open(path.as_ptr(), &opts, &mut st) };
    assert_eq!(rc, state_status::STATE_OK);
    st
}

fn c_bucket_open(st: *mut state_store, name: &str) -> *mut state_bucket {
    let name = CString::new(name).unwrap_or_default();
    let mut b = std::ptr::null_mut();
    // SAFETY: valid store handle, NUL-terminated name, writable out-parameter.
    let rc = unsafe { state::state_bucket_open(st, name.as_ptr(), &mut b) };
    assert_eq!(rc, state_status::STATE_OK);
    b
}

fn main() -> state_core::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bench-data".to_string());
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let keys: Vec<String> = (0..RECORDS)
        .map(|_| {
            (0..KEY_LEN)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize] as char)
                .collect()
        })
        .collect();
    let value: Vec<u8> = (0..VALUE_LEN).map(|_| rng.next() as u8).collect();

    let engine = match std::env::var("STATE_BENCH_ENGINE").as_deref() {
        Ok("memfile") => state_core::Engine::Memfile,
        _ => state_core::Engine::Sled,
    };
    let store = Store::builder().engine(engine).open(&dir)?;
    let b = store.bucket("bench")?;
    for chunk in keys.chunks(1000) {
        b.set_multiple(chunk.iter().map(|k| (k.as_str(), &value)))?;
    }
    println!(
        "Rust API vs C ABI in one process, {RECORDS} records, {} engine, alternating rounds",
        store.engine_name()
    );

    // The C ABI side goes through the exported functions, exactly as a C program
    // calls them (minus the dynamic-linking PLT hop).
    let c_store = c_open(&dir, store.engine_name());
    let c_bucket = c_bucket_open(c_store, "bench");

    let get_keys: Vec<CString> = (0..50_000)
        .map(|i| CString::new(keys[(i * 7919) % RECORDS].as_str()).unwrap_or_default())
        .collect();
    let missing = CString::new("no-such-key").unwrap_or_default();
    let set_keys: Vec<Vec<CString>> = (0..ROUNDS)
        .map(|r| {
            (0..20_000)
                .map(|i| {
                    CString::new(keys[(i * 104_729 + r) % RECORDS].as_str()).unwrap_or_default()
                })
                .collect()
        })
        .collect();

    let mut pair = Pair::default();
    for _ in 0..ROUNDS {
        pair.rust.push(per_op(50_000, || {
            for i in 0..50_000 {
                let v = b.get(&keys[(i * 7919) % RECORDS]).ok().flatten();
                assert!(v.is_some(), "key missing");
            }
        }));
        pair.c.push(per_op(50_000, || {
            for k in &get_keys {
                let (mut v, mut n) = (std::ptr::null_mut(), 0usize);
                // SAFETY: valid handle, NUL-terminated key, writable out-parameters.
                let rc = unsafe { state::state_get(c_bucket, k.as_ptr(), &mut v, &mut n) };
                assert_eq!(rc, state_status::STATE_OK);
                // SAFETY: the buffer and length state_get returned.
                unsafe { state::state_free(v.cast()) };
            }
        }));
    }
    pair.report("Get 1", "ns", 1.0);

    // Lent reads: `get_with` against `state_get_with`, each reading one byte.
    unsafe extern "C" fn first_byte(ctx: *mut std::ffi::c_void, v: *const u8, n: usize) {
        if n > 0 {
            // SAFETY: `ctx` is the `u64` passed below; `v` is readable for `n` bytes.
            unsafe { *ctx.cast::<u64>() += u64::from(*v) };
        }
    }
    let mut pair = Pair::default();
    for _ in 0..ROUNDS {
        pair.rust.push(per_op(50_000, || {
            for i in 0..50_000 {
                let v = b
                    .get_with(&keys[(i * 7919) % RECORDS], |v| v[0])
                    .ok()
                    .flatten();
                assert!(v.is_some(), "key missing");
            }
        }));
        pair.c.push(per_op(50_000, || {
            let mut sum = 0u64;
            for k in &get_keys {
                // SAFETY: valid handle, NUL-terminated key, a callback reading `sum`.
                let rc = unsafe {
                    state::state_get_with(
                        c_bucket,
                        k.as_ptr(),
                        Some(first_byte),
                        std::ptr::from_mut(&mut sum).cast(),
                    )
                };
                assert_eq!(rc, state_status::STATE_OK);
            }
            std::hint::black_box(sum);
        }));
    }
    pair.report("Get 1 lent (get_with)", "ns", 1.0);

    let mut pair = Pair::default();
    for _ in 0..ROUNDS {
        pair.rust.push(per_op(50_000, || {
            for _ in 0..50_000 {
                assert!(b.get("no-such-key").ok().flatten().is_none());
            }
        }));
        pair.c.push(per_op(50_000, || {
            for _ in 0..50_000 {
                let (mut v, mut n) = (std::ptr::null_mut(), 0usize);
                // SAFETY: valid handle, NUL-terminated key, writable out-parameters.
                let rc = unsafe { state::state_get(c_bucket, missing.as_ptr(), &mut v, &mut n) };
                assert_eq!(rc, state_status::STATE_NOT_FOUND);
            }
        }));
    }
    pair.report("Get 1 (missing key)", "ns", 1.0);

    let mut pair = Pair::default();
    for (r, round_keys) in set_keys.iter().enumerate() {
        pair.rust.push(per_op(20_000, || {
            for i in 0..20_000 {
                b.set(&keys[(i * 104_729 + r) % RECORDS], &value).ok();
            }
        }));
        pair.c.push(per_op(20_000, || {
            for k in round_keys {
                // SAFETY: valid handle, NUL-terminated key, `value` readable.
                let rc = unsafe {
                    state::state_set(c_bucket, k.as_ptr(), value.as_ptr().cast(), value.len())
                };
                assert_eq!(rc, state_status::STATE_OK);
            }
        }));
    }
    pair.report("Set 1", "ns", 1.0);

    let mut pair = Pair::default();
    for r in 0..ROUNDS {
        let batches: Vec<Vec<CString>> = (0..20)
            .map(|i| {
                let base = ((r * 20 + i) * 1000) % RECORDS;
                keys[base..base + 1000]
                    .iter()
                    .map(|k| CString::new(k.as_str()).unwrap_or_default())
                    .collect()
            })
            .collect();
        pair.rust.push(per_op(20, || {
            for i in 0..20 {
                let base = ((r * 20 + i) * 1000) % RECORDS;
                b.set_multiple(keys[base..base + 1000].iter().map(|k| (k.as_str(), &value)))
                    .ok();
            }
        }));
        pair.c.push(per_op(20, || {
            for batch in &batches {
                let items: Vec<state::state_kv> = batch
                    .iter()
                    .map(|k| state::state_kv {
                        key: k.as_ptr(),
                        value: value.as_ptr().cast(),
                        value_len: value.len(),
                    })
                    .collect();
                // SAFETY: valid handle and `items.len()` valid pairs.
                let rc =
                    unsafe { state::state_set_multiple(c_bucket, items.as_ptr(), items.len()) };
                assert_eq!(rc, state_status::STATE_OK);
            }
        }));
    }
    pair.report("Set Multiple 1000", "us", 1000.0);

    // SAFETY: handles from c_open / c_bucket_open, closed once.
    unsafe {
        state::state_bucket_close(c_bucket);
        state::state_close(c_store);
    }
    store.close()
}
