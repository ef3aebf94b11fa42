//! The server in-process: bound on port 0 and a socket in a temporary directory,
//! driven over raw RESP and HTTP/1.1, stopped through its shutdown token.

mod support;

use std::time::Duration;

use state_core::{Notice, WatchOptions};
use state_server::auth::clients_path;
use state_server::{Config, Server};
use state_service::{Quota, StateService};
use support::{chmod, connect, exchange, http, run, tcp, tcp_config, Fixture};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::UnixStream;

/// A store directory whose client list names alice, with `quota`.
fn alice(quota: Quota) -> Fixture {
    Fixture::new(&[("alice", quota)])
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn my_user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_then_commands_then_graceful_shutdown_flushes_and_closes() {
    let f = alice(Quota::default());
    let (server, store) = f.start(tcp_config()).await;
    let addr = server.addrs().resp.unwrap();
    let running = run(server);
    let mut c = tcp(addr).await;
    assert_eq!(
        exchange(&mut c, b"GET k\r\n", 1).await,
        "-NOAUTH Authentication required.\r\n"
    );
    let auth = format!("AUTH alice {}\r\n", f.token("alice"));
    assert_eq!(exchange(&mut c, auth.as_bytes(), 1).await, "+OK\r\n");
    // A pipeline in one write: every reply, in order.
    assert_eq!(
        exchange(&mut c, b"SET k v\r\nINCR n\r\nGET k\r\n", 4).await,
        "+OK\r\n:1\r\n$1\r\nv\r\n"
    );
    running.stop().await.unwrap();
    // The server closed the store: it is flushed and closed.
    assert!(store.bucket("alice").is_err());
    let reopened = f.open_store();
    let b = reopened.bucket("alice").unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"1"[..]));
    reopened.close().unwrap();
}

