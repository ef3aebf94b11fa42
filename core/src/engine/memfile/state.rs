//! The in-memory data: per bucket, a hash index for point lookups and an ordered set
//! for scans, both holding the same reference-counted entries.
//!
//! Why two structures: a B-tree lookup at 100K random keys costs ~17 key comparisons,
//! most of them cache misses (~0.6 us here); a hash lookup costs ~3 misses. Scans and
//! seeks need order. An entry is one allocation holding key and value, shared by both
//! structures (and by a compaction in progress), so the second structure costs one
//! pointer per entry, not a copy.
//!
//! The ordered set keeps the first 8 key bytes of each entry inline next to its
//! pointer ([`Ordered`]), so a B-tree search compares integers inside the node it is
//! reading and follows an entry's pointer only when two keys share those 8 bytes.
//! Without it every comparison was a cache miss, and comparisons were the largest
//! cost of sets and seeks at 100K+ keys.
//!
//! Overwrites in place: a put whose key is present with a value of the same length
//! (the common case of a state store: a setting, a cursor, a counter rewritten) copies
//! the new value into the existing entry instead of allocating a new one and
//! replacing it in both structures. At 1M keys that skips a B-tree search, an
//! allocation and a free per write. See [`Entry::overwrite_value`] for why this is sound.

use std::borrow::Borrow;
use std::cell::UnsafeCell;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::atomic::{fence, Ordering as MemOrder};
use std::sync::Arc;

use crate::engine::{BucketHint, WriteOp};

/// How many references the structures of one bucket hold to each of its entries:
/// its hash index, and its ordered set ([`BucketMap`]) or, while loading, the
/// snapshot's sorted list ([`LoadingBucket`]). An entry is overwritten in place only
/// when this is its whole reference count; a compaction in progress holds more.
const HOLDERS: usize = 2;

/// If `index` holds the key of the entry encoded in `encoded` (`key_len:u16 key
/// value`, layout checked by the caller) with a value of the same length, copies the
/// new value into that entry in place and returns the entry's weight. `None` when the
/// key is absent, the length differs, or the entry has more than [`HOLDERS`]
/// references (a compaction holds it): the caller then replaces the entry.
///
/// # Safety
/// The caller holds by `&mut` the two structures of one bucket (its index, passed
/// here, and its ordered set or sorted list), which hold [`HOLDERS`] references to
/// each entry of `index` between them; so no borrow of an entry's bytes is alive, and
/// no other reference can be made while this runs.
#[allow(unsafe_code)]
unsafe fn overwrite_in_index(index: &mut HashSet<Entry, Hasher_>, encoded: &[u8]) -> Option<u64> {
    let key_len = usize::from(u16::from_le_bytes([encoded[0], encoded[1]]));
    let (key, value) = encoded[2..].split_at(key_len);
    let old = index.get(key)?;
    debug_assert!(
        Arc::strong_count(&old.0) >= HOLDERS,
        "an indexed entry is held by both structures of its bucket"
    );
    // SAFETY: forwarded from this function's contract: `old` is an entry of `index`,
    // whose bucket's two structures the caller holds by `&mut`, and they hold
    // `HOLDERS` references to it.
    if old.value().len() == value.len() && unsafe { old.overwrite_value(value, HOLDERS) } {
        Some(old.weight())
    } else {
        None
    }
}

/// A bucket while a store loads: the hash index, plus the snapshot's sorted list for
/// as long as no log record has added or removed one of the bucket's keys (then the
/// ordered set is built without a sort, see [`LoadingBucket::finish`]).
#[derive(Default)]
pub(super) struct LoadingBucket {
    index: HashSet<Entry, Hasher_>,
    /// Every entry of `index`, in key order; `None` once that no longer holds.
    sorted: Option<Vec<Entry>>,
}

impl LoadingBucket {
    /// A bucket as a snapshot holds it: its index and the same entries in strictly
    /// ascending key order (both checked by the caller).
    pub(super) fn from_snapshot(index: HashSet<Entry, Hasher_>, sorted: Vec<Entry>) -> Self {
        debug_assert_eq!(index.len(), sorted.len());
        LoadingBucket {
            index,
            sorted: Some(sorted),
        }
    }

    /// Applies a logged put. An overwrite with a value of the same length (a counter,
    /// a session, a cursor: the common update) is copied in place while the sorted
    /// list lasts: no allocation, and the list stays valid, so the bucket's order
    /// needs no sort at the end.
    #[allow(unsafe_code)]
    pub(super) fn put_encoded(&mut self, encoded: &[u8]) {
        if self.sorted.is_some() {
            // SAFETY: `&mut self` holds this bucket's index and sorted list, the
            // bucket's two structures while loading; the sorted list holds every
            // entry of the index, so together they hold `HOLDERS` references to each.
            if unsafe { overwrite_in_index(&mut self.index, encoded) }.is_some() {
                return;
            }
        }
        self.sorted = None;
        self.index.replace(Entry::from_encoded(encoded));
    }

