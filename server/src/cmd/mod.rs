//! The Redis commands: one table ([`COMMANDS`]) that says for each command its
//! name, arity, flags, key positions and handler, and one module per command
//! family holding the handlers. COMMAND, the checks a request passes before it
//! runs (sign-in, subscribed mode, MULTI queueing), where it runs (on or off the
//! event loop) and the metrics' command names all read the table; no other code
//! names a command.
//!
//! Data commands run against a core transaction ([`state_core::Txn`]), so
//! read-modify-writes are atomic against every other client and MULTI/EXEC applies
//! its queue as one batch; the commonest reads and plain writes have a fast path
//! over the bucket's direct methods, with the same replies.

mod admin;
mod args;
mod batch;
mod bits;
mod connection;
mod counters;
mod events;
mod expiry;
mod keys;
mod pubsub;
mod scan;
mod server;
mod state;
mod strings;
mod transactions;

pub(crate) use batch::{refused, reply_room, Run};

/// A command's slot in the table and its entry, if the name is a command.
pub(crate) type Found = Option<(usize, &'static Spec)>;
use state_core::{Bucket, Error, Txn};
use state_service::{Error as SvcError, StateService};

use args::{arity_message, strip_kind, Args, Fail, Res};

use crate::metrics::ErrorClass;
use crate::resp::Out;
use crate::session::Session;
use crate::Shared;

/// What the connection does after a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    Continue,
    Close,
}

/// A data command inside a transaction.
type TxnFn = fn(&mut Txn<'_>, &mut Args<'_>, &mut Out) -> Res;
/// A data command's fast path over the bucket outside MULTI: `Ok(false)` if this
/// request needs the transaction after all (nothing was written to the output).
type FastFn = fn(&Bucket, &StateService, Args<'_>, &mut Out) -> Result<bool, Error>;
/// A command on the connection or the server (no transaction).
type SessionFn = fn(&Shared, &mut Session, &mut Args<'_>, &mut Out) -> After;

/// How a command runs.
#[derive(Clone, Copy)]
pub(crate) enum Handler {
    /// On the connection's session: connection, server, pub/sub, MULTI control
    /// and SCAN (its cursor is the service's). Queued by MULTI like the rest
    /// (except MULTI control), run by EXEC outside the queue's transaction unless
    /// it only replies ([`Spec::in_multi`]).
    Session(SessionFn),
    /// On the client's keys, inside a transaction (queued by MULTI), with an
    /// optional fast path outside MULTI.
    Data { txn: TxnFn, fast: Option<FastFn> },
}

/// Where a command's keys are among its arguments, as COMMAND reports them
/// (Redis's first key, last key (negative: from the end) and step; all 0 for
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keys {
    pub(crate) first: i8,
    pub(crate) last: i8,
    pub(crate) step: i8,
}

impl Keys {
    /// No keys.
    const NONE: Keys = Keys::new(0, 0, 0);
    /// One key, the first argument.
    const ONE: Keys = Keys::new(1, 1, 1);
    /// Every argument is a key.
    const ALL: Keys = Keys::new(1, -1, 1);
    /// Key-value pairs: every other argument is a key.
    const PAIRS: Keys = Keys::new(1, -1, 2);

    const fn new(first: i8, last: i8, step: i8) -> Keys {
        Keys { first, last, step }
    }

    /// The keys among `argv` (name first).
    pub(crate) fn of<'a, T>(self, argv: &'a [T]) -> impl Iterator<Item = &'a T> + 'a {
        let n = argv.len() as isize;
        let first = self.first as isize;
        let last = if self.last < 0 {
            n + self.last as isize
        } else {
            self.last as isize
        };
        let step = (self.step as usize).max(1);
        let range = if self.first == 0 || last < first {
            0..0
        } else {
            first as usize..(last as usize + 1).min(argv.len())
        };
        argv[range].iter().step_by(step)
    }
}

/// One command's table entry.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    /// Lowercase name.
    pub(crate) name: &'static str,
    /// Redis arity: n, exactly n arguments counting the name; -n, at least n.
    pub(crate) arity: i32,
    /// Whether it writes (COMMAND's flags).
    pub(crate) write: bool,
    /// Whether its work grows with the data: it runs where it cannot stall the
    /// connections that share its thread.
    pub(crate) heavy: bool,
    /// Allowed before the connection has signed in.
    pub(crate) open: bool,
    /// Allowed in RESP2 subscribed mode.
    pub(crate) subscribed: bool,
    /// Runs at once inside MULTI (the transaction's own commands) rather than
    /// being queued or refused.
    pub(crate) txn_control: bool,
    /// Its reply is the values of its keys (EXEC measures them before it runs).
    pub(crate) returns_values: bool,
    /// A session command that only replies, so EXEC runs it in its place inside
    /// the queue's transaction. (MULTI queues every command but the
    /// `txn_control` ones, as Redis does; EXEC runs the other session commands
    /// right after the queue's data commands committed, in queue order.)
    pub(crate) in_multi: bool,
    /// Refused inside MULTI, and the transaction with it (Redis's `no-multi`
    /// commands: SAVE, SHUTDOWN).
    pub(crate) no_multi: bool,
    /// Key positions.
    pub(crate) keys: Keys,
    /// The handler.
    pub(crate) run: Handler,
}

