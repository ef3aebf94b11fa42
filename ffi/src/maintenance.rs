//! Maintenance and transfer: check, compact, export and import (the core's
//! `Store::check`, `Store::compact`, `Store::export_file`, `Store::import_from`).

use std::ffi::{c_char, c_void};
use std::ptr;

use state_core::{ExportProgress, Format, ImportProgress};

use crate::boundary::{
    arg_cstr, arg_sized_out, arg_sized_out_opt, put, put_sized, run, run_void, Fail, StructSize,
};
use crate::buffers::{buf_free, buf_from};
use crate::handles::{get, state_store};
use crate::status::state_status;
use crate::store::path_from;

/// `format` of `state_export` / `state_import`: the original state service's JSON
/// file `{bucket: {key: base64}}` (TTLs are not kept).
pub const STATE_FORMAT_JSON: u32 = 0;
/// `format` of `state_export` / `state_import`: JSON lines, one
/// `{"bucket","key","value"[,"expires_at_ms"]}` object per line (TTLs kept as
/// deadlines).
pub const STATE_FORMAT_JSON_LINES: u32 = 1;

/// The progress callback of `state_export` and `state_import`: receives the
/// caller's `ctx` and the number of records written so far. It runs on the calling
/// thread, with no lock of the store held; it must not call back into this store's
/// `state_export` / `state_import` / `state_compact`.
pub type state_progress_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, records_done: u64)>;

/// What `state_check` found. Set `struct_size` to `sizeof(state_check_report)`
/// before the call. Release it with `state_check_report_free`.
#[repr(C)]
#[derive(Debug)]
pub struct state_check_report {
    /// Set by the caller to `sizeof(state_check_report)`; later releases append
    /// fields and fill only those that `struct_size` covers.
    pub struct_size: usize,
    /// Buckets read.
    pub buckets: u64,
    /// Records that could be read (expired ones not yet swept included).
    pub records: u64,
    /// Readable records that carry a deadline.
    pub with_ttl: u64,
    /// Readable records whose deadline has passed but that are not removed yet.
    pub expired_unswept: u64,
    /// Number of problems found; 0 means the store is sound.
    pub problem_count: u64,
    /// The problems, one per line (each ending in `'\n'`), NUL-terminated; an empty
    /// string when there are none. Every bad record is listed, not only a bucket's first.
    pub problems: *mut c_char,
    /// Length of `problems` in bytes, without the NUL.
    pub problems_len: usize,
}

/// What `state_compact` did. Set `struct_size` to `sizeof(state_compact_report)`
/// before the call.
#[repr(C)]
#[derive(Debug, Default)]
pub struct state_compact_report {
    /// Set by the caller to `sizeof(state_compact_report)`; later releases append
    /// fields and fill only those that `struct_size` covers.
    pub struct_size: usize,
    /// Bytes of the store's files before.
    pub before_bytes: u64,
    /// Bytes of the store's files after.
    pub after_bytes: u64,
    /// Buckets holding a record afterwards.
    pub buckets: u64,
    /// Records afterwards.
    pub records: u64,
}

impl StructSize for state_check_report {
    fn set_struct_size(&mut self, n: usize) {
        self.struct_size = n;
    }
}

impl StructSize for state_compact_report {
    fn set_struct_size(&mut self, n: usize) {
        self.struct_size = n;
    }
}

/// What `state_backup` wrote. Set `struct_size` to `sizeof(state_backup_report)`
/// before the call.
#[repr(C)]
#[derive(Debug, Default)]
pub struct state_backup_report {
    /// Set by the caller to `sizeof(state_backup_report)`; later releases append
    /// fields and fill only those that `struct_size` covers.
    pub struct_size: usize,
    /// Buckets in the copy holding a record.
    pub buckets: u64,
    /// Records in the copy (expired ones not yet swept included).
    pub records: u64,
    /// Bytes of the copy's files.
    pub bytes: u64,
    /// The longest time the backup held writers up, in nanoseconds.
    pub write_pause_ns: u64,
}

impl StructSize for state_backup_report {
    fn set_struct_size(&mut self, n: usize) {
        self.struct_size = n;
    }
}

/// The core's progress callback calling the C one (if any) with the records done.
fn notify(progress: state_progress_fn, ctx: *mut c_void) -> impl FnMut(u64) {
    move |records_done| {
        if let Some(f) = progress {
            // SAFETY: the caller's callback with the caller's ctx, as documented.
            unsafe { f(ctx, records_done) };
        }
    }
}

/// Writes `value` to the optional out-parameter `out`.
///
/// # Safety
/// `out` is NULL or valid for a write.
unsafe fn put_if(out: *mut u64, value: u64) {
    if !out.is_null() {
        // SAFETY: non-NULL, writable by the contract.
        unsafe { put(out, value) };
    }
}

