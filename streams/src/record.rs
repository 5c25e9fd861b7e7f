//! Records as they flow through a topology, as they arrive from a topic and
//! as they leave for one.

/// Record headers in the order they were written: name and value bytes.
pub type Headers = Vec<(String, Vec<u8>)>;

/// A typed record inside a topology.
///
/// Operators pass records by value, so a chain of stateless operators moves
/// the key and value from node to node without copying; only fan-out to
/// several children clones.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// Event time, milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Headers carried from the input record.
    pub headers: Headers,
}

impl<K, V> Record<K, V> {
    /// A record without headers.
    pub fn new(key: K, value: V, timestamp: i64) -> Self {
        Record { key, value, timestamp, headers: Vec::new() }
    }

    /// The same timestamp and headers with another key and value.
    pub fn with_key_value<K2, V2>(self, key: K2, value: V2) -> Record<K2, V2> {
        Record { key, value, timestamp: self.timestamp, headers: self.headers }
    }

    /// The same key, timestamp and headers with another value.
    pub fn with_value<V2>(self, value: V2) -> Record<K, V2> {
        Record { key: self.key, value, timestamp: self.timestamp, headers: self.headers }
    }
}

/// A serialized record read from a topic partition, borrowed from the
/// consumer's buffers, before a source node deserializes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsumedRecord<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [(String, Vec<u8>)],
}

/// A serialized record a sink node hands to the [`RecordCollector`],
/// borrowed from the sink's reusable buffers: the collector copies what it
/// keeps.
#[derive(Debug, Clone, Copy)]
pub struct SinkRecord<'a> {
    /// Destination topic (repartition topics already carry the application
    /// id prefix).
    pub topic: &'a str,
    /// Explicit partition, or `None` for the producer's default partitioner
    /// (murmur2 of the key bytes, like Kafka).
    pub partition: Option<i32>,
    /// Key bytes; `None` is Kafka's null.
    pub key: Option<&'a [u8]>,
    /// Value bytes; `None` is Kafka's null (a tombstone when a key is set).
    pub value: Option<&'a [u8]>,
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Headers to write.
    pub headers: &'a [(String, Vec<u8>)],
}

/// Where sink nodes send their output. The runtime implements it with a
/// producer; [`TopologyTestDriver`](crate::TopologyTestDriver) with in-memory
/// topics.
pub trait RecordCollector {
    /// Sends one record.
    ///
    /// # Errors
    ///
    /// Whatever the implementation fails with, typically
    /// [`StreamsError::Send`](crate::StreamsError::Send); it stops the task.
    fn send(&mut self, record: SinkRecord<'_>) -> Result<(), crate::StreamsError>;
}
