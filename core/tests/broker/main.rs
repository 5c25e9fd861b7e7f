//! The log, the broker and the Kafka-protocol server: crash and corruption
//! tests, the wire protocol, group membership, librdkafka's failover.

#[path = "../common/mod.rs"]
mod common;

mod broker;
mod corruption;
mod crash;
mod kafka_failover;
mod list_offsets;
mod log_model;
mod membership;
mod server;