    /// Applies a logged delete. Returns whether the bucket is now empty.
    pub(super) fn delete(&mut self, key: &[u8]) -> bool {
        if self.index.remove(key) {
            self.sorted = None;
        }
        self.index.is_empty()
    }

    /// The bucket's map: the sorted list turned into the ordered set, or the index
    /// sorted when the list did not last.
    pub(super) fn finish(self) -> BucketMap {
        match self.sorted {
            Some(sorted) => BucketMap::from_sorted(self.index, sorted),
            None => BucketMap::from_index(self.index),
        }
    }
}

/// Hasher of the point index and the bucket table: foldhash, seeded at random per
/// map, several times faster than SipHash on short keys. Keys come from clients, so
/// the random seed matters (it keeps collisions from being precomputed).
pub(super) type Hasher_ = foldhash::fast::RandomState;

/// Bytes of bookkeeping counted per entry when estimating the snapshot's size (the
/// value's length, a varint: 1 byte up to 127 bytes, 2 up to 16 KiB).
pub(super) const ENTRY_OVERHEAD: u64 = 2;

/// The bytes an entry encoded in `encoded_len` bytes adds to a snapshot (an estimate
/// of the live data).
fn weight_of(encoded_len: usize) -> u64 {
    encoded_len as u64 + ENTRY_OVERHEAD
}

/// One key with its value: `key_len:u16 key value` in one shared allocation. Equality,
/// order and hash are those of the key alone, so sets of entries act as maps.
///
/// The bytes sit in an `UnsafeCell` so that [`Entry::overwrite_value`] can replace a
/// value in place; every other access is a shared read through [`Entry::bytes`].
#[derive(Clone)]
pub(super) struct Entry(Arc<UnsafeCell<[u8]>>);

// SAFETY: `Entry` is `Arc<[u8]>` plus one way to write: `overwrite_value`, which needs
// the owning `BucketMap` by `&mut` and that no clone of the entry exists outside that
// map (see there). Sending an entry or sharing `&Entry` between threads is therefore as
// safe as for `Arc<[u8]>`: concurrent access is only ever reads.
#[allow(unsafe_code)]
unsafe impl Send for Entry {}
// SAFETY: as for `Send` above.
#[allow(unsafe_code)]
unsafe impl Sync for Entry {}

impl Entry {
    /// An entry from its encoded bytes (`key_len:u16 key value`), as found in the
    /// log and the snapshot. The caller has checked the layout.
    #[allow(unsafe_code)]
    pub(super) fn from_encoded(bytes: &[u8]) -> Entry {
        let raw = Arc::into_raw(Arc::<[u8]>::from(bytes)) as *const UnsafeCell<[u8]>;
        // SAFETY: `UnsafeCell<[u8]>` is `repr(transparent)` over `[u8]`: same size,
        // alignment and slice metadata, which is what `Arc::from_raw` requires of a
        // pointer that came from `Arc::<[u8]>::into_raw`.
        Entry(unsafe { Arc::from_raw(raw) })
    }

    /// All the entry's bytes.
    #[inline]
    #[allow(unsafe_code)]
    fn bytes(&self) -> &[u8] {
        // SAFETY: the only writer, `overwrite_value`, runs while its caller holds the
        // owning `BucketMap` by `&mut` and no clone of the entry exists outside that
        // map. Slices of an entry's bytes are borrowed through a shared borrow of the
        // map (or of the state or a guard holding it) or of a clone, so none can be
        // alive during a write: this shared borrow never overlaps one.
        unsafe { &*self.0.get() }
    }

    fn key_len(&self) -> usize {
        let b = self.bytes();
        usize::from(u16::from_le_bytes([b[0], b[1]]))
    }

    /// The key.
    pub(super) fn key(&self) -> &[u8] {
        &self.bytes()[2..2 + self.key_len()]
    }

    /// The value.
    pub(super) fn value(&self) -> &[u8] {
        &self.bytes()[2 + self.key_len()..]
    }

