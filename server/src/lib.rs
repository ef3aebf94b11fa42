//! # state-server: one libstate store, served
//!
//! `state serve` runs this: the store's [`StateService`] reached over the Redis
//! protocol (RESP2 and RESP3, on a Unix socket and on TCP) and over HTTP with the
//! original state service's JSON messages. Each connection acts as exactly one client
//! and reaches only that client's bucket. This crate holds protocol, connection and
//! authentication handling only; every rule it enforces (isolation, quotas, atomic
//! read-modify-write, cursors) is the core's.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use state_server::{Config, Server};
//! let store = state_core::Store::open("state-data").map_err(std::io::Error::other)?;
//! let svc = state_core::StateService::new(store);
//! let server = Server::bind(svc, Config::default()).await?;
//! println!("{:?}", server.addrs());
//! server.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]

pub mod auth;
pub mod commands;
mod conn;
pub mod glob;
mod http;
pub mod metrics;
mod pubsub;
pub mod resp;
mod socket;
mod sse;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use state_core::{Quota, StateService};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::{ClientsFile, Registry};

/// The Redis version the server reports (HELLO, INFO): the Redis 7.0 command set
/// and reply shapes it follows.
pub const REDIS_VERSION: &str = "7.0.0";
/// Default TCP address of the Redis protocol listener.
pub const DEFAULT_RESP_ADDR: &str = "127.0.0.1:7379";
/// Default TCP address of the HTTP listener.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:7380";
/// The Unix socket's file name inside the store directory.
pub const SOCKET_NAME: &str = "state.sock";

/// TLS certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// What the server listens on and the limits it keeps.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unix socket path for the Redis protocol: an allowed peer's Unix user is the
    /// client `unix:USER` without a token (see [`auth`]).
    pub unix: Option<PathBuf>,
    /// The Unix socket's permission bits (default `0o600`: only the server's user).
    pub unix_mode: u32,
    /// The Unix socket's group id (default: the server's own group).
    pub unix_group: Option<u32>,
    /// TCP address for the Redis protocol.
    pub resp: Option<SocketAddr>,
    /// TCP address for HTTP.
    pub http: Option<SocketAddr>,
    /// TLS for the TCP listeners.
    pub tls: Option<TlsFiles>,
    /// Allow non-loopback TCP without TLS.
    pub insecure: bool,
    /// Most connections open at once, all listeners together.
    pub max_connections: usize,
    /// Most elements in one Redis request.
    pub max_multibulk: usize,
    /// Most bytes of one connection's replies: a command whose reply would pass it
    /// fails with an error before the reply is built.
    pub max_output_bytes: usize,
    /// Most bytes one signed-in connection may hold of requests: the request being
    /// received plus the commands queued after MULTI.
    pub max_query_bytes: usize,
    /// Most bytes all connections together may hold in request and reply buffers;
    /// past it, a connection that holds more than [`SMALL_CONNECTION`] bytes and
    /// wants more is closed.
    pub max_buffered_bytes: usize,
    /// A request must arrive whole within this time of its first byte (RESP and
    /// HTTP bodies), and a TLS handshake complete within it.
    pub read_timeout: Duration,
    /// A reply that the peer does not read within this time closes the connection.
    pub write_timeout: Duration,
    /// A connection must sign in within this time of being accepted (RESP; HTTP
    /// connections must send an authorized request within it).
    pub auth_timeout: Duration,
    /// Most connections at once that have not signed in yet; a new one past the
    /// limit closes the oldest of them.
    pub max_pending: usize,
    /// Most channels plus patterns one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Host names (besides loopback literals and `localhost`) the HTTP listener
    /// answers to; a request naming another Host gets 421 (DNS rebinding).
    pub http_hosts: Vec<String>,
    /// If set, `GET /metrics` requires `Authorization: Bearer` with this token.
    pub metrics_token: Option<String>,
    /// Close connections idle this long (none by default, as in Redis).
    pub idle_timeout: Option<Duration>,
    /// Serve this directory's files at `/` on the HTTP listener.
    pub web_dir: Option<PathBuf>,
    /// Origins allowed by CORS on the HTTP listener (none: no CORS headers).
    pub cors: Vec<String>,
    /// Quota for clients whose entry sets none (and for peer-credential clients).
    pub default_quota: Quota,
    /// The client list (default: `clients.toml` in the store's directory). A store
    /// opened by URL (the Redis engine) has no directory: this must be given.
    pub clients_file: Option<PathBuf>,
    /// Run requests where the tokio runtime may block (sync-mode stores wait for
    /// fsync in every write).
    pub blocking_store: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            unix: None,
            unix_mode: 0o600,
            unix_group: None,
            resp: None,
            http: None,
            tls: None,
            insecure: false,
            max_connections: 1024,
            max_multibulk: 1024 * 1024,
            max_output_bytes: 64 << 20,
            max_query_bytes: 64 << 20,
            max_buffered_bytes: 192 << 20,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(10),
            max_pending: 128,
            max_subscriptions: 128,
            http_hosts: Vec::new(),
            metrics_token: None,
            idle_timeout: None,
            web_dir: None,
            cors: Vec::new(),
            default_quota: Quota::default(),
            clients_file: None,
            blocking_store: false,
        }
    }
}

