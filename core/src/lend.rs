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

/// This thread's lending callbacks, in the common case: how many are running, the
/// store they lend from, and whether callbacks of more than one store are running
/// (then `SPILLED` lists them all). A `Cell` without a destructor, so each access is
/// one thread-local load or store (in a shared library such as the C or Python
/// module's, each is a call, and a point read makes a few).
#[derive(Clone, Copy)]
struct Top {
    count: usize,
    store: usize,
    spilled: bool,
}

thread_local! {
    static TOP: Cell<Top> = const {
        Cell::new(Top {
            count: 0,
            store: 0,
            spilled: false,
        })
    };
    /// When callbacks of several stores are running: the store of each, innermost
    /// last.
    static SPILLED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a store as lending on this thread until dropped (also on unwind).
pub(crate) struct Lending(());

impl Lending {
    #[inline]
    pub(crate) fn start<T>(store: &T) -> Lending {
        let addr = std::ptr::from_ref(store) as usize;
        TOP.with(|top| {
            let t = top.get();
            if t.count == 0 || (!t.spilled && t.store == addr) {
                top.set(Top {
                    count: t.count + 1,
                    store: addr,
                    spilled: false,
                });
            } else {
                spill(t, addr);
                top.set(Top {
                    count: t.count + 1,
                    store: t.store,
                    spilled: true,
                });
            }
        });
        Lending(())
    }
}

/// A callback of `addr` starts while those of `t` run: list them all in `SPILLED`.
#[cold]
fn spill(t: Top, addr: usize) {
    SPILLED.with(|s| {
        let mut s = s.borrow_mut();
        if !t.spilled {
            s.clear();
            s.resize(t.count, t.store);
        }
        s.push(addr);
    });
}

/// The innermost callback of several stores' ends.
#[cold]
fn unspill() {
    SPILLED.with(|s| {
        s.borrow_mut().pop();
    });
}

impl Drop for Lending {
    #[inline]
    fn drop(&mut self) {
        TOP.with(|top| {
            let t = top.get();
            let count = t.count.saturating_sub(1);
            if t.spilled {
                unspill();
            }
            top.set(Top {
                count,
                store: t.store,
                spilled: t.spilled && count > 0,
            });
        });
    }
}

#[cold]
fn spilled_contains(addr: usize) -> bool {
    SPILLED.with(|s| s.borrow().contains(&addr))
}

/// Whether this thread is inside a lending callback of `store`.
#[inline]
pub(crate) fn lending<T>(store: &T) -> bool {
    let addr = std::ptr::from_ref(store) as usize;
    let t = TOP.get();
    if t.count == 0 {
        false
    } else if !t.spilled {
        t.store == addr
    } else {
        spilled_contains(addr)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lending_is_tracked_per_store_through_nesting_and_spilling() {
        let (a, b) = (1u64, 2u64);
        assert!(!lending(&a) && !lending(&b));
        let la = Lending::start(&a);
        let la2 = Lending::start(&a);
        assert!(lending(&a) && !lending(&b));
        // Another store's callback inside: both are lending.
        let lb = Lending::start(&b);
        assert!(lending(&a) && lending(&b));
        assert!(refuse(&b, "write").is_err());
        drop(lb);
        assert!(lending(&a) && !lending(&b), "b's callback is over");
        assert!(refuse(&b, "write").is_ok());
        drop(la2);
        assert!(lending(&a));
        let lb = Lending::start(&b);
        let la3 = Lending::start(&a);
        assert!(lending(&a) && lending(&b));
        drop(la3);
        drop(lb);
        drop(la);
        assert!(!lending(&a) && !lending(&b));
        // Back to the common case, not spilled.
        let lb = Lending::start(&b);
        assert!(lending(&b) && !lending(&a));
        drop(lb);
        assert!(!lending(&b));
        assert!(SPILLED.with(|s| s.borrow().is_empty()));
    }
}
