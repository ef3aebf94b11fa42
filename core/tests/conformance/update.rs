//! Conformance cases for [`state_core::Bucket::update`], the single-key
//! read-modify-write: what the closure sees, what it writes, its deadline rules,
//! its events, its refusals, and atomicity against concurrent updates; and for
//! [`state_core::Bucket::update_many`], which must be exactly that many updates
//! committed as one write.

/// This file, so the suite can check that every case written here is listed.
pub const SOURCE: &str = include_str!("update.rs");

use std::path::Path;
use std::sync::Arc;
use std::thread;

use state_core::{
    EngineConfig, Error, ErrorKind, Event, EventKind, Expiry, ManualClock, Notice, RecvError,
    Store, Ttl, WatchOptions, Watcher,
};

const T0: u64 = 1_700_000_000_000;

fn open_at(engine: &EngineConfig, dir: &Path, clock: &ManualClock) -> Store {
    Store::builder()
        .engine(engine)
        .clock(Arc::new(clock.clone()))
        .sweep_interval(None)
        .open(dir)
        .unwrap()
}

fn next(w: &Watcher) -> Event {
    match w.recv() {
        Some(Notice::Change(e)) => e,
        other => panic!("expected a change, got {other:?}"),
    }
}

/// Adds `by` to the decimal counter at `key` (0 if missing), keeping its deadline;
/// returns the new count.
fn add(b: &state_core::Bucket, key: &str, by: i64) -> i64 {
    b.update(key, |u| {
        let old: i64 = match u.value() {
            Some(v) => std::str::from_utf8(v).unwrap().parse().unwrap(),
            None => 0,
        };
        let new = old + by;
        u.put_with(Expiry::Keep, |buf| {
            use std::io::Write;
            write!(buf, "{new}").unwrap();
        });
        Ok(new)
    })
    .unwrap()
}

pub fn update_reads_computes_and_writes_once(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    let w = b.watch("").unwrap();

    // A missing key: the closure sees nothing; saying nothing writes nothing.
    let seen = b
        .update("n", |u| {
            Ok((u.value().map(<[u8]>::to_vec), u.expires_at_ms()))
        })
        .unwrap();
    assert_eq!(seen, (None, None));
    assert_eq!(b.get("n").unwrap(), None);
    assert_eq!(w.try_recv(), Err(RecvError::Empty), "no write, no event");

    assert_eq!(add(&b, "n", 5), 5);
    assert_eq!(add(&b, "n", -2), 3);
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"3"[..]));
    let e = next(&w);
    assert_eq!(
        (e.key(), e.kind(), e.is_new(), e.value()),
        ("n", EventKind::Set, true, Some(&b"5"[..]))
    );
    let e = next(&w);
    assert_eq!(
        (e.kind(), e.is_new(), e.value()),
        (EventKind::Set, false, Some(&b"3"[..]))
    );

    // An error from the closure writes nothing, even after it said to write.
    let e = b
        .update("n", |u| -> state_core::Result<()> {
            u.put(b"999", Expiry::Never);
            Err(Error::InvalidArgument("changed my mind".into()))
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"3"[..]));

    // The old value is lent while the new one is built: an append.
    let len = b
        .update("n", |u| {
            let old = u.value().unwrap_or_default();
            Ok(u.put_with(Expiry::Keep, |buf| {
                buf.extend_from_slice(old);
                buf.extend_from_slice(b"-tail");
                buf.len()
            }))
        })
        .unwrap();
    assert_eq!(len, 6);
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"3-tail"[..]));
    // The last thing the closure said wins.
    b.update("n", |u| {
        u.delete();
        u.put(b"kept", Expiry::Never);
        Ok(())
    })
    .unwrap();
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(w.try_recv().map(|_| ()), Ok(()));
    assert_eq!(w.try_recv().map(|_| ()), Ok(()));
    assert_eq!(w.try_recv(), Err(RecvError::Empty));

    // Reopened, the value is there.
    store.close().unwrap();
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"kept"[..]));
    store.close().unwrap();
}

