//! Counter commands: INCR, INCRBY, DECR, DECRBY (a value that is a Redis integer,
//! read and written in one transaction) and INCRBYFLOAT.

use std::io::Write;

use state_core::{Bucket, Error, Expiry, Txn};
use state_service::StateService;

use super::args::{parse_i64, Args, Fail, Res, NOT_INTEGER};
use super::{events, update_fast};
use crate::resp::Out;

/// Redis's reply for a counter that would leave the 64-bit range.
const OVERFLOW: &str = "ERR increment or decrement would overflow";

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
    let by = negated(a.int()?)?;
    add(tx, k, out, by)
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

/// INCR outside MULTI: one [`Bucket::update`] (see [`update_fast`]).
pub(super) fn incr_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| add_in(bucket, a.key()?, out, 1))
}

/// DECR outside MULTI.
pub(super) fn decr_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| add_in(bucket, a.key()?, out, -1))
}

/// INCRBY outside MULTI.
pub(super) fn incrby_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| {
        let k = a.key()?;
        let by = a.int()?;
        add_in(bucket, k, out, by)
    })
}

/// DECRBY outside MULTI.
pub(super) fn decrby_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| {
        let k = a.key()?;
        let by = negated(a.int()?)?;
        add_in(bucket, k, out, by)
    })
}

/// [`add`] as one [`Bucket::update`]: the counter is parsed from the lent value
/// and the new one written into the update's reused buffer.
fn add_in(bucket: &Bucket, k: &str, out: &mut Out, by: i64) -> Res {
    let new = bucket.update(k, |u| {
        let (old, exp) = match u.value() {
            Some(v) => match parse_i64(v) {
                Some(n) => (n, Expiry::Keep),
                None => return Ok(Err(NOT_INTEGER)),
            },
            None => (0, Expiry::Never),
        };
        let Some(new) = old.checked_add(by) else {
            return Ok(Err(OVERFLOW));
        };
        events::label_put(u, "incrby");
        // Writing into a Vec cannot fail.
        u.put_with(exp, |buf| write!(buf, "{new}").ok());
        Ok(Ok(new))
    })??;
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
    events::put(tx, k, new.clone().into_bytes(), exp, "incrbyfloat")?;
    out.bulk(new.as_bytes());
    Ok(())
}
