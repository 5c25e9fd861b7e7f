//! Runs one source task: poll → transforms → converters → produce, then
//! store the source offsets (see [`super::offsets`] for how a batch is made
//! exactly-once).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use runnel_core::client::{partition_for_key, Cluster, Consumer, Producer, ProducerRecord};
use runnel_core::record::Header as RawHeader;
use runnel_core::topic::{NewTopic, TopicPartition};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::errors::{Failure, Stage};
use super::offsets::{ensure_topic, OffsetStore, PendingRecords};
use super::status::State;
use super::topics::ActiveTopics;
use super::{transform_class, TaskRuntime};
use crate::data::Value;
use crate::plugin::{
    partition_key, Props, RecordMetadata, SourceMap, SourceRecord, SourceTask, SourceTaskContext, TaskError,
};
use crate::record::ConnectRecord;

pub(crate) struct SourceRunner {
    pub(crate) rt: TaskRuntime,
    pub(crate) task: Box<dyn SourceTask>,
    pub(crate) task_props: Props,
    pub(crate) context: SourceTaskContext,
    pub(crate) storage: Storage,
    pub(crate) cluster: Cluster,
    /// Reads log end offsets for the notes; lent to the batch being stored.
    pub(crate) end_reader: Option<Consumer>,
    pub(crate) partitions: HashMap<String, i32>,
    pub(crate) sticky: u32,
    /// The emptied record list of the last stored batch, filled again by
    /// the next (no fresh megabytes per batch).
    pub(crate) spare: Vec<ProducerRecord>,
}

/// What storing a batch takes, shared with the task that stores it.
#[derive(Clone)]
pub(crate) struct Storage {
    pub(crate) name: Arc<str>,
    pub(crate) task_id: u32,
    pub(crate) topics: ActiveTopics,
    pub(crate) producer: Arc<Producer>,
    pub(crate) offsets: Arc<OffsetStore>,
    /// Whether the cluster is reached over the network (`kafka://`), where
    /// reading log end offsets waits for the broker; embedded, it reads the
    /// logs at once and is called directly.
    pub(crate) remote: bool,
}

/// A polled batch, transformed and converted, waiting to be stored.
struct PreparedBatch {
    records: Vec<SourceRecord>,
    /// The batch's source partitions, in order of first appearance.
    partitions: Vec<Arc<SourceMap>>,
    /// Per record: the index of its source partition.
    pidx: Vec<usize>,
    /// The records to produce, each with its partition set.
    produced: Vec<ProducerRecord>,
    /// The target partitions, with the batch indices of their records in
    /// order and those records as the note lists them.
    targets: Vec<(TopicPartition, Vec<usize>, Vec<u8>)>,
    /// The records dropped by transforms or tolerated errors, as the note
    /// lists them.
    skipped: Vec<u8>,
}

/// A stored batch: its records and where each went (`None`: dropped).
struct StoredBatch {
    records: Vec<SourceRecord>,
    /// The produced list, empty, for reuse.
    produced: Vec<ProducerRecord>,
    stored: Vec<Option<(usize, i64)>>,
    targets: Vec<Placed>,
}

/// A target partition and the batch indices of its records, in order.
type Placed = (TopicPartition, Vec<usize>);

impl SourceRunner {
    pub(crate) async fn run(mut self) {
        let (name, id, status) = (self.rt.name.clone(), self.rt.task_id, self.rt.status.clone());
        status.set_task(&name, id, State::Running, None);
        self.storage.offsets.start_task(&name, id);
        let mut result = self.run_inner().await;
        if result.is_ok() {
            // A clean stop: wait for the last offsets and clear the note.
            result = self
                .storage
                .offsets
                .finish_task(&name, id)
                .await
                .map_err(|e| TaskError::fatal(e.to_string()));
        }
        self.task.stop().await;
        let _ = self.storage.producer.close().await;
        match result {
            Ok(()) => {
                info!(connector = %name, task = id, "source task stopped");
                status.set_task(&name, id, State::Stopped, None)
            }
            Err(e) => {
                tracing::error!(connector = %name, task = id, error = %e, "source task failed");
                status.set_task(&name, id, State::Failed, Some(e.to_string()))
            }
        }
    }

