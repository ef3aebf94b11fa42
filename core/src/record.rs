//! How a value is stored in an engine: one header byte, an optional expiry deadline,
//! then the user's bytes. Keys without a TTL pay exactly one byte.
//!
//! ```text
//! 0x00 value...                       no expiry
//! 0x01 deadline(u64 BE, unix ms) value...   expires at deadline
//! ```

use crate::error::{Error, Result};
use std::path::Path;

const PLAIN: u8 = 0;
const EXPIRING: u8 = 1;
const DEADLINE_LEN: usize = 8;

/// Encodes a value with an optional absolute deadline (unix milliseconds).
pub(crate) fn encode(value: &[u8], deadline_ms: Option<u64>) -> Vec<u8> {
    let header = match deadline_ms {
        None => 1,
        Some(_) => 1 + DEADLINE_LEN,
    };
    let mut out = Vec::with_capacity(header + value.len());
    encode_into(&mut out, value, deadline_ms);
    out
}

/// Appends the encoding of a value (see [`encode`]) to `out`, so a batch can encode
/// all its values into one buffer.
pub(crate) fn encode_into(out: &mut Vec<u8>, value: &[u8], deadline_ms: Option<u64>) {
    match deadline_ms {
        None => out.push(PLAIN),
        Some(d) => {
            out.push(EXPIRING);
            out.extend_from_slice(&d.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

/// Values up to this size are encoded in a reused per-thread buffer; larger ones get
/// their own allocation so a thread never keeps a huge buffer alive.
const REUSE_MAX: usize = 64 << 10;

thread_local! {
    static ENCODE_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f` with the encoded form of `value`, without allocating for small values
/// (engines copy what they store, so the encoding only lives for the call).
pub(crate) fn with_encoded<R>(
    value: &[u8],
    deadline_ms: Option<u64>,
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    if value.len() > REUSE_MAX {
        return f(&encode(value, deadline_ms));
    }
    ENCODE_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            match deadline_ms {
                None => buf.push(PLAIN),
                Some(d) => {
                    buf.push(EXPIRING);
                    buf.extend_from_slice(&d.to_be_bytes());
                }
            }
            buf.extend_from_slice(value);
            f(&buf)
        }
        // Only if `f` itself encodes again (it does not today): stay correct.
        Err(_) => f(&encode(value, deadline_ms)),
    })
}

/// A decoded stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub deadline_ms: Option<u64>,
    pub value: &'a [u8],
}

impl Record<'_> {
    /// Whether the record is invisible at `now_ms` (its deadline has passed).
    #[cfg(test)]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.deadline_ms, Some(d) if d <= now_ms)
    }

    /// Like `is_expired`, but reads the clock only if the record has a deadline, so
    /// records without expiry cost no clock read.
    pub fn is_expired_at(&self, now_ms: impl FnOnce() -> u64) -> bool {
        matches!(self.deadline_ms, Some(d) if d <= now_ms())
    }
}

/// A stored key as a `str`, or `None` if it is not valid UTF-8 (a damaged store).
/// Keys are nearly always ASCII, which is checked several times faster than the
/// general validation (that took 40% of a lent scan's instructions on 10-byte keys).
#[inline]
#[allow(unsafe_code)]
pub(crate) fn key_str(k: &[u8]) -> Option<&str> {
    if k.is_ascii() {
        // SAFETY: a sequence of ASCII bytes is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(k) })
    } else {
        std::str::from_utf8(k).ok()
    }
}

/// Decodes a stored value; a malformed header is a *corrupt* error naming `path`.
#[inline]
pub(crate) fn decode<'a>(raw: &'a [u8], path: &Path) -> Result<Record<'a>> {
    match raw.split_first() {
        Some((&PLAIN, value)) => Ok(Record {
            deadline_ms: None,
            value,
        }),
        Some((&EXPIRING, rest)) if rest.len() >= DEADLINE_LEN => {
            let (d, value) = rest.split_at(DEADLINE_LEN);
            let mut buf = [0u8; DEADLINE_LEN];
            buf.copy_from_slice(d);
            Ok(Record {
                deadline_ms: Some(u64::from_be_bytes(buf)),
                value,
            })
        }
        _ => Err(Error::corrupt(
            path,
            format!("stored value has an unknown header ({} bytes)", raw.len()),
        )),
    }
}

/// The deadline of a stored value without copying it: `None` if the header is
/// malformed, `Some(None)` if it has no deadline.
pub(crate) fn peek_header(raw: &[u8]) -> Option<Option<u64>> {
    match raw.split_first() {
        Some((&PLAIN, _)) => Some(None),
        Some((&EXPIRING, rest)) if rest.len() >= DEADLINE_LEN => {
            let mut buf = [0u8; DEADLINE_LEN];
            buf.copy_from_slice(&rest[..DEADLINE_LEN]);
            Some(Some(u64::from_be_bytes(buf)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_plain_and_expiring() {
        let p = Path::new("t");
        let a = encode(b"hello", None);
        assert_eq!(a.len(), 6);
        let r = decode(&a, p).unwrap();
        assert_eq!(r.deadline_ms, None);
        assert_eq!(r.value, b"hello");
        let b = encode(b"", Some(42));
        let r = decode(&b, p).unwrap();
        assert_eq!(r.deadline_ms, Some(42));
        assert!(r.value.is_empty());
        assert!(r.is_expired(42));
        assert!(!r.is_expired(41));
        assert_eq!(peek_header(&b), Some(Some(42)));
        assert_eq!(peek_header(&a), Some(None));
        assert_eq!(peek_header(&[9]), None);
    }

    #[test]
    fn reused_buffer_encodes_like_encode() {
        for (v, d) in [
            (&b"abc"[..], None),
            (&b""[..], Some(7u64)),
            (&[9u8; 70_000][..], Some(1)),
        ] {
            with_encoded(v, d, |e| assert_eq!(e, encode(v, d).as_slice()));
            with_encoded(v, d, |e| {
                with_encoded(b"x", None, |inner| {
                    assert_eq!(e, encode(v, d).as_slice());
                    assert_eq!(inner, encode(b"x", None).as_slice());
                })
            });
        }
    }

    #[test]
    fn bad_header_is_corrupt() {
        let p = Path::new("t");
        assert!(decode(&[], p).is_err());
        assert!(decode(&[7, 1, 2], p).is_err());
        assert!(decode(&[1, 0, 0], p).is_err());
    }
}
