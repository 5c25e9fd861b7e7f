//! The Streams DSL and runtime against real clusters and the test driver.

mod dsl;
mod fk_join;
mod global;
mod joins;
mod processor_api;
mod runtime;
mod serdes;
mod state;
mod suppress;
mod versioned;
mod windows;
