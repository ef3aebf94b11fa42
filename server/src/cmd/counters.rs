//! Counter commands: INCR, INCRBY, DECR, DECRBY (a value that is a Redis integer,
//! read and written in one transaction) and INCRBYFLOAT.

use state_core::{Expiry, Txn};

use super::args::{parse_i64, Args, Fail, Res, NOT_INTEGER};
use crate::resp::Out;

/// INCR key
pub(super) fn incr(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    add(tx, a.key()?, out, 1)
}

/// DECR key
pub(super) fn decr(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    add(tx, a.key()?, out, -1)
}

/// INCRBY key n
pub(super) fn incrby(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let by = a.int()?;
    add(tx, k, out, by)
}

/// DECRBY key n
pub(super) fn decrby(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let by = a
        .int()?
        .checked_neg()
        .ok_or(Fail::Reply("ERR decrement would overflow".into()))?;
    add(tx, k, out, by)
}

/// Adds `by` to the counter at `k` (0 if missing), keeping its expiry.
fn add(tx: &mut Txn<'_>, k: &str, out: &mut Out, by: i64) -> Res {
    let (old, exp) = match tx.get(k)? {
        Some(s) => (
            parse_i64(&s.value).ok_or(Fail::Reply(NOT_INTEGER.into()))?,
            Expiry::Keep,
        ),
        None => (0, Expiry::Never),
    };
    let new = old.checked_add(by).ok_or(Fail::Reply(
        "ERR increment or decrement would overflow".into(),
    ))?;
    tx.put(k, new.to_string().into_bytes(), exp)?;
    out.int(new);
    Ok(())
}

/// INCRBYFLOAT key increment: Redis's long double arithmetic and text (see
/// [`crate::strops::incrbyfloat`]), keeping the key's expiry.
pub(super) fn incrbyfloat(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let incr = a.bytes()?;
    let (old, exp) = match tx.get(k)? {
        Some(s) => (Some(s.value.clone()), Expiry::Keep),
        None => (None, Expiry::Never),
    };
    let new = crate::strops::incrbyfloat(old.as_deref(), incr).map_err(|e| match e {
        crate::strops::FloatError::NotFloat => "ERR value is not a valid float",
        crate::strops::FloatError::NotFinite => "ERR increment would produce NaN or Infinity",
    })?;
    tx.put(k, new.clone().into_bytes(), exp)?;
    out.bulk(new.as_bytes());
    Ok(())
}
