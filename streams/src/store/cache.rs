//! [`RecordCache`]: the per-store write cache in front of RocksDB (Kafka's
//! `ThreadCache` namespace for one store).
//!
//! Updates to a key replace each other in the cache; a flush hands the
//! latest value of every key written since the previous flush, in the order
//! keys were first written, to the task, which writes them to RocksDB, to
//! the changelog and downstream. So ten updates to one key between two
//! commits cost one RocksDB write, one changelog record and one downstream
//! record, as in Kafka with caching enabled.
//!
//! What a flush wrote stays readable within the budget for plain key-value
//! stores, with the values read from RocksDB (Kafka's caching store keeps
//! both in its `ThreadCache`): table lookups that find their key here skip
//! RocksDB. Unflushed entries come first; kept values are dropped oldest
//! first to make room. Segmented (window) stores keep nothing after a
//! flush, except a stream-stream join's window stores, whose
//! [`WindowCache`] keeps recent windows by key.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub(crate) use crate::store::cache_entry::{BuildFxHasher, DirtyEntry, EntryContext};
use crate::store::window_cache::{EachEntry, WindowCache};

/// Bytes counted per entry beyond key and value: the map slot, the entry
/// and its context (an estimate, like Kafka's `LRUCacheEntry` overhead).
const ENTRY_OVERHEAD: usize = 96;

/// A kept value (`None`: the key is absent).
pub(crate) type KeptValue = Option<Box<[u8]>>;

/// Flushed or read values a key-value store's cache keeps (Kafka's caching
/// store keeps what it flushed and what it read in its `ThreadCache`): a
/// lookup that finds its key here skips RocksDB. Dropped oldest-inserted
/// first when the cache is over its budget.
#[derive(Debug, Default)]
struct CleanEntries {
    values: HashMap<Arc<[u8]>, KeptValue, BuildFxHasher>,
    /// Keys in the order they were inserted, sharing the map's allocation
    /// (a key may appear again after it was dropped; dropping its stale
    /// turn early is harmless).
    order: std::collections::VecDeque<Arc<[u8]>>,
    bytes: usize,
}

