//! Connections to the server: opened through the redis crate (Unix socket, TCP,
//! TLS, AUTH), kept in a small pool of idle ones, and the one rule for a lost
//! connection (reads once more on a fresh connection, writes never).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Connection, ConnectionAddr, ConnectionInfo, RedisConnectionInfo, RedisResult};

use crate::errors::{self, Doing};
use crate::target::Target;
use crate::{Options, Result};

/// The connections of one bucket handle (shared by its clones).
pub(crate) struct Pool {
    client: redis::Client,
    /// The same server over RESP3 (the cache's listener, which takes pushes).
    client3: redis::Client,
    /// Counts the times a connection was found lost (the cache forgets
    /// everything when it changes: the server may have restarted).
    pub(crate) lost: Arc<AtomicU64>,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    timeout: Duration,
    /// The URL without its token, for errors.
    pub(crate) endpoint: String,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("endpoint", &self.endpoint)
            .field("idle", &self.idle.lock().len())
            .finish()
    }
}

impl Pool {
    /// A pool for `target` (no connection is made yet).
    pub(crate) fn new(target: &Target, opts: &Options) -> Result<Pool> {
        let endpoint = target.to_string();
        let (addr, mut name, mut token) = match target {
            Target::Unix { path } => (ConnectionAddr::Unix(path.clone()), None, None),
            Target::Tcp {
                host,
                port,
                tls,
                name,
                token,
            } => {
                let addr = if *tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), *port)
                };
                (addr, name.clone(), token.clone())
            }
        };
        if token.is_none() {
            token.clone_from(&opts.token);
            name.clone_from(&opts.name);
        }
        let info = ConnectionInfo {
            addr,
            redis: RedisConnectionInfo {
                db: 0,
                username: name.filter(|_| token.is_some()),
                password: token,
                protocol: redis::ProtocolVersion::RESP2,
            },
        };
        let root_cert = match &opts.ca_file {
            Some(ca) => Some(std::fs::read(ca).map_err(|e| state_core::Error::Io {
                path: ca.clone(),
                source: e,
            })?),
            None => None,
        };
        let build = |info: ConnectionInfo| {
            match &root_cert {
                Some(root_cert) => redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert.clone()),
                    },
                ),
                None => redis::Client::open(info),
            }
            .map_err(|e| {
                state_core::Error::InvalidArgument(format!(
                    "cannot use the server URL {endpoint}: {e}"
                ))
            })
        };
        let mut info3 = info.clone();
        info3.redis.protocol = redis::ProtocolVersion::RESP3;
        let client = build(info)?;
        let client3 = build(info3)?;
        Ok(Pool {
            client,
            client3,
            lost: Arc::default(),
            idle: Mutex::new(Vec::new()),
            max_idle: opts.max_idle,
            timeout: opts.timeout,
            endpoint,
        })
    }

    /// A new connection, signed in, with the timeouts set.
    pub(crate) fn open(&self) -> Result<Connection> {
        let fail = |e: redis::RedisError| -> crate::Error {
            errors::from_redis(&self.endpoint, Doing::Connect, &e).into()
        };
        let conn = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(fail)?;
        conn.set_read_timeout(Some(self.timeout)).map_err(fail)?;
        conn.set_write_timeout(Some(self.timeout)).map_err(fail)?;
        Ok(conn)
    }

    /// A new RESP3 connection (pushes), signed in, for the cache's listener.
    pub(crate) fn open_tracking(&self) -> RedisResult<Connection> {
        let conn = self.client3.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    /// An idle connection, or a new one.
    pub(crate) fn take(&self) -> Result<Connection> {
        match self.idle.lock().pop() {
            Some(c) => Ok(c),
            None => self.open(),
        }
    }

    /// Returns a connection in a clean state (no MULTI, no WATCH) for reuse.
    pub(crate) fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// Drops every idle connection: after one was lost (the server went away) the
    /// others are most likely lost too.
    pub(crate) fn forget_idle(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        self.idle.lock().clear();
    }

    /// Runs `f` on a connection. On a lost connection a read runs once more on a
    /// fresh one; a write fails with an *I/O* error that says its outcome is
    /// unknown. A server's error reply becomes libstate's error of that kind.
    pub(crate) fn run<T>(
        &self,
        doing: Doing,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T> {
        let mut conn = self.take()?;
        match f(&mut conn) {
            Ok(v) => {
                self.give_back(conn);
                Ok(v)
            }
            Err(e) if errors::is_lost(&e) && doing == Doing::Read => {
                drop(conn);
                self.forget_idle();
                let mut conn = self.open()?;
                let r = f(&mut conn);
                self.finish(conn, doing, r)
            }
            Err(e) => self.finish(conn, doing, Err(e)),
        }
    }

    /// Keeps the connection if it is still in step, and maps the error.
    pub(crate) fn finish<T>(&self, conn: Connection, doing: Doing, r: RedisResult<T>) -> Result<T> {
        match r {
            Ok(v) => {
                self.give_back(conn);
                Ok(v)
            }
            Err(e) => {
                if errors::connection_usable(&e) {
                    self.give_back(conn);
                } else {
                    drop(conn);
                    if errors::is_lost(&e) {
                        self.forget_idle();
                    }
                }
                Err(errors::from_redis(&self.endpoint, doing, &e).into())
            }
        }
    }

    /// An *I/O* error on this server.
    pub(crate) fn io_error(&self, kind: io::ErrorKind, msg: String) -> crate::Error {
        errors::io_error(&self.endpoint, kind, msg).into()
    }
}
