//! [`RemoteTxn`]: the embedded transaction's read-modify-write over the server, as
//! Redis's optimistic locking: every key read is `WATCH`ed first, the writes go as
//! one `STATE.BATCH` (all or nothing) inside `MULTI`/`EXEC`, and an `EXEC` the
//! server refuses because a watched key changed runs the closure again.

use std::collections::BTreeMap;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::{cmd, Connection, RedisError, Value};
use state_core::{limits, Error as CoreError, Expiry, Record};

use crate::conn::Pool;
use crate::errors::{self, Doing};
use crate::Result;

/// How many times a transaction runs before it gives up with *conflict* (as the
/// embedded store's optimistic transactions on a shared engine).
const MAX_ATTEMPTS: usize = 1000;

/// What a transaction knows of one key.
#[derive(Debug)]
struct KeyState {
    /// The live record as the transaction sees it (its own writes included).
    current: Option<Record>,
    /// Whether the transaction changed it.
    dirty: bool,
}

/// A transaction in progress on the remote bucket, handed to the closure of
/// [`crate::RemoteBucket::transaction`]. Its methods are the embedded
/// [`state_core::Txn`]'s, with the same results; reads see the transaction's own
/// writes, and each key is read from the server (and watched) at most once.
pub struct RemoteTxn<'c> {
    conn: &'c mut Connection,
    endpoint: &'c str,
    now: u64,
    keys: BTreeMap<String, KeyState>,
    watched: bool,
    /// The connection failed under a read: lost (`true`), or out of step.
    failed: Option<bool>,
}

