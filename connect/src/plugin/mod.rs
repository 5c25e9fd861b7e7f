//! The plugin API: what a connector author implements.
//!
//! A connector is two types, as in Kafka Connect: a *connector*
//! ([`SourceConnector`] / [`SinkConnector`]) that declares and checks its
//! config and splits the work into task configs, and a *task*
//! ([`SourceTask`] / [`SinkTask`]) that moves the data. The worker owns the
//! rest: converters, transforms, error handling, offsets and the cluster.
//!
//! - A source task returns [`SourceRecord`]s from [`SourceTask::poll`], each
//!   carrying a *source partition* and *source offset* (JSON maps). The worker
//!   stores the offsets in the offsets topic and hands them back through
//!   [`SourceTaskContext::offset`] after a restart.
//! - A sink task receives [`SinkRecord`]s in [`SinkTask::put`]; on
//!   [`SinkTask::flush`] it makes everything it was given durable, after which
//!   the worker commits the offsets through the consumer group.
//!
//! Connectors are found by class name in a [`PluginRegistry`]; a crate that
//! ships connectors offers a `register(&mut PluginRegistry)` function.

mod offset;
mod registry;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use offset::{SourceOffset, MAX_OFFSET_INTEGERS};
pub use registry::{Connector, ConnectorKind, PluginInfo, PluginRegistry, UnknownClass};
pub use runnel_core::topic::TopicPartition;

use crate::config_def::{ConfigDef, ConfigError};
use crate::record::ConnectRecord;

/// A source partition or source offset: a JSON object, like Kafka's
/// `Map<String, ?>` (`{"filename": "/var/log/app.log"}`, `{"position": 42}`).
pub type SourceMap = serde_json::Map<String, serde_json::Value>;

/// A connector's or task's flat config (Kafka's `Map<String, String>`).
pub type Props = HashMap<String, String>;

/// A failure inside a connector or task, saying whether trying again can
/// help (Kafka's `RetriableException` versus `ConnectException`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A transient failure (a lock held, a file briefly missing, a
    /// connection reset): the worker retries with backoff within
    /// `errors.retry.timeout`.
    #[error("{0} (retriable)")]
    Retriable(String),
    /// A failure retrying cannot fix: the task goes to FAILED.
    #[error("{0}")]
    Fatal(String),
    /// The config is invalid, naming the key.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl TaskError {
    /// A retriable failure.
    pub fn retriable(message: impl fmt::Display) -> TaskError {
        TaskError::Retriable(message.to_string())
    }

    /// A fatal failure.
    pub fn fatal(message: impl fmt::Display) -> TaskError {
        TaskError::Fatal(message.to_string())
    }

    /// Whether a retry can help.
    pub fn is_retriable(&self) -> bool {
        matches!(self, TaskError::Retriable(_))
    }
}

/// A record produced by a source task: the record plus where in the source
/// it came from.
///
/// The source partition is shared (`Arc`): a task gives every record of a
/// partition the same map, so a record costs a reference count rather than
/// a copy of the map.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRecord {
    /// The source partition (which file, table, shard).
    pub source_partition: Arc<SourceMap>,
    /// The position in the source partition *after* this record: where to
    /// resume once this record is stored.
    pub source_offset: SourceOffset,
    /// Topic, key, value, headers. `topic` must be set; `kafka_partition`
    /// may pin a partition.
    pub record: ConnectRecord,
}

impl SourceRecord {
    /// A record for `record.topic` from this partition and offset.
    pub fn new(
        source_partition: impl Into<Arc<SourceMap>>,
        source_offset: impl Into<SourceOffset>,
        record: ConnectRecord,
    ) -> SourceRecord {
        SourceRecord {
            source_partition: source_partition.into(),
            source_offset: source_offset.into(),
            record,
        }
    }
}

/// Where a source record was stored, handed to [`SourceTask::commit_record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// A record delivered to a sink task: the record after converters and
/// transforms, plus the topic-partition and offset it was read from (which
/// transforms do not change, so a sink can key its own bookkeeping on them).
#[derive(Clone, Debug, PartialEq)]
pub struct SinkRecord {
    /// The record as transformed (its `topic` may have been renamed).
    pub record: ConnectRecord,
    /// The topic-partition it was consumed from.
    pub original: TopicPartition,
    /// Its offset there.
    pub offset: i64,
    /// The record as consumed, before converters and transforms (what an
    /// [`ErrantRecordReporter`] writes to the dead letter queue); `None`
    /// for records not read by a worker.
    pub raw: Option<Arc<runnel_core::client::ConsumerRecord>>,
}

