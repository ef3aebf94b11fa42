//! Conformance cases for the lending reads: `Bucket::get_with`, `Bucket::scan`,
//! `Cursor::next_n_with` / `prev_n_with`, and what a callback may do.

/// This file, so the suite can check that every case written here is listed.
pub const SOURCE: &str = include_str!("lending.rs");

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use state_core::{EngineConfig, ErrorKind, Position, Store};

fn open(engine: &EngineConfig, dir: &Path) -> Store {
    Store::builder().engine(engine).open(dir).unwrap()
}

/// A bucket holding k000, k002, ..., k(2n-2) with values "v<i>".
fn fill_even(store: &Store, bucket: &str, n: usize) {
    let b = store.bucket(bucket).unwrap();
    b.set_multiple((0..n).map(|i| (format!("k{:03}", i * 2), format!("v{}", i * 2))))
        .unwrap();
}

fn collect_scan<'r>(
    b: &state_core::Bucket,
    range: impl std::ops::RangeBounds<&'r str>,
    reverse: bool,
) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    b.scan(range, reverse, |k, v| {
        out.push((k.to_string(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

pub fn get_with_lends_the_value(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let b = store.bucket("b").unwrap();
    b.set("k", b"value").unwrap();
    b.set("empty", b"").unwrap();
    assert_eq!(b.get_with("k", |v| v.to_vec()).unwrap().unwrap(), b"value");
    assert_eq!(b.get_with("empty", <[u8]>::len).unwrap(), Some(0));
    let mut called = false;
    assert_eq!(b.get_with("missing", |_| called = true).unwrap(), None);
    assert!(!called, "not called for a missing key");
    assert_eq!(
        b.get_with("", |_| ()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    store.close().unwrap();
    assert_eq!(
        b.get_with("k", |_| ()).unwrap_err().kind(),
        ErrorKind::Closed
    );
}

pub fn get_multiple_with_lends_each_present_key_in_order(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 300);
    fill_even(&store, "other", 3);
    let b = store.bucket("b").unwrap();
    b.set("empty", b"").unwrap();
    let keys = ["k010", "missing", "k598", "k010", "empty", "k001", "k000"];
    let mut seen: Vec<(usize, Vec<u8>)> = Vec::new();
    b.get_multiple_with(&keys, |i, v| seen.push((i, v.to_vec())))
        .unwrap();
    let want: Vec<(usize, Vec<u8>)> = [(0, "v10"), (2, "v598"), (3, "v10"), (4, ""), (6, "v0")]
        .iter()
        .map(|&(i, v)| (i, v.as_bytes().to_vec()))
        .collect();
    assert_eq!(seen, want);
    // Owned strings work too; an empty batch, or a bucket that does not exist, visits
    // nothing.
    let owned: Vec<String> = (0..300).map(|i| format!("k{:03}", i * 2)).collect();
    let mut n = 0;
    b.get_multiple_with(&owned, |i, v| {
        assert_eq!(v, format!("v{}", i * 2).as_bytes());
        n += 1;
    })
    .unwrap();
    assert_eq!(n, 300);
    b.get_multiple_with(&[] as &[&str], |_, _| panic!("called"))
        .unwrap();
    store
        .bucket("nothing")
        .unwrap()
        .get_multiple_with(&["k000"], |_, _| panic!("called"))
        .unwrap();
    // A bad key anywhere: invalid argument before anything is visited.
    let err = b
        .get_multiple_with(&["k000", ""], |_, _| panic!("called"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    store.close().unwrap();
    assert_eq!(
        b.get_multiple_with(&["k000"], |_, _| ())
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
}

pub fn scan_visits_ranges_in_both_directions_and_stops(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 300); // k000..k598: longer than one engine chunk
    fill_even(&store, "other", 3);
    let b = store.bucket("b").unwrap();
    let all = collect_scan(&b, .., false);
    assert_eq!(all, b.iter().collect::<Result<Vec<_>, _>>().unwrap());
    assert_eq!(all.len(), 300);
    let back = collect_scan(&b, .., true);
    assert_eq!(back, b.iter().rev().collect::<Result<Vec<_>, _>>().unwrap());
    let part = collect_scan(&b, "k011".."k020", false);
    let keys: Vec<&str> = part.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["k012", "k014", "k016", "k018"]);
    assert_eq!(part[0].1, b"v12");
    let part = collect_scan(&b, "k590".., true);
    let keys: Vec<&str> = part.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["k598", "k596", "k594", "k592", "k590"]);
    assert!(
        collect_scan(&b, "k9".."k1", false).is_empty(),
        "inverted range"
    );
    let mut n = 0;
    b.scan(.., false, |_, _| {
        n += 1;
        if n == 260 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(n, 260, "Break stops the scan");
    assert!(collect_scan(&store.bucket("empty").unwrap(), .., false).is_empty());
    store.close().unwrap();
    assert_eq!(
        b.scan(.., false, |_, _| ControlFlow::Continue(()))
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
}

pub fn next_n_with_moves_like_next_n(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 10); // k000..k018
    let b = store.bucket("b").unwrap();
    let (mut lent, mut owned) = (b.cursor().unwrap(), b.cursor().unwrap());
    let steps: [(bool, usize); 7] = [
        (false, 4),
        (true, 2),
        (false, 100),
        (false, 5),
        (true, 3),
        (false, 0),
        (true, 100),
    ];
    for (back, n) in steps {
        let mut got = Vec::new();
        let counted = if back {
            lent.prev_n_with(n, |k, v| got.push((k.to_string(), v.to_vec())))
        } else {
            lent.next_n_with(n, |k, v| got.push((k.to_string(), v.to_vec())))
        }
        .unwrap();
        let want = if back {
            owned.prev_n(n).unwrap()
        } else {
            owned.next_n(n).unwrap()
        };
        assert_eq!(got, want, "step back={back} n={n}");
        assert_eq!(counted, want.len());
        assert_eq!(lent.position(), owned.position());
    }
    assert_eq!(lent.position(), &Position::BeforeFirst);
    lent.seek("k009").unwrap();
    let mut keys = Vec::new();
    lent.next_n_with(2, |k, _| keys.push(k.to_string()))
        .unwrap();
    assert_eq!(keys, ["k012", "k014"]);
    assert_eq!(lent.key(), Some("k014"));
}

pub fn callbacks_may_read_but_not_write_the_same_store(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    let other = open(engine, other_dir.path());
    fill_even(&store, "b", 5);
    let b = store.bucket("b").unwrap();
    let c = store.bucket("c").unwrap();
    let o = other.bucket("o").unwrap();
    let mut checked = 0;
    b.scan(.., false, |k, v| {
        // Reads of the same store, nested lending included, work.
        assert_eq!(b.get(k).unwrap().unwrap(), v);
        assert_eq!(b.get_with(k, <[u8]>::to_vec).unwrap().unwrap(), v);
        assert_eq!(b.len().unwrap(), 5);
        assert_eq!(b.cursor().unwrap().next_n(1).unwrap().len(), 1);
        // Writes, flushes and closes of the same store are refused, clearly.
        for err in [
            c.set("x", b"1").unwrap_err(),
            b.delete(k).unwrap_err(),
            c.set_multiple([("x", b"1")]).unwrap_err(),
            store.flush().unwrap_err(),
            store.close().unwrap_err(),
            store.remove_bucket("b").unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
            assert!(err.to_string().contains("callback"), "{err}");
        }
        // Another store is another matter.
        o.set(k, v).unwrap();
        checked += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(checked, 5);
    b.get_with("k000", |_| {
        assert_eq!(
            b.set("k000", b"x").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        )
    })
    .unwrap();
    b.get_multiple_with(&["k000", "k002"], |_, _| {
        assert_eq!(
            b.set("k000", b"x").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        )
    })
    .unwrap();
    let mut cur = b.cursor().unwrap();
    cur.next_n_with(1, |_, _| {
        assert_eq!(
            c.set("y", b"1").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        )
    })
    .unwrap();
    // Nothing was written, and after the callbacks writes work again.
    assert_eq!(c.len().unwrap(), 0);
    assert_eq!(b.get("k000").unwrap().unwrap(), b"v0");
    assert_eq!(o.len().unwrap(), 5);
    c.set("x", b"1").unwrap();
    store.close().unwrap();
    other.close().unwrap();
}

/// A read from inside a callback must not queue behind a writer that is waiting for
/// the callback's own lock (the deadlock a plain read lock would give).
pub fn nested_read_does_not_deadlock_behind_a_waiting_writer(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, probe) = super::cases::probed(engine);
    let store = open(&engine, dir.path());
    fill_even(&store, "b", 600);
    let b = store.bucket("b").unwrap();
    let (tx, rx) = mpsc::channel();
    let writer = {
        let b = b.clone();
        thread::spawn(move || {
            rx.recv().unwrap();
            for i in 0..50 {
                b.set(&format!("w{i}"), b"w").unwrap();
            }
        })
    };
    let mut n = 0;
    b.scan(.., false, |k, _| {
        if n == 0 {
            let before = probe.entered();
            tx.send(()).unwrap();
            // The writer is past the store's locks, in (or blocked inside) the engine.
            probe.wait_entered(before + 1);
        }
        assert!(b.get(k).unwrap().is_some());
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(n >= 600);
    writer.join().unwrap();
    assert_eq!(b.len().unwrap(), 650);
}

/// A thread that, once told through the returned sender, sets "k" of `b` to `value`
/// `times` times.
fn overwrite_when_told(
    b: &state_core::Bucket,
    value: &[u8],
    times: usize,
) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let (b, value) = (b.clone(), value.to_vec());
    let writer = thread::spawn(move || {
        rx.recv().unwrap();
        for _ in 0..times {
            b.set("k", &value).unwrap();
        }
    });
    (tx, writer)
}

/// A lent value stays what it was for the whole callback while another thread
/// overwrites the key with a value of the same length (which the memfile engine
/// copies in place): the overwrite waits for the callback, and is seen after it.
pub fn a_lent_value_is_stable_while_the_key_is_overwritten(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, probe) = super::cases::probed(engine);
    let store = open(&engine, dir.path());
    let b = store.bucket("b").unwrap();
    let old = vec![b'a'; 4096];
    let new = vec![b'b'; 4096];
    b.set("k", &old).unwrap();
    let (tx, writer) = overwrite_when_told(&b, &new, 20);
    b.get_with("k", |v| {
        let copy = v.to_vec();
        let before = probe.entered();
        tx.send(()).unwrap();
        // The writer is in the engine's write (blocked there by the lent read, or done
        // with an engine that never changes lent bytes).
        probe.wait_entered(before + 1);
        assert_eq!(v, &copy[..], "the lent bytes changed under the callback");
        assert_eq!(v, &old[..]);
    })
    .unwrap();
    writer.join().unwrap();
    assert_eq!(b.get("k").unwrap().unwrap(), new);
    // The same through a scan's callback.
    let (tx, writer) = overwrite_when_told(&b, &old, 1);
    b.scan(.., false, |_, v| {
        let before = probe.entered();
        tx.send(()).unwrap();
        probe.wait_entered(before + 1);
        assert_eq!(v, &new[..], "the lent bytes changed under the callback");
        ControlFlow::Break(())
    })
    .unwrap();
    writer.join().unwrap();
    assert_eq!(b.get("k").unwrap().unwrap(), old);
}

pub fn a_panicking_callback_leaves_the_store_usable(engine: &EngineConfig) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(engine, dir.path());
    fill_even(&store, "b", 3);
    let b = store.bucket("b").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.scan(.., false, |_, _| panic!("callback failed"))
    }));
    assert!(r.is_err());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.get_with("k000", |_| panic!("callback failed"))
    }));
    assert!(r.is_err());
    // Locks were released and the thread no longer counts as lending: writes work.
    b.set("after", b"1").unwrap();
    assert_eq!(b.len().unwrap(), 4);
    store.close().unwrap();
}
