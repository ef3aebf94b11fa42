//! The server's error replies and the connection's failures as libstate's error
//! kinds: one place, so every method reports the kinds the embedded API does.
//!
//! `state serve` replies to a failed command with `-ERR ` and the error's message
//! as the core and the service display it (an *invalid argument* without its
//! `invalid argument: ` prefix, as Redis words argument errors); the kind is read
//! back from those stable beginnings (`quota exceeded: `, `too large: `, ...). The
//! test below checks it for every kind of `state_core::ErrorKind::ALL`.

use std::io;
use std::path::PathBuf;

use redis::RedisError;
use state_core::Error as CoreError;

use crate::Error;

/// What a failed call was doing, for the wording of a lost connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doing {
    /// A read: safe to repeat.
    Read,
    /// A write: the server may have applied it.
    Write,
    /// Connecting.
    Connect,
}

/// An *I/O* error on `endpoint` (the URL without its token).
pub(crate) fn io_error(endpoint: &str, kind: io::ErrorKind, msg: String) -> CoreError {
    CoreError::Io {
        path: PathBuf::from(endpoint),
        source: io::Error::new(kind, msg),
    }
}

/// Whether `e` means the connection is gone (or never came up): an I/O failure
/// other than a timeout.
pub(crate) fn is_lost(e: &RedisError) -> bool {
    e.is_io_error() && !e.is_timeout()
}

/// Whether the connection that produced `e` can still be used: the server
/// replied (with an error), so the replies are still in step with the requests.
pub(crate) fn connection_usable(e: &RedisError) -> bool {
    // After `-ERR Protocol error: ...` (a request over the server's limits) the
    // server closes the connection.
    let closed_by_server = e.detail().is_some_and(|d| d.starts_with("Protocol error"));
    (e.code().is_some() && !closed_by_server)
        || matches!(
            e.kind(),
            redis::ErrorKind::TypeError | redis::ErrorKind::ExecAbortError
        )
}

/// A client-side failure of a call to `endpoint`, as libstate's error.
pub(crate) fn from_redis(endpoint: &str, doing: Doing, e: &RedisError) -> CoreOrQuota {
    if e.is_io_error() {
        let kind = io_kind(e);
        let what = if e.is_timeout() {
            "no reply from the server in time"
        } else if doing == Doing::Connect {
            "cannot connect to the server"
        } else {
            "the connection to the server was lost"
        };
        let outcome = match doing {
            Doing::Write => "; the write may or may not have been applied (it was not retried)",
            Doing::Read | Doing::Connect => "",
        };
        return CoreOrQuota::Core(io_error(endpoint, kind, format!("{what} ({e}){outcome}")));
    }
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return CoreOrQuota::Core(CoreError::InvalidArgument(format!(
            "the server at {endpoint} refused the client name or token (WRONGPASS)"
        )));
    }
    match e.code() {
        Some(code) => from_reply(endpoint, code, e.detail().unwrap_or_default()),
        None => CoreOrQuota::Core(CoreError::Internal(format!(
            "unexpected reply from the server at {endpoint}: {e}"
        ))),
    }
}

/// Either of the two shapes a reply's error takes.
pub(crate) enum CoreOrQuota {
    Core(CoreError),
    Quota(String),
}

impl From<CoreOrQuota> for Error {
    fn from(e: CoreOrQuota) -> Error {
        match e {
            CoreOrQuota::Core(c) => Error::Store(c),
            CoreOrQuota::Quota(why) => Error::QuotaExceeded(why),
        }
    }
}

fn io_kind(e: &RedisError) -> io::ErrorKind {
    if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else if e.is_connection_refusal() {
        io::ErrorKind::ConnectionRefused
    } else if e.is_connection_dropped() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::Other
    }
}

