//! Runnel Connect: Kafka Connect compatibility for Runnel.
//!
//! The data half of Connect, shared by connector authors and the runtime:
//!
//! - [`data`]: Kafka Connect's data model — [`data::Schema`] (with a
//!   builder and the logical types `Decimal`, `Date`, `Time`, `Timestamp`),
//!   [`data::Value`] and [`data::Struct`] with validation.
//! - [`converter`]: the [`converter::Converter`] trait and Kafka's
//!   `JsonConverter`, `StringConverter` and `ByteArrayConverter`, looked up
//!   by Kafka's class names so existing worker configs carry over.
//! - [`transforms`]: single message transforms and predicates with Kafka's
//!   class names and config keys, and [`transforms::TransformChain`] built
//!   from a connector's flat `transforms=...` config.
//! - [`config_def`]: a small `ConfigDef` — declared keys with types,
//!   defaults and docs, parsed into typed values with errors that name the key.
//! - [`record`]: [`record::ConnectRecord`], the record that flows through
//!   converters and transforms.
//!
//! And the runtime:
//!
//! - [`plugin`]: the connector API — [`plugin::SourceConnector`],
//!   [`plugin::SourceTask`], [`plugin::SinkConnector`], [`plugin::SinkTask`]
//!   — and the [`plugin::PluginRegistry`] that finds connectors by class name.
//! - [`worker`]: the standalone [`worker::Worker`]: worker and connector
//!   configs (`.properties`, `.json`, `.toml`), source and sink task loops,
//!   offsets in a compacted topic, error tolerance, retries and the dead
//!   letter queue, and task statuses; pause, resume, stop, restarts,
//!   config updates, active topics and offsets (KIP-875).
//! - [`rest`]: the REST API with Kafka Connect's paths and JSON.
//!
//! Design decisions: logical values keep their physical form (a `Decimal` is
//! bytes, a `Timestamp` an `int64`), so converters and transforms see one
//! representation, the one Kafka puts on the wire. Schemas are `Arc` handles,
//! cheap to clone into every record.
//!
//! ```
//! use std::collections::HashMap;
//! use runnel_connect::converter::{converter_for_class, Converter};
//! use runnel_connect::data::{Schema, SchemaType, Value};
//!
//! let mut json = converter_for_class("org.apache.kafka.connect.json.JsonConverter").unwrap();
//! json.configure(&HashMap::from([("schemas.enable".to_string(), "false".to_string())]), false).unwrap();
//! let bytes = json.from_connect("t", Some(&Schema::of(SchemaType::Int32)), &Value::Int32(7)).unwrap();
//! assert_eq!(bytes.as_deref(), Some(&b"7"[..]));
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod config_def;
pub mod converter;
pub mod data;
mod error;
pub mod plugin;
pub mod record;
pub mod rest;
pub mod transforms;
pub mod worker;

pub use error::ConnectError;
