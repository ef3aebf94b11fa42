//! Replaying a log file: every intact record in order, a torn tail told apart from
//! damage in the middle.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::codec::{decode_payload, read_head, LogOp};
use crate::engine::memfile::format::{
    self, u32_at, Decoder, FrameRead, FrameReader, FILE_HEADER_LEN, FRAME_HEADER_LEN, LOG_MAGIC,
};
use crate::error::{Error, Result};

/// How reading one log file ended.
#[derive(Debug)]
pub(in crate::engine::memfile) struct Replayed {
    /// Records applied.
    pub records: u64,
    /// Sequence number of the first record, if any.
    pub first_seq: Option<u64>,
    /// Length of the good part (header plus complete records).
    pub good_len: u64,
    /// Set when the log ends in a torn record: why.
    pub torn: Option<&'static str>,
    /// Every record with a smaller sequence number is known to have been synced (the
    /// largest claim of a record read; 0 if none).
    pub proven: u64,
}

/// Reads log `gen` at `path`, calling `apply` for every operation of every intact
/// record. Records must carry consecutive sequence numbers starting at `expect_seq`
/// (if given; a first record with a different number is reported, not applied).
/// A damaged record with data after it is *corrupt* if a later record in the file
/// proves it had been synced, or the log is of format version 2; otherwise it is the
/// start of a torn tail (an unsynced tail whose pages reached the disk out of order).
/// Nothing is written.
pub(in crate::engine::memfile) fn replay(
    path: &Path,
    gen: u64,
    expect_seq: Option<u64>,
    mut apply: impl FnMut(LogOp<'_>),
) -> Result<(Replayed, Option<u64>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let read = format::read_file_header(&mut reader, LOG_MAGIC, path)?;
    let (header, v3) = (read.header, read.version >= 3);
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
        proven: 0,
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
                // The record that should be here has this sequence number.
                let expected = next_seq.unwrap_or(out.records);
                if !v3 {
                    return Err(Error::corrupt(path, format!("{why} at offset {at}")));
                }
                if let Some((later_at, later)) = proof_of_sync(path, at, expected)? {
                    return Err(Error::corrupt(
                        path,
                        format!(
                            "{why} at offset {at}, but the record at offset {later_at} \
                             (sequence number {}) was written after it had been synced",
                            later.seq
                        ),
                    ));
                }
                out.torn =
                    Some("a damaged frame followed by data that no later record proves was synced");
                break;
            }
            FrameRead::Frame => {}
        }
        let payload = &frames.payload;
        let seq = read_head(&mut Decoder::new(payload, path), v3)?.seq;
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
        let head = decode_payload(payload, path, v3, &mut apply)?;
        out.proven = out.proven.max(head.synced);
        out.first_seq.get_or_insert(seq);
        out.records += 1;
        next_seq = Some(seq + 1);
        out.good_len = frames.offset();
    }
    Ok((out, None))
}

/// Looks after the damaged frame at `at` for an intact record that claims the record
/// `expected` (the one the damaged frame should hold) had been synced before it was
/// written. Such a record proves the damage is in synced data, not an unsynced tail.
/// Frames are found by their checksums at every offset (only after damage).
fn proof_of_sync(path: &Path, at: u64, expected: u64) -> Result<Option<(u64, super::codec::Head)>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(at))
        .map_err(|e| Error::io(path, e))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)
        .map_err(|e| Error::io(path, e))?;
    let mut i = 1;
    while i + FRAME_HEADER_LEN <= rest.len() {
        let h = &rest[i..i + FRAME_HEADER_LEN];
        if h[..8] != [0u8; 8] && crc32fast::hash(&h[..8]) == u32_at(h, 8) {
            let len = u32_at(h, 0) as usize;
            let start = i + FRAME_HEADER_LEN;
            if let Some(payload) = rest.get(start..start.saturating_add(len)) {
                if crc32fast::hash(payload) == u32_at(h, 4) {
                    if let Ok(head) = read_head(&mut Decoder::new(payload, path), true) {
                        if head.synced > expected {
                            return Ok(Some((at + i as u64, head)));
                        }
                    }
                    i = start + len;
                    continue;
                }
            }
        }
        i += 1;
    }
    Ok(None)
}