fn format_of(format: u32) -> Result<Format, Fail> {
    match format {
        STATE_FORMAT_JSON => Ok(Format::Json),
        STATE_FORMAT_JSON_LINES => Ok(Format::JsonLines),
        other => Err(Fail::Invalid(format!(
            "format {other} (expected STATE_FORMAT_JSON or STATE_FORMAT_JSON_LINES)"
        ))),
    }
}

/// Reads every stored record of every bucket and writes what it found to
/// `*report`: counts, and every record that cannot be read plus expiry-index gaps as
/// `problems`. Damage is reported in the report (`problem_count > 0`), not as a
/// status. Nothing is changed.
///
/// Thread-safe; other threads may read and write meanwhile.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL `report`, a `struct_size` smaller than this
/// library's struct, not a store handle), `STATE_CLOSED`, `STATE_IO`,
/// `STATE_CORRUPT` if the scan itself cannot proceed.
///
/// # Safety
/// `store` is only looked up; `report` is NULL or valid for a read of its
/// `struct_size` field and a write of `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn state_check(
    store: *mut state_store,
    report: *mut state_check_report,
) -> state_status {
    run(|| {
        // SAFETY: NULL, or its struct_size readable, by the contract.
        let out = unsafe { arg_sized_out(report, "report") }?;
        let s = get(store, "store")?;
        let r = s.check()?;
        let mut text = String::new();
        for p in r.problem_messages() {
            text.push_str(&p);
            text.push('\n');
        }
        let value = state_check_report {
            struct_size: 0,
            buckets: r.buckets.len() as u64,
            records: r.records(),
            with_ttl: r.with_ttl(),
            expired_unswept: r.expired_unswept(),
            problem_count: r.problem_count() as u64,
            problems: buf_from(text.as_bytes()).cast(),
            problems_len: text.len(),
        };
        // SAFETY: checked, writable for struct_size bytes by the contract.
        unsafe { put_sized(out, value) };
        Ok(state_status::STATE_OK)
    })
}

/// Frees the text of `report` and sets it to NULL, so freeing twice does nothing.
/// `report` may be NULL.
///
/// Thread-safe for distinct reports.
///
/// # Safety
/// `report` is NULL or points to a report filled by `state_check` (or already freed).
#[no_mangle]
pub unsafe extern "C" fn state_check_report_free(report: *mut state_check_report) {
    run_void(|| {
        if report.is_null() {
            return;
        }
        // SAFETY: non-NULL and, by the contract, a report we filled.
        let r = unsafe { &mut *report };
        // SAFETY: `problems` came from buf_from (or is NULL after an earlier free).
        unsafe { buf_free(r.problems.cast()) };
        r.problems = ptr::null_mut();
        r.problems_len = 0;
    });
}

/// Gives disk space back to the file system, keeping every live record and TTL:
/// memfile folds its logs into a snapshot (reads and writes go on); sled's store is
/// copied into `.NAME.compact` beside it, verified and swapped in (every call on
/// the store waits meanwhile). Writes what it did to `*report` if `report` is not NULL.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_IO` (also when a `.NAME.compact` left by an interrupted compaction
/// exists: delete it once no compaction runs), `STATE_CORRUPT` (the copy did not
/// verify; the store is untouched), `STATE_INVALID_ARGUMENT` (not a store handle, a
/// `report` whose `struct_size` is smaller than this library's struct, or called
/// from inside a `state_get_with` callback), `STATE_CLOSED`.
///
/// # Safety
/// `store` is only looked up; `report` is NULL or valid for a read of its
/// `struct_size` field and a write of `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn state_compact(
    store: *mut state_store,
    report: *mut state_compact_report,
) -> state_status {
    run(|| {
        // SAFETY: NULL, or its struct_size readable, by the contract.
        let out = unsafe { arg_sized_out_opt(report, "report") }?;
        let s = get(store, "store")?;
        let r = s.compact()?;
        if let Some(out) = out {
            let value = state_compact_report {
                struct_size: 0,
                before_bytes: r.before_bytes,
                after_bytes: r.after_bytes,
                buckets: r.buckets,
                records: r.records,
            };
            // SAFETY: checked, writable for struct_size bytes by the contract.
            unsafe { put_sized(out, value) };
        }
        Ok(state_status::STATE_OK)
    })
}

