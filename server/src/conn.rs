//! One Redis-protocol connection: the loop that reads requests (pipelined), runs
//! them through [`crate::cmd::request_found`] and writes the replies, with its timeouts
//! and buffer limits. The state the commands read and change is its
//! [`Session`] (session.rs).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::metrics::ErrorClass;
use crate::pubsub::Broken;
use crate::requests::{Requests, Stop};
use crate::resp::Out;
use crate::session::Session;
use crate::Shared;

/// How long a write to the peer may still take once the server is shutting down.
pub(crate) const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(1);

/// Writes `bytes` to the peer within the write timeout (or, once `kill` fires, within
/// [`SHUTDOWN_WRITE_GRACE`]). `false` if the write failed or timed out: close.
async fn write_out<S: AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    bytes: &[u8],
    kill: &CancellationToken,
) -> bool {
    let write = stream.write_all(bytes);
    tokio::pin!(write);
    // The common case: the socket takes the whole reply at once, and no timer is
    // armed (a timer per reply cost more than the reply's own write).
    if let Some(r) = write.as_mut().now_or_never() {
        return r.is_ok();
    }
    let deadline = tokio::time::sleep(shared.cfg.write_timeout);
    tokio::pin!(deadline);
    let mut killed = kill.is_cancelled();
    if killed {
        deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + SHUTDOWN_WRITE_GRACE);
    }
    loop {
        tokio::select! {
            r = &mut write => return r.is_ok(),
            () = &mut deadline => return false,
            () = kill.cancelled(), if !killed => {
                killed = true;
                let grace = tokio::time::Instant::now() + SHUTDOWN_WRITE_GRACE;
                if grace < deadline.deadline() {
                    deadline.as_mut().reset(grace);
                }
            }
        }
    }
}

/// This connection's share of the server-wide buffer count
/// ([`crate::Config::max_buffered_bytes`]), given back when dropped.
struct Held<'a> {
    shared: &'a Shared,
    bytes: usize,
}

impl Held<'_> {
    /// Sets this connection's count to `now` bytes.
    fn set(&mut self, now: usize) {
        if now == self.bytes {
            // The common case: no write to the counter every connection shares.
            return;
        }
        if now > self.bytes {
            self.shared.buffered.fetch_add(now - self.bytes, Relaxed);
        } else {
            self.shared.buffered.fetch_sub(self.bytes - now, Relaxed);
        }
        self.bytes = now;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.shared.buffered.fetch_sub(self.bytes, Relaxed);
    }
}

/// Serves one connection until the peer closes it, a protocol error, a limit,
/// revocation of its client, or shutdown.
pub(crate) async fn serve<S>(shared: Arc<Shared>, stream: S, sess: Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = sess.id;
    let kill = shared.track(id, None, sess.client.is_none());
    if let (Some(uid), Some(client)) = (sess.peer_uid, &sess.client) {
        shared.unix_peer(id, uid, client);
    }
    serve_tracked(&shared, stream, sess, &kill).await;
    shared.untrack(id);
}

