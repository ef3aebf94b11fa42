//! Expiry (TTL): the deadline index, and what the sweeper finds due. A leaf: it reads
//! through an engine [`Reader`] and names the index's keys; the commit point
//! (`crate::commit`) derives the index operations of every write from these keys, and
//! the store's sweeper commits the removals of what [`due`] returns.
//!
//! A record with a TTL carries its absolute deadline (unix ms) in its header (see
//! `record`), which is what every read checks: an expired record is invisible from
//! the moment its deadline passes. Physical removal is the sweeper's job. It walks an
//! index ordered by deadline, kept per bucket in an internal companion bucket
//! ([`index_bucket`]) with entries `deadline(u64 BE) key -> ""`, written in the same
//! atomic batch as the record (the commit point writes both). So a sweep costs O(expired keys), never O(store
//! size), records without a TTL have no index entry at all, and every batch stays
//! within one bucket and its companions (an engine that shards by bucket, such as
//! Redis Cluster, keeps them on one shard).
//!
//! A plain `set` over a record that had a TTL does not read the old record to remove
//! its index entry (that would cost every plain write a read); the entry goes stale
//! instead. The sweeper only removes a record whose own deadline equals the index
//! entry's, and drops stale entries when their time comes.
//!
//! Stores written before the index was split per bucket kept it in one internal
//! bucket ([`OLD_INDEX_BUCKET`], entries `deadline bucket 0x00 key`); [`migrate`]
//! moves such entries to the per-bucket indexes when the store opens.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::time::Duration;

use crate::engine::{self, Reader, StorageEngine, Visit, WriteOp};
use crate::error::{Error, Result};
use crate::record;

/// The single index bucket of the old layout, spanning every bucket. It starts with
/// a control character, which user bucket names cannot contain.
pub(crate) const OLD_INDEX_BUCKET: &str = "\u{1}expiry";

/// The companion-bucket kind of the expiry index (see [`engine::companion_bucket`]).
const INDEX_KIND: &str = "expiry";

/// Index entries handled per write batch by the sweeper and the migration.
pub(crate) const SWEEP_BATCH: usize = 1000;
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

/// Checks a TTL and turns it into an absolute deadline (unix ms) from `now_ms`,
/// rounded up: a key never expires before its TTL has fully passed.
///
/// # Errors
/// *invalid argument* for a zero `ttl`.
pub fn deadline(now_ms: u64, ttl: Duration) -> Result<u64> {
    if ttl.is_zero() {
        return Err(Error::invalid("TTL must be greater than zero"));
    }
    // Round up: a key never expires before its TTL has fully passed.
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    Ok(now_ms.saturating_add(u64::try_from(ms).unwrap_or(u64::MAX)))
}

/// The name of `bucket`'s expiry-index companion bucket.
pub(crate) fn index_bucket(bucket: &str) -> String {
    engine::companion_bucket(INDEX_KIND, bucket)
}

/// The user bucket whose expiry index `name` is, if it is one.
fn indexed_bucket(name: &str) -> Option<&str> {
    let home = engine::home_bucket(name);
    (home != name && name == index_bucket(home)).then_some(home)
}

/// Appends the index key of (deadline, key) within a bucket's index to `out`.
pub(crate) fn index_key_into(out: &mut Vec<u8>, deadline_ms: u64, key: &[u8]) {
    out.extend_from_slice(&deadline_ms.to_be_bytes());
    out.extend_from_slice(key);
}

/// The index key of (deadline, key) within a bucket's index.
fn index_key(deadline_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    index_key_into(&mut k, deadline_ms, key);
    k
}

/// Splits an index key into (deadline, key).
fn parse_index_key(k: &[u8]) -> Option<(u64, &[u8])> {
    let (d, key) = k.split_at_checked(8)?;
    if key.is_empty() {
        return None;
    }
    let mut buf = [0u8; 8];
    buf.copy_from_slice(d);
    Some((u64::from_be_bytes(buf), key))
}

/// Splits an old-layout index key into (deadline, bucket, key).
fn parse_old_index_key(k: &[u8]) -> Option<(u64, &str, &[u8])> {
    let (d, rest) = k.split_at_checked(8)?;
    let sep = rest.iter().position(|&b| b == 0)?;
    let bucket = std::str::from_utf8(&rest[..sep]).ok()?;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(d);
    Some((u64::from_be_bytes(buf), bucket, &rest[sep + 1..]))
}

/// An index entry together with whether it still describes its record.
pub(crate) struct IndexEntry {
    pub deadline: u64,
    pub key: Vec<u8>,
    /// The record exists and carries exactly this entry's deadline.
    pub current: bool,
}