/// Where a started server listens.
#[derive(Debug, Clone, Default)]
pub struct Addrs {
    /// The Unix socket.
    pub unix: Option<PathBuf>,
    /// The Redis-protocol TCP address.
    pub resp: Option<SocketAddr>,
    /// The HTTP address.
    pub http: Option<SocketAddr>,
}

/// Limits before a connection has signed in (Redis's, from CVE-2021-32675): a
/// request of at most this many arguments...
pub const PREAUTH_MAX_ARGS: usize = 10;
/// ... each of at most this many bytes ...
pub const PREAUTH_MAX_BULK: usize = 16 << 10;
/// ... and a query buffer of at most this many bytes.
pub const PREAUTH_MAX_QUERY: usize = 1 << 20;
/// A connection holding at most this many bytes of buffers is never closed for the
/// server-wide buffer limit ([`Config::max_buffered_bytes`]).
pub const SMALL_CONNECTION: usize = 1 << 20;

/// One live connection or event stream, as the server tracks it: whom it acts as,
/// and how to end it (revocation, the pending-connection limit).
pub(crate) struct Tracked {
    /// Signed in with a token: the client and the token's hash. `None` for a
    /// connection not signed in yet, or one named by peer credentials.
    pub(crate) token_auth: Option<(String, String)>,
    /// Named by Unix peer credentials: the peer's uid and its client (`unix:NAME`).
    pub(crate) unix_peer: Option<(u32, String)>,
    /// Not signed in yet.
    pub(crate) pending: bool,
    /// Cancelled to end the connection.
    pub(crate) kill: CancellationToken,
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) svc: StateService,
    pub(crate) registry: Registry,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) cfg: Config,
    pub(crate) shutdown: CancellationToken,
    next_id: AtomicU64,
    /// Bytes held in request and reply buffers by all connections.
    pub(crate) buffered: AtomicUsize,
    /// Every live connection and event stream, by id (ids grow: the first is the
    /// oldest).
    pub(crate) tracked: parking_lot::Mutex<BTreeMap<u64, Tracked>>,
    /// Rate limit of the failed-sign-in warnings.
    pub(crate) auth_log: metrics::LogLimiter,
    /// The TLS configuration new TCP connections get (replaced by a reload).
    pub(crate) tls: parking_lot::RwLock<Option<TlsAcceptor>>,
}

impl Shared {
    /// The shared state of a server serving `svc` to the clients of `registry`.
    pub(crate) fn new(svc: StateService, registry: Registry, cfg: Config) -> Shared {
        Shared {
            svc,
            registry,
            metrics: metrics::Metrics::default(),
            cfg,
            shutdown: CancellationToken::new(),
            next_id: AtomicU64::new(1),
            buffered: AtomicUsize::new(0),
            tracked: parking_lot::Mutex::new(BTreeMap::new()),
            auth_log: metrics::LogLimiter::new(10, Duration::from_secs(10)),
            tls: parking_lot::RwLock::new(None),
        }
    }

