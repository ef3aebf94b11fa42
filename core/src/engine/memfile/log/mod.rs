//! The append-only log: one frame per `write` / `remove_bucket` call, and its replay.
//!
//! [`append`] puts records into the current file (through [`mmap`]'s mapped window on
//! Linux), [`codec`] turns calls into payloads and back, [`replay`] reads a file back.
//!
//! A log record's payload is `seq:u64 unsynced:varint kind:u8 body` (format 3; format 2
//! has no `unsynced`). Sequence numbers run on across log files without gaps, which is
//! how a lost tail of one log (power loss before a sync) is told apart from a complete
//! history when a later log exists. `seq - unsynced` is the number of records synced
//! before this one was written ([`Head`]), which is how damage in synced data is told
//! apart from an unsynced tail whose pages reached the disk out of order.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::files::{self, FileName};
use super::format::{self, FileHeader, LOG_MAGIC};
use crate::error::{Error, Result};
use crate::fileio::Io;

/// An open log file.
pub(super) struct LogFile {
    pub gen: u64,
    pub path: PathBuf,
    pub file: File,
    /// How the file is written and synced.
    pub io: Io,
}

impl LogFile {
    /// Creates log `gen` durably: written as a temporary file, synced, renamed into
    /// place, and the directory synced, so a log file that exists always has a
    /// complete header.
    pub(super) fn create(io: &Io, dir: &Path, gen: u64) -> Result<LogFile> {
        let path = dir.join(FileName::Log(gen).to_string());
        let tmp = dir.join(FileName::LogTmp(gen).to_string());
        let file = files::create_new(io, &tmp)?;
        let header = format::encode_file_header(LOG_MAGIC, FileHeader { gen, next_seq: 0 });
        io.write_at(&file, &tmp, &header, 0)
            .map_err(|e| Error::io(&tmp, e))?;
        io.sync_all(&file, &tmp).map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        io.rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        files::sync_dir(io, dir)?;
        LogFile::open_for_append(io, &path, gen)
    }

    /// Opens an existing log for appending (records are written at explicit
    /// offsets, see [`Appender`]).
    pub(super) fn open_for_append(io: &Io, path: &Path, gen: u64) -> Result<LogFile> {
        // Read access too: a shared writable mapping needs a file opened read-write.
        let file = io.open_write(path).map_err(|e| Error::io(path, e))?;
        Ok(LogFile {
            gen,
            path: path.to_path_buf(),
            file,
            io: io.clone(),
        })
    }

    /// fdatasync: the appended records and the file's new length reach the disk.
    pub(super) fn sync(&self) -> Result<()> {
        self.io
            .sync_data(&self.file, &self.path)
            .map_err(|e| Error::io(&self.path, e))
    }
}

mod append;
mod codec;
#[cfg(target_os = "linux")]
mod mmap;
mod replay;

pub(super) use self::append::Appender;
#[cfg(target_os = "linux")]
pub(super) use self::append::CHUNK;
pub(super) use self::codec::{encode_batch, encode_remove_bucket, Head, LogOp};
pub(super) use self::replay::replay;

