//! The whole conformance suite and TTL suite against the Redis engine on a
//! three-master Redis Cluster the test creates (three `redis-server
//! --cluster-enabled yes` processes joined by `redis-cli --cluster create`): every
//! batch must stay on one slot, or the cluster refuses it with CROSSSLOT.

#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/lending.rs"]
mod lending;
#[path = "conformance/model.rs"]
mod model;
#[macro_use]
#[path = "conformance/suite.rs"]
mod suite;
mod redis_support;
#[path = "conformance/ttl.rs"]
mod ttl;
#[path = "conformance/watch.rs"]
mod watch;

use redis_support::{engine_for, shared_cluster_url};

engine_suite!(cluster, engine_for(&shared_cluster_url()));
lock_holder_child!(|_name: &str| engine_for(&shared_cluster_url()));

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
