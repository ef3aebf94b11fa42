//! `state check`: verify a store through the public API.
//!
//! 1. Opening the store runs the engine's own verification: memfile checks the
//!    checksum of its snapshot and of every log record; sled checks its log
//!    segments' checksums during recovery; libstate compares the engine's checkpoint
//!    generation with its marker file (a store that lost durable data is *corrupt*).
//! 2. The store is opened with a clock frozen at the Unix epoch, so no record is
//!    hidden by expiry: every stored record of every bucket is read and decoded
//!    (record header, UTF-8 key), including expired ones the sweeper has not
//!    removed yet, and each bucket's count of readable records must equal the
//!    engine's count.
//! 3. Expiry index: at the epoch, `info().expiring` counts the index entries that
//!    match their record's deadline exactly, one per record at most. It must equal
//!    the number of records that carry a deadline; fewer means some records with a
//!    TTL have no index entry, so the sweeper would never reclaim them. A malformed
//!    index entry makes `info()` fail with *corrupt*. (Stale entries left by a
//!    plain `set` over a key with a TTL are normal: the sweeper drops them.)

use serde_json::json;
use state_core::{Store, Ttl};

use crate::fail::{CmdResult, Failure};
use crate::open::{self, Access, Target, Time};
use crate::output::{human_key, Output};

/// What one bucket holds.
#[derive(Debug, Default)]
struct BucketReport {
    name: String,
    records: u64,
    with_ttl: u64,
    expired_unswept: u64,
}

/// `state check`.
pub fn check(target: &Target, out: &mut Output) -> CmdResult {
    let engine = target.engine_for(Access::Existing)?;
    let now = open::now_ms();
    let store = open::open_dir(&target.dir, engine, Time::FrozenAt(0)).map_err(|f| Failure {
        message: format!("check: the store cannot be opened: {}", f.message),
        ..f
    })?;
    let (buckets, problems, indexed) = open::with_store(store, |store| Ok(inspect(store, now)))?;
    let records: u64 = buckets.iter().map(|b| b.records).sum();
    let with_ttl: u64 = buckets.iter().map(|b| b.with_ttl).sum();
    let expired: u64 = buckets.iter().map(|b| b.expired_unswept).sum();
    if out.json {
        out.json_line(&json!({
            "path": target.dir,
            "engine": engine.as_str(),
            "ok": problems.is_empty(),
            "buckets": buckets.len(),
            "records": records,
            "with_ttl": with_ttl,
            "expired_unswept": expired,
            "indexed_ttl": indexed,
            "problems": problems,
        }))?;
    } else {
        out.line(format!("store {} ({engine})", target.dir.display()))?;
        for b in &buckets {
            out.line(format!(
                "  bucket {}: {} records, {} with a TTL ({} expired, not yet swept)",
                human_key(&b.name),
                b.records,
                b.with_ttl,
                b.expired_unswept
            ))?;
        }
        if problems.is_empty() {
            out.line(format!(
                "ok: {} buckets, {records} records read, {with_ttl} with a TTL, expiry index consistent",
                buckets.len()
            ))?;
        } else {
            out.line(format!("FAILED: {} problems", problems.len()))?;
            for p in &problems {
                out.line(format!("  {p}"))?;
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        out.flush()?;
        Err(Failure::store(format!(
            "check found {} problems in {}",
            problems.len(),
            target.dir.display()
        )))
    }
}

/// Reads everything; returns per-bucket reports, problems, and the number of
/// records with a TTL that the expiry index covers (None if it could not be read).
fn inspect(store: &Store, now_ms: u64) -> (Vec<BucketReport>, Vec<String>, Option<u64>) {
    let mut problems = Vec::new();
    let names = match store.bucket_names() {
        Ok(n) => n,
        Err(e) => return (Vec::new(), vec![format!("listing buckets: {e}")], None),
    };
    let mut reports = Vec::new();
    for name in names {
        let mut r = BucketReport {
            name: name.clone(),
            ..Default::default()
        };
        if let Err(p) = read_bucket(store, &mut r, now_ms) {
            problems.push(p);
        }
        reports.push(r);
    }
    let with_ttl: u64 = reports.iter().map(|b| b.with_ttl).sum();
    let indexed = match store.info() {
        Ok(info) => {
            if info.expiring != with_ttl {
                problems.push(format!(
                    "expiry index: {with_ttl} records carry a deadline but {} are indexed; \
                     the sweeper would never remove the others after they expire",
                    info.expiring
                ));
            }
            Some(info.expiring)
        }
        Err(e) => {
            problems.push(format!("expiry index: {e}"));
            None
        }
    };
    (reports, problems, indexed)
}

/// Reads every record of one bucket; a problem stops that bucket's reading.
fn read_bucket(store: &Store, r: &mut BucketReport, now_ms: u64) -> Result<(), String> {
    let shown = human_key(&r.name).into_owned();
    let b = store
        .bucket(&r.name)
        .map_err(|e| format!("bucket {shown}: {e}"))?;
    let mut last: Option<String> = None;
    for item in b.iter() {
        let (key, _value) = match item {
            Ok(entry) => entry,
            Err(e) => {
                let after = locate_failure(&b, last.as_deref()).or(last);
                return Err(match after {
                    Some(k) => format!("bucket {shown}: reading after key {k:?}: {e}"),
                    None => format!("bucket {shown}: reading its first record: {e}"),
                });
            }
        };
        match b.ttl(&key) {
            Ok(Ttl::Expires(d)) => {
                r.with_ttl += 1;
                // The clock reads 0, so the remaining time is the deadline itself.
                if (d.as_millis() as u64) <= now_ms {
                    r.expired_unswept += 1;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(format!("bucket {shown}: key {key:?}: {e}")),
        }
        r.records += 1;
        last = Some(key);
    }
    let counted = b
        .len()
        .map_err(|e| format!("bucket {shown}: counting: {e}"))?;
    if counted != r.records {
        return Err(format!(
            "bucket {shown}: the engine counts {counted} records but {} could be read",
            r.records
        ));
    }
    Ok(())
}

/// The iterator reads in chunks, so its error does not say where in the chunk the
/// bad record is; stepping a cursor one record at a time from the last good key
/// finds the last readable key before it.
fn locate_failure(b: &state_core::Bucket, last_ok: Option<&str>) -> Option<String> {
    let mut cursor = b.cursor().ok()?;
    let mut good = match last_ok {
        Some(k) => {
            cursor.seek(k).ok()??;
            Some(k.to_string())
        }
        None => None,
    };
    while let Ok(Some((key, _))) = cursor.next() {
        good = Some(key);
    }
    good
}
