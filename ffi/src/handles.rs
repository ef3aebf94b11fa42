//! Opaque handles and the registry that makes closed handles detectable.
//!
//! A handle given to C is not a pointer to memory: it is a token (a process-wide id,
//! never reused, cast to a pointer type) that names an entry in [`REGISTRY`]. Every
//! call looks its handle up, so a closed handle, a handle closed twice, a handle of the
//! wrong type or a pointer that never was a handle is *detected* and reported as a
//! status code instead of being dereferenced.
//!
//! Stores and buckets, the handles of the hot calls (`state_get`, `state_set`, ...),
//! live in a map published through an atomically swapped pointer: a call looks its
//! handle up without a lock or a reference count (a thread-local slot and one
//! ordered-map lookup), and opening or closing one copies the map (few and long-lived,
//! so the copy is small and rare). Cursors, services and watches, opened and closed
//! far more often, live in a map behind a read-write lock.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use ::state_service::StateService;
use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use state_core::Store;

use crate::any::{AnyBucket, AnyCursor};

use crate::boundary::Fail;

/// An open store. Obtained from `state_open`, released with `state_close`.
pub struct state_store {
    _private: [u8; 0],
}

/// A bucket: of a store (from `state_bucket_open`) or of a server's client (from
/// `state_connect`). Released with `state_bucket_close`.
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

/// What a handle names: its value, type-erased (the rustls-ffi pattern of casting
/// handles: each module declares its own handle type with [`Handle`], and the
/// registry knows none of them), with the handle type it was registered as.
///
/// The value sits behind an `Arc` so that copying the map of hot handles and
/// looking a handle up cost a reference count, not a copy.
#[derive(Clone)]
pub(crate) struct Object {
    /// `TypeId` of the C handle type (`state_store`, ...): a lookup through another
    /// handle type is the wrong type even if the value types were the same.
    handle: TypeId,
    /// "a store", ... for messages.
    type_name: &'static str,
    value: Arc<dyn Any + Send + Sync>,
}

impl Object {
    fn wrap<H: Handle>(v: H::Value) -> Object {
        Object {
            handle: TypeId::of::<H>(),
            type_name: H::TYPE_NAME,
            value: Arc::new(v),
        }
    }

    fn unwrap<H: Handle>(&self) -> Option<&H::Value> {
        if self.handle != TypeId::of::<H>() {
            return None;
        }
        self.value.downcast_ref::<H::Value>()
    }

    fn type_name(&self) -> &'static str {
        self.type_name
    }
}

/// The live handles by id. An ordered map, not a hash map: a hash table keeps only
/// a pointer into the middle of its allocation, which valgrind reports as "possibly
/// lost" at exit for every program linking libstate; a B-tree's nodes are held by
/// pointers to their start. With the few handles a program holds, a lookup costs
/// about as much as hashing.
type IdMap = BTreeMap<usize, Object>;

struct Registry {
    /// Live stores and buckets ([`Handle::HOT`]), copied on every change.
    hot: ArcSwap<IdMap>,
    /// The map `hot` publishes, held here too: arc-swap keeps a pointer into the
    /// middle of the allocation, which leak checkers (valgrind) report as "possibly
    /// lost"; this is a pointer to its start. Its lock serializes changes of `hot`.
    hot_owner: Mutex<Arc<IdMap>>,
    /// The other live handles.
    live: RwLock<IdMap>,
    /// The next id to hand out; ids below it that are not live were closed.
    next: AtomicUsize,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    hot: ArcSwap::from_pointee(IdMap::new()),
    hot_owner: Mutex::new(Arc::new(IdMap::new())),
    live: RwLock::new(IdMap::new()),
    next: AtomicUsize::new(1),
});

/// A C handle type and the Rust value it names. The module that defines a handle
/// type implements this for it (see [`handle_type!`]); the registry needs nothing
/// else.
pub(crate) trait Handle: Sized + 'static {
    /// The value held for the handle.
    type Value: Clone + Send + Sync + 'static;
    /// "a store", "a bucket", ... for messages.
    const TYPE_NAME: &'static str;
    /// Whether the handle lives in the lock-free map (see the module docs).
    const HOT: bool;
}

/// Declares `$c` a handle type naming a `$v`, named `$name` in messages, in the
/// lock-free map if `$hot`.
macro_rules! handle_type {
    ($c:ty, $v:ty, $name:literal, $hot:literal) => {
        impl $crate::handles::Handle for $c {
            type Value = $v;
            const TYPE_NAME: &'static str = $name;
            const HOT: bool = $hot;
        }
    };
}
pub(crate) use handle_type;

