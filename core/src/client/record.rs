//! The records clients send and receive.

use bytes::Bytes;

use crate::record::{Header, TimestampType};
use crate::topic::TopicPartition;

/// A record to send: the topic, and optionally a partition, key, value,
/// timestamp and headers.
///
/// ```
/// use runnel_core::client::ProducerRecord;
/// let r = ProducerRecord::new("clicks").key("user-42").value(r#"{"page":"/"}"#).header("source", "web");
/// assert_eq!(&*r.topic, "clicks");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Target topic. Shared: a sender that writes many records to one topic
    /// can clone one `Arc<str>` instead of allocating a name per record.
    pub topic: std::sync::Arc<str>,
    /// Explicit partition; `None` lets the partitioner choose (murmur2 of the
    /// key, or sticky for records without a key).
    pub partition: Option<i32>,
    /// Key bytes.
    pub key: Option<Bytes>,
    /// Value bytes; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Milliseconds since the epoch; `None` takes the send time.
    pub timestamp: Option<i64>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl ProducerRecord {
    /// A record for `topic` with no key, value or headers yet.
    pub fn new(topic: impl Into<std::sync::Arc<str>>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Sends to this partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }
}

/// Where a sent record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic (shared, not copied per record).
    pub topic: std::sync::Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The record's timestamp (the append time for `LogAppendTime` topics).
    pub timestamp: i64,
}

/// A record returned by a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic (shared by every record of the partition, not copied per record).
    pub topic: std::sync::Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp (ms since the epoch).
    pub timestamp: i64,
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
}

impl ConsumerRecord {
    /// The record's topic-partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.to_string(), self.partition)
    }
}
/// Upper bound on the framing a record adds to its key, value and headers
/// (length, attributes, timestamp and offset deltas, field lengths).
const RECORD_OVERHEAD: usize = 21;

/// A record's size as the producers count it against `max.request.size`
/// and `buffer.memory`.
#[inline]
pub(crate) fn estimated_size(record: &ProducerRecord) -> usize {
    RECORD_OVERHEAD
        + record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + record
            .headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 10)
            .sum::<usize>()
}