async fn serve_tracked<S>(
    shared: &Arc<Shared>,
    mut stream: S,
    mut sess: Session,
    kill: &CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = sess.id;
    let auth_deadline = tokio::time::Instant::now() + shared.cfg.auth_timeout;
    let mut held = Held { shared, bytes: 0 };
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut out = Out::new(false);
    let mut reqs = Requests::new(shared, &sess);
    // When the request being received must be complete (from its first byte).
    let mut request_deadline: Option<tokio::time::Instant> = None;
    // Registered once for the connection's life, not once per request.
    let killed = kill.clone().cancelled_owned();
    tokio::pin!(killed);
    loop {
        if let Some(t) = sess.tracking.as_mut() {
            // Changes committed before these requests are pushed before their
            // replies (as Redis, whose push is in the buffer already).
            out.resp3 = sess.resp3;
            t.drain(sess.resp3, &mut out);
        }
        // Run every complete request received so far (requests.rs); consecutive
        // plain GETs (or SETs) gather into a run that goes to the core at once
        // (cmd/batch.rs), replying as if each ran alone. The clock is read at the
        // start and the end of the batch, not per request.
        reqs.begin(shared, &sess);
        let stop = loop {
            let stop = match reqs.step(shared, &mut sess, &mut buf, &mut out) {
                Stop::Offload(job) => {
                    // Off the event loop (a blocking-pool thread), so the other
                    // connections of this thread go on meanwhile; the
                    // connection's buffers go with it and come back.
                    let sh = Arc::clone(shared);
                    let task = tokio::task::spawn_blocking(move || {
                        let after = job.run(&sh, &mut sess, &buf, &mut out);
                        (buf, sess, out, job, after)
                    });
                    match task.await {
                        Ok((b, s, o, job, after)) => {
                            (buf, sess, out) = (b, s, o);
                            match reqs.finish(shared, &mut sess, &mut out, &job, after) {
                                Some(stop) => stop,
                                None => continue,
                            }
                        }
                        Err(e) => {
                            tracing::error!(conn = id, "a request failed: {e}");
                            return;
                        }
                    }
                }
                stop => stop,
            };
            break stop;
        };
        reqs.end(&mut sess);
        let (close, more) = match stop {
            Stop::Drained => (false, false),
            Stop::Flush => (false, true),
            Stop::Close => (true, false),
            // (An offload was run above: the loop never ends on one.)
            Stop::Broken | Stop::Offload(_) => {
                let _ = write_out(shared, &mut stream, &out.buf, kill).await;
                return;
            }
        };
        if !more {
            // Everything complete has run: what is left is a partly received
            // request (or nothing), moved to the front before reading more.
            let consumed = reqs.take_consumed();
            buf.drain(..consumed);
            if consumed > 0 {
                request_deadline = None;
            }
            if !buf.is_empty() && request_deadline.is_none() {
                request_deadline = Some(tokio::time::Instant::now() + shared.cfg.read_timeout);
            }
        }
        sess.local.flush(&shared.metrics);
        shared.metrics.lookups(out.take_lookups());
        let flags = if sess.subs.active() {
            shared.notify_flags(sess.client.as_deref().unwrap_or_default())
        } else {
            0
        };
        if let Err(broken) = sess.subs.drain(flags, &mut out) {
            match broken {
                Broken::Lagged(n) => {
                    shared.metrics.error(ErrorClass::Protocol);
                    tracing::warn!(conn = sess.id, peer = %sess.peer, "closing a subscribed connection that fell {n} events behind");
                }
                Broken::Ended => {}
            }
            let _ = write_out(shared, &mut stream, &out.buf, kill).await;
            return;
        }
        if let Some(t) = sess.tracking.as_mut() {
            // Invalidations follow the replies of the reads they concern.
            out.resp3 = sess.resp3;
            out.set_limit(usize::MAX);
            t.drain(sess.resp3, &mut out);
        }
        held.set(buf.capacity() + out.buf.capacity() + sess.multi_bytes);
        if !out.buf.is_empty() {
            if !write_out(shared, &mut stream, &out.buf, kill).await {
                tracing::info!(conn = sess.id, peer = %sess.peer, "closing a connection that does not read its replies (--write-timeout)");
                return;
            }
            out.buf.clear();
            if out.buf.capacity() > (1 << 20) {
                out.buf.shrink_to(16 << 10);
            }
        }
        if close || kill.is_cancelled() {
            return;
        }
        if more {
            continue;
        }
        if buf.capacity() > (1 << 20) && buf.len() < (16 << 10) {
            buf.shrink_to(16 << 10);
        }
        held.set(buf.capacity() + out.buf.capacity() + sess.multi_bytes);
        if held.bytes > crate::SMALL_CONNECTION
            && shared.buffered.load(Relaxed) > shared.cfg.max_buffered_bytes
        {
            shared.metrics.error(ErrorClass::TooLarge);
            tracing::warn!(conn = sess.id, peer = %sess.peer, held = held.bytes, "closing a connection: the server's buffers are full (--max-buffered-bytes)");
            out.error(
                "ERR the server's request buffers are full (--max-buffered-bytes); try again later",
            );
            let _ = write_out(shared, &mut stream, &out.buf, kill).await;
            return;
        }
        // Wait for more bytes: a partly received request must be complete within
        // the read timeout of its first byte (slowloris), a connection must sign in
        // within the auth timeout, an idle one waits for the idle timeout (none by
        // default), revocation or shutdown.
        let partial = !buf.is_empty();
        let mut deadline = if partial { request_deadline } else { None };
        if sess.client.is_none() {
            deadline = Some(deadline.map_or(auth_deadline, |d| d.min(auth_deadline)));
        }
        if !partial {
            if let Some(idle) = shared.cfg.idle_timeout {
                let d = tokio::time::Instant::now() + idle;
                deadline = Some(deadline.map_or(d, |x| x.min(d)));
            }
        }
        // A bulk whose length has arrived gets its room at once (bounded by the
        // request limit the parser checked): no doubling copies while it arrives.
        let want = reqs.parser.awaiting().saturating_sub(buf.len());
        let read = async {
            buf.reserve(want.max(16 << 10));
            match deadline {
                Some(t) => tokio::time::timeout_at(t, stream.read_buf(&mut buf))
                    .await
                    .ok(),
                None => Some(stream.read_buf(&mut buf).await),
            }
        };
        // Pushes (pub/sub messages, tracking invalidations) wake the wait too.
        let r = if sess.subs.active() || sess.tracking.is_some() {
            let ready = Arc::clone(&sess.subs.ready);
            tokio::select! {
                biased;
                r = read => r,
                () = ready.notified() => continue,
                () = &mut killed => return,
            }
        } else {
            // The read first: bytes already waiting are read without a look at
            // the kill signal, which the loop checks after every batch anyway.
            tokio::select! {
                biased;
                r = read => r,
                () = &mut killed => return,
            }
        };
        match r {
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(_)) => {}
            None => {
                let why = if sess.client.is_none() {
                    "did not sign in within --auth-timeout"
                } else if partial {
                    "a request did not arrive whole within --read-timeout"
                } else {
                    "idle timeout"
                };
                tracing::info!(conn = sess.id, peer = %sess.peer, "closing a connection: {why}");
                return;
            }
        }
    }
}
