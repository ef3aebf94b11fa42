//! Pub/sub: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE over the
//! connection's [`crate::pubsub::Subscriptions`] (keyspace notifications and
//! PUBLISH), and PUBLISH and PUBSUB, within the connection's own client.

use super::args::Args;
use super::{bucket, store_error, After};
use crate::resp::Out;
use crate::session::Session;
use crate::Shared;

/// SUBSCRIBE channel [channel ...]
pub(super) fn subscribe(
    shared: &Shared,
    sess: &mut Session,
    a: &mut Args<'_>,
    out: &mut Out,
) -> After {
    add(shared, sess, a, false, out)
}

/// PSUBSCRIBE pattern [pattern ...]
pub(super) fn psubscribe(
    shared: &Shared,
    sess: &mut Session,
    a: &mut Args<'_>,
    out: &mut Out,
) -> After {
    add(shared, sess, a, true, out)
}

fn add(shared: &Shared, sess: &mut Session, a: &Args<'_>, pattern: bool, out: &mut Out) -> After {
    let b = match bucket(shared, sess) {
        Ok(b) => b.clone(),
        Err(e) => {
            store_error(shared, sess, &e, out);
            return After::Continue;
        }
    };
    let link = (&shared.broker, sess.id);
    if let Err(e) = sess.subs.subscribe(
        &b,
        link,
        a.rest(),
        pattern,
        shared.cfg.max_subscriptions,
        out,
    ) {
        store_error(shared, sess, &e.into(), out);
    }
    After::Continue
}

/// UNSUBSCRIBE [channel ...]
pub(super) fn unsubscribe(
    _: &Shared,
    sess: &mut Session,
    a: &mut Args<'_>,
    out: &mut Out,
) -> After {
    sess.subs.unsubscribe(a.rest(), false, out);
    After::Continue
}

/// PUNSUBSCRIBE [pattern ...]
pub(super) fn punsubscribe(
    _: &Shared,
    sess: &mut Session,
    a: &mut Args<'_>,
    out: &mut Out,
) -> After {
    sess.subs.unsubscribe(a.rest(), true, out);
    After::Continue
}

/// PUBLISH channel message: to the subscribed connections of this client only;
/// replies how many received it.
pub(super) fn publish(
    shared: &Shared,
    sess: &mut Session,
    a: &mut Args<'_>,
    out: &mut Out,
) -> After {
    let client = sess.client.as_deref().unwrap_or_default();
    let (channel, message) = (a.next().unwrap_or_default(), a.next().unwrap_or_default());
    out.int(shared.broker.publish(client, channel, message));
    After::Continue
}

/// PUBSUB CHANNELS [pattern] | NUMSUB [channel ...] | NUMPAT | HELP, over this
/// client's connections.
pub(super) fn pubsub(
    shared: &Shared,
    sess: &mut Session,
    a: &mut Args<'_>,
    out: &mut Out,
) -> After {
    let client = sess.client.as_deref().unwrap_or_default();
    let given = a.next().unwrap_or_default();
    let sub = given.to_ascii_lowercase();
    match (sub.as_slice(), a.remaining()) {
        (b"channels", 0 | 1) => {
            let pattern = match a.next().map(crate::glob::Pattern::new).transpose() {
                Ok(p) => p,
                Err(e) => {
                    out.error(&e.to_string());
                    return After::Continue;
                }
            };
            let channels = shared.broker.channels(client, pattern.as_ref());
            out.array(channels.len());
            for c in channels {
                out.bulk(&c);
            }
        }
        (b"numsub", _) => {
            out.array(a.remaining() * 2);
            for c in a.by_ref() {
                out.bulk(c);
                out.int(shared.broker.numsub(client, c) as i64);
            }
        }
        (b"numpat", 0) => out.int(shared.broker.numpat(client) as i64),
        (b"help", 0) => {
            let lines = [
                "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CHANNELS [<pattern>]",
                "    Return the currently active channels of this client matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns of this client.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers of this client for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
                "HELP",
                "    Print this help.",
            ];
            out.array(lines.len());
            for l in lines {
                out.simple(l);
            }
        }
        (b"channels" | b"numpat" | b"help", _) => out.error(&format!(
            "ERR wrong number of arguments for 'pubsub|{}' command",
            String::from_utf8_lossy(&sub)
        )),
        _ => out.error(&format!(
            "ERR unknown subcommand '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(given)
        )),
    }
    After::Continue
}
