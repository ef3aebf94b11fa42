//! Replaying a log file: every intact record in order, a torn tail told apart from
//! damage in the middle.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::codec::{decode_record, LogOp};
use crate::engine::memfile::format::{
    self, Decoder, FrameRead, FrameReader, FILE_HEADER_LEN, LOG_MAGIC,
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
}

/// Reads log `gen` at `path`, calling `apply` for every operation of every intact
/// record. Records must carry consecutive sequence numbers starting at `expect_seq`
/// (if given; a first record with a different number is reported, not applied).
/// A damaged record with data after it is *corrupt*. Nothing is written.
pub(in crate::engine::memfile) fn replay(
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
