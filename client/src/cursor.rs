//! [`RemoteCursor`] and [`RemoteIter`]: the embedded cursor's and iterator's steps,
//! each one `STATE.RANGE` request; the position is kept here, so nothing is held
//! on the server between steps.

use std::collections::VecDeque;
use std::ops::Bound;

use redis::{cmd, Connection};
use state_core::{limits, Entry, Position};

use std::sync::Arc;

use crate::conn::Pool;
use crate::errors::Doing;
use crate::Result;

/// The first chunk an iterator fetches, and the largest (as the embedded
/// iterator's).
const FIRST_CHUNK: usize = 16;
const MAX_CHUNK: usize = 1024;

/// One bound in `STATE.RANGE`'s notation.
fn bound_arg(b: Bound<&str>, unbounded: &str) -> String {
    match b {
        Bound::Included(k) => format!("[{k}"),
        Bound::Excluded(k) => format!("({k}"),
        Bound::Unbounded => unbounded.to_string(),
    }
}

/// Up to `limit` live entries within the bounds, in key order (descending if
/// `back`).
pub(crate) fn fetch(
    pool: &Pool,
    lower: Bound<&str>,
    upper: Bound<&str>,
    back: bool,
    limit: usize,
) -> Result<Vec<Entry>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut c = cmd("STATE.RANGE");
    c.arg(bound_arg(lower, "-")).arg(bound_arg(upper, "+"));
    if back {
        c.arg("REV");
    }
    c.arg("LIMIT").arg(limit);
    let flat: Vec<Vec<u8>> = pool.run(Doing::Read, |conn: &mut Connection| c.query(conn))?;
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let k = String::from_utf8(k).map_err(|_| {
            state_core::Error::Internal(format!(
                "the server at {} sent a key that is not UTF-8",
                pool.endpoint
            ))
        })?;
        out.push((k, v));
    }
    Ok(out)
}

/// A cursor over the remote bucket, stepping by key, with the embedded
/// [`state_core::Cursor`]'s positions and rules: each step returns the nearest
/// live key beyond the current one at the time of the step, so it stays valid
/// while others write (and across reconnections: it holds nothing on the server).
#[derive(Debug, Clone)]
pub struct RemoteCursor {
    pool: Arc<Pool>,
    pos: Position,
}

impl RemoteCursor {
    pub(crate) fn new(pool: Arc<Pool>) -> RemoteCursor {
        RemoteCursor {
            pool,
            pos: Position::BeforeFirst,
        }
    }

    /// The cursor's position.
    pub fn position(&self) -> &Position {
        &self.pos
    }

    /// The key the cursor stands on, if it stands on one.
    pub fn key(&self) -> Option<&str> {
        match &self.pos {
            Position::At(k) => Some(k),
            _ => None,
        }
    }

    /// Moves to the first entry and returns it; `None` (cursor after-last) if the
    /// bucket is empty.
    ///
    /// # Errors
    /// *I/O*.
    pub fn first(&mut self) -> Result<Option<Entry>> {
        self.pos = Position::BeforeFirst;
        self.next()
    }

    /// Moves to the last entry and returns it; `None` (cursor before-first) if the
    /// bucket is empty.
    ///
    /// # Errors
    /// *I/O*.
    pub fn last(&mut self) -> Result<Option<Entry>> {
        self.pos = Position::AfterLast;
        self.prev()
    }

    /// Moves to the first entry whose key is `>= key` and returns it; `None` (cursor
    /// after-last) if none follows.
    ///
    /// # Errors
    /// *invalid argument* for a bad key; *I/O*.
    pub fn seek(&mut self, key: &str) -> Result<Option<Entry>> {
        limits::check_key(key)?;
        let found = fetch(&self.pool, Bound::Included(key), Bound::Unbounded, false, 1)?.pop();
        self.pos = match &found {
            Some((k, _)) => Position::At(k.clone()),
            None => Position::AfterLast,
        };
        Ok(found)
    }

