//! A real full disk: each engine's store on an 8 MiB tmpfs, written until the file
//! system is full. The failing write is a clean *I/O* error with a human message
//! naming the store and the OS error; no write that failed is reported as done;
//! reads keep working; closing returns (sled 0.34 alone hangs forever dropping its
//! database after ENOSPC); and a new process opens the store with every
//! acknowledged write.
//!
//! The tmpfs is mounted in a private mount namespace (`unshare --map-root-user
//! --mount`, util-linux), so the test needs no privileges and leaves no mount behind.
//! The phases run as child processes of this test binary inside that namespace.

use std::path::Path;
use std::process::Command;

use state_core::{Engine, ErrorKind, Store};

const PHASE: &str = "LIBSTATE_FULL_DISK_PHASE";
const DIR: &str = "LIBSTATE_FULL_DISK_DIR";
const ENGINE: &str = "LIBSTATE_FULL_DISK_ENGINE";
const VALUE: usize = 256 << 10;
const SMALL_VALUE: usize = 4 << 10;

fn engine() -> Engine {
    match std::env::var(ENGINE).as_deref() {
        Ok("sled" | "sled-sync") => Engine::Sled,
        _ => Engine::Memfile,
    }
}

/// sled in sync mode: every acknowledged write is on disk before `set` returns.
fn sync() -> bool {
    std::env::var(ENGINE).as_deref() == Ok("sled-sync")
}

/// Whether every acknowledged write must survive the full disk. sled in periodic
/// mode holds acknowledged writes in memory until its next flush, and a flush that
/// fails for lack of space loses them (the close says so); memfile has appended
/// every acknowledged write to its log, and sled in sync mode has synced it.
fn keeps_every_acknowledged_write() -> bool {
    engine() == Engine::Memfile || sync()
}

fn open(dir: &Path) -> state_core::Result<Store> {
    Store::builder().engine(engine()).sync(sync()).open(dir)
}

fn same(a: Option<Vec<u8>>, b: Option<Vec<u8>>) -> bool {
    a == b
}

