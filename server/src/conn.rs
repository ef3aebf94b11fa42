//! One Redis-protocol connection: reading, pipelining, authentication, MULTI, and
//! the connection-level commands.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use state_core::Bucket;

use crate::commands::{self, Kind, Spec};
use crate::metrics::ErrorClass;
use crate::pubsub::{Broken, Subscriptions};
use crate::resp::{Out, ParseLimits, Parsed, Parser};
use crate::Shared;

/// Replies are written out once this many bytes are pending, even in the middle of
/// a pipeline, so a long pipeline needs no unbounded buffer.
const FLUSH_AT: usize = 64 << 10;

/// What the connection does after a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    Continue,
    Close,
}

/// A connection's state.
pub(crate) struct Session {
    id: u64,
    peer: String,
    /// The client this connection acts as, once authenticated (or by peer
    /// credentials on the Unix socket).
    client: Option<String>,
    /// The client's bucket, resolved once.
    bucket: Option<Bucket>,
    name: Option<String>,
    resp3: bool,
    /// Queued commands after MULTI, and whether one was refused while queueing.
    multi: Option<(Vec<Vec<Vec<u8>>>, bool)>,
    /// Bytes of the queued commands' arguments (counted against
    /// `max_query_bytes`).
    pub(crate) multi_bytes: usize,
    /// The peer's Unix user (on the Unix socket).
    pub(crate) peer_uid: Option<u32>,
    protocol: &'static str,
    /// This connection's counts, flushed to the shared metrics after each batch.
    local: crate::metrics::Local,
    /// Keyspace-notification subscriptions (SUBSCRIBE, PSUBSCRIBE).
    subs: Subscriptions,
}

impl Session {
    pub(crate) fn new(
        id: u64,
        peer: String,
        client: Option<String>,
        protocol: &'static str,
    ) -> Session {
        Session {
            id,
            peer,
            client,
            bucket: None,
            name: None,
            resp3: false,
            multi: None,
            multi_bytes: 0,
            peer_uid: None,
            protocol,
            local: crate::metrics::Local::default(),
            subs: Subscriptions::default(),
        }
    }
}

/// Runs `f` where it may take long: on a multi-threaded runtime the worker thread
/// hands its other connections to another worker first (`block_in_place`), so
/// one client's long command never stalls the connections that share its thread.
pub(crate) fn off_loop<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The framing limits for a session: small ones until it has signed in.
fn limits_for(shared: &Shared, sess: &Session) -> ParseLimits {
    if sess.client.is_some() {
        ParseLimits {
            max_args: shared.cfg.max_multibulk,
            max_bulk: shared.max_bulk(),
            max_inline: 64 << 10,
            max_request: shared.cfg.max_query_bytes,
        }
    } else {
        ParseLimits {
            max_args: crate::PREAUTH_MAX_ARGS,
            max_bulk: crate::PREAUTH_MAX_BULK,
            max_inline: crate::PREAUTH_MAX_BULK,
            max_request: crate::PREAUTH_MAX_QUERY,
        }
    }
}