handle_type!(state_store, Arc<Store>, "a store", true);
handle_type!(state_bucket, Arc<AnyBucket>, "a bucket", true);
handle_type!(state_cursor, Arc<Mutex<AnyCursor>>, "a cursor", false);
handle_type!(state_service, Arc<StateService>, "a service", false);

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
    if H::HOT {
        let mut owner = reg.hot_owner.lock();
        let mut map = IdMap::clone(&owner);
        map.insert(id, Object::wrap::<H>(value));
        publish(&mut owner, map);
    } else {
        reg.live.write().insert(id, Object::wrap::<H>(value));
    }
    // A token, never dereferenced: see the module docs.
    Ok(id as *mut H)
}

/// Makes `map` the map of live stores and buckets.
fn publish(owner: &mut Arc<IdMap>, map: IdMap) {
    let map = Arc::new(map);
    REGISTRY.hot.store(Arc::clone(&map));
    *owner = map;
}

fn not_live(id: usize, name: &str, expected: &str) -> Fail {
    // A live handle of the other map: the wrong type.
    let other = |map: &IdMap| map.get(&id).map(|o| wrong_type(name, expected, o));
    if let Some(fail) = other(&REGISTRY.hot.load()).or_else(|| other(&REGISTRY.live.read())) {
        return fail;
    }
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

/// The value named by handle `h` (a clone: no registry lock is held while the caller
/// works, so a long call never blocks other threads' `close`).
pub(crate) fn get<H: Handle>(h: *const H, name: &str) -> Result<H::Value, Fail> {
    with(h, name, |v| Ok(v.clone()))
}

/// Runs `f` on the value named by handle `h`. For a store or a bucket this takes no
/// lock and no reference count: the map `f` reads from stays alive until it returns
/// (a `close` meanwhile publishes a new map, and the value lives until `f` is done).
pub(crate) fn with<H: Handle, T>(
    h: *const H,
    name: &str,
    f: impl FnOnce(&H::Value) -> Result<T, Fail>,
) -> Result<T, Fail> {
    let id = h as usize;
    if H::HOT {
        let map = REGISTRY.hot.load();
        match map.get(&id) {
            Some(o) => match o.unwrap::<H>() {
                Some(v) => f(v),
                None => Err(wrong_type(name, H::TYPE_NAME, o)),
            },
            None => Err(not_live(id, name, H::TYPE_NAME)),
        }
    } else {
        let found = REGISTRY.live.read().get(&id).map(|o| {
            o.unwrap::<H>()
                .cloned()
                .ok_or_else(|| wrong_type(name, H::TYPE_NAME, o))
        });
        match found {
            Some(value) => f(&value?),
            // Not under the lock: `not_live` looks in every map.
            None => Err(not_live(id, name, H::TYPE_NAME)),
        }
    }
}

/// Removes handle `h` from the registry and returns its value; afterwards every use of
/// `h` reports *closed*.
pub(crate) fn unregister<H: Handle>(h: *const H, name: &str) -> Result<H::Value, Fail> {
    let id = h as usize;
    let reg = &*REGISTRY;
    if H::HOT {
        let mut owner = reg.hot_owner.lock();
        let value = match owner.get(&id) {
            Some(o) => o
                .unwrap::<H>()
                .cloned()
                .ok_or_else(|| wrong_type(name, H::TYPE_NAME, o))?,
            None => {
                drop(owner);
                return Err(not_live(id, name, H::TYPE_NAME));
            }
        };
        let mut map = IdMap::clone(&owner);
        map.remove(&id);
        publish(&mut owner, map);
        return Ok(value);
    }
    let removed = {
        let mut live = reg.live.write();
        match live.get(&id).map(|o| o.unwrap::<H>().is_some()) {
            Some(true) => live.remove(&id),
            Some(false) => {
                return Err(live
                    .get(&id)
                    .map(|o| wrong_type(name, H::TYPE_NAME, o))
                    .unwrap_or_else(|| Fail::Invalid(format!("{name} is not live"))))
            }
            None => None,
        }
    };
    match removed {
        Some(o) => o
            .unwrap::<H>()
            .cloned()
            .ok_or_else(|| wrong_type(name, H::TYPE_NAME, &o)),
        // Not under the lock: `not_live` looks in every map.
        None => Err(not_live(id, name, H::TYPE_NAME)),
    }
}
