//! Conformance cases for expiry (TTL). They use an injected clock, never sleeps
//! for expiry itself.

/// This file, so the suite can check that every case written here is listed.
pub const SOURCE: &str = include_str!("ttl.rs");

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use state_core::{EngineConfig, ErrorKind, ManualClock, Store, Ttl};

const T0: u64 = 1_700_000_000_000;

fn open_at(engine: &EngineConfig, dir: &Path, clock: &ManualClock) -> Store {
    Store::builder()
        .engine(engine)
        .clock(Arc::new(clock.clone()))
        .sweep_interval(None)
        .open(dir)
        .unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn expired_key_is_invisible_to_every_read(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set("a", b"1").unwrap();
    b.set_with_ttl("session", b"s", secs(30)).unwrap();
    b.set("z", b"26").unwrap();
    assert_eq!(b.get("session").unwrap().unwrap(), b"s");
    assert_eq!(b.len().unwrap(), 3);
    assert_eq!(store.info().unwrap().expiring, 1);

    clock.advance(29_999);
    assert!(
        b.contains_key("session").unwrap(),
        "not before the deadline"
    );
    clock.advance(1);
    assert_eq!(b.get("session").unwrap(), None);
    assert!(!b.contains_key("session").unwrap());
    assert!(!b
        .get_multiple(["a", "session"])
        .unwrap()
        .contains_key("session"));
    assert_eq!(b.len().unwrap(), 2);
    let keys: Vec<String> = b.iter().map(|r| r.unwrap().0).collect();
    assert_eq!(keys, ["a", "z"]);
    let keys: Vec<String> = b.iter().rev().map(|r| r.unwrap().0).collect();
    assert_eq!(keys, ["z", "a"]);
    let mut c = b.cursor().unwrap();
    assert_eq!(c.seek("s").unwrap().unwrap().0, "z");
    assert_eq!(c.prev().unwrap().unwrap().0, "a");
    assert_eq!(c.next_n(5).unwrap().len(), 1);
    assert_eq!(b.get_with("session", |v| v.len()).unwrap(), None);
    assert_eq!(b.get_with("a", |v| v.to_vec()).unwrap().unwrap(), b"1");
    let mut lent = Vec::new();
    b.get_multiple_with(&["session", "a", "z"], |i, _| lent.push(i))
        .unwrap();
    assert_eq!(lent, [1, 2]);
    let mut seen = Vec::new();
    b.scan(.., false, |k, _| {
        seen.push(k.to_string());
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, ["a", "z"]);
    let mut c = b.cursor().unwrap();
    seen.clear();
    assert_eq!(
        c.next_n_with(5, |k, _| seen.push(k.to_string())).unwrap(),
        2
    );
    assert_eq!(seen, ["a", "z"]);
    let info = store.info().unwrap();
    assert_eq!((info.records, info.expiring), (2, 0));
    assert_eq!(b.ttl("session").unwrap(), Ttl::Missing);
    // Writes to an expired key behave as writes to a missing key.
    assert!(!b.delete("session").unwrap());
    assert!(!b.expire("session", secs(5)).unwrap());
    assert!(!b.persist("session").unwrap());
    b.set_with_ttl("gone", b"g", secs(1)).unwrap();
    clock.advance(1000);
    b.set("gone", b"back").unwrap();
    assert_eq!(b.get("gone").unwrap().unwrap(), b"back");
    assert_eq!(b.ttl("gone").unwrap(), Ttl::NoExpiry);
}

pub fn ttl_reports_missing_no_expiry_and_remaining(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    assert_eq!(b.ttl("nope").unwrap(), Ttl::Missing);
    b.set("plain", b"p").unwrap();
    assert_eq!(b.ttl("plain").unwrap(), Ttl::NoExpiry);
    b.set_with_ttl("t", b"v", Duration::from_millis(1500))
        .unwrap();
    assert_eq!(
        b.ttl("t").unwrap(),
        Ttl::Expires(Duration::from_millis(1500))
    );
    clock.advance(500);
    assert_eq!(
        b.ttl("t").unwrap(),
        Ttl::Expires(Duration::from_millis(1000))
    );
    assert_eq!(b.ttl("").unwrap_err().kind(), ErrorKind::InvalidArgument);
}

pub fn set_clears_an_existing_ttl(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set_with_ttl("k", b"1", secs(10)).unwrap();
    b.set("k", b"2").unwrap();
    b.set_with_ttl("m", b"1", secs(10)).unwrap();
    b.set_multiple([("m", b"2")]).unwrap();
    b.set_with_ttl("j", b"1", secs(10)).unwrap();
    b.set_json("j", &5).unwrap();
    clock.advance(60_000);
    assert_eq!(b.get("k").unwrap().unwrap(), b"2");
    assert_eq!(b.get("m").unwrap().unwrap(), b"2");
    assert_eq!(b.get_json::<i32>("j").unwrap(), Some(5));
    // The old index entries are stale: sweeping must not remove the new values.
    assert_eq!(store.sweep_expired().unwrap(), 0);
    assert_eq!(b.len().unwrap(), 3);
}

pub fn set_with_ttl_replaces_value_and_ttl(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set_with_ttl("k", b"1", secs(10)).unwrap();
    b.set_with_ttl("k", b"2", secs(100)).unwrap();
    clock.advance(50_000);
    assert_eq!(b.get("k").unwrap().unwrap(), b"2");
    assert_eq!(
        store.sweep_expired().unwrap(),
        0,
        "the first deadline's entry is stale"
    );
    clock.advance(50_000);
    assert_eq!(b.get("k").unwrap(), None);
    assert_eq!(store.sweep_expired().unwrap(), 1);
}

pub fn zero_ttl_is_invalid_and_writes_nothing(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    let err = b.set_with_ttl("k", b"v", Duration::ZERO).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(b.get("k").unwrap(), None);
    b.set("k", b"v").unwrap();
    assert_eq!(
        b.expire("k", Duration::ZERO).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(b.ttl("k").unwrap(), Ttl::NoExpiry);
    assert_eq!(
        b.set_multiple_with_ttl([("a", b"1")], Duration::ZERO)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(b.get("a").unwrap(), None);
    assert!(state_core::ttl_from_millis(-1).is_err());
    assert!(state_core::ttl_from_secs_f64(-0.5).is_err());
}

pub fn expire_on_a_missing_key_returns_false(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    assert!(!b.expire("nope", secs(5)).unwrap());
    assert_eq!(b.get("nope").unwrap(), None);
    assert_eq!(b.ttl("nope").unwrap(), Ttl::Missing);
}

pub fn expire_sets_and_refreshes_a_ttl(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set("k", b"v").unwrap();
    assert!(b.expire("k", secs(10)).unwrap());
    assert_eq!(b.ttl("k").unwrap(), Ttl::Expires(secs(10)));
    clock.advance(8_000);
    assert!(b.expire("k", secs(10)).unwrap(), "refresh");
    clock.advance(8_000);
    assert_eq!(b.get("k").unwrap().unwrap(), b"v", "value kept");
    assert_eq!(store.sweep_expired().unwrap(), 0);
    clock.advance(2_000);
    assert_eq!(b.get("k").unwrap(), None);
    assert_eq!(store.sweep_expired().unwrap(), 1);
}

pub fn persist_removes_a_ttl(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set_with_ttl("k", b"v", secs(10)).unwrap();
    assert!(b.persist("k").unwrap());
    assert!(!b.persist("k").unwrap(), "no TTL left to remove");
    assert!(!b.persist("missing").unwrap());
    assert_eq!(b.ttl("k").unwrap(), Ttl::NoExpiry);
    clock.advance(3_600_000);
    assert_eq!(b.get("k").unwrap().unwrap(), b"v");
    assert_eq!(store.sweep_expired().unwrap(), 0);
    assert_eq!(store.info().unwrap().expiring, 0);
}

pub fn set_multiple_with_ttl_expires_the_batch(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set("keep", b"k").unwrap();
    b.set_multiple_with_ttl([("t1", b"1"), ("t2", b"2")], secs(5))
        .unwrap();
    assert_eq!(b.len().unwrap(), 3);
    assert_eq!(store.info().unwrap().expiring, 2);
    clock.advance(5_000);
    assert_eq!(b.len().unwrap(), 1);
    assert_eq!(store.sweep_expired().unwrap(), 2);
    assert_eq!(b.len().unwrap(), 1);
}

pub fn expiry_survives_reopen_as_absolute_time(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set_with_ttl("k", b"v", secs(10)).unwrap();
    b.set_with_ttl("long", b"v", secs(100)).unwrap();
    store.close().unwrap();

    clock.set(T0 + 4_000);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    assert_eq!(
        b.ttl("k").unwrap(),
        Ttl::Expires(secs(6)),
        "time passed while closed"
    );
    store.close().unwrap();

    clock.set(T0 + 10_000);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    assert_eq!(
        b.get("k").unwrap(),
        None,
        "expired while the store was closed"
    );
    assert_eq!(b.get("long").unwrap().unwrap(), b"v");
    assert_eq!(store.sweep_expired().unwrap(), 1);
}

pub fn delete_removes_the_ttl_too(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let b = store.bucket("b").unwrap();
    b.set_with_ttl("k", b"v", secs(10)).unwrap();
    assert!(b.delete("k").unwrap());
    b.set("k", b"new").unwrap();
    clock.advance(20_000);
    assert_eq!(store.sweep_expired().unwrap(), 0);
    assert_eq!(b.get("k").unwrap().unwrap(), b"new");
}

pub fn background_sweeper_removes_expired_records(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = Store::builder()
        .engine(engine)
        .clock(Arc::new(clock.clone()))
        .sweep_interval(Some(Duration::from_millis(5)))
        .open(dir.path())
        .unwrap();
    let b = store.bucket("b").unwrap();
    b.set_with_ttl("k", b"v", secs(1)).unwrap();
    clock.advance(1_000);
    // Wait (bounded) until a manual sweep finds nothing left: the background did it.
    let mut swept = false;
    for _ in 0..500 {
        std::thread::sleep(Duration::from_millis(10));
        if store.info().unwrap().records == 0 && store_has_no_stored_records(&store) {
            swept = true;
            break;
        }
    }
    assert!(swept, "the background sweeper never removed the record");
    store.close().unwrap();
    // Reopened with a clock from before the deadline, a record that was only
    // hidden would reappear; a swept one does not.
    clock.set(T0);
    let store = open_at(engine, dir.path(), &clock);
    assert_eq!(store.bucket("b").unwrap().get("k").unwrap(), None);
}

/// Whether nothing is stored at all (expired or not), seen as bucket names: a
/// bucket is listed while it stores any record.
fn store_has_no_stored_records(store: &Store) -> bool {
    store.bucket_names().unwrap().is_empty()
}

/// One expiring record in eleven: 100K expiring among 1M persistent at full scale
/// (`LIBSTATE_TEST_SCALE=full`, `make soak`), 10K among 100K in `make test`. The sweep
/// removes exactly the expired ones, and only they leave.
pub fn sweeping_expiring_among_persistent(engine: &EngineConfig) {
    let chunks: u32 = if crate::support::full_scale() {
        1000
    } else {
        100
    };
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let store = open_at(engine, dir.path(), &clock);
    let keep = store.bucket("keep").unwrap();
    let temp = store.bucket("temp").unwrap();
    let value = [7u8; 16];
    for chunk in 0..chunks {
        keep.set_multiple((0..1000u32).map(|i| (format!("k{:07}", chunk * 1000 + i), value)))
            .unwrap();
    }
    for chunk in 0..chunks / 10 {
        temp.set_multiple_with_ttl(
            (0..1000u32).map(|i| (format!("t{:06}", chunk * 1000 + i), value)),
            secs(60),
        )
        .unwrap();
    }
    let expiring = u64::from(chunks / 10) * 1000;
    assert_eq!(store.sweep_expired().unwrap(), 0, "nothing due yet");
    clock.advance(60_000);
    assert_eq!(temp.len().unwrap(), 0);
    assert_eq!(store.sweep_expired().unwrap() as u64, expiring);
    assert_eq!(store.sweep_expired().unwrap(), 0);
    assert_eq!(keep.len().unwrap() as u64, u64::from(chunks) * 1000);
    assert_eq!(store.bucket_names().unwrap(), ["keep"]);
}