    /// A new id for a connection or stream.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed)
    }

    /// Starts tracking connection `id`. A pending one past [`Config::max_pending`]
    /// ends the oldest pending connection.
    pub(crate) fn track(
        &self,
        id: u64,
        token_auth: Option<(String, String)>,
        pending: bool,
    ) -> CancellationToken {
        let kill = self.shutdown.child_token();
        let mut map = self.tracked.lock();
        if pending {
            let waiting = map.values().filter(|t| t.pending).count();
            if waiting >= self.cfg.max_pending {
                if let Some((old, t)) = map.iter().find(|(_, t)| t.pending) {
                    tracing::info!(
                        conn = old,
                        "closing the oldest connection that has not signed in (--max-pending {})",
                        self.cfg.max_pending
                    );
                    t.kill.cancel();
                }
            }
        }
        map.insert(
            id,
            Tracked {
                token_auth,
                unix_peer: None,
                pending,
                kill: kill.clone(),
            },
        );
        kill
    }

    /// Records that connection `id` signed in (with a token: its client and hash).
    pub(crate) fn signed_in(&self, id: u64, token_auth: Option<(String, String)>) {
        if let Some(t) = self.tracked.lock().get_mut(&id) {
            t.pending = false;
            t.token_auth = token_auth;
        }
    }

    /// Records that connection `id` acts as `client` by the peer credentials of
    /// Unix user `uid`.
    pub(crate) fn unix_peer(&self, id: u64, uid: u32, client: &str) {
        if let Some(t) = self.tracked.lock().get_mut(&id) {
            t.unix_peer = Some((uid, client.to_string()));
        }
    }

    /// Stops tracking connection `id`.
    pub(crate) fn untrack(&self, id: u64) {
        self.tracked.lock().remove(&id);
    }

    /// Rereads the client list and ends every connection and stream signed in with
    /// a token that no longer names its client (the client was removed or its
    /// token rotated). Returns how many were ended.
    pub(crate) fn revoke_stale(&self) -> usize {
        self.registry.refresh();
        let map = self.tracked.lock();
        let mut n = 0;
        for (id, t) in map.iter() {
            let valid = match (&t.token_auth, &t.unix_peer) {
                (Some((client, hash)), _) => self.registry.still_valid(client, hash),
                (None, Some((uid, client))) => self.registry.unix_still_allowed(*uid, client),
                (None, None) => true,
            };
            if let Some(client) = t
                .token_auth
                .as_ref()
                .map(|a| &a.0)
                .or(t.unix_peer.as_ref().map(|p| &p.1))
            {
                if !valid && !t.kill.is_cancelled() {
                    tracing::info!(conn = id, client = %client, "ending a session: its client was removed or its token changed");
                    t.kill.cancel();
                    n += 1;
                }
            }
        }
        n
    }

    /// Longest value a request may carry (the store's own limit).
    pub(crate) fn max_bulk(&self) -> usize {
        self.svc.store().max_value_size()
    }

    /// Sets `client`'s quota from its entry, falling back to the server's defaults.
    pub(crate) fn apply_quota(&self, client: &str) {
        let own = self.registry.quota(client).unwrap_or_default();
        let d = self.cfg.default_quota;
        self.svc.set_quota(
            client,
            Quota {
                max_records: own.max_records.or(d.max_records),
                max_bytes: own.max_bytes.or(d.max_bytes),
                max_value_size: own.max_value_size.or(d.max_value_size),
            },
        );
    }
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    addrs: Addrs,
    /// Whether the server made its Unix socket (and removes it at shutdown).
    owns_socket: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .finish()
    }
}

fn is_loopback(a: &SocketAddr) -> bool {
    a.ip().is_loopback()
}

fn load_tls(files: &TlsFiles) -> io::Result<TlsAcceptor> {
    let read = |p: &PathBuf| {
        std::fs::read(p)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::other(format!("{}: {e}", files.cert.display())))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| io::Error::other(format!("{}: {e}", files.key.display())))?
        .ok_or_else(|| io::Error::other(format!("{} holds no private key", files.key.display())))?;
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| io::Error::other(format!("TLS: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| io::Error::other(format!("TLS certificate or key: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A connection counted against the limit while it lives.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.metrics.connections_open.fetch_sub(1, Relaxed);
    }
}

