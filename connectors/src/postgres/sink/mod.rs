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
    ErrantRecordReporter, PluginRegistry, Props, SinkConnector, SinkRecord, SinkTask, SinkTaskContext,
    TaskError, TopicPartition,
};

use self::change::Change;
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

/// The changes of one `put` and the records they came from.
#[derive(Debug, Default)]
struct Batch {
    /// The accepted records.
    records: Vec<SinkRecord>,
    /// Each record's change (`None`: nothing to write, the offset still
    /// counts).
    changes: Vec<Option<Change>>,
}

impl Batch {
    /// The next offset per partition after this batch.
    fn next_offsets(&self) -> BTreeMap<TopicPartition, i64> {
        let mut next = BTreeMap::new();
        for r in &self.records {
            next.insert(r.original.clone(), r.offset + 1);
        }
        next
    }

    /// Drops the records below `applied` (what the offsets table holds).
    fn without_applied(self, applied: &BTreeMap<TopicPartition, i64>) -> Batch {
        let (records, changes) = self
            .records
            .into_iter()
            .zip(self.changes)
            .filter(|(r, _)| applied.get(&r.original).is_none_or(|&n| r.offset >= n))
            .unzip();
        Batch { records, changes }
    }
}

/// A batch being written on a task of its own: the writer, the batch and
/// the outcome come back.
type InFlight = tokio::task::JoinHandle<(Writer, Batch, Result<usize, WriteError>)>;

/// The task of [`PostgresSink`].
///
/// One batch is written while the next is converted: `put` hands its batch
/// to a background write and returns once the batch before it has
/// committed; `flush` waits for the last one. A batch whose write failed
/// with an error worth retrying (a lost connection) is kept and written
/// again, before anything newer, at the next `put` or `flush`.
#[derive(Default)]
pub struct PostgresSinkTask {
    config: Option<Arc<SinkConfig>>,
    connector: String,
    writer: Option<Writer>,
    /// The next offset per topic-partition that is applied or on its way
    /// (what the offsets table will hold once the writes commit).
    next: BTreeMap<TopicPartition, i64>,
    in_flight: Option<InFlight>,
    /// A batch that failed and must be written before any newer one.
    failed: Option<Batch>,
    /// The worker's reporter for records the table refuses.
    reporter: Option<Arc<dyn ErrantRecordReporter>>,
}

