//! MULTI, EXEC, DISCARD, WATCH, UNWATCH, and the queueing of commands between
//! them. The queued commands run in one core transaction: all of them are applied
//! or none.
//!
//! WATCH is optimistic locking as in Redis, on the core's key watches
//! ([`state_core::Bucket::watch_keys`]): every write committed to a watched key
//! after WATCH counts, by anyone (another connection or client of the bucket, the
//! embedded API, the HTTP API, expiry), even one that leaves the value and
//! deadline exactly as they were; so does a watched key whose deadline passes.
//! EXEC checks them inside the very transaction that runs the queue
//! ([`state_core::Txn::watched_changed`]), so the check and the queue are one
//! atomic step; if any changed, the queue is not run and EXEC replies null. On a
//! Redis engine other servers share, their writes are seen when they change a
//! watched key's value, deadline or existence (a write of the very same record by
//! another process is not).

use state_core::Bucket;

use super::args::Args;
use super::{bucket, lookup, run_in_txn, store_error, After, Handler};
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

/// WATCH key [key ...]: watches the keys for EXEC to check.
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
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    match b.watch_keys(&keys) {
        Ok(w) => {
            // Each WATCH adds to the ones before (as in Redis, a key watched
            // again is still watched from the first time on).
            let list = match sess.watched.take() {
                Some((c, mut old)) if c == client => {
                    old.push(w);
                    old
                }
                _ => vec![w],
            };
            sess.watched = Some((client, list));
            out.ok();
        }
        Err(e) => store_error(shared, sess, &e.into(), out),
    }
    After::Continue
}

/// UNWATCH: forgets the watched keys.
pub(super) fn unwatch(_: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    sess.watched = None;
    out.ok();
    After::Continue
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

/// Queues a command after MULTI: every command but the transaction's own
/// (MULTI, EXEC, DISCARD, WATCH, QUIT, RESET run at once), as in Redis.
pub(super) fn queue(shared: &Shared, sess: &mut Session, args: &[&[u8]], out: &mut Out) -> After {
    let Some((queued, refused)) = sess.multi.as_mut() else {
        return After::Continue;
    };
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
    // Where each queued command's reply is in `replies` (empty for one that runs
    // after the commit).
    let mut marks: Vec<std::ops::Range<usize>> = Vec::with_capacity(queued.len());
    let mut touched = false;
    let r = shared.svc.transaction(&client, |tx| {
        replies.buf.clear();
        replies.set_limit(out.room());
        marks.clear();
        touched = false;
        for w in &watched {
            if tx.watched_changed(w)? {
                touched = true;
                return Ok(());
            }
        }
        for cmd in &queued {
            let start = replies.buf.len();
            let argv: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            if let Some((_, spec)) = argv.first().and_then(|name| lookup(name)) {
                match spec.run {
                    Handler::Data { txn, .. } => {
                        run_in_txn(tx, txn, Args::new(spec.name, &argv), &mut replies)?;
                    }
                    // PING, ECHO, TIME, UNWATCH: replies only (idempotent if a
                    // shared engine runs the transaction again).
                    Handler::Session(f) if spec.in_multi => {
                        f(shared, sess, &mut Args::new(spec.name, &argv), &mut replies);
                    }
                    // The rest run once the queue's data commands committed.
                    Handler::Session(_) => {}
                }
            }
            marks.push(start..replies.buf.len());
            if replies.overflowed() {
                // The replies would pass the output limit: nothing is applied.
                return Err(state_core::Error::TooLarge("EXEC reply".into()));
            }
        }
        Ok(())
    });
    let (hits, misses) = replies.take_lookups();
    out.lookups(hits, misses);
    match r {
        Ok(()) if touched => out.null_array(),
        Ok(()) => {
            out.array(queued.len());
            for (cmd, mark) in queued.iter().zip(marks) {
                let argv: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                match argv.first().and_then(|name| lookup(name)) {
                    // A session command that uses the store, the server or the
                    // session (SCAN, INFO, CONFIG, CLIENT, AUTH, SUBSCRIBE, ...):
                    // run now, outside the store's write lock, in queue order.
                    Some((_, spec)) if !spec.queued() && !spec.in_multi => {
                        if let Handler::Session(f) = spec.run {
                            f(shared, sess, &mut Args::new(spec.name, &argv), out);
                        }
                    }
                    _ => out.buf.extend_from_slice(&replies.buf[mark]),
                }
            }
        }
        Err(_) if replies.overflowed() => out.refuse(),
        Err(e) => store_error(shared, sess, &e, out),
    }
}