impl std::fmt::Debug for RemoteTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteTxn")
            .field("endpoint", &self.endpoint)
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl<'c> RemoteTxn<'c> {
    /// The clock reading the transaction judges deadlines by (this process's
    /// clock, in unix milliseconds, taken when the attempt began; the server
    /// applies absolute deadlines by its own, on the same machine the same).
    pub fn now_ms(&self) -> u64 {
        self.now
    }

    /// Reads `key` from the server (watching it), once per transaction.
    fn state(&mut self, key: &str) -> state_core::Result<&mut KeyState> {
        limits::check_key(key)?;
        if !self.keys.contains_key(key) {
            let current = self.fetch(key)?;
            self.keys.insert(
                key.to_string(),
                KeyState {
                    current,
                    dirty: false,
                },
            );
        }
        self.keys
            .get_mut(key)
            .ok_or_else(|| CoreError::Internal("a transaction lost a key it read".into()))
    }

    fn fetch(&mut self, key: &str) -> state_core::Result<Option<Record>> {
        if self.failed.is_some() {
            return Err(errors::io_error(
                self.endpoint,
                io::ErrorKind::ConnectionReset,
                "the transaction's connection failed earlier".into(),
            ));
        }
        let r: std::result::Result<(Option<Vec<u8>>, i64), RedisError> = redis::pipe()
            .cmd("WATCH")
            .arg(key)
            .ignore()
            .cmd("GET")
            .arg(key)
            .cmd("PEXPIRETIME")
            .arg(key)
            .query(&mut *self.conn);
        self.watched = true;
        match r {
            Ok((None, _)) => Ok(None),
            Ok((Some(value), at)) => Ok(Some(Record {
                value,
                expires_at_ms: u64::try_from(at).ok(),
            })),
            Err(e) => {
                if !errors::connection_usable(&e) {
                    self.failed = Some(errors::is_lost(&e));
                }
                Err(match errors::from_redis(self.endpoint, Doing::Read, &e) {
                    errors::CoreOrQuota::Core(c) => c,
                    errors::CoreOrQuota::Quota(why) => CoreError::Internal(why),
                })
            }
        }
    }

    /// The live record of `key`, if any, including this transaction's own writes.
    ///
    /// # Errors
    /// *invalid argument* for a bad key; *I/O*.
    pub fn get(&mut self, key: &str) -> state_core::Result<Option<&Record>> {
        Ok(self.state(key)?.current.as_ref())
    }

    /// Lends the live value of `key` to `f`, and returns what `f` returns.
    ///
    /// # Errors
    /// As [`RemoteTxn::get`].
    pub fn get_with<T>(
        &mut self,
        key: &str,
        f: impl FnOnce(&[u8]) -> T,
    ) -> state_core::Result<Option<T>> {
        Ok(self.get(key)?.map(|r| f(&r.value)))
    }

    /// Whether `key` holds a live record.
    ///
    /// # Errors
    /// As [`RemoteTxn::get`].
    pub fn contains(&mut self, key: &str) -> state_core::Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Sets `key` to `value` with the given expiry (a deadline already passed makes
    /// it a delete). Only [`Expiry::Keep`] reads the key first.
    ///
    /// # Errors
    /// *invalid argument* for a bad key. A value over the store's maximum is
    /// refused when the transaction commits (nothing is written).
    pub fn put(&mut self, key: &str, value: Vec<u8>, expiry: Expiry) -> state_core::Result<()> {
        limits::check_key(key)?;
        let deadline = match expiry {
            Expiry::Never => None,
            Expiry::At(d) => Some(d),
            Expiry::Keep => self
                .state(key)?
                .current
                .as_ref()
                .and_then(|r| r.expires_at_ms),
        };
        let current = match deadline {
            Some(d) if d <= self.now => None,
            _ => Some(Record {
                value,
                expires_at_ms: deadline,
            }),
        };
        self.keys.insert(
            key.to_string(),
            KeyState {
                current,
                dirty: true,
            },
        );
        Ok(())
    }

    /// Removes `key`; returns whether it held a live record.
    ///
    /// # Errors
    /// As [`RemoteTxn::get`].
    pub fn delete(&mut self, key: &str) -> state_core::Result<bool> {
        let s = self.state(key)?;
        let existed = s.current.take().is_some();
        s.dirty |= existed;
        Ok(existed)
    }

    /// Sets the deadline of a live record (`None`: no expiry), keeping its value;
    /// a deadline already passed deletes it. Returns `false` if the key is missing.
    ///
    /// # Errors
    /// As [`RemoteTxn::get`].
    pub fn set_expiry(
        &mut self,
        key: &str,
        expires_at_ms: Option<u64>,
    ) -> state_core::Result<bool> {
        let now = self.now;
        let s = self.state(key)?;
        let Some(current) = s.current.as_mut() else {
            return Ok(false);
        };
        match expires_at_ms {
            Some(d) if d <= now => s.current = None,
            other => current.expires_at_ms = other,
        }
        s.dirty = true;
        Ok(true)
    }

    /// The `STATE.BATCH` that applies the transaction's changes, if any.
    fn batch(&self) -> Option<redis::Cmd> {
        let mut c = cmd("STATE.BATCH");
        let mut any = false;
        for (k, s) in self.keys.iter().filter(|(_, s)| s.dirty) {
            any = true;
            match &s.current {
                None => c.arg("DEL").arg(k),
                Some(Record {
                    value,
                    expires_at_ms: None,
                }) => c.arg("SET").arg(k).arg(value.as_slice()),
                Some(Record {
                    value,
                    expires_at_ms: Some(d),
                }) => c.arg("SETPXAT").arg(k).arg(value.as_slice()).arg(*d),
            };
        }
        any.then_some(c)
    }
}

/// How one attempt ended.
enum Attempt<T> {
    Done(T),
    /// A watched key changed: run again.
    Conflict,
    /// The connection was lost while the closure read: nothing was sent to
    /// commit, so the transaction may run again on a fresh connection.
    LostWhileReading(crate::Error),
}

/// Runs the transaction `f` on a connection of `pool` (see
/// [`crate::RemoteBucket::transaction`]).
pub(crate) fn run<T>(
    pool: &Pool,
    mut f: impl FnMut(&mut RemoteTxn<'_>) -> state_core::Result<T>,
) -> Result<T> {
    let mut conn = pool.take()?;
    let mut reconnected = false;
    for _ in 0..MAX_ATTEMPTS {
        match attempt(pool, &mut conn, &mut f) {
            Ok(Attempt::Done(v)) => {
                pool.give_back(conn);
                return Ok(v);
            }
            Ok(Attempt::Conflict) => continue,
            Ok(Attempt::LostWhileReading(e)) => {
                pool.forget_idle();
                if reconnected {
                    return Err(e);
                }
                reconnected = true;
                conn = pool.open()?;
            }
            // The connection is dropped unless the attempt left it clean.
            Err((e, clean)) => {
                if clean {
                    pool.give_back(conn);
                }
                return Err(e);
            }
        }
    }
    pool.give_back(conn);
    Err(CoreError::Conflict(format!(
        "a transaction at {} lost the race to other writers {MAX_ATTEMPTS} times in a row; nothing was written",
        pool.endpoint
    ))
    .into())
}

/// One run of `f` and its commit. The error side says whether the connection is
/// still clean (no WATCH or MULTI left on it, replies in step).
fn attempt<T>(
    pool: &Pool,
    conn: &mut Connection,
    f: &mut impl FnMut(&mut RemoteTxn<'_>) -> state_core::Result<T>,
) -> std::result::Result<Attempt<T>, (crate::Error, bool)> {
    let mut tx = RemoteTxn {
        conn,
        endpoint: &pool.endpoint,
        now: now_ms(),
        keys: BTreeMap::new(),
        watched: false,
        failed: None,
    };
    let out = f(&mut tx);
    match (tx.failed, out) {
        (Some(true), Err(e)) => Ok(Attempt::LostWhileReading(e.into())),
        (Some(_), Err(e)) => Err((e.into(), false)),
        // The closure went on after a failed read: never commit on that connection.
        (Some(_), Ok(_)) => Err((
            pool.io_error(
                io::ErrorKind::ConnectionReset,
                "the connection failed during the transaction; nothing was written".into(),
            ),
            false,
        )),
        (None, Err(e)) => {
            let clean = !tx.watched || cmd("UNWATCH").query::<()>(&mut *tx.conn).is_ok();
            Err((e.into(), clean))
        }
        (None, Ok(v)) => {
            let batch = tx.batch();
            if batch.is_none() && !tx.watched {
                return Ok(Attempt::Done(v));
            }
            // MULTI, the writes, EXEC in one round trip; for a read-only
            // transaction an empty MULTI/EXEC still checks that what it read
            // held together.
            let mut p = redis::pipe();
            p.cmd("MULTI").ignore();
            if let Some(b) = batch {
                p.add_command(b).ignore();
            }
            p.cmd("EXEC");
            match p.query::<(Value,)>(&mut *tx.conn) {
                Ok((Value::Nil,)) => Ok(Attempt::Conflict),
                Ok(_) => Ok(Attempt::Done(v)),
                Err(e) => {
                    let clean = errors::connection_usable(&e);
                    Err((
                        errors::from_redis(&pool.endpoint, Doing::Write, &e).into(),
                        clean,
                    ))
                }
            }
        }
    }
}
