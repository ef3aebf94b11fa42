//! Test implementations of the memfile engine's file seam (`state_core::fileio`):
//! [`FaultIo`] fails chosen or random calls, [`Recorder`] records every write and
//! sync and makes power-loss images from them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use state_core::engine::MemfileConfig;
use state_core::fileio::{FileIo, Real};
use state_core::{Store, StoreBuilder};

pub const ENOSPC: i32 = 28;
pub const EIO: i32 = 5;
pub const EDQUOT: i32 = 122;

/// Bucket -> key -> value.
pub type Model = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// The whole content of an open store (user buckets).
pub fn contents(store: &Store) -> Model {
    let mut out = Model::new();
    for name in store.bucket_names().unwrap() {
        let b = store.bucket(&name).unwrap();
        let entries: BTreeMap<String, Vec<u8>> = b.iter().map(|e| e.unwrap()).collect();
        if !entries.is_empty() {
            out.insert(name, entries);
        }
    }
    out
}

/// A memfile store builder whose file calls go through `io`. No background flush
/// within a test (an hour), so every sync is one the test asked for.
pub fn builder(io: Arc<dyn FileIo>, sync: bool) -> StoreBuilder {
    Store::builder()
        .engine(MemfileConfig::default().with_file_io(io))
        .sync(sync)
        .flush_interval(Duration::from_secs(3600))
        .sweep_interval(None)
}

/// The file calls [`FaultIo`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Create,
    Open,
    Write,
    SyncData,
    SyncAll,
    SetLen,
    Rename,
    Remove,
    SyncDir,
    Fallocate,
    Map,
}

pub const ALL_CALLS: [Call; 11] = [
    Call::Create,
    Call::Open,
    Call::Write,
    Call::SyncData,
    Call::SyncAll,
    Call::SetLen,
    Call::Rename,
    Call::Remove,
    Call::SyncDir,
    Call::Fallocate,
    Call::Map,
];

/// How a failing call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing done; the OS error `errno`.
    Fail(i32),
    /// Writes only: the first half of the bytes written, then the OS error `errno`.
    Short(i32),
}

struct Rule {
    call: Call,
    /// Only paths whose file name contains this.
    name: String,
    /// Matching calls to let through first.
    skip: u64,
    /// Matching calls to fail after that (`u64::MAX`: until cleared).
    times: u64,
    fault: Fault,
}

struct Random {
    rng: SmallRng,
    /// Chance per call, in 1/1000.
    per_mille: u32,
}

/// A [`FileIo`] that passes calls to the real file system except those a rule or
/// the random schedule picks, which fail with `ENOSPC`, `EIO` or `EDQUOT` (writes
/// may also write half and then fail).
#[derive(Default)]
pub struct FaultIo {
    rules: Mutex<Vec<Rule>>,
    random: Mutex<Option<Random>>,
    injected: AtomicU64,
    /// Whether appends may use the mapped window (the real answer if so).
    no_map: AtomicBool,
}

impl FaultIo {
    pub fn new() -> Arc<FaultIo> {
        Arc::new(FaultIo::default())
    }

    /// Fails `times` calls of `call` on files whose name contains `name`, after
    /// letting `skip` of them through.
    pub fn fail(&self, call: Call, name: &str, skip: u64, times: u64, fault: Fault) {
        self.rules.lock().unwrap().push(Rule {
            call,
            name: name.to_string(),
            skip,
            times,
            fault,
        });
    }

    /// Fails the next call of `call` on a file whose name contains `name`.
    pub fn fail_next(&self, call: Call, name: &str, fault: Fault) {
        self.fail(call, name, 0, 1, fault);
    }

    /// From now on each call fails with chance `per_mille`/1000 (seeded).
    pub fn random(&self, seed: u64, per_mille: u32) {
        *self.random.lock().unwrap() = Some(Random {
            rng: SmallRng::seed_from_u64(seed),
            per_mille,
        });
    }

