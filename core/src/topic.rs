//! Topic names, topic-partitions, and the request to create a topic.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Longest topic name Kafka accepts (a partition directory adds `-NNNN`,
/// staying under the usual 255-byte file name limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

pub use crate::vocabulary::TopicPartition;

/// Checks a topic name the way Kafka does: 1 to 249 characters from
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
///
/// ```
/// use runnel_core::topic::validate_topic_name;
/// assert!(validate_topic_name("orders.v1_eu-west").is_ok());
/// assert!(validate_topic_name("bad/name").is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidTopicName`] naming the rule broken.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidTopicName { name: name.to_string(), reason };
    if name.is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not allowed".into()));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(invalid(format!(
            "{} characters is longer than the maximum of {MAX_TOPIC_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(invalid(format!(
            "character {c:?} is not allowed (use ASCII letters, digits, '.', '_' and '-')"
        )));
    }
    Ok(())
}

/// Kafka treats `.` and `_` as colliding in metric names; two topics whose
/// names differ only there cannot both exist.
pub(crate) fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// A request to create a topic.
///
/// ```
/// use runnel_core::topic::NewTopic;
/// let t = NewTopic::new("orders", 6).config("cleanup.policy", "compact");
/// assert_eq!(t.num_partitions, 6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions (at least 1).
    pub num_partitions: i32,
    /// Per-topic config overrides with Kafka's keys (`retention.ms`, ...).
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with `num_partitions` partitions and default configs.
    pub fn new(name: impl Into<String>, num_partitions: i32) -> Self {
        NewTopic { name: name.into(), num_partitions, configs: BTreeMap::new() }
    }

    /// Adds a config override.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.insert(key.into(), value.into());
        self
    }
}

/// What `describe_topic` reports about one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: i32,
    /// First offset still stored.
    pub log_start_offset: i64,
    /// Offset the next record will get.
    pub log_end_offset: i64,
    /// Bytes on disk in `.log` files.
    pub size_bytes: u64,
    /// Number of segments.
    pub segments: usize,
    /// Set when the partition could not be opened.
    pub offline_reason: Option<String>,
}

/// What `describe_topic` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// The per-topic overrides.
    pub configs: BTreeMap<String, String>,
    /// One entry per partition, in order.
    pub partitions: Vec<PartitionDescription>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        for ok in ["a", "A-z_0.9", &"x".repeat(249), "__consumer_offsets"] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", &"x".repeat(250), "a b", "ü", "a/b", "a:b"] {
            let err = validate_topic_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid topic name"), "{bad}: {err}");
        }
    }

    #[test]
    fn dot_and_underscore_collide() {
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
        assert_ne!(collision_key("a.b"), collision_key("ab"));
    }
}
