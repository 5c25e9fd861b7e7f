//! Producer and consumer settings, with the Java client's config keys.

use std::collections::BTreeMap;

use crate::record::Compression;
pub use crate::vocabulary::AssignmentStrategy;
use crate::{Error, Result};

fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig { key: key.to_string(), reason: reason.into() }
}

fn parse_u64(key: &str, value: &str, min: u64) -> Result<u64> {
    let v: u64 =
        value.trim().parse().map_err(|_| invalid(key, format!("'{value}' is not a non-negative integer")))?;
    if v < min {
        return Err(invalid(key, format!("{v} is below the minimum of {min}")));
    }
    Ok(v)
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid(key, format!("'{other}' is not true or false"))),
    }
}

/// When a send counts as done (`acks`). The embedded cluster has one
/// replica, so every level completes when the batch is in the log; the
/// setting matters for the `kafka://` backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// `acks=0`.
    None,
    /// `acks=1`.
    Leader,
    /// `acks=all` (or `-1`).
    #[default]
    All,
}

/// Producer settings. Build with [`ProducerConfig::default`] and the
/// builder methods, or from Kafka properties with
/// [`ProducerConfig::from_properties`].
///
/// | key | field | default |
/// | --- | ----- | ------- |
/// | `client.id` | `client_id` | `runnel-producer` |
/// | `acks` | `acks` | `all` |
/// | `linger.ms` | `linger_ms` | 5 |
/// | `batch.size` | `batch_size` | 16384 |
/// | `buffer.memory` | `buffer_memory` | 33554432 |
/// | `max.block.ms` | `max_block_ms` | 60000 |
/// | `max.request.size` | `max_request_size` | 1048576 |
/// | `compression.type` | `compression` | `none` |
/// | `enable.idempotence` | `enable_idempotence` | `true` |
///
/// ```
/// use runnel_core::client::ProducerConfig;
/// let config = ProducerConfig::default().linger_ms(20).set("compression.type", "zstd")?;
/// assert_eq!(config.linger_ms, 20);
/// # Ok::<(), runnel_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerConfig {
    /// Name used in logs.
    pub client_id: String,
    /// Acknowledgement level.
    pub acks: Acks,
    /// How long a batch may wait for more records before it is sent.
    pub linger_ms: u64,
    /// Target size of a batch in bytes; a batch is sent when it reaches it.
    pub batch_size: usize,
    /// Memory for records waiting to be sent; `send` waits when it is used up.
    pub buffer_memory: usize,
    /// How long `send` may wait for buffer memory before failing.
    pub max_block_ms: u64,
    /// Largest record (and batch) accepted.
    pub max_request_size: usize,
    /// Codec for batches.
    pub compression: Compression,
    /// Accepted for compatibility; the embedded cluster writes each batch
    /// once, in order, so sends are never duplicated.
    pub enable_idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            client_id: "runnel-producer".into(),
            acks: Acks::All,
            linger_ms: 5,
            batch_size: 16 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            max_block_ms: 60_000,
            max_request_size: 1024 * 1024,
            compression: Compression::None,
            enable_idempotence: true,
        }
    }
}

impl ProducerConfig {
    /// Sets `linger.ms`.
    pub fn linger_ms(mut self, ms: u64) -> Self {
        self.linger_ms = ms;
        self
    }

    /// Sets `batch.size`.
    pub fn batch_size(mut self, bytes: usize) -> Self {
        self.batch_size = bytes;
        self
    }

