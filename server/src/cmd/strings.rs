//! String commands: GET, SET and its variants, MGET/MSET, STRLEN, APPEND.

use state_core::{Bucket, Error, ErrorKind, Expiry, Txn};
use state_service::StateService;

use super::args::{arity_message, key_arg, Args, Res, SYNTAX};
use super::events;
use super::expiry::{deadline, expiry_at, ttl_option};
use super::{error_reply, update_fast};
use crate::resp::Out;

/// GET key
pub(super) fn get(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let found = tx.get_with(a.key()?, |v| out.bulk(v))?.is_some();
    out.lookup(found);
    if !found {
        out.null();
    }
    Ok(())
}

/// GET outside MULTI: a lent read of the bucket.
pub(super) fn get_fast(
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
    let found = bucket.get_with(k, |v| out.bulk(v))?.is_some();
    out.lookup(found);
    if !found {
        out.null();
    }
    Ok(true)
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
pub(super) fn set(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let value = a.bytes()?;
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut exp: Option<i64> = None;
    while let Some(opt) = a.next() {
        let is = |name: &[u8]| opt.eq_ignore_ascii_case(name);
        if is(b"nx") && !xx {
            nx = true;
        } else if is(b"xx") && !nx {
            xx = true;
        } else if is(b"get") {
            get = true;
        } else if is(b"keepttl") && exp.is_none() {
            keepttl = true;
        } else if let Some((unit, abs)) =
            ttl_option(opt).filter(|_| exp.is_none() && !keepttl && a.peek().is_some())
        {
            let n = a.int()?;
            if n <= 0 {
                return Err("ERR invalid expire time in 'set' command".into());
            }
            exp = Some(deadline(tx, n, unit, abs, "set")?);
        } else {
            return Err(SYNTAX.into());
        }
    }
    let old = tx.get(k)?.map(|s| s.value.clone());
    if get {
        out.lookup(old.is_some());
    }
    let go = !(nx && old.is_some() || xx && old.is_none());
    if go {
        let e = match (exp, keepttl) {
            (Some(d), _) => expiry_at(d),
            (None, true) => Expiry::Keep,
            (None, false) => Expiry::Never,
        };
        events::put(tx, k, value.to_vec(), e, events::SET)?;
        if exp.is_some() {
            tx.label(k, events::EXPIRE)?;
        }
    }
    if get {
        match old {
            Some(v) => out.bulk(&v),
            None => out.null(),
        }
    } else if go {
        out.ok();
    } else {
        out.null();
    }
    Ok(())
}

/// A plain `SET key value` outside MULTI for a client without a quota: one direct
/// write.
pub(super) fn set_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    if a.remaining() != 2 || svc.has_quota(bucket.name()) {
        return Ok(false);
    }
    let (Some(k), Some(v)) = (a.next(), a.next()) else {
        return Ok(false);
    };
    match key_arg(k) {
        Ok(k) => match bucket.set(k, v) {
            Ok(()) => out.ok(),
            Err(e) if e.kind() == ErrorKind::InvalidArgument => error_reply(out, &e.into()),
            Err(e) => return Err(e),
        },
        Err(msg) => out.error(&msg),
    }
    Ok(true)
}

/// SETNX key value
pub(super) fn setnx(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let v = a.bytes()?;
    if tx.contains(k)? {
        out.int(0);
    } else {
        events::put(tx, k, v.to_vec(), Expiry::Never, events::SET)?;
        out.int(1);
    }
    Ok(())
}

/// SETNX outside MULTI: one [`Bucket::update`] (see [`update_fast`]).
pub(super) fn setnx_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| {
        let k = a.key()?;
        let v = a.bytes()?;
        let set = bucket.update(k, |u| {
            if u.value().is_some() {
                return Ok(false);
            }
            events::label_put(u, events::SET);
            u.put(v, Expiry::Never);
            Ok(true)
        })?;
        out.int(i64::from(set));
        Ok(())
    })
}

/// SETEX key seconds value
pub(super) fn setex(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    set_with_ttl(tx, a, out, 1000)
}

/// PSETEX key milliseconds value
pub(super) fn psetex(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    set_with_ttl(tx, a, out, 1)
}

fn set_with_ttl(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out, unit: i64) -> Res {
    let name = a.name();
    let k = a.key()?;
    let n = a.int()?;
    if n <= 0 {
        return Err(format!("ERR invalid expire time in '{name}' command").into());
    }
    let d = deadline(tx, n, unit, false, name)?;
    events::put(tx, k, a.bytes()?.to_vec(), expiry_at(d), events::SET)?;
    tx.label(k, events::EXPIRE)?;
    out.ok();
    Ok(())
}

