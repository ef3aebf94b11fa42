//! Connection commands: PING, ECHO, QUIT, SELECT, AUTH, HELLO, RESET, CLIENT.

use super::args::{parse_i64, Args, NOT_INTEGER, SYNTAX};
use super::{bucket, wrong_arity, After};
use crate::metrics::ErrorClass;
use crate::resp::Out;
use crate::session::Session;
use crate::Shared;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// PING [message] (in RESP2 subscribed mode, in the pub/sub shape).
pub(super) fn ping(_: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    if sess.subs.active() && !sess.resp3 {
        out.array(2);
        out.bulk(b"pong");
        out.bulk(a.next().unwrap_or_default());
        return After::Continue;
    }
    match (a.next(), a.remaining()) {
        (None, _) => out.simple("PONG"),
        (Some(m), 0) => out.bulk(m),
        _ => wrong_arity(out, a.name()),
    }
    After::Continue
}

/// ECHO message
pub(super) fn echo(_: &Shared, _: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    out.bulk(a.next().unwrap_or_default());
    After::Continue
}

/// QUIT: replies, then the connection closes.
pub(super) fn quit(_: &Shared, _: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    out.ok();
    After::Close
}

/// SELECT 0 (the only database).
pub(super) fn select(_: &Shared, _: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    match a.next().and_then(parse_i64) {
        Some(0) => out.ok(),
        Some(_) => out.error("ERR DB index is out of range"),
        None => out.error(NOT_INTEGER),
    }
    After::Continue
}

/// AUTH [name] token
pub(super) fn auth(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    let (name, token) = match a.rest() {
        [token] => (None, *token),
        [name, token] => (Some(*name), *token),
        _ => {
            out.error(SYNTAX);
            return After::Continue;
        }
    };
    if authenticate(shared, sess, name, token) {
        out.ok();
    } else {
        out.error(WRONGPASS);
    }
    After::Continue
}

/// RESET: back to a fresh connection's state (a Unix-socket connection keeps the
/// client its peer credentials name).
pub(super) fn reset(shared: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    sess.subs.clear();
    sess.tracking = None;
    sess.multi = None;
    sess.multi_bytes = 0;
    sess.watched = None;
    sess.reply = crate::session::Reply::On;
    sess.resp3 = false;
    sess.name = None;
    if sess.protocol != "unix" {
        // Signed out: back to no client, or to --dev-no-auth's.
        sess.client = shared.cfg.dev_no_auth.clone();
    }
    out.simple("RESET");
    After::Continue
}

/// CLIENT SETNAME | GETNAME | ID | INFO | SETINFO | REPLY ON|OFF|SKIP |
/// TRACKING | CACHING | TRACKINGINFO | GETREDIR
pub(super) fn client(
    shared: &Shared,
    sess: &mut Session,
    a: &mut Args<'_>,
    out: &mut Out,
) -> After {
    let Some(sub) = a.next() else {
        wrong_arity(out, a.name());
        return After::Continue;
    };
    let is = |name: &[u8]| sub.eq_ignore_ascii_case(name);
    let n = a.remaining();
    if is(b"setname") && n == 1 {
        let name = a.next().unwrap_or_default();
        if connection_name_ok(name, out) {
            let n = String::from_utf8_lossy(name).into_owned();
            sess.name = (!n.is_empty()).then_some(n);
            out.ok();
        }
    } else if is(b"getname") && n == 0 {
        match &sess.name {
            Some(n) => out.bulk(n.as_bytes()),
            None => out.null(),
        }
    } else if is(b"id") && n == 0 {
        out.int(i64::try_from(sess.id).unwrap_or(i64::MAX));
    } else if is(b"info") && n == 0 {
        out.verbatim(&client_info(sess));
    } else if is(b"setinfo") && n == 2 {
        out.ok();
    } else if is(b"tracking") && n >= 1 {
        tracking(shared, sess, a, out);
    } else if is(b"caching") && n == 1 {
        caching(sess, a.next().unwrap_or_default(), out);
    } else if is(b"trackinginfo") && n == 0 {
        crate::tracking::Tracking::info(sess.tracking.as_ref(), out);
    } else if is(b"getredir") && n == 0 {
        // Invalidations always go to the tracking connection itself.
        out.int(if sess.tracking.is_some() { 0 } else { -1 });
    } else if is(b"reply") && n == 1 {
        let mode = a.next().unwrap_or_default();
        if mode.eq_ignore_ascii_case(b"on") {
            sess.reply = crate::session::Reply::On;
            out.ok();
        } else if mode.eq_ignore_ascii_case(b"off") {
            sess.reply = crate::session::Reply::Off;
        } else if mode.eq_ignore_ascii_case(b"skip") {
            // This command's reply is not sent, nor the next one's.
            sess.reply = crate::session::Reply::Skip;
        } else {
            out.error("ERR syntax error");
        }
    } else {
        out.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(sub)
        ));
    }
    After::Continue
}

