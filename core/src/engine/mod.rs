//! The storage engine seam: the one boundary between libstate's behaviour and the
//! bytes an engine stores.
//!
//! An engine is an ordered byte-key map per bucket with atomic batches
//! ([`StorageEngine`]). Everything else (validation, expiry, cursors, lending, the
//! service, durability scheduling, checkpoints) lives above the trait and is written
//! once, so every engine behaves identically and one conformance suite
//! (`core/tests/conformance/`) runs against each.
//!
//! Which engine a store uses, with that engine's own options, is an [`EngineConfig`]:
//! [`SledConfig`] and [`MemfileConfig`] for the built-in engines, or
//! [`EngineConfig::Custom`] with an [`EngineFactory`] for an engine defined outside
//! this crate. [`open`] is the only place that turns a config into an engine; the
//! store names no engine.
//!
//! Values handed to an engine are already encoded by libstate (a header carrying the
//! expiry deadline, then the user's bytes); engines treat them as opaque bytes.

use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

pub(crate) mod memfile;
pub(crate) mod redis;
pub(crate) mod sled;

pub use self::memfile::MemfileConfig;
pub(crate) use self::redis::needs_url as redis_needs_url;
pub use self::redis::{is_url as is_redis_url, RedisConfig, DEFAULT_NAMESPACE, DEFAULT_TIMEOUT};
pub use self::sled::{SledConfig, DEFAULT_CACHE_SIZE};

/// A bucket handle's cache of where an engine keeps that bucket, passed to
/// [`StorageEngine::get_hinted`] so a point read can skip looking the bucket up by
/// name. The engine chooses what it stores (0 means nothing yet) and must check a
/// value before relying on it: a hint may be stale (the bucket was removed and made
/// again), or come from another engine instance.
#[derive(Debug, Default)]
pub struct BucketHint(AtomicU64);

impl BucketHint {
    /// An empty hint.
    pub const fn new() -> BucketHint {
        BucketHint(AtomicU64::new(0))
    }

    /// The value the engine stored (0 if none).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Stores `value` for the next read through the same handle.
    #[inline]
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl Clone for BucketHint {
    fn clone(&self) -> BucketHint {
        BucketHint(AtomicU64::new(self.get()))
    }
}

/// One write in an atomic batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp<'a> {
    /// Insert or overwrite `key` in `bucket`.
    Put {
        /// The bucket (a user bucket name, or one of libstate's internal buckets,
        /// whose names start with a control character).
        bucket: &'a str,
        /// The key.
        key: &'a [u8],
        /// The encoded value, opaque to the engine.
        value: &'a [u8],
    },
    /// Remove `key` from `bucket`; removing a missing key is not an error.
    Delete {
        /// The bucket.
        bucket: &'a str,
        /// The key.
        key: &'a [u8],
    },
}

/// What a scan visitor tells the engine after each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Go on with the next entry in the range.
    Continue,
    /// Stop the scan; the engine returns at once.
    Stop,
}

/// The operations every engine implements.
///
/// # What an engine may assume
///
/// - **One writer at a time within one process.** The store serializes
///   [`write`](Self::write) and [`remove_bucket`](Self::remove_bucket) calls on one
///   engine instance under its own lock; reads ([`get`](Self::get),
///   [`get_many`](Self::get_many), [`scan`](Self::scan), [`count`](Self::count),
///   [`bucket_names`](Self::bucket_names)), [`sync`](Self::sync) and
///   [`disk_size`](Self::disk_size) come from any number of threads at once, also
///   while a write runs. Across processes the store assumes nothing: an engine whose
///   store other processes may open at the same time must make their writes atomic
///   and ordered itself (and holds no [`lock_file`](Self::lock_file)).
/// - **One instance per store directory per process.** The store keeps a registry
///   keyed by the canonical directory; a second open in the process shares the first
///   instance, and a new instance is opened only after the previous one was dropped.
/// - **Nothing is written before [`finish_open`](Self::finish_open).**
/// - **Arguments are valid.** Bucket names are non-empty UTF-8 without NUL; keys are
///   non-empty; a batch holds at least one operation. Values and keys can be large
///   (values up to the store's configured maximum, 16 MiB by default).
/// - **Reads may nest.** A visitor passed to `get`, `get_many` or `scan` may run
///   user code that reads the same engine again on the same thread (libstate lends
///   values to callbacks without copying them). Such a nested read must not wait for
///   a writer that is itself waiting for the outer read to finish; it must not write.
///
/// # What an engine must provide
///
/// - Reads see every write that returned before they started (read-your-writes
///   within the process) and never a part of a batch.
/// - [`write`](Self::write) is atomic: after a crash a batch is wholly present or
///   wholly absent, and batches become durable in the order they were applied.
/// - [`sync`](Self::sync) makes every write that returned before it durable.
/// - Scans visit keys in byte order (descending if asked), each at most once.
/// - Errors name the path (or URL) they concern; a lock held by another process is
///   [`Error::Locked`]; data failing a check is [`Error::Corrupt`], and an engine
///   reporting that changes nothing of what it found.
/// - A panic must not leave the engine's data inconsistent for later calls.
pub trait StorageEngine: Send + Sync {
    /// Called once after opening, when the store has accepted what the engine loaded
    /// (its checkpoint check passed): the engine may now change its files (repair a
    /// torn tail, remove leftovers, start background work). Until then an engine
    /// only reads, so a store refused as *corrupt* is left as it was found. Writes
    /// come only after this.
    fn finish_open(&mut self) -> Result<()> {
        Ok(())
    }

