//! The file and Postgres connectors and the REST API.

mod file_connectors;
mod postgres_cdc;
mod postgres_sink;
mod rest_api;