pub fn update_keeps_or_sets_the_deadline(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set_with_ttl("k", b"1", std::time::Duration::from_secs(10))
        .unwrap();
    let deadline = T0 + 10_000;

    // Keep: the deadline stays (and the closure sees it).
    let seen = b
        .update("k", |u| {
            u.put(b"2", Expiry::Keep);
            Ok(u.expires_at_ms())
        })
        .unwrap();
    assert_eq!(seen, Some(deadline));
    assert_eq!(
        b.ttl("k").unwrap(),
        Ttl::Expires(std::time::Duration::from_secs(10))
    );
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.info().unwrap().expiring, 1);

    // Never: the deadline goes, and so does its index entry.
    b.update("k", |u| {
        u.put(b"3", Expiry::Never);
        Ok(())
    })
    .unwrap();
    assert_eq!(b.ttl("k").unwrap(), Ttl::NoExpiry);
    assert_eq!(store.info().unwrap().expiring, 0);

    // At: a new deadline; a passed one deletes.
    b.update("k", |u| {
        u.put(b"4", Expiry::At(T0 + 5_000));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        b.ttl("k").unwrap(),
        Ttl::Expires(std::time::Duration::from_secs(5))
    );
    assert_eq!(store.info().unwrap().expiring, 1);
    let now = b
        .update("k", |u| {
            u.put(b"5", Expiry::At(u.now_ms()));
            Ok(u.now_ms())
        })
        .unwrap();
    assert_eq!(now, T0);
    assert_eq!(b.get("k").unwrap(), None);
    assert_eq!(b.ttl("k").unwrap(), Ttl::Missing);
    assert_eq!(store.info().unwrap().expiring, 0);

    // An expired record is no value; Keep on it keeps no deadline.
    b.set_with_ttl("old", b"x", std::time::Duration::from_secs(1))
        .unwrap();
    clock.advance(1_000);
    let seen = b
        .update("old", |u| {
            let seen = (u.value().map(<[u8]>::to_vec), u.expires_at_ms());
            u.put(b"y", Expiry::Keep);
            Ok(seen)
        })
        .unwrap();
    assert_eq!(seen, (None, None));
    assert_eq!(b.ttl("old").unwrap(), Ttl::NoExpiry);
    assert_eq!(b.get("old").unwrap().as_deref(), Some(&b"y"[..]));
    store.close().unwrap();
}

pub fn update_deletes_and_names_its_events(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set("live", b"1").unwrap();
    b.set_with_ttl("old", b"2", std::time::Duration::from_secs(1))
        .unwrap();
    clock.advance(1_000);
    let w = b.watch("").unwrap();

    let deleted = |key: &str| {
        b.update(key, |u| {
            let had = u.value().map(<[u8]>::to_vec);
            u.delete();
            Ok(had)
        })
        .unwrap()
    };
    assert_eq!(deleted("live").as_deref(), Some(&b"1"[..]));
    assert_eq!(deleted("missing"), None);
    assert_eq!(deleted("old"), None, "an expired record is no value");
    let e = next(&w);
    assert_eq!((e.key(), e.kind()), ("live", EventKind::Delete));
    let e = next(&w);
    assert_eq!(
        (e.key(), e.kind()),
        ("old", EventKind::Expired),
        "deleting the expired record says it expired"
    );
    assert_eq!(
        w.try_recv(),
        Err(RecvError::Empty),
        "a missing key: no event"
    );
    assert_eq!(b.get("live").unwrap(), None);
    assert_eq!(store.info().unwrap().expiring, 0);
    assert_eq!(b.len().unwrap(), 0);
    store.close().unwrap();
}

