//! The runtime's [`RecordCollector`]: sink output goes to a real producer.
//!
//! Processors run synchronously, the producer is async, so the collector
//! copies each record into a pending list that the stream thread hands to
//! the producer once per turn, in one call. Deliveries are
//! kept in a bounded window; a commit waits for all of them, so offsets are
//! committed only for input whose output is stored (at-least-once).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
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
    /// The turn's key and value bytes, one buffer the records slice: one
    /// allocation per turn instead of two per record. Once the turn's
    /// records are in the producer's batches nothing else holds it, and
    /// the next turn writes over it again (memory already mapped and
    /// cached, where a fresh buffer per turn cost page faults).
    arena: BytesMut,
    /// Bytes the previous turn used: the size of the next buffer.
    last_turn_bytes: usize,
}

impl PendingOutput {
    /// Copies `bytes` into the arena and returns them as a slice of it.
    fn stash(&mut self, bytes: &[u8]) -> Bytes {
        if self.arena.capacity() < bytes.len() {
            // Room for a turn like the previous one: the buffer itself
            // again when no record holds a slice of it any more, else a
            // new one.
            let size = self.last_turn_bytes.clamp(ARENA_MIN, ARENA_MAX).max(bytes.len());
            self.arena.reserve(size);
        }
        self.arena.extend_from_slice(bytes);
        self.arena.split().freeze()
    }

    /// Takes the turn's records, leaving `spare` (empty) in their place.
    fn take_turn(&mut self, spare: Vec<ProducerRecord>) -> Vec<ProducerRecord> {
        self.last_turn_bytes = self
            .records
            .iter()
            .map(|r| r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        std::mem::replace(&mut self.records, spare)
    }
}

/// Bounds of an output arena's size.
const ARENA_MIN: usize = 4 * 1024;
const ARENA_MAX: usize = 1024 * 1024;

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
        let key = record.key.map(|k| self.stash(k));
        let value = record.value.map(|v| self.stash(v));
        self.records.push(ProducerRecord {
            topic,
            partition: record.partition,
            key,
            value,
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

/// The last stored offset per output partition since the previous flush.
type Confirmed = HashMap<(Arc<str>, i32), i64>;

/// A stream thread's producer and the deliveries it has not confirmed.
///
/// The hand-off runs on the stream thread. Running it on a thread of its
/// own was measured (issue 5's benchmark, 2 cores): one stream thread got
/// faster, but two stream threads then competed with two output threads,
/// and scaling from one thread to two fell from ~1.9x to 1.3–1.6x.
pub(crate) struct OutputSender {
    producer: Producer,
    in_flight: VecDeque<Delivery>,
    /// Highest offset confirmed per partition since the last flush. A
    /// thread writes a handful of partitions; deliveries of one topic share
    /// the producer's topic name, so a pointer comparison finds the entry.
    confirmed: Vec<(Arc<str>, i32, i64)>,
    /// The emptied record list of the previous turn, for reuse.
    spare: Vec<ProducerRecord>,
}

impl OutputSender {
    pub(crate) fn new(producer: Producer) -> Self {
        OutputSender { producer, in_flight: VecDeque::new(), confirmed: Vec::new(), spare: Vec::new() }
    }

    /// Hands every pending record to the producer at once, waiting for old
    /// deliveries when the window is full.
    pub(crate) async fn send_pending(&mut self, pending: &mut PendingOutput) -> Result<(), StreamsError> {
        if pending.records.is_empty() {
            return Ok(());
        }
        let spare = std::mem::take(&mut self.spare);
        let mut records = pending.take_turn(spare);
        let sent = self.producer.enqueue_many(&mut records).await.map_err(|source| StreamsError::Send {
            topic: failed_topic(&source, &pending.topics),
            source: Box::new(source),
        });
        records.clear();
        self.spare = records;
        self.in_flight.extend(sent?);
        while self.in_flight.len() > MAX_IN_FLIGHT {
            let oldest = self.in_flight.pop_front().expect("window is not empty");
            self.confirm(oldest).await?;
        }
        Ok(())
    }

    async fn confirm(&mut self, delivery: Delivery) -> Result<RecordMetadata, StreamsError> {
        let meta = delivery.wait().await.map_err(|source| StreamsError::Send {
            topic: failed_topic(&source, &[]),
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
    pub(crate) async fn flush(&mut self) -> Result<Confirmed, StreamsError> {
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
