//! LIBSTATE.RUN: a `state` command run by the server on its own store, for the
//! store's administrator (the server's own Unix user, or root, on the Unix socket).
//! This is how `state info|keys|get|set|...|backup` work while `state serve` holds
//! the store: the CLI sends its arguments here and prints what comes back, so the
//! output and exit codes are those of the same command on a closed store.

use super::args::Args;
use super::After;
use crate::config::{
    AdminInput, AdminReply, AdminRequest, LoadChunk, LoadJob, LOAD_CHUNK_MAX, LOAD_QUEUE,
};
use crate::resp::Out;
use crate::session::Session;
use crate::Shared;

/// Whether the connection is the store's owner: on the Unix socket, as the
/// server's own Unix user or root (peer credentials; no token reaches this).
pub(crate) fn is_owner(sess: &Session) -> bool {
    let me = nix::unistd::geteuid().as_raw();
    sess.protocol == "unix" && sess.peer_uid.is_some_and(|uid| uid == me || uid == 0)
}

/// Whether the connection signed in as a client created with `--admin`.
fn is_admin_client(shared: &Shared, sess: &Session) -> bool {
    sess.client
        .as_deref()
        .is_some_and(|c| shared.registry.is_admin(c))
}

/// LIBSTATE.RUN cwd stdin arg...: runs `state arg...` on the served store; replies
/// `[exit code, standard output, standard error]`.
pub(super) fn run(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    let owner = is_owner(sess);
    // An administrator client's token reaches the client administration
    // (`client ...`, which the runner checks); the rest is the owner's.
    if !owner && !is_admin_client(shared, sess) {
        out.error(
            "NOPERM LIBSTATE.RUN is for the store's administrators: the server's own Unix user \
             or root on the Unix socket, or a client added with --admin for `client` commands",
        );
        return After::Continue;
    }
    let Some(runner) = &shared.cfg.admin_runner else {
        out.error("ERR this server runs no state commands (it was not started by `state serve`)");
        return After::Continue;
    };
    let rest = a.rest();
    let (Some(cwd), Some(stdin)) = (rest.first(), rest.get(1)) else {
        out.error("ERR LIBSTATE.RUN needs the working directory, standard input and the arguments");
        return After::Continue;
    };
    let req = AdminRequest {
        cwd: std::path::PathBuf::from(String::from_utf8_lossy(cwd).into_owned()),
        stdin: stdin.to_vec(),
        input: None,
        args: rest[2..]
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        owner,
    };
    tracing::info!(args = ?req.args, "running a state command for the administrator");
    let reply = (runner.0)(req);
    if let Some(why) = &reply.refused {
        out.error(&format!("NOPERM {why}"));
        return After::Continue;
    }
    if reply.clients_changed {
        // A changed client list applies before the reply: quotas, removed clients
        // and rotated tokens (their sessions end).
        if let Err(e) = shared.registry.reload() {
            tracing::error!("keeping the previous client list: {e}");
        }
        shared.revoke_stale();
    }
    write_reply(&reply, out);
    After::Continue
}

/// The most bytes of input one LIBSTATE.LOAD DATA may carry: [`LOAD_CHUNK_MAX`],
/// within the limits on one argument and one request (with room for the framing).
fn load_chunk(shared: &Shared) -> usize {
    LOAD_CHUNK_MAX
        .min(shared.max_bulk())
        .min(shared.cfg.max_query_bytes.saturating_sub(256))
        .max(1)
}

/// `[exit code, standard output, standard error]`.
fn write_reply(reply: &AdminReply, out: &mut Out) {
    out.array(3);
    out.int(i64::from(reply.code));
    out.bulk(&reply.stdout);
    out.bulk(&reply.stderr);
}

