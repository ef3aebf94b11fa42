//! Redis Cluster beyond the suite (which runs against a three-master cluster the
//! test creates, as engine `cluster`): buckets spread over the masters, and a
//! master killed fails over to its replica.

use crate::redis_support;
use redis_support::shared_cluster_url;

#[test]
fn buckets_spread_over_the_masters_and_each_stays_on_one_slot() {
    let url = format!("{}?namespace=spread", shared_cluster_url());
    let store = state_core::Store::open(&url).unwrap();
    for i in 0..30 {
        let b = store.bucket(&format!("b{i}")).unwrap();
        b.set_multiple([("x", b"1".as_slice()), ("y", b"2".as_slice())])
            .unwrap();
        b.set_with_ttl("t", b"3", std::time::Duration::from_secs(60))
            .unwrap();
    }
    let info = store.info().unwrap();
    assert_eq!((info.buckets, info.records, info.expiring), (30, 90, 30));
    assert!(info.engine_details.unwrap().contains("(cluster)"));
}

/// A master of a cluster with replicas is killed: calls fail with clean *I/O*
/// errors (never a hang or a panic) while the cluster fails over, then the store
/// serves again, with the writes its replica had received.
#[test]
fn a_master_killed_fails_over_to_its_replica() {
    use std::time::{Duration, Instant};

    let mut cluster = redis_support::RedisCluster::start_with(3, 1);
    let url = format!("{}?namespace=failover&timeout_ms=500", cluster.url);
    let store = state_core::Store::open(&url).unwrap();
    let b = store.bucket("b").unwrap();
    for i in 0..50 {
        b.set(&format!("k{i:02}"), format!("v{i}")).unwrap();
    }
    // The master holding the bucket, and its replica caught up (replication is
    // asynchronous: wait until the replica has every key).
    let role = |n: &redis_support::RedisServer| -> String {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut n.connection())
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("role:"))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{failover:b}")
        .query(&mut cluster.nodes[0].connection())
        .unwrap();
    let in_slot = |n: &redis_support::RedisServer| -> i64 {
        redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .query(&mut n.connection())
            .unwrap_or(0)
    };
    let master = (0..cluster.nodes.len())
        .find(|&i| role(&cluster.nodes[i]) == "master" && in_slot(&cluster.nodes[i]) > 0)
        .expect("a master holds the bucket's slot");
    let keys = in_slot(&cluster.nodes[master]);
    let start = Instant::now();
    while !(0..cluster.nodes.len()).any(|i| {
        i != master && role(&cluster.nodes[i]) == "slave" && in_slot(&cluster.nodes[i]) == keys
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the replica never caught up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.nodes[master].kill();
    // Bounded: until a read and a write succeed again; every failure on the way is
    // a clean I/O error.
    let start = Instant::now();
    let mut errors = 0;
    loop {
        match b.get("k00").and_then(|_| b.set("after", "1")) {
            Ok(()) => break,
            Err(e) => {
                assert_eq!(e.kind(), state_core::ErrorKind::Io, "{e}");
                errors += 1;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the store never served again after the failover"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "failover: {errors} failed calls, service back after {:?}",
        start.elapsed()
    );
    for i in 0..50 {
        assert_eq!(
            b.get(&format!("k{i:02}")).unwrap().as_deref(),
            Some(format!("v{i}").as_bytes()),
            "k{i:02} survived the failover"
        );
    }
    assert_eq!(b.get("after").unwrap().as_deref(), Some(&b"1"[..]));
    store.close().unwrap();
}