    /// Replaces the value with `value` (same length: checked by the caller) if the
    /// map holding this entry is its only holder: `clones` is how many references
    /// that map holds (its hash index and its ordered set). Returns whether it wrote;
    /// if not, the caller replaces the entry instead. The key bytes are never written,
    /// so the entry's hash and order (those of its key) never change.
    ///
    /// A compaction in progress may hold clones outside the map (it reads them
    /// without any lock): the count then exceeds `clones` and nothing is written.
    /// (`Weak` references are not counted; none are ever made.)
    ///
    /// # Safety
    /// The caller holds the map this entry belongs to by `&mut` (so no reader can
    /// borrow from it), and `clones` is the number of references that map holds.
    #[allow(unsafe_code)]
    unsafe fn overwrite_value(&self, value: &[u8], clones: usize) -> bool {
        debug_assert_eq!(value.len(), self.value().len());
        if Arc::strong_count(&self.0) != clones {
            return false;
        }
        // Pairs with the release decrement of a clone dropped by another thread (a
        // compaction finishing with a chunk), so its reads happen before our write.
        fence(MemOrder::Acquire);
        let at = 2 + self.key_len();
        // SAFETY: the map holds every reference to this allocation (the count was
        // `clones` and cannot grow: new clones are made from the map, which our caller
        // holds by `&mut`), and no borrow of the bytes outlives a shared borrow of the
        // map, so nothing reads or writes these bytes concurrently (`at` was read
        // before this mutable borrow). `copy_from_slice` panics on a length mismatch
        // instead of writing out of bounds.
        let bytes: &mut [u8] = unsafe { &mut *self.0.get() };
        bytes[at..].copy_from_slice(value);
        true
    }

    /// Hints the CPU to bring the entry's first bytes into cache (no effect on other
    /// architectures than x86-64).
    #[inline]
    #[allow(unsafe_code)]
    pub(super) fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: SSE, which `prefetcht0` belongs to, is part of the x86-64
            // baseline; a prefetch only hints the cache and never faults or reads
            // into the program, and the pointer is to a live allocation anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.0.get().cast::<i8>()) };
        }
    }

    /// The encoded bytes (`key_len:u16 key value`), as written to files.
    pub(super) fn encoded(&self) -> &[u8] {
        self.bytes()
    }

    /// The bytes this entry adds to a snapshot (an estimate of the live data).
    pub(super) fn weight(&self) -> u64 {
        weight_of(self.bytes().len())
    }
}

impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

impl Hash for Entry {
    // Must hash exactly like the borrowed `[u8]` key (the `Borrow` contract).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// The first 8 bytes of `key` as a big-endian integer, zero-padded: comparing two
/// prefixes orders keys as comparing the keys does, except that keys sharing these 8
/// bytes (or differing only by trailing zero bytes within them) compare equal and
/// need the full comparison.
fn key_prefix(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// A key as the ordered set compares it: its [`key_prefix`], then all its bytes.
/// A trait object, so the set can be searched with a borrowed key ([`Probe`]) as well
/// as with its own elements ([`Ordered`]).
pub(super) trait OrdKey {
    fn prefix(&self) -> u64;
    fn bytes(&self) -> &[u8];
}

/// The order of the ordered set, for its elements and for probes alike: prefixes
/// first, the full keys only on a tie (which is where an entry's pointer is followed).
#[inline]
fn cmp_keys<A: OrdKey + ?Sized, B: OrdKey + ?Sized>(a: &A, b: &B) -> Ordering {
    match a.prefix().cmp(&b.prefix()) {
        Ordering::Equal => a.bytes().cmp(b.bytes()),
        o => o,
    }
}

impl Ord for dyn OrdKey + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_keys(self, other)
    }
}

impl PartialOrd for dyn OrdKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for dyn OrdKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for dyn OrdKey + '_ {}

/// A borrowed key to search the ordered set with.
struct Probe<'a> {
    prefix: u64,
    key: &'a [u8],
}

impl<'a> Probe<'a> {
    fn new(key: &'a [u8]) -> Probe<'a> {
        Probe {
            prefix: key_prefix(key),
            key,
        }
    }
}

impl OrdKey for Probe<'_> {
    fn prefix(&self) -> u64 {
        self.prefix
    }
    fn bytes(&self) -> &[u8] {
        self.key
    }
}

/// An element of the ordered set: an entry with its key prefix inline.
#[derive(Clone)]
pub(super) struct Ordered {
    prefix: u64,
    entry: Entry,
}

impl Ordered {
    fn new(entry: Entry) -> Ordered {
        Ordered {
            prefix: key_prefix(entry.key()),
            entry,
        }
    }
}

impl OrdKey for Ordered {
    fn prefix(&self) -> u64 {
        self.prefix
    }
    fn bytes(&self) -> &[u8] {
        self.entry.key()
    }
}

