//! What a `state_bucket` and a `state_cursor` handle name: a bucket of an embedded
//! store (`state_bucket_open`) or the bucket of a client of `state serve`
//! (`state_connect`), and a cursor over either. Every bucket and cursor export calls
//! these methods, so each export is written once for both, and the remote side is
//! `state-client`'s (its errors are the service's kinds, mapped by the boundary as
//! the embedded ones are). A remote call runs with SIGPIPE blocked in its thread
//! ([`NoSigpipe`]), so a server gone away is `STATE_IO`, never a dead program.

use std::collections::BTreeMap;
use std::time::Duration;

use state_client::{RemoteBucket, RemoteCursor};
use state_core::{Bucket, Cursor, Entry, Ttl};

use crate::boundary::Fail;
use crate::sigpipe::NoSigpipe;

/// The value of a `state_bucket` handle.
pub(crate) enum AnyBucket {
    /// A bucket of a store this process opened.
    Local(Bucket),
    /// The signed-in client's bucket on a server.
    Remote(RemoteBucket),
}

/// The value of a `state_cursor` handle (behind the handle's mutex).
pub(crate) enum AnyCursor {
    /// A cursor of an embedded bucket.
    Local(Cursor),
    /// A cursor of a remote bucket: its position is kept here, each step is one
    /// request.
    Remote(RemoteCursor),
}

/// Calls the same method on either side, converting its error to a [`Fail`].
macro_rules! either {
    ($self:expr, $b:ident => $call:expr) => {
        match $self {
            AnyBucket::Local($b) => $call.map_err(Fail::from),
            AnyBucket::Remote($b) => {
                let _no_sigpipe = NoSigpipe::new();
                $call.map_err(Fail::from)
            }
        }
    };
}

impl AnyBucket {
    /// The value of `key` lent to `f` (the store's bytes embedded, the reply's
    /// remotely).
    pub(crate) fn get_with<T>(
        &self,
        key: &str,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, Fail> {
        either!(self, b => b.get_with(key, f))
    }

    pub(crate) fn set(&self, key: &str, value: &[u8]) -> Result<(), Fail> {
        either!(self, b => b.set(key, value))
    }

    pub(crate) fn set_with_ttl(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), Fail> {
        either!(self, b => b.set_with_ttl(key, value, ttl))
    }

    pub(crate) fn delete(&self, key: &str) -> Result<bool, Fail> {
        either!(self, b => b.delete(key))
    }

    pub(crate) fn get_multiple(&self, keys: &[&str]) -> Result<BTreeMap<String, Vec<u8>>, Fail> {
        either!(self, b => b.get_multiple(keys))
    }

    pub(crate) fn set_multiple(&self, items: &[(&str, &[u8])]) -> Result<(), Fail> {
        let items = items.iter().copied();
        either!(self, b => b.set_multiple(items))
    }

    pub(crate) fn set_multiple_with_ttl(
        &self,
        items: &[(&str, &[u8])],
        ttl: Duration,
    ) -> Result<(), Fail> {
        let items = items.iter().copied();
        either!(self, b => b.set_multiple_with_ttl(items, ttl))
    }

    pub(crate) fn expire(&self, key: &str, ttl: Duration) -> Result<bool, Fail> {
        either!(self, b => b.expire(key, ttl))
    }

    pub(crate) fn persist(&self, key: &str) -> Result<bool, Fail> {
        either!(self, b => b.persist(key))
    }

    pub(crate) fn ttl(&self, key: &str) -> Result<Ttl, Fail> {
        either!(self, b => b.ttl(key))
    }

    /// A cursor standing before the first key.
    pub(crate) fn cursor(&self) -> Result<AnyCursor, Fail> {
        Ok(match self {
            AnyBucket::Local(b) => AnyCursor::Local(b.cursor()?),
            AnyBucket::Remote(b) => AnyCursor::Remote(b.cursor()?),
        })
    }
}

/// As [`either!`], for a cursor.
macro_rules! step {
    ($self:expr, $c:ident => $call:expr) => {
        match $self {
            AnyCursor::Local($c) => $call.map_err(Fail::from),
            AnyCursor::Remote($c) => {
                let _no_sigpipe = NoSigpipe::new();
                $call.map_err(Fail::from)
            }
        }
    };
}

impl AnyCursor {
    pub(crate) fn first(&mut self) -> Result<Option<Entry>, Fail> {
        step!(self, c => c.first())
    }

    pub(crate) fn last(&mut self) -> Result<Option<Entry>, Fail> {
        step!(self, c => c.last())
    }

    pub(crate) fn next(&mut self) -> Result<Option<Entry>, Fail> {
        step!(self, c => c.next())
    }

    pub(crate) fn prev(&mut self) -> Result<Option<Entry>, Fail> {
        step!(self, c => c.prev())
    }

    pub(crate) fn seek(&mut self, key: &str) -> Result<Option<Entry>, Fail> {
        step!(self, c => c.seek(key))
    }

    pub(crate) fn next_n(&mut self, n: usize) -> Result<Vec<Entry>, Fail> {
        step!(self, c => c.next_n(n))
    }

    pub(crate) fn prev_n(&mut self, n: usize) -> Result<Vec<Entry>, Fail> {
        step!(self, c => c.prev_n(n))
    }
}
