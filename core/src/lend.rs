//! Bookkeeping for callbacks that borrow data from inside the store
//! ([`crate::Bucket::get_with`], [`crate::Bucket::scan`],
//! [`crate::Cursor::next_n_with`]).
//!
//! Such a callback runs while the thread holds the store's read locks, so that keys
//! and values can be lent without copying. From inside it, reading the same store
//! must not wait behind a queued writer (it would wait for itself), and writing it,
//! flushing it or closing it would deadlock outright. This module remembers, per
//! thread, which stores are lending right now: reads then take their locks
//! recursively, and writes fail with a clear error instead of hanging.

use std::cell::{Cell, RefCell};

use crate::error::{Error, Result};

thread_local! {
    /// Addresses of the stores (their `Shared`) lending data on this thread, one
    /// element per active callback (nested callbacks repeat an address).
    static LENDING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// `LENDING`'s length, read alone by the common case (no callback running), so
    /// that every write's check costs a plain thread-local load.
    static ACTIVE: Cell<usize> = const { Cell::new(0) };
}

/// Marks a store as lending on this thread until dropped (also on unwind).
pub(crate) struct Lending(());

impl Lending {
    pub(crate) fn start<T>(store: &T) -> Lending {
        let addr = std::ptr::from_ref(store) as usize;
        LENDING.with(|l| l.borrow_mut().push(addr));
        ACTIVE.set(ACTIVE.get() + 1);
        Lending(())
    }
}

impl Drop for Lending {
    fn drop(&mut self) {
        LENDING.with(|l| {
            l.borrow_mut().pop();
        });
        ACTIVE.set(ACTIVE.get().saturating_sub(1));
    }
}

/// Whether this thread is inside a lending callback of `store`.
#[inline]
pub(crate) fn lending<T>(store: &T) -> bool {
    if ACTIVE.get() == 0 {
        return false;
    }
    let addr = std::ptr::from_ref(store) as usize;
    LENDING.with(|l| l.borrow().contains(&addr))
}

/// *invalid argument* if this thread is inside a lending callback of `store`: `what`
/// (a write, a flush, a close) would deadlock there.
#[inline]
pub(crate) fn refuse<T>(store: &T, what: &str) -> Result<()> {
    if lending(store) {
        return Err(refused(what));
    }
    Ok(())
}

#[cold]
fn refused(what: &str) -> Error {
    Error::invalid(format!(
        "cannot {what} from inside a get_with/scan/next_n_with callback of the same \
         store (it runs under the store's read lock); collect what you need and do it \
         after the callback returns"
    ))
}
