//! SCAN, through the service's server-side cursor table.

use state_service::{Error, StateService};

use super::args::{parse_i64, Args, NOT_INTEGER, SYNTAX};
use super::{store_error, After};
use crate::glob;
use crate::resp::Out;
use crate::session::Session;
use crate::Shared;

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]: keys in key order, each key
/// present throughout the scan returned exactly once.
pub(super) fn scan(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    let client = sess.client.as_deref().unwrap_or_default();
    if let Err(e) = run(&shared.svc, client, a, out) {
        store_error(shared, sess, &e, out);
    }
    After::Continue
}

fn run(svc: &StateService, client: &str, a: &mut Args<'_>, out: &mut Out) -> Result<(), Error> {
    let Some(start) = a
        .next()
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|s| s.parse::<u64>().ok())
    else {
        out.error("ERR invalid cursor");
        return Ok(());
    };
    let mut pattern: Option<&[u8]> = None;
    let mut count: usize = 10;
    let mut only_strings = true;
    while let Some(opt) = a.next() {
        let Some(v) = a.next() else {
            out.error(SYNTAX);
            return Ok(());
        };
        if opt.eq_ignore_ascii_case(b"match") {
            pattern = Some(v);
        } else if opt.eq_ignore_ascii_case(b"count") {
            match parse_i64(v) {
                Some(n) if n >= 1 => count = usize::try_from(n).unwrap_or(usize::MAX).min(100_000),
                Some(_) => {
                    out.error(SYNTAX);
                    return Ok(());
                }
                None => {
                    out.error(NOT_INTEGER);
                    return Ok(());
                }
            }
        } else if opt.eq_ignore_ascii_case(b"type") {
            only_strings = v.eq_ignore_ascii_case(b"string");
        } else {
            out.error(SYNTAX);
            return Ok(());
        }
    }
    let id = if start == 0 {
        svc.open_cursor(client)?
    } else {
        start
    };
    let pattern = match pattern.map(glob::Pattern::new).transpose() {
        Ok(p) => p,
        Err(e) => {
            out.error(&e.to_string());
            return Ok(());
        }
    };
    let mut keys: Vec<String> = Vec::new();
    let stepped = svc.with_cursor(client, id, |c| {
        c.next_n_with(count, |k, _| {
            if only_strings && pattern.as_ref().is_none_or(|p| p.matches(k.as_bytes())) {
                keys.push(k.to_string());
            }
        })
    });
    let stepped = match stepped {
        Ok(n) => n,
        Err(e) if e.is_invalid_argument() => {
            out.error("ERR invalid cursor: it was finished, expired after being idle, or belongs to another connection's client");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let next = if stepped < count {
        svc.release_cursor(client, id);
        0
    } else {
        id
    };
    out.array(2);
    out.bulk(next.to_string().as_bytes());
    out.array(keys.len());
    for k in keys {
        out.bulk(k.as_bytes());
    }
    Ok(())
}
