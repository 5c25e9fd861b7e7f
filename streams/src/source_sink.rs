//! Source nodes (bytes from a topic → typed records) and sink nodes (typed
//! records → bytes for the [`RecordCollector`](crate::RecordCollector)).

use std::sync::Arc;

use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::{ConsumedRecord, Record, SinkRecord};
use crate::serdes::Serde;
use crate::StreamsError;

/// The root of a task's processor tree for one or more topics.
pub(crate) trait SourceProcessor: Send {
    /// Deserializes `record` and forwards it to the source's children.
    fn process_consumed(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: &ConsumedRecord<'_>,
    ) -> Result<(), StreamsError>;
}

/// Deserializes with the stream's serdes; see [`crate::Consumed`].
pub(crate) struct SourceNode<K, V> {
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) out: Forwarder<K, V>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> SourceProcessor for SourceNode<K, V> {
    fn process_consumed(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: &ConsumedRecord<'_>,
    ) -> Result<(), StreamsError> {
        let error = |part, source| StreamsError::Deserialization {
            topic: record.topic.to_string(),
            partition: record.partition,
            offset: record.offset,
            part,
            source,
        };
        let key =
            self.key_serde.deserialize_nullable(record.topic, record.key).map_err(|e| error("key", e))?;
        let value = self
            .value_serde
            .deserialize_nullable(record.topic, record.value)
            .map_err(|e| error("value", e))?;
        let typed = Record { key, value, timestamp: record.timestamp, headers: record.headers.to_vec() };
        self.out.forward(ctx, typed)
    }
}

/// How a sink picks the topic of a record.
pub(crate) trait SinkTopic<K, V>: Send {
    /// Calls `f` with the topic for this key and value.
    fn with_topic<R>(&self, key: &K, value: &V, f: impl FnOnce(&str) -> R) -> R;
}

/// One topic, resolved for the application.
pub(crate) struct FixedTopic(pub(crate) String);

impl<K, V> SinkTopic<K, V> for FixedTopic {
    fn with_topic<R>(&self, _key: &K, _value: &V, f: impl FnOnce(&str) -> R) -> R {
        f(&self.0)
    }
}

/// A topic chosen per record by a user closure.
pub(crate) struct DynamicTopic<F>(pub(crate) Arc<F>);

impl<K, V, F, T> SinkTopic<K, V> for DynamicTopic<F>
where
    F: Fn(&K, &V) -> T + Send + Sync,
    T: AsRef<str>,
{
    fn with_topic<R>(&self, key: &K, value: &V, f: impl FnOnce(&str) -> R) -> R {
        let topic = (self.0)(key, value);
        f(topic.as_ref())
    }
}

/// Serializes into reusable buffers and hands the bytes to the collector.
pub(crate) struct SinkNode<K, V, T> {
    pub(crate) name: Arc<str>,
    pub(crate) topic: T,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) key_buf: Vec<u8>,
    pub(crate) value_buf: Vec<u8>,
}

impl<K, V, T> SinkNode<K, V, T> {
    pub(crate) fn new(
        name: Arc<str>,
        topic: T,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        SinkNode { name, topic, key_serde, value_serde, key_buf: Vec::new(), value_buf: Vec::new() }
    }
}

fn serialize_part<'b, T: 'static>(
    serde: &dyn Serde<T>,
    topic: &str,
    value: &T,
    buf: &'b mut Vec<u8>,
    node: &str,
    part: &'static str,
) -> Result<Option<&'b [u8]>, StreamsError> {
    if serde.is_null(value) {
        return Ok(None);
    }
    buf.clear();
    serde.serialize_into(topic, value, buf).map_err(|source| StreamsError::Serialization {
        node: node.to_string(),
        topic: topic.to_string(),
        part,
        source,
    })?;
    Ok(Some(buf.as_slice()))
}

impl<K: Send + 'static, V: Send + 'static, T: SinkTopic<K, V>> Processor<K, V> for SinkNode<K, V, T> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<(), StreamsError> {
        let SinkNode { name, topic, key_serde, value_serde, key_buf, value_buf } = self;
        topic.with_topic(&record.key, &record.value, |topic| {
            let key = serialize_part(&**key_serde, topic, &record.key, key_buf, name, "key")?;
            let value = serialize_part(&**value_serde, topic, &record.value, value_buf, name, "value")?;
            ctx.collector().send(SinkRecord {
                topic,
                partition: None,
                key,
                value,
                timestamp: record.timestamp,
                headers: &record.headers,
            })
        })
    }
}
