//! The runtime's [`RecordCollector`]: sink output goes to a real producer.
//!
//! Processors run synchronously, the producer is async, so the collector
//! copies each record into a small pending list that the stream thread
//! hands to the producer after every input record. Deliveries are kept in a
//! bounded window; a commit waits for all of them, so offsets are committed
//! only for input whose output is stored (at-least-once).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use runnel_core::client::{Delivery, Producer, ProducerRecord, RecordMetadata};
use runnel_core::record::Header;

use crate::record::{RecordCollector, SinkRecord};
use crate::StreamsError;

/// Deliveries not yet confirmed before the thread waits for the oldest:
/// bounds memory and gives backpressure from the cluster.
const MAX_IN_FLIGHT: usize = 50_000;

/// Collects sink output between producer hand-offs.
#[derive(Debug, Default)]
pub(crate) struct PendingOutput {
    records: Vec<ProducerRecord>,
    /// Topic names shared by all records sent to them (a topology writes
    /// a handful of topics: a linear scan beats hashing the name).
    topics: Vec<Arc<str>>,
}

impl RecordCollector for PendingOutput {
    fn send(&mut self, record: SinkRecord<'_>) -> Result<(), StreamsError> {
        let topic = match self.topics.iter().find(|t| ***t == *record.topic) {
            Some(t) => Arc::clone(t),
            None => {
                let t: Arc<str> = record.topic.into();
                self.topics.push(Arc::clone(&t));
                t
            }
        };
        self.records.push(ProducerRecord {
            topic,
            partition: record.partition,
            key: record.key.map(Bytes::copy_from_slice),
            value: record.value.map(Bytes::copy_from_slice),
            timestamp: Some(record.timestamp),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| Header { key: k.clone(), value: Some(Bytes::copy_from_slice(v)) })
                .collect(),
        });
        Ok(())
    }
}

/// The topic a producer error is about; the topics being written when the
/// error does not say.
fn failed_topic(error: &runnel_core::Error, topics: &[Arc<str>]) -> String {
    use runnel_core::Error;
    match error {
        Error::UnknownTopic(topic)
        | Error::MessageTooLarge { topic, .. }
        | Error::SendFailed { topic, .. } => topic.clone(),
        Error::UnknownPartition(tp) | Error::PartitionOffline { partition: tp, .. } => tp.topic.to_string(),
        _ => topics.iter().map(|t| &**t).collect::<Vec<_>>().join(", "),
    }
}

/// A stream thread's producer and the deliveries it has not confirmed.
pub(crate) struct OutputSender {
    producer: Producer,
    in_flight: VecDeque<Delivery>,
    /// Highest offset confirmed per partition since the last commit. A
    /// thread writes a handful of partitions; deliveries of one topic share
    /// the producer's topic name, so a pointer comparison finds the entry.
    confirmed: Vec<(Arc<str>, i32, i64)>,
}

impl OutputSender {
    pub(crate) fn new(producer: Producer) -> Self {
        OutputSender { producer, in_flight: VecDeque::new(), confirmed: Vec::new() }
    }

    /// Hands every pending record to the producer at once, waiting for old
    /// deliveries when the window is full.
    pub(crate) async fn send_pending(&mut self, pending: &mut PendingOutput) -> Result<(), StreamsError> {
        if pending.records.is_empty() {
            return Ok(());
        }
        let deliveries = self.producer.enqueue_many(&mut pending.records).await.map_err(|source| {
            StreamsError::Send { topic: failed_topic(&source, &pending.topics), source: Box::new(source) }
        })?;
        pending.records.clear();
        self.in_flight.extend(deliveries);
        while self.in_flight.len() > MAX_IN_FLIGHT {
            let oldest = self.in_flight.pop_front().expect("window is not empty");
            self.confirm(oldest).await?;
        }
        Ok(())
    }

    async fn confirm(&mut self, delivery: Delivery) -> Result<RecordMetadata, StreamsError> {
        let meta = delivery.wait().await.map_err(|source| StreamsError::Send {
            topic: "(delivery)".to_string(),
            source: Box::new(source),
        })?;
        let same = |(t, p, _): &&mut (Arc<str>, i32, i64)| {
            *p == meta.partition && (Arc::ptr_eq(t, &meta.topic) || **t == *meta.topic)
        };
        match self.confirmed.iter_mut().find(same) {
            Some((_, _, end)) => *end = (*end).max(meta.offset),
            None => self.confirmed.push((Arc::clone(&meta.topic), meta.partition, meta.offset)),
        }
        Ok(meta)
    }

    /// Waits until every record handed over so far is stored; returns the
    /// last stored offset per partition written since the previous call.
    pub(crate) async fn flush(&mut self) -> Result<HashMap<(Arc<str>, i32), i64>, StreamsError> {
        self.producer.flush().await.map_err(|source| StreamsError::Send {
            topic: "(flush)".to_string(),
            source: Box::new(source),
        })?;
        while let Some(delivery) = self.in_flight.pop_front() {
            self.confirm(delivery).await?;
        }
        Ok(self.confirmed.drain(..).map(|(t, p, o)| ((t, p), o)).collect())
    }

    pub(crate) async fn close(self) -> Result<(), StreamsError> {
        self.producer
            .close()
            .await
            .map_err(|source| StreamsError::Send { topic: "(close)".to_string(), source: Box::new(source) })
    }
}
