//! The server in-process: bound on port 0 and a socket in a temporary directory,
//! driven over raw RESP and HTTP/1.1, stopped through its shutdown token.

use std::time::Duration;

use state_core::{Engine, Quota, StateService, Store};
use state_server::auth::{clients_path, ClientsFile};
use state_server::{Config, Server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

struct Fixture {
    _dir: tempfile::TempDir,
    store_dir: std::path::PathBuf,
    token: String,
}

fn fixture(quota: Quota) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("s");
    std::fs::create_dir_all(&store_dir).unwrap();
    let mut clients = ClientsFile::default();
    let token = clients.add("alice", quota).unwrap();
    clients.save(&clients_path(&store_dir)).unwrap();
    Fixture {
        _dir: dir,
        store_dir,
        token,
    }
}

async fn start(f: &Fixture, cfg: Config) -> (Server, Store) {
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(&f.store_dir)
        .unwrap();
    let server = Server::bind(StateService::new(store.clone()), cfg)
        .await
        .unwrap();
    (server, store)
}

fn tcp_config() -> Config {
    Config {
        resp: Some("127.0.0.1:0".parse().unwrap()),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    }
}

/// Sends raw bytes and reads `lines` reply lines.
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    req: &[u8],
    lines: usize,
) -> String {
    s.get_mut().write_all(req).await.unwrap();
    let mut out = String::new();
    for _ in 0..lines {
        s.read_line(&mut out).await.unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_then_commands_then_graceful_shutdown_flushes_and_closes() {
    let f = fixture(Quota::default());
    let (server, store) = start(&f, tcp_config()).await;
    let addr = server.addrs().resp.unwrap();
    let stop = server.shutdown_token();
    let run = tokio::spawn(server.run_until(std::future::pending()));
    let mut c = BufReader::new(TcpStream::connect(addr).await.unwrap());
    assert_eq!(
        exchange(&mut c, b"GET k\r\n", 1).await,
        "-NOAUTH Authentication required.\r\n"
    );
    let auth = format!("AUTH alice {}\r\n", f.token);
    assert_eq!(exchange(&mut c, auth.as_bytes(), 1).await, "+OK\r\n");
    // A pipeline in one write: every reply, in order.
    assert_eq!(
        exchange(&mut c, b"SET k v\r\nINCR n\r\nGET k\r\n", 4).await,
        "+OK\r\n:1\r\n$1\r\nv\r\n"
    );
    stop.cancel();
    run.await.unwrap().unwrap();
    // The server closed the store: it is flushed and closed.
    assert!(store.bucket("alice").is_err());
    let reopened = Store::builder()
        .engine(Engine::Memfile)
        .open(&f.store_dir)
        .unwrap();
    let b = reopened.bucket("alice").unwrap();
    assert_eq!(b.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(b.get("n").unwrap().as_deref(), Some(&b"1"[..]));
    reopened.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_over_resp_and_http() {
    let f = fixture(Quota {
        max_records: Some(1),
        ..Quota::default()
    });
    let (server, _store) = start(&f, tcp_config()).await;
    let (resp, http) = (server.addrs().resp.unwrap(), server.addrs().http.unwrap());
    let stop = server.shutdown_token();
    let run = tokio::spawn(server.run_until(std::future::pending()));
    let mut c = BufReader::new(TcpStream::connect(resp).await.unwrap());
    let auth = format!("AUTH {}\r\nSET a 1\r\nSET b 2\r\n", f.token);
    let out = exchange(&mut c, auth.as_bytes(), 3).await;
    assert!(
        out.starts_with("+OK\r\n+OK\r\n-ERR quota exceeded: client \"alice\""),
        "{out}"
    );

    let mut h = TcpStream::connect(http).await.unwrap();
    let body = r#"{"key":"c","value":"MQ=="}"#;
    let req = format!(
        "POST /v1/set HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        f.token,
        body.len()
    );
    h.write_all(req.as_bytes()).await.unwrap();
    let mut reply = String::new();
    h.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 507"), "{reply}");
    assert!(reply.contains(r#""kind":"quota exceeded""#), "{reply}");
    stop.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_uses_peer_credentials_and_idle_timeout_closes() {
    let f = fixture(Quota::default());
    let sock = f.store_dir.join("state.sock");
    let cfg = Config {
        unix: Some(sock.clone()),
        idle_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let (server, _store) = start(&f, cfg).await;
    let stop = server.shutdown_token();
    let run = tokio::spawn(server.run_until(std::future::pending()));
    let mut c = BufReader::new(UnixStream::connect(&sock).await.unwrap());
    // No AUTH: the peer's user is the client.
    assert_eq!(exchange(&mut c, b"SET k v\r\n", 1).await, "+OK\r\n");
    // Idle past the timeout: the server closes the connection (EOF, not a sleep).
    let mut rest = Vec::new();
    let n = c.read_to_end(&mut rest).await.unwrap();
    assert_eq!(n, 0);
    stop.cancel();
    run.await.unwrap().unwrap();
    assert!(!sock.exists(), "the socket is removed on shutdown");
}

#[tokio::test]
async fn a_non_loopback_listener_needs_tls_or_insecure() {
    let f = fixture(Quota::default());
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(&f.store_dir)
        .unwrap();
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

/// What the server answers to raw request heads `reqs` (one connection each).
async fn raw_http(cfg: Config, reqs: &[&str]) -> Vec<String> {
    let f = fixture(Quota::default());
    let (server, _store) = start(&f, cfg).await;
    let http = server.addrs().http.unwrap();
    let stop = server.shutdown_token();
    let run = tokio::spawn(server.run_until(std::future::pending()));
    let mut out = Vec::new();
    for req in reqs {
        let mut h = TcpStream::connect(http).await.unwrap();
        h.write_all(req.as_bytes()).await.unwrap();
        let mut reply = String::new();
        h.read_to_string(&mut reply).await.unwrap();
        out.push(reply);
    }
    stop.cancel();
    run.await.unwrap().unwrap();
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
