//! Global stores: the RocksDB stores behind
//! [`GlobalKTable`](crate::GlobalKTable)s. Every instance keeps a full
//! copy of each global table's topic (all partitions), so stream tasks of
//! any partition can look keys up locally.
//!
//! A global store has no changelog: its source topic is its log. One
//! checkpoint file per instance,
//! `<state.dir>/<application.id>/global/.checkpoint`, records the next
//! offset of every global topic partition applied to the stores, so a
//! restart reads only what it has not applied yet.
//!
//! Stores are shared between stream threads (which read) and the global
//! thread (which writes) behind a read-write lock; a write holds it for one
//! batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use crate::config::StreamsConfig;
use crate::store::checkpoint;
use crate::store::memory::SharedMemory;
use crate::store::rocks::RocksStore;
use crate::StreamsError;

/// One global table's store.
pub(crate) struct GlobalStore {
    name: String,
    topic: String,
    rocks: RwLock<RocksStore>,
}

impl GlobalStore {
    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The topic it copies.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        self.rocks.read().unwrap_or_else(PoisonError::into_inner).get(key)
    }

    /// Every entry, in key order.
    pub(crate) fn all(&self) -> Result<super::Entries, StreamsError> {
        self.rocks.read().unwrap_or_else(PoisonError::into_inner).all()
    }

    /// Entries from `from` (inclusive) to `to` (exclusive), in key order.
    pub(crate) fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<super::Entries, StreamsError> {
        self.rocks.read().unwrap_or_else(PoisonError::into_inner).range(from, to)
    }

    /// Applies topic records: a value puts, a tombstone deletes.
    pub(crate) fn apply<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), StreamsError> {
        self.rocks.write().unwrap_or_else(PoisonError::into_inner).write(records)
    }

    fn flush(&self) -> Result<(), StreamsError> {
        self.rocks.read().unwrap_or_else(PoisonError::into_inner).flush()
    }
}

/// The global stores of one instance (or test driver).
#[derive(Default)]
pub(crate) struct GlobalStores {
    stores: Vec<Arc<GlobalStore>>,
    /// `<state.dir>/<application.id>/global`.
    dir: Option<PathBuf>,
}

/// The stores of an instance without global tables.
#[cfg(test)]
static NONE: GlobalStores = GlobalStores { stores: Vec::new(), dir: None };

impl GlobalStores {
    /// An empty set, for tasks of topologies without global tables.
    #[cfg(test)]
    pub(crate) fn none() -> &'static GlobalStores {
        &NONE
    }

    /// Opens (creating if needed) the stores `(name, topic)` under the
    /// application's state directory.
    pub(crate) fn open(defs: &[(String, String)], config: &StreamsConfig) -> Result<Self, StreamsError> {
        if defs.is_empty() {
            return Ok(GlobalStores::default());
        }
        let dir = config.state_dir().join(config.application_id()).join("global");
        let memory = SharedMemory::shared(config.memory_max_bytes());
        let mut stores = Vec::with_capacity(defs.len());
        for (name, topic) in defs {
            let rocks = RocksStore::open_segmented(name, &dir.join(name), Arc::clone(&memory), None)?;
            stores.push(Arc::new(GlobalStore {
                name: name.clone(),
                topic: topic.clone(),
                rocks: RwLock::new(rocks),
            }));
        }
        Ok(GlobalStores { stores, dir: Some(dir) })
    }

    /// The store named `name`.
    pub(crate) fn find(&self, name: &str) -> Option<&Arc<GlobalStore>> {
        self.stores.iter().find(|s| s.name == name)
    }

    /// The store copying `topic`.
    pub(crate) fn for_topic(&self, topic: &str) -> Option<&Arc<GlobalStore>> {
        self.stores.iter().find(|s| s.topic == topic)
    }

    /// All stores.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<GlobalStore>> {
        self.stores.iter()
    }

    /// Whether there are no global stores.
    pub(crate) fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    fn checkpoint_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(".checkpoint"))
    }

    /// Next offset to apply per global topic partition, as checkpointed.
    pub(crate) fn checkpointed_offsets(&self) -> Result<HashMap<(String, i32), i64>, StreamsError> {
        match self.checkpoint_path() {
            Some(path) => checkpoint::read(&path),
            None => Ok(HashMap::new()),
        }
    }

    /// Persists the stores, then records `offsets` as applied.
    pub(crate) fn write_checkpoint(&self, offsets: &HashMap<(String, i32), i64>) -> Result<(), StreamsError> {
        let Some(path) = self.checkpoint_path() else { return Ok(()) };
        for store in &self.stores {
            store.flush()?;
        }
        checkpoint::write(&path, offsets)
    }
}

/// Reads a global store's bytes (for the test driver's and the runtime's
/// store views).
struct GlobalReader(Arc<GlobalStore>);

/// A byte reader of a global store.
pub(crate) fn global_reader(store: Arc<GlobalStore>) -> Box<dyn crate::store::kv::StoreReader> {
    Box::new(GlobalReader(store))
}

impl crate::store::kv::StoreReader for GlobalReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        self.0.get(key)
    }

    fn all(&self) -> Result<crate::store::Entries, StreamsError> {
        self.0.all()
    }

    fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<crate::store::Entries, StreamsError> {
        self.0.range(from, to)
    }
}