/// Listening sockets the server is handed instead of binding its own: systemd's
/// socket activation (`LISTEN_FDS`). Each one given replaces the listener of its
/// kind in [`Config`]; an inherited Unix socket is left in place at shutdown (its
/// owner made it).
#[derive(Debug, Default)]
pub struct Inherited {
    /// The Unix socket for the Redis protocol.
    pub unix: Option<std::os::unix::net::UnixListener>,
    /// The Redis-protocol TCP listener.
    pub resp: Option<std::net::TcpListener>,
    /// The HTTP listener.
    pub http: Option<std::net::TcpListener>,
}

/// Reloads a running server's client list and TLS certificate and key (what
/// `state serve` does on SIGHUP). Cheap to clone.
#[derive(Clone)]
pub struct Reloader(Arc<Shared>);

impl Reloader {
    /// Rereads the client list and, if the server serves TLS, its certificate and
    /// key. What fails to load is kept as it was (the server never stops for it);
    /// each failure is logged and returned. Blocking file I/O: call it off the
    /// runtime's worker threads.
    pub fn reload(&self) -> Vec<String> {
        let shared = &self.0;
        let mut errors = Vec::new();
        match shared.registry.reload() {
            Ok(()) => {
                tracing::info!(file = %shared.registry.path().display(), "reloaded the client list");
                shared.revoke_stale();
            }
            Err(e) => errors.push(format!("keeping the previous client list: {e}")),
        }
        if let Some(files) = &shared.cfg.tls {
            match load_tls(files) {
                Ok(acceptor) => {
                    *shared.tls.write() = Some(acceptor);
                    tracing::info!(cert = %files.cert.display(), "reloaded the TLS certificate and key");
                }
                Err(e) => errors.push(format!("keeping the previous TLS certificate and key: {e}")),
            }
        }
        for e in &errors {
            tracing::error!("reload: {e}");
        }
        errors
    }
}

impl Server {
    /// Binds every listener in `cfg` and starts accepting. The client list is
    /// `clients.toml` in the store's directory.
    ///
    /// # Errors
    /// A listener that cannot bind, a non-loopback address without TLS (and without
    /// `insecure`), unreadable TLS files, a malformed client list. Nothing is left
    /// listening on error.
    pub async fn bind(svc: StateService, cfg: Config) -> io::Result<Server> {
        Server::bind_with(svc, cfg, Inherited::default()).await
    }

