//! [`Iter`]: Rust iterators over a bucket (full, range, prefix; both directions).

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use crate::bucket::{prefix_bounds, Bucket, Entry};
use crate::error::Result;

const FIRST_CHUNK: usize = 16;
const MAX_CHUNK: usize = 1024;

/// An iterator over a bucket's live records within a key range, yielding
/// `Result<(key, value)>` in ascending key order, or descending from the back
/// ([`DoubleEndedIterator`], so `.rev()` works).
///
/// Records are read in chunks, stepping by key like a [`crate::Cursor`]: the iterator
/// holds no lock and no snapshot between chunks, so concurrent writes are allowed and
/// may or may not be seen. After an error it yields nothing more.
#[derive(Debug)]
pub struct Iter {
    bucket: Bucket,
    lower: Bound<String>,
    upper: Bound<String>,
    front: VecDeque<Entry>,
    back: VecDeque<Entry>,
    front_chunk: usize,
    back_chunk: usize,
    /// The range between the bounds is exhausted (buffers may still hold entries).
    drained: bool,
    failed: bool,
}

impl Iter {
    pub(crate) fn new(bucket: Bucket, lower: Bound<String>, upper: Bound<String>) -> Iter {
        Iter {
            bucket,
            lower,
            upper,
            front: VecDeque::new(),
            back: VecDeque::new(),
            front_chunk: FIRST_CHUNK,
            back_chunk: FIRST_CHUNK,
            drained: false,
            failed: false,
        }
    }

    /// Fetches the next chunk at one end; shrinks the unfetched range accordingly.
    fn refill(&mut self, back: bool) -> Result<()> {
        let chunk = if back {
            &mut self.back_chunk
        } else {
            &mut self.front_chunk
        };
        let limit = *chunk;
        *chunk = (*chunk * 2).min(MAX_CHUNK);
        let mut got = Vec::with_capacity(limit);
        let ended = self.bucket.fetch(
            as_str(&self.lower),
            as_str(&self.upper),
            back,
            limit,
            &mut got,
        )?;
        if ended {
            self.drained = true;
        }
        if let Some((k, _)) = got.last() {
            if back {
                self.upper = Bound::Excluded(k.clone());
            } else {
                self.lower = Bound::Excluded(k.clone());
            }
        }
        if back {
            self.back.extend(got);
        } else {
            self.front.extend(got);
        }
        Ok(())
    }

    fn next_from(&mut self, back: bool) -> Option<Result<Entry>> {
        if self.failed {
            return None;
        }
        loop {
            let own = if back {
                &mut self.back
            } else {
                &mut self.front
            };
            if let Some(e) = own.pop_front() {
                return Some(Ok(e));
            }
            if self.drained {
                // The other end's buffer holds the rest, in the other order.
                let other = if back {
                    self.front.pop_back()
                } else {
                    self.back.pop_back()
                };
                return other.map(Ok);
            }
            if let Err(e) = self.refill(back) {
                self.failed = true;
                return Some(Err(e));
            }
        }
    }
}

fn as_str(b: &Bound<String>) -> Bound<&str> {
    match b {
        Bound::Included(s) => Bound::Included(s.as_str()),
        Bound::Excluded(s) => Bound::Excluded(s.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl Iterator for Iter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        self.next_from(false)
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Result<Entry>> {
        self.next_from(true)
    }
}

impl std::iter::FusedIterator for Iter {}

impl Bucket {
    /// All live records in key order; `.rev()` for descending order.
    pub fn iter(&self) -> Iter {
        Iter::new(self.clone(), Bound::Unbounded, Bound::Unbounded)
    }

    /// Live records with keys in `range` (e.g. `"a".."m"`, `"k"..`), in key order.
    pub fn range<'r, R: RangeBounds<&'r str>>(&self, range: R) -> Iter {
        let own = |b: Bound<&&str>| match b {
            Bound::Included(s) => Bound::Included((*s).to_string()),
            Bound::Excluded(s) => Bound::Excluded((*s).to_string()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Iter::new(
            self.clone(),
            own(range.start_bound()),
            own(range.end_bound()),
        )
    }

    /// Live records whose keys start with `prefix`, in key order.
    pub fn prefix(&self, prefix: &str) -> Iter {
        let (lower, upper) = prefix_bounds(prefix);
        Iter::new(self.clone(), lower, upper)
    }
}