impl<'a> Borrow<dyn OrdKey + 'a> for Ordered {
    fn borrow(&self) -> &(dyn OrdKey + 'a) {
        self
    }
}

// The same order as `Ord for dyn OrdKey` (the `Borrow` contract), statically
// dispatched for the set's own comparisons.
impl Ord for Ordered {
    fn cmp(&self, other: &Ordered) -> Ordering {
        cmp_keys(self, other)
    }
}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Ordered) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ordered {
    fn eq(&self, other: &Ordered) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ordered {}

/// One bucket's entries.
#[derive(Default)]
pub(super) struct BucketMap {
    index: HashSet<Entry, Hasher_>,
    order: BTreeSet<Ordered>,
}

impl BucketMap {
    /// A bucket from its index and the same entries in strictly ascending key order
    /// (both checked by the caller).
    pub(super) fn from_sorted(index: HashSet<Entry, Hasher_>, entries: Vec<Entry>) -> BucketMap {
        debug_assert_eq!(index.len(), entries.len());
        // Already sorted: the stable sort inside `from_iter` is a linear check, then
        // the tree is built bottom-up.
        let order = entries.into_iter().map(Ordered::new).collect();
        BucketMap { index, order }
    }

    /// A bucket from an index alone (the order is built by sorting).
    pub(super) fn from_index(index: HashSet<Entry, Hasher_>) -> BucketMap {
        let mut v: Vec<Ordered> = index.iter().cloned().map(Ordered::new).collect();
        v.sort_unstable();
        BucketMap {
            index,
            order: v.into_iter().collect(),
        }
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.index.get(key)
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Inserts or replaces; returns the replaced entry.
    pub(super) fn put(&mut self, e: Entry) -> Option<Entry> {
        let old = self.index.replace(e.clone());
        self.order.replace(Ordered::new(e));
        old
    }

    /// Puts the entry encoded in `encoded` (`key_len:u16 key value`, layout checked
    /// by the caller); returns the weight of the entry it replaced, if any. Overwrites
    /// in place when the key is present with a value of the same length and no
    /// compaction holds the entry; otherwise allocates a new entry.
    #[allow(unsafe_code)]
    pub(super) fn put_encoded(&mut self, encoded: &[u8]) -> Option<u64> {
        // SAFETY: this map holds its index and its ordered set, both by `&mut self`
        // here, and they hold `HOLDERS` references to each entry (every entry is in
        // both: `put`, `delete` and the constructors keep them equal).
        if let Some(weight) = unsafe { overwrite_in_index(&mut self.index, encoded) } {
            return Some(weight);
        }
        self.put(Entry::from_encoded(encoded))
            .map(|old| old.weight())
    }

    pub(super) fn delete(&mut self, key: &[u8]) -> Option<Entry> {
        let old = self.index.take(key)?;
        self.order.remove(&Probe::new(key) as &dyn OrdKey);
        Some(old)
    }

    /// Entries within the bounds, in order (`reverse` for descending); for tests (the
    /// engine uses [`BucketMap::entries_within`], which is not boxed).
    #[cfg(test)]
    pub(super) fn range<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = &'a Entry> + 'a> {
        match self.entries_within(lower, upper) {
            None => Box::new(std::iter::empty()),
            Some(r) if reverse => Box::new(r.rev()),
            Some(r) => Box::new(r),
        }
    }

    /// Entries within the bounds, as a double-ended iterator (`None` if the bounds
    /// are inverted, which `BTreeSet::range` would panic on). Unboxed, for scans.
    pub(super) fn entries_within<'a>(
        &'a self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
    ) -> Option<impl DoubleEndedIterator<Item = &'a Entry> + Clone + 'a> {
        if range_is_empty(lower, upper) {
            return None;
        }
        let lo = lower.map(Probe::new);
        let hi = upper.map(Probe::new);
        Some(
            self.order
                .range::<dyn OrdKey, _>((
                    lo.as_ref().map(|p| p as &dyn OrdKey),
                    hi.as_ref().map(|p| p as &dyn OrdKey),
                ))
                .map(|o| &o.entry),
        )
    }

    /// Sum of the entries' weights.
    pub(super) fn weight(&self) -> u64 {
        self.index.iter().map(Entry::weight).sum()
    }
}

/// `BTreeSet::range` panics on a range whose start is after its end (or equal with
/// an exclusion); such a range is simply empty.
fn range_is_empty(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    let (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) =
        (lo, hi)
    else {
        return false;
    };
    match l.cmp(h) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => !matches!((lo, hi), (Bound::Included(_), Bound::Included(_))),
        std::cmp::Ordering::Less => false,
    }
}

