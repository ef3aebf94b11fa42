//! Property test: random operation sequences (writes, batches, expiry, cursor
//! moves, clock advances, sweeps, reopen) against a `BTreeMap` model with a model
//! cursor.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use state_core::{EngineConfig, ManualClock, Store, Ttl};

#[derive(Debug, Clone)]
enum Op {
    Set(usize, String, Vec<u8>),
    Delete(usize, String),
    SetMultiple(usize, Vec<(String, Vec<u8>)>),
    Get(usize, String),
    GetMultiple(usize, Vec<String>),
    RemoveBucket(usize),
    First,
    Last,
    Next,
    Prev,
    Seek(String),
    NextN(usize),
    PrevN(usize),
    Reopen,
    SetTtl(usize, String, Vec<u8>, u64),
    SetMultipleTtl(usize, Vec<(String, Vec<u8>)>, u64),
    Expire(usize, String, u64),
    Persist(usize, String),
    TtlOf(usize, String),
    Advance(u64),
    Sweep,
    Len(usize),
}

fn key() -> impl Strategy<Value = String> {
    "[a-d]{1,3}"
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..8)
}

fn op() -> impl Strategy<Value = Op> {
    let b = || 0usize..2;
    prop_oneof![
        4 => (b(), key(), value()).prop_map(|(b, k, v)| Op::Set(b, k, v)),
        2 => (b(), key()).prop_map(|(b, k)| Op::Delete(b, k)),
        2 => (b(), proptest::collection::vec((key(), value()), 0..6))
            .prop_map(|(b, kv)| Op::SetMultiple(b, kv)),
        2 => (b(), key()).prop_map(|(b, k)| Op::Get(b, k)),
        1 => (b(), proptest::collection::vec(key(), 0..5)).prop_map(|(b, ks)| Op::GetMultiple(b, ks)),
        1 => b().prop_map(Op::RemoveBucket),
        1 => Just(Op::First),
        1 => Just(Op::Last),
        3 => Just(Op::Next),
        3 => Just(Op::Prev),
        2 => key().prop_map(Op::Seek),
        2 => (0usize..6).prop_map(Op::NextN),
        2 => (0usize..6).prop_map(Op::PrevN),
        1 => Just(Op::Reopen),
        2 => (b(), key(), value(), 1u64..3000).prop_map(|(b, k, v, t)| Op::SetTtl(b, k, v, t)),
        1 => (b(), proptest::collection::vec((key(), value()), 0..4), 1u64..3000)
            .prop_map(|(b, kv, t)| Op::SetMultipleTtl(b, kv, t)),
        1 => (b(), key(), 1u64..3000).prop_map(|(b, k, t)| Op::Expire(b, k, t)),
        1 => (b(), key()).prop_map(|(b, k)| Op::Persist(b, k)),
        1 => (b(), key()).prop_map(|(b, k)| Op::TtlOf(b, k)),
        2 => (0u64..2000).prop_map(Op::Advance),
        1 => Just(Op::Sweep),
        1 => b().prop_map(Op::Len),
    ]
}

/// Model cursor position over bucket 0.
#[derive(Debug, Clone, PartialEq)]
enum MPos {
    Before,
    At(String),
    After,
}

/// Per bucket: key -> (value, deadline).
type Model = [BTreeMap<String, (Vec<u8>, Option<u64>)>; 2];
type Entry = (String, Vec<u8>);

