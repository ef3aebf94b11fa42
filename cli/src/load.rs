//! `state load`: a JSON dump or original store file (through the core's importer), or
//! JSON lines (streamed here, in batches).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::json;
use state_core::{Bucket, ErrorKind, Store};

use crate::args::Format;
use crate::dump::JsonlRecord;
use crate::fail::{CmdResult, Failure};
use crate::open::{self, Access, Target, Time};
use crate::output::Output;

/// Records per `set_multiple` batch when streaming JSON lines.
const BATCH_RECORDS: usize = 10_000;
/// Bytes of keys and values per batch (well under the core's 256 MiB batch limit).
const BATCH_BYTES: usize = 8 << 20;

/// What a load wrote.
#[derive(Debug, Default)]
struct Summary {
    buckets: u64,
    records: u64,
    value_bytes: u64,
    expired_skipped: u64,
}

/// `state load`.
pub fn load(target: &Target, file: &Path, format: Option<Format>, out: &mut Output) -> CmdResult {
    let start = Instant::now();
    let format = format.unwrap_or_else(|| guess_format(file));
    let summary = match format {
        Format::Json => load_json(target, file)?,
        Format::Jsonl => load_jsonl(target, file)?,
    };
    let secs = start.elapsed().as_secs_f64();
    let shown = display_name(file);
    if out.json {
        return out.json_line(&json!({
            "file": shown,
            "format": if format == Format::Json { "json" } else { "jsonl" },
            "buckets": summary.buckets,
            "records": summary.records,
            "value_bytes": summary.value_bytes,
            "expired_skipped": summary.expired_skipped,
            "seconds": secs,
        }));
    }
    let mut line = format!(
        "loaded {} records ({} of values) into {} buckets from {shown} in {secs:.2} s",
        summary.records,
        HumanBytes(summary.value_bytes),
        summary.buckets,
    );
    if summary.expired_skipped > 0 {
        line.push_str(&format!(
            "; skipped {} already expired",
            summary.expired_skipped
        ));
    }
    out.line(line)
}

/// jsonl for `.jsonl` / `.ndjson` files, JSON otherwise.
fn guess_format(file: &Path) -> Format {
    match file.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson") => Format::Jsonl,
        _ => Format::Json,
    }
}

fn display_name(file: &Path) -> String {
    if is_stdin(file) {
        "standard input".into()
    } else {
        file.display().to_string()
    }
}

fn is_stdin(file: &Path) -> bool {
    file.as_os_str() == "-"
}

/// What a progress display can show.
enum Progress {
    /// A file of this many bytes, read as it is loaded: a bar.
    Bytes(u64),
    /// A stream of unknown length: bytes read so far.
    Stream,
    /// A step of unknown length (the core's JSON importer while it reads and checks
    /// the file, before its record bar appears): elapsed time only.
    Busy,
}

