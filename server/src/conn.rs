//! One Redis-protocol connection: reading, pipelining, authentication, MULTI, and
//! the connection-level commands.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use state_core::Bucket;

use crate::commands::{self, Kind, Spec};
use crate::metrics::ErrorClass;
use crate::pubsub::{Broken, Subscriptions};
use crate::resp::{self, Out, ParseLimits, Parsed};
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
            protocol,
            local: crate::metrics::Local::default(),
            subs: Subscriptions::default(),
        }
    }
}

/// Serves one connection until the peer closes it, a protocol error, or shutdown.
pub(crate) async fn serve<S>(shared: Arc<Shared>, mut stream: S, mut sess: Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(c) = &sess.client {
        shared.apply_quota(c);
    }
    let limits = ParseLimits {
        max_args: shared.cfg.max_multibulk,
        max_bulk: shared.max_bulk(),
        max_inline: 64 << 10,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut out = Out::new(false);
    let shutdown = shared.shutdown.clone();
    loop {
        // Run every complete request received so far.
        let mut consumed = 0;
        let mut close = false;
        let mut argv: Vec<&[u8]> = Vec::new();
        loop {
            let parsed = resp::parse(&buf[consumed..], &limits);
            match parsed {
                Ok(Parsed::Request { args, len }) => {
                    let base = consumed;
                    argv.clear();
                    argv.extend(args.iter().map(|r| &buf[base + r.start..base + r.end]));
                    consumed += len;
                    let started = Instant::now();
                    let after = if shared.cfg.blocking_store {
                        tokio::task::block_in_place(|| request(&shared, &mut sess, &argv, &mut out))
                    } else {
                        request(&shared, &mut sess, &argv, &mut out)
                    };
                    sess.local.latency(started.elapsed());
                    if after == After::Close {
                        close = true;
                        break;
                    }
                    if out.buf.len() > shared.cfg.max_output_bytes {
                        tracing::warn!(conn = sess.id, peer = %sess.peer, "closing a connection whose reply exceeded the output buffer limit of {} bytes", shared.cfg.max_output_bytes);
                        return;
                    }
                    if out.buf.len() >= FLUSH_AT {
                        break;
                    }
                }
                Ok(Parsed::Empty(n)) => consumed += n,
                Ok(Parsed::Incomplete) => break,
                Err(e) => {
                    shared.metrics.error(ErrorClass::Protocol);
                    tracing::info!(conn = sess.id, peer = %sess.peer, "protocol error, closing: {}", e.0);
                    out.error(&format!("ERR Protocol error: {}", e.0));
                    let _ = stream.write_all(&out.buf).await;
                    return;
                }
            }
        }
        buf.drain(..consumed);
        sess.local.flush(&shared.metrics);
        if let Err(broken) = sess.subs.drain(&mut out) {
            match broken {
                Broken::Lagged(n) => {
                    shared.metrics.error(ErrorClass::Protocol);
                    tracing::warn!(conn = sess.id, peer = %sess.peer, "closing a subscribed connection that fell {n} events behind");
                }
                Broken::Ended => {}
            }
            let _ = stream.write_all(&out.buf).await;
            return;
        }
        if !out.buf.is_empty() {
            if stream.write_all(&out.buf).await.is_err() {
                return;
            }
            out.buf.clear();
            if out.buf.capacity() > (1 << 20) {
                out.buf.shrink_to(16 << 10);
            }
        }
        if close {
            return;
        }
        if consumed > 0 && !buf.is_empty() {
            // More complete requests may be waiting (we stopped to flush).
            if matches!(
                resp::parse(&buf, &limits),
                Ok(Parsed::Request { .. } | Parsed::Empty(_))
            ) {
                continue;
            }
        }
        if buf.capacity() > (1 << 20) && buf.len() < (16 << 10) {
            buf.shrink_to(16 << 10);
        }
        // Wait for more bytes: a partly received request must complete within the
        // read timeout (slowloris); an idle connection waits for the idle timeout
        // (none by default) or shutdown.
        let partial = !buf.is_empty();
        let timeout = if partial {
            Some(shared.cfg.read_timeout)
        } else {
            shared.cfg.idle_timeout
        };
        let read = async {
            buf.reserve(16 << 10);
            match timeout {
                Some(t) => tokio::time::timeout(t, stream.read_buf(&mut buf))
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
                    tracing::info!(conn = sess.id, peer = %sess.peer, partial, "closing a connection: read timeout");
                    return;
                }
            },
            () = shutdown.cancelled() => return,
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
        return queue(sess, spec, args, out);
    }
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

fn queue(sess: &mut Session, spec: &Spec, args: &[&[u8]], out: &mut Out) -> After {
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
    queued.push(args.iter().map(|a| a.to_vec()).collect());
    out.simple("QUEUED");
    After::Continue
}

fn exec(shared: &Shared, sess: &mut Session, out: &mut Out) {
    let Some((queued, refused)) = sess.multi.take() else {
        out.error("ERR EXEC without MULTI");
        return;
    };
    if refused {
        out.error("EXECABORT Transaction discarded because of previous errors.");
        return;
    }
    let client = sess.client.clone().unwrap_or_default();
    let mut replies = Out::new(sess.resp3);
    let r = shared.svc.transaction(&client, |tx| {
        replies.buf.clear();
        for cmd in &queued {
            let argv: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
            if let Some((_, spec)) = commands::lookup(argv[0]) {
                commands::exec_in_txn(tx, spec, &argv, &mut replies)?;
            }
        }
        Ok(())
    });
    match r {
        Ok(()) => {
            out.array(queued.len());
            out.buf.extend_from_slice(&replies.buf);
        }
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
            if let Err(e) = sess
                .subs
                .subscribe(&b, &args[1..], spec.name == "psubscribe", out)
            {
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
            if sess.multi.take().is_some() {
                out.ok();
            } else {
                out.error("ERR DISCARD without MULTI");
            }
        }
        "reset" => {
            sess.subs.clear();
            sess.multi = None;
            sess.resp3 = false;
            sess.name = None;
            if sess.protocol != "unix" {
                sess.client = None;
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
    let name = name.map(|n| String::from_utf8_lossy(n).into_owned());
    let token = String::from_utf8_lossy(token);
    match shared.registry.verify(name.as_deref(), &token) {
        Some(client) => {
            shared.apply_quota(&client);
            tracing::debug!(conn = sess.id, client = %client, "authenticated");
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
            tracing::warn!(conn = sess.id, peer = %sess.peer, name = ?name, "authentication failed");
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
                    && s.name != "dbsize"
                    && s.name != "scan"
                    && s.name != "flushdb";
                out.array(6);
                out.bulk(s.name.as_bytes());
                out.int(i64::from(s.arity));
                out.array(1);
                out.simple(if s.write { "write" } else { "readonly" });
                out.int(i64::from(keyed));
                out.int(if !keyed {
                    0
                } else if matches!(
                    s.name,
                    "mget" | "del" | "unlink" | "exists" | "mset" | "msetnx"
                ) {
                    -1
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