    /// Steps to the smallest live key greater than the current one.
    ///
    /// # Errors
    /// *I/O*.
    #[allow(clippy::should_implement_trait)] // fallible, as the embedded cursor's
    pub fn next(&mut self) -> Result<Option<Entry>> {
        Ok(self.step(false, 1)?.pop())
    }

    /// Steps to the greatest live key smaller than the current one.
    ///
    /// # Errors
    /// *I/O*.
    pub fn prev(&mut self) -> Result<Option<Entry>> {
        Ok(self.step(true, 1)?.pop())
    }

    /// Exactly `n` calls of [`RemoteCursor::next`], in one request: the entries
    /// stepped onto, ascending. Fewer than `n` means the end was reached.
    ///
    /// # Errors
    /// *I/O*; *too large* if the entries would pass the server's reply limit.
    pub fn next_n(&mut self, n: usize) -> Result<Vec<Entry>> {
        self.step(false, n)
    }

    /// Exactly `n` calls of [`RemoteCursor::prev`], in one request: the entries
    /// stepped onto, descending. Fewer than `n` means the start was reached.
    ///
    /// # Errors
    /// As [`RemoteCursor::next_n`].
    pub fn prev_n(&mut self, n: usize) -> Result<Vec<Entry>> {
        self.step(true, n)
    }

    fn step(&mut self, back: bool, n: usize) -> Result<Vec<Entry>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let from = match (&self.pos, back) {
            (Position::AfterLast, false) | (Position::BeforeFirst, true) => return Ok(Vec::new()),
            (Position::BeforeFirst, false) | (Position::AfterLast, true) => Bound::Unbounded,
            (Position::At(k), _) => Bound::Excluded(k.as_str()),
        };
        let got = if back {
            fetch(&self.pool, Bound::Unbounded, from, true, n)?
        } else {
            fetch(&self.pool, from, Bound::Unbounded, false, n)?
        };
        self.pos = match got.last() {
            Some((k, _)) if got.len() == n => Position::At(k.clone()),
            _ if back => Position::BeforeFirst,
            _ => Position::AfterLast,
        };
        Ok(got)
    }
}

/// An iterator over a key range of the remote bucket, in key order (or reversed
/// with `.rev()`), fetched in chunks from either end (16 entries, doubling to
/// 1024) as the embedded [`state_core::Iter`] is: it sees concurrent writes or
/// not, never an entry twice. Each item is a `Result`: a failed fetch is
/// reported once, then the iterator ends.
#[derive(Debug)]
pub struct RemoteIter {
    pool: Arc<Pool>,
    lower: Bound<String>,
    upper: Bound<String>,
    front: VecDeque<Entry>,
    back: VecDeque<Entry>,
    front_chunk: usize,
    back_chunk: usize,
    drained: bool,
    failed: bool,
}

fn as_str(b: &Bound<String>) -> Bound<&str> {
    match b {
        Bound::Included(s) => Bound::Included(s.as_str()),
        Bound::Excluded(s) => Bound::Excluded(s.as_str()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RemoteIter {
    pub(crate) fn new(pool: Arc<Pool>, lower: Bound<String>, upper: Bound<String>) -> Self {
        RemoteIter {
            pool,
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

    fn refill(&mut self, back: bool) -> Result<()> {
        let chunk = if back {
            &mut self.back_chunk
        } else {
            &mut self.front_chunk
        };
        let limit = *chunk;
        *chunk = (*chunk * 2).min(MAX_CHUNK);
        let got = fetch(
            &self.pool,
            as_str(&self.lower),
            as_str(&self.upper),
            back,
            limit,
        )?;
        if got.len() < limit {
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

impl Iterator for RemoteIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Result<Entry>> {
        self.next_from(false)
    }
}

impl DoubleEndedIterator for RemoteIter {
    fn next_back(&mut self) -> Option<Result<Entry>> {
        self.next_from(true)
    }
}

impl std::iter::FusedIterator for RemoteIter {}
