//! `state_connect`: a `state_bucket` for the signed-in client's bucket on a
//! `state serve`, through `state-client`, which every bucket function accepts.

use std::ffi::c_char;
use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use state_client::{CacheOptions, Options};

use crate::any::AnyBucket;
use crate::boundary::{arg_cstr, arg_out, arg_str, put, run, Fail};
use crate::handles::{register, state_bucket};
use crate::sigpipe::NoSigpipe;
use crate::status::state_status;

/// Options for `state_connect`. Prepare one with `state_connect_options_init`, then
/// set the fields you need:
///
/// ```c
/// state_connect_options co;
/// state_connect_options_init(&co, sizeof co);
/// co.token = getenv("STATE_TOKEN");
/// co.timeout_ms = 2000;
/// state_connect("state://127.0.0.1:6380", &co, &bucket);
/// ```
///
/// Later versions only append fields; `struct_size` works as in `state_options`.
/// The strings are read during `state_connect` only.
#[repr(C)]
#[derive(Debug)]
pub struct state_connect_options {
    /// `sizeof(state_connect_options)` as the program sees it; set by
    /// `state_connect_options_init`.
    pub struct_size: usize,
    /// A client's token to sign in with when the URL carries none (on a Unix socket:
    /// to act as that client rather than as the process's Unix user), or NULL.
    pub token: *const c_char,
    /// The client name that goes with `token`, or NULL (the server then finds the
    /// client by its token).
    pub name: *const c_char,
    /// The longest a connection attempt, a request's sending or its reply may take,
    /// in milliseconds (default 10000; > 0). Past it the call fails with `STATE_IO`.
    pub timeout_ms: u64,
    /// A PEM file of the CA certificate(s) a `states://` server's certificate must
    /// chain to, instead of the system's roots; or NULL.
    pub ca_file: *const c_char,
    /// The most keys a client-side cache keeps; 0 (the default): no cache. With a
    /// cache, `state_get` and `state_get_with` of a key read before are answered
    /// in the process, without a round trip, until the server invalidates the key
    /// (docs/c.md, "Client-side cache": what a reader may see).
    pub cache_entries: usize,
    /// The most bytes of keys and values the cache keeps; 0: 64 MiB.
    pub cache_bytes: usize,
}

/// The size of the first version of `state_connect_options`: the smallest
/// `struct_size` this library accepts. Freeze this value when fields are appended.
const CONNECT_OPTIONS_V1_SIZE: usize = size_of::<state_connect_options>();

/// Fills `opts` with the default connection options (no token, no name, a timeout
/// of 10000 ms, the system's CA roots, no client-side cache) and sets `opts->struct_size` to
/// `struct_size`, which must be `sizeof *opts`.
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
pub unsafe extern "C" fn state_connect_options_init(
    opts: *mut state_connect_options,
    struct_size: usize,
) -> state_status {
    run(|| {
        let opts = arg_out(opts, "opts")?;
        if struct_size < CONNECT_OPTIONS_V1_SIZE {
            return Err(Fail::Invalid(format!(
                "struct_size {struct_size} is smaller than state_connect_options \
                 ({CONNECT_OPTIONS_V1_SIZE} bytes)"
            )));
        }
        let defaults = state_connect_options {
            struct_size,
            token: ptr::null(),
            name: ptr::null(),
            timeout_ms: u64::try_from(state_client::DEFAULT_TIMEOUT.as_millis())
                .unwrap_or(u64::MAX),
            ca_file: ptr::null(),
            cache_entries: 0,
            cache_bytes: 0,
        };
        // SAFETY: `opts` is non-NULL with `struct_size` >= the size of the struct
        // writable bytes; fields a newer program knows and we don't are zeroed.
        unsafe {
            put(opts, defaults);
            let tail = opts.cast::<u8>().add(CONNECT_OPTIONS_V1_SIZE);
            ptr::write_bytes(tail, 0, struct_size - CONNECT_OPTIONS_V1_SIZE);
        }
        Ok(state_status::STATE_OK)
    })
}

