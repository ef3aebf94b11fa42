//! MULTI, EXEC, DISCARD, and the queueing of commands between them. The queued
//! commands run in one core transaction: all of them are applied or none.

use state_core::Bucket;

use super::args::Args;
use super::{bucket, lookup, run_in_txn, store_error, After, Handler, Spec};
use crate::conn::Session;
use crate::metrics::ErrorClass;
use crate::resp::Out;
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

/// DISCARD
pub(super) fn discard(_: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
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
    if !spec.queued() {
        *refused = true;
        out.error(&format!(
            "ERR '{}' inside MULTI is not supported by libstate (only key commands are queued)",
            spec.name
        ));
        return After::Continue;
    }
    // The queue counts against the connection's query limit, as Redis counts the
    // MULTI state in client-query-buffer-limit: past it the transaction is
    // discarded now (its memory freed) and EXEC will say so.
    let size: usize = args.iter().map(|a| a.len() + 16).sum();
    if *refused || sess.multi_bytes + size > shared.cfg.max_query_bytes {
        if !*refused {
            shared.metrics.error(ErrorClass::TooLarge);
        }
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
    let mut replies = Out::new(sess.resp3);
    let r = shared.svc.transaction(&client, |tx| {
        replies.buf.clear();
        replies.set_limit(out.room());
        for cmd in &queued {
            let argv: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            if let Some((_, spec)) = argv.first().and_then(|name| lookup(name)) {
                if let Handler::Data { txn, .. } = spec.run {
                    run_in_txn(tx, txn, Args::new(spec.name, &argv), &mut replies)?;
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
        Ok(()) => {
            out.array(queued.len());
            out.buf.extend_from_slice(&replies.buf);
        }
        Err(_) if replies.overflowed() => out.refuse(),
        Err(e) => store_error(shared, sess, &e, out),
    }
}