/// The buckets by name, each in a slot whose number a bucket handle caches (a
/// [`BucketHint`]), so a point read through a handle finds its bucket by index and
/// one name comparison instead of hashing the name (~100 instructions of a ~650
/// instruction read).
#[derive(Default)]
pub(super) struct Buckets {
    by_name: HashMap<Box<str>, u32, Hasher_>,
    slots: Vec<Option<NamedBucket>>,
    /// Empty slots, reused before the vector grows.
    free: Vec<u32>,
}

/// A bucket in its numbered place of [`Buckets`]: its name (to check a hint
/// against) and its records.
struct NamedBucket {
    name: Box<str>,
    map: BucketMap,
}

impl Buckets {
    pub(super) fn get(&self, name: &str) -> Option<&BucketMap> {
        let &i = self.by_name.get(name)?;
        self.slot(i).map(|s| &s.map)
    }

    /// [`Buckets::get`] trying the slot `hint` remembers first, and remembering the
    /// slot found. Any value of `hint` is safe: a slot is used only if it holds the
    /// bucket named `name`.
    #[inline]
    pub(super) fn get_hinted(&self, name: &str, hint: &BucketHint) -> Option<&BucketMap> {
        if let Some(i) = hint.get().checked_sub(1) {
            if let Some(Some(slot)) = self.slots.get(i as usize) {
                if *slot.name == *name {
                    return Some(&slot.map);
                }
            }
        }
        let &i = self.by_name.get(name)?;
        hint.set(u64::from(i) + 1);
        self.slot(i).map(|s| &s.map)
    }

    fn slot(&self, i: u32) -> Option<&NamedBucket> {
        self.slots.get(i as usize).and_then(Option::as_ref)
    }

    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut BucketMap> {
        let &i = self.by_name.get(name)?;
        self.slots
            .get_mut(i as usize)
            .and_then(Option::as_mut)
            .map(|s| &mut s.map)
    }