impl Spec {
    const fn new(name: &'static str, arity: i32, keys: Keys, run: Handler) -> Spec {
        Spec {
            name,
            arity,
            write: false,
            heavy: false,
            open: false,
            subscribed: false,
            txn_control: false,
            returns_values: false,
            in_multi: false,
            no_multi: false,
            keys,
            run,
        }
    }

    /// A session command (no keys).
    const fn session(name: &'static str, arity: i32, f: SessionFn) -> Spec {
        Spec::new(name, arity, Keys::NONE, Handler::Session(f))
    }

    /// A data command (one key, the first argument, unless [`Spec::keys`] says
    /// otherwise).
    const fn data(name: &'static str, arity: i32, txn: TxnFn) -> Spec {
        Spec::new(name, arity, Keys::ONE, Handler::Data { txn, fast: None })
    }

    const fn fast(self, fast: FastFn) -> Spec {
        let txn = match self.run {
            Handler::Data { txn, .. } => txn,
            // A session command has no fast path: the table is built wrong.
            Handler::Session(_) => panic!("fast path on a session command"),
        };
        Spec {
            run: Handler::Data {
                txn,
                fast: Some(fast),
            },
            ..self
        }
    }

    const fn write(self) -> Spec {
        Spec {
            write: true,
            ..self
        }
    }

    const fn heavy(self) -> Spec {
        Spec {
            heavy: true,
            ..self
        }
    }

    const fn open(self) -> Spec {
        Spec { open: true, ..self }
    }

    const fn subscribed(self) -> Spec {
        Spec {
            subscribed: true,
            ..self
        }
    }

    const fn txn_control(self) -> Spec {
        Spec {
            txn_control: true,
            ..self
        }
    }

    const fn returns_values(self) -> Spec {
        Spec {
            returns_values: true,
            ..self
        }
    }

    const fn in_multi(self) -> Spec {
        Spec {
            in_multi: true,
            ..self
        }
    }

    const fn no_multi(self) -> Spec {
        Spec {
            no_multi: true,
            ..self
        }
    }

    const fn keys(self, keys: Keys) -> Spec {
        Spec { keys, ..self }
    }

    /// Whether it runs inside a transaction (a data command; EXEC runs it in the
    /// queue's transaction).
    pub(crate) fn queued(&self) -> bool {
        matches!(self.run, Handler::Data { .. })
    }

    /// Whether `n` arguments (counting the name) fit the arity.
    pub(crate) fn arity_ok(&self, n: usize) -> bool {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        if self.arity >= 0 {
            n == self.arity
        } else {
            n >= -self.arity
        }
    }
}

