//! [`WindowStore`] and [`SessionStore`]: typed, read-only views of
//! windowed stores (Kafka's `ReadOnlyWindowStore` and
//! `ReadOnlySessionStore`).

use std::fmt;

use crate::serdes::Serde;
use crate::store::kv::StoreReader;
use crate::store::serde_error::serde_error;
use crate::store::Entries;
use crate::window::{read_time, Window};
use crate::StreamsError;

/// What both views share: the store, its reader and serdes.
pub(crate) struct View<K, V> {
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) reader: Box<dyn StoreReader>,
    pub(crate) key_serde: Box<dyn Serde<K>>,
    pub(crate) value_serde: Box<dyn Serde<V>>,
}

impl<K: 'static, V: 'static> View<K, V> {
    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, StreamsError> {
        Ok(self
            .key_serde
            .serialize(&self.topic, key)
            .map_err(|e| serde_error(&self.name, "serialize", "key", e))?
            .unwrap_or_default())
    }

    fn value(&self, bytes: &[u8]) -> Result<V, StreamsError> {
        self.value_serde
            .deserialize(&self.topic, bytes)
            .map_err(|e| serde_error(&self.name, "deserialize", "value", e))
    }

    /// Entries of `key` whose keys are the key's bytes plus `suffix` bytes.
    fn entries_of(&self, key: &K, suffix: usize) -> Result<Entries, StreamsError> {
        let prefix = self.key_bytes(key)?;
        let mut to = prefix.clone();
        to.push(0x80);
        let n = prefix.len() + suffix;
        Ok(self.reader.range(&prefix, Some(&to))?.into_iter().filter(|(k, _)| k.len() == n).collect())
    }
}

/// A typed read view of a time-windowed store, from
/// [`TopologyTestDriver::get_window_store`](crate::TopologyTestDriver::get_window_store).
/// Windows are named by their start; reads include updates still cached.
pub struct WindowStore<K, V>(pub(crate) View<K, V>);

/// A typed read view of a session store, from
/// [`TopologyTestDriver::get_session_store`](crate::TopologyTestDriver::get_session_store).
pub struct SessionStore<K, V>(pub(crate) View<K, V>);

impl<K, V> fmt::Debug for WindowStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowStore").field("name", &self.0.name).finish_non_exhaustive()
    }
}

impl<K, V> fmt::Debug for SessionStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore").field("name", &self.0.name).finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> WindowStore<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The value of `key` in the window starting at `window_start`, if the
    /// store still has it (expired windows are gone).
    ///
    /// # Errors
    ///
    /// [`StreamsError::StoreSerde`] when the key cannot be encoded or the
    /// value decoded; [`StreamsError::Store`] when RocksDB fails.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<V>, StreamsError> {
        let mut bytes = self.0.key_bytes(key)?;
        bytes.extend_from_slice(&window_start.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]);
        self.0.reader.get(&bytes)?.map(|v| self.0.value(&v)).transpose()
    }

    /// The windows of `key` starting from `from` to `to` (both inclusive),
    /// as (window start, value), oldest first.
    ///
    /// # Errors
    ///
    /// As [`WindowStore::fetch`].
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StreamsError> {
        let mut found = Vec::new();
        for (k, v) in self.0.entries_of(key, 12)? {
            let start = read_time(&k, k.len() - 12);
            if (from..=to).contains(&start) {
                found.push((start, self.0.value(&v)?));
            }
        }
        found.sort_by_key(|(start, _)| *start);
        Ok(found)
    }
}

impl<K: 'static, V: 'static> SessionStore<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The sessions of `key` the store holds, ordered by start.
    ///
    /// # Errors
    ///
    /// As [`WindowStore::fetch`].
    pub fn fetch(&self, key: &K) -> Result<Vec<(Window, V)>, StreamsError> {
        let mut found = Vec::new();
        for (k, v) in self.0.entries_of(key, 16)? {
            let n = k.len();
            found.push((Window::new(read_time(&k, n - 8), read_time(&k, n - 16)), self.0.value(&v)?));
        }
        found.sort_by_key(|(w, _)| (w.start, w.end));
        Ok(found)
    }
}