/// Where a sink task reports a record it could not write (Kafka's
/// `ErrantRecordReporter`, KIP-610): under `errors.tolerance=all` the
/// record is logged (`errors.log.enable`) and written as consumed to the
/// dead letter queue (`errors.deadletterqueue.topic.name`) with the
/// `__connect.errors.*` headers, stage `TASK_PUT`, and `report` returns
/// `Ok` once it is there; under `errors.tolerance=none` it returns the
/// error that fails the task.
#[async_trait]
pub trait ErrantRecordReporter: Send + Sync {
    /// Reports `record`, which failed with `error`.
    ///
    /// # Errors
    ///
    /// The task's failure when errors are not tolerated, or when the dead
    /// letter queue cannot be written.
    async fn report(&self, record: &SinkRecord, error: &str) -> Result<(), TaskError>;
}

/// What the worker tells a source task when it starts.
#[derive(Clone, Debug, Default)]
pub struct SourceTaskContext {
    /// The connector's name.
    pub connector: String,
    /// The task's id, from 0.
    pub task_id: u32,
    /// Where the task may keep local state that outlives a restart (the
    /// worker's `state.dir`); `None` when the worker gave none.
    pub state_dir: Option<std::path::PathBuf>,
    offsets: HashMap<String, SourceMap>,
}

/// The canonical form of a source partition used to look up its offset.
pub(crate) fn partition_key(partition: &SourceMap) -> String {
    serde_json::Value::Object(partition.clone()).to_string()
}

impl SourceTaskContext {
    /// A context with the stored offsets of the connector's source partitions.
    pub fn new(connector: impl Into<String>, task_id: u32, offsets: Vec<(SourceMap, SourceMap)>) -> Self {
        let offsets = offsets.into_iter().map(|(p, o)| (partition_key(&p), o)).collect();
        SourceTaskContext { connector: connector.into(), task_id, state_dir: None, offsets }
    }

    /// The same context with a state directory.
    #[must_use]
    pub fn with_state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The last stored offset of a source partition (Kafka's
    /// `offsetStorageReader().offset(partition)`); `None` when nothing was
    /// stored yet, so the task starts from the beginning.
    pub fn offset(&self, partition: &SourceMap) -> Option<&SourceMap> {
        self.offsets.get(&partition_key(partition))
    }
}

/// What the worker tells a sink task when it starts.
#[derive(Clone, Default)]
pub struct SinkTaskContext {
    /// The connector's name.
    pub connector: String,
    /// The task's id, from 0.
    pub task_id: u32,
    /// Where to report records the task cannot write (`None` outside a
    /// worker: the task fails instead).
    pub errant_record_reporter: Option<Arc<dyn ErrantRecordReporter>>,
}

impl fmt::Debug for SinkTaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkTaskContext")
            .field("connector", &self.connector)
            .field("task_id", &self.task_id)
            .field("errant_record_reporter", &self.errant_record_reporter.is_some())
            .finish()
    }
}

/// The connector half of a source: config and task split
/// (Kafka's `SourceConnector`).
#[async_trait]
pub trait SourceConnector: Send + Sync {
    /// The keys this connector takes. The worker parses the connector config
    /// with it before [`SourceConnector::start`], so a bad value is an error
    /// naming the key.
    fn config_def(&self) -> ConfigDef;

    /// Checks that go beyond single keys (Kafka's `Connector.validate`):
    /// keys that exclude each other, values that must agree. Each error
    /// names the key it concerns. Called after the keys parse on their own.
    fn validate(&self, props: &Props) -> Vec<ConfigError> {
        let _ = props;
        Vec::new()
    }

    /// Starts the connector with its full config (already validated against
    /// [`SourceConnector::config_def`]).
    ///
    /// # Errors
    /// A [`TaskError`] (usually [`TaskError::Config`]) when it cannot run.
    async fn start(&mut self, props: &Props) -> Result<(), TaskError>;

