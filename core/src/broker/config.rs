//! Broker-wide settings, with Kafka's broker config keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::log::LogConfig;
use crate::time::{SharedClock, SystemClock};
use crate::{Error, Result};

/// Broker key → the topic-level key whose default it sets.
const LOG_DEFAULT_KEYS: &[(&str, &str)] = &[
    ("log.segment.bytes", "segment.bytes"),
    ("log.roll.ms", "segment.ms"),
    ("log.retention.ms", "retention.ms"),
    ("log.retention.bytes", "retention.bytes"),
    ("log.cleanup.policy", "cleanup.policy"),
    ("log.cleaner.delete.retention.ms", "delete.retention.ms"),
    ("log.cleaner.min.compaction.lag.ms", "min.compaction.lag.ms"),
    ("log.cleaner.min.cleanable.ratio", "min.cleanable.dirty.ratio"),
    ("log.flush.interval.messages", "flush.messages"),
    ("log.flush.interval.ms", "flush.ms"),
    ("log.index.interval.bytes", "index.interval.bytes"),
    ("message.max.bytes", "max.message.bytes"),
    ("log.message.timestamp.type", "message.timestamp.type"),
];

/// Settings of an embedded broker.
///
/// ```
/// use std::collections::BTreeMap;
/// use runnel_core::broker::BrokerConfig;
///
/// let props = BTreeMap::from([
///     ("num.partitions".to_string(), "3".to_string()),
///     ("log.retention.ms".to_string(), "3600000".to_string()),
/// ]);
/// let config = BrokerConfig::from_properties(&props)?;
/// assert_eq!(config.num_partitions, 3);
/// assert_eq!(config.log_defaults.retention_ms, Some(3_600_000));
/// # Ok::<(), runnel_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Defaults for every topic's log (overridden per topic).
    pub log_defaults: LogConfig,
    /// Partitions of a topic created without a count (`num.partitions`).
    pub num_partitions: i32,
    /// Create a topic when a client first produces to or fetches metadata
    /// for it (`auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of `__consumer_offsets` when it is first created
    /// (`offsets.topic.num.partitions`).
    pub offsets_topic_partitions: i32,
    /// How often retention and compaction run (`log.retention.check.interval.ms`).
    pub retention_check_interval_ms: i64,
    /// How often `flush.ms` is checked (`log.flush.scheduler.interval.ms`).
    pub flush_scheduler_interval_ms: i64,
    /// Run retention, compaction and timed flushes on a background thread.
    /// Off, they run only when [`crate::broker::Broker::run_maintenance`] is called.
    pub background_maintenance: bool,
    /// The clock every log uses.
    pub clock: SharedClock,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            log_defaults: LogConfig::default(),
            num_partitions: 1,
            auto_create_topics: true,
            offsets_topic_partitions: 1,
            retention_check_interval_ms: 300_000,
            flush_scheduler_interval_ms: 1_000,
            background_maintenance: true,
            clock: Arc::new(SystemClock),
        }
    }
}

impl BrokerConfig {
    /// Builds a config from Kafka broker properties (`log.segment.bytes`,
    /// `log.retention.ms`, `num.partitions`, ...).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the key for unknown keys and bad values.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Self> {
        let mut config = BrokerConfig::default();
        for (key, value) in props {
            let int = |min: i64| -> Result<i64> {
                let v: i64 = value.trim().parse().map_err(|_| Error::InvalidConfig {
                    key: key.clone(),
                    reason: format!("'{value}' is not an integer"),
                })?;
                if v < min {
                    return Err(Error::InvalidConfig {
                        key: key.clone(),
                        reason: format!("{v} is below the minimum of {min}"),
                    });
                }
                Ok(v)
            };
            match key.as_str() {
                "num.partitions" => {
                    config.num_partitions = i32::try_from(int(1)?).map_err(|_| Error::InvalidConfig {
                        key: key.clone(),
                        reason: "does not fit in 32 bits".into(),
                    })?
                }
                "log.retention.check.interval.ms" => config.retention_check_interval_ms = int(1)?,
                "offsets.topic.num.partitions" => {
                    config.offsets_topic_partitions = int(1)?.min(i64::from(super::MAX_PARTITIONS)) as i32
                }
                "auto.create.topics.enable" => {
                    config.auto_create_topics = match value.trim() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(Error::InvalidConfig {
                                key: key.clone(),
                                reason: format!("'{other}' is not true or false"),
                            })
                        }
                    }
                }
                "log.flush.scheduler.interval.ms" => config.flush_scheduler_interval_ms = int(1)?,
                other => {
                    let Some((_, topic_key)) = LOG_DEFAULT_KEYS.iter().find(|(k, _)| *k == other) else {
                        return Err(Error::InvalidConfig {
                            key: other.to_string(),
                            reason: "unknown broker config key".into(),
                        });
                    };
                    config.log_defaults.set(topic_key, value).map_err(|e| match e {
                        Error::InvalidConfig { reason, .. } => {
                            Error::InvalidConfig { key: other.to_string(), reason }
                        }
                        e => e,
                    })?;
                }
            }
        }
        Ok(config)
    }

    /// The effective broker settings as Kafka broker properties (the keys
    /// [`BrokerConfig::from_properties`] accepts).
    pub fn to_properties(&self) -> BTreeMap<String, String> {
        let log = self.log_defaults.to_properties();
        let mut out: BTreeMap<String, String> = LOG_DEFAULT_KEYS
            .iter()
            .filter_map(|(broker_key, topic_key)| {
                log.get(*topic_key).map(|v| (broker_key.to_string(), v.clone()))
            })
            .collect();
        out.insert("num.partitions".into(), self.num_partitions.to_string());
        out.insert("auto.create.topics.enable".into(), self.auto_create_topics.to_string());
        out.insert("offsets.topic.num.partitions".into(), self.offsets_topic_partitions.to_string());
        out.insert("log.retention.check.interval.ms".into(), self.retention_check_interval_ms.to_string());
        out.insert("log.flush.scheduler.interval.ms".into(), self.flush_scheduler_interval_ms.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_keys_set_log_defaults_and_errors_name_the_broker_key() {
        let props = BTreeMap::from([
            ("log.segment.bytes".to_string(), "1048576".to_string()),
            ("log.cleanup.policy".to_string(), "compact".to_string()),
        ]);
        let c = BrokerConfig::from_properties(&props).unwrap();
        assert_eq!(c.log_defaults.segment_bytes, 1 << 20);
        assert!(c.log_defaults.cleanup_policy.compact);

        let bad = BTreeMap::from([("log.segment.bytes".to_string(), "tiny".to_string())]);
        let err = BrokerConfig::from_properties(&bad).unwrap_err().to_string();
        assert!(err.contains("log.segment.bytes") && err.contains("not an integer"), "{err}");
        let unknown = BTreeMap::from([("log.dirs.typo".to_string(), "x".to_string())]);
        let err = BrokerConfig::from_properties(&unknown).unwrap_err().to_string();
        assert!(err.contains("log.dirs.typo") && err.contains("unknown"), "{err}");
    }

    #[test]
    fn properties_round_trip() {
        let props = BTreeMap::from([
            ("log.segment.bytes".to_string(), "1048576".to_string()),
            ("num.partitions".to_string(), "3".to_string()),
        ]);
        let c = BrokerConfig::from_properties(&props).unwrap();
        let out = c.to_properties();
        assert_eq!(out["log.segment.bytes"], "1048576");
        assert_eq!(out["num.partitions"], "3");
        let again = BrokerConfig::from_properties(&out).unwrap();
        assert_eq!(again.to_properties(), out);
    }
}
