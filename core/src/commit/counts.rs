//! Bucket and record counts kept as writes commit, so reading them costs O(1)
//! ([`crate::Store::counts`]; the server's `/metrics` reads them on every scrape).
//!
//! Counting stays off until the counts are first asked for: then the store counts
//! once, under the write lock (what the engine already knows: O(buckets) on memfile,
//! one read of every key on sled), and from then on every commit adds its change,
//! worked out from what each op replaced (its [`Prior`]). A blind put does not know
//! whether its key existed, so while counting, the commit point reads the priors of
//! such puts first (one engine read per key, under the write lock), as it does for a
//! watched store. An engine that other processes write to at the same time (Redis)
//! has no counts: this process never sees their writes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::{Op, Prior};

/// Per-bucket counts of stored records (live and expired-but-unswept alike: what
/// the engine holds), kept up to date by the commit point once started.
#[derive(Default)]
pub(crate) struct Counts {
    /// Set (under the write lock) once the tally is started; read under the write
    /// lock by every commit to decide whether it must know its priors.
    on: AtomicBool,
    tally: Mutex<Option<Tally>>,
}

#[derive(Debug, Default, Clone)]
struct Tally {
    /// Stored records of each user bucket holding at least one.
    buckets: HashMap<String, u64>,
    /// Their sum.
    records: u64,
}

impl Counts {
    /// Whether commits must keep the counts (and so know every prior).
    pub(crate) fn on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// The number of buckets holding a record and the number of records, if counting.
    pub(crate) fn totals(&self) -> Option<(u64, u64)> {
        let t = self.tally.lock();
        t.as_ref().map(|t| (t.buckets.len() as u64, t.records))
    }

    /// Each bucket's stored records, if counting.
    pub(crate) fn per_bucket(&self) -> Option<HashMap<String, u64>> {
        self.tally.lock().as_ref().map(|t| t.buckets.clone())
    }

    /// Starts counting from `counted` (each user bucket's stored records, counted
    /// with no write running: the caller holds the write lock).
    pub(crate) fn start(&self, counted: impl IntoIterator<Item = (String, u64)>) {
        let mut tally = Tally::default();
        for (name, n) in counted {
            if n > 0 {
                tally.records += n;
                tally.buckets.insert(name, n);
            }
        }
        *self.tally.lock() = Some(tally);
        self.on.store(true, Ordering::Release);
    }

    /// Adds the change of `ops`, just committed to `bucket` (the caller holds the
    /// write lock). An op whose prior is unknown makes the change unknown: counting
    /// then stops, and the next request for the counts counts again.
    pub(crate) fn committed(&self, bucket: &str, ops: &[Op<'_>]) {
        if !self.on() {
            return;
        }
        let mut delta: i64 = 0;
        for op in ops {
            match op {
                Op::Put { prior, .. } => match prior {
                    Prior::Missing => delta += 1,
                    Prior::Live { .. } | Prior::Expired { .. } => {}
                    Prior::Unknown => return self.stop(),
                },
                Op::Delete { prior, .. } => match prior {
                    Prior::Missing => {}
                    Prior::Live { .. } | Prior::Expired { .. } => delta -= 1,
                    Prior::Unknown => return self.stop(),
                },
                Op::DropIndex { .. } | Op::Label { .. } => {}
            }
        }
        if delta == 0 {
            return;
        }
        let mut guard = self.tally.lock();
        let Some(t) = guard.as_mut() else { return };
        let n = t.buckets.get(bucket).copied().unwrap_or(0);
        let Some(after) = n.checked_add_signed(delta) else {
            // More removed than counted: the tally was wrong; count again.
            *guard = None;
            drop(guard);
            return self.stop();
        };
        t.records = t.records - n + after;
        if after == 0 {
            t.buckets.remove(bucket);
        } else {
            t.buckets.insert(bucket.to_string(), after);
        }
    }

    /// `bucket` was removed with all its records.
    pub(crate) fn removed(&self, bucket: &str) {
        if let Some(t) = self.tally.lock().as_mut() {
            if let Some(n) = t.buckets.remove(bucket) {
                t.records -= n;
            }
        }
    }

    /// Stops counting (the counts are no longer known to be exact).
    pub(crate) fn stop(&self) {
        self.on.store(false, Ordering::Release);
        *self.tally.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn put(key: &'static str, prior: Prior) -> Op<'static> {
        Op::put(key.as_bytes(), &b"v"[..], None, prior)
    }

    fn del(key: &'static str, prior: Prior) -> Op<'static> {
        Op::Delete {
            key: Cow::Borrowed(key.as_bytes()),
            prior,
        }
    }

    #[test]
    fn commits_change_the_counts_by_what_their_ops_replaced() {
        let c = Counts::default();
        c.committed("a", &[put("k", Prior::Missing)]);
        assert_eq!(c.totals(), None, "nothing is counted before start");
        c.start([("a".to_string(), 2), ("empty".to_string(), 0)]);
        assert_eq!(c.totals(), Some((1, 2)));
        let live = Prior::Live { deadline: None };
        c.committed(
            "a",
            &[
                put("new", Prior::Missing),
                put("old", live),
                del("gone", Prior::Expired { deadline: 5 }),
                del("never", Prior::Missing),
            ],
        );
        assert_eq!(c.totals(), Some((1, 2)));
        c.committed("b", &[put("x", Prior::Missing), put("y", Prior::Missing)]);
        assert_eq!(c.totals(), Some((2, 4)));
        c.committed("a", &[del("k1", live), del("k2", live)]);
        assert_eq!(c.totals(), Some((1, 2)));
        c.removed("b");
        assert_eq!(c.totals(), Some((0, 0)));
        c.committed("c", &[put("z", Prior::Unknown)]);
        assert_eq!(c.totals(), None, "an unknown prior stops counting");
        assert!(!c.on());
    }

    #[test]
    fn removing_more_than_was_counted_stops_counting() {
        let c = Counts::default();
        c.start([("a".to_string(), 1)]);
        let live = Prior::Live { deadline: None };
        c.committed("a", &[del("k1", live), del("k2", live)]);
        assert_eq!(c.totals(), None);
    }
}
