//! The listeners: the Unix socket and the TCP listeners (RESP and HTTP, with TLS
//! when configured), the accept loops that admit connections under the connection
//! limit and hand them to [`crate::conn`] or the HTTP router, and the loop that
//! watches the client list for revocations.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::session::Session;
use crate::stall::WriteDeadline;
use crate::{conn, http, socket, Addrs, Config, Shared, TlsFiles, CLIENTS_RELOAD_EVERY};

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

impl Inherited {
    /// The TCP addresses inherited listeners listen on (resp, http).
    pub(crate) fn tcp_addrs(&self) -> io::Result<(Option<SocketAddr>, Option<SocketAddr>)> {
        let addr = |l: &Option<std::net::TcpListener>| {
            l.as_ref()
                .map(std::net::TcpListener::local_addr)
                .transpose()
        };
        Ok((addr(&self.resp)?, addr(&self.http)?))
    }
}

/// Every listener of a configuration, bound. The TCP ones take the TLS acceptor
/// the server holds when each connection arrives (a reload replaces it).
pub(crate) struct Listeners {
    unix: Option<(UnixListener, PathBuf)>,
    resp: Option<TcpListener>,
    http: Option<TcpListener>,
    /// Whether the Unix socket was made here (and is removed at shutdown).
    pub(crate) owns_socket: bool,
}

impl Listeners {
    /// Binds every listener `cfg` names that `inherited` does not hand over.
    /// Nothing is left listening on error.
    pub(crate) async fn bind(cfg: &Config, inherited: Inherited) -> io::Result<Listeners> {
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
        Ok(Listeners {
            unix,
            resp,
            http,
            owns_socket,
        })
    }

    /// Where they listen (with the ports the OS chose for port 0).
    pub(crate) fn addrs(&self) -> Addrs {
        Addrs {
            unix: self.unix.as_ref().map(|(_, p)| p.clone()),
            resp: self.resp.as_ref().and_then(|l| l.local_addr().ok()),
            http: self.http.as_ref().and_then(|l| l.local_addr().ok()),
        }
    }

    /// Starts the accept loops and the client-list watcher on `tasks`.
    pub(crate) fn spawn(self, shared: &Arc<Shared>, tasks: &TaskTracker) {
        tasks.spawn(watch_clients(shared.clone()));
        if let Some((l, _)) = self.unix {
            tasks.spawn(accept_unix(shared.clone(), l, tasks.clone()));
        }
        if let Some(l) = self.resp {
            tasks.spawn(accept_tcp(shared.clone(), l, tasks.clone(), None));
        }
        if let Some(l) = self.http {
            // Built here, before the caller reports the server ready: a router that
            // cannot be built fails the start, not a task after `ready`.
            let router = http::router(shared.clone());
            tasks.spawn(accept_tcp(shared.clone(), l, tasks.clone(), Some(router)));
        }
    }
}

/// Refuses a non-loopback TCP address without TLS (unless `insecure`): those of
/// `cfg`, or of the listeners inherited in their place (`inherited`: resp, http).
pub(crate) fn check_addresses(
    cfg: &Config,
    inherited: (Option<SocketAddr>, Option<SocketAddr>),
) -> io::Result<()> {
    for a in [inherited.0.or(cfg.resp), inherited.1.or(cfg.http)]
        .into_iter()
        .flatten()
    {
        if !a.ip().is_loopback() && cfg.tls.is_none() && !cfg.insecure {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{a} is not a loopback address: give --tls-cert and --tls-key, or --insecure to serve it in the clear"),
            ));
        }
    }
    Ok(())
}

/// `--dev-no-auth` only where nobody but this machine's users can connect: every
/// TCP listener on loopback (the Unix socket is local by nature), and a client
/// name that could be in the client list (not `unix:USER`).
pub(crate) fn check_dev_no_auth(
    cfg: &Config,
    inherited: (Option<SocketAddr>, Option<SocketAddr>),
) -> io::Result<()> {
    let Some(name) = &cfg.dev_no_auth else {
        return Ok(());
    };
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    for a in [inherited.0.or(cfg.resp), inherited.1.or(cfg.http)]
        .into_iter()
        .flatten()
    {
        if !a.ip().is_loopback() {
            return Err(invalid(format!(
                "--dev-no-auth serves without sign-in, so only on loopback and the Unix socket: {a} is not a loopback address"
            )));
        }
    }
    match crate::auth::ClientName::parse(name) {
        Ok(crate::auth::ClientName::Token(_)) => Ok(()),
        Ok(crate::auth::ClientName::Unix(_)) => Err(invalid(format!(
            "--dev-no-auth {name}: name a token client, not a unix: one"
        ))),
        Err(e) => Err(invalid(format!("--dev-no-auth {name}: {e}"))),
    }
}

