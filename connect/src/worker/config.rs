//! The worker config and the runtime's part of a connector config, with
//! Kafka Connect's keys.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::config_def::{ConfigDef, ConfigError, ConfigType, Importance, ParsedConfig, Validator};
use crate::converter::{converter_for_class, Converter};
use crate::error::ConnectError;
use crate::plugin::Props;

/// The default converter class for keys and values (Kafka's usual choice).
pub const DEFAULT_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";

/// Keys that the worker accepts and ignores, so existing files load:
/// Kafka's standalone file offset store, replication factors (a Runnel
/// broker has one replica; a Kafka cluster's default applies), and a few
/// settings that have no meaning here.
const IGNORED_WORKER_KEYS: &[&str] = &[
    "plugin.path",
    "offset.storage.file.filename",
    "offset.flush.timeout.ms",
    "offset.storage.replication.factor",
    "config.storage.replication.factor",
    "status.storage.replication.factor",
    "rest.advertised.host.name",
    "rest.advertised.port",
    "rest.advertised.listener",
    "header.converter",
    "client.id",
];

fn worker_def() -> ConfigDef {
    ConfigDef::new()
        .define_optional(
            "bootstrap.servers",
            ConfigType::List,
            Importance::High,
            "Kafka brokers (host:port,...) to run against; the worker then uses kafka://.",
        )
        .define_optional(
            "cluster",
            ConfigType::String,
            Importance::High,
            "A Runnel cluster URL (file:<dir> or kafka://host:port); file:./runnel-data by default.",
        )
        .define_with_default(
            "key.converter",
            ConfigType::Class,
            DEFAULT_CONVERTER,
            Importance::High,
            "Converter class for record keys.",
        )
        .define_with_default(
            "value.converter",
            ConfigType::Class,
            DEFAULT_CONVERTER,
            Importance::High,
            "Converter class for record values.",
        )
        .define_with_default(
            "offset.storage.topic",
            ConfigType::String,
            "connect-offsets",
            Importance::High,
            "Compacted topic holding source connectors' offsets.",
        )
        .validate(Validator::NonEmpty)
        .define_with_default(
            "offset.storage.partitions",
            ConfigType::Int,
            25,
            Importance::Low,
            "Partitions of the offsets topic when the worker creates it.",
        )
        .validate(Validator::Range { min: Some(1.0), max: None })
        .define_with_default(
            "offset.flush.interval.ms",
            ConfigType::Long,
            60_000i64,
            Importance::Low,
            "How often sink tasks flush and commit their offsets.",
        )
        .validate(Validator::Range { min: Some(0.0), max: None })
        .define_with_default(
            "task.shutdown.graceful.timeout.ms",
            ConfigType::Long,
            5_000i64,
            Importance::Low,
            "How long stopping a task or a connector may take before the worker stops waiting for it \
             (its plugin code is abandoned, the worker carries on).",
        )
        .validate(Validator::Range { min: Some(0.0), max: None })
        .define_optional(
            "group.id",
            ConfigType::String,
            Importance::High,
            "Distributed mode: the group the workers of one Connect cluster join.",
        )
        .define_with_default(
            "config.storage.topic",
            ConfigType::String,
            "connect-configs",
            Importance::High,
            "Distributed mode: the compacted, single-partition topic of connector and task configs.",
        )
        .validate(Validator::NonEmpty)
        .define_with_default(
            "status.storage.topic",
            ConfigType::String,
            "connect-status",
            Importance::High,
            "Distributed mode: the compacted topic of connector and task statuses.",
        )
        .validate(Validator::NonEmpty)
        .define_with_default(
            "status.storage.partitions",
            ConfigType::Int,
            5,
            Importance::Low,
            "Distributed mode: partitions of the status topic when the worker creates it.",
        )
        .validate(Validator::Range { min: Some(1.0), max: None })
        .define_with_default(
            "heartbeat.interval.ms",
            ConfigType::Int,
            3_000,
            Importance::Medium,
            "Distributed mode: how often a worker heartbeats to the group coordinator.",
        )
        .validate(Validator::Range { min: Some(1.0), max: None })
        .define_with_default(
            "session.timeout.ms",
            ConfigType::Int,
            10_000,
            Importance::Medium,
            "Distributed mode: silence after which a worker is considered dead.",
        )
        .validate(Validator::Range { min: Some(1.0), max: None })
        .define_with_default(
            "rebalance.timeout.ms",
            ConfigType::Int,
            60_000,
            Importance::Medium,
            "Distributed mode: how long a rebalance waits for every worker to rejoin.",
        )
        .validate(Validator::Range { min: Some(1.0), max: None })
        .define_with_default(
            "scheduled.rebalance.max.delay.ms",
            ConfigType::Int,
            300_000,
            Importance::Medium,
            "Distributed mode: how long a departed worker's connectors and tasks wait for it to \
             return before they are given to the others.",
        )
        .validate(Validator::Range { min: Some(0.0), max: None })
        .define_with_default(
            "listeners",
            ConfigType::List,
            vec!["http://127.0.0.1:8083".to_string()],
            Importance::Low,
            "Where the REST API listens.",
        )
        .define_optional(
            "state.dir",
            ConfigType::String,
            Importance::Low,
            "Where tasks keep local state (the CDC source's toast.fill store): \
             <data dir>/connect-state for file: clusters, <tmp>/runnel-connect otherwise.",
        )
}

