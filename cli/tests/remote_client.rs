//! The libstate client (crate `state-client`) against a real `state serve` it
//! starts: the one-bucket cases of the core's conformance suite that apply to a
//! remote bucket, on the memfile and sled engines, over the Unix socket (peer
//! credentials) and TCP (a client's token); and a server killed (SIGKILL) and
//! restarted under a writing client: the client reports the lost connection,
//! reconnects, and no acknowledged write is missing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ENGINES;
use serde::{Deserialize, Serialize};
use state_client::{Entry, ErrorKind, Expiry, Options, Position, RemoteBucket, Ttl};
use state_core::ErrorKind as CoreKind;

/// `state serve` on a store, running until dropped (then killed).
struct Serving {
    child: Child,
    port: u16,
}

/// `state --store STORE ARGS` (no server), returning standard output.
fn state(store: &Path, args: &[&str]) -> String {
    let out = Proc::new(assert_cmd::cargo::cargo_bin("state"))
        .env_remove("STATE_STORE")
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

impl Serving {
    /// Starts `state serve` on `store` with `engine`, the socket `sock`, a TCP
    /// listener on a free loopback port and no HTTP, and waits for `ready`.
    fn start(store: &Path, engine: &str, sock: &Path, extra: &[&str]) -> Serving {
        let mut child = Proc::new(assert_cmd::cargo::cargo_bin("state"))
            .env_remove("STATE_STORE")
            .arg("--store")
            .arg(store)
            .args(["--engine", engine, "serve", "--resp", "127.0.0.1:0"])
            .args(["--http", "off", "--unix"])
            .arg(sock)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut port = None;
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(rest) = line.trim().strip_prefix("redis protocol on 127.0.0.1:") {
                port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            }
            if line.starts_with("state serve: ready") {
                break;
            }
        }
        Serving {
            child,
            port: port.expect("state serve did not print its port"),
        }
    }

    /// SIGKILL: no flush, no goodbye.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store with clients alice (a token) and carol (a quota of 3 records), served.
struct Fixture {
    _tmp: tempfile::TempDir,
    store: PathBuf,
    sock: PathBuf,
    alice: String,
    carol: String,
    server: Serving,
}

fn fixture(engine: &str, extra: &[&str]) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let sock = tmp.path().join("state.sock");
    let alice = state(&store, &["--engine", engine, "client", "add", "alice"])
        .trim()
        .to_string();
    let carol = state(&store, &["client", "add", "carol", "--max-records", "3"])
        .trim()
        .to_string();
    let server = Serving::start(&store, engine, &sock, extra);
    Fixture {
        _tmp: tmp,
        store,
        sock,
        alice,
        carol,
        server,
    }
}

impl Fixture {
    fn unix_url(&self) -> String {
        format!("state+unix://{}", self.sock.display())
    }

    fn tcp(&self, name: &str, token: &str) -> RemoteBucket {
        state_client::connect(&format!(
            "state://{name}:{token}@127.0.0.1:{}",
            self.server.port
        ))
        .unwrap()
    }
}

fn kind(e: &state_client::Error) -> ErrorKind {
    e.kind()
}

fn store_kind(k: CoreKind) -> ErrorKind {
    ErrorKind::Store(k)
}

/// Removes every key (the cases share one bucket, each starts empty).
fn clear(b: &RemoteBucket) {
    let keys: Vec<String> = b.iter().map(|e| e.unwrap().0).collect();
    for k in keys {
        b.delete(&k).unwrap();
    }
    assert!(b.is_empty().unwrap());
}

fn keys_of(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|(k, _)| k.as_str()).collect()
}

// --- the cases -------------------------------------------------------------

fn write_read_delete(b: &RemoteBucket) {
    assert_eq!(b.get("k").unwrap(), None);
    b.set("k", b"v1").unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(b.contains_key("k").unwrap());
    assert_eq!(b.get_with("k", <[u8]>::len).unwrap(), Some(2));
    b.set("k", b"").unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b""[..]));
    assert!(
        b.delete("k").unwrap(),
        "delete reports that the key existed"
    );
    assert!(!b.delete("k").unwrap(), "a missing key: deleted nothing");
    assert_eq!(b.len().unwrap(), 0);
}

