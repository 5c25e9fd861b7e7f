//! Runnel Connect: the runtime that runs source and sink connectors from
//! config files, with Kafka Connect's config keys and REST API, converters,
//! transforms and dead-letter queues.
//!
//! Not built yet: this crate holds its place in the workspace until the
//! Connect issue lands. A connector author will need only this crate.

#![warn(missing_docs, unreachable_pub)]
