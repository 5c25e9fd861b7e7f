//! Per-log configuration with Kafka's topic-level keys.

use std::collections::BTreeMap;

use crate::record::TimestampType;
use crate::{Error, Result};

/// What happens to old data (`cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// `delete`: whole segments are removed by `retention.ms` / `retention.bytes`.
    pub delete: bool,
    /// `compact`: only the latest record per key is kept.
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy { delete: true, compact: false }
    }
}

/// Storage settings of one partition's log. Built from defaults plus
/// overrides with [`LogConfig::with_overrides`]; every value is checked.
///
/// | key | field | default |
/// | --- | ----- | ------- |
/// | `segment.bytes` | [`LogConfig::segment_bytes`] | 1 GiB |
/// | `segment.ms` | [`LogConfig::segment_ms`] | 7 days |
/// | `retention.ms` | [`LogConfig::retention_ms`] | 7 days (−1: forever) |
/// | `retention.bytes` | [`LogConfig::retention_bytes`] | −1 (no limit) |
/// | `cleanup.policy` | [`LogConfig::cleanup_policy`] | `delete` |
/// | `delete.retention.ms` | [`LogConfig::delete_retention_ms`] | 1 day |
/// | `min.compaction.lag.ms` | [`LogConfig::min_compaction_lag_ms`] | 0 |
/// | `min.cleanable.dirty.ratio` | [`LogConfig::min_cleanable_dirty_ratio`] | 0.5 |
/// | `flush.messages` | [`LogConfig::flush_messages`] | never |
/// | `flush.ms` | [`LogConfig::flush_ms`] | never |
/// | `index.interval.bytes` | [`LogConfig::index_interval_bytes`] | 4096 |
/// | `max.message.bytes` | [`LogConfig::max_message_bytes`] | 1048588 |
/// | `message.timestamp.type` | [`LogConfig::message_timestamp_type`] | `CreateTime` |
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll to a new segment before the active one exceeds this size.
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch is this old.
    pub segment_ms: i64,
    /// Delete segments whose newest record is older than this; `None` keeps forever.
    pub retention_ms: Option<i64>,
    /// Delete oldest segments while the log is larger than this; `None` for no limit.
    pub retention_bytes: Option<u64>,
    /// Delete, compact, or both.
    pub cleanup_policy: CleanupPolicy,
    /// How long a tombstone stays readable before compaction drops it.
    pub delete_retention_ms: i64,
    /// Segments whose newest record is younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// Compact when this fraction of the sealed bytes is uncompacted.
    pub min_cleanable_dirty_ratio: f64,
    /// fsync after this many records; `None` leaves it to the OS and to rolls.
    pub flush_messages: Option<u64>,
    /// fsync when the oldest unflushed append is this old; `None` never.
    pub flush_ms: Option<i64>,
    /// Bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// Largest batch accepted.
    pub max_message_bytes: u32,
    /// Whether the log overwrites timestamps with the append time.
    pub message_timestamp_type: TimestampType,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            retention_ms: Some(7 * 24 * 3_600_000),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::default(),
            delete_retention_ms: 24 * 3_600_000,
            min_compaction_lag_ms: 0,
            min_cleanable_dirty_ratio: 0.5,
            flush_messages: None,
            flush_ms: None,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// Every topic-level key [`LogConfig`] understands.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "segment.bytes",
    "segment.ms",
    "retention.ms",
    "retention.bytes",
    "cleanup.policy",
    "delete.retention.ms",
    "min.compaction.lag.ms",
    "min.cleanable.dirty.ratio",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
];

fn invalid(key: &str, reason: impl Into<String>) -> Error {
    Error::InvalidConfig { key: key.to_string(), reason: reason.into() }
}

fn parse_i64(key: &str, value: &str, min: i64) -> Result<i64> {
    let v: i64 = value.trim().parse().map_err(|_| invalid(key, format!("'{value}' is not an integer")))?;
    if v < min {
        return Err(invalid(key, format!("{v} is below the minimum of {min}")));
    }
    Ok(v)
}

/// Kafka's "never" for flush settings and "forever" for retention.
fn unlimited_i64(v: i64) -> Option<i64> {
    (v >= 0 && v != i64::MAX).then_some(v)
}

impl LogConfig {
    /// Smallest accepted `segment.bytes`: room for one header-only batch.
    pub const MIN_SEGMENT_BYTES: u64 = 100;

