//! Runnel Streams: a typed stream-processing DSL (map, filter, joins,
//! windows, aggregations) whose tasks run one per input partition, with
//! state in RocksDB backed by changelog topics.
//!
//! Not built yet: this crate holds its place in the workspace until the
//! Streams issue lands. It depends only on the client API of `runnel-core`,
//! never on the log's internals.

#![warn(missing_docs, unreachable_pub)]
