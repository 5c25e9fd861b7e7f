//! [`StreamsConfig`]: application settings, with Kafka's key names.

use std::path::{Path, PathBuf};

use crate::StreamsError;

/// Settings of a streams application, with Kafka's keys:
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `application.id` | (required) | consumer group id, prefix of internal topics and state directories |
/// | `state.dir` | `<tmp>/runnel-streams` | root of the state stores: `<state.dir>/<application.id>/<task>/<store>` |
/// | `statestore.cache.max.bytes` | 10 MiB | record-cache budget of the instance (an even share per stream thread, per task of the thread, per store of the task); also holds flushed and read values of key-value stores and a join's recent windows; `0` forwards every update |
/// | `statestore.memory.max.bytes` | 64 MiB | Runnel's key: the one RocksDB block cache shared by every store of the process; memtables are charged to it |
/// | `num.stream.threads` | 1 | stream threads of this instance |
/// | `commit.interval.ms` | 30000 | how often consumed offsets are committed (after output and state are flushed) |
/// | `processing.guarantee` | `at_least_once` | the only guarantee so far; `exactly_once_v2` is refused with a clear error |
/// | `max.poll.records` | 1000 | most records one poll of a stream thread returns |
/// | `buffered.records.per.partition` | 1000 | a partition with this many records buffered is paused until they are processed |
/// | `session.timeout.ms`, `heartbeat.interval.ms`, `max.poll.interval.ms`, or any consumer key as `consumer.<key>` | the consumer's | passed to the stream threads' consumers (group id, offset reset and auto-commit stay the runtime's) |
/// | `application.server` | none | this instance's `host:port` for interactive queries, published to the other instances ([`Streams::query_metadata_for_key`](crate::Streams::query_metadata_for_key)) |
/// | `max.task.idle.ms` | 0 | how a task with several inputs waits for an empty one, to process in timestamp order (KIP-695): `0` waits while the cluster holds records of it not yet fetched; `N` > 0 also waits up to N ms for new records; `-1` never waits |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsConfig {
    application_id: String,
    state_dir: Option<PathBuf>,
    cache_max_bytes: u64,
    memory_max_bytes: u64,
    num_stream_threads: usize,
    commit_interval_ms: u64,
    max_poll_records: usize,
    buffered_records_per_partition: usize,
    max_task_idle_ms: i64,
    application_server: Option<String>,
    /// Consumer settings passed through, in the order given.
    consumer_overrides: Vec<(String, String)>,
}

impl StreamsConfig {
    /// Kafka's key for [`StreamsConfig::application_id`].
    pub const APPLICATION_ID: &'static str = "application.id";
    /// Kafka's key for [`StreamsConfig::state_dir`].
    pub const STATE_DIR: &'static str = "state.dir";
    /// Kafka's key for [`StreamsConfig::cache_max_bytes`].
    pub const CACHE_MAX_BYTES: &'static str = "statestore.cache.max.bytes";
    /// Runnel's key for [`StreamsConfig::memory_max_bytes`].
    pub const MEMORY_MAX_BYTES: &'static str = "statestore.memory.max.bytes";
    /// Default of `statestore.cache.max.bytes`: 10 MiB, as in Kafka.
    pub const DEFAULT_CACHE_MAX_BYTES: u64 = 10 * 1024 * 1024;
    /// Default of `statestore.memory.max.bytes`: 64 MiB.
    pub const DEFAULT_MEMORY_MAX_BYTES: u64 = 64 * 1024 * 1024;
    /// Kafka's key for [`StreamsConfig::num_stream_threads`].
    pub const NUM_STREAM_THREADS: &'static str = "num.stream.threads";
    /// Kafka's key for [`StreamsConfig::commit_interval`].
    pub const COMMIT_INTERVAL_MS: &'static str = "commit.interval.ms";
    /// Kafka's key for the processing guarantee (`at_least_once` only).
    pub const PROCESSING_GUARANTEE: &'static str = "processing.guarantee";
    /// Kafka's key for [`StreamsConfig::max_poll_records`].
    pub const MAX_POLL_RECORDS: &'static str = "max.poll.records";
    /// Kafka's key for [`StreamsConfig::buffered_records_per_partition`].
    pub const BUFFERED_RECORDS_PER_PARTITION: &'static str = "buffered.records.per.partition";
    /// Kafka's key for [`StreamsConfig::application_server`].
    pub const APPLICATION_SERVER: &'static str = "application.server";
    /// Kafka's key for [`StreamsConfig::max_task_idle`].
    pub const MAX_TASK_IDLE_MS: &'static str = "max.task.idle.ms";