/// Reads a caller's connection options.
///
/// # Safety
/// `opts` is non-NULL and points to an initialized `state_connect_options` of
/// `opts->struct_size` bytes whose strings are NULL or NUL-terminated.
unsafe fn options_from(opts: *const state_connect_options) -> Result<Options, Fail> {
    // SAFETY: the struct_size field is first and always present.
    let size = unsafe { ptr::read(ptr::addr_of!((*opts).struct_size)) };
    if size < CONNECT_OPTIONS_V1_SIZE {
        return Err(Fail::Invalid(format!(
            "options->struct_size is {size}, smaller than state_connect_options \
             ({CONNECT_OPTIONS_V1_SIZE} bytes); prepare options with \
             state_connect_options_init"
        )));
    }
    // SAFETY: `size` bytes are readable by the contract, and size >= V1 size.
    let tail = unsafe {
        std::slice::from_raw_parts(
            opts.cast::<u8>().add(CONNECT_OPTIONS_V1_SIZE),
            size - CONNECT_OPTIONS_V1_SIZE,
        )
    };
    if let Some(i) = tail.iter().position(|&b| b != 0) {
        return Err(Fail::Invalid(format!(
            "options sets a field at offset {} that this libstate version ({}) does not know",
            CONNECT_OPTIONS_V1_SIZE + i,
            env!("CARGO_PKG_VERSION")
        )));
    }
    // SAFETY: the whole v1 struct is readable (size >= V1 size).
    let o = unsafe { &*opts };
    if o.timeout_ms == 0 {
        return Err(Fail::Invalid("options->timeout_ms must be > 0".into()));
    }
    let text = |p: *const c_char, name: &str| -> Result<Option<String>, Fail> {
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: non-NULL, NUL-terminated by the contract.
        Ok(Some(unsafe { arg_str(p, name) }?.to_string()))
    };
    let ca_file = if o.ca_file.is_null() {
        None
    } else {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: non-NULL, NUL-terminated by the contract.
        let c = unsafe { arg_cstr(o.ca_file, "options->ca_file") }?;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes())))
    };
    Ok(Options {
        timeout: Duration::from_millis(o.timeout_ms),
        token: text(o.token, "options->token")?,
        name: text(o.name, "options->name")?,
        ca_file,
        cache: (o.cache_entries > 0).then(|| {
            let mut c = CacheOptions::entries(o.cache_entries);
            if o.cache_bytes > 0 {
                c.max_bytes = o.cache_bytes;
            }
            c
        }),
        ..Options::default()
    })
}

/// Connects to the `state serve` at `url` and writes a bucket handle for the
/// signed-in client's bucket to `*bucket`: every bucket function accepts it (get,
/// set, delete, get/set multiple, the TTL functions, cursors, watch; see "Remote
/// buckets" below) with the same results, status codes and free rules as for a
/// bucket of `state_bucket_open`. Release it with `state_bucket_close`.
///
/// `url`: `state+unix:///path/to/state.sock` (signs in as the process's Unix user by
/// the socket's peer credentials, or as `options->token`'s client),
/// `state://[NAME:TOKEN@]host:port` (TCP; a client's name and token, in the URL or
/// in `options`) or `states://...` (the same over TLS). NULL: the default store's
/// socket, `$STATE_STORE/state.sock`, else `./state-data/state.sock` (the `state`
/// CLI's rule). `options` may be NULL for the defaults (`state_connect_options_init`).
///
/// The connection is made and checked before this returns, so a server that is not
/// there, or refuses the credentials, is reported here.
///
/// **Remote buckets.** Each call is one request to the server (a `get_multiple` of
/// any number of keys is one request). Argument checks are the embedded ones, made
/// before anything is sent. A lost connection, or a server that does not answer
/// within `timeout_ms`, is `STATE_IO` with a message naming the server: a read is
/// first retried once on a fresh connection (so the first read after a server
/// restart succeeds), a write never is (its message says the outcome is unknown),
/// and the next call connects again. A refused sign-in is `STATE_INVALID_ARGUMENT`;
/// a write over the client's quota `STATE_QUOTA_EXCEEDED`. Differences from an
/// embedded bucket: `state_get_with` lends the reply's bytes and holds no lock
/// (writes from inside `visit` work); the events of `state_watch` carry no value
/// (`value` NULL, `value_len` 0, `is_new` false) and, after the watch's connection
/// was lost, the watch subscribes again by itself and delivers one
/// `STATE_EVENT_LAGGED` with `missed` 0 (unknown: read the keys again); a
/// `state_unwatch` of a remote watch may wait up to about 50 ms (up to `timeout_ms`
/// while the watch is subscribing again). `state_bucket_close`
/// closes the idle connections (cursors taken from the bucket keep working);
/// store functions (`state_close`, `state_bucket_names`, ...) take stores, not
/// buckets, and do not apply.
///
/// Thread-safe; the handle may be shared between threads (each call takes a
/// connection of its own from the handle's pool).
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (a malformed URL, NULL `bucket`, bad options, refused
/// credentials), `STATE_IO` (the server cannot be reached or does not answer in
/// time).
///
/// # Safety
/// `url` is NULL or a NUL-terminated string; `options` is NULL or points to an
/// initialized `state_connect_options` of `options->struct_size` bytes whose
/// strings are NULL or NUL-terminated; `bucket` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_connect(
    url: *const c_char,
    options: *const state_connect_options,
    bucket: *mut *mut state_bucket,
) -> state_status {
    run(|| {
        let url = if url.is_null() {
            None
        } else {
            // SAFETY: non-NULL, NUL-terminated by the contract.
            Some(unsafe { arg_str(url, "url") }?)
        };
        let options = if options.is_null() {
            Options::default()
        } else {
            // SAFETY: forwarded contract.
            unsafe { options_from(options) }?
        };
        let out = arg_out(bucket, "bucket")?;
        let remote = {
            let _no_sigpipe = NoSigpipe::new();
            state_client::connect_with(url, options)?
        };
        let h = register::<state_bucket>(Arc::new(AnyBucket::Remote(remote)))?;
        // SAFETY: checked non-NULL, writable by the contract.
        unsafe { put(out, h) };
        Ok(state_status::STATE_OK)
    })
}
