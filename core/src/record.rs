//! How a value is stored in an engine: one header byte, an optional expiry deadline,
//! then the user's bytes. Keys without a TTL pay exactly one byte.
//!
//! ```text
//! 0x00 value...                       no expiry
//! 0x01 deadline(u64 BE, unix ms) value...   expires at deadline
//! ```

use crate::error::{Error, Result};
use std::path::Path;

pub(crate) const PLAIN: u8 = 0;
const EXPIRING: u8 = 1;
const DEADLINE_LEN: usize = 8;

/// Encodes a value with an optional absolute deadline (unix milliseconds).
#[cfg(test)]
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

/// A decoded stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub deadline_ms: Option<u64>,
    pub value: &'a [u8],
}

/// What a key's stored record is at one moment. The expiry rule lives here and only
/// here: a record whose deadline is at or before now is expired, invisible to every
/// read although still stored until the sweeper removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored<V> {
    /// No record is stored under the key.
    Missing,
    /// A record readers see: its value and its deadline, if it has one.
    Live { value: V, deadline_ms: Option<u64> },
    /// A record whose deadline has passed.
    Expired { deadline_ms: u64 },
}

impl<'a> Stored<&'a [u8]> {
    /// Classifies the stored record `raw`. `now_ms` is called only for a record with
    /// a deadline, so records without expiry cost no clock read.
    ///
    /// # Errors
    /// *corrupt* (naming `path`) if the record's header is malformed.
    #[inline]
    pub(crate) fn of(
        raw: &'a [u8],
        path: &Path,
        now_ms: impl FnOnce() -> u64,
    ) -> Result<Stored<&'a [u8]>> {
        let rec = decode(raw, path)?;
        Ok(match rec.deadline_ms {
            Some(d) if d <= now_ms() => Stored::Expired { deadline_ms: d },
            deadline_ms => Stored::Live {
                value: rec.value,
                deadline_ms,
            },
        })
    }
}

impl<V> Stored<V> {
    /// The value of a live record.
    pub(crate) fn live(self) -> Option<V> {
        match self {
            Stored::Live { value, .. } => Some(value),
            Stored::Missing | Stored::Expired { .. } => None,
        }
    }

    /// The stored record's deadline, live or expired.
    pub(crate) fn deadline_ms(&self) -> Option<u64> {
        match *self {
            Stored::Live { deadline_ms, .. } => deadline_ms,
            Stored::Expired { deadline_ms } => Some(deadline_ms),
            Stored::Missing => None,
        }
    }

    /// The same outcome with the live value mapped by `f`.
    pub(crate) fn map<W>(self, f: impl FnOnce(V) -> W) -> Stored<W> {
        match self {
            Stored::Missing => Stored::Missing,
            Stored::Live { value, deadline_ms } => Stored::Live {
                value: f(value),
                deadline_ms,
            },
            Stored::Expired { deadline_ms } => Stored::Expired { deadline_ms },
        }
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
        assert_eq!(
            Stored::of(&b, p, || 42).unwrap(),
            Stored::Expired { deadline_ms: 42 }
        );
        assert_eq!(
            Stored::of(&b, p, || 41).unwrap(),
            Stored::Live {
                value: &b""[..],
                deadline_ms: Some(42)
            }
        );
        let no_clock = || -> u64 { panic!("a record without a deadline reads no clock") };
        assert_eq!(
            Stored::of(&a, p, no_clock).unwrap().live(),
            Some(&b"hello"[..])
        );
    }

    #[test]
    fn bad_header_is_corrupt() {
        let p = Path::new("t");
        assert!(decode(&[], p).is_err());
        assert!(decode(&[7, 1, 2], p).is_err());
        assert!(decode(&[1, 0, 0], p).is_err());
    }
}
