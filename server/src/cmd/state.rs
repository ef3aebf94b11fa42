//! libstate's own commands, under the `STATE.` prefix: what the libstate client
//! (crate `state-client`) needs and Redis has no command for.
//!
//! - `STATE.RANGE min max [REV] [LIMIT n]`: the entries of the client's bucket
//!   within a key range, in key order (descending with `REV`), as a flat array
//!   `key, value, key, value, ...`. The bounds are written as ZRANGEBYLEX writes
//!   them: `[key` (inclusive), `(key` (exclusive), `-` (no lower bound), `+` (no
//!   upper bound). One command serves every step of an ordered cursor (first,
//!   last, next, prev, seek, next_n, prev_n) and range iteration, with the
//!   position kept by the client: nothing is held on the server between calls.
//!
//! - `STATE.BATCH op [op ...]`: writes of several keys, each with its own expiry,
//!   as one core transaction that applies whole or not at all. MULTI/EXEC is not
//!   enough for that: as in Redis, a queued command that fails when it runs (a
//!   value over the size limit) leaves the others applied. A failing op fails
//!   the whole command, and inside MULTI the whole EXEC, with nothing written.
//!   Ops: `SET key value`, `SETKEEP key value` (KEEPTTL), `SETPX key value ms`,
//!   `SETPXAT key value unix-ms`, `DEL key`, `PEXPIREAT key unix-ms` (a live key's
//!   deadline), `PERSIST key`.

use std::ops::{Bound, ControlFlow};

use state_core::{Error, Expiry, Txn};

use super::args::{key_arg, parse_i64, Args, Fail, Res, NOT_INTEGER, SYNTAX};
use super::{bucket, store_error, After};
use crate::resp::Out;
use crate::session::Session;
use crate::Shared;

/// One bound of `STATE.RANGE` in ZRANGEBYLEX's notation, or the error reply.
fn bound<'a>(arg: &'a [u8], unbounded: &[u8]) -> Result<Bound<&'a str>, String> {
    const BAD: &str =
        "ERR min or max not valid string range item: use [key, (key, - (lowest) or + (highest)";
    if arg == unbounded {
        return Ok(Bound::Unbounded);
    }
    match arg.split_first() {
        Some((b'[', key)) => key_arg(key).map(Bound::Included),
        Some((b'(', key)) => key_arg(key).map(Bound::Excluded),
        _ => Err(BAD.to_string()),
    }
}

/// Whether no key can lie within the bounds (min above max), which an engine's
/// range scan need not accept.
fn is_empty(lower: Bound<&str>, upper: Bound<&str>) -> bool {
    use Bound::{Excluded, Included};
    match (lower, upper) {
        (Included(l), Included(u)) => l > u,
        (Included(l) | Excluded(l), Excluded(u)) | (Excluded(l), Included(u)) => l >= u,
        _ => false,
    }
}

