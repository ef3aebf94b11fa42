//! Server commands: COMMAND (from the command table), CONFIG GET, INFO.

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

/// CONFIG GET pattern [pattern ...] over the few settings clients ask for.
pub(super) fn config(_: &Shared, _: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    let get = a.next().is_some_and(|s| s.eq_ignore_ascii_case(b"get"));
    if !get || a.remaining() == 0 {
        out.error("ERR CONFIG is limited to CONFIG GET on libstate");
        return After::Continue;
    }
    let known: [(&str, &str); 3] = [("appendonly", "no"), ("save", ""), ("databases", "1")];
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
