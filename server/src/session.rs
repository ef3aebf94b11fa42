//! A Redis-protocol connection's session: the state its commands read and change
//! (who it acts as, RESP3, MULTI's queue, WATCHed keys, subscriptions, CLIENT
//! REPLY's mode, its counts). The connection loop (conn.rs) owns one and hands it
//! to each request ([`crate::cmd::request_found`]).

use state_core::Bucket;

use crate::metrics::Local;
use crate::pubsub::Subscriptions;

/// A connection's state.
pub(crate) struct Session {
    /// The connection's id (CLIENT ID, logs).
    pub(crate) id: u64,
    /// The peer's address (`unix` on the Unix socket).
    pub(crate) peer: String,
    /// The client this connection acts as, once authenticated (or by peer
    /// credentials on the Unix socket).
    pub(crate) client: Option<String>,
    /// The client's bucket, resolved once.
    pub(crate) bucket: Option<Bucket>,
    /// The name CLIENT SETNAME gave.
    pub(crate) name: Option<String>,
    /// RESP3 (after `HELLO 3`).
    pub(crate) resp3: bool,
    /// Queued commands after MULTI, and whether one was refused while queueing.
    pub(crate) multi: Option<(Vec<Vec<Vec<u8>>>, bool)>,
    /// Bytes of the queued commands' arguments (counted against
    /// `max_query_bytes`).
    pub(crate) multi_bytes: usize,
    /// The peer's Unix user (on the Unix socket).
    pub(crate) peer_uid: Option<u32>,
    /// The listener: `unix`, `tcp` (or `fuzz`).
    pub(crate) protocol: &'static str,
    /// This connection's counts, flushed to the shared metrics after each batch.
    pub(crate) local: Local,
    /// Keyspace-notification subscriptions (SUBSCRIBE, PSUBSCRIBE).
    pub(crate) subs: Subscriptions,
    /// WATCHed keys: the client they belong to, and the core's key watch of
    /// each WATCH command.
    pub(crate) watched: Option<(String, Vec<Watched>)>,
    /// CLIENT REPLY: replies are sent (`On`), not sent (`Off`), or not sent for
    /// the next command (`Skip`). Pub/sub confirmations and messages always are.
    pub(crate) reply: Reply,
    /// CLIENT TRACKING's state (none: off).
    pub(crate) tracking: Option<crate::tracking::Tracking>,
    /// A `state load` this connection is sending the input of (LIBSTATE.LOAD).
    pub(crate) load: Option<crate::config::LoadJob>,
}

/// The keys of one WATCH (see [`state_core::Bucket::watch_keys`]).
pub(crate) type Watched = state_core::KeyWatch;

/// CLIENT REPLY's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    On,
    Off,
    /// No reply for CLIENT REPLY SKIP itself nor for the command after it.
    Skip,
}

impl Session {
    /// A new connection's session; `local` counts its commands
    /// ([`crate::metrics::Metrics::local`]).
    pub(crate) fn new(
        id: u64,
        peer: String,
        client: Option<String>,
        protocol: &'static str,
        local: Local,
    ) -> Session {
        Session {
            id,
            peer,
            client,
            bucket: None,
            name: None,
            resp3: false,
            multi: None,
            multi_bytes: 0,
            watched: None,
            reply: Reply::On,
            peer_uid: None,
            protocol,
            local,
            subs: Subscriptions::default(),
            load: None,
            tracking: None,
        }
    }
}
