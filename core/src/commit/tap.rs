//! Where the write path meets a running online backup (`crate::backup`): while one
//! runs, every write first records the value each key it touches had before (its
//! pre-image), once per key, so the backup's copy stays point-in-time. The commit
//! point runs every engine write through [`Tap::run`], under the write lock.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::engine::{BucketHint, StorageEngine, Visit, WriteOp};
use crate::error::Result;

/// One bucket's pre-images: key -> its value at T0, `None` if it did not exist.
type PreImages = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// Pre-images of the keys written since a backup began, by bucket.
#[derive(Default)]
pub(crate) struct Capture {
    pub(crate) pre: Mutex<HashMap<String, PreImages>>,
}

impl Capture {
    /// Records the current value of each key `ops` touches that was not captured yet.
    fn before_write(&self, engine: &dyn StorageEngine, ops: &[WriteOp<'_>]) -> Result<()> {
        let mut pre = self.pre.lock();
        for op in ops {
            let (WriteOp::Put { bucket, key, .. } | WriteOp::Delete { bucket, key }) = *op;
            let keys = match pre.get_mut(bucket) {
                Some(keys) => keys,
                None => pre.entry(bucket.to_string()).or_default(),
            };
            if keys.contains_key(key) {
                continue;
            }
            let mut old = None;
            engine.get(bucket, key, &mut |v| old = Some(v.to_vec()))?;
            keys.insert(key.to_vec(), old);
        }
        Ok(())
    }

    /// Records every record of `bucket` not captured yet, before it is removed.
    fn before_remove(&self, engine: &dyn StorageEngine, bucket: &str) -> Result<()> {
        let mut pre = self.pre.lock();
        let keys = pre.entry(bucket.to_string()).or_default();
        engine.scan(
            bucket,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, v| {
                keys.entry(k.to_vec()).or_insert_with(|| Some(v.to_vec()));
                Visit::Continue
            },
        )
    }
}

/// Where the store's write path meets a running backup: holds the [`Capture`] while
/// one runs. Read and changed only under the store's write lock.
#[derive(Default)]
pub(crate) struct Tap {
    capture: Mutex<Option<Arc<Capture>>>,
    /// Whether `capture` holds one, so a write without a backup running (nearly
    /// every write) takes no lock here. Set and read under the store's write lock,
    /// which orders them; the atomic only makes the flag shareable.
    on: AtomicBool,
}

impl Tap {
    /// Installs `capture`, unless one is installed already (then `false`). Called
    /// with the store's write lock held.
    pub(crate) fn install(&self, capture: Arc<Capture>) -> bool {
        let mut slot = self.capture.lock();
        if slot.is_some() {
            return false;
        }
        *slot = Some(capture);
        self.on.store(true, Ordering::Relaxed);
        true
    }

    /// Removes the installed capture. Called with the store's write lock held.
    pub(crate) fn remove(&self) {
        *self.capture.lock() = None;
        self.on.store(false, Ordering::Relaxed);
    }

    /// Runs a write `f` on `engine`, through the running backup's capture if there
    /// is one. Called with the store's write lock held.
    #[inline]
    pub(crate) fn run<T>(
        &self,
        engine: &dyn StorageEngine,
        f: impl FnOnce(&dyn StorageEngine) -> Result<T>,
    ) -> Result<T> {
        if !self.on.load(Ordering::Relaxed) {
            return f(engine);
        }
        let capture = self.capture.lock().clone();
        match capture {
            None => f(engine),
            Some(capture) => f(&Tapped {
                inner: engine,
                capture: &capture,
            }),
        }
    }
}

/// An engine whose writes first capture what they overwrite.
struct Tapped<'a> {
    inner: &'a dyn StorageEngine,
    capture: &'a Capture,
}

impl StorageEngine for Tapped<'_> {
    fn get(&self, bucket: &str, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.inner.get(bucket, key, visit)
    }

    fn get_hinted(
        &self,
        bucket: &str,
        hint: &BucketHint,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]),
    ) -> Result<bool> {
        self.inner.get_hinted(bucket, hint, key, visit)
    }

    fn get_many(
        &self,
        bucket: &str,
        keys: &[&[u8]],
        visit: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<()> {
        self.inner.get_many(bucket, keys, visit)
    }

    fn write(&self, ops: &[WriteOp<'_>]) -> Result<()> {
        self.capture.before_write(self.inner, ops)?;
        self.inner.write(ops)
    }

    fn write_one(&self, op: &WriteOp<'_>) -> Result<Option<bool>> {
        self.capture
            .before_write(self.inner, std::slice::from_ref(op))?;
        self.inner.write_one(op)
    }

    fn reports_prior(&self) -> bool {
        self.inner.reports_prior()
    }

    fn scan(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()> {
        self.inner.scan(bucket, lower, upper, reverse, visit)
    }

    fn count(&self, bucket: &str) -> Result<u64> {
        self.inner.count(bucket)
    }

    fn bucket_names(&self) -> Result<Vec<String>> {
        self.inner.bucket_names()
    }

    fn remove_bucket(&self, bucket: &str) -> Result<bool> {
        self.capture.before_remove(self.inner, bucket)?;
        self.inner.remove_bucket(bucket)
    }

    fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    fn disk_size(&self) -> Result<u64> {
        self.inner.disk_size()
    }

    fn version(&self, bucket: &str) -> Result<Option<u64>> {
        self.inner.version(bucket)
    }

    fn write_if_unchanged(&self, bucket: &str, version: u64, ops: &[WriteOp<'_>]) -> Result<bool> {
        self.capture.before_write(self.inner, ops)?;
        self.inner.write_if_unchanged(bucket, version, ops)
    }
}
