//! A resource bound: [`Bucket::update`] on the memfile engine allocates nothing in
//! the steady state when the value keeps its length (issue 27), counted by a global
//! allocator that counts the allocations of the calling thread only (the store's
//! background threads allocate on their own schedule). Its own binary, since the
//! global allocator is the whole process's.
//!
//! A counting allocator is a few lines over the system allocator; the crates that
//! count (dhat, stats_alloc) count the whole process, which the store's background
//! threads would make flaky.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

use state_core::{Bucket, Engine, Expiry, Store};

struct Counting;

thread_local! {
    /// Allocations (and reallocations) made by this thread. A `const` Cell of a
    /// plain integer: no destructor and no lazy initialization, so the allocator
    /// may touch it at any time.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no slot left; not counted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the arguments it was given, so the
// `GlobalAlloc` contract (the returned blocks, their layouts, who frees them) is
// `System`'s; counting touches only a thread-local `Cell<u64>`, which allocates
// nothing and cannot re-enter the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Adds 1 to the decimal counter at `key` the way the server's INCR does: parse
/// the lent value, write the new one into the update's buffer, label the change
/// (a `&'static str` label costs no allocation).
fn incr(b: &Bucket, key: &str) -> i64 {
    b.update(key, |u| {
        if u.value().is_none() {
            u.label("new");
        }
        u.label("incrby");
        let old: i64 = match u.value() {
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            None => 0,
        };
        let new = old + 1;
        u.put_with(Expiry::Keep, |buf| write!(buf, "{new}").ok());
        Ok(new)
    })
    .unwrap()
}

#[test]
fn a_same_length_update_on_memfile_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .engine(Engine::Memfile)
        .open(dir.path())
        .unwrap();
    let b = store.bucket("counters").unwrap();
    b.set_multiple((0..1000).map(|i| (format!("k{i:04}"), b"1000000".to_vec())))
        .unwrap();
    let keys: Vec<String> = (0..1000).map(|i| format!("k{i:04}")).collect();

    // The counter sees what it should: an allocation in the window is counted.
    let before = allocations();
    let v = vec![0u8; 10];
    assert_eq!(allocations() - before, 1, "the counter counts this thread");
    drop(v);

    // Warm up: the thread's buffers grow to their size once.
    for k in &keys {
        incr(&b, k);
    }
    let before = allocations();
    let mut last = 0;
    for round in 0..20 {
        for k in &keys {
            last = incr(&b, k);
        }
        assert!(last > 1_000_000 + round, "{last}");
    }
    let made = allocations() - before;
    assert_eq!(
        made, 0,
        "20,000 same-length updates made {made} allocations on the calling thread"
    );
    assert_eq!(last, 1_000_021);
    assert_eq!(b.get("k0999").unwrap().as_deref(), Some(&b"1000021"[..]));

    // Same-length APPEND-style and SETNX-style updates: the same.
    let before = allocations();
    for k in &keys {
        b.update(k, |u| {
            u.label("append");
            let old = u.value().unwrap_or_default();
            let keep = &old[..old.len() - 1];
            u.put_with(Expiry::Keep, |buf| {
                buf.extend_from_slice(keep);
                buf.push(b'x');
            });
            Ok(())
        })
        .unwrap();
        let set = b
            .update(k, |u| {
                if u.value().is_some() {
                    return Ok(false);
                }
                u.put(b"fresh", Expiry::Never);
                Ok(true)
            })
            .unwrap();
        assert!(!set);
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(b.get("k0000").unwrap().as_deref(), Some(&b"100002x"[..]));
    store.close().unwrap();
}
