//! Key-space commands: DEL/UNLINK, EXISTS, TYPE, KEYS, DBSIZE, FLUSHDB.

use std::ops::ControlFlow;

use state_core::{Bucket, Error, StateService, Txn};

use super::args::{key_arg, Args, Fail, Res, SYNTAX};
use crate::glob;
use crate::resp::Out;

/// DEL / UNLINK key [key ...] (a key that cannot exist is not there).
pub(super) fn del(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let mut n = 0;
    for k in a.filter_map(|k| key_arg(k).ok()) {
        if tx.delete(k)? {
            n += 1;
        }
    }
    out.int(n);
    Ok(())
}

/// EXISTS key [key ...]
pub(super) fn exists(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let mut n = 0;
    for k in a.filter_map(|k| key_arg(k).ok()) {
        if tx.contains(k)? {
            n += 1;
        }
    }
    out.int(n);
    Ok(())
}

/// TYPE key: every value is a string.
pub(super) fn type_(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let present = match key_arg(a.bytes()?) {
        Ok(k) => tx.contains(k)?,
        Err(_) => false,
    };
    out.simple(if present { "string" } else { "none" });
    Ok(())
}

/// KEYS pattern inside MULTI (the only way here): within the transaction.
pub(super) fn keys(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let pattern = glob::Pattern::new(a.bytes()?).map_err(|e| Fail::Reply(e.to_string().into()))?;
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = tx.keys(after.as_deref(), 1024)?;
        let Some(last) = batch.last().cloned() else {
            break;
        };
        found.extend(batch.into_iter().filter(|k| pattern.matches(k.as_bytes())));
        after = Some(last);
    }
    out.array(found.len());
    for k in found {
        out.bulk(k.as_bytes());
        if out.overflowed() {
            break;
        }
    }
    Ok(())
}

/// KEYS pattern outside MULTI: read in key order without the store's write lock
/// (the read lock is taken and released every few hundred keys), so writers never
/// wait for a KEYS over a large bucket; the pattern is compiled once.
pub(super) fn keys_fast(
    bucket: &Bucket,
    _: &StateService,
    mut a: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    let Some(pattern) = a.next() else {
        return Ok(false);
    };
    let pattern = match glob::Pattern::new(pattern) {
        Ok(p) => p,
        Err(e) => {
            out.error(&e.to_string());
            return Ok(true);
        }
    };
    let mut found: Vec<String> = Vec::new();
    let mut bytes = 0usize;
    let room = out.room();
    let mut over = false;
    bucket.scan(.., false, |k, _| {
        if pattern.matches(k.as_bytes()) {
            bytes += k.len() + 16;
            if bytes > room {
                over = true;
                return ControlFlow::Break(());
            }
            found.push(k.to_string());
        }
        ControlFlow::Continue(())
    })?;
    if over {
        out.refuse();
        return Ok(true);
    }
    out.array(found.len());
    for k in found {
        out.bulk(k.as_bytes());
    }
    Ok(true)
}

/// DBSIZE inside MULTI: counted within the transaction.
pub(super) fn dbsize(tx: &mut Txn<'_>, _: &mut Args<'_>, out: &mut Out) -> Res {
    let mut n = 0u64;
    let mut after: Option<String> = None;
    loop {
        let batch = tx.keys(after.as_deref(), 4096)?;
        let Some(last) = batch.last().cloned() else {
            break;
        };
        n += batch.len() as u64;
        after = Some(last);
    }
    out.int(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(())
}

/// DBSIZE outside MULTI: the bucket's count.
pub(super) fn dbsize_fast(
    bucket: &Bucket,
    _: &StateService,
    _: Args<'_>,
    out: &mut Out,
) -> Result<bool, Error> {
    out.int(i64::try_from(bucket.len()?).unwrap_or(i64::MAX));
    Ok(true)
}

/// FLUSHDB [ASYNC|SYNC]: deletes every key of the client's bucket.
pub(super) fn flushdb(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    match a.next() {
        None => {}
        Some(m) if m.eq_ignore_ascii_case(b"async") || m.eq_ignore_ascii_case(b"sync") => {}
        Some(_) => return Err(SYNTAX.into()),
    }
    if a.remaining() > 0 {
        return Err(SYNTAX.into());
    }
    tx.clear()?;
    out.ok();
    Ok(())
}
