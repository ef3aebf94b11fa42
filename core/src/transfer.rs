//! Import and export of the original state service's store file: one JSON object
//! `{bucketID: {key: base64-value}}` (Go's `[]byte` encoding: standard base64 with
//! padding), so a store can move between the original and libstate both ways.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::limits;
use crate::store::Store;

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
    /// Records in the file.
    pub records_total: u64,
}

/// A base64 value, decoded while parsing so a bad one is reported with its position.
struct B64(Vec<u8>);

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<B64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = B64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<B64, E> {
                BASE64
                    .decode(s)
                    .map(B64)
                    .map_err(|e| E::custom(format!("value is not base64: {e}")))
            }
        }
        d.deserialize_str(V)
    }
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
                    let B64(value) = m.next_value()?;
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
    /// *invalid argument* for a malformed file (the message gives line and column)
    /// or a bucket name, key or value that breaks the store's rules; *too large* if a
    /// bucket exceeds the store's `max_batch_size` (raise it for the import);
    /// *I/O* if the file cannot be read; *closed*; engine errors.
    pub fn import_json(&self, path: impl AsRef<Path>) -> Result<ImportReport> {
        self.import_json_with_progress(path, |_| {})
    }

    /// [`Store::import_json`], calling `progress` once the whole file has been read
    /// and checked (nothing written yet) and again after each bucket is written, so a
    /// caller can show a progress bar. Errors as for [`Store::import_json`].
    pub fn import_json_with_progress(
        &self,
        path: impl AsRef<Path>,
        mut progress: impl FnMut(&ImportProgress),
    ) -> Result<ImportReport> {
        let path = path.as_ref();
        let shared = self.shared()?;
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        let StoreFile(buckets) = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(format!(
                "{}: line {} column {}: {}",
                path.display(),
                e.line(),
                e.column(),
                strip_position(&e)
            ))
        })?;
        drop(bytes);
        for (bucket, entries) in &buckets {
            limits::check_bucket_name(bucket).map_err(|e| {
                Error::invalid(format!("{}: bucket {bucket:?}: {e}", path.display()))
            })?;
            let mut total = 0usize;
            for (key, value) in entries {
                limits::check_key(key).map_err(|e| {
                    Error::invalid(format!("{}: bucket {bucket:?}: {e}", path.display()))
                })?;
                limits::check_value(key, value, shared.opts.max_value_size).map_err(|e| {
                    Error::invalid(format!("{}: bucket {bucket:?}: {e}", path.display()))
                })?;
                total = total.saturating_add(key.len() + value.len());
            }
            if total > shared.opts.max_batch_size {
                return Err(Error::TooLarge(format!(
                    "{}: bucket {bucket:?} holds {total} bytes, over the store's max_batch_size of {} \
                     (each bucket is imported as one atomic batch; open the store with a larger limit)",
                    path.display(),
                    shared.opts.max_batch_size
                )));
            }
        }
        let mut done = ImportProgress {
            buckets_total: buckets.iter().filter(|(_, e)| !e.is_empty()).count() as u64,
            records_total: buckets.iter().map(|(_, e)| e.len() as u64).sum(),
            ..ImportProgress::default()
        };
        progress(&done);
        let mut report = ImportReport::default();
        for (bucket, entries) in buckets {
            if entries.is_empty() {
                continue;
            }
            self.bucket(&bucket)?.set_multiple(&entries)?;
            report.buckets += 1;
            report.records += entries.len() as u64;
            report.value_bytes += entries.values().map(|v| v.len() as u64).sum::<u64>();
            done.buckets_done = report.buckets;
            done.records_done = report.records;
            progress(&done);
        }
        Ok(report)
    }

    /// Writes every bucket to `path` in the original's format (`{bucketID: {key:
    /// base64-value}}`, buckets and keys in byte order), readable by
    /// [`Store::import_json`] and by the original state service.
    ///
    /// The file is written to a temporary file beside `path` (mode 0600), synced and
    /// renamed over it, so `path` is never left half-written. Expired keys are left
    /// out; TTLs are not exported (the format has no place for them). Each bucket is
    /// read with a cursor while writes may go on, so the export is consistent per key,
    /// not a point-in-time image of the whole store.
    ///
    /// # Errors
    /// *I/O* if the file cannot be written; *closed*; engine errors.
    pub fn export_json(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        self.shared()?;
        let tmp = temp_path(path);
        let result = self.write_export(&tmp);
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(parent, e))?;
        }
        Ok(())
    }

    fn write_export(&self, tmp: &Path) -> Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(tmp).map_err(|e| Error::io(tmp, e))?;
        let io = |e| Error::io(tmp, e);
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(b"{").map_err(io)?;
        let mut first_bucket = true;
        for name in self.bucket_names()? {
            let bucket = self.bucket(&name)?;
            let mut first_key = true;
            for item in bucket.iter() {
                let (key, value) = item?;
                if first_key {
                    if !first_bucket {
                        out.write_all(b",").map_err(io)?;
                    }
                    first_bucket = false;
                    out.write_all(b"\n  ").map_err(io)?;
                    write_json_string(&mut out, &name, tmp)?;
                    out.write_all(b": {").map_err(io)?;
                } else {
                    out.write_all(b",").map_err(io)?;
                }
                first_key = false;
                out.write_all(b"\n    ").map_err(io)?;
                write_json_string(&mut out, &key, tmp)?;
                out.write_all(b": \"").map_err(io)?;
                out.write_all(BASE64.encode(&value).as_bytes())
                    .map_err(io)?;
                out.write_all(b"\"").map_err(io)?;
            }
            if !first_key {
                out.write_all(b"\n  }").map_err(io)?;
            }
        }
        out.write_all(if first_bucket {
            b"}\n" as &[u8]
        } else {
            b"\n}\n"
        })
        .map_err(io)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }
}

fn write_json_string(out: &mut impl Write, s: &str, path: &Path) -> Result<()> {
    serde_json::to_writer(&mut *out, s)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
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
