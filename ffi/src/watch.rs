//! Change notifications: `state_watch` calls a C callback on a libstate thread for
//! every change under a key prefix of a bucket; `state_unwatch` stops it.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use state_client::{RemoteBucket, RemoteWatcher};
use state_core::{EventKind, Notice, Watcher};

use crate::any::AnyBucket;
use crate::boundary::{arg_out, arg_str, put, run, Fail};
use crate::handles::{get, handle_type, register, state_bucket, unregister};
use crate::sigpipe::NoSigpipe;
use crate::status::state_status;

/// `state_event.kind`: the key was set; `value` holds its new value and `is_new`
/// says whether the key was created (it had no live record before).
pub const STATE_EVENT_SET: u32 = 1;
/// `state_event.kind`: the key was deleted.
pub const STATE_EVENT_DELETE: u32 = 2;
/// `state_event.kind`: the key's deadline had passed and its record was removed (by
/// the sweeper, up to its interval after the deadline, or by a write that found it
/// expired). Redis's `expired` event.
pub const STATE_EVENT_EXPIRED: u32 = 3;
/// `state_event.kind`: the watch fell behind and `missed` changes were dropped at
/// this point (`key` is NULL); read the keys again to catch up.
pub const STATE_EVENT_LAGGED: u32 = 4;
/// `state_event.kind`: the key's deadline was set or changed, its value kept
/// (`state_expire`). Redis's `expire` event.
pub const STATE_EVENT_EXPIRE: u32 = 5;
/// `state_event.kind`: the key's deadline was removed, its value kept
/// (`state_persist`). Redis's `persist` event.
pub const STATE_EVENT_PERSIST: u32 = 6;

/// The `state_event.kind` of a core event kind: the one mapping.
fn kind_code(kind: EventKind) -> u32 {
    match kind {
        EventKind::Set => STATE_EVENT_SET,
        EventKind::Delete => STATE_EVENT_DELETE,
        EventKind::Expired => STATE_EVENT_EXPIRED,
        EventKind::Expire => STATE_EVENT_EXPIRE,
        EventKind::Persist => STATE_EVENT_PERSIST,
        // EventKind is non_exhaustive; the test below fails for a kind left out.
        _ => 0,
    }
}

/// One change, lent to a `state_watch_fn` for the duration of the call (copy what
/// you keep).
#[repr(C)]
pub struct state_event {
    /// `sizeof(state_event)` as the library was built: a field appended by a later
    /// release is there only if `struct_size` covers it.
    pub struct_size: usize,
    /// `STATE_EVENT_SET`, `STATE_EVENT_DELETE`, `STATE_EVENT_EXPIRE`,
    /// `STATE_EVENT_PERSIST`, `STATE_EVENT_EXPIRED` or `STATE_EVENT_LAGGED`. Later
    /// releases may add kinds: ignore one you do not know.
    pub kind: u32,
    /// The key, NUL-terminated (NULL for `STATE_EVENT_LAGGED`).
    pub key: *const c_char,
    /// The key's length in bytes, without the NUL.
    pub key_len: usize,
    /// The new value for `STATE_EVENT_SET` (never NULL then, even when empty, except
    /// on a bucket of `state_connect`, whose events carry no value); NULL otherwise.
    pub value: *const u8,
    /// The value's length in bytes.
    pub value_len: usize,
    /// For `STATE_EVENT_LAGGED`: how many changes were dropped (0: unknown, after a
    /// remote watch's connection was lost); 0 otherwise.
    pub missed: u64,
    /// For `STATE_EVENT_SET`: whether the key was created; false otherwise.
    pub is_new: bool,
}

/// A watch started by `state_watch`, released with `state_unwatch`.
pub struct state_watcher {
    _private: [u8; 0],
}

/// The callback of `state_watch`: receives the caller's `ctx` and one event.
pub type state_watch_fn = Option<unsafe extern "C" fn(ctx: *mut c_void, event: *const state_event)>;

handle_type!(state_watcher, Arc<WatchState>, "a watch", false);

/// A watch's state, named by its handle.
pub(crate) struct WatchState {
    /// An embedded watch's watcher, ended by `state_unwatch` (a remote watch's
    /// thread sees `stopped` within [`REMOTE_POLL`]).
    watcher: Option<Arc<Watcher>>,
    /// Set by `state_unwatch`: no callback starts after it.
    stopped: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

thread_local! {
    /// On a watch thread: its watch's identity (the address of its `stopped` flag),
    /// so `state_unwatch` knows when it is called from that watch's own callback.
    /// (Not `std::thread::current()`: on a thread C created, that allocates a handle
    /// that is never freed.)
    static SERVING: Cell<usize> = const { Cell::new(0) };
}

/// The caller's callback and context, moved to the watch thread.
struct Callback {
    f: unsafe extern "C" fn(ctx: *mut c_void, event: *const state_event),
    ctx: *mut c_void,
}

// SAFETY: `state_watch`'s contract says `callback` may be called with `ctx` from
// the watch thread (a thread libstate starts); `ctx` is only passed back to it,
// never dereferenced here, and calls are never concurrent (one thread calls it).
unsafe impl Send for Callback {}

impl Callback {
    fn call(&self, n: &Notice) {
        match n {
            Notice::Change(e) => {
                self.deliver(kind_code(e.kind()), Some(e.key()), e.value(), 0, e.is_new());
            }
            Notice::Lagged(missed) => self.deliver(STATE_EVENT_LAGGED, None, None, *missed, false),
        }
    }

