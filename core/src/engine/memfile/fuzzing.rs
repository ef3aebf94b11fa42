//! The memfile snapshot reader and writer reached without a store, for the fuzz
//! target `memfile_snapshot` (fuzz/) and its corpus replay test. Not a stable API:
//! re-exported as `state_core::fuzzing`.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::RwLock;

use super::format::{self, FileHeader};
use super::snapshot;
use super::state::State;
use crate::error::Result;

/// One entry: key and value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// What a snapshot file holds: its header and, per bucket, the entries (key, value)
/// in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The generation in the file header.
    pub gen: u64,
    /// The sequence number of the first record of the log that follows it.
    pub next_seq: u64,
    /// Entries by bucket.
    pub buckets: BTreeMap<String, Vec<KeyValue>>,
}

/// Reads and checks the snapshot at `path`, expected to be generation `gen`, as
/// opening a store does. Any defect is *corrupt* (or *I/O* if the file cannot be read).
pub fn read_snapshot(path: &Path, gen: u64) -> Result<Snapshot> {
    let loaded = snapshot::read(path, gen)?;
    let buckets = loaded
        .buckets
        .into_iter()
        .map(|(name, entries)| {
            let entries = entries
                .iter()
                .map(|e| (e.key().to_vec(), e.value().to_vec()))
                .collect();
            (String::from(name), entries)
        })
        .collect();
    Ok(Snapshot {
        gen: loaded.header.gen,
        next_seq: loaded.header.next_seq,
        buckets,
    })
}

/// Writes a snapshot of `buckets` to `path` (created or truncated) as compaction
/// does. Buckets without entries are not written, as in a store.
///
/// # Errors
/// A bucket name, key or value too long for the format, and I/O errors.
pub fn write_snapshot(
    path: &Path,
    gen: u64,
    next_seq: u64,
    buckets: &BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
) -> Result<()> {
    let mut state = State::default();
    let mut encoded = Vec::new();
    for (name, entries) in buckets {
        for (k, v) in entries {
            encoded.clear();
            let range = format::put_entry(&mut encoded, k, v)?;
            state.put_encoded(name, &encoded[range]);
        }
    }
    snapshot::write(
        &crate::fileio::Io::real(),
        &RwLock::new(state),
        path,
        FileHeader { gen, next_seq },
    )?;
    Ok(())
}

/// The bytes of a snapshot file with header (`gen`, `next_seq`) whose frames hold
/// `payloads`, each sealed with valid checksums, so that a fuzzer reaches the payload
/// decoder past the checksums it cannot forge.
///
/// # Errors
/// A payload of 4 GiB or more.
pub fn snapshot_file(gen: u64, next_seq: u64, payloads: &[&[u8]]) -> Result<Vec<u8>> {
    let mut out =
        format::encode_file_header(format::SNAPSHOT_MAGIC, FileHeader { gen, next_seq }).to_vec();
    for p in payloads {
        let start = out.len();
        out.extend_from_slice(&[0u8; format::FRAME_HEADER_LEN]);
        out.extend_from_slice(p);
        format::seal_frame(&mut out, start)?;
    }
    Ok(out)
}
