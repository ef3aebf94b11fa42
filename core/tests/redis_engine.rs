//! The Redis engine against real redis-server processes, beyond the conformance
//! suite: opening by URL, two OS processes doing read-modify-writes on one bucket,
//! the sync-mode check, a server killed under load, a server that stops answering.

mod support;

use support::redis as redis_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use redis_support::{shared_url, RedisServer};
use state_core::{ErrorKind, Expiry, Store};

const CHILD_URL: &str = "LIBSTATE_TEST_INCR_URL";
const CHILD_ROUNDS: &str = "LIBSTATE_TEST_INCR_ROUNDS";

/// Adds one to the decimal counter `n`, in one transaction or, with `update`, one
/// single-key read-modify-write (`Bucket::update`): both are optimistic across
/// processes, and they must not lose each other's increments either.
fn incr(b: &state_core::Bucket, update: bool) {
    if update {
        b.update("n", |u| {
            let n = u.value().map_or(0, |v| {
                String::from_utf8_lossy(v).parse::<u64>().unwrap_or(0)
            });
            u.put((n + 1).to_string().as_bytes(), Expiry::Keep);
            Ok(())
        })
        .unwrap();
        return;
    }
    b.transaction(|tx| {
        let n = match tx.get("n")? {
            Some(r) => String::from_utf8_lossy(&r.value)
                .parse::<u64>()
                .unwrap_or(0),
            None => 0,
        };
        tx.put("n", (n + 1).to_string().into_bytes(), Expiry::Keep)
    })
    .unwrap();
}

/// Not a test of its own: the child process of
/// `two_processes_incrementing_one_key_lose_no_update`.
#[test]
fn incr_child() {
    let (Ok(url), Ok(rounds)) = (std::env::var(CHILD_URL), std::env::var(CHILD_ROUNDS)) else {
        return;
    };
    let store = Store::open(&url).unwrap();
    let b = store.bucket("counters").unwrap();
    println!("READY");
    // Start together: the parent writes a line when both children are ready.
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    for i in 0..rounds.parse::<usize>().unwrap() {
        incr(&b, i % 2 == 1);
    }
    store.close().unwrap();
}