/// The TLS acceptor of a certificate chain and key (rustls with ring).
pub(crate) fn load_tls(files: &TlsFiles) -> io::Result<TlsAcceptor> {
    let read = |p: &PathBuf| {
        std::fs::read(p)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| io::Error::other(format!("{}: {e}", files.cert.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            io::Error::other(format!("{} holds no private key", files.key.display()))
        }
        e => io::Error::other(format!("{}: {e}", files.key.display())),
    })?;
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

/// A connection counted against the connection limit while it lives.
struct Admitted(Arc<Shared>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.metrics.connections_open.fetch_sub(1, Relaxed);
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

/// Counts a new connection against the limit, or `None` at the limit.
fn admit(shared: &Arc<Shared>) -> Option<Admitted> {
    let open = shared.metrics.connections_open.fetch_add(1, Relaxed);
    let admitted = Admitted(shared.clone());
    if open >= shared.cfg.max_connections as u64 {
        shared.metrics.connections_refused.fetch_add(1, Relaxed);
        return None;
    }
    shared.metrics.connections_total.fetch_add(1, Relaxed);
    Some(admitted)
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
        let Some(admitted) = admit(&shared) else {
            tasks.spawn(refuse(stream, false));
            continue;
        };
        // `unix:NAME` for an allowed Unix user; anyone else must AUTH (auth.rs).
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        let client = uid
            .and_then(|u| shared.registry.unix_client(u))
            .or_else(|| shared.cfg.dev_no_auth.clone());
        let id = shared.next_id();
        let mut sess = Session::new(id, "unix".into(), client, "unix", shared.metrics.local());
        sess.peer_uid = uid;
        let sh = shared.clone();
        // Moved to its event loop: registered there, with that thread's reactor.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("handing over a Unix connection: {e}");
                continue;
            }
        };
        on_loop(&shared, &tasks, async move {
            match tokio::net::UnixStream::from_std(stream) {
                Ok(stream) => conn::serve(sh, stream, sess).await,
                Err(e) => tracing::warn!("registering a Unix connection: {e}"),
            }
            drop(admitted);
        });
    }
}

/// Runs a Redis-protocol connection's future on the next event loop
/// ([`crate::loops`]), tracked by `tasks` from now on (shutdown waits for it).
fn on_loop(
    shared: &Shared,
    tasks: &TaskTracker,
    conn: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let conn = tasks.track_future(conn);
    match &shared.loops {
        Some(loops) => loops.run(conn),
        None => {
            tokio::spawn(conn);
        }
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
        let Some(admitted) = admit(&shared) else {
            tasks.spawn(refuse(stream, http));
            continue;
        };
        let sh = shared.clone();
        // Read per connection: a reload (SIGHUP) replaces it for new connections.
        let tls = shared.tls.read().clone();
        let router = router.clone();
        let serve = move |sh: Arc<Shared>, stream: TcpStream| async move {
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
            drop(admitted);
        };
        if http {
            // HTTP stays on the runtime that accepts (its handlers may block there).
            tasks.spawn(serve(sh, stream));
            continue;
        }
        // A Redis-protocol connection moves to its event loop, and is registered
        // with that thread's reactor there.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, "handing over a connection: {e}");
                continue;
            }
        };
        on_loop(&shared, &tasks, async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(sh, stream).await,
                Err(e) => tracing::warn!(%peer, "registering a connection: {e}"),
            }
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
            let sess = Session::new(
                id,
                peer.to_string(),
                shared.cfg.dev_no_auth.clone(),
                "tcp",
                shared.metrics.local(),
            );
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
            // hyper drives the writes: the write timeout is kept by the stream itself.
            let stream = WriteDeadline::new(stream, shared.cfg.write_timeout, kill.clone());
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
