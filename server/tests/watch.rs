//! Keyspace notifications over RESP (SUBSCRIBE / PSUBSCRIBE, RESP2 and RESP3) and
//! Server-Sent Events over HTTP, in-process: each client hears of its own keys
//! only, and shutdown ends subscribed connections and event streams.

mod support;

use state_service::Quota;
use support::{connect, exchange, http, lines, run, tcp_config, Fixture};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A store directory whose client list names alice and bob.
fn alice_and_bob() -> Fixture {
    Fixture::new(&[("alice", Quota::default()), ("bob", Quota::default())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp2_subscribers_hear_only_their_own_keys() {
    let f = alice_and_bob();
    let (server, _store) = f.start(tcp_config()).await;
    let addr = server.addrs().resp.unwrap();
    let running = run(server);

    let mut sub = connect(addr, f.token("alice")).await;
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
    let mut bob = connect(addr, f.token("bob")).await;
    assert_eq!(exchange(&mut bob, b"SET layout b\r\n", 1).await, "+OK\r\n");
    let mut w = connect(addr, f.token("alice")).await;
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
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_subscribers_get_push_frames_and_keep_using_commands() {
    let f = alice_and_bob();
    let (server, _store) = f.start(tcp_config()).await;
    let addr = server.addrs().resp.unwrap();
    let running = run(server);
    let mut sub = connect(addr, f.token("alice")).await;
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
    running.stop().await.unwrap();
    let mut rest = Vec::new();
    sub.read_to_end(&mut rest).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_the_clients_changes_under_a_prefix() {
    let f = alice_and_bob();
    let (server, store) = f.start(tcp_config()).await;
    let addr = server.addrs().http.unwrap();
    let running = run(server);

    // No token: refused.
    let refused = http(
        addr,
        "GET /v1/watch?prefix=x HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");

    // The token as a query parameter (what EventSource can send).
    let mut es = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let req = format!(
        "GET /v1/watch?prefix=layout&token={} HTTP/1.1\r\nhost: localhost\r\n\r\n",
        f.token("alice")
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
    alice.set("layout/\"é\"", b"").unwrap();
    let mut body = String::new();
    while body.matches("data: ").count() < 3 {
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
    // A key is JSON-escaped; an empty value is an empty string.
    assert!(
        body.contains(r#"data: {"key":"layout/\"é\"","kind":"set","value":""}"#),
        "{body}"
    );
    assert!(!body.contains("bob") && !body.contains("other"), "{body}");
    // Shutdown ends the stream (graceful shutdown does not wait for it forever).
    running.stop().await.unwrap();
}