/// How long a write to the peer may still take once the server is shutting down.
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(1);

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
    if let Some(c) = &sess.client {
        shared.apply_quota(c);
    }
    let auth_deadline = tokio::time::Instant::now() + shared.cfg.auth_timeout;
    let mut parser = Parser::new();
    let mut held = Held { shared, bytes: 0 };
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut out = Out::new(false);
    // When the request being received must be complete (from its first byte).
    let mut request_deadline: Option<tokio::time::Instant> = None;
    loop {
        // Run every complete request received so far.
        let mut consumed = 0;
        let mut close = false;
        let mut more = false;
        loop {
            let limits = limits_for(shared, &sess);
            match parser.parse(&mut buf[consumed..], &limits) {
                Ok(Parsed::Request { args, len }) => {
                    let base = consumed;
                    let argv: Vec<&[u8]> = args
                        .iter()
                        .map(|r| &buf[base + r.start..base + r.end])
                        .collect();
                    consumed += len;
                    let started = Instant::now();
                    // A reply may not pass this connection's output limit, nor take
                    // the server past its total (a small reply always fits).
                    let total_room = shared
                        .cfg
                        .max_buffered_bytes
                        .saturating_sub(shared.buffered.load(Relaxed))
                        .max(crate::SMALL_CONNECTION);
                    let mark = out.buf.len();
                    out.set_limit(mark + shared.cfg.max_output_bytes.min(total_room));
                    let after = request(shared, &mut sess, &argv, &mut out);
                    if out.overflowed() {
                        out.buf.truncate(mark);
                        out.set_limit(usize::MAX);
                        shared.metrics.error(ErrorClass::TooLarge);
                        out.error(&format!(
                            "ERR the reply would exceed the output limit of {} bytes (--max-output-bytes); nothing was sent",
                            shared.cfg.max_output_bytes.min(total_room)
                        ));
                    }
                    sess.local.latency(started.elapsed());
                    if after == After::Close {
                        close = true;
                        break;
                    }
                    if out.buf.len() >= FLUSH_AT {
                        more = true;
                        break;
                    }
                }
                Ok(Parsed::Empty(n)) => consumed += n,
                Ok(Parsed::Incomplete) => break,
                Err(e) => {
                    shared.metrics.error(ErrorClass::Protocol);
                    tracing::info!(conn = sess.id, peer = %sess.peer, "protocol error, closing: {}", e.0);
                    out.set_limit(usize::MAX);
                    out.error(&format!("ERR Protocol error: {}", e.0));
                    let _ = write_out(shared, &mut stream, &out.buf, kill).await;
                    return;
                }
            }
        }
        buf.drain(..consumed);
        if consumed > 0 {
            request_deadline = None;
        }
        if !buf.is_empty() && request_deadline.is_none() {
            request_deadline = Some(tokio::time::Instant::now() + shared.cfg.read_timeout);
        }
        sess.local.flush(&shared.metrics);
        if let Err(broken) = sess.subs.drain(&mut out) {
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
        let want = parser.awaiting().saturating_sub(buf.len());
        let read = async {
            buf.reserve(want.max(16 << 10));
            match deadline {
                Some(t) => tokio::time::timeout_at(t, stream.read_buf(&mut buf))
                    .await
                    .ok(),
                None => Some(stream.read_buf(&mut buf).await),
            }
        };
        let ready = Arc::clone(&sess.subs.ready);
        let subscribed = sess.subs.active();
        tokio::select! {
            () = ready.notified(), if subscribed => {}
            r = read => match r {
                Some(Ok(0)) | Some(Err(_)) => return,
                Some(Ok(_)) => {}
                None => {
                    let why = if sess.client.is_none() { "did not sign in within --auth-timeout" } else if partial { "a request did not arrive whole within --read-timeout" } else { "idle timeout" };
                    tracing::info!(conn = sess.id, peer = %sess.peer, "closing a connection: {why}");
                    return;
                }
            },
            () = kill.cancelled() => return,
        }
    }
}

/// Runs one request, writing its reply.
pub(crate) fn request(shared: &Shared, sess: &mut Session, args: &[&[u8]], out: &mut Out) -> After {
    out.resp3 = sess.resp3;
    let found = commands::lookup(args[0]);
    sess.local.command(found.map(|(i, _)| i));
    let Some((_, spec)) = found else {
        if let Some((_, refused)) = sess.multi.as_mut() {
            *refused = true;
        }
        shared.metrics.error(ErrorClass::Invalid);
        commands::unknown_command(out, args);
        return After::Continue;
    };
    if !commands::arity_ok(spec, args.len()) {
        if let Some((_, refused)) = sess.multi.as_mut() {
            *refused = true;
        }
        shared.metrics.error(ErrorClass::Invalid);
        commands::wrong_arity(out, spec.name);
        return After::Continue;
    }
    let open = matches!(spec.name, "ping" | "hello" | "auth" | "quit" | "reset");
    if sess.client.is_none() && !open {
        out.error("NOAUTH Authentication required.");
        return After::Continue;
    }
    if sess.subs.active()
        && !sess.resp3
        && !matches!(
            spec.name,
            "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
        )
    {
        out.error(&format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        ));
        return After::Continue;
    }
    if sess.multi.is_some() && !matches!(spec.name, "exec" | "discard" | "multi" | "quit" | "reset")
    {
        return queue(shared, sess, spec, args, out);
    }
    // Work that grows with the data or the arguments, and every request of a store
    // whose writes wait for fsync, runs where it cannot stall other connections.
    if shared.cfg.blocking_store || spec.heavy || args.len() > 64 {
        off_loop(|| dispatch(shared, sess, spec, args, out))
    } else {
        dispatch(shared, sess, spec, args, out)
    }
}