    /// [`Server::bind`], with listeners handed over by the caller (socket
    /// activation) used instead of binding those of their kind.
    ///
    /// # Errors
    /// As [`Server::bind`]; an inherited TCP listener on a non-loopback address
    /// needs TLS (or `insecure`) too.
    pub async fn bind_with(
        svc: StateService,
        mut cfg: Config,
        inherited: Inherited,
    ) -> io::Result<Server> {
        let inherited_addr = |l: &Option<std::net::TcpListener>| -> io::Result<Option<SocketAddr>> {
            l.as_ref()
                .map(std::net::TcpListener::local_addr)
                .transpose()
        };
        let inherited_resp = inherited_addr(&inherited.resp)?;
        let inherited_http = inherited_addr(&inherited.http)?;
        for a in [inherited_resp.or(cfg.resp), inherited_http.or(cfg.http)]
            .into_iter()
            .flatten()
        {
            if !is_loopback(&a) && cfg.tls.is_none() && !cfg.insecure {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{a} is not a loopback address: give --tls-cert and --tls-key, or --insecure to serve it in the clear"),
                ));
            }
        }
        http::check_cors(&cfg.cors).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if cfg.max_pending == 0 || cfg.max_subscriptions == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--max-pending and --max-subscriptions must be at least 1",
            ));
        }
        let tls = cfg.tls.as_ref().map(load_tls).transpose()?;
        let clients = match &cfg.clients_file {
            Some(p) => p.clone(),
            None if svc.store().path().is_dir() => auth::clients_path(svc.store().path()),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "this store has no directory (it is opened by URL): name the client \
                     list with --clients FILE",
                ))
            }
        };
        let registry = Registry::open(clients).map_err(|e| io::Error::other(e.0))?;
        let owns_socket = inherited.unix.is_none();
        let unix = match (inherited.unix, &cfg.unix) {
            (Some(l), _) => {
                let path = l
                    .local_addr()?
                    .as_pathname()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default();
                l.set_nonblocking(true)?;
                Some((UnixListener::from_std(l)?, path))
            }
            (None, Some(p)) => Some((socket::bind(p, cfg.unix_mode, cfg.unix_group)?, p.clone())),
            (None, None) => None,
        };
        if let Some((_, p)) = &unix {
            cfg.unix = Some(p.clone());
        }
        let resp = match (inherited.resp, cfg.resp) {
            (Some(l), _) => Some(from_std_tcp(l)?),
            (None, Some(a)) => Some(bind_tcp(a, "Redis protocol").await?),
            (None, None) => None,
        };
        let http = match (inherited.http, cfg.http) {
            (Some(l), _) => Some(from_std_tcp(l)?),
            (None, Some(a)) => Some(bind_tcp(a, "HTTP").await?),
            (None, None) => None,
        };
        let addrs = Addrs {
            unix: unix.as_ref().map(|(_, p)| p.clone()),
            resp: resp.as_ref().and_then(|l| l.local_addr().ok()),
            http: http.as_ref().and_then(|l| l.local_addr().ok()),
        };
        let shared = Arc::new(Shared::new(svc, registry, cfg));
        *shared.tls.write() = tls;
        let tasks = TaskTracker::new();
        tasks.spawn(watch_clients(shared.clone()));
        if let Some((l, _)) = unix {
            tasks.spawn(accept_unix(shared.clone(), l, tasks.clone()));
        }
        if let Some(l) = resp {
            tasks.spawn(accept_tcp(shared.clone(), l, tasks.clone(), None));
        }
        if let Some(l) = http {
            // Built here, before the caller reports the server ready: a router that
            // cannot be built fails the start, not a task after `ready`.
            let router = http::router(shared.clone());
            tasks.spawn(accept_tcp(shared.clone(), l, tasks.clone(), Some(router)));
        }
        Ok(Server {
            shared,
            tasks,
            addrs,
            owns_socket,
        })
    }

    /// Reloads this server's client list and TLS files while it runs.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.shared.clone())
    }

    /// Where the server listens (with the ports the OS chose for port 0).
    pub fn addrs(&self) -> &Addrs {
        &self.addrs
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Serves until `stop` completes (or the shutdown token is cancelled), then
    /// stops accepting, lets every connection finish the requests it has received,
    /// flushes and closes the store, and removes the Unix socket.
    ///
    /// # Errors
    /// The store's flush or close failing.
    pub async fn run_until(self, stop: impl std::future::Future<Output = ()>) -> io::Result<()> {
        tokio::select! {
            () = stop => {}
            () = self.shared.shutdown.cancelled() => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
        self.shared.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(p) = self.addrs.unix.as_ref().filter(|_| self.owns_socket) {
            let _ = std::fs::remove_file(p);
        }
        let store = self.shared.svc.store().clone();
        let flushed = tokio::task::spawn_blocking(move || {
            store.flush()?;
            store.close()
        })
        .await
        .map_err(io::Error::other)?;
        flushed.map_err(io::Error::other)?;
        tracing::info!("store flushed and closed");
        Ok(())
    }
}

/// An inherited TCP listener, made non-blocking for tokio.
fn from_std_tcp(l: std::net::TcpListener) -> io::Result<TcpListener> {
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}

async fn bind_tcp(a: SocketAddr, what: &str) -> io::Result<TcpListener> {
    TcpListener::bind(a)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen for {what} on {a}: {e}")))
}

/// Takes a connection slot, or `None` at the limit.
fn admit(shared: &Arc<Shared>) -> Option<Slot> {
    let open = shared.metrics.connections_open.fetch_add(1, Relaxed);
    let slot = Slot(shared.clone());
    if open >= shared.cfg.max_connections as u64 {
        shared.metrics.connections_refused.fetch_add(1, Relaxed);
        return None;
    }
    shared.metrics.connections_total.fetch_add(1, Relaxed);
    Some(slot)
}

async fn refuse<S: AsyncWrite + Unpin>(mut s: S, http: bool) {
    let msg: &[u8] = if http {
        b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: 72\r\nconnection: close\r\n\r\n{\"error\":\"max number of clients reached\",\"kind\":\"too many connections\"}\n"
    } else {
        b"-ERR max number of clients reached\r\n"
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), s.write_all(msg)).await;
}

async fn accept_unix(shared: Arc<Shared>, l: UnixListener, tasks: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            r = l.accept() => r,
            () = shared.shutdown.cancelled() => return,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept on the Unix socket: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = admit(&shared) else {
            tasks.spawn(refuse(stream, false));
            continue;
        };
        // `unix:NAME` for an allowed Unix user; anyone else must AUTH (auth.rs).
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        let client = uid.and_then(|u| shared.registry.unix_client(u));
        let id = shared.next_id();
        let mut sess = conn::Session::new(id, "unix".into(), client, "unix");
        sess.peer_uid = uid;
        let sh = shared.clone();
        tasks.spawn(async move {
            conn::serve(sh, stream, sess).await;
            drop(slot);
        });
    }
}