    /// Calls the callback with one event made of these parts.
    fn deliver(
        &self,
        kind: u32,
        key: Option<&str>,
        value: Option<&[u8]>,
        missed: u64,
        is_new: bool,
    ) {
        let mut key_buf: Vec<u8> = Vec::new();
        if let Some(k) = key {
            key_buf.extend_from_slice(k.as_bytes());
            key_buf.push(0);
        }
        let (value, value_len) = match value {
            Some(v) => (v.as_ptr(), v.len()),
            None => (std::ptr::null(), 0),
        };
        let event = state_event {
            struct_size: std::mem::size_of::<state_event>(),
            kind,
            key: if key.is_some() {
                key_buf.as_ptr().cast()
            } else {
                std::ptr::null()
            },
            key_len: key.map_or(0, str::len),
            value,
            value_len,
            missed,
            is_new,
        };
        // SAFETY: the contract allows calling `f` with `ctx` on this thread; `event`
        // and the key and value it points to live until the call returns (`key_buf`
        // and the borrowed value outlive it).
        unsafe { (self.f)(self.ctx, &event) }
    }
}

/// How often a remote watch's thread looks at its stop flag while no event comes
/// (the longest `state_unwatch` of a remote watch waits for it).
const REMOTE_POLL: Duration = Duration::from_millis(50);
/// How long a remote watch waits between attempts to subscribe again after its
/// connection was lost.
const REMOTE_RETRY: Duration = Duration::from_millis(100);

/// The watch thread of a remote bucket: delivers the server's notifications; after
/// a lost connection, subscribes again (every [`REMOTE_RETRY`] until it succeeds
/// or the watch is stopped) and delivers one `STATE_EVENT_LAGGED` with `missed` 0
/// (unknown): changes made while it was away were not seen.
fn remote_watch_loop(
    bucket: &RemoteBucket,
    prefix: &str,
    first: RemoteWatcher,
    stopped: &AtomicBool,
    cb: &Callback,
) {
    let mut watcher = Some(first);
    while !stopped.load(Ordering::Acquire) {
        match &mut watcher {
            Some(w) => match w.recv_timeout(REMOTE_POLL) {
                Ok(Some(e)) => {
                    if stopped.load(Ordering::Acquire) {
                        break;
                    }
                    cb.deliver(kind_code(e.kind), Some(&e.key), None, 0, e.new);
                }
                Ok(None) => {}
                Err(_) => watcher = None,
            },
            None => match bucket.watch(prefix) {
                Ok(w) => {
                    watcher = Some(w);
                    if !stopped.load(Ordering::Acquire) {
                        cb.deliver(STATE_EVENT_LAGGED, None, None, 0, false);
                    }
                }
                Err(_) => std::thread::sleep(REMOTE_RETRY),
            },
        }
    }
}

/// Watches the keys of `bucket` that start with `prefix` (`""`: every key) and calls
/// `callback(ctx, event)` for each change committed after this call returns: sets,
/// deletes, deadlines set or removed, and expired keys removed, in commit order, a
/// batch as its events in order, each once the write is visible to reads. Writes a
/// new watch handle to `*watch`; release it with `state_unwatch`.
///
/// **The callback** runs on one thread libstate starts for this watch, never on the
/// writer's thread and never two calls at once. The event and its key and value are
/// valid only during the call. It may call any libstate function, including writes to
/// the watched bucket (which cause more events) and `state_unwatch` of its own watch.
/// It must return normally (no `longjmp` out of it, no C++ exception through it).
/// Writers never wait for it: while it is slow, events queue (up to 1024); past that
/// they are dropped and one `STATE_EVENT_LAGGED` event tells how many, where they were.
///
/// **Ending**: when the store is closed, the callback receives the events queued
/// before and is then not called again; the handle still needs `state_unwatch`.
///
/// **A bucket of `state_connect`** is watched through the server's keyspace
/// notifications on a connection of the watch's own: the events carry no value
/// (`value` NULL, `value_len` 0) and `is_new` is false. When that connection is lost
/// (the server restarted, or disconnected a watch 1024 events behind), the watch
/// subscribes again by itself, every 100 ms until it succeeds, and then delivers one
/// `STATE_EVENT_LAGGED` with `missed` 0 (unknown): read the keys again. Its
/// `state_unwatch` may wait up to about 50 ms (while it is subscribing again, up to
/// the connection's timeout).
///
/// Thread-safe.
///
/// # Errors
/// `STATE_INVALID_ARGUMENT` (NULL `bucket`, `prefix`, `callback` or `watch`; prefix
/// over 1024 bytes or not UTF-8), `STATE_CLOSED`, `STATE_INTERNAL` (no thread could
/// be started).
///
/// # Safety
/// `bucket` is only looked up; `prefix` is a NUL-terminated string; `callback` may be
/// called with `ctx` from another thread until `state_unwatch` returns (or, when
/// called from the callback itself, until that call of the callback returns); `watch`
/// is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn state_watch(
    bucket: *mut state_bucket,
    prefix: *const c_char,
    callback: state_watch_fn,
    ctx: *mut c_void,
    watch: *mut *mut state_watcher,
) -> state_status {
    run(|| {
        let b = get(bucket, "bucket")?;
        // SAFETY: forwarded contract.
        let prefix = unsafe { arg_str(prefix, "prefix") }?;
        let Some(f) = callback else {
            return Err(Fail::Invalid("callback is NULL".into()));
        };
        let out = arg_out(watch, "watch")?;
        let stopped = Arc::new(AtomicBool::new(false));
        let cb = Callback { f, ctx };
        let spawn = |body: Box<dyn FnOnce() + Send>| {
            let me = Arc::as_ptr(&stopped) as usize;
            std::thread::Builder::new()
                .name("libstate-watch".into())
                .spawn(move || {
                    SERVING.with(|s| s.set(me));
                    body();
                })
                .map_err(|e| {
                    Fail::Core(state_core::Error::Internal(format!(
                        "cannot start the watch thread: {e}"
                    )))
                })
        };
        let state = match &*b {
            AnyBucket::Local(b) => {
                let watcher = Arc::new(b.watch(prefix)?);
                let (w, stop) = (Arc::clone(&watcher), Arc::clone(&stopped));
                let thread = spawn(Box::new(move || {
                    let cb = cb;
                    while let Some(n) = w.recv() {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        cb.call(&n);
                    }
                }))?;
                WatchState {
                    watcher: Some(watcher),
                    stopped,
                    thread: Mutex::new(Some(thread)),
                }
            }
            AnyBucket::Remote(b) => {
                let first = {
                    let _no_sigpipe = NoSigpipe::new();
                    b.watch(prefix)?
                };
                let (b, prefix, stop) = (b.clone(), prefix.to_string(), Arc::clone(&stopped));
                let thread = spawn(Box::new(move || {
                    let cb = cb;
                    // The thread's whole life: it only talks to the server.
                    let _no_sigpipe = NoSigpipe::new();
                    remote_watch_loop(&b, &prefix, first, &stop, &cb);
                }))?;
                WatchState {
                    watcher: None,
                    stopped,
                    thread: Mutex::new(Some(thread)),
                }
            }
        };
        let h = register::<state_watcher>(Arc::new(state))?;
        // SAFETY: checked non-NULL, writable by the contract.
        unsafe { put(out, h) };
        Ok(state_status::STATE_OK)
    })
}

