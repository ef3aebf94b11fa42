//! Conformance cases for [`state_core::Bucket::update`], the single-key
//! read-modify-write: what the closure sees, what it writes, its deadline rules,
//! its events, its refusals, and atomicity against concurrent updates.

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
