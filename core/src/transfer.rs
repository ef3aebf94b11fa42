//! Import and export in two formats ([`Format`]):
//!
//! - **JSON**, the original state service's store file: one object `{bucketID: {key:
//!   base64-value}}` (Go's `[]byte` encoding: standard base64 with padding), so a store
//!   can move between the original and libstate both ways. It has no place for TTLs.
//! - **JSON lines**: one object per record, `{"bucket":..,"key":..,"value":base64,
//!   "expires_at_ms":deadline}` (`expires_at_ms`, unix milliseconds, only for a key
//!   that expires), streamed both ways, so a dump of any size keeps every TTL.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::bucket::Bucket;
use crate::error::{Error, ErrorKind, Result};
use crate::go_bytes::{self, GoBytes};
use crate::limits;
use crate::maintenance::scan_stored;
use crate::record;
use crate::store::Store;

/// Records per atomic batch when loading JSON lines.
const JSONL_BATCH_RECORDS: usize = 10_000;
/// Bytes of keys and values per batch when loading JSON lines (well under the
/// default 256 MiB batch limit).
const JSONL_BATCH_BYTES: usize = 8 << 20;

/// A file format of [`Store::export_to`] and [`Store::import_from`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// The original state service's store file `{bucketID: {key: base64-value}}`,
    /// indented, buckets and keys in byte order. TTLs are not kept.
    Json,
    /// One JSON object per line: `{"bucket", "key", "value" (base64),
    /// "expires_at_ms" (only if the key expires)}`. TTLs are kept as deadlines.
    JsonLines,
}

impl Format {
    /// The format's name: `"json"` or `"jsonl"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::JsonLines => "jsonl",
        }
    }

    /// JSON lines for a path ending in `.jsonl` or `.ndjson`, JSON otherwise.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Format::JsonLines,
            _ => Format::Json,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = Error;

    /// `"json"`, or `"jsonl"` / `"ndjson"` / `"jsonlines"`; anything else is an
    /// *invalid argument* error.
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "json" => Ok(Format::Json),
            "jsonl" | "ndjson" | "jsonlines" => Ok(Format::JsonLines),
            other => Err(Error::invalid(format!(
                "unknown format {other:?} (expected \"json\" or \"jsonl\")"
            ))),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ExportReport {
    /// Buckets written (those holding at least one live record).
    pub buckets: u64,
    /// Records written.
    pub records: u64,
    /// Records written that have a TTL (in the JSON format their TTL was dropped).
    pub with_ttl: u64,
}

/// How far an export has come; see [`Store::export_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ExportProgress {
    /// Buckets finished.
    pub buckets_done: u64,
    /// Buckets to export.
    pub buckets_total: u64,
    /// Records written so far.
    pub records_done: u64,
}

/// What [`Store::import_json`] loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ImportReport {
    /// Buckets written (each in one atomic batch).
    pub buckets: u64,
    /// Records written (keys that already existed were overwritten).
    pub records: u64,
    /// Bytes of values written (decoded).
    pub value_bytes: u64,
    /// JSON lines records skipped because their deadline had already passed.
    pub expired_skipped: u64,
}

/// How far an import has come; see [`Store::import_json_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ImportProgress {
    /// Buckets written so far.
    pub buckets_done: u64,
    /// Non-empty buckets in the file.
    pub buckets_total: u64,
    /// Records written so far.
    pub records_done: u64,
    /// Records in the file (0 for JSON lines, which is read as a stream).
    pub records_total: u64,
    /// Bytes of input read so far (JSON lines; for JSON, the whole input once read).
    pub bytes_read: u64,
    /// JSON lines: the line being read. When a line is refused, progress is reported
    /// once more before the error is returned, with this line and `records_done`
    /// counting exactly the records written before it.
    pub line: u64,
}