/// Stops a watch and releases its handle. Called from any other thread, it waits
/// for a callback that is running to return: when it returns, the callback is not
/// running and will not be called again (so `ctx` may be freed). Called from inside
/// the watch's own callback, it returns at once and no call follows the current one.
///
/// Thread-safe. A handle that is already released gives `STATE_CLOSED`.
///
/// # Safety
/// `watch` is any value; it is only looked up, never dereferenced.
#[no_mangle]
pub unsafe extern "C" fn state_unwatch(watch: *mut state_watcher) -> state_status {
    run(|| {
        let w = unregister(watch, "watch")?;
        w.stopped.store(true, Ordering::Release);
        if let Some(watcher) = &w.watcher {
            watcher.end();
        }
        let thread = w.thread.lock().take();
        if let Some(t) = thread {
            let me = Arc::as_ptr(&w.stopped) as usize;
            if SERVING.try_with(Cell::get).is_ok_and(|s| s == me) {
                // From inside the callback: the thread ends when it returns.
                drop(t);
            } else if t.join().is_err() {
                return Err(Fail::Core(state_core::Error::Internal(
                    "the watch thread panicked".into(),
                )));
            }
        }
        Ok(state_status::STATE_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event kind the core has (`EventKind::ALL`) has a code of its own.
    #[test]
    fn every_event_kind_has_its_own_code() {
        let mut seen = std::collections::HashSet::from([STATE_EVENT_LAGGED]);
        for &kind in EventKind::ALL {
            let code = kind_code(kind);
            assert_ne!(code, 0, "{kind} has no code");
            assert!(seen.insert(code), "{kind} shares code {code}");
        }
    }
}