async fn accept_tcp(
    shared: Arc<Shared>,
    l: TcpListener,
    tasks: TaskTracker,
    router: Option<axum::Router>,
) {
    let http = router.is_some();
    loop {
        let accepted = tokio::select! {
            r = l.accept() => r,
            () = shared.shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(slot) = admit(&shared) else {
            tasks.spawn(refuse(stream, http));
            continue;
        };
        let sh = shared.clone();
        // Read per connection: a reload (SIGHUP) replaces it for new connections.
        let tls = shared.tls.read().clone();
        let router = router.clone();
        tasks.spawn(async move {
            match tls {
                Some(acceptor) => {
                    let hs =
                        tokio::time::timeout(sh.cfg.read_timeout, acceptor.accept(stream)).await;
                    match hs {
                        Ok(Ok(s)) => serve_stream(sh, s, peer, router).await,
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_stream(sh, stream, peer, router).await,
            }
            drop(slot);
        });
    }
}

async fn serve_stream<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    router: Option<axum::Router>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match router {
        None => {
            let id = shared.next_id();
            let sess = conn::Session::new(id, peer.to_string(), None, "tcp");
            conn::serve(shared, stream, sess).await;
        }
        Some(router) => {
            let id = shared.next_id();
            let kill = shared.track(id, None, true);
            let router = router.layer(axum::Extension(http::ConnId(id)));
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(shared.cfg.read_timeout);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let auth_deadline = tokio::time::sleep(shared.cfg.auth_timeout);
            tokio::pin!(auth_deadline);
            let mut waiting_auth = true;
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(%peer, "HTTP connection: {e}");
                        }
                        break;
                    }
                    () = kill.cancelled(), if !stopping => {
                        // Shutdown, revocation, or closed as the oldest pending
                        // connection: finish the request in flight, then close.
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    () = &mut auth_deadline, if waiting_auth => {
                        waiting_auth = false;
                        let pending = shared.tracked.lock().get(&id).is_some_and(|t| t.pending);
                        if pending && !stopping {
                            tracing::info!(%peer, "closing an HTTP connection that sent no authorized request within --auth-timeout");
                            stopping = true;
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            shared.untrack(id);
        }
    }
}

/// Rereads the client list every second and ends the sessions of removed clients
/// and rotated tokens (RESP connections, HTTP connections and event streams).
async fn watch_clients(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(CLIENTS_RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shared.shutdown.cancelled() => return,
        }
        let sh = shared.clone();
        // Reading the file is blocking I/O: off the connections' threads.
        let _ = tokio::task::spawn_blocking(move || sh.revoke_stale()).await;
    }
}

/// How often the server looks at the client list for changes.
pub const CLIENTS_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Drives the Redis-protocol command path and the HTTP router without sockets, for
/// the fuzz targets (fuzz/) and their corpus replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing;
