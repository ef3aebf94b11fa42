//! The server's configuration: what it listens on and the limits it keeps.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use state_service::Quota;

/// TLS certificate chain and private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// A `state` command an administrator asks the server to run (LIBSTATE.RUN, or
/// LIBSTATE.LOAD for `state load`).
#[derive(Debug)]
pub struct AdminRequest {
    /// The caller's working directory, for relative paths among the arguments.
    pub cwd: PathBuf,
    /// The caller's standard input, for a command that reads it (`set B K -`).
    pub stdin: Vec<u8>,
    /// The input a `state load` reads (LIBSTATE.LOAD): what the caller sends, chunk
    /// by chunk, never a file the server opens. `None` for every other command.
    pub input: Option<AdminInput>,
    /// The arguments after `state`.
    pub args: Vec<String>,
    /// Whether the caller is the store's owner (on the Unix socket); otherwise it
    /// is a client added with `--admin`, allowed `state client ...` only.
    pub owner: bool,
}

/// Most bytes of one chunk of a `state load`'s input (LIBSTATE.LOAD DATA).
pub const LOAD_CHUNK_MAX: usize = 1 << 20;

/// Chunks of a `state load`'s input the server holds at most: a caller sending
/// faster than the store writes waits for the reply to its chunk, so a load holds
/// at most this many chunks of [`LOAD_CHUNK_MAX`] in memory.
pub(crate) const LOAD_QUEUE: usize = 4;

/// One message to a running `state load`.
#[derive(Debug)]
pub(crate) enum LoadChunk {
    /// More input.
    Data(Vec<u8>),
    /// The input is complete.
    End,
}

/// The input of a `state load` run by the server ([`AdminRequest::input`]): the
/// bytes its caller sends over the connection, in order. Reading it waits for the
/// next chunk; it ends where the caller says the input ends, and fails (*unexpected
/// end of file*) if the caller goes away before saying so, so that a cut connection
/// is never taken for a complete input.
#[derive(Debug)]
pub struct AdminInput {
    rx: std::sync::mpsc::Receiver<LoadChunk>,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl AdminInput {
    /// An input fed through `rx`.
    pub(crate) fn new(rx: std::sync::mpsc::Receiver<LoadChunk>) -> AdminInput {
        AdminInput {
            rx,
            buf: Vec::new(),
            pos: 0,
            ended: false,
        }
    }
}

impl std::io::Read for AdminInput {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.ended || out.is_empty() {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(LoadChunk::Data(d)) => {
                    self.buf = d;
                    self.pos = 0;
                }
                Ok(LoadChunk::End) => self.ended = true,
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the caller went away before sending the whole input",
                    ))
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A `state load` running for a connection (LIBSTATE.LOAD): where its input goes,
/// and the thread that runs it. Dropping it (the connection closed) ends its input
/// with an error.
#[derive(Debug)]
pub(crate) struct LoadJob {
    pub(crate) tx: std::sync::mpsc::SyncSender<LoadChunk>,
    pub(crate) done: std::thread::JoinHandle<AdminReply>,
}

/// What a command run for an administrator printed, and its exit code.
#[derive(Debug, Clone, Default)]
pub struct AdminReply {
    /// The exit code.
    pub code: u8,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Why the command was not run, if it was refused to this caller.
    pub refused: Option<String>,
    /// Whether the command changed the client list (the server applies it before
    /// replying).
    pub clients_changed: bool,
}

/// Runs `state` commands on the served store for its administrator (`state serve`
/// installs one; an embedding program may leave it out).
#[derive(Clone)]
pub struct AdminRunner(pub std::sync::Arc<dyn Fn(AdminRequest) -> AdminReply + Send + Sync>);

impl std::fmt::Debug for AdminRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminRunner")
    }
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
    /// past it, a connection that holds more than [`crate::SMALL_CONNECTION`] bytes and
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
    /// Most keys one connection's client-side-caching table (CLIENT TRACKING,
    /// default mode) remembers; past it the oldest is invalidated and forgotten
    /// (Redis's `tracking-table-max-keys`, here per connection).
    pub tracking_table_max_keys: usize,
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
    /// fsync in every write): each write leaves its connection's event loop for
    /// tokio's blocking pool, so concurrent writers share fsyncs and the loop goes
    /// on serving its other connections meanwhile.
    pub blocking_store: bool,
    /// Event loops for Redis-protocol connections: threads, each running a
    /// current-thread runtime; a new connection goes to the next loop in turn and
    /// stays there. Default: one per two cores, at least 1 (`--threads`).
    pub threads: usize,
    /// For tests on one machine only: Redis-protocol connections that have not
    /// signed in act as this client (no token), as Redis's `default` user without
    /// a password. [`crate::Server::bind`] refuses it unless every TCP listener is
    /// on a loopback address.
    pub dev_no_auth: Option<String>,
    /// Runs `state` commands for the store's administrator (LIBSTATE.RUN).
    pub admin_runner: Option<AdminRunner>,
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
            tracking_table_max_keys: 1_000_000,
            http_hosts: Vec::new(),
            metrics_token: None,
            idle_timeout: None,
            web_dir: None,
            cors: Vec::new(),
            default_quota: Quota::default(),
            clients_file: None,
            blocking_store: false,
            threads: crate::loops::default_threads(),
            dev_no_auth: None,
            admin_runner: None,
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_load_input_ends_where_the_caller_says_and_fails_if_it_goes_away_first() {
        let (tx, rx) = std::sync::mpsc::sync_channel(LOAD_QUEUE);
        let mut input = AdminInput::new(rx);
        tx.send(LoadChunk::Data(b"abc".to_vec())).unwrap();
        tx.send(LoadChunk::Data(b"de".to_vec())).unwrap();
        tx.send(LoadChunk::End).unwrap();
        let mut all = Vec::new();
        input.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abcde");

        let (tx, rx) = std::sync::mpsc::sync_channel(LOAD_QUEUE);
        let mut input = AdminInput::new(rx);
        tx.send(LoadChunk::Data(b"{}".to_vec())).unwrap();
        drop(tx);
        let mut all = Vec::new();
        let e = input.read_to_end(&mut all).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(all, b"{}");
    }
}
