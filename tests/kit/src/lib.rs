//! What Runnel's integration tests share, in one place instead of a copy
//! per test binary:
//!
//! * [`served`]: an embedded cluster, optionally served over the Kafka
//!   protocol by a broker on its own runtime thread, so the same test runs
//!   on the embedded and the `kafka://` backend;
//! * [`postgres`]: a throwaway PostgreSQL server (`RUNNEL_REQUIRE_POSTGRES=1`
//!   turns its absence into a failure);
//! * [`kill`]: SIGKILLs a worker process again and again while it writes.

pub mod kill;
pub mod postgres;
pub mod served;