    /// Polls and prepares batch N+1 while batch N is being stored by a task
    /// of its own (so on another thread when one is free); one batch is in
    /// flight at most, so memory stays bounded by two polls. Then hands the
    /// source task batch N's record metadata and commit.
    async fn run_inner(&mut self) -> Result<(), TaskError> {
        self.task.start(&self.task_props, &self.context).await?;
        let cancel = self.rt.cancel.clone();
        let mut in_flight: Option<PreparedBatch> = None;
        loop {
            let stopping = cancel.is_cancelled();
            if stopping || *self.rt.paused.borrow() {
                // Store what was polled before stopping or pausing.
                if let Some(batch) = in_flight.take() {
                    let stored = self.store(batch).await?;
                    self.finish(stored).await?;
                }
                if stopping || !self.rt.wait_while_paused().await {
                    return Ok(());
                }
            }
            let storing = match in_flight.take() {
                Some(batch) => {
                    let storage = self.storage.clone();
                    let mut reader =
                        self.end_reader.take().ok_or_else(|| TaskError::fatal("no log end reader"))?;
                    Some(tokio::spawn(async move {
                        let stored = store(&storage, &mut reader, batch).await;
                        (reader, stored)
                    }))
                }
                None => None,
            };
            let next = poll_and_prepare(
                &self.rt,
                self.task.as_mut(),
                &self.cluster,
                &mut self.partitions,
                &mut self.sticky,
                &mut self.spare,
                &cancel,
            )
            .await;
            if let Some(storing) = storing {
                let (reader, stored) =
                    storing.await.map_err(|e| TaskError::fatal(format!("storing a batch: {e}")))?;
                self.end_reader = Some(reader);
                self.finish(stored?).await?;
            }
            in_flight = next?;
        }
    }

    async fn store(&mut self, batch: PreparedBatch) -> Result<StoredBatch, TaskError> {
        let reader = self.end_reader.as_mut().ok_or_else(|| TaskError::fatal("no log end reader"))?;
        store(&self.storage, reader, batch).await
    }

    /// Hands the task each stored record's metadata, in poll order, then
    /// `commit`.
    async fn finish(&mut self, mut batch: StoredBatch) -> Result<(), TaskError> {
        self.spare = std::mem::take(&mut batch.produced);
        let mut meta = RecordMetadata { topic: String::new(), partition: 0, offset: 0 };
        for (record, stored) in batch.records.iter().zip(&batch.stored) {
            let Some((t, offset)) = stored else {
                continue;
            };
            let tp = &batch.targets[*t].0;
            if meta.topic != tp.topic {
                meta.topic = tp.topic.clone();
            }
            (meta.partition, meta.offset) = (tp.partition, *offset);
            self.task.commit_record(record, &meta)?;
        }
        self.task.commit().await
    }
}

/// Polls the task (retrying retriable errors) and prepares what it
/// returns; `None` when it returned nothing.
async fn poll_and_prepare(
    rt: &TaskRuntime,
    task: &mut dyn SourceTask,
    cluster: &Cluster,
    partition_counts: &mut HashMap<String, i32>,
    sticky: &mut u32,
    spare: &mut Vec<ProducerRecord>,
    cancel: &CancellationToken,
) -> Result<Option<PreparedBatch>, TaskError> {
    let records = {
        let mut backoff = rt.errors.backoff();
        loop {
            match task.poll().await {
                Ok(r) => break r,
                Err(e) => {
                    if !backoff.retry(Stage::TaskPoll, &e, cancel).await {
                        return Err(e);
                    }
                }
            }
        }
    };
    if records.is_empty() {
        return Ok(None);
    }
    // Source partitions in order of first appearance. A source usually
    // repeats the partition (the same `Arc`) of the record before, so that
    // is tried first.
    let mut partitions: Vec<Arc<SourceMap>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut pidx = Vec::with_capacity(records.len());
    for r in &records {
        let i = match pidx.last() {
            Some(&last)
                if Arc::ptr_eq(&partitions[last], &r.source_partition)
                    || partitions[last] == r.source_partition =>
            {
                last
            }
            _ => *index.entry(partition_key(&r.source_partition)).or_insert_with(|| {
                partitions.push(r.source_partition.clone());
                partitions.len() - 1
            }),
        };
        pidx.push(i);
    }
    // Transform, convert and pick partitions; group by target partition.
    *sticky = sticky.wrapping_add(1);
    let mut produced = std::mem::take(spare);
    produced.reserve(records.len());
    // The note's lists are written here, while the offsets are in the cache.
    let mut targets: Vec<(TopicPartition, Vec<usize>, PendingRecords)> = Vec::new();
    let mut skipped = PendingRecords::default();
    let mut last_topic: Option<(Arc<str>, i32)> = None;
    let mut last_target = 0;
    for (i, r) in records.iter().enumerate() {
        let topic = match &last_topic {
            Some((t, _)) if **t == *r.record.topic => Some(t.clone()),
            _ => None,
        };
        let Some(mut pr) = prepare(rt, r, topic).await? else {
            skipped.push(i, pidx[i], &r.source_offset);
            continue;
        };
        let n = match &last_topic {
            Some((t, n)) if Arc::ptr_eq(t, &pr.topic) => *n,
            _ => {
                let n = partition_count(cluster, partition_counts, &pr.topic).await?;
                last_topic = Some((pr.topic.clone(), n));
                n
            }
        };
        let p = match (pr.partition, &pr.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, n),
            (None, None) => ((*sticky as usize + rt.task_id as usize) % n.max(1) as usize) as i32,
        };
        pr.partition = Some(p);
        let same = |(tp, ..): &(TopicPartition, Vec<usize>, PendingRecords)| {
            tp.partition == p && *tp.topic == *pr.topic
        };
        if !targets.get(last_target).is_some_and(same) {
            last_target = match targets.iter().position(same) {
                Some(t) => t,
                None => {
                    let tp = TopicPartition::new(pr.topic.to_string(), p);
                    targets.push((tp, Vec::new(), PendingRecords::default()));
                    targets.len() - 1
                }
            };
        }
        let (_, indices, note) = &mut targets[last_target];
        indices.push(i);
        note.push(i, pidx[i], &r.source_offset);
        produced.push(pr);
    }
    let targets = targets.into_iter().map(|(tp, indices, note)| (tp, indices, note.finish())).collect();
    let skipped = skipped.finish();
    Ok(Some(PreparedBatch { records, partitions, pidx, produced, targets, skipped }))
}

