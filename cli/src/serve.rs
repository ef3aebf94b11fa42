//! `state serve` and `state client`: the server's front door on the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use state_core::Store;
use state_server::auth::{clients_path, ClientName, ClientsFile, UNIX_PREFIX};
use state_server::{Config, Server, TlsFiles, SOCKET_NAME};
use state_service::{Quota, StateService};

use crate::args::{ClientArgs, ClientCommand, LogFormat, ServeArgs};
use crate::fail::{CmdResult, Failure};
use crate::open::{Access, Target};
use crate::output::Output;
use crate::supervise;

fn addr(flag: &str, v: &str) -> CmdResult<Option<SocketAddr>> {
    if v == "off" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|e| Failure::usage(format!("--{flag} {v:?}: {e} (expected HOST:PORT or off)")))
}

/// Refuses a store directory that does not exist, unless `--create` or the store is
/// the default one (`--store` not given): a mistyped `--store` must not serve a
/// new, empty store.
fn check_store_exists(target: &Target, store_given: bool, create: bool) -> CmdResult {
    if target.is_url() || create || !store_given || target.dir.exists() {
        return Ok(());
    }
    Err(Failure::store(format!(
        "no store at {}: the directory does not exist",
        target.dir.display()
    ))
    .with_hint("check --store (or STATE_STORE); to start a new store there, add --create"))
}

/// The Unix socket's group: a group name or a numeric id.
fn group_id(group: &str) -> CmdResult<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(Failure::usage(format!(
            "--unix-group {group:?}: no such group"
        ))),
        Err(e) => Err(Failure::usage(format!("--unix-group {group:?}: {e}"))),
    }
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(target: &Target, store_given: bool, a: ServeArgs) -> CmdResult {
    // First, while this process has one thread: it removes LISTEN_* from the
    // environment.
    let inherited = supervise::inherited()?;
    state_server::tune_allocator();
    check_store_exists(target, store_given, a.create)?;
    let unix_group = a.unix_group.as_deref().map(group_id).transpose()?;
    let engine = target.engine_for(Access::Create)?;
    let store = Store::builder()
        .engine(engine)
        .sync(a.sync)
        .sweep_interval(Some(a.sweep_interval))
        .open(&target.dir)?;
    let unix = match a.unix.as_deref() {
        Some("off") => None,
        Some(p) => Some(PathBuf::from(p)),
        // A store on a Redis server has no directory to put the socket in.
        None if target.is_url() => None,
        None => Some(store.path().join(SOCKET_NAME)),
    };
    let mut cfg = Config {
        unix,
        unix_mode: a.unix_mode,
        unix_group,
        resp: addr("resp", &a.resp)?,
        http: addr("http", &a.http)?,
        tls: match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        insecure: a.insecure,
        max_connections: a.max_connections,
        read_timeout: a.read_timeout,
        write_timeout: a.write_timeout,
        auth_timeout: a.auth_timeout,
        max_pending: a.max_pending,
        max_query_bytes: a.max_query_bytes,
        max_output_bytes: a.max_output_bytes,
        max_buffered_bytes: a.max_buffered_bytes,
        max_subscriptions: a.max_subscriptions,
        tracking_table_max_keys: a.tracking_table_max_keys,
        http_hosts: a.http_host,
        metrics_token: a.metrics_token,
        idle_timeout: a.idle_timeout,
        web_dir: a.web,
        cors: a.cors,
        default_quota: Quota {
            max_records: a.max_records,
            max_bytes: a.max_bytes,
            max_value_size: a.max_value_size,
        },
        blocking_store: a.sync,
        admin_runner: Some(crate::remote::runner(store.path().to_path_buf())),
        clients_file: a.clients,
        dev_no_auth: a.dev_no_auth,
        ..Config::default()
    };
    if let Some(n) = a.threads {
        cfg.threads = usize::try_from(n).unwrap_or(1);
    }
    init_logging(a.log_format);
    // Redis-protocol connections run on the server's own event loops (`--threads`,
    // current-thread runtimes); this runtime runs the listeners, HTTP, the signals.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::store(format!("cannot start the server's runtime: {e}")))?;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let svc = StateService::new(store.clone());
    let result = runtime.block_on(async move {
        let server = match Server::bind_with(svc, cfg, inherited).await {
            Ok(s) => s,
            Err(e) => {
                return Err(Failure::usage(e.to_string()));
            }
        };
        let a = server.addrs();
        let mut lines = vec![format!(
            "state serve: store {} ({})",
            store.path().display(),
            store.engine().as_str()
        )];
        if let Some(p) = &a.unix {
            lines.push(format!("  redis protocol on unix socket {}", p.display()));
        }
        if let Some(p) = a.resp {
            lines.push(format!(
                "  redis protocol on {p}   (redis-cli -p {})",
                p.port()
            ));
        }
        if let Some(p) = a.http {
            lines.push(format!(
                "  HTTP on {scheme}://{p}/   (POST /v1/get, /healthz, /metrics)"
            ));
        }
        // The signal handlers are installed before `ready` is printed: a SIGTERM
        // sent the moment a supervisor sees `ready` must stop the server gracefully,
        // not kill it with the default action.
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate())
            .map_err(|e| Failure::store(format!("cannot handle SIGTERM: {e}")))?;
        let int = signal(SignalKind::interrupt())
            .map_err(|e| Failure::store(format!("cannot handle SIGINT: {e}")))?;
        let hup = signal(SignalKind::hangup())
            .map_err(|e| Failure::store(format!("cannot handle SIGHUP: {e}")))?;
        tokio::spawn(reload_on_hangup(hup, server.reloader()));
        let stop = async {
            shutdown_signal(term, int).await;
            supervise::notify("STOPPING=1");
        };
        lines.push(
            "state serve: ready (SIGTERM or Ctrl-C stops it, SIGHUP reloads clients and TLS)"
                .to_string(),
        );
        // Every listener is bound and accepting (`bind` started the accept loops).
        supervise::notify("READY=1");
        // Where it listens goes to standard output, so scripts can wait for the
        // last line.
        println!("{}", lines.join("\n"));
        server
            .run_until(stop)
            .await
            .map_err(|e| Failure::store(format!("shutting down: {e}")))
    });
    result
}