/// A converter choice: the class and its settings (`key.converter.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConverterConfig {
    /// The class name.
    pub class: String,
    /// Settings with the prefix removed (`schemas.enable`, ...).
    pub props: HashMap<String, String>,
}

impl ConverterConfig {
    /// Builds and configures the converter; `key` is the config key naming it.
    ///
    /// # Errors
    /// [`ConnectError::Converter`] naming the key.
    pub fn build(&self, owner: &str, key: &str, is_key: bool) -> Result<Box<dyn Converter>, ConnectError> {
        let err = |e| ConnectError::Converter {
            connector: owner.to_string(),
            key: key.to_string(),
            source: Box::new(e),
        };
        let mut converter = converter_for_class(&self.class).map_err(err)?;
        converter.configure(&self.props, is_key).map_err(err)?;
        Ok(converter)
    }

    fn from_props<'a>(
        class: &str,
        prefix: &str,
        props: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> ConverterConfig {
        let props =
            props.filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone()))).collect();
        ConverterConfig { class: class.to_string(), props }
    }
}

/// A worker's config (standalone or distributed).
///
/// | key | default |
/// | --- | --- |
/// | `bootstrap.servers` | none (sets `kafka://<servers>`) |
/// | `cluster` | `file:./runnel-data` |
/// | `key.converter`, `value.converter` (+ `.<setting>`) | `JsonConverter` |
/// | `offset.storage.topic` | `connect-offsets` |
/// | `offset.storage.partitions` | 25 |
/// | `offset.flush.interval.ms` | 60000 |
/// | `task.shutdown.graceful.timeout.ms` | 5000 |
/// | `listeners` | `http://127.0.0.1:8083` |
/// | `state.dir` (ours) | `<data dir>/connect-state` for `file:` clusters, `<tmp>/runnel-connect` otherwise |
/// | `producer.*`, `consumer.*` | client overrides with the Java client's keys |
///
/// The keys of distributed mode are in [`DistributedConfig`];
/// `offset.storage.file.filename` and the replication factors are accepted
/// and ignored; any other key is an error naming it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerConfig {
    /// The cluster URL.
    pub cluster: String,
    /// The default key converter.
    pub key_converter: ConverterConfig,
    /// The default value converter.
    pub value_converter: ConverterConfig,
    /// The offsets topic.
    pub offset_storage_topic: String,
    /// Partitions of the offsets topic when created.
    pub offset_storage_partitions: i32,
    /// How often sink tasks flush and commit.
    pub offset_flush_interval: Duration,
    /// `task.shutdown.graceful.timeout.ms`: how long stopping a task or a
    /// connector may take; past it the worker stops waiting (the plugin's
    /// code is abandoned) and carries on.
    pub shutdown_timeout: Duration,
    /// REST listeners, as given (the REST server reads them).
    pub listeners: Vec<String>,
    /// `state.dir`: where tasks keep local state, under
    /// `<state.dir>/<connector>/task-<id>/`.
    pub state_dir: std::path::PathBuf,
    /// `producer.*` overrides.
    pub producer: BTreeMap<String, String>,
    /// `consumer.*` overrides.
    pub consumer: BTreeMap<String, String>,
    /// The keys of distributed mode.
    pub distributed: DistributedConfig,
}

