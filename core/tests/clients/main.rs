//! The client API's integration tests (producer, consumer, groups, admin);
//! `scripts/test` runs them on both backends.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod consumer;
mod groups;
mod producer;