/// An update's labels reach watchers that take labels, one event per label in the
/// order given, each carrying the key's change (as a transaction's do); watchers
/// without labels get the change unlabelled, as ever; an update that writes
/// nothing, or fails, tells nobody; an unlabelled update reaches both unlabelled.
pub fn update_labels_reach_watchers_that_take_them(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set("gone", b"x").unwrap();
    let plain = b.watch("").unwrap();
    let labelled = b
        .watch_with("", WatchOptions::default().with_labels(true))
        .unwrap();
    // A missing event fails the test rather than hanging it.
    let summary = |w: &Watcher| match w.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(Notice::Change(e)) => (e.key().to_string(), e.kind(), e.is_new(), e.label()),
        other => panic!("expected a change, got {other:?}"),
    };

    // As the Redis server labels an INCR that creates its key.
    b.update("n", |u| {
        if u.value().is_none() {
            u.label("new");
        }
        u.label("incrby");
        u.put(b"1", Expiry::Keep);
        Ok(())
    })
    .unwrap();
    // Labels given before a change of mind still count: they label the key's
    // change, whatever it ends up being.
    b.update("gone", |u| {
        u.label("del");
        u.put(b"y", Expiry::Never);
        u.delete();
        Ok(())
    })
    .unwrap();
    // Nothing written: its labels are dropped.
    b.update("n", |u| {
        u.label("incrby");
        Ok(())
    })
    .unwrap();
    b.update("missing", |u| {
        u.label("del");
        u.delete();
        Ok(())
    })
    .unwrap();
    // A failing update writes and tells nothing.
    let e = b
        .update("n", |u| -> state_core::Result<()> {
            u.label("incrby");
            u.put(b"2", Expiry::Keep);
            Err(Error::InvalidArgument("refused".into()))
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // Unlabelled: both watchers get it unlabelled.
    b.update("n", |u| {
        u.put(b"3", Expiry::Keep);
        Ok(())
    })
    .unwrap();

    let got: Vec<_> = (0..4).map(|_| summary(&labelled)).collect();
    assert_eq!(
        got,
        vec![
            ("n".into(), EventKind::Set, true, Some("new")),
            ("n".into(), EventKind::Set, true, Some("incrby")),
            ("gone".into(), EventKind::Delete, false, Some("del")),
            ("n".into(), EventKind::Set, false, None),
        ]
    );
    assert_eq!(labelled.try_recv(), Err(RecvError::Empty));
    let got: Vec<_> = (0..3).map(|_| summary(&plain)).collect();
    assert_eq!(
        got,
        vec![
            ("n".into(), EventKind::Set, true, None),
            ("gone".into(), EventKind::Delete, false, None),
            ("n".into(), EventKind::Set, false, None),
        ]
    );
    assert_eq!(plain.try_recv(), Err(RecvError::Empty));
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"3"[..]));
    store.close().unwrap();
}