/// The keys of distributed mode (`runnel connect --distributed`); a
/// standalone worker ignores them.
///
/// | key | default |
/// | --- | --- |
/// | `group.id` | none (required in distributed mode) |
/// | `config.storage.topic` | `connect-configs` |
/// | `status.storage.topic` | `connect-status` |
/// | `status.storage.partitions` | 5 |
/// | `heartbeat.interval.ms` | 3000 |
/// | `session.timeout.ms` | 10000 |
/// | `rebalance.timeout.ms` | 60000 |
/// | `scheduled.rebalance.max.delay.ms` | 300000 |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributedConfig {
    /// `group.id`.
    pub group_id: Option<String>,
    /// `config.storage.topic`.
    pub config_storage_topic: String,
    /// `status.storage.topic`.
    pub status_storage_topic: String,
    /// `status.storage.partitions`.
    pub status_storage_partitions: i32,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `rebalance.timeout.ms`.
    pub rebalance_timeout: Duration,
    /// `scheduled.rebalance.max.delay.ms`.
    pub scheduled_rebalance_max_delay: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig::from_props(&BTreeMap::new()).expect("the defaults are valid")
    }
}

impl WorkerConfig {
    /// Parses a worker config.
    ///
    /// # Errors
    /// [`ConnectError::WorkerConfig`] naming an unknown, missing or invalid key.
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<WorkerConfig, ConnectError> {
        let def = worker_def();
        let flat: HashMap<String, String> = props.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let is_allowed = |k: &str| {
            IGNORED_WORKER_KEYS.contains(&k)
                || [
                    "key.converter.",
                    "value.converter.",
                    "header.converter.",
                    "producer.",
                    "consumer.",
                    "admin.",
                ]
                .iter()
                .any(|p| k.starts_with(p))
        };
        let allowed: Vec<&str> = flat.keys().map(String::as_str).filter(|k| is_allowed(k)).collect();
        let parsed = def.parse_strict(&flat, &allowed).map_err(ConnectError::WorkerConfig)?;
        let cluster = match (parsed.get_list("bootstrap.servers"), parsed.get_string("cluster")) {
            (Some(_), Some(_)) => {
                return Err(ConnectError::WorkerConfig(ConfigError::invalid(
                    "cluster",
                    &flat["cluster"],
                    "set either `cluster` or `bootstrap.servers`, not both",
                )))
            }
            (Some(servers), None) if !servers.is_empty() => format!("kafka://{}", servers.join(",")),
            (Some(_), None) => {
                return Err(ConnectError::WorkerConfig(ConfigError::invalid(
                    "bootstrap.servers",
                    "",
                    "must list at least one host:port",
                )))
            }
            (None, Some(url)) => url.to_string(),
            (None, None) => "file:./runnel-data".to_string(),
        };
        let url = match cluster.parse::<runnel_core::client::ClusterUrl>() {
            Ok(url) => url,
            Err(e) => {
                let key =
                    if parsed.get_string("cluster").is_some() { "cluster" } else { "bootstrap.servers" };
                return Err(ConnectError::WorkerConfig(ConfigError::invalid(key, &cluster, e.to_string())));
            }
        };
        let state_dir = match (parsed.get_string("state.dir"), url) {
            (Some(dir), _) => std::path::PathBuf::from(dir),
            (None, runnel_core::client::ClusterUrl::File(data)) => data.join("connect-state"),
            (None, _) => std::env::temp_dir().join("runnel-connect"),
        };
        let prefixed = |prefix: &str| -> BTreeMap<String, String> {
            props.iter().filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone()))).collect()
        };
        let config = WorkerConfig {
            cluster,
            key_converter: ConverterConfig::from_props(
                parsed.get_string("key.converter").unwrap_or(DEFAULT_CONVERTER),
                "key.converter.",
                props.iter(),
            ),
            value_converter: ConverterConfig::from_props(
                parsed.get_string("value.converter").unwrap_or(DEFAULT_CONVERTER),
                "value.converter.",
                props.iter(),
            ),
            offset_storage_topic: parsed.get_string("offset.storage.topic").unwrap_or_default().to_string(),
            offset_storage_partitions: parsed.get_int("offset.storage.partitions").unwrap_or(25),
            offset_flush_interval: Duration::from_millis(
                parsed.get_long("offset.flush.interval.ms").unwrap_or(60_000) as u64,
            ),
            shutdown_timeout: Duration::from_millis(
                parsed.get_long("task.shutdown.graceful.timeout.ms").unwrap_or(5_000) as u64,
            ),
            listeners: parsed.get_list("listeners").map(<[String]>::to_vec).unwrap_or_default(),
            state_dir,
            producer: prefixed("producer."),
            consumer: prefixed("consumer."),
            distributed: DistributedConfig {
                group_id: parsed.get_string("group.id").map(String::from),
                config_storage_topic: parsed
                    .get_string("config.storage.topic")
                    .unwrap_or_default()
                    .to_string(),
                status_storage_topic: parsed
                    .get_string("status.storage.topic")
                    .unwrap_or_default()
                    .to_string(),
                status_storage_partitions: parsed.get_int("status.storage.partitions").unwrap_or(5),
                heartbeat_interval: ms(parsed.get_int("heartbeat.interval.ms").unwrap_or(3_000)),
                session_timeout: ms(parsed.get_int("session.timeout.ms").unwrap_or(10_000)),
                rebalance_timeout: ms(parsed.get_int("rebalance.timeout.ms").unwrap_or(60_000)),
                scheduled_rebalance_max_delay: ms(parsed
                    .get_int("scheduled.rebalance.max.delay.ms")
                    .unwrap_or(300_000)),
            },
        };
        if config.distributed.heartbeat_interval >= config.distributed.session_timeout {
            return Err(ConnectError::WorkerConfig(ConfigError::invalid(
                "heartbeat.interval.ms",
                &config.distributed.heartbeat_interval.as_millis().to_string(),
                "must be lower than session.timeout.ms",
            )));
        }
        // Check the converters and client overrides now, before anything starts.
        config.key_converter.build("worker", "key.converter", true)?;
        config.value_converter.build("worker", "value.converter", false)?;
        config.producer_config()?;
        config.consumer_config("check")?;
        Ok(config)
    }

    /// The producer config with `producer.*` overrides.
    ///
    /// # Errors
    /// [`ConnectError::WorkerConfig`] naming the `producer.` key.
    pub fn producer_config(&self) -> Result<runnel_core::client::ProducerConfig, ConnectError> {
        let mut config = runnel_core::client::ProducerConfig::default();
        for (k, v) in &self.producer {
            config = config.set(k, v).map_err(|e| client_error("producer.", k, v, e))?;
        }
        Ok(config)
    }

    /// A consumer config for `group` with `consumer.*` overrides: no
    /// auto-commit (the worker commits after flushing), from the earliest
    /// offset.
    ///
    /// # Errors
    /// [`ConnectError::WorkerConfig`] naming the `consumer.` key.
    pub fn consumer_config(&self, group: &str) -> Result<runnel_core::client::ConsumerConfig, ConnectError> {
        let mut config = runnel_core::client::ConsumerConfig::group(group)
            .auto_commit(false)
            .offset_reset(runnel_core::client::OffsetReset::Earliest);
        for (k, v) in &self.consumer {
            config = config.set(k, v).map_err(|e| client_error("consumer.", k, v, e))?;
        }
        config.validated().map_err(|e| client_error("consumer.", "", "", e))
    }
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

