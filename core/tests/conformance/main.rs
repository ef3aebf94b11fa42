//! The conformance suite, built once: every behaviour that does not depend on the
//! engine (docs/guarantees.md), written once over an `EngineConfig` and run against
//! every engine from this one test binary: sled, memfile, an engine defined
//! outside `state-core` through the public seam alone (`custom.rs`), and, with the
//! `redis` feature, the Redis engine on a real redis-server and on a three-master
//! Redis Cluster the tests start (`support::redis`; each store directory gets a
//! namespace of its own on the server). `suite.rs` has the list of cases and says
//! how to run it against another engine.

mod cases;
mod custom;
mod lending;
mod model;
#[cfg(feature = "redis")]
mod redis_cluster;
#[macro_use]
mod suite;
#[path = "../support/mod.rs"]
mod support;
mod ttl;
mod update;
mod watch;

use state_core::{Engine, EngineConfig};
#[cfg(feature = "redis")]
use support::redis as redis_support;

engine_suite!(sled, Engine::Sled);
engine_suite!(memfile, Engine::Memfile);
engine_suite!(btree, custom::btree());
#[cfg(feature = "redis")]
engine_suite!(
    redis,
    redis_support::engine_for(&redis_support::shared_url())
);
#[cfg(feature = "redis")]
engine_suite!(
    cluster,
    redis_support::engine_for(&redis_support::shared_cluster_url())
);

lock_holder_child!(|suite: &str| -> EngineConfig {
    match suite {
        "sled" => Engine::Sled.into(),
        "memfile" => Engine::Memfile.into(),
        "btree" => custom::btree(),
        #[cfg(feature = "redis")]
        "redis" => redis_support::engine_for(&redis_support::shared_url()),
        #[cfg(feature = "redis")]
        "cluster" => redis_support::engine_for(&redis_support::shared_cluster_url()),
        other => panic!("no engine suite named {other:?}"),
    }
});
