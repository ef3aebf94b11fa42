//! # state-client: the libstate bucket API over `state serve`
//!
//! An embedded program opens a store and takes a bucket; a program sharing a store
//! with others through `state serve` connects instead, and keeps the same calls:
//!
//! ```no_run
//! # fn main() -> Result<(), state_client::Error> {
//! // let b = store.bucket("user1")?;                                  // embedded
//! let b = state_client::connect("state+unix:///srv/state-data/state.sock")?; // remote
//! b.set("layout", br#"{"cols":3}"#)?;
//! assert_eq!(b.get("layout")?.as_deref(), Some(&br#"{"cols":3}"#[..]));
//! # Ok(()) }
//! ```
//!
//! [`connect`] returns a [`RemoteBucket`]: the bucket of the client the server
//! signed the connection in as (a client reaches no other bucket). Its methods are
//! the embedded `state_core::Bucket`'s that make sense remotely, with the same
//! argument rules, results and error kinds ([`Error`] is the service's: the core's
//! kinds plus *quota exceeded*), and the same shared types ([`Entry`],
//! [`Position`], [`Ttl`], [`Expiry`], [`Record`]).
//!
//! URLs:
//!
//! | URL | connects to | signs in as |
//! |---|---|---|
//! | `state+unix:///path/to/state.sock` | a Unix socket | the process's Unix user (peer credentials; or [`Options::token`]) |
//! | `state://[NAME:TOKEN@]host:port` | TCP | the client NAME with its token |
//! | `states://[NAME:TOKEN@]host:port` | TCP with TLS | as above; [`Options::ca_file`] names a CA the server's certificate chains to |
//!
//! [`connect_default`] (no URL) connects to the default store's socket, found by
//! the same rule as the `state` CLI's: `$STATE_STORE/state.sock`, else
//! `./state-data/state.sock` ([`state_service::default_socket`]).
//!
//! A lost connection is an *I/O* error naming the server. Reads are retried once on
//! a fresh connection, so a read after a server restart succeeds; a write is never
//! retried behind the caller's back (the server may have applied it before the
//! connection broke), and its error says the outcome is unknown. The next call
//! connects again. A [`RemoteBucket`] is `Clone + Send + Sync`: clones share one
//! pool of connections, and each call takes a connection of its own, so threads
//! never wait for one another's round trips.
//!
//! ## Client-side cache
//!
//! With [`Options::cache`] set, the handle keeps the values [`RemoteBucket::get`]
//! (and `get_with`, `get_json`) read, so a repeated read of an unchanged key costs
//! no round trip. A connection of the handle's own listens for the server's
//! invalidations (`CLIENT TRACKING ON BCAST` over RESP3: every change to the
//! client's bucket, by anyone, including the sweeper's expiries and FLUSHDB). A
//! reader may see:
//!
//! - never a value older than the handle's own last write to that key: every
//!   write method of the handle (and its clones) drops the keys it wrote before it
//!   returns (a [`RemoteBucket::transaction`] drops everything), whether it
//!   succeeded or failed;
//! - never a value older than an invalidation the handle has received: each is
//!   applied as it arrives, and a read in flight when it arrives is not kept;
//! - never a value past its time to live: a key's deadline is cached with it
//!   (measured from before the read was sent) and the entry is dropped then;
//! - but, for a change made through another connection (another process, or
//!   another handle of this one), the old value until its invalidation arrives:
//!   the server queues the invalidation before it acknowledges the write, and
//!   it reaches the handle's listener shortly after (typically tens of
//!   microseconds on the same machine). Code that needs another process's
//!   acknowledged write at once should read without the cache.
//!
//! When the listener's connection is lost (a server restart), or any connection
//! of the handle is found lost, everything is dropped; until the listener is
//! tracking again, reads go to the server and nothing is kept. Only `get`
//! (and what is built on it) uses the cache; the other reads always ask the
//! server. The cache holds at most [`CacheOptions::max_entries`] keys (missing
//! keys included) and [`CacheOptions::max_bytes`]; past either the oldest
//! entries go.
//!
//! What the server adds for this client (`STATE.RANGE` for ordered cursors and
//! ranges, `STATE.BATCH` for all-or-nothing batches with per-key TTLs) is
//! described in docs/service.md.

#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
#![forbid(unsafe_code)]

mod bucket;
mod cache;
mod conn;
mod cursor;
mod errors;
mod target;
mod txn;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use bucket::RemoteBucket;
pub use cache::CacheOptions;
pub use cursor::{RemoteCursor, RemoteIter};
pub use state_core::{Entry, Expiry, Position, Record, Ttl};
pub use state_service::{Error, ErrorKind, Result};
pub use target::Target;
pub use txn::RemoteTxn;
pub use watch::{RemoteEvent, RemoteWatcher};

/// How long a connection attempt, and a reply, may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many idle connections a bucket handle keeps by default.
pub const DEFAULT_MAX_IDLE: usize = 16;

/// Connection options for [`connect_with`]. Its `Debug` output leaves the token
/// out.
#[derive(Clone)]
pub struct Options {
    /// The longest a connection attempt, a request's sending or its reply may take
    /// ([`DEFAULT_TIMEOUT`]); past it the call fails with an *I/O* error.
    pub timeout: Duration,
    /// A PEM file of the CA certificate(s) a `states://` server's certificate must
    /// chain to, instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A token to sign in with when the URL carries none (on a Unix socket, to act
    /// as a token's client rather than the process's Unix user).
    pub token: Option<String>,
    /// The client name that goes with [`Options::token`] (without one the server
    /// finds the client by its token).
    pub name: Option<String>,
    /// How many idle connections the handle keeps for reuse ([`DEFAULT_MAX_IDLE`]).
    pub max_idle: usize,
    /// Keep the values this handle reads, within these bounds, until the server
    /// says they changed ([`RemoteBucket::get`] then answers repeated reads
    /// without a round trip). Off (`None`) by default. What a reader may see is
    /// in the crate's docs, "Client-side cache".
    pub cache: Option<CacheOptions>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("name", &self.name)
            .field("max_idle", &self.max_idle)
            .field("cache", &self.cache)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeout: DEFAULT_TIMEOUT,
            ca_file: None,
            token: None,
            name: None,
            max_idle: DEFAULT_MAX_IDLE,
            cache: None,
        }
    }
}

/// Connects to the server at `url` (see the crate's docs for the URL forms) and
/// returns the signed-in client's bucket.
///
/// The connection is made and checked (an ECHO, refused to a client that is not
/// signed in) before this returns, so a server
/// that is not there, or refuses the credentials, is reported here.
///
/// # Errors
/// *invalid argument* for a malformed URL or credentials the server refuses;
/// *I/O* when the server cannot be reached.
pub fn connect(url: &str) -> Result<RemoteBucket> {
    connect_with(Some(url), Options::default())
}

/// [`connect`] to the default store's socket (`$STATE_STORE/state.sock`, else
/// `./state-data/state.sock`), as the process's Unix user.
///
/// # Errors
/// As [`connect`].
pub fn connect_default() -> Result<RemoteBucket> {
    connect_with(None, Options::default())
}

/// [`connect`] with options; `url` `None` is the default store's socket.
///
/// # Errors
/// As [`connect`].
pub fn connect_with(url: Option<&str>, options: Options) -> Result<RemoteBucket> {
    let target = match url {
        Some(u) => Target::parse(u)?,
        None => Target::default_socket(),
    };
    RemoteBucket::open(target, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_never_show_the_token() {
        let o = Options {
            token: Some("s3cret".into()),
            ..Options::default()
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }
}
