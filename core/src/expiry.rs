//! Expiry (TTL): the deadline index and the sweeper.
//!
//! A record with a TTL carries its absolute deadline (unix ms) in its header (see
//! `record`), which is what every read checks: an expired record is invisible from
//! the moment its deadline passes. Physical removal is the sweeper's job. It walks an
//! index ordered by deadline, kept in an internal bucket with entries
//! `deadline(u64 BE) bucket 0x00 key -> ""`, written in the same atomic batch as the
//! record. So a sweep costs O(expired keys), never O(store size), and records
//! without a TTL have no index entry at all.
//!
//! A plain `set` over a record that had a TTL does not read the old record to remove
//! its index entry (that would cost every plain write a read); the entry goes stale
//! instead. The sweeper only removes a record whose own deadline equals the index
//! entry's, and drops stale entries when their time comes.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use crate::engine::{StorageEngine, Visit, WriteOp};
use crate::error::{Error, Result};
use crate::record;
use crate::store::{Shared, Written};
use crate::watch::{Change, EventKind};

/// The internal bucket holding the deadline index. It starts with a control
/// character, which user bucket names cannot contain.
pub(crate) const INDEX_BUCKET: &str = "\u{1}expiry";

/// Index entries handled per write batch by the sweeper.
const SWEEP_BATCH: usize = 1000;

/// The remaining time to live of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist (or has expired).
    Missing,
    /// The key exists and does not expire.
    NoExpiry,
    /// The key exists and expires after this much more time (rounded to milliseconds).
    Expires(Duration),
}

/// A TTL from milliseconds, as bindings receive it.
///
/// # Errors
/// *invalid argument* if `ms <= 0`.
pub fn ttl_from_millis(ms: i64) -> Result<Duration> {
    if ms <= 0 {
        return Err(Error::invalid(format!("TTL must be positive, got {ms} ms")));
    }
    Ok(Duration::from_millis(ms.unsigned_abs()))
}

/// A TTL from (fractional) seconds, as bindings receive it.
///
/// # Errors
/// *invalid argument* if `secs` is not a finite number greater than zero, or too
/// large to represent.
pub fn ttl_from_secs_f64(secs: f64) -> Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Error::invalid(format!(
            "TTL must be a positive number of seconds, got {secs}"
        )));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| Error::invalid(format!("TTL of {secs} seconds is too large")))
}

/// Checks a TTL and turns it into an absolute deadline from `now_ms`.
pub(crate) fn deadline(now_ms: u64, ttl: Duration) -> Result<u64> {
    if ttl.is_zero() {
        return Err(Error::invalid("TTL must be greater than zero"));
    }
    // Round up: a key never expires before its TTL has fully passed.
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    Ok(now_ms.saturating_add(u64::try_from(ms).unwrap_or(u64::MAX)))
}

/// The index key of (deadline, bucket, key).
pub(crate) fn index_key(deadline_ms: u64, bucket: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + bucket.len() + 1 + key.len());
    k.extend_from_slice(&deadline_ms.to_be_bytes());
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

/// Splits an index key into (deadline, bucket, key).
fn parse_index_key(k: &[u8]) -> Option<(u64, &str, &[u8])> {
    let (d, rest) = k.split_at_checked(8)?;
    let sep = rest.iter().position(|&b| b == 0)?;
    let bucket = std::str::from_utf8(&rest[..sep]).ok()?;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(d);
    Some((u64::from_be_bytes(buf), bucket, &rest[sep + 1..]))
}

/// An index entry together with whether it still describes its record.
struct IndexEntry {
    raw: Vec<u8>,
    bucket: String,
    key: Vec<u8>,
    /// The record exists and carries exactly this entry's deadline.
    current: bool,
}

/// Reads index entries with deadlines in `(lower..upper)` and checks each against
/// its record. `limit` bounds how many are read.
fn index_entries(
    shared: &Shared,
    engine: &dyn StorageEngine,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    limit: usize,
    only_bucket: Option<&str>,
) -> Result<Vec<IndexEntry>> {
    let mut raw_keys: Vec<Vec<u8>> = Vec::new();
    engine.scan(INDEX_BUCKET, lower, upper, false, &mut |k, _| {
        raw_keys.push(k.to_vec());
        if raw_keys.len() >= limit {
            Visit::Stop
        } else {
            Visit::Continue
        }
    })?;
    let mut out = Vec::with_capacity(raw_keys.len());
    for raw in raw_keys {
        let Some((deadline, bucket, key)) = parse_index_key(&raw) else {
            return Err(Error::corrupt(&shared.path, "malformed expiry index entry"));
        };
        if only_bucket.is_some_and(|b| b != bucket) {
            continue;
        }
        let mut current = false;
        engine.get(bucket, key, &mut |v| {
            current =
                record::decode(v, &shared.path).is_ok_and(|r| r.deadline_ms == Some(deadline));
        })?;
        let (bucket, key) = (bucket.to_string(), key.to_vec());
        out.push(IndexEntry {
            raw,
            bucket,
            key,
            current,
        });
    }
    Ok(out)
}

/// The exclusive upper index bound for deadlines `<= now_ms`.
fn upto(now_ms: u64) -> [u8; 8] {
    now_ms.saturating_add(1).to_be_bytes()
}

/// One batch of a sweep.
struct SweptBatch {
    /// Records removed.
    removed: u64,
    /// Whether the batch was full, so more index entries may be due.
    more: bool,
}

