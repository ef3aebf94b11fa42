//! Snapshots: the whole state in one file, written by compaction and loaded on open.
//!
//! A snapshot is a file header (generation `g`, `next_seq` = sequence number of the
//! first record of `log-g`), then one frame per run of up to [`CHUNK_ENTRIES`]
//! entries of one bucket in ascending key order, then an end frame with the totals.
//! Any defect in a snapshot is *corrupt*: it is only ever renamed into place complete
//! and synced, so there is no torn snapshot to forgive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::ops::Bound;
use std::path::Path;

use parking_lot::RwLock;

use super::files;
use super::format::{
    self, Decoder, FileHeader, FrameRead, FrameReader, FILE_HEADER_LEN, FRAME_HEADER_LEN,
    KIND_BUCKET_CHUNK, KIND_END, SNAPSHOT_MAGIC,
};
use super::state::{Entry, Hasher_, State};
use crate::error::{Error, Result};
use crate::fileio::Io;

/// Entries copied per read-lock acquisition while writing a snapshot: bounds how long
/// a writer can wait for a compaction (a few microseconds).
pub(super) const CHUNK_ENTRIES: usize = 64;
/// A chunk also ends once it holds this many bytes.
const CHUNK_BYTES: usize = 1 << 20;

/// What a finished snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Totals {
    pub buckets: u64,
    pub entries: u64,
}

/// Writes the state to `tmp` and syncs it.
///
/// The state is read in chunks under short read locks while writers go on, so the
/// result is *fuzzy*: each key holds either its value at the log switch or a later
/// one. That is exact once the log that started at the switch is replayed over it,
/// because every logged operation sets a key's whole state (see
/// docs/memfile-format.md, "Compaction").
pub(super) fn write(
    fio: &Io,
    state: &RwLock<State>,
    tmp: &Path,
    header: FileHeader,
) -> Result<Totals> {
    let file = files::create_new(fio, tmp)?;
    let io = |e| Error::io(tmp, e);
    let mut out = BufWriter::with_capacity(
        1 << 20,
        Appending {
            io: fio,
            file,
            path: tmp,
            at: 0,
        },
    );
    out.write_all(&format::encode_file_header(SNAPSHOT_MAGIC, header))
        .map_err(io)?;
    let mut names: Vec<Box<str>> = state.read().buckets.keys().cloned().collect();
    names.sort_unstable();
    let mut totals = Totals {
        buckets: 0,
        entries: 0,
    };
    let mut chunk: Vec<Entry> = Vec::with_capacity(CHUNK_ENTRIES);
    let mut frame: Vec<u8> = Vec::new();
    for name in &names {
        let mut after: Option<Entry> = None;
        let mut any = false;
        loop {
            chunk.clear();
            {
                let st = state.read();
                let Some(map) = st.buckets.get(name) else {
                    break;
                };
                let lower = match &after {
                    Some(e) => Bound::Excluded(e.key()),
                    None => Bound::Unbounded,
                };
                let mut bytes = 0;
                for e in map
                    .entries_within(lower, Bound::Unbounded)
                    .into_iter()
                    .flatten()
                {
                    bytes += e.encoded().len();
                    chunk.push(e.clone());
                    if chunk.len() == CHUNK_ENTRIES || bytes >= CHUNK_BYTES {
                        break;
                    }
                }
            }
            let Some(last) = chunk.last().cloned() else {
                break;
            };
            encode_chunk(&mut frame, name, &chunk)?;
            out.write_all(&frame).map_err(io)?;
            totals.entries += chunk.len() as u64;
            any = true;
            after = Some(last);
        }
        if any {
            totals.buckets += 1;
        }
    }
    frame.clear();
    frame.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    frame.push(KIND_END);
    frame.extend_from_slice(&totals.buckets.to_le_bytes());
    frame.extend_from_slice(&totals.entries.to_le_bytes());
    format::seal_frame(&mut frame, 0)?;
    out.write_all(&frame).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    fio.sync_all(&file.file, tmp).map_err(io)?;
    Ok(totals)
}

/// A new file written front to back through [`Io::write_at`].
struct Appending<'a> {
    io: &'a Io,
    file: File,
    path: &'a Path,
    at: u64,
}

impl Write for Appending<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.io.write_at(&self.file, self.path, buf, self.at)?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encode_chunk(frame: &mut Vec<u8>, bucket: &str, chunk: &[Entry]) -> Result<()> {
    frame.clear();
    frame.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    frame.push(KIND_BUCKET_CHUNK);
    format::put_bucket(frame, bucket)?;
    frame.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    for e in chunk {
        format::put_entry(frame, e.key(), e.value())?;
    }
    format::seal_frame(frame, 0)
}

/// A loaded snapshot: per bucket, its entries in ascending key order.
pub(super) struct Loaded {
    pub header: FileHeader,
    pub buckets: HashMap<Box<str>, Vec<Entry>, Hasher_>,
}

