//! Store functions: options, open, close, flush, info, bucket names and removal.

use std::ffi::{c_char, CStr};
use std::mem::size_of;
use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use state_core::limits::{DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_VALUE_SIZE};
use state_core::{Engine, Store, DEFAULT_CACHE_SIZE, DEFAULT_FLUSH_INTERVAL};

use crate::boundary::{
    arg_cstr, arg_out, arg_sized_out, arg_str, put, put_opt, put_sized, run, run_void, Fail,
    StructSize,
};
use crate::buffers::{buf_free, buf_from, state_strings, strings_from};
use crate::handles::{get, register, state_store, unregister};
use crate::status::state_status;

/// Options for `state_open`. Always prepare one with `state_options_init`, then change
/// the fields you need:
///
/// ```c
/// state_options opts;
/// state_options_init(&opts, sizeof opts);
/// opts.sync = true;
/// state_open("state-data", &opts, &store);
/// ```
///
/// Later versions only append fields. `struct_size` tells the library which version of
/// the struct the program was compiled with, so old programs keep working with new
/// libraries (missing fields take their defaults) and a new program that sets a field
/// an old library does not know gets `STATE_INVALID_ARGUMENT` rather than having it
/// silently ignored.
#[repr(C)]
#[derive(Debug)]
pub struct state_options {
    /// `sizeof(state_options)` as the program sees it; set by `state_options_init`.
    pub struct_size: usize,
    /// Storage engine by name (`"sled"`, `"memfile"`, `"redis"`), or NULL for the
    /// default (`"sled"`). The string is read during `state_open` only. With
    /// `"redis"`, `state_open`'s `path` must be the server's URL (`redis://host:port/db`,
    /// `rediss://`, `redis+unix:///socket`, `redis+cluster://h1:p1,h2:p2`, with
    /// optional `?namespace=NAME&timeout_ms=N`); a path that is such a URL opens the
    /// Redis engine whatever this field says.
    pub engine: *const c_char,
    /// `false` (default): periodic durability, flushed every `flush_interval_ms`.
    /// `true`: every write returns only once it is on stable storage.
    pub sync: bool,
    /// Interval of the background flush in periodic mode, in ms (default 500; > 0).
    pub flush_interval_ms: u64,
    /// Page-cache size in bytes (default 128 MiB; > 0). sled may use a few times this.
    pub cache_size: u64,
    /// Largest value accepted, in bytes (default 16 MiB; > 0).
    pub max_value_size: usize,
    /// Largest total size of one `state_set_multiple` (keys + values), in bytes
    /// (default 256 MiB; > 0).
    pub max_batch_size: usize,
}

/// The size of the first version of `state_options`: the smallest `struct_size` this
/// library accepts. Freeze this value when fields are appended.
const OPTIONS_V1_SIZE: usize = size_of::<state_options>();