/// LIBSTATE.LOAD: `state load` on the served store, for its owner, with the input
/// sent by the caller over the connection (the server opens no file the caller
/// names):
///
/// - `BEGIN cwd arg...` starts `state arg...` (a `load`) on a thread of its own,
///   reading what follows; replies the most bytes a chunk may hold
///   ([`LOAD_CHUNK_MAX`], or less where the connection's request limits are lower).
/// - `DATA chunk` hands the next bytes over,
///   waiting while [`LOAD_QUEUE`] chunks are still unread; `:1`, or `:0` once the
///   load has stopped reading (it failed: send END for its output).
/// - `END` ends the input and waits for the load: `[exit code, standard output,
///   standard error]`, as LIBSTATE.RUN.
///
/// A connection that closes before END ends the input with an error, so the load
/// fails rather than taking a cut input for a whole one.
pub(super) fn load(shared: &Shared, sess: &mut Session, a: &mut Args<'_>, out: &mut Out) -> After {
    if !is_owner(sess) {
        out.error(
            "NOPERM LIBSTATE.LOAD is for the store's owner: the server's own Unix user or root \
             on the Unix socket",
        );
        return After::Continue;
    }
    let rest = a.rest();
    let verb = rest.first().map(|v| v.to_ascii_uppercase());
    match verb.as_deref() {
        Some(b"BEGIN") => {
            if sess.load.is_some() {
                out.error("ERR a load is already running on this connection; END it first");
                return After::Continue;
            }
            let Some(runner) = &shared.cfg.admin_runner else {
                out.error(
                    "ERR this server runs no state commands (it was not started by `state serve`)",
                );
                return After::Continue;
            };
            let Some(cwd) = rest.get(1) else {
                out.error("ERR LIBSTATE.LOAD BEGIN needs the working directory and the arguments");
                return After::Continue;
            };
            let (tx, rx) = std::sync::mpsc::sync_channel(LOAD_QUEUE);
            let req = AdminRequest {
                cwd: std::path::PathBuf::from(String::from_utf8_lossy(cwd).into_owned()),
                stdin: Vec::new(),
                input: Some(AdminInput::new(rx)),
                args: rest[2..]
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
                owner: true,
            };
            tracing::info!(args = ?req.args, "loading for the administrator");
            let runner = runner.clone();
            match std::thread::Builder::new()
                .name("state-load".into())
                .spawn(move || (runner.0)(req))
            {
                Ok(done) => {
                    sess.load = Some(LoadJob { tx, done });
                    out.int(i64::try_from(load_chunk(shared)).unwrap_or(i64::MAX));
                }
                Err(e) => out.error(&format!("ERR cannot start the load: {e}")),
            }
        }
        Some(b"DATA") => {
            let (Some(job), Some(chunk), 2) = (&sess.load, rest.get(1), rest.len()) else {
                out.error("ERR LIBSTATE.LOAD DATA needs one chunk, after BEGIN");
                return After::Continue;
            };
            let max = load_chunk(shared);
            if chunk.len() > max {
                out.error(&format!(
                    "ERR a LIBSTATE.LOAD chunk holds at most {max} bytes"
                ));
                return After::Continue;
            }
            // Waits while the queue is full; fails once the load stopped reading.
            let more = job.tx.send(LoadChunk::Data(chunk.to_vec())).is_ok();
            out.int(i64::from(more));
        }
        Some(b"END") => {
            let Some(job) = sess.load.take() else {
                out.error("ERR LIBSTATE.LOAD END needs a load, started with BEGIN");
                return After::Continue;
            };
            // A load that stopped reading has no receiver left: nothing to tell.
            let _ = job.tx.send(LoadChunk::End);
            drop(job.tx);
            let reply = job.done.join().unwrap_or_else(|_| AdminReply {
                // The CLI's exit code for a store that cannot be used.
                code: 3,
                stderr: b"state: internal error: the load stopped unexpectedly\n".to_vec(),
                ..AdminReply::default()
            });
            write_reply(&reply, out);
        }
        _ => out.error("ERR LIBSTATE.LOAD takes BEGIN, DATA or END"),
    }
    After::Continue
}
