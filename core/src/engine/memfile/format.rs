//! The byte formats of the memfile engine's files: file headers, checksummed frames
//! and the payloads inside them. `docs/memfile-format.md` is the prose version of
//! this module; keep the two in step.
//!
//! Every file starts with a 32-byte header, followed by frames:
//!
//! ```text
//! header:  magic[8] version:u32 gen:u64 next_seq:u64 crc32(bytes 0..28):u32
//! frame:   len:u32 payload_crc:u32 header_crc:u32 (crc32 of the first 8 bytes)  payload[len]
//! ```
//!
//! All integers are little-endian. The header checksum of a frame protects its length,
//! so a damaged length is detected as damage instead of looking like a short file.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// Magic of a log file.
pub(super) const LOG_MAGIC: &[u8; 8] = b"LSTMFLOG";
/// Magic of a snapshot file.
pub(super) const SNAPSHOT_MAGIC: &[u8; 8] = b"LSTMFSNP";
/// Format version written. Version 2 (before any release) made value lengths varints
/// and let a batch's ops share the previous op's bucket name; version 3 added to each
/// log record how many records before it were synced (snapshots are unchanged).
pub(super) const VERSION: u32 = 3;
/// The oldest version still read (its logs lack the synced count: damage with data
/// after it is always *corrupt* there).
pub(super) const OLDEST_VERSION: u32 = 2;
/// Bytes of a file header.
pub(super) const FILE_HEADER_LEN: usize = 32;
/// Bytes of a frame header.
pub(super) const FRAME_HEADER_LEN: usize = 12;

/// Log payload kind: a batch of puts and deletes (one `write` call).
pub(super) const KIND_BATCH: u8 = 1;
/// Log payload kind: removal of a whole bucket.
pub(super) const KIND_REMOVE_BUCKET: u8 = 2;
/// Snapshot payload kind: a run of one bucket's entries in ascending key order.
pub(super) const KIND_BUCKET_CHUNK: u8 = 16;
/// Snapshot payload kind: the end marker with the totals.
pub(super) const KIND_END: u8 = 17;

/// Op tag inside a batch: insert or overwrite.
pub(super) const OP_PUT: u8 = 0;
/// Op tag inside a batch: remove a key.
pub(super) const OP_DELETE: u8 = 1;
/// Op tag inside a batch: [`OP_PUT`] in the previous op's bucket (name omitted).
pub(super) const OP_PUT_SAME_BUCKET: u8 = 2;
/// Op tag inside a batch: [`OP_DELETE`] in the previous op's bucket (name omitted).
pub(super) const OP_DELETE_SAME_BUCKET: u8 = 3;

/// A parsed file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileHeader {
    /// The file's generation (also in its name).
    pub gen: u64,
    /// Snapshot: sequence number of the first record of log `gen`. Logs: 0 (unused).
    pub next_seq: u64,
}

/// A file header as read: the header and the file's format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadHeader {
    pub header: FileHeader,
    pub version: u32,
}

/// Encodes a file header.
pub(super) fn encode_file_header(magic: &[u8; 8], h: FileHeader) -> [u8; FILE_HEADER_LEN] {
    let mut out = [0u8; FILE_HEADER_LEN];
    out[0..8].copy_from_slice(magic);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&h.gen.to_le_bytes());
    out[20..28].copy_from_slice(&h.next_seq.to_le_bytes());
    let crc = crc32fast::hash(&out[0..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Reads and checks a file header; any problem is *corrupt* naming `path`.
pub(super) fn read_file_header(
    r: &mut impl Read,
    magic: &[u8; 8],
    path: &Path,
) -> Result<ReadHeader> {
    let mut buf = [0u8; FILE_HEADER_LEN];
    r.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::corrupt(path, "the file header is incomplete"),
        _ => Error::io(path, e),
    })?;
    if &buf[0..8] != magic {
        return Err(Error::corrupt(
            path,
            "the file does not start with the memfile magic",
        ));
    }
    if crc32fast::hash(&buf[0..28]) != u32_at(&buf, 28) {
        return Err(Error::corrupt(path, "the file header fails its checksum"));
    }
    let version = u32_at(&buf, 8);
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(Error::corrupt(
            path,
            format!(
                "unsupported memfile format version {version} (this build reads {OLDEST_VERSION} to {VERSION})"
            ),
        ));
    }
    Ok(ReadHeader {
        header: FileHeader {
            gen: u64_at(&buf, 12),
            next_seq: u64_at(&buf, 20),
        },
        version,
    })
}

