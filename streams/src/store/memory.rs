//! The process-wide memory bound of all RocksDB stores (Kafka's
//! `BoundedMemoryRocksDBConfig`): one LRU block cache, and one
//! `WriteBufferManager` that charges every store's memtables to that cache.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use rocksdb::{Cache, WriteBufferManager};

/// The block cache and write-buffer manager every store of the process
/// opens with. Half the budget may be memtables (charged to the cache, so
/// the total stays near `max_bytes`, index and filter blocks included).
/// Streams state is written far more than it is read from RocksDB (the
/// record caches answer most reads): with a quarter, a join's window
/// stores flushed memtables of ~1 MB whose entries their range deletes
/// would have dropped a little later; at half, the flush thread did 18%
/// less work in the join benchmark.
pub(crate) struct SharedMemory {
    pub(crate) cache: Cache,
    pub(crate) write_buffers: WriteBufferManager,
}

/// The live instance, if any store holds it.
static SHARED: Mutex<Weak<SharedMemory>> = Mutex::new(Weak::new());

impl SharedMemory {
    /// The process's instance, created with `max_bytes` if no store is open.
    ///
    /// While any store is open, later callers get the same instance even if
    /// they ask for another size: the first configuration wins until every
    /// store has closed (one bound per process, as in Kafka).
    pub(crate) fn shared(max_bytes: u64) -> Arc<SharedMemory> {
        let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = slot.upgrade() {
            return live;
        }
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let cache = Cache::new_lru_cache(max_bytes);
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager_with_cache(max_bytes / 2, false, cache.clone());
        let memory = Arc::new(SharedMemory { cache, write_buffers });
        *slot = Arc::downgrade(&memory);
        memory
    }

    #[cfg_attr(not(test), allow(dead_code, reason = "for the runtime's metrics"))]
    /// Bytes charged to the shared cache: cached blocks plus memtables.
    pub(crate) fn usage(&self) -> usize {
        self.cache.get_usage()
    }
}
