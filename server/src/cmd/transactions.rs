//! MULTI, EXEC, DISCARD, WATCH, UNWATCH, and the queueing of commands between
//! them. The queued commands run in one core transaction: all of them are applied
//! or none.
//!
//! WATCH is optimistic locking as in Redis: WATCH notes a fingerprint (SHA-256 of
//! the value and the deadline) of each key's record, and EXEC, inside the very
//! transaction that runs the queue, compares them with the records as they are
//! then; if any differs the queue is not run and EXEC replies null. So a change by
//! anyone counts (another connection or client of the bucket, the embedded API,
//! another server on a shared Redis engine, and expiry), and the check and the
//! queue are one atomic step. A write that leaves a key's value and deadline
//! exactly as they were is not seen (Redis would fail the EXEC).

use sha2::{Digest, Sha256};
use state_core::{Bucket, Record, Txn};

use super::args::Args;
use super::{bucket, lookup, run_in_txn, store_error, After, Handler, Spec};
use crate::metrics::ErrorClass;
use crate::resp::Out;
use crate::session::Session;
use crate::Shared;

/// MULTI
pub(super) fn multi(_: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    if sess.multi.is_some() {
        out.error("ERR MULTI calls can not be nested");
    } else {
        sess.multi = Some((Vec::new(), false));
        out.ok();
    }
    After::Continue
}

/// A fingerprint of a record: its value and deadline.
fn fingerprint(r: Option<&Record>) -> Option<[u8; 32]> {
    r.map(|r| {
        let mut h = Sha256::new();
        h.update(r.expires_at_ms.unwrap_or(0).to_le_bytes());
        h.update([u8::from(r.expires_at_ms.is_some())]);
        h.update(&r.value);
        h.finalize().into()
    })
}

/// WATCH key [key ...]: remembers the keys' records for EXEC to compare.
pub(super) fn watch(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    if sess.multi.is_some() {
        // Refused without spoiling the transaction, as in Redis.
        out.error("ERR WATCH inside MULTI is not allowed");
        return After::Continue;
    }
    let mut keys = Vec::with_capacity(a.remaining());
    for k in a.by_ref() {
        match super::args::key_arg(k) {
            Ok(k) => keys.push(k.to_string()),
            Err(msg) => {
                out.error(&msg);
                return After::Continue;
            }
        }
    }
    let client = sess.client.clone().unwrap_or_default();
    let b = match bucket(shared, sess) {
        Ok(b) => b.clone(),
        Err(e) => {
            store_error(shared, sess, &e, out);
            return After::Continue;
        }
    };
    let seen = shared.svc.transaction_in(&b, |tx| {
        keys.iter()
            .map(|k| Ok((k.clone(), fingerprint(tx.get(k)?))))
            .collect::<state_core::Result<Vec<_>>>()
    });
    match seen {
        Ok(seen) => {
            let list = match sess.watched.take() {
                Some((c, mut old)) if c == client => {
                    // A key watched again keeps its first fingerprint (Redis keeps
                    // the first WATCH too).
                    for (k, f) in seen {
                        if !old.iter().any(|(o, _)| *o == k) {
                            old.push((k, f));
                        }
                    }
                    old
                }
                _ => seen,
            };
            sess.watched = Some((client, list));
            out.ok();
        }
        Err(e) => store_error(shared, sess, &e, out),
    }
    After::Continue
}

/// UNWATCH: forgets the watched keys.
pub(super) fn unwatch(_: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    sess.watched = None;
    out.ok();
    After::Continue
}

/// Whether every watched key's record is as it was when watched (checked inside
/// the transaction that would run the queue).
fn watched_unchanged(
    tx: &mut Txn<'_>,
    watched: &[(String, Option<[u8; 32]>)],
) -> state_core::Result<bool> {
    for (k, f) in watched {
        if fingerprint(tx.get(k)?) != *f {
            return Ok(false);
        }
    }
    Ok(true)
}

/// DISCARD
pub(super) fn discard(_: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    sess.watched = None;
    sess.multi_bytes = 0;
    if sess.multi.take().is_some() {
        out.ok();
    } else {
        out.error("ERR DISCARD without MULTI");
    }
    After::Continue
}

