//! [`ConnectRecord`]: the record converters produce and transforms rewrite,
//! shared by source and sink paths (Kafka's `ConnectRecord`, `SourceRecord`
//! and `SinkRecord` in one type).

use crate::data::{Schema, SchemaAndValue, Value};

/// One record header: a key and a value with an optional schema.
///
/// Raw header bytes that no header converter has interpreted are carried as
/// `Value::Bytes` with no schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The header's key (not unique: a record may repeat a key).
    pub key: String,
    /// The value's schema, if known.
    pub schema: Option<Schema>,
    /// The value.
    pub value: Value,
}

impl Header {
    /// A header from a key and a schema and value.
    pub fn new(key: impl Into<String>, schema_and_value: SchemaAndValue) -> Header {
        Header { key: key.into(), schema: schema_and_value.schema, value: schema_and_value.value }
    }

    /// A header holding raw bytes (no schema).
    pub fn raw(key: impl Into<String>, bytes: Vec<u8>) -> Header {
        Header { key: key.into(), schema: None, value: Value::Bytes(bytes) }
    }
}

/// A record inside Connect: topic, partition, key and value with their
/// schemas, timestamp and headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectRecord {
    /// The topic.
    pub topic: String,
    /// The partition, if assigned.
    pub kafka_partition: Option<i32>,
    /// The offset in the topic partition: set on sink records only.
    pub kafka_offset: Option<i64>,
    /// The key's schema.
    pub key_schema: Option<Schema>,
    /// The key.
    pub key: Value,
    /// The value's schema.
    pub value_schema: Option<Schema>,
    /// The value (null for a tombstone).
    pub value: Value,
    /// The timestamp in epoch milliseconds.
    pub timestamp: Option<i64>,
    /// The headers in order.
    pub headers: Vec<Header>,
}

impl ConnectRecord {
    /// A record for a topic with a schemaless value and nothing else set.
    pub fn new(topic: impl Into<String>, value: impl Into<Value>) -> ConnectRecord {
        ConnectRecord { topic: topic.into(), value: value.into(), ..ConnectRecord::default() }
    }

    /// Sets the value and its schema.
    pub fn with_value(mut self, schema: Option<Schema>, value: impl Into<Value>) -> Self {
        self.value_schema = schema;
        self.value = value.into();
        self
    }

    /// Sets the key and its schema.
    pub fn with_key(mut self, schema: Option<Schema>, key: impl Into<Value>) -> Self {
        self.key_schema = schema;
        self.key = key.into();
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    /// The first header with this key.
    pub fn header(&self, key: &str) -> Option<&Header> {
        self.headers.iter().find(|h| h.key == key)
    }

    /// Whether the value is null (a tombstone).
    pub fn is_tombstone(&self) -> bool {
        self.value.is_null()
    }
}
