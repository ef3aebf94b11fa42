//! [`EngineCell`]: where a store keeps its engine, and how reads reach it without a
//! lock.
//!
//! A point read is the store's most common call, so the cell costs it no lock: the
//! engine is published through an atomically swapped pointer ([`arc_swap`]), whose
//! load touches only this thread's own cache line (a shared reader count or RwLock
//! is a contended cache line under concurrent readers). What needs exclusivity —
//! closing, and a compaction that swaps in another engine — goes through
//! [`EngineCell::exclusive`]: it unpublishes the engine, waits until every read that
//! holds it has finished, and only then hands it over.
//!
//! A reader that finds the cell empty waits for the exclusive operation behind the
//! gate and looks again. One exception: a read nested inside a lending callback of
//! the same store (see [`crate::lend`]) must not wait, since the exclusive operation
//! is waiting for that callback's own read to end; it is given the engine being
//! retired (`lent`), which stays alive until every such read is over.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwapOption, Guard};
use parking_lot::{Mutex, RwLock};

use crate::engine::StorageEngine;
use crate::error::{Error, Result};

type Boxed = Box<dyn StorageEngine>;

/// The store's engine, readable without a lock.
pub(crate) struct EngineCell {
    /// The engine reads use; `None` while an exclusive operation runs, and once the
    /// store is closed.
    current: ArcSwapOption<Boxed>,
    /// While an exclusive operation waits for reads to end: the engine it took, for
    /// reads nested inside those reads' lending callbacks.
    lent: ArcSwapOption<Boxed>,
    /// Held exclusively by [`EngineCell::exclusive`]; a reader that finds `current`
    /// empty takes it shared, to wait for the exclusive operation to finish.
    gate: RwLock<()>,
    /// The engine `current` publishes, held here too: arc-swap keeps a pointer into
    /// the middle of the allocation, which leak checkers (valgrind, for C programs)
    /// report as "possibly lost"; this is a pointer to its start.
    owner: Mutex<Option<Arc<Boxed>>>,
}

/// A borrowed engine, valid while it lives: an exclusive operation on the cell waits
/// until every `EngineRef` to the engine it takes is dropped.
pub(crate) struct EngineRef<'a> {
    guard: Guard<Option<Arc<Boxed>>>,
    _slot: std::marker::PhantomData<&'a EngineCell>,
}

impl Deref for EngineRef<'_> {
    type Target = dyn StorageEngine;

    fn deref(&self) -> &(dyn StorageEngine + 'static) {
        match &*self.guard {
            Some(engine) => &***engine,
            // `load` only builds an `EngineRef` from a guard holding an engine.
            None => unreachable!("an EngineRef always holds an engine"),
        }
    }
}

impl EngineCell {
    pub(crate) fn new(engine: Boxed) -> EngineCell {
        let engine = Arc::new(engine);
        EngineCell {
            current: ArcSwapOption::new(Some(Arc::clone(&engine))),
            lent: ArcSwapOption::empty(),
            gate: RwLock::new(()),
            owner: Mutex::new(Some(engine)),
        }
    }

    fn wrap<'a>(guard: Guard<Option<Arc<Boxed>>>) -> Option<EngineRef<'a>> {
        guard.is_some().then_some(EngineRef {
            guard,
            _slot: std::marker::PhantomData,
        })
    }

    /// The engine; *closed* once the store is closed. `lending` tells whether this
    /// thread is inside a lending callback of this store (asked only when the cell
    /// is empty, which is rare).
    #[inline]
    pub(crate) fn load(&self, lending: impl FnOnce() -> bool) -> Result<EngineRef<'_>> {
        if let Some(r) = Self::wrap(self.current.load()) {
            return Ok(r);
        }
        self.load_slow(lending)
    }

    #[cold]
    fn load_slow(&self, lending: impl FnOnce() -> bool) -> Result<EngineRef<'_>> {
        if lending() {
            // The exclusive operation waits for this thread's outer read: use the
            // engine it is retiring (still alive: that outer read holds it).
            if let Some(r) = Self::wrap(self.lent.load()) {
                return Ok(r);
            }
        }
        let _wait = self.gate.read();
        Self::wrap(self.current.load()).ok_or(Error::Closed)
    }

    /// Runs `f` with the engine taken out of the cell, once every read that held it
    /// has ended; reads that start meanwhile wait until `f` returns. `f` may put
    /// another engine in, or leave the cell empty, which closes the store. *closed* if
    /// the cell is already empty.
    pub(crate) fn exclusive<T>(&self, f: impl FnOnce(&mut Option<Boxed>) -> T) -> Result<T> {
        let _gate = self.gate.write();
        let mut owner = self.owner.lock();
        let Some(engine) = owner.take() else {
            return Err(Error::Closed);
        };
        self.lent.store(Some(Arc::clone(&engine)));
        // Unpublishing pays every reader's deferred reference count (arc-swap's
        // "debts"), so from here the strong count includes every read still holding
        // the engine: 2 (ours and `lent`'s) + those reads. Reads loaded from `lent`
        // are not counted, but each runs nested inside a counted outer read.
        self.current.store(None);
        wait_until(|| Arc::strong_count(&engine) <= 2);
        self.lent.store(None);
        let mut slot = match Arc::try_unwrap(engine) {
            Ok(engine) => Some(engine),
            // Unreachable by the count above; keep the store usable if it happens.
            Err(engine) => {
                self.current.store(Some(Arc::clone(&engine)));
                *owner = Some(engine);
                return Err(Error::invalid("the engine is still in use"));
            }
        };
        let out = f(&mut slot);
        *owner = slot.map(Arc::new);
        self.current.store(owner.clone());
        Ok(out)
    }
}

