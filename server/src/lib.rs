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
//! let svc = state_service::StateService::new(store);
//! let server = Server::bind(svc, Config::default()).await?;
//! println!("{:?}", server.addrs());
//! server.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
// One call is unsafe: tune_allocator's mallopt, with its SAFETY note.
#![deny(unsafe_code)]

pub mod auth;
mod cmd;
mod config;
mod conn;
pub mod glob;
mod http;
mod listen;
mod loops;
pub mod metrics;
mod pubsub;
mod requests;
pub mod resp;
mod session;
mod socket;
mod stall;
mod strops;
mod tracking;

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use state_service::StateService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use auth::{ClientsFile, Registry};
pub use config::{
    Addrs, AdminInput, AdminReply, AdminRequest, AdminRunner, Config, TlsFiles, LOAD_CHUNK_MAX,
};
pub use listen::Inherited;

/// The Redis version the server reports (HELLO, INFO): the Redis 7.0 command set
/// and reply shapes it follows.
pub const REDIS_VERSION: &str = "7.0.0";
/// Default TCP address of the Redis protocol listener.
pub const DEFAULT_RESP_ADDR: &str = "127.0.0.1:7379";
/// Default TCP address of the HTTP listener.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:7380";
/// The Unix socket's file name inside the store directory (the service's rule,
/// shared with the CLI and the libstate client).
pub const SOCKET_NAME: &str = state_service::SOCKET_NAME;

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
    pub(crate) registry: Arc<Registry>,
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
    /// Each client's `notify-keyspace-events` classes, once it set them (CONFIG
    /// SET; until a restart); [`pubsub::class::DEFAULT`] otherwise.
    pub(crate) notify: parking_lot::Mutex<BTreeMap<String, u32>>,
    /// Who is subscribed to what, for PUBLISH (per client).
    pub(crate) broker: Arc<pubsub::Broker>,
    /// When the server started (INFO's uptime).
    pub(crate) started: std::time::Instant,
    /// The TLS configuration new TCP connections get (replaced by a reload).
    pub(crate) tls: parking_lot::RwLock<Option<tokio_rustls::TlsAcceptor>>,
    /// The event loops Redis-protocol connections run on (`None` without
    /// listeners: the fuzzing harness).
    pub(crate) loops: Option<loops::Loops>,
}

impl Shared {
    /// The shared state of a server serving `svc` to the clients of `registry`.
    pub(crate) fn new(svc: StateService, registry: Registry, cfg: Config) -> Shared {
        let registry = Arc::new(registry);
        // The service reads each client's quota from the client list when a write
        // needs it (nothing is pushed per request, connection or sign-in).
        let quotas = auth::ClientQuotas::new(registry.clone(), cfg.default_quota);
        Shared {
            svc: svc.with_quotas(Arc::new(quotas)),
            registry,
            // Counted by index in the command table, named by it in `/metrics`.
            // One shard per event loop, and one for every other thread.
            metrics: metrics::Metrics::new(
                cmd::COMMANDS.iter().map(|c| c.name).collect(),
                cfg.threads + 1,
            ),
            cfg,
            shutdown: CancellationToken::new(),
            next_id: AtomicU64::new(1),
            buffered: AtomicUsize::new(0),
            tracked: parking_lot::Mutex::new(BTreeMap::new()),
            auth_log: metrics::LogLimiter::new(10, Duration::from_secs(10)),
            notify: parking_lot::Mutex::new(BTreeMap::new()),
            broker: Arc::default(),
            started: std::time::Instant::now(),
            tls: parking_lot::RwLock::new(None),
            loops: None,
        }
    }

