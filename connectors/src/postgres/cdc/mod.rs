//! `PostgresCdcSource`: every committed row change of a PostgreSQL
//! database, in commit order, as Debezium's change events.
//!
//! A Debezium user moves over by changing only the worker: the connector
//! class `io.debezium.connector.postgresql.PostgresConnector` is accepted,
//! with Debezium's keys and defaults (see `config.rs` for the few
//! differences), and the events — topics `<topic.prefix>.<schema>.<table>`,
//! keys, the `before`/`after`/`source`/`op` envelope and its schema names,
//! tombstones, heartbeats — are Debezium's (the layout of 3.1), so the
//! JSON converter with schemas writes what Debezium writes.
//!
//! How it works:
//!
//! 1. **Set-up** (`setup.rs`): checks `wal_level` and the REPLICATION
//!    privilege, creates or checks the publication, and decides from the
//!    stored offset and the slot whether to snapshot or stream, failing
//!    loudly when the slot was lost or is ahead of the offset.
//! 2. **Snapshot** (`snapshot.rs`): the slot is created on a replication
//!    connection with an exported snapshot, which a REPEATABLE READ
//!    transaction imports (`SET TRANSACTION SNAPSHOT`); the snapshot and
//!    the stream meet exactly at the slot's consistent point.
//! 3. **Stream** (`stream.rs`): pgoutput protocol 1 from the slot, decoded
//!    (`pgoutput.rs`) into events; a Relation message with a changed table
//!    changes the schema of the events that follow.
//! 4. **Durability** (`task.rs`): the slot's flush position is reported as
//!    the `lsn_commit` of the last record the worker stored, never more; a
//!    restart skips what was stored (see `stream.rs`). Heartbeats carry
//!    the position while the captured tables are idle, so WAL is freed.
//!
//! 5. **TOAST** (`toast.rs`): with `toast.fill=true`, unchanged TOASTed
//!    values are filled from the last row image emitted for the key.
//!
//! Not yet: TLS (`database.sslmode=require`), pgoutput protocol 2
//! (streaming of in-progress transactions), column default values in
//! schemas, and `provide.transaction.metadata`.

mod catalog;
mod config;
mod event;
mod pgoutput;
mod setup;
mod snapshot;
mod stream;
mod table;
mod task;
mod toast;
mod types;

use async_trait::async_trait;
use runnel_connect::config_def::{ConfigDef, ConfigError};
use runnel_connect::plugin::{PluginRegistry, Props, SourceConnector, SourceTask, TaskError};

pub use task::PostgresCdcSourceTask;

/// Debezium's class name for this connector.
pub(crate) const DEBEZIUM_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";

/// The PostgreSQL CDC source connector. One task: a replication slot has
/// one reader.
#[derive(Debug, Default)]
pub struct PostgresCdcSource {
    props: Props,
}

impl PostgresCdcSource {
    /// The class name.
    pub const CLASS: &'static str = "PostgresCdcSource";
}

#[async_trait]
impl SourceConnector for PostgresCdcSource {
    fn config_def(&self) -> ConfigDef {
        config::config_def()
    }

    fn validate(&self, props: &Props) -> Vec<ConfigError> {
        config::validate(props)
    }

    async fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        config::CdcConfig::parse(props, "validation")?;
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone()]
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(PostgresCdcSourceTask::default())
    }
}

pub(crate) fn register(registry: &mut PluginRegistry) {
    registry.register_source(PostgresCdcSource::CLASS, &[DEBEZIUM_CLASS], || {
        Box::new(PostgresCdcSource::default())
    });
}
