//! The event loops (`Config::threads`): connections spread over several loops still
//! see each other's writes, messages and invalidations; a write waiting for its
//! fsync (sync mode) never holds up the other connections of its loop.

mod support;

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use state_core::engine::MemfileConfig;
use state_core::fileio::FileIo;
use state_core::Store;
use state_server::{Config, Server};
use state_service::{Quota, StateService};
use support::{connect, exchange, lines, run, tcp_config, Fixture};

/// Real file calls, except that a sync waits while the gate is held.
#[derive(Default)]
struct GatedSync {
    held: Mutex<bool>,
    opened: Condvar,
    /// Syncs that found the gate held (and waited).
    waited: Mutex<u32>,
    /// Signalled when a sync finds the gate held.
    reached: Condvar,
}

impl GatedSync {
    fn hold(&self, on: bool) {
        *self.held.lock() = on;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let mut held = self.held.lock();
        if *held {
            *self.waited.lock() += 1;
            self.reached.notify_all();
        }
        while *held {
            self.opened.wait(&mut held);
        }
    }
}

impl GatedSync {
    /// Waits (at most `limit`) until a sync has found the gate held; whether one did.
    fn wait_reached(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut waited = self.waited.lock();
        while *waited == 0 {
            if self.reached.wait_until(&mut waited, deadline).timed_out() {
                break;
            }
        }
        *waited >= 1
    }
}

impl FileIo for GatedSync {
    fn sync_data(&self, file: &File, _path: &Path) -> io::Result<()> {
        self.pass();
        file.sync_data()
    }

    fn sync_all(&self, file: &File, _path: &Path) -> io::Result<()> {
        self.pass();
        file.sync_all()
    }
}

/// With one loop and a sync-mode store, a write whose fsync cannot finish leaves
/// the loop free: another connection on the same loop is answered meanwhile, and
/// the write is answered once the fsync completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waiting_for_fsync_does_not_block_its_loop() {
    let f = Fixture::new(&[("alice", Quota::default())]);
    let io = Arc::new(GatedSync::default());
    let store = Store::builder()
        .engine(MemfileConfig::default().with_file_io(io.clone()))
        .sync(true)
        .open(&f.store_dir)
        .unwrap();
    let cfg = Config {
        threads: 1,
        blocking_store: true,
        ..tcp_config()
    };
    let server = Server::bind(StateService::new(store.clone()), cfg)
        .await
        .unwrap();
    let addr = server.addrs().resp.unwrap();
    let running = run(server);
    let token = f.token("alice");
    let mut writer = connect(addr, token).await;
    let mut other = connect(addr, token).await;
    let mut third = connect(addr, token).await;

    io.hold(true);
    use tokio::io::AsyncWriteExt;
    writer.get_mut().write_all(b"SET k v\r\n").await.unwrap();
    third.get_mut().write_all(b"SET k2 v2\r\n").await.unwrap();
    // A write is in its fsync, held: from here the loop must answer regardless.
    assert!(
        tokio::task::block_in_place(|| io.wait_reached(Duration::from_secs(10))),
        "the write reached its fsync"
    );
    // Both writes wait for the held fsync; the loop answers the third connection.
    let pong = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(&mut other, b"PING\r\n", 1),
    )
    .await
    .expect("the loop answered while a write waited for its fsync");
    assert_eq!(pong, "+PONG\r\n");
    // Reads go on too (they wait for no fsync).
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(&mut other, b"GET nothing\r\n", 1),
    )
    .await
    .expect("a read answered while a write waited for its fsync");
    assert_eq!(got, "$-1\r\n");
    io.hold(false);
    assert_eq!(lines(&mut writer, 1).await, "+OK\r\n");
    assert_eq!(lines(&mut third, 1).await, "+OK\r\n");
    assert_eq!(
        exchange(&mut other, b"MGET k k2\r\n", 5).await,
        "*2\r\n$1\r\nv\r\n$2\r\nv2\r\n"
    );
    drop((writer, other, third));
    running.stop().await.unwrap();
    drop(store);
}