/// One bucket's entries, in file order; a key given twice is an error (the original
/// could not have written it, so the file was edited or damaged).
struct Entries(BTreeMap<String, Vec<u8>>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Entries, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of key: base64-value")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = m.next_key::<String>()? {
                    let GoBytes(value) = m.next_value()?;
                    if out.insert(key.clone(), value).is_some() {
                        return Err(de::Error::custom(format!("key {key:?} appears twice")));
                    }
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The whole file: buckets in file order, a bucket given twice is an error.
struct StoreFile(Vec<(String, BTreeMap<String, Vec<u8>>)>);

impl<'de> Deserialize<'de> for StoreFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<StoreFile, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StoreFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of bucketID: {key: base64-value}")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<StoreFile, A::Error> {
                let mut out: Vec<(String, BTreeMap<String, Vec<u8>>)> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while let Some(bucket) = m.next_key::<String>()? {
                    let Entries(entries) = m.next_value()?;
                    if !seen.insert(bucket.clone()) {
                        return Err(de::Error::custom(format!(
                            "bucket {bucket:?} appears twice"
                        )));
                    }
                    out.push((bucket, entries));
                }
                Ok(StoreFile(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Store {
    /// Loads a store file of the original state service (`{bucketID: {key:
    /// base64-value}}`) into this store, bucket by bucket.
    ///
    /// The whole file is parsed and checked first (JSON syntax, base64, bucket names,
    /// keys, value sizes, each bucket's size against the store's batch limit); if
    /// anything is wrong, nothing is written. Then each bucket is written as one
    /// atomic batch (`set_multiple`), so a bucket is all-or-nothing even if the
    /// process dies mid-import; buckets already written stay. Keys present in the
    /// store and the file are overwritten (and lose any TTL); other keys are kept.
    /// Empty buckets in the file are skipped (a bucket exists while it holds a record).
    ///
    /// # Errors
    /// *invalid argument* for a malformed file (the message gives the path, line and
    /// column) or a bucket name, key or value that breaks the store's rules; *too
    /// large* if a bucket exceeds the store's `max_batch_size` (raise it for the
    /// import); *I/O* if the file cannot be read; *closed*; engine errors.
    pub fn import_json(&self, path: impl AsRef<Path>) -> Result<ImportReport> {
        self.import_json_with_progress(path, |_| {})
    }

    /// [`Store::import_json`], calling `progress` once the whole file has been read
    /// and checked (nothing written yet) and again after each bucket is written, so a
    /// caller can show a progress bar. Errors as for [`Store::import_json`].
    pub fn import_json_with_progress(
        &self,
        path: impl AsRef<Path>,
        progress: impl FnMut(&ImportProgress),
    ) -> Result<ImportReport> {
        self.import_file(path, Format::Json, progress)
    }

    /// [`Store::import_json`] from any reader (a file, standard input, a socket):
    /// everything is read and checked before anything is written. Messages about the
    /// input give its line and column but no file name.
    ///
    /// # Errors
    /// As [`Store::import_json`]; a failing reader is an *I/O* error on `<input>`.
    pub fn import_json_from(&self, reader: impl Read) -> Result<ImportReport> {
        self.import_from(reader, Format::Json, |_| {})
    }

    /// Loads `reader` in `format` into this store, calling `progress` as it goes.
    ///
    /// - [`Format::Json`]: as [`Store::import_json`] (all checked, then one atomic
    ///   batch per bucket).
    /// - [`Format::JsonLines`]: streamed: records are written as they are read, in
    ///   atomic batches of up to 10 000 records of one bucket; a record with
    ///   `expires_at_ms` gets exactly that deadline, and one whose deadline has
    ///   passed is skipped (counted in [`ImportReport::expired_skipped`]). A refused
    ///   line (bad JSON, bad base64, a key or value the store refuses) stops the
    ///   import with an error naming the line; the records before it are written
    ///   (loading again overwrites, so that is safe). Blank lines are skipped.
    ///
    /// # Errors
    /// *invalid argument* / *too large* naming the line (JSON lines) or line and
    /// column (JSON) of bad input; *I/O* on `<input>` if the reader fails; *closed*;
    /// engine errors.
    pub fn import_from(
        &self,
        reader: impl Read,
        format: Format,
        progress: impl FnMut(&ImportProgress),
    ) -> Result<ImportReport> {
        self.shared()?;
        match format {
            Format::Json => import_json_reader(self, reader, Path::new(INPUT), progress),
            Format::JsonLines => {
                JsonlLoader::new(self, progress).run(BufReader::with_capacity(1 << 20, reader))
            }
        }
    }

    /// [`Store::import_from`] the file `path`; messages about bad input start with
    /// the path (`state.json: line 4 column 9: ...`).
    ///
    /// # Errors
    /// As [`Store::import_from`]; *I/O* naming `path` if it cannot be opened or read.
    pub fn import_file(
        &self,
        path: impl AsRef<Path>,
        format: Format,
        progress: impl FnMut(&ImportProgress),
    ) -> Result<ImportReport> {
        let path = path.as_ref();
        self.shared()?;
        let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        self.import_from(file, format, progress)
            .map_err(|e| match e {
                Error::Io { path: p, source } if p == Path::new(INPUT) => Error::io(path, source),
                other => with_prefix(other, &path.display().to_string()),
            })
    }

    /// Writes every bucket to `path` in the original's format (`{bucketID: {key:
    /// base64-value}}`, buckets and keys in byte order), readable by
    /// [`Store::import_json`] and by the original state service.
    ///
    /// The file is written as [`Store::export_file`] writes it (a temporary file
    /// renamed over `path`). Expired keys are left out; TTLs are not exported.
    ///
    /// # Errors
    /// *I/O* if the file cannot be written; *closed*; engine errors.
    pub fn export_json(&self, path: impl AsRef<Path>) -> Result<()> {
        self.export_file(path, Format::Json, None, |_| {})
            .map(|_| ())
    }

    /// Writes every bucket to `writer` in the original's JSON format; see
    /// [`Store::export_with`].
    pub fn export_json_to(&self, writer: impl Write) -> Result<ExportReport> {
        self.export_to(writer, Format::Json)
    }

    /// Writes every bucket to `writer` in `format`; see [`Store::export_with`].
    pub fn export_to(&self, writer: impl Write, format: Format) -> Result<ExportReport> {
        self.export_with(writer, format, None, |_| {})
    }

    /// Writes the named buckets (all if `None`) to `writer` in `format`, buckets and
    /// keys in byte order, calling `progress` after each bucket. The writer is
    /// flushed at the end but not synced (see [`Store::export_file`]).
    ///
    /// Records that have expired when the export starts are left out. A JSON lines
    /// record that expires carries its exact deadline. Each bucket is read in chunks
    /// while writes may go on, so the export is consistent per record, not a
    /// point-in-time image of the store. A named bucket that holds no record
    /// contributes nothing.
    ///
    /// # Errors
    /// *invalid argument* for a bad bucket name (nothing written); *I/O* on
    /// `<output>` if the writer fails (its own error is the source); *closed*;
    /// engine errors.
    pub fn export_with(
        &self,
        mut writer: impl Write,
        format: Format,
        buckets: Option<&[String]>,
        mut progress: impl FnMut(&ExportProgress),
    ) -> Result<ExportReport> {
        let shared = self.shared()?;
        let names = match buckets {
            None => self.bucket_names()?,
            Some(wanted) => {
                let mut names = wanted.to_vec();
                for n in &names {
                    limits::check_bucket_name(n)?;
                }
                names.sort();
                names.dedup();
                names
            }
        };
        let now = shared.opts.clock.now_ms();
        let out = &mut writer;
        let io = |e: std::io::Error| Error::io(Path::new(OUTPUT), e);
        let mut report = ExportReport::default();
        let mut done = ExportProgress {
            buckets_total: names.len() as u64,
            ..ExportProgress::default()
        };
        if format == Format::Json {
            out.write_all(b"{").map_err(io)?;
        }
        for name in &names {
            let mut first_key = true;
            scan_stored(shared, name, |k, raw| {
                let rec = record::decode(raw, &shared.path)?;
                if let record::Stored::Expired { .. } =
                    record::Stored::of(raw, &shared.path, || now)?
                {
                    return Ok(());
                }
                let Some(key) = record::key_str(k) else {
                    return Err(Error::corrupt(&shared.path, "a stored key is not UTF-8"));
                };
                match format {
                    Format::Json => {
                        if first_key {
                            if report.buckets > 0 {
                                out.write_all(b",").map_err(io)?;
                            }
                            out.write_all(b"\n  ").map_err(io)?;
                            write_json_string(&mut *out, name)?;
                            out.write_all(b": {").map_err(io)?;
                        } else {
                            out.write_all(b",").map_err(io)?;
                        }
                        out.write_all(b"\n    ").map_err(io)?;
                        write_json_string(&mut *out, key)?;
                        out.write_all(b": \"").map_err(io)?;
                        out.write_all(encode_value(rec.value).as_bytes())
                            .map_err(io)?;
                        out.write_all(b"\"").map_err(io)?;
                    }
                    Format::JsonLines => {
                        let line = JsonlRecord {
                            bucket: name.as_str(),
                            key,
                            value: encode_value(rec.value),
                            expires_at_ms: rec.deadline_ms,
                        };
                        serde_json::to_writer(&mut *out, &line).map_err(json_write_error)?;
                        out.write_all(b"\n").map_err(io)?;
                    }
                }
                if first_key {
                    report.buckets += 1;
                }
                first_key = false;
                report.records += 1;
                report.with_ttl += u64::from(rec.deadline_ms.is_some());
                Ok(())
            })?;
            if format == Format::Json && !first_key {
                out.write_all(b"\n  }").map_err(io)?;
            }
            done.buckets_done += 1;
            done.records_done = report.records;
            progress(&done);
        }
        if format == Format::Json {
            out.write_all(if report.buckets == 0 {
                b"}\n" as &[u8]
            } else {
                b"\n}\n"
            })
            .map_err(io)?;
        }
        out.flush().map_err(io)?;
        Ok(report)
    }

    /// [`Store::export_with`] into the file `path`, which is never left
    /// half-written: the export goes to a temporary file beside it (mode 0600),
    /// which is synced and renamed over `path`, and the directory is synced.
    ///
    /// # Errors
    /// As [`Store::export_with`], with *I/O* errors naming the temporary file or
    /// `path`; on any error `path` is unchanged and the temporary file removed.
    pub fn export_file(
        &self,
        path: impl AsRef<Path>,
        format: Format,
        buckets: Option<&[String]>,
        progress: impl FnMut(&ExportProgress),
    ) -> Result<ExportReport> {
        let path = path.as_ref();
        self.shared()?;
        let tmp = temp_path(path);
        let result = self.write_export(&tmp, format, buckets, progress);
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(path, e));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(parent, e))?;
        Ok(report)
    }

    fn write_export(
        &self,
        tmp: &Path,
        format: Format,
        buckets: Option<&[String]>,
        progress: impl FnMut(&ExportProgress),
    ) -> Result<ExportReport> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let report = self
            .export_with(&mut out, format, buckets, progress)
            .map_err(|e| rename_output(e, tmp))?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io(tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(tmp, e))?;
        Ok(report)
    }
}

