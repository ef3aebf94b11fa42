//! The append-only log: one frame per `write` / `remove_bucket` call, and its replay.
//!
//! A log record's payload is `seq:u64 kind:u8 body`. Sequence numbers run on across
//! log files without gaps, which is how a lost tail of one log (power loss before a
//! sync) is told apart from a complete history when a later log exists.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use super::files::{self, FileName};
use super::format::{
    self, Decoder, FileHeader, FrameRead, FrameReader, FILE_HEADER_LEN, KIND_BATCH,
    KIND_REMOVE_BUCKET, LOG_MAGIC, OP_DELETE, OP_PUT,
};
use crate::engine::WriteOp;
use crate::error::{Error, Result};

/// An open log file.
pub(super) struct LogFile {
    pub gen: u64,
    pub path: PathBuf,
    pub file: File,
}

impl LogFile {
    /// Creates log `gen` durably: written as a temporary file, synced, renamed into
    /// place, and the directory synced, so a log file that exists always has a
    /// complete header.
    pub(super) fn create(dir: &Path, gen: u64) -> Result<LogFile> {
        let path = dir.join(FileName::Log(gen).to_string());
        let tmp = dir.join(FileName::LogTmp(gen).to_string());
        let mut file = files::create_new(&tmp)?;
        let header = format::encode_file_header(LOG_MAGIC, FileHeader { gen, next_seq: 0 });
        file.write_all(&header).map_err(|e| Error::io(&tmp, e))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        files::sync_dir(dir)?;
        LogFile::open_for_append(&path, gen)
    }

