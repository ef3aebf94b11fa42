//! Expiry commands: EXPIRE and its variants, TTL and its variants, PERSIST; and
//! the deadline arithmetic SET, SETEX and GETEX share.

use state_core::{Bucket, Error, Expiry, Ttl, Txn};
use state_service::StateService;

use super::args::{key_arg, Args, Fail, Res};
use super::events;
use crate::resp::Out;

/// The transaction's clock, in ms since the epoch.
fn now(tx: &Txn<'_>) -> i64 {
    i64::try_from(tx.now_ms()).unwrap_or(i64::MAX)
}

/// The unit (ms) and absoluteness of an `EX`/`PX`/`EXAT`/`PXAT` option (any case).
pub(super) fn ttl_option(opt: &[u8]) -> Option<(i64, bool)> {
    [
        (&b"ex"[..], 1000, false),
        (b"px", 1, false),
        (b"exat", 1000, true),
        (b"pxat", 1, true),
    ]
    .into_iter()
    .find(|(name, _, _)| opt.eq_ignore_ascii_case(name))
    .map(|(_, unit, abs)| (unit, abs))
}

/// The absolute deadline (ms) of an expire-style argument `n` in `unit_ms`.
pub(super) fn deadline(
    tx: &Txn<'_>,
    n: i64,
    unit_ms: i64,
    absolute: bool,
    cmd: &str,
) -> Result<i64, Fail> {
    let bad = || Fail::Reply(format!("ERR invalid expire time in '{cmd}' command").into());
    let ms = n.checked_mul(unit_ms).ok_or_else(bad)?;
    if absolute {
        Ok(ms)
    } else {
        ms.checked_add(now(tx)).ok_or_else(bad)
    }
}

/// The expiry of a deadline (a past one expires at once).
pub(super) fn expiry_at(d: i64) -> Expiry {
    Expiry::At(u64::try_from(d.max(0)).unwrap_or(0))
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key n [NX|XX|GT|LT]
pub(super) fn expire(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let name = a.name();
    let k = a.key()?;
    let n = a.int()?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in a {
        let is = |name: &[u8]| opt.eq_ignore_ascii_case(name);
        if is(b"nx") {
            nx = true;
        } else if is(b"xx") {
            xx = true;
        } else if is(b"gt") {
            gt = true;
        } else if is(b"lt") {
            lt = true;
        } else {
            return Err(format!("ERR Unsupported option {}", String::from_utf8_lossy(opt)).into());
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let unit = if name.starts_with('p') { 1 } else { 1000 };
    let when = deadline(tx, n, unit, name.ends_with("at"), name)?;
    let Some(current) = tx.get(k)?.map(|s| s.expires_at_ms) else {
        out.int(0);
        return Ok(());
    };
    let current = current.map(|d| i64::try_from(d).unwrap_or(i64::MAX));
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        out.int(0);
        return Ok(());
    }
    if when <= now(tx) {
        events::delete(tx, k)?;
    } else {
        events::set_expiry(tx, k, Some(u64::try_from(when).unwrap_or(u64::MAX)))?;
    }
    out.int(1);
    Ok(())
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME key
pub(super) fn ttl(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let name = a.name();
    let k = a.key()?;
    let found = tx.get(k)?.is_some();
    out.lookup(found);
    let reply = match tx.get(k)? {
        None => -2,
        Some(s) => match s.expires_at_ms {
            None => -1,
            Some(d) => {
                let d = i64::try_from(d).unwrap_or(i64::MAX);
                let v = if name.ends_with("time") {
                    d
                } else {
                    (d - now(tx)).max(0)
                };
                if name.starts_with('p') {
                    v
                } else {
                    (v + 500) / 1000
                }
            }
        },
    };
    out.int(reply);
    Ok(())
}

/// TTL / PTTL outside MULTI: the bucket's direct read.
pub(super) fn ttl_fast(
    bucket: &Bucket,
    _: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    let k = match a.next().map(key_arg) {
        Some(Ok(k)) => k,
        Some(Err(msg)) => {
            out.error(&msg);
            return Ok(true);
        }
        None => return Ok(false),
    };
    let ttl = bucket.ttl(k)?;
    out.lookup(ttl != Ttl::Missing);
    let reply = match ttl {
        Ttl::Missing => -2,
        Ttl::NoExpiry => -1,
        Ttl::Expires(d) => {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            if a.name() == "pttl" {
                ms
            } else {
                (ms + 500) / 1000
            }
        }
    };
    out.int(reply);
    Ok(true)
}

/// PERSIST key
pub(super) fn persist(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let had = tx.get(k)?.is_some_and(|s| s.expires_at_ms.is_some());
    if had {
        events::set_expiry(tx, k, None)?;
    }
    out.int(i64::from(had));
    Ok(())
}
