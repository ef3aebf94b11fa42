//! `state dump`: `Store::export_with` to standard output or a file.
//!
//! The JSON is written exactly as `Store::export_json` writes it (indented, buckets
//! and keys in byte order), so a dump loads into the original state service as well.

use std::io;
use std::path::Path;

use serde_json::json;
use state_core::{Error, Store};

use crate::args::Format;
use crate::fail::{CmdResult, Failure};
use crate::output::{stdout_failure, Output};

/// The core's format for a `--format` value.
pub fn core_format(f: Format) -> state_core::Format {
    match f {
        Format::Json => state_core::Format::Json,
        Format::Jsonl => state_core::Format::JsonLines,
    }
}

/// `state dump`.
pub fn dump(
    store: &Store,
    buckets: &[String],
    output: Option<&Path>,
    format: Format,
    out: &mut Output,
) -> CmdResult {
    let names = chosen_buckets(store, buckets)?;
    let fmt = core_format(format);
    let report = match output {
        None => {
            let r = store
                .export_with(out.writer(), fmt, Some(&names), |_| {})
                .map_err(|e| written(e, store, stdout_failure))?;
            out.flush()?;
            r
        }
        Some(path) => store
            .export_file(path, fmt, Some(&names), |_| {})
            .map_err(|e| written(e, store, |e| Failure::output(path.display(), e)))?,
    };
    if format == Format::Json {
        // The note counts every key with a TTL in the store (the export saw only
        // the chosen buckets), as `state dump` always has.
        let with_ttl = store.info()?.expiring;
        if with_ttl > 0 {
            out.note(format_args!(
                "note: the store has {with_ttl} keys with a TTL; the JSON format cannot \
                 hold TTLs (--format jsonl keeps them)"
            ));
        }
    }
    if let Some(path) = output {
        if out.json {
            out.json_line(&json!({
                "file": path,
                "format": fmt.as_str(),
                "buckets": report.buckets,
                "records": report.records,
            }))?;
        } else {
            out.line(format!(
                "dumped {} records from {} buckets to {}",
                report.records,
                report.buckets,
                path.display()
            ))?;
        }
    }
    Ok(())
}

/// An export's error: a failed write (an I/O error on anything but the store's own
/// files) is reported as a write to the output.
fn written(e: Error, store: &Store, write: impl FnOnce(io::Error) -> Failure) -> Failure {
    match e {
        Error::Io { path, source } if !path.starts_with(store.path()) => write(source),
        other => other.into(),
    }
}

/// All buckets, or the named ones; a named bucket that does not exist is *not
/// found* before anything is written.
fn chosen_buckets(store: &Store, wanted: &[String]) -> CmdResult<Vec<String>> {
    let all = store.bucket_names()?;
    if wanted.is_empty() {
        return Ok(all);
    }
    for name in wanted {
        store.bucket(name)?;
        if all.binary_search(name).is_err() {
            return Err(Failure::not_found(format!("bucket {name:?} not found")));
        }
    }
    Ok(wanted.to_vec())
}
