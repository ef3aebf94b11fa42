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