/// CLIENT TRACKING ON|OFF [BCAST] [PREFIX p ...] [OPTIN] [OPTOUT] [NOLOOP]
/// (REDIRECT is refused: invalidations go to the tracking connection itself, as
/// RESP3 pushes).
fn tracking(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) {
    use crate::tracking::{Options, Tracking};
    let on = a.next().unwrap_or_default();
    let mut o = Options::default();
    while let Some(opt) = a.next() {
        let is = |name: &[u8]| opt.eq_ignore_ascii_case(name);
        if is(b"bcast") {
            o.bcast = true;
        } else if is(b"optin") {
            o.optin = true;
        } else if is(b"optout") {
            o.optout = true;
        } else if is(b"noloop") {
            o.noloop = true;
        } else if is(b"prefix") && a.remaining() > 0 {
            o.prefixes.push(a.next().unwrap_or_default().to_vec());
        } else if is(b"redirect") && a.remaining() > 0 {
            out.error("ERR libstate does not support REDIRECT: turn tracking on over RESP3 (HELLO 3) on the connection that reads, and it receives the invalidations itself");
            return;
        } else {
            out.error(SYNTAX);
            return;
        }
    }
    if on.eq_ignore_ascii_case(b"off") {
        sess.tracking = None;
        out.ok();
        return;
    }
    if !on.eq_ignore_ascii_case(b"on") {
        out.error(SYNTAX);
        return;
    }
    if let Err(msg) = Tracking::check(sess.tracking.as_ref(), &o) {
        out.error(&msg);
        return;
    }
    if let Some(t) = sess.tracking.as_mut() {
        t.reconfigure(o);
        out.ok();
        return;
    }
    let b = match bucket(shared, sess) {
        Ok(b) => b.clone(),
        Err(e) => {
            super::store_error(shared, sess, &e, out);
            return;
        }
    };
    let ready = std::sync::Arc::clone(&sess.subs.ready);
    match Tracking::new(sess.id, &b, o, shared.cfg.tracking_table_max_keys, ready) {
        Ok(t) => {
            sess.tracking = Some(t);
            out.ok();
        }
        Err(e) => super::store_error(shared, sess, &e.into(), out),
    }
}