/// The records visible at `now`.
fn live(m: &BTreeMap<String, (Vec<u8>, Option<u64>)>, now: u64) -> BTreeMap<String, Vec<u8>> {
    m.iter()
        .filter(|(_, (_, d))| d.is_none_or(|d| d > now))
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

fn model_step(m: &BTreeMap<String, Vec<u8>>, pos: &mut MPos, back: bool) -> Option<Entry> {
    let found = match (&*pos, back) {
        (MPos::After, false) | (MPos::Before, true) => None,
        (MPos::Before, false) => m.iter().next(),
        (MPos::After, true) => m.iter().next_back(),
        (MPos::At(k), false) => m
            .range::<String, _>((Bound::Excluded(k), Bound::Unbounded))
            .next(),
        (MPos::At(k), true) => m
            .range::<String, _>((Bound::Unbounded, Bound::Excluded(k)))
            .next_back(),
    }
    .map(|(k, v)| (k.clone(), v.clone()));
    if matches!((&*pos, back), (MPos::After, false) | (MPos::Before, true)) {
        return None;
    }
    *pos = match &found {
        Some((k, _)) => MPos::At(k.clone()),
        None if back => MPos::Before,
        None => MPos::After,
    };
    found
}

fn run_ops(engine: &EngineConfig, ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let clock = ManualClock::new(1_700_000_000_000);
    let open = || {
        Store::builder()
            .engine(engine)
            .clock(Arc::new(clock.clone()))
            .sweep_interval(None)
            .open(dir.path())
            .unwrap()
    };
    let names = ["b0", "b1"];
    let mut store = open();
    let mut model: Model = Default::default();
    let mut cursor = store.bucket(names[0]).unwrap().cursor().unwrap();
    let mut mpos = MPos::Before;
    for op in ops {
        let now = clock.now_ms_for_model();
        let view0 = live(&model[0], now);
        match op {
            Op::Set(b, k, v) => {
                store.bucket(names[*b]).unwrap().set(k, v).unwrap();
                model[*b].insert(k.clone(), (v.clone(), None));
            }
            Op::SetTtl(b, k, v, ms) => {
                store
                    .bucket(names[*b])
                    .unwrap()
                    .set_with_ttl(k, v, Duration::from_millis(*ms))
                    .unwrap();
                model[*b].insert(k.clone(), (v.clone(), Some(now + ms)));
            }
            Op::SetMultipleTtl(b, kv, ms) => {
                store
                    .bucket(names[*b])
                    .unwrap()
                    .set_multiple_with_ttl(kv.clone(), Duration::from_millis(*ms))
                    .unwrap();
                for (k, v) in kv {
                    model[*b].insert(k.clone(), (v.clone(), Some(now + ms)));
                }
            }
            Op::Expire(b, k, ms) => {
                let set = store
                    .bucket(names[*b])
                    .unwrap()
                    .expire(k, Duration::from_millis(*ms))
                    .unwrap();
                let live_now = live(&model[*b], now).contains_key(k);
                prop_assert_eq!(set, live_now);
                if live_now {
                    if let Some(entry) = model[*b].get_mut(k) {
                        entry.1 = Some(now + ms);
                    }
                }
            }
            Op::Persist(b, k) => {
                let removed = store.bucket(names[*b]).unwrap().persist(k).unwrap();
                let had = live(&model[*b], now).contains_key(k)
                    && model[*b].get(k).is_some_and(|(_, d)| d.is_some());
                prop_assert_eq!(removed, had);
                if had {
                    if let Some(entry) = model[*b].get_mut(k) {
                        entry.1 = None;
                    }
                }
            }
            Op::TtlOf(b, k) => {
                let got = store.bucket(names[*b]).unwrap().ttl(k).unwrap();
                let want = match model[*b].get(k) {
                    Some((_, Some(d))) if *d > now => Ttl::Expires(Duration::from_millis(d - now)),
                    Some((_, None)) => Ttl::NoExpiry,
                    _ => Ttl::Missing,
                };
                prop_assert_eq!(got, want);
            }
            Op::Advance(ms) => clock.advance(*ms),
            Op::Sweep => {
                let removed = store.sweep_expired().unwrap();
                let mut want = 0u64;
                for m in model.iter_mut() {
                    let before = m.len();
                    m.retain(|_, (_, d)| d.is_none_or(|d| d > now));
                    want += (before - m.len()) as u64;
                }
                prop_assert_eq!(removed, want);
            }
            Op::Len(b) => {
                let got = store.bucket(names[*b]).unwrap().len().unwrap();
                prop_assert_eq!(got, live(&model[*b], now).len() as u64);
            }
            Op::Delete(b, k) => {
                let existed = store.bucket(names[*b]).unwrap().delete(k).unwrap();
                let was_live = live(&model[*b], now).contains_key(k);
                model[*b].remove(k);
                prop_assert_eq!(existed, was_live);
            }
            Op::SetMultiple(b, kv) => {
                store
                    .bucket(names[*b])
                    .unwrap()
                    .set_multiple(kv.clone())
                    .unwrap();
                for (k, v) in kv {
                    model[*b].insert(k.clone(), (v.clone(), None));
                }
            }
            Op::Get(b, k) => {
                let got = store.bucket(names[*b]).unwrap().get(k).unwrap();
                prop_assert_eq!(got, live(&model[*b], now).get(k).cloned());
            }
            Op::GetMultiple(b, ks) => {
                let got = store.bucket(names[*b]).unwrap().get_multiple(ks).unwrap();
                let view = live(&model[*b], now);
                let want: BTreeMap<String, Vec<u8>> = ks
                    .iter()
                    .filter_map(|k| view.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::RemoveBucket(b) => {
                let removed = store.remove_bucket(names[*b]).unwrap();
                // Whether anything was stored, expired or not.
                prop_assert_eq!(removed, !model[*b].is_empty());
                model[*b].clear();
            }
            Op::First => {
                mpos = MPos::Before;
                let want = model_step(&view0, &mut mpos, false);
                prop_assert_eq!(cursor.first().unwrap(), want);
            }
            Op::Last => {
                mpos = MPos::After;
                let want = model_step(&view0, &mut mpos, true);
                prop_assert_eq!(cursor.last().unwrap(), want);
            }
            Op::Next => {
                let want = model_step(&view0, &mut mpos, false);
                prop_assert_eq!(cursor.next().unwrap(), want);
            }
            Op::Prev => {
                let want = model_step(&view0, &mut mpos, true);
                prop_assert_eq!(cursor.prev().unwrap(), want);
            }
            Op::Seek(k) => {
                let want = view0
                    .range::<String, _>((Bound::Included(k), Bound::Unbounded))
                    .next()
                    .map(|(k, v)| (k.clone(), v.clone()));
                mpos = match &want {
                    Some((k, _)) => MPos::At(k.clone()),
                    None => MPos::After,
                };
                prop_assert_eq!(cursor.seek(k).unwrap(), want);
            }
            Op::NextN(n) | Op::PrevN(n) => {
                let back = matches!(op, Op::PrevN(_));
                let mut want = Vec::new();
                for _ in 0..*n {
                    match model_step(&view0, &mut mpos, back) {
                        Some(e) => want.push(e),
                        None => break,
                    }
                }
                let got = if back {
                    cursor.prev_n(*n).unwrap()
                } else {
                    cursor.next_n(*n).unwrap()
                };
                prop_assert_eq!(got, want);
            }
            Op::Reopen => {
                store.close().unwrap();
                store = open();
                let old = cursor.key().map(str::to_string);
                cursor = store.bucket(names[0]).unwrap().cursor().unwrap();
                // Re-position the new cursor where the old one stood.
                match (&mpos, old) {
                    (MPos::At(_), Some(k)) => {
                        // Seek lands on k if it still exists, else the next key: emulate
                        // by stepping from the greatest key below k.
                        let below = view0
                            .range::<String, _>((Bound::Unbounded, Bound::Excluded(&k)))
                            .next_back()
                            .map(|(k, _)| k.clone());
                        match below {
                            Some(b) => {
                                cursor.seek(&b).unwrap();
                                mpos = MPos::At(b);
                            }
                            None => mpos = MPos::Before,
                        }
                    }
                    (MPos::After, _) => {
                        cursor.last().unwrap();
                        cursor.next().unwrap();
                    }
                    _ => {}
                }
            }
        }
    }
    // Full contents agree at the end, through iterators both ways.
    let now = clock.now_ms_for_model();
    for (i, name) in names.iter().enumerate() {
        let b = store.bucket(name).unwrap();
        let got: Vec<Entry> = b.iter().map(Result::unwrap).collect();
        let want: Vec<Entry> = live(&model[i], now).into_iter().collect();
        prop_assert_eq!(&got, &want);
        let mut rev: Vec<Entry> = b.iter().rev().map(Result::unwrap).collect();
        rev.reverse();
        prop_assert_eq!(&rev, &want);
        prop_assert_eq!(b.len().unwrap(), want.len() as u64);
    }
    store.close().unwrap();
    Ok(())
}

/// Reads the model clock (the store reads the same one).
trait NowForModel {
    fn now_ms_for_model(&self) -> u64;
}

impl NowForModel for ManualClock {
    fn now_ms_for_model(&self) -> u64 {
        state_core::Clock::now_ms(self)
    }
}

pub fn run(engine: &EngineConfig) {
    // Each operation on the Redis engines is a network round trip: `make test` gives
    // them a quarter of the cases (the model is the same for every engine, and the
    // in-process ones run all 64); full scale (`make soak`) runs 64 everywhere.
    let remote = matches!(engine, EngineConfig::Redis(_)) && !crate::support::full_scale();
    let cases = std::env::var("LIBSTATE_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if remote { 16 } else { 64 });
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..80), |ops| {
        run_ops(engine, &ops)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
