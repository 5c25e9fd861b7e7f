//! [`TaskStores`]: the stores of one task, reached by processors through
//! [`ProcessorContext`](crate::ProcessorContext) with a [`StoreHandle`]
//! resolved when the task was built (no lookup by name per record).

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::store::cache::{EntryContext, StoreCache};
use crate::store::rocks::RocksStore;
use crate::store::window_cache::WindowCache;
use crate::store::Entries;
use crate::StreamsError;

/// A key and its stored value (`None`: absent).
pub(crate) type KeyAndValue = (Vec<u8>, Option<Vec<u8>>);

/// Index of a store in its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreHandle(pub(crate) usize);

/// One store of a task: RocksDB, its record cache and its changelog topic.
pub(crate) struct StoreSlot {
    pub(crate) rocks: RocksStore,
    pub(crate) cache: StoreCache,
    /// `<application.id>-<store>-changelog`.
    pub(crate) changelog: String,
    /// The last key read from RocksDB on a cache miss, and its value: the
    /// old value of that key's next cache entry (see [`TaskStores::get`]).
    pub(crate) last_miss: std::cell::RefCell<Option<KeyAndValue>>,
    /// Bytes before the value in stored values: 8 when a timestamp comes
    /// first (sliding-window stores), else 0. Interactive reads skip them.
    pub(crate) value_offset: usize,
    /// A Processor API store's serdes, for typed handles.
    pub(crate) typed: Option<TypedSerdes>,
    /// Whether the record cache is on (`Materialized`); off, the cache's
    /// budget stays 0.
    pub(crate) caching: bool,
}

/// The stores of one task, in topological order of the nodes using them
/// (so flushing in order reaches downstream stores after upstream ones).
#[derive(Default)]
pub(crate) struct TaskStores {
    pub(crate) slots: Vec<StoreSlot>,
    /// The window caches of the task's stream-stream joins, each shared by
    /// a join's two window stores ([`StoreCache::Windows`] names one).
    pub(crate) windows: Vec<WindowCache>,
    /// Some cache went over its budget during the current record.
    pub(crate) over_budget: bool,
}

