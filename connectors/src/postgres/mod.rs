//! PostgreSQL connectors.
//!
//! - [`PostgresCdcSource`]: change data capture by logical replication
//!   (pgoutput), with Debezium's configuration and events.
//! - [`PostgresSink`]: writes records and Debezium change events into
//!   tables, exactly once, with the Debezium JDBC sink's configuration.

mod cdc;
mod conn;
mod lsn;
mod replication;
mod sink;
mod tls;

pub use cdc::{PostgresCdcSource, PostgresCdcSourceTask};
pub use lsn::{Lsn, ParseLsnError};
pub use sink::{PostgresSink, PostgresSinkTask};

use runnel_connect::plugin::PluginRegistry;

/// Registers the PostgreSQL connectors.
pub fn register(registry: &mut PluginRegistry) {
    cdc::register(registry);
    sink::register(registry);
}