    /// The *corrupt* error for damage the store found after this engine opened its
    /// files (`detail` says what was found). The default says the files were left
    /// untouched, true of an engine that changes nothing before
    /// [`StorageEngine::finish_open`]; an engine that rewrites its files while
    /// opening says so here.
    fn damaged(&self, path: &Path, detail: String) -> Error {
        Error::corrupt(path, detail)
    }

    /// Calls `visit` with the stored value of `key`, if present. Returns whether it was.
    fn get(&self, bucket: &str, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool>;

    /// [`StorageEngine::get`] through a bucket handle's [`BucketHint`], which the
    /// engine may read and update to find the bucket faster. The default ignores it.
    fn get_hinted(
        &self,
        bucket: &str,
        hint: &BucketHint,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<bool> {
        let _ = hint;
        self.get(bucket, key, visit)
    }

    /// Calls `visit(i, value)` for each `keys[i]` present, in order. Engines that can
    /// look up a batch faster than one key at a time override it.
    fn get_many(
        &self,
        bucket: &str,
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<()> {
        for (i, key) in keys.iter().enumerate() {
            self.get(bucket, key, &mut |v| visit(i, v))?;
        }
        Ok(())
    }

    /// Applies all `ops` atomically (in order: a later op on the same key wins): after
    /// a crash either all or none are present.
    fn write(&self, ops: &[WriteOp<'_>]) -> Result<()>;

    /// Writes the single op `op` as [`StorageEngine::write`] does and says whether
    /// its key was stored before (`Some`), where the engine learns that in the write
    /// itself (memfile's map, sled's insert and remove return what they replaced).
    /// `None` (the default, after writing) where it would cost a read: the commit
    /// point then reads priors first instead (see [`StorageEngine::reports_prior`]).
    fn write_one(&self, op: &WriteOp<'_>) -> Result<Option<bool>> {
        self.write(std::slice::from_ref(op)).map(|()| None)
    }

    /// Whether [`StorageEngine::write_one`] always reports what it replaced.
    fn reports_prior(&self) -> bool {
        false
    }

    /// Visits the entries of `bucket` with keys within the bounds, in key order
    /// (descending if `reverse`), until the visitor says stop or the range ends.
    /// A missing bucket is an empty range.
    fn scan(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()>;

    /// [`StorageEngine::scan`] for a caller that expects to stop after about `limit`
    /// visits (a cursor's `next_n`, an iterator's chunk). Only a hint: the engine
    /// still visits until the visitor says stop or the range ends. An engine that
    /// reads ahead in chunks (the Redis engine: one round trip per chunk) reads
    /// `limit` entries first, so such a scan is one round trip. The default ignores
    /// the hint.
    fn scan_limited(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()> {
        let _ = limit;
        self.scan(bucket, lower, upper, reverse, visit)
    }

    /// Number of stored entries in `bucket` (expired or not: expiry is libstate's).
    fn count(&self, bucket: &str) -> Result<u64>;

    /// Names of every bucket holding at least one entry, in byte order (internal
    /// buckets included).
    fn bucket_names(&self) -> Result<Vec<String>>;

    /// Removes a bucket and all its entries. Returns whether it held any.
    fn remove_bucket(&self, bucket: &str) -> Result<bool>;

    /// Makes every write that returned before this call durable (on stable storage).
    fn sync(&self) -> Result<()>;

    /// Bytes the store occupies on disk (0 for an engine that keeps nothing locally).
    fn disk_size(&self) -> Result<u64>;

    /// Compacts the engine's files now, if the engine has its own compaction
    /// (memfile folds its logs into a snapshot). Returns `false` if it has none, and
    /// then the store compacts by copying (see `maintenance`). Reads and writes may
    /// go on meanwhile.
    fn compact(&self) -> Result<bool> {
        Ok(false)
    }

    /// The file whose exclusive `flock` the engine holds while open, if any. After the
    /// engine is dropped, the store waits until that lock is free before `close`
    /// returns, so another process can open the store at once (an engine may release
    /// its lock from background threads some time after it is dropped).
    fn lock_file(&self) -> Option<PathBuf> {
        None
    }

    /// Test hook: how the store writes its marker file next to this engine's files
    /// (the memfile engine's [`MemfileConfig::with_file_io`] hook, so a test that
    /// fails or records the engine's file calls sees the marker's too).
    #[doc(hidden)]
    fn file_io(&self) -> crate::fileio::Io {
        crate::fileio::Io::real()
    }

    /// The version of `bucket` (a user bucket, covering its companion buckets too,
    /// see [`home_bucket`]) for an optimistic read-modify-write across processes, or
    /// `None` (the default) for an engine only one process opens at a time, where the
    /// store's write lock already makes read-modify-writes atomic.
    ///
    /// An engine that returns `Some` changes the version with every write to the
    /// bucket or its companions, by any process, and implements
    /// [`write_if_unchanged`](Self::write_if_unchanged). The store then runs each
    /// read-modify-write as: read the version, read the records, and commit with
    /// `write_if_unchanged`, starting again from the version read if it returns
    /// `false`.
    fn version(&self, bucket: &str) -> Result<Option<u64>> {
        let _ = bucket;
        Ok(None)
    }

    /// Applies `ops` (all on `bucket` and its companions) atomically if `bucket`'s
    /// [`version`](Self::version) is still `version`; returns `false` and writes
    /// nothing otherwise. The default (for engines whose `version` is `None`) writes
    /// unconditionally.
    fn write_if_unchanged(&self, bucket: &str, version: u64, ops: &[WriteOp<'_>]) -> Result<bool> {
        let _ = (bucket, version);
        self.write(ops)?;
        Ok(true)
    }

    /// What the engine can say about where its data lives, for
    /// [`crate::StoreInfo::engine_details`] (a server's version and persistence
    /// settings, for example); `None` (the default) for nothing beyond the figures
    /// the store already reports.
    fn details(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// The read side of an engine, all a read-modify-write may use: what it reads
/// through a `Reader` it cannot write, so its writes are only the batch it returns to
/// the commit point (`crate::commit`), which applies them once.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    engine: &'a dyn StorageEngine,
}

impl<'a> Reader<'a> {
    /// Reads through `engine`.
    pub(crate) fn new(engine: &'a dyn StorageEngine) -> Reader<'a> {
        Reader { engine }
    }

    /// [`StorageEngine::get`].
    #[inline]
    pub(crate) fn get(
        &self,
        bucket: &str,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<bool> {
        self.engine.get(bucket, key, visit)
    }

    /// [`StorageEngine::get_many`].
    pub(crate) fn get_many(
        &self,
        bucket: &str,
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<()> {
        self.engine.get_many(bucket, keys, visit)
    }

    /// [`StorageEngine::scan`].
    pub(crate) fn scan(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()> {
        self.engine.scan(bucket, lower, upper, reverse, visit)
    }

    /// [`StorageEngine::bucket_names`].
    pub(crate) fn bucket_names(&self) -> Result<Vec<String>> {
        self.engine.bucket_names()
    }
}

/// The internal bucket of kind `kind` that belongs to user bucket `bucket` (its
/// *companion*, such as its expiry index). Every batch the store writes touches one
/// user bucket and its companions only, so an engine that places buckets on shards
/// (Redis Cluster slots) places a companion with its [`home_bucket`] and keeps every
/// batch on one shard. `kind` must not contain `\u{1f}`.
pub fn companion_bucket(kind: &str, bucket: &str) -> String {
    format!("{COMPANION_PREFIX}{kind}{COMPANION_SEPARATOR}{bucket}")
}

/// The bucket whose data `name` belongs with: the user bucket of a companion bucket
/// (see [`companion_bucket`]), else `name` itself (a user bucket, or one of the
/// store's global internal buckets).
pub fn home_bucket(name: &str) -> &str {
    name.strip_prefix(COMPANION_PREFIX)
        .and_then(|rest| rest.split_once(COMPANION_SEPARATOR))
        .map_or(name, |(_, home)| home)
}

/// First character of a companion bucket's name (a control character: no user
/// bucket name has one).
const COMPANION_PREFIX: char = '\u{3}';
/// Ends a companion bucket's kind; the user bucket's name follows.
const COMPANION_SEPARATOR: char = '\u{1f}';

/// What the store tells an engine it opens: the store-wide options an engine may
/// tune itself to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreContext {
    /// How often the store checkpoints and, in periodic mode, syncs the engine.
    pub flush_interval: Duration,
    /// Whether every write call is synced before it returns (sync mode).
    pub sync: bool,
}

impl StoreContext {
    /// A context with the given figures (for tests of an engine outside the store).
    pub fn new(flush_interval: Duration, sync: bool) -> StoreContext {
        StoreContext {
            flush_interval,
            sync,
        }
    }
}

/// Opens engines of one kind. The built-in engines' configs implement it; an engine
/// defined outside `state-core` implements it and is used through
/// [`EngineConfig::Custom`]:
///
/// ```
/// # use std::sync::Arc;
/// # use state_core::engine::{EngineFactory, EngineConfig, StorageEngine, StoreContext};
/// # #[derive(Debug)] struct MyFactory;
/// # impl EngineFactory for MyFactory {
/// #     fn name(&self) -> &str { "mine" }
/// #     fn open(&self, _: &std::path::Path, _: &StoreContext)
/// #         -> state_core::Result<Box<dyn StorageEngine>> { unimplemented!() }
/// # }
/// let config = EngineConfig::Custom(Arc::new(MyFactory));
/// let builder = state_core::Store::builder().engine(config);
/// ```
pub trait EngineFactory: fmt::Debug + Send + Sync {
    /// The engine's name: recorded in the store's marker file, so a store is only
    /// ever reopened with the engine that made it, and used in messages. Must not be
    /// the name of another engine (`"sled"`, `"memfile"`).
    fn name(&self) -> &str;

    /// Opens (creating if needed) the engine's store in `dir`, an existing directory
    /// that libstate owns (it also holds libstate's marker file). An engine that keeps
    /// its data elsewhere (a server named by a URL in its config) needs nothing there.
    ///
    /// # Errors
    /// *locked* if another process holds the store; *corrupt* if the engine's data
    /// fails its checks; *invalid argument* for an option out of range; *I/O*.
    fn open(&self, dir: &Path, store: &StoreContext) -> Result<Box<dyn StorageEngine>>;

    /// A file in `dir` that shows this engine's store is there, if one is. A store
    /// without libstate's marker is then refused by every other engine instead of
    /// being mixed with this one's files. The default recognizes nothing.
    fn recognize(&self, dir: &Path) -> Result<Option<String>> {
        let _ = dir;
        Ok(None)
    }

    /// Whether several processes (on several hosts) may open this engine's store at
    /// once (a server-backed engine such as Redis): it then holds no lock file and
    /// its engines make read-modify-writes atomic across processes
    /// ([`StorageEngine::version`]). The default is `false`.
    fn shared_between_processes(&self) -> bool {
        false
    }
}

/// Which kind of storage engine a store uses; [`EngineConfig`] adds its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Engine {
    /// sled 0.34: an embedded B-tree/log-structured store. The default.
    #[default]
    Sled,
    /// Everything in memory, persisted to an append-only log plus snapshots
    /// (`docs/memfile-format.md`). The fastest engine; the data must fit in RAM.
    Memfile,
    /// A Redis server or Redis Cluster ([`RedisConfig`]), opened by URL; several
    /// processes on several hosts may open one store at once.
    Redis,
    /// An engine defined outside `state-core`, opened through
    /// [`EngineConfig::Custom`]; its name is [`crate::Store::engine_name`].
    Custom,
}

impl Engine {
    /// The engine's name as used in options and messages (`"sled"`, `"memfile"`,
    /// `"redis"`;
    /// `"custom"` for any engine defined outside `state-core`).
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sled => "sled",
            Engine::Memfile => "memfile",
            Engine::Redis => "redis",
            Engine::Custom => "custom",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Engine {
    type Err = Error;

    /// Parses `"sled"`, `"memfile"` or `"redis"`; anything else is an *invalid
    /// argument* error.
    fn from_str(s: &str) -> Result<Engine> {
        match s {
            "sled" => Ok(Engine::Sled),
            "memfile" => Ok(Engine::Memfile),
            "redis" => Ok(Engine::Redis),
            other => Err(Error::invalid(format!(
                "unknown engine {other:?} (expected \"sled\", \"memfile\" or \"redis\")"
            ))),
        }
    }
}

/// An engine with its own options: what [`crate::StoreBuilder::engine`] takes.
///
/// An [`Engine`] converts into its config with default options, so
/// `.engine(Engine::Memfile)` and `.engine(MemfileConfig::default())` are the same.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EngineConfig {
    /// The sled engine.
    Sled(SledConfig),
    /// The memfile engine.
    Memfile(MemfileConfig),
    /// The Redis engine: a Redis server or Redis Cluster named by URL.
    Redis(RedisConfig),
    /// An engine defined outside `state-core` (and the hook tests use to run the
    /// conformance suite against one): the factory opens it.
    Custom(Arc<dyn EngineFactory>),
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        Engine::default().into()
    }
}

impl EngineConfig {
    /// The kind of engine.
    pub fn engine(&self) -> Engine {
        match self {
            EngineConfig::Sled(_) => Engine::Sled,
            EngineConfig::Memfile(_) => Engine::Memfile,
            EngineConfig::Redis(_) => Engine::Redis,
            EngineConfig::Custom(_) => Engine::Custom,
        }
    }

    /// The engine's name, as recorded in the store's marker file.
    pub fn name(&self) -> &str {
        self.factory().name()
    }

    /// This config with `bytes` as the page-cache size of an engine that has one
    /// (sled); other engines are returned unchanged.
    pub fn with_cache_size(self, bytes: u64) -> EngineConfig {
        match self {
            EngineConfig::Sled(c) => EngineConfig::Sled(c.cache_size(bytes)),
            other => other,
        }
    }

    /// Whether several processes may open this engine's store at once (see
    /// [`EngineFactory::shared_between_processes`]).
    pub fn shared_between_processes(&self) -> bool {
        self.factory().shared_between_processes()
    }

    /// Where a server-backed engine's data is ([`RedisConfig::location`]), for a
    /// store opened without a local directory; `None` for the other engines.
    pub(crate) fn remote_location(&self) -> Option<String> {
        match self {
            EngineConfig::Redis(c) => Some(c.location()),
            _ => None,
        }
    }

    fn factory(&self) -> &dyn EngineFactory {
        match self {
            EngineConfig::Sled(c) => c,
            EngineConfig::Memfile(c) => c,
            EngineConfig::Redis(c) => c,
            EngineConfig::Custom(f) => &**f,
        }
    }
}

impl From<Engine> for EngineConfig {
    /// The engine with its default options. [`Engine::Redis`] names no server: a
    /// store opened with it must be given the server's URL as its path (any other
    /// path is an *invalid argument* error). [`Engine::Custom`] names no factory and
    /// converts to the default engine's config; use [`EngineConfig::Custom`].
    fn from(engine: Engine) -> EngineConfig {
        match engine {
            Engine::Memfile => EngineConfig::Memfile(MemfileConfig::default()),
            Engine::Redis => EngineConfig::Redis(RedisConfig::unset()),
            Engine::Sled | Engine::Custom => EngineConfig::Sled(SledConfig::default()),
        }
    }
}

impl From<&EngineConfig> for EngineConfig {
    fn from(config: &EngineConfig) -> EngineConfig {
        config.clone()
    }
}

impl From<SledConfig> for EngineConfig {
    fn from(config: SledConfig) -> EngineConfig {
        EngineConfig::Sled(config)
    }
}

impl From<RedisConfig> for EngineConfig {
    fn from(config: RedisConfig) -> EngineConfig {
        EngineConfig::Redis(config)
    }
}

impl From<MemfileConfig> for EngineConfig {
    fn from(config: MemfileConfig) -> EngineConfig {
        EngineConfig::Memfile(config)
    }
}

/// The built-in engines, for recognizing a directory that holds another engine's
/// store.
fn built_in() -> [EngineConfig; 2] {
    [
        EngineConfig::Sled(SledConfig::default()),
        EngineConfig::Memfile(MemfileConfig::default()),
    ]
}

/// Opens the engine `config` describes on the store directory `dir`.
///
/// # Errors
/// *invalid argument* if `dir` holds a store of another built-in engine (found by
/// its files: a store without libstate's marker), and every error of
/// [`EngineFactory::open`].
pub(crate) fn open(
    config: &EngineConfig,
    dir: &Path,
    store: &StoreContext,
) -> Result<Box<dyn StorageEngine>> {
    let name = config.name();
    for other in built_in() {
        let other_name = other.name();
        if other_name == name {
            continue;
        }
        if let Some(file) = other.factory().recognize(dir)? {
            return Err(Error::invalid(format!(
                "store {} holds a {other_name} store (found {file:?}); open it with the \
                 {other_name} engine",
                dir.display()
            )));
        }
    }
    config.factory().open(dir, store)
}
