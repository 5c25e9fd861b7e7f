//! What Runnel's integration tests share, in one place instead of a copy
//! per test binary:
//!
//! * [`served`]: an embedded cluster, optionally served over the Kafka
//!   protocol by a broker on its own runtime thread, so the same test runs
//!   on the embedded and the `kafka://` backend;
//! * [`postgres`]: a throwaway PostgreSQL server (`RUNNEL_REQUIRE_POSTGRES=1`
//!   turns its absence into a failure);
//! * [`kill`]: SIGKILLs a worker process again and again while it writes;
//! * [`test_name`]: a test's name as the harness knows it, to run it alone
//!   in a child process.

pub mod kill;
pub mod postgres;
pub mod served;

/// The name the test harness gives `function` in the module at
/// `module_path` (pass `module_path!()`): the module path without the test
/// binary's crate name, then the function. `--exact` with it runs just that
/// test, as a child process of the test that needs one.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{function}"),
        None => function.to_string(),
    }
}
