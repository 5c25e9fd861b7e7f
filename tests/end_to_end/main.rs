//! End-to-end tests across the crates: the CLI, the examples, real Kafka
//! clients, crash tests, the repository's set-up and layering.

mod cdc_pipeline;
mod cli;
mod connect;
mod connect_distributed;
mod interactive_queries;
mod kafka_clients;
mod layering;
mod postgres_cdc_crash;
mod postgres_sink_crash;
mod quickstart;
mod setup;
