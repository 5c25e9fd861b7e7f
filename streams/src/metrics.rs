//! Counters shared by the tasks of one [`Streams`](crate::Streams) instance
//! or [`TopologyTestDriver`](crate::TopologyTestDriver), and their public
//! snapshot [`StreamsMetrics`].

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters; tasks hold an `Arc` and bump them with relaxed
/// atomics (they are read only for reporting).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    dropped_records: AtomicU64,
    processed: AtomicU64,
}

impl Counters {
    /// Counts a record dropped by a processor (late for every window).
    pub(crate) fn record_dropped(&self) {
        self.dropped_records.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` input records processed (tasks report in batches).
    pub(crate) fn add_processed(&self, n: u64) {
        self.processed.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters' values now.
    pub(crate) fn snapshot(&self) -> StreamsMetrics {
        StreamsMetrics {
            dropped_records_total: self.dropped_records.load(Ordering::Relaxed),
            process_total: self.processed.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of an instance's metrics, named after Kafka Streams' task
/// metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsMetrics {
    /// `dropped-records-total`: records dropped because they arrived after
    /// every window they belong to had closed (window end + grace passed).
    pub dropped_records_total: u64,
    /// `process-total`: input records processed. Stream threads report
    /// after each turn of up to 1000 records per task, so a running
    /// instance's figure trails by less than that per task.
    pub process_total: u64,
}
