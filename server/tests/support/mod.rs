//! The test fixtures of `state-server`, one module shared by every test binary (each
//! declares `mod support;` and uses the parts it needs): a store directory with a
//! client list, a server on it bound to port 0 and run in the background until its
//! shutdown token stops it, and raw RESP and HTTP/1.1 exchanges.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use state_core::{Engine, Store};
use state_server::auth::{clients_path, ClientsFile};
use state_server::{Config, Server};
use state_service::{Quota, StateService};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A store directory in a temporary directory, with a client list.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The store directory (0700, as the store makes it).
    pub store_dir: PathBuf,
    /// Each client's name and token.
    tokens: Vec<(String, String)>,
}

impl Fixture {
    /// A store directory whose client list names `clients`, each with its quota.
    pub fn new(clients: &[(&str, Quota)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("s");
        std::fs::create_dir_all(&store_dir).unwrap();
        // As the store would make it: only its owner may write the client list's
        // directory.
        chmod(&store_dir, 0o700);
        let mut list = ClientsFile::default();
        let tokens = clients
            .iter()
            .map(|(name, quota)| (name.to_string(), list.add(name, *quota).unwrap()))
            .collect();
        list.save(&clients_path(&store_dir)).unwrap();
        Fixture {
            _dir: dir,
            store_dir,
            tokens,
        }
    }

    /// The token of client `name`.
    pub fn token(&self, name: &str) -> &str {
        self.tokens
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no client {name} in the fixture"))
    }

    /// The store, opened on the memfile engine.
    pub fn open_store(&self) -> Store {
        Store::builder()
            .engine(Engine::Memfile)
            .open(&self.store_dir)
            .unwrap()
    }

    /// A server on the store, bound with `cfg` (not yet running), and the store.
    pub async fn start(&self, cfg: Config) -> (Server, Store) {
        let store = self.open_store();
        let server = Server::bind(StateService::new(store.clone()), cfg)
            .await
            .unwrap();
        (server, store)
    }
}

/// RESP and HTTP on loopback TCP, on ports the system picks.
pub fn tcp_config() -> Config {
    Config {
        resp: Some("127.0.0.1:0".parse().unwrap()),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    }
}

pub fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A server running in a task of its own until [`Running::stop`].
pub struct Running {
    stop: CancellationToken,
    run: JoinHandle<io::Result<()>>,
}

/// Runs `server` in the background.
pub fn run(server: Server) -> Running {
    Running {
        stop: server.shutdown_token(),
        run: tokio::spawn(server.run_until(std::future::pending())),
    }
}

impl Running {
    /// Shuts the server down through its shutdown token and waits for it to end:
    /// what `run_until` returned (the store's close).
    pub async fn stop(self) -> io::Result<()> {
        self.stop.cancel();
        self.run.await.unwrap()
    }
}

/// A RESP connection read line by line.
pub type Conn = BufReader<TcpStream>;

/// A TCP connection to `addr`, not signed in.
pub async fn tcp(addr: SocketAddr) -> Conn {
    BufReader::new(TcpStream::connect(addr).await.unwrap())
}

/// A TCP connection to `addr`, signed in with `token` (`AUTH token`).
pub async fn connect(addr: SocketAddr, token: &str) -> Conn {
    let mut c = tcp(addr).await;
    assert_eq!(
        exchange(&mut c, format!("AUTH {token}\r\n").as_bytes(), 1).await,
        "+OK\r\n"
    );
    c
}

/// The next `n` lines the server sends (each with its `\r\n`); the connection must
/// not close before.
pub async fn lines<S: AsyncRead + Unpin>(c: &mut BufReader<S>, n: usize) -> String {
    let mut out = String::new();
    for _ in 0..n {
        assert!(
            c.read_line(&mut out).await.unwrap() > 0,
            "connection closed: {out}"
        );
    }
    out
}

/// Sends raw bytes and reads `n` reply lines.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut BufReader<S>,
    req: &[u8],
    n: usize,
) -> String {
    c.get_mut().write_all(req).await.unwrap();
    lines(c, n).await
}

/// Sends one raw HTTP/1.1 request on a connection of its own and reads the whole
/// response (the request should say `connection: close`).
pub async fn http(addr: SocketAddr, req: &str) -> String {
    let mut h = TcpStream::connect(addr).await.unwrap();
    h.write_all(req.as_bytes()).await.unwrap();
    let mut reply = String::new();
    h.read_to_string(&mut reply).await.unwrap();
    reply
}
