//! [`KeyValueStoreRef`]: a Processor API processor's typed handle on a
//! key-value store of its task.

use std::marker::PhantomData;
use std::sync::Arc;

use super::ProcessorContext;
use crate::serdes::Serde;
use crate::store::cache::EntryContext;
use crate::store::serde_error::serde_error;
use crate::store::state::{StoreHandle, TaskStores};
use crate::StreamsError;

/// A processor's typed handle on a key-value store of its task, from
/// [`ProcessorContext::key_value_store`]. Every call takes the context
/// the processor was called with.
pub struct KeyValueStoreRef<K, V> {
    handle: StoreHandle,
    name: Arc<str>,
    topic: Arc<str>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for KeyValueStoreRef<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueStoreRef").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> KeyValueStoreRef<K, V> {
    pub(crate) fn resolve(stores: &TaskStores, name: &str) -> Result<Self, StreamsError> {
        let handle = stores
            .find(name)
            .ok_or_else(|| StreamsError::UnknownStore { name: name.to_string(), known: stores.names() })?;
        let slot = &stores.slots[handle.0];
        let typed = slot.typed.as_ref().ok_or_else(|| StreamsError::Runtime {
            reason: format!(
                "store {name:?} is not a Processor API key-value store (add it with a StoreBuilder)"
            ),
        })?;
        let serdes = typed.0.downcast_ref::<(Arc<dyn Serde<K>>, Arc<dyn Serde<V>>)>().ok_or_else(|| {
            StreamsError::Runtime {
                reason: format!(
                    "store {name:?} does not hold ({}, {})",
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                ),
            }
        })?;
        Ok(KeyValueStoreRef {
            handle,
            name: Arc::from(name),
            topic: Arc::from(slot.changelog.as_str()),
            key_serde: Arc::clone(&serdes.0),
            value_serde: Arc::clone(&serdes.1),
            _types: PhantomData,
        })
    }

    fn key(&self, key: &K) -> Result<Vec<u8>, StreamsError> {
        let mut out = Vec::new();
        self.key_serde
            .serialize_into(&self.topic, key, &mut out)
            .map_err(|e| serde_error(&self.name, "serialize", "key", e))?;
        Ok(out)
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Result<(K, V), StreamsError> {
        let k = self
            .key_serde
            .deserialize(&self.topic, key)
            .map_err(|e| serde_error(&self.name, "deserialize", "key", e))?;
        let v = self
            .value_serde
            .deserialize(&self.topic, value)
            .map_err(|e| serde_error(&self.name, "deserialize", "value", e))?;
        Ok((k, v))
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// RocksDB or serde failures.
    pub fn get(&self, ctx: &ProcessorContext<'_>, key: &K) -> Result<Option<V>, StreamsError> {
        let key = self.key(key)?;
        match ctx.stores.get(self.handle, &key)? {
            Some(bytes) => self
                .value_serde
                .deserialize(&self.topic, &bytes)
                .map(Some)
                .map_err(|e| serde_error(&self.name, "deserialize", "value", e)),
            None => Ok(None),
        }
    }

    /// Sets `key` to `value` (`None` deletes it).
    ///
    /// # Errors
    /// Serde failures.
    pub fn put(
        &self,
        ctx: &mut ProcessorContext<'_>,
        key: &K,
        value: Option<&V>,
    ) -> Result<(), StreamsError> {
        let key = self.key(key)?;
        let value = match value {
            Some(v) => {
                let mut out = Vec::new();
                self.value_serde
                    .serialize_into(&self.topic, v, &mut out)
                    .map_err(|e| serde_error(&self.name, "serialize", "value", e))?;
                Some(out)
            }
            None => None,
        };
        let context = EntryContext {
            timestamp: ctx.stream_time.max(0),
            topic: ctx.topic_index,
            offset: ctx.offset,
            headers: Vec::new(),
        };
        ctx.stores.put(self.handle, &key, value, context);
        Ok(())
    }

    /// Deletes `key`, returning its value.
    ///
    /// # Errors
    /// RocksDB or serde failures.
    pub fn delete(&self, ctx: &mut ProcessorContext<'_>, key: &K) -> Result<Option<V>, StreamsError> {
        let old = self.get(ctx, key)?;
        self.put(ctx, key, None)?;
        Ok(old)
    }

    /// Every entry, in the byte order of the serialized keys.
    ///
    /// # Errors
    /// RocksDB or serde failures.
    pub fn all(&self, ctx: &ProcessorContext<'_>) -> Result<Vec<(K, V)>, StreamsError> {
        ctx.stores.all(self.handle)?.iter().map(|(k, v)| self.decode(k, v)).collect()
    }

    /// The entries from `from` (inclusive) to `to` (exclusive), in the
    /// byte order of the serialized keys.
    ///
    /// # Errors
    /// RocksDB or serde failures.
    pub fn range(&self, ctx: &ProcessorContext<'_>, from: &K, to: &K) -> Result<Vec<(K, V)>, StreamsError> {
        let (from, to) = (self.key(from)?, self.key(to)?);
        ctx.stores.range(self.handle, &from, Some(&to))?.iter().map(|(k, v)| self.decode(k, v)).collect()
    }
}