use connection as conn_;

/// Every command the server knows, in the order COMMAND and `/metrics` list them.
pub(crate) static COMMANDS: &[Spec] = &[
    Spec::session("ping", -1, conn_::ping)
        .open()
        .subscribed()
        .in_multi(),
    Spec::session("echo", 2, conn_::echo).in_multi(),
    Spec::session("quit", -1, conn_::quit)
        .open()
        .subscribed()
        .txn_control(),
    Spec::session("hello", -1, conn_::hello).open(),
    Spec::session("auth", -2, conn_::auth).open(),
    Spec::session("select", 2, conn_::select),
    Spec::session("client", -2, conn_::client),
    Spec::session("command", -1, server::command),
    Spec::session("config", -2, server::config),
    Spec::session("info", -1, server::info).heavy(),
    Spec::session("libstate.run", -3, admin::run).heavy(),
    Spec::session("libstate.load", -2, admin::load).heavy(),
    Spec::session("multi", 1, transactions::multi).txn_control(),
    Spec::session("exec", 1, transactions::exec)
        .txn_control()
        .heavy(),
    Spec::session("discard", 1, transactions::discard).txn_control(),
    Spec::session("reset", 1, conn_::reset)
        .open()
        .subscribed()
        .txn_control(),
    Spec::session("subscribe", -2, pubsub::subscribe).subscribed(),
    Spec::session("psubscribe", -2, pubsub::psubscribe).subscribed(),
    Spec::session("unsubscribe", -1, pubsub::unsubscribe).subscribed(),
    Spec::session("punsubscribe", -1, pubsub::punsubscribe).subscribed(),
    Spec::data("dbsize", 1, keys::dbsize)
        .fast(keys::dbsize_fast)
        .keys(Keys::NONE)
        .heavy(),
    Spec::data("get", 2, strings::get)
        .fast(strings::get_fast)
        .returns_values(),
    Spec::data("set", -3, strings::set)
        .fast(strings::set_fast)
        .write(),
    Spec::data("setnx", 3, strings::setnx)
        .fast(strings::setnx_fast)
        .write(),
    Spec::data("setex", 4, strings::setex).write(),
    Spec::data("psetex", 4, strings::psetex).write(),
    Spec::data("getdel", 2, strings::getdel)
        .fast(strings::getdel_fast)
        .write()
        .returns_values(),
    Spec::data("getex", -2, strings::getex)
        .write()
        .returns_values(),
    Spec::data("getset", 3, strings::getset)
        .fast(strings::getset_fast)
        .write()
        .returns_values(),
    Spec::data("mget", -2, strings::mget)
        .fast(strings::mget_fast)
        .keys(Keys::ALL)
        .returns_values(),
    Spec::data("mset", -3, strings::mset)
        .fast(strings::mset_fast)
        .keys(Keys::PAIRS)
        .write(),
    Spec::data("msetnx", -3, strings::msetnx)
        .keys(Keys::PAIRS)
        .write(),
    Spec::data("strlen", 2, strings::strlen),
    Spec::data("append", 3, strings::append)
        .fast(strings::append_fast)
        .write(),
    Spec::data("incr", 2, counters::counter)
        .fast(counters::counter_fast)
        .write(),
    Spec::data("incrby", 3, counters::counter)
        .fast(counters::counter_fast)
        .write(),
    Spec::data("decr", 2, counters::counter)
        .fast(counters::counter_fast)
        .write(),
    Spec::data("decrby", 3, counters::counter)
        .fast(counters::counter_fast)
        .write(),
    Spec::data("del", -2, keys::del).keys(Keys::ALL).write(),
    Spec::data("unlink", -2, keys::del).keys(Keys::ALL).write(),
    Spec::data("exists", -2, keys::exists).keys(Keys::ALL),
    Spec::data("type", 2, keys::type_),
    Spec::data("keys", 2, keys::keys)
        .fast(keys::keys_fast)
        .heavy(),
    Spec::data("flushdb", -1, keys::flushdb)
        .keys(Keys::NONE)
        .write()
        .heavy(),
    Spec::data("expire", -3, expiry::expire).write(),
    Spec::data("pexpire", -3, expiry::expire).write(),
    Spec::data("expireat", -3, expiry::expire).write(),
    Spec::data("pexpireat", -3, expiry::expire).write(),
    Spec::data("ttl", 2, expiry::ttl).fast(expiry::ttl_fast),
    Spec::data("pttl", 2, expiry::ttl).fast(expiry::ttl_fast),
    Spec::data("expiretime", 2, expiry::ttl),
    Spec::data("pexpiretime", 2, expiry::ttl),
    Spec::data("persist", 2, expiry::persist).write(),
    Spec::session("scan", -2, scan::scan).heavy(),
    // The client's whole key space is its one database: FLUSHALL is FLUSHDB.
    Spec::data("flushall", -1, keys::flushdb)
        .keys(Keys::NONE)
        .write()
        .heavy(),
    Spec::data("setrange", 4, bits::setrange).write(),
    Spec::data("getrange", 4, bits::getrange).returns_values(),
    Spec::data("substr", 4, bits::getrange).returns_values(),
    Spec::data("setbit", 4, bits::setbit).write(),
    Spec::data("getbit", 3, bits::getbit),
    Spec::data("bitcount", -2, bits::bitcount),
    Spec::data("bitpos", -3, bits::bitpos),
    Spec::data("bitop", -4, bits::bitop)
        .keys(Keys::new(2, -1, 1))
        .write(),
    Spec::data("lcs", -3, bits::lcs)
        .keys(Keys::new(1, 2, 1))
        .heavy(),
    Spec::data("incrbyfloat", 3, counters::incrbyfloat).write(),
    Spec::data("rename", 3, keys::rename)
        .keys(Keys::new(1, 2, 1))
        .write(),
    Spec::data("renamenx", 3, keys::rename)
        .keys(Keys::new(1, 2, 1))
        .write(),
    Spec::data("copy", -3, keys::copy)
        .keys(Keys::new(1, 2, 1))
        .write(),
    Spec::data("randomkey", 1, keys::randomkey).keys(Keys::NONE),
    Spec::data("touch", -2, keys::touch).keys(Keys::ALL),
    Spec::data("object", -2, keys::object).keys(Keys::new(2, 2, 1)),
    Spec::session("time", 1, server::time).in_multi(),
    Spec::session("watch", -2, transactions::watch).txn_control(),
    Spec::session("unwatch", 1, transactions::unwatch).in_multi(),
    Spec::session("lastsave", 1, server::lastsave),
    Spec::session("save", 1, server::save).heavy().no_multi(),
    Spec::session("shutdown", -1, server::shutdown).no_multi(),
    Spec::session("publish", 3, pubsub::publish),
    Spec::session("pubsub", -2, pubsub::pubsub),
    // libstate's own commands (cmd/state.rs, docs/service.md "libstate's commands").
    Spec::session("state.range", -3, state::range).heavy(),
    Spec::data("state.batch", -2, state::batch)
        .keys(Keys::NONE)
        .write(),
];

