//! Keyspace notifications over RESP (SUBSCRIBE / PSUBSCRIBE, RESP2 and RESP3) and
//! Server-Sent Events over HTTP, in-process: each client hears of its own keys
//! only, and shutdown ends subscribed connections and event streams.

use state_core::{Engine, Store};
use state_server::auth::{clients_path, ClientsFile};
use state_server::{Config, Server};
use state_service::{Quota, StateService};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Fixture {
    _dir: tempfile::TempDir,
    store_dir: std::path::PathBuf,
    alice: String,
    bob: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("s");
    std::fs::create_dir_all(&store_dir).unwrap();
    // As the store would make it: only its owner may write the client list's directory.
    std::fs::set_permissions(
        &store_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut clients = ClientsFile::default();
    let alice = clients.add("alice", Quota::default()).unwrap();
    let bob = clients.add("bob", Quota::default()).unwrap();
    clients.save(&clients_path(&store_dir)).unwrap();
    Fixture {
        _dir: dir,
        store_dir,
        alice,
        bob,
    }
}

async fn start(f: &Fixture) -> (Server, Store) {
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(&f.store_dir)
        .unwrap();
    let cfg = Config {
        resp: Some("127.0.0.1:0".parse().unwrap()),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    let server = Server::bind(StateService::new(store.clone()), cfg)
        .await
        .unwrap();
    (server, store)
}

type Conn = BufReader<TcpStream>;

async fn connect(addr: std::net::SocketAddr, token: &str) -> Conn {
    let mut c = BufReader::new(TcpStream::connect(addr).await.unwrap());
    assert_eq!(
        exchange(&mut c, format!("AUTH {token}\r\n").as_bytes(), 1).await,
        "+OK\r\n"
    );
    c
}

async fn lines(c: &mut Conn, n: usize) -> String {
    let mut out = String::new();
    for _ in 0..n {
        assert!(
            c.read_line(&mut out).await.unwrap() > 0,
            "connection closed: {out}"
        );
    }
    out
}

async fn exchange(c: &mut Conn, req: &[u8], n: usize) -> String {
    c.get_mut().write_all(req).await.unwrap();
    lines(c, n).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp2_subscribers_hear_only_their_own_keys() {
    let f = fixture();
    let (server, _store) = start(&f).await;
    let addr = server.addrs().resp.unwrap();
    let stop = server.shutdown_token();
    let run = tokio::spawn(server.run_until(std::future::pending()));

    let mut sub = connect(addr, &f.alice).await;
    assert_eq!(
        exchange(&mut sub, b"SUBSCRIBE __keyspace@0__:layout\r\n", 6).await,
        "*3\r\n$9\r\nsubscribe\r\n$21\r\n__keyspace@0__:layout\r\n:1\r\n"
    );
    assert_eq!(
        exchange(&mut sub, b"PSUBSCRIBE __keyevent@0__:*\r\n", 6).await,
        "*3\r\n$10\r\npsubscribe\r\n$16\r\n__keyevent@0__:*\r\n:2\r\n"
    );
    // Subscribed RESP2 connections take only pub/sub commands (and PING).
    assert_eq!(
        exchange(&mut sub, b"GET layout\r\n", 1).await,
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(
        exchange(&mut sub, b"PING\r\n", 5).await,
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    );

    // Bob writes the same key in his own bucket first: alice must not hear of it.
    let mut bob = connect(addr, &f.bob).await;
    assert_eq!(exchange(&mut bob, b"SET layout b\r\n", 1).await, "+OK\r\n");
    let mut w = connect(addr, &f.alice).await;
    assert_eq!(exchange(&mut w, b"SET layout a\r\n", 1).await, "+OK\r\n");
    assert_eq!(
        lines(&mut sub, 7).await,
        "*3\r\n$7\r\nmessage\r\n$21\r\n__keyspace@0__:layout\r\n$3\r\nset\r\n"
    );
    assert_eq!(
        lines(&mut sub, 9).await,
        "*4\r\n$8\r\npmessage\r\n$16\r\n__keyevent@0__:*\r\n$18\r\n__keyevent@0__:set\r\n$6\r\nlayout\r\n"
    );
    assert_eq!(exchange(&mut w, b"DEL layout other\r\n", 1).await, ":1\r\n");
    assert_eq!(
        lines(&mut sub, 7).await,
        "*3\r\n$7\r\nmessage\r\n$21\r\n__keyspace@0__:layout\r\n$3\r\ndel\r\n"
    );
    assert_eq!(
        lines(&mut sub, 9).await,
        "*4\r\n$8\r\npmessage\r\n$16\r\n__keyevent@0__:*\r\n$18\r\n__keyevent@0__:del\r\n$6\r\nlayout\r\n"
    );
    assert_eq!(
        exchange(&mut sub, b"UNSUBSCRIBE\r\n", 6).await,
        "*3\r\n$11\r\nunsubscribe\r\n$21\r\n__keyspace@0__:layout\r\n:1\r\n"
    );
    assert_eq!(
        exchange(&mut sub, b"PUNSUBSCRIBE\r\n", 6).await,
        "*3\r\n$12\r\npunsubscribe\r\n$16\r\n__keyevent@0__:*\r\n:0\r\n"
    );
    // Back to normal mode: commands work, and no more messages arrive.
    assert_eq!(exchange(&mut w, b"SET layout c\r\n", 1).await, "+OK\r\n");
    assert_eq!(
        exchange(&mut sub, b"GET layout\r\n", 2).await,
        "$1\r\nc\r\n"
    );
    stop.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_subscribers_get_push_frames_and_keep_using_commands() {
    let f = fixture();
    let (server, _store) = start(&f).await;
    let addr = server.addrs().resp.unwrap();
    let stop = server.shutdown_token();
    let run = tokio::spawn(server.run_until(std::future::pending()));
    let mut sub = connect(addr, &f.alice).await;
    sub.get_mut().write_all(b"HELLO 3\r\n").await.unwrap();
    lines(&mut sub, 26).await;
    assert_eq!(
        exchange(&mut sub, b"PSUBSCRIBE __keyspace@0__:cfg/*\r\n", 6).await,
        ">3\r\n$10\r\npsubscribe\r\n$20\r\n__keyspace@0__:cfg/*\r\n:1\r\n"
    );
    assert_eq!(exchange(&mut sub, b"SET cfg/a 1\r\n", 1).await, "+OK\r\n");
    assert_eq!(
        lines(&mut sub, 9).await,
        ">4\r\n$8\r\npmessage\r\n$20\r\n__keyspace@0__:cfg/*\r\n$20\r\n__keyspace@0__:cfg/a\r\n$3\r\nset\r\n"
    );
    // A key outside the pattern: no message.
    assert_eq!(exchange(&mut sub, b"SET other 1\r\n", 1).await, "+OK\r\n");
    assert_eq!(exchange(&mut sub, b"DEL cfg/a\r\n", 1).await, ":1\r\n");
    assert_eq!(
        lines(&mut sub, 9).await,
        ">4\r\n$8\r\npmessage\r\n$20\r\n__keyspace@0__:cfg/*\r\n$20\r\n__keyspace@0__:cfg/a\r\n$3\r\ndel\r\n"
    );
    // Shutdown ends the subscribed connection.
    stop.cancel();
    run.await.unwrap().unwrap();
    let mut rest = Vec::new();
    sub.read_to_end(&mut rest).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_the_clients_changes_under_a_prefix() {
    let f = fixture();
    let (server, store) = start(&f).await;
    let http = server.addrs().http.unwrap();
    let stop = server.shutdown_token();
    let run = tokio::spawn(server.run_until(std::future::pending()));

    // No token: refused.
    let mut h = TcpStream::connect(http).await.unwrap();
    h.write_all(b"GET /v1/watch?prefix=x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut refused = String::new();
    h.read_to_string(&mut refused).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    // The token as a query parameter (what EventSource can send).
    let mut es = BufReader::new(TcpStream::connect(http).await.unwrap());
    let req = format!(
        "GET /v1/watch?prefix=layout&token={} HTTP/1.1\r\nhost: localhost\r\n\r\n",
        f.alice
    );
    es.get_mut().write_all(req.as_bytes()).await.unwrap();
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(es.read_line(&mut head).await.unwrap() > 0);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    // The headers arrived, so the watcher is registered: write now.
    store
        .bucket("bob")
        .unwrap()
        .set("layout", b"bob's")
        .unwrap();
    let alice = store.bucket("alice").unwrap();
    alice.set("other", b"x").unwrap();
    alice.set("layout", b"{\"cols\":3}").unwrap();
    alice.delete("layout").unwrap();
    let mut body = String::new();
    while body.matches("data: ").count() < 2 {
        assert!(es.read_line(&mut body).await.unwrap() > 0);
    }
    assert!(
        body.contains(r#"data: {"key":"layout","kind":"set","value":"eyJjb2xzIjozfQ=="}"#),
        "{body}"
    );
    assert!(
        body.contains(r#"data: {"key":"layout","kind":"delete"}"#),
        "{body}"
    );
    assert!(!body.contains("bob") && !body.contains("other"), "{body}");
    // Shutdown ends the stream (graceful shutdown does not wait for it forever).
    stop.cancel();
    run.await.unwrap().unwrap();
}