    /// No more faults.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
        *self.random.lock().unwrap() = None;
    }

    /// Whether any rule is still waiting to fire.
    pub fn armed(&self) -> bool {
        !self.rules.lock().unwrap().is_empty()
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Makes appends go through `write_at` (no mapped window).
    pub fn without_map(&self) {
        self.no_map.store(true, Ordering::SeqCst);
    }

    fn pick(&self, call: Call, path: &Path) -> Option<Fault> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        {
            let mut rules = self.rules.lock().unwrap();
            if let Some(i) = rules
                .iter()
                .position(|r| r.call == call && name.contains(&r.name))
            {
                let r = &mut rules[i];
                if r.skip > 0 {
                    r.skip -= 1;
                    return None;
                }
                let fault = r.fault;
                r.times = r.times.saturating_sub(1);
                if r.times == 0 {
                    rules.remove(i);
                }
                self.injected.fetch_add(1, Ordering::SeqCst);
                return Some(fault);
            }
        }
        let mut random = self.random.lock().unwrap();
        let r = random.as_mut()?;
        if r.rng.gen_range(0..1000) >= r.per_mille {
            return None;
        }
        let errno = [ENOSPC, EIO, EDQUOT][r.rng.gen_range(0..3)];
        let fault = if call == Call::Write && r.rng.gen_bool(0.5) {
            Fault::Short(errno)
        } else {
            Fault::Fail(errno)
        };
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }

    fn check(&self, call: Call, path: &Path) -> io::Result<()> {
        match self.pick(call, path) {
            None => Ok(()),
            Some(Fault::Fail(errno) | Fault::Short(errno)) => {
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
}

impl FileIo for FaultIo {
    fn create(&self, path: &Path) -> io::Result<File> {
        self.check(Call::Create, path)?;
        Real.create(path)
    }
    fn open_write(&self, path: &Path) -> io::Result<File> {
        self.check(Call::Open, path)?;
        Real.open_write(path)
    }
    fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        match self.pick(Call::Write, path) {
            None => Real.write_at(file, path, buf, offset),
            Some(Fault::Fail(errno)) => Err(io::Error::from_raw_os_error(errno)),
            Some(Fault::Short(errno)) => {
                Real.write_at(file, path, &buf[..buf.len() / 2], offset)?;
                Err(io::Error::from_raw_os_error(errno))
            }
        }
    }
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(Call::SyncData, path)?;
        Real.sync_data(file, path)
    }
    fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(Call::SyncAll, path)?;
        Real.sync_all(file, path)
    }
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.check(Call::SetLen, path)?;
        Real.set_len(file, path, len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Call::Rename, to)?;
        Real.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(Call::Remove, path)?;
        Real.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Call::SyncDir, dir)?;
        Real.sync_dir(dir)
    }
    fn fallocate(&self, file: &File, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        self.check(Call::Fallocate, path)?;
        Real.fallocate(file, path, offset, len)
    }
    fn may_map(&self, file: &File, path: &Path) -> bool {
        !self.no_map.load(Ordering::SeqCst) && Real.may_map(file, path)
    }
    fn before_map(&self, path: &Path) -> io::Result<()> {
        self.check(Call::Map, path)
    }
}

/// Page size of the power-loss model.
pub const PAGE: usize = 4096;

/// One file's content as the disk has it (`durable`, as of its last sync) and as
/// the page cache has it (`current`).
#[derive(Clone, Default)]
struct Node {
    durable: Vec<u8>,
    current: Vec<u8>,
}

/// A change to the directory, durable only once the directory is synced.
#[derive(Clone, Debug)]
enum DirOp {
    Link(String, usize),
    Rename(String, String),
    Remove(String),
}

#[derive(Clone, Default)]
struct Disk {
    nodes: Vec<Node>,
    /// Names and their nodes as of the last directory sync.
    dir_durable: BTreeMap<String, usize>,
    /// Names now.
    dir_current: BTreeMap<String, usize>,
    /// Directory changes since the last directory sync, in order.
    pending: Vec<DirOp>,
}

/// A [`FileIo`] that passes every call to the real file system and records its
/// effect on a model of a disk with a page cache: the content each file had at its
/// last sync, its content now, and the directory as of its last sync plus the
/// changes since. [`Recorder::crash_image`] makes what a power loss could leave.
///
/// The log's mapped window is refused (`may_map` is false), so every append is a
/// `write_at` the recorder sees. A mapped append changes the same page-cache pages
/// and is made durable by the same `fdatasync`, so the images cover it too.
/// Only files in one directory (the store's) are tracked.
#[derive(Default)]
pub struct Recorder {
    disk: Mutex<Disk>,
    pub images: AtomicU64,
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string()
}

