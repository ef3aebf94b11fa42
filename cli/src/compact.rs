//! `state compact`: `Store::compact`, reported (memfile folds its logs into a
//! snapshot; sled's store is copied, verified and swapped in; see the core's docs).

use indicatif::HumanBytes;
use serde_json::json;
use state_core::Error;

use crate::fail::{CmdResult, Failure};
use crate::open::{self, Access, Target, Time};
use crate::output::Output;

/// `state compact`.
pub fn compact(target: &Target, out: &mut Output) -> CmdResult {
    let engine = target.engine_for(Access::Existing)?;
    let store = open::open_dir(&target.dir, engine, Time::Live)?;
    // The canonical path: a symlinked --store compacts the real directory.
    let dir = store.path().to_path_buf();
    let report = open::with_store(store, |store| store.compact().map_err(failure))?;
    if out.json {
        out.json_line(&json!({
            "path": dir,
            "engine": engine.as_str(),
            "buckets": report.buckets,
            "records": report.records,
            "before_bytes": report.before_bytes,
            "after_bytes": report.after_bytes,
        }))
    } else {
        out.line(format!(
            "compacted {}: {} -> {} ({} records in {} buckets)",
            dir.display(),
            HumanBytes(report.before_bytes),
            HumanBytes(report.after_bytes),
            report.records,
            report.buckets
        ))
    }
}

/// A leftover copy of an interrupted compaction gets a hint on what to do.
fn failure(e: Error) -> Failure {
    let leftover = matches!(&e, Error::Io { source, .. }
        if source.kind() == std::io::ErrorKind::AlreadyExists);
    let f = Failure::from(e);
    if leftover {
        f.with_hint(
            "the store itself is intact; once no `state compact` is running, delete that \
             directory and run compact again",
        )
    } else {
        f
    }
}