/// A value as the original state service and libstate's dumps encode it: standard
/// base64 with padding (Go's `[]byte` JSON encoding).
pub fn encode_value(value: &[u8]) -> String {
    go_bytes::encode(value)
}

/// The path named in *I/O* errors of a reader given to an import.
const INPUT: &str = "<input>";
/// The path named in *I/O* errors of a writer given to an export.
const OUTPUT: &str = "<output>";

/// An *I/O* error on [`OUTPUT`] renamed to the file that was written.
fn rename_output(e: Error, path: &Path) -> Error {
    match e {
        Error::Io { path: p, source } if p == Path::new(OUTPUT) => Error::io(path, source),
        other => other,
    }
}

/// Prefixes the message of an error about the input (invalid argument, too large)
/// with `prefix` (a file name).
fn with_prefix(e: Error, prefix: &str) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{prefix}: {m}")),
        Error::TooLarge(m) => Error::TooLarge(format!("{prefix}: {m}")),
        other => other,
    }
}

/// The original's JSON: everything read and checked, then written bucket by bucket.
/// `path` names the input in *I/O* errors; messages about the content carry no name.
fn import_json_reader(
    store: &Store,
    mut reader: impl Read,
    path: &Path,
    mut progress: impl FnMut(&ImportProgress),
) -> Result<ImportReport> {
    let shared = store.shared()?;
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let bytes_read = bytes.len() as u64;
    let StoreFile(buckets) = serde_json::from_slice(&bytes).map_err(|e| {
        Error::invalid(format!(
            "line {} column {}: {}",
            e.line(),
            e.column(),
            strip_position(&e)
        ))
    })?;
    drop(bytes);
    for (bucket, entries) in &buckets {
        limits::check_bucket_name(bucket)
            .map_err(|e| Error::invalid(format!("bucket {bucket:?}: {e}")))?;
        let mut total = 0usize;
        for (key, value) in entries {
            limits::check_key(key)
                .map_err(|e| Error::invalid(format!("bucket {bucket:?}: {e}")))?;
            limits::check_value(key, value, shared.opts.max_value_size)
                .map_err(|e| Error::invalid(format!("bucket {bucket:?}: {e}")))?;
            total = total.saturating_add(key.len() + value.len());
        }
        if total > shared.opts.max_batch_size {
            return Err(Error::TooLarge(format!(
                "bucket {bucket:?} holds {total} bytes, over the store's max_batch_size of {} \
                 (each bucket is imported as one atomic batch; open the store with a larger limit)",
                shared.opts.max_batch_size
            )));
        }
    }
    let mut done = ImportProgress {
        buckets_total: buckets.iter().filter(|(_, e)| !e.is_empty()).count() as u64,
        records_total: buckets.iter().map(|(_, e)| e.len() as u64).sum(),
        bytes_read,
        ..ImportProgress::default()
    };
    progress(&done);
    let mut report = ImportReport::default();
    for (bucket, entries) in buckets {
        if entries.is_empty() {
            continue;
        }
        store.bucket(&bucket)?.set_multiple(&entries)?;
        report.buckets += 1;
        report.records += entries.len() as u64;
        report.value_bytes += entries.values().map(|v| v.len() as u64).sum::<u64>();
        done.buckets_done = report.buckets;
        done.records_done = report.records;
        progress(&done);
    }
    Ok(report)
}

