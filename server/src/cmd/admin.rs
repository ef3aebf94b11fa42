//! LIBSTATE.RUN: a `state` command run by the server on its own store, for the
//! store's administrator (the server's own Unix user, or root, on the Unix socket).
//! This is how `state info|keys|get|set|...|backup` work while `state serve` holds
//! the store: the CLI sends its arguments here and prints what comes back, so the
//! output and exit codes are those of the same command on a closed store.

use super::args::Args;
use super::After;
use crate::config::AdminRequest;
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
    out.array(3);
    out.int(i64::from(reply.code));
    out.bulk(&reply.stdout);
    out.bulk(&reply.stderr);
    After::Continue
}