    /// A config for the application `application_id`. Checked by
    /// [`StreamsConfig::validate`] before anything runs.
    pub fn new(application_id: impl Into<String>) -> Self {
        StreamsConfig {
            application_id: application_id.into(),
            state_dir: None,
            cache_max_bytes: Self::DEFAULT_CACHE_MAX_BYTES,
            memory_max_bytes: Self::DEFAULT_MEMORY_MAX_BYTES,
            num_stream_threads: 1,
            commit_interval_ms: 30_000,
            max_poll_records: 1000,
            buffered_records_per_partition: 1000,
            max_task_idle_ms: 0,
            application_server: None,
            consumer_overrides: Vec::new(),
        }
    }

    /// Passes a consumer setting (Kafka's key, e.g. `session.timeout.ms`)
    /// to the stream threads' consumers.
    ///
    /// # Errors
    /// [`StreamsError::InvalidConfig`] when the consumer refuses it, or for
    /// the keys the runtime sets itself (`group.id`, `enable.auto.commit`,
    /// `auto.offset.reset`, `partition.assignment.strategy`).
    pub fn with_consumer_setting(mut self, key: &str, value: &str) -> Result<Self, StreamsError> {
        let invalid = |reason: String| StreamsError::InvalidConfig { key: key.to_string(), reason };
        if matches!(
            key,
            "group.id" | "enable.auto.commit" | "auto.offset.reset" | "partition.assignment.strategy"
        ) {
            return Err(invalid("set by the streams runtime".to_string()));
        }
        runnel_core::client::ConsumerConfig::default().set(key, value).map_err(|e| invalid(e.to_string()))?;
        self.consumer_overrides.push((key.to_string(), value.to_string()));
        Ok(self)
    }

    /// The consumer settings passed through, in the order given.
    pub(crate) fn consumer_overrides(&self) -> &[(String, String)] {
        &self.consumer_overrides
    }

    /// Sets `max.task.idle.ms`: `None` never waits (Kafka's `-1`),
    /// `Some(Duration::ZERO)` (the default) waits only for records the
    /// cluster already holds, `Some(d)` also up to `d` for new ones.
    pub fn with_max_task_idle(mut self, idle: Option<std::time::Duration>) -> Self {
        self.max_task_idle_ms = idle.map_or(-1, crate::duration::millis);
        self
    }

    /// Sets `application.server` (`host:port`).
    pub fn with_application_server(mut self, server: impl Into<String>) -> Self {
        self.application_server = Some(server.into());
        self
    }

    /// `application.server`: where this instance answers interactive
    /// queries, as `host:port`.
    pub fn application_server(&self) -> Option<&str> {
        self.application_server.as_deref()
    }

    /// `max.task.idle.ms`; `None` for `-1` (never wait).
    pub fn max_task_idle(&self) -> Option<std::time::Duration> {
        u64::try_from(self.max_task_idle_ms).ok().map(std::time::Duration::from_millis)
    }

    /// Sets `num.stream.threads`.
    pub fn with_num_stream_threads(mut self, threads: usize) -> Self {
        self.num_stream_threads = threads;
        self
    }

    /// Sets `commit.interval.ms`.
    pub fn with_commit_interval(mut self, interval: std::time::Duration) -> Self {
        self.commit_interval_ms = interval.as_millis() as u64;
        self
    }

    /// `num.stream.threads`: stream threads of this instance.
    pub fn num_stream_threads(&self) -> usize {
        self.num_stream_threads
    }