impl CleanEntries {
    fn insert(&mut self, key: &[u8], value: Option<&[u8]>) {
        let added = kept_size(key, value);
        match self.values.get_mut(key) {
            Some(held) => {
                self.bytes = (self.bytes + added).saturating_sub(kept_size(key, held.as_deref()));
                *held = value.map(Box::from);
            }
            None => {
                let shared: Arc<[u8]> = Arc::from(key);
                self.values.insert(Arc::clone(&shared), value.map(Box::from));
                self.order.push_back(shared);
                self.bytes += added;
            }
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(held) = self.values.remove(key) {
            self.bytes = self.bytes.saturating_sub(kept_size(key, held.as_deref()));
        }
    }

    /// Drops the oldest entries until at most `max` bytes are held.
    fn shrink_to(&mut self, max: usize) {
        while self.bytes > max {
            let Some(key) = self.order.pop_front() else { break };
            self.remove(&key);
        }
        if self.values.is_empty() {
            self.order.clear();
        }
    }
}

/// Dirty entries of one store, with a byte budget.
#[derive(Debug, Default)]
pub(crate) struct RecordCache {
    index: HashMap<Vec<u8>, usize, BuildFxHasher>,
    /// Keys in byte order, for stores read by range (session and sliding
    /// window stores); `None` for the others.
    ordered: Option<BTreeSet<Vec<u8>>>,
    entries: Vec<DirtyEntry>,
    bytes: usize,
    max_bytes: usize,
    /// The entry the last [`get`](Self::get) found: aggregations read a
    /// key and then write it, and the write reuses the lookup (one hash
    /// probe, often a cache miss on a large cache, instead of two).
    last_hit: std::cell::Cell<Option<usize>>,
    /// Flushed and read values kept readable (key-value caches only: an
    /// ordered cache answers ranges from its dirty keys alone).
    clean: Option<std::cell::RefCell<CleanEntries>>,
}

fn size(key: &[u8], value: Option<&[u8]>) -> usize {
    key.len() + value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD
}

/// Bytes counted per kept value beyond key and value: its map slot (a
/// shared key and a boxed value), the key's and value's allocations and its
/// turn in the eviction queue; no record context.
const KEPT_OVERHEAD: usize = 80;

fn kept_size(key: &[u8], value: Option<&[u8]>) -> usize {
    key.len() + value.map_or(0, <[u8]>::len) + KEPT_OVERHEAD
}

impl RecordCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        RecordCache { max_bytes, ..RecordCache::default() }
    }

    /// A cache that also keeps flushed and read values readable (plain
    /// key-value stores; a segmented store's values expire with their
    /// segments, which this cache would not see).
    pub(crate) fn new_keeping(max_bytes: usize) -> Self {
        RecordCache { max_bytes, clean: Some(Default::default()), ..RecordCache::default() }
    }

    /// The value of `key` if the cache keeps it as flushed or read (`None`
    /// when it does not know the key).
    #[inline]
    pub(crate) fn kept(&self, key: &[u8]) -> Option<std::cell::Ref<'_, KeptValue>> {
        let clean = self.clean.as_ref()?.borrow();
        if clean.values.is_empty() {
            return None;
        }
        std::cell::Ref::filter_map(clean, |c| c.values.get(key)).ok()
    }

    /// Calls `read` with what [`kept`](Self::kept) finds.
    #[cfg(test)]
    fn read_clean<T>(&self, key: &[u8], read: impl FnOnce(Option<&[u8]>) -> T) -> Option<T> {
        self.kept(key).map(|value| read(value.as_deref()))
    }

    /// Keeps `value`, just read from RocksDB for `key`, readable, room
    /// permitting (the oldest kept values make room).
    #[inline]
    pub(crate) fn remember(&self, key: &[u8], value: Option<&[u8]>) {
        let Some(clean) = &self.clean else { return };
        let room = self.max_bytes.saturating_sub(self.bytes);
        if kept_size(key, value) > room {
            return;
        }
        let mut clean = clean.borrow_mut();
        clean.insert(key, value);
        clean.shrink_to(room);
    }

    /// Forgets what the cache kept of `key` (RocksDB was written around it).
    pub(crate) fn forget(&self, key: &[u8]) {
        if let Some(clean) = &self.clean {
            clean.borrow_mut().remove(key);
        }
    }

    /// A cache that can also answer [`range`](Self::range) reads.
    pub(crate) fn new_ordered(max_bytes: usize) -> Self {
        RecordCache { max_bytes, ordered: Some(BTreeSet::new()), ..RecordCache::default() }
    }

    /// Unflushed keys from `from` (inclusive) to `to` (exclusive; `None` =
    /// no bound) with their values, in key order. A cache made with
    /// [`new_ordered`](Self::new_ordered) finds them in its key order; any
    /// other looks at every unflushed entry (its ranges are interactive
    /// queries and Processor API reads, not a DSL operator's per-record
    /// path).
    pub(crate) fn range<'a>(&'a self, from: &[u8], to: Option<&[u8]>) -> Vec<(&'a [u8], Option<&'a [u8]>)> {
        use std::ops::Bound;
        let pair = |e: &'a DirtyEntry| (e.key.as_slice(), e.value.as_deref());
        match &self.ordered {
            Some(set) => {
                let upper = to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.to_vec()));
                let bounds = (Bound::Included(from.to_vec()), upper);
                set.range::<Vec<u8>, _>(bounds).map(|key| pair(&self.entries[self.index[key]])).collect()
            }
            None => {
                let within =
                    |e: &&DirtyEntry| e.key.as_slice() >= from && to.is_none_or(|t| e.key.as_slice() < t);
                let mut out: Vec<_> = self.entries.iter().filter(within).map(pair).collect();
                out.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out
            }
        }
    }

    /// The latest cached value of `key`: `Some(None)` for a cached delete,
    /// `None` when the cache does not know the key.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        // After a flush the index is empty but keeps its capacity: a probe
        // would still touch a random slot of a large table.
        if self.entries.is_empty() {
            return None;
        }
        let i = *self.index.get(key)?;
        self.last_hit.set(Some(i));
        Some(self.entries[i].value.as_deref())
    }

    /// The index of `key`'s entry, trying the last hit first.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        match self.last_hit.take() {
            Some(i) if self.entries.get(i).is_some_and(|e| e.key == key) => Some(i),
            _ => self.index.get(key).copied(),
        }
    }

    /// Records the latest value of `key`. Returns whether the cache is now
    /// over its budget (the task then flushes it after the current record).
    /// `old` is the key's stored value if the caller just read it.
    #[inline]
    pub(crate) fn put(
        &mut self,
        key: &[u8],
        value: Option<Vec<u8>>,
        context: EntryContext,
        old: Option<Option<Vec<u8>>>,
    ) -> bool {
        let added = size(key, value.as_deref());
        match self.find(key) {
            Some(i) => {
                let entry = &mut self.entries[i];
                self.bytes -= size(&entry.key, entry.value.as_deref());
                entry.value = value;
                entry.context = context;
            }
            None => {
                if let Some(ordered) = &mut self.ordered {
                    ordered.insert(key.to_vec());
                }
                // A kept value is what RocksDB holds: the flush's old value.
                let old = old.or_else(|| self.kept(key).map(|v| v.as_deref().map(<[u8]>::to_vec)));
                self.index.insert(key.to_vec(), self.entries.len());
                self.entries.push(DirtyEntry { key: key.to_vec(), value, context, old });
            }
        }
        self.bytes += added;
        if let Some(clean) = &self.clean {
            clean.borrow_mut().shrink_to(self.max_bytes.saturating_sub(self.bytes));
        }
        self.is_over_budget()
    }

    /// Whether the cached bytes exceed the budget.
    pub(crate) fn is_over_budget(&self) -> bool {
        self.bytes > self.max_bytes
    }

    /// Whether nothing waits to be flushed.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Cached keys and values, in first-written order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.entries.iter().map(|e| (e.key.as_slice(), e.value.as_deref()))
    }

    /// Bytes cached (keys, values and per-entry overhead).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Changes the budget (the runtime splits `statestore.cache.max.bytes`
    /// among its tasks).
    pub(crate) fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes;
        if let Some(clean) = &self.clean {
            clean.borrow_mut().shrink_to(max_bytes.saturating_sub(self.bytes));
        }
    }

    /// Empties the cache, returning every entry in first-written order.
    pub(crate) fn drain(&mut self) -> Vec<DirtyEntry> {
        self.index.clear();
        self.last_hit.set(None);
        if let Some(ordered) = &mut self.ordered {
            ordered.clear();
        }
        self.bytes = 0;
        let entries = std::mem::take(&mut self.entries);
        if let Some(clean) = &self.clean {
            // What RocksDB now holds stays readable, within the budget.
            let mut clean = clean.borrow_mut();
            if self.max_bytes > 0 {
                for entry in &entries {
                    clean.insert(&entry.key, entry.value.as_deref());
                }
            }
            clean.shrink_to(self.max_bytes);
        }
        entries
    }
}

