//! [`Store`]: opening, sharing and closing a store directory, and the registry of
//! open stores. Group commit and the background threads have modules of their own.

mod background;
mod engine_cell;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use self::background::Background;
use self::engine_cell::EngineCell;
pub(crate) use self::engine_cell::EngineRef;

use crate::checkpoint;
use crate::clock::{Clock, SystemClock};
use crate::commit::{Committer, ManyBufs, One, Op, Prior, UpdateBufs};
use crate::engine::{self, Engine, EngineConfig, Reader, RedisConfig, StorageEngine, StoreContext};
use crate::error::{Error, Result};
use crate::expiry;
use crate::lend;
use crate::limits::{self, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_VALUE_SIZE};
use crate::watch::Hub;

/// Default interval of the background flush in periodic durability mode.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Default interval of the background expiry sweeper.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Options for opening a store; get one from [`Store::builder`].
///
/// When a directory is already open in this process, [`StoreBuilder::open`] returns
/// another handle on that store and the options of the first open stay in force
/// (only a different engine is an error).
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    engine: EngineConfig,
    sync: bool,
    flush_interval: Duration,
    cache_size: Option<u64>,
    max_value_size: usize,
    max_batch_size: usize,
    clock: Arc<dyn Clock>,
    sweep_interval: Option<Duration>,
}

impl Default for StoreBuilder {
    fn default() -> StoreBuilder {
        StoreBuilder {
            engine: EngineConfig::default(),
            sync: false,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            cache_size: None,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            clock: Arc::new(SystemClock),
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
        }
    }
}

impl StoreBuilder {
    /// The storage engine and its options (default: [`Engine::default`] with its
    /// default options): an [`Engine`] (its default options), an engine's own config
    /// type (see [`crate::engine`]) or an
    /// [`EngineConfig`], including [`EngineConfig::Custom`] for an engine defined
    /// outside `state-core`.
    pub fn engine(mut self, engine: impl Into<EngineConfig>) -> StoreBuilder {
        self.engine = engine.into();
        self
    }

    /// Durability mode. `false` (the default) is *periodic*: writes become durable
    /// at the next background flush (every [`flush_interval`](Self::flush_interval)),
    /// so a crash or power loss loses at most that window and never corrupts the store.
    /// `true` is *sync*: every write call returns only after its data is on stable
    /// storage (fdatasync); concurrent writers share one sync (group commit).
    pub fn sync(mut self, sync: bool) -> StoreBuilder {
        self.sync = sync;
        self
    }

    /// Interval of the background flush in periodic mode (default 500 ms). Must be > 0.
    pub fn flush_interval(mut self, interval: Duration) -> StoreBuilder {
        self.flush_interval = interval;
        self
    }

    /// Page-cache size in bytes for engines that have one (see
    /// [`EngineConfig::with_cache_size`]); it overrides the cache size of the engine's
    /// config, whichever is set first. Engines without a page cache ignore it. Must
    /// be > 0.
    pub fn cache_size(mut self, bytes: u64) -> StoreBuilder {
        self.cache_size = Some(bytes);
        self
    }

    /// Largest value accepted, in bytes (default 16 MiB). Larger values are an
    /// *invalid argument* error and nothing is written. Must be > 0.
    pub fn max_value_size(mut self, bytes: usize) -> StoreBuilder {
        self.max_value_size = bytes;
        self
    }

    /// Largest total size (keys plus values) of one `set_multiple`, in bytes
    /// (default 256 MiB). A larger batch is a *too large* error and nothing is
    /// written; split it, or raise the limit. This bounds the memory one batch
    /// can make the engine hold. Must be > 0.
    pub fn max_batch_size(mut self, bytes: usize) -> StoreBuilder {
        self.max_batch_size = bytes;
        self
    }

