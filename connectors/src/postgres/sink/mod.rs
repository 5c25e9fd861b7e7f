//! `PostgresSink`: writes records into PostgreSQL tables, exactly once,
//! with the Debezium JDBC sink connector's keys (also registered as
//! `io.debezium.connector.jdbc.JdbcSinkConnector`).
//!
//! - A Debezium change event is applied as its `op` says (`c`, `r`, `u`
//!   write the `after` row; `d` and a tombstone delete the key when
//!   `delete.enabled`; `t` truncates when `truncate.enabled`), without the
//!   `ExtractNewRecordState` transform; a record whose value is a struct is
//!   a row. Records need schemas (`JsonConverter` with `schemas.enable`).
//! - `insert.mode` `insert`, `upsert` or `update`; `primary.key.mode`
//!   `none`, `kafka`, `record_key` or `record_value`. Tables are created
//!   (`schema.evolution=basic` or `auto.create=true`) with the types of
//!   `types.rs`; `schema.evolution=basic` adds missing columns.
//! - Each `put` is one transaction that writes its rows and upserts the
//!   next offset of each topic-partition in `__runnel_sink_offsets`
//!   (`connector`, `topic`, `partition`, `next_offset`). At start the task
//!   reads its rows and skips records below them, so a crash at any moment
//!   neither loses nor repeats a change.
//!
//! Limits today: a row the table refuses (a constraint, a value that does
//! not fit) fails the task with the server's message; it does not go to
//! the dead letter queue yet. A lost connection is a retriable error: the
//! worker retries the batch within `errors.retry.timeout`, and the next
//! attempt connects again.

mod change;
mod config;
mod types;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use runnel_connect::config_def::{ConfigDef, ConfigError};
use runnel_connect::plugin::{
    PluginRegistry, Props, SinkConnector, SinkRecord, SinkTask, SinkTaskContext, TaskError, TopicPartition,
};

use self::config::SinkConfig;
use self::writer::{WriteError, Writer};

/// Debezium's class name for its JDBC sink.
pub(crate) const DEBEZIUM_CLASS: &str = "io.debezium.connector.jdbc.JdbcSinkConnector";

/// Registers [`PostgresSink`] under its name and Debezium's.
pub(crate) fn register(registry: &mut PluginRegistry) {
    registry.register_sink(PostgresSink::CLASS, &[DEBEZIUM_CLASS], || Box::new(PostgresSink::default()));
}

/// The Postgres sink connector: every task writes its partitions' records.
#[derive(Debug, Default)]
pub struct PostgresSink {
    props: Props,
}

impl PostgresSink {
    /// The class name.
    pub const CLASS: &'static str = "PostgresSink";
}

#[async_trait]
impl SinkConnector for PostgresSink {
    fn config_def(&self) -> ConfigDef {
        config::config_def()
    }

    fn validate(&self, props: &Props) -> Vec<ConfigError> {
        config::validate(props)
    }

    async fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        SinkConfig::parse(props.get("name").map_or("", String::as_str), props)?;
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone(); max_tasks.max(1)]
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(PostgresSinkTask::default())
    }
}

/// The task of [`PostgresSink`].
#[derive(Default)]
pub struct PostgresSinkTask {
    config: Option<Arc<SinkConfig>>,
    connector: String,
    writer: Option<Writer>,
    /// The next offset to apply per topic-partition, as the offsets table
    /// holds it after the last committed batch.
    next: BTreeMap<TopicPartition, i64>,
}

impl std::fmt::Debug for PostgresSinkTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSinkTask")
            .field("connector", &self.connector)
            .field("next", &self.next)
            .finish()
    }
}

impl PostgresSinkTask {
    fn config(&self) -> Result<Arc<SinkConfig>, TaskError> {
        self.config.clone().ok_or_else(|| TaskError::fatal("the Postgres sink task is not started"))
    }

    fn explain(&self, error: WriteError) -> TaskError {
        match (error, &self.config) {
            (WriteError::Pg(e), Some(config)) => {
                e.explain_with_keys(&config.connection, "connection.password", "connection.url")
            }
            (WriteError::Pg(e), None) => TaskError::fatal(e),
            (WriteError::Rejected(reason), _) => TaskError::fatal(reason),
        }
    }

    /// A writer on a live connection (connecting again after a loss),
    /// with the offsets table read.
    async fn writer(&mut self) -> Result<&mut Writer, TaskError> {
        if self.writer.as_ref().is_some_and(Writer::is_closed) {
            tracing::warn!(connector = %self.connector, "connection to PostgreSQL lost; connecting again");
            self.writer = None;
        }
        if self.writer.is_none() {
            let config = self.config()?;
            let client = config.connection.connect_sql().await.map_err(|e| {
                e.explain_with_keys(&config.connection, "connection.password", "connection.url")
            })?;
            let mut writer = Writer::new(client, config.connection.address());
            self.next = writer.load_offsets(&self.connector).await.map_err(|e| self.explain(e))?;
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("set above"))
    }
}

#[async_trait]
impl SinkTask for PostgresSinkTask {
    async fn start(&mut self, props: &Props, context: &SinkTaskContext) -> Result<(), TaskError> {
        self.connector = context.connector.clone();
        self.config = Some(Arc::new(SinkConfig::parse(&self.connector, props)?));
        self.writer().await?;
        tracing::info!(connector = %self.connector, partitions = self.next.len(), "postgres sink started");
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), TaskError> {
        let config = self.config()?;
        // Connected (again) first: a new connection reads the offsets anew.
        self.writer().await?;
        let mut changes = Vec::with_capacity(records.len());
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for r in &records {
            let applied = self.next.get(&r.original).copied();
            if applied.is_some_and(|n| r.offset < n) {
                continue; // applied before a crash or a rebalance: a replay
            }
            if let Some(change) = change::change_of(r, &config).map_err(|reason| {
                TaskError::fatal(format!(
                    "record {}-{} at offset {} (topic {}): {reason}",
                    r.original.topic, r.original.partition, r.offset, r.record.topic
                ))
            })? {
                changes.push(change);
            }
            next.insert(r.original.clone(), r.offset + 1);
        }
        if next.is_empty() {
            return Ok(());
        }
        let connector = self.connector.clone();
        let writer = self.writer.as_mut().expect("connected above");
        match writer.write(changes, &config, &connector, &next).await {
            Ok(_) => {
                self.next.extend(next);
                Ok(())
            }
            Err(e) => Err(self.explain(e)),
        }
    }

    /// Every `put` committed its rows and offsets already.
    async fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), TaskError> {
        Ok(())
    }

    async fn stop(&mut self) {
        self.writer = None;
    }
}