impl Disk {
    fn node_of(&mut self, path: &Path) -> Option<&mut Node> {
        let i = *self.dir_current.get(&name_of(path))?;
        self.nodes.get_mut(i)
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    /// What a power loss now could leave: the directory as of its last sync plus a
    /// random prefix of the changes since (a journaling file system commits them in
    /// order), and per file its content at the last sync with any subset of the pages
    /// changed since then replaced by their new content, and its length either. A
    /// page past the synced length that did not reach the disk reads as zeros, so
    /// "a later page present, an earlier one absent" is among the images.
    pub fn crash_image(&self, rng: &mut SmallRng) -> BTreeMap<String, Vec<u8>> {
        let disk = self.disk.lock().unwrap().clone();
        self.images.fetch_add(1, Ordering::SeqCst);
        let mut dir = disk.dir_durable.clone();
        let applied = rng.gen_range(0..=disk.pending.len());
        for op in &disk.pending[..applied] {
            match op {
                DirOp::Link(name, node) => {
                    dir.insert(name.clone(), *node);
                }
                DirOp::Rename(from, to) => {
                    if let Some(n) = dir.remove(from) {
                        dir.insert(to.clone(), n);
                    }
                }
                DirOp::Remove(name) => {
                    dir.remove(name);
                }
            }
        }
        // How pages reach the disk in this image: each by a coin, a prefix of them,
        // all, or none.
        let style = rng.gen_range(0..4u8);
        dir.into_iter()
            .map(|(name, n)| {
                let node = &disk.nodes[n];
                (name, page_mix(&node.durable, &node.current, style, rng))
            })
            .collect()
    }

    /// Per file of the directory as of its last sync: (content at its last sync,
    /// content now).
    pub fn files(&self) -> BTreeMap<String, (Vec<u8>, Vec<u8>)> {
        let disk = self.disk.lock().unwrap();
        disk.dir_durable
            .iter()
            .map(|(name, &n)| {
                let node = &disk.nodes[n];
                (name.clone(), (node.durable.clone(), node.current.clone()))
            })
            .collect()
    }

    /// Writes `image` into the empty directory `dir`.
    pub fn write_image(image: &BTreeMap<String, Vec<u8>>, dir: &Path) {
        for (name, bytes) in image {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// One file after a power loss: `old` (synced) with pages that changed since
/// replaced by `new`'s according to `style`, the length either's.
fn page_mix(old: &[u8], new: &[u8], style: u8, rng: &mut SmallRng) -> Vec<u8> {
    let len = if old.len() == new.len() || rng.gen_bool(0.5) {
        new.len()
    } else {
        old.len()
    };
    let pages = len.div_ceil(PAGE);
    let cut = rng.gen_range(0..=pages);
    let mut out = vec![0u8; len];
    for p in 0..pages {
        let range = p * PAGE..((p + 1) * PAGE).min(len);
        let take_new = match style {
            0 => rng.gen_bool(0.5),
            1 => p < cut,
            2 => true,
            _ => false,
        };
        let src = if take_new { new } else { old };
        for i in range {
            out[i] = src.get(i).copied().unwrap_or(0);
        }
    }
    out
}

impl FileIo for Recorder {
    fn create(&self, path: &Path) -> io::Result<File> {
        let f = Real.create(path)?;
        let mut d = self.disk.lock().unwrap();
        match d.node_of(path) {
            Some(node) => node.current.clear(),
            None => {
                d.nodes.push(Node::default());
                let n = d.nodes.len() - 1;
                d.dir_current.insert(name_of(path), n);
                d.pending.push(DirOp::Link(name_of(path), n));
            }
        }
        Ok(f)
    }
    fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        Real.write_at(file, path, buf, offset)?;
        let mut d = self.disk.lock().unwrap();
        if let Some(node) = d.node_of(path) {
            let end = offset as usize + buf.len();
            if node.current.len() < end {
                node.current.resize(end, 0);
            }
            node.current[offset as usize..end].copy_from_slice(buf);
        }
        Ok(())
    }
    fn sync_data(&self, _file: &File, path: &Path) -> io::Result<()> {
        let mut d = self.disk.lock().unwrap();
        if let Some(node) = d.node_of(path) {
            node.durable = node.current.clone();
        }
        Ok(())
    }
    fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        self.sync_data(file, path)
    }
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        Real.set_len(file, path, len)?;
        let mut d = self.disk.lock().unwrap();
        if let Some(node) = d.node_of(path) {
            node.current.resize(len as usize, 0);
        }
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        Real.rename(from, to)?;
        let mut d = self.disk.lock().unwrap();
        if let Some(n) = d.dir_current.remove(&name_of(from)) {
            d.dir_current.insert(name_of(to), n);
            d.pending.push(DirOp::Rename(name_of(from), name_of(to)));
        }
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        Real.remove(path)?;
        let mut d = self.disk.lock().unwrap();
        if d.dir_current.remove(&name_of(path)).is_some() {
            d.pending.push(DirOp::Remove(name_of(path)));
        }
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut d = self.disk.lock().unwrap();
        d.dir_durable = d.dir_current.clone();
        d.pending.clear();
        Ok(())
    }
    fn may_map(&self, _file: &File, _path: &Path) -> bool {
        false
    }
}

/// A fresh directory per crash image, under one parent removed at the end.
pub struct Images {
    pub parent: tempfile::TempDir,
    next: u64,
}

impl Images {
    pub fn new() -> Images {
        Images {
            parent: tempfile::tempdir().unwrap(),
            next: 0,
        }
    }