fn bad_keys_are_invalid_arguments_as_embedded(b: &RemoteBucket) {
    let long = "x".repeat(1025);
    for key in ["", long.as_str()] {
        let e = b.set(key, b"v").unwrap_err();
        assert_eq!(kind(&e), store_kind(CoreKind::InvalidArgument), "{e}");
        assert_eq!(
            kind(&b.get(key).unwrap_err()),
            store_kind(CoreKind::InvalidArgument)
        );
    }
    let e = b.set_multiple([("ok", &b"1"[..]), ("", b"2")]).unwrap_err();
    assert_eq!(kind(&e), store_kind(CoreKind::InvalidArgument));
    assert_eq!(
        b.get("ok").unwrap(),
        None,
        "nothing of the batch was written"
    );
    let e = b.set_with_ttl("k", b"v", Duration::ZERO).unwrap_err();
    assert_eq!(kind(&e), store_kind(CoreKind::InvalidArgument));
    assert!(b.is_empty().unwrap());
}

fn multi_keys(b: &RemoteBucket) {
    b.set_multiple([("a", &b"1"[..]), ("b", b"2"), ("c", b"3")])
        .unwrap();
    let got = b.get_multiple(["a", "c", "missing", "a"]).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["a"], b"1");
    assert_eq!(got["c"], b"3");
    assert!(b.get_multiple(Vec::<&str>::new()).unwrap().is_empty());
    // 1000 keys, one request each way.
    let many: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| (format!("m/{i:04}"), vec![b'x'; i % 50]))
        .collect();
    b.set_multiple(many.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .unwrap();
    let got = b
        .get_multiple(many.iter().map(|(k, _)| k.as_str()))
        .unwrap();
    assert_eq!(got.len(), 1000);
    assert_eq!(got["m/0049"].len(), 49);
    assert_eq!(b.len().unwrap(), 1003);
    clear(b);
}