/// A store's cache: the plain [`RecordCache`], or for a stream-stream
/// join's window stores one side of the join's [`WindowCache`], which keeps
/// flushed entries readable. The window caches live in the task's
/// [`TaskStores`](super::state::TaskStores) (two stores share one), so each
/// operation is given them.
#[derive(Debug)]
pub(crate) enum StoreCache {
    Records(RecordCache),
    Windows(WindowSide),
}

/// Which window cache of the task, and which of its sides, a join window
/// store uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowSide {
    pub(crate) cache: usize,
    pub(crate) side: usize,
}

impl StoreCache {
    /// See [`RecordCache::get`] and [`WindowCache::get`].
    #[inline]
    pub(crate) fn get<'a>(&'a self, windows: &'a [WindowCache], key: &[u8]) -> Option<Option<&'a [u8]>> {
        match self {
            StoreCache::Records(c) => c.get(key),
            StoreCache::Windows(w) => windows[w.cache].get(w.side, key),
        }
    }

    /// Caches the latest value of `key`; returns whether the task should
    /// flush. `old` is the key's stored value if the caller just read it.
    #[inline]
    pub(crate) fn put(
        &mut self,
        windows: &mut [WindowCache],
        key: &[u8],
        value: Option<Vec<u8>>,
        context: EntryContext,
        old: Option<Option<Vec<u8>>>,
    ) -> bool {
        match self {
            StoreCache::Records(c) => c.put(key, value, context, old),
            StoreCache::Windows(w) => windows[w.cache].put(w.side, key, value, context),
        }
    }

    /// Whether nothing waits to be flushed.
    pub(crate) fn is_empty(&self, windows: &[WindowCache]) -> bool {
        match self {
            StoreCache::Records(c) => c.is_empty(),
            StoreCache::Windows(w) => windows[w.cache].is_empty(w.side),
        }
    }

    /// Changes the budget.
    pub(crate) fn set_max_bytes(&mut self, windows: &mut [WindowCache], max_bytes: usize) {
        match self {
            StoreCache::Records(c) => c.set_max_bytes(max_bytes),
            StoreCache::Windows(w) => windows[w.cache].set_max_bytes(w.side, max_bytes),
        }
    }