    pub fn fresh(&mut self) -> PathBuf {
        self.next += 1;
        let p = self.parent.path().join(format!("image-{}", self.next));
        std::fs::create_dir(&p).unwrap();
        p
    }
}

/// Case counts from an environment variable, with a default for `make test`.
pub fn env_count(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Opens the memfile store in `dir` read-write with the real file calls (after a
/// power loss) and returns its content.
pub fn reopen_contents(dir: &Path) -> state_core::Result<Model> {
    reopen_engine_contents(dir, state_core::Engine::Memfile)
}

/// Opens the store in `dir` on `engine` with the real file calls and returns its
/// content.
pub fn reopen_engine_contents(dir: &Path, engine: state_core::Engine) -> state_core::Result<Model> {
    let store = Store::builder()
        .engine(engine)
        .flush_interval(Duration::from_secs(3600))
        .sweep_interval(None)
        .open(dir)?;
    let c = contents(&store);
    store.close()?;
    Ok(c)
}

/// A sled store builder whose libstate-made file calls (syncs of sled's files, the
/// marker) go through `io`; no background flush within a test.
pub fn sled_builder(io: Arc<dyn FileIo>, sync: bool) -> StoreBuilder {
    Store::builder()
        .engine(state_core::engine::SledConfig::default().with_file_io(io))
        .sync(sync)
        .flush_interval(Duration::from_secs(3600))
        .sweep_interval(None)
}

/// The text the OS gives for `errno` (the ones the fault layers inject).
pub fn os_text(errno: i32) -> &'static str {
    match errno {
        ENOSPC => "No space left on device",
        EIO => "Input/output error",
        EDQUOT => "Disk quota exceeded",
        _ => unreachable!(),
    }
}

/// Asserts `e` is an *I/O* error whose message names a file starting with `file`
/// and says `says`.
pub fn assert_io(e: &state_core::Error, file: &str, says: &str) {
    assert_eq!(e.kind(), state_core::ErrorKind::Io, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("/{file}")), "names {file}: {msg}");
    assert!(msg.contains(says), "says {says:?}: {msg}");
}

/// The value of `key` in bucket "b".
pub fn get(store: &Store, key: &str) -> Option<Vec<u8>> {
    store.bucket("b").unwrap().get(key).unwrap()
}

/// Sets `key` in bucket "b".
pub fn set(store: &Store, key: &str, value: &[u8]) -> state_core::Result<()> {
    store.bucket("b").unwrap().set(key, value)
}

/// A model of bucket "b" holding `pairs`.
pub fn model(pairs: &[(&str, &[u8])]) -> Model {
    let mut m = Model::new();
    for (k, v) in pairs {
        m.entry("b".into())
            .or_default()
            .insert(k.to_string(), v.to_vec());
    }
    m
}

/// An engine under the fault tests: how to build a store whose file calls go
/// through a [`FaultIo`], which engine reopens it, and the name of its log file.
pub struct Target {
    pub builder: fn(Arc<dyn FileIo>, bool) -> StoreBuilder,
    pub engine: state_core::Engine,
    pub log: &'static str,
}

pub const MEMFILE: Target = Target {
    builder,
    engine: state_core::Engine::Memfile,
    log: "log-",
};

pub const SLED: Target = Target {
    builder: sled_builder,
    engine: state_core::Engine::Sled,
    log: "db",
};

impl Target {
    pub fn open(&self, io: &Arc<FaultIo>, dir: &Path, sync: bool) -> Store {
        (self.builder)(io.clone(), sync).open(dir).unwrap()
    }