/// The partition count of a topic the task writes to (created if missing),
/// cached.
async fn partition_count(
    cluster: &Cluster,
    counts: &mut HashMap<String, i32>,
    topic: &str,
) -> Result<i32, TaskError> {
    if let Some(n) = counts.get(topic) {
        return Ok(*n);
    }
    let n = match cluster.broker() {
        Some(broker) => {
            broker.ensure_topic(topic).map_err(|e| TaskError::fatal(format!("topic `{topic}`: {e}")))?;
            broker.partition_count(topic).map_err(|e| TaskError::fatal(format!("topic `{topic}`: {e}")))?
        }
        None => ensure_topic(cluster, NewTopic::new(topic, 1))
            .await
            .map_err(|e| TaskError::fatal(e.to_string()))?,
    };
    counts.insert(topic.to_string(), n);
    Ok(n)
}

/// Stores a prepared batch exactly once: writes its note, produces its
/// records and waits for them, then sends its offsets (see
/// [`super::offsets`]).
async fn store(
    storage: &Storage,
    end_reader: &mut Consumer,
    batch: PreparedBatch,
) -> Result<StoredBatch, TaskError> {
    let PreparedBatch { records, partitions, pidx, mut produced, targets, skipped } = batch;
    let (targets, target_notes): (Vec<Placed>, Vec<Vec<u8>>) =
        targets.into_iter().map(|(tp, indices, note)| ((tp, indices), note)).unzip();
    let Storage { name, task_id, topics, producer, offsets, remote } = storage;
    let (name, task_id) = (&**name, *task_id);
    let fatal = |what: &str| {
        let what = what.to_string();
        move |e: runnel_core::Error| TaskError::fatal(format!("{what}: {e}"))
    };
    let store = |e: crate::error::ConnectError| TaskError::fatal(e.to_string());
    // The offsets of each source partition's last record.
    let mut last: Vec<Option<usize>> = vec![None; partitions.len()];
    for (i, p) in pidx.iter().enumerate() {
        last[*p] = Some(i);
    }
    let entries: Vec<(SourceMap, SourceMap)> = partitions
        .iter()
        .zip(&last)
        .filter_map(|(p, i)| Some((SourceMap::clone(p), records[(*i)?].source_offset.to_map())))
        .collect();
    let mut stored: Vec<Option<(usize, i64)>> = vec![None; records.len()];
    if produced.is_empty() {
        // Nothing to produce, so no note: store the offsets and wait.
        offsets.store_offsets(name, task_id, &entries).await.map_err(store)?;
    } else {
        // Write the pending batch, then produce.
        let tps: Vec<TopicPartition> = targets.iter().map(|(tp, _)| tp.clone()).collect();
        let ends = match remote {
            true => super::blocking::off_runtime(|| end_reader.end_offsets(&tps)),
            false => end_reader.end_offsets(&tps),
        }
        .map_err(fatal("reading log end offsets"))?;
        let note_targets: Vec<(TopicPartition, i64, Vec<u8>)> = targets
            .iter()
            .zip(target_notes)
            .map(|((tp, _), list)| (tp.clone(), ends.get(tp).copied().unwrap_or(0), list))
            .collect();
        topics.record(name, targets.iter().map(|(tp, _)| tp.topic.as_str()));
        offsets.write_batch_note(name, task_id, &partitions, &note_targets, &skipped).await.map_err(store)?;
        drop(note_targets);
        let deliveries = producer.enqueue_many(&mut produced).await.map_err(fatal("producing"))?;
        producer.flush().await.map_err(fatal("producing"))?;
        // Each delivery stands for the next `records()` records of its
        // partition, stored at the offsets ending at its own.
        let mut done = vec![0usize; targets.len()];
        for d in deliveries {
            let count = d.records() as usize;
            let m = d.wait().await.map_err(fatal("producing"))?;
            let Some(t) =
                targets.iter().position(|(tp, _)| tp.partition == m.partition && *tp.topic == *m.topic)
            else {
                continue;
            };
            let recs = &targets[t].1;
            let from = done[t].min(recs.len());
            let to = (from + count).min(recs.len());
            for (k, i) in recs[from..to].iter().enumerate() {
                stored[*i] = Some((t, m.offset - (to - from - 1 - k) as i64));
            }
            done[t] = to;
        }
        // The records and the note now give the offsets: they are sent
        // without waiting (the next note waits for them and repeats them).
        offsets.send_batch_offsets(name, task_id, entries).await.map_err(store)?;
    }
    debug!(connector = %name, task = task_id, records = records.len(), "source batch stored");
    Ok(StoredBatch { records, produced, stored, targets })
}

