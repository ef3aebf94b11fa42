//! `state backup DEST`: `Store::backup`, reported: a point-in-time copy of the store
//! in the new directory DEST, which opens as a store of the same engine.

use indicatif::HumanBytes;
use serde_json::json;

use crate::fail::CmdResult;
use crate::open::{self, Access, Target, Time};
use crate::output::Output;

/// `state backup DEST`.
pub fn backup(target: &Target, dest: &std::path::Path, out: &mut Output) -> CmdResult {
    let engine = target.engine_for(Access::Existing)?;
    let store = open::open_dir(&target.dir, engine, Time::Live)?;
    let dir = store.path().to_path_buf();
    let report = open::with_store(store, |store| Ok(store.backup(dest)?))?;
    if out.json {
        out.json_line(&json!({
            "path": dir,
            "dest": report.path,
            "engine": engine.as_str(),
            "buckets": report.buckets,
            "records": report.records,
            "bytes": report.bytes,
            "write_pause_ms": report.write_pause.as_secs_f64() * 1000.0,
        }))
    } else {
        out.line(format!(
            "backed up {} to {}: {} records in {} buckets, {}",
            dir.display(),
            report.path.display(),
            report.records,
            report.buckets,
            HumanBytes(report.bytes)
        ))
    }
}
