//! The kill -9 tests' killer: SIGKILLs a worker process at an interval and
//! starts a new one on the same data directory, a number of times, then
//! waits until the writers are done.

use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Kills `worker` `kills` times, `every` apart, each time replacing it with
/// `respawn()`; once `writing` is false, hands back the last worker. Panics
/// if a worker exits on its own.
pub fn kill_while_writing(
    mut worker: Child,
    kills: usize,
    every: Duration,
    writing: Arc<AtomicBool>,
    respawn: impl Fn() -> Child + Send + 'static,
) -> tokio::task::JoinHandle<Child> {
    tokio::task::spawn_blocking(move || {
        for _ in 0..kills {
            std::thread::sleep(every);
            if let Some(status) = worker.try_wait().unwrap() {
                panic!("worker exited on its own: {status}");
            }
            worker.kill().unwrap(); // SIGKILL
            worker.wait().unwrap();
            worker = respawn();
        }
        while writing.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        worker
    })
}