/// One line of the JSON lines format, as written.
#[derive(Serialize)]
struct JsonlRecord<'a> {
    bucket: &'a str,
    key: &'a str,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
}

/// One line of the JSON lines format, as read (the value decoded while parsing).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlLine {
    bucket: String,
    key: String,
    value: GoBytes,
    #[serde(default)]
    expires_at_ms: Option<u64>,
}

/// A record waiting in a batch: (line number, key, value).
type Pending = (u64, String, Vec<u8>);

/// Streams JSON lines into per-bucket atomic batches.
struct JsonlLoader<'a, P: FnMut(&ImportProgress)> {
    store: &'a Store,
    now_ms: u64,
    progress: P,
    /// The bucket of the pending batch and its records.
    pending: Option<(Bucket, Vec<Pending>)>,
    pending_bytes: usize,
    seen_buckets: std::collections::HashSet<String>,
    report: ImportReport,
    at: ImportProgress,
}

impl<'a, P: FnMut(&ImportProgress)> JsonlLoader<'a, P> {
    fn new(store: &'a Store, progress: P) -> Self {
        let now_ms = store
            .shared()
            .map(|s| s.opts.clock.now_ms())
            .unwrap_or_default();
        JsonlLoader {
            store,
            now_ms,
            progress,
            pending: None,
            pending_bytes: 0,
            seen_buckets: Default::default(),
            report: ImportReport::default(),
            at: ImportProgress::default(),
        }
    }