impl TaskStores {
    /// The latest value of `key`: the cache first, then RocksDB.
    #[inline]
    pub(crate) fn get(&self, store: StoreHandle, key: &[u8]) -> Result<Option<Cow<'_, [u8]>>, StreamsError> {
        let slot = &self.slots[store.0];
        match slot.cache.get(&self.windows, key) {
            Some(value) => Ok(value.map(Cow::Borrowed)),
            None => {
                let kept = slot.cache.kept(key).map(|v| v.as_deref().map(<[u8]>::to_vec));
                let value = match kept {
                    Some(kept) => kept,
                    None => {
                        let value = slot.rocks.get(key)?;
                        slot.cache.remember(key, value.as_deref());
                        value
                    }
                };
                // Aggregations read a key, then write it: the flush then
                // needs this value as the old one, without reading again.
                *slot.last_miss.borrow_mut() = Some((key.to_vec(), value.clone()));
                Ok(value.map(Cow::Owned))
            }
        }
    }

    /// Calls `read` with the latest value of `key` (the cache's, else
    /// RocksDB's, uncopied): for lookups that do not write the key back
    /// (joins), so no old value is remembered for a flush.
    #[inline]
    pub(crate) fn read<T>(
        &self,
        store: StoreHandle,
        key: &[u8],
        read: impl FnOnce(Option<&[u8]>) -> Result<T, StreamsError>,
    ) -> Result<T, StreamsError> {
        let slot = &self.slots[store.0];
        if let Some(value) = slot.cache.get(&self.windows, key) {
            return read(value);
        }
        if let Some(kept) = slot.cache.kept(key) {
            return read(kept.as_deref());
        }
        slot.rocks.read(key, |value| {
            slot.cache.remember(key, value);
            read(value)
        })
    }

    /// Caches the latest value of `key` (`None` deletes it at the next flush).
    #[inline]
    pub(crate) fn put(
        &mut self,
        store: StoreHandle,
        key: &[u8],
        value: Option<Vec<u8>>,
        context: EntryContext,
    ) {
        let slot = &mut self.slots[store.0];
        let hint = slot.last_miss.get_mut().take().filter(|(k, _)| k == key).map(|(_, old)| old);
        if slot.cache.put(&mut self.windows, key, value, context, hint) {
            self.over_budget = true;
        }
    }

    /// Every key and value of a store, cache included, in key-byte order.
    pub(crate) fn all(&self, store: StoreHandle) -> Result<Entries, StreamsError> {
        self.range(store, &[], None)
    }

    /// Keys from `from` (inclusive) to `to` (exclusive; `None` = no bound)
    /// with their latest values, cache included, in key-byte order.
    pub(crate) fn range(
        &self,
        store: StoreHandle,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<Entries, StreamsError> {
        let slot = &self.slots[store.0];
        let mut out = Vec::new();
        let mut copy = |k: &[u8], v: &[u8]| {
            out.push((k.to_vec(), v.to_vec()));
            Ok::<(), StreamsError>(())
        };
        if let Some(done) = slot.cache.complete_range_each(&self.windows, from, to, &mut copy) {
            return done.map(|()| out);
        }
        Ok(self.merged_range(slot, from, to)?.into_iter().collect())
    }

    /// Calls `each` with every key and value of [`range`](Self::range), in
    /// key-byte order. When the cache alone holds the range (a join
    /// window's recent entries) nothing is copied; the first error stops.
    pub(crate) fn range_each(
        &self,
        store: StoreHandle,
        from: &[u8],
        to: Option<&[u8]>,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let slot = &self.slots[store.0];
        if let Some(done) = slot.cache.complete_range_each(&self.windows, from, to, &mut each) {
            return done;
        }
        self.merged_range(slot, from, to)?.iter().try_for_each(|(k, v)| each(k, v))
    }

    /// RocksDB's entries from `from` to `to` with the cache's laid over.
    fn merged_range(
        &self,
        slot: &StoreSlot,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<std::collections::BTreeMap<Vec<u8>, Vec<u8>>, StreamsError> {
        let mut all: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            slot.rocks.range(from, to)?.into_iter().collect();
        slot.cache.overlay(&self.windows, from, to, &mut all);
        Ok(all)
    }

    /// The value of `key` as store views see it: without the timestamp
    /// that sliding-window values start with (`value_offset`).
    pub(crate) fn view_get(&self, store: StoreHandle, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        let skip = self.slots[store.0].value_offset;
        Ok(self.get(store, key)?.map(|v| v.get(skip..).unwrap_or_default().to_vec()))
    }

    /// [`all`](Self::all) as store views see it (see [`view_get`](Self::view_get)).
    pub(crate) fn view_all(&self, store: StoreHandle) -> Result<Entries, StreamsError> {
        Ok(self.skip_values(store, self.all(store)?))
    }

    /// [`range`](Self::range) as store views see it (see [`view_get`](Self::view_get)).
    pub(crate) fn view_range(
        &self,
        store: StoreHandle,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<Entries, StreamsError> {
        Ok(self.skip_values(store, self.range(store, from, to)?))
    }

    /// Drops the store's `value_offset` bytes from each value.
    fn skip_values(&self, store: StoreHandle, entries: Entries) -> Entries {
        let skip = self.slots[store.0].value_offset;
        if skip == 0 {
            return entries;
        }
        entries.into_iter().map(|(k, v)| (k, v.get(skip..).unwrap_or_default().to_vec())).collect()
    }

    /// Splits `bytes` of record cache evenly among the stores with caching
    /// on; the others keep a budget of 0 (every update flushed after its
    /// record).
    pub(crate) fn set_cache_max_bytes(&mut self, bytes: usize) {
        let n = self.slots.iter().filter(|s| s.caching).count().max(1);
        for slot in &mut self.slots {
            slot.cache.set_max_bytes(&mut self.windows, if slot.caching { bytes / n } else { 0 });
        }
    }

    /// The slot of the store named `name`.
    pub(crate) fn find(&self, name: &str) -> Option<StoreHandle> {
        self.slots.iter().position(|s| s.rocks.name() == name).map(StoreHandle)
    }

    /// Store names, in slot order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.rocks.name().to_string()).collect()
    }
}

/// A store's serdes with their types erased; a typed handle downcasts
/// them back (and fails on another type).
#[derive(Clone)]
pub(crate) struct TypedSerdes(pub(crate) Arc<dyn Any + Send + Sync>);

impl fmt::Debug for TypedSerdes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypedSerdes")
    }
}
