//! Range and bit commands over string values: SETRANGE, GETRANGE/SUBSTR, SETBIT,
//! GETBIT, BITCOUNT, BITPOS, BITOP, LCS. The byte work is in [`crate::strops`];
//! a value a command would grow is measured against the largest value before
//! anything is allocated.

use state_core::{Expiry, Txn};

use super::args::{key_arg, parse_i64, Args, Fail, Res, NOT_INTEGER, SYNTAX};
use super::events;
use crate::resp::Out;
use crate::strops;

/// Redis's largest string (proto-max-bulk-len's default, 512 MiB).
const PROTO_MAX_BULK: u64 = 512 << 20;

/// The largest value a command may build here: Redis's 512 MiB or the store's
/// maximum value size, whichever is smaller. (A client's own quota is checked
/// when the transaction commits.)
fn max_value(tx: &Txn<'_>) -> u64 {
    (tx.bucket().store().max_value_size() as u64).min(PROTO_MAX_BULK)
}

/// The error for a value that would grow past [`max_value`].
fn too_big(tx: &Txn<'_>) -> Fail {
    let max = max_value(tx);
    if max == PROTO_MAX_BULK {
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into()
    } else {
        format!(
            "ERR string exceeds maximum allowed size (the store's maximum value size, {max} bytes)"
        )
        .into()
    }
}

/// A key's value, or empty for a missing key or one that cannot exist.
fn value_or_empty(tx: &mut Txn<'_>, k: &[u8]) -> Result<Vec<u8>, Fail> {
    Ok(match key_arg(k) {
        Ok(k) => tx.get(k)?.map(|s| s.value.clone()).unwrap_or_default(),
        Err(_) => Vec::new(),
    })
}

/// SETRANGE key offset value (the new length is checked before allocating).
pub(super) fn setrange(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let offset = a.int()?;
    let src = a.bytes()?;
    if offset < 0 {
        return Err("ERR offset is out of range".into());
    }
    let (len, exp) = match tx.get(k)? {
        Some(s) => (Some(s.value.len()), Expiry::Keep),
        None => (None, Expiry::Never),
    };
    if src.is_empty() {
        // Nothing to write: the length as it is (a missing key is not created).
        out.int(len.unwrap_or(0) as i64);
        return Ok(());
    }
    let max = max_value(tx);
    let Some(new_len) = strops::setrange_len(len.unwrap_or(0), offset as u64, src.len(), max)
    else {
        return Err(too_big(tx));
    };
    let mut v = tx.get(k)?.map(|s| s.value.clone()).unwrap_or_default();
    v.reserve(new_len.saturating_sub(v.len()));
    strops::setrange(&mut v, offset as usize, src);
    events::put(tx, k, v, exp, "setrange")?;
    out.int(new_len as i64);
    Ok(())
}

/// GETRANGE / SUBSTR key start end
pub(super) fn getrange(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.bytes()?;
    let (start, end) = (a.int()?, a.int()?);
    let k = key_arg(k).map_err(|m| Fail::Reply(m.into()))?;
    let found = tx
        .get_with(k, |v| out.bulk(strops::getrange(v, start, end)))?
        .is_some();
    out.lookup(found);
    if !found {
        out.bulk(b"");
    }
    Ok(())
}

/// A SETBIT/GETBIT offset: a non-negative integer whose byte is below the largest
/// value (Redis: below 512 MiB).
fn bit_offset(tx: &Txn<'_>, b: &[u8]) -> Result<u64, Fail> {
    let bad = || Fail::Reply("ERR bit offset is not an integer or out of range".into());
    let n = parse_i64(b).ok_or_else(bad)?;
    if n < 0 || (n as u64 >> 3) >= max_value(tx) {
        return Err(bad());
    }
    Ok(n as u64)
}

/// SETBIT key offset 0|1
pub(super) fn setbit(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let offset = bit_offset(tx, a.bytes()?)?;
    let on = match a.bytes()? {
        b"0" => false,
        b"1" => true,
        _ => return Err("ERR bit is not an integer or out of range".into()),
    };
    let (mut v, exp, existed) = match tx.get(k)? {
        Some(s) => (s.value.clone(), Expiry::Keep, true),
        None => (Vec::new(), Expiry::Never, false),
    };
    let len = v.len();
    let old = strops::setbit(&mut v, offset, on);
    // As Redis: a bit set to what it was, in a key that neither was created nor
    // grew, is no write (no event, and no change for WATCH).
    if !existed || v.len() != len || (old == 1) != on {
        events::put(tx, k, v, exp, "setbit")?;
    }
    out.int(i64::from(old));
    Ok(())
}

/// GETBIT key offset
pub(super) fn getbit(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let offset = bit_offset(tx, a.bytes()?)?;
    let bit = tx.get_with(k, |v| strops::getbit(v, offset))?;
    out.lookup(bit.is_some());
    out.int(i64::from(bit.unwrap_or(0)));
    Ok(())
}

/// BYTE or BIT (true for BIT).
fn bit_unit(b: &[u8]) -> Result<bool, Fail> {
    if b.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if b.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(SYNTAX.into())
    }
}