/// STATE.RANGE min max [REV] [LIMIT n]: the client's entries within the range,
/// in key order (descending with REV), at most n of them (all without LIMIT).
pub(super) fn range(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    let (Some(min), Some(max)) = (a.next(), a.next()) else {
        out.error(&super::args::arity_message(a.name()));
        return After::Continue;
    };
    let (lower, upper) = match (bound(min, b"-"), bound(max, b"+")) {
        (Ok(l), Ok(u)) => (l, u),
        (Err(e), _) | (_, Err(e)) => {
            out.error(&e);
            return After::Continue;
        }
    };
    let mut reverse = false;
    let mut limit = usize::MAX;
    while let Some(opt) = a.next() {
        if opt.eq_ignore_ascii_case(b"rev") {
            reverse = true;
        } else if opt.eq_ignore_ascii_case(b"limit") {
            match a.next().map(parse_i64) {
                Some(Some(n)) if n >= 0 => limit = usize::try_from(n).unwrap_or(usize::MAX),
                Some(Some(_)) => {
                    out.error("ERR LIMIT must not be negative");
                    return After::Continue;
                }
                Some(None) => {
                    out.error(NOT_INTEGER);
                    return After::Continue;
                }
                None => {
                    out.error(SYNTAX);
                    return After::Continue;
                }
            }
        } else {
            out.error(SYNTAX);
            return After::Continue;
        }
    }
    let b = match bucket(shared, sess) {
        Ok(b) => b.clone(),
        Err(e) => {
            store_error(shared, sess, &e, out);
            return After::Continue;
        }
    };
    // The entries go to a scratch buffer as they are lent (the array's length is
    // known only at the end), under the connection's output limit: past it the
    // scan stops and the reply is refused whole.
    let mut items = Out::new(out.resp3);
    items.set_limit(out.room());
    let mut n = 0usize;
    let scanned = if limit == 0 || is_empty(lower, upper) {
        Ok(())
    } else {
        b.scan((lower, upper), reverse, |k, v| {
            items.bulk(k.as_bytes());
            items.bulk(v);
            n += 1;
            if n >= limit || items.overflowed() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
    };
    if let Err(e) = scanned {
        store_error(shared, sess, &e.into(), out);
        return After::Continue;
    }
    if items.overflowed() {
        out.refuse();
        return After::Continue;
    }
    out.array(2 * n);
    out.buf.extend_from_slice(&items.buf);
    After::Continue
}

/// A failure of STATE.BATCH: always a store-level error, so that it abandons the
/// transaction (and, inside MULTI, the EXEC) rather than leaving earlier ops applied.
fn abort(msg: impl Into<String>) -> Fail {
    Fail::Store(Error::InvalidArgument(msg.into()))
}

/// STATE.BATCH op [op ...]: every op applied in one transaction, or none.
pub(super) fn batch(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let key = |a: &mut Args<'_>| -> Result<String, Fail> {
        let k = a
            .next()
            .ok_or_else(|| abort("STATE.BATCH: an op lacks its key"))?;
        match key_arg(k) {
            Ok(k) => Ok(k.to_string()),
            Err(msg) => Err(abort(msg.trim_start_matches("ERR ").to_string())),
        }
    };
    let value = |a: &mut Args<'_>| -> Result<Vec<u8>, Fail> {
        a.next()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| abort("STATE.BATCH: an op lacks its value"))
    };
    let int = |a: &mut Args<'_>, what: &str| -> Result<i64, Fail> {
        a.next()
            .and_then(parse_i64)
            .ok_or_else(|| abort(format!("STATE.BATCH: {what} is not an integer")))
    };
    while let Some(op) = a.next() {
        let is = |name: &[u8]| op.eq_ignore_ascii_case(name);
        let r = if is(b"set") || is(b"setkeep") {
            let (k, v) = (key(a)?, value(a)?);
            let e = if is(b"set") {
                Expiry::Never
            } else {
                Expiry::Keep
            };
            tx.put(&k, v, e)
        } else if is(b"setpx") {
            let (k, v) = (key(a)?, value(a)?);
            let ms = int(a, "a SETPX time")?;
            if ms <= 0 {
                return Err(abort("STATE.BATCH: a SETPX time must be at least 1 ms"));
            }
            let at = tx.now_ms().saturating_add(ms.unsigned_abs());
            tx.put(&k, v, Expiry::At(at))
        } else if is(b"setpxat") {
            let (k, v) = (key(a)?, value(a)?);
            let at = int(a, "a SETPXAT time")?;
            tx.put(&k, v, Expiry::At(u64::try_from(at.max(0)).unwrap_or(0)))
        } else if is(b"del") {
            let k = key(a)?;
            tx.delete(&k).map(drop)
        } else if is(b"pexpireat") {
            let k = key(a)?;
            let at = int(a, "a PEXPIREAT time")?;
            tx.set_expiry(&k, Some(u64::try_from(at.max(0)).unwrap_or(0)))
                .map(drop)
        } else if is(b"persist") {
            let k = key(a)?;
            tx.set_expiry(&k, None).map(drop)
        } else {
            return Err(abort(format!(
                "STATE.BATCH: unknown op {:?} (SET, SETKEEP, SETPX, SETPXAT, DEL, PEXPIREAT, PERSIST)",
                String::from_utf8_lossy(op)
            )));
        };
        // Every error, an invalid value too, abandons the whole batch.
        r.map_err(Fail::Store)?;
    }
    out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_zrangebylex_items() {
        assert_eq!(bound(b"-", b"-"), Ok(Bound::Unbounded));
        assert_eq!(bound(b"+", b"+"), Ok(Bound::Unbounded));
        assert_eq!(bound(b"[a/b", b"-"), Ok(Bound::Included("a/b")));
        assert_eq!(bound(b"(a", b"+"), Ok(Bound::Excluded("a")));
        // `+` is no lower bound, a bare key is no item, an empty key is no key.
        for bad in [&b"+"[..], b"a", b"[", b"(", b""] {
            assert!(bound(bad, b"-").is_err(), "{bad:?}");
        }
        assert!(bound(b"[\xff", b"-")
            .unwrap_err()
            .starts_with("ERR invalid key"));
    }

    #[test]
    fn a_range_whose_min_is_above_its_max_is_empty() {
        use Bound::{Excluded as E, Included as I, Unbounded as U};
        assert!(is_empty(I("b"), I("a")));
        assert!(!is_empty(I("a"), I("a")));
        assert!(is_empty(I("a"), E("a")));
        assert!(is_empty(E("a"), I("a")));
        assert!(is_empty(E("a"), E("a")));
        assert!(!is_empty(E("a"), E("b")));
        assert!(!is_empty(U, I("a")) && !is_empty(I("z"), U));
    }
}