/// A pipeline of counter commands as RESP arrays (a run the server squashes into
/// one `Bucket::update_many`): each reply in its place, errors in the middle
/// included, a key counting on through the run, and a watcher told of each
/// command's change, labelled, as if each had run alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_counter_run_replies_in_place_and_tells_each_change() {
    let f = alice(Quota::default());
    let (server, store) = f.start(tcp_config()).await;
    let addr = server.addrs().resp.unwrap();
    let running = run(server);
    let b = store.bucket("alice").unwrap();
    b.set("t", b"abc").unwrap();
    let w = b
        .watch_with("", WatchOptions::default().with_labels(true))
        .unwrap();
    let mut c = connect(addr, f.token("alice")).await;
    let run_of: [&[&str]; 9] = [
        &["INCR", "n"],
        &["INCR", "n"],
        &["INCRBY", "n", "10"],
        &["DECR", "n"],
        &["INCR", "t"],
        &["DECRBY", "n", "3"],
        &["INCRBY", "n", "x"],
        &["DECRBY", "n", "-9223372036854775808"],
        &["incr", "m"],
    ];
    let mut p = Vec::new();
    for args in run_of {
        p.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            p.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    assert_eq!(
        exchange(&mut c, &p, 9).await,
        ":1\r\n:2\r\n:12\r\n:11\r\n-ERR value is not an integer or out of range\r\n\
         :8\r\n-ERR value is not an integer or out of range\r\n\
         -ERR decrement would overflow\r\n:1\r\n"
    );
    let mut told = Vec::new();
    for _ in 0..8 {
        match w.recv_timeout(Duration::from_secs(10)) {
            Ok(Notice::Change(e)) => told.push((
                e.key().to_string(),
                e.label().unwrap_or_default(),
                String::from_utf8_lossy(e.value().unwrap_or_default()).into_owned(),
            )),
            other => panic!("expected a change, got {other:?}"),
        }
    }
    let want: Vec<(String, &str, String)> = [
        ("n", "new", "1"),
        ("n", "incrby", "1"),
        ("n", "incrby", "2"),
        ("n", "incrby", "12"),
        ("n", "incrby", "11"),
        ("n", "incrby", "8"),
        ("m", "new", "1"),
        ("m", "incrby", "1"),
    ]
    .iter()
    .map(|&(k, l, v)| (k.to_string(), l, v.to_string()))
    .collect();
    assert_eq!(told, want);
    assert!(w.try_recv().is_err(), "nothing else was written");
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"8"[..]));
    assert_eq!(b.get("t").unwrap().as_deref(), Some(&b"abc"[..]));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_over_resp_and_http() {
    let f = alice(Quota {
        max_records: Some(1),
        ..Quota::default()
    });
    let (server, _store) = f.start(tcp_config()).await;
    let (resp, http_addr) = (server.addrs().resp.unwrap(), server.addrs().http.unwrap());
    let running = run(server);
    let mut c = tcp(resp).await;
    let auth = format!("AUTH {}\r\nSET a 1\r\nSET b 2\r\n", f.token("alice"));
    let out = exchange(&mut c, auth.as_bytes(), 3).await;
    assert!(
        out.starts_with("+OK\r\n+OK\r\n-ERR quota exceeded: client \"alice\""),
        "{out}"
    );

    let body = r#"{"key":"c","value":"MQ=="}"#;
    let req = format!(
        "POST /v1/set HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        f.token("alice"),
        body.len()
    );
    let reply = http(http_addr, &req).await;
    assert!(reply.starts_with("HTTP/1.1 507"), "{reply}");
    assert!(reply.contains(r#""kind":"quota exceeded""#), "{reply}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_uses_peer_credentials_and_idle_timeout_closes() {
    let f = alice(Quota::default());
    let sock = f.store_dir.join("state.sock");
    let cfg = Config {
        unix: Some(sock.clone()),
        idle_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let (server, _store) = f.start(cfg).await;
    let running = run(server);
    let mut c = BufReader::new(UnixStream::connect(&sock).await.unwrap());
    // No AUTH: the peer's user (the server's own) is the client unix:USER.
    assert_eq!(exchange(&mut c, b"SET k v\r\n", 1).await, "+OK\r\n");
    // A bulk string whose text ends in "\n": three lines with the final "\r\n".
    let info = exchange(&mut c, b"CLIENT INFO\r\n", 3).await;
    assert!(
        info.contains(&format!(" user=unix:{} ", my_user_name())),
        "{info}"
    );
    // Idle past the timeout: the server closes the connection (EOF, not a sleep).
    let mut rest = Vec::new();
    let n = c.read_to_end(&mut rest).await.unwrap();
    assert_eq!(n, 0);
    running.stop().await.unwrap();
    assert!(!sock.exists(), "the socket is removed on shutdown");
}

#[tokio::test]
async fn a_non_loopback_listener_needs_tls_or_insecure() {
    let f = alice(Quota::default());
    let store = f.open_store();
    let cfg = Config {
        resp: Some("0.0.0.0:0".parse().unwrap()),
        ..Config::default()
    };
    let e = Server::bind(StateService::new(store.clone()), cfg)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a loopback address"), "{e}");
    store.close().unwrap();
}

/// `dev_no_auth` is refused when any TCP listener is off loopback (even with
/// `insecure`, even for HTTP alone), and for a `unix:` name; on loopback a new
/// connection acts as the named client at once, and RESET returns to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_no_auth_only_on_loopback() {
    let f = alice(Quota::default());
    let store = f.open_store();
    let dev = Some("alice".to_string());
    for (resp, http) in [("0.0.0.0:0", "127.0.0.1:0"), ("127.0.0.1:0", "0.0.0.0:0")] {
        let cfg = Config {
            resp: Some(resp.parse().unwrap()),
            http: Some(http.parse().unwrap()),
            insecure: true,
            dev_no_auth: dev.clone(),
            ..Config::default()
        };
        let e = Server::bind(StateService::new(store.clone()), cfg)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--dev-no-auth"), "{e}");
        assert!(e.to_string().contains("0.0.0.0"), "{e}");
    }
    let cfg = Config {
        dev_no_auth: Some("unix:root".into()),
        ..tcp_config()
    };
    let e = Server::bind(StateService::new(store.clone()), cfg)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unix:"), "{e}");
    store.close().unwrap();

    let (server, store) = f
        .start(Config {
            dev_no_auth: dev,
            ..tcp_config()
        })
        .await;
    let addr = server.addrs().resp.unwrap();
    let running = run(server);
    let mut c = tcp(addr).await;
    assert_eq!(
        exchange(&mut c, b"SET k v\r\nRESET\r\nGET k\r\n", 4).await,
        "+OK\r\n+RESET\r\n$1\r\nv\r\n"
    );
    running.stop().await.unwrap();
    let reopened = f.open_store();
    assert_eq!(
        reopened
            .bucket("alice")
            .unwrap()
            .get("k")
            .unwrap()
            .as_deref(),
        Some(&b"v"[..])
    );
    drop(store);
    reopened.close().unwrap();
}

/// WATCH sees a write made through the embedded API of the same store (not
/// through the server) and an expiry: EXEC then replies null and runs nothing; an
/// untouched key lets it run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_the_embedded_api_and_expiry() {
    let f = alice(Quota::default());
    let (server, store) = f
        .start(Config {
            dev_no_auth: Some("alice".into()),
            ..tcp_config()
        })
        .await;
    let addr = server.addrs().resp.unwrap();
    let running = run(server);
    let mut c = tcp(addr).await;
    assert_eq!(
        exchange(&mut c, b"SET k 1\r\nWATCH k\r\n", 2).await,
        "+OK\r\n+OK\r\n"
    );
    store.bucket("alice").unwrap().set("k", "2").unwrap();
    assert_eq!(
        exchange(&mut c, b"MULTI\r\nINCR k\r\nEXEC\r\nGET k\r\n", 5).await,
        "+OK\r\n+QUEUED\r\n*-1\r\n$1\r\n2\r\n"
    );
    // Expiry after WATCH is a change too.
    assert_eq!(
        exchange(&mut c, b"SET e 1 PX 50\r\nWATCH e\r\n", 2).await,
        "+OK\r\n+OK\r\n"
    );
    // Polled (the clock decides when it expires), for at most 10 s.
    let b = store.bucket("alice").unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.get("e").unwrap().is_some() {
        assert!(std::time::Instant::now() < until, "e never expired");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        exchange(&mut c, b"MULTI\r\nSET x 1\r\nEXEC\r\nEXISTS x\r\n", 4).await,
        "+OK\r\n+QUEUED\r\n*-1\r\n:0\r\n"
    );
    // Nothing changed: EXEC runs.
    assert_eq!(
        exchange(&mut c, b"WATCH k\r\nMULTI\r\nINCR k\r\nEXEC\r\n", 5).await,
        "+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:3\r\n"
    );
    running.stop().await.unwrap();
}

/// What the server answers to raw request heads `reqs` (one connection each).
async fn raw_http(cfg: Config, reqs: &[&str]) -> Vec<String> {
    let f = alice(Quota::default());
    let (server, _store) = f.start(cfg).await;
    let addr = server.addrs().http.unwrap();
    let running = run(server);
    let mut out = Vec::new();
    for req in reqs {
        out.push(http(addr, req).await);
    }
    running.stop().await.unwrap();
    out
}

/// Request targets that `ServeDir` alone answered with a 500 (found by the `http` fuzz
/// target): the fault is the client's, so 4xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_dir_answers_bad_targets_with_4xx() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "hi").unwrap();
    let cfg = Config {
        web_dir: Some(web.path().to_path_buf()),
        ..tcp_config()
    };
    let long_name = format!("/{}", "a".repeat(300));
    let long_escaped = format!("/{}", "%61".repeat(300));
    let long_path = "/a".repeat(2100);
    let cases = [
        ("xt", "400"),
        ("localhost:7380", "400"),
        (long_name.as_str(), "404"),
        (long_escaped.as_str(), "404"),
        (long_path.as_str(), "404"),
        ("/index.html/x", "404"),
        ("/", "200"),
        ("/index.html", "200"),
        ("/%69ndex.html", "200"),
    ];
    let reqs: Vec<String> = cases
        .iter()
        .map(|(t, _)| format!("GET {t} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"))
        .collect();
    let reqs: Vec<&str> = reqs.iter().map(String::as_str).collect();
    let replies = raw_http(cfg, &reqs).await;
    for ((target, want), reply) in cases.iter().zip(&replies) {
        let status = reply.split(' ').nth(1).unwrap_or_default();
        assert_eq!(status, *want, "GET {:.40}: {reply:.200}", target);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_appears_by_rename_already_0600_and_nothing_else_is_left() {
    use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let f = alice(Quota::default());
    let store = f.open_store();
    let sock = f.store_dir.join("state.sock");
    let before = entries(&f.store_dir);
    // Every name created, moved in, deleted or chmod-ed in the store directory while
    // the server binds: the socket must arrive by rename, never be created or
    // changed in place (bind then chmod would show IN_CREATE and IN_ATTRIB).
    let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
    watch
        .add_watch(
            &f.store_dir,
            W::IN_CREATE | W::IN_MOVED_TO | W::IN_ATTRIB | W::IN_DELETE,
        )
        .unwrap();
    let cfg = Config {
        unix: Some(sock.clone()),
        ..Config::default()
    };
    let server = Server::bind(StateService::new(store.clone()), cfg)
        .await
        .unwrap();
    let mut events = Vec::new();
    while let Ok(batch) = watch.read_events() {
        events.extend(batch);
    }
    let name = |e: &nix::sys::inotify::InotifyEvent| {
        e.name
            .as_ref()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let on_sock: Vec<W> = events
        .iter()
        .filter(|e| name(e) == "state.sock")
        .map(|e| e.mask)
        .collect();
    assert_eq!(on_sock, [W::IN_MOVED_TO], "{events:?}");
    for (i, e) in events.iter().enumerate() {
        if e.mask.contains(W::IN_CREATE) {
            assert!(
                e.mask.contains(W::IN_ISDIR),
                "only a directory is made: {events:?}"
            );
            assert!(
                events[i..]
                    .iter()
                    .any(|d| d.mask.contains(W::IN_DELETE) && name(d) == name(e)),
                "and removed again: {events:?}"
            );
        }
    }
    let m = std::fs::symlink_metadata(&sock).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(m.mode() & 0o7777, 0o600);
    let mut after = before.clone();
    after.push("state.sock".to_string());
    after.sort();
    assert_eq!(entries(&f.store_dir), after);
    let running = run(server);
    let mut c = BufReader::new(UnixStream::connect(&sock).await.unwrap());
    assert_eq!(exchange(&mut c, b"PING\r\n", 1).await, "+PONG\r\n");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced_a_live_one_or_another_file_is_refused() {
    let f = alice(Quota::default());
    let store = f.open_store();
    let bind = |p: &std::path::Path| {
        Server::bind(
            StateService::new(store.clone()),
            Config {
                unix: Some(p.to_path_buf()),
                ..Config::default()
            },
        )
    };
    let file = f.store_dir.join("not-a-socket");
    std::fs::write(&file, "data").unwrap();
    let e = bind(&file).await.unwrap_err().to_string();
    assert!(e.contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
    let sock = f.store_dir.join("state.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let server = bind(&sock).await.unwrap();
    let e = bind(&sock).await.unwrap_err().to_string();
    assert!(e.contains("in use by a running server"), "{e}");
    let running = run(server);
    UnixStream::connect(&sock).await.unwrap();
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_server_refuses_a_client_list_others_could_write() {
    let f = alice(Quota::default());
    let store = f.open_store();
    let bind = || Server::bind(StateService::new(store.clone()), tcp_config());
    let list = clients_path(&f.store_dir);
    chmod(&f.store_dir, 0o777);
    let e = bind().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("chmod go-w {}", f.store_dir.display())),
        "{e}"
    );
    chmod(&f.store_dir, 0o700);
    chmod(&list, 0o620);
    let e = bind().await.unwrap_err().to_string();
    assert!(e.contains(&format!("chmod go-w {}", list.display())), "{e}");
    chmod(&list, 0o600);
    bind().await.unwrap();
}
