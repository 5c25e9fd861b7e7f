//! Shared helpers for runnel-core's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use runnel_core::log::{Log, LogConfig};
use runnel_core::record::{Compression, RecordBatchBuilder};
use runnel_core::time::SystemClock;
use runnel_core::topic::TopicPartition;

/// Opens a log with the system clock.
pub fn open_log(dir: &Path, config: LogConfig) -> runnel_core::Result<Log> {
    Log::open(dir, TopicPartition::new("test", 0), config, Arc::new(SystemClock))
}

/// The value stored for record `j` of batch `id`: recognisable and of varying length.
pub fn value_for(id: u64, j: usize) -> Vec<u8> {
    let mut v = format!("batch-{id}-record-{j}-").into_bytes();
    v.resize(v.len() + (id as usize).wrapping_mul(7).wrapping_add(j * 13) % 200, b'a' + (j % 26) as u8);
    v
}

/// A batch of `n` records whose values are `value_for(id, 0..n)`.
pub fn batch(id: u64, n: usize, codec: Compression) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(codec);
    for j in 0..n {
        b.append(
            1_700_000_000_000 + (id % 1_000_000_000) as i64,
            Some(format!("k{}", j % 5).as_bytes()),
            Some(&value_for(id, j)),
            &[],
        );
    }
    b.build(0).unwrap()
}

/// A small xorshift generator so tests can print and replay their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_time() -> Self {
        let seed = std::env::var("RUNNEL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("seed: RUNNEL_TEST_SEED={seed}");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

use runnel_testkit::served::ServedCluster;
#[allow(unused_imports)] // Each test binary uses its own subset.
pub use runnel_testkit::served::{kafka_backend, skip_on_kafka};

/// The test kit's [`ServedCluster`], served over the Kafka protocol when
/// `RUNNEL_TEST_BACKEND=kafka`; it dereferences to the cluster clients are
/// created from, and `embedded` inspects the broker.
pub struct TestCluster(ServedCluster);

impl TestCluster {
    pub async fn open(dir: &Path, config: runnel_core::broker::BrokerConfig) -> TestCluster {
        let embedded = runnel_core::client::Cluster::open_with(&format!("file:{}", dir.display()), config)
            .await
            .unwrap();
        Self::over(embedded).await
    }

    pub async fn over(embedded: runnel_core::client::Cluster) -> TestCluster {
        TestCluster(ServedCluster::start(embedded, kafka_backend()).await)
    }

    /// Stops the server (if any) and closes the embedded cluster cleanly.
    pub async fn close(self) -> runnel_core::Result<()> {
        self.0.close().await
    }
}

impl std::ops::Deref for TestCluster {
    type Target = ServedCluster;

    fn deref(&self) -> &ServedCluster {
        &self.0
    }
}
