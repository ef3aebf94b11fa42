//! The CLI against a running `state serve`.
//!
//! One process owns a store at a time, so while `state serve` holds it, commands
//! such as `state info` would fail with *locked*. Instead, when the store directory
//! holds the live socket of a server, the CLI sends its arguments there
//! (LIBSTATE.RUN, allowed to the store's administrator: the server's own Unix user,
//! or root, by peer credentials) and the server runs the very same command on its
//! open store ([`runner`]) and sends back what it printed and its exit code. So the
//! output and the exit codes are those of the command on a closed store.
//!
//! `state load` reads its input here, with the caller's rights, and sends it over
//! the socket in chunks (LIBSTATE.LOAD, [`forward_load`]); the server never opens a
//! path a caller names.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use state_server::{AdminInput, AdminReply, AdminRequest, AdminRunner, SOCKET_NAME};

use crate::args::{Cli, Command};
use crate::fail::{CmdResult, Failure};
use crate::output::Output;

thread_local! {
    /// Standard input sent by the administrator's `state`, for the command the
    /// server runs on this thread.
    static STDIN: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    /// The input a remote caller of `state load` sends, for the load the server
    /// runs on this thread.
    static INPUT: RefCell<Option<AdminInput>> = const { RefCell::new(None) };
}

/// The input a remote caller of `state load` sends, if this thread runs its load.
pub fn take_input() -> Option<AdminInput> {
    INPUT.with(|s| s.borrow_mut().take())
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
            | Command::Load { .. }
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

/// The failure for a server that cannot be reached at `sock`.
fn unreachable(sock: &Path) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| {
        Failure::store(format!(
            "the store is held by the server listening on {}, which cannot be reached: {e}",
            sock.display()
        ))
    }
}

/// The failure for a command the server refused (`msg`, its error reply).
fn refused(msg: &str) -> Failure {
    Failure::store(format!(
        "the server holding the store refused the command: {msg}"
    ))
    .with_hint(
        "commands go through `state serve` for the store's owner (the server's Unix user) \
         or root; run this as that user, or stop the server",
    )
}

/// A RESP request of `parts`.
fn request(parts: &[&[u8]]) -> Vec<u8> {
    let mut req = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        req.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        req.extend_from_slice(p);
        req.extend_from_slice(b"\r\n");
    }
    req
}

/// The arguments as UTF-8 bytes (the server parses them as the CLI does).
fn utf8_args(args: &[OsString]) -> CmdResult<Vec<&[u8]>> {
    args.iter()
        .map(|a| {
            a.to_str()
                .map(str::as_bytes)
                .ok_or_else(|| Failure::usage(format!("{a:?} is not UTF-8")))
        })
        .collect()
}

/// Prints what the command printed on the server and returns its exit code.
fn print_reply(reply: &AdminReply) -> CmdResult<u8> {
    let mut out = std::io::stdout().lock();
    out.write_all(&reply.stdout)
        .and_then(|()| out.flush())
        .map_err(crate::output::stdout_failure)?;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&reply.stderr);
    Ok(reply.code)
}

/// Sends the command line (`args`, without the program name) to the server at
/// `sock`, prints what the command printed there, and returns its exit code.
pub fn forward(sock: &Path, cli: &Cli, args: &[OsString]) -> CmdResult<u8> {
    if let Command::Load { file, .. } = &cli.command {
        return forward_load(sock, file, args);
    }
    let unreachable = unreachable(sock);
    let mut stdin = Vec::new();
    if reads_stdin(&cli.command) {
        std::io::stdin()
            .lock()
            .read_to_end(&mut stdin)
            .map_err(|e| Failure::input(Path::new("standard input"), e))?;
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::store(format!("the working directory: {e}")))?;
    let mut parts: Vec<&[u8]> = vec![b"LIBSTATE.RUN", cwd.as_os_str().as_encoded_bytes(), &stdin];
    parts.extend(utf8_args(args)?);
    let mut stream = UnixStream::connect(sock).map_err(&unreachable)?;
    stream.write_all(&request(&parts)).map_err(&unreachable)?;
    let mut r = BufReader::new(stream);
    let reply = read_reply(&mut r).map_err(&unreachable)?;
    let reply = reply.map_err(|msg| refused(&msg))?;
    print_reply(&reply)
}