/// Cuts a log back to `len` bytes and syncs it (dropping a torn tail).
pub(super) fn truncate(io: &Io, path: &Path, len: u64) -> Result<()> {
    let f = io.open_write(path).map_err(|e| Error::io(path, e))?;
    io.set_len(&f, path, len).map_err(|e| Error::io(path, e))?;
    io.sync_all(&f, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    use super::mmap as mapped;
    use super::*;
    use crate::engine::memfile::format::{
        FILE_HEADER_LEN, FRAME_HEADER_LEN, OP_DELETE_SAME_BUCKET,
    };
    use crate::engine::WriteOp;
    use codec::decode_record;
    use replay::Replayed;

    /// A sealed frame: one put of `key` with a value of `len` bytes.
    fn frame(seq: u64, key: &str, len: usize) -> Vec<u8> {
        let value = vec![(seq % 251) as u8 + 1; len];
        let ops = [WriteOp::Put {
            bucket: "b",
            key: key.as_bytes(),
            value: &value,
        }];
        let mut buf = vec![0u8; FRAME_HEADER_LEN];
        encode_batch(&mut buf, seq, &ops, &mut Vec::new()).unwrap();
        format::seal_frame(&mut buf, 0).unwrap();
        buf
    }

    /// Replays the log; returns (key, value length) per put, and how it ended.
    fn replayed(path: &Path) -> (Vec<(String, usize)>, Replayed) {
        let mut puts = Vec::new();
        let (r, gap) = replay(path, 1, Some(0), |op| {
            if let LogOp::Put { entry, .. } = op {
                let k = usize::from(u16::from_le_bytes([entry[0], entry[1]]));
                let key = String::from_utf8(entry[2..2 + k].to_vec()).unwrap();
                puts.push((key, entry.len() - 2 - k));
            }
        })
        .unwrap();
        assert_eq!(gap, None);
        (puts, r)
    }

    #[test]
    fn appends_of_every_size_read_back_in_order_across_chunks() {
        appends_read_back(Appender::default(), cfg!(target_os = "linux"));
    }

    /// Where the mapping is not used (another file system, or after it failed), every
    /// record is written with `pwrite` and nothing is preallocated.
    #[cfg(target_os = "linux")]
    #[test]
    fn plain_appends_read_back_without_preallocation() {
        let plain = Appender::plain();
        appends_read_back(plain, false);
    }

    fn appends_read_back(mut app: Appender, preallocates: bool) {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::create(&Io::real(), dir.path(), 1).unwrap();
        let mut len = FILE_HEADER_LEN as u64;
        let mut want = Vec::new();
        // Small records (copied into the mapping), records over the mapping's size
        // limit, and records that straddle a chunk boundary (written with pwrite),
        // through several chunks.
        let sizes = [100usize, 3, 20_000, 700, 5000, 17_000, 1, 300_000, 90];
        for seq in 0..200u64 {
            let size = sizes[seq as usize % sizes.len()];
            let key = format!("k{seq}");
            let f = frame(seq, &key, size);
            app.append(&log, len, &f).unwrap();
            len += f.len() as u64;
            want.push((key, size));
        }
        let file_len = std::fs::metadata(&log.path).unwrap().len();
        if preallocates && mapped::suits(&log.file) {
            assert_eq!(file_len % CHUNK_FOR_TESTS, 0, "preallocated in chunks");
            assert!(file_len > len);
        } else if !preallocates {
            assert_eq!(file_len, len);
        }
        // Unfinished (a crash): the zero tail reads as a torn end after the records.
        let (puts, r) = replayed(&log.path);
        assert_eq!(puts, want);
        assert_eq!(r.good_len, len);
        assert_eq!(r.torn.is_some(), file_len > len);
        // Finished: cut back to the records, which then end the file cleanly.
        app.cut_back(&log, len).unwrap();
        assert_eq!(std::fs::metadata(&log.path).unwrap().len(), len);
        let (puts, r) = replayed(&log.path);
        assert_eq!(puts, want);
        assert_eq!((r.good_len, r.torn), (len, None));
        // Appending goes on after a cut-back.
        let f = frame(200, "last", 10);
        app.append(&log, len, &f).unwrap();
        assert_eq!(
            replayed(&log.path).0.last(),
            Some(&("last".to_string(), 10))
        );
    }

    #[cfg(target_os = "linux")]
    const CHUNK_FOR_TESTS: u64 = CHUNK;
    #[cfg(not(target_os = "linux"))]
    const CHUNK_FOR_TESTS: u64 = 1;
    #[cfg(not(target_os = "linux"))]
    mod mapped {
        pub(super) fn suits(_: &std::fs::File) -> bool {
            false
        }
    }

    #[test]
    fn batches_name_a_bucket_only_when_it_changes() {
        let big = vec![7u8; 300];
        let ops = [
            WriteOp::Put {
                bucket: "alpha",
                key: b"k1",
                value: b"one",
            },
            WriteOp::Delete {
                bucket: "alpha",
                key: b"k2",
            },
            WriteOp::Put {
                bucket: "beta",
                key: b"k3",
                value: &big,
            },
            WriteOp::Put {
                bucket: "alpha",
                key: b"k4",
                value: b"",
            },
            WriteOp::Put {
                bucket: "alpha",
                key: b"k5",
                value: b"five",
            },
        ];
        let mut buf = Vec::new();
        let mut entries = Vec::new();
        encode_batch(&mut buf, 42, &ops, &mut entries).unwrap();
        // "alpha" is written twice (ops 1 and 4), "beta" once.
        let names = |n: &[u8]| buf.windows(n.len()).filter(|w| *w == n).count();
        assert_eq!((names(b"alpha"), names(b"beta")), (2, 1));
        assert_eq!(entries.len(), 4);

        let mut got = Vec::new();
        let seq = decode_record(&buf, Path::new("x"), |op| {
            got.push(match op {
                LogOp::Put { bucket, entry } => {
                    let e = crate::engine::memfile::state::Entry::from_encoded(entry);
                    (
                        bucket.to_string(),
                        e.key().to_vec(),
                        Some(e.value().to_vec()),
                    )
                }
                LogOp::Delete { bucket, key } => (bucket.to_string(), key.to_vec(), None),
                LogOp::RemoveBucket { .. } => unreachable!(),
            });
        })
        .unwrap();
        assert_eq!(seq, 42);
        let want: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = ops
            .iter()
            .map(|op| match *op {
                WriteOp::Put { bucket, key, value } => {
                    (bucket.to_string(), key.to_vec(), Some(value.to_vec()))
                }
                WriteOp::Delete { bucket, key } => (bucket.to_string(), key.to_vec(), None),
            })
            .collect();
        assert_eq!(got, want);
    }

    /// Writes a log of `frames` with a header of format `version`.
    fn log_of(dir: &Path, version: u32, frames: &[Vec<u8>]) -> PathBuf {
        let path = dir.join(FileName::Log(1).to_string());
        let mut bytes = format::encode_file_header(
            LOG_MAGIC,
            FileHeader {
                gen: 1,
                next_seq: 0,
            },
        )
        .to_vec();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32fast::hash(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        for f in frames {
            bytes.extend_from_slice(f);
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A record claiming `synced`, as version 3 writes it, or (`v2`) without the claim.
    fn claiming(seq: u64, synced: u64, v2: bool) -> Vec<u8> {
        let value = [b'v'; 40];
        let ops = [WriteOp::Put {
            bucket: "b",
            key: b"k",
            value: &value,
        }];
        let mut buf = vec![0u8; FRAME_HEADER_LEN];
        encode_batch(&mut buf, Head { seq, synced }, &ops, &mut Vec::new()).unwrap();
        if v2 {
            // The claim is one varint byte after the sequence number.
            buf.remove(FRAME_HEADER_LEN + 8);
        }
        format::seal_frame(&mut buf, 0).unwrap();
        buf
    }

    /// Damage with an intact record after it: *corrupt* if that record says the
    /// damaged one was synced (or in a version-2 log, which has no such claims),
    /// a torn tail otherwise (an unsynced tail written back out of order).
    #[test]
    fn damage_before_data_is_torn_unless_a_later_record_proves_it_synced() {
        let dir = tempfile::tempdir().unwrap();
        for (version, later_claim, corrupt) in [(3, 1, false), (3, 2, true), (2, 0, true)] {
            let v2 = version == 2;
            let mut damaged = claiming(1, 1, v2);
            let n = damaged.len();
            damaged[n - 3] ^= 0xff;
            let frames = [claiming(0, 0, v2), damaged, claiming(2, later_claim, v2)];
            let path = log_of(dir.path(), version, &frames);
            let r = replay(&path, 1, Some(0), |_| {});
            if corrupt {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
            } else {
                let (r, _) = r.unwrap();
                assert_eq!(r.records, 1);
                assert_eq!(r.good_len, (FILE_HEADER_LEN + frames[0].len()) as u64);
                assert!(r.torn.is_some());
            }
            // Undamaged, every version reads all three.
            let whole = [frames[0].clone(), claiming(1, 1, v2), frames[2].clone()];
            let (r, _) = replay(&log_of(dir.path(), version, &whole), 1, Some(0), |_| {}).unwrap();
            assert_eq!((r.records, r.proven), (3, if v2 { 0 } else { later_claim }));
        }
    }

    #[test]
    fn a_first_op_without_a_bucket_is_corrupt() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&5u64.to_le_bytes());
        buf.push(format::KIND_BATCH);
        buf.extend_from_slice(&1u32.to_le_bytes());
        buf.push(OP_DELETE_SAME_BUCKET);
        format::put_key(&mut buf, b"k").unwrap();
        let e = decode_record(&buf, Path::new("x"), |_| {}).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
    }

    /// An operation for the property tests: (bucket index, key, value or delete).
    type OpSpec = (usize, Vec<u8>, Option<Vec<u8>>);

    fn op_specs() -> impl proptest::strategy::Strategy<Value = Vec<OpSpec>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            (
                0usize..3,
                proptest::collection::vec(any::<u8>(), 1..12),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            ),
            1..20,
        )
    }

    const BUCKETS: [&str; 3] = ["a", "bucket", "c"];

    fn ops_of(specs: &[OpSpec]) -> Vec<WriteOp<'_>> {
        specs
            .iter()
            .map(|(b, key, value)| match value {
                Some(value) => WriteOp::Put {
                    bucket: BUCKETS[*b],
                    key,
                    value,
                },
                None => WriteOp::Delete {
                    bucket: BUCKETS[*b],
                    key,
                },
            })
            .collect()
    }

    /// A decoded operation: bucket, key, value (none for a delete).
    type Decoded = (String, Vec<u8>, Option<Vec<u8>>);

    /// Decodes a payload into one [`Decoded`] per operation.
    fn decoded(payload: &[u8]) -> Result<Vec<Decoded>> {
        let mut out = Vec::new();
        decode_record(payload, Path::new("x"), |op| match op {
            LogOp::Put { bucket, entry } => {
                let e = crate::engine::memfile::state::Entry::from_encoded(entry);
                out.push((
                    bucket.to_string(),
                    e.key().to_vec(),
                    Some(e.value().to_vec()),
                ));
            }
            LogOp::Delete { bucket, key } => out.push((bucket.to_string(), key.to_vec(), None)),
            LogOp::RemoveBucket { bucket } => out.push((bucket.to_string(), Vec::new(), None)),
        })?;
        Ok(out)
    }

    proptest::proptest! {
        /// Any batch decodes back to itself, whichever buckets its ops name in turn.
        #[test]
        fn batches_round_trip(specs in op_specs(), seq in proptest::prelude::any::<u64>()) {
            let ops = ops_of(&specs);
            let mut buf = Vec::new();
            let mut entries = Vec::new();
            encode_batch(&mut buf, seq, &ops, &mut entries).unwrap();
            let want: Vec<Decoded> = specs
                .iter()
                .map(|(b, k, v)| (BUCKETS[*b].to_string(), k.clone(), v.clone()))
                .collect();
            proptest::prop_assert_eq!(decoded(&buf).unwrap(), want);
            proptest::prop_assert_eq!(entries.len(), specs.iter().filter(|s| s.2.is_some()).count());
        }

        /// A damaged payload (bytes changed, cut short or extended; the frame CRC
        /// would catch this on disk, the decoder must not rely on it) decodes or is
        /// *corrupt*, never a panic or an entry read out of bounds.
        #[test]
        fn damaged_batches_decode_or_are_corrupt(
            specs in op_specs(),
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..4),
            cut in proptest::prelude::any::<usize>(),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
        ) {
            let ops = ops_of(&specs);
            let mut buf = Vec::new();
            encode_batch(&mut buf, 1, &ops, &mut Vec::new()).unwrap();
            for (at, x) in flips {
                let at = at % buf.len();
                buf[at] ^= x;
            }
            buf.truncate(cut % (buf.len() + 1));
            buf.extend_from_slice(&tail);
            if let Err(e) = decoded(&buf) {
                proptest::prop_assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
            }
        }

        /// Arbitrary bytes as a payload: decoded or *corrupt*, never a panic.
        #[test]
        fn arbitrary_payloads_decode_or_are_corrupt(
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            if let Err(e) = decoded(&payload) {
                proptest::prop_assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
            }
        }
    }
}