fn ttls(b: &RemoteBucket) {
    b.set_with_ttl("t", b"v", Duration::from_secs(60)).unwrap();
    match b.ttl("t").unwrap() {
        Ttl::Expires(left) => {
            assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50))
        }
        other => panic!("{other:?}"),
    }
    assert!(b.persist("t").unwrap());
    assert_eq!(b.ttl("t").unwrap(), Ttl::NoExpiry);
    assert!(!b.persist("t").unwrap(), "no TTL to remove");
    assert!(b.expire("t", Duration::from_secs(30)).unwrap());
    assert!(matches!(b.ttl("t").unwrap(), Ttl::Expires(_)));
    assert!(!b.expire("missing", Duration::from_secs(1)).unwrap());
    assert_eq!(b.ttl("missing").unwrap(), Ttl::Missing);
    b.set("t", b"again").unwrap();
    assert_eq!(
        b.ttl("t").unwrap(),
        Ttl::NoExpiry,
        "a plain set clears the TTL"
    );
    // Expiry takes effect: polled, the deadline is 300 ms away.
    b.set_multiple_with_ttl(
        [("e1", &b"1"[..]), ("e2", b"2")],
        Duration::from_millis(300),
    )
    .unwrap();
    assert!(matches!(b.ttl("e2").unwrap(), Ttl::Expires(_)));
    let until = Instant::now() + Duration::from_secs(10);
    while b.get("e1").unwrap().is_some() {
        assert!(Instant::now() < until, "e1 never expired");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(b.get("e2").unwrap(), None);
    clear(b);
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct MyData {
    name: String,
    count: u32,
}

fn typed_json(b: &RemoteBucket) {
    let rec = MyData {
        name: "lamp".into(),
        count: 3,
    };
    b.set_json("mykey", &rec).unwrap();
    assert_eq!(b.get_json::<MyData>("mykey").unwrap(), Some(rec));
    assert_eq!(b.get_json::<MyData>("missing").unwrap(), None);
    b.set("notjson", b"{").unwrap();
    let e = b.get_json::<MyData>("notjson").unwrap_err();
    assert_eq!(kind(&e), store_kind(CoreKind::InvalidArgument));
    clear(b);
}

fn cursors(b: &RemoteBucket) {
    let mut c = b.cursor().unwrap();
    assert_eq!(c.first().unwrap(), None, "empty bucket");
    assert_eq!(c.last().unwrap(), None);
    let keys: Vec<String> = (0..200).map(|i| format!("k{i:03}")).collect();
    b.set_multiple(keys.iter().map(|k| (k.as_str(), k.as_bytes())))
        .unwrap();
    let mut c = b.cursor().unwrap();
    assert_eq!(c.position(), &Position::BeforeFirst);
    assert_eq!(
        c.next().unwrap().unwrap().0,
        "k000",
        "a new cursor's next is the first"
    );
    // seek: to an existing key, between keys, past the end.
    assert_eq!(c.seek("k100").unwrap().unwrap().0, "k100");
    assert_eq!(c.key(), Some("k100"));
    assert_eq!(c.seek("k0995").unwrap().unwrap().0, "k100");
    assert_eq!(c.seek("z").unwrap(), None);
    assert_eq!(c.position(), &Position::AfterLast);
    assert_eq!(
        c.prev().unwrap().unwrap().0,
        "k199",
        "prev past the end is the last"
    );
    // Walk 200 forward, then back to the same key.
    let mut c = b.cursor().unwrap();
    for k in &keys {
        assert_eq!(&c.next().unwrap().unwrap().0, k);
    }
    assert_eq!(c.next().unwrap(), None);
    assert_eq!(c.prev().unwrap().unwrap().0, "k199");
    for k in keys.iter().rev().skip(1) {
        assert_eq!(&c.prev().unwrap().unwrap().0, k);
    }
    assert_eq!(c.prev().unwrap(), None);
    assert_eq!(c.position(), &Position::BeforeFirst);
    assert_eq!(
        c.next().unwrap().unwrap().0,
        "k000",
        "next past the start is the first"
    );
    // next_n / prev_n: counts, order, and the end of the range.
    let mut c = b.cursor().unwrap();
    let page = c.next_n(150).unwrap();
    assert_eq!(page.len(), 150);
    assert_eq!(page[149].0, "k149");
    assert_eq!(page[7].1, b"k007");
    let rest = c.next_n(100).unwrap();
    assert_eq!(keys_of(&rest).first(), Some(&"k150"));
    assert_eq!(rest.len(), 50, "fewer than asked: the end");
    assert_eq!(c.position(), &Position::AfterLast);
    let back = c.prev_n(3).unwrap();
    assert_eq!(keys_of(&back), ["k199", "k198", "k197"]);
    assert!(c.next_n(0).unwrap().is_empty());
    assert_eq!(c.key(), Some("k197"));
    assert_eq!(c.last().unwrap().unwrap().0, "k199");
    assert_eq!(c.first().unwrap().unwrap().0, "k000");
    // Stepping by key: the current key deleted, next is still the one after it.
    c.seek("k050").unwrap();
    b.delete("k050").unwrap();
    b.delete("k051").unwrap();
    assert_eq!(c.next().unwrap().unwrap().0, "k052");
    let e = c.seek("").unwrap_err();
    assert_eq!(kind(&e), store_kind(CoreKind::InvalidArgument));
    clear(b);
}

fn iterators(b: &RemoteBucket) {
    let keys: Vec<String> = (0..300)
        .map(|i| format!("{}/{i:03}", if i % 2 == 0 { "a" } else { "b" }))
        .collect();
    b.set_multiple(keys.iter().map(|k| (k.as_str(), b"v")))
        .unwrap();
    let all: Vec<String> = b.iter().map(|e| e.unwrap().0).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    let rev: Vec<String> = b.iter().rev().map(|e| e.unwrap().0).collect();
    assert_eq!(rev, sorted.iter().rev().cloned().collect::<Vec<_>>());
    let bs: Vec<String> = b.prefix("b/").map(|e| e.unwrap().0).collect();
    assert_eq!(bs.len(), 150);
    assert!(bs.iter().all(|k| k.starts_with("b/")));
    let some: Vec<String> = b.range("a/010".."a/020").map(|e| e.unwrap().0).collect();
    assert_eq!(some, ["a/010", "a/012", "a/014", "a/016", "a/018"]);
    // Both ends at once meet without a repeat.
    let mut it = b.iter();
    let mut seen = Vec::new();
    loop {
        match (it.next(), it.next_back()) {
            (Some(f), Some(l)) => {
                seen.push(f.unwrap().0);
                seen.push(l.unwrap().0);
            }
            (Some(f), None) => seen.push(f.unwrap().0),
            (None, Some(l)) => seen.push(l.unwrap().0),
            (None, None) => break,
        }
    }
    seen.sort();
    assert_eq!(seen, sorted);
    assert_eq!(b.range("z"..).count(), 0);
    clear(b);
}

fn transactions(b: &RemoteBucket) {
    // Read-modify-write from 4 threads at once: conflicts are retried, none lost.
    b.set("n", b"0").unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    b.transaction(|tx| {
                        let n: u64 = match tx.get("n")? {
                            Some(r) => String::from_utf8_lossy(&r.value).parse().unwrap_or(0),
                            None => 0,
                        };
                        tx.put("n", (n + 1).to_string().into_bytes(), Expiry::Keep)?;
                        Ok(())
                    })
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"100"[..]));
    // An error from the closure writes nothing, and the handle goes on working.
    let e = b
        .transaction(|tx| {
            tx.put("x", b"1".to_vec(), Expiry::Never)?;
            tx.delete("n")?;
            Err::<(), _>(state_core::Error::InvalidArgument("changed my mind".into()))
        })
        .unwrap_err();
    assert!(e.to_string().contains("changed my mind"));
    assert_eq!(b.get("x").unwrap(), None);
    assert!(b.get("n").unwrap().is_some());
    // Reads see the transaction's own writes; deadlines and deletes apply whole.
    b.set_with_ttl("ttl", b"v", Duration::from_secs(60))
        .unwrap();
    let (had, seen) = b
        .transaction(|tx| {
            tx.put("ttl", b"w".to_vec(), Expiry::Keep)?;
            let seen = tx.get("ttl")?.cloned();
            let had = tx.delete("n")?;
            tx.put("y", b"2".to_vec(), Expiry::At(tx.now_ms() + 60_000))?;
            Ok((had, seen))
        })
        .unwrap();
    assert!(had);
    let seen = seen.unwrap();
    assert_eq!(seen.value, b"w");
    assert!(seen.expires_at_ms.is_some(), "Keep kept the deadline");
    assert!(matches!(b.ttl("ttl").unwrap(), Ttl::Expires(_)));
    assert_eq!(b.get("ttl").unwrap().as_deref(), Some(&b"w"[..]));
    assert_eq!(b.get("n").unwrap(), None);
    assert!(matches!(b.ttl("y").unwrap(), Ttl::Expires(_)));
    assert_eq!(
        b.update("count", |old| {
            let n = old.map_or(0, |v| v.len());
            Some(vec![b'x'; n + 1])
        })
        .unwrap()
        .as_deref(),
        Some(&b"x"[..])
    );
    clear(b);
}