/// A progress display on standard error when it is a terminal, else a hidden one.
fn progress(kind: Progress, what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match kind {
        Progress::Bytes(n) => (
            ProgressBar::new(n),
            "{spinner} {msg} {wide_bar} {bytes}/{total_bytes} eta {eta}",
        ),
        Progress::Stream => (
            ProgressBar::new_spinner(),
            "{spinner} {msg}: {bytes} read in {elapsed}",
        ),
        Progress::Busy => (ProgressBar::new_spinner(), "{spinner} {msg} {elapsed}"),
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = bar.with_style(style);
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A bar counting records written.
fn records_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len} records eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// The JSON format, through `Store::import_json_with_progress`: the whole file is checked before
/// anything is written. Standard input is first copied to a private temporary file.
fn load_json(target: &Target, file: &Path) -> CmdResult<Summary> {
    let spool;
    let path: PathBuf = if is_stdin(file) {
        let mut tmp = tempfile::NamedTempFile::new()
            .map_err(|e| Failure::store(format!("cannot create a temporary file: {e}")))?;
        io::copy(&mut io::stdin().lock(), &mut tmp)
            .map_err(|e| Failure::input(Path::new("standard input"), e))?;
        let p = tmp.path().to_path_buf();
        spool = Some(tmp);
        p
    } else {
        File::open(file).map_err(|e| Failure::input(file, e))?;
        spool = None;
        file.to_path_buf()
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).ok();
    let store = target.open(Access::Create, Time::Live)?;
    let shown = display_name(file);
    let bar = progress(
        Progress::Busy,
        &format!("reading {shown} ({})", HumanBytes(size.unwrap_or_default())),
    );
    // The core reads and checks the whole file first, then writes bucket by bucket:
    // a spinner while reading, then a bar of records written.
    let result = open::with_store(store, |store| {
        Ok(store.import_json_with_progress(&path, |p| {
            if bar.length() != Some(p.records_total) {
                bar.set_length(p.records_total);
                bar.set_style(records_style());
                bar.set_message(format!("loading {shown}"));
            }
            bar.set_position(p.records_done);
        }))
    });
    bar.finish_and_clear();
    let report = result?.map_err(|e| {
        let mut f = Failure::from(e);
        if spool.is_some() {
            // The core names the file it read; that was our spool, not the user's.
            f.message = f.message.replace(&path.display().to_string(), &shown);
        }
        f
    })?;
    drop(spool);
    Ok(Summary {
        buckets: report.buckets,
        records: report.records,
        value_bytes: report.value_bytes,
        expired_skipped: 0,
    })
}

/// A base64 value, decoded while parsing so a bad one is reported at its position.
struct B64(Vec<u8>);

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<B64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = B64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<B64, E> {
                BASE64
                    .decode(s)
                    .map(B64)
                    .map_err(|e| E::custom(format!("value is not base64: {e}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// JSON lines, streamed: records are written in batches as they are read.
fn load_jsonl(target: &Target, file: &Path) -> CmdResult<Summary> {
    let shown = display_name(file);
    let (reader, total): (Box<dyn BufRead>, Option<u64>) = if is_stdin(file) {
        (Box::new(io::stdin().lock()), None)
    } else {
        let f = File::open(file).map_err(|e| Failure::input(file, e))?;
        let len = f.metadata().map(|m| m.len()).ok();
        (Box::new(BufReader::with_capacity(1 << 20, f)), len)
    };
    // A frozen clock: `expires_at_ms` becomes exactly the stored deadline.
    let now = open::now_ms();
    let store = target.open(Access::Create, Time::FrozenAt(now))?;
    let kind = total.map_or(Progress::Stream, Progress::Bytes);
    let bar = progress(kind, &format!("loading {shown}"));
    let result = open::with_store(store, |store| {
        let mut loader = Loader::new(store, &shown, now);
        let read = loader.read_all(reader, &bar);
        // Records read before a bad line are written either way, as the error says.
        let flushed = loader.flush();
        read?;
        flushed?;
        Ok(loader.summary)
    });
    bar.finish_and_clear();
    result
}

/// A record waiting in a batch: (line number, key, value).
type Pending = (u64, String, Vec<u8>);

/// Batches JSON-lines records into per-bucket `set_multiple` calls.
struct Loader<'a> {
    store: &'a Store,
    shown: &'a str,
    now_ms: u64,
    /// The bucket of the pending batch and its records.
    pending: Option<(Bucket, Vec<Pending>)>,
    pending_bytes: usize,
    seen_buckets: std::collections::HashSet<String>,
    summary: Summary,
}

impl<'a> Loader<'a> {
    fn new(store: &'a Store, shown: &'a str, now_ms: u64) -> Loader<'a> {
        Loader {
            store,
            shown,
            now_ms,
            pending: None,
            pending_bytes: 0,
            seen_buckets: Default::default(),
            summary: Summary::default(),
        }
    }

    fn read_all(&mut self, mut reader: Box<dyn BufRead + '_>, bar: &ProgressBar) -> CmdResult {
        let mut buf = Vec::with_capacity(4096);
        let mut line_no = 0u64;
        let mut read = 0u64;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Failure::input(Path::new(self.shown), e))?;
            if n == 0 {
                return Ok(());
            }
            line_no += 1;
            read += n as u64;
            if line_no.is_multiple_of(4096) {
                bar.set_position(read);
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let rec: JsonlRecord<B64> = match serde_json::from_slice(&buf) {
                Ok(rec) => rec,
                Err(e) => {
                    // Write what came before, so the error's count of loaded records is true.
                    self.flush()?;
                    let what = format!("column {}: {}", e.column(), strip_position(&e));
                    return Err(self.at_line(line_no, Failure::usage(what)));
                }
            };
            self.add(line_no, rec)?;
        }
    }

    /// Names the line in a failure and says what was loaded before it.
    fn at_line(&self, line: u64, f: Failure) -> Failure {
        let loaded = self.summary.records;
        Failure {
            message: format!("{}: line {line}: {}", self.shown, f.message),
            hint: Some(format!(
                "the {loaded} records before line {line} were loaded; fix the file and load it \
                 again (loading overwrites, so that is safe)"
            )),
            ..f
        }
    }

    fn bucket(&self, line: u64, name: &str) -> CmdResult<Bucket> {
        self.store
            .bucket(name)
            .map_err(|e| self.at_line(line, e.into()))
    }

    fn add(&mut self, line: u64, rec: JsonlRecord<B64>) -> CmdResult {
        let JsonlRecord {
            bucket,
            key,
            value: B64(value),
            expires_at_ms,
        } = rec;
        if let Some(deadline) = expires_at_ms {
            // TTL records go one by one, after everything read before them.
            self.flush()?;
            if deadline <= self.now_ms {
                self.summary.expired_skipped += 1;
                return Ok(());
            }
            let b = self.bucket(line, &bucket)?;
            let ttl = Duration::from_millis(deadline - self.now_ms);
            b.set_with_ttl(&key, &value, ttl)
                .map_err(|e| self.at_line(line, e.into()))?;
            self.count(&bucket, value.len());
            return Ok(());
        }
        let same = matches!(&self.pending, Some((b, _)) if b.name() == bucket);
        if !same {
            self.flush()?;
            let b = self.bucket(line, &bucket)?;
            self.pending = Some((b, Vec::with_capacity(1024)));
        }
        self.pending_bytes += key.len() + value.len();
        if let Some((_, items)) = &mut self.pending {
            items.push((line, key, value));
            if items.len() >= BATCH_RECORDS || self.pending_bytes >= BATCH_BYTES {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn count(&mut self, bucket: &str, value_len: usize) {
        self.summary.records += 1;
        self.summary.value_bytes += value_len as u64;
        if !self.seen_buckets.contains(bucket) {
            self.seen_buckets.insert(bucket.to_string());
            self.summary.buckets += 1;
        }
    }

    /// Writes the pending batch. If the core rejects it, writes its records one by
    /// one to find the line at fault (the ones before it are then loaded).
    fn flush(&mut self) -> CmdResult {
        self.pending_bytes = 0;
        let Some((b, items)) = self.pending.take() else {
            return Ok(());
        };
        if items.is_empty() {
            return Ok(());
        }
        match b.set_multiple(items.iter().map(|(_, k, v)| (k, v))) {
            Ok(()) => {
                for (_, _, v) in &items {
                    self.count(b.name(), v.len());
                }
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::TooLarge) => {
                for (line, k, v) in &items {
                    b.set(k, v).map_err(|e| self.at_line(*line, e.into()))?;
                    self.count(b.name(), v.len());
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// serde_json's message ends with " at line L column C"; we give the position ourselves.
fn strip_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}