#[test]
fn two_processes_incrementing_one_key_lose_no_update() {
    let url = format!("{}?namespace=incr", shared_url());
    let rounds = 300;
    let mut children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["incr_child", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_URL, &url)
                .env(CHILD_ROUNDS, rounds.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Kept open until the children end: a closed pipe would fail their output.
    let mut outputs = Vec::new();
    for child in &mut children {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.any(|l| l.map(|l| l.contains("READY")).unwrap_or(false));
        assert!(ready, "a child never opened the store");
        outputs.push(lines);
    }
    for child in &mut children {
        use std::io::Write;
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    // This process increments too, through its own Store.
    let store = Store::open(&url).unwrap();
    let b = store.bucket("counters").unwrap();
    for i in 0..rounds {
        incr(&b, i % 2 == 0);
    }
    for (mut child, lines) in children.into_iter().zip(outputs) {
        lines.for_each(drop);
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(
        b.get("n").unwrap().unwrap(),
        (3 * rounds).to_string().as_bytes()
    );
    store.close().unwrap();
}

/// Calls of `command` the server has run so far (INFO commandstats).
fn calls(c: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn a_scan_that_says_how_many_it_wants_reads_them_in_one_chunk() {
    let server = RedisServer::start_unix();
    let store = Store::open(&server.url).unwrap();
    let b = store.bucket("b").unwrap();
    b.set_multiple((0..3000).map(|i| (format!("k{i:05}"), b"v".to_vec())))
        .unwrap();
    let mut raw = server.connection();
    let before = (calls(&mut raw, "zrange"), calls(&mut raw, "mget"));
    let mut c = b.cursor().unwrap();
    let page = c.next_n(1000).unwrap();
    assert_eq!(page.len(), 1000);
    assert_eq!(page[999].0, "k00999");
    let after = (calls(&mut raw, "zrange"), calls(&mut raw, "mget"));
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "next_n(1000): one ZRANGE and one MGET"
    );
    // Backwards too, and an iterator's chunks (16, 32, ...) are one each.
    let before = calls(&mut raw, "zrange");
    assert_eq!(c.prev_n(500).unwrap().len(), 500);
    assert_eq!(b.iter().take(16 + 32).count(), 48);
    assert_eq!(calls(&mut raw, "zrange") - before, 3);
    store.close().unwrap();
}

#[test]
fn delete_reports_existence_once_across_stores() {
    // Two Stores on one namespace in one process are still two engines (the
    // registry keys them by location), so they race like two processes would.
    let url = format!("{}?namespace=del", shared_url());
    let a = Store::open(&url).unwrap();
    let ns2 = format!("{}?namespace=del&timeout_ms=4000", shared_url());
    let b = Store::open(&ns2).unwrap();
    let (ba, bb) = (a.bucket("x").unwrap(), b.bucket("x").unwrap());
    let found = Arc::new(AtomicUsize::new(0));
    for round in 0..100 {
        ba.set(&format!("k{round}"), b"v").unwrap();
        let threads: Vec<_> = [ba.clone(), bb.clone()]
            .into_iter()
            .map(|bucket| {
                let found = found.clone();
                thread::spawn(move || {
                    if bucket.delete(&format!("k{round}")).unwrap() {
                        found.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    assert_eq!(
        found.load(Ordering::SeqCst),
        100,
        "each key reported deleted exactly once"
    );
}

#[test]
fn open_by_url_reports_the_server_and_hides_nothing_locally() {
    let url = format!("{}?namespace=byurl", shared_url());
    let store = Store::open(&url).unwrap();
    store.bucket("b").unwrap().set("k", b"v").unwrap();
    let info = store.info().unwrap();
    assert_eq!(info.engine, state_core::Engine::Redis);
    assert_eq!(store.engine_name(), "redis");
    assert_eq!(info.records, 1);
    let details = info.engine_details.unwrap();
    assert!(details.starts_with("redis 7"), "{details}");
    assert!(details.contains("appendfsync always"), "{details}");
    assert!(store.path().to_string_lossy().contains("namespace=byurl"));
    store.close().unwrap();
    // A builder option the URL does not set comes from a RedisConfig engine.
    let config = state_core::RedisConfig::new(&shared_url())
        .unwrap()
        .namespace("byurl");
    let store = Store::builder().engine(config).open(shared_url()).unwrap();
    assert_eq!(store.bucket("b").unwrap().get("k").unwrap().unwrap(), b"v");
}

#[test]
fn sync_mode_is_refused_without_appendfsync_always() {
    let server = RedisServer::start_tcp(&["--appendfsync", "everysec"]);
    let err = Store::builder().sync(true).open(&server.url).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("appendfsync always"), "{err}");
    assert!(err.to_string().contains("everysec"), "{err}");
    // Periodic mode takes what the server gives, and says what that is.
    let store = Store::open(&server.url).unwrap();
    let details = store.info().unwrap().engine_details.unwrap();
    assert!(details.contains("appendfsync everysec"), "{details}");
}

#[test]
fn sync_mode_is_refused_when_config_is_disabled() {
    let server = RedisServer::start_tcp(&["--rename-command", "CONFIG", ""]);
    let err = Store::builder().sync(true).open(&server.url).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.to_string().contains("CONFIG GET"), "{err}");
    let store = Store::open(&server.url).unwrap();
    let details = store.info().unwrap().engine_details.unwrap();
    assert!(details.contains("unknown"), "{details}");
}

#[test]
fn every_acknowledged_write_survives_sigkill_under_load() {
    let mut server = RedisServer::start_tcp(&[]);
    let url = format!("{}?timeout_ms=2000", server.url);
    let store = Store::builder().sync(true).open(&url).unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (b, acked, count, stop) = (
                store.bucket("load").unwrap(),
                acked.clone(),
                count.clone(),
                stop.clone(),
            );
            thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let key = format!("t{t}-{i}");
                    match b.set_with_ttl(&key, key.as_bytes(), std::time::Duration::from_secs(3600))
                    {
                        Ok(()) => {
                            acked.lock().unwrap().push(key);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    while count.load(Ordering::SeqCst) < 2000 {
        thread::yield_now();
    }
    server.kill();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    server.spawn();
    store.close().unwrap();
    let store = Store::open(&url).unwrap();
    let b = store.bucket("load").unwrap();
    let acked = acked.lock().unwrap();
    assert!(acked.len() >= 2000);
    for chunk in acked.chunks(1000) {
        let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let found = b.get_multiple(&keys).unwrap();
        assert_eq!(found.len(), keys.len(), "an acknowledged write is missing");
    }
    assert_eq!(store.info().unwrap().expiring, b.len().unwrap());
}

#[test]
fn a_server_that_stops_answering_gives_io_errors_then_service_resumes() {
    let mut server = RedisServer::start_tcp(&[]);
    let url = format!("{}?timeout_ms=300", server.url);
    let store = Store::open(&url).unwrap();
    let b = store.bucket("b").unwrap();
    b.set("k", b"v").unwrap();
    let pid = server.pid().unwrap().to_string();
    // Stopped, not gone: connections stay open and nothing answers.
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let err = b.get("k").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains("redis"), "{err}");
    let err = b.set("k", b"w").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    redis_support::wait_until_answering(&server.url);
    assert_eq!(b.get("k").unwrap().unwrap(), b"v");
    // Gone and back: the first call may see the cut connection, the next reconnects.
    server.kill();
    let err = b.get("k").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    server.spawn();
    let first = b.get("k");
    if let Err(e) = &first {
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    }
    assert_eq!(b.get("k").unwrap().unwrap(), b"v");
}
