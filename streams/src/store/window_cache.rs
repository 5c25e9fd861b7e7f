//! [`WindowCache`]: the record cache of a stream-stream join's two window
//! stores, which keeps what it flushed readable.
//!
//! A join writes every record into its side's window store and reads the
//! other side's records of the same key within the join window. The plain
//! [`RecordCache`](super::cache::RecordCache) forgets entries at each flush,
//! so every read opened RocksDB iterators over the window's segments. This
//! cache holds each key's recent entries of both stores in one hash slot
//! (times in order, like the hand-written join it competes with; the first
//! two of each side inline), so a record's write and the read of the other
//! side cost one trip to memory for the slot, not one per store and one
//! more per entry list. Entries stay after a flush, as clean entries,
//! within each side's byte budget; the oldest times go first when a budget
//! is exceeded. The two sides are two stores: each has its own budget,
//! flushes, changelog and RocksDB store; only the map is shared.
//!
//! Entries leave in sweeps over the whole cache, not one by one: a key's
//! entries sit in one place, so a sweep reads memory in order, where
//! looking each flushed entry up again cost a hash probe and a cache miss
//! per record. A key's own expired entries leave whenever the key is
//! written; a sweep removes a side's others once that side has doubled
//! since its last sweep (and holds at least an eighth of its budget), and
//! drops its oldest times when it is over its budget, until an eighth of
//! the budget is free.
//!
//! Each side knows a time, `complete_from`, from which it holds every entry
//! of its store: a range of one key starting at or after it is answered
//! from memory alone. Anything older (entries evicted, or written to
//! RocksDB around the cache by a restore or before a restart) is read from
//! RocksDB with the cache's entries laid over it.
//!
//! Keys are window-store keys, `key ‖ time (8 bytes, big-endian) ‖ seq (4)`.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use smallvec::SmallVec;

use super::cache_entry::{BuildFxHasher, DirtyEntry, EntryContext};
#[cfg(test)]
use super::Entries;

/// Bytes counted per entry beyond its value (slot, context, dirty list).
const SLOT_OVERHEAD: usize = 96;
/// Bytes counted per record key and side beyond its bytes (map slot).
const KEY_OVERHEAD: usize = 64;

/// One entry of a record key.
#[derive(Debug)]
struct Slot {
    time: i64,
    seq: u32,
    /// The flush epoch of its last update: the entry is unflushed while
    /// this is its side's current epoch. (Wrapping: an entry that
    /// outlives 2^32 flushes at worst waits one more flush to leave.)
    epoch: u32,
    /// `None`: deleted.
    value: Option<Box<[u8]>>,
}

impl Slot {
    fn order(&self) -> (i64, u32) {
        (self.time, self.seq)
    }

    fn size(&self) -> usize {
        self.value.as_ref().map_or(0, |v| v.len()) + SLOT_OVERHEAD
    }
}

/// A record key's entries of one side in time order. The first two sit in
/// the map's own slot, so a key with few entries costs no second memory
/// access.
type Slots = SmallVec<[Slot; 2]>;

/// Splits a window-store key into its record key, time and sequence.
fn split(key: &[u8]) -> Option<(&[u8], i64, u32)> {
    let n = key.len().checked_sub(12)?;
    let time = i64::from_be_bytes(key[n..n + 8].try_into().ok()?);
    let seq = u32::from_be_bytes(key[n + 8..].try_into().ok()?);
    Some((&key[..n], time, seq))
}

/// `key ‖ time ‖ seq`, a join window store's key.
pub(crate) fn window_key(key: &[u8], time: i64, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 12);
    window_key_into(&mut out, key, time, seq);
    out
}

/// [`window_key`] into `out` (cleared first), reusing its allocation.
pub(crate) fn window_key_into(out: &mut Vec<u8>, key: &[u8], time: i64, seq: u32) {
    out.clear();
    out.extend_from_slice(key);
    out.extend_from_slice(&time.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
}

/// Bytes of a record key kept inside the map's slot.
const INLINE_KEY: usize = 22;

/// A record key as the map holds it: up to [`INLINE_KEY`] bytes inside the
/// map's slot, so finding a key compares bytes already at hand instead of
/// following a pointer (a second memory access per lookup); longer keys
/// are shared with the unflushed list.
#[derive(Clone)]
enum RecordKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Shared(Arc<[u8]>),
}

