//! The Unix socket, created with its final mode: no moment in which its path exists
//! with a wider mode than 0600.
//!
//! `bind(2)` creates the socket file with mode `0777 & ~umask`, and chmod can only
//! follow it: in between, any user could connect (under umask 000 another user did,
//! 2 of 5 starts). Setting the umask for the bind is no fix in a library: the umask
//! is per process, and the tokio runtime's threads (and the caller's) may create
//! files at the same moment. So the socket is bound inside a private directory
//! (mode 0700, made with a random name next to the final path, on the same file
//! system), set to 0600 there, where no other user can reach it, and then renamed
//! into place with rename(2), which is atomic: the path appears already 0600. The
//! private directory is removed. A wider mode or another group asked for
//! (`--unix-mode`, `--unix-group`) is set the same way, before the rename.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::UnixListener;

/// Binds a listening Unix socket at `path`, with `mode` (0600 by default) and group
/// `group` from the moment the path exists. A socket left at `path` by a server
/// that died is replaced; a live one, or a file that is not a socket, is an error.
pub(crate) fn bind(path: &Path, mode: u32, group: Option<u32>) -> io::Result<UnixListener> {
    let err = |e: io::Error, what: &str| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {what}{e}", path.display()),
        )
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "cannot listen on {}: it exists and is not a socket",
                    path.display()
                ),
            ))
        }
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running server", path.display()),
                ));
            }
            // A stale socket: the rename below replaces it.
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e, "")),
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Mode 0700 at creation (tempfile's default for directories); a short name, so
    // the temporary path is no longer than `<dir>/state.sock` (sun_path is short).
    let private = tempfile::Builder::new()
        .prefix(".s")
        .rand_bytes(6)
        .tempdir_in(dir)
        .map_err(|e| err(e, "cannot create a private directory for the bind: "))?;
    let tmp = private.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(|e| err(e, ""))?;
    if let Some(gid) = group {
        nix::unistd::chown(&tmp, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(|e| {
            err(
                io::Error::from(e),
                &format!("cannot give the socket group {gid}: "),
            )
        })?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode & 0o777))
        .map_err(|e| err(e, ""))?;
    std::fs::rename(&tmp, path).map_err(|e| err(e, "cannot move the socket into place: "))?;
    if let Err(e) = private.close() {
        tracing::warn!("cannot remove the socket's temporary directory: {e}");
    }
    listener.set_nonblocking(true).map_err(|e| err(e, ""))?;
    UnixListener::from_std(listener).map_err(|e| err(e, ""))
}
