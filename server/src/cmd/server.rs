//! Server commands: COMMAND (from the command table), CONFIG GET, INFO, TIME.

use std::sync::atomic::Ordering::Relaxed;

use super::args::Args;
use super::{After, COMMANDS};
use crate::conn::Session;
use crate::resp::Out;
use crate::Shared;

/// COMMAND [COUNT | DOCS]: the table's names, arities, flags and key positions.
pub(super) fn command(_: &Shared, _: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    match a.next() {
        None => {
            out.array(COMMANDS.len());
            for s in COMMANDS {
                out.array(6);
                out.bulk(s.name.as_bytes());
                out.int(i64::from(s.arity));
                out.array(1);
                out.simple(if s.write { "write" } else { "readonly" });
                out.int(i64::from(s.keys.first));
                out.int(i64::from(s.keys.last));
                out.int(i64::from(s.keys.step));
            }
        }
        Some(sub) if sub.eq_ignore_ascii_case(b"count") => {
            out.int(i64::try_from(COMMANDS.len()).unwrap_or(i64::MAX));
        }
        // redis-cli asks for command docs on start; it works without them.
        Some(sub) if sub.eq_ignore_ascii_case(b"docs") => out.map(0),
        Some(_) => out
            .error("ERR COMMAND is limited to COMMAND, COMMAND COUNT and COMMAND DOCS on libstate"),
    }
    After::Continue
}

/// CONFIG GET pattern [pattern ...] over the few settings clients ask for, and
/// CONFIG SET notify-keyspace-events (the client's own, shared by its
/// connections).
pub(super) fn config(
    shared: &Shared,
    sess: &mut Session,
    a: &mut Args<'_>,
    out: &mut Out,
) -> After {
    let client = sess.client.clone().unwrap_or_default();
    let sub = a.next().unwrap_or_default();
    if sub.eq_ignore_ascii_case(b"set") && a.remaining() == 2 {
        let (name, value) = (a.next().unwrap_or_default(), a.next().unwrap_or_default());
        if !name.eq_ignore_ascii_case(b"notify-keyspace-events") {
            out.error("ERR CONFIG SET is limited to notify-keyspace-events on libstate");
            return After::Continue;
        }
        match crate::pubsub::parse_classes(value) {
            Some(flags) => {
                shared.notify.lock().insert(client, flags);
                out.ok();
            }
            None => out.error("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'."),
        }
        return After::Continue;
    }
    if !sub.eq_ignore_ascii_case(b"get") || a.remaining() == 0 {
        out.error(
            "ERR CONFIG is limited to CONFIG GET and CONFIG SET notify-keyspace-events on libstate",
        );
        return After::Continue;
    }
    let notify = crate::pubsub::classes_string(shared.notify_flags(&client));
    let known: [(&str, &str); 4] = [
        ("appendonly", "no"),
        ("save", ""),
        ("databases", "1"),
        ("notify-keyspace-events", &notify),
    ];
    let hits: Vec<&(&str, &str)> = known
        .iter()
        .filter(|(k, _)| {
            a.rest()
                .iter()
                .any(|p| crate::glob::matches(&p.to_ascii_lowercase(), k.as_bytes()))
        })
        .collect();
    out.map(hits.len());
    for (k, v) in hits {
        out.bulk(k.as_bytes());
        out.bulk(v.as_bytes());
    }
    After::Continue
}

/// TIME: the server's clock, seconds and microseconds.
pub(super) fn time(_: &Shared, _: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    out.array(2);
    out.bulk(now.as_secs().to_string().as_bytes());
    out.bulk(now.subsec_micros().to_string().as_bytes());
    After::Continue
}

/// INFO: the server, the connections, the engine and the client's usage and quota.
pub(super) fn info(shared: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    out.verbatim(&text(shared, sess));
    After::Continue
}

fn text(shared: &Shared, sess: &Session) -> String {
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