/// Runs a command that passed the checks of [`request`].
fn dispatch(
    shared: &Shared,
    sess: &mut Session,
    spec: &Spec,
    args: &[&[u8]],
    out: &mut Out,
) -> After {
    match spec.kind {
        Kind::Conn => connection_command(shared, sess, spec, args, out),
        Kind::Scan => {
            let client = sess.client.clone().unwrap_or_default();
            if let Err(e) = commands::scan(&shared.svc, &client, args, out) {
                store_error(shared, sess, &e, out);
            }
            After::Continue
        }
        Kind::Data => {
            data_command(shared, sess, spec, args, out);
            After::Continue
        }
    }
}

fn store_error(shared: &Shared, sess: &Session, e: &state_core::Error, out: &mut Out) {
    let class = ErrorClass::of(e.kind());
    shared.metrics.error(class);
    if matches!(class, ErrorClass::Store) {
        tracing::error!(conn = sess.id, "store error: {e}");
    }
    commands::error_reply(out, e);
}

/// Resolves the session's bucket (once per client).
fn ensure_bucket(shared: &Shared, sess: &mut Session) -> state_core::Result<()> {
    let client = sess.client.as_deref().unwrap_or_default();
    if sess.bucket.as_ref().is_none_or(|b| b.name() != client) {
        sess.bucket = Some(shared.svc.client(client)?);
    }
    Ok(())
}

/// The session's bucket (resolved once per client).
fn bucket<'s>(shared: &Shared, sess: &'s mut Session) -> state_core::Result<&'s Bucket> {
    ensure_bucket(shared, sess)?;
    sess.bucket
        .as_ref()
        .ok_or_else(|| state_core::Error::Internal("session without a bucket".into()))
}

fn data_command(shared: &Shared, sess: &mut Session, spec: &Spec, args: &[&[u8]], out: &mut Out) {
    if let Err(e) = ensure_bucket(shared, sess) {
        return store_error(shared, sess, &e, out);
    }
    // Borrowed, not cloned: a clone per command is two atomic increments on
    // counters every connection shares.
    let sess: &Session = sess;
    let Some(bucket) = sess.bucket.as_ref() else {
        // ensure_bucket just set it; a reply is owed whatever happens.
        return out.error("ERR internal error: the connection has no bucket");
    };
    match commands::fast_path(bucket, &shared.svc, spec, args, out) {
        Ok(true) => return,
        Ok(false) => {}
        Err(e) => return store_error(shared, sess, &e, out),
    }
    // The reply goes straight into the output; a failed transaction takes it back,
    // and so does each attempt that a shared engine (Redis) runs again after a
    // conflict with another process.
    let mark = out.buf.len();
    let r = shared.svc.transaction_in(bucket, |tx| {
        out.buf.truncate(mark);
        commands::exec_in_txn(tx, spec, args, out)
    });
    if let Err(e) = r {
        out.buf.truncate(mark);
        store_error(shared, sess, &e, out);
    }
}

