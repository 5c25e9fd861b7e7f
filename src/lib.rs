//! Runnel: a Kafka-style streaming platform in Rust.
//!
//! This facade re-exports the member crates so applications depend on one
//! package:
//!
//! * [`core`] — records, the durable partitioned log, topics, groups, the
//!   client API (`Cluster`, `Producer`, `Consumer`, `Admin`) and the Kafka
//!   wire-protocol server;
//! * [`streams`] — the Streams DSL and its runtime (RocksDB state,
//!   changelogs, windows, stream and table joins);
//! * [`connect`] and [`connectors`] — the Connect runtime (standalone and
//!   distributed, REST API) and the file connectors.
//!
//! `examples/quickstart.rs` runs all three together in one process.
//!
//! ```
//! use runnel::core::broker::{Broker, BrokerConfig};
//! use runnel::core::topic::NewTopic;
//!
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(dir.path(), BrokerConfig::default())?;
//! broker.create_topic(NewTopic::new("events", 3))?;
//! assert_eq!(broker.list_topics(), vec!["events".to_string()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

pub use runnel_connect as connect;
pub use runnel_connectors as connectors;
pub use runnel_core as core;
pub use runnel_streams as streams;