impl WorkerConfig {
    /// The group id of distributed mode.
    ///
    /// # Errors
    /// [`ConnectError::WorkerConfig`] naming `group.id` when it is not set.
    pub fn group_id(&self) -> Result<&str, ConnectError> {
        match self.distributed.group_id.as_deref() {
            Some(g) if !g.is_empty() => Ok(g),
            _ => Err(ConnectError::WorkerConfig(ConfigError::invalid(
                "group.id",
                "",
                "distributed mode needs `group.id` (the Connect cluster's group)",
            ))),
        }
    }
}

fn client_error(prefix: &str, key: &str, value: &str, e: runnel_core::Error) -> ConnectError {
    let key = match &e {
        runnel_core::Error::InvalidConfig { key, .. } => key.clone(),
        _ => key.to_string(),
    };
    ConnectError::WorkerConfig(ConfigError::invalid(&format!("{prefix}{key}"), value, e.to_string()))
}

/// `errors.tolerance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tolerance {
    /// Any failed record fails the task.
    None,
    /// Failed records are skipped (and sent to the DLQ when set).
    All,
}

/// A connector's error handling (`errors.*`).
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorsConfig {
    /// `errors.tolerance`.
    pub tolerance: Tolerance,
    /// `errors.retry.timeout`: how long retriable failures are retried;
    /// `None` (-1) retries forever.
    pub retry_timeout: Option<Duration>,
    /// `errors.retry.delay.max.ms`: the cap of the exponential backoff.
    pub retry_delay_max: Duration,
    /// `errors.log.enable`.
    pub log_enable: bool,
    /// `errors.log.include.messages`.
    pub log_include_messages: bool,
    /// `errors.deadletterqueue.topic.name` (sinks only).
    pub dlq_topic: Option<String>,
    /// `errors.deadletterqueue.topic.replication.factor` (accepted; the
    /// embedded cluster has one replica).
    pub dlq_replication_factor: i32,
    /// `errors.deadletterqueue.context.headers.enable`.
    pub dlq_context_headers: bool,
}

