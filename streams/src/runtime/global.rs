//! The global thread: brings an instance's global stores up to their
//! topics' ends before stream threads start, then keeps applying new
//! records, checkpointing every `commit.interval.ms` and on shutdown
//! (Kafka's `GlobalStreamThread`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_core::client::{Cluster, Consumer, ConsumerConfig};
use runnel_core::topic::TopicPartition;
use tracing::info;

use super::client_error;
use crate::store::global::GlobalStores;
use crate::StreamsError;

/// Keys and values (`None`: tombstone) of one store's records in a poll.
type Batch<'a> = Vec<(&'a [u8], Option<&'a [u8]>)>;

/// Reads every partition of the global topics into the stores.
pub(crate) struct GlobalUpdater {
    consumer: Consumer,
    stores: Arc<GlobalStores>,
    /// Next offset to apply per topic partition.
    offsets: HashMap<(String, i32), i64>,
}

impl GlobalUpdater {
    /// Assigns every partition of the global topics, from the checkpoint
    /// (or the beginning), and applies records until each partition's
    /// end as of now.
    pub(crate) async fn bootstrap(
        cluster: &Cluster,
        stores: Arc<GlobalStores>,
    ) -> Result<Self, StreamsError> {
        let admin = cluster.admin();
        let mut partitions = Vec::new();
        for store in stores.iter() {
            let topic =
                admin.describe_topic(store.topic()).await.map_err(client_error("describe global topic"))?;
            let count = topic.partitions.len() as i32;
            partitions.extend((0..count).map(|p| TopicPartition::new(store.topic(), p)));
        }
        let mut consumer =
            cluster.consumer(ConsumerConfig::default()).map_err(client_error("create global consumer"))?;
        consumer.assign(partitions.clone()).map_err(client_error("assign global partitions"))?;
        let offsets = stores.checkpointed_offsets()?;
        for tp in &partitions {
            match offsets.get(&(tp.topic.clone(), tp.partition)) {
                Some(&offset) => consumer.seek(tp, offset),
                None => consumer.seek_to_beginning(std::slice::from_ref(tp)),
            }
            .map_err(client_error("seek global partition"))?;
        }
        let ends: BTreeMap<TopicPartition, i64> =
            consumer.end_offsets(&partitions).map_err(client_error("read global end offsets"))?;
        let mut updater = GlobalUpdater { consumer, stores, offsets };
        let started = Instant::now();
        for (tp, end) in &ends {
            while updater.consumer.position(tp).await.map_err(client_error("global position"))? < *end {
                updater.poll_once(Duration::from_millis(100)).await?;
            }
        }
        updater.checkpoint()?;
        info!(partitions = ends.len(), ms = started.elapsed().as_millis() as u64, "global stores restored");
        Ok(updater)
    }

    /// Applies the records of one poll.
    async fn poll_once(&mut self, timeout: Duration) -> Result<(), StreamsError> {
        let records = self.consumer.poll(timeout).await.map_err(client_error("poll global topics"))?;
        let mut batches: HashMap<&str, Batch<'_>> = HashMap::new();
        for record in &records {
            // A record without a key cannot be looked up: skipped, as Kafka does.
            if let Some(key) = record.key.as_deref() {
                batches.entry(&record.topic).or_default().push((key, record.value.as_deref()));
            }
        }
        for (topic, batch) in batches {
            if let Some(store) = self.stores.for_topic(topic) {
                store.apply(batch)?;
            }
        }
        for record in &records {
            self.offsets.insert((record.topic.to_string(), record.partition), record.offset + 1);
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<(), StreamsError> {
        self.stores.write_checkpoint(&self.offsets)
    }

    /// Applies new records until `shutdown` is set, checkpointing every
    /// `commit_interval` and at the end.
    pub(crate) async fn run(
        mut self,
        shutdown: &AtomicBool,
        commit_interval: Duration,
    ) -> Result<(), StreamsError> {
        let mut last = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            self.poll_once(Duration::from_millis(100)).await?;
            if last.elapsed() >= commit_interval {
                self.checkpoint()?;
                last = Instant::now();
            }
        }
        self.checkpoint()?;
        let _ = self.consumer.close().await;
        Ok(())
    }
}