    /// The unflushed entries, in first-written order.
    pub(crate) fn drain(&mut self, windows: &mut [WindowCache]) -> Vec<DirtyEntry> {
        match self {
            StoreCache::Records(c) => c.drain(),
            StoreCache::Windows(w) => windows[w.cache].drain(w.side),
        }
    }

    /// Calls `each` with the entries from `from` to `to`, uncopied, when
    /// the cache alone holds them all (`None` otherwise).
    pub(crate) fn complete_range_each<E>(
        &self,
        windows: &[WindowCache],
        from: &[u8],
        to: Option<&[u8]>,
        each: &mut EachEntry<'_, E>,
    ) -> Option<Result<(), E>> {
        match self {
            StoreCache::Records(_) => None,
            StoreCache::Windows(w) => windows[w.cache].complete_range_each(w.side, from, to, each),
        }
    }

    /// Lays the cached entries from `from` to `to` (`None`: no bound) over
    /// `entries` read from RocksDB.
    pub(crate) fn overlay(
        &self,
        windows: &[WindowCache],
        from: &[u8],
        to: Option<&[u8]>,
        entries: &mut std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    ) {
        let mut apply = |key: &[u8], value: Option<&[u8]>| {
            match value {
                Some(value) => entries.insert(key.to_vec(), value.to_vec()),
                None => entries.remove(key),
            };
        };
        match self {
            StoreCache::Records(c) if from.is_empty() && to.is_none() => {
                c.entries().for_each(|(k, v)| apply(k, v));
            }
            StoreCache::Records(c) => c.range(from, to).into_iter().for_each(|(k, v)| apply(k, v)),
            StoreCache::Windows(w) => windows[w.cache].overlay(w.side, from, to, entries),
        }
    }

    /// A write that reached RocksDB around the cache (a restore).
    pub(crate) fn bypassed(&mut self, windows: &mut [WindowCache], key: &[u8]) {
        match self {
            StoreCache::Records(c) => c.forget(key),
            StoreCache::Windows(w) => windows[w.cache].bypassed(w.side, key),
        }
    }

