//! `state check`: `Store::check`, reported.
//!
//! Opening the store runs the engine's own verification (checksums, the checkpoint
//! generation); `Store::check` then reads every stored record of every bucket,
//! expired ones the sweeper has not removed yet included, and the expiry index. The
//! store is opened with a clock frozen at the current time and no sweeper, so no
//! expired record is removed while it is being counted.

use serde_json::json;

use crate::fail::{CmdResult, Failure};
use crate::open::{self, Access, Target, Time};
use crate::output::{human_key, Output};

/// `state check`.
pub fn check(target: &Target, out: &mut Output) -> CmdResult {
    let engine = target.engine_for(Access::Existing)?;
    let store =
        open::open_dir(&target.dir, engine, Time::FrozenAt(open::now_ms())).map_err(|f| {
            Failure {
                message: format!("check: the store cannot be opened: {}", f.message),
                ..f
            }
        })?;
    let report = open::with_store(store, |store| Ok(store.check()?))?;
    let problems = report.problem_messages();
    let (records, with_ttl) = (report.records(), report.with_ttl());
    if out.json {
        out.json_line(&json!({
            "path": target.dir,
            "engine": engine.as_str(),
            "ok": problems.is_empty(),
            "buckets": report.buckets.len(),
            "records": records,
            "with_ttl": with_ttl,
            "expired_unswept": report.expired_unswept(),
            "indexed_ttl": report.indexed_ttl,
            "problems": problems,
        }))?;
    } else {
        out.line(format!("store {} ({engine})", target.dir.display()))?;
        for b in &report.buckets {
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
                report.buckets.len()
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