/// SIGHUP: reload the client list and the TLS files, telling the supervisor
/// (`RELOADING=1`, then `READY=1`). What fails to load keeps its previous version
/// and is logged; the server never stops for it.
async fn reload_on_hangup(mut hup: tokio::signal::unix::Signal, reloader: state_server::Reloader) {
    while hup.recv().await.is_some() {
        supervise::notify(&supervise::reloading());
        let r = reloader.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || r.reload()).await {
            tracing::error!("reload: {e}");
        }
        supervise::notify("READY=1");
    }
}

async fn shutdown_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(use_colour(
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
                std::env::var_os("NO_COLOR").as_deref(),
            ))
            .try_init(),
    };
}

/// Colour only on a terminal, and not when NO_COLOR is set to anything but the
/// empty string (https://no-color.org).
fn use_colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[derive(Serialize)]
struct UsageRow<'a> {
    name: &'a str,
    records: u64,
    bytes: u64,
    admin: bool,
    max_records: Option<u64>,
    max_bytes: Option<u64>,
    max_value_size: Option<u64>,
}

/// `state client usage`: every client with the records and bytes its bucket holds
/// (counted now) and its quota.
fn usage(target: &Target, file: &ClientsFile, out: &mut Output) -> CmdResult {
    let store = target.open(Access::Existing, crate::open::Time::Live)?;
    let rows: Vec<(String, Quota, bool)> = file
        .clients
        .iter()
        .map(|(n, e)| (n.clone(), e.quota(), e.admin))
        .chain(
            file.unix
                .iter()
                .map(|(n, e)| (format!("{UNIX_PREFIX}{n}"), e.quota(), false)),
        )
        .collect();
    crate::open::with_store(store, |store| {
        let svc = StateService::new(store.clone());
        for (name, q, admin) in &rows {
            let u = svc.usage(name)?;
            if out.json {
                out.json_line(&UsageRow {
                    name,
                    records: u.records,
                    bytes: u.bytes,
                    admin: *admin,
                    max_records: q.max_records,
                    max_bytes: q.max_bytes,
                    max_value_size: q.max_value_size,
                })?;
            } else {
                let lim = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
                out.line(format!(
                    "{name}{} records={} bytes={} max_records={} max_bytes={} max_value_size={}",
                    if *admin { " (admin)" } else { "" },
                    u.records,
                    u.bytes,
                    lim(q.max_records),
                    lim(q.max_bytes),
                    lim(q.max_value_size)
                ))?;
            }
        }
        Ok(())
    })
}

#[derive(Serialize)]
struct ClientRow<'a> {
    name: &'a str,
    max_records: Option<u64>,
    max_bytes: Option<u64>,
    max_value_size: Option<u64>,
}

fn ensure_dir(dir: &Path) -> CmdResult {
    if dir.is_dir() {
        return Ok(());
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Failure::store(format!("cannot create {}: {e}", dir.display())))
}