/// Writes a point-in-time copy of the open store to the new directory `dest`, while
/// other threads go on reading and writing it: the copy holds every write that
/// returned before the call and none that began after it, and opens as a store of
/// the same engine. Readers are never blocked; writers wait only while the backup
/// swaps a pointer, twice. The copy is built beside `dest` and renamed into place
/// once complete. Writes what it did to `*report` if `report` is not NULL.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_IO` (`dest` exists, or I/O failed; nothing is left at `dest`),
/// `STATE_INVALID_ARGUMENT` (a store kept on a Redis server, whose backups belong to
/// Redis: BGSAVE or `redis-cli --rdb FILE`; `dest` inside the store; another backup
/// of the store running; not a store handle; NULL `dest`; called from inside a
/// `state_get_with` callback), `STATE_CLOSED`.
///
/// # Safety
/// `store` is only looked up; `dest` is NULL or a NUL-terminated string; `report` is
/// NULL or valid for a read of its `struct_size` field and a write of `struct_size`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn state_backup(
    store: *mut state_store,
    dest: *const c_char,
    report: *mut state_backup_report,
) -> state_status {
    run(|| {
        // SAFETY: NULL, or its struct_size readable, by the contract.
        let out = unsafe { arg_sized_out_opt(report, "report") }?;
        let s = get(store, "store")?;
        // SAFETY: forwarded contract.
        let dest = path_from(unsafe { arg_cstr(dest, "dest") }?)?;
        let r = s.backup(&dest)?;
        if let Some(out) = out {
            let value = state_backup_report {
                struct_size: 0,
                buckets: r.buckets,
                records: r.records,
                bytes: r.bytes,
                write_pause_ns: u64::try_from(r.write_pause.as_nanos()).unwrap_or(u64::MAX),
            };
            // SAFETY: checked, writable for struct_size bytes by the contract.
            unsafe { put_sized(out, value) };
        }
        Ok(state_status::STATE_OK)
    })
}

/// Writes every bucket to the file `path` in `format` (`STATE_FORMAT_JSON` or
/// `STATE_FORMAT_JSON_LINES`), buckets and keys in byte order. The file is written to
/// a temporary file beside `path` (mode 0600), synced and renamed over it, so `path`
/// is never left half-written. Expired records are left out. `progress` (may be
/// NULL) is called after each bucket. Writes the number of records to `*records` if
/// `records` is not NULL.
///
/// Thread-safe; writes may go on meanwhile (the export is consistent per record).
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL or non-UTF-8 `path`, unknown `format`), `STATE_IO`,
/// `STATE_CLOSED`.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `progress`, if not NULL, may be called
/// with `ctx`; `records` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_export(
    store: *mut state_store,
    path: *const c_char,
    format: u32,
    progress: state_progress_fn,
    ctx: *mut c_void,
    records: *mut u64,
) -> state_status {
    run(|| {
        let s = get(store, "store")?;
        // SAFETY: forwarded contract.
        let path = path_from(unsafe { arg_cstr(path, "path") }?)?;
        let format = format_of(format)?;
        let mut notify = notify(progress, ctx);
        let r = s.export_file(&path, format, None, |p: &ExportProgress| {
            notify(p.records_done)
        })?;
        // SAFETY: forwarded contract.
        unsafe { put_if(records, r.records) };
        Ok(state_status::STATE_OK)
    })
}

/// Loads the file `path` in `format` into the store. `STATE_FORMAT_JSON`: the
/// whole file is checked first (nothing is written if anything is wrong), then each
/// bucket is written as one atomic batch. `STATE_FORMAT_JSON_LINES`: streamed in
/// atomic batches; a record keeps its deadline, one already expired is skipped; a bad
/// line stops the load (the message names it) and the records before it stay written.
/// Keys already in the store are overwritten. `progress` (may be NULL) is called as
/// records are written. Writes the number of records written to `*records` if
/// `records` is not NULL.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (bad input, with line and column in the message; NULL
/// or non-UTF-8 `path`; unknown `format`), `STATE_TOO_LARGE` (a JSON bucket over the
/// batch limit), `STATE_IO` (the file cannot be read), `STATE_CLOSED`.
///
/// # Safety
/// As `state_export`.
#[no_mangle]
pub unsafe extern "C" fn state_import(
    store: *mut state_store,
    path: *const c_char,
    format: u32,
    progress: state_progress_fn,
    ctx: *mut c_void,
    records: *mut u64,
) -> state_status {
    run(|| {
        let s = get(store, "store")?;
        // SAFETY: forwarded contract.
        let path = path_from(unsafe { arg_cstr(path, "path") }?)?;
        let format = format_of(format)?;
        let mut notify = notify(progress, ctx);
        let r = s.import_file(&path, format, |p: &ImportProgress| notify(p.records_done))?;
        // SAFETY: forwarded contract.
        unsafe { put_if(records, r.records) };
        Ok(state_status::STATE_OK)
    })
}