/// A command name of up to 16 bytes, lowercased (ASCII) and packed into one
/// integer, so a lookup compares integers, not strings; `None` if longer.
fn packed_name(name: &[u8]) -> Option<u128> {
    if name.len() > 16 {
        return None;
    }
    let mut w = [0u8; 16];
    for (slot, &c) in w.iter_mut().zip(name) {
        *slot = c.to_ascii_lowercase();
    }
    Some(u128::from_le_bytes(w))
}

/// The table index and entry of a command name (any case).
pub(crate) fn lookup(name: &[u8]) -> Found {
    /// The table's names packed ([`packed_name`]) with their indexes, by name
    /// length: a lookup compares a few integers (this runs for every request).
    static BY_LEN: std::sync::LazyLock<[Vec<(u128, usize)>; 17]> = std::sync::LazyLock::new(|| {
        let mut by_len: [Vec<(u128, usize)>; 17] = Default::default();
        for (i, s) in COMMANDS.iter().enumerate() {
            if let (Some(v), Some(p)) =
                (by_len.get_mut(s.name.len()), packed_name(s.name.as_bytes()))
            {
                v.push((p, i));
            }
        }
        by_len
    });
    let candidates = BY_LEN.get(name.len())?;
    let want = packed_name(name)?;
    candidates
        .iter()
        .find(|&&(p, _)| p == want)
        .map(|&(_, i)| (i, &COMMANDS[i]))
}

