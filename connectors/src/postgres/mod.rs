//! PostgreSQL connectors.
//!
//! - [`PostgresCdcSource`]: change data capture by logical replication
//!   (pgoutput), with Debezium's configuration and events.

mod cdc;
mod conn;
mod lsn;
mod replication;
mod tls;

pub use cdc::{PostgresCdcSource, PostgresCdcSourceTask};
pub use lsn::{Lsn, ParseLsnError};

use runnel_connect::plugin::PluginRegistry;

/// Registers the PostgreSQL connectors.
pub fn register(registry: &mut PluginRegistry) {
    cdc::register(registry);
}