    fn run(mut self, mut reader: impl BufRead) -> Result<ImportReport> {
        let mut buf = Vec::with_capacity(4096);
        loop {
            buf.clear();
            let n = match reader.read_until(b'\n', &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    // Write what came before, so the report of what was loaded is true.
                    self.flush()?;
                    return Err(Error::io(Path::new(INPUT), e));
                }
            };
            if n == 0 {
                self.flush()?;
                self.report_progress();
                return Ok(self.report);
            }
            self.at.line += 1;
            self.at.bytes_read += n as u64;
            if self.at.line.is_multiple_of(4096) {
                self.report_progress();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = self.at.line;
            match serde_json::from_slice::<JsonlLine>(&buf) {
                Ok(rec) => self.add(line, rec)?,
                Err(e) => {
                    self.flush()?;
                    let what = format!("column {}: {}", e.column(), strip_position(&e));
                    return Err(self.at_line(line, Error::invalid(what)));
                }
            }
        }
    }

    fn report_progress(&mut self) {
        self.at.records_done = self.report.records;
        self.at.buckets_done = self.report.buckets;
        (self.progress)(&self.at);
    }

    /// Names the line in an error about the input, after reporting progress with
    /// that line and what was loaded before it. Other errors pass unchanged.
    fn at_line(&mut self, line: u64, e: Error) -> Error {
        if !matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::TooLarge) {
            return e;
        }
        self.at.line = line;
        self.report_progress();
        let msg = match e {
            Error::InvalidArgument(m) => format!("line {line}: {m}"),
            other => format!("line {line}: {other}"),
        };
        Error::InvalidArgument(msg)
    }

    fn bucket(&mut self, line: u64, name: &str) -> Result<Bucket> {
        match self.store.bucket(name) {
            Ok(b) => Ok(b),
            Err(e) => Err(self.at_line(line, Error::invalid(e.to_string()))),
        }
    }

    fn add(&mut self, line: u64, rec: JsonlLine) -> Result<()> {
        let JsonlLine {
            bucket,
            key,
            value: GoBytes(value),
            expires_at_ms,
        } = rec;
        if let Some(deadline) = expires_at_ms {
            // Records with a deadline go one by one, after everything read before them.
            self.flush()?;
            if deadline <= self.now_ms {
                self.report.expired_skipped += 1;
                return Ok(());
            }
            let b = self.bucket(line, &bucket)?;
            if let Err(e) = b.set_multiple_until([(&key, &value)], Some(deadline)) {
                return Err(self.wrap_store_error(line, e));
            }
            self.count(&bucket, value.len(), 1);
            return Ok(());
        }
        let same = matches!(&self.pending, Some((b, _)) if b.name() == bucket);
        if !same {
            self.flush()?;
            let b = self.bucket(line, &bucket)?;
            self.pending = Some((b, Vec::with_capacity(1024)));
        }
        self.pending_bytes += key.len() + value.len();
        let full = match &mut self.pending {
            Some((_, items)) => {
                items.push((line, key, value));
                items.len() >= JSONL_BATCH_RECORDS || self.pending_bytes >= JSONL_BATCH_BYTES
            }
            None => false,
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// A store error for the record on `line`: the store's message, named by line.
    fn wrap_store_error(&mut self, line: u64, e: Error) -> Error {
        if matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::TooLarge) {
            self.at_line(line, Error::invalid(e.to_string()))
        } else {
            e
        }
    }

    fn count(&mut self, bucket: &str, value_bytes: usize, records: u64) {
        self.report.records += records;
        self.report.value_bytes += value_bytes as u64;
        if !self.seen_buckets.contains(bucket) {
            self.seen_buckets.insert(bucket.to_string());
            self.report.buckets += 1;
        }
    }

    /// Writes the pending batch. If the store refuses it, writes its records one by
    /// one to find the line at fault (the ones before it are then loaded).
    fn flush(&mut self) -> Result<()> {
        self.pending_bytes = 0;
        let Some((b, items)) = self.pending.take() else {
            return Ok(());
        };
        if items.is_empty() {
            return Ok(());
        }
        match b.set_multiple(items.iter().map(|(_, k, v)| (k, v))) {
            Ok(()) => {
                let bytes = items.iter().map(|(_, _, v)| v.len()).sum();
                self.count(b.name(), bytes, items.len() as u64);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::TooLarge) => {
                for (line, k, v) in &items {
                    if let Err(e) = b.set(k, v) {
                        return Err(self.wrap_store_error(*line, e));
                    }
                    self.count(b.name(), v.len(), 1);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

fn json_write_error(e: serde_json::Error) -> Error {
    Error::io(Path::new(OUTPUT), std::io::Error::from(e))
}

fn write_json_string(out: &mut impl Write, s: &str) -> Result<()> {
    serde_json::to_writer(&mut *out, s).map_err(json_write_error)
}

/// serde_json's message ends with " at line L column C"; the position is given
/// separately, so drop the duplicate.
fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "export".into());
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}
