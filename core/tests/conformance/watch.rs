//! Conformance cases for watchers ([`state_core::Bucket::watch`]): ordering,
//! batches, expiry, lag, isolation, ending, and no leaked watchers. Threads meet
//! through channels and barriers; nothing sleeps to synchronize.

/// This file, so the suite can check that every case written here is listed.
pub const SOURCE: &str = include_str!("watch.rs");

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

use state_core::{
    EngineConfig, ErrorKind, Event, EventKind, Expiry, ManualClock, Notice, RecvError, Store,
    WatchOptions, Watcher,
};

const T0: u64 = 1_700_000_000_000;

fn open(engine: &EngineConfig, dir: &Path) -> Store {
    Store::builder()
        .engine(engine)
        .sweep_interval(None)
        .open(dir)
        .unwrap()
}

fn open_at(engine: &EngineConfig, dir: &Path, clock: &ManualClock) -> Store {
    Store::builder()
        .engine(engine)
        .clock(Arc::new(clock.clone()))
        .sweep_interval(None)
        .open(dir)
        .unwrap()
}

/// The next change, failing on a lag notice or an ended watcher.
fn next(w: &Watcher) -> Event {
    match w.recv() {
        Some(Notice::Change(e)) => e,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn summary(e: &Event) -> (String, EventKind, Option<Vec<u8>>) {
    (e.key().to_string(), e.kind(), e.value().map(<[u8]>::to_vec))
}

fn set(k: &str, v: &str) -> (String, EventKind, Option<Vec<u8>>) {
    (k.into(), EventKind::Set, Some(v.as_bytes().to_vec()))
}

fn gone(k: &str, kind: EventKind) -> (String, EventKind, Option<Vec<u8>>) {
    (k.into(), kind, None)
}

fn assert_empty(w: &Watcher) {
    assert_eq!(w.try_recv(), Err(RecvError::Empty));
}

pub fn watch_delivers_sets_and_deletes_in_commit_order(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set("before", "x").unwrap();
    let w = b.watch("").unwrap();
    b.set("k", "1").unwrap();
    b.set("k", "2").unwrap();
    assert!(b.delete("k").unwrap());
    assert!(
        !b.delete("k").unwrap(),
        "deleting a missing key is no change"
    );
    b.set_json("j", &[1, 2]).unwrap();
    let got: Vec<_> = (0..4).map(|_| summary(&next(&w))).collect();
    assert_eq!(
        got,
        vec![
            set("k", "1"),
            set("k", "2"),
            gone("k", EventKind::Delete),
            set("j", "[1,2]")
        ]
    );
    assert_empty(&w);
}

pub fn watch_sees_only_its_prefix_and_bucket(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let alice = store.bucket("alice").unwrap();
    let bob = store.bucket("bob").unwrap();
    let w = alice.watch("layout/").unwrap();
    let everything = alice.watch("").unwrap();
    bob.set("layout/main", "bob's").unwrap();
    alice.set("layout", "no slash").unwrap();
    alice.set("other", "x").unwrap();
    bob.transaction(|tx| tx.put("layout/tx", b"bob".to_vec(), Expiry::Never))
        .unwrap();
    bob.set_multiple([("layout/a", "1")]).unwrap();
    alice.set("layout/main", "mine").unwrap();
    assert_eq!(summary(&next(&w)), set("layout/main", "mine"));
    assert_empty(&w);
    let all: Vec<_> = (0..3).map(|_| summary(&next(&everything))).collect();
    assert_eq!(
        all,
        vec![
            set("layout", "no slash"),
            set("other", "x"),
            set("layout/main", "mine")
        ]
    );
    assert_empty(&everything);
}

pub fn a_batch_arrives_as_its_events_in_order(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set("old", "o").unwrap();
    let w = b.watch("").unwrap();
    b.set_multiple([("z", "1"), ("a", "2"), ("m", "3")])
        .unwrap();
    let got: Vec<_> = (0..3).map(|_| summary(&next(&w))).collect();
    assert_eq!(got, vec![set("z", "1"), set("a", "2"), set("m", "3")]);
    // A transaction's changes come in key order, once each, after its commit.
    b.transaction(|tx| {
        tx.put("t2", b"v".to_vec(), Expiry::Never)?;
        tx.delete("old")?;
        tx.put("t1", b"first".to_vec(), Expiry::Never)?;
        tx.put("t1", b"second".to_vec(), Expiry::Never)?;
        tx.put("tmp", b"x".to_vec(), Expiry::Never)?;
        tx.delete("tmp")?;
        // Nothing may be delivered before the commit.
        assert_eq!(w.try_recv(), Err(RecvError::Empty));
        Ok(())
    })
    .unwrap();
    let got: Vec<_> = (0..3).map(|_| summary(&next(&w))).collect();
    assert_eq!(
        got,
        vec![
            gone("old", EventKind::Delete),
            set("t1", "second"),
            set("t2", "v")
        ]
    );
    assert_empty(&w);
    // A failed transaction or batch delivers nothing.
    let err = b
        .transaction(|tx| {
            tx.put("never", b"x".to_vec(), Expiry::Never)?;
            Err::<(), _>(state_core::Error::InvalidArgument("abort".into()))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(b.set_multiple([("ok", "1"), ("", "bad")]).is_err());
    assert_empty(&w);
}

pub fn events_follow_visibility(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let w = b.watch("k").unwrap();
    let reader = {
        let b = b.clone();
        thread::spawn(move || {
            // Each event's write must already be visible: the value read is the
            // event's or a later one (the writer counts up).
            let mut seen = 0u64;
            while seen < 500 {
                let e = next(&w);
                let n: u64 = std::str::from_utf8(e.value().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(n, seen + 1, "events arrive in order, none missed");
                let now: u64 = String::from_utf8(b.get(e.key()).unwrap().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(
                    now >= n,
                    "event for {n} came before its write was visible ({now})"
                );
                seen = n;
            }
        })
    };
    for i in 1..=500u64 {
        b.set("k", i.to_string()).unwrap();
    }
    reader.join().unwrap();
}

pub fn concurrent_writers_replay_to_the_stored_state(engine: &EngineConfig) {
    // The model: replaying the events in order onto a map gives exactly the stored
    // state, each write appears once, and each writer's writes keep their order.
    const WRITERS: usize = 4;
    const OPS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let w = b.watch_with_capacity("", WRITERS * OPS * 2 + 16).unwrap();
    let start = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (b, start) = (b.clone(), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut events = 0;
                for i in 0..OPS {
                    let key = format!("k{}", (i * 7 + t) % 13);
                    let value = format!("{t}:{i}");
                    match i % 5 {
                        0 => {
                            if b.delete(&key).unwrap() {
                                events += 1;
                            }
                        }
                        1 => {
                            b.set_multiple([(key.as_str(), value.as_str()), ("shared", &value)])
                                .unwrap();
                            events += 2;
                        }
                        2 => {
                            events += b
                                .transaction(|tx| {
                                    let existed = tx.delete(&key)?;
                                    tx.put("shared", value.clone().into_bytes(), Expiry::Never)?;
                                    Ok(usize::from(existed) + 1)
                                })
                                .unwrap();
                        }
                        _ => {
                            b.set(&key, &value).unwrap();
                            events += 1;
                        }
                    }
                }
                events
            })
        })
        .collect();
    let expected: usize = writers.into_iter().map(|h| h.join().unwrap()).sum();
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut last_by_writer: BTreeMap<String, i64> = BTreeMap::new();
    for _ in 0..expected {
        let e = next(&w);
        match e.kind() {
            EventKind::Set => {
                let v = e.value().unwrap();
                let text = std::str::from_utf8(v).unwrap();
                let (t, i) = text.split_once(':').unwrap();
                let i: i64 = i.parse().unwrap();
                let last = last_by_writer
                    .entry(format!("{}/{t}", e.key()))
                    .or_insert(-1);
                assert!(i > *last, "writer {t}'s writes to {} out of order", e.key());
                *last = i;
                model.insert(e.key().to_string(), v.to_vec());
            }
            EventKind::Delete => {
                assert!(model.remove(e.key()).is_some(), "delete of an absent key");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_empty(&w);
    let stored: BTreeMap<String, Vec<u8>> = b.iter().map(Result::unwrap).collect();
    assert_eq!(model, stored);
}

pub fn expiry_events_come_from_the_sweep_and_from_writes(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    let w = b.watch("").unwrap();
    b.set_with_ttl("s1", "a", Duration::from_secs(10)).unwrap();
    b.set_with_ttl("s2", "b", Duration::from_secs(10)).unwrap();
    b.set_with_ttl("s3", "c", Duration::from_secs(10)).unwrap();
    assert!(b.expire("s2", Duration::from_secs(5)).unwrap());
    let got: Vec<_> = (0..4).map(|_| summary(&next(&w))).collect();
    assert_eq!(
        got,
        vec![
            set("s1", "a"),
            set("s2", "b"),
            set("s3", "c"),
            gone("s2", EventKind::Expire)
        ]
    );
    assert_empty(&w);
    clock.advance(10_000);
    // Reading an expired key sends nothing; deleting it reports the expiry.
    assert_eq!(b.get("s1").unwrap(), None);
    assert_empty(&w);
    assert!(!b.delete("s1").unwrap());
    assert_eq!(summary(&next(&w)), gone("s1", EventKind::Expired));
    assert_eq!(store.sweep_expired().unwrap(), 2);
    let mut swept: Vec<_> = (0..2).map(|_| summary(&next(&w))).collect();
    swept.sort();
    assert_eq!(
        swept,
        vec![
            gone("s2", EventKind::Expired),
            gone("s3", EventKind::Expired)
        ]
    );
    // A transaction that overwrites an expired key is a set; a stale one it
    // deletes is an expiry.
    b.set_with_ttl("s4", "d", Duration::from_secs(1)).unwrap();
    assert_eq!(summary(&next(&w)), set("s4", "d"));
    clock.advance(1_000);
    b.transaction(|tx| tx.delete("s4")).unwrap();
    assert_eq!(summary(&next(&w)), gone("s4", EventKind::Expired));
    assert_empty(&w);
}

/// Each event names what happened, as Redis's keyspace events do: a set says
/// whether it created the key, a deadline set or changed without a new value is an
/// expire, a deadline removed a persist.
pub fn events_say_whether_a_set_is_new_and_name_deadline_changes(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set("old", "0").unwrap();
    b.set_with_ttl("gone", "0", Duration::from_secs(1)).unwrap();
    clock.advance(1_000);
    let w = b.watch("").unwrap();
    let new = |e: &Event| (e.key().to_string(), e.kind(), e.is_new());
    b.set("k", "1").unwrap();
    assert_eq!(new(&next(&w)), ("k".into(), EventKind::Set, true));
    b.set("k", "2").unwrap();
    assert_eq!(new(&next(&w)), ("k".into(), EventKind::Set, false));
    b.set("gone", "3").unwrap(); // over an expired record: created again
    assert_eq!(new(&next(&w)), ("gone".into(), EventKind::Set, true));
    // In a batch, a key repeated is new only the first time.
    b.set_multiple([("m", "1"), ("m", "2"), ("old", "3")])
        .unwrap();
    let got: Vec<_> = (0..3).map(|_| new(&next(&w))).collect();
    assert_eq!(
        got,
        vec![
            ("m".into(), EventKind::Set, true),
            ("m".into(), EventKind::Set, false),
            ("old".into(), EventKind::Set, false)
        ]
    );
    b.set_with_ttl("t", "4", Duration::from_secs(60)).unwrap();
    assert_eq!(new(&next(&w)), ("t".into(), EventKind::Set, true));
    assert!(b.expire("k", Duration::from_secs(60)).unwrap());
    assert_eq!(summary(&next(&w)), gone("k", EventKind::Expire));
    assert!(b.persist("k").unwrap());
    assert_eq!(summary(&next(&w)), gone("k", EventKind::Persist));
    assert!(!b.persist("k").unwrap()); // no deadline: nothing changes, no event
    assert!(!b.expire("nope", Duration::from_secs(1)).unwrap());
    b.transaction(|tx| {
        tx.set_expiry("t", None)?;
        tx.set_expiry("m", Some(T0 + 90_000))?;
        tx.set_expiry("old", None)?; // had none: no change
        tx.put("n", b"5".to_vec(), Expiry::Never)
    })
    .unwrap();
    let got: Vec<_> = (0..3).map(|_| new(&next(&w))).collect();
    assert_eq!(
        got,
        vec![
            ("m".into(), EventKind::Expire, false),
            ("n".into(), EventKind::Set, true),
            ("t".into(), EventKind::Persist, false)
        ]
    );
    assert_empty(&w);
    assert_eq!(
        b.ttl("m").unwrap(),
        state_core::Ttl::Expires(Duration::from_secs(89))
    );
    assert_eq!(b.ttl("t").unwrap(), state_core::Ttl::NoExpiry);
    let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["set", "delete", "expired", "expire", "persist"]);
}

pub fn a_stalled_watcher_gets_a_lag_notice_and_writers_go_on(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let slow = b.watch_with_capacity("", 4).unwrap();
    let fast = b.watch("").unwrap();
    for i in 0..10 {
        b.set(&format!("k{i}"), "v").unwrap();
    }
    for i in 0..4 {
        assert_eq!(next(&slow).key(), format!("k{i}"));
    }
    assert_eq!(slow.recv(), Some(Notice::Lagged(6)));
    assert_empty(&slow);
    b.set("after", "v").unwrap();
    assert_eq!(next(&slow).key(), "after");
    // The lag notice sits where the events were lost.
    for i in 0..6 {
        b.set(&format!("m{i}"), "v").unwrap();
    }
    let keys: Vec<String> = (0..4).map(|_| next(&slow).key().to_string()).collect();
    assert_eq!(keys, ["m0", "m1", "m2", "m3"]);
    // m4 and m5 were dropped; the next event queues behind the notice of the gap.
    b.set("n", "v").unwrap();
    assert_eq!(slow.recv(), Some(Notice::Lagged(2)));
    assert_eq!(next(&slow).key(), "n");
    assert_empty(&slow);
    // The other watcher missed nothing.
    for _ in 0..(10 + 1 + 6 + 1) {
        next(&fast);
    }
    assert_empty(&fast);
}

/// A watcher's queue is bounded in bytes as well as in notices: a watcher that
/// does not read pins at most its byte bound of values (one event always fits),
/// and a keys-only watcher pins no values at all.
pub fn a_watcher_is_bounded_in_bytes_and_may_take_keys_only(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let big = vec![7u8; 100_000];
    let bytes = b
        .watch_with("", WatchOptions::new(1000, 250_000, true))
        .unwrap();
    let keys = b
        .watch_with("", WatchOptions::new(1000, 250_000, false))
        .unwrap();
    let one = b.watch_with("", WatchOptions::new(1000, 10, true)).unwrap();
    for i in 0..10 {
        b.set(&format!("k{i}"), &big).unwrap();
    }
    // 250,000 bytes hold two 100 KB events: the rest are counted as missed.
    for i in 0..2 {
        let e = next(&bytes);
        assert_eq!(
            (e.key(), e.value()),
            (format!("k{i}").as_str(), Some(&big[..]))
        );
    }
    assert_eq!(bytes.recv(), Some(Notice::Lagged(8)));
    assert_empty(&bytes);
    // Without values every event fits, and none carries its value.
    for i in 0..10 {
        let e = next(&keys);
        assert_eq!(
            (e.key(), e.kind(), e.value()),
            (format!("k{i}").as_str(), EventKind::Set, None)
        );
    }
    assert_empty(&keys);
    // A bound smaller than one event still lets one in (into an empty queue).
    assert_eq!(next(&one).key(), "k0");
    assert_eq!(one.recv(), Some(Notice::Lagged(9)));
    // Reading frees the bytes: the next events are queued again.
    b.set("after", &big).unwrap();
    assert_eq!(next(&bytes).key(), "after");
    assert_eq!(next(&one).key(), "after");
}

pub fn watchers_end_when_the_store_closes(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let w = b.watch("").unwrap();
    b.set("queued", "1").unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let waiter = {
        let w2 = b.watch("").unwrap();
        thread::spawn(move || {
            ready_tx.send(()).unwrap();
            // Whether it is waiting yet or not, it must see the end.
            let mut n = 0;
            // (The writer below may outrun it: lag notices are fine here.)
            while let Some(notice) = w2.recv() {
                if let Notice::Change(_) = notice {
                    n += 1;
                }
            }
            n
        })
    };
    ready_rx.recv().unwrap();
    // Writers keep writing while the store closes.
    let writer = {
        let b = b.clone();
        thread::spawn(move || {
            let mut i = 0u64;
            loop {
                match b.set("flow", i.to_string()) {
                    Ok(()) => i += 1,
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Closed);
                        return i;
                    }
                }
            }
        })
    };
    // Let events flow before closing: wait (no timing involved) for one of them.
    loop {
        if let Some(Notice::Change(e)) = w.recv() {
            if e.key() == "flow" {
                break;
            }
        }
    }
    store.close().unwrap();
    let writes = writer.join().unwrap();
    assert!(writes >= 1);
    // The queue is drained, then the watcher reports its end.
    while w.recv().is_some() {}
    assert_eq!(w.try_recv(), Err(RecvError::Ended));
    assert!(w.is_ended());
    assert!(waiter.join().unwrap() >= 1);
    assert_eq!(b.watch("").unwrap_err().kind(), ErrorKind::Closed);
}

pub fn ending_or_dropping_a_watcher_unregisters_it(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    assert_eq!(store.watcher_count().unwrap(), 0);
    let ws: Vec<Watcher> = (0..50)
        .map(|i| b.watch(&format!("p{i}")).unwrap())
        .collect();
    assert_eq!(store.watcher_count().unwrap(), 50);
    drop(ws);
    assert_eq!(store.watcher_count().unwrap(), 0);

    // Ending a watcher while a writer streams events to it, from another thread
    // than the one waiting in recv.
    let w = Arc::new(b.watch("").unwrap());
    let (got_one_tx, got_one_rx) = mpsc::channel();
    let consumer = {
        let w = Arc::clone(&w);
        thread::spawn(move || {
            let mut n = 0u64;
            while w.recv().is_some() {
                n += 1;
                if n == 1 {
                    got_one_tx.send(()).unwrap();
                }
            }
            n
        })
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (b, stop) = (b.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                b.set("k", i.to_string()).unwrap();
                i += 1;
            }
        })
    };
    got_one_rx.recv().unwrap();
    w.end();
    assert!(consumer.join().unwrap() >= 1);
    assert_eq!(store.watcher_count().unwrap(), 0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();

    // Closing a handle ends the watchers made through it, not the others.
    let other = open(engine, dir.path());
    let w_other = other.bucket("b").unwrap().watch("").unwrap();
    let w_mine = b.watch("").unwrap();
    assert_eq!(store.watcher_count().unwrap(), 2);
    other.close().unwrap();
    assert!(w_other.is_ended());
    assert!(!w_mine.is_ended());
    assert_eq!(store.watcher_count().unwrap(), 1);
}

pub fn removing_a_bucket_deletes_each_watched_key(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set("a", "1").unwrap();
    b.set_with_ttl("e", "2", Duration::from_secs(1)).unwrap();
    b.set("x/y", "3").unwrap();
    clock.advance(1_000);
    let w = b.watch("").unwrap();
    assert!(store.remove_bucket("b").unwrap());
    let got: Vec<_> = (0..3).map(|_| summary(&next(&w))).collect();
    assert_eq!(
        got,
        vec![
            gone("a", EventKind::Delete),
            gone("e", EventKind::Expired),
            gone("x/y", EventKind::Delete)
        ]
    );
    assert_empty(&w);
}

pub fn watch_arguments_are_checked(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    let long = "p".repeat(1025);
    assert_eq!(
        b.watch(&long).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        b.watch_with_capacity("", 0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let w = b.watch(&"p".repeat(1024)).unwrap();
    assert_eq!(w.prefix().len(), 1024);
    assert_eq!(w.bucket_name(), "b");
    // recv_timeout on an idle watcher reports Empty, not an end.
    assert_eq!(
        w.recv_timeout(Duration::from_millis(1)),
        Err(RecvError::Empty)
    );
}

/// A transaction's labels reach watchers that take them, one event per label in
/// the order given across keys; watchers without labels get the changes as ever;
/// a key labelled with nothing is not told to labelled watchers.
pub fn labelled_events_come_in_the_writers_order(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set("src", "v").unwrap();
    b.set("quiet", "q").unwrap();
    let plain = b.watch("").unwrap();
    let labelled = b
        .watch_with("", WatchOptions::default().with_labels(true))
        .unwrap();
    b.transaction(|tx| {
        // As the Redis server labels RENAME src dst (in Redis's order).
        let rec = tx.get("src")?.cloned().unwrap();
        tx.label("dst", "new")?;
        tx.put("dst", rec.value, Expiry::Never)?;
        tx.label("src", "rename_from")?;
        tx.delete("src")?;
        tx.label("dst", "rename_to")?;
        tx.delete("quiet")?;
        tx.label_none("quiet")?;
        // A label of a key the transaction does not change is dropped.
        tx.label("untouched", "set")
    })
    .unwrap();
    let got: Vec<_> = (0..3)
        .map(|_| {
            let e = next(&labelled);
            (e.key().to_string(), e.kind(), e.label())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("dst".into(), EventKind::Set, Some("new")),
            ("src".into(), EventKind::Delete, Some("rename_from")),
            ("dst".into(), EventKind::Set, Some("rename_to")),
        ]
    );
    assert_empty(&labelled);
    // Without labels: one event per key, in the batch's (key) order.
    let got: Vec<_> = (0..3)
        .map(|_| {
            let e = next(&plain);
            (summary(&e), e.label())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (set("dst", "v"), None),
            (gone("quiet", EventKind::Delete), None),
            (gone("src", EventKind::Delete), None),
        ]
    );
    assert_empty(&plain);
    // Unlabelled writes reach both kinds of watcher unlabelled.
    b.set("x", "1").unwrap();
    assert_eq!(next(&labelled).label(), None);
    assert_eq!(summary(&next(&plain)), set("x", "1"));
}

/// A key watch (Redis's WATCH) sees every committed write to its keys, even one
/// that leaves the value and deadline exactly as they were, and a deadline that
/// passes; not writes to other keys, nor the removal of a record that had already
/// expired when watched.
pub fn a_key_watch_sees_every_write_even_an_identical_one(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    let other = store.bucket("other").unwrap();
    b.set("k", "v").unwrap();
    let changed = |w: &state_core::KeyWatch| b.transaction(|tx| tx.watched_changed(w)).unwrap();

    let w = b.watch_keys(&["k", "missing"]).unwrap();
    b.set("unwatched", "1").unwrap();
    other.set("k", "1").unwrap();
    assert!(
        !changed(&w),
        "writes to other keys and buckets are no change"
    );
    b.set("k", "v").unwrap(); // the same value again
    assert!(w.touched());
    assert!(changed(&w));

    let w = b.watch_keys(&["missing"]).unwrap();
    b.set("missing", "1").unwrap();
    b.delete("missing").unwrap();
    assert!(changed(&w), "created and deleted again is a change");

    // A transaction that writes the same value is seen too.
    let w = b.watch_keys(&["k"]).unwrap();
    b.transaction(|tx| tx.put("k", b"v".to_vec(), Expiry::Keep))
        .unwrap();
    assert!(changed(&w));

    // A live key whose deadline passes is changed before anything removes it.
    b.set_with_ttl("t", "1", Duration::from_secs(1)).unwrap();
    let w = b.watch_keys(&["t"]).unwrap();
    assert!(!changed(&w));
    clock.advance(1_000);
    assert!(changed(&w));
    assert!(!w.touched(), "nothing was written yet");

    // A key already expired when watched: removing its record is no change.
    b.set_with_ttl("stale", "1", Duration::from_secs(1))
        .unwrap();
    clock.advance(1_000);
    let w = b.watch_keys(&["stale"]).unwrap();
    assert_eq!(store.sweep_expired().unwrap(), 2, "t and stale");
    assert!(!changed(&w));
    assert!(store.expired_removed().unwrap() >= 2);

    // Removing the bucket changes its live keys.
    let w = b.watch_keys(&["k"]).unwrap();
    store.remove_bucket("b").unwrap();
    assert!(changed(&w));
    drop(w);
    assert_eq!(
        store.watcher_count().unwrap(),
        0,
        "key watches are no watchers"
    );

    // A watch of another bucket is refused inside a transaction.
    let w = other.watch_keys(&["k"]).unwrap();
    let e = b.transaction(|tx| tx.watched_changed(&w)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        b.watch_keys(&[""]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}
