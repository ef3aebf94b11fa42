//! An engine defined outside `state-core`, run through the whole conformance suite
//! by the public seam alone: `EngineConfig::Custom` with an `EngineFactory`.
//!
//! The engine is deliberately small: one `BTreeMap` per bucket in memory, written
//! whole to one file on every `sync` (temp file, fsync, rename, fsync of the
//! directory), and an exclusive `flock` on a lock file while open. That is all the
//! suite needs to see the behaviour libstate promises.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use state_core::engine::{EngineFactory, StorageEngine, StoreContext, Visit, WriteOp};
use state_core::{EngineConfig, Error, Result};

const DATA_FILE: &str = "btree.data";
const LOCK_FILE: &str = "btree.lock";
/// Entries copied out per read-lock acquisition in `scan`: visitors run without the
/// lock held, so they may read the engine again and writers are never blocked by
/// them.
const SCAN_CHUNK: usize = 256;

type Buckets = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug)]
struct BTreeFactory;

pub fn btree() -> EngineConfig {
    EngineConfig::Custom(Arc::new(BTreeFactory))
}

impl EngineFactory for BTreeFactory {
    fn name(&self) -> &str {
        "btree-test"
    }

    fn open(&self, dir: &Path, _store: &StoreContext) -> Result<Box<dyn StorageEngine>> {
        Ok(Box::new(BTreeEngine::open(dir)?))
    }
}

struct BTreeEngine {
    dir: PathBuf,
    data: RwLock<Buckets>,
    /// Serializes `sync`s: one snapshot file written at a time.
    syncing: Mutex<()>,
    /// Held for the engine's lifetime: the exclusive `flock` on the lock file.
    _lock: File,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, detail: &str) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        detail: format!("{detail}; its files were left untouched"),
    }
}

impl BTreeEngine {
    fn open(dir: &Path) -> Result<BTreeEngine> {
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let data = load(&dir.join(DATA_FILE))?;
        Ok(BTreeEngine {
            dir: dir.to_path_buf(),
            data: RwLock::new(data),
            syncing: Mutex::new(()),
            _lock: lock,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Buckets> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_guard(&self) -> std::sync::RwLockWriteGuard<'_, Buckets> {
        self.data.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the data file: records `u32 len, bytes` for bucket, key and value in turn.
fn load(path: &Path) -> Result<Buckets> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Buckets::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut rest = &bytes[..];
    let next = |rest: &mut &[u8]| -> Result<Vec<u8>> {
        let mut len = [0u8; 4];
        rest.read_exact(&mut len)
            .map_err(|_| corrupt(path, "truncated length"))?;
        let len = u32::from_be_bytes(len) as usize;
        let mut out = vec![0u8; len];
        rest.read_exact(&mut out)
            .map_err(|_| corrupt(path, "truncated field"))?;
        Ok(out)
    };
    let mut data = Buckets::new();
    while !rest.is_empty() {
        let bucket = String::from_utf8(next(&mut rest)?)
            .map_err(|_| corrupt(path, "bucket name is not UTF-8"))?;
        let key = next(&mut rest)?;
        let value = next(&mut rest)?;
        data.entry(bucket).or_default().insert(key, value);
    }
    Ok(data)
}

fn put_field(out: &mut Vec<u8>, field: &[u8]) -> Result<()> {
    let len = u32::try_from(field.len()).map_err(|_| Error::TooLarge("field".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(field);
    Ok(())
}

impl StorageEngine for BTreeEngine {
    fn get(&self, bucket: &str, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let value = self.read().get(bucket).and_then(|b| b.get(key)).cloned();
        match value {
            Some(v) => {
                visit(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn write(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        let mut data = self.write_guard();
        for op in ops {
            match *op {
                WriteOp::Put { bucket, key, value } => {
                    data.entry(bucket.to_string())
                        .or_default()
                        .insert(key.to_vec(), value.to_vec());
                }
                WriteOp::Delete { bucket, key } => {
                    if let Some(b) = data.get_mut(bucket) {
                        b.remove(key);
                        if b.is_empty() {
                            data.remove(bucket);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()> {
        let mut resume: Option<Vec<u8>> = None;
        loop {
            let chunk: Vec<(Vec<u8>, Vec<u8>)> = {
                let data = self.read();
                let Some(map) = data.get(bucket) else {
                    return Ok(());
                };
                let (lo, hi) = match (&resume, reverse) {
                    (None, _) => (lower, upper),
                    (Some(k), false) => (Bound::Excluded(k.as_slice()), upper),
                    (Some(k), true) => (lower, Bound::Excluded(k.as_slice())),
                };
                if range_is_empty(lo, hi) {
                    return Ok(());
                }
                let range = map.range::<[u8], _>((lo, hi));
                let copy = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
                if reverse {
                    range.rev().take(SCAN_CHUNK).map(copy).collect()
                } else {
                    range.take(SCAN_CHUNK).map(copy).collect()
                }
            };
            for (k, v) in &chunk {
                if visit(k, v) == Visit::Stop {
                    return Ok(());
                }
            }
            if chunk.len() < SCAN_CHUNK {
                return Ok(());
            }
            resume = chunk.into_iter().last().map(|(k, _)| k);
        }
    }

    fn count(&self, bucket: &str) -> Result<u64> {
        Ok(self.read().get(bucket).map_or(0, |b| b.len() as u64))
    }

    fn bucket_names(&self) -> Result<Vec<String>> {
        Ok(self.read().keys().cloned().collect())
    }

    fn remove_bucket(&self, bucket: &str) -> Result<bool> {
        Ok(self.write_guard().remove(bucket).is_some())
    }

    fn sync(&self) -> Result<()> {
        let _one = self.syncing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        {
            let data = self.read();
            for (bucket, map) in data.iter() {
                for (k, v) in map {
                    put_field(&mut out, bucket.as_bytes())?;
                    put_field(&mut out, k)?;
                    put_field(&mut out, v)?;
                }
            }
        }
        let path = self.dir.join(DATA_FILE);
        let tmp = self.dir.join(format!("{DATA_FILE}.tmp"));
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&out).map_err(io_err(&tmp))?;
        f.sync_data().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }

    fn disk_size(&self) -> Result<u64> {
        let path = self.dir.join(DATA_FILE);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn lock_file(&self) -> Option<PathBuf> {
        Some(self.dir.join(LOCK_FILE))
    }
}

/// Whether the bounds admit no key (`BTreeMap::range` panics on some such bounds).
fn range_is_empty(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l), Bound::Excluded(h))
        | (Bound::Excluded(l), Bound::Included(h))
        | (Bound::Excluded(l), Bound::Excluded(h)) => l >= h,
        _ => false,
    }
}
