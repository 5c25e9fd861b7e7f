//! Runnel's bundled connectors:
//!
//! - [`postgres::PostgresCdcSource`] captures every committed row change of
//!   a PostgreSQL database by logical replication (pgoutput), as Debezium's
//!   PostgreSQL connector does, with its config keys and events;
//! - [`postgres::PostgresSink`] writes records and Debezium change events
//!   into PostgreSQL tables with the Debezium JDBC sink's keys, each batch
//!   and its offsets in one transaction, so it never repeats or loses a
//!   change;
//! - [`file::FileStreamSource`] tails a file, one record per line, and
//!   resumes after a restart at the byte after the last stored line
//!   (truncation and rotation handled);
//! - [`file::FileStreamSink`] writes one line per record and, unlike
//!   Kafka's, never repeats or loses a line after a crash: it keeps the last
//!   written offset per topic-partition beside the file.
//!
//! Register them with a worker's registry through [`register`]:
//!
//! ```
//! use runnel_connect::plugin::PluginRegistry;
//! let mut registry = PluginRegistry::new();
//! runnel_connectors::register(&mut registry);
//! assert_eq!(registry.resolve("org.apache.kafka.connect.file.FileStreamSourceConnector"), Some("FileStreamSource"));
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod file;
pub mod postgres;

use runnel_connect::plugin::PluginRegistry;

/// Registers every bundled connector.
pub fn register(registry: &mut PluginRegistry) {
    file::register(registry);
    postgres::register(registry);
}
