//! [`Store::probe_write`]: whether the store can take a write now (a readiness
//! probe's question).

use crate::checkpoint::META_BUCKET;
use crate::engine::WriteOp;
use crate::error::Result;
use crate::store::Store;

/// The internal record a probe writes.
const PROBE_KEY: &[u8] = b"probe";

impl Store {
    /// Writes one small internal record (in libstate's metadata bucket, never seen
    /// by [`Store::bucket_names`]) the way every write goes, durability mode
    /// included: `Ok` means the store is open and takes writes. A store whose
    /// engine refuses writes after a failed sync (until it is reopened) returns
    /// that *I/O* error here too.
    ///
    /// # Errors
    /// *closed*; the engine's write or sync error; *invalid argument* when called
    /// from inside a lending callback.
    pub fn probe_write(&self) -> Result<()> {
        let shared = self.shared()?;
        let now = shared.opts.clock.now_ms().to_be_bytes();
        shared.write_internal(&[WriteOp::Put {
            bucket: META_BUCKET,
            key: PROBE_KEY,
            value: &now,
        }])
    }
}
