//! The CLI against a running `state serve`.
//!
//! One process owns a store at a time, so while `state serve` holds it, commands
//! such as `state info` would fail with *locked*. Instead, when the store directory
//! holds the live socket of a server, the CLI sends its arguments there
//! (LIBSTATE.RUN, allowed to the store's administrator: the server's own Unix user,
//! or root, by peer credentials) and the server runs the very same command on its
//! open store ([`runner`]) and sends back what it printed and its exit code. So the
//! output and the exit codes are those of the command on a closed store.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use state_server::{AdminReply, AdminRequest, AdminRunner, SOCKET_NAME};

use crate::args::{Cli, Command};
use crate::fail::{CmdResult, Failure};
use crate::output::Output;

thread_local! {
    /// Standard input sent by the administrator's `state`, for the command the
    /// server runs on this thread.
    static STDIN: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The standard input a remote caller sent, if this thread runs its command.
pub fn take_stdin() -> Option<Vec<u8>> {
    STDIN.with(|s| s.borrow_mut().take())
}

/// The commands that run through the server when it holds the store.
pub fn remotable(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::Buckets
            | Command::Info
            | Command::Get { .. }
            | Command::Set { .. }
            | Command::Del { .. }
            | Command::Keys { .. }
            | Command::Ttl { .. }
            | Command::Expire { .. }
            | Command::Persist { .. }
            | Command::RmBucket { .. }
            | Command::Dump { .. }
            | Command::Check
            | Command::Compact
            | Command::Backup { .. }
            | Command::Client(_)
    )
}

/// The socket of a server running on the store in `dir`, if one answers there.
pub fn live_socket(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(SOCKET_NAME);
    UnixStream::connect(&path).ok().map(|_| path)
}

/// Whether the command reads standard input (`set B K -`, `set --file -`).
fn reads_stdin(cmd: &Command) -> bool {
    match cmd {
        Command::Set { value, file, .. } => {
            value.as_deref() == Some("-") || file.as_deref().is_some_and(|f| f.as_os_str() == "-")
        }
        _ => false,
    }
}

/// Sends the command line (`args`, without the program name) to the server at
/// `sock`, prints what the command printed there, and returns its exit code.
pub fn forward(sock: &Path, cli: &Cli, args: &[OsString]) -> CmdResult<u8> {
    let unreachable = |e: std::io::Error| {
        Failure::store(format!(
            "the store is held by the server listening on {}, which cannot be reached: {e}",
            sock.display()
        ))
    };
    let mut stdin = Vec::new();
    if reads_stdin(&cli.command) {
        std::io::stdin()
            .lock()
            .read_to_end(&mut stdin)
            .map_err(|e| Failure::input(Path::new("standard input"), e))?;
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::store(format!("the working directory: {e}")))?;
    let mut parts: Vec<Vec<u8>> = vec![
        b"LIBSTATE.RUN".to_vec(),
        cwd.as_os_str().as_encoded_bytes().to_vec(),
        stdin,
    ];
    for a in args {
        let s = a
            .to_str()
            .ok_or_else(|| Failure::usage(format!("{a:?} is not UTF-8")))?;
        parts.push(s.as_bytes().to_vec());
    }
    let mut req = format!("*{}\r\n", parts.len()).into_bytes();
    for p in &parts {
        req.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        req.extend_from_slice(p);
        req.extend_from_slice(b"\r\n");
    }
    let mut stream = UnixStream::connect(sock).map_err(unreachable)?;
    stream.write_all(&req).map_err(unreachable)?;
    let mut r = BufReader::new(stream);
    let reply = read_reply(&mut r).map_err(unreachable)?;
    let reply = reply.map_err(|msg| {
        Failure::store(format!(
            "the server holding the store refused the command: {msg}"
        ))
        .with_hint(
            "commands go through `state serve` for the store's owner (the server's Unix user) \
             or root; run this as that user, or stop the server",
        )
    })?;
    let mut out = std::io::stdout().lock();
    out.write_all(&reply.stdout)
        .and_then(|()| out.flush())
        .map_err(crate::output::stdout_failure)?;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&reply.stderr);
    Ok(reply.code)
}