    /// `commit.interval.ms`: how often offsets are committed.
    pub fn commit_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.commit_interval_ms)
    }

    /// `max.poll.records`: most records one poll returns.
    pub fn max_poll_records(&self) -> usize {
        self.max_poll_records
    }

    /// `buffered.records.per.partition`: the pause threshold per partition.
    pub fn buffered_records_per_partition(&self) -> usize {
        self.buffered_records_per_partition
    }

    /// Sets `state.dir`.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Sets `statestore.cache.max.bytes`.
    pub fn with_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// Sets `statestore.memory.max.bytes`.
    pub fn with_memory_max_bytes(mut self, bytes: u64) -> Self {
        self.memory_max_bytes = bytes;
        self
    }

    /// `state.dir`: where state stores live.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| std::env::temp_dir().join("runnel-streams"))
    }

    /// `state.dir` when set explicitly.
    pub(crate) fn state_dir_override(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// `statestore.cache.max.bytes`: record-cache budget of the instance.
    pub fn cache_max_bytes(&self) -> u64 {
        self.cache_max_bytes
    }

    /// `statestore.memory.max.bytes`: the RocksDB memory bound of the process.
    pub fn memory_max_bytes(&self) -> u64 {
        self.memory_max_bytes
    }

    /// A config from Kafka-style properties, validated.
    ///
    /// # Errors
    ///
    /// [`StreamsError::UnknownConfig`] for a key this crate does not know,
    /// [`StreamsError::InvalidConfig`] when `application.id` is missing or
    /// invalid.
    pub fn from_props<I, K, V>(props: I) -> Result<Self, StreamsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut application_id = None;
        let mut state_dir = None;
        let (mut cache, mut memory) = (Self::DEFAULT_CACHE_MAX_BYTES, Self::DEFAULT_MEMORY_MAX_BYTES);
        let mut runtime: (Option<u64>, Option<u64>, Option<u64>, Option<u64>) = (None, None, None, None);
        let mut idle = Some(std::time::Duration::ZERO);
        let mut consumer: Vec<(String, String)> = Vec::new();
        let mut application_server: Option<String> = None;
        for (key, value) in props {
            match key.as_ref() {
                Self::APPLICATION_ID => application_id = Some(value.into()),
                Self::STATE_DIR => state_dir = Some(PathBuf::from(value.into())),
                Self::CACHE_MAX_BYTES => cache = parse_bytes(Self::CACHE_MAX_BYTES, value.into())?,
                Self::MEMORY_MAX_BYTES => memory = parse_bytes(Self::MEMORY_MAX_BYTES, value.into())?,
                Self::NUM_STREAM_THREADS => {
                    runtime.0 = Some(parse_count(Self::NUM_STREAM_THREADS, value.into())?)
                }
                Self::COMMIT_INTERVAL_MS => {
                    runtime.1 = Some(parse_count(Self::COMMIT_INTERVAL_MS, value.into())?)
                }
                Self::MAX_POLL_RECORDS => {
                    runtime.2 = Some(parse_count(Self::MAX_POLL_RECORDS, value.into())?)
                }
                Self::BUFFERED_RECORDS_PER_PARTITION => {
                    runtime.3 = Some(parse_count(Self::BUFFERED_RECORDS_PER_PARTITION, value.into())?)
                }
                Self::APPLICATION_SERVER => application_server = Some(value.into()),
                Self::MAX_TASK_IDLE_MS => {
                    let value: String = value.into();
                    idle = match value.trim().parse::<i64>() {
                        Ok(-1) => None,
                        Ok(ms) if ms >= 0 => Some(std::time::Duration::from_millis(ms as u64)),
                        _ => {
                            return Err(StreamsError::InvalidConfig {
                                key: Self::MAX_TASK_IDLE_MS.to_string(),
                                reason: format!("{value:?} is not -1 or a number of milliseconds"),
                            })
                        }
                    };
                }
                Self::PROCESSING_GUARANTEE => {
                    let value: String = value.into();
                    if value.trim() != "at_least_once" {
                        return Err(StreamsError::InvalidConfig {
                            key: Self::PROCESSING_GUARANTEE.to_string(),
                            reason: format!(
                                "{value:?} is not supported: only at_least_once (exactly-once needs transactions, which Runnel does not have yet)"
                            ),
                        });
                    }
                }
                key @ ("session.timeout.ms" | "heartbeat.interval.ms" | "max.poll.interval.ms") => {
                    consumer.push((key.to_string(), value.into()))
                }
                other => match other.strip_prefix("consumer.") {
                    Some(key) => consumer.push((key.to_string(), value.into())),
                    None => return Err(StreamsError::UnknownConfig { key: other.to_string() }),
                },
            }
        }
        let mut config = StreamsConfig::new(application_id.ok_or_else(|| StreamsError::InvalidConfig {
            key: Self::APPLICATION_ID.to_string(),
            reason: "missing".to_string(),
        })?)
        .with_cache_max_bytes(cache)
        .with_memory_max_bytes(memory)
        .with_max_task_idle(idle);
        config.state_dir = state_dir;
        config.application_server = application_server;
        for (key, value) in consumer {
            config = config.with_consumer_setting(&key, &value)?;
        }
        let defaults = StreamsConfig::new("");
        config.num_stream_threads = runtime.0.map_or(defaults.num_stream_threads, |v| v as usize);
        config.commit_interval_ms = runtime.1.unwrap_or(defaults.commit_interval_ms);
        config.max_poll_records = runtime.2.map_or(defaults.max_poll_records, |v| v as usize);
        config.buffered_records_per_partition =
            runtime.3.map_or(defaults.buffered_records_per_partition, |v| v as usize);
        config.validate()?;
        Ok(config)
    }

    /// The application id: the consumer group id and the prefix of internal
    /// topics.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`StreamsError::InvalidConfig`] naming the key: `application.id`
    /// must be non-empty and use only Kafka's topic characters
    /// (`a-z A-Z 0-9 . _ -`), since it prefixes internal topic names.
    pub fn validate(&self) -> Result<(), StreamsError> {
        let invalid = |reason: &str| StreamsError::InvalidConfig {
            key: Self::APPLICATION_ID.to_string(),
            reason: reason.to_string(),
        };
        if self.application_id.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if let Some(c) =
            self.application_id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(invalid(&format!("{c:?} is not allowed (use a-z A-Z 0-9 . _ -)")));
        }
        if self.state_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(StreamsError::InvalidConfig {
                key: Self::STATE_DIR.to_string(),
                reason: "must not be empty".to_string(),
            });
        }
        for (key, value) in [
            (Self::NUM_STREAM_THREADS, self.num_stream_threads),
            (Self::MAX_POLL_RECORDS, self.max_poll_records),
            (Self::BUFFERED_RECORDS_PER_PARTITION, self.buffered_records_per_partition),
        ] {
            if value == 0 {
                return Err(StreamsError::InvalidConfig {
                    key: key.to_string(),
                    reason: "must be at least 1".to_string(),
                });
            }
        }
        if let Some(server) = &self.application_server {
            if HostInfo::parse(server).is_none() {
                return Err(StreamsError::InvalidConfig {
                    key: Self::APPLICATION_SERVER.to_string(),
                    reason: format!("{server:?} is not host:port"),
                });
            }
        }
        if self.memory_max_bytes < 1024 * 1024 {
            return Err(StreamsError::InvalidConfig {
                key: Self::MEMORY_MAX_BYTES.to_string(),
                reason: format!("{} is below the minimum of 1 MiB", self.memory_max_bytes),
            });
        }
        Ok(())
    }
}