/// Fills `opts` with the default options and sets `opts->struct_size` to
/// `struct_size`, which must be `sizeof *opts` (`sizeof(state_options)`).
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` if `opts` is NULL or `struct_size` is smaller than the
/// first version of the struct.
///
/// # Safety
/// `opts` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn state_options_init(
    opts: *mut state_options,
    struct_size: usize,
) -> state_status {
    run(|| {
        let opts = arg_out(opts, "opts")?;
        if struct_size < OPTIONS_V1_SIZE {
            return Err(Fail::Invalid(format!(
                "struct_size {struct_size} is smaller than state_options ({OPTIONS_V1_SIZE} bytes)"
            )));
        }
        let defaults = state_options {
            struct_size,
            engine: ptr::null(),
            sync: false,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL.as_millis() as u64,
            cache_size: DEFAULT_CACHE_SIZE,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
        };
        // SAFETY: `opts` is non-NULL with `struct_size` >= size_of::<state_options>()
        // writable bytes; fields a newer program knows and we don't are zeroed.
        unsafe {
            put(opts, defaults);
            let tail = opts.cast::<u8>().add(OPTIONS_V1_SIZE);
            ptr::write_bytes(tail, 0, struct_size - OPTIONS_V1_SIZE);
        }
        Ok(state_status::STATE_OK)
    })
}

/// Reads a caller's options into a builder.
///
/// # Safety
/// `opts` is non-NULL and points to an initialized `state_options` of
/// `opts->struct_size` bytes.
unsafe fn builder_from(opts: *const state_options) -> Result<state_core::StoreBuilder, Fail> {
    // SAFETY: the struct_size field is first and always present.
    let size = unsafe { ptr::read(ptr::addr_of!((*opts).struct_size)) };
    if size < OPTIONS_V1_SIZE {
        return Err(Fail::Invalid(format!(
            "opts->struct_size is {size}, smaller than state_options ({OPTIONS_V1_SIZE} \
             bytes); prepare options with state_options_init"
        )));
    }
    // SAFETY: `size` bytes are readable by the contract, and size >= V1 size.
    let tail = unsafe {
        std::slice::from_raw_parts(
            opts.cast::<u8>().add(OPTIONS_V1_SIZE),
            size - OPTIONS_V1_SIZE,
        )
    };
    if let Some(i) = tail.iter().position(|&b| b != 0) {
        return Err(Fail::Invalid(format!(
            "opts sets a field at offset {} that this libstate version ({}) does not know",
            OPTIONS_V1_SIZE + i,
            env!("CARGO_PKG_VERSION")
        )));
    }
    // SAFETY: the whole v1 struct is readable (size >= V1 size).
    let o = unsafe { &*opts };
    let mut b = Store::builder();
    if !o.engine.is_null() {
        // SAFETY: a non-NULL engine is a NUL-terminated string by the struct's contract.
        let name = unsafe { arg_str(o.engine, "opts->engine") }?;
        b = b.engine(name.parse::<Engine>()?);
    }
    Ok(b.sync(o.sync)
        .flush_interval(Duration::from_millis(o.flush_interval_ms))
        .cache_size(o.cache_size)
        .max_value_size(o.max_value_size)
        .max_batch_size(o.max_batch_size))
}

pub(crate) fn path_from(c: &CStr) -> Result<PathBuf, Fail> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes())))
    }
    #[cfg(not(unix))]
    {
        c.to_str()
            .map(PathBuf::from)
            .map_err(|_| Fail::Invalid("path is not valid UTF-8".to_string()))
    }
}

/// Opens (creating if needed) the store in directory `path` and writes its handle to
/// `*store`. `opts` may be NULL for the defaults (sled engine, periodic durability).
///
/// Opening a directory that is already open in this process returns another handle on
/// the same store (its first options stay in force; only a different engine is an
/// error). Each handle must be closed with `state_close`; the store flushes and closes
/// with its last handle.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL `path`/`store`, bad options, path not a directory),
/// `STATE_LOCKED` (another process has the store open), `STATE_CORRUPT`, `STATE_IO`.
///
/// # Safety
/// `path` is a NUL-terminated string (any bytes on Unix); `opts` is NULL or initialized
/// by `state_options_init`; `store` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_open(
    path: *const c_char,
    opts: *const state_options,
    store: *mut *mut state_store,
) -> state_status {
    run(|| {
        // SAFETY: forwarded contract.
        let path = path_from(unsafe { arg_cstr(path, "path") }?)?;
        let store = arg_out(store, "store")?;
        let builder = if opts.is_null() {
            Store::builder()
        } else {
            // SAFETY: non-NULL and initialized by state_options_init per the contract.
            unsafe { builder_from(opts) }?
        };
        let s = builder.open(&path)?;
        let h = match register::<state_store>(Arc::new(s.clone())) {
            Ok(h) => h,
            Err(e) => {
                let _ = s.close();
                return Err(e);
            }
        };
        // SAFETY: checked non-NULL, writable by the contract.
        unsafe { put(store, h) };
        Ok(state_status::STATE_OK)
    })
}

/// Closes the store handle. When it is the store's last handle the store is flushed
/// and its files released; a failed final flush is reported (`STATE_IO`), and the
/// handle is closed even then. Buckets, cursors and services taken from this handle
/// report `STATE_CLOSED` from then on, but must still be closed to release their memory.
///
/// Thread-safe. A handle that is already closed gives `STATE_CLOSED` (never a crash).
///
/// # Safety
/// `store` is any value; it is only looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn state_close(store: *mut state_store) -> state_status {
    run(|| {
        let s = unregister(store, "store")?;
        s.close()?;
        Ok(state_status::STATE_OK)
    })
}

/// Makes every write so far durable (fdatasync), whatever the durability mode.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_CLOSED`, `STATE_IO`, `STATE_INVALID_ARGUMENT` (not a store handle).
///
/// # Safety
/// `store` is any value; it is only looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn state_flush(store: *mut state_store) -> state_status {
    run(|| {
        get(store, "store")?.flush()?;
        Ok(state_status::STATE_OK)
    })
}

