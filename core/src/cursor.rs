//! [`Cursor`]: a movable position in a bucket's key order.

use std::ops::Bound;

use crate::bucket::{Bucket, Entry};
use crate::error::Result;
use crate::limits;

/// Where a cursor stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// Before the first key: [`Cursor::next`] returns the first entry.
    BeforeFirst,
    /// On an entry with this key.
    At(String),
    /// After the last key: [`Cursor::prev`] returns the last entry.
    AfterLast,
}

/// A cursor over one bucket, stepping by key.
///
/// A cursor remembers only the key it stands on, never a snapshot: each step returns
/// the nearest *live* key after (or before) that key at the time of the step. It
/// therefore stays valid while other threads write: if its own key is deleted,
/// [`Cursor::next`] still returns the smallest live key greater than it. Expired keys
/// are skipped.
///
/// A new cursor stands [`Position::BeforeFirst`]. A step that finds no entry returns
/// `None` and leaves the cursor past that end ([`Position::AfterLast`] going forward,
/// [`Position::BeforeFirst`] going back), from where a step the other way returns the
/// last (or first) entry. Every method fails with *closed* once the store handle it
/// came from is closed.
#[derive(Debug, Clone)]
pub struct Cursor {
    bucket: Bucket,
    pos: Position,
}

impl Cursor {
    pub(crate) fn new(bucket: Bucket) -> Cursor {
        Cursor {
            bucket,
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
    pub fn first(&mut self) -> Result<Option<Entry>> {
        self.pos = Position::BeforeFirst;
        self.next()
    }

    /// Moves to the last entry and returns it; `None` (cursor before-first) if the
    /// bucket is empty.
    pub fn last(&mut self) -> Result<Option<Entry>> {
        self.pos = Position::AfterLast;
        self.prev()
    }

    /// Moves to the first entry whose key is `>= key` and returns it. If no key
    /// follows, returns `None` and the cursor is after-last.
    ///
    /// # Errors
    /// *invalid argument* for an empty or over-long key; *closed*.
    pub fn seek(&mut self, key: &str) -> Result<Option<Entry>> {
        limits::check_key(key)?;
        let mut out = Vec::with_capacity(1);
        self.bucket
            .fetch(Bound::Included(key), Bound::Unbounded, false, 1, &mut out)?;
        Ok(self.land(out.pop(), Position::AfterLast))
    }

    /// Steps to the smallest live key greater than the current one and returns it.
    /// From before-first this is the first entry; at the end it returns `None` and
    /// the cursor is after-last.
    #[allow(clippy::should_implement_trait)] // fallible, and positions are two-ended
    pub fn next(&mut self) -> Result<Option<Entry>> {
        let mut out = Vec::with_capacity(1);
        self.step(false, 1, &mut out)?;
        Ok(out.pop())
    }

    /// Steps to the greatest live key smaller than the current one and returns it.
    /// From after-last this is the last entry; at the start it returns `None` and the
    /// cursor is before-first.
    pub fn prev(&mut self) -> Result<Option<Entry>> {
        let mut out = Vec::with_capacity(1);
        self.step(true, 1, &mut out)?;
        Ok(out.pop())
    }

    /// Exactly `n` calls of [`Cursor::next`]: returns the entries stepped onto, in
    /// ascending key order. Fewer than `n` entries means the end was reached (the
    /// cursor is then after-last). `n == 0` returns nothing and does not move.
    pub fn next_n(&mut self, n: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(n.min(1024));
        self.step(false, n, &mut out)?;
        Ok(out)
    }

    /// Exactly `n` calls of [`Cursor::prev`]: returns the entries stepped onto, in
    /// descending key order. Fewer than `n` entries means the start was reached (the
    /// cursor is then before-first).
    pub fn prev_n(&mut self, n: usize) -> Result<Vec<Entry>> {
        let mut out = Vec::with_capacity(n.min(1024));
        self.step(true, n, &mut out)?;
        Ok(out)
    }

    /// Like [`Cursor::next_n`], but lends each entry to `f` instead of returning
    /// owned copies: no allocation per entry. Returns how many entries `f` was called
    /// with; fewer than `n` means the end was reached (the cursor is then after-last).
    ///
    /// `f` runs under the store's read lock, with the rules of [`Bucket::scan`].
    pub fn next_n_with(&mut self, n: usize, f: impl FnMut(&str, &[u8])) -> Result<usize> {
        self.step_with(false, n, f)
    }

    /// Like [`Cursor::prev_n`], but lends each entry to `f` (see
    /// [`Cursor::next_n_with`]); entries come in descending key order.
    pub fn prev_n_with(&mut self, n: usize, f: impl FnMut(&str, &[u8])) -> Result<usize> {
        self.step_with(true, n, f)
    }

    fn step_with(&mut self, back: bool, n: usize, mut f: impl FnMut(&str, &[u8])) -> Result<usize> {
        let Some(bound) = self.bound(back, n)? else {
            return Ok(0);
        };
        let mut last = String::new();
        let visit = &mut |k: &str, v: &[u8], is_last: bool| {
            f(k, v);
            if is_last {
                // Only the last key is kept: fewer than `n` leaves the cursor past
                // the end instead.
                last.push_str(k);
            }
        };
        let bound = bound.as_ref().map(String::as_str);
        let taken = if back {
            self.bucket
                .visit_n(Bound::Unbounded, bound, true, true, n, visit)?
        } else {
            self.bucket
                .visit_n(bound, Bound::Unbounded, false, true, n, visit)?
        };
        self.pos = if taken < n {
            if back {
                Position::BeforeFirst
            } else {
                Position::AfterLast
            }
        } else {
            Position::At(last)
        };
        Ok(taken)
    }

    /// The bound a step of `n` starts from, or `None` when it cannot move (n == 0,
    /// or already past the end in that direction). Reports use of a closed store.
    fn bound(&self, back: bool, n: usize) -> Result<Option<Bound<String>>> {
        self.bucket.shared()?;
        if n == 0 {
            return Ok(None);
        }
        Ok(match (&self.pos, back) {
            (Position::AfterLast, false) | (Position::BeforeFirst, true) => None,
            (Position::BeforeFirst, false) | (Position::AfterLast, true) => Some(Bound::Unbounded),
            (Position::At(k), _) => Some(Bound::Excluded(k.clone())),
        })
    }

    /// Up to `n` steps with owned copies, appended to `out` (see `step_with`).
    fn step(&mut self, back: bool, n: usize, out: &mut Vec<Entry>) -> Result<()> {
        self.step_with(back, n, |k, v| out.push((k.to_string(), v.to_vec())))
            .map(drop)
    }

    fn land(&mut self, entry: Option<Entry>, otherwise: Position) -> Option<Entry> {
        self.pos = match &entry {
            Some((k, _)) => Position::At(k.clone()),
            None => otherwise,
        };
        entry
    }
}

impl Bucket {
    /// A cursor positioned before the first key.
    pub fn cursor(&self) -> Result<Cursor> {
        self.shared()?;
        Ok(Cursor::new(self.clone()))
    }
}