/// Polls `done` until it holds, backing off from spinning to sleeps that double up to
/// 10 ms: used only while closing or swapping engines, to wait for in-flight
/// operations (microseconds, unless a lending callback or a scan runs long).
fn wait_until(mut done: impl FnMut() -> bool) {
    let mut round = 0u32;
    let mut nap = Duration::from_micros(50);
    while !done() {
        if round < 64 {
            std::hint::spin_loop();
        } else if round < 128 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
        round = round.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Visit, WriteOp};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    /// An engine that records being dropped.
    struct Probe(Arc<AtomicBool>);

    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl StorageEngine for Probe {
        fn get(&self, _: &str, _: &[u8], _: &mut dyn FnMut(&[u8])) -> Result<bool> {
            Ok(false)
        }
        fn write(&self, _: &[WriteOp<'_>]) -> Result<()> {
            Ok(())
        }
        fn scan(
            &self,
            _: &str,
            _: std::ops::Bound<&[u8]>,
            _: std::ops::Bound<&[u8]>,
            _: bool,
            _: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
        ) -> Result<()> {
            Ok(())
        }
        fn count(&self, _: &str) -> Result<u64> {
            Ok(0)
        }
        fn remove_bucket(&self, _: &str) -> Result<bool> {
            Ok(false)
        }
        fn bucket_names(&self) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn sync(&self) -> Result<()> {
            Ok(())
        }
        fn disk_size(&self) -> Result<u64> {
            Ok(0)
        }
    }

    fn probe() -> (EngineCell, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        (
            EngineCell::new(Box::new(Probe(Arc::clone(&dropped)))),
            dropped,
        )
    }

    #[test]
    fn closing_waits_for_a_read_in_flight_then_refuses_reads() {
        let (slot, dropped) = probe();
        let slot = Arc::new(slot);
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let reader = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || {
                let engine = slot.load(|| false).map_err(|e| e.to_string())?;
                held_tx.send(()).map_err(|e| e.to_string())?;
                release_rx.recv().map_err(|e| e.to_string())?;
                // Still the live engine: closing has not dropped it under this read.
                let alive = engine.get("b", b"k", &mut |_| {}).is_ok();
                drop(engine);
                Ok::<bool, String>(alive)
            })
        };
        held_rx.recv().unwrap();
        let closer = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || slot.exclusive(|engine| engine.take().is_some()))
        };
        // Once the closer has unpublished the engine, it waits for the read.
        wait_until(|| slot.current.load().is_none());
        assert!(matches!(
            slot.load(|| true).map(|e| e.get("b", b"k", &mut |_| {})),
            Ok(Ok(false))
        ));
        assert!(!dropped.load(Ordering::SeqCst));
        release_tx.send(()).unwrap();
        assert!(reader.join().unwrap().unwrap());
        assert!(closer.join().unwrap().unwrap());
        assert!(dropped.load(Ordering::SeqCst));
        assert!(matches!(slot.load(|| false), Err(Error::Closed)));
        assert!(matches!(slot.exclusive(|_| ()), Err(Error::Closed)));
    }

    #[test]
    fn a_nested_read_of_a_lending_thread_gets_the_retiring_engine() {
        let (slot, _) = probe();
        let slot = Arc::new(slot);
        let (held_tx, held_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let reader = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || {
                let outer = slot.load(|| false).map_err(|e| e.to_string())?;
                held_tx.send(()).map_err(|e| e.to_string())?;
                go_rx.recv().map_err(|e| e.to_string())?;
                // The swap below has unpublished the engine (it waits for `outer`):
                // a nested read of a lending thread must not wait for it.
                let nested = slot.load(|| true).map(|e| e.get("b", b"k", &mut |_| {}));
                drop(outer);
                Ok::<bool, String>(matches!(nested, Ok(Ok(false))))
            })
        };
        held_rx.recv().unwrap();
        let swapper = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || slot.exclusive(|_| ()))
        };
        // Wait (bounded) until the swapper has unpublished the engine.
        wait_until(|| slot.current.load().is_none());
        go_tx.send(()).unwrap();
        assert!(reader.join().unwrap().unwrap());
        swapper.join().unwrap().unwrap();
        // The swapper left the engine in: reads see it again.
        assert!(slot.load(|| false).is_ok());
    }
}
