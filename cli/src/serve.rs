//! `state serve` and `state client`: the server's front door on the command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use state_core::{Quota, StateService, Store};
use state_server::auth::{clients_path, ClientsFile};
use state_server::{Config, Server, TlsFiles, SOCKET_NAME};

use crate::args::{ClientArgs, ClientCommand, ServeArgs};
use crate::fail::{CmdResult, Failure};
use crate::open::{Access, Target};
use crate::output::Output;

fn addr(flag: &str, v: &str) -> CmdResult<Option<SocketAddr>> {
    if v == "off" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|e| Failure::usage(format!("--{flag} {v:?}: {e} (expected HOST:PORT or off)")))
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(target: &Target, a: ServeArgs) -> CmdResult {
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
    let cfg = Config {
        unix,
        resp: addr("resp", &a.resp)?,
        http: addr("http", &a.http)?,
        tls: match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        insecure: a.insecure,
        max_connections: a.max_connections,
        read_timeout: a.read_timeout,
        idle_timeout: a.idle_timeout,
        web_dir: a.web,
        cors: a.cors,
        default_quota: Quota {
            max_records: a.max_records,
            max_bytes: a.max_bytes,
            max_value_size: a.max_value_size,
        },
        blocking_store: a.sync,
        clients_file: a.clients,
        ..Config::default()
    };
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::store(format!("cannot start the server's runtime: {e}")))?;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let svc = StateService::new(store.clone());
    let result = runtime.block_on(async move {
        let server = match Server::bind(svc, cfg).await {
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
        lines.push("state serve: ready (SIGTERM or Ctrl-C stops it)".to_string());
        // Where it listens goes to standard output, so scripts can wait for the
        // last line.
        println!("{}", lines.join("\n"));
        server
            .run_until(shutdown_signal())
            .await
            .map_err(|e| Failure::store(format!("shutting down: {e}")))
    });
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
        } => {
            let token = file
                .add(
                    &name,
                    Quota {
                        max_records,
                        max_bytes,
                        max_value_size,
                    },
                )
                .map_err(|e| Failure::usage(e.0))?;
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                ensure_dir(parent)?;
            }
            file.save(&path).map_err(|e| Failure::store(e.0))?;
            out.line(token)
        }
        ClientCommand::List => {
            for (name, e) in &file.clients {
                if out.json {
                    out.json_line(&ClientRow {
                        name,
                        max_records: e.max_records,
                        max_bytes: e.max_bytes,
                        max_value_size: e.max_value_size,
                    })?;
                } else {
                    let q = |label: &str, v: Option<u64>| {
                        v.map(|n| format!(" {label}={n}")).unwrap_or_default()
                    };
                    out.line(format!(
                        "{name}{}{}{}",
                        q("max_records", e.max_records),
                        q("max_bytes", e.max_bytes),
                        q("max_value_size", e.max_value_size)
                    ))?;
                }
            }
            Ok(())
        }
        ClientCommand::Rm { name } => {
            if file.clients.remove(&name).is_none() {
                return Err(Failure::not_found(format!(
                    "no client {name:?} in {}",
                    path.display()
                )));
            }
            file.save(&path).map_err(|e| Failure::store(e.0))
        }
    }
}
