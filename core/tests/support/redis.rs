//! Real redis-server processes for the Redis engine's tests: started on a Unix
//! socket or a free loopback port in a temporary directory, polled until they
//! answer PING (bounded), and stopped when dropped. A watchdog per server kills it
//! when the test process exits, however it exits (it waits for EOF on a pipe only
//! this process holds), so no server outlives its test binary.

#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use state_core::engine::{EngineFactory, StorageEngine, StoreContext};
use state_core::{EngineConfig, RedisConfig, Result};

/// How long a starting server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One redis-server process.
pub struct RedisServer {
    child: Option<Child>,
    watchdog: Option<Child>,
    pub dir: tempfile::TempDir,
    /// `redis+unix://...` or `redis://127.0.0.1:port`.
    pub url: String,
    pub port: Option<u16>,
    args: Vec<String>,
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl RedisServer {
    /// A server on a Unix socket with `appendonly yes`, `appendfsync always`.
    pub fn start_unix() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("redis.sock");
        let args = vec![
            "--port".into(),
            "0".into(),
            "--unixsocket".into(),
            sock.to_string_lossy().into_owned(),
        ];
        RedisServer::start_in(dir, format!("redis+unix://{}", sock.display()), None, args)
    }

    /// A server on a free loopback port, with `extra` arguments after the defaults.
    pub fn start_tcp(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut args = vec![
            "--port".to_string(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        RedisServer::start_in(dir, format!("redis://127.0.0.1:{port}"), Some(port), args)
    }

    fn start_in(
        dir: tempfile::TempDir,
        url: String,
        port: Option<u16>,
        args: Vec<String>,
    ) -> RedisServer {
        let mut s = RedisServer {
            child: None,
            watchdog: None,
            dir,
            url,
            port,
            args,
        };
        s.spawn();
        s
    }

    /// Starts the process (again, after [`RedisServer::kill`]), with the same data
    /// directory, and waits until it answers.
    pub fn spawn(&mut self) {
        let mut full = vec![
            "--dir".to_string(),
            self.dir.path().to_string_lossy().into_owned(),
            "--appendonly".into(),
            "yes".into(),
            "--appendfsync".into(),
            "always".into(),
            "--save".into(),
            "".into(),
            "--daemonize".into(),
            "no".into(),
            "--logfile".into(),
            self.dir
                .path()
                .join("redis.log")
                .to_string_lossy()
                .into_owned(),
        ];
        full.extend(self.args.iter().cloned());
        let child = Command::new("redis-server")
            .args(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (make test installs it)");
        let watchdog = Command::new("sh")
            .args(["-c", &format!("read _; kill -9 {} 2>/dev/null", child.id())])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.watchdog = Some(watchdog);
        wait_until_answering(&self.url);
    }

    /// SIGKILL, and waits for the process to end.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            drop(w.stdin.take());
            let _ = w.wait();
        }
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A plain connection, for checks behind the engine's back.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls PING until `url` answers (bounded).
pub fn wait_until_answering(url: &str) {
    let start = Instant::now();
    let client = redis::Client::open(url).unwrap();
    loop {
        if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) {
            if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                return;
            }
        }
        assert!(
            start.elapsed() < START_TIMEOUT,
            "redis-server at {url} never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server shared by the tests of one test binary (started on first use,
/// killed by its watchdog when the binary exits). A child process of the tests
/// (they run this binary again) uses its parent's server: the URL is passed in
/// `LIBSTATE_TEST_REDIS_URL`.
pub fn shared_url() -> String {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("LIBSTATE_TEST_REDIS_URL") {
                return url;
            }
            let server = RedisServer::start_unix();
            let url = server.url.clone();
            // Kept running for the whole binary; the watchdog ends it at exit.
            std::mem::forget(server);
            std::env::set_var("LIBSTATE_TEST_REDIS_URL", &url);
            url
        })
        .clone()
}

/// The Redis engine with a namespace of its own per store directory, so tests
/// running at once on one server never see each other's data, and reopening a
/// directory reopens the same data (the directory holds only libstate's marker).
#[derive(Debug)]
pub struct NamespacePerDir {
    pub url: String,
}

impl EngineFactory for NamespacePerDir {
    fn name(&self) -> &str {
        "redis"
    }

    fn open(&self, dir: &Path, store: &StoreContext) -> Result<Box<dyn StorageEngine>> {
        let config = RedisConfig::new(&self.url)?.namespace(&namespace_of(dir));
        config.open(dir, store)
    }

    fn shared_between_processes(&self) -> bool {
        true
    }
}

/// A namespace derived from a directory path.
pub fn namespace_of(dir: &Path) -> String {
    let canonical: PathBuf = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut h = DefaultHasher::new();
    canonical.hash(&mut h);
    format!("t{:016x}", h.finish())
}

/// The engine config the conformance suite runs with against `url`.
pub fn engine_for(url: &str) -> EngineConfig {
    EngineConfig::Custom(Arc::new(NamespacePerDir {
        url: url.to_string(),
    }))
}

/// A three-master Redis Cluster of servers on free loopback ports.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`.
    pub url: String,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them with
    /// `redis-cli --cluster create`, and waits for `cluster_state:ok` (bounded).
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(3, 0)
    }

    /// Like [`RedisCluster::start`], with `replicas` replicas per master
    /// (`--cluster-replicas`) and a 1 s node timeout, for failover tests.
    pub fn start_with(masters: usize, replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                RedisServer::start_tcp(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    if replicas > 0 { "1000" } else { "2000" },
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port.unwrap()))
            .collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string()])
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "redis-cli --cluster create failed");
        let start = Instant::now();
        for n in &nodes {
            let mut c = n.connection();
            loop {
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut c).unwrap();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    start.elapsed() < START_TIMEOUT,
                    "the cluster never became ok"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let url = format!("redis+cluster://{}", addrs.join(","));
        RedisCluster { nodes, url }
    }
}

/// The cluster shared by the tests of one binary (killed at exit by the watchdogs).
pub fn shared_cluster_url() -> String {
    static CLUSTER: OnceLock<String> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            if let Ok(url) = std::env::var("LIBSTATE_TEST_REDIS_CLUSTER_URL") {
                return url;
            }
            let cluster = RedisCluster::start();
            let url = cluster.url.clone();
            std::mem::forget(cluster);
            std::env::set_var("LIBSTATE_TEST_REDIS_CLUSTER_URL", &url);
            url
        })
        .clone()
}
