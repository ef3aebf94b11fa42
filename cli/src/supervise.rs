//! `state serve` under a supervisor: systemd's readiness protocol (`NOTIFY_SOCKET`,
//! sd_notify(3)) and socket activation (`LISTEN_FDS`, sd_listen_fds(3)).

use std::os::unix::net::UnixDatagram;

use state_server::Inherited;

use crate::fail::{CmdResult, Failure};

/// Sends `state` (`READY=1`, `STOPPING=1`, ...) to the supervisor named by
/// `NOTIFY_SOCKET`, if any: a datagram to that socket path, or to the abstract
/// socket `@NAME`. Without `NOTIFY_SOCKET` it does nothing; a failure to send is
/// logged, never fatal.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&target, state) {
        tracing::warn!("cannot tell the supervisor {state:?} through NOTIFY_SOCKET: {e}");
    }
}

fn send(target: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(state.as_bytes(), target)?;
        }
    }
    Ok(())
}

/// `RELOADING=1` with the monotonic time systemd asks for along with it.
pub fn reloading() -> String {
    let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0);
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

/// The listeners systemd passed (`LISTEN_FDS`, for this process by `LISTEN_PID`),
/// by kind: a socket named `unix`, `resp` or `http` in `LISTEN_FDNAMES`
/// (`FileDescriptorName=` in the socket unit) goes to that listener; unnamed ones
/// in order: a Unix socket to the Unix listener, the first TCP socket to the Redis
/// protocol, the second to HTTP. The variables are removed once read.
pub fn inherited() -> CmdResult<Inherited> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let mut out = Inherited::default();
    let bad = |i: usize, e: std::io::Error| {
        Failure::usage(format!(
            "socket activation: listening socket {} (fd {}): {e}",
            i,
            3 + i
        ))
    };
    for i in 0..fds.len() {
        let name = names.get(i).map(String::as_str).unwrap_or("");
        let wants_unix = name == "unix" || (name.is_empty() && out.unix.is_none());
        if wants_unix && name != "resp" && name != "http" {
            if let Ok(Some(l)) = fds.take_unix_listener(i) {
                out.unix = Some(l);
                continue;
            }
        }
        let Some(l) = fds.take_tcp_listener(i).map_err(|e| bad(i, e))? else {
            continue;
        };
        let slot = match name {
            "resp" => &mut out.resp,
            "http" => &mut out.http,
            _ if out.resp.is_none() => &mut out.resp,
            _ => &mut out.http,
        };
        if slot.is_some() {
            return Err(bad(
                i,
                std::io::Error::other(format!(
                    "a second {} listener",
                    if name.is_empty() { "TCP" } else { name }
                )),
            ));
        }
        *slot = Some(l);
    }
    Ok(out)
}