    /// Sets `compression.type`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Applies one Kafka property.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        match key {
            "client.id" => self.client_id = value.to_string(),
            "acks" => {
                self.acks = match value.trim() {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    other => return Err(invalid(key, format!("'{other}' is not 0, 1, all or -1"))),
                }
            }
            "linger.ms" => self.linger_ms = parse_u64(key, value, 0)?,
            "batch.size" => self.batch_size = parse_u64(key, value, 0)? as usize,
            "buffer.memory" => self.buffer_memory = parse_u64(key, value, 1024)? as usize,
            "max.block.ms" => self.max_block_ms = parse_u64(key, value, 0)?,
            "max.request.size" => self.max_request_size = parse_u64(key, value, 1)? as usize,
            "compression.type" => {
                self.compression = value
                    .trim()
                    .parse()
                    .map_err(|e: crate::record::RecordError| invalid(key, e.to_string()))?
            }
            "enable.idempotence" => self.enable_idempotence = parse_bool(key, value)?,
            other => return Err(invalid(other, "unknown producer config key")),
        }
        Ok(self)
    }

    /// A config from Kafka properties over the defaults.
    ///
    /// # Errors
    /// The first bad key or value.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self> {
        props.iter().try_fold(ProducerConfig::default(), |c, (k, v)| c.set(k, v))?.validated()
    }

    /// Checks values that are only wrong together.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key.
    pub fn validated(self) -> Result<Self> {
        if self.max_request_size > self.buffer_memory {
            return Err(invalid("max.request.size", "must not exceed buffer.memory"));
        }
        Ok(self)
    }
}

/// Where a consumer starts when it has no committed offset, or its position
/// is out of range (`auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The first offset still stored.
    Earliest,
    /// The log end: only new records.
    #[default]
    Latest,
    /// Fail with [`Error::NoOffset`].
    None,
}

/// Consumer settings.
///
/// | key | field | default |
/// | --- | ----- | ------- |
/// | `group.id` | `group_id` | none (no group: `assign` only, no commits) |
/// | `client.id` | `client_id` | `runnel-consumer` |
/// | `enable.auto.commit` | `enable_auto_commit` | `true` |
/// | `auto.commit.interval.ms` | `auto_commit_interval_ms` | 5000 |
/// | `auto.offset.reset` | `auto_offset_reset` | `latest` |
/// | `session.timeout.ms` | `session_timeout_ms` | 45000 |
/// | `heartbeat.interval.ms` | `heartbeat_interval_ms` | 3000 |
/// | `max.poll.records` | `max_poll_records` | 500 |
/// | `max.poll.interval.ms` | `max_poll_interval_ms` | 300000 |
/// | `max.partition.fetch.bytes` | `max_partition_fetch_bytes` | 1048576 |
/// | `fetch.max.bytes` | `fetch_max_bytes` | 52428800 |
/// | `partition.assignment.strategy` | `assignment_strategies` | `range,cooperative-sticky` |
///
/// ```
/// use runnel_core::client::{ConsumerConfig, OffsetReset};
/// let config = ConsumerConfig::group("dashboards").set("auto.offset.reset", "earliest")?;
/// assert_eq!(config.auto_offset_reset, OffsetReset::Earliest);
/// # Ok::<(), runnel_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerConfig {
    /// Consumer group; required for `subscribe` and commits.
    pub group_id: Option<String>,
    /// Name used in logs and group descriptions.
    pub client_id: String,
    /// Commit the positions returned by `poll` in the background.
    pub enable_auto_commit: bool,
    /// How often auto-commit runs.
    pub auto_commit_interval_ms: u64,
    /// Where to start without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// A member that does not heartbeat for this long is removed from its group.
    pub session_timeout_ms: u64,
    /// How often the consumer heartbeats.
    pub heartbeat_interval_ms: u64,
    /// Most records one `poll` returns.
    pub max_poll_records: usize,
    /// A member that does not poll for this long leaves its group.
    pub max_poll_interval_ms: u64,
    /// Most bytes fetched from one partition per fetch.
    pub max_partition_fetch_bytes: usize,
    /// Most bytes fetched per poll across partitions.
    pub fetch_max_bytes: usize,
    /// Assignors this member supports, preferred first.
    pub assignment_strategies: Vec<AssignmentStrategy>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            client_id: "runnel-consumer".into(),
            enable_auto_commit: true,
            auto_commit_interval_ms: 5000,
            auto_offset_reset: OffsetReset::Latest,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3000,
            max_poll_records: 500,
            max_poll_interval_ms: 300_000,
            max_partition_fetch_bytes: 1024 * 1024,
            fetch_max_bytes: 50 * 1024 * 1024,
            assignment_strategies: vec![AssignmentStrategy::Range, AssignmentStrategy::CooperativeSticky],
        }
    }
}

impl ConsumerConfig {
    /// A config for a member of `group_id`.
    pub fn group(group_id: impl Into<String>) -> Self {
        ConsumerConfig { group_id: Some(group_id.into()), ..ConsumerConfig::default() }
    }