/// Queues a command after MULTI (only the table's data commands are), or refuses
/// it and marks the transaction refused.
pub(super) fn queue(
    shared: &Shared,
    sess: &mut Session,
    spec: &Spec,
    args: &[&[u8]],
    out: &mut Out,
) -> After {
    let Some((queued, refused)) = sess.multi.as_mut() else {
        return After::Continue;
    };
    if !spec.queued() && !spec.in_multi {
        *refused = true;
        out.error(&format!(
            "ERR '{}' inside MULTI is not supported by libstate (only key commands are queued)",
            spec.name
        ));
        return After::Continue;
    }
    if *refused {
        // EXEC will refuse the transaction: nothing more is kept, but the reply is
        // Redis's.
        out.simple("QUEUED");
        return After::Continue;
    }
    // The queue counts against the connection's query limit, as Redis counts the
    // MULTI state in client-query-buffer-limit: past it the transaction is
    // discarded now (its memory freed) and EXEC will say so.
    let size: usize = args.iter().map(|a| a.len() + 16).sum();
    if sess.multi_bytes + size > shared.cfg.max_query_bytes {
        shared.metrics.error(ErrorClass::TooLarge);
        *refused = true;
        *queued = Vec::new();
        sess.multi_bytes = 0;
        out.error(&format!(
            "ERR the MULTI queue would exceed the query limit of {} bytes (--max-query-bytes); the transaction is discarded",
            shared.cfg.max_query_bytes
        ));
        return After::Continue;
    }
    sess.multi_bytes += size;
    queued.push(args.iter().map(|a| a.to_vec()).collect());
    out.simple("QUEUED");
    After::Continue
}

/// Bytes of the values a queued command (name first) would return, from lent
/// reads outside any transaction (0 for commands that return no stored value, or
/// when a read fails: the run itself reports that).
fn reply_size_hint(bucket: &Bucket, cmd: &[Vec<u8>]) -> usize {
    let Some((_, spec)) = cmd.first().and_then(|name| lookup(name)) else {
        return 0;
    };
    if !spec.returns_values {
        return 0;
    }
    spec.keys
        .of(cmd)
        .filter_map(|k| super::args::key_arg(k).ok())
        .filter_map(|k| bucket.get_with(k, <[u8]>::len).ok().flatten())
        .fold(0usize, |a, n| a.saturating_add(n + 16))
}

/// EXEC: runs the queue in one transaction, or replies why it will not.
pub(super) fn exec(shared: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    run_queue(shared, sess, out);
    After::Continue
}

fn run_queue(shared: &Shared, sess: &mut Session, out: &mut Out) {
    let Some((queued, refused)) = sess.multi.take() else {
        out.error("ERR EXEC without MULTI");
        return;
    };
    sess.multi_bytes = 0;
    let watched = sess.watched.take();
    if refused {
        out.error("EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    let client = sess.client.clone().unwrap_or_default();
    // Before taking the store's write lock: if the values the queued reads would
    // return already exceed the reply limit (measured from lent reads, nothing
    // copied), refuse now. The run below keeps the limit too (values may grow in
    // between); this only keeps a doomed EXEC from holding the lock while it copies.
    let reads: usize = match bucket(shared, sess) {
        Ok(b) => queued.iter().map(|cmd| reply_size_hint(b, cmd)).sum(),
        Err(e) => return store_error(shared, sess, &e, out),
    };
    if reads > out.room() {
        out.refuse();
        return;
    }
    let watched = match watched {
        // Watched as another client (before AUTH): not this bucket's keys.
        Some((c, _)) if c != client => {
            out.null_array();
            return;
        }
        Some((_, keys)) => keys,
        None => Vec::new(),
    };
    let mut replies = Out::new(sess.resp3);
    let mut touched = false;
    let r = shared.svc.transaction(&client, |tx| {
        replies.buf.clear();
        replies.set_limit(out.room());
        touched = !watched_unchanged(tx, &watched)?;
        if touched {
            return Ok(());
        }
        for cmd in &queued {
            let argv: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            if let Some((_, spec)) = argv.first().and_then(|name| lookup(name)) {
                match spec.run {
                    Handler::Data { txn, .. } => {
                        run_in_txn(tx, txn, Args::new(spec.name, &argv), &mut replies)?;
                    }
                    // PING, ECHO, TIME, UNWATCH: replies only (idempotent if a
                    // shared engine runs the transaction again).
                    Handler::Session(f) => {
                        f(shared, sess, &mut Args::new(spec.name, &argv), &mut replies);
                    }
                }
            }
            if replies.overflowed() {
                // The replies would pass the output limit: nothing is applied.
                return Err(state_core::Error::TooLarge("EXEC reply".into()));
            }
        }
        Ok(())
    });
    match r {
        Ok(()) if touched => out.null_array(),
        Ok(()) => {
            out.array(queued.len());
            out.buf.extend_from_slice(&replies.buf);
        }
        Err(_) if replies.overflowed() => out.refuse(),
        Err(e) => store_error(shared, sess, &e, out),
    }
}