    pub(super) fn contains_key(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Adds or replaces the bucket `name`.
    pub(super) fn insert(&mut self, name: Box<str>, map: BucketMap) {
        match self.get_mut(&name) {
            Some(old) => *old = map,
            None => {
                self.add(name, map);
            }
        }
    }

    /// Adds a bucket not present; returns its slot.
    fn add(&mut self, name: Box<str>, map: BucketMap) -> usize {
        let slot = Some(NamedBucket {
            name: name.clone(),
            map,
        });
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                // Slot numbers beyond u32 would need 4 billion buckets in memory.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.by_name.insert(name, i);
        i as usize
    }

    /// The bucket `name`, created empty if missing.
    pub(super) fn get_or_default(&mut self, name: &str) -> &mut BucketMap {
        let i = match self.by_name.get(name) {
            Some(&i) => i as usize,
            None => self.add(name.into(), BucketMap::default()),
        };
        match self.slots.get_mut(i) {
            Some(Some(slot)) => &mut slot.map,
            // `by_name` names only filled slots.
            _ => unreachable!("bucket {name:?} has no slot"),
        }
    }

    pub(super) fn remove(&mut self, name: &str) -> Option<BucketMap> {
        let i = self.by_name.remove(name)?;
        let slot = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(slot.map)
    }

    /// The bucket names, in no particular order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &Box<str>> {
        self.by_name.keys()
    }

    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = &BucketMap> {
        self.slots.iter().flatten().map(|s| &s.map)
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl std::ops::Index<&str> for Buckets {
    type Output = BucketMap;

    fn index(&self, name: &str) -> &BucketMap {
        match self.get(name) {
            Some(map) => map,
            None => panic!("no bucket {name:?}"),
        }
    }
}

/// All buckets, plus the size of the live data (what a snapshot would take).
#[derive(Default)]
pub(super) struct State {
    pub buckets: Buckets,
    /// Estimated bytes of a snapshot of this state.
    pub live_bytes: u64,
}

impl State {
    /// Inserts or replaces the entry encoded in `encoded` (see
    /// [`BucketMap::put_encoded`]), creating the bucket if needed. Returns whether
    /// it replaced one.
    pub(super) fn put_encoded(&mut self, bucket: &str, encoded: &[u8]) -> bool {
        let w = weight_of(encoded.len());
        let old = self.in_bucket(bucket, |m| m.put_encoded(encoded));
        if let Some(old) = old {
            self.live_bytes -= old;
        }
        self.live_bytes += w;
        old.is_some()
    }

    /// Looks up the entries that the writes `ops` will replace or remove and asks the
    /// CPU to fetch them. For a batch, a tight loop of look-ups overlaps their cache
    /// misses; the writes that follow under the write lock then find them in cache.
    pub(super) fn warm(&self, ops: &[WriteOp<'_>]) {
        let mut last: Option<(&str, &BucketMap)> = None;
        for op in ops {
            let (WriteOp::Put { bucket, key, .. } | WriteOp::Delete { bucket, key }) = *op;
            let map = match last {
                Some((name, map)) if name == bucket => map,
                _ => match self.buckets.get(bucket) {
                    Some(map) => {
                        last = Some((bucket, map));
                        map
                    }
                    None => continue,
                },
            };
            if let Some(e) = map.get(key) {
                e.prefetch();
            }
        }
    }

    /// Runs `f` on the bucket's map, created (and counted) if missing.
    fn in_bucket<R>(&mut self, bucket: &str, f: impl FnOnce(&mut BucketMap) -> R) -> R {
        let map = match self.buckets.get_mut(bucket) {
            Some(m) => m,
            None => {
                self.live_bytes += bucket.len() as u64 + BUCKET_OVERHEAD;
                self.buckets.get_or_default(bucket)
            }
        };
        f(map)
    }

    /// Removes `key` from `bucket` (the bucket with its last key). Returns whether
    /// the key was there.
    pub(super) fn delete(&mut self, bucket: &str, key: &[u8]) -> bool {
        let Some(map) = self.buckets.get_mut(bucket) else {
            return false;
        };
        let old = map.delete(key);
        if let Some(old) = &old {
            self.live_bytes -= old.weight();
        }
        if map.len() == 0 {
            self.buckets.remove(bucket);
            self.live_bytes -= bucket.len() as u64 + BUCKET_OVERHEAD;
        }
        old.is_some()
    }

    /// Removes a bucket; returns whether it held entries.
    pub(super) fn remove_bucket(&mut self, bucket: &str) -> bool {
        match self.buckets.remove(bucket) {
            Some(map) => {
                self.live_bytes -= map.weight() + bucket.len() as u64 + BUCKET_OVERHEAD;
                true
            }
            None => false,
        }
    }

    /// Number of entries over all buckets.
    #[cfg(test)]
    pub(super) fn entries(&self) -> usize {
        self.buckets.values().map(BucketMap::len).sum()
    }
}

/// Bytes of bookkeeping counted per bucket when estimating the snapshot's size.
pub(super) const BUCKET_OVERHEAD: u64 = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(k: &str, v: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(k.len() as u16).to_le_bytes());
        b.extend_from_slice(k.as_bytes());
        b.extend_from_slice(v.as_bytes());
        b
    }

    fn entry(k: &str, v: &str) -> Entry {
        Entry::from_encoded(&encoded(k, v))
    }

    fn loading(keys: &[(&str, &str)]) -> LoadingBucket {
        let sorted: Vec<Entry> = keys.iter().map(|(k, v)| entry(k, v)).collect();
        let mut index = HashSet::with_hasher(Hasher_::default());
        index.extend(sorted.iter().cloned());
        LoadingBucket::from_snapshot(index, sorted)
    }

    fn finished(b: LoadingBucket) -> Vec<(String, String)> {
        b.finish()
            .range(Bound::Unbounded, Bound::Unbounded, false)
            .map(|e| {
                (
                    String::from_utf8(e.key().to_vec()).unwrap(),
                    String::from_utf8(e.value().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn loading_overwrites_in_place_while_the_sorted_list_lasts() {
        let mut b = loading(&[("a", "1"), ("b", "2")]);
        let before = b.index.get(&b"a"[..]).unwrap().0.get();
        b.put_encoded(&encoded("a", "9"));
        // Same allocation, new value, and the sorted list still stands.
        assert_eq!(b.index.get(&b"a"[..]).unwrap().0.get(), before);
        assert!(b.sorted.is_some());
        assert_eq!(
            finished(b),
            [("a".into(), "9".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn loading_replaces_and_sorts_when_keys_or_lengths_change() {
        let mut b = loading(&[("a", "1"), ("c", "3")]);
        b.put_encoded(&encoded("a", "longer"));
        assert!(b.sorted.is_none());
        // Without the sorted list an entry has one holder: replaced, never written.
        b.put_encoded(&encoded("c", "4"));
        b.put_encoded(&encoded("b", "2"));
        assert!(!b.delete(b"c"));
        assert_eq!(
            finished(b),
            [("a".into(), "longer".into()), ("b".into(), "2".into())]
        );
        let mut b = loading(&[("a", "1")]);
        assert!(b.delete(b"a"));
    }

    #[test]
    fn entry_parts() {
        let e = entry("key", "value");
        assert_eq!(e.key(), b"key");
        assert_eq!(e.value(), b"value");
        assert_eq!(entry("", "").value(), b"");
    }

    fn value_in(s: &State, bucket: &str, hint: &BucketHint, key: &str) -> Option<Vec<u8>> {
        let map = s.buckets.get_hinted(bucket, hint)?;
        map.get(key.as_bytes()).map(|e| e.value().to_vec())
    }

    #[test]
    fn a_bucket_hint_finds_its_bucket_and_never_another() {
        let mut s = State::default();
        s.put_encoded("a", &encoded("k", "in a"));
        s.put_encoded("b", &encoded("k", "in b"));
        let (ha, hb) = (BucketHint::new(), BucketHint::new());
        assert_eq!(value_in(&s, "a", &ha, "k").as_deref(), Some(&b"in a"[..]));
        assert_eq!(value_in(&s, "b", &hb, "k").as_deref(), Some(&b"in b"[..]));
        assert_ne!(ha.get(), 0, "the slot is remembered");
        // A hint naming another bucket's slot is checked, not trusted.
        assert_eq!(value_in(&s, "a", &hb, "k").as_deref(), Some(&b"in a"[..]));
        assert_eq!(value_in(&s, "b", &hb, "k").as_deref(), Some(&b"in b"[..]));
        // "a" emptied (its slot freed), then "c" made in that slot: a's stale hint
        // finds neither "a" nor c's data.
        s.delete("a", b"k");
        let stale = ha.clone();
        assert_eq!(value_in(&s, "a", &ha, "k"), None);
        s.put_encoded("c", &encoded("k", "in c"));
        assert_eq!(value_in(&s, "a", &stale, "k"), None);
        assert_eq!(
            value_in(&s, "c", &stale, "k").as_deref(),
            Some(&b"in c"[..])
        );
        // "a" made again: found through the old hint too.
        s.put_encoded("a", &encoded("k", "a again"));
        assert_eq!(
            value_in(&s, "a", &ha, "k").as_deref(),
            Some(&b"a again"[..])
        );
        // Garbage hints are harmless.
        for junk in [1, 2, 3, 1000, u64::MAX] {
            let h = BucketHint::new();
            h.set(junk);
            assert_eq!(value_in(&s, "b", &h, "k").as_deref(), Some(&b"in b"[..]));
            h.set(junk);
            assert_eq!(value_in(&s, "zz", &h, "k"), None);
        }
    }

    #[test]
    fn state_tracks_live_bytes_and_drops_empty_buckets() {
        let mut s = State::default();
        s.put_encoded("b", &encoded("a", "1"));
        s.put_encoded("b", &encoded("b", "22"));
        s.put_encoded("b", &encoded("a", "333"));
        s.put_encoded("b", &encoded("b", "44"));
        let expected = BUCKET_OVERHEAD + 1 + entry("a", "333").weight() + entry("b", "44").weight();
        assert_eq!(s.live_bytes, expected);
        assert_eq!(s.entries(), 2);
        assert_eq!(s.buckets["b"].get(b"b").map(Entry::value), Some(&b"44"[..]));
        s.delete("b", b"a");
        s.delete("b", b"b");
        assert!(s.buckets.is_empty());
        assert_eq!(s.live_bytes, 0);
        s.put_encoded("c", &encoded("x", "y"));
        assert!(s.remove_bucket("c"));
        assert!(!s.remove_bucket("c"));
        assert_eq!(s.live_bytes, 0);
    }

    #[test]
    fn prefix_order_agrees_with_byte_order() {
        // Keys that tie on the 8-byte prefix: shorter keys, trailing zero bytes, keys
        // equal in their first 8 bytes; and keys differing inside the prefix.
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"a\0\0",
            b"a\0b",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefghA",
            b"abcdefghB",
            b"abcdefgi",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
            b"b",
        ];
        for a in &keys {
            for b in &keys {
                let (pa, pb) = (Probe::new(a), Probe::new(b));
                let (pa, pb): (&dyn OrdKey, &dyn OrdKey) = (&pa, &pb);
                assert_eq!(pa.cmp(pb), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn bucket_map_ranges_match_a_model(
            keys in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12), 0..60),
            deletes in proptest::collection::vec(0usize..60, 0..20),
            lo in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10),
            hi in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..10),
        ) {
            // Keys repeat (short random keys), so puts are inserts and overwrites, of
            // values of the same length (copied in place) or not (replaced); each
            // value records which put wrote it.
            let mut m = BucketMap::default();
            let mut model = std::collections::BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                let v = vec![i as u8; 1 + i % 2];
                let mut b = (k.len() as u16).to_le_bytes().to_vec();
                b.extend_from_slice(k);
                b.extend_from_slice(&v);
                let old = m.put_encoded(&b);
                let want = model
                    .insert(k.clone(), v)
                    .map(|v| (2 + k.len() + v.len()) as u64 + ENTRY_OVERHEAD);
                proptest::prop_assert_eq!(old, want);
            }
            for &d in &deletes {
                if let Some(k) = keys.get(d) {
                    let old = m.delete(k).map(|e| e.value().to_vec());
                    proptest::prop_assert_eq!(old, model.remove(k));
                }
            }
            proptest::prop_assert_eq!(m.len(), model.len());
            for (k, v) in &model {
                proptest::prop_assert_eq!(m.get(k).map(|e| e.value().to_vec()), Some(v.clone()));
            }
            let weight: u64 = model
                .iter()
                .map(|(k, v)| (2 + k.len() + v.len()) as u64 + ENTRY_OVERHEAD)
                .sum();
            proptest::prop_assert_eq!(m.weight(), weight);
            let bounds = [
                (Bound::Included(lo.as_slice()), Bound::Excluded(hi.as_slice())),
                (Bound::Excluded(lo.as_slice()), Bound::Unbounded),
                (Bound::Unbounded, Bound::Included(hi.as_slice())),
            ];
            for (l, h) in bounds {
                for reverse in [false, true] {
                    let got: Vec<(Vec<u8>, Vec<u8>)> = m
                        .range(l, h, reverse)
                        .map(|e| (e.key().to_vec(), e.value().to_vec()))
                        .collect();
                    let mut want: Vec<(Vec<u8>, Vec<u8>)> = if range_is_empty(l, h) {
                        Vec::new()
                    } else {
                        model
                            .range::<[u8], _>((l, h))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    };
                    if reverse {
                        want.reverse();
                    }
                    proptest::prop_assert_eq!(got, want);
                }
            }
        }
    }

    #[test]
    fn same_length_overwrites_are_in_place_unless_the_entry_is_shared() {
        let mut m = BucketMap::default();
        m.put_encoded(&encoded("k", "old"));
        let addr = |m: &BucketMap| m.get(b"k").map(|e| e.encoded().as_ptr());
        let before = addr(&m);

        // Same length, held only by the map: written into the same allocation, seen
        // by both the index and the ordered set.
        m.put_encoded(&encoded("k", "new"));
        assert_eq!(addr(&m), before);
        let scanned = |m: &BucketMap| -> Vec<Vec<u8>> {
            m.range(Bound::Unbounded, Bound::Unbounded, false)
                .map(|e| e.value().to_vec())
                .collect()
        };
        assert_eq!(scanned(&m), vec![b"new".to_vec()]);

        // Held elsewhere too (as a compaction holds a chunk): replaced, and the other
        // holder keeps the bytes it had.
        let held = m.get(b"k").cloned();
        m.put_encoded(&encoded("k", "abc"));
        assert_ne!(addr(&m), before);
        assert_eq!(held.as_ref().map(Entry::value), Some(&b"new"[..]));
        assert_eq!(scanned(&m), vec![b"abc".to_vec()]);
        drop(held);

        // Another length: replaced.
        let before = addr(&m);
        m.put_encoded(&encoded("k", "longer"));
        assert_ne!(addr(&m), before);
        assert_eq!(scanned(&m), vec![b"longer".to_vec()]);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn ranges_in_both_directions_and_empty_ranges() {
        let mut m = BucketMap::default();
        for k in ["a", "b", "c", "d"] {
            m.put(entry(k, "v"));
        }
        let keys = |it: Box<dyn Iterator<Item = &Entry> + '_>| -> Vec<Vec<u8>> {
            it.map(|e| e.key().to_vec()).collect()
        };
        let b = |s: &'static str| s.as_bytes();
        assert_eq!(
            keys(m.range(Bound::Excluded(b("a")), Bound::Included(b("c")), false)),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(
            keys(m.range(Bound::Unbounded, Bound::Excluded(b("c")), true)),
            vec![b"b".to_vec(), b"a".to_vec()]
        );
        assert!(keys(m.range(Bound::Included(b("c")), Bound::Excluded(b("c")), false)).is_empty());
        assert!(keys(m.range(Bound::Included(b("d")), Bound::Included(b("a")), false)).is_empty());
        assert_eq!(
            keys(m.range(Bound::Included(b("c")), Bound::Included(b("c")), false)),
            vec![b"c".to_vec()]
        );
        let sorted = BucketMap::from_index(m.index.clone());
        assert_eq!(
            keys(sorted.range(Bound::Unbounded, Bound::Unbounded, false)).len(),
            4
        );
    }
}
