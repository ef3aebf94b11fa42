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

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
    /// A connection whose pending replies exceed this many bytes is closed.
    pub max_output_bytes: usize,
    /// A partly received request must complete within this time.
    pub read_timeout: Duration,
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
            resp: None,
            http: None,
            tls: None,
            insecure: false,
            max_connections: 1024,
            max_multibulk: 1024 * 1024,
            max_output_bytes: 256 << 20,
            read_timeout: Duration::from_secs(10),
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

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) svc: StateService,
    pub(crate) registry: Registry,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) cfg: Config,
    pub(crate) shutdown: CancellationToken,
    next_id: AtomicU64,
}

impl Shared {
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

impl Server {
    /// Binds every listener in `cfg` and starts accepting. The client list is
    /// `clients.toml` in the store's directory.
    ///
    /// # Errors
    /// A listener that cannot bind, a non-loopback address without TLS (and without
    /// `insecure`), unreadable TLS files, a malformed client list. Nothing is left
    /// listening on error.
    pub async fn bind(svc: StateService, cfg: Config) -> io::Result<Server> {
        for a in [cfg.resp, cfg.http].into_iter().flatten() {
            if !is_loopback(&a) && cfg.tls.is_none() && !cfg.insecure {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{a} is not a loopback address: give --tls-cert and --tls-key, or --insecure to serve it in the clear"),
                ));
            }
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
        let unix = match &cfg.unix {
            Some(p) => Some((socket::bind(p)?, p.clone())),
            None => None,
        };
        let resp = match cfg.resp {
            Some(a) => Some(bind_tcp(a, "Redis protocol").await?),
            None => None,
        };
        let http = match cfg.http {
            Some(a) => Some(bind_tcp(a, "HTTP").await?),
            None => None,
        };
        let addrs = Addrs {
            unix: unix.as_ref().map(|(_, p)| p.clone()),
            resp: resp.as_ref().and_then(|l| l.local_addr().ok()),
            http: http.as_ref().and_then(|l| l.local_addr().ok()),
        };
        let shared = Arc::new(Shared {
            svc,
            registry,
            metrics: metrics::Metrics::default(),
            cfg,
            shutdown: CancellationToken::new(),
            next_id: AtomicU64::new(1),
        });
        let tasks = TaskTracker::new();
        if let Some((l, _)) = unix {
            tasks.spawn(accept_unix(shared.clone(), l, tasks.clone()));
        }
        if let Some(l) = resp {
            tasks.spawn(accept_tcp(
                shared.clone(),
                l,
                tls.clone(),
                tasks.clone(),
                false,
            ));
        }
        if let Some(l) = http {
            tasks.spawn(accept_tcp(shared.clone(), l, tls, tasks.clone(), true));
        }
        Ok(Server {
            shared,
            tasks,
            addrs,
        })
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
        if let Some(p) = &self.addrs.unix {
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
        let client = stream
            .peer_cred()
            .ok()
            .and_then(|c| shared.registry.unix_client(c.uid()));
        let id = shared.next_id.fetch_add(1, Relaxed);
        let sess = conn::Session::new(id, "unix".into(), client, "unix");
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
    tls: Option<TlsAcceptor>,
    tasks: TaskTracker,
    http: bool,
) {
    let router = http.then(|| http::router(shared.clone()));
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
        let tls = tls.clone();
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
            let id = shared.next_id.fetch_add(1, Relaxed);
            let sess = conn::Session::new(id, peer.to_string(), None, "tcp");
            conn::serve(shared, stream, sess).await;
        }
        Some(router) => {
            let svc = hyper_util::service::TowerToHyperService::new(router);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(shared.cfg.read_timeout);
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "HTTP connection: {e}");
                    }
                }
                () = shared.shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        }
    }
}

/// Drives the Redis-protocol command path and the HTTP router without sockets, for
/// the fuzz targets (fuzz/) and their corpus replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing;