pub fn update_checks_its_arguments_and_refuses_writes_from_inside(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .engine(engine)
        .max_value_size(8)
        .open(dir.path())
        .unwrap();
    let b = store.bucket("b").unwrap();
    b.set("k", b"v").unwrap();
    let e = b.update("", |_| Ok(())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    // A value over the store's limit: refused, nothing written.
    let e = b
        .update("k", |u| {
            u.put(b"123456789", Expiry::Never);
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("limit"), "{e}");
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"v"[..]));

    // Reading the store from inside works; writing it is refused, not a deadlock.
    let other = store.bucket("other").unwrap();
    other.set("x", b"1").unwrap();
    let (read, write) = b
        .update("k", |_| {
            let read = other.get("x").map(|v| v.map(|v| v.to_vec()));
            let write = other.set("y", b"2");
            Ok((read, write))
        })
        .unwrap();
    assert_eq!(read.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(write.unwrap_err().kind(), ErrorKind::InvalidArgument);
    let nested = b.update("k", |_| Ok(b.update("k", |_| Ok(())))).unwrap();
    assert_eq!(nested.unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(other.get("y").unwrap(), None);
    // And after it, the store is writable as ever.
    other.set("y", b"3").unwrap();
    store.close().unwrap();
    assert_eq!(
        b.update("k", |_| Ok(())).unwrap_err().kind(),
        ErrorKind::Closed
    );
}

pub fn concurrent_updates_lose_no_increment(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder().engine(engine).open(dir.path()).unwrap();
    let b = store.bucket("b").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            thread::spawn(move || {
                for _ in 0..200 {
                    add(&b, "count", 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(b.get("count").unwrap().as_deref(), Some(&b"800"[..]));
    store.close().unwrap();
}

/// One step of a script that [`update_many_is_that_many_updates`] runs through
/// [`state_core::Bucket::update`] one by one and through one
/// [`state_core::Bucket::update_many`].
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Adds to a decimal counter (0 if missing) as the server's INCRBY does,
    /// labelled `new` (if missing) and `incrby`; a value that is not an integer
    /// writes nothing.
    Add(&'static str, i64),
    /// Deletes, labelled `del`.
    Delete(&'static str),
    /// Puts the value with the deadline, labelled `set`.
    PutAt(&'static str, &'static str, u64),
    /// Labels, then writes nothing.
    Nothing(&'static str),
}

impl Step {
    fn key(self) -> &'static str {
        match self {
            Step::Add(k, _) | Step::Delete(k) | Step::PutAt(k, _, _) | Step::Nothing(k) => k,
        }
    }

    /// Runs the step on `u`; returns what it saw and did.
    fn run(self, u: &mut state_core::Update<'_>) -> state_core::Result<String> {
        let seen = format!(
            "{:?} {:?}",
            u.value().map(String::from_utf8_lossy),
            u.expires_at_ms()
        );
        let did = match self {
            Step::Add(_, by) => {
                let old = match u.value() {
                    None => Some(0),
                    Some(v) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok()),
                };
                match old {
                    None => "not an integer".to_string(),
                    Some(old) => {
                        let expiry = if u.value().is_some() {
                            Expiry::Keep
                        } else {
                            Expiry::Never
                        };
                        if u.value().is_none() {
                            u.label("new");
                        }
                        u.label("incrby");
                        u.put((old + by).to_string().as_bytes(), expiry);
                        format!("{}", old + by)
                    }
                }
            }
            Step::Delete(_) => {
                u.label("del");
                u.delete();
                "deleted".into()
            }
            Step::PutAt(_, v, at) => {
                u.label("set");
                u.put(v.as_bytes(), Expiry::At(at));
                format!("put {v}")
            }
            Step::Nothing(_) => {
                u.label("touch");
                "nothing".into()
            }
        };
        Ok(format!("{seen} -> {did}"))
    }
}

/// Everything a watcher has been told so far.
fn drain(w: &Watcher) -> Vec<Notice> {
    std::iter::from_fn(|| w.try_recv().ok()).collect()
}

/// One `update_many` writes what that many `update`s one after the other write,
/// returns what they return, and tells watchers (plain and labelled) and key
/// watches exactly what they tell: repeated keys see the earlier update's result
/// (a counter counts on, a deleted key is new again, a deadline set earlier is
/// kept), a value that is not an integer in the middle writes nothing and the rest
/// goes on, an expired record reads as missing, a deadline already passed deletes.
pub fn update_many_is_that_many_updates(engine: &EngineConfig) {
    let clock = ManualClock::new(T0);
    let now = T0 + 1_000;
    let script = [
        Step::Add("n", 1),
        Step::Add("n", 1),
        Step::Add("text", 1),
        Step::Add("ttl", 5),
        Step::Nothing("n"),
        Step::Delete("gone"),
        Step::Add("gone", 3),
        Step::Add("old", 1),
        Step::PutAt("n", "100", now + 5_000),
        Step::Add("n", 1),
        Step::Add("n", -1),
        Step::PutAt("ttl", "x", now),
        Step::Add("ttl", 1),
        Step::Delete("missing"),
        Step::Add("text", 2),
        Step::Delete("n"),
        Step::Delete("n"),
        Step::Add("n", 7),
    ];
    let keys: Vec<&str> = script.iter().map(|s| s.key()).collect();
    let mut runs = Vec::new();
    for batched in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(engine, dir.path(), &clock);
        let b = store.bucket("b").unwrap();
        // Both runs start from the same records at the same time.
        clock.set(T0);
        b.set("text", b"abc").unwrap();
        b.set("gone", b"1").unwrap();
        b.set_with_ttl("old", b"5", std::time::Duration::from_secs(1))
            .unwrap();
        b.set_with_ttl("ttl", b"7", std::time::Duration::from_secs(10))
            .unwrap();
        clock.set(now);
        let plain = b.watch("").unwrap();
        let labelled = b
            .watch_with("", WatchOptions::default().with_labels(true))
            .unwrap();
        let touched = b.watch_keys(&["gone"]).unwrap();
        let untouched = b.watch_keys(&["text", "missing"]).unwrap();
        let results: Vec<String> = if batched {
            b.update_many(&keys, |i, u| script[i].run(u)).unwrap()
        } else {
            script
                .iter()
                .map(|s| b.update(s.key(), |u| s.run(u)).unwrap())
                .collect()
        };
        let state: Vec<_> = ["n", "text", "ttl", "gone", "old", "missing"]
            .iter()
            .map(|k| (b.get(k).unwrap().map(|v| v.to_vec()), b.ttl(k).unwrap()))
            .collect();
        let info = store.info().unwrap();
        runs.push((
            results,
            drain(&plain),
            drain(&labelled),
            (touched.touched(), untouched.touched()),
            state,
            (info.records, info.expiring, b.len().unwrap()),
            store.counts().unwrap(),
        ));
        store.close().unwrap();
    }
    let batched = runs.pop().unwrap();
    let one_by_one = runs.pop().unwrap();
    assert_eq!(batched.0, one_by_one.0, "what each call returned");
    assert_eq!(batched.1, one_by_one.1, "a plain watcher's events");
    assert_eq!(batched.2, one_by_one.2, "a labelled watcher's events");
    assert_eq!(batched.3, one_by_one.3, "key watches");
    assert_eq!(batched.4, one_by_one.4, "the records");
    assert_eq!(batched.5, one_by_one.5, "records, expiring, len");
    assert_eq!(batched.6, one_by_one.6, "the store's counts");

    // And what that is, spelled out.
    let (results, plain, labelled, key_watches, state, totals, _) = batched;
    assert_eq!(results[0], "None None -> 1");
    assert_eq!(results[1], "Some(\"1\") None -> 2");
    assert_eq!(results[2], "Some(\"abc\") None -> not an integer");
    assert_eq!(
        results[3],
        format!("Some(\"7\") Some({}) -> 12", T0 + 10_000)
    );
    assert_eq!(results[6], "None None -> 3", "deleted earlier in the batch");
    assert_eq!(results[7], "None None -> 1", "expired");
    assert_eq!(
        results[9],
        format!("Some(\"100\") Some({}) -> 101", now + 5_000)
    );
    assert_eq!(
        results[12], "None None -> 1",
        "a passed deadline deleted it"
    );
    assert_eq!(results[16], "None None -> deleted");
    assert_eq!(results[17], "None None -> 7");
    let plain: Vec<_> = plain
        .iter()
        .map(|n| match n {
            Notice::Change(e) => (e.key().to_string(), e.kind(), e.is_new()),
            other => panic!("{other:?}"),
        })
        .collect();
    use EventKind::{Delete, Set};
    let want: Vec<(String, EventKind, bool)> = [
        ("n", Set, true),
        ("n", Set, false),
        ("ttl", Set, false),
        ("gone", Delete, false),
        ("gone", Set, true),
        ("old", Set, true),
        ("n", Set, false),
        ("n", Set, false),
        ("n", Set, false),
        ("ttl", Delete, false),
        ("ttl", Set, true),
        ("n", Delete, false),
        ("n", Set, true),
    ]
    .iter()
    .map(|&(k, kind, new)| (k.to_string(), kind, new))
    .collect();
    assert_eq!(plain, want);
    let labels: Vec<_> = labelled
        .iter()
        .map(|n| match n {
            Notice::Change(e) => (e.key().to_string(), e.label()),
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<(String, Option<&str>)> = [
        ("n", "new"),
        ("n", "incrby"),
        ("n", "incrby"),
        ("ttl", "incrby"),
        ("gone", "del"),
        ("gone", "new"),
        ("gone", "incrby"),
        ("old", "new"),
        ("old", "incrby"),
        ("n", "set"),
        ("n", "incrby"),
        ("n", "incrby"),
        ("ttl", "set"),
        ("ttl", "new"),
        ("ttl", "incrby"),
        ("n", "del"),
        ("n", "new"),
        ("n", "incrby"),
    ]
    .iter()
    .map(|&(k, l)| (k.to_string(), Some(l)))
    .collect();
    assert_eq!(labels, want);
    assert_eq!(key_watches, (true, false));
    assert_eq!(state[0].0.as_deref(), Some(&b"7"[..]));
    assert_eq!(state[0].1, Ttl::NoExpiry);
    assert_eq!(state[2].0.as_deref(), Some(&b"1"[..]));
    assert_eq!(
        state[2].1,
        Ttl::NoExpiry,
        "the deadline went with the delete"
    );
    assert_eq!(totals, (5, 0, 5));
}

/// Deadlines through a batch: `Keep` keeps the stored deadline, and one set
/// earlier in the batch; the expiry index follows the last write of each key (a
/// deadline moved twice in one batch leaves one entry, which expires the key on
/// time).
pub fn update_many_keeps_or_sets_deadlines(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set_with_ttl("k", b"1", std::time::Duration::from_secs(10))
        .unwrap();
    b.set("p", b"1").unwrap();
    let steps: [(&str, Option<Expiry>); 6] = [
        ("k", Some(Expiry::Keep)),
        ("k", Some(Expiry::Keep)),
        ("p", Some(Expiry::At(T0 + 20_000))),
        ("p", Some(Expiry::At(T0 + 30_000))),
        ("p", Some(Expiry::Keep)),
        ("k", None),
    ];
    let keys: Vec<&str> = steps.iter().map(|s| s.0).collect();
    let seen = b
        .update_many(&keys, |i, u| {
            let seen = u.expires_at_ms();
            if let Some(expiry) = steps[i].1 {
                let n: u32 = std::str::from_utf8(u.value().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                u.put((n + 1).to_string().as_bytes(), expiry);
            }
            Ok(seen)
        })
        .unwrap();
    let k = Some(T0 + 10_000);
    assert_eq!(seen, [k, k, None, Some(T0 + 20_000), Some(T0 + 30_000), k]);
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(b.get("p").unwrap().as_deref(), Some(&b"4"[..]));
    assert_eq!(
        b.ttl("p").unwrap(),
        Ttl::Expires(std::time::Duration::from_secs(30))
    );
    assert_eq!(store.info().unwrap().expiring, 2);
    clock.advance(10_000);
    assert_eq!(b.get("k").unwrap(), None);
    clock.advance(20_000);
    assert_eq!(b.get("p").unwrap(), None);
    assert_eq!(store.info().unwrap().expiring, 0);
    // The sweeper finds exactly the two index entries the batch left.
    assert_eq!(store.sweep_expired().unwrap(), 2);
    assert_eq!(b.len().unwrap(), 0);
    store.close().unwrap();
}

/// Any error fails the whole batch: nothing written, nobody told, and `f` not
/// called past the failing key: a bad key (before `f` runs at all), an error from
/// `f`, a value over the limit, a write from inside `f`. An empty batch writes
/// nothing; a closed store refuses.
pub fn update_many_errors_write_nothing(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .engine(engine)
        .max_value_size(8)
        .open(dir.path())
        .unwrap();
    let b = store.bucket("b").unwrap();
    b.set("a", b"1").unwrap();
    let w = b.watch("").unwrap();
    let put_x = |u: &mut state_core::Update<'_>| u.put(b"x", Expiry::Never);

    let mut calls = 0;
    let e = b
        .update_many(&["a", "", "c"], |_, u| {
            calls += 1;
            put_x(u);
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(calls, 0, "keys are checked before f runs");

    let mut calls = 0;
    let e = b
        .update_many(&["a", "b", "c", "d"], |i, u| {
            calls += 1;
            put_x(u);
            if i == 2 {
                return Err(Error::InvalidArgument("refused".into()));
            }
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(calls, 3, "f is not called past the failing key");

    let e = b
        .update_many(&["a", "b", "c"], |i, u| {
            u.put(if i == 1 { b"123456789" } else { b"ok" }, Expiry::Never);
            Ok(())
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("limit"), "{e}");

    let inner = b
        .update_many(&["a", "b"], |_, u| {
            put_x(u);
            Ok(b.set("c", b"1").map_err(|e| e.kind()))
        })
        .unwrap();
    assert_eq!(inner, [Err(ErrorKind::InvalidArgument); 2]);
    // That batch itself was written (its own puts), the write from inside was not.
    assert_eq!(b.get("a").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(b.get("b").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(b.get("c").unwrap(), None);
    assert_eq!(drain(&w).len(), 2, "only the last batch was told");
    assert_eq!(b.len().unwrap(), 2);

    let none: [&str; 0] = [];
    assert_eq!(
        b.update_many(&none, |_, _| -> state_core::Result<()> { unreachable!() })
            .unwrap(),
        []
    );
    assert_eq!(w.try_recv(), Err(RecvError::Empty));
    store.close().unwrap();
    let e = b.update_many(&["a"], |_, _| Ok(())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
}

/// Batches from several threads, each counting two keys (one twice), lose no
/// increment: each batch is atomic against the others.
pub fn concurrent_update_many_loses_no_increment(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder().engine(engine).open(dir.path()).unwrap();
    let b = store.bucket("b").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            thread::spawn(move || {
                for _ in 0..50 {
                    let got = b
                        .update_many(&["c", "d", "c"], |_, u| {
                            let old: i64 = match u.value() {
                                Some(v) => std::str::from_utf8(v).unwrap().parse().unwrap(),
                                None => 0,
                            };
                            u.put((old + 1).to_string().as_bytes(), Expiry::Keep);
                            Ok(old + 1)
                        })
                        .unwrap();
                    assert_eq!(got[2], got[0] + 1, "the batch saw its own first write");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(b.get("c").unwrap().as_deref(), Some(&b"400"[..]));
    assert_eq!(b.get("d").unwrap().as_deref(), Some(&b"200"[..]));
    store.close().unwrap();
}
