//! The producer: `send` a record, get back where it was stored.
//!
//! Records are grouped per partition into batches in an accumulator and
//! written by one sender thread, so a caller that does not wait for each
//! delivery gets the log's batch throughput:
//!
//! * a batch is sent when it reaches `batch.size`, when it is `linger.ms`
//!   old, or on [`Producer::flush`];
//! * records waiting to be sent hold `buffer.memory` bytes; when it is used
//!   up, `send` waits (backpressure) for up to `max.block.ms`;
//! * records with a key go to `murmur2(key) % partitions`, as with the Java
//!   client; records without a key stick to one partition until its batch
//!   is sent, then move on (sticky partitioning); an explicit partition
//!   wins over both;
//! * within a partition, records are stored in the order `send` accepted them.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use runnel_core::client::{Cluster, ProducerConfig, ProducerRecord};
//!
//! let dir = tempfile::tempdir()?;
//! let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await?;
//! let producer = cluster.producer(ProducerConfig::default())?;
//! let meta = producer.send(ProducerRecord::new("clicks").key("u42").value("hello")).await?;
//! assert_eq!(meta.offset, 0);
//!
//! // Pipelined: enqueue many, then wait for the deliveries.
//! let mut pending = Vec::new();
//! for i in 0..100 {
//!     pending.push(producer.enqueue(ProducerRecord::new("clicks").value(format!("v{i}"))).await?);
//! }
//! for delivery in pending {
//!     delivery.await?;
//! }
//! producer.close().await?;
//! cluster.close().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod accumulator;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use accumulator::{Accumulator, BatchCompletion};

use super::embedded::EmbeddedCluster;
use super::kafka::producer::{KafkaDelivery, KafkaProducer};
use super::kafka::KafkaCluster;
use super::{ProducerConfig, ProducerRecord, RecordMetadata};
use crate::{Error, Result};

/// Sends records to a cluster. Cheap to share behind an `Arc`; every method
/// takes `&self`.
#[derive(Debug)]
pub struct Producer {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Embedded(Arc<Accumulator>),
    Kafka(KafkaProducer),
}

impl Producer {
    pub(crate) fn embedded(cluster: Arc<EmbeddedCluster>, config: ProducerConfig) -> Result<Producer> {
        Ok(Producer { backend: Backend::Embedded(Accumulator::start(cluster, config.validated()?)?) })
    }

    pub(crate) fn kafka(cluster: Arc<KafkaCluster>, config: ProducerConfig) -> Result<Producer> {
        Ok(Producer { backend: Backend::Kafka(KafkaProducer::new(&cluster, config)?) })
    }

    /// Sends a record and waits until it is stored.
    ///
    /// # Errors
    /// As [`Producer::enqueue`], and [`Error::SendFailed`] when the batch
    /// could not be appended.
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        self.enqueue(record).await?.await
    }

    /// Accepts a record into a batch and returns a [`Delivery`] to await its
    /// result. Waits only when `buffer.memory` is used up.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] (unless auto-creation is on),
    /// [`Error::UnknownPartition`], [`Error::MessageTooLarge`],
    /// [`Error::Timeout`] after `max.block.ms` without buffer memory,
    /// [`Error::Closed`] after [`Producer::close`].
    ///
    /// # Cancel safety
    /// Cancelling while waiting for memory sends nothing; once this returns,
    /// the record will be sent whether or not the delivery is awaited.
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<Delivery> {
        match &self.backend {
            Backend::Embedded(a) => a.enqueue(record).await,
            Backend::Kafka(k) => Ok(Delivery { inner: DeliveryInner::Kafka(k.enqueue(record).await?) }),
        }
    }

    /// Accepts every record of `records` (leaving it empty) with one
    /// memory reservation and one lock for the lot, which is cheaper per
    /// record than [`Producer::enqueue`] in a loop. Returns the deliveries
    /// to await: on the embedded backend one per batch the records went
    /// into, for the last of them in that batch — records of one batch
    /// share its outcome, so awaiting these confirms every record; on
    /// `kafka://` one per record. Order within a partition is the order in
    /// `records`.
    ///
    /// # Errors
    /// As [`Producer::enqueue`]. The records before the failing one are
    /// accepted and will be sent; it and those after it are not.
    ///
    /// [`Delivery::records`] tells how many of the records a delivery
    /// stands for: the records of one partition, in order, are covered by
    /// that partition's deliveries in order, and the ones a delivery stands
    /// for have the offsets up to its own.
    ///
    /// # Example
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use runnel_core::client::{Cluster, ProducerConfig, ProducerRecord};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await?;
    /// let producer = cluster.producer(ProducerConfig::default().linger_ms(5))?;
    /// let mut records: Vec<_> =
    ///     (0..1000).map(|i| ProducerRecord::new("clicks").partition(0).value(format!("v{i}"))).collect();
    /// let deliveries = producer.enqueue_many(&mut records).await?;
    /// assert!(records.is_empty());
    /// let mut last = 0;
    /// for delivery in deliveries {
    ///     last = last.max(delivery.await?.offset);
    /// }
    /// assert_eq!(last, 999);
    /// # producer.close().await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn enqueue_many(&self, records: &mut Vec<ProducerRecord>) -> Result<Vec<Delivery>> {
        match &self.backend {
            Backend::Embedded(a) => a.enqueue_many(records).await,
            Backend::Kafka(k) => {
                let mut deliveries = Vec::with_capacity(records.len());
                for record in records.drain(..) {
                    deliveries.push(Delivery { inner: DeliveryInner::Kafka(k.enqueue(record).await?) });
                }
                Ok(deliveries)
            }
        }
    }

    /// Sends every record accepted so far and waits until each is stored.
    ///
    /// # Errors
    /// [`Error::Closed`] if the sender stopped.
    pub async fn flush(&self) -> Result<()> {
        match &self.backend {
            Backend::Embedded(a) => a.flush().await,
            Backend::Kafka(k) => k.flush().await,
        }
    }

    /// Flushes, then stops the sender. Later sends fail with
    /// [`Error::Closed`].
    ///
    /// # Errors
    /// As [`Producer::flush`].
    pub async fn close(&self) -> Result<()> {
        match &self.backend {
            Backend::Embedded(a) => a.close().await,
            Backend::Kafka(k) => k.close().await,
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // The sender drains what was accepted before it stops (librdkafka's
        // producer flushes on drop).
        if let Backend::Embedded(a) = &self.backend {
            a.shutdown();
        }
    }
}