    pub fn reopen_contents(&self, dir: &Path) -> state_core::Result<Model> {
        reopen_engine_contents(dir, self.engine)
    }
}

/// In sync mode, a failed sync of the log fails the write that waited for it with an
/// *I/O* error naming the log, and every later write and flush is refused until the
/// store is reopened (a sync that succeeds after a failed one proves nothing); reads
/// go on, and the reopened store holds what was acknowledged and writes again.
/// `refused` checks more of the engine's refusal (given the store and the error of
/// the refused write).
pub fn failed_sync_refuses_writes_until_reopen(
    t: &Target,
    refused: impl Fn(&Store, &state_core::Error),
) {
    for errno in [ENOSPC, EIO, EDQUOT] {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultIo::new();
        let store = t.open(&io, dir.path(), true);
        set(&store, "a", b"value a").unwrap();
        io.fail_next(Call::SyncData, t.log, Fault::Fail(errno));
        let e = set(&store, "b", b"value b").unwrap_err();
        assert_io(&e, t.log, os_text(errno));
        assert!(!io.armed());
        // The fault is gone, but what the failed sync covered may be lost and a sync
        // that succeeds now would not prove otherwise: nothing is reported durable
        // again until the store is reopened.
        let e = set(&store, "c", b"value c").unwrap_err();
        assert_io(&e, t.log, "until it is reopened");
        refused(&store, &e);
        let e = store.flush().unwrap_err();
        assert_io(&e, t.log, "until it is reopened");
        assert_eq!(get(&store, "a").unwrap(), b"value a", "reads go on");
        assert_eq!(get(&store, "c"), None);
        let _ = store.close();
        let after = t.reopen_contents(dir.path()).unwrap();
        // "b" returned an error: it may or may not be there; "c" was refused.
        let without_b = model(&[("a", b"value a")]);
        let with_b = model(&[("a", b"value a"), ("b", b"value b")]);
        assert!(after == without_b || after == with_b, "{after:?}");
        // Reopened, the store writes and syncs again.
        let store = t.open(&io, dir.path(), true);
        set(&store, "d", b"value d").unwrap();
        store.close().unwrap();
        assert_eq!(
            t.reopen_contents(dir.path()).unwrap()["b"]["d"],
            b"value d".to_vec()
        );
    }
}

/// A failed write of the store's marker (each of its file calls in turn) fails that
/// checkpoint with an *I/O* error naming the marker; the store then opens with
/// everything (the marker keeps its older generation, which the engine's is not
/// below).
pub fn failed_marker_write_fails_only_that_checkpoint(t: &Target) {
    for call in [Call::Create, Call::Write, Call::SyncData, Call::Rename] {
        let dir = tempfile::tempdir().unwrap();
        let io = FaultIo::new();
        let store = t.open(&io, dir.path(), false);
        set(&store, "a", b"value a").unwrap();
        // Closing checkpoints: the engine syncs, then the marker is rewritten.
        io.fail_next(call, "libstate.meta", Fault::Fail(ENOSPC));
        let e = store.close().unwrap_err();
        assert_io(&e, "libstate.meta", os_text(ENOSPC));
        let store = t.open(&io, dir.path(), false);
        set(&store, "b", b"value b").unwrap();
        store.close().unwrap();
        assert_eq!(
            t.reopen_contents(dir.path()).unwrap(),
            model(&[("a", b"value a"), ("b", b"value b")]),
            "{call:?}"
        );
    }
}
