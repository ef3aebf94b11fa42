//! Opening the store named on the command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use state_core::{Clock, Engine, ManualClock, Store, SystemClock};

use crate::fail::{CmdResult, Failure};

/// Whether a command may create the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The store must exist (every command that only reads or changes existing data),
    /// so a mistyped `--store` never leaves an empty store behind.
    Existing,
    /// `set` and `load` create the store if the directory holds none.
    Create,
}

/// How expiry is seen while the store is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Time {
    /// The wall clock, with the background sweeper (ordinary commands).
    Live,
    /// A clock frozen at this unix-ms instant and no sweeper, so a whole pass over
    /// the store (dump, compact) sees one consistent moment: a key is either expired
    /// for the whole pass or not, and remaining TTLs convert to exact deadlines.
    FrozenAt(u64),
}

/// The store directory and engine chosen on the command line.
#[derive(Debug, Clone)]
pub struct Target {
    /// `--store`.
    pub dir: PathBuf,
    /// `--engine`, if given.
    pub engine: Option<Engine>,
}

/// The current wall-clock time in unix milliseconds.
pub fn now_ms() -> u64 {
    SystemClock.now_ms()
}

impl Target {
    /// The engine to open the store with: `--engine`, else the one that made the
    /// store, else sled. Errors if the store must exist and does not.
    /// A `--store` that is a Redis URL (`redis://...`, see
    /// `state_core::RedisConfig`) is a Redis store: it always exists.
    pub fn engine_for(&self, access: Access) -> CmdResult<Engine> {
        if self.is_url() {
            return Ok(Engine::Redis);
        }
        let detected = Engine::detect(&self.dir)?;
        if detected.is_none() && access == Access::Existing {
            return Err(missing_store(&self.dir));
        }
        Ok(self.engine.or(detected).unwrap_or_default())
    }

    /// Whether `--store` names a Redis server by URL rather than a directory.
    pub fn is_url(&self) -> bool {
        self.dir
            .to_str()
            .is_some_and(state_core::engine::is_redis_url)
    }

    /// Opens the store.
    pub fn open(&self, access: Access, time: Time) -> CmdResult<Store> {
        let engine = self.engine_for(access)?;
        open_dir(&self.dir, engine, time)
    }
}

/// Opens the store in `dir` with `engine`, seeing expiry as `time` says.
pub fn open_dir(dir: &Path, engine: Engine, time: Time) -> CmdResult<Store> {
    let mut builder = Store::builder().engine(engine);
    if let Time::FrozenAt(ms) = time {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(ms));
        builder = builder.clock(clock).sweep_interval(None);
    }
    Ok(builder.open(dir)?)
}

fn missing_store(dir: &Path) -> Failure {
    let what = if dir.exists() {
        "holds no libstate store"
    } else {
        "does not exist"
    };
    Failure::store(format!(
        "no store at {}: the directory {what}",
        dir.display()
    ))
    .with_hint(
        "name the store with --store DIR (or STATE_STORE); `state set` and `state load` create one",
    )
}

/// Runs `f` on the store, then closes it (which flushes it), so a command reports
/// success only once its writes are durable. `f`'s failure comes first.
pub fn with_store<T>(store: Store, f: impl FnOnce(&Store) -> CmdResult<T>) -> CmdResult<T> {
    let result = f(&store);
    let closed = store.close();
    let value = result?;
    closed?;
    Ok(value)
}
