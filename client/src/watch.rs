//! [`RemoteWatcher`]: the embedded `watch(prefix)` over the server's keyspace
//! notifications (`PSUBSCRIBE __keyspace@0__:PREFIX*` on a connection of its own).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::{cmd, Connection, Value};
use state_core::EventKind;

use crate::errors::{self, Doing};
use crate::Result;

/// The channel prefix of a key's notifications.
const KEYSPACE: &str = "__keyspace@0__:";

/// One change to a key under the watched prefix, as the server's keyspace
/// notification names it. Unlike the embedded [`state_core::Event`], it carries no
/// value (notifications carry none; read the key if you need it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEvent {
    /// The key that changed.
    pub key: String,
    /// What happened to it.
    pub kind: EventKind,
    /// For [`EventKind::Set`]: whether the key was created. Known only when the
    /// client's `notify-keyspace-events` includes `n` (Redis's new-key events,
    /// which the default leaves out); otherwise always `false`.
    pub new: bool,
}

/// The changes to the client's keys under a prefix, in commit order, from
/// [`crate::RemoteBucket::watch`]. It holds a connection of its own.
///
/// The server sends what the client's `notify-keyspace-events` setting lets
/// through (by default everything libstate sends); a watcher that falls 1024
/// events behind is disconnected by the server, which [`RemoteWatcher::recv`]
/// reports as an *I/O* error: watch again, and read the keys again for what was
/// missed.
pub struct RemoteWatcher {
    conn: Connection,
    endpoint: String,
    prefix: String,
    /// Keys whose `new` notification came and whose `set` has not yet.
    created: HashSet<String>,
    ended: bool,
}

impl std::fmt::Debug for RemoteWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWatcher")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// `prefix` as a glob that matches only itself (Redis's escapes).
fn escape_glob(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RemoteWatcher {
    /// Subscribes on `conn` (a fresh connection) to the changes under `prefix`.
    pub(crate) fn subscribe(mut conn: Connection, endpoint: &str, prefix: &str) -> Result<Self> {
        let pattern = format!("{KEYSPACE}{}*", escape_glob(prefix));
        let fail = |e: redis::RedisError| -> crate::Error {
            errors::from_redis(endpoint, Doing::Read, &e).into()
        };
        conn.send_packed_command(&cmd("PSUBSCRIBE").arg(&pattern).get_packed_command())
            .map_err(fail)?;
        // The confirmation: ["psubscribe", pattern, 1]; an error reply (NOAUTH)
        // comes back as an error.
        conn.recv_response().map_err(fail)?;
        conn.set_read_timeout(None).map_err(fail)?;
        Ok(RemoteWatcher {
            conn,
            endpoint: endpoint.to_string(),
            prefix: prefix.to_string(),
            created: HashSet::new(),
            ended: false,
        })
    }

    /// The watched prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The next change, waiting as long as it takes.
    ///
    /// # Errors
    /// *I/O* if the connection is lost (the watcher has then ended).
    pub fn recv(&mut self) -> Result<RemoteEvent> {
        loop {
            if let Got::Event(e) = self.read_one(None)? {
                return Ok(e);
            }
        }
    }

    /// The next change, or `None` if none came within `timeout`.
    ///
    /// # Errors
    /// As [`RemoteWatcher::recv`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<RemoteEvent>> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.read_one(Some(left))? {
                Got::Event(e) => return Ok(Some(e)),
                Got::TimedOut => return Ok(None),
                Got::Other => {}
            }
        }
    }

    fn read_one(&mut self, timeout: Option<Duration>) -> Result<Got> {
        if self.ended {
            return Err(errors::io_error(
                &self.endpoint,
                std::io::ErrorKind::NotConnected,
                "the watcher's connection was lost earlier; watch again".into(),
            )
            .into());
        }
        let fail = |e: &redis::RedisError| -> crate::Error {
            errors::from_redis(&self.endpoint, Doing::Read, e).into()
        };
        if let Err(e) = self.conn.set_read_timeout(timeout) {
            self.ended = true;
            return Err(fail(&e));
        }
        let v = match self.conn.recv_response() {
            Ok(v) => v,
            Err(e) if e.is_timeout() => return Ok(Got::TimedOut),
            Err(e) => {
                self.ended = true;
                return Err(fail(&e));
            }
        };
        let Value::Array(items) = v else {
            return Ok(Got::Other);
        };
        let text = |i: usize| match items.get(i) {
            Some(Value::BulkString(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        };
        if text(0) != Some("pmessage") {
            return Ok(Got::Other);
        }
        let (Some(key), Some(event)) = (text(2).and_then(|c| c.strip_prefix(KEYSPACE)), text(3))
        else {
            return Ok(Got::Other);
        };
        let kind = match event {
            "new" => {
                self.created.insert(key.to_string());
                return Ok(Got::Other);
            }
            "set" => EventKind::Set,
            "del" => EventKind::Delete,
            "expire" => EventKind::Expire,
            "persist" => EventKind::Persist,
            "expired" => EventKind::Expired,
            _ => return Ok(Got::Other),
        };
        let new = kind == EventKind::Set && self.created.remove(key);
        Ok(Got::Event(RemoteEvent {
            key: key.to_string(),
            kind,
            new,
        }))
    }
}

/// What one message was.
enum Got {
    Event(RemoteEvent),
    Other,
    TimedOut,
}

/// Blocks for each next change; ends after the connection is lost (the error is
/// the last item).
impl Iterator for RemoteWatcher {
    type Item = Result<RemoteEvent>;

    fn next(&mut self) -> Option<Result<RemoteEvent>> {
        if self.ended {
            return None;
        }
        Some(self.recv())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_only_itself() {
        assert_eq!(escape_glob("w/a*b?[c]\\"), "w/a\\*b\\?\\[c\\]\\\\");
        assert_eq!(escape_glob("plain/"), "plain/");
    }
}