/// Removes every record whose deadline has passed, and stale index entries, in
/// batches. Returns the number of records removed.
pub(crate) fn sweep(shared: &Shared) -> Result<u64> {
    let mut removed = 0u64;
    loop {
        let now = shared.opts.clock.now_ms();
        let upper = upto(now);
        let batch = shared.write_with(|engine| {
            let entries = index_entries(
                shared,
                engine,
                Bound::Unbounded,
                Bound::Excluded(&upper),
                SWEEP_BATCH,
                None,
            )?;
            if entries.is_empty() {
                return Ok(Written::unchanged(SweptBatch {
                    removed: 0,
                    more: false,
                }));
            }
            let mut ops = Vec::with_capacity(entries.len() * 2);
            let mut n = 0u64;
            for e in &entries {
                ops.push(WriteOp::Delete {
                    bucket: INDEX_BUCKET,
                    key: &e.raw,
                });
                if e.current {
                    n += 1;
                    ops.push(WriteOp::Delete {
                        bucket: &e.bucket,
                        key: &e.key,
                    });
                }
            }
            engine.write(&ops)?;
            if shared.watch.active() {
                let changes: Vec<Change<'_>> = entries
                    .iter()
                    .filter(|e| e.current)
                    .map(|e| Change {
                        bucket: &e.bucket,
                        key: &e.key,
                        kind: EventKind::Expire,
                        value: None,
                    })
                    .collect();
                shared.watch.publish(&changes);
            }
            Ok(Written::changed(SweptBatch {
                removed: n,
                more: entries.len() == SWEEP_BATCH,
            }))
        })?;
        removed += batch.removed;
        if !batch.more {
            return Ok(removed);
        }
    }
}

/// Number of records that have expired but are still stored, per bucket (buckets
/// without any are absent). One pass over the due part of the index: O(expired).
pub(crate) fn expired_by_bucket(
    shared: &Shared,
    engine: &dyn StorageEngine,
) -> Result<BTreeMap<String, u64>> {
    let upper = upto(shared.opts.clock.now_ms());
    let entries = index_entries(
        shared,
        engine,
        Bound::Unbounded,
        Bound::Excluded(&upper),
        usize::MAX,
        None,
    )?;
    let mut out = BTreeMap::new();
    for e in entries.into_iter().filter(|e| e.current) {
        *out.entry(e.bucket).or_insert(0) += 1;
    }
    Ok(out)
}

/// Number of records of `bucket` that have expired but are still stored.
pub(crate) fn expired_in_bucket(
    shared: &Shared,
    engine: &dyn StorageEngine,
    bucket: &str,
) -> Result<u64> {
    let upper = upto(shared.opts.clock.now_ms());
    let entries = index_entries(
        shared,
        engine,
        Bound::Unbounded,
        Bound::Excluded(&upper),
        usize::MAX,
        Some(bucket),
    )?;
    Ok(entries.iter().filter(|e| e.current).count() as u64)
}

/// Number of live records that have a TTL, over all buckets.
pub(crate) fn expiring(shared: &Shared, engine: &dyn StorageEngine) -> Result<u64> {
    let lower = upto(shared.opts.clock.now_ms());
    let entries = index_entries(
        shared,
        engine,
        Bound::Included(&lower),
        Bound::Unbounded,
        usize::MAX,
        None,
    )?;
    Ok(entries.iter().filter(|e| e.current).count() as u64)
}

/// Number of records, expired or not, that have a TTL and an index entry matching
/// it (what `Store::check` compares with the records that carry a deadline).
pub(crate) fn indexed(shared: &Shared, engine: &dyn StorageEngine) -> Result<u64> {
    let entries = index_entries(
        shared,
        engine,
        Bound::Unbounded,
        Bound::Unbounded,
        usize::MAX,
        None,
    )?;
    Ok(entries.iter().filter(|e| e.current).count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_order_by_deadline_and_round_trip() {
        let a = index_key(5, "b", b"zz");
        let b = index_key(6, "a", b"aa");
        assert!(a < b);
        assert_eq!(parse_index_key(&a), Some((5, "b", &b"zz"[..])));
        assert_eq!(parse_index_key(b"short"), None);
    }

    #[test]
    fn ttl_conversions_reject_non_positive() {
        assert!(ttl_from_millis(0).is_err());
        assert!(ttl_from_millis(-5).is_err());
        assert_eq!(ttl_from_millis(1500).unwrap(), Duration::from_millis(1500));
        assert!(ttl_from_secs_f64(0.0).is_err());
        assert!(ttl_from_secs_f64(-1.0).is_err());
        assert!(ttl_from_secs_f64(f64::NAN).is_err());
        assert!(ttl_from_secs_f64(f64::INFINITY).is_err());
        assert!(ttl_from_secs_f64(1e300).is_err());
        assert_eq!(ttl_from_secs_f64(0.25).unwrap(), Duration::from_millis(250));
    }

    #[test]
    fn deadlines_round_up_and_saturate() {
        assert_eq!(deadline(1000, Duration::from_nanos(1)).unwrap(), 1001);
        assert_eq!(deadline(1000, Duration::from_millis(5)).unwrap(), 1005);
        assert_eq!(
            deadline(u64::MAX - 1, Duration::from_secs(5)).unwrap(),
            u64::MAX
        );
        assert!(deadline(0, Duration::ZERO).is_err());
    }
}