/// Appends a frame holding `payload` to `out`.
#[cfg(test)]
pub(super) fn push_frame(out: &mut Vec<u8>, payload: &[u8]) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    out.extend_from_slice(payload);
    seal_frame(out, start)
}

/// Fills in the header of the frame that starts at `start` in `buf` and whose payload
/// runs to the end of `buf` (the caller reserved `FRAME_HEADER_LEN` bytes there).
pub(super) fn seal_frame(buf: &mut [u8], start: usize) -> Result<()> {
    let payload_len = buf.len() - start - FRAME_HEADER_LEN;
    let len = u32::try_from(payload_len).map_err(|_| {
        Error::TooLarge(format!(
            "one write of {payload_len} bytes exceeds the memfile engine's 4 GiB record limit"
        ))
    })?;
    let crc = crc32fast::hash(&buf[start + FRAME_HEADER_LEN..]);
    let h = &mut buf[start..start + FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32fast::hash(&h[0..8]);
    h[8..12].copy_from_slice(&hcrc.to_le_bytes());
    Ok(())
}

/// What reading the next frame found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FrameRead {
    /// A frame whose payload is now in the reader's buffer.
    Frame,
    /// The file ends cleanly here.
    End,
    /// The frame at this offset is incomplete or damaged, and nothing after it in the
    /// file is data: what a crash during an append leaves. `why` says which.
    Torn { why: &'static str },
    /// The frame at this offset is damaged and data follows it.
    Damaged { why: &'static str },
}

/// Reads frames one by one from a file, tracking the offset.
pub(super) struct FrameReader {
    file: io::BufReader<File>,
    /// Offset of the next unread byte.
    offset: u64,
    file_len: u64,
    /// The payload of the frame last returned.
    pub payload: Vec<u8>,
}

impl FrameReader {
    /// A reader positioned just after the file header (`offset` bytes in).
    pub(super) fn new(file: io::BufReader<File>, offset: u64, file_len: u64) -> FrameReader {
        FrameReader {
            file,
            offset,
            file_len,
            payload: Vec::new(),
        }
    }

    /// Offset of the next frame (after the last one read).
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next frame. On `Torn` / `Damaged`, `offset()` is the offset of the
    /// bad frame.
    pub(super) fn next(&mut self) -> io::Result<FrameRead> {
        let remaining = self.file_len - self.offset;
        if remaining == 0 {
            return Ok(FrameRead::End);
        }
        if remaining < FRAME_HEADER_LEN as u64 {
            return Ok(FrameRead::Torn {
                why: "an incomplete frame header",
            });
        }
        let mut h = [0u8; FRAME_HEADER_LEN];
        self.file.read_exact(&mut h)?;
        if crc32fast::hash(&h[0..8]) != u32_at(&h, 8) {
            // Nothing but zeros after a bad header: a header half on disk (a page
            // boundary) or a zero-filled tail, both what a crash mid-append leaves.
            return Ok(if self.rest_is_zero()? {
                FrameRead::Torn {
                    why: "a damaged last frame header",
                }
            } else {
                FrameRead::Damaged {
                    why: "a frame header fails its checksum",
                }
            });
        }
        let len = u64::from(u32_at(&h, 0));
        if len > remaining - FRAME_HEADER_LEN as u64 {
            return Ok(FrameRead::Torn {
                why: "a frame that runs past the end of the file",
            });
        }
        // `len` fits in the file, so this allocation is bounded by the file's size.
        self.payload.clear();
        self.payload.resize(len as usize, 0);
        self.file.read_exact(&mut self.payload)?;
        if crc32fast::hash(&self.payload) != u32_at(&h, 4) {
            let end = self.offset + FRAME_HEADER_LEN as u64 + len;
            let torn = end == self.file_len || self.rest_is_zero()?;
            return Ok(if torn {
                FrameRead::Torn {
                    why: "a last frame that fails its checksum",
                }
            } else {
                FrameRead::Damaged {
                    why: "a frame fails its checksum",
                }
            });
        }
        self.offset += FRAME_HEADER_LEN as u64 + len;
        Ok(FrameRead::Frame)
    }

    /// Whether every byte from the current read position to the end of the file is 0.
    fn rest_is_zero(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 8192];
        loop {
            let n = self.file.read(&mut buf)?;
            if n == 0 {
                return Ok(true);
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
        }
    }
}

pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

pub(super) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// A bounds-checked cursor over a payload; every overrun is a *corrupt* error.
pub(super) struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(buf: &'a [u8], path: &'a Path) -> Decoder<'a> {
        Decoder { buf, pos: 0, path }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                Error::corrupt(self.path, "a record is shorter than its contents say")
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        Ok(u32_at(self.bytes(4)?, 0))
    }

    pub(super) fn u64(&mut self) -> Result<u64> {
        Ok(u64_at(self.bytes(8)?, 0))
    }

    /// A `u16`-length-prefixed bucket name.
    pub(super) fn bucket(&mut self) -> Result<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.bytes(n)?)
            .map_err(|_| Error::corrupt(self.path, "a bucket name is not UTF-8"))
    }

    /// A LEB128 varint of at most 5 bytes holding a `u32`.
    pub(super) fn varint_u32(&mut self) -> Result<u32> {
        let mut x = 0u32;
        for i in 0..5 {
            let b = self.u8()?;
            let bits = u32::from(b & 0x7f);
            if i == 4 && bits > 0x0f {
                break;
            }
            x |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(x);
            }
        }
        Err(Error::corrupt(
            self.path,
            "a length does not fit in 32 bits",
        ))
    }

    /// The bytes of an entry as laid out in files and in memory:
    /// `value_len:varint` then `key_len:u16 key value`; returns the latter part.
    pub(super) fn entry(&mut self) -> Result<&'a [u8]> {
        let vlen = self.varint_u32()? as usize;
        let start = self.pos;
        let klen = self.u16()? as usize;
        self.bytes(klen)?;
        self.bytes(vlen)?;
        Ok(&self.buf[start..self.pos])
    }

    /// A `u16`-length-prefixed key.
    pub(super) fn key(&mut self) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        self.bytes(n)
    }
}

