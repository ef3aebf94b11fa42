//! The conformance suite run against the built-in engines: every behaviour of
//! design.md §3 that does not depend on the engine, written once over an
//! `EngineConfig` (see `suite.rs` for the list and for running it against another
//! engine).

mod cases;
mod lending;
mod model;
#[macro_use]
mod suite;
mod ttl;
mod watch;

use state_core::Engine;

engine_suite!(sled, Engine::Sled);
engine_suite!(memfile, Engine::Memfile);
lock_holder_child!(|name: &str| name.parse::<Engine>().unwrap().into());
