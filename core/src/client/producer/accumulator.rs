//! Batches records per partition and hands them to one sender thread.
//!
//! Memory: every accepted record holds its estimated encoded size in a
//! semaphore of `buffer.memory` permits until its batch is appended, so the
//! bytes waiting in the accumulator never exceed the bound and `enqueue`
//! waits (up to `max.block.ms`) when it is reached.
//!
//! Ordering: batches are sealed in a FIFO and appended by a single thread,
//! so records of one partition reach the log in the order they were
//! accepted. Completion sequence numbers follow the same FIFO, which is what
//! `flush` waits on.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, Semaphore};
use tracing::{debug, warn};

use super::super::embedded::EmbeddedCluster;
use super::super::{ProducerConfig, ProducerRecord};
use super::Delivery;
use crate::client::record::estimated_size;
use crate::log::Log;
use crate::record::partition_for_key;
use crate::record::RecordBatchBuilder;
use crate::time::{Clock, SystemClock};
use crate::topic::TopicPartition;
use crate::{Error, Result};

/// What a stored batch reports back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchAck {
    pub(crate) base_offset: i64,
    pub(crate) log_append_time: Option<i64>,
}

/// The shared outcome of one batch, awaited by every record in it. It also
/// carries the topic and partition, so a record's `Delivery` holds one
/// pointer rather than touching a shared topic name per record.
#[derive(Debug)]
pub(crate) struct BatchCompletion {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    outcome: OnceLock<std::result::Result<BatchAck, Arc<Error>>>,
    notify: Notify,
}

impl BatchCompletion {
    fn new(topic: Arc<str>, partition: i32) -> Self {
        BatchCompletion { topic, partition, outcome: OnceLock::new(), notify: Notify::new() }
    }

    fn complete(&self, outcome: std::result::Result<BatchAck, Arc<Error>>) {
        let _ = self.outcome.set(outcome);
        self.notify.notify_waiters();
    }

    pub(crate) async fn wait(&self) -> std::result::Result<BatchAck, Arc<Error>> {
        if let Some(outcome) = self.outcome.get() {
            return outcome.clone();
        }
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = self.outcome.get() {
                return outcome.clone();
            }
            notified.await;
        }
    }
}

#[derive(Debug)]
struct OpenBatch {
    builder: RecordBatchBuilder,
    created: Instant,
    completion: Arc<BatchCompletion>,
    reserved: usize,
}

#[derive(Debug)]
struct TopicState {
    name: Arc<str>,
    logs: Vec<std::result::Result<Arc<Log>, String>>,
    sticky: i32,
    /// Bytes sent directly to the sticky partition since it was chosen.
    sticky_bytes: usize,
    open: Vec<Option<OpenBatch>>,
}

#[derive(Debug)]
struct Sealed {
    topic: Arc<str>,
    partition: i32,
    log: Arc<Log>,
    batch: OpenBatch,
    seq: u64,
}

/// The topic map's hash: multiply-rotate over eight bytes a step (the
/// scheme of rustc's `FxHasher`), its 128-bit product folded at the end so
/// every input bit reaches the bucket bits. Topic names are trusted, so
/// SipHash's DoS resistance buys nothing on this per-record lookup, and
/// they are not always short: a Streams app's changelog and repartition
/// names run to 60–80 bytes, which the byte-at-a-time FNV-1a this replaces
/// walked with one dependent multiply per byte (a tenth of a stream
/// thread's time in the join benchmark).
#[derive(Debug, Default, Clone, Copy)]
struct TopicHasher(u64);

const TOPIC_HASH_SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl TopicHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(TOPIC_HASH_SEED);
    }
}