    /// The configs of up to `max_tasks` tasks (at least one).
    fn task_configs(&self, max_tasks: usize) -> Vec<Props>;

    /// A new, unstarted task.
    fn create_task(&self) -> Box<dyn SourceTask>;

    /// Stops the connector.
    async fn stop(&mut self) {}

    /// The plugin's version, shown by the REST API.
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}

/// Reads from a source (Kafka's `SourceTask`).
///
/// The worker calls `poll` in a loop; records it returns are transformed,
/// converted and produced, and their offsets stored, while the next call
/// runs, and before the call after it — one batch is in flight at most, so
/// a slow cluster slows `poll` down (backpressure) instead of queueing.
#[async_trait]
pub trait SourceTask: Send {
    /// Starts the task with its config (one of the connector's
    /// `task_configs`) and the stored offsets.
    ///
    /// # Errors
    /// A [`TaskError`]; the task goes to FAILED.
    async fn start(&mut self, props: &Props, context: &SourceTaskContext) -> Result<(), TaskError>;

    /// The next records; an empty vector when none are ready (the task
    /// should wait a little first rather than spin).
    ///
    /// # Errors
    /// [`TaskError::Retriable`] is retried within `errors.retry.timeout`;
    /// anything else fails the task.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, TaskError>;

    /// Called after the offsets of the records returned so far are stored.
    async fn commit(&mut self) -> Result<(), TaskError> {
        Ok(())
    }

    /// Called for each record once it is stored in the cluster, in the
    /// order `poll` returned them (Kafka's `commitRecord`). It runs on the
    /// task's loop between polls, once per record, so it is synchronous:
    /// note what is needed and do slow work in [`SourceTask::commit`].
    ///
    /// # Errors
    /// A [`TaskError`] fails the task.
    fn commit_record(&mut self, record: &SourceRecord, metadata: &RecordMetadata) -> Result<(), TaskError> {
        let _ = (record, metadata);
        Ok(())
    }

    /// Stops the task; release resources.
    async fn stop(&mut self) {}
}

/// The connector half of a sink (Kafka's `SinkConnector`).
#[async_trait]
pub trait SinkConnector: Send + Sync {
    /// The keys this connector takes (see [`SourceConnector::config_def`]).
    fn config_def(&self) -> ConfigDef;

    /// Checks beyond single keys (see [`SourceConnector::validate`]).
    fn validate(&self, props: &Props) -> Vec<ConfigError> {
        let _ = props;
        Vec::new()
    }

    /// Starts the connector with its full config.
    ///
    /// # Errors
    /// A [`TaskError`] when it cannot run.
    async fn start(&mut self, props: &Props) -> Result<(), TaskError>;

    /// The configs of up to `max_tasks` tasks (at least one).
    fn task_configs(&self, max_tasks: usize) -> Vec<Props>;

    /// A new, unstarted task.
    fn create_task(&self) -> Box<dyn SinkTask>;

    /// Stops the connector.
    async fn stop(&mut self) {}

    /// The plugin's version.
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }
}

/// Writes to a sink (Kafka's `SinkTask`).
#[async_trait]
pub trait SinkTask: Send {
    /// Starts the task with its config.
    ///
    /// # Errors
    /// A [`TaskError`]; the task goes to FAILED.
    async fn start(&mut self, props: &Props, context: &SinkTaskContext) -> Result<(), TaskError>;

    /// These partitions were assigned to the task (before their records arrive).
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), TaskError> {
        let _ = partitions;
        Ok(())
    }

    /// These partitions were taken away (after a final flush).
    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), TaskError> {
        let _ = partitions;
        Ok(())
    }

    /// Takes records; they may be buffered until [`SinkTask::flush`].
    ///
    /// # Errors
    /// [`TaskError::Retriable`] redelivers the same records after a backoff
    /// (within `errors.retry.timeout`); anything else fails the task.
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), TaskError>;

    /// Makes every record passed to `put` durable. `offsets` holds, per
    /// partition, the next offset to consume: the worker commits them to the
    /// consumer group once this returns `Ok`.
    ///
    /// # Errors
    /// A [`TaskError`]; nothing is committed.
    async fn flush(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), TaskError> {
        let _ = offsets;
        Ok(())
    }

    /// Stops the task (after a final flush).
    async fn stop(&mut self) {}
}
