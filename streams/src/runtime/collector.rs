//! The runtime's [`RecordCollector`]: sink output goes to a real producer.
//!
//! Processors run synchronously, the producer is async, so the collector
//! copies each record into a pending list that the stream thread hands, once
//! per turn, to an output thread that feeds the producer. Deliveries are
//! kept in a bounded window; a commit waits for all of them, so offsets are
//! committed only for input whose output is stored (at-least-once).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

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
    /// allocation per turn instead of two per record, released by the
    /// output thread when the turn's records are in the producer's batches.
    arena: BytesMut,
    /// Bytes the previous turn used: the size of the next arena.
    last_turn_bytes: usize,
}

impl PendingOutput {
    /// Copies `bytes` into the arena and returns them as a slice of it.
    fn stash(&mut self, bytes: &[u8]) -> Bytes {
        if self.arena.capacity() < bytes.len() {
            // A fresh buffer: each turn's records own their buffers, so
            // the output thread never shares one with the stream thread.
            let size = self.last_turn_bytes.clamp(ARENA_MIN, ARENA_MAX).max(bytes.len());
            self.arena = BytesMut::with_capacity(size);
        }
        self.arena.extend_from_slice(bytes);
        self.arena.split().freeze()
    }

    /// Takes the turn's records, leaving `spare` (empty) in their place,
    /// and starts the next turn in a new buffer.
    fn take_turn(&mut self, spare: Vec<ProducerRecord>) -> Vec<ProducerRecord> {
        self.last_turn_bytes = self
            .records
            .iter()
            .map(|r| r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        self.arena = BytesMut::new();
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

/// What a stream thread asks of its output thread.
enum OutputCommand {
    /// Hand these records to the producer.
    Send(Vec<ProducerRecord>),
    /// Wait until everything handed over is stored; reply with the last
    /// stored offset per partition since the previous flush.
    Flush(oneshot::Sender<Result<Confirmed, StreamsError>>),
    /// Flush, then close the producer.
    Close(oneshot::Sender<Result<(), StreamsError>>),
}

/// Turns' outputs queued for the output thread before a stream thread
/// waits: bounds memory and passes the producer's backpressure back.
const QUEUED_TURNS: usize = 4;

/// The largest record list kept for reuse.
const MAX_SPARE_CAPACITY: usize = 16 * 1024;

/// A stream thread's output: records go to a producer on a thread of their
/// own, so batching and encoding run beside processing instead of in turn
/// with it. Records keep their order (one queue, one thread); a failure is
/// reported by the next send or flush.
pub(crate) struct OutputSender {
    commands: mpsc::Sender<OutputCommand>,
    /// Set by the output thread when a send failed; the error itself comes
    /// with the next flush.
    failed: Arc<AtomicBool>,
    /// Record lists the output thread has emptied, for reuse (at most
    /// [`QUEUED_TURNS`] + 1 of them exist).
    spare: Arc<Mutex<Vec<Vec<ProducerRecord>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OutputSender {
    /// Starts the output thread for `producer`, named after the stream
    /// thread.
    pub(crate) fn start(producer: Producer, name: &str) -> Result<Self, StreamsError> {
        let (commands, rx) = mpsc::channel(QUEUED_TURNS);
        let failed = Arc::new(AtomicBool::new(false));
        let spare = Arc::new(Mutex::new(Vec::new()));
        let worker = OutputWorker {
            spare: Arc::clone(&spare),
            producer,
            in_flight: VecDeque::new(),
            confirmed: Vec::new(),
            error: None,
            failed: Arc::clone(&failed),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StreamsError::Runtime { reason: format!("output thread runtime: {e}") })?;
        let thread = std::thread::Builder::new()
            .name(format!("{name}-output"))
            .spawn(move || runtime.block_on(worker.run(rx)))
            .map_err(|e| StreamsError::Runtime { reason: format!("start output thread: {e}") })?;
        Ok(OutputSender { commands, failed, spare, thread: Some(thread) })
    }

    fn stopped() -> StreamsError {
        StreamsError::Runtime { reason: "the output thread stopped".to_string() }
    }

    /// Hands every pending record to the output thread at once; waits only
    /// when [`QUEUED_TURNS`] hand-offs are already queued.
    pub(crate) async fn send_pending(&mut self, pending: &mut PendingOutput) -> Result<(), StreamsError> {
        if pending.records.is_empty() {
            return Ok(());
        }
        if self.failed.load(Ordering::Acquire) {
            // Surface the send error now rather than at the next commit.
            self.flush().await?;
        }
        // An emptied list the output thread gave back, else a new one.
        let spare = self.spare.lock().expect("spare lists lock").pop();
        let spare = spare.unwrap_or_else(|| Vec::with_capacity(pending.records.len()));
        let records = pending.take_turn(spare);
        self.commands.send(OutputCommand::Send(records)).await.map_err(|_| Self::stopped())
    }

    /// Waits until every record handed over so far is stored; returns the
    /// last stored offset per partition written since the previous call.
    pub(crate) async fn flush(&mut self) -> Result<Confirmed, StreamsError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(OutputCommand::Flush(tx)).await.map_err(|_| Self::stopped())?;
        rx.await.map_err(|_| Self::stopped())?
    }

    pub(crate) async fn close(mut self) -> Result<(), StreamsError> {
        let (tx, rx) = oneshot::channel();
        let result = match self.commands.send(OutputCommand::Close(tx)).await {
            Ok(()) => rx.await.map_err(|_| Self::stopped()).and_then(|r| r),
            Err(_) => Err(Self::stopped()),
        };
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        result
    }
}

/// The output thread's state: the producer and the deliveries it has not
/// confirmed.
struct OutputWorker {
    producer: Producer,
    in_flight: VecDeque<Delivery>,
    /// Highest offset confirmed per partition since the last flush. A
    /// thread writes a handful of partitions; deliveries of one topic share
    /// the producer's topic name, so a pointer comparison finds the entry.
    confirmed: Vec<(Arc<str>, i32, i64)>,
    /// The first failure, held for the next flush.
    error: Option<StreamsError>,
    failed: Arc<AtomicBool>,
    spare: Arc<Mutex<Vec<Vec<ProducerRecord>>>>,
}

impl OutputWorker {
    async fn run(mut self, mut commands: mpsc::Receiver<OutputCommand>) {
        while let Some(command) = commands.recv().await {
            match command {
                OutputCommand::Send(mut records) => {
                    if self.error.is_some() {
                        continue; // nothing more goes out after a failure
                    }
                    if let Err(e) = self.send(&mut records).await {
                        self.error = Some(e);
                        self.failed.store(true, Ordering::Release);
                    }
                    // Lists grown by an unusually large turn are not kept.
                    if records.capacity() <= MAX_SPARE_CAPACITY {
                        records.clear();
                        self.spare.lock().expect("spare lists lock").push(records);
                    }
                }
                OutputCommand::Flush(reply) => {
                    let _ = reply.send(self.flush().await);
                }
                OutputCommand::Close(reply) => {
                    let flushed = self.flush().await.map(|_| ());
                    let closed = self.producer.close().await.map_err(|source| StreamsError::Send {
                        topic: "(close)".to_string(),
                        source: Box::new(source),
                    });
                    let _ = reply.send(flushed.and(closed));
                    return;
                }
            }
        }
    }

    async fn send(&mut self, records: &mut Vec<ProducerRecord>) -> Result<(), StreamsError> {
        let topics: Vec<Arc<str>> = match records.first() {
            Some(r) => vec![Arc::clone(&r.topic)],
            None => return Ok(()),
        };
        let deliveries = self.producer.enqueue_many(records).await.map_err(|source| StreamsError::Send {
            topic: failed_topic(&source, &topics),
            source: Box::new(source),
        })?;
        self.in_flight.extend(deliveries);
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

    async fn flush(&mut self) -> Result<Confirmed, StreamsError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.producer.flush().await.map_err(|source| StreamsError::Send {
            topic: "(flush)".to_string(),
            source: Box::new(source),
        })?;
        while let Some(delivery) = self.in_flight.pop_front() {
            self.confirm(delivery).await?;
        }
        Ok(self.confirmed.drain(..).map(|(t, p, o)| ((t, p), o)).collect())
    }
}
