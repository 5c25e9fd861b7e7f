//! Client calls that may wait for a Kafka broker, made from async code.
//!
//! On `kafka://` a consumer's offset look-ups (`end_offsets`, `assign` with
//! committed offsets, `seek_to_beginning`, ...) are librdkafka's
//! synchronous calls: they hold their thread until the broker answers.
//! Made straight from a task they would stall every other task of that
//! runtime thread (other connectors, the REST API) for a round trip.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `call` so that it does not stall the runtime: on a multi-thread
/// runtime the thread first hands its other tasks to another thread
/// (`tokio::task::block_in_place`); elsewhere (a current-thread runtime,
/// no runtime) it is called as it is.
pub(crate) fn off_runtime<T>(call: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        _ => call(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::off_runtime;

    /// A blocking call made through `off_runtime` lets another task of the
    /// same runtime run meanwhile, even with a single worker thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_call_does_not_stall_other_tasks() {
        let ticker = tokio::spawn(async {
            let started = Instant::now();
            tokio::time::sleep(Duration::from_millis(10)).await;
            started.elapsed()
        });
        tokio::task::yield_now().await;
        off_runtime(|| std::thread::sleep(Duration::from_millis(400)));
        let waited = ticker.await.unwrap();
        assert!(waited < Duration::from_millis(300), "the other task waited {waited:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_a_current_thread_runtime_it_is_a_plain_call() {
        assert_eq!(off_runtime(|| 7), 7);
    }
}
