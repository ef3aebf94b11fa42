//! Counter commands: INCR, INCRBY, DECR, DECRBY (a value that is a Redis integer,
//! read and written in one transaction, one [`Bucket::update`] outside MULTI, or
//! one key of a pipelined run's [`Bucket::update_many`], `super::batch`) and
//! INCRBYFLOAT.

use std::io::Write;

use state_core::{Bucket, Error, Expiry, Txn, Update};
use state_service::StateService;

use super::args::{parse_i64, Args, Fail, Res, NOT_INTEGER};
use super::{events, update_fast};
use crate::resp::Out;

/// Redis's reply for a counter that would leave the 64-bit range.
const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// INCR key, DECR key, INCRBY key n, DECRBY key n (inside MULTI, or for a client
/// with a quota): one transaction.
pub(super) fn counter(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let (k, by) = counter_args(a)?;
    add(tx, k, out, by)
}

/// The key and the amount to add of the counter command `a` (INCR, DECR, INCRBY,
/// DECRBY, by [`Args::name`]): read in the command's order, with its error
/// replies (a bad key first, then a bad or unnegatable amount).
pub(super) fn counter_args<'a>(a: &mut Args<'a>) -> Result<(&'a str, i64), Fail> {
    let k = a.key()?;
    let by = match a.name() {
        "incr" => 1,
        "decr" => -1,
        "incrby" => a.int()?,
        "decrby" => negated(a.int()?)?,
        other => {
            return Err(Fail::Reply(
                format!("ERR {other} is no counter command").into(),
            ))
        }
    };
    Ok((k, by))
}

/// DECRBY's amount as the amount added.
fn negated(by: i64) -> Result<i64, Fail> {
    by.checked_neg()
        .ok_or(Fail::Reply("ERR decrement would overflow".into()))
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
    let new = old.checked_add(by).ok_or(Fail::Reply(OVERFLOW.into()))?;
    events::put(tx, k, new.to_string().into_bytes(), exp, "incrby")?;
    out.int(new);
    Ok(())
}

/// INCR, DECR, INCRBY and DECRBY outside MULTI: one [`Bucket::update`] (see
/// [`update_fast`]).
pub(super) fn counter_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| {
        let (k, by) = counter_args(&mut a)?;
        let new = bucket.update(k, |u| Ok(add_update(u, by)))??;
        out.int(new);
        Ok(())
    })
}

/// [`add`] as the step of one [`Bucket::update`] (or of one key of a
/// [`Bucket::update_many`]): the counter is parsed from the lent value and the new
/// one written into the update's reused buffer. Returns the new count, or the
/// error reply (a value that is not an integer, an overflow), having written
/// nothing.
pub(super) fn add_update(u: &mut Update<'_>, by: i64) -> Result<i64, &'static str> {
    let (old, exp) = match u.value() {
        Some(v) => match parse_i64(v) {
            Some(n) => (n, Expiry::Keep),
            None => return Err(NOT_INTEGER),
        },
        None => (0, Expiry::Never),
    };
    let Some(new) = old.checked_add(by) else {
        return Err(OVERFLOW);
    };
    events::label_put(u, "incrby");
    // Writing into a Vec cannot fail.
    u.put_with(exp, |buf| write!(buf, "{new}").ok());
    Ok(new)
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
    events::put(tx, k, new.clone().into_bytes(), exp, "incrbyfloat")?;
    out.bulk(new.as_bytes());
    Ok(())
}
