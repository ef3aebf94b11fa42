//! Keyspace notifications: SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE over
//! the connection's [`crate::pubsub::Subscriptions`].

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
    if let Err(e) = sess
        .subs
        .subscribe(&b, a.rest(), pattern, shared.cfg.max_subscriptions, out)
    {
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