impl RecordKey {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            RecordKey::Inline { len: key.len() as u8, bytes }
        } else {
            RecordKey::Shared(Arc::from(key))
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            RecordKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            RecordKey::Shared(key) => key,
        }
    }
}

impl Borrow<[u8]> for RecordKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

// Hashes and compares as its bytes, so the map is searched by `&[u8]`.
impl Hash for RecordKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for RecordKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for RecordKey {}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

/// A visitor of a range's keys and values (see
/// [`WindowCache::complete_range_each`]); the first error stops the range.
pub(crate) type EachEntry<'a, E> = dyn FnMut(&[u8], &[u8]) -> Result<(), E> + 'a;

/// Where a cached entry lives: its record key, time and sequence.
type EntryRef = (RecordKey, i64, u32);

/// What one side (one window store) of the cache keeps for itself.
#[derive(Debug)]
struct SideState {
    /// Updates since the last flush, in the order they were made.
    dirty: Vec<(EntryRef, Option<Vec<u8>>, EntryContext)>,
    /// Keys too short to hold a time: flushed as they are (RocksDB then
    /// refuses them with an error naming the store), never read.
    odd: Vec<DirtyEntry>,
    /// Every flushed entry older than this has left (the last sweep's
    /// cutoff).
    swept_below: i64,
    /// Bytes held after the last sweep.
    swept_bytes: usize,
    /// Incremented by each flush.
    epoch: u32,
    /// How long after its time an entry can still be read (the store's
    /// retention): older entries leave the cache.
    retention: i64,
    /// Largest time written.
    observed: i64,
    bytes: usize,
    dirty_bytes: usize,
    max_bytes: usize,
    /// Every entry of the store from this time on is held here.
    complete_from: i64,
}

impl SideState {
    fn new(max_bytes: usize, retention: i64, complete_from: i64) -> Self {
        SideState {
            dirty: Vec::new(),
            odd: Vec::new(),
            swept_below: i64::MIN,
            swept_bytes: 0,
            epoch: 0,
            retention,
            observed: i64::MIN,
            bytes: 0,
            dirty_bytes: 0,
            max_bytes,
            complete_from,
        }
    }
}

/// Recent entries of a join's two window stores, unflushed and flushed, by
/// record key. Every operation names its side (0 or 1): the store it is
/// for.
#[derive(Debug)]
pub(crate) struct WindowCache {
    keys: HashMap<RecordKey, [Slots; 2], BuildFxHasher>,
    sides: [SideState; 2],
}

impl WindowCache {
    /// A cache of `max_bytes` per side for stores keeping entries for
    /// `retention` ms, whose entries from `complete_from` on are all
    /// written through it (`i64::MIN` for empty stores).
    pub(crate) fn new(max_bytes: usize, retention: i64, complete_from: i64) -> Self {
        WindowCache {
            keys: HashMap::default(),
            sides: [
                SideState::new(max_bytes, retention, complete_from),
                SideState::new(max_bytes, retention, complete_from),
            ],
        }
    }

    /// Sets up `side` for its store: its retention, and the time from
    /// which every entry of the store is written through the cache.
    pub(crate) fn open_side(&mut self, side: usize, retention: i64, complete_from: i64) {
        let state = &mut self.sides[side];
        state.retention = retention;
        state.complete_from = complete_from;
    }

    /// The latest value of `key`: `Some(None)` when deleted or, at a time
    /// the cache holds completely, absent; `None` when the cache does not
    /// know.
    pub(crate) fn get(&self, side: usize, key: &[u8]) -> Option<Option<&[u8]>> {
        let (record, time, seq) = split(key)?;
        let found = self.keys.get(record).and_then(|lists| {
            let slots = &lists[side];
            slots.binary_search_by(|s| s.order().cmp(&(time, seq))).ok().map(|i| &slots[i])
        });
        match found {
            Some(slot) => Some(slot.value.as_deref()),
            None if time >= self.sides[side].complete_from => Some(None),
            None => None,
        }
    }

