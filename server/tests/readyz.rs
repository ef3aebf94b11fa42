//! `/readyz` against a store whose disk starts failing: 200 while writes work, 503
//! once a failed fsync has poisoned the store (and still 503 after the disk
//! recovers: the engine refuses writes until the store is reopened). `/livez`
//! answers throughout.

mod support;

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use state_core::engine::MemfileConfig;
use state_core::fileio::FileIo;
use state_core::Store;
use state_server::{Config, Server};
use state_service::StateService;
use support::{http, run};

/// Real file calls, except that syncs fail while `fail` is set.
#[derive(Default)]
struct FlakySync {
    fail: AtomicBool,
}

impl FlakySync {
    fn check(&self) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            Err(io::Error::other("injected fsync failure"))
        } else {
            Ok(())
        }
    }
}

impl FileIo for FlakySync {
    fn sync_data(&self, file: &File, _path: &Path) -> io::Result<()> {
        self.check()?;
        file.sync_data()
    }

    fn sync_all(&self, file: &File, _path: &Path) -> io::Result<()> {
        self.check()?;
        file.sync_all()
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let reply = http(addr, &req).await;
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_when_a_failed_fsync_poisons_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("s");
    let io = Arc::new(FlakySync::default());
    let store = Store::builder()
        .engine(MemfileConfig::default().with_file_io(io.clone()))
        .sync(true)
        .open(&store_dir)
        .unwrap();
    let cfg = Config {
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    let server = Server::bind(StateService::new(store.clone()), cfg)
        .await
        .unwrap();
    let addr = server.addrs().http.unwrap();
    let running = run(server);

    assert_eq!(get(addr, "/readyz").await, (200, "ready\n".to_string()));
    io.fail.store(true, Ordering::SeqCst);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("injected fsync failure"), "{body}");
    // The disk is back, but the store stays poisoned until it is reopened.
    io.fail.store(false, Ordering::SeqCst);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("refuses writes"), "{body}");
    assert_eq!(get(addr, "/livez").await, (200, "ok\n".to_string()));

    // Closing a poisoned store reports its failed sync; the server still stops.
    let _ = running.stop().await;
}
