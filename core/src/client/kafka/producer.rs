//! The `kafka://` producer: librdkafka's producer behind Runnel's API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;

use super::{blocking, kafka_error, KafkaCluster};
use crate::client::config::Acks;
use crate::client::record::estimated_size;
use crate::client::{ProducerConfig, ProducerRecord, RecordMetadata};
use crate::record::partition_for_key;
use crate::{Error, Result};
use rdkafka::message::Message as _;

/// How long a topic's partition count is trusted before it is looked up again.
const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

pub(crate) struct KafkaProducer {
    producer: FutureProducer,
    partition_counts: Mutex<HashMap<Arc<str>, (i32, Instant)>>,
    max_block: Duration,
    max_request_size: usize,
    closed: AtomicBool,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer").field("max_request_size", &self.max_request_size).finish()
    }
}

/// A record handed to librdkafka, awaiting its delivery report.
pub(crate) struct KafkaDelivery {
    pub(crate) future: DeliveryFuture,
    pub(crate) topic: Arc<str>,
    /// −1 when librdkafka picks the partition (no key, no partition given).
    pub(crate) partition: i32,
    pub(crate) timestamp: i64,
}

impl std::fmt::Debug for KafkaDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaDelivery")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .finish()
    }
}

impl KafkaDelivery {
    pub(crate) async fn wait(self) -> Result<RecordMetadata> {
        match self.future.await {
            Ok(Ok(d)) => Ok(RecordMetadata {
                topic: self.topic,
                partition: d.partition,
                offset: d.offset,
                timestamp: d.timestamp.to_millis().unwrap_or(self.timestamp),
            }),
            Ok(Err((e, msg))) => {
                let source = match e.rdkafka_error_code() {
                    Some(code) => super::broker_error("produce", code, Some(&self.topic)),
                    None => kafka_error("produce", e),
                };
                Err(Error::SendFailed {
                    topic: self.topic.to_string(),
                    partition: msg.partition(),
                    source: Arc::new(source),
                })
            }
            Err(_) => Err(Error::Closed("producer (delivery report dropped)".into())),
        }
    }
}

impl KafkaProducer {
    pub(crate) fn new(cluster: &KafkaCluster, config: ProducerConfig) -> Result<KafkaProducer> {
        let config = config.validated()?;
        let mut c = cluster.config();
        c.set("client.id", &config.client_id)
            .set(
                "acks",
                match config.acks {
                    Acks::None => "0",
                    Acks::Leader => "1",
                    Acks::All => "all",
                },
            )
            // librdkafka's ceiling for linger.ms is 900000.
            .set("linger.ms", config.linger_ms.min(900_000).to_string())
            // delivery.timeout.ms: Java's default, and never below linger + request timeout.
            .set("message.timeout.ms", (config.linger_ms.min(900_000) + 30_000).max(120_000).to_string())
            .set("batch.size", config.batch_size.to_string())
            .set("queue.buffering.max.kbytes", (config.buffer_memory / 1024).max(1).to_string())
            .set("message.max.bytes", config.max_request_size.max(1000).to_string())
            .set("compression.type", config.compression.name())
            .set("enable.idempotence", config.enable_idempotence.to_string())
            // Java's partitioner for keyed records (unkeyed: librdkafka's choice).
            .set("partitioner", "murmur2_random");
        let producer: FutureProducer = c.create().map_err(|e| kafka_error("create a Kafka producer", e))?;
        Ok(KafkaProducer {
            producer,
            partition_counts: Mutex::new(HashMap::new()),
            max_block: Duration::from_millis(config.max_block_ms),
            max_request_size: config.max_request_size,
            closed: AtomicBool::new(false),
        })
    }

    /// The topic's partition count, from the producer's own metadata (which
    /// may create the topic, as a Kafka producer's metadata request does
    /// where the cluster allows it).
    async fn partition_count(&self, topic: &Arc<str>) -> Result<i32> {
        if let Some(&(n, at)) = self.partition_counts.lock().expect("counts lock").get(topic) {
            if at.elapsed() < METADATA_MAX_AGE {
                return Ok(n);
            }
        }
        crate::topic::validate_topic_name(topic)?;
        let producer = self.producer.clone();
        let name = topic.to_string();
        let n = blocking(move || {
            let md = producer
                .client()
                .fetch_metadata(Some(&name), super::REQUEST_TIMEOUT)
                .map_err(|e| kafka_error(&format!("fetch metadata of {name}"), e))?;
            let t = md.topics().first().ok_or_else(|| Error::UnknownTopic(name.clone()))?;
            match t.error() {
                Some(code) => {
                    Err(super::broker_error(&format!("metadata of {name}"), code.into(), Some(&name)))
                }
                None if t.partitions().is_empty() => Err(Error::UnknownTopic(name.clone())),
                None => Ok(t.partitions().len() as i32),
            }
        })
        .await?;
        self.partition_counts.lock().expect("counts lock").insert(topic.clone(), (n, Instant::now()));
        Ok(n)
    }

    pub(crate) async fn enqueue(&self, record: ProducerRecord) -> Result<KafkaDelivery> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("producer".into()));
        }
        let size = estimated_size(&record);
        if size > self.max_request_size {
            return Err(Error::MessageTooLarge {
                topic: record.topic.to_string(),
                size,
                limit: self.max_request_size,
                setting: "max.request.size",
            });
        }
        let count = self.partition_count(&record.topic).await?;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < 0 || p >= count => {
                return Err(Error::UnknownPartition(crate::topic::TopicPartition::new(
                    record.topic.to_string(),
                    p,
                )))
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => -1,
        };
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for h in &record.headers {
            headers = headers.insert(Header { key: &h.key, value: h.value.as_deref() });
        }
        let mut fr: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&record.topic).timestamp(timestamp).headers(headers);
        if partition >= 0 {
            fr = fr.partition(partition);
        }
        if let Some(k) = &record.key {
            fr = fr.key(&k[..]);
        }
        if let Some(v) = &record.value {
            fr = fr.payload(&v[..]);
        }
        let deadline = Instant::now() + self.max_block;
        loop {
            match self.producer.send_result(fr) {
                Ok(future) => {
                    return Ok(KafkaDelivery { future, topic: record.topic.clone(), partition, timestamp })
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Backpressure: librdkafka's queue (buffer.memory) is full.
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout {
                            what: "producer buffer memory",
                            ms: self.max_block.as_millis() as u64,
                        });
                    }
                    fr = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    return Err(Error::MessageTooLarge {
                        topic: record.topic.to_string(),
                        size,
                        limit: self.max_request_size,
                        setting: "max.request.size",
                    });
                }
                Err((e, _)) => return Err(kafka_error(&format!("send to {}", record.topic), e)),
            }
        }
    }

    pub(crate) async fn flush(&self) -> Result<()> {
        let producer = self.producer.clone();
        blocking(move || producer.flush(Timeout::Never).map_err(|e| kafka_error("flush", e))).await
    }

    pub(crate) async fn close(&self) -> Result<()> {
        let result = self.flush().await;
        self.closed.store(true, Ordering::Release);
        result
    }
}

impl Drop for KafkaProducer {
    fn drop(&mut self) {
        // rdkafka purges unsent messages when the last handle drops; Runnel
        // promises that dropping a producer still sends what it accepted.
        // Flush on a thread of its own (never blocking an async worker),
        // holding a handle until done.
        if !self.closed.load(Ordering::Acquire) {
            let producer = self.producer.clone();
            std::thread::spawn(move || {
                if let Err(e) = producer.flush(Timeout::Never) {
                    tracing::warn!(error = %e, "flushing a dropped producer failed");
                }
            });
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