/// An error reply (`-CODE detail`) of the server at `endpoint`.
pub(crate) fn from_reply(endpoint: &str, code: &str, detail: &str) -> CoreOrQuota {
    use CoreOrQuota::{Core, Quota};
    let detail = detail.trim();
    match code {
        "ERR" => {}
        "NOAUTH" => {
            return Core(CoreError::InvalidArgument(format!(
                "the server at {endpoint} requires signing in: give a client's NAME:TOKEN (state://NAME:TOKEN@host:port), or allow this Unix user with `state client add unix:USER`"
            )))
        }
        "WRONGPASS" => {
            return Core(CoreError::InvalidArgument(format!(
                "the server at {endpoint} refused the client name or token (WRONGPASS)"
            )))
        }
        _ => return Core(CoreError::InvalidArgument(format!("{code} {detail}"))),
    }
    let after = |prefix: &str| detail.strip_prefix(prefix).map(str::to_string);
    if let Some(why) = after("quota exceeded: ") {
        return Quota(why);
    }
    if let Some(m) = after("too large: ") {
        return Core(CoreError::TooLarge(m));
    }
    if detail.starts_with("the reply would exceed the output limit")
        || detail.starts_with("Protocol error: ")
        || detail.starts_with("the MULTI queue would exceed")
    {
        return Core(CoreError::TooLarge(detail.to_string()));
    }
    if let Some(m) = after("conflict: ") {
        return Core(CoreError::Conflict(m));
    }
    if let Some(m) = after("internal error: ") {
        return Core(CoreError::Internal(m));
    }
    if detail == "the store is closed" {
        return Core(CoreError::Closed);
    }
    if let Some(rest) = after("I/O error on ") {
        // The path is the server's; keep the whole message with it.
        let (path, msg) = rest.split_once(": ").unwrap_or((&rest, ""));
        return Core(CoreError::Io {
            path: PathBuf::from(format!("{endpoint} (server: {path})")),
            source: io::Error::other(msg.to_string()),
        });
    }
    if let Some(rest) = after("store ") {
        if let Some((path, d)) = rest.split_once(" is corrupt: ") {
            return Core(CoreError::Corrupt {
                path: PathBuf::from(path),
                detail: d.to_string(),
            });
        }
        if let Some((path, _)) = rest.split_once(" is locked by another process") {
            return Core(CoreError::Locked {
                path: PathBuf::from(path),
            });
        }
    }
    Core(CoreError::InvalidArgument(
        detail
            .strip_prefix("invalid argument: ")
            .unwrap_or(detail)
            .to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use state_core::ErrorKind;

    /// What `state serve` sends for each kind (server/src/cmd/mod.rs,
    /// `error_reply`): `ERR` and the message, without the kind's prefix for an
    /// invalid argument.
    fn reply(e: &state_service::Error) -> String {
        match e.as_store() {
            Some(core) if e.is_invalid_argument() => core
                .to_string()
                .trim_start_matches("invalid argument: ")
                .to_string(),
            _ => e.to_string(),
        }
    }

    #[test]
    fn every_kind_the_server_replies_with_comes_back_as_that_kind() {
        for &kind in ErrorKind::ALL {
            let sent: state_service::Error = CoreError::example(kind, "/srv/s").into();
            let got: Error = from_reply("state://h:1", "ERR", &reply(&sent)).into();
            assert_eq!(got.kind(), sent.kind(), "{sent}");
        }
        let sent = state_service::Error::QuotaExceeded("client \"a\": 1 record".into());
        let got: Error = from_reply("state://h:1", "ERR", &reply(&sent)).into();
        assert_eq!(got.kind(), state_service::ErrorKind::QuotaExceeded);
        assert_eq!(got.to_string(), sent.to_string());
    }

    #[test]
    fn sign_in_refusals_are_invalid_arguments_that_say_what_to_do() {
        let e: Error = from_reply("state://h:1", "NOAUTH", "Authentication required.").into();
        assert!(e.is_invalid_argument());
        assert!(e.to_string().contains("NAME:TOKEN"), "{e}");
    }
}
