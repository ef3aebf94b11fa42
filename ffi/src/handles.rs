//! Opaque handles and the registry that makes closed handles detectable.
//!
//! A handle given to C is not a pointer to memory: it is a token (a process-wide id,
//! never reused, cast to a pointer type) that names an entry in [`REGISTRY`]. Every
//! call looks its handle up, so a closed handle, a handle closed twice, a handle of the
//! wrong type or a pointer that never was a handle is *detected* and reported as a
//! status code instead of being dereferenced. The cost is one uncontended read lock
//! and one ordered-map lookup per call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use parking_lot::{Mutex, RwLock};
use state_core::{Bucket, Cursor, StateService, Store};

use crate::boundary::Fail;

/// An open store. Obtained from `state_open`, released with `state_close`.
pub struct state_store {
    _private: [u8; 0],
}

/// A bucket of a store. Obtained from `state_bucket_open`, released with
/// `state_bucket_close`.
pub struct state_bucket {
    _private: [u8; 0],
}

/// A cursor over a bucket. Obtained from `state_cursor_open`, released with
/// `state_cursor_close`.
pub struct state_cursor {
    _private: [u8; 0],
}

/// The per-client state service over a store. Obtained from `state_service_open`,
/// released with `state_service_close`.
pub struct state_service {
    _private: [u8; 0],
}

/// What a handle names.
///
/// Values sit behind an `Arc` so that a lookup costs one reference-count increment.
pub(crate) enum Object {
    Store(Arc<Store>),
    Bucket(Arc<Bucket>),
    // Calls on one cursor are serialized, so sharing it between threads is safe.
    Cursor(Arc<Mutex<Cursor>>),
    Service(Arc<StateService>),
    Watch(Arc<crate::watch::WatchState>),
}

impl Object {
    fn type_name(&self) -> &'static str {
        match self {
            Object::Store(_) => "a store",
            Object::Bucket(_) => "a bucket",
            Object::Cursor(_) => "a cursor",
            Object::Service(_) => "a service",
            Object::Watch(_) => "a watch",
        }
    }
}

/// The live handles by id. An ordered map, not a hash map: a hash table keeps only
/// a pointer into the middle of its allocation, which valgrind reports as "possibly
/// lost" at exit for every program linking libstate; a B-tree's nodes are held by
/// pointers to their start. With the few handles a program holds, a lookup costs
/// about as much as hashing.
type IdMap = BTreeMap<usize, Object>;

struct Registry {
    live: RwLock<IdMap>,
    /// The next id to hand out; ids below it that are not live were closed.
    next: AtomicUsize,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    live: RwLock::new(IdMap::new()),
    next: AtomicUsize::new(1),
});

/// A C handle type and the Rust value it names.
pub(crate) trait Handle: Sized {
    /// The value held for the handle.
    type Value: Clone;
    /// "a store", "a bucket", ... for messages.
    const TYPE_NAME: &'static str;
    fn wrap(v: Self::Value) -> Object;
    fn unwrap(o: &Object) -> Option<&Self::Value>;
}

macro_rules! handle_type {
    ($c:ty, $v:ty, $variant:ident, $name:literal) => {
        impl Handle for $c {
            type Value = $v;
            const TYPE_NAME: &'static str = $name;
            fn wrap(v: $v) -> Object {
                Object::$variant(v)
            }
            fn unwrap(o: &Object) -> Option<&$v> {
                match o {
                    Object::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

handle_type!(state_store, Arc<Store>, Store, "a store");
handle_type!(state_bucket, Arc<Bucket>, Bucket, "a bucket");
handle_type!(state_cursor, Arc<Mutex<Cursor>>, Cursor, "a cursor");
handle_type!(state_service, Arc<StateService>, Service, "a service");
handle_type!(
    crate::watch::state_watcher,
    Arc<crate::watch::WatchState>,
    Watch,
    "a watch"
);

/// Registers `value` and returns its new handle.
pub(crate) fn register<H: Handle>(value: H::Value) -> Result<*mut H, Fail> {
    let reg = &*REGISTRY;
    let id = reg
        .next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_add(1))
        .map_err(|_| {
            Fail::Core(state_core::Error::Internal(
                "no handle ids left in this process".to_string(),
            ))
        })?;
    reg.live.write().insert(id, H::wrap(value));
    // A token, never dereferenced: see the module docs.
    Ok(id as *mut H)
}

fn not_live(id: usize, name: &str, expected: &str) -> Fail {
    if id == 0 {
        Fail::Invalid(format!("{name} is NULL"))
    } else if id < REGISTRY.next.load(Ordering::SeqCst) {
        Fail::Closed(format!("{name} is a closed handle"))
    } else {
        Fail::Invalid(format!("{name} is not {expected} handle"))
    }
}

fn wrong_type(name: &str, expected: &str, found: &Object) -> Fail {
    Fail::Invalid(format!(
        "{name} is {} handle, not {expected} handle",
        found.type_name()
    ))
}

/// The value named by handle `h` (a clone: the registry lock is not held while the
/// caller works, so a long call never blocks other threads' `close`).
pub(crate) fn get<H: Handle>(h: *const H, name: &str) -> Result<H::Value, Fail> {
    let id = h as usize;
    let live = REGISTRY.live.read();
    match live.get(&id) {
        Some(o) => H::unwrap(o)
            .cloned()
            .ok_or_else(|| wrong_type(name, H::TYPE_NAME, o)),
        None => Err(not_live(id, name, H::TYPE_NAME)),
    }
}

/// Removes handle `h` from the registry and returns its value; afterwards every use of
/// `h` reports *closed*.
pub(crate) fn unregister<H: Handle>(h: *const H, name: &str) -> Result<H::Value, Fail> {
    let id = h as usize;
    let mut live = REGISTRY.live.write();
    let Some(o) = live.get(&id) else {
        return Err(not_live(id, name, H::TYPE_NAME));
    };
    if H::unwrap(o).is_none() {
        return Err(wrong_type(name, H::TYPE_NAME, o));
    }
    match live.remove(&id) {
        Some(o) => H::unwrap(&o)
            .cloned()
            .ok_or_else(|| wrong_type(name, H::TYPE_NAME, &o)),
        None => Err(not_live(id, name, H::TYPE_NAME)),
    }
}