/// `state load FILE` through the server at `sock`: reads the input here (the file,
/// with this user's rights, or standard input) and sends it in chunks of the size
/// the server names (LIBSTATE.LOAD BEGIN, DATA..., END), showing the bytes sent;
/// then prints what the load printed on the server and returns its exit code. A
/// read error ends the connection before END, so the server's load fails too (the
/// records it loaded before stay, as on a closed store), and is reported as on a
/// closed store.
fn forward_load(sock: &Path, file: &Path, args: &[OsString]) -> CmdResult<u8> {
    let unreachable = unreachable(sock);
    let shown = crate::load::display_name(file);
    let (mut input, size) = crate::load::open_input(file)?;
    let cwd = std::env::current_dir()
        .map_err(|e| Failure::store(format!("the working directory: {e}")))?;
    let mut parts: Vec<&[u8]> = vec![
        b"LIBSTATE.LOAD",
        b"BEGIN",
        cwd.as_os_str().as_encoded_bytes(),
    ];
    parts.extend(utf8_args(args)?);
    let mut stream = UnixStream::connect(sock).map_err(&unreachable)?;
    let mut r = BufReader::new(stream.try_clone().map_err(&unreachable)?);
    stream.write_all(&request(&parts)).map_err(&unreachable)?;
    let chunk = match read_int(&mut r).map_err(&unreachable)? {
        Ok(n) => usize::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| unreachable(bad_reply("a chunk size")))?,
        Err(msg) => return Err(refused(&msg)),
    };
    let bar = crate::load::sending_bar(size, &shown);
    // At most `chunk` bytes (the server's figure, at most LOAD_CHUNK_MAX) of input
    // are held here at a time.
    let mut buf = vec![0u8; chunk.min(state_server::LOAD_CHUNK_MAX)];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.finish_and_clear();
                // Closing the connection without END fails the server's load.
                drop(stream);
                return Err(Failure::input(Path::new(&shown), e));
            }
        };
        stream
            .write_all(&request(&[b"LIBSTATE.LOAD", b"DATA", &buf[..n]]))
            .map_err(&unreachable)?;
        bar.inc(n as u64);
        match read_int(&mut r).map_err(&unreachable)? {
            Ok(1) => {}
            // The load stopped reading (it failed): END brings its output.
            Ok(_) => break,
            Err(msg) => return Err(refused(&msg)),
        }
    }
    bar.finish_and_clear();
    stream
        .write_all(&request(&[b"LIBSTATE.LOAD", b"END"]))
        .map_err(&unreachable)?;
    let reply = read_reply(&mut r).map_err(&unreachable)?;
    let reply = reply.map_err(|msg| refused(&msg))?;
    print_reply(&reply)
}

fn bad_reply(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("an unexpected reply in place of {what}"),
    )
}

/// Reads `:n`, or an error line (`Err(message)`).
fn read_int(r: &mut impl BufRead) -> std::io::Result<Result<i64, String>> {
    let mut l = String::new();
    r.read_line(&mut l)?;
    let l = l.trim_end_matches(['\r', '\n']);
    if let Some(msg) = l.strip_prefix('-') {
        return Ok(Err(msg.to_string()));
    }
    l.strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .map(Ok)
        .ok_or_else(|| bad_reply("a number"))
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
    // `state load` reads only what its caller sends (LIBSTATE.LOAD), never a path.
    let input = req.input;
    if matches!(cli.command, Command::Load { .. }) && input.is_none() {
        return usage(
            "state: load runs through the server with its input sent by the caller \
             (LIBSTATE.LOAD), not through LIBSTATE.RUN\n"
                .into(),
        );
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
    INPUT.with(|s| *s.borrow_mut() = input);
    let result = crate::run(cli, true, &mut out).and_then(|()| out.flush());
    STDIN.with(|s| s.borrow_mut().take());
    INPUT.with(|s| s.borrow_mut().take());
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
