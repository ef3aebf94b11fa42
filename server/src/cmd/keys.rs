//! Key-space commands: DEL/UNLINK, EXISTS, TYPE, KEYS, DBSIZE, FLUSHDB/FLUSHALL,
//! RENAME/RENAMENX, COPY, RANDOMKEY, TOUCH, OBJECT.

use std::ops::ControlFlow;

use state_core::{Bucket, Error, Expiry, Txn};
use state_service::StateService;

use super::args::{key_arg, parse_i64, Args, Fail, Res, SYNTAX};
use super::events;
use crate::glob;
use crate::resp::Out;

/// DEL / UNLINK key [key ...] (a key that cannot exist is not there).
pub(super) fn del(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let mut n = 0;
    for k in a.filter_map(|k| key_arg(k).ok()) {
        if events::delete(tx, k)? {
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
        let found = tx.contains(k)?;
        out.lookup(found);
        if found {
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
    out.lookup(present);
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

/// FLUSHDB / FLUSHALL [ASYNC|SYNC]: deletes every key of the client's bucket (its
/// one database).
pub(super) fn flushdb(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    match a.next() {
        None => {}
        Some(m) if m.eq_ignore_ascii_case(b"async") || m.eq_ignore_ascii_case(b"sync") => {}
        Some(_) => return Err(SYNTAX.into()),
    }
    if a.remaining() > 0 {
        return Err(SYNTAX.into());
    }
    // Redis sends no keyspace event for a flush (WATCH still sees it): watchers
    // that take labels (keyspace notifications, client tracking) are told of
    // one key only, labelled `flushdb`, which client tracking turns into one
    // null invalidation and keyspace notifications leave out. (A label per key
    // would queue one event per key for every subscriber.)
    let mut after: Option<String> = None;
    let mut first = true;
    loop {
        let keys = tx.keys(after.as_deref(), 1024)?;
        let Some(last) = keys.last().cloned() else {
            break;
        };
        for k in &keys {
            tx.delete(k)?;
            tx.label_none(k)?;
            if std::mem::take(&mut first) {
                tx.label(k, crate::tracking::FLUSH_LABEL)?;
            }
        }
        after = Some(last);
    }
    out.ok();
    Ok(())
}

/// RENAME / RENAMENX src dst: the value and its deadline move.
pub(super) fn rename(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let nx = a.name() == "renamenx";
    let src = key_arg(a.bytes()?).map_err(|_| Fail::Reply("ERR no such key".into()))?;
    let dst = a.key()?;
    let Some(rec) = tx.get(src)?.cloned() else {
        return Err("ERR no such key".into());
    };
    let done = |out: &mut Out, moved: bool| {
        if nx {
            out.int(i64::from(moved));
        } else {
            out.ok();
        }
    };
    if src == dst {
        done(out, false);
        return Ok(());
    }
    if nx && tx.contains(dst)? {
        done(out, false);
        return Ok(());
    }
    // Redis's order: the destination is created (`new`, even over an existing
    // key), then `rename_from` on the source and `rename_to` on the destination.
    let exp = rec.expires_at_ms.map_or(Expiry::Never, Expiry::At);
    tx.put(dst, rec.value, exp)?;
    tx.label(dst, events::NEW)?;
    tx.delete(src)?;
    tx.label(src, "rename_from")?;
    tx.label(dst, "rename_to")?;
    done(out, true);
    Ok(())
}

/// COPY src dst [DB 0] [REPLACE]: one database per client, so DB may name only 0.
pub(super) fn copy(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let (src, dst) = (a.bytes()?, a.bytes()?);
    let mut replace = false;
    while let Some(o) = a.next() {
        if o.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if o.eq_ignore_ascii_case(b"db") && a.remaining() > 0 {
            if a.int()? != 0 {
                return Err("ERR DB index is out of range".into());
            }
        } else {
            return Err(SYNTAX.into());
        }
    }
    if src == dst {
        return Err("ERR source and destination objects are the same".into());
    }
    let src = key_arg(src).map_err(|m| Fail::Reply(m.into()))?;
    let dst = key_arg(dst).map_err(|m| Fail::Reply(m.into()))?;
    let Some(rec) = tx.get(src)?.cloned() else {
        out.int(0);
        return Ok(());
    };
    if !replace && tx.contains(dst)? {
        out.int(0);
        return Ok(());
    }
    // As Redis: `new` (even over an existing key), then `copy_to`.
    let exp = rec.expires_at_ms.map_or(Expiry::Never, Expiry::At);
    tx.put(dst, rec.value, exp)?;
    tx.label(dst, events::NEW)?;
    tx.label(dst, "copy_to")?;
    out.int(1);
    Ok(())
}

/// Keys RANDOMKEY chooses among: up to this many from a random point of the key
/// order on (wrapping around). A bucket with no more keys than this gets a
/// uniform choice; a larger one, a choice among neighbours of a random point.
const RANDOMKEY_WINDOW: usize = 1024;

/// RANDOMKEY: a key chosen at random, nil for an empty bucket.
pub(super) fn randomkey(tx: &mut Txn<'_>, _: &mut Args<'_>, out: &mut Out) -> Res {
    let mut seed = [0u8; 16];
    getrandom::getrandom(&mut seed)
        .map_err(|e| Fail::Store(Error::Internal(format!("no randomness: {e}"))))?;
    // A random starting point among printable ASCII keys.
    let start: String = seed[..8]
        .iter()
        .map(|b| char::from(b' ' + b % 95))
        .collect();
    let mut window = tx.keys(Some(&start), RANDOMKEY_WINDOW)?;
    if window.len() < RANDOMKEY_WINDOW {
        for k in tx.keys(None, RANDOMKEY_WINDOW - window.len())? {
            if k.as_str() > start.as_str() {
                break;
            }
            window.push(k);
        }
    }
    if window.is_empty() {
        out.null();
        return Ok(());
    }
    let mut r = [0u8; 8];
    r.copy_from_slice(&seed[8..16]);
    let pick = &window[(u64::from_le_bytes(r) % window.len() as u64) as usize];
    out.bulk(pick.as_bytes());
    Ok(())
}

/// TOUCH key [key ...]: how many exist (libstate keeps no access times).
pub(super) fn touch(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    exists(tx, a, out)
}

/// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key, OBJECT HELP
pub(super) fn object(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let given = a.bytes()?;
    let sub = given.to_ascii_lowercase();
    let known = matches!(
        sub.as_slice(),
        b"encoding" | b"freq" | b"idletime" | b"refcount" | b"help"
    );
    if !known {
        return Err(format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            String::from_utf8_lossy(given)
        )
        .into());
    }
    let want = if sub == b"help" { 0 } else { 1 };
    if a.remaining() != want {
        return Err(format!(
            "ERR wrong number of arguments for 'object|{}' command",
            String::from_utf8_lossy(&sub)
        )
        .into());
    }
    if sub == b"help" {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation Redis would use for the value",
            "    stored at <key> (libstate stores every value as bytes).",
            "FREQ <key>",
            "    libstate does not track access frequency: an error.",
            "HELP",
            "    Print this help.",
            "IDLETIME <key>",
            "    libstate does not track access times: an error.",
            "REFCOUNT <key>",
            "    Return the number of references of the value stored at <key> (always 1).",
        ];
        out.array(lines.len());
        for l in lines {
            out.simple(l);
        }
        return Ok(());
    }
    let k = a.key()?;
    // The encoding Redis gives such a value when it is SET.
    let encoding = tx.get_with(k, |v| {
        if v.len() <= 20 && parse_i64(v).is_some() {
            "int"
        } else if v.len() <= 44 {
            "embstr"
        } else {
            "raw"
        }
    })?;
    let Some(encoding) = encoding else {
        out.null();
        return Ok(());
    };
    match sub.as_slice() {
        b"encoding" => out.bulk(encoding.as_bytes()),
        b"refcount" => out.int(1),
        b"freq" => return Err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into()),
        _ => return Err("ERR libstate does not track access times (OBJECT IDLETIME)".into()),
    }
    Ok(())
}