/// `-ERR unknown command ...` as Redis words it.
fn unknown_command(out: &mut Out, args: &[&[u8]]) {
    let name = String::from_utf8_lossy(args.first().copied().unwrap_or_default());
    let mut msg = format!("ERR unknown command '{}', with args beginning with: ", name);
    for a in args.iter().skip(1).take(20) {
        msg.push_str(&format!("'{}' ", String::from_utf8_lossy(a)));
    }
    out.error(&msg);
}

/// `-ERR wrong number of arguments ...`.
fn wrong_arity(out: &mut Out, name: &str) {
    out.error(&arity_message(name));
}

/// The reply for an error that ends one command (not the connection).
fn error_reply(out: &mut Out, e: &SvcError) {
    match e.as_store() {
        Some(core) if e.is_invalid_argument() => out.error(&format!("ERR {}", strip_kind(core))),
        _ => out.error(&format!("ERR {e}")),
    }
}

/// Counts, logs (if it is the store's fault) and replies with a store error.
fn store_error(shared: &Shared, sess: &Session, e: &SvcError, out: &mut Out) {
    let class = ErrorClass::of(e.kind());
    shared.metrics.error(class);
    if matches!(class, ErrorClass::Store) {
        tracing::error!(conn = sess.id, "store error: {e}");
    }
    error_reply(out, e);
}

/// Resolves the session's bucket (once per client).
fn ensure_bucket(shared: &Shared, sess: &mut Session) -> state_service::Result<()> {
    let client = sess.client.as_deref().unwrap_or_default();
    if sess.bucket.as_ref().is_none_or(|b| b.name() != client) {
        sess.bucket = Some(shared.svc.client(client)?);
    }
    Ok(())
}

/// The session's bucket (resolved once per client).
fn bucket<'s>(shared: &Shared, sess: &'s mut Session) -> state_service::Result<&'s Bucket> {
    ensure_bucket(shared, sess)?;
    sess.bucket
        .as_ref()
        .ok_or_else(|| Error::Internal("session without a bucket".into()).into())
}

/// Whether a request of `nargs` arguments for command `found` must run off the
/// connection's event loop (work that grows with the data or the arguments, and
/// every write of a store whose writes wait for fsync), so that it never stalls the
/// connections that share the loop's thread.
pub(crate) fn runs_long(shared: &Shared, found: Found, nargs: usize) -> bool {
    nargs > 64 || found.is_some_and(|(_, s)| s.heavy || (s.write && shared.cfg.blocking_store))
}

/// Runs one request, writing its reply: checks the command against the session
/// (arity, sign-in, subscribed mode, MULTI) and runs it. `found`: the command, as
/// [`lookup`] finds `args[0]` (the caller looks it up first, to see whether the
/// request [`runs_long`]).
pub(crate) fn request_found(
    shared: &Shared,
    sess: &mut Session,
    found: Found,
    args: &[&[u8]],
    out: &mut Out,
) -> After {
    use crate::session::Reply;
    let mark = out.buf.len();
    let skipping = sess.reply == Reply::Skip;
    let after = match &sess.tracking {
        // NOLOOP: the tracking waker tells this connection's writes by thread.
        Some(t) if t.noloop() => {
            let id = sess.id;
            crate::tracking::as_writer(id, || request_inner(shared, sess, found, args, out))
        }
        _ => request_inner(shared, sess, found, args, out),
    };
    if sess.tracking.is_some() {
        track(sess, found.map(|(_, s)| s), args);
    }
    // CLIENT REPLY OFF / SKIP: the reply is dropped, except pub/sub confirmations
    // (pushes, which Redis sends whatever the mode).
    match sess.reply {
        Reply::On => {}
        _ if found.is_some_and(|(_, s)| s.subscribed && s.name.ends_with("subscribe")) => {}
        Reply::Off => out.buf.truncate(mark),
        Reply::Skip if !skipping => out.buf.truncate(mark),
        Reply::Skip => {
            out.buf.truncate(mark);
            sess.reply = Reply::On;
        }
    }
    after
}