/// Consecutive connections go to different loops (round-robin); writes, WATCH,
/// keyspace notifications and PUBLISH reach connections on the other loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_on_different_loops_see_each_other() {
    let f = Fixture::new(&[("alice", Quota::default())]);
    let (server, store) = f
        .start(Config {
            threads: 2,
            ..tcp_config()
        })
        .await;
    let addr = server.addrs().resp.unwrap();
    let running = run(server);
    let token = f.token("alice");
    let mut a = connect(addr, token).await;
    let mut b = connect(addr, token).await;
    let mut sub = connect(addr, token).await;

    // WATCH on one loop, the write on the other: EXEC fails.
    assert_eq!(exchange(&mut a, b"WATCH w\r\n", 1).await, "+OK\r\n");
    assert_eq!(exchange(&mut b, b"SET w 1\r\n", 1).await, "+OK\r\n");
    assert_eq!(
        exchange(&mut a, b"MULTI\r\nSET w 2\r\nEXEC\r\n", 3).await,
        "+OK\r\n+QUEUED\r\n*-1\r\n"
    );
    assert_eq!(exchange(&mut a, b"GET w\r\n", 2).await, "$1\r\n1\r\n");

    // Keyspace notifications and PUBLISH cross loops.
    assert_eq!(
        exchange(&mut a, b"CONFIG SET notify-keyspace-events KEA\r\n", 1).await,
        "+OK\r\n"
    );
    assert_eq!(
        exchange(&mut sub, b"SUBSCRIBE __keyspace@0__:n chat\r\n", 12).await,
        "*3\r\n$9\r\nsubscribe\r\n$16\r\n__keyspace@0__:n\r\n:1\r\n".to_string()
            + "*3\r\n$9\r\nsubscribe\r\n$4\r\nchat\r\n:2\r\n"
    );
    assert_eq!(exchange(&mut b, b"SET n 1\r\n", 1).await, "+OK\r\n");
    assert_eq!(
        lines(&mut sub, 7).await,
        "*3\r\n$7\r\nmessage\r\n$16\r\n__keyspace@0__:n\r\n$3\r\nset\r\n"
    );
    assert_eq!(exchange(&mut a, b"PUBLISH chat hi\r\n", 1).await, ":1\r\n");
    assert_eq!(
        lines(&mut sub, 7).await,
        "*3\r\n$7\r\nmessage\r\n$4\r\nchat\r\n$2\r\nhi\r\n"
    );

    // A pipeline split over both loops' connections, answered in order.
    let mut req = Vec::new();
    for i in 0..100 {
        req.extend_from_slice(format!("SET p{i} {i}\r\n").as_bytes());
    }
    assert_eq!(exchange(&mut a, &req, 100).await, "+OK\r\n".repeat(100));
    assert_eq!(exchange(&mut b, b"GET p99\r\n", 2).await, "$2\r\n99\r\n");

    drop((a, b, sub));
    running.stop().await.unwrap();
    drop(store);
}

/// `threads: 0` is refused at bind.
#[tokio::test]
async fn zero_threads_is_refused() {
    let f = Fixture::new(&[("alice", Quota::default())]);
    let store = f.open_store();
    let e = Server::bind(
        StateService::new(store),
        Config {
            threads: 0,
            ..tcp_config()
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--threads"), "{e}");
}

/// The framing limits follow a sign-in in the middle of a read: a value over the
/// limit before sign-in, sent in the same packet right after AUTH, is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_lifts_the_limits_for_the_rest_of_the_same_read() {
    let f = Fixture::new(&[("alice", Quota::default())]);
    let (server, store) = f.start(tcp_config()).await;
    let addr = server.addrs().resp.unwrap();
    let running = run(server);
    let mut c = support::tcp(addr).await;
    let big = "x".repeat(state_server::PREAUTH_MAX_BULK + 1);
    let req = format!(
        "AUTH {}\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n${}\r\n{big}\r\nSTRLEN b\r\n",
        f.token("alice"),
        big.len()
    );
    assert_eq!(
        exchange(&mut c, req.as_bytes(), 3).await,
        format!("+OK\r\n+OK\r\n:{}\r\n", big.len())
    );
    drop(c);
    running.stop().await.unwrap();
    drop(store);
}

/// Each loop counts its own requests; `/metrics` and INFO add the loops up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loops_counts_are_summed_when_read() {
    let f = Fixture::new(&[("alice", Quota::default())]);
    let (server, store) = f
        .start(Config {
            threads: 2,
            ..tcp_config()
        })
        .await;
    let addr = server.addrs().resp.unwrap();
    let http_addr = server.addrs().http.unwrap();
    let running = run(server);
    let token = f.token("alice");
    // Two connections in a row: one on each loop.
    let mut a = connect(addr, token).await;
    let mut b = connect(addr, token).await;
    assert_eq!(
        exchange(&mut a, b"SET x 1\r\nSET y 2\r\nSET z 3\r\n", 3).await,
        "+OK\r\n".repeat(3)
    );
    assert_eq!(
        exchange(&mut b, b"SET x 4\r\nSET y 5\r\nGET x\r\nGET nothing\r\n", 5).await,
        "+OK\r\n+OK\r\n$1\r\n4\r\n$-1\r\n"
    );
    let m = support::http(
        http_addr,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        m.contains("libstate_commands_total{command=\"set\"} 5\n"),
        "{m}"
    );
    assert!(
        m.contains("libstate_commands_total{command=\"get\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("libstate_commands_total{command=\"auth\"} 2\n"),
        "{m}"
    );
    let info = exchange(&mut a, b"INFO stats\r\n", 1).await;
    let len: usize = info[1..info.len() - 2].parse().unwrap();
    let mut body = vec![0u8; len + 2];
    use tokio::io::AsyncReadExt;
    a.read_exact(&mut body).await.unwrap();
    let body = String::from_utf8(body).unwrap();
    // 2 AUTH, 5 SET, 2 GET (INFO itself is counted once its batch ends).
    assert!(body.contains("total_commands_processed:9\r\n"), "{body}");
    assert!(body.contains("keyspace_hits:1\r\n"), "{body}");
    assert!(body.contains("keyspace_misses:1\r\n"), "{body}");
    drop((a, b));
    running.stop().await.unwrap();
    drop(store);
}