fn value(i: usize) -> Vec<u8> {
    // Incompressible enough that sled cannot squeeze it (it does not compress
    // anyway), and different per key.
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..VALUE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Phase 1: fill the disk. Prints the number of acknowledged writes.
fn fill(dir: &Path) {
    let store = open(dir).unwrap();
    let b = store.bucket("b").unwrap();
    let mut acked = 0;
    let mut failure = None;
    for i in 0..200 {
        match b.set(&format!("k{i:03}"), value(i)) {
            Ok(()) => acked += 1,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("an 8 MiB file system filled up within 200 writes of 256 KiB");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let msg = e.to_string();
    assert_no_space_message(dir, &msg);
    // The failed write is not visible; every acknowledged one reads back. sled 0.34
    // refuses every operation after an I/O error (its database is poisoned until a
    // new process opens it): reads then fail with the same clean error.
    for i in 0..=acked {
        let expected = (i < acked).then(|| value(i));
        match b.get(&format!("k{i:03}")) {
            Ok(v) => assert!(same(v, expected), "k{i:03} reads back"),
            Err(e) if engine() == Engine::Sled => assert_eq!(e.kind(), ErrorKind::Io, "{e}"),
            Err(e) => panic!("memfile reads keep working after a full disk: {e}"),
        }
    }
    // Closing returns; if it could not make every acknowledged write durable, it
    // says so.
    let closed = store.close();
    eprintln!("close after the full disk: {closed:?}");
    if !keeps_every_acknowledged_write() {
        let e = closed.expect_err("sled's close cannot flush on a full disk");
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    }
    // On a line of its own: the test harness prints "test ... " before it.
    println!("\nacked={acked}");
}

/// Phase 2, a new process, the disk still full: the store opens readable, or (sled,
/// which writes while it opens) refuses with a message saying space must be freed.
fn reopen_full(dir: &Path, acked: usize) {
    match open(dir) {
        Ok(store) => {
            let b = store.bucket("b").unwrap();
            for i in 0..acked {
                let v = b.get(&format!("k{i:03}")).unwrap();
                if keeps_every_acknowledged_write() || v.is_some() {
                    assert!(same(v, Some(value(i))), "k{i:03}");
                }
            }
            let _ = store.close();
            println!("\nreopened-full=readable");
        }
        Err(e) => {
            assert_eq!(engine(), Engine::Sled, "memfile reopens a full disk: {e}");
            assert_eq!(e.kind(), ErrorKind::Io, "{e}");
            assert!(e.to_string().contains("free space"), "{e}");
            println!("\nreopened-full=refused");
        }
    }
}

/// Phase 3, a new process, space freed: the store opens with every acknowledged write.
fn verify(dir: &Path, acked: usize) {
    let store = open(dir).unwrap();
    let b = store.bucket("b").unwrap();
    // What survived is a prefix of the acknowledged writes: all of them where the
    // engine keeps every one, else those before the last successful flush.
    let mut present = 0;
    while present < acked && b.get(&format!("k{present:03}")).unwrap().is_some() {
        present += 1;
    }
    if keeps_every_acknowledged_write() {
        assert_eq!(present, acked, "every acknowledged write is present");
    }
    for i in 0..acked {
        let v = b.get(&format!("k{i:03}")).unwrap();
        assert!(
            same(v, (i < present).then(|| value(i))),
            "k{i:03}: a prefix, with its value"
        );
    }
    assert_eq!(
        b.get(&format!("k{acked:03}")).unwrap(),
        None,
        "the failed write"
    );
    store.close().unwrap();
    println!("\nverified={present}");
}

/// One human message naming the store (or its file) and the OS error as the OS
/// words it, whatever the engine.
fn assert_no_space_message(dir: &Path, msg: &str) {
    assert!(
        msg.starts_with(&format!("I/O error on {}", dir.display()))
            && msg.ends_with(": No space left on device (os error 28)"),
        "`I/O error on <store or its file>: No space left on device (os error 28)`, got: {msg}"
    );
}

/// Phase `small`: values of a few KiB, as applications write them, until the file
/// system is full. The failed write's message is the OS error as the OS words it,
/// naming the store: sled 0.34 hands writes after a failed flush a Debug-formatted
/// copy of the error (`Os { code: 28, kind: StorageFull, ... }`), which must not
/// reach users.
fn fill_small(dir: &Path) {
    let store = open(dir).unwrap();
    let b = store.bucket("b").unwrap();
    let value = |i: usize| format!("{i:08}").repeat(SMALL_VALUE / 8).into_bytes();
    let e = (0..100_000)
        .find_map(|i| b.set(&format!("s{i:06}"), value(i)).err())
        .expect("a 2 MiB file system filled up within 100K writes of 4 KiB");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    let msg = e.to_string();
    assert_no_space_message(dir, &msg);
    // What the next write says (sled refuses every write after an I/O error).
    let next = b.set("after", b"x").err().map(|e| e.to_string());
    let _ = store.close();
    println!("\nfailed-write={msg}\nnext-write={next:?}");
}

#[test]
fn full_disk_child() {
    let (Ok(phase), Ok(dir)) = (std::env::var(PHASE), std::env::var(DIR)) else {
        return; // Only meaningful as a child of `a_full_disk_fails_cleanly_*`.
    };
    let dir = Path::new(&dir).join("store");
    match phase.as_str() {
        "fill" => fill(&dir),
        "small" => fill_small(&dir),
        other => match other.strip_prefix("full:") {
            Some(acked) => reopen_full(&dir, acked.parse().unwrap()),
            None => verify(&dir, other.parse().unwrap()),
        },
    }
}

/// Runs `script` (sh, `$0` this test binary) as root of a private user and mount
/// namespace, `$LIBSTATE_FULL_DISK_DIR` an empty directory to mount a tmpfs on;
/// returns its standard output.
fn in_namespace(engine_name: &str, script: &str) -> String {
    let mnt = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c", script])
        .arg(&exe)
        .env(DIR, mnt.path())
        .env(ENGINE, engine_name)
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{engine_name}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let summary: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| {
            l.contains("acked=")
                || l.contains("verified=")
                || l.contains("reopened-full=")
                || l.contains("close after")
                || l.contains("-write=")
        })
        .collect();
    eprintln!("{engine_name}: {summary:?}");
    stdout.into_owned()
}

fn run(engine_name: &str) {
    let script = r#"
        set -e
        mount -t tmpfs -o size=8m tmpfs "$LIBSTATE_FULL_DISK_DIR"
        out=$(LIBSTATE_FULL_DISK_PHASE=fill "$0" --exact full_disk_child --nocapture --test-threads 1)
        acked=$(printf '%s\n' "$out" | sed -n 's/^acked=//p')
        test -n "$acked"
        LIBSTATE_FULL_DISK_PHASE=full:$acked "$0" --exact full_disk_child --nocapture --test-threads 1
        mount -o remount,size=16m tmpfs "$LIBSTATE_FULL_DISK_DIR"
        LIBSTATE_FULL_DISK_PHASE=$acked "$0" --exact full_disk_child --nocapture --test-threads 1
    "#;
    let stdout = in_namespace(engine_name, script);
    let acked: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("verified="))
        .expect("the verify phase ran")
        .parse()
        .unwrap();
    if engine_name != "sled" {
        assert!(acked > 0, "some writes fit before the disk was full");
    }
}

/// The `small` phase on a 2 MiB tmpfs.
fn run_small(engine_name: &str) {
    let script = r#"
        set -e
        mount -t tmpfs -o size=2m tmpfs "$LIBSTATE_FULL_DISK_DIR"
        LIBSTATE_FULL_DISK_PHASE=small "$0" --exact full_disk_child --nocapture --test-threads 1
    "#;
    let stdout = in_namespace(engine_name, script);
    assert!(
        stdout.contains("failed-write="),
        "the small phase ran: {stdout}"
    );
}

#[test]
fn the_failed_write_on_a_full_disk_says_no_space_left_memfile() {
    run_small("memfile");
}

#[test]
fn the_failed_write_on_a_full_disk_says_no_space_left_sled() {
    run_small("sled");
}

#[test]
fn the_failed_write_on_a_full_disk_says_no_space_left_sled_sync() {
    run_small("sled-sync");
}

#[test]
fn a_full_disk_fails_cleanly_memfile() {
    run("memfile");
}

#[test]
fn a_full_disk_fails_cleanly_sled() {
    run("sled");
}

#[test]
fn a_full_disk_fails_cleanly_sled_sync() {
    run("sled-sync");
}