/// Reads the index entries of `bucket` with deadlines in `(lower..upper)` and checks
/// each against its record (a damaged record names `path`). `limit` bounds how many
/// are read.
fn index_entries(
    engine: Reader<'_>,
    path: &Path,
    bucket: &str,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    limit: usize,
) -> Result<Vec<IndexEntry>> {
    let mut raw_keys: Vec<Vec<u8>> = Vec::new();
    engine.scan(&index_bucket(bucket), lower, upper, false, &mut |k, _| {
        raw_keys.push(k.to_vec());
        if raw_keys.len() >= limit {
            Visit::Stop
        } else {
            Visit::Continue
        }
    })?;
    let mut deadlines = Vec::with_capacity(raw_keys.len());
    let mut keys: Vec<&[u8]> = Vec::with_capacity(raw_keys.len());
    for raw in &raw_keys {
        let Some((deadline, key)) = parse_index_key(raw) else {
            return Err(Error::corrupt(path, "malformed expiry index entry"));
        };
        deadlines.push(deadline);
        keys.push(key);
    }
    // One batched lookup of the records, not one read per entry.
    let mut current = vec![false; keys.len()];
    engine.get_many(bucket, &keys, &mut |i, v| {
        current[i] = record::decode(v, path).is_ok_and(|r| r.deadline_ms == Some(deadlines[i]));
    })?;
    Ok(raw_keys
        .iter()
        .zip(deadlines)
        .zip(current)
        .map(|((raw, deadline), current)| IndexEntry {
            deadline,
            key: raw[8..].to_vec(),
            current,
        })
        .collect())
}

/// The exclusive upper index bound for deadlines `<= now_ms`.
fn upto(now_ms: u64) -> [u8; 8] {
    now_ms.saturating_add(1).to_be_bytes()
}

/// The user buckets that have an expiry index (entries, due or not).
pub(crate) fn indexed_buckets(engine: Reader<'_>) -> Result<Vec<String>> {
    Ok(engine
        .bucket_names()?
        .iter()
        .filter_map(|n| indexed_bucket(n))
        .map(str::to_string)
        .collect())
}

/// Up to [`SWEEP_BATCH`] index entries of `bucket` due at `now_ms` (deadline at or
/// before it), each checked against its record: the sweeper removes the records of
/// the current ones and drops the stale ones.
pub(crate) fn due(
    engine: Reader<'_>,
    path: &Path,
    bucket: &str,
    now_ms: u64,
) -> Result<Vec<IndexEntry>> {
    let upper = upto(now_ms);
    index_entries(
        engine,
        path,
        bucket,
        Bound::Unbounded,
        Bound::Excluded(&upper),
        SWEEP_BATCH,
    )
}

/// Number of records that have expired but are still stored, per bucket (buckets
/// without any are absent). One pass over the due part of each index: O(buckets +
/// expired).
pub(crate) fn expired_by_bucket(
    engine: Reader<'_>,
    path: &Path,
    now_ms: u64,
) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for bucket in indexed_buckets(engine)? {
        let n = expired_in_bucket(engine, path, &bucket, now_ms)?;
        if n > 0 {
            out.insert(bucket, n);
        }
    }
    Ok(out)
}

/// Number of records of `bucket` that have expired but are still stored.
pub(crate) fn expired_in_bucket(
    engine: Reader<'_>,
    path: &Path,
    bucket: &str,
    now_ms: u64,
) -> Result<u64> {
    let upper = upto(now_ms);
    let entries = index_entries(
        engine,
        path,
        bucket,
        Bound::Unbounded,
        Bound::Excluded(&upper),
        usize::MAX,
    )?;
    Ok(entries.iter().filter(|e| e.current).count() as u64)
}

/// Number of live records that have a TTL, over all buckets.
pub(crate) fn expiring(engine: Reader<'_>, path: &Path, now_ms: u64) -> Result<u64> {
    let lower = upto(now_ms);
    let mut n = 0u64;
    for bucket in indexed_buckets(engine)? {
        let entries = index_entries(
            engine,
            path,
            &bucket,
            Bound::Included(&lower),
            Bound::Unbounded,
            usize::MAX,
        )?;
        n += entries.iter().filter(|e| e.current).count() as u64;
    }
    Ok(n)
}

/// Number of records, expired or not, that have a TTL and an index entry matching
/// it (what `Store::check` compares with the records that carry a deadline).
pub(crate) fn indexed(engine: Reader<'_>, path: &Path) -> Result<u64> {
    let mut n = 0u64;
    for bucket in indexed_buckets(engine)? {
        let entries = index_entries(
            engine,
            path,
            &bucket,
            Bound::Unbounded,
            Bound::Unbounded,
            usize::MAX,
        )?;
        n += entries.iter().filter(|e| e.current).count() as u64;
    }
    Ok(n)
}