    /// Sets `auto.offset.reset`.
    pub fn offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets `enable.auto.commit`.
    pub fn auto_commit(mut self, enabled: bool) -> Self {
        self.enable_auto_commit = enabled;
        self
    }

    /// Sets `partition.assignment.strategy` to one assignor.
    pub fn strategy(mut self, strategy: AssignmentStrategy) -> Self {
        self.assignment_strategies = vec![strategy];
        self
    }

    /// Applies one Kafka property.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key.
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        match key {
            "group.id" => self.group_id = Some(value.to_string()).filter(|g| !g.is_empty()),
            "client.id" => self.client_id = value.to_string(),
            "enable.auto.commit" => self.enable_auto_commit = parse_bool(key, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval_ms = parse_u64(key, value, 1)?,
            "auto.offset.reset" => {
                self.auto_offset_reset = match value.trim() {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    other => return Err(invalid(key, format!("'{other}' is not earliest, latest or none"))),
                }
            }
            "session.timeout.ms" => self.session_timeout_ms = parse_u64(key, value, 1)?,
            "heartbeat.interval.ms" => self.heartbeat_interval_ms = parse_u64(key, value, 1)?,
            "max.poll.records" => self.max_poll_records = parse_u64(key, value, 1)? as usize,
            "max.poll.interval.ms" => self.max_poll_interval_ms = parse_u64(key, value, 1)?,
            "max.partition.fetch.bytes" => {
                self.max_partition_fetch_bytes = parse_u64(key, value, 1)? as usize
            }
            "fetch.max.bytes" => self.fetch_max_bytes = parse_u64(key, value, 1)? as usize,
            "partition.assignment.strategy" => {
                self.assignment_strategies = value
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| {
                        AssignmentStrategy::from_name(s).ok_or_else(|| {
                            invalid(
                                key,
                                format!("'{}' is not range, roundrobin or cooperative-sticky", s.trim()),
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
                if self.assignment_strategies.is_empty() {
                    return Err(invalid(key, "no assignor named"));
                }
            }
            other => return Err(invalid(other, "unknown consumer config key")),
        }
        Ok(self)
    }

    /// A config from Kafka properties over the defaults.
    ///
    /// # Errors
    /// The first bad key or value.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self> {
        props.iter().try_fold(ConsumerConfig::default(), |c, (k, v)| c.set(k, v))?.validated()
    }

    /// Checks values that are only wrong together.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key.
    pub fn validated(self) -> Result<Self> {
        if self.group_id.as_ref().is_some_and(|g| g.len() > i16::MAX as usize) {
            return Err(invalid("group.id", format!("longer than {} bytes", i16::MAX)));
        }
        if self.heartbeat_interval_ms >= self.session_timeout_ms {
            return Err(invalid("heartbeat.interval.ms", "must be lower than session.timeout.ms"));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_client_keys_parse_and_mistakes_name_the_key() {
        let p = ProducerConfig::default().set("acks", "-1").unwrap().set("compression.type", "lz4").unwrap();
        assert_eq!((p.acks, p.compression), (Acks::All, Compression::Lz4));
        let c = ConsumerConfig::default()
            .set(
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
            )
            .unwrap();
        assert_eq!(c.assignment_strategies, vec![AssignmentStrategy::CooperativeSticky]);
        for (err, needle) in [
            (ProducerConfig::default().set("acks", "2").unwrap_err(), "acks"),
            (ProducerConfig::default().set("linger.ms", "-1").unwrap_err(), "linger.ms"),
            (ProducerConfig::default().set("lingers.ms", "1").unwrap_err(), "lingers.ms"),
            (
                ConsumerConfig::default().set("auto.offset.reset", "smallest").unwrap_err(),
                "auto.offset.reset",
            ),
            (ConsumerConfig::default().set("partition.assignment.strategy", "sticky").unwrap_err(), "sticky"),
            (
                ConsumerConfig::default()
                    .set("heartbeat.interval.ms", "50000")
                    .unwrap()
                    .validated()
                    .unwrap_err(),
                "heartbeat.interval.ms",
            ),
        ] {
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