impl std::fmt::Debug for PostgresSinkTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSinkTask")
            .field("connector", &self.connector)
            .field("next", &self.next)
            .field("in_flight", &self.in_flight.is_some())
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
            (WriteError::Rejected(reason) | WriteError::Row(reason), _) => TaskError::fatal(reason),
            (WriteError::Report(error), _) => error,
        }
    }

    /// A writer on a live connection (connecting again after a loss, and
    /// then reading what the offsets table holds).
    async fn writer(&mut self) -> Result<Writer, TaskError> {
        if let Some(writer) = self.writer.take() {
            if !writer.is_closed() {
                return Ok(writer);
            }
            tracing::warn!(connector = %self.connector, "connection to PostgreSQL lost; connecting again");
        }
        Ok(self.connect().await?.0)
    }

    /// A new connection, and what its offsets table shows applied (which
    /// `next` now covers: what is on its way stays ahead of it).
    async fn connect(&mut self) -> Result<(Writer, BTreeMap<TopicPartition, i64>), TaskError> {
        let config = self.config()?;
        let client =
            config.connection.connect_sql().await.map_err(|e| {
                e.explain_with_keys(&config.connection, "connection.password", "connection.url")
            })?;
        let mut writer = Writer::new(client, config.connection.address());
        let applied = writer.load_offsets(&self.connector).await.map_err(|e| self.explain(e))?;
        for (tp, &next) in &applied {
            let known = self.next.entry(tp.clone()).or_insert(next);
            *known = (*known).max(next);
        }
        Ok((writer, applied))
    }

    /// Waits for the batch in flight. A failure worth retrying keeps the
    /// batch to be written again; any failure is returned.
    async fn settle(&mut self) -> Result<(), TaskError> {
        let Some(in_flight) = self.in_flight.take() else { return Ok(()) };
        let (writer, batch, result) =
            in_flight.await.map_err(|e| TaskError::fatal(format!("postgres sink writer task: {e}")))?;
        match result {
            Ok(_) => {
                self.writer = Some(writer);
                Ok(())
            }
            // The next write gets a new connection: this one may be dying,
            // and is in no state to trust.
            Err(e) => {
                let error = self.explain(e);
                if error.is_retriable() {
                    self.failed = Some(batch);
                }
                Err(error)
            }
        }
    }

    /// Writes the batch that failed before, if any, and waits for it:
    /// after a reconnect, without what the offsets table shows applied.
    async fn write_failed(&mut self) -> Result<(), TaskError> {
        let Some(batch) = self.failed.take() else { return Ok(()) };
        // Always a new connection (the failed write's is gone): its reading
        // of the offsets table says what of the batch committed after all.
        self.writer = None;
        let (writer, applied) = match self.connect().await {
            Ok(connected) => connected,
            Err(e) => {
                self.failed = Some(batch);
                return Err(e);
            }
        };
        self.in_flight = Some(self.spawn_write(writer, batch.without_applied(&applied))?);
        self.settle().await
    }

    /// Starts writing `batch` on a task of its own. When the table refuses
    /// a row and the worker has a reporter, the batch is written again
    /// change by change and the refused ones are reported.
    fn spawn_write(&self, mut writer: Writer, batch: Batch) -> Result<InFlight, TaskError> {
        let config = self.config()?;
        let connector = self.connector.clone();
        let reporter = self.reporter.clone();
        Ok(tokio::spawn(async move {
            let next = batch.next_offsets();
            let changes: Vec<Change> = batch.changes.iter().flatten().cloned().collect();
            let mut result = if next.is_empty() {
                Ok(0)
            } else {
                writer.write(&changes, &config, &connector, &next).await
            };
            if let (Err(e), Some(reporter)) = (&result, &reporter) {
                if e.is_row_error() {
                    tracing::warn!(connector = %connector, error = %e, "a row was refused; writing the batch row by row");
                    let items: Vec<(usize, &Change)> = batch
                        .changes
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| Some((i, c.as_ref()?)))
                        .collect();
                    result = writer
                        .write_each(&items, &batch.records, reporter.as_ref(), &config, &connector, &next)
                        .await
                        .map(|refused| items.len() - refused);
                }
            }
            (writer, batch, result)
        }))
    }
}

#[async_trait]
impl SinkTask for PostgresSinkTask {
    async fn start(&mut self, props: &Props, context: &SinkTaskContext) -> Result<(), TaskError> {
        self.connector = context.connector.clone();
        self.config = Some(Arc::new(SinkConfig::parse(&self.connector, props)?));
        self.reporter = context.errant_record_reporter.clone();
        let writer = self.writer().await?;
        self.writer = Some(writer);
        tracing::info!(connector = %self.connector, partitions = self.next.len(), "postgres sink started");
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), TaskError> {
        let config = self.config()?;
        // Converted while the batch before is being written.
        let mut batch =
            Batch { records: Vec::with_capacity(records.len()), changes: Vec::with_capacity(records.len()) };
        for r in records {
            if self.next.get(&r.original).is_some_and(|&n| r.offset < n) {
                continue; // applied (or on its way) already: a replay
            }
            let change = match change::change_of(&r, &config) {
                Ok(change) => change,
                Err(reason) => {
                    let error = format!(
                        "record {}-{} at offset {} (topic {}): {reason}",
                        r.original.topic, r.original.partition, r.offset, r.record.topic
                    );
                    // Reported (to the dead letter queue) when the worker
                    // tolerates errors; otherwise the task fails.
                    let Some(reporter) = &self.reporter else { return Err(TaskError::fatal(error)) };
                    reporter.report(&r, &error).await?;
                    None
                }
            };
            batch.records.push(r);
            batch.changes.push(change);
        }
        self.settle().await?;
        self.write_failed().await?;
        if batch.records.is_empty() {
            return Ok(());
        }
        let writer = self.writer().await?;
        self.next.extend(batch.next_offsets());
        self.in_flight = Some(self.spawn_write(writer, batch)?);
        Ok(())
    }

    /// Waits until every batch handed to `put` has committed with its
    /// offsets.
    async fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), TaskError> {
        self.settle().await?;
        self.write_failed().await
    }

    async fn stop(&mut self) {
        if let Err(e) = self.settle().await {
            tracing::warn!(connector = %self.connector, error = %e, "the last batch was not written");
        }
        self.writer = None;
    }
}