    /// Records the latest value of `key` on `side`. Returns whether the
    /// task should flush (the side's unflushed entries fill half its
    /// budget).
    pub(crate) fn put(
        &mut self,
        side: usize,
        key: &[u8],
        value: Option<Vec<u8>>,
        context: EntryContext,
    ) -> bool {
        let state = &mut self.sides[side];
        let Some((record, time, seq)) = split(key) else {
            state.odd.push(DirtyEntry { key: key.to_vec(), value, context, old: None });
            return true;
        };
        let epoch = state.epoch;
        let (shared, lists) = match self.keys.get_key_value(record) {
            Some((shared, _)) => (shared.clone(), self.keys.get_mut(record).expect("found above")),
            None => {
                let shared = RecordKey::new(record);
                (shared.clone(), self.keys.entry(shared).or_default())
            }
        };
        let slots = &mut lists[side];
        if slots.is_empty() {
            state.bytes += record.len() + KEY_OVERHEAD;
        }
        state.observed = state.observed.max(time);
        // The key's own expired entries leave now, while its slots are at hand.
        let expired = state.observed.saturating_sub(state.retention);
        let stale = slots.iter().take_while(|s| s.time < expired && s.epoch != epoch).count();
        if stale > 0 {
            let newest = slots[stale - 1].time;
            let freed: usize = slots.drain(..stale).map(|s| s.size()).sum();
            state.bytes = state.bytes.saturating_sub(freed);
            state.complete_from = state.complete_from.max(newest.saturating_add(1));
        }
        let new_size = value.as_ref().map_or(0, Vec::len) + SLOT_OVERHEAD;
        // The slot keeps a copy; the unflushed list takes the value itself.
        let stored: Option<Box<[u8]>> = value.as_deref().map(Box::from);
        let old_size = match slots.binary_search_by(|s| s.order().cmp(&(time, seq))) {
            Ok(i) => {
                let slot = &mut slots[i];
                let old = slot.size();
                slot.value = stored;
                slot.epoch = epoch;
                old
            }
            Err(i) => {
                slots.insert(i, Slot { time, seq, epoch, value: stored });
                0
            }
        };
        state.bytes = (state.bytes + new_size).saturating_sub(old_size);
        state.dirty_bytes += new_size;
        state.dirty.push(((shared, time, seq), value, context));
        self.evict(side);
        let state = &self.sides[side];
        state.dirty_bytes > state.max_bytes / 2
    }

    /// Whether nothing of `side` waits to be flushed.
    pub(crate) fn is_empty(&self, side: usize) -> bool {
        self.sides[side].dirty.is_empty() && self.sides[side].odd.is_empty()
    }

    /// Changes the budget of `side`.
    pub(crate) fn set_max_bytes(&mut self, side: usize, max_bytes: usize) {
        self.sides[side].max_bytes = max_bytes;
        self.evict(side);
    }

    /// Returns every update of `side` since its last flush, in the order
    /// made, but those already past the retention, and keeps the entries
    /// as flushed (deletes are dropped when evicted).
    pub(crate) fn drain(&mut self, side: usize) -> Vec<DirtyEntry> {
        let state = &mut self.sides[side];
        let mut out = Vec::with_capacity(state.dirty.len() + state.odd.len());
        // Entries already past the retention behind the newest time are
        // never read again (the join drops any record whose window would
        // reach them, and a restore drops them too): neither RocksDB nor
        // the changelog gets them. Deletes always go.
        let expired = state.observed.saturating_sub(state.retention);
        // Drained in place: the list keeps its capacity for the next round.
        for ((record, time, seq), value, context) in state.dirty.drain(..) {
            if value.is_some() && time < expired {
                continue;
            }
            out.push(DirtyEntry { key: window_key(record.as_slice(), time, seq), value, context, old: None });
        }
        out.append(&mut state.odd);
        state.epoch = state.epoch.wrapping_add(1);
        state.dirty_bytes = 0;
        self.evict(side);
        out
    }

    /// Sweeps out the flushed entries of `side` past the retention once
    /// the side has doubled since its last sweep, and its oldest flushed
    /// times while it is over its budget.
    fn evict(&mut self, side: usize) {
        let state = &self.sides[side];
        let expired = state.observed.saturating_sub(state.retention);
        if expired > state.swept_below && state.bytes > (2 * state.swept_bytes).max(state.max_bytes / 8) {
            self.sweep(side, expired);
        }
        let state = &self.sides[side];
        if state.bytes > state.max_bytes {
            self.shrink(side, state.max_bytes - state.max_bytes / 8);
        }
    }