/// CLIENT TRACKING (default mode): remembers the keys of a read-only data
/// command that ran (or was queued by MULTI: remembering a key before it is read
/// is as safe), then lets CLIENT CACHING's choice lapse (not after a CLIENT
/// subcommand, nor inside MULTI, as Redis).
fn track(sess: &mut Session, spec: Option<&'static Spec>, args: &[&[u8]]) {
    let Some(t) = sess.tracking.as_mut() else {
        return;
    };
    if let Some(spec) = spec {
        if spec.queued() && !spec.write && spec.arity_ok(args.len()) && sess.client.is_some() {
            t.read(spec.keys.of(args).copied());
        }
    }
    // Redis keeps CLIENT CACHING's choice across CLIENT subcommands and MULTI.
    let keep = sess.multi.is_some() || spec.is_some_and(|s| s.name == "client");
    t.command_done(keep);
}

fn request_inner(
    shared: &Shared,
    sess: &mut Session,
    found: Found,
    args: &[&[u8]],
    out: &mut Out,
) -> After {
    out.resp3 = sess.resp3;
    sess.local.command(found.map(|(i, _)| i));
    let Some((_, spec)) = found else {
        if let Some((_, refused)) = sess.multi.as_mut() {
            *refused = true;
        }
        shared.metrics.error(ErrorClass::Invalid);
        unknown_command(out, args);
        return After::Continue;
    };
    if !spec.arity_ok(args.len()) {
        if let Some((_, refused)) = sess.multi.as_mut() {
            *refused = true;
        }
        shared.metrics.error(ErrorClass::Invalid);
        wrong_arity(out, spec.name);
        return After::Continue;
    }
    if sess.client.is_none() && !spec.open {
        out.error("NOAUTH Authentication required.");
        return After::Continue;
    }
    if sess.subs.active() && !sess.resp3 && !spec.subscribed {
        out.error(&format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        ));
        return After::Continue;
    }
    if sess.multi.is_some() && spec.no_multi {
        if let Some((_, refused)) = sess.multi.as_mut() {
            *refused = true;
        }
        shared.metrics.error(ErrorClass::Invalid);
        out.error("ERR Command not allowed inside a transaction");
        return After::Continue;
    }
    if sess.multi.is_some() && !spec.txn_control {
        return transactions::queue(shared, sess, args, out);
    }
    // Work that grows with the data or the arguments, and every request of a store
    // whose writes wait for fsync, runs where it cannot stall other connections.
    if shared.cfg.blocking_store || spec.heavy || args.len() > 64 {
        crate::off_loop(|| dispatch(shared, sess, spec, args, out))
    } else {
        dispatch(shared, sess, spec, args, out)
    }
}

/// Runs a command that passed the checks of [`request_found`].
fn dispatch(
    shared: &Shared,
    sess: &mut Session,
    spec: &Spec,
    argv: &[&[u8]],
    out: &mut Out,
) -> After {
    let mut args = Args::new(spec.name, argv);
    match spec.run {
        Handler::Session(f) => f(shared, sess, &mut args, out),
        Handler::Data { txn, fast } => {
            data_command(shared, sess, txn, fast, args, out);
            After::Continue
        }
    }
}