/// Reads `*3 :code $stdout $stderr`, or an error line (`Err(message)`).
fn read_reply(r: &mut impl BufRead) -> std::io::Result<Result<AdminReply, String>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let line = |r: &mut dyn BufRead| -> std::io::Result<String> {
        let mut l = String::new();
        r.read_line(&mut l)?;
        Ok(l.trim_end_matches(['\r', '\n']).to_string())
    };
    let first = line(r)?;
    if let Some(msg) = first.strip_prefix('-') {
        return Ok(Err(msg.to_string()));
    }
    if first != "*3" {
        return Err(bad("an unexpected reply"));
    }
    let code = line(r)?
        .strip_prefix(':')
        .and_then(|n| n.parse::<u8>().ok())
        .ok_or_else(|| bad("an unexpected exit code"))?;
    let bulk = |r: &mut dyn BufRead| -> std::io::Result<Vec<u8>> {
        let n: usize = line(r)?
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("an unexpected output length"))?;
        let mut buf = vec![0; n + 2];
        r.read_exact(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    };
    let stdout = bulk(r)?;
    let stderr = bulk(r)?;
    Ok(Ok(AdminReply {
        code,
        stdout,
        stderr,
        ..AdminReply::default()
    }))
}

/// A writer into a shared buffer.
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut v) => {
                v.extend_from_slice(buf);
                Ok(buf.len())
            }
            Err(_) => Err(std::io::Error::other("the output buffer is poisoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `state serve` installs: runs an administrator's command on the store in
/// `dir` (the one it serves, open in this process, so the command shares it).
pub fn runner(dir: PathBuf) -> AdminRunner {
    AdminRunner(Arc::new(move |req| run_for_admin(&dir, req)))
}

fn run_for_admin(dir: &Path, req: AdminRequest) -> AdminReply {
    let usage = |msg: String| AdminReply {
        code: crate::fail::Code::Usage as u8,
        stderr: msg.into_bytes(),
        ..AdminReply::default()
    };
    let argv = std::iter::once("state".to_string()).chain(req.args);
    let mut cli = match <Cli as clap::Parser>::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => return usage(e.to_string()),
    };
    if !remotable(&cli.command) {
        return usage("state: this command does not run through the server\n".into());
    }
    let client_cmd = matches!(&cli.command, Command::Client(_));
    let own_list = matches!(&cli.command, Command::Client(c) if c.clients.is_none());
    if !req.owner && !own_list {
        return AdminReply {
            refused: Some(
                "a client added with --admin may run `state client ...` on the server's own \
                 client list; everything else is for the store's owner on the Unix socket"
                    .into(),
            ),
            ..AdminReply::default()
        };
    }
    cli.store = dir.to_path_buf();
    let at = |p: &mut PathBuf| {
        if p.is_relative() && p.as_os_str() != "-" {
            *p = req.cwd.join(&*p);
        }
    };
    match &mut cli.command {
        Command::Backup { dest } => at(dest),
        Command::Dump {
            output: Some(o), ..
        } => at(o),
        Command::Set { file: Some(f), .. } => at(f),
        Command::Client(c) => {
            if let Some(f) = c.clients.as_mut() {
                at(f);
            }
        }
        _ => {}
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let notes = Arc::new(Mutex::new(Vec::new()));
    let mut out = Output::to(
        cli.json,
        Box::new(Captured(buf.clone())),
        Box::new(Captured(notes.clone())),
    );
    STDIN.with(|s| *s.borrow_mut() = Some(req.stdin));
    let result = crate::run(cli, true, &mut out).and_then(|()| out.flush());
    STDIN.with(|s| s.borrow_mut().take());
    drop(out);
    let stdout = buf.lock().map(|v| v.clone()).unwrap_or_default();
    let mut stderr = notes.lock().map(|v| v.clone()).unwrap_or_default();
    match result {
        Ok(()) => AdminReply {
            code: 0,
            stdout,
            stderr,
            clients_changed: client_cmd,
            ..AdminReply::default()
        },
        Err(f) if f.message.ends_with(crate::output::BROKEN_PIPE) => AdminReply {
            code: 0,
            stdout,
            stderr,
            clients_changed: client_cmd,
            ..AdminReply::default()
        },
        Err(f) => {
            stderr.extend_from_slice(format!("state: {}\n", f.message).as_bytes());
            if let Some(hint) = &f.hint {
                stderr.extend_from_slice(format!("hint: {hint}\n").as_bytes());
            }
            AdminReply {
                code: f.code as u8,
                stdout,
                stderr,
                clients_changed: client_cmd,
                ..AdminReply::default()
            }
        }
    }
}