/// Reads and checks snapshot `gen`; any defect is *corrupt* naming the file.
pub(super) fn read(path: &Path, gen: u64) -> Result<Loaded> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = format::read_file_header(&mut reader, SNAPSHOT_MAGIC, path)?.header;
    if header.gen != gen {
        return Err(Error::corrupt(
            path,
            format!("the header says generation {}, the name {gen}", header.gen),
        ));
    }
    let mut frames = FrameReader::new(reader, FILE_HEADER_LEN as u64, file_len);
    let mut buckets: HashMap<Box<str>, Vec<Entry>, Hasher_> = HashMap::default();
    let mut entries = 0u64;
    let mut last_bucket: Option<Box<str>> = None;
    loop {
        let at = frames.offset();
        match frames.next().map_err(|e| Error::io(path, e))? {
            FrameRead::Frame => {}
            FrameRead::End => {
                return Err(Error::corrupt(
                    path,
                    "the snapshot has no end marker (truncated)",
                ))
            }
            FrameRead::Torn { why } | FrameRead::Damaged { why } => {
                return Err(Error::corrupt(path, format!("{why} at offset {at}")))
            }
        }
        let mut d = Decoder::new(&frames.payload, path);
        match d.u8()? {
            KIND_BUCKET_CHUNK => {
                let name = d.bucket()?;
                let n = d.u32()?;
                // A bucket's chunks are consecutive: a name seen before, but not in
                // the previous chunk, is a defect.
                if last_bucket.as_deref() != Some(name) && buckets.contains_key(name) {
                    return Err(Error::corrupt(
                        path,
                        format!("bucket {name:?} resumes after another bucket at offset {at}"),
                    ));
                }
                let list = match buckets.get_mut(name) {
                    Some(l) => l,
                    None => buckets.entry(name.into()).or_default(),
                };
                if last_bucket.as_deref() != Some(name) {
                    last_bucket = Some(name.into());
                }
                for _ in 0..n {
                    let e = Entry::from_encoded(d.entry()?);
                    if list.last().is_some_and(|last| last.key() >= e.key()) {
                        return Err(Error::corrupt(
                            path,
                            format!("keys out of order in bucket {name:?} at offset {at}"),
                        ));
                    }
                    list.push(e);
                }
                entries += u64::from(n);
                if !d.is_empty() {
                    return Err(Error::corrupt(
                        path,
                        format!("trailing bytes at offset {at}"),
                    ));
                }
            }
            KIND_END => {
                let (nb, ne) = (d.u64()?, d.u64()?);
                if nb != buckets.len() as u64 || ne != entries || !d.is_empty() {
                    return Err(Error::corrupt(
                        path,
                        format!(
                            "the end marker says {nb} buckets and {ne} entries, the file holds {} and {entries}",
                            buckets.len()
                        ),
                    ));
                }
                if frames.offset() != file_len {
                    return Err(Error::corrupt(path, "data after the end marker"));
                }
                return Ok(Loaded { header, buckets });
            }
            kind => {
                return Err(Error::corrupt(
                    path,
                    format!("unknown frame kind {kind} at offset {at}"),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A snapshot file of generation 1 holding `frames` as payloads, each in a frame
    /// with a valid CRC (so `read` gets to decode them).
    fn file_with(frames: &[Vec<u8>]) -> tempfile::NamedTempFile {
        let mut bytes = format::encode_file_header(
            SNAPSHOT_MAGIC,
            FileHeader {
                gen: 1,
                next_seq: 0,
            },
        )
        .to_vec();
        for f in frames {
            format::push_frame(&mut bytes, f).unwrap();
        }
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    /// A valid chunk payload of `keys` (ascending) in `bucket`.
    fn chunk(bucket: &str, keys: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![KIND_BUCKET_CHUNK];
        format::put_bucket(&mut out, bucket).unwrap();
        out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        for k in keys {
            format::put_entry(&mut out, k, &[k.len() as u8; 3]).unwrap();
        }
        out
    }

    fn end(buckets: u64, entries: u64) -> Vec<u8> {
        let mut out = vec![KIND_END];
        out.extend_from_slice(&buckets.to_le_bytes());
        out.extend_from_slice(&entries.to_le_bytes());
        out
    }

    #[test]
    fn a_valid_snapshot_reads_back() {
        let keys: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let f = file_with(&[chunk("x", &keys[..2]), chunk("x", &keys[2..]), end(1, 3)]);
        let loaded = read(f.path(), 1).unwrap();
        let got: Vec<&[u8]> = loaded.buckets["x"].iter().map(Entry::key).collect();
        assert_eq!(got, [b"a", b"b", b"c"]);
        // Keys out of order across chunks: corrupt.
        let f = file_with(&[chunk("x", &keys[1..]), chunk("x", &keys[..1]), end(1, 3)]);
        let err = read(f.path(), 1).err().unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt, "{err}");
    }

    #[test]
    fn a_bucket_resuming_after_another_is_corrupt() {
        let k = |s: &[u8]| vec![s.to_vec()];
        let f = file_with(&[
            chunk("x", &k(b"a")),
            chunk("y", &k(b"a")),
            chunk("x", &k(b"b")),
            end(2, 3),
        ]);
        let err = read(f.path(), 1).err().unwrap();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("resumes"), "{err}");
        // The same chunks with each bucket's consecutive read back.
        let f = file_with(&[
            chunk("x", &k(b"a")),
            chunk("x", &k(b"b")),
            chunk("y", &k(b"a")),
            end(2, 3),
        ]);
        assert_eq!(read(f.path(), 1).unwrap().buckets.len(), 2);
    }

    proptest! {
        /// Damaged frame payloads behind valid CRCs: *corrupt* (or, by chance, a
        /// consistent snapshot), never a panic.
        #[test]
        fn damaged_payloads_read_or_are_corrupt(
            keys in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 1..6), 1..8),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            which in any::<usize>(),
            cut in any::<usize>(),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let mut frames = vec![chunk("b", &keys), end(1, keys.len() as u64)];
            let f = &mut frames[which % 2];
            for (at, x) in flips {
                let at = at % f.len();
                f[at] ^= x;
            }
            f.truncate(1 + cut % f.len());
            let file = file_with(&frames);
            if let Err(e) = read(file.path(), 1) {
                prop_assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
            }
        }

        /// Arbitrary payloads behind valid CRCs: never a panic.
        #[test]
        fn arbitrary_frames_read_or_are_corrupt(
            frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..4),
        ) {
            let file = file_with(&frames);
            if let Err(e) = read(file.path(), 1) {
                prop_assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
            }
        }
    }
}