    /// Opens an existing log for appending.
    pub(super) fn open_for_append(path: &Path, gen: u64) -> Result<LogFile> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(LogFile {
            gen,
            path: path.to_path_buf(),
            file,
        })
    }

    /// fdatasync: the appended records and the file's new length reach the disk.
    pub(super) fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Encodes one `write` call as a log payload (after the frame header the caller
/// reserved in `buf`), noting where each put's in-memory entry bytes lie.
pub(super) fn encode_batch(
    buf: &mut Vec<u8>,
    seq: u64,
    ops: &[WriteOp<'_>],
    entries: &mut Vec<std::ops::Range<usize>>,
) -> Result<()> {
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(KIND_BATCH);
    let n = u32::try_from(ops.len())
        .map_err(|_| Error::TooLarge(format!("a batch of {} operations", ops.len())))?;
    buf.extend_from_slice(&n.to_le_bytes());
    for op in ops {
        match *op {
            WriteOp::Put { bucket, key, value } => {
                buf.push(OP_PUT);
                format::put_bucket(buf, bucket)?;
                entries.push(format::put_entry(buf, key, value)?);
            }
            WriteOp::Delete { bucket, key } => {
                buf.push(OP_DELETE);
                format::put_bucket(buf, bucket)?;
                format::put_key(buf, key)?;
            }
        }
    }
    Ok(())
}

/// Encodes a bucket removal as a log payload.
pub(super) fn encode_remove_bucket(buf: &mut Vec<u8>, seq: u64, bucket: &str) -> Result<()> {
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(KIND_REMOVE_BUCKET);
    format::put_bucket(buf, bucket)
}

/// One decoded log operation, borrowing from the payload.
pub(super) enum LogOp<'a> {
    /// `entry` is the in-memory entry encoding (`key_len key value`).
    Put {
        bucket: &'a str,
        entry: &'a [u8],
    },
    Delete {
        bucket: &'a str,
        key: &'a [u8],
    },
    RemoveBucket {
        bucket: &'a str,
    },
}

/// Decodes a log payload: its sequence number, and calls `apply` for each operation.
pub(super) fn decode_record(
    payload: &[u8],
    path: &Path,
    mut apply: impl FnMut(LogOp<'_>),
) -> Result<u64> {
    let mut d = Decoder::new(payload, path);
    let seq = d.u64()?;
    match d.u8()? {
        KIND_BATCH => {
            let n = d.u32()?;
            for _ in 0..n {
                match d.u8()? {
                    OP_PUT => {
                        let bucket = d.bucket()?;
                        let entry = d.entry()?;
                        apply(LogOp::Put { bucket, entry });
                    }
                    OP_DELETE => {
                        let bucket = d.bucket()?;
                        let key = d.key()?;
                        apply(LogOp::Delete { bucket, key });
                    }
                    tag => {
                        return Err(Error::corrupt(
                            path,
                            format!("record {seq} has an unknown operation {tag}"),
                        ))
                    }
                }
            }
        }
        KIND_REMOVE_BUCKET => {
            let bucket = d.bucket()?;
            apply(LogOp::RemoveBucket { bucket });
        }
        kind => {
            return Err(Error::corrupt(
                path,
                format!("record {seq} has an unknown kind {kind}"),
            ))
        }
    }
    if !d.is_empty() {
        return Err(Error::corrupt(
            path,
            format!(
                "record {seq} has {} trailing bytes",
                payload.len() - d.pos()
            ),
        ));
    }
    Ok(seq)
}

/// How reading one log file ended.
#[derive(Debug)]
pub(super) struct Replayed {
    /// Records applied.
    pub records: u64,
    /// Sequence number of the first record, if any.
    pub first_seq: Option<u64>,
    /// Length of the good part (header plus complete records).
    pub good_len: u64,
    /// Set when the log ends in a torn record: why.
    pub torn: Option<&'static str>,
}

/// Reads log `gen` at `path`, calling `apply` for every operation of every intact
/// record. Records must carry consecutive sequence numbers starting at `expect_seq`
/// (if given; a first record with a different number is reported, not applied).
/// A damaged record with data after it is *corrupt*. Nothing is written.
pub(super) fn replay(
    path: &Path,
    gen: u64,
    expect_seq: Option<u64>,
    mut apply: impl FnMut(LogOp<'_>),
) -> Result<(Replayed, Option<u64>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = format::read_file_header(&mut reader, LOG_MAGIC, path)?;
    if header.gen != gen {
        return Err(Error::corrupt(
            path,
            format!("the header says generation {}, the name {gen}", header.gen),
        ));
    }
    let mut frames = FrameReader::new(reader, FILE_HEADER_LEN as u64, file_len);
    let mut out = Replayed {
        records: 0,
        first_seq: None,
        good_len: FILE_HEADER_LEN as u64,
        torn: None,
    };
    let mut next_seq = expect_seq;
    loop {
        let at = frames.offset();
        match frames.next().map_err(|e| Error::io(path, e))? {
            FrameRead::End => break,
            FrameRead::Torn { why } => {
                out.torn = Some(why);
                break;
            }
            FrameRead::Damaged { why } => {
                return Err(Error::corrupt(path, format!("{why} at offset {at}")));
            }
            FrameRead::Frame => {}
        }
        let payload = &frames.payload;
        let seq = payload_seq(payload, path)?;
        match next_seq {
            Some(expected) if seq != expected => {
                if out.records == 0 {
                    // Let the caller judge a gap between files.
                    return Ok((out, Some(seq)));
                }
                return Err(Error::corrupt(
                    path,
                    format!("record at offset {at} has sequence number {seq}, expected {expected}"),
                ));
            }
            _ => {}
        }
        decode_record(payload, path, &mut apply)?;
        out.first_seq.get_or_insert(seq);
        out.records += 1;
        next_seq = Some(seq + 1);
        out.good_len = frames.offset();
    }
    Ok((out, None))
}

fn payload_seq(payload: &[u8], path: &Path) -> Result<u64> {
    Decoder::new(payload, path).u64()
}

/// Cuts a log back to `len` bytes and syncs it (dropping a torn tail).
pub(super) fn truncate(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.set_len(len).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}
