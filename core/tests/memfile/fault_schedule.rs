//! Random operations on a memfile store under a random schedule of injected disk
//! faults (`ENOSPC`, `EIO`, `EDQUOT`, short writes, in any file call), checked
//! against a model: after every operation the store reads as the state after the
//! acknowledged calls plus some of the failed ones (each whole or not at all), and
//! after the faults stop and the store is reopened, likewise — nothing acknowledged
//! is ever lost. Errors are always *I/O*, never *corrupt*.
//!
//! `make test` runs 32 cases; `STATE_FAULT_CASES=2000` (as `make soak` does) runs
//! more. The number of faults injected is printed.

use crate::support::fault as support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use self::support::{builder, contents, env_count, reopen_contents, FaultIo, Model};
use proptest::prelude::*;
use state_core::{ErrorKind, Store};

const BUCKETS: [&str; 2] = ["alpha", "beta"];

#[derive(Debug, Clone)]
enum Op {
    Set(usize, u8, usize),
    SetMultiple(usize, Vec<(u8, usize)>),
    Delete(usize, u8),
    Flush,
    Compact,
    Reopen,
}

fn value(key: u8, len: usize) -> Vec<u8> {
    vec![key.wrapping_mul(31).wrapping_add(len as u8) | 1; len]
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![4 => 0usize..300, 1 => 15_000usize..40_000];
    prop_oneof![
        6 => (0..2usize, 0..8u8, len.clone()).prop_map(|(b, k, l)| Op::Set(b, k, l)),
        3 => (0..2usize, proptest::collection::vec((0..8u8, len), 1..6))
            .prop_map(|(b, kv)| Op::SetMultiple(b, kv)),
        2 => (0..2usize, 0..8u8).prop_map(|(b, k)| Op::Delete(b, k)),
        1 => Just(Op::Flush),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

/// What a write op does to a model state.
fn apply(m: &Model, op: &Op) -> Model {
    let mut m = m.clone();
    match op {
        Op::Set(b, k, l) => {
            m.entry(BUCKETS[*b].into())
                .or_default()
                .insert(format!("k{k}"), value(*k, *l));
        }
        Op::SetMultiple(b, kv) => {
            let bucket = m.entry(BUCKETS[*b].into()).or_default();
            for (k, l) in kv {
                bucket.insert(format!("k{k}"), value(*k, *l));
            }
        }
        Op::Delete(b, k) => {
            if let Some(bucket) = m.get_mut(BUCKETS[*b]) {
                bucket.remove(&format!("k{k}"));
            }
        }
        _ => {}
    }
    m.retain(|_, b| !b.is_empty());
    m
}

fn run_write(store: &Store, op: &Op) -> state_core::Result<()> {
    match op {
        Op::Set(b, k, l) => store
            .bucket(BUCKETS[*b])?
            .set(&format!("k{k}"), value(*k, *l)),
        Op::SetMultiple(b, kv) => store.bucket(BUCKETS[*b])?.set_multiple(
            kv.iter()
                .map(|(k, l)| (format!("k{k}"), value(*k, *l)))
                .collect::<Vec<_>>(),
        ),
        Op::Delete(b, k) => store
            .bucket(BUCKETS[*b])?
            .delete(&format!("k{k}"))
            .map(|_| ()),
        _ => unreachable!(),
    }
}

fn assert_io(e: &state_core::Error) {
    assert_eq!(
        e.kind(),
        ErrorKind::Io,
        "only I/O errors under disk faults: {e}"
    );
}

/// Opens under faults, retrying (an open that fails must be *I/O* and leave the
/// store openable); after a few failures the faults stop.
fn reopen(io: &Arc<FaultIo>, dir: &Path, sync: bool, seed: u64, per_mille: u32) -> Store {
    for attempt in 0..8 {
        if attempt == 4 {
            io.clear();
        }
        match builder(io.clone(), sync).open(dir) {
            Ok(s) => {
                if attempt >= 4 {
                    io.random(seed.wrapping_add(attempt), per_mille);
                }
                return s;
            }
            Err(e) => assert_io(&e),
        }
    }
    panic!("the store did not open once the faults stopped");
}

static INJECTED: AtomicU64 = AtomicU64::new(0);
static CASES: AtomicU64 = AtomicU64::new(0);

fn run_case(ops: &[Op], seed: u64, per_mille: u32, sync: bool, mapped: bool) {
    let dir = tempfile::tempdir().unwrap();
    let io = FaultIo::new();
    if !mapped {
        io.without_map();
    }
    let mut store = builder(io.clone(), sync).open(dir.path()).unwrap();
    io.random(seed, per_mille);
    // Every state the store may be in: the acknowledged calls applied, and each
    // failed call applied whole or not at all.
    let mut candidates: BTreeSet<Model> = BTreeSet::from([Model::new()]);
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Flush => {
                if let Err(e) = store.flush() {
                    assert_io(&e);
                }
            }
            Op::Compact => {
                if let Err(e) = store.compact() {
                    assert_io(&e);
                }
            }
            Op::Reopen => {
                if let Err(e) = store.close() {
                    assert_io(&e);
                }
                store = reopen(&io, dir.path(), sync, seed ^ i as u64, per_mille);
                let now = contents(&store);
                assert!(
                    candidates.contains(&now),
                    "after reopening at op {i}: {now:?} is not a state the calls made"
                );
                candidates = BTreeSet::from([now]);
            }
            write => match run_write(&store, write) {
                Ok(()) => candidates = candidates.iter().map(|m| apply(m, write)).collect(),
                Err(e) => {
                    assert_io(&e);
                    if !e.to_string().contains("until it is reopened") {
                        let applied: Vec<Model> =
                            candidates.iter().map(|m| apply(m, write)).collect();
                        candidates.extend(applied);
                    }
                }
            },
        }
        // Reads work whatever failed.
        let now = contents(&store);
        assert!(
            candidates.contains(&now),
            "after op {i} ({op:?}): reads give a state the calls did not make"
        );
    }
    io.clear();
    if let Err(e) = store.close() {
        assert_io(&e);
    }
    let after = reopen_contents(dir.path()).unwrap();
    assert!(
        candidates.contains(&after),
        "after the faults stopped and the store reopened: {after:?}"
    );
    INJECTED.fetch_add(io.injected(), Ordering::SeqCst);
    CASES.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn random_faults_never_lose_acknowledged_writes() {
    let cases = env_count("STATE_FAULT_CASES", 32);
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        ops in proptest::collection::vec(op(), 1..40),
        seed in any::<u64>(),
        per_mille in 10u32..150,
        sync in any::<bool>(),
        mapped in any::<bool>(),
    )| {
        run_case(&ops, seed, per_mille, sync, mapped);
    });
    let injected = INJECTED.load(Ordering::SeqCst);
    let _ = writeln!(
        std::io::stderr(),
        "memfile_fault_schedule: {} cases, faults injected: {injected}",
        CASES.load(Ordering::SeqCst)
    );
    assert!(cases == 0 || injected > 0, "the schedule injected faults");
}