impl std::hash::Hasher for TopicHasher {
    fn finish(&self) -> u64 {
        let product = u128::from(self.0) * u128::from(TOPIC_HASH_SEED);
        (product as u64) ^ ((product >> 64) as u64)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        let tail = if rest.is_empty() {
            0
        } else if bytes.len() >= 8 {
            // The last eight bytes, overlapping words already added: one
            // load, where assembling the tail byte by byte cost a copy.
            u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().expect("eight bytes"))
        } else {
            rest.iter().rev().fold(0, |w, b| (w << 8) | u64::from(*b))
        };
        // The length goes in with the tail, so "a" and "a\0" differ.
        self.add(tail ^ ((bytes.len() as u64) << 56));
    }
}

type TopicHash = std::hash::BuildHasherDefault<TopicHasher>;

/// Where an append notes its record's delivery.
trait NoteDelivery {
    /// A record appended to `batch` at `index`.
    fn appended(&mut self, batch: &Arc<BatchCompletion>, index: u32, timestamp: i64);
    /// A record with a delivery of its own (appended directly).
    fn push(&mut self, delivery: Delivery);
}

/// The deliveries of one enqueue call: one per batch its records went
/// into, standing for all of that batch's records of the call.
#[derive(Debug, Default)]
struct Deliveries(Vec<Delivery>);

impl NoteDelivery for Deliveries {
    /// A batch already noted in this call has its delivery advanced in
    /// place: no new handle on the batch per record (an atomic count the
    /// sender thread shares, which showed in the profile of every
    /// producing stream thread).
    fn appended(&mut self, batch: &Arc<BatchCompletion>, index: u32, timestamp: i64) {
        match self.0.iter_mut().rev().find(|d| d.is_batch(batch)) {
            Some(delivery) => delivery.advance(index, timestamp),
            None => self.0.push(Delivery::embedded(Arc::clone(batch), index, timestamp)),
        }
    }

    fn push(&mut self, delivery: Delivery) {
        self.0.push(delivery);
    }
}

/// One record's delivery (`enqueue`): no list to allocate.
impl NoteDelivery for Option<Delivery> {
    fn appended(&mut self, batch: &Arc<BatchCompletion>, index: u32, timestamp: i64) {
        *self = Some(Delivery::embedded(Arc::clone(batch), index, timestamp));
    }

    fn push(&mut self, delivery: Delivery) {
        *self = Some(delivery);
    }
}

#[derive(Debug, Default)]
struct State {
    epoch: u64,
    topics: HashMap<Arc<str>, TopicState, TopicHash>,
    ready: VecDeque<Sealed>,
    sealed_seq: u64,
    shutdown: bool,
    rng: u64,
    /// Batches failed without being sent, whose memory the sender releases.
    orphaned: Vec<OpenBatch>,
    /// The sender is appending batches it took from `ready`.
    sending: bool,
    /// Start of the current one-millisecond window and records counted in it.
    window_start: Option<Instant>,
    window_records: u32,
}

/// A random online partition other than `current` (or `current` itself when
/// it is the only online one); `-1` when none is online.
fn pick_sticky(logs: &[std::result::Result<Arc<Log>, String>], current: i32, random: u64) -> i32 {
    let online: Vec<i32> =
        (0..logs.len() as i32).filter(|&p| logs[p as usize].is_ok() && p != current).collect();
    if online.is_empty() {
        return if logs.get(current as usize).is_some_and(|l| l.is_ok()) { current } else { -1 };
    }
    online[(random % online.len() as u64) as usize]
}

impl State {
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Moves a partition's open batch to the ready queue and, if it was the
    /// sticky partition for keyless records, picks another one.
    fn seal(&mut self, topic: &Arc<str>, partition: i32) {
        let random = self.next_random();
        let Some(state) = self.topics.get_mut(topic) else { return };
        let Some(batch) = state.open.get_mut(partition as usize).and_then(Option::take) else { return };
        let Some(Ok(log)) = state.logs.get(partition as usize).cloned() else {
            // The partition went away under the batch (its topic was re-created smaller).
            let tp = TopicPartition::new(topic.to_string(), partition);
            batch.completion.complete(Err(Arc::new(Error::UnknownPartition(tp))));
            self.orphaned.push(batch);
            return;
        };
        if state.sticky == partition {
            state.sticky = pick_sticky(&state.logs, partition, random);
        }
        self.sealed_seq += 1;
        let seq = self.sealed_seq;
        self.ready.push_back(Sealed { topic: topic.clone(), partition, log, batch, seq });
    }

