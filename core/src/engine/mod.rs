//! The storage engine trait: the one seam between libstate's behaviour and the bytes
//! on disk.
//!
//! An engine is an ordered byte-key map per bucket with atomic batches. Everything
//! else (validation, expiry, cursors, the service, durability scheduling) lives above
//! this trait and is written once, so every engine behaves identically and one
//! conformance suite (`core/tests/conformance.rs`) runs against each.
//!
//! Values handed to an engine are already encoded by [`crate::record`]; engines treat
//! them as opaque bytes.

use std::ops::Bound;
use std::path::Path;

use crate::error::{Error, Result};

pub(crate) mod memfile;
pub(crate) mod sled;

/// One write in an atomic batch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteOp<'a> {
    /// Insert or overwrite `key` in `bucket`.
    Put {
        bucket: &'a str,
        key: &'a [u8],
        value: &'a [u8],
    },
    /// Remove `key` from `bucket`; removing a missing key is not an error.
    Delete { bucket: &'a str, key: &'a [u8] },
}

/// What a scan visitor tells the engine after each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
    Continue,
    Stop,
}

/// The operations every engine implements. All methods may be called from many
/// threads at once; the store serializes writes (see `Shared::write_lock`), so an
/// engine sees at most one `write`/`remove_bucket` at a time.
pub(crate) trait StorageEngine: Send + Sync {
    /// Called once after opening, when the store has accepted what the engine loaded
    /// (its checkpoint check passed): the engine may now change its files (repair a
    /// torn tail, remove leftovers, start background work). Until then an engine
    /// only reads, so a store refused as *corrupt* is left as it was found. Writes
    /// come only after this.
    fn finish_open(&mut self) -> Result<()> {
        Ok(())
    }

    /// The *corrupt* error for damage the store found after this engine opened its
    /// files. The default says the files were left untouched, true of an engine that
    /// changes nothing before [`StorageEngine::finish_open`].
    fn damaged(&self, path: &Path, detail: String) -> Error {
        Error::corrupt(path, detail)
    }

    /// Calls `visit` with the stored value of `key`, if present. Returns whether it was.
    fn get(&self, bucket: &str, key: &[u8], visit: &mut dyn FnMut(&[u8])) -> Result<bool>;

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

    /// Applies all `ops` atomically: after a crash either all or none are present.
    fn write(&self, ops: &[WriteOp<'_>]) -> Result<()>;

    /// Visits the entries of `bucket` with keys within the bounds, in key order
    /// (descending if `reverse`), until the visitor says stop or the range ends.
    /// The visitor must not call back into the engine.
    fn scan(
        &self,
        bucket: &str,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<()>;

    /// Number of stored entries in `bucket` (expired or not).
    fn count(&self, bucket: &str) -> Result<u64>;

    /// Names of every bucket holding at least one entry, in byte order.
    fn bucket_names(&self) -> Result<Vec<String>>;

    /// Removes a bucket and all its entries. Returns whether it held any.
    fn remove_bucket(&self, bucket: &str) -> Result<bool>;

    /// Makes every write that returned before this call durable (on stable storage).
    fn sync(&self) -> Result<()>;

    /// Bytes the store occupies on disk.
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
    /// returns, so another process can open the store at once (sled releases its
    /// lock from background threads some time after its `Db` is dropped).
    fn lock_file(&self) -> Option<std::path::PathBuf> {
        None
    }
}