/// CLIENT CACHING YES|NO: whether the next command's keys are tracked (OPTIN /
/// OPTOUT), with Redis's errors.
fn caching(sess: &mut Session, choice: &[u8], out: &mut Out) {
    let Some(t) = sess.tracking.as_mut() else {
        out.error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
        return;
    };
    if choice.eq_ignore_ascii_case(b"yes") {
        if !t.optin() {
            out.error(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
            return;
        }
    } else if choice.eq_ignore_ascii_case(b"no") {
        if !t.optout() {
            out.error(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
            return;
        }
    } else {
        out.error(SYNTAX);
        return;
    }
    t.set_caching();
    out.ok();
}

/// Whether `name` may name a connection (CLIENT SETNAME and HELLO ... SETNAME, one
/// rule for both, as in Redis): only the characters `!` to `~`, no spaces, newlines
/// or anything else. If not, replies Redis's error. (An empty name clears it.)
fn connection_name_ok(name: &[u8], out: &mut Out) -> bool {
    if name.iter().all(|c| (b'!'..=b'~').contains(c)) {
        return true;
    }
    out.error("ERR Client names cannot contain spaces, newlines or special characters.");
    false
}

/// Checks a token (with an optional client name) and binds the session to the
/// client. The failure says neither which part was wrong nor whether the client
/// exists; it is logged.
fn authenticate(shared: &Shared, sess: &mut Session, name: Option<&[u8]>, token: &[u8]) -> bool {
    let name_text = name.map(|n| String::from_utf8_lossy(n).into_owned());
    let token = String::from_utf8_lossy(token);
    // Redis's `default` user is "no user name": RESP3 clients send `HELLO 3 AUTH
    // default TOKEN` for a bare token (redis-py, the redis crate), which is
    // `AUTH TOKEN` (the token alone names its client).
    let found = shared
        .registry
        .verify(name_text.as_deref(), &token)
        .or_else(|| {
            (name_text.as_deref() == Some("default"))
                .then(|| shared.registry.verify(None, &token))
                .flatten()
        });
    match found {
        Some(client) => {
            tracing::debug!(conn = sess.id, client = %client, "authenticated");
            shared.signed_in(
                sess.id,
                Some((client.clone(), crate::auth::hash_token(&token))),
            );
            sess.client = Some(client);
            if sess.tracking.is_some() {
                // Tracking follows the connection's client too; what was read
                // before is forgotten (a null invalidation).
                let rebound = bucket(shared, sess).cloned().and_then(|b| {
                    sess.tracking
                        .as_mut()
                        .map_or(Ok(()), |t| t.rebind(&b))
                        .map_err(Into::into)
                });
                if let Err(e) = rebound {
                    tracing::warn!(conn = sess.id, "turning tracking off after AUTH: {e}");
                    sess.tracking = None;
                }
            }
            if sess.subs.active() {
                // Subscriptions follow the connection's client: never another's keys.
                let rebound = bucket(shared, sess)
                    .cloned()
                    .and_then(|b| sess.subs.rebind(&b).map_err(Into::into));
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
pub(super) fn hello(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    let mut proto = if sess.resp3 { 3 } else { 2 };
    if let Some(v) = a.next() {
        match parse_i64(v) {
            Some(p @ (2 | 3)) => proto = p,
            Some(_) => {
                out.error("NOPROTO unsupported protocol version");
                return After::Continue;
            }
            None => {
                out.error("ERR Protocol version is not an integer or out of range");
                return After::Continue;
            }
        }
    }
    let mut setname = None;
    let mut auth = None;
    // Every option is checked (SETNAME's name as CLIENT SETNAME's) before AUTH runs,
    // so a HELLO that fails changes nothing (Redis 7.0 authenticates first).
    while let Some(opt) = a.next() {
        if opt.eq_ignore_ascii_case(b"auth") && a.remaining() >= 2 {
            auth = a.next().zip(a.next());
        } else if opt.eq_ignore_ascii_case(b"setname") && a.remaining() >= 1 {
            let name = a.next().unwrap_or_default();
            if !connection_name_ok(name, out) {
                return After::Continue;
            }
            setname = Some(String::from_utf8_lossy(name).into_owned());
        } else {
            out.error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&opt.to_ascii_lowercase())
            ));
            return After::Continue;
        }
    }
    if let Some((name, token)) = auth {
        if !authenticate(shared, sess, Some(name), token) {
            out.error(WRONGPASS);
            return After::Continue;
        }
    }
    if sess.client.is_none() {
        out.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return After::Continue;
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
    After::Continue
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