fn watch(b: &RemoteBucket) {
    use state_core::EventKind;
    let mut w = b.watch("w/").unwrap();
    b.set("w/a", b"1").unwrap();
    b.set("other", b"not watched").unwrap();
    b.set("w/a", b"2").unwrap();
    b.expire("w/a", Duration::from_secs(60)).unwrap();
    b.persist("w/a").unwrap();
    b.delete("w/a").unwrap();
    let got: Vec<(String, EventKind, bool)> = (0..5)
        .map(|_| {
            let e = w
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .expect("an event");
            (e.key, e.kind, e.new)
        })
        .collect();
    // `new` comes only with the `n` class of notify-keyspace-events, which the
    // server's default (g$xKE, as Redis's A) leaves out.
    let want = [
        (EventKind::Set, false),
        (EventKind::Set, false),
        (EventKind::Expire, false),
        (EventKind::Persist, false),
        (EventKind::Delete, false),
    ];
    for ((key, kind, new), (wk, wn)) in got.iter().zip(want) {
        assert_eq!((key.as_str(), *kind, *new), ("w/a", wk, wn), "{got:?}");
    }
    assert_eq!(w.recv_timeout(Duration::from_millis(50)).unwrap(), None);
    clear(b);
}

fn run_cases(b: &RemoteBucket) {
    clear(b);
    write_read_delete(b);
    bad_keys_are_invalid_arguments_as_embedded(b);
    multi_keys(b);
    ttls(b);
    typed_json(b);
    cursors(b);
    iterators(b);
    transactions(b);
    watch(b);
}

#[test]
fn the_one_bucket_cases_pass_against_a_remote_bucket_on_both_engines() {
    for engine in ENGINES {
        let f = fixture(engine, &[]);
        // Over the socket, as the server's own Unix user (peer credentials).
        let unix = state_client::connect(&f.unix_url()).unwrap();
        run_cases(&unix);
        // Over TCP, as the token's client: a bucket of its own.
        let alice = f.tcp("alice", &f.alice);
        run_cases(&alice);
        alice.set("mine", b"alice's").unwrap();
        assert_eq!(
            unix.get("mine").unwrap(),
            None,
            "{engine}: buckets are isolated"
        );
        // Its quota: a batch over it writes nothing; the kind is the service's.
        let carol = f.tcp("carol", &f.carol);
        carol.set_multiple([("a", &b"1"[..]), ("b", b"2")]).unwrap();
        let e = carol
            .set_multiple([("c", &b"3"[..]), ("d", b"4")])
            .unwrap_err();
        assert_eq!(kind(&e), ErrorKind::QuotaExceeded, "{e}");
        assert_eq!(carol.get("c").unwrap(), None, "{engine}: all or nothing");
        let e = carol
            .transaction(|tx| {
                tx.put("c", b"3".to_vec(), Expiry::Never)?;
                tx.put("d", b"4".to_vec(), Expiry::Never)
            })
            .unwrap_err();
        assert_eq!(kind(&e), ErrorKind::QuotaExceeded, "{e}");
        assert_eq!(carol.len().unwrap(), 2);
        drop(f);
    }
}