fn queue(shared: &Shared, sess: &mut Session, spec: &Spec, args: &[&[u8]], out: &mut Out) -> After {
    let Some((queued, refused)) = sess.multi.as_mut() else {
        return After::Continue;
    };
    if spec.kind != Kind::Data {
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

fn exec(shared: &Shared, sess: &mut Session, out: &mut Out) {
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
        Ok(b) => queued
            .iter()
            .map(|cmd| commands::reply_size_hint(b, cmd))
            .sum(),
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
            if let Some((_, spec)) = commands::lookup(argv[0]) {
                commands::exec_in_txn(tx, spec, &argv, &mut replies)?;
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

fn connection_command(
    shared: &Shared,
    sess: &mut Session,
    spec: &Spec,
    args: &[&[u8]],
    out: &mut Out,
) -> After {
    let lower = |i: usize| args.get(i).map(|a| a.to_ascii_lowercase());
    match spec.name {
        "ping" if sess.subs.active() && !sess.resp3 => {
            // In RESP2 subscribed mode PING answers in the pub/sub shape.
            out.array(2);
            out.bulk(b"pong");
            out.bulk(args.get(1).copied().unwrap_or_default());
        }
        "subscribe" | "psubscribe" => {
            let b = match bucket(shared, sess) {
                Ok(b) => b.clone(),
                Err(e) => {
                    store_error(shared, sess, &e, out);
                    return After::Continue;
                }
            };
            if let Err(e) = sess.subs.subscribe(
                &b,
                &args[1..],
                spec.name == "psubscribe",
                shared.cfg.max_subscriptions,
                out,
            ) {
                store_error(shared, sess, &e, out);
            }
        }
        "unsubscribe" | "punsubscribe" => {
            sess.subs
                .unsubscribe(&args[1..], spec.name == "punsubscribe", out);
        }
        "ping" => match args.len() {
            1 => out.simple("PONG"),
            2 => out.bulk(args[1]),
            _ => commands::wrong_arity(out, "ping"),
        },
        "echo" => out.bulk(args[1]),
        "time" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            out.array(2);
            out.bulk(now.as_secs().to_string().as_bytes());
            out.bulk(now.subsec_micros().to_string().as_bytes());
        }
        "quit" => {
            out.ok();
            return After::Close;
        }
        "select" => match commands::parse_i64(args[1]) {
            Some(0) => out.ok(),
            Some(_) => out.error("ERR DB index is out of range"),
            None => out.error("ERR value is not an integer or out of range"),
        },
        "auth" => {
            let (name, token) = match args.len() {
                2 => (None, args[1]),
                3 => (Some(args[1]), args[2]),
                _ => {
                    out.error("ERR syntax error");
                    return After::Continue;
                }
            };
            if authenticate(shared, sess, name, token) {
                out.ok();
            } else {
                out.error("WRONGPASS invalid username-password pair or user is disabled.");
            }
        }
        "hello" => hello(shared, sess, args, out),
        "multi" => {
            if sess.multi.is_some() {
                out.error("ERR MULTI calls can not be nested");
            } else {
                sess.multi = Some((Vec::new(), false));
                out.ok();
            }
        }
        "exec" => exec(shared, sess, out),
        "discard" => {
            sess.multi_bytes = 0;
            if sess.multi.take().is_some() {
                out.ok();
            } else {
                out.error("ERR DISCARD without MULTI");
            }
        }
        "reset" => {
            sess.subs.clear();
            sess.multi = None;
            sess.multi_bytes = 0;
            sess.resp3 = false;
            sess.name = None;
            if sess.protocol != "unix" {
                sess.client = shared.cfg.dev_no_auth.clone();
            }
            out.simple("RESET");
        }
        "client" => match lower(1).as_deref() {
            Some(b"setname") if args.len() == 3 => {
                if commands::connection_name_ok(args[2], out) {
                    let n = String::from_utf8_lossy(args[2]).into_owned();
                    sess.name = (!n.is_empty()).then_some(n);
                    out.ok();
                }
            }
            Some(b"getname") if args.len() == 2 => match &sess.name {
                Some(n) => out.bulk(n.as_bytes()),
                None => out.null(),
            },
            Some(b"id") if args.len() == 2 => out.int(i64::try_from(sess.id).unwrap_or(i64::MAX)),
            Some(b"info") if args.len() == 2 => out.verbatim(&client_info(sess)),
            Some(b"setinfo") if args.len() == 4 => out.ok(),
            Some(_) => out.error(&format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(args[1])
            )),
            None => commands::wrong_arity(out, "client"),
        },
        "command" => command(args, out),
        "config" => match lower(1).as_deref() {
            Some(b"get") if args.len() >= 3 => {
                let known: [(&str, String); 3] = [
                    ("appendonly", "no".into()),
                    ("save", String::new()),
                    ("databases", "1".into()),
                ];
                let hits: Vec<&(&str, String)> = known
                    .iter()
                    .filter(|(k, _)| {
                        args[2..]
                            .iter()
                            .any(|p| crate::glob::matches(&p.to_ascii_lowercase(), k.as_bytes()))
                    })
                    .collect();
                out.map(hits.len());
                for (k, v) in hits {
                    out.bulk(k.as_bytes());
                    out.bulk(v.as_bytes());
                }
            }
            _ => out.error("ERR CONFIG is limited to CONFIG GET on libstate"),
        },
        "info" => out.verbatim(&info(shared, sess)),
        _ => commands::unknown_command(out, args),
    }
    After::Continue
}

/// Checks a token (with an optional client name) and binds the session to the
/// client. The failure says neither which part was wrong nor whether the client
/// exists; it is logged.
fn authenticate(shared: &Shared, sess: &mut Session, name: Option<&[u8]>, token: &[u8]) -> bool {
    let name_text = name.map(|n| String::from_utf8_lossy(n).into_owned());
    let token = String::from_utf8_lossy(token);
    match shared.registry.verify(name_text.as_deref(), &token) {
        Some(client) => {
            shared.apply_quota(&client);
            tracing::debug!(conn = sess.id, client = %client, "authenticated");
            shared.signed_in(
                sess.id,
                Some((client.clone(), crate::auth::hash_token(&token))),
            );
            sess.client = Some(client);
            if sess.subs.active() {
                // Subscriptions follow the connection's client: never another's keys.
                let rebound = bucket(shared, sess)
                    .cloned()
                    .and_then(|b| sess.subs.rebind(&b));
                if let Err(e) = rebound {
                    tracing::warn!(conn = sess.id, "dropping subscriptions after AUTH: {e}");
                    sess.subs.clear();
                }
            }
            true
        }
        None => {
            shared.metrics.error(ErrorClass::Auth);
            // Rate-limited, with the offered name cut short and escaped: a peer must
            // not be able to flood the log or forge lines in it.
            if let Some(held) = shared.auth_log.allow() {
                let shown = name.map(|n| crate::metrics::log_safe(n, 64));
                tracing::warn!(conn = sess.id, peer = %sess.peer, name = ?shown, held_back = held, "authentication failed");
            }
            false
        }
    }
}

/// HELLO [protover [AUTH name token] [SETNAME name]]
fn hello(shared: &Shared, sess: &mut Session, args: &[&[u8]], out: &mut Out) {
    let mut proto = if sess.resp3 { 3 } else { 2 };
    let mut i = 1;
    if let Some(v) = args.get(1) {
        match commands::parse_i64(v) {
            Some(p @ (2 | 3)) => proto = p,
            Some(_) => {
                out.error("NOPROTO unsupported protocol version");
                return;
            }
            None => {
                out.error("ERR Protocol version is not an integer or out of range");
                return;
            }
        }
        i = 2;
    }
    let mut setname = None;
    let mut auth = None;
    // Every option is checked (SETNAME's name as CLIENT SETNAME's) before AUTH runs,
    // so a HELLO that fails changes nothing (Redis 7.0 authenticates first).
    while i < args.len() {
        let opt = args[i].to_ascii_lowercase();
        if opt == b"auth" && i + 2 < args.len() {
            auth = Some((args[i + 1], args[i + 2]));
            i += 3;
        } else if opt == b"setname" && i + 1 < args.len() {
            if !commands::connection_name_ok(args[i + 1], out) {
                return;
            }
            setname = Some(String::from_utf8_lossy(args[i + 1]).into_owned());
            i += 2;
        } else {
            out.error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&opt)
            ));
            return;
        }
    }
    if let Some((name, token)) = auth {
        if !authenticate(shared, sess, Some(name), token) {
            out.error("WRONGPASS invalid username-password pair or user is disabled.");
            return;
        }
    }
    if sess.client.is_none() {
        out.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    if let Some(n) = setname {
        sess.name = (!n.is_empty()).then_some(n);
    }
    sess.resp3 = proto == 3;
    out.resp3 = sess.resp3;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(proto);
    out.bulk(b"id");
    out.int(i64::try_from(sess.id).unwrap_or(i64::MAX));
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
}