    /// Drops the flushed entries of the oldest times of `side` until at
    /// most `target` bytes are held (or only unflushed entries are left).
    fn shrink(&mut self, side: usize, target: usize) {
        let state = &self.sides[side];
        let epoch = state.epoch;
        let mut held: Vec<(i64, usize)> = self
            .keys
            .values()
            .flat_map(|lists| lists[side].iter())
            .filter(|s| s.epoch != epoch)
            .map(|s| (s.time, s.size()))
            .collect();
        held.sort_unstable();
        let need = state.bytes.saturating_sub(target);
        let (mut freed, mut cutoff) = (0, None);
        for (time, size) in held {
            if freed >= need && cutoff.is_some_and(|c| time >= c) {
                break;
            }
            freed += size;
            cutoff = Some(time.saturating_add(1));
        }
        if let Some(cutoff) = cutoff {
            self.sweep(side, cutoff);
        }
    }

    /// Removes every flushed entry of `side` older than `cutoff`, and the
    /// keys left without entries on either side; moves the side's
    /// `complete_from` past what it removed.
    fn sweep(&mut self, side: usize, cutoff: i64) {
        let state = &mut self.sides[side];
        let epoch = state.epoch;
        let (mut freed, mut newest) = (0usize, None::<i64>);
        self.keys.retain(|record, lists| {
            let slots = &mut lists[side];
            if !slots.is_empty() {
                slots.retain(|s| {
                    // An entry updated since the flush stays until it is flushed.
                    let leaves = s.time < cutoff && s.epoch != epoch;
                    if leaves {
                        freed += s.size();
                        newest = Some(newest.map_or(s.time, |n| n.max(s.time)));
                    }
                    !leaves
                });
                if slots.is_empty() {
                    freed += record.as_slice().len() + KEY_OVERHEAD;
                }
            }
            lists.iter().any(|slots| !slots.is_empty())
        });
        state.bytes = state.bytes.saturating_sub(freed);
        if let Some(newest) = newest {
            state.complete_from = state.complete_from.max(newest.saturating_add(1));
        }
        state.swept_below = state.swept_below.max(cutoff);
        state.swept_bytes = state.bytes;
    }

    /// A write that reached `side`'s RocksDB store around the cache (a
    /// restore): the cache no longer holds every entry at that time.
    pub(crate) fn bypassed(&mut self, side: usize, key: &[u8]) {
        let state = &mut self.sides[side];
        if let Some((record, time, seq)) = split(key) {
            state.complete_from = state.complete_from.max(time.saturating_add(1));
            if let Some(lists) = self.keys.get_mut(record) {
                let slots = &mut lists[side];
                if let Ok(i) = slots.binary_search_by(|s| s.order().cmp(&(time, seq))) {
                    if slots[i].epoch != state.epoch {
                        state.bytes = state.bytes.saturating_sub(slots.remove(i).size());
                        if slots.is_empty() {
                            state.bytes = state.bytes.saturating_sub(record.len() + KEY_OVERHEAD);
                        }
                    }
                }
            }
        }
    }