    fn seal_all(&mut self) {
        let open: Vec<(Arc<str>, i32)> = self
            .topics
            .values()
            .flat_map(|t| {
                t.open
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.is_some())
                    .map(|(p, _)| (t.name.clone(), p as i32))
            })
            .collect();
        for (topic, p) in open {
            self.seal(&topic, p);
        }
    }

    /// Seals batches older than `linger`; returns the earliest deadline of
    /// those still open.
    fn seal_expired(&mut self, linger: Duration, now: Instant) -> Option<Instant> {
        let mut expired = Vec::new();
        let mut next: Option<Instant> = None;
        for t in self.topics.values() {
            for (p, b) in t.open.iter().enumerate() {
                if let Some(b) = b {
                    let deadline = b.created + linger;
                    if deadline <= now {
                        expired.push((t.name.clone(), p as i32));
                    } else {
                        next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
                    }
                }
            }
        }
        for (topic, p) in expired {
            self.seal(&topic, p);
        }
        next
    }
}

/// Encodes a batch and appends it to its partition's log.
fn store_batch(
    builder: RecordBatchBuilder,
    log: &Log,
    topic: &str,
    partition: i32,
) -> std::result::Result<BatchAck, Arc<Error>> {
    let stored = builder
        .into_batch(0)
        .map_err(|e| Error::InvalidBatch {
            partition: TopicPartition::new(topic.to_string(), partition),
            position: 0,
            source: e,
        })
        .and_then(|mut bytes| log.append_own(&mut bytes));
    match stored {
        Ok(info) => Ok(BatchAck { base_offset: info.first_offset, log_append_time: info.log_append_time }),
        Err(e) => {
            warn!(topic, partition, error = %e, "producer batch failed");
            Err(Arc::new(e))
        }
    }
}

/// The producer's shared core: accumulator state, memory bound, sender.
#[derive(Debug)]
pub(crate) struct Accumulator {
    cluster: Arc<EmbeddedCluster>,
    config: ProducerConfig,
    memory: Semaphore,
    state: Mutex<State>,
    wake: Condvar,
    completed: watch::Sender<u64>,
    closed: AtomicBool,
    sender: Mutex<Option<JoinHandle<()>>>,
}

impl Accumulator {
    pub(crate) fn start(cluster: Arc<EmbeddedCluster>, config: ProducerConfig) -> Result<Arc<Accumulator>> {
        let seed = SystemClock.now_ms() as u64 ^ (Arc::as_ptr(&cluster) as u64);
        let acc = Arc::new(Accumulator {
            memory: Semaphore::new(config.buffer_memory),
            config,
            cluster,
            state: Mutex::new(State { rng: seed, ..State::default() }),
            wake: Condvar::new(),
            completed: watch::Sender::new(0),
            closed: AtomicBool::new(false),
            sender: Mutex::new(None),
        });
        let worker = acc.clone();
        let handle = std::thread::Builder::new()
            .name(format!("runnel-producer-{}", acc.config.client_id))
            .spawn(move || worker.run_sender())
            .map_err(|e| Error::Io { op: "spawn producer sender", path: Default::default(), source: e })?;
        *acc.sender.lock().expect("sender lock") = Some(handle);
        Ok(acc)
    }