#[test]
fn sign_in_failures_and_a_missing_server_are_reported_as_such() {
    let f = fixture("memfile", &[]);
    let e = state_client::connect(&format!(
        "state://alice:badtoken123@127.0.0.1:{}",
        f.server.port
    ))
    .unwrap_err();
    assert_eq!(kind(&e), store_kind(CoreKind::InvalidArgument), "{e}");
    assert!(
        !e.to_string().contains("badtoken123"),
        "the token is never shown: {e}"
    );
    // TCP without a token: the server asks for one.
    let e = state_client::connect(&format!("state://127.0.0.1:{}", f.server.port)).unwrap_err();
    assert!(e.to_string().contains("NAME:TOKEN"), "{e}");
    // A token given in the options instead of the URL.
    let opts = Options {
        token: Some(f.alice.clone()),
        name: Some("alice".into()),
        ..Options::default()
    };
    let b = state_client::connect_with(Some(&format!("state://127.0.0.1:{}", f.server.port)), opts)
        .unwrap();
    b.set("k", b"v").unwrap();
    // No server there at all.
    let e = state_client::connect(&format!(
        "state+unix://{}",
        f.store.join("nothing.sock").display()
    ))
    .unwrap_err();
    assert_eq!(kind(&e), store_kind(CoreKind::Io), "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[test]
fn without_a_url_the_client_finds_the_default_stores_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("shop");
    let sock = store.join("state.sock");
    state(&store, &["--engine", "memfile", "set", "seed", "k", "v"]);
    let _server = Serving::start(&store, "memfile", &sock, &[]);
    // The CLI's rule: $STATE_STORE/state.sock. This test is the only one that
    // touches the variable.
    std::env::set_var("STATE_STORE", &store);
    let b = state_client::connect_default();
    std::env::remove_var("STATE_STORE");
    let b = b.unwrap();
    b.set("k", b"v").unwrap();
    assert!(
        b.endpoint().ends_with("shop/state.sock"),
        "{}",
        b.endpoint()
    );
}

#[test]
fn a_killed_and_restarted_server_loses_no_acknowledged_write() {
    // --sync: a write is acknowledged once it is on disk.
    let mut f = fixture("memfile", &["--sync"]);
    let url = f.unix_url();
    let writer = state_client::connect(&url).unwrap();
    let reader = state_client::connect(&url).unwrap();
    reader.set("before", b"1").unwrap(); // leaves one idle connection in its pool
    let acked = Arc::new(AtomicUsize::new(0));
    let handle = {
        let (writer, acked) = (writer.clone(), Arc::clone(&acked));
        std::thread::spawn(move || {
            for i in 0.. {
                match writer.set(&format!("w/{i:06}"), i.to_string()) {
                    Ok(()) => acked.store(i + 1, Ordering::SeqCst),
                    Err(e) => return e,
                }
            }
            unreachable!()
        })
    };
    let until = Instant::now() + Duration::from_secs(30);
    while acked.load(Ordering::SeqCst) < 200 {
        assert!(Instant::now() < until, "the writer made no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    f.server.kill();
    // The writer learns of it as a lost connection, the outcome unknown.
    let e = handle.join().unwrap();
    assert_eq!(kind(&e), store_kind(CoreKind::Io), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("may or may not have been applied") || msg.contains("cannot connect"),
        "{msg}"
    );
    let acked = acked.load(Ordering::SeqCst);
    // While it is down: reads and writes fail with I/O errors, nothing hangs.
    let e = writer.get("w/000000").unwrap_err();
    assert_eq!(kind(&e), store_kind(CoreKind::Io), "{e}");
    f.server = Serving::start(&f.store, "memfile", &f.sock, &["--sync"]);
    // The reader's idle connection is stale: its read is retried on a new one.
    assert_eq!(reader.get("before").unwrap().as_deref(), Some(&b"1"[..]));
    // Every acknowledged write is there.
    let keys: Vec<String> = (0..acked).map(|i| format!("w/{i:06}")).collect();
    let got = writer.get_multiple(&keys).unwrap();
    let missing: Vec<&String> = keys.iter().filter(|k| !got.contains_key(*k)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // And the handle writes again.
    writer.set("after", b"restart").unwrap();
    assert_eq!(
        reader.get("after").unwrap().as_deref(),
        Some(&b"restart"[..])
    );
}

/// One RESP request, encoded.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One reply, flattened to its lines (bulk strings as their text).
fn reply(r: &mut BufReader<std::os::unix::net::UnixStream>) -> Vec<String> {
    use std::io::Read;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let line = line.trim_end().to_string();
    match line.as_bytes().first() {
        Some(b'*') => {
            let n: i64 = line[1..].parse().unwrap();
            let mut out = vec![line.clone()];
            for _ in 0..n.max(0) {
                out.extend(reply(r));
            }
            out
        }
        Some(b'$') if line != "$-1" => {
            let n: usize = line[1..].parse().unwrap();
            let mut b = vec![0; n + 2];
            r.read_exact(&mut b).unwrap();
            vec![String::from_utf8_lossy(&b[..n]).into_owned()]
        }
        _ => vec![line],
    }
}

#[test]
fn state_batch_is_all_or_nothing_and_state_range_checks_its_bounds() {
    let f = fixture("memfile", &[]);
    let s = std::os::unix::net::UnixStream::connect(&f.sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut ask = |args: &[&[u8]]| -> Vec<String> {
        (&s).write_all(&resp(args)).unwrap();
        reply(&mut r)
    };
    use std::io::Write;
    // A bad op after good ones: nothing is written.
    let out = ask(&[b"STATE.BATCH", b"SET", b"a", b"1", b"SET", b"", b"2"]);
    assert!(out[0].starts_with("-ERR invalid key"), "{out:?}");
    let out = ask(&[b"STATE.BATCH", b"SET", b"a", b"1", b"NOPE", b"b"]);
    assert!(
        out[0].starts_with("-ERR STATE.BATCH: unknown op"),
        "{out:?}"
    );
    assert_eq!(ask(&[b"EXISTS", b"a"]), [":0"]);
    // Inside MULTI its failure fails the whole EXEC: the SET before it is not applied.
    assert_eq!(ask(&[b"MULTI"]), ["+OK"]);
    assert_eq!(ask(&[b"SET", b"before", b"x"]), ["+QUEUED"]);
    assert_eq!(
        ask(&[b"STATE.BATCH", b"SETPX", b"a", b"1", b"0"]),
        ["+QUEUED"]
    );
    let out = ask(&[b"EXEC"]);
    assert!(
        out[0].starts_with("-ERR STATE.BATCH: a SETPX time"),
        "{out:?}"
    );
    assert_eq!(ask(&[b"EXISTS", b"before", b"a"]), [":0"]);
    // Every op, applied together.
    let out = ask(&[
        b"STATE.BATCH",
        b"SET",
        b"a",
        b"1",
        b"SETPX",
        b"b",
        b"2",
        b"60000",
        b"SETPXAT",
        b"c",
        b"3",
        b"1",
        b"SETKEEP",
        b"b",
        b"22",
        b"PEXPIREAT",
        b"a",
        b"99999999999999",
        b"PERSIST",
        b"a",
        b"SET",
        b"d",
        b"4",
        b"DEL",
        b"d",
    ]);
    assert_eq!(out, ["+OK"]);
    assert_eq!(
        ask(&[b"MGET", b"a", b"b", b"c", b"d"]),
        ["*4", "1", "22", "$-1", "$-1"]
    );
    assert_eq!(ask(&[b"PTTL", b"a"]), [":-1"]);
    let ttl = ask(&[b"PTTL", b"b"]);
    assert!(
        ttl[0].starts_with(':') && ttl[0] != ":-1",
        "SETKEEP kept b's deadline: {ttl:?}"
    );
    // STATE.RANGE: bounds, order, limit; errors for bad bounds.
    assert_eq!(
        ask(&[b"STATE.RANGE", b"-", b"+"]),
        ["*4", "a", "1", "b", "22"]
    );
    assert_eq!(
        ask(&[b"STATE.RANGE", b"(a", b"+", b"LIMIT", b"5"]),
        ["*2", "b", "22"]
    );
    assert_eq!(
        ask(&[b"STATE.RANGE", b"-", b"[b", b"REV", b"LIMIT", b"1"]),
        ["*2", "b", "22"]
    );
    assert_eq!(ask(&[b"STATE.RANGE", b"[b", b"(a"]), ["*0"]);
    let out = ask(&[b"STATE.RANGE", b"a", b"+"]);
    assert!(out[0].starts_with("-ERR min or max not valid"), "{out:?}");
    let out = ask(&[b"STATE.RANGE", b"-", b"+", b"LIMIT", b"-1"]);
    assert!(out[0].starts_with("-ERR"), "{out:?}");
    // COMMAND lists both.
    let names = ask(&[b"COMMAND"]);
    assert!(names.iter().any(|l| l == "state.range") && names.iter().any(|l| l == "state.batch"));
}

/// `openssl` with `args`, in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Proc::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed to make the test's certificates (make test installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

#[test]
fn states_urls_connect_over_tls_to_a_server_whose_ca_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // A CA, and a server certificate for 127.0.0.1 that it signed.
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        d,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "1",
                "-subj",
                "/CN=test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        d,
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "req.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    );
    let cert = d.join("cert.pem").display().to_string();
    let key = d.join("key.pem").display().to_string();
    let f = fixture("memfile", &["--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("states://alice:{}@127.0.0.1:{}", f.alice, f.server.port);
    let opts = Options {
        ca_file: Some(d.join("ca.pem")),
        ..Options::default()
    };
    let b = state_client::connect_with(Some(&url), opts).unwrap();
    b.set("k", b"over tls").unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"over tls"[..]));
    assert!(b.endpoint().starts_with("states://alice@127.0.0.1:"));
    // Without the CA the server's certificate is not trusted: nothing is sent.
    let e = state_client::connect(&url).unwrap_err();
    assert_eq!(kind(&e), store_kind(CoreKind::Io), "{e}");
    // Plain text to a TLS listener gets nowhere either.
    let plain = format!("state://alice:{}@127.0.0.1:{}", f.alice, f.server.port);
    let opts = Options {
        timeout: Duration::from_secs(2),
        ..Options::default()
    };
    assert!(state_client::connect_with(Some(&plain), opts).is_err());
}

/// The server's count of key lookups that found their key (INFO's
/// `keyspace_hits`), read on a connection of its own.
fn server_hits(sock: &Path) -> u64 {
    use std::io::Write;
    let s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    (&s).write_all(&resp(&[b"INFO", b"stats"])).unwrap();
    let out = reply(&mut r).join("\n");
    out.lines()
        .find_map(|l| l.trim().strip_prefix("keyspace_hits:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no keyspace_hits in {out}"))
}

/// A handle with the client-side cache on, once its listener is tracking.
fn cached(url: &str, entries: usize) -> RemoteBucket {
    let opts = Options {
        cache: Some(state_client::CacheOptions::entries(entries)),
        ..Options::default()
    };
    let b = state_client::connect_with(Some(url), opts).unwrap();
    assert!(b.cache_is_live(), "connect returns once the cache tracks");
    b
}

/// Polls `f` until it is true, for at most 10 s (each poll is a real read).
fn within_10s(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `b`'s cache has applied every invalidation of the writes
/// acknowledged so far: a key of its own is cached as missing, `other` creates
/// it, and its invalidation (which follows the earlier ones on the listener's
/// connection) drops it.
fn settle(b: &RemoteBucket, other: &RemoteBucket) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let key = format!("settle/{}", N.fetch_add(1, Ordering::SeqCst));
    assert_eq!(b.get(&key).unwrap(), None);
    assert_eq!(b.get_cached(&key), Some(None), "a missing key is cached");
    other.set(&key, b"1").unwrap();
    within_10s("the settling write's invalidation", || {
        b.get_cached(&key).is_none()
    });
}

#[test]
fn the_one_bucket_cases_pass_with_the_cache_on() {
    let f = fixture("memfile", &[]);
    run_cases(&cached(&f.unix_url(), 1000));
}

#[test]
fn the_cache_answers_repeated_reads_and_drops_what_changed() {
    let f = fixture("memfile", &[]);
    let url = f.unix_url();
    let b = cached(&url, 1000);
    let other = state_client::connect(&url).unwrap();
    other.set("k", b"1").unwrap();
    settle(&b, &other);
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"1"[..]));
    // A repeated read does not reach the server.
    let hits = server_hits(&f.sock);
    for _ in 0..100 {
        assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"1"[..]));
    }
    assert_eq!(server_hits(&f.sock), hits, "cached reads asked the server");
    // The handle's own write: seen by its very next read.
    b.set("k", b"2").unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"2"[..]));
    b.delete("k").unwrap();
    assert_eq!(b.get("k").unwrap(), None);
    b.set_multiple([("k", &b"3"[..])]).unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"3"[..]));
    b.update("k", |_| Some(b"4".to_vec())).unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"4"[..]));
    // Another connection's write: the invalidation arrives, then the new value.
    other.set("k", b"5").unwrap();
    within_10s("the invalidation", || {
        b.get("k").unwrap().as_deref() == Some(&b"5"[..])
    });
    // A missing key is cached as missing, and dropped when it is created.
    assert_eq!(b.get("new").unwrap(), None);
    other.set("new", b"x").unwrap();
    within_10s("the creation", || b.get("new").unwrap().is_some());
    // FLUSHDB: everything goes.
    {
        use std::io::Write;
        let s = std::os::unix::net::UnixStream::connect(&f.sock).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        (&s).write_all(&resp(&[b"FLUSHDB"])).unwrap();
        assert_eq!(reply(&mut r), ["+OK"]);
    }
    within_10s("the flush", || {
        b.get("k").unwrap().is_none() && b.get("new").unwrap().is_none()
    });
    // Bounded: at most 1000 keys.
    for i in 0..1100 {
        b.get(&format!("many/{i}")).unwrap();
    }
    assert!(b.cached_len() <= 1000, "{}", b.cached_len());
}

