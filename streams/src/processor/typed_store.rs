//! [`TypedStore`]: how a processor reads and writes its store with typed
//! keys and values, reusing one key buffer.

use std::sync::Arc;

use super::ProcessorContext;
use crate::record::Headers;
use crate::serdes::{Serde, SerdeError};
use crate::store::cache::EntryContext;
use crate::store::serde_error::serde_error;
use crate::store::state::StoreHandle;
use crate::StreamsError;

/// A processor's view of one store of its task.
pub(crate) struct TypedStore<K, V> {
    handle: StoreHandle,
    name: Arc<str>,
    /// The changelog topic: the topic name store serdes are called with.
    topic: Arc<str>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    key: Vec<u8>,
}

impl<K: 'static, V: 'static> TypedStore<K, V> {
    pub(crate) fn new(
        handle: StoreHandle,
        name: &str,
        changelog: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        TypedStore {
            handle,
            name: Arc::from(name),
            topic: Arc::from(changelog),
            key_serde,
            value_serde,
            key: Vec::new(),
        }
    }

    /// Serializes `key` as the key of the next [`get`](Self::get) and
    /// [`put`](Self::put).
    #[inline]
    pub(crate) fn set_key(&mut self, key: &K) -> Result<(), StreamsError> {
        self.key.clear();
        self.key_serde
            .serialize_into(&self.topic, key, &mut self.key)
            .map_err(|e| serde_error(&self.name, "serialize", "key", e))
    }

    /// Builds the key of the next [`get`](Self::get) and [`put`](Self::put)
    /// with `build`, which appends its bytes to an empty buffer (windowed
    /// keys: the record key's serde, then the window's times).
    #[inline]
    pub(crate) fn set_key_with(
        &mut self,
        build: impl FnOnce(&str, &mut Vec<u8>) -> Result<(), SerdeError>,
    ) -> Result<(), StreamsError> {
        self.key.clear();
        build(&self.topic, &mut self.key).map_err(|e| serde_error(&self.name, "serialize", "key", e))
    }

    /// Serializes `key` behind its 4-byte length (`len(key) ‖ key`): the
    /// prefix of every entry of the key in a store with several entries per
    /// key (a versioned store).
    pub(crate) fn set_key_length_prefixed(&mut self, key: &K) -> Result<(), StreamsError> {
        self.key.clear();
        self.key.extend_from_slice(&[0; 4]);
        self.key_serde
            .serialize_into(&self.topic, key, &mut self.key)
            .map_err(|e| serde_error(&self.name, "serialize", "key", e))?;
        let len = u32::try_from(self.key.len() - 4).unwrap_or(u32::MAX);
        self.key[..4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// The current key's bytes.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// Appends `value`'s bytes to `out`.
    pub(crate) fn encode_value_into(&self, value: &V, out: &mut Vec<u8>) -> Result<(), StreamsError> {
        self.value_serde
            .serialize_into(&self.topic, value, out)
            .map_err(|e| serde_error(&self.name, "serialize", "value", e))
    }

    /// The handle of the store.
    pub(crate) fn handle(&self) -> StoreHandle {
        self.handle
    }

    /// The changelog topic, which the store's serdes are called with.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Decodes a stored value.
    pub(crate) fn decode_value(&self, bytes: &[u8]) -> Result<V, StreamsError> {
        self.value_serde
            .deserialize(&self.topic, bytes)
            .map_err(|e| serde_error(&self.name, "deserialize", "value", e))
    }

    /// The current key's value.
    #[inline]
    pub(crate) fn get(&self, ctx: &ProcessorContext<'_>) -> Result<Option<V>, StreamsError> {
        match ctx.stores.get(self.handle, &self.key)? {
            None => Ok(None),
            Some(bytes) => self
                .value_serde
                .deserialize(&self.topic, &bytes)
                .map(Some)
                .map_err(|e| serde_error(&self.name, "deserialize", "value", e)),
        }
    }

    /// The current key's value, for a lookup that does not write it back
    /// (no copy of the stored bytes, nothing remembered for a flush).
    #[inline]
    pub(crate) fn lookup(&self, ctx: &ProcessorContext<'_>) -> Result<Option<V>, StreamsError> {
        ctx.stores.read(self.handle, &self.key, |bytes| match bytes {
            None => Ok(None),
            Some(bytes) => self
                .value_serde
                .deserialize(&self.topic, bytes)
                .map(Some)
                .map_err(|e| serde_error(&self.name, "deserialize", "value", e)),
        })
    }

    /// Caches the current key's new value (`None` deletes), remembering the
    /// record it came from.
    #[inline]
    pub(crate) fn put(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        value: Option<&V>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), StreamsError> {
        let bytes = match value {
            None => None,
            Some(value) => Some(
                self.value_serde
                    .serialize(&self.topic, value)
                    .map_err(|e| serde_error(&self.name, "serialize", "value", e))?,
            )
            .flatten(),
        };
        let context = EntryContext { timestamp, topic: ctx.topic_index, offset: ctx.offset, headers };
        ctx.stores.put(self.handle, &self.key, bytes, context);
        Ok(())
    }
}