/// The pending result of one enqueued record; await it (it is
/// `IntoFuture`) for the [`RecordMetadata`].
#[derive(Debug)]
pub struct Delivery {
    inner: DeliveryInner,
}

#[derive(Debug)]
enum DeliveryInner {
    /// `records`: how many records enqueued in one call it stands for.
    Embedded {
        completion: Arc<BatchCompletion>,
        index: u32,
        timestamp: i64,
        records: u32,
    },
    Kafka(KafkaDelivery),
}

impl Delivery {
    pub(crate) fn embedded(completion: Arc<BatchCompletion>, index: u32, timestamp: i64) -> Delivery {
        Delivery { inner: DeliveryInner::Embedded { completion, index, timestamp, records: 1 } }
    }

    /// Stands for one more record of its batch, appended at `index` with
    /// `timestamp` in the same [`Producer::enqueue_many`] call.
    pub(crate) fn advance(&mut self, next: u32, at: i64) {
        if let DeliveryInner::Embedded { index, timestamp, records, .. } = &mut self.inner {
            *index = next;
            *timestamp = at;
            *records += 1;
        }
    }

    /// How many records this delivery stands for: 1 for one from
    /// [`Producer::enqueue`]; from [`Producer::enqueue_many`], the number
    /// of that call's records that went into its batch. They are the
    /// records of its partition just before it and it, stored at the
    /// offsets ending at its own.
    pub fn records(&self) -> u32 {
        match &self.inner {
            DeliveryInner::Embedded { records, .. } => *records,
            DeliveryInner::Kafka(_) => 1,
        }
    }

    /// Whether the record went into the batch `completion` belongs to.
    /// Always false on `kafka://`.
    pub(crate) fn is_batch(&self, batch: &Arc<BatchCompletion>) -> bool {
        matches!(&self.inner, DeliveryInner::Embedded { completion, .. } if Arc::ptr_eq(completion, batch))
    }

    /// The partition the record was assigned to; −1 on the `kafka://`
    /// backend when librdkafka picks it (a record with neither key nor
    /// partition), until the delivery completes.
    pub fn partition(&self) -> i32 {
        match &self.inner {
            DeliveryInner::Embedded { completion, .. } => completion.partition,
            DeliveryInner::Kafka(k) => k.partition,
        }
    }

    /// Waits for the result.
    ///
    /// # Errors
    /// [`Error::SendFailed`] with the reason the batch was not stored.
    pub async fn wait(self) -> Result<RecordMetadata> {
        let (completion, index, timestamp) = match self.inner {
            DeliveryInner::Embedded { completion, index, timestamp, .. } => (completion, index, timestamp),
            DeliveryInner::Kafka(k) => return k.wait().await,
        };
        let outcome = completion.wait().await;
        match outcome {
            Ok(ack) => Ok(RecordMetadata {
                topic: completion.topic.clone(),
                partition: completion.partition,
                offset: ack.base_offset + i64::from(index),
                timestamp: ack.log_append_time.unwrap_or(timestamp),
            }),
            Err(source) => Err(Error::SendFailed {
                topic: completion.topic.to_string(),
                partition: completion.partition,
                source,
            }),
        }
    }

    /// Waits at most `timeout` for the result.
    ///
    /// # Errors
    /// As [`Delivery::wait`], or [`Error::Timeout`].
    pub async fn wait_timeout(self, timeout: Duration) -> Result<RecordMetadata> {
        let ms = timeout.as_millis() as u64;
        tokio::time::timeout(timeout, self.wait())
            .await
            .map_err(|_| Error::Timeout { what: "delivery", ms })?
    }
}

impl IntoFuture for Delivery {
    type Output = Result<RecordMetadata>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<RecordMetadata>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}