/// BITCOUNT key [start end [BYTE|BIT]] (a missing key is 0 before the range is
/// read, as in Redis 7.0).
pub(super) fn bitcount(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let v = tx.get(k)?.map(|s| s.value.clone());
    out.lookup(v.is_some());
    let Some(v) = v else {
        out.int(0);
        return Ok(());
    };
    let range = match a.remaining() {
        0 => None,
        2 | 3 => {
            let (s, e) = (a.int()?, a.int()?);
            let bits = match a.next() {
                Some(u) if !(s < 0 && e < 0 && s > e) => bit_unit(u)?,
                _ => false,
            };
            Some((s, e, bits))
        }
        _ => return Err(SYNTAX.into()),
    };
    out.int(strops::bitcount(&v, range) as i64);
    Ok(())
}

/// BITPOS key bit [start [end [BYTE|BIT]]]
pub(super) fn bitpos(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let k = a.key()?;
    let bit = match parse_i64(a.bytes()?) {
        Some(0) => false,
        Some(1) => true,
        Some(_) => return Err("ERR The bit argument must be 1 or 0.".into()),
        None => return Err(NOT_INTEGER.into()),
    };
    let v = tx.get(k)?.map(|s| s.value.clone());
    out.lookup(v.is_some());
    let Some(v) = v else {
        // A missing key is zeros without end.
        out.int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let range = match a.remaining() {
        0 => None,
        1..=3 => {
            let s = a.int()?;
            let e = match a.next() {
                Some(e) => Some(parse_i64(e).ok_or(Fail::Reply(NOT_INTEGER.into()))?),
                None => None,
            };
            let bits = match a.next() {
                Some(u) => bit_unit(u)?,
                None => false,
            };
            Some((s, e, bits))
        }
        _ => return Err(SYNTAX.into()),
    };
    out.int(strops::bitpos(&v, bit, range));
    Ok(())
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]: the result replaces destkey (no
/// expiry); an empty result deletes it.
pub(super) fn bitop(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let op = match a.bytes()?.to_ascii_lowercase().as_slice() {
        b"and" => strops::BitOp::And,
        b"or" => strops::BitOp::Or,
        b"xor" => strops::BitOp::Xor,
        b"not" => strops::BitOp::Not,
        _ => return Err(SYNTAX.into()),
    };
    if op == strops::BitOp::Not && a.remaining() != 2 {
        return Err("ERR BITOP NOT must be called with a single source key.".into());
    }
    let dest = a.key()?;
    let mut srcs: Vec<Option<Vec<u8>>> = Vec::with_capacity(a.remaining());
    for k in a.by_ref() {
        srcs.push(match key_arg(k) {
            Ok(k) => tx.get(k)?.map(|s| s.value.clone()),
            Err(_) => None,
        });
    }
    let views: Vec<Option<&[u8]>> = srcs.iter().map(Option::as_deref).collect();
    let v = strops::bitop(op, &views);
    let len = v.len();
    if len == 0 {
        events::delete(tx, dest)?;
    } else {
        events::put(tx, dest, v, Expiry::Never, events::SET)?;
    }
    out.int(len as i64);
    Ok(())
}

/// Most bytes of the table LCS may build (Redis: proto-max-bulk-len, 512 MiB;
/// here less, since every client shares the server's memory).
const LCS_TABLE_MAX: u128 = 64 << 20;

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
pub(super) fn lcs(tx: &mut Txn<'_>, a: &mut Args<'_>, out: &mut Out) -> Res {
    let x = value_or_empty(tx, a.bytes()?)?;
    let y = value_or_empty(tx, a.bytes()?)?;
    let (mut idx, mut len, mut withlen, mut min) = (false, false, false, 0u64);
    while let Some(o) = a.next() {
        let o = o.to_ascii_lowercase();
        match o.as_slice() {
            b"idx" => idx = true,
            b"len" => len = true,
            b"withmatchlen" => withlen = true,
            b"minmatchlen" if a.remaining() > 0 => min = a.int()?.max(0) as u64,
            _ => return Err(SYNTAX.into()),
        }
    }
    if idx && len {
        return Err("ERR If you want both the length and indexes, please just use IDX.".into());
    }
    if strops::lcs_table_bytes(x.len(), y.len()) > LCS_TABLE_MAX {
        return Err(format!(
            "ERR Insufficient memory, transient memory for LCS exceeds the limit of {LCS_TABLE_MAX} bytes"
        )
        .into());
    }
    let r = strops::lcs(&x, &y, min);
    if idx {
        out.map(2);
        out.bulk(b"matches");
        out.array(r.matches.len());
        for m in &r.matches {
            out.array(if withlen { 3 } else { 2 });
            out.array(2);
            out.int(m.a.0 as i64);
            out.int(m.a.1 as i64);
            out.array(2);
            out.int(m.b.0 as i64);
            out.int(m.b.1 as i64);
            if withlen {
                out.int(m.len as i64);
            }
        }
        out.bulk(b"len");
        out.int(r.text.len() as i64);
    } else if len {
        out.int(r.text.len() as i64);
    } else {
        out.bulk(&r.text);
    }
    Ok(())
}
