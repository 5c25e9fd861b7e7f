//! Runnel's bundled connectors: Postgres CDC (logical replication), Postgres
//! sink, and file source and sink.
//!
//! Not built yet: this crate holds its place in the workspace until the
//! connector issues land.

#![warn(missing_docs, unreachable_pub)]
