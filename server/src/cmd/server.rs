//! Server commands: COMMAND (from the command table), CONFIG GET, INFO, TIME.

use std::sync::atomic::Ordering::Relaxed;

use super::args::Args;
use super::{After, COMMANDS};
use crate::resp::Out;
use crate::session::Session;
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
            out.error(&format!(
                "ERR CONFIG SET failed (possibly related to argument '{}') - libstate sets only notify-keyspace-events",
                String::from_utf8_lossy(name)
            ));
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

/// When the store last made everything written durable, in unix seconds (see
/// [`state_core::Store::last_checkpoint_ms`]).
fn last_save_secs(shared: &Shared) -> u64 {
    shared.svc.store().last_checkpoint_ms().unwrap_or(0) / 1000
}

/// LASTSAVE: when the store last made everything written durable (its last
/// checkpoint; libstate persists on its own, there is no SAVE), in unix seconds.
pub(super) fn lastsave(shared: &Shared, _: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    out.int(i64::try_from(last_save_secs(shared)).unwrap_or(i64::MAX));
    After::Continue
}

/// SAVE: makes everything written so far durable now (a checkpoint, what the
/// periodic flush does; libstate has no snapshot file to write).
pub(super) fn save(shared: &Shared, sess: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    match shared.svc.store().flush() {
        Ok(()) => out.ok(),
        Err(e) => super::store_error(shared, sess, &e.into(), out),
    }
    After::Continue
}

/// SHUTDOWN [...]: refused. One client cannot stop a server other clients share
/// (the operator stops `state serve` with SIGTERM).
pub(super) fn shutdown(_: &Shared, _: &mut Session, _: &mut Args<'_>, out: &mut Out) -> After {
    out.error("ERR SHUTDOWN is not served: one client cannot stop a server other clients share (stop state serve with SIGTERM)");
    After::Continue
}

/// INFO [section ...]: the sections asked for (default: all but the client's
/// quota section is always there too), each `# Name` then `field:value` lines.
pub(super) fn info(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    let wanted: Vec<String> = a
        .by_ref()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    out.verbatim(&text(shared, sess, &wanted));
    After::Continue
}

/// The INFO sections, in Redis's order (plus libstate's `client`).
const SECTIONS: [&str; 9] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cluster",
    "client",
    "keyspace",
];

/// The process's resident memory in bytes (Linux `/proc/self/status`, VmRSS), 0
/// if unknown.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Bytes as Redis's `*_human` fields write them (`1.50M`).
fn human(n: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.2}{}", units[u])
    }
}

/// The client's keys, those with a deadline, and their mean time to live in
/// milliseconds (a pass over the bucket: INFO runs off the event loop).
fn keyspace(shared: &Shared, client: &str) -> (u64, u64, u64) {
    let Ok(bucket) = shared.svc.client(client) else {
        return (0, 0, 0);
    };
    let (mut keys, mut expires, mut ttl_sum) = (0u64, 0u64, 0u128);
    let _ = bucket.scan(.., false, |k, _| {
        keys += 1;
        if let Ok(state_core::Ttl::Expires(d)) = bucket.ttl(k) {
            expires += 1;
            ttl_sum += d.as_millis();
        }
        std::ops::ControlFlow::Continue(())
    });
    let avg = if expires > 0 {
        u64::try_from(ttl_sum / u128::from(expires)).unwrap_or(u64::MAX)
    } else {
        0
    };
    (keys, expires, avg)
}

fn text(shared: &Shared, sess: &Session, wanted: &[String]) -> String {
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "everything" | "default"));
    let show = |name: &str| all || wanted.iter().any(|w| w == name);
    let client = sess.client.clone().unwrap_or_default();
    let mut t = String::new();
    let mut section = |name: &str, body: String| {
        if !t.is_empty() {
            t.push_str("\r\n");
        }
        t.push_str(&format!("# {name}\r\n{body}"));
    };
    for name in SECTIONS.iter().copied().filter(|n| show(n)) {
        let body = match name {
            "server" => {
                let up = shared.started.elapsed().as_secs();
                format!(
                    "redis_version:{}\r\nlibstate_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\n",
                    crate::REDIS_VERSION,
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::process::id(),
                    shared.cfg.resp.map_or(0, |a| a.port()),
                    up / 86400,
                )
            }
            "clients" => format!(
                "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n",
                shared.metrics.connections_open.load(Relaxed),
                shared.cfg.max_connections,
            ),
            "memory" => {
                let rss = resident_bytes();
                format!(
                    "used_memory:{rss}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nmem_allocator:libc\r\n",
                    human(rss),
                    human(rss),
                )
            }
            "persistence" => format!(
                "engine:{}\r\nloading:0\r\nrdb_last_save_time:{}\r\n",
                shared.svc.store().engine().as_str(),
                last_save_secs(shared),
            ),
            "stats" => format!(
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
                shared.metrics.connections_total.load(Relaxed),
                shared.metrics.commands_total(),
                shared.metrics.connections_refused.load(Relaxed),
                shared.svc.store().expired_removed().unwrap_or(0),
                shared.metrics.keyspace_hits(),
                shared.metrics.keyspace_misses(),
            ),
            "replication" => "role:master\r\nconnected_slaves:0\r\n".to_string(),
            "cluster" => "cluster_enabled:0\r\n".to_string(),
            "client" => {
                let usage = shared.svc.usage(&client).unwrap_or_default();
                let quota = shared.svc.quota(&client);
                let opt = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
                format!(
                    "client:{client}\r\nrecords:{}\r\nbytes:{}\r\nmax_records:{}\r\nmax_bytes:{}\r\nmax_value_size:{}\r\n",
                    usage.records,
                    usage.bytes,
                    opt(quota.max_records),
                    opt(quota.max_bytes),
                    opt(quota.max_value_size),
                )
            }
            _ => {
                let (keys, expires, avg) = keyspace(shared, &client);
                if keys == 0 {
                    String::new()
                } else {
                    format!("db0:keys={keys},expires={expires},avg_ttl={avg}\r\n")
                }
            }
        };
        section(&capitalize(name), body);
    }
    t
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