    /// The clock used for expiry deadlines (default: the system's wall clock).
    /// Tests use [`crate::ManualClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> StoreBuilder {
        self.clock = clock;
        self
    }

    /// How often the background sweeper removes expired records (default 1 s);
    /// `None` turns it off ([`Store::sweep_expired`] still works). Expired records are
    /// invisible to reads either way; sweeping only reclaims their space. Must be > 0.
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> StoreBuilder {
        self.sweep_interval = interval;
        self
    }

    /// Opens (creating if needed) the store in directory `path`, or on the Redis
    /// server or cluster that `path` names as a URL.
    ///
    /// `path` is a URL when its text starts with `redis://`, `rediss://`,
    /// `redis+unix://` or `redis+cluster://` (see [`RedisConfig`] for the forms and
    /// the `namespace` and `timeout_ms` parameters); anything else is a directory
    /// (write `./redis://x` for a directory of that name). A store opened by URL has
    /// no local directory and no lock: any number of processes on any number of
    /// hosts may open it at once. If the builder's engine is a [`RedisConfig`], its
    /// namespace and timeout apply unless the URL sets them. With a
    /// [`RedisConfig`] engine and a directory `path`, the directory holds only
    /// libstate's marker and the data is on the server.
    ///
    /// # Errors
    /// - *invalid argument*: `path` exists but is not a directory, an option is out of
    ///   range, or the store is already open in this process with another engine;
    /// - *locked*: another process has the store open;
    /// - *corrupt*: the engine cannot read the store's files (libstate changes none of
    ///   them, though an engine may rewrite parts of its own while opening, see
    ///   [`crate::ErrorKind::Corrupt`]);
    /// - *I/O*: the directory cannot be created, read or written, or the Redis
    ///   server cannot be reached within the timeout.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path.as_ref(), self)
    }
}

/// Durability-related figures and counts describing an open store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreInfo {
    /// The store directory (canonical path).
    pub path: PathBuf,
    /// The engine in use ([`Engine::Custom`] for one defined outside `state-core`;
    /// [`Store::engine_name`] names it).
    pub engine: Engine,
    /// Number of buckets holding at least one live record.
    pub buckets: u64,
    /// Number of live (not expired) records over all buckets.
    pub records: u64,
    /// Number of live records that have a time to live.
    pub expiring: u64,
    /// Bytes the store occupies on disk (0 for a store kept on a server).
    pub disk_bytes: u64,
    /// What the engine says about where its data lives, if anything (the Redis
    /// engine: the server's version, standalone or cluster, and its persistence
    /// settings, e.g. `redis 7.0.15 (standalone), appendonly yes, appendfsync always`).
    pub engine_details: Option<String>,
}

/// Bucket and record counts of an open store, kept as writes commit
/// ([`Store::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCounts {
    /// Number of buckets holding at least one stored record (the buckets
    /// [`Store::bucket_names`] lists).
    pub buckets: u64,
    /// Number of stored records over all buckets: the live ones and those expired
    /// but not yet removed by the sweeper (which removes them within a sweep
    /// interval, 1 s by default).
    pub records: u64,
}

/// Resolved options shared by every handle on one store.
#[derive(Debug)]
pub(crate) struct Options {
    pub engine: Engine,
    /// The engine's name, as recorded in the store's marker.
    pub engine_name: String,
    pub sync: bool,
    pub flush_interval: Duration,
    /// The engine's resolved configuration (maintenance opens copies with it).
    pub config: EngineConfig,
    pub max_value_size: usize,
    pub max_batch_size: usize,
    pub clock: Arc<dyn Clock>,
    pub sweep_interval: Option<Duration>,
    /// Other processes may open the store at the same time (no checkpoint
    /// generations: they would race between processes).
    pub shared_engine: bool,
}

/// Process-wide registry of open stores keyed by canonical directory, so a second
/// open in the same process shares the first (engines may assume one instance per
/// directory per process; some release their lock late when dropped).
static REGISTRY: LazyLock<Mutex<BTreeMap<PathBuf, Arc<Shared>>>> =
    LazyLock::new(|| Mutex::new(BTreeMap::new()));

/// How long `close` waits for the engine's file lock to be released (an engine may
/// release it from background threads after it is dropped).
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The state of one open store, shared by all its handles.
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    pub(crate) opts: Options,
    engine: EngineCell,
    /// The write side: the write lock, the watchers and the group sync. Every write
    /// to a user bucket goes through it.
    commit: Committer,
    handles: Mutex<usize>,
    background: Mutex<Option<Background>>,
    /// The last checkpoint: its generation and the write sequence it covered.
    checkpoint: Mutex<Checkpoint>,
}