/// Appends a `u16`-length-prefixed bucket name.
pub(super) fn put_bucket(out: &mut Vec<u8>, bucket: &str) -> Result<()> {
    let n = u16::try_from(bucket.len()).map_err(|_| {
        Error::invalid(format!("bucket name of {} bytes is too long", bucket.len()))
    })?;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(bucket.as_bytes());
    Ok(())
}

/// Appends `x` as a LEB128 varint (1-5 bytes).
pub(super) fn put_varint_u32(out: &mut Vec<u8>, mut x: u32) {
    while x >= 0x80 {
        out.push((x as u8 & 0x7f) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Appends an entry (`value_len:varint key_len:u16 key value`); returns the range of
/// the part that is the in-memory entry (`key_len key value`).
pub(super) fn put_entry(
    out: &mut Vec<u8>,
    key: &[u8],
    value: &[u8],
) -> Result<std::ops::Range<usize>> {
    let vlen = u32::try_from(value.len())
        .map_err(|_| Error::TooLarge(format!("a value of {} bytes exceeds 4 GiB", value.len())))?;
    let klen = key_len(key)?;
    put_varint_u32(out, vlen);
    let start = out.len();
    out.extend_from_slice(&klen.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    Ok(start..out.len())
}

/// Appends a `u16`-length-prefixed key.
pub(super) fn put_key(out: &mut Vec<u8>, key: &[u8]) -> Result<()> {
    out.extend_from_slice(&key_len(key)?.to_le_bytes());
    out.extend_from_slice(key);
    Ok(())
}

fn key_len(key: &[u8]) -> Result<u16> {
    u16::try_from(key.len())
        .map_err(|_| Error::invalid(format!("a key of {} bytes is too long", key.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Seek, SeekFrom, Write};

    fn reader_over(bytes: &[u8]) -> FrameReader {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        FrameReader::new(BufReader::new(f), 0, bytes.len() as u64)
    }

    fn two_frames() -> Vec<u8> {
        let mut buf = Vec::new();
        push_frame(&mut buf, b"first payload").unwrap();
        push_frame(&mut buf, b"second payload").unwrap();
        buf
    }

    #[test]
    fn frames_round_trip() {
        let mut r = reader_over(&two_frames());
        assert_eq!(r.next().unwrap(), FrameRead::Frame);
        assert_eq!(r.payload, b"first payload");
        assert_eq!(r.next().unwrap(), FrameRead::Frame);
        assert_eq!(r.payload, b"second payload");
        assert_eq!(r.next().unwrap(), FrameRead::End);
    }

    #[test]
    fn every_cut_of_the_last_frame_is_torn() {
        let buf = two_frames();
        let first_end = FRAME_HEADER_LEN + b"first payload".len();
        for cut in first_end + 1..buf.len() {
            let mut r = reader_over(&buf[..cut]);
            assert_eq!(r.next().unwrap(), FrameRead::Frame);
            assert!(
                matches!(r.next().unwrap(), FrameRead::Torn { .. }),
                "cut at {cut}"
            );
            assert_eq!(r.offset(), first_end as u64);
        }
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let mut buf = two_frames();
        buf.extend_from_slice(&[0u8; 5000]);
        let mut r = reader_over(&buf);
        r.next().unwrap();
        r.next().unwrap();
        assert!(matches!(r.next().unwrap(), FrameRead::Torn { .. }));
    }

    #[test]
    fn damage_followed_by_data_is_damaged() {
        let mut buf = two_frames();
        buf[FRAME_HEADER_LEN + 2] ^= 0x40; // first payload
        assert!(matches!(
            reader_over(&buf).next().unwrap(),
            FrameRead::Damaged { .. }
        ));
        let mut buf = two_frames();
        buf[1] ^= 0x01; // first length
        assert!(matches!(
            reader_over(&buf).next().unwrap(),
            FrameRead::Damaged { .. }
        ));
    }

    #[test]
    fn damaged_last_payload_is_torn() {
        let mut buf = two_frames();
        let n = buf.len();
        buf[n - 1] ^= 0x01;
        let mut r = reader_over(&buf);
        r.next().unwrap();
        assert!(matches!(r.next().unwrap(), FrameRead::Torn { .. }));
    }

    #[test]
    fn file_header_round_trip_and_checks() {
        let h = FileHeader {
            gen: 7,
            next_seq: 99,
        };
        let bytes = encode_file_header(LOG_MAGIC, h);
        let p = Path::new("x");
        assert_eq!(
            read_file_header(&mut &bytes[..], LOG_MAGIC, p)
                .unwrap()
                .header,
            h
        );
        assert!(read_file_header(&mut &bytes[..], SNAPSHOT_MAGIC, p).is_err());
        let mut bad = bytes;
        bad[13] ^= 1;
        let e = read_file_header(&mut &bad[..], LOG_MAGIC, p).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
        let e = read_file_header(&mut &bytes[..10], LOG_MAGIC, p).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt);
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        let p = Path::new("x");
        for (x, len) in [
            (0u32, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u32::MAX, 5),
        ] {
            let mut out = Vec::new();
            put_varint_u32(&mut out, x);
            assert_eq!(out.len(), len, "{x}");
            let mut d = Decoder::new(&out, p);
            assert_eq!(d.varint_u32().unwrap(), x);
            assert!(d.is_empty());
        }
        // Past 32 bits, six bytes long, or cut short: all corrupt.
        for bad in [
            &[0xff, 0xff, 0xff, 0xff, 0x1f][..],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[0x80],
        ] {
            let e = Decoder::new(bad, p).varint_u32().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{bad:?}");
        }
    }
}