fn parse_count(key: &str, value: String) -> Result<u64, StreamsError> {
    value.trim().parse().map_err(|_| StreamsError::InvalidConfig {
        key: key.to_string(),
        reason: format!("{value:?} is not a whole number"),
    })
}

fn parse_bytes(key: &str, value: String) -> Result<u64, StreamsError> {
    value.trim().parse().map_err(|_| StreamsError::InvalidConfig {
        key: key.to_string(),
        reason: format!("{value:?} is not a number of bytes"),
    })
}

/// An instance's `application.server` (Kafka's `HostInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostInfo {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl HostInfo {
    /// Parses `host:port`.
    pub fn parse(server: &str) -> Option<HostInfo> {
        let (host, port) = server.rsplit_once(':')?;
        Some(HostInfo { host: host.to_string(), port: port.parse().ok()? })
    }
}

impl std::fmt::Display for HostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_props_reads_application_id() {
        let config = StreamsConfig::from_props([("application.id", "clicks-app")]).unwrap();
        assert_eq!(config.application_id(), "clicks-app");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = StreamsConfig::from_props([("application.id", "a"), ("num.thread", "2")]).unwrap_err();
        assert_eq!(err.to_string(), "unknown config key \"num.thread\"");
    }

    #[test]
    fn from_props_reads_state_settings_and_rejects_bad_numbers() {
        let config = StreamsConfig::from_props([
            ("application.id", "a"),
            ("state.dir", "/var/lib/runnel"),
            ("statestore.cache.max.bytes", "0"),
            ("statestore.memory.max.bytes", "134217728"),
        ])
        .unwrap();
        assert_eq!(config.state_dir(), PathBuf::from("/var/lib/runnel"));
        assert_eq!((config.cache_max_bytes(), config.memory_max_bytes()), (0, 128 << 20));
        let err =
            StreamsConfig::from_props([("application.id", "a"), ("statestore.cache.max.bytes", "10MB")])
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config statestore.cache.max.bytes: \"10MB\" is not a number of bytes"
        );
    }

    #[test]
    fn runtime_settings_are_read_and_checked() {
        let config = StreamsConfig::from_props([
            ("application.id", "a"),
            ("num.stream.threads", "2"),
            ("commit.interval.ms", "100"),
            ("processing.guarantee", "at_least_once"),
            ("max.poll.records", "50"),
            ("buffered.records.per.partition", "10"),
            ("max.task.idle.ms", "-1"),
        ])
        .unwrap();
        assert_eq!(config.max_task_idle(), None);
        let consumer = StreamsConfig::from_props([
            ("application.id", "a"),
            ("session.timeout.ms", "3000"),
            ("consumer.heartbeat.interval.ms", "500"),
        ])
        .unwrap();
        assert_eq!(
            consumer.consumer_overrides(),
            [
                ("session.timeout.ms".to_string(), "3000".to_string()),
                ("heartbeat.interval.ms".into(), "500".into())
            ]
        );
        let err =
            StreamsConfig::from_props([("application.id", "a"), ("consumer.group.id", "x")]).unwrap_err();
        assert!(err.to_string().contains("set by the streams runtime"), "{err}");
        let err =
            StreamsConfig::from_props([("application.id", "a"), ("session.timeout.ms", "soon")]).unwrap_err();
        assert!(err.to_string().contains("session.timeout.ms"), "{err}");
        let idle = StreamsConfig::from_props([("application.id", "a"), ("max.task.idle.ms", "250")]).unwrap();
        assert_eq!(idle.max_task_idle(), Some(std::time::Duration::from_millis(250)));
        assert_eq!(StreamsConfig::new("a").max_task_idle(), Some(std::time::Duration::ZERO));
        let err =
            StreamsConfig::from_props([("application.id", "a"), ("max.task.idle.ms", "-2")]).unwrap_err();
        assert!(err.to_string().contains("max.task.idle.ms"), "{err}");
        assert_eq!(config.num_stream_threads(), 2);
        assert_eq!(config.commit_interval(), std::time::Duration::from_millis(100));
        assert_eq!((config.max_poll_records(), config.buffered_records_per_partition()), (50, 10));
        let err =
            StreamsConfig::from_props([("application.id", "a"), ("processing.guarantee", "exactly_once_v2")])
                .unwrap_err();
        assert!(err.to_string().contains("only at_least_once"), "{err}");
        let err =
            StreamsConfig::from_props([("application.id", "a"), ("num.stream.threads", "0")]).unwrap_err();
        assert_eq!(err.to_string(), "invalid config num.stream.threads: must be at least 1");
    }

    #[test]
    fn missing_or_invalid_application_id_is_rejected() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(
            StreamsConfig::from_props(none).unwrap_err().to_string(),
            "invalid config application.id: missing"
        );
        let err = StreamsConfig::new("my app").validate().unwrap_err();
        assert!(err.to_string().starts_with("invalid config application.id: ' ' is not allowed"), "{err}");
    }
}