fn client_info(sess: &Session) -> String {
    format!(
        "id={} addr={} laddr= fd=0 name={} db=0 user={} resp={} lib=libstate\n",
        sess.id,
        sess.peer,
        sess.name.as_deref().unwrap_or(""),
        sess.client.as_deref().unwrap_or("(none)"),
        if sess.resp3 { 3 } else { 2 }
    )
}

fn command(args: &[&[u8]], out: &mut Out) {
    match args.get(1).map(|a| a.to_ascii_lowercase()).as_deref() {
        None => {
            out.array(commands::COMMANDS.len());
            for s in commands::COMMANDS {
                let keyed = s.kind != Kind::Conn
                    && !matches!(
                        s.name,
                        "dbsize" | "scan" | "flushdb" | "flushall" | "randomkey"
                    );
                out.array(6);
                out.bulk(s.name.as_bytes());
                out.int(i64::from(s.arity));
                out.array(1);
                out.simple(if s.write { "write" } else { "readonly" });
                // First key, last key, step (as Redis's legacy key specs).
                out.int(match s.name {
                    _ if !keyed => 0,
                    "bitop" | "object" => 2,
                    _ => 1,
                });
                out.int(if !keyed {
                    0
                } else if matches!(
                    s.name,
                    "mget" | "del" | "unlink" | "exists" | "mset" | "msetnx" | "touch" | "bitop"
                ) {
                    -1
                } else if matches!(s.name, "rename" | "renamenx" | "copy" | "lcs") {
                    2
                } else if s.name == "object" {
                    2
                } else {
                    1
                });
                out.int(if !keyed {
                    0
                } else if matches!(s.name, "mset" | "msetnx") {
                    2
                } else {
                    1
                });
            }
        }
        Some(b"count") => out.int(commands::COMMANDS.len() as i64),
        // redis-cli asks for command docs on start; it works without them.
        Some(b"docs") => out.map(0),
        Some(_) => out
            .error("ERR COMMAND is limited to COMMAND, COMMAND COUNT and COMMAND DOCS on libstate"),
    }
}

fn info(shared: &Shared, sess: &Session) -> String {
    let client = sess.client.clone().unwrap_or_default();
    let usage = shared.svc.usage(&client).unwrap_or_default();
    let quota = shared.svc.quota(&client);
    let opt = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
    format!(
        "# Server\r\nredis_version:{}\r\nlibstate_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\n\r\n\
         # Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n\r\n\
         # Persistence\r\nengine:{}\r\nloading:0\r\n\r\n\
         # Client\r\nclient:{}\r\nrecords:{}\r\nbytes:{}\r\nmax_records:{}\r\nmax_bytes:{}\r\nmax_value_size:{}\r\n\r\n\
         # Keyspace\r\ndb0:keys={},expires=0,avg_ttl=0\r\n",
        crate::REDIS_VERSION,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::process::id(),
        shared.metrics.connections_open.load(Relaxed),
        shared.cfg.max_connections,
        shared.svc.store().engine().as_str(),
        client,
        usage.records,
        usage.bytes,
        opt(quota.max_records),
        opt(quota.max_bytes),
        opt(quota.max_value_size),
        usage.records,
    )
}