#[test]
fn the_cache_works_over_tcp_with_a_bare_token() {
    // The listener's RESP3 sign-in is `HELLO 3 AUTH default TOKEN`.
    let f = fixture("memfile", &[]);
    let opts = Options {
        token: Some(f.alice.clone()),
        cache: Some(state_client::CacheOptions::default()),
        ..Options::default()
    };
    let url = format!("state://127.0.0.1:{}", f.server.port);
    let b = state_client::connect_with(Some(&url), opts).unwrap();
    assert!(b.cache_is_live());
    let other = f.tcp("alice", &f.alice);
    other.set("k", b"1").unwrap();
    settle(&b, &other);
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(b.get_cached("k"), Some(Some(b"1".to_vec())));
    other.set("k", b"2").unwrap();
    within_10s("the invalidation", || b.get_cached("k").is_none());
}

#[test]
fn a_cached_key_never_outlives_its_ttl() {
    // No sweep within the test: the server's invalidation of the expired key
    // would come too late, only the cached deadline can drop it in time.
    let f = fixture("memfile", &["--sweep-interval", "1h"]);
    let b = cached(&f.unix_url(), 100);
    let other = state_client::connect(&f.unix_url()).unwrap();
    other
        .set_with_ttl("t", b"v", Duration::from_millis(500))
        .unwrap();
    let set_at = Instant::now();
    settle(&b, &other);
    assert_eq!(b.get("t").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(b.get_cached("t"), Some(Some(b"v".to_vec())));
    // Time passing is what is tested here: the entry must be gone at its
    // deadline, without waiting for the server's sweep or its invalidation.
    std::thread::sleep(Duration::from_millis(500).saturating_sub(set_at.elapsed()));
    assert_eq!(b.get_cached("t"), None);
    assert_eq!(b.get("t").unwrap(), None);
}

#[test]
fn cached_reads_never_go_back_in_time_under_concurrent_writes() {
    // A writer counts up through another handle; a cached reader (which also
    // writes keys of its own) must see the counter never decrease, always see
    // its own last write, and catch up with the writer's last value.
    let f = fixture("memfile", &[]);
    let url = f.unix_url();
    let reader = cached(&url, 1000);
    let writer = state_client::connect(&url).unwrap();
    writer.set("n", b"0").unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let w = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for i in 1..=2000u32 {
                writer.set("n", i.to_string()).unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut last = 0u32;
    let mut reads = 0u64;
    let mut mine = 0u32;
    while !done.load(Ordering::SeqCst) {
        let n: u32 = String::from_utf8(reader.get("n").unwrap().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(n >= last, "went back from {last} to {n}");
        last = n;
        reads += 1;
        if reads.is_multiple_of(16) {
            mine += 1;
            reader.set("mine", mine.to_string()).unwrap();
            assert_eq!(
                reader.get("mine").unwrap(),
                Some(mine.to_string().into_bytes())
            );
        }
    }
    w.join().unwrap();
    within_10s("the last write", || {
        reader.get("n").unwrap().as_deref() == Some(&b"2000"[..])
    });
}

#[test]
fn the_cache_is_dropped_when_the_server_restarts() {
    let mut f = fixture("memfile", &["--sync"]);
    let url = f.unix_url();
    let b = cached(&url, 100);
    b.set("k", b"before").unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"before"[..]));
    f.server.kill();
    within_10s("the listener noticing", || !b.cache_is_live());
    f.server = Serving::start(&f.store, "memfile", &f.sock, &["--sync"]);
    // Written before this handle's listener is back: no invalidation for it
    // ever reaches the handle, yet its read is the new value.
    state_client::connect(&url)
        .unwrap()
        .set("k", b"after")
        .unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"after"[..]));
    within_10s("the listener reconnecting", || b.cache_is_live());
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"after"[..]));
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"after"[..]));
}