    /// The entries of `side`'s store from `from` (inclusive) to `to`
    /// (exclusive), when the cache alone holds them all: a range over one
    /// record key's times, starting at or after the side's `complete_from`.
    #[cfg(test)]
    pub(crate) fn complete_range(&self, side: usize, from: &[u8], to: Option<&[u8]>) -> Option<Entries> {
        let mut out = Vec::new();
        self.complete_range_each(side, from, to, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok::<(), std::convert::Infallible>(())
        })?
        .ok()?;
        Some(out)
    }

    /// Calls `each` with every key and value [`complete_range`] would
    /// return, in order, without copying them: `None` when the cache cannot
    /// answer alone, else what `each` returned (the first error stops).
    ///
    /// [`complete_range`]: Self::complete_range
    pub(crate) fn complete_range_each<E>(
        &self,
        side: usize,
        from: &[u8],
        to: Option<&[u8]>,
        each: &mut EachEntry<'_, E>,
    ) -> Option<Result<(), E>> {
        let (record, from_time, from_seq) = split(from)?;
        let (to_record, to_time, to_seq) = split(to?)?;
        if record != to_record || from_time < self.sides[side].complete_from {
            return None;
        }
        let Some(lists) = self.keys.get(record) else { return Some(Ok(())) };
        let slots = &lists[side];
        let start = slots.partition_point(|s| s.order() < (from_time, from_seq));
        // Keys are built in one buffer (on the stack for usual key sizes):
        // the record key once, then each entry's time and sequence.
        let mut key: SmallVec<[u8; 64]> = SmallVec::from_elem(0, record.len() + 12);
        let n = record.len();
        key[..n].copy_from_slice(record);
        for slot in &slots[start..] {
            if slot.order() >= (to_time, to_seq) {
                break;
            }
            if let Some(value) = &slot.value {
                key[n..n + 8].copy_from_slice(&slot.time.to_be_bytes());
                key[n + 8..].copy_from_slice(&slot.seq.to_be_bytes());
                if let Err(e) = each(&key, value) {
                    return Some(Err(e));
                }
            }
        }
        Some(Ok(()))
    }

    /// Lays the cache's entries of `side` from `from` to `to` (`None`: no
    /// bound) over `entries` read from RocksDB: newer values replace,
    /// deletes remove.
    pub(crate) fn overlay(
        &self,
        side: usize,
        from: &[u8],
        to: Option<&[u8]>,
        entries: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    ) {
        let mut apply = |key: Vec<u8>, value: Option<&[u8]>| {
            if key.as_slice() < from || to.is_some_and(|to| key.as_slice() >= to) {
                return;
            }
            match value {
                Some(value) => entries.insert(key, value.to_vec()),
                None => entries.remove(&key),
            };
        };
        let one_key = split(from).zip(to.and_then(split)).filter(|((a, ..), (b, ..))| a == b);
        match one_key {
            Some(((record, ..), _)) => {
                for slot in self.keys.get(record).into_iter().flat_map(|lists| lists[side].iter()) {
                    apply(window_key(record, slot.time, slot.seq), slot.value.as_deref());
                }
            }
            None => {
                for (record, lists) in &self.keys {
                    for slot in &lists[side] {
                        apply(window_key(record.as_slice(), slot.time, slot.seq), slot.value.as_deref());
                    }
                }
            }
        }
    }

    /// Bytes held for `side` (keys, values and overheads).
    #[cfg(test)]
    pub(crate) fn bytes(&self, side: usize) -> usize {
        self.sides[side].bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str, time: i64, seq: u32) -> Vec<u8> {
        window_key(k.as_bytes(), time, seq)
    }

    fn ctx(offset: i64) -> EntryContext {
        EntryContext { offset, ..EntryContext::default() }
    }

    fn times(entries: &Entries) -> Vec<i64> {
        entries.iter().map(|(k, _)| split(k).unwrap().1).collect()
    }

    #[test]
    fn flushed_entries_stay_readable_and_ranges_of_one_key_are_answered_from_memory() {
        let mut cache = WindowCache::new(1 << 20, i64::MAX, i64::MIN);
        for (i, t) in [5_000, 1_000, 3_000].into_iter().enumerate() {
            assert!(!cache.put(0, &key("a", t, 0), Some(vec![b'v'; 4]), ctx(i as i64)));
        }
        cache.put(0, &key("b", 2_000, 0), Some(b"b".to_vec()), ctx(3));
        cache.put(0, &key("a", 3_000, 0), None, ctx(4));
        let drained = cache.drain(0);
        let order: Vec<(i64, i64)> =
            drained.iter().map(|e| (split(&e.key).unwrap().1, e.context.offset)).collect();
        assert_eq!(
            order,
            vec![(5_000, 0), (1_000, 1), (3_000, 2), (2_000, 3), (3_000, 4)],
            "in the order made"
        );
        assert!(drained[4].value.is_none(), "the delete is flushed");
        assert!(cache.is_empty(0));
        // After the flush, one key's range comes from memory.
        let got = cache.complete_range(0, &key("a", 0, 0), Some(&key("a", 5_000, 0))).unwrap();
        assert_eq!(times(&got), vec![1_000], "5000 is past the exclusive bound; 3000 was deleted");
        assert_eq!(cache.get(0, &key("a", 5_000, 0)), Some(Some(&b"vvvv"[..])));
        assert_eq!(cache.get(0, &key("a", 4_000, 0)), Some(None), "complete: known absent");
        // Two keys, or no upper bound: not answerable alone.
        assert!(cache.complete_range(0, &key("a", 0, 0), Some(&key("b", 9_000, 0))).is_none());
        assert!(cache.complete_range(0, &key("a", 0, 0), None).is_none());
    }

    #[test]
    fn eviction_drops_the_oldest_clean_times_and_older_ranges_go_to_rocksdb() {
        let entry = 10 + SLOT_OVERHEAD;
        let mut cache = WindowCache::new(40 * entry + 4 * (1 + KEY_OVERHEAD), i64::MAX, i64::MIN);
        for t in 0..30i64 {
            cache.put(0, &key(&format!("{}", t % 4), t * 1_000, 0), Some(vec![0; 10]), ctx(t));
        }
        assert_eq!(cache.drain(0).len(), 30);
        for t in 30..60i64 {
            cache.put(0, &key(&format!("{}", t % 4), t * 1_000, 0), Some(vec![0; 10]), ctx(t));
        }
        assert!(cache.bytes(0) <= 40 * entry + 4 * (1 + KEY_OVERHEAD), "{}", cache.bytes(0));
        let complete = cache.sides[0].complete_from;
        assert!(complete > 0 && complete <= 30_000, "evicted some flushed times: {complete}");
        // Unflushed entries are never evicted.
        for t in 30..60i64 {
            assert!(cache.get(0, &key(&format!("{}", t % 4), t * 1_000, 0)).unwrap().is_some());
        }
        // Before complete_from, the cache cannot answer alone; laid over
        // RocksDB's entries it replaces and deletes.
        let (from, to) = (key("0", 0, 0), key("0", 60_000, 0));
        assert!(cache.complete_range(0, &from, Some(&to)).is_none());
        let mut rocks: BTreeMap<Vec<u8>, Vec<u8>> =
            [(key("0", 0, 0), b"disk".to_vec()), (key("0", 56_000, 0), b"stale".to_vec())]
                .into_iter()
                .collect();
        cache.put(0, &key("0", 0, 0), None, ctx(99));
        cache.overlay(0, &from, Some(&to), &mut rocks);
        assert!(!rocks.contains_key(&key("0", 0, 0)), "a cached delete removes");
        assert_eq!(rocks[&key("0", 56_000, 0)], vec![0; 10], "the cached value replaces");
        let complete = cache.sides[0].complete_from;
        let from_cache = cache.complete_range(0, &key("0", complete, 0), Some(&to)).unwrap();
        assert!(times(&from_cache).iter().all(|&t| t >= complete && t % 4_000 == 0));
    }

    /// Writes keys `f0`, `f1`… at `time` with 1000-byte values until the
    /// cache has swept (its cutoff moved), at most `max` of them; returns
    /// how many it wrote.
    fn fill_until_swept(cache: &mut WindowCache, side: usize, time: i64, max: usize) -> usize {
        let before = cache.sides[side].swept_below;
        for i in 0..max {
            cache.put(side, &key(&format!("f{i}"), time, 0), Some(vec![0; 1000]), ctx(100 + i as i64));
            if cache.sides[side].swept_below != before {
                return i + 1;
            }
        }
        max
    }

    #[test]
    fn flushed_entries_past_the_retention_leave_in_sweeps_and_unflushed_ones_stay() {
        let mut cache = WindowCache::new(1 << 20, 10_000, i64::MIN);
        for t in [0, 4_000, 8_000] {
            cache.put(0, &key("a", t, 0), Some(vec![1]), ctx(t));
        }
        cache.drain(0);
        cache.put(0, &key("a", 4_000, 0), Some(vec![2]), ctx(9));
        // Time 16 s: 0 and 4 s are past a 10 s retention, but 4 s was
        // updated since the flush. Nothing sweeps while the cache is small.
        cache.put(0, &key("b", 16_000, 0), Some(vec![3]), ctx(10));
        assert_eq!(cache.get(0, &key("a", 0, 0)), Some(Some(&[1u8][..])), "expired, not yet swept");
        // An eighth of the budget (128 KiB) is about 120 entries of 1000 bytes.
        let written = fill_until_swept(&mut cache, 0, 16_000, 1_000);
        assert!((100..=130).contains(&written), "swept after {written}");
        assert_eq!(cache.sides[0].swept_below, 6_000);
        assert_eq!(cache.get(0, &key("a", 0, 0)), None, "expired and gone: unknown");
        assert_eq!(cache.get(0, &key("a", 4_000, 0)), Some(Some(&[2u8][..])), "unflushed stays");
        assert_eq!(cache.get(0, &key("a", 8_000, 0)), Some(Some(&[1u8][..])), "within the retention");
        assert_eq!(cache.sides[0].complete_from, 1, "moved past what left");
        cache.drain(0);
        // The next sweep waits until the cache has doubled: 4 s, flushed
        // now, and 8 s go then.
        cache.put(0, &key("b", 19_000, 0), Some(vec![4]), ctx(11));
        assert_eq!(cache.get(0, &key("a", 8_000, 0)), Some(Some(&[1u8][..])));
        let again = fill_until_swept(&mut cache, 0, 19_000, 1_000);
        assert!(again > written / 2, "swept after {again} more");
        assert_eq!(cache.get(0, &key("a", 8_000, 0)), None);
        assert_eq!(cache.get(0, &key("a", 4_000, 0)), None, "flushed and expired now");
        assert_eq!(cache.sides[0].complete_from, 8_001);
    }

    #[test]
    fn a_keys_expired_entries_leave_when_the_key_is_written() {
        let mut cache = WindowCache::new(1 << 20, 10_000, i64::MIN);
        cache.put(0, &key("b", 20_000, 0), Some(vec![1]), ctx(0));
        cache.put(0, &key("a", 10_500, 0), Some(vec![2]), ctx(1));
        cache.put(0, &key("c", 10_600, 0), Some(vec![3]), ctx(2));
        cache.drain(0);
        let before = cache.bytes(0);
        // Horizon 11 s: a's own expired entry leaves as a is written.
        cache.put(0, &key("a", 21_000, 0), Some(vec![4]), ctx(3));
        assert_eq!(cache.sides[0].swept_below, i64::MIN, "no sweep");
        assert_eq!(cache.get(0, &key("a", 10_500, 0)), None, "gone: unknown");
        assert_eq!(cache.sides[0].complete_from, 10_501);
        assert_eq!(cache.bytes(0), before, "one entry of the same size left and came");
        assert_eq!(cache.get(0, &key("c", 10_600, 0)), Some(Some(&[3u8][..])), "c waits for a sweep");
        fill_until_swept(&mut cache, 0, 21_000, 1_000);
        assert!(!cache.keys.contains_key("c".as_bytes()), "swept");
    }

    #[test]
    fn a_write_around_the_cache_and_a_zero_budget_make_reads_go_to_rocksdb() {
        let mut cache = WindowCache::new(1 << 20, i64::MAX, i64::MIN);
        cache.bypassed(0, &key("a", 7_000, 1));
        assert!(cache.complete_range(0, &key("a", 7_000, 0), Some(&key("a", 9_000, 0))).is_none());
        assert!(cache.complete_range(0, &key("a", 7_001, 0), Some(&key("a", 9_000, 0))).is_some());
        assert_eq!(cache.get(0, &key("a", 7_000, 1)), None, "unknown");
        let mut off = WindowCache::new(0, i64::MAX, i64::MIN);
        assert!(off.put(0, &key("a", 1, 0), Some(vec![1]), ctx(0)), "a zero budget flushes every record");
        assert_eq!(off.drain(0).len(), 1);
        assert_eq!(off.bytes(0), 0, "nothing kept");
        assert!(off.complete_range(0, &key("a", 0, 0), Some(&key("a", 9, 0))).is_none());
        let mut short = WindowCache::new(1 << 20, i64::MAX, i64::MIN);
        assert!(short.put(0, b"short", None, ctx(0)));
        assert_eq!(short.drain(0)[0].key, b"short".to_vec(), "flushed as is, for RocksDB to refuse");
    }

    #[test]
    fn a_joins_two_sides_share_keys_but_not_entries_flushes_or_sweeps() {
        let mut cache = WindowCache::new(1 << 20, 10_000, i64::MIN);
        cache.put(0, &key("a", 1_000, 0), Some(b"l".to_vec()), ctx(0));
        cache.put(1, &key("a", 1_500, 0), Some(b"r".to_vec()), ctx(1));
        assert_eq!(cache.keys.len(), 1, "one slot for the key of both sides");
        assert_eq!(cache.get(0, &key("a", 1_500, 0)), Some(None), "side 0 holds no 1.5 s entry");
        assert_eq!(cache.get(1, &key("a", 1_500, 0)), Some(Some(&b"r"[..])));
        let (from, to) = (key("a", 0, 0), key("a", 9_999, 0));
        assert_eq!(times(&cache.complete_range(0, &from, Some(&to)).unwrap()), vec![1_000]);
        assert_eq!(times(&cache.complete_range(1, &from, Some(&to)).unwrap()), vec![1_500]);
        assert_eq!(cache.bytes(0), cache.bytes(1), "each side counts its own entry and key");
        // Each side flushes on its own.
        assert_eq!(cache.drain(0).len(), 1);
        assert!(cache.is_empty(0) && !cache.is_empty(1));
        assert_eq!(cache.drain(1).len(), 1);
        // Side 0 sweeps past its retention: its entry of "a" leaves, side
        // 1's stays, and so does the key.
        fill_until_swept(&mut cache, 0, 30_000, 1_000);
        assert_eq!(cache.get(0, &key("a", 1_000, 0)), None, "swept: unknown");
        assert_eq!(cache.sides[0].complete_from, 1_001);
        assert_eq!(cache.get(1, &key("a", 1_500, 0)), Some(Some(&b"r"[..])), "the other side's stays");
        assert_eq!(cache.sides[1].complete_from, i64::MIN, "the other side still holds everything");
        assert!(cache.keys.contains_key("a".as_bytes()));
        // Once side 1 sweeps too, the key leaves.
        fill_until_swept(&mut cache, 1, 30_000, 1_000);
        assert!(!cache.keys.contains_key("a".as_bytes()), "no entry left on either side");
    }

    #[test]
    fn short_keys_held_inline_and_long_ones_shared_read_and_flush_alike() {
        let mut cache = WindowCache::new(1 << 20, i64::MAX, i64::MIN);
        let keys: Vec<String> =
            [0, 1, INLINE_KEY - 1, INLINE_KEY, INLINE_KEY + 1, 100].iter().map(|n| "k".repeat(*n)).collect();
        for (i, k) in keys.iter().enumerate() {
            cache.put(0, &key(k, 1_000, 0), Some(vec![i as u8]), ctx(i as i64));
        }
        assert!(matches!(RecordKey::new(keys[3].as_bytes()), RecordKey::Inline { .. }));
        assert!(matches!(RecordKey::new(keys[4].as_bytes()), RecordKey::Shared(_)));
        assert_eq!(cache.keys.len(), keys.len(), "no two keys confused");
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(cache.get(0, &key(k, 1_000, 0)), Some(Some(&[i as u8][..])), "{k:?}");
            let got = cache.complete_range(0, &key(k, 0, 0), Some(&key(k, 2_000, 0))).unwrap();
            assert_eq!(got, vec![(key(k, 1_000, 0), vec![i as u8])], "{k:?}");
        }
        let drained: Vec<Vec<u8>> = cache.drain(0).into_iter().map(|e| e.key).collect();
        assert_eq!(drained, keys.iter().map(|k| key(k, 1_000, 0)).collect::<Vec<_>>());
    }

    #[test]
    fn entries_past_the_retention_by_the_flush_are_not_flushed() {
        let mut cache = WindowCache::new(1 << 20, 10_000, i64::MIN);
        cache.put(0, &key("a", 1_000, 0), Some(vec![1]), ctx(0));
        cache.put(0, &key("b", 1_500, 0), None, ctx(1));
        cache.put(0, &key("c", 12_000, 0), Some(vec![2]), ctx(2));
        // Newest 12 s, retention 10 s: a (1 s) is past it; b's delete goes.
        let flushed: Vec<(Vec<u8>, i64)> =
            cache.drain(0).into_iter().map(|e| (e.key, e.context.offset)).collect();
        assert_eq!(flushed, vec![(key("b", 1_500, 0), 1), (key("c", 12_000, 0), 2)]);
    }
}