/// A header value as bytes: raw bytes and strings as they are, anything
/// else in its text form.
fn header_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Null => None,
        Value::Bytes(b) => Some(b.clone()),
        Value::String(s) => Some(s.as_bytes().to_vec()),
        other => Some(other.to_string().into_bytes()),
    }
}

/// Waits for the pause flag to clear.
pub(crate) async fn wait_unpaused(paused: &mut watch::Receiver<bool>, cancel: &CancellationToken) -> bool {
    loop {
        if !*paused.borrow_and_update() {
            return true;
        }
        tokio::select! {
            r = paused.changed() => if r.is_err() { return false; },
            _ = cancel.cancelled() => return false,
        }
    }
}

/// Transforms and converts one record; `None` when dropped (filtered or a
/// tolerated failure). `topic` is the record's topic name when the caller
/// already holds it shared.
async fn prepare(
    rt: &TaskRuntime,
    record: &SourceRecord,
    topic: Option<Arc<str>>,
) -> Result<Option<ProducerRecord>, TaskError> {
    let describe = || format!("{:?}", record.record);
    if rt.chain.is_empty() {
        // No transforms: convert the record where it is.
        return convert(rt, &record.record, topic, describe).await;
    }
    let transformed = match rt.chain.apply(record.record.clone()) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => {
            let class = transform_class(&rt.props, &e);
            rt.errors.tolerate(Failure::new(Stage::Transformation, class, &e), None, describe).await?;
            return Ok(None);
        }
    };
    let topic = topic.filter(|t| **t == *transformed.topic);
    convert(rt, &transformed, topic, describe).await
}

async fn convert(
    rt: &TaskRuntime,
    record: &ConnectRecord,
    topic: Option<Arc<str>>,
    describe: impl Fn() -> String,
) -> Result<Option<ProducerRecord>, TaskError> {
    let ConnectRecord {
        topic: name,
        kafka_partition,
        key_schema,
        key,
        value_schema,
        value,
        timestamp,
        headers,
        ..
    } = record;
    let key_bytes = match rt.key_converter.from_connect(name, key_schema.as_ref(), key) {
        Ok(k) => k,
        Err(e) => {
            let class = rt.key_class.clone();
            rt.errors.tolerate(Failure::new(Stage::KeyConverter, class, &e), None, describe).await?;
            return Ok(None);
        }
    };
    let value_bytes = match rt.value_converter.from_connect(name, value_schema.as_ref(), value) {
        Ok(v) => v,
        Err(e) => {
            let class = rt.value_class.clone();
            rt.errors.tolerate(Failure::new(Stage::ValueConverter, class, &e), None, describe).await?;
            return Ok(None);
        }
    };
    let mut out = ProducerRecord::new(topic.unwrap_or_else(|| Arc::from(name.as_str())));
    out.partition = *kafka_partition;
    out.key = key_bytes.map(Bytes::from);
    out.value = value_bytes.map(Bytes::from);
    out.timestamp = *timestamp;
    out.headers = headers
        .iter()
        .map(|h| RawHeader { key: h.key.clone(), value: header_bytes(&h.value).map(Bytes::from) })
        .collect();
    Ok(Some(out))
}
