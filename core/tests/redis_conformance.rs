//! The whole conformance suite and TTL suite against the Redis engine on one real
//! redis-server (started by the test on a Unix socket in a temporary directory,
//! `appendonly yes`, `appendfsync always`). Each store directory gets a namespace
//! of its own on that server (see `redis_support::NamespacePerDir`).

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

use redis_support::{engine_for, shared_url};

engine_suite!(redis, engine_for(&shared_url()));
lock_holder_child!(|_name: &str| engine_for(&shared_url()));