/// GETDEL key
pub(super) fn getdel(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let old = tx.get(k)?.map(|s| s.value.clone());
    out.lookup(old.is_some());
    match old {
        Some(v) => {
            events::delete(tx, k)?;
            out.bulk(&v);
        }
        None => out.null(),
    }
    Ok(())
}

/// GETDEL outside MULTI: one [`Bucket::update`], the value replied as it is lent.
pub(super) fn getdel_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| {
        let k = a.key()?;
        let mark = out.buf.len();
        let found = bucket.update(k, |u| {
            // A shared engine may run this again: each try replies afresh.
            out.buf.truncate(mark);
            match u.value() {
                Some(v) => {
                    out.bulk(v);
                    u.delete();
                    u.label(events::DEL);
                    Ok(true)
                }
                None => {
                    out.null();
                    Ok(false)
                }
            }
        })?;
        out.lookup(found);
        Ok(())
    })
}

/// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
pub(super) fn getex(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let mut change: Option<Option<i64>> = None;
    while let Some(opt) = a.next() {
        if opt.eq_ignore_ascii_case(b"persist") && change.is_none() {
            change = Some(None);
        } else if let Some((unit, abs)) =
            ttl_option(opt).filter(|_| change.is_none() && a.peek().is_some())
        {
            let n = a.int()?;
            if n <= 0 {
                return Err("ERR invalid expire time in 'getex' command".into());
            }
            change = Some(Some(deadline(tx, n, unit, abs, "getex")?));
        } else {
            return Err(SYNTAX.into());
        }
    }
    let value = tx.get(k)?.map(|s| s.value.clone());
    out.lookup(value.is_some());
    let Some(value) = value else {
        out.null();
        return Ok(());
    };
    // Only a deadline removed is an event (and a write).
    let had_deadline = tx.get(k)?.is_some_and(|r| r.expires_at_ms.is_some());
    match change {
        None => {}
        Some(None) if had_deadline => {
            events::set_expiry(tx, k, None)?;
        }
        Some(None) => {}
        Some(Some(d)) => {
            events::set_expiry(tx, k, Some(u64::try_from(d.max(0)).unwrap_or(0)))?;
        }
    }
    out.bulk(&value);
    Ok(())
}

/// GETSET key value
pub(super) fn getset(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let v = a.bytes()?;
    let old = tx.get(k)?.map(|s| s.value.clone());
    out.lookup(old.is_some());
    events::put(tx, k, v.to_vec(), Expiry::Never, events::SET)?;
    match old {
        Some(v) => out.bulk(&v),
        None => out.null(),
    }
    Ok(())
}

/// GETSET outside MULTI: one [`Bucket::update`], the old value replied as it is
/// lent.
pub(super) fn getset_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| {
        let k = a.key()?;
        let v = a.bytes()?;
        let mark = out.buf.len();
        let found = bucket.update(k, |u| {
            out.buf.truncate(mark);
            match u.value() {
                Some(old) => out.bulk(old),
                None => out.null(),
            }
            events::label_put(u, events::SET);
            u.put(v, Expiry::Never);
            Ok(u.value().is_some())
        })?;
        out.lookup(found);
        Ok(())
    })
}

/// MGET key [key ...] (nil for a key that cannot exist, as Redis replies).
pub(super) fn mget(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    out.array(a.remaining());
    for k in a.map(key_arg) {
        if out.overflowed() {
            // The reply is refused whole: stop reading values for it.
            break;
        }
        match k {
            Ok(k) => {
                let found = tx.get_with(k, |v| out.bulk(v))?.is_some();
                out.lookup(found);
                if !found {
                    out.null();
                }
            }
            Err(_) => {
                out.lookup(false);
                out.null();
            }
        }
    }
    Ok(())
}