/// The runtime's keys of every connector config.
pub(crate) fn connector_def() -> ConfigDef {
    ConfigDef::new()
        .define("name", ConfigType::String, Importance::High, "Globally unique name of the connector.")
        .validate(Validator::NonEmpty)
        .define(
            "connector.class",
            ConfigType::Class,
            Importance::High,
            "The connector's class name or alias.",
        )
        .validate(Validator::NonEmpty)
        .define_with_default("tasks.max", ConfigType::Int, 1, Importance::High, "Most tasks to run.")
        .validate(Validator::Range { min: Some(1.0), max: None })
        .define_optional("topics", ConfigType::List, Importance::High, "Topics a sink reads.")
        .define_optional(
            "topics.regex",
            ConfigType::String,
            Importance::High,
            "Pattern of topics a sink reads.",
        )
        .define_optional("key.converter", ConfigType::Class, Importance::Low, "Overrides the worker's.")
        .define_optional("value.converter", ConfigType::Class, Importance::Low, "Overrides the worker's.")
        .define_with_default(
            "errors.tolerance",
            ConfigType::String,
            "none",
            Importance::Medium,
            "none: a failed record fails the task; all: skip it.",
        )
        .validate(Validator::OneOf(vec!["none".into(), "all".into()]))
        .define_with_default(
            "errors.retry.timeout",
            ConfigType::Long,
            0i64,
            Importance::Medium,
            "Milliseconds to retry a retriable failure; -1 forever.",
        )
        .validate(Validator::Range { min: Some(-1.0), max: None })
        .define_with_default(
            "errors.retry.delay.max.ms",
            ConfigType::Long,
            60_000i64,
            Importance::Medium,
            "Longest wait between retries.",
        )
        .validate(Validator::Range { min: Some(1.0), max: None })
        .define_with_default(
            "errors.log.enable",
            ConfigType::Boolean,
            false,
            Importance::Medium,
            "Log failures.",
        )
        .define_with_default(
            "errors.log.include.messages",
            ConfigType::Boolean,
            false,
            Importance::Low,
            "Include the failed record in the log.",
        )
        .define_with_default(
            "errors.deadletterqueue.topic.name",
            ConfigType::String,
            "",
            Importance::Medium,
            "Topic for records a sink failed to process.",
        )
        .define_with_default(
            "errors.deadletterqueue.topic.replication.factor",
            ConfigType::Int,
            3,
            Importance::Low,
            "Replication factor of the dead letter queue topic.",
        )
        .define_with_default(
            "errors.deadletterqueue.context.headers.enable",
            ConfigType::Boolean,
            false,
            Importance::Low,
            "Add __connect.errors.* headers to dead letter records.",
        )
}