#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    generation: u64,
    seq: u64,
    /// When (unix ms, by the store's clock) everything written up to `seq` was
    /// last found durable: the last checkpoint that synced, or the open.
    saved_ms: u64,
}

impl Shared {
    /// The engine, without taking a lock (see [`engine_cell`]); *closed* once closed.
    #[inline]
    pub(crate) fn engine(&self) -> Result<EngineRef<'_>> {
        self.engine.load(|| lend::lending(self))
    }

    /// The store's watchers.
    pub(crate) fn watch(&self) -> &Arc<Hub> {
        self.commit.hub()
    }

    /// Commits `ops` to `bucket` (see [`Committer::apply`]) and, in sync mode, waits
    /// until they are durable.
    pub(crate) fn apply(&self, bucket: &str, ops: &[Op<'_>]) -> Result<()> {
        lend::refuse(self, "write to the store")?;
        let engine = self.engine()?;
        self.commit.apply(&*engine, bucket, ops)
    }

    /// Writes `ops` to libstate's internal buckets through the commit point (see
    /// [`Committer::internal`]).
    pub(crate) fn write_internal(&self, ops: &[crate::engine::WriteOp<'_>]) -> Result<()> {
        lend::refuse(self, "write to the store")?;
        let engine = self.engine()?;
        self.commit.internal(&*engine, ops)
    }

    /// Runs the read-modify-write `f` of `bucket` and commits the ops it returns
    /// (see [`Committer::rmw`]).
    pub(crate) fn rmw<'o, T>(
        &self,
        bucket: &str,
        f: impl FnMut(Reader<'_>) -> Result<(T, Vec<Op<'o>>)>,
    ) -> Result<T> {
        lend::refuse(self, "write to the store")?;
        let engine = self.engine()?;
        self.commit.rmw(&*engine, bucket, f)
    }

    /// The single-key read-modify-write `f` of `key` in `bucket` (see
    /// [`Committer::update`]).
    pub(crate) fn update<T>(
        &self,
        bucket: &str,
        key: &[u8],
        f: impl FnMut(Reader<'_>, &mut UpdateBufs) -> Result<(T, One)>,
    ) -> Result<T> {
        lend::refuse(self, "write to the store")?;
        let engine = self.engine()?;
        self.commit.update(&*engine, bucket, key, f)
    }

    /// The multi-key read-modify-write `f` of `keys` in `bucket` (see
    /// [`Committer::update_many`]).
    pub(crate) fn update_many<T, K: AsRef<str>>(
        &self,
        bucket: &str,
        keys: &[K],
        f: impl FnMut(Reader<'_>, &mut ManyBufs) -> Result<T>,
    ) -> Result<T> {
        lend::refuse(self, "write to the store")?;
        let engine = self.engine()?;
        self.commit.update_many(&*engine, bucket, keys, f)
    }

    /// Runs `f` with the store's write lock held: no write runs meanwhile.
    pub(crate) fn exclude_writers<T>(&self, f: impl FnOnce() -> T) -> T {
        self.commit.exclusive(f)
    }

    /// A running online backup's hold on the write path (see `crate::backup`).
    pub(crate) fn backup_tap(&self) -> &crate::commit::tap::Tap {
        self.commit.tap()
    }

    /// Runs `register` under the store's write lock, so a new watcher sees exactly
    /// the writes that commit after it is registered.
    pub(crate) fn register_watch<T>(&self, register: impl FnOnce(&Arc<Hub>) -> T) -> Result<T> {
        lend::refuse(self, "watch the store")?;
        let _engine = self.engine()?;
        Ok(self.commit.exclusive(|| register(self.commit.hub())))
    }

    /// The store's counts (see [`Store::counts`]).
    pub(crate) fn counts(&self) -> Result<Option<StoreCounts>> {
        lend::refuse(self, "count the store's records")?;
        let engine = self.engine()?;
        let totals = self.commit.counts(&*engine, self.opts.shared_engine)?;
        Ok(totals.map(|(buckets, records)| StoreCounts { buckets, records }))
    }

    pub(crate) fn remove_bucket(&self, name: &str) -> Result<bool> {
        lend::refuse(self, "write to the store")?;
        let engine = self.engine()?;
        self.commit.remove_bucket(&*engine, name)
    }

    /// Removes every record whose deadline has passed, and stale index entries, in
    /// batches, bucket by bucket (each batch one read-modify-write of one bucket).
    /// Returns the number of records removed.
    pub(crate) fn sweep(&self) -> Result<u64> {
        let buckets = {
            let engine = self.engine()?;
            expiry::indexed_buckets(Reader::new(&*engine))?
        };
        let mut removed = 0u64;
        for bucket in &buckets {
            loop {
                let now = self.opts.clock.now_ms();
                let (n, more) = self.rmw(bucket, |reader| {
                    let due = expiry::due(reader, &self.path, bucket, now)?;
                    let more = due.len() == expiry::SWEEP_BATCH;
                    let mut n = 0u64;
                    let ops: Vec<Op<'static>> = due
                        .into_iter()
                        .map(|e| {
                            if e.current {
                                n += 1;
                                Op::Delete {
                                    key: e.key.into(),
                                    prior: Prior::Expired {
                                        deadline: e.deadline,
                                    },
                                }
                            } else {
                                Op::DropIndex {
                                    key: e.key.into(),
                                    deadline: e.deadline,
                                }
                            }
                        })
                        .collect();
                    Ok(((n, more), ops))
                })?;
                removed += n;
                if !more {
                    break;
                }
            }
        }
        Ok(removed)
    }

    /// Makes every write so far durable.
    pub(crate) fn flush(&self) -> Result<()> {
        lend::refuse(self, "flush the store")?;
        let engine = self.engine()?;
        let sync = self.commit.sync();
        sync.sync_through(sync.written(), || engine.sync())
    }

    /// Makes every write so far durable and records a checkpoint (see
    /// `checkpoint`), if anything was written since the last one.
    pub(super) fn checkpoint(&self) -> Result<()> {
        let engine = self.engine()?;
        self.checkpoint_on(&*engine)
    }

    fn checkpoint_on(&self, engine: &dyn StorageEngine) -> Result<()> {
        let mut cp = self.checkpoint.lock();
        let sync = self.commit.sync();
        if sync.written() <= cp.seq {
            return Ok(());
        }
        if self.opts.shared_engine {
            // Generations count one process's checkpoints; with several processes
            // writing, a lower one would look like lost data. Only sync.
            let seq = sync.written();
            sync.sync_through(seq, || engine.sync())?;
            cp.seq = seq;
            cp.saved_ms = self.opts.clock.now_ms();
            return Ok(());
        }
        let generation = cp.generation + 1;
        self.commit
            .exclusive(|| checkpoint::write_generation(engine, generation))?;
        let seq = sync.note_write();
        sync.sync_through(seq, || engine.sync())?;
        checkpoint::write_marker(
            &engine.file_io(),
            &self.path,
            &self.opts.engine_name,
            generation,
        )?;
        *cp = Checkpoint {
            generation,
            seq,
            saved_ms: self.opts.clock.now_ms(),
        };
        Ok(())
    }

    /// Runs `f` with the engine slot locked exclusively: in-flight operations have
    /// finished and new ones wait until `f` returns. `f` may take the engine out and
    /// put another in (a compaction swapping directories); leaving the slot empty
    /// closes the store for every handle.
    pub(crate) fn with_engine_slot<T>(
        &self,
        f: impl FnOnce(&mut Option<Box<dyn StorageEngine>>) -> Result<T>,
    ) -> Result<T> {
        lend::refuse(self, "compact the store")?;
        self.engine.exclusive(f)?
    }

    /// One handle fewer; the last one shuts the store down.
    fn release(&self) -> Result<()> {
        let mut registry = REGISTRY.lock();
        let mut handles = self.handles.lock();
        *handles = handles.saturating_sub(1);
        if *handles > 0 {
            return Ok(());
        }
        registry.remove(&self.path);
        drop(handles);
        if let Some(bg) = self.background.lock().take() {
            bg.stop();
        }
        // Waits for in-flight operations (they hold read guards), then drops the
        // engine so its files and lock are released before the registry lock is.
        let engine = self.engine.exclusive(Option::take).ok().flatten();
        self.watch().end_all();
        match engine {
            Some(engine) => {
                let r = self.checkpoint_on(&*engine);
                let lock_file = engine.lock_file();
                drop(engine);
                if let Some(file) = lock_file {
                    wait_for_lock_release(&file);
                }
                r
            }
            None => Ok(()),
        }
    }
}

/// Waits (up to `LOCK_RELEASE_WAIT`) until nobody holds an exclusive lock on `file`,
/// by taking and releasing it. A file that cannot be opened has no lock to wait for.
pub(crate) fn wait_for_lock_release(file: &Path) {
    let Ok(f) = fs::File::open(file) else { return };
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    while start.elapsed() < LOCK_RELEASE_WAIT {
        if f.try_lock().is_ok() {
            let _ = f.unlock();
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// One handle's state: closing a handle closes it for its clones, buckets and cursors.
struct Handle {
    shared: Arc<Shared>,
    closed: AtomicBool,
}

impl Handle {
    /// Identifies the handle among the live ones (its address), for the watchers
    /// made through it.
    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.shared.watch().end_handle(self.id());
            // Drop cannot report errors; close() exists for callers who want them.
            let _ = self.shared.release();
        }
    }
}

/// A handle on an open store. Cheap to clone (clones are the same handle) and safe to
/// share between threads.
///
/// Opening a directory that is already open in this process returns another handle on
/// the same store; the store flushes and closes when its last handle is closed or
/// dropped. After [`Store::close`], every operation on this handle and on buckets and
/// cursors taken from it fails with [`crate::ErrorKind::Closed`].
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.handle.shared.path)
            .field("engine", &self.handle.shared.opts.engine_name)
            .field("closed", &self.handle.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `path` with default options: the
    /// default [`Engine`], periodic durability (500 ms). See [`StoreBuilder::open`] for errors.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        StoreBuilder::default().open(path)
    }

    /// Options for opening a store.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    fn open_with(path: &Path, mut b: StoreBuilder) -> Result<Store> {
        check_options(&b)?;
        let url = path.to_str().filter(|s| engine::is_redis_url(s));
        if let Some(url) = url {
            let mut config = RedisConfig::new(url)?;
            if let EngineConfig::Redis(given) = &b.engine {
                if !url.contains("namespace=") {
                    config = config.namespace(given.namespace_name());
                }
                if !url.contains("timeout_ms=") {
                    config = config.timeout(given.timeout_duration());
                }
            }
            b.engine = config.into();
        }
        if let EngineConfig::Redis(given) = &b.engine {
            if !given.has_server() {
                return Err(engine::redis_needs_url(path));
            }
        }
        let config = match b.cache_size {
            Some(bytes) => b.engine.clone().with_cache_size(bytes),
            None => b.engine.clone(),
        };
        let name = config.name().to_string();
        let shared_engine = config.shared_between_processes();
        let remote = url.and(config.remote_location());
        let dir = match &remote {
            Some(location) => PathBuf::from(location),
            None => prepare_dir(path)?,
        };
        let mut registry = REGISTRY.lock();
        if let Some(shared) = registry.get(&dir) {
            if shared.opts.engine_name != name {
                return Err(Error::invalid(format!(
                    "store {} is already open in this process with engine {}, not {name}",
                    dir.display(),
                    shared.opts.engine_name,
                )));
            }
            *shared.handles.lock() += 1;
            return Ok(Store::from_shared(Arc::clone(shared)));
        }
        let marker = match remote {
            Some(_) => None,
            None => checkpoint::read_marker(&dir)?,
        };
        checkpoint::check_engine(&dir, marker.as_ref(), &name)?;
        let context = StoreContext::new(b.flush_interval, b.sync);
        let mut engine = engine::open(&config, &dir, &context)?;
        let generation = if shared_engine {
            0
        } else {
            checkpoint::verify(&dir, marker.as_ref(), &*engine)?
        };
        engine.finish_open()?;
        expiry::migrate(&dir, &*engine)?;
        if marker.is_none() && remote.is_none() {
            checkpoint::write_marker(&engine.file_io(), &dir, &name, generation)?;
        }
        let shared = Arc::new(Shared {
            path: dir.clone(),
            opts: Options {
                engine: config.engine(),
                engine_name: name,
                sync: b.sync,
                flush_interval: b.flush_interval,
                config: config.clone(),
                max_value_size: b.max_value_size,
                max_batch_size: b.max_batch_size,
                clock: Arc::clone(&b.clock),
                sweep_interval: b.sweep_interval,
                shared_engine,
            },
            engine: EngineCell::new(engine),
            commit: Committer::new(b.sync, Arc::clone(&b.clock)),
            handles: Mutex::new(1),
            background: Mutex::new(None),
            checkpoint: Mutex::new(Checkpoint {
                generation,
                seq: 0,
                saved_ms: b.clock.now_ms(),
            }),
        });
        *shared.background.lock() = Some(Background::start(&shared)?);
        registry.insert(dir, Arc::clone(&shared));
        Ok(Store::from_shared(shared))
    }

    fn from_shared(shared: Arc<Shared>) -> Store {
        Store {
            handle: Arc::new(Handle {
                shared,
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The shared store, or *closed* if this handle was closed.
    pub(crate) fn shared(&self) -> Result<&Shared> {
        if self.handle.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(&self.handle.shared)
    }

    /// Identifies this handle (and its clones) among the live handles.
    pub(crate) fn handle_id(&self) -> usize {
        self.handle.id()
    }

    /// The store directory (canonical path); for a store opened by URL, its
    /// location ([`RedisConfig::location`]: the URL with any password hidden and
    /// its namespace).
    pub fn path(&self) -> &Path {
        &self.handle.shared.path
    }

    /// The largest value this store accepts, in bytes.
    pub fn max_value_size(&self) -> usize {
        self.handle.shared.opts.max_value_size
    }

    /// The store clock's reading, in unix milliseconds (the clock TTLs and
    /// deadlines are measured by).
    pub fn clock_now_ms(&self) -> u64 {
        self.handle.shared.opts.clock.now_ms()
    }

    /// The kind of engine this store uses.
    pub fn engine(&self) -> Engine {
        self.handle.shared.opts.engine
    }

    /// The name of the engine this store uses, as recorded in its marker file:
    /// [`Engine::as_str`] of a built-in engine, or a custom engine's
    /// [`crate::engine::EngineFactory::name`].
    pub fn engine_name(&self) -> &str {
        &self.handle.shared.opts.engine_name
    }

    /// Names of the buckets that hold at least one record, in byte order. A bucket
    /// whose records have all expired is listed until the sweeper removes them.
    pub fn bucket_names(&self) -> Result<Vec<String>> {
        let shared = self.shared()?;
        let names = shared.engine()?.bucket_names()?;
        Ok(names.into_iter().filter(|n| is_user_bucket(n)).collect())
    }

    /// Removes a bucket and all its records. Returns whether it held any.
    ///
    /// An engine may remove a very large bucket in chunks, so a crash
    /// part-way through can leave part of it behind.
    pub fn remove_bucket(&self, name: &str) -> Result<bool> {
        let shared = self.shared()?;
        limits::check_bucket_name(name)?;
        shared.remove_bucket(name)
    }

    /// Makes every write so far durable (fdatasync), whatever the durability mode.
    pub fn flush(&self) -> Result<()> {
        self.shared()?.flush()
    }

    /// The number of buckets holding a record and of records stored, kept as writes
    /// commit: after the first call, each call costs O(1) (a lock and two numbers).
    ///
    /// The first call on an open store counts once, with writes held off meanwhile:
    /// O(buckets) on memfile, a read of every key on sled. From then on every write adds its change, and a plain
    /// [`Bucket::set`](crate::Bucket::set) or `set_multiple` reads whether each of
    /// its keys existed (one engine read per key, which it otherwise skips).
    /// Expired records count until the sweeper removes them ([`StoreCounts`]).
    ///
    /// `Ok(None)` for a store that other processes may write to at the same time
    /// (the Redis engine): this process does not see their writes.
    ///
    /// # Errors
    /// *closed*; *invalid argument* from inside a lending callback; engine errors
    /// of the first count.
    pub fn counts(&self) -> Result<Option<StoreCounts>> {
        self.shared()?.counts()
    }

    /// Counts and sizes. Counting records costs what the engine's count costs
    /// (O(records) for an engine that reads every key to count), unless
    /// [`Store::counts`] was called on the open store: then the stored records of
    /// each bucket are known and `info` costs O(buckets + expired records).
    pub fn info(&self) -> Result<StoreInfo> {
        let shared = self.shared()?;
        let engine = shared.engine()?;
        let reader = Reader::new(&*engine);
        let now = shared.opts.clock.now_ms();
        // One pass over the expired part of the index for all buckets, not one per
        // bucket: O(buckets + expired), plus the engine's counts.
        let expired = expiry::expired_by_bucket(reader, &shared.path, now)?;
        let stored: Vec<(String, u64)> = match shared.commit.bucket_counts() {
            Some(kept) => kept.into_iter().collect(),
            None => {
                let mut counted = Vec::new();
                for name in engine.bucket_names()? {
                    if is_user_bucket(&name) {
                        let n = engine.count(&name)?;
                        counted.push((name, n));
                    }
                }
                counted
            }
        };
        let mut buckets = 0;
        let mut records = 0;
        for (name, stored) in stored {
            let live = stored.saturating_sub(expired.get(&name).copied().unwrap_or(0));
            if live > 0 {
                buckets += 1;
                records += live;
            }
        }
        Ok(StoreInfo {
            path: shared.path.clone(),
            engine: shared.opts.engine,
            buckets,
            records,
            expiring: expiry::expiring(reader, &shared.path, now)?,
            disk_bytes: engine.disk_size()?,
            engine_details: engine.details()?,
        })
    }

    /// When (unix milliseconds, by the store's clock) everything written to the
    /// store was last made durable by a checkpoint (the periodic flush,
    /// [`Store::flush`]), or when this process opened it if none has run since:
    /// Redis's LASTSAVE.
    ///
    /// # Errors
    /// *closed*.
    pub fn last_checkpoint_ms(&self) -> Result<u64> {
        Ok(self.shared()?.checkpoint.lock().saved_ms)
    }

    /// How many records this process has removed after their deadline passed
    /// since the store was opened here (by the sweeper, [`Store::sweep_expired`],
    /// or a write that found the record expired): Redis's `expired_keys`.
    ///
    /// # Errors
    /// *closed*.
    pub fn expired_removed(&self) -> Result<u64> {
        Ok(self.shared()?.commit.expired())
    }

    /// Removes every expired record now (the background sweeper does this every
    /// sweep interval). Returns how many records were removed. Costs time in
    /// proportion to the number of expired records, not to the store's size.
    pub fn sweep_expired(&self) -> Result<u64> {
        self.shared()?.sweep()
    }

    /// Closes this handle (and its clones, buckets and cursors). When it is the
    /// store's last open handle, the store is flushed and its files released, and the
    /// flush's error, if any, is returned. Closing a closed handle does nothing.
    pub fn close(&self) -> Result<()> {
        lend::refuse(&*self.handle.shared, "close the store")?;
        if self.handle.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.handle.shared.watch().end_handle(self.handle.id());
        self.handle.shared.release()
    }
}

pub(crate) use crate::limits::is_user_bucket;

fn check_options(b: &StoreBuilder) -> Result<()> {
    if b.flush_interval.is_zero() {
        return Err(Error::invalid("flush_interval must be greater than zero"));
    }
    if b.sweep_interval.is_some_and(|i| i.is_zero()) {
        return Err(Error::invalid("sweep_interval must be greater than zero"));
    }
    if b.cache_size == Some(0) {
        return Err(Error::invalid("cache_size must be greater than zero"));
    }
    if b.max_value_size == 0 {
        return Err(Error::invalid("max_value_size must be greater than zero"));
    }
    if b.max_batch_size == 0 {
        return Err(Error::invalid("max_batch_size must be greater than zero"));
    }
    Ok(())
}

/// Creates the store directory (mode 0700) if needed and returns its canonical path.
fn prepare_dir(path: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("store path must not be empty"));
    }
    match fs::metadata(path) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::invalid(format!(
                "store path {} exists and is not a directory",
                path.display()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(path).map_err(|e| Error::io(path, e))?;
        }
        Err(e) => return Err(Error::io(path, e)),
    }
    fs::canonicalize(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, Expiry, Format};

    /// Every kind of write keeps the counts without a recount: each knows what it
    /// replaced, so counting never stops (a stop would make the next call count
    /// again, which `tests/counts.rs` could not tell from keeping them).
    #[test]
    fn every_write_keeps_the_counts_without_a_recount() {
        for engine in [Engine::Sled, Engine::Memfile] {
            let tmp = tempfile::tempdir().unwrap();
            let clock = Arc::new(crate::ManualClock::new(1_000_000));
            let store = Store::builder()
                .engine(engine)
                .clock(clock.clone())
                .sweep_interval(None)
                .open(tmp.path().join("s"))
                .unwrap();
            let counting = || store.shared().unwrap().commit.counting();
            assert!(!counting(), "off until asked for");
            assert_eq!(store.counts().unwrap().unwrap().records, 0);
            let b = store.bucket("b").unwrap();
            b.set("k", b"v").unwrap();
            b.set("k", b"v2").unwrap();
            b.set_multiple([("k", &b"1"[..]), ("k2", b"2"), ("k", b"3")])
                .unwrap();
            b.set_with_ttl("t", b"v", Duration::from_secs(1)).unwrap();
            b.expire("k2", Duration::from_secs(1)).unwrap();
            b.persist("k2").unwrap();
            b.delete("k2").unwrap();
            b.transaction(|tx| {
                tx.put("x", b"x".to_vec(), Expiry::Never)?;
                tx.delete("k")
            })
            .unwrap();
            clock.advance(5_000);
            assert_eq!(store.sweep_expired().unwrap(), 1);
            store
                .import_from(&br#"{"c": {"k": "MQ=="}}"#[..], Format::Json, |_| {})
                .unwrap();
            store.remove_bucket("c").unwrap();
            // A batch that creates a key and deletes it again: each write knows
            // what the one before it left.
            b.update_many(&["u", "u"], |i, u| {
                match i {
                    0 => u.put(b"1", Expiry::Keep),
                    _ => u.delete(),
                }
                Ok(())
            })
            .unwrap();
            let watcher = b.watch("").unwrap();
            b.set("w", b"v").unwrap();
            b.update_many(&["w2", "w2"], |_, u| {
                u.put(b"1", Expiry::Never);
                Ok(())
            })
            .unwrap();
            b.delete("w2").unwrap();
            drop(watcher);
            assert!(counting(), "{engine:?}: a write stopped the counts");
            let c = store.counts().unwrap().unwrap();
            assert_eq!((c.buckets, c.records), (1, 2), "{engine:?}");
            store.close().unwrap();
        }
    }

    /// `update_many` commits its keys' writes as one write (one noted for the
    /// group sync), and a batch that writes nothing commits nothing.
    #[test]
    fn update_many_is_one_commit() {
        for engine in [Engine::Sled, Engine::Memfile] {
            let tmp = tempfile::tempdir().unwrap();
            let store = Store::builder()
                .engine(engine)
                .sweep_interval(None)
                .open(tmp.path().join("s"))
                .unwrap();
            let b = store.bucket("b").unwrap();
            let written = || store.shared().unwrap().commit.sync().written();
            let before = written();
            let counted = b
                .update_many(&["a", "b", "a"], |_, u| {
                    let n = u.value().map_or(0, |v| v.len()) + 1;
                    u.put(&vec![b'x'; n], Expiry::Keep);
                    Ok(n)
                })
                .unwrap();
            assert_eq!(counted, [1, 1, 2], "{engine:?}");
            assert_eq!(written(), before + 1, "{engine:?}: one commit");
            b.update_many(&["a", "b"], |_, _| Ok(())).unwrap();
            assert_eq!(written(), before + 1, "{engine:?}: nothing to commit");
            assert_eq!(b.get("a").unwrap().as_deref(), Some(&b"xx"[..]));
            store.close().unwrap();
        }
    }
}