    async fn reserve(&self, bytes: usize) -> Result<()> {
        let acquired = match self.memory.try_acquire_many(bytes as u32) {
            Ok(permit) => Ok(permit),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Error::Closed("producer".into())),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let wait = Duration::from_millis(self.config.max_block_ms);
                match tokio::time::timeout(wait, self.memory.acquire_many(bytes as u32)).await {
                    Ok(permit) => permit.map_err(|_| Error::Closed("producer".into())),
                    Err(_) => {
                        return Err(Error::Timeout {
                            what: "producer buffer memory",
                            ms: self.config.max_block_ms,
                        })
                    }
                }
            }
        };
        // Released by the sender thread once the batch is appended.
        acquired?.forget();
        Ok(())
    }

    pub(crate) async fn enqueue(&self, record: ProducerRecord) -> Result<Delivery> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("producer".into()));
        }
        let size = estimated_size(&record);
        let limit = self.config.max_request_size;
        if size > limit {
            return Err(Error::MessageTooLarge {
                topic: record.topic.to_string(),
                size,
                limit,
                setting: "max.request.size",
            });
        }
        self.reserve(size).await?;
        match self.append(record, size) {
            Ok(delivery) => Ok(delivery),
            Err(e) => {
                self.memory.add_permits(size);
                Err(e)
            }
        }
    }

    /// Refreshes the cached partitions of `topic` when the cluster's
    /// metadata changed (or it is not cached yet).
    fn topic_state<'s>(&self, state: &'s mut State, topic: &str) -> Result<&'s mut TopicState> {
        let broker = self.cluster.broker();
        let epoch = broker.metadata_epoch();
        if epoch != state.epoch {
            // Keep open batches of partitions that still exist; drop the cache.
            state.epoch = epoch;
            let names: Vec<Arc<str>> = state.topics.keys().cloned().collect();
            for name in names {
                match broker.partition_logs(&name) {
                    Ok(logs) => {
                        let random = state.next_random();
                        let t = state.topics.get_mut(&name).expect("listed");
                        t.open.resize_with(logs.len().max(t.open.len()), || None);
                        t.logs = logs;
                        if t.logs.get(t.sticky as usize).is_none_or(|l| l.is_err()) {
                            t.sticky = pick_sticky(&t.logs, t.sticky, random);
                        }
                    }
                    Err(_) => {
                        // The topic is gone: fail what was waiting for it.
                        let t = state.topics.remove(&name).expect("listed");
                        for batch in t.open.into_iter().flatten() {
                            batch.completion.complete(Err(Arc::new(Error::UnknownTopic(name.to_string()))));
                            self.memory.add_permits(batch.reserved);
                        }
                    }
                }
            }
        }
        if !state.topics.contains_key(topic) {
            if crate::broker::is_internal(topic) {
                return Err(Error::InvalidTopicName {
                    name: topic.to_string(),
                    reason: "is an internal topic; clients cannot write to it".into(),
                });
            }
            broker.ensure_topic(topic)?;
            let logs = broker.partition_logs(topic)?;
            let name: Arc<str> = Arc::from(topic);
            let n = logs.len();
            let sticky = pick_sticky(&logs, -1, state.next_random());
            state.epoch = broker.metadata_epoch();
            state.topics.insert(
                name.clone(),
                TopicState { name, logs, sticky, sticky_bytes: 0, open: (0..n).map(|_| None).collect() },
            );
        }
        Ok(state.topics.get_mut(topic).expect("just ensured"))
    }

    /// Accepts `records` with one memory reservation and one lock for all
    /// of them, and returns one [`Delivery`] per batch they went into: that
    /// of the batch's last record of this call (records of one batch share
    /// its outcome). `records` is left empty.
    ///
    /// When the records do not fit the free memory at once, they are
    /// enqueued one by one (waiting for memory as [`Self::enqueue`] does).
    /// On an error, the records before the failing one are accepted and will
    /// be sent; it and those after it are not.
    pub(crate) async fn enqueue_many(&self, records: &mut Vec<ProducerRecord>) -> Result<Vec<Delivery>> {
        if self.closed.load(Ordering::Acquire) {
            records.clear();
            return Err(Error::Closed("producer".into()));
        }
        let mut sizes = Vec::with_capacity(records.len());
        let limit = self.config.max_request_size;
        for record in records.iter() {
            let size = estimated_size(record);
            if size > limit {
                let topic = record.topic.to_string();
                records.clear();
                return Err(Error::MessageTooLarge { topic, size, limit, setting: "max.request.size" });
            }
            sizes.push(size);
        }
        let total: usize = sizes.iter().sum();
        let reserved = u32::try_from(total).ok().and_then(|n| self.memory.try_acquire_many(n).ok());
        let Some(permit) = reserved else {
            let mut deliveries = Vec::with_capacity(records.len());
            for record in records.drain(..) {
                deliveries.push(self.enqueue(record).await?);
            }
            return Ok(deliveries);
        };
        // Released by the sender thread as the batches are appended.
        permit.forget();
        let mut deliveries = Deliveries::default();
        let mut state = self.state.lock().expect("producer state lock");
        let mut accepted = 0;
        let mut failure = None;
        // One clock reading for the call: records without a timestamp are
        // sent at the same moment.
        let now = SystemClock.now_ms();
        for (mut record, &size) in records.drain(..).zip(&sizes) {
            record.timestamp.get_or_insert(now);
            match self.append_locked(&mut state, record, size, &mut deliveries) {
                Ok(()) => accepted += size,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(state);
        if let Some(e) = failure {
            self.memory.add_permits(total - accepted);
            return Err(e);
        }
        Ok(deliveries.0)
    }

    fn append(&self, record: ProducerRecord, size: usize) -> Result<Delivery> {
        let mut state = self.state.lock().expect("producer state lock");
        let mut delivery = None;
        self.append_locked(&mut state, record, size, &mut delivery)?;
        Ok(delivery.expect("an appended record has its delivery"))
    }

    /// Appends `record` and notes it in `deliveries`.
    fn append_locked<D: NoteDelivery>(
        &self,
        state: &mut State,
        record: ProducerRecord,
        size: usize,
        deliveries: &mut D,
    ) -> Result<()> {
        let timestamp = record.timestamp.unwrap_or_else(|| SystemClock.now_ms());
        if state.shutdown {
            return Err(Error::Closed("producer".into()));
        }
        let batch_size = self.config.batch_size;
        let t = self.topic_state(state, &record.topic)?;
        let n = t.logs.len() as i32;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, n),
            (None, None) => t.sticky,
        };
        let tp = || TopicPartition::new(record.topic.to_string(), partition);
        if partition < 0 && record.partition.is_none() && record.key.is_none() {
            let reason = "no partition of the topic is online".to_string();
            return Err(Error::PartitionOffline { partition: tp(), reason });
        }
        if partition < 0 || partition >= n {
            return Err(Error::UnknownPartition(tp()));
        }
        if let Err(reason) = &t.logs[partition as usize] {
            return Err(Error::PartitionOffline { partition: tp(), reason: reason.clone() });
        }
        if self.config.linger_ms == 0 {
            let topic = t.name.clone();
            if let Some(completion) = self.try_direct(state, &topic, partition, &record, timestamp, size) {
                deliveries.push(Delivery::embedded(completion, 0, timestamp));
                return Ok(());
            }
            return self.append_to_batch(state, &topic, partition, record, timestamp, size, deliveries);
        }
        // The common case — the open batch has room — touches the topic's
        // entry once; sealing a full batch looks it up again.
        let full = t.open[partition as usize]
            .as_ref()
            .is_some_and(|b| !b.builder.is_empty() && b.builder.estimated_size() + size > batch_size);
        if full {
            let topic = t.name.clone();
            return self.append_to_batch(state, &topic, partition, record, timestamp, size, deliveries);
        }
        let (now_full, created) = self.append_open(t, partition, &record, timestamp, size, deliveries);
        if now_full {
            let topic = t.name.clone();
            state.seal(&topic, partition);
        }
        if now_full || created {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Appends to the partition's batch, sealing it first when the record
    /// does not fit.
    #[allow(clippy::too_many_arguments, reason = "the record's coordinates, resolved once by the caller")]
    fn append_to_batch<D: NoteDelivery>(
        &self,
        state: &mut State,
        topic: &Arc<str>,
        partition: i32,
        record: ProducerRecord,
        timestamp: i64,
        size: usize,
        deliveries: &mut D,
    ) -> Result<()> {
        let batch_size = self.config.batch_size;
        let full = state.topics[topic].open[partition as usize]
            .as_ref()
            .is_some_and(|b| !b.builder.is_empty() && b.builder.estimated_size() + size > batch_size);
        if full {
            state.seal(topic, partition);
            self.wake.notify_one();
        }
        let t = state.topics.get_mut(topic).expect("present");
        let (now_full, created) = self.append_open(t, partition, &record, timestamp, size, deliveries);
        if now_full {
            state.seal(topic, partition);
        }
        if now_full || created || self.config.linger_ms == 0 {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Appends to the partition's open batch (opening one if none is) and
    /// notes the record in `deliveries`; returns whether the batch is now
    /// full, and whether it was just opened.
    fn append_open<D: NoteDelivery>(
        &self,
        t: &mut TopicState,
        partition: i32,
        record: &ProducerRecord,
        timestamp: i64,
        size: usize,
        deliveries: &mut D,
    ) -> (bool, bool) {
        let batch_size = self.config.batch_size;
        let slot = &mut t.open[partition as usize];
        let created = slot.is_none();
        let batch = slot.get_or_insert_with(|| OpenBatch {
            builder: RecordBatchBuilder::with_capacity(self.config.compression, batch_size.min(1 << 20)),
            created: Instant::now(),
            completion: Arc::new(BatchCompletion::new(t.name.clone(), partition)),
            reserved: 0,
        });
        let index =
            batch.builder.append(timestamp, record.key.as_deref(), record.value.as_deref(), &record.headers);
        batch.reserved += size;
        deliveries.appended(&batch.completion, index as u32, timestamp);
        let now_full = batch.builder.estimated_size() >= batch_size;
        (now_full, created)
    }

    /// At most this many records per millisecond are appended directly;
    /// the rest of the millisecond is batched.
    const DIRECT_PER_MS: u32 = 200;

    /// With `linger.ms=0`, an idle sender, nothing waiting for the partition
    /// and no compression, appends the record here and now instead of
    /// handing it to the sender thread: one less thread hop, so latency does
    /// not depend on waking another thread. At most
    /// [`Self::DIRECT_PER_MS`] records a millisecond go this way; the rest
    /// are batched as usual, where batching is cheaper per record (measured:
    /// linger-0 throughput is the same with and without this path). Logs with a
    /// flush policy are excluded (an fsync must not run on the caller's
    /// task). The state lock is held throughout, so the sender cannot
    /// overtake: per-partition order is kept.
    fn try_direct(
        &self,
        state: &mut State,
        topic: &Arc<str>,
        partition: i32,
        record: &ProducerRecord,
        timestamp: i64,
        size: usize,
    ) -> Option<Arc<BatchCompletion>> {
        if self.config.linger_ms != 0
            || self.config.compression != crate::record::Compression::None
            || state.sending
            || state.shutdown
            || !state.ready.is_empty()
        {
            return None;
        }
        // Count this record in the one-millisecond window; past the budget,
        // the rest of the window is batched.
        let now = Instant::now();
        match state.window_start {
            Some(start) if now.duration_since(start) < Duration::from_millis(1) => {}
            _ => {
                state.window_start = Some(now);
                state.window_records = 0;
            }
        }
        state.window_records += 1;
        if state.window_records > Self::DIRECT_PER_MS {
            return None;
        }
        let t = state.topics.get(topic)?;
        if t.open.get(partition as usize)?.is_some() {
            return None;
        }
        let log = t.logs.get(partition as usize)?.as_ref().ok()?.clone();
        let config = log.config();
        if config.flush_messages.is_some() || config.flush_ms.is_some() {
            return None;
        }
        let mut builder = RecordBatchBuilder::with_capacity(crate::record::Compression::None, size + 64);
        builder.append(timestamp, record.key.as_deref(), record.value.as_deref(), &record.headers);
        let completion = Arc::new(BatchCompletion::new(topic.clone(), partition));
        completion.complete(store_batch(builder, &log, topic, partition));
        self.memory.add_permits(size);
        // Keyless records stick to a partition for about a batch's worth of bytes.
        let random = state.next_random();
        let t = state.topics.get_mut(topic)?;
        if t.sticky == partition && record.key.is_none() && record.partition.is_none() {
            t.sticky_bytes += size;
            if t.sticky_bytes >= self.config.batch_size {
                t.sticky = pick_sticky(&t.logs, partition, random);
                t.sticky_bytes = 0;
            }
        }
        Some(completion)
    }

    /// The sender thread: waits for sealed or expired batches and appends
    /// them in order.
    fn run_sender(self: Arc<Self>) {
        let linger = Duration::from_millis(self.config.linger_ms);
        loop {
            let work: Vec<Sealed> = {
                let mut state = self.state.lock().expect("producer state lock");
                loop {
                    if state.shutdown {
                        state.seal_all();
                    }
                    let next = state.seal_expired(linger, Instant::now());
                    for orphan in std::mem::take(&mut state.orphaned) {
                        self.memory.add_permits(orphan.reserved);
                    }
                    if !state.ready.is_empty() {
                        state.sending = true;
                        break state.ready.drain(..).collect();
                    }
                    if state.shutdown {
                        debug!(client = %self.config.client_id, "producer sender stopped");
                        return;
                    }
                    state = match next {
                        Some(deadline) => {
                            let wait = deadline.saturating_duration_since(Instant::now());
                            self.wake.wait_timeout(state, wait).expect("producer state lock").0
                        }
                        None => self.wake.wait(state).expect("producer state lock"),
                    };
                }
            };
            for sealed in work {
                self.send_batch(sealed);
            }
            self.state.lock().expect("producer state lock").sending = false;
        }
    }

    fn send_batch(&self, sealed: Sealed) {
        let Sealed { topic, partition, log, batch, seq } = sealed;
        let OpenBatch { builder, completion, reserved, .. } = batch;
        completion.complete(store_batch(builder, &log, &topic, partition));
        self.memory.add_permits(reserved);
        self.completed.send_replace(seq);
    }

    pub(crate) async fn flush(&self) -> Result<()> {
        let target = {
            let mut state = self.state.lock().expect("producer state lock");
            state.seal_all();
            state.sealed_seq
        };
        self.wake.notify_one();
        let mut completed = self.completed.subscribe();
        completed.wait_for(|&done| done >= target).await.map_err(|_| Error::Closed("producer".into()))?;
        Ok(())
    }

    pub(crate) async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let flushed = self.flush().await;
        self.shutdown();
        let handle = self.sender.lock().expect("sender lock").take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        flushed
    }

    /// Stops accepting records; the sender sends everything already
    /// accepted, then exits.
    pub(crate) fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.memory.close();
        self.state.lock().expect("producer state lock").shutdown = true;
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::TopicHash;

    #[test]
    fn topic_names_with_a_long_common_prefix_hash_apart_in_the_bucket_bits() {
        // Streams' internal topics share long prefixes and differ anywhere:
        // in the middle (the store name) or only in the last bytes.
        let names: Vec<String> = (0..1_000)
            .flat_map(|i| {
                [
                    format!("app-KSTREAM-JOIN-{i:010}-this-join-store-changelog"),
                    format!("app-KSTREAM-JOIN-0000000004-store-changelog-{i}"),
                ]
            })
            .collect();
        let hashes: std::collections::HashSet<u64> =
            names.iter().map(|n| TopicHash::default().hash_one(n.as_str())).collect();
        assert_eq!(hashes.len(), names.len(), "no two names hash alike");
        // 2000 names in 4096 buckets: a random hash fills ~1550 of them.
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 4095).collect();
        assert!(buckets.len() > 1_300, "{} distinct buckets", buckets.len());
        assert_ne!(
            TopicHash::default().hash_one(b"a".as_slice()),
            TopicHash::default().hash_one(b"a\0".as_slice()),
            "the length counts"
        );
    }
}