    /// A value the cache keeps as flushed or read.
    #[inline]
    pub(crate) fn kept(&self, key: &[u8]) -> Option<std::cell::Ref<'_, KeptValue>> {
        match self {
            StoreCache::Records(c) => c.kept(key),
            StoreCache::Windows(_) => None,
        }
    }

    /// Keeps a value just read from RocksDB readable.
    #[inline]
    pub(crate) fn remember(&self, key: &[u8], value: Option<&[u8]>) {
        if let StoreCache::Records(c) = self {
            c.remember(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(offset: i64) -> EntryContext {
        EntryContext { offset, ..EntryContext::default() }
    }

    #[test]
    fn the_hasher_spreads_keys_that_differ_in_their_last_bytes_over_the_buckets() {
        use std::hash::BuildHasher;
        // 100k keys in 2^17 buckets: a random hash fills ~53% of them; Fx
        // without the final fold filled 0.3%.
        let buckets: std::collections::HashSet<u64> = (0..100_000)
            .map(|i| BuildFxHasher::default().hash_one(format!("user{i}").as_bytes()) & ((1 << 17) - 1))
            .collect();
        assert!(buckets.len() > 60_000, "{} distinct buckets", buckets.len());
    }

    #[test]
    fn updates_to_a_key_merge_and_drain_in_first_written_order() {
        let mut cache = RecordCache::new(1 << 20);
        cache.put(b"b", Some(b"1".to_vec()), ctx(0), None);
        cache.put(b"a", Some(b"1".to_vec()), ctx(1), None);
        cache.put(b"b", Some(b"22".to_vec()), ctx(2), None);
        cache.put(b"a", None, ctx(3), None);
        assert_eq!(cache.get(b"b"), Some(Some(&b"22"[..])));
        assert_eq!(cache.get(b"a"), Some(None));
        assert_eq!(cache.get(b"c"), None);
        assert_eq!(cache.bytes(), 1 + 2 + 1 + 2 * ENTRY_OVERHEAD);
        let drained = cache.drain();
        let summary: Vec<_> =
            drained.iter().map(|e| (e.key.clone(), e.value.clone(), e.context.offset)).collect();
        assert_eq!(summary, vec![(b"b".to_vec(), Some(b"22".to_vec()), 2), (b"a".to_vec(), None, 3)]);
        assert!(cache.is_empty() && cache.bytes() == 0 && cache.get(b"b").is_none());
    }

    #[test]
    fn flushed_and_read_values_stay_readable_within_the_budget() {
        let per = |k: &[u8], v: &[u8]| kept_size(k, Some(v));
        let mut cache = RecordCache::new_keeping(3 * per(b"k1", b"v1"));
        cache.put(b"k1", Some(b"v1".to_vec()), ctx(0), None);
        cache.put(b"k2", None, ctx(1), None);
        cache.drain();
        assert_eq!(cache.get(b"k1"), None, "not dirty");
        assert_eq!(cache.read_clean(b"k1", |v| v.map(<[u8]>::to_vec)), Some(Some(b"v1".to_vec())));
        assert_eq!(cache.read_clean(b"k2", |v| v.is_none()), Some(true), "a flushed delete: known absent");
        // A new update of a kept key knows RocksDB's value without a read.
        cache.put(b"k1", Some(b"v2".to_vec()), ctx(2), None);
        assert_eq!(cache.drain()[0].old, Some(Some(b"v1".to_vec())));
        // A value read from RocksDB is kept; the oldest go to make room.
        cache.remember(b"k3", Some(b"v3"));
        cache.remember(b"k4", Some(b"v4"));
        // (k1's new dirty entry pushed its kept value out; kept again at the
        // flush, it is newer than k2's.)
        assert_eq!(cache.read_clean(b"k2", |_| ()), None, "the oldest kept value went first");
        assert!(cache.read_clean(b"k1", |_| ()).is_some() && cache.read_clean(b"k4", |_| ()).is_some());
        cache.forget(b"k4");
        assert_eq!(cache.read_clean(b"k4", |_| ()), None, "written around the cache");
        // Dirty entries take the budget from kept ones.
        for i in 0..3u8 {
            cache.put(&[b'd', i], Some(vec![i]), ctx(3), None);
        }
        assert_eq!(cache.read_clean(b"k3", |_| ()), None);
        let mut ordered = RecordCache::new_ordered(1 << 20);
        ordered.put(b"a", Some(b"1".to_vec()), ctx(0), None);
        ordered.drain();
        assert_eq!(ordered.read_clean(b"a", |_| ()), None, "ordered caches keep nothing");
        let mut segmented = RecordCache::new(1 << 20);
        segmented.put(b"a", Some(b"1".to_vec()), ctx(0), None);
        segmented.drain();
        assert_eq!(segmented.read_clean(b"a", |_| ()), None);
    }

    #[test]
    fn a_range_over_an_unordered_cache_sees_its_unflushed_entries_in_key_order() {
        // A time-window aggregation's store: interactive window fetches
        // range over it between flushes.
        let mut cache = RecordCache::new(1 << 20);
        for key in [&b"b2"[..], b"a", b"b1", b"c"] {
            cache.put(key, Some(key.to_vec()), ctx(0), None);
        }
        cache.put(b"b1", None, ctx(1), None);
        assert_eq!(cache.range(b"b", Some(b"c")), vec![(&b"b1"[..], None), (&b"b2"[..], Some(&b"b2"[..]))]);
        assert_eq!(cache.range(b"b", None).len(), 3);
        cache.drain();
        assert!(cache.range(b"", None).is_empty());
    }

    #[test]
    fn put_reports_when_the_budget_is_exceeded() {
        let mut cache = RecordCache::new(2 * ENTRY_OVERHEAD + 12);
        assert!(!cache.put(b"k1", Some(vec![0; 4]), ctx(0), None));
        assert!(!cache.put(b"k2", Some(vec![0; 4]), ctx(1), None));
        assert!(cache.put(b"k2", Some(vec![0; 5]), ctx(2), None));
        cache.drain();
        assert!(!cache.is_over_budget());
        let mut ordered = RecordCache::new_ordered(1 << 20);
        for key in [&b"b2"[..], b"a", b"b1", b"c"] {
            ordered.put(key, Some(key.to_vec()), ctx(0), None);
        }
        ordered.put(b"b1", None, ctx(1), None);
        let range = ordered.range(b"b", Some(b"c"));
        assert_eq!(range, vec![(&b"b1"[..], None), (&b"b2"[..], Some(&b"b2"[..]))]);
        assert_eq!(ordered.range(b"b", None).len(), 3);
        ordered.drain();
        assert_eq!(ordered.range(b"", None).len(), 0);
        let mut disabled = RecordCache::new(0);
        assert!(disabled.put(b"k", None, ctx(0), None), "a zero budget flushes after every record");
    }
}