    /// Client `client`'s `notify-keyspace-events` classes.
    pub(crate) fn notify_flags(&self, client: &str) -> u32 {
        self.notify
            .lock()
            .get(client)
            .copied()
            .unwrap_or(pubsub::class::DEFAULT)
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
        // Quotas need nothing here: the service reads them from the list
        // (auth::ClientQuotas) on every write, so a changed quota applies at once.
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

    /// Longest argument a request of `client` may carry: the store's limit,
    /// lowered to the client's own `max_value_size` quota (but not below
    /// [`CLIENT_BULK_FLOOR`], so keys and patterns always fit), so a value over
    /// the client's quota is refused while the request is parsed, before it is
    /// buffered, as one over the store's limit is.
    pub(crate) fn max_bulk_for(&self, client: &str) -> usize {
        let store = self.max_bulk();
        match self.svc.quota(client).max_value_size {
            Some(q) => store.min(
                usize::try_from(q)
                    .unwrap_or(usize::MAX)
                    .max(CLIENT_BULK_FLOOR),
            ),
            None => store,
        }
    }
}

/// The smallest argument limit a client's `max_value_size` quota lowers parsing
/// to ([`Shared::max_bulk_for`]): smaller values over the quota are refused when
/// the write commits.
const CLIENT_BULK_FLOOR: usize = 64 << 10;

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    addrs: Addrs,
    /// Whether the server made its Unix socket (and removes it at shutdown).
    owns_socket: bool,
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
            match listen::load_tls(files) {
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

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl Server {
    /// Binds every listener in `cfg` and starts accepting. The client list is
    /// `clients.toml` in the store's directory.
    ///
    /// # Errors
    /// A listener that cannot bind, a non-loopback address without TLS (and without
    /// `insecure`), `dev_no_auth` with a TCP listener off loopback or a malformed
    /// client name, unreadable TLS files, a malformed client list. Nothing is left
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
        let tcp_addrs = inherited.tcp_addrs()?;
        listen::check_dev_no_auth(&cfg, tcp_addrs)?;
        listen::check_addresses(&cfg, tcp_addrs)?;
        http::check_cors(&cfg.cors).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if cfg.max_pending == 0 || cfg.max_subscriptions == 0 || cfg.threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--max-pending, --max-subscriptions and --threads must be at least 1",
            ));
        }
        let tls = cfg.tls.as_ref().map(listen::load_tls).transpose()?;
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
        // `/metrics` reads the store's bucket and record counts on every scrape, in
        // O(1) once counting has started: start it now (one count; on sled a read of
        // every key), so no scrape pays for it.
        if let Err(e) = svc.store().counts() {
            tracing::warn!("cannot count the store's records for /metrics: {e}");
        }
        let listeners = listen::Listeners::bind(&cfg, inherited).await?;
        let addrs = listeners.addrs();
        let owns_socket = listeners.owns_socket;
        cfg.unix.clone_from(&addrs.unix);
        let threads = cfg.threads;
        let mut shared = Shared::new(svc, registry, cfg);
        shared.loops = Some(loops::Loops::start(threads)?);
        let shared = Arc::new(shared);
        *shared.tls.write() = tls;
        let tasks = TaskTracker::new();
        listeners.spawn(&shared, &tasks);
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
        // Every connection has ended: the event loops' threads end too.
        let sh = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(l) = &sh.loops {
                l.stop();
            }
        })
        .await;
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

/// Runs `f` where it may take long: on a multi-threaded runtime (HTTP's) the
/// worker thread hands its other connections to another worker first
/// (`block_in_place`), so one client's long command or request never stalls the
/// connections that share its thread. (Redis-protocol connections run on
/// current-thread event loops, which send such requests to the blocking pool
/// before they run: [`cmd::runs_long`]; here they run as they are.)
pub(crate) fn off_loop<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Sets the process's allocator up for a server that handles values of many
/// megabytes: with glibc, every allocation of 256 KiB or more is its own mapping,
/// returned to the system when freed. Call it once, before the runtime starts.
///
/// glibc's default raises that threshold to the size of each large block freed
/// (up to 32 MiB), so after the first 16 MiB value the next ones come from the
/// per-thread heaps, whose freed space stays resident. Measured with the workload
/// of server/tests/py/test_attacks.py's unread watch stream (24 writes of 16 MiB,
/// an event stream and a subscriber open): RSS over idle settled at +186 to +240
/// MiB with glibc's default and at +69 to +90 MiB with the threshold set. Setting
/// it turns the raising off. Elsewhere (musl, other systems) this does nothing.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocator parameters; it takes two
        // integers, touches no memory of ours, and is safe to call at any time
        // (glibc takes its arena locks for the change).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
        }
    }
}

/// How often the server looks at the client list for changes.
pub const CLIENTS_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Drives the Redis-protocol command path and the HTTP router without sockets, for
/// the fuzz targets (fuzz/) and their corpus replay tests. Not a stable API.
#[doc(hidden)]
pub mod fuzzing;
