//! Batch reads for bindings: [`Bucket::get_multiple_sorted`] (found values in key
//! order, each key once) and [`ScanRange`] (a key range read a batch at a time,
//! resuming after the last key read). Bindings use them instead of re-deriving the
//! ordering and resume rules.

use std::ops::{Bound, Range};

use crate::bucket::Bucket;
use crate::error::Result;

/// The values [`Bucket::get_multiple_sorted`] found, in key byte order, each
/// distinct key once. Values sit in one buffer (no allocation per value).
#[derive(Debug, Clone, Default)]
pub struct FoundValues {
    values: Vec<u8>,
    /// Per key found: its index in the caller's keys, its value's place in `values`.
    hits: Vec<(usize, Range<usize>)>,
}

impl FoundValues {
    /// Number of distinct keys found.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// Whether no key was found.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// `(i, value)` for each key found, in key byte order: `keys[i]` is the key (for
    /// a key given more than once, one of its positions).
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        self.hits
            .iter()
            .map(|(i, place)| (*i, &self.values[place.clone()]))
    }
}

/// The first 8 bytes of a key, big-endian and zero-padded: `a < b` implies
/// `key_prefix(a) <= key_prefix(b)`, so most comparisons need not reach the text.
fn key_prefix(key: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

impl Bucket {
    /// The values of those `keys` that are present and live, in key byte order,
    /// each distinct key once (what a sorted map of the result would hold, without
    /// building one). Looks the keys up as [`Bucket::get_multiple_with`] does.
    ///
    /// # Errors
    /// As [`Bucket::get_multiple_with`].
    pub fn get_multiple_sorted<K: AsRef<str>>(&self, keys: &[K]) -> Result<FoundValues> {
        let mut values: Vec<u8> = Vec::new();
        let mut hits: Vec<(u64, usize, Range<usize>)> = Vec::with_capacity(keys.len());
        self.get_multiple_with(keys, |i, v| {
            let start = values.len();
            values.extend_from_slice(v);
            hits.push((key_prefix(keys[i].as_ref()), i, start..values.len()));
        })?;
        // Sorted after the look-ups, not before: by then the keys' text is in the
        // cache (sorting first read each key cold).
        let key = |i: usize| keys[i].as_ref();
        hits.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| key(a.1).cmp(key(b.1))));
        hits.dedup_by(|a, b| a.0 == b.0 && key(a.1) == key(b.1));
        Ok(FoundValues {
            values,
            hits: hits.into_iter().map(|(_, i, place)| (i, place)).collect(),
        })
    }
}

/// A key range of a bucket read a batch at a time from one end: each batch resumes
/// after the last key of the one before, so no lock or snapshot is held between
/// batches (writes in between may or may not be seen; no key is visited twice).
#[derive(Debug, Clone)]
pub struct ScanRange {
    lower: Bound<String>,
    upper: Bound<String>,
    reverse: bool,
    done: bool,
}

impl ScanRange {
    /// The keys within `lower..upper`, read ascending (descending with `reverse`).
    pub fn new(lower: Bound<String>, upper: Bound<String>, reverse: bool) -> ScanRange {
        ScanRange {
            lower,
            upper,
            reverse,
            done: false,
        }
    }

    /// Whether the range has been read to its end (or failed).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Visits up to `limit` live records of what is left of the range, in order,
    /// lending key and value to `visit` as [`Bucket::scan`] does (with its
    /// restrictions), then narrows the range past the last one. Returns how many
    /// were visited; fewer than `limit` means the range is done.
    ///
    /// # Errors
    /// As [`Bucket::scan`]; after an error the range is done.
    pub fn next_batch(
        &mut self,
        bucket: &Bucket,
        limit: usize,
        mut visit: impl FnMut(&str, &[u8]),
    ) -> Result<usize> {
        if self.done {
            return Ok(0);
        }
        let mut last: Option<String> = None;
        let taken = bucket.visit_n(
            as_str(&self.lower),
            as_str(&self.upper),
            self.reverse,
            true,
            limit,
            &mut |k, v, is_last| {
                visit(k, v);
                if is_last {
                    last = Some(k.to_string());
                }
            },
        );
        let taken = match taken {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        match last {
            Some(k) if taken == limit => {
                if self.reverse {
                    self.upper = Bound::Excluded(k);
                } else {
                    self.lower = Bound::Excluded(k);
                }
            }
            _ => self.done = true,
        }
        Ok(taken)
    }
}

fn as_str(b: &Bound<String>) -> Bound<&str> {
    match b {
        Bound::Included(s) => Bound::Included(s.as_str()),
        Bound::Excluded(s) => Bound::Excluded(s.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
