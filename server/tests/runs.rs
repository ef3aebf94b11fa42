//! Pipelines run as batches (server/src/requests.rs, cmd/batch.rs) reply exactly
//! as the same requests sent one at a time: a request alone in a read never
//! joins a run, so running each request of a pipeline by itself is the
//! one-by-one reference. The pipelines cross the 64 KiB flush mark in the middle
//! of runs, mix runs with requests that end them, and carry bad keys, missing
//! keys, counters on values that are not numbers, and inline commands.

use proptest::prelude::*;
use state_core::{Engine, Store};
use state_server::fuzzing::Harness;
use state_service::StateService;

const CLIENT: &str = "runs";

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A fresh store with the same records for both sides.
fn harness(dir: &std::path::Path) -> (Store, Harness) {
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(dir)
        .expect("open store");
    let h = Harness::new(StateService::new(store.clone()));
    (store, h)
}

/// Runs `reqs` as one pipeline on one store and one at a time on another (each
/// in a connection of its own: no session state may carry over, so no MULTI
/// here), both loaded with `setup`; the replies must be the same bytes.
fn same_replies(setup: &[Vec<u8>], reqs: &[Vec<u8>]) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store_a, piped) = harness(a.path());
    let (store_b, alone) = harness(b.path());
    for s in setup {
        assert_eq!(piped.run(CLIENT, s), alone.run(CLIENT, s));
    }
    let all: Vec<u8> = reqs.concat();
    let got = piped.run(CLIENT, &all);
    let mut want = Vec::new();
    for r in reqs {
        want.extend_from_slice(&alone.run(CLIENT, r));
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "pipelined replies differ from one-by-one"
    );
    drop((piped, alone));
    store_a.close().unwrap();
    store_b.close().unwrap();
}

/// 8 KiB values: a run of GETs passes the 64 KiB flush mark after 8 replies.
fn big_setup() -> Vec<Vec<u8>> {
    (0..20)
        .map(|i| {
            let v = vec![b'a' + (i % 26) as u8; 8 << 10];
            command(&[b"SET", format!("k{i}").as_bytes(), &v])
        })
        .collect()
}

#[test]
fn a_get_run_that_crosses_the_flush_mark_replies_as_one_by_one() {
    let reqs: Vec<Vec<u8>> = (0..40)
        .map(|i| command(&[b"GET", format!("k{}", i % 23).as_bytes()]))
        .collect();
    same_replies(&big_setup(), &reqs);
}

#[test]
fn runs_ended_by_other_requests_bad_keys_and_inline_commands_reply_as_one_by_one() {
    let bad_key = vec![b'x'; 2000];
    let mut reqs = vec![
        command(&[b"GET", b"k1"]),
        command(&[b"GET", b""]),
        command(&[b"GET", &bad_key]),
        command(&[b"SET", b"n", b"1"]),
        command(&[b"SET", b"k2", b"short"]),
        command(&[b"GET", b"k2"]),
        command(&[b"INCR", b"n"]),
        command(&[b"GET", b"n"]),
        b"PING\r\n".to_vec(),
        command(&[b"GET", b"missing"]),
        command(&[b"SET", b"", b"v"]),
        command(&[b"SET", b"k3", b"v3"]),
        command(&[b"GET", b"k3"]),
        command(&[b"GET", b"k3", b"extra"]),
        command(&[b"SET", b"k4", b"v4", b"EX", b"100"]),
        command(&[b"GET", b"k4"]),
    ];
    for i in 0..30 {
        reqs.push(command(&[b"GET", format!("k{}", i % 20).as_bytes()]));
    }
    same_replies(&big_setup(), &reqs);
}

/// A request of the pipeline: GET, SET (short or 8 KiB values, or a number) and
/// INCR/DECR/INCRBY of a few keys, or a request that ends a run.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        (0..6u8).prop_map(|i| format!("k{i}").into_bytes()),
        Just(Vec::new()),
    ];
    prop_oneof![
        4 => key.clone().prop_map(|k| command(&[b"GET", &k])),
        3 => (key.clone(), any::<bool>()).prop_map(|(k, big)| {
            let v = if big { vec![b'v'; 8 << 10] } else { b"small".to_vec() };
            command(&[b"SET", &k, &v])
        }),
        1 => key.clone().prop_map(|k| command(&[b"DEL", &k])),
        1 => Just(b"PING\r\n".to_vec()),
        1 => key.clone().prop_map(|k| command(&[b"APPEND", &k, b"+"])),
        3 => (key.clone(), -3i64..4).prop_map(|(k, by)| match by {
            0 => command(&[b"INCR", &k]),
            1 => command(&[b"DECR", &k]),
            _ => command(&[b"INCRBY", &k, by.to_string().as_bytes()]),
        }),
        1 => key.prop_map(|k| command(&[b"SET", &k, b"7"])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_pipeline_of_gets_sets_and_others_replies_as_one_by_one(
        reqs in proptest::collection::vec(request(), 1..80)
    ) {
        same_replies(&[], &reqs);
    }
}
