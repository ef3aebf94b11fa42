//! The CLI against a store that `state serve` holds: the commands go through the
//! server's Unix socket and print exactly what they print on a closed store, with
//! the same exit codes (compared with the same commands on a closed copy of the
//! store), and their writes are the server's.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command as Proc, Stdio};

use common::{Env, ENGINES};

/// `state serve` on `store` (no TCP listeners), running until dropped.
struct Serving(Child);

impl Serving {
    fn start(store: &Path) -> Serving {
        let mut child = Proc::new(assert_cmd::cargo::cargo_bin("state"))
            .env_remove("STATE_STORE")
            .arg("--store")
            .arg(store)
            .args(["serve", "--resp", "off", "--http", "off"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let ready = BufReader::new(out).lines().any(|l| {
            l.map(|l| l.starts_with("state serve: ready"))
                .unwrap_or(false)
        });
        assert!(ready, "state serve did not start");
        Serving(child)
    }

    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        assert!(self.0.wait().unwrap().success());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// (exit code, stdout, stderr) of `state --store STORE ARGS` run in `cwd`, with
/// the store's path replaced by `STORE`.
fn run(cwd: &Path, store: &Path, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let out = assert_cmd::Command::cargo_bin("state")
        .unwrap()
        .current_dir(cwd)
        .env_remove("STATE_STORE")
        .arg("--store")
        .arg(store)
        .args(args)
        .write_stdin(stdin.to_vec())
        .output()
        .unwrap();
    let canon = std::fs::canonicalize(store).unwrap();
    let clean = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .replace(canon.to_str().unwrap(), "STORE")
            .replace(store.to_str().unwrap(), "STORE")
    };
    (
        out.status.code().unwrap_or(-1),
        clean(&out.stdout),
        clean(&out.stderr),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if e.file_name() != "state.sock" {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn commands_on_a_served_store_print_what_they_print_on_a_closed_one() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        let closed = env.file("closed");
        copy_dir(&env.store, &closed);
        let server = Serving::start(&env.store);
        let cwd = env.tmp.path();
        let same = |args: &[&str], stdin: &[u8]| {
            let served = run(cwd, &env.store, args, stdin);
            let local = run(cwd, &closed, args, stdin);
            assert_eq!(served, local, "{engine}: state {args:?}");
            served
        };
        let reads: &[&[&str]] = &[
            &["buckets"],
            &["get", "user1", "theme"],
            &["get", "device-7", "bin", "--raw"],
            &["get", "user1", "nope"],
            &["keys", "user1", "--prefix", "widget/", "--values"],
            &["--json", "keys", "user1", "--limit", "2"],
            &["ttl", "user1", "theme"],
            &["dump", "--format", "jsonl"],
            &["check"],
            &["--json", "buckets"],
            &["del", "user1", "nope"],
            &["expire", "user1", "nope", "5m"],
            &["get", "", "k"],
        ];
        for args in reads {
            same(args, b"");
        }
        assert_eq!(same(&["get", "user1", "nope"], b"").0, 1);
        assert_eq!(same(&["get", "", "k"], b"").0, 2);
        // Writes: the same replies, and on the served store they are the server's.
        let writes: &[(&[&str], &[u8])] = &[
            (&["set", "user1", "theme", "light"], b""),
            (&["set", "user1", "piped", "-"], b"from stdin"),
            (&["expire", "user1", "theme", "1h"], b""),
            (&["persist", "user1", "theme"], b""),
            (&["del", "user1", "widget/a"], b""),
            (&["rm-bucket", "device-7"], b""),
        ];
        for (args, stdin) in writes {
            same(args, stdin);
        }
        same(&["dump"], b"");
        let (code, out, _) = run(cwd, &env.store, &["info"], b"");
        assert_eq!(code, 0);
        assert!(out.contains("records   6"), "{engine}: {out}");
        // backup writes the copy where the caller said, relative to its directory.
        let (code, out, err) = run(cwd, &env.store, &["backup", "snap"], b"");
        assert_eq!(code, 0, "{engine}: {err}");
        assert!(out.contains("6 records in 1 buckets"), "{engine}: {out}");
        let (code, _, _) = run(cwd, &env.store, &["compact"], b"");
        assert_eq!(code, 0);
        server.stop();
        let snap = env.file("snap");
        assert_eq!(
            run(cwd, &snap, &["get", "user1", "piped"], b"").1,
            "from stdin\n"
        );
        assert_eq!(
            run(cwd, &env.store, &["get", "user1", "theme"], b"").1,
            "light\n"
        );
        assert_eq!(
            run(cwd, &env.store, &["ttl", "user1", "theme"], b""),
            run(cwd, &closed, &["ttl", "user1", "theme"], b"")
        );
    }
}

#[test]
fn a_store_held_by_another_program_names_the_process() {
    let env = Env::new();
    env.seed("sled");
    // A server without its socket: the store is held and there is nothing to reach.
    let mut child = Proc::new(assert_cmd::cargo::cargo_bin("state"))
        .env_remove("STATE_STORE")
        .arg("--store")
        .arg(&env.store)
        .args(["serve", "--unix", "off", "--resp", "off", "--http", "off"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    assert!(BufReader::new(out).lines().any(|l| l
        .map(|l| l.starts_with("state serve: ready"))
        .unwrap_or(false)));
    let (code, _, err) = run(env.tmp.path(), &env.store, &["info"], b"");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("process {}", child.id())), "{err}");
    assert!(err.contains("state serve"), "{err}");
}

/// `s` with the load summary's timing (`in 0.01 s`, `"seconds":0.01`) replaced by
/// `T`: the one figure that differs between two runs.
fn untimed(s: &str) -> String {
    let number = |c: char| c.is_ascii_digit() || ".e-+".contains(c);
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        let mut l = line.to_string();
        for start in [" in ", "\"seconds\":"] {
            if let Some(i) = l.find(start) {
                let from = i + start.len();
                let len = l[from..]
                    .find(|c: char| !number(c))
                    .unwrap_or(l.len() - from);
                let timed = len > 0 && (start != " in " || l[from + len..].starts_with(" s"));
                if timed {
                    l.replace_range(from..from + len, "T");
                }
            }
        }
        out.push_str(&l);
    }
    out
}

#[test]
fn load_through_the_server_sends_the_input_and_prints_what_it_prints_on_a_closed_store() {
    for engine in ENGINES {
        let env = Env::new();
        env.seed(engine);
        let cwd = env.tmp.path();
        // Inputs: a dump of the seeded store (JSON lines, with a deadline), a JSON
        // file, one of several chunks (over a MiB), a refused line, a missing file.
        let dumped = run(cwd, &env.store, &["dump", "--format", "jsonl"], b"").1;
        std::fs::write(env.file("seed.jsonl"), dumped.replace("user1", "copy")).unwrap();
        std::fs::write(
            env.file("orig.json"),
            r#"{"j1": {"a": "MQ==", "b": "Mg=="}, "user1": {"theme": "bGlnaHQ="}}"#,
        )
        .unwrap();
        let big: String = (0..12_000)
            .map(|i| {
                format!(
                    r#"{{"bucket":"big","key":"k{i:05}","value":"{}"}}"#,
                    "QUJD".repeat(30)
                ) + "\n"
            })
            .collect();
        assert!(big.len() > 1 << 20);
        std::fs::write(env.file("big.jsonl"), &big).unwrap();
        std::fs::write(
            env.file("bad.jsonl"),
            concat!(
                r#"{"bucket":"bad","key":"ok1","value":"MQ=="}"#,
                "\n",
                r#"{"bucket":"bad","key":"ok2","value":"MQ=="}"#,
                "\n",
                "{not json\n",
            ),
        )
        .unwrap();
        let closed = env.file("closed");
        copy_dir(&env.store, &closed);
        let server = Serving::start(&env.store);
        let same = |args: &[&str], stdin: &[u8]| {
            let served = run(cwd, &env.store, args, stdin);
            let local = run(cwd, &closed, args, stdin);
            let (served, local) = (
                (served.0, untimed(&served.1), untimed(&served.2)),
                (local.0, untimed(&local.1), untimed(&local.2)),
            );
            assert_eq!(served, local, "{engine}: state {args:?}");
            served
        };
        let (code, out, _) = same(&["load", "seed.jsonl"], b"");
        assert_eq!(code, 0);
        assert!(out.starts_with("loaded 8 records"), "{engine}: {out}");
        assert_eq!(same(&["--json", "load", "orig.json"], b"").0, 0);
        let (code, out, _) = same(&["load", "big.jsonl"], b"");
        assert_eq!(code, 0);
        assert!(out.starts_with("loaded 12000 records"), "{engine}: {out}");
        let stdin = br#"{"bucket":"piped","key":"k","value":"cGlwZWQ="}"#;
        assert_eq!(
            same(&["load", "-", "--format", "jsonl"], stdin).0,
            0,
            "{engine}"
        );
        let (code, _, err) = same(&["load", "bad.jsonl"], b"");
        assert_eq!(code, 2, "{engine}: {err}");
        assert!(err.contains("line 3"), "{engine}: {err}");
        assert!(
            err.contains("the 2 records before line 3 were loaded"),
            "{engine}: {err}"
        );
        let (code, _, err) = same(&["load", "missing.jsonl"], b"");
        assert_eq!(code, 2, "{engine}: {err}");
        // The server's store holds what the loads wrote, as the closed one does.
        same(&["dump", "--format", "jsonl"], b"");
        assert_eq!(
            run(cwd, &env.store, &["get", "piped", "k"], b"").1,
            "piped\n"
        );

        // The server opens no path a caller names: `load` through LIBSTATE.RUN (with
        // no input sent) is refused, and nothing is loaded.
        let reply = raw(
            &env.store.join("state.sock"),
            &[
                b"LIBSTATE.RUN",
                cwd.to_str().unwrap().as_bytes(),
                b"",
                b"load",
                b"seed.jsonl",
            ],
        );
        assert!(reply.starts_with("*3\r\n:2\r\n"), "{engine}: {reply}");
        assert!(reply.contains("LIBSTATE.LOAD"), "{engine}: {reply}");
        // A connection that goes away before END fails its load: the part sent (here
        // a whole JSON document) is not taken for the whole input (the server's
        // AdminInput test checks this exactly; here the server goes on serving).
        let sock = env.store.join("state.sock");
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let begin = resp(&[
            b"LIBSTATE.LOAD",
            b"BEGIN",
            cwd.to_str().unwrap().as_bytes(),
            b"load",
            b"-",
            b"--format",
            b"json",
        ]);
        let data = resp(&[b"LIBSTATE.LOAD", b"DATA", br#"{"cut": {"k": "MQ=="}}"#]);
        std::io::Write::write_all(&mut s, &begin).unwrap();
        std::io::Write::write_all(&mut s, &data).unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(':'), "{engine}: {line}");
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, ":1\r\n", "{engine}");
        drop(r);
        // The next command is served after the cut load ended.
        let (code, out, _) = run(cwd, &env.store, &["buckets"], b"");
        assert_eq!(code, 0);
        assert!(!out.contains("cut"), "{engine}: {out}");
        server.stop();
    }
}

/// A RESP request of `parts`.
fn resp(parts: &[&[u8]]) -> Vec<u8> {
    let mut req = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        req.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
        req.extend_from_slice(p);
        req.extend_from_slice(b"\r\n");
    }
    req
}

/// Sends one request on the socket and returns the reply (read until it stops).
fn raw(sock: &Path, parts: &[&[u8]]) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.write_all(&resp(parts)).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
