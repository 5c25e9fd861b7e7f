//! [`KeyValueStore`]: a typed, read-only view of a store's content.

use std::fmt;

use crate::serdes::Serde;
use crate::store::serde_error::serde_error;
use crate::store::Entries;
use crate::StreamsError;

/// Reads a store's bytes; implemented by whoever owns the store.
pub(crate) trait StoreReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError>;
    fn all(&self) -> Result<Entries, StreamsError>;
    /// Keys from `from` (inclusive) to `to` (exclusive), in key order.
    fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Entries, StreamsError>;
}

/// A typed read view of a key-value state store (Kafka's
/// `ReadOnlyKeyValueStore`), from
/// [`TopologyTestDriver::get_key_value_store`](crate::TopologyTestDriver::get_key_value_store).
///
/// Reads see the latest value of each key, including updates still in the
/// record cache.
pub struct KeyValueStore<K, V> {
    pub(crate) name: String,
    /// The changelog topic, passed to the serdes as the topic.
    pub(crate) topic: String,
    pub(crate) reader: Box<dyn StoreReader>,
    pub(crate) key_serde: Box<dyn Serde<K>>,
    pub(crate) value_serde: Box<dyn Serde<V>>,
}

impl<K, V> fmt::Debug for KeyValueStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueStore").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `key`, if the store has one.
    ///
    /// # Errors
    ///
    /// [`StreamsError::StoreSerde`] when the key cannot be encoded or the
    /// stored value decoded; [`StreamsError::Store`] when RocksDB fails.
    pub fn get(&self, key: &K) -> Result<Option<V>, StreamsError> {
        let key = self
            .key_serde
            .serialize(&self.topic, key)
            .map_err(|e| serde_error(&self.name, "serialize", "key", e))?
            .unwrap_or_default();
        match self.reader.get(&key)? {
            None => Ok(None),
            Some(bytes) => self.decode_value(&bytes).map(Some),
        }
    }

    /// Every key and value, in the order of the key bytes (RocksDB's order).
    ///
    /// # Errors
    ///
    /// As [`KeyValueStore::get`].
    pub fn all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        self.reader
            .all()?
            .into_iter()
            .map(|(key, value)| {
                let key = self
                    .key_serde
                    .deserialize(&self.topic, &key)
                    .map_err(|e| serde_error(&self.name, "deserialize", "key", e))?;
                Ok((key, self.decode_value(&value)?))
            })
            .collect()
    }

    /// Number of keys.
    ///
    /// # Errors
    ///
    /// As [`KeyValueStore::get`].
    pub fn approximate_num_entries(&self) -> Result<usize, StreamsError> {
        Ok(self.reader.all()?.len())
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V, StreamsError> {
        self.value_serde
            .deserialize(&self.topic, bytes)
            .map_err(|e| serde_error(&self.name, "deserialize", "value", e))
    }
}
