//! The log record codec: a `write` or `remove_bucket` call as a payload, and back.

use std::path::Path;

use crate::engine::memfile::format::{
    self, Decoder, KIND_BATCH, KIND_REMOVE_BUCKET, OP_DELETE, OP_DELETE_SAME_BUCKET, OP_PUT,
    OP_PUT_SAME_BUCKET,
};
use crate::engine::WriteOp;
use crate::error::{Error, Result};

/// The start of every log record (format version 3): its sequence number and how many
/// records before it were known durable when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::engine::memfile) struct Head {
    /// The record's sequence number.
    pub seq: u64,
    /// Every record with a smaller sequence number had been synced (`fdatasync`
    /// returned) before this one was written. Stored as `seq - synced`, a varint
    /// saturated at `u32::MAX` (which only understates the claim).
    pub synced: u64,
}

/// A record that claims nothing about what was synced before it.
impl From<u64> for Head {
    fn from(seq: u64) -> Head {
        Head { seq, synced: 0 }
    }
}

fn put_head(buf: &mut Vec<u8>, head: Head) {
    buf.extend_from_slice(&head.seq.to_le_bytes());
    let gap = head.seq.saturating_sub(head.synced);
    format::put_varint_u32(buf, u32::try_from(gap).unwrap_or(u32::MAX));
}

/// Reads a record's [`Head`]; a version-2 record has no synced count (0).
pub(in crate::engine::memfile) fn read_head(d: &mut Decoder<'_>, v3: bool) -> Result<Head> {
    let seq = d.u64()?;
    let synced = if v3 {
        seq.saturating_sub(u64::from(d.varint_u32()?))
    } else {
        0
    };
    Ok(Head { seq, synced })
}

/// Encodes one `write` call as a log payload (after the frame header the caller
/// reserved in `buf`), noting where each put's in-memory entry bytes lie.
pub(in crate::engine::memfile) fn encode_batch(
    buf: &mut Vec<u8>,
    head: impl Into<Head>,
    ops: &[WriteOp<'_>],
    entries: &mut Vec<std::ops::Range<usize>>,
) -> Result<()> {
    put_head(buf, head.into());
    buf.push(KIND_BATCH);
    let n = u32::try_from(ops.len())
        .map_err(|_| Error::TooLarge(format!("a batch of {} operations", ops.len())))?;
    buf.extend_from_slice(&n.to_le_bytes());
    let mut prev: Option<&str> = None;
    for op in ops {
        // An op in the same bucket as the one before leaves the name out.
        let mut put_tag = |bucket: &str, tag: u8, same: u8| {
            if prev == Some(bucket) {
                buf.push(same);
                Ok(())
            } else {
                buf.push(tag);
                format::put_bucket(buf, bucket)
            }
        };
        match *op {
            WriteOp::Put { bucket, key, value } => {
                put_tag(bucket, OP_PUT, OP_PUT_SAME_BUCKET)?;
                entries.push(format::put_entry(buf, key, value)?);
                prev = Some(bucket);
            }
            WriteOp::Delete { bucket, key } => {
                put_tag(bucket, OP_DELETE, OP_DELETE_SAME_BUCKET)?;
                format::put_key(buf, key)?;
                prev = Some(bucket);
            }
        }
    }
    Ok(())
}

/// Encodes a bucket removal as a log payload.
pub(in crate::engine::memfile) fn encode_remove_bucket(
    buf: &mut Vec<u8>,
    head: impl Into<Head>,
    bucket: &str,
) -> Result<()> {
    put_head(buf, head.into());
    buf.push(KIND_REMOVE_BUCKET);
    format::put_bucket(buf, bucket)
}

/// One decoded log operation, borrowing from the payload.
pub(in crate::engine::memfile) enum LogOp<'a> {
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

/// Decodes a current (version 3) log payload: its sequence number, and calls `apply`
/// for each operation.
#[cfg(test)]
pub(in crate::engine::memfile) fn decode_record(
    payload: &[u8],
    path: &Path,
    apply: impl FnMut(LogOp<'_>),
) -> Result<u64> {
    decode_payload(payload, path, true, apply).map(|h| h.seq)
}

/// Decodes a log payload of a version-3 (`v3`) or version-2 log: its [`Head`], and
/// calls `apply` for each operation.
pub(in crate::engine::memfile) fn decode_payload(
    payload: &[u8],
    path: &Path,
    v3: bool,
    mut apply: impl FnMut(LogOp<'_>),
) -> Result<Head> {
    let mut d = Decoder::new(payload, path);
    let head = read_head(&mut d, v3)?;
    let seq = head.seq;
    match d.u8()? {
        KIND_BATCH => {
            let n = d.u32()?;
            let mut prev: Option<&str> = None;
            for _ in 0..n {
                let (is_put, same_bucket) = match d.u8()? {
                    OP_PUT => (true, false),
                    OP_DELETE => (false, false),
                    OP_PUT_SAME_BUCKET => (true, true),
                    OP_DELETE_SAME_BUCKET => (false, true),
                    tag => {
                        return Err(Error::corrupt(
                            path,
                            format!("record {seq} has an unknown operation {tag}"),
                        ))
                    }
                };
                let bucket = match prev {
                    Some(b) if same_bucket => b,
                    None if same_bucket => {
                        return Err(Error::corrupt(
                            path,
                            format!("record {seq} names no bucket for its first operation"),
                        ))
                    }
                    _ => d.bucket()?,
                };
                prev = Some(bucket);
                if is_put {
                    let entry = d.entry()?;
                    apply(LogOp::Put { bucket, entry });
                } else {
                    let key = d.key()?;
                    apply(LogOp::Delete { bucket, key });
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
    Ok(head)
}
