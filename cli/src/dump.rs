//! `state dump`: the original's JSON `{bucket: {key: base64}}`, or JSON lines.
//!
//! The JSON is written exactly as `Store::export_json` writes it (indented, buckets
//! and keys in byte order), so `state dump` and the core's exporter agree byte for
//! byte and a dump loads into the original state service as well.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use state_core::{Store, Ttl};

use crate::args::Format;
use crate::fail::{CmdResult, Failure};
use crate::output::{b64, stdout_failure, Output};

/// One line of the jsonl format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlRecord<V> {
    /// The bucket.
    pub bucket: String,
    /// The key.
    pub key: String,
    /// The value, base64 (standard alphabet, padded).
    pub value: V,
    /// When the key expires, in unix milliseconds; absent if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// What a dump wrote.
#[derive(Debug, Default)]
struct Counts {
    buckets: u64,
    records: u64,
    with_ttl: u64,
}

/// Why writing a dump stopped.
enum Stop {
    Store(state_core::Error),
    Write(io::Error),
}

impl From<state_core::Error> for Stop {
    fn from(e: state_core::Error) -> Stop {
        Stop::Store(e)
    }
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        Stop::Write(e)
    }
}

/// `state dump`. The store must be open with a clock frozen at `now_ms`, so TTLs
/// become exact deadlines and the dump sees one moment of expiry.
pub fn dump(
    store: &Store,
    buckets: &[String],
    output: Option<&Path>,
    format: Format,
    now_ms: u64,
    out: &mut Output,
) -> CmdResult {
    let names = chosen_buckets(store, buckets)?;
    let counts = match output {
        None => {
            let counts = write_dump(store, &names, format, now_ms, out.writer())
                .map_err(|s| stop_failure(s, stdout_failure))?;
            out.flush()?;
            counts
        }
        Some(path) => write_file(store, &names, format, now_ms, path)?,
    };
    if format == Format::Json && counts.with_ttl > 0 {
        eprintln!(
            "state: note: the store has {} keys with a TTL; the JSON format cannot hold \
             TTLs (--format jsonl keeps them)",
            counts.with_ttl
        );
    }
    if let Some(path) = output {
        if out.json {
            out.json_line(&json!({
                "file": path,
                "format": format_name(format),
                "buckets": counts.buckets,
                "records": counts.records,
            }))?;
        } else {
            out.line(format!(
                "dumped {} records from {} buckets to {}",
                counts.records,
                counts.buckets,
                path.display()
            ))?;
        }
    }
    Ok(())
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::Jsonl => "jsonl",
    }
}

/// All buckets, or the named ones (sorted, each once); a named bucket that does not
/// exist is *not found* before anything is written.
fn chosen_buckets(store: &Store, wanted: &[String]) -> CmdResult<Vec<String>> {
    let all = store.bucket_names()?;
    if wanted.is_empty() {
        return Ok(all);
    }
    let mut names: Vec<String> = wanted.to_vec();
    names.sort();
    names.dedup();
    for name in &names {
        store.bucket(name)?;
        if all.binary_search(name).is_err() {
            return Err(Failure::not_found(format!("bucket {name:?} not found")));
        }
    }
    Ok(names)
}

fn stop_failure(s: Stop, write: impl FnOnce(io::Error) -> Failure) -> Failure {
    match s {
        Stop::Store(e) => e.into(),
        Stop::Write(e) => write(e),
    }
}

/// Writes the dump to a temporary file beside `path` (mode 0600), syncs it and
/// renames it over `path`, so `path` is never left half-written.
fn write_file(
    store: &Store,
    names: &[String],
    format: Format,
    now_ms: u64,
    path: &Path,
) -> CmdResult<Counts> {
    let out_fail = |e: io::Error| Failure::output(path.display(), e);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".state-dump-")
        .tempfile_in(&parent)
        .map_err(out_fail)?;
    let counts = {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        let counts = write_dump(store, names, format, now_ms, &mut w)
            .map_err(|s| stop_failure(s, out_fail))?;
        w.flush().map_err(out_fail)?;
        counts
    };
    tmp.as_file().sync_all().map_err(out_fail)?;
    tmp.persist(path).map_err(|e| out_fail(e.error))?;
    fs::File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(out_fail)?;
    Ok(counts)
}

fn write_dump(
    store: &Store,
    names: &[String],
    format: Format,
    now_ms: u64,
    w: &mut dyn Write,
) -> Result<Counts, Stop> {
    match format {
        Format::Json => write_json(store, names, w),
        Format::Jsonl => write_jsonl(store, names, now_ms, w),
    }
}

/// The original's format, laid out as `Store::export_json` lays it out.
fn write_json(store: &Store, names: &[String], w: &mut dyn Write) -> Result<Counts, Stop> {
    let mut counts = Counts::default();
    w.write_all(b"{")?;
    let mut first_bucket = true;
    for name in names {
        let bucket = store.bucket(name)?;
        let mut first_key = true;
        for item in bucket.iter() {
            let (key, value) = item?;
            if first_key {
                if !first_bucket {
                    w.write_all(b",")?;
                }
                first_bucket = false;
                w.write_all(b"\n  ")?;
                serde_json::to_writer(&mut *w, name).map_err(io::Error::from)?;
                w.write_all(b": {")?;
                counts.buckets += 1;
            } else {
                w.write_all(b",")?;
            }
            first_key = false;
            w.write_all(b"\n    ")?;
            serde_json::to_writer(&mut *w, &key).map_err(io::Error::from)?;
            w.write_all(b": \"")?;
            w.write_all(b64(&value).as_bytes())?;
            w.write_all(b"\"")?;
            counts.records += 1;
        }
        if !first_key {
            w.write_all(b"\n  }")?;
        }
    }
    w.write_all(if first_bucket { b"}\n" } else { b"\n}\n" })?;
    // For the note on lost TTLs; this walks the expiry index, not the records.
    counts.with_ttl = store.info()?.expiring;
    Ok(counts)
}

/// One JSON object per line, with each key's absolute expiry deadline.
fn write_jsonl(
    store: &Store,
    names: &[String],
    now_ms: u64,
    w: &mut dyn Write,
) -> Result<Counts, Stop> {
    let mut counts = Counts::default();
    for name in names {
        let bucket = store.bucket(name)?;
        let mut any = false;
        for item in bucket.iter() {
            let (key, value) = item?;
            let expires_at_ms = match bucket.ttl(&key)? {
                Ttl::Expires(d) => {
                    counts.with_ttl += 1;
                    Some(now_ms.saturating_add(d.as_millis() as u64))
                }
                _ => None,
            };
            let rec = JsonlRecord {
                bucket: name.clone(),
                key,
                value: b64(&value),
                expires_at_ms,
            };
            serde_json::to_writer(&mut *w, &rec).map_err(io::Error::from)?;
            w.write_all(b"\n")?;
            counts.records += 1;
            any = true;
        }
        counts.buckets += u64::from(any);
    }
    Ok(counts)
}