/// The runtime's view of one connector config.
#[derive(Clone, Debug)]
pub struct ConnectorConfig {
    /// `name`.
    pub name: String,
    /// `connector.class` as given.
    pub class: String,
    /// `tasks.max`.
    pub tasks_max: usize,
    /// `topics`.
    pub topics: Vec<String>,
    /// `topics.regex`.
    pub topics_regex: Option<String>,
    /// Key converter (the connector's override, else the worker's).
    pub key_converter: ConverterConfig,
    /// Value converter.
    pub value_converter: ConverterConfig,
    /// `errors.*`.
    pub errors: ErrorsConfig,
    /// Every key as given.
    pub props: Props,
}

impl ConnectorConfig {
    /// Parses the runtime's keys of a connector config.
    ///
    /// # Errors
    /// [`ConnectError::ConnectorConfig`] naming the key.
    pub fn parse(props: &Props, worker: &WorkerConfig) -> Result<ConnectorConfig, ConnectError> {
        let name = props.get("name").cloned().unwrap_or_default();
        let err = |source| ConnectError::ConnectorConfig { connector: name.clone(), source };
        let parsed: ParsedConfig = connector_def().parse(props).map_err(err)?;
        let converter = |kind: &str, default: &ConverterConfig| match props.get(kind) {
            Some(class) => ConverterConfig::from_props(class.trim(), &format!("{kind}."), props.iter()),
            None => default.clone(),
        };
        let retry = parsed.get_long("errors.retry.timeout").unwrap_or(0);
        let dlq = parsed.get_string("errors.deadletterqueue.topic.name").unwrap_or("").trim().to_string();
        Ok(ConnectorConfig {
            name: name.clone(),
            class: parsed.get_string("connector.class").unwrap_or_default().to_string(),
            tasks_max: parsed.get_int("tasks.max").unwrap_or(1) as usize,
            topics: parsed.get_list("topics").map(<[String]>::to_vec).unwrap_or_default(),
            topics_regex: parsed.get_string("topics.regex").map(str::to_string).filter(|s| !s.is_empty()),
            key_converter: converter("key.converter", &worker.key_converter),
            value_converter: converter("value.converter", &worker.value_converter),
            errors: ErrorsConfig {
                tolerance: if parsed
                    .get_string("errors.tolerance")
                    .unwrap_or("none")
                    .eq_ignore_ascii_case("all")
                {
                    Tolerance::All
                } else {
                    Tolerance::None
                },
                retry_timeout: (retry >= 0).then(|| Duration::from_millis(retry as u64)),
                retry_delay_max: Duration::from_millis(
                    parsed.get_long("errors.retry.delay.max.ms").unwrap_or(60_000) as u64,
                ),
                log_enable: parsed.get_boolean("errors.log.enable").unwrap_or(false),
                log_include_messages: parsed.get_boolean("errors.log.include.messages").unwrap_or(false),
                dlq_topic: (!dlq.is_empty()).then_some(dlq),
                dlq_replication_factor: parsed
                    .get_int("errors.deadletterqueue.topic.replication.factor")
                    .unwrap_or(3),
                dlq_context_headers: parsed
                    .get_boolean("errors.deadletterqueue.context.headers.enable")
                    .unwrap_or(false),
            },
            props: props.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn worker_keys_map_to_a_cluster_url_and_unknown_keys_are_named() {
        let w = WorkerConfig::from_props(&props(&[("bootstrap.servers", "a:9092,b:9092")])).unwrap();
        assert_eq!(w.cluster, "kafka://a:9092,b:9092");
        assert_eq!(w.offset_storage_topic, "connect-offsets");
        assert_eq!(w.listeners, vec!["http://127.0.0.1:8083".to_string()]);
        let w = WorkerConfig::from_props(&props(&[
            ("cluster", "file:/tmp/x"),
            ("value.converter", "StringConverter"),
            ("key.converter.schemas.enable", "false"),
            ("plugin.path", "/usr/share/java"),
        ]))
        .unwrap();
        assert_eq!(w.cluster, "file:/tmp/x");
        assert_eq!(w.key_converter.props["schemas.enable"], "false");
        let err = WorkerConfig::from_props(&props(&[("offset.flush.intervl.ms", "1")])).unwrap_err();
        assert!(err.to_string().contains("`offset.flush.intervl.ms`"), "{err}");
        let err = WorkerConfig::from_props(&props(&[("value.converter", "Nope")])).unwrap_err();
        assert!(err.to_string().contains("value.converter") && err.to_string().contains("Nope"), "{err}");
        let err = WorkerConfig::from_props(&props(&[("producer.lingr.ms", "1")])).unwrap_err();
        assert!(err.to_string().contains("producer.lingr.ms"), "{err}");
        let err = WorkerConfig::from_props(&props(&[("cluster", "http://x")])).unwrap_err();
        assert!(err.to_string().contains("`cluster`"), "{err}");
    }

    #[test]
    fn distributed_keys_have_kafkas_defaults_and_are_checked() {
        let w = WorkerConfig::from_props(&props(&[
            ("group.id", "connect-cluster"),
            ("session.timeout.ms", "6000"),
            ("scheduled.rebalance.max.delay.ms", "2000"),
            ("config.storage.replication.factor", "3"),
        ]))
        .unwrap();
        let d = &w.distributed;
        assert_eq!(w.group_id().unwrap(), "connect-cluster");
        assert_eq!(
            (d.config_storage_topic.as_str(), d.status_storage_topic.as_str()),
            ("connect-configs", "connect-status")
        );
        assert_eq!(d.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(d.session_timeout, Duration::from_secs(6));
        assert_eq!(d.rebalance_timeout, Duration::from_secs(60));
        assert_eq!(d.scheduled_rebalance_max_delay, Duration::from_secs(2));
        let err = WorkerConfig::default().group_id().unwrap_err();
        assert!(err.to_string().contains("group.id"), "{err}");
        let err = WorkerConfig::from_props(&props(&[
            ("heartbeat.interval.ms", "10000"),
            ("session.timeout.ms", "5000"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("heartbeat.interval.ms"), "{err}");
        let err = WorkerConfig::from_props(&props(&[("status.storage.partitions", "0")])).unwrap_err();
        assert!(err.to_string().contains("status.storage.partitions"), "{err}");
    }

    #[test]
    fn connector_keys_are_checked_and_name_the_key() {
        let worker = WorkerConfig::default();
        let p = |pairs: &[(&str, &str)]| -> Props {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let ok = ConnectorConfig::parse(
            &p(&[("name", "a"), ("connector.class", "X"), ("errors.tolerance", "all"), ("tasks.max", "3")]),
            &worker,
        )
        .unwrap();
        assert_eq!((ok.tasks_max, ok.errors.tolerance), (3, Tolerance::All));
        for (pairs, key) in [
            (&[("connector.class", "X")][..], "`name`"),
            (&[("name", "a"), ("connector.class", "X"), ("tasks.max", "0")][..], "`tasks.max`"),
            (
                &[("name", "a"), ("connector.class", "X"), ("errors.tolerance", "some")][..],
                "`errors.tolerance`",
            ),
        ] {
            let err = ConnectorConfig::parse(&p(pairs), &worker).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }
}