/// `state client add|list|rm`.
pub fn client(target: &Target, args: ClientArgs, out: &mut Output) -> CmdResult {
    let cmd = args.command;
    let path = match args.clients {
        Some(p) => p,
        None if target
            .dir
            .to_str()
            .is_some_and(state_core::engine::is_redis_url) =>
        {
            return Err(Failure::usage(
                "a store opened by URL has no directory for clients.toml: name the \
                 client list with --clients FILE (and give state serve the same file)",
            ))
        }
        None => clients_path(&target.dir),
    };
    let mut file = ClientsFile::load(&path).map_err(|e| Failure::store(e.0))?;
    match cmd {
        ClientCommand::Add {
            name,
            max_records,
            max_bytes,
            max_value_size,
            admin,
        } => {
            let quota = Quota {
                max_records,
                max_bytes,
                max_value_size,
            };
            let parsed = ClientName::parse(&name).map_err(|e| Failure::usage(e.0))?;
            let token =
                match parsed {
                    ClientName::Token(n) => {
                        let token = file.add(n, quota).map_err(|e| Failure::usage(e.0))?;
                        file.set_admin(n, admin).map_err(|e| Failure::usage(e.0))?;
                        Ok(token)
                    }
                    ClientName::Unix(_) if admin => return Err(Failure::usage(
                        "--admin is for token clients: a Unix user is an administrator when it \
                         is the server's own user or root",
                    )),
                    ClientName::Unix(user) => {
                        file.allow_unix(user, quota)
                            .map_err(|e| Failure::usage(e.0))?;
                        Err(user.to_string())
                    }
                };
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                ensure_dir(parent)?;
            }
            file.save(&path).map_err(|e| Failure::store(e.0))?;
            match token {
                Ok(t) => out.line(t),
                Err(user) => {
                    eprintln!(
                        "state: Unix user {user} may now use the socket, as client \
                         {name} (no token)"
                    );
                    Ok(())
                }
            }
        }
        ClientCommand::List => {
            let rows = file
                .clients
                .iter()
                .map(|(n, e)| (n.clone(), e.quota()))
                .chain(
                    file.unix
                        .iter()
                        .map(|(n, e)| (format!("{UNIX_PREFIX}{n}"), e.quota())),
                );
            for (name, q) in rows {
                if out.json {
                    out.json_line(&ClientRow {
                        name: &name,
                        max_records: q.max_records,
                        max_bytes: q.max_bytes,
                        max_value_size: q.max_value_size,
                    })?;
                } else {
                    let f = |label: &str, v: Option<u64>| {
                        v.map(|n| format!(" {label}={n}")).unwrap_or_default()
                    };
                    out.line(format!(
                        "{name}{}{}{}",
                        f("max_records", q.max_records),
                        f("max_bytes", q.max_bytes),
                        f("max_value_size", q.max_value_size)
                    ))?;
                }
            }
            Ok(())
        }
        ClientCommand::Usage => usage(target, &file, out),
        ClientCommand::Quota {
            name,
            max_records,
            max_bytes,
            max_value_size,
            clear,
        } => {
            let quota = if clear {
                Quota::default()
            } else {
                Quota {
                    max_records,
                    max_bytes,
                    max_value_size,
                }
            };
            file.set_quota(&name, quota)
                .map_err(|e| Failure::not_found(format!("{} in {}", e.0, path.display())))?;
            file.save(&path).map_err(|e| Failure::store(e.0))
        }
        ClientCommand::Rotate { name } => {
            let token = file
                .rotate(&name)
                .map_err(|e| Failure::not_found(format!("{} in {}", e.0, path.display())))?;
            file.save(&path).map_err(|e| Failure::store(e.0))?;
            out.line(token)
        }
        ClientCommand::Purge { name } => {
            if file.quota(&name).is_none() {
                return Err(Failure::not_found(format!(
                    "no client {name:?} in {}",
                    path.display()
                )));
            }
            let store = target.open(Access::Existing, crate::open::Time::Live)?;
            let removed = crate::open::with_store(store, |s| Ok(s.remove_bucket(&name)?))?;
            if out.json {
                out.json_line(&serde_json::json!({ "client": name, "had_records": removed }))
            } else {
                out.line(format!(
                    "removed the records of client {name}{}",
                    if removed { "" } else { " (it had none)" }
                ))
            }
        }
        ClientCommand::Rm { name } => {
            // Exactly the name given: no case folding, no trimming.
            let removed = match name.strip_prefix(UNIX_PREFIX) {
                Some(user) => file.unix.remove(user).is_some(),
                None => file.clients.remove(&name).is_some(),
            };
            if !removed {
                return Err(Failure::not_found(format!(
                    "no client {name:?} in {}",
                    path.display()
                )));
            }
            file.save(&path).map_err(|e| Failure::store(e.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn a_missing_store_directory_is_served_only_with_create_or_as_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target {
            dir: dir.path().join("typo"),
            engine: None,
        };
        let e = check_store_exists(&target, true, false).unwrap_err();
        assert!(e.message.contains("does not exist"), "{}", e.message);
        assert!(e.hint.unwrap_or_default().contains("--create"));
        check_store_exists(&target, true, true).unwrap();
        check_store_exists(&target, false, false).unwrap();
        let here = Target {
            dir: dir.path().to_path_buf(),
            engine: None,
        };
        check_store_exists(&here, true, false).unwrap();
    }
}
