//! The keyspace events a command's writes announce: each write a data command
//! makes inside its transaction (or its single-key update, [`Update::label`]) is
//! labelled ([`Txn::label`]) with the Redis event names Redis 7.0 sends for it, in
//! Redis's order, and [`crate::pubsub`] sends exactly those. (`new` comes first for a key the write creates, as Redis's
//! `dbAdd` sends it.)

use state_core::{Error, Expiry, Txn, Update};

/// `new`: a key was created.
pub(super) const NEW: &str = "new";
/// `set`: SET and its variants, GETSET, MSET, BITOP's destination.
pub(super) const SET: &str = "set";
/// `del`: DEL, UNLINK, GETDEL, an expiry set in the past, an empty BITOP result.
pub(super) const DEL: &str = "del";
/// `expire`: a deadline set (EXPIRE and its variants, SET EX, GETEX EX).
pub(super) const EXPIRE: &str = "expire";
/// `persist`: a deadline removed.
pub(super) const PERSIST: &str = "persist";

/// Writes `value` to `k` as a command whose event is `event`: labels `new` first
/// if the key did not exist.
///
/// # Errors
/// As [`Txn::put`].
pub(super) fn put(
    tx: &mut Txn<'_>,
    k: &str,
    value: Vec<u8>,
    expiry: Expiry,
    event: &'static str,
) -> Result<(), Error> {
    let new = !tx.contains(k)?;
    tx.put(k, value, expiry)?;
    if new {
        tx.label(k, NEW)?;
    }
    tx.label(k, event)
}

/// Labels the put an update makes as [`put`] labels a transaction's: `new` first
/// if the key has no live value, then `event`.
pub(super) fn label_put(u: &mut Update<'_>, event: &'static str) {
    if u.value().is_none() {
        u.label(NEW);
    }
    u.label(event);
}

/// Deletes `k` with a `del` event; returns whether it existed.
///
/// # Errors
/// As [`Txn::delete`].
pub(super) fn delete(tx: &mut Txn<'_>, k: &str) -> Result<bool, Error> {
    let existed = tx.delete(k)?;
    if existed {
        tx.label(k, DEL)?;
    }
    Ok(existed)
}

/// Sets or removes the deadline of live key `k` with an `expire` or `persist`
/// event (a deadline already passed deletes it: `del`). Returns whether the key
/// was live.
///
/// # Errors
/// As [`Txn::set_expiry`].
pub(super) fn set_expiry(tx: &mut Txn<'_>, k: &str, deadline: Option<u64>) -> Result<bool, Error> {
    let now = tx.now_ms();
    let live = tx.set_expiry(k, deadline)?;
    if live {
        let event = match deadline {
            Some(d) if d <= now => DEL,
            Some(_) => EXPIRE,
            None => PERSIST,
        };
        tx.label(k, event)?;
    }
    Ok(live)
}