/// MGET outside MULTI: one batch lookup without the store's write lock; the reply
/// is built as the values are lent (and refused whole past the output limit).
pub(super) fn mget_fast(
    bucket: &Bucket,
    _: &StateService,
    a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    let n = a.remaining();
    let valid: Vec<(usize, &str)> = a
        .enumerate()
        .filter_map(|(i, k)| key_arg(k).ok().map(|k| (i, k)))
        .collect();
    let keys: Vec<&str> = valid.iter().map(|(_, k)| *k).collect();
    // Measure first (lent, nothing copied): a reply over the limit is refused
    // before a byte of it is built, and one that fits is built into a buffer of
    // its final size, without reallocations while the store is locked.
    let mut size = 16 * n;
    bucket.get_multiple_with(&keys, |_, v| size = size.saturating_add(v.len() + 16))?;
    if size > out.room() {
        out.refuse();
        return Ok(true);
    }
    out.buf.reserve(size);
    out.array(n);
    let mut next = 0;
    let mut hits = 0;
    bucket.get_multiple_with(&keys, |j, v| {
        let i = valid[j].0;
        while next < i {
            out.null();
            next += 1;
        }
        out.bulk(v);
        hits += 1;
        next = i + 1;
    })?;
    while next < n {
        out.null();
        next += 1;
    }
    out.lookups(hits, n as u64 - hits);
    Ok(true)
}

/// The key-value pairs of MSET/MSETNX.
fn pairs<'a>(a: &mut Args<'a>) -> Result<Vec<(&'a str, &'a [u8])>, super::Fail> {
    if !a.remaining().is_multiple_of(2) {
        return Err(arity_message(a.name()).into());
    }
    let mut pairs = Vec::with_capacity(a.remaining() / 2);
    while a.remaining() > 0 {
        pairs.push((a.key()?, a.bytes()?));
    }
    Ok(pairs)
}

/// MSET key value [key value ...]
pub(super) fn mset(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    for (k, v) in pairs(a)? {
        events::put(tx, k, v.to_vec(), Expiry::Never, events::SET)?;
    }
    out.ok();
    Ok(())
}

/// MSET outside MULTI for a client without a quota: one direct batch write.
pub(super) fn mset_fast(
    bucket: &Bucket,
    svc: &StateService,
    a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    if !a.remaining().is_multiple_of(2) || svc.has_quota(bucket.name()) {
        return Ok(false);
    }
    let pairs: Result<Vec<(&str, &[u8])>, String> = a
        .rest()
        .chunks(2)
        .map(|p| key_arg(p[0]).map(|k| (k, p[1])))
        .collect();
    match pairs {
        Ok(pairs) => match bucket.set_multiple(pairs) {
            Ok(()) => out.ok(),
            Err(e) if e.kind() == ErrorKind::InvalidArgument => error_reply(out, &e.into()),
            Err(e) => return Err(e),
        },
        Err(msg) => out.error(&msg),
    }
    Ok(true)
}

/// MSETNX key value [key value ...]: all or none, none if any key exists.
pub(super) fn msetnx(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let pairs = pairs(a)?;
    for (k, _) in &pairs {
        if tx.contains(k)? {
            out.int(0);
            return Ok(());
        }
    }
    for (k, v) in pairs {
        events::put(tx, k, v.to_vec(), Expiry::Never, events::SET)?;
    }
    out.int(1);
    Ok(())
}

/// STRLEN key
pub(super) fn strlen(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let n = tx.get(a.key()?)?.map(|s| s.value.len());
    out.lookup(n.is_some());
    let n = n.unwrap_or(0);
    out.int(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(())
}

/// APPEND key value
pub(super) fn append(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let tail = a.bytes()?;
    let (mut v, exp) = match tx.get(k)? {
        Some(s) => (s.value.clone(), Expiry::Keep),
        None => (Vec::new(), Expiry::Never),
    };
    v.extend_from_slice(tail);
    let len = v.len();
    events::put(tx, k, v, exp, "append")?;
    out.int(i64::try_from(len).unwrap_or(i64::MAX));
    Ok(())
}

/// APPEND outside MULTI: one [`Bucket::update`], the new value built from the lent
/// one in the update's buffer.
pub(super) fn append_fast(
    bucket: &Bucket,
    svc: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    update_fast(bucket, svc, out, |out| {
        let k = a.key()?;
        let tail = a.bytes()?;
        let len = bucket.update(k, |u| {
            events::label_put(u, "append");
            let (old, exp) = match u.value() {
                Some(v) => (v, Expiry::Keep),
                None => (&[][..], Expiry::Never),
            };
            Ok(u.put_with(exp, |buf| {
                buf.reserve_exact(old.len() + tail.len());
                buf.extend_from_slice(old);
                buf.extend_from_slice(tail);
                buf.len()
            }))
        })?;
        out.int(i64::try_from(len).unwrap_or(i64::MAX));
        Ok(())
    })
}