/// Moves the entries of the old single index bucket ([`OLD_INDEX_BUCKET`]) into the
/// per-bucket indexes, in batches of [`SWEEP_BATCH`] entries, each batch atomic (the
/// new entries written and the old ones deleted together), so a crash part-way
/// leaves a state the next open finishes. Returns the number of entries moved. Runs
/// when a store opens, before anything else writes to it.
///
/// # Errors
/// *corrupt* for an entry that cannot be parsed (nothing of that batch is written);
/// engine errors.
pub(crate) fn migrate(path: &Path, engine: &dyn StorageEngine) -> Result<u64> {
    let mut moved = 0u64;
    loop {
        let mut raw_keys: Vec<Vec<u8>> = Vec::new();
        engine.scan(
            OLD_INDEX_BUCKET,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
            &mut |k, _| {
                raw_keys.push(k.to_vec());
                if raw_keys.len() >= SWEEP_BATCH {
                    Visit::Stop
                } else {
                    Visit::Continue
                }
            },
        )?;
        if raw_keys.is_empty() {
            return Ok(moved);
        }
        let mut new_entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(raw_keys.len());
        for raw in &raw_keys {
            let Some((deadline, bucket, key)) = parse_old_index_key(raw) else {
                return Err(Error::corrupt(
                    path,
                    "malformed entry in the old expiry index",
                ));
            };
            new_entries.push((index_bucket(bucket), index_key(deadline, key)));
        }
        let mut ops = Vec::with_capacity(raw_keys.len() * 2);
        for ((bucket, key), raw) in new_entries.iter().zip(&raw_keys) {
            ops.push(WriteOp::Put {
                bucket,
                key,
                value: &[],
            });
            ops.push(WriteOp::Delete {
                bucket: OLD_INDEX_BUCKET,
                key: raw,
            });
        }
        engine.write(&ops)?;
        moved += raw_keys.len() as u64;
    }
}

/// An entry of the old single-bucket layout (tests of the migration).
#[cfg(test)]
fn old_index_entry(deadline_ms: u64, bucket: &str, key: &[u8]) -> (String, Vec<u8>) {
    let mut k = Vec::with_capacity(8 + bucket.len() + 1 + key.len());
    k.extend_from_slice(&deadline_ms.to_be_bytes());
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    (OLD_INDEX_BUCKET.to_string(), k)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_order_by_deadline_and_round_trip() {
        let a = index_key(5, b"zz");
        let b = index_key(6, b"aa");
        assert!(a < b);
        assert_eq!(parse_index_key(&a), Some((5, &b"zz"[..])));
        assert_eq!(parse_index_key(b"short"), None);
        let (bucket, old) = old_index_entry(7, "b", b"k");
        assert_eq!(bucket, OLD_INDEX_BUCKET);
        assert_eq!(parse_old_index_key(&old), Some((7, "b", &b"k"[..])));
        assert_eq!(indexed_bucket(&index_bucket("b")), Some("b"));
        assert_eq!(indexed_bucket("b"), None);
    }

    /// A store written with the old layout (one index bucket for all buckets) is
    /// migrated when it opens: every entry moves to its bucket's own index, the old
    /// bucket is emptied, and expiry then works as for a new store.
    fn migrates_old_layout(engine: crate::Engine) {
        use crate::{ManualClock, Store};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let open = || {
            Store::builder()
                .engine(engine)
                .clock(clock.clone())
                .sweep_interval(None)
                .open(dir.path())
                .unwrap()
        };
        let store = open();
        // Records written as the old code wrote them: record and old index entry.
        {
            let shared = store.shared().unwrap();
            let e = shared.engine().unwrap();
            let mut ops = Vec::new();
            let mut old = Vec::new();
            for (bucket, key, deadline) in [
                ("a", "soon", 1_000_500u64),
                ("a", "late", 9_000_000),
                ("b", "soon", 1_000_700),
            ] {
                old.push((
                    bucket,
                    key,
                    record::encode(b"v", Some(deadline)),
                    old_index_entry(deadline, bucket, key.as_bytes()),
                ));
            }
            for (bucket, key, value, (ib, ik)) in &old {
                ops.push(WriteOp::Put {
                    bucket,
                    key: key.as_bytes(),
                    value,
                });
                ops.push(WriteOp::Put {
                    bucket: ib,
                    key: ik,
                    value: &[],
                });
            }
            e.write(&ops).unwrap();
            assert_eq!(e.count(OLD_INDEX_BUCKET).unwrap(), 3);
        }
        store.close().unwrap();
        let store = open();
        {
            let shared = store.shared().unwrap();
            let e = shared.engine().unwrap();
            assert_eq!(e.count(OLD_INDEX_BUCKET).unwrap(), 0, "old index emptied");
            assert_eq!(e.count(&index_bucket("a")).unwrap(), 2);
            assert_eq!(e.count(&index_bucket("b")).unwrap(), 1);
        }
        assert_eq!(store.info().unwrap().expiring, 3);
        clock.advance(1000);
        assert_eq!(store.bucket("a").unwrap().len().unwrap(), 1);
        assert_eq!(store.sweep_expired().unwrap(), 2);
        assert_eq!(store.bucket_names().unwrap(), vec!["a".to_string()]);
        assert_eq!(store.info().unwrap().expiring, 1);
        store.close().unwrap();
    }

    #[test]
    fn sled_store_with_the_old_index_layout_is_migrated_on_open() {
        migrates_old_layout(crate::Engine::Sled);
    }

    #[test]
    fn memfile_store_with_the_old_index_layout_is_migrated_on_open() {
        migrates_old_layout(crate::Engine::Memfile);
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
