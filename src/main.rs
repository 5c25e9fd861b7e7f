//! The `runnel` command-line tool. Each subcommand lives in its own module
//! under `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Keeps a hostile array length in a Kafka request from aborting the
/// broker (see `LargeAllocGuard`).
#[global_allocator]
static ALLOC: runnel::core::server::LargeAllocGuard = runnel::core::server::LargeAllocGuard;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = cli::Cli::parse();
    // Most commands run every task on one thread: the heavy work (the
    // producer's sender, log I/O) has threads of its own, and on a small
    // machine fewer runnable threads means far lower latency (end-to-end p99
    // fell from ~5 ms to ~0.4 ms on 2 cores). Throughput benchmarks, whose
    // latency collector should run beside the producing loop, use a
    // multi-threaded runtime.
    let runtime = if args.wants_parallel_runtime() {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