/// Figures describing an open store, filled by `state_store_info`: the fields of
/// the core's `StoreInfo`, in its order. Set `struct_size` to `sizeof(state_info)`
/// before the call. Release with `state_info_free`.
#[repr(C)]
#[derive(Debug)]
pub struct state_info {
    /// Set by the caller to `sizeof(state_info)`; later releases append fields and
    /// fill only those that `struct_size` covers.
    pub struct_size: usize,
    /// The store directory (canonical path), NUL-terminated; for a store on a
    /// server, its location (URL without password, and namespace).
    pub path: *mut c_char,
    /// The engine's name (`"sled"`, `"memfile"`, `"redis"`, or a custom engine's
    /// `"custom"`), NUL-terminated.
    pub engine: *mut c_char,
    /// Number of buckets holding at least one live record.
    pub buckets: u64,
    /// Number of live (not expired) records over all buckets.
    pub records: u64,
    /// Number of live records that have a time to live.
    pub expiring: u64,
    /// Bytes the store occupies on disk (0 for a store kept on a server).
    pub disk_bytes: u64,
    /// What the engine says about where its data lives (the Redis engine: server
    /// version, standalone or cluster, persistence settings), NUL-terminated; NULL
    /// when it says nothing.
    pub engine_details: *mut c_char,
}

impl StructSize for state_info {
    fn set_struct_size(&mut self, n: usize) {
        self.struct_size = n;
    }
}

/// Writes the store's figures to `*info`, whose `struct_size` the caller set to
/// `sizeof(state_info)`. Counting records reads every key (O(records)). Release the
/// result with `state_info_free`.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL `info`, a `struct_size` smaller than this
/// library's `state_info`, not a store handle), `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `store` is only looked up; `info` is NULL or valid for a read of its
/// `struct_size` field and a write of `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn state_store_info(
    store: *mut state_store,
    info: *mut state_info,
) -> state_status {
    run(|| {
        // SAFETY: NULL, or its struct_size readable, by the contract.
        let out = unsafe { arg_sized_out(info, "info") }?;
        let s = get(store, "store")?;
        let i = s.info()?;
        let path = i.path.as_os_str().as_encoded_bytes();
        let value = state_info {
            struct_size: 0,
            path: buf_from(path).cast(),
            engine: buf_from(i.engine.as_str().as_bytes()).cast(),
            buckets: i.buckets,
            records: i.records,
            expiring: i.expiring,
            disk_bytes: i.disk_bytes,
            engine_details: i
                .engine_details
                .map_or(ptr::null_mut(), |d| buf_from(d.as_bytes()).cast()),
        };
        // SAFETY: checked, writable for struct_size bytes by the contract.
        unsafe { put_sized(out, value) };
        Ok(state_status::STATE_OK)
    })
}

/// Frees the strings of `info` and sets them to NULL, so freeing twice does nothing.
/// `info` may be NULL.
///
/// Thread-safe for distinct structs.
///
/// # Safety
/// `info` is NULL or was filled by `state_store_info` (or freed by this function).
#[no_mangle]
pub unsafe extern "C" fn state_info_free(info: *mut state_info) {
    run_void(|| {
        if info.is_null() {
            return;
        }
        // SAFETY: non-NULL and valid by the contract.
        let i = unsafe { &mut *info };
        for p in [&mut i.path, &mut i.engine, &mut i.engine_details] {
            if !p.is_null() {
                // SAFETY: made by buf_from, not freed yet (set to NULL below).
                unsafe { buf_free(p.cast()) };
                *p = ptr::null_mut();
            }
        }
    });
}

/// Writes the names of the buckets that hold at least one record, in byte order, to
/// `*names`. Release the list with `state_strings_free`.
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL `names`, a `names->struct_size` smaller than this
/// library's `state_strings`, not a store handle), `STATE_CLOSED`, `STATE_IO`.
///
/// # Safety
/// `store` is only looked up; `names` is NULL or valid for a read of its
/// `struct_size` field and a write of `struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn state_bucket_names(
    store: *mut state_store,
    names: *mut state_strings,
) -> state_status {
    run(|| {
        let s = get(store, "store")?;
        // SAFETY: NULL, or its struct_size readable, by the contract.
        let out = unsafe { arg_sized_out(names, "names") }?;
        let list = strings_from(s.bucket_names()?);
        // SAFETY: checked, writable for struct_size bytes by the contract.
        unsafe { put_sized(out, list) };
        Ok(state_status::STATE_OK)
    })
}

/// Removes bucket `name` and all its records. `*existed` (if `existed` is not NULL) is
/// set to whether it held any record. Open bucket handles on it stay usable (the
/// bucket is simply empty).
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL or invalid name, not a store handle), `STATE_CLOSED`,
/// `STATE_IO`.
///
/// # Safety
/// `store` is only looked up; `name` is a NUL-terminated string; `existed` is NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_bucket_remove(
    store: *mut state_store,
    name: *const c_char,
    existed: *mut bool,
) -> state_status {
    run(|| {
        let s = get(store, "store")?;
        // SAFETY: forwarded contract.
        let name = unsafe { arg_str(name, "name") }?;
        let had = s.remove_bucket(name)?;
        // SAFETY: NULL or writable by the contract.
        unsafe { put_opt(existed, had) };
        Ok(state_status::STATE_OK)
    })
}