fn data_command(
    shared: &Shared,
    sess: &mut Session,
    txn: TxnFn,
    fast: Option<FastFn>,
    args: Args<'_>,
    out: &mut Out,
) {
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
    if let Some(fast) = fast {
        match fast(bucket, &shared.svc, args, out) {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => return store_error(shared, sess, &e.into(), out),
        }
    }
    // The reply goes straight into the output; a failed transaction takes it back,
    // and so does each attempt that a shared engine (Redis) runs again after a
    // conflict with another process.
    let mark = out.buf.len();
    let r = shared.svc.transaction_in(bucket, |tx| {
        out.buf.truncate(mark);
        run_in_txn(tx, txn, args, out)
    });
    if let Err(e) = r {
        out.buf.truncate(mark);
        store_error(shared, sess, &e, out);
    }
}

/// The fast path of a single-key read-modify-write command (INCR, APPEND, SETNX,
/// GETSET, GETDEL and kin) outside MULTI: for a client without a quota, `f` reads
/// its arguments and runs one [`Bucket::update`], writing its reply; an error reply
/// or a store error replaces whatever it wrote, as its transaction handler's would.
fn update_fast(
    bucket: &Bucket,
    svc: &StateService,
    out: &mut Out,
    f: impl FnOnce(&mut Out) -> Res,
) -> Result<bool, Error> {
    if svc.has_quota(bucket.name()) {
        return Ok(false);
    }
    let mark = out.buf.len();
    match f(out) {
        Ok(()) => Ok(true),
        Err(Fail::Reply(msg)) => {
            out.buf.truncate(mark);
            out.error(&msg);
            Ok(true)
        }
        Err(Fail::Store(e)) => {
            out.buf.truncate(mark);
            Err(e)
        }
    }
}

/// Runs a data command's transaction handler in `tx`, writing its reply.
///
/// # Errors
/// A store error (I/O, closed, corrupt, quota at commit): the whole transaction
/// must be abandoned.
fn run_in_txn(
    tx: &mut Txn<'_>,
    txn: TxnFn,
    mut args: Args<'_>,
    out: &mut Out,
) -> Result<(), Error> {
    match txn(tx, &mut args, out) {
        Ok(()) => Ok(()),
        Err(Fail::Reply(msg)) => {
            out.error(&msg);
            Ok(())
        }
        Err(Fail::Store(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_fit_the_lookup() {
        let mut seen = std::collections::BTreeSet::new();
        for s in COMMANDS {
            assert!(seen.insert(s.name), "{} twice", s.name);
            assert_eq!(s.name, s.name.to_ascii_lowercase());
            assert!(s.name.len() <= 16);
            let (i, found) = lookup(s.name.to_ascii_uppercase().as_bytes()).unwrap();
            assert_eq!(found.name, s.name);
            assert!(std::ptr::eq(&COMMANDS[i], found));
        }
        assert!(lookup(b"nosuchcommand").is_none());
    }

    #[test]
    fn key_positions_pick_the_keys() {
        let argv: [&[u8]; 5] = [b"mset", b"a", b"1", b"b", b"2"];
        let keys: Vec<_> = Keys::PAIRS.of(&argv).collect();
        assert_eq!(keys, [&&b"a"[..], &&b"b"[..]]);
        let keys: Vec<_> = Keys::ALL.of(&argv).collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(Keys::ONE.of(&argv).count(), 1);
        assert_eq!(Keys::NONE.of(&argv).count(), 0);
        assert_eq!(Keys::ONE.of(&argv[..1]).count(), 0);
    }

    #[test]
    fn only_data_commands_are_queued_and_only_they_have_key_positions_or_values() {
        for s in COMMANDS {
            if !s.queued() {
                assert_eq!(s.keys, Keys::NONE, "{}", s.name);
                assert!(!s.write && !s.returns_values, "{}", s.name);
            }
            if s.txn_control {
                assert!(!s.queued(), "{}", s.name);
            }
        }
    }
}