    /// Applies one `key = value` override.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key for an unknown key or a bad value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "segment.bytes" => {
                let v = parse_i64(key, value, Self::MIN_SEGMENT_BYTES as i64)?;
                if v > i64::from(i32::MAX) {
                    return Err(invalid(key, format!("{v} exceeds the maximum of {}", i32::MAX)));
                }
                self.segment_bytes = v as u64;
            }
            "segment.ms" => self.segment_ms = parse_i64(key, value, 1)?,
            "retention.ms" => self.retention_ms = unlimited_i64(parse_i64(key, value, -1)?),
            "retention.bytes" => {
                self.retention_bytes = unlimited_i64(parse_i64(key, value, -1)?).map(|v| v as u64)
            }
            "cleanup.policy" => {
                let mut policy = CleanupPolicy { delete: false, compact: false };
                for part in value.split(',').map(str::trim) {
                    match part {
                        "delete" => policy.delete = true,
                        "compact" => policy.compact = true,
                        other => {
                            return Err(invalid(
                                key,
                                format!("'{other}' is not a policy (expected delete, compact or both)"),
                            ))
                        }
                    }
                }
                self.cleanup_policy = policy;
            }
            "delete.retention.ms" => self.delete_retention_ms = parse_i64(key, value, 0)?,
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = parse_i64(key, value, 0)?,
            "min.cleanable.dirty.ratio" => {
                let v: f64 =
                    value.trim().parse().map_err(|_| invalid(key, format!("'{value}' is not a number")))?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(invalid(key, format!("{v} is not between 0 and 1")));
                }
                self.min_cleanable_dirty_ratio = v;
            }
            "flush.messages" => {
                let v = parse_i64(key, value, 1)?;
                self.flush_messages = (v != i64::MAX).then_some(v as u64);
            }
            "flush.ms" => self.flush_ms = unlimited_i64(parse_i64(key, value, 0)?),
            "index.interval.bytes" => {
                let v = parse_i64(key, value, 0)?;
                self.index_interval_bytes =
                    u32::try_from(v).map_err(|_| invalid(key, format!("{v} does not fit in 32 bits")))?;
            }
            "max.message.bytes" => {
                let v = parse_i64(key, value, 0)?;
                self.max_message_bytes = u32::try_from(v)
                    .ok()
                    .filter(|&v| v <= i32::MAX as u32)
                    .ok_or_else(|| invalid(key, format!("{v} exceeds the maximum of {}", i32::MAX)))?;
            }
            "message.timestamp.type" => {
                self.message_timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    other => {
                        return Err(invalid(key, format!("'{other}' is not CreateTime or LogAppendTime")))
                    }
                }
            }
            other => {
                return Err(invalid(
                    other,
                    "unknown topic config key (known: ".to_string() + &TOPIC_CONFIG_KEYS.join(", ") + ")",
                ))
            }
        }
        Ok(())
    }

    /// Every key with its value, as Kafka would print it.
    pub fn to_properties(&self) -> BTreeMap<String, String> {
        let never = |v: Option<i64>| v.map_or("-1".to_string(), |v| v.to_string());
        let policy = match (self.cleanup_policy.delete, self.cleanup_policy.compact) {
            (true, true) => "compact,delete",
            (false, true) => "compact",
            _ => "delete",
        };
        BTreeMap::from([
            ("segment.bytes".to_string(), self.segment_bytes.to_string()),
            ("segment.ms".to_string(), self.segment_ms.to_string()),
            ("retention.ms".to_string(), never(self.retention_ms)),
            ("retention.bytes".to_string(), never(self.retention_bytes.map(|v| v as i64))),
            ("cleanup.policy".to_string(), policy.to_string()),
            ("delete.retention.ms".to_string(), self.delete_retention_ms.to_string()),
            ("min.compaction.lag.ms".to_string(), self.min_compaction_lag_ms.to_string()),
            ("min.cleanable.dirty.ratio".to_string(), self.min_cleanable_dirty_ratio.to_string()),
            (
                "flush.messages".to_string(),
                self.flush_messages.map_or(i64::MAX.to_string(), |v| v.to_string()),
            ),
            ("flush.ms".to_string(), self.flush_ms.map_or(i64::MAX.to_string(), |v| v.to_string())),
            ("index.interval.bytes".to_string(), self.index_interval_bytes.to_string()),
            ("max.message.bytes".to_string(), self.max_message_bytes.to_string()),
            (
                "message.timestamp.type".to_string(),
                match self.message_timestamp_type {
                    TimestampType::CreateTime => "CreateTime",
                    TimestampType::LogAppendTime => "LogAppendTime",
                }
                .to_string(),
            ),
        ])
    }

    /// This config with every override applied.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use runnel_core::log::LogConfig;
    /// let overrides = BTreeMap::from([("retention.ms".to_string(), "-1".to_string())]);
    /// let config = LogConfig::default().with_overrides(&overrides)?;
    /// assert_eq!(config.retention_ms, None);
    /// # Ok::<(), runnel_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// The first bad key or value.
    pub fn with_overrides(&self, overrides: &BTreeMap<String, String>) -> Result<LogConfig> {
        let mut config = self.clone();
        for (k, v) in overrides {
            config.set(k, v)?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_keys_parse_and_bad_values_name_the_key() {
        let mut c = LogConfig::default();
        c.set("cleanup.policy", "compact,delete").unwrap();
        assert_eq!(c.cleanup_policy, CleanupPolicy { delete: true, compact: true });
        c.set("retention.bytes", "-1").unwrap();
        assert_eq!(c.retention_bytes, None);
        c.set("flush.messages", "1").unwrap();
        assert_eq!(c.flush_messages, Some(1));
        c.set("message.timestamp.type", "LogAppendTime").unwrap();

        for (k, v, needle) in [
            ("segment.bytes", "ten", "not an integer"),
            ("segment.bytes", "10", "below the minimum"),
            ("cleanup.policy", "shred", "not a policy"),
            ("min.cleanable.dirty.ratio", "2", "between 0 and 1"),
            ("retention.msec", "1", "unknown topic config key"),
            ("message.timestamp.type", "Now", "CreateTime or LogAppendTime"),
        ] {
            let err = c.clone().set(k, v).unwrap_err().to_string();
            assert!(err.contains(k) && err.contains(needle), "{k}={v}: {err}");
        }
    }
}
