//! `/metrics` reports the store's bucket and record counts kept as writes commit
//! (`Store::counts`), not a background count: a write shows in the next scrape,
//! expired records count until the sweeper removes them, and no count age is
//! reported. Both local engines.

use std::sync::Arc;
use std::time::Duration;

use state_core::{Engine, ManualClock, Store};
use state_server::{Config, Server};
use state_service::StateService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn metrics(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    reply
}

/// The value of the gauge `name` (a line `name N`).
fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_the_counts_kept_as_writes_commit() {
    for engine in [Engine::Sled, Engine::Memfile] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = Store::builder()
            .engine(engine)
            .clock(clock.clone())
            .sweep_interval(None)
            .open(dir.path().join("s"))
            .unwrap();
        // Written before the server starts: counted once as it starts.
        let a = store.bucket("a").unwrap();
        a.set_multiple((0..50).map(|i| (format!("k{i}"), b"v")))
            .unwrap();
        let cfg = Config {
            http: Some("127.0.0.1:0".parse().unwrap()),
            ..Config::default()
        };
        let server = Server::bind(StateService::new(store.clone()), cfg)
            .await
            .unwrap();
        let http = server.addrs().http.unwrap();
        let stop = server.shutdown_token();
        let run = tokio::spawn(server.run_until(std::future::pending()));

        let m = metrics(http).await;
        assert_eq!(gauge(&m, "libstate_records"), Some(50), "{engine:?}: {m}");
        assert_eq!(gauge(&m, "libstate_buckets"), Some(1), "{engine:?}");
        assert!(!m.contains("count_age"), "{engine:?}: {m}");

        // Each write shows in the very next scrape.
        let b = store.bucket("b").unwrap();
        b.set("x", b"1").unwrap();
        b.set_with_ttl("t", b"1", Duration::from_secs(1)).unwrap();
        a.delete("k0").unwrap();
        let m = metrics(http).await;
        assert_eq!(gauge(&m, "libstate_records"), Some(51), "{engine:?}");
        assert_eq!(gauge(&m, "libstate_buckets"), Some(2), "{engine:?}");
        // An expired record counts until the sweeper removes it.
        clock.advance(2_000);
        assert_eq!(gauge(&metrics(http).await, "libstate_records"), Some(51));
        assert_eq!(store.sweep_expired().unwrap(), 1);
        assert_eq!(gauge(&metrics(http).await, "libstate_records"), Some(50));
        store.remove_bucket("a").unwrap();
        let m = metrics(http).await;
        assert_eq!(gauge(&m, "libstate_records"), Some(1), "{engine:?}");
        assert_eq!(gauge(&m, "libstate_buckets"), Some(1), "{engine:?}");
        // What the scrape says is what a full count finds.
        let info = store.info().unwrap();
        assert_eq!((info.buckets, info.records), (1, 1), "{engine:?}");

        stop.cancel();
        run.await.unwrap().unwrap();
    }
}
