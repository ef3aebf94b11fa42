//! The Redis engine beside the raw `redis` crate doing the same work, all rows in one
//! run against one redis-server (started here on a Unix socket in a temporary
//! directory, persistence off, and stopped at the end). `make bench-redis`.
//!
//! Rows: get; set (the engine's script: record plus index update, vs the same
//! SET + ZADD in one raw script); get_multiple of 1000 (vs one MGET); a 1000-entry
//! ordered scan by an iterator, a lending scan and a cursor's `next_n` (vs ZRANGE
//! BYLEX + MGET); set_multiple of 1000 (its commands counted
//! on the server: one round trip is the goal); gets from 8 threads vs 1.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use state_core::Store;

const KEYS: usize = 10_000;

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    sock: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("redis.sock").to_string_lossy().into_owned();
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--unixsocket",
            &sock,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian's redis-server package)");
    let client = redis::Client::open(format!("redis+unix://{sock}")).unwrap();
    for _ in 0..1000 {
        if let Ok(mut c) = client.get_connection() {
            if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                return Server {
                    child,
                    _dir: dir,
                    sock,
                };
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("redis-server did not start");
}

fn key(i: usize) -> String {
    format!("key{i:06}")
}

/// Microseconds per call of `f`, over `n` calls (after a warm-up of n/10).
fn per_call(n: usize, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..n / 10 {
        f(i);
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Calls of each command the server has run (INFO commandstats), summed over the
/// commands a client sends itself: EVALSHA/EVAL and every command that a script does
/// not run (those inside scripts are counted under their own names too, so they are
/// left out here).
fn client_commands(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| {
            let name = l.split(':').next().unwrap_or("");
            !matches!(
                name,
                "set" | "zadd" | "del" | "zrem" | "get" | "incr" | "info"
            )
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

fn main() {
    let server = start();
    let url = format!("redis+unix://{}?namespace=bench", server.sock);
    let store = Store::open(&url).unwrap();
    let b = store.bucket("b").unwrap();
    let value = vec![b'v'; 100];
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
        b.set_multiple(chunk.iter().map(|&i| (key(i), value.clone())))
            .unwrap();
    }
    let client = redis::Client::open(format!("redis+unix://{}", server.sock)).unwrap();
    let mut raw = client.get_connection().unwrap();
    // The engine's layout (docs/scale-out.md): records `{ns:bucket}:k:<key>`, the
    // ordered index `{ns:bucket}:i`. Raw rows use the same keys.
    let rk = |i: usize| format!("{{bench:b}}:k:{}", key(i));
    let ik = "{bench:b}:i";
    let set_script = redis::Script::new(
        "redis.call('SET', KEYS[1], ARGV[2]) redis.call('ZADD', KEYS[2], 0, ARGV[1]) return 1",
    );
    let n = 20_000;
    let mut rows: Vec<(&str, f64, f64)> = Vec::new();

    let lib = per_call(n, |i| {
        b.get(&key(i % KEYS)).unwrap().unwrap();
    });
    let rw = per_call(n, |i| {
        let _: Vec<u8> = redis::cmd("GET").arg(rk(i % KEYS)).query(&mut raw).unwrap();
    });
    rows.push(("get", lib, rw));

    let lib = per_call(n, |i| b.set(&key(i % KEYS), &value).unwrap());
    // A stored record is a header byte (0: no expiry) and the value.
    let stored: Vec<u8> = std::iter::once(0u8).chain(value.iter().copied()).collect();
    let rw = per_call(n, |i| {
        let _: i64 = set_script
            .key(rk(i % KEYS))
            .key(ik)
            .arg(key(i % KEYS))
            .arg(&stored[..])
            .invoke(&mut raw)
            .unwrap();
    });
    rows.push(("set (record + index, one script)", lib, rw));

    let batch: Vec<String> = (0..1000).map(key).collect();
    let lib = per_call(200, |_| {
        assert_eq!(b.get_multiple(&batch).unwrap().len(), 1000);
    });
    let raw_keys: Vec<String> = (0..1000).map(rk).collect();
    let rw = per_call(200, |_| {
        let v: Vec<Vec<u8>> = redis::cmd("MGET").arg(&raw_keys).query(&mut raw).unwrap();
        assert_eq!(v.len(), 1000);
    });
    rows.push(("get_multiple 1000", lib, rw));
    let lib = per_call(200, |_| {
        let mut n = 0;
        b.get_multiple_with(&batch, |_, _| n += 1).unwrap();
        assert_eq!(n, 1000);
    });
    rows.push(("get_multiple_with 1000 (lending)", lib, rw));

    let lib = per_call(200, |_| {
        assert_eq!(b.iter().take(1000).count(), 1000);
    });
    let rw = per_call(200, |_| {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(ik)
            .arg("-")
            .arg("+")
            .arg("BYLEX")
            .arg("LIMIT")
            .arg(0)
            .arg(1000)
            .query(&mut raw)
            .unwrap();
        let keys: Vec<String> = members
            .iter()
            .map(|m| format!("{{bench:b}}:k:{m}"))
            .collect();
        let v: Vec<Vec<u8>> = redis::cmd("MGET").arg(&keys).query(&mut raw).unwrap();
        assert_eq!(v.len(), 1000);
    });
    rows.push(("ordered scan of 1000 (ZRANGE BYLEX + MGET)", lib, rw));
    let lib = per_call(200, |_| {
        let mut n = 0;
        b.scan(.., false, |_, _| {
            n += 1;
            if n == 1000 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(n, 1000);
    });
    rows.push(("ordered scan of 1000, lending (Bucket::scan)", lib, rw));
    // The same scan by a caller that says how many it wants: the engine reads the
    // 1000 in one chunk (one ZRANGE and one MGET).
    let lib = per_call(200, |_| {
        let mut c = b.cursor().unwrap();
        assert_eq!(c.next_n(1000).unwrap().len(), 1000);
    });
    rows.push(("ordered scan of 1000 (Cursor::next_n)", lib, rw));
    let lib = per_call(200, |_| {
        let mut c = b.cursor().unwrap();
        let mut n = 0;
        c.next_n_with(1000, |_, _| n += 1).unwrap();
        assert_eq!(n, 1000);
    });
    rows.push((
        "ordered scan of 1000, lending (Cursor::next_n_with)",
        lib,
        rw,
    ));

    let items: Vec<(String, Vec<u8>)> = (0..1000).map(|i| (key(i), value.clone())).collect();
    b.set_multiple(items.clone()).unwrap();
    let before = client_commands(&mut raw);
    b.set_multiple(items.clone()).unwrap();
    let set_multiple_cmds = client_commands(&mut raw) - before;
    let lib = per_call(50, |_| b.set_multiple(items.clone()).unwrap());

    let threads = |t: usize| -> f64 {
        let per = 20_000 / t;
        let start = Instant::now();
        std::thread::scope(|s| {
            for w in 0..t {
                let b = b.clone();
                s.spawn(move || {
                    for i in 0..per {
                        b.get(&key((w * per + i) % KEYS)).unwrap();
                    }
                });
            }
        });
        (per * t) as f64 / start.elapsed().as_secs_f64()
    };
    let one = threads(1);
    let eight = threads(8);

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let version = String::from_utf8_lossy(
        &Command::new("redis-server")
            .arg("--version")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .into_owned();
    println!("| operation | libstate Bucket (us) | raw redis crate (us) | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, lib, rw) in &rows {
        println!("| {name} | {lib:.1} | {rw:.1} | {:.2}x |", lib / rw);
    }
    println!(
        "| set_multiple 1000 | {lib:.1} | - | {set_multiple_cmds} command(s) sent (one script) |"
    );
    println!(
        "| gets/s, 8 threads vs 1 | {eight:.0} vs {one:.0} | - | {:.2}x |",
        eight / one
    );
    println!();
    println!(
        "Machine: {} vCPU {cpu}; {}; one redis-server on a Unix socket, persistence off, \
         sharing the cores with the benchmark; {KEYS} records of 100 bytes.",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        version
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    store.close().unwrap();
}
