//! Runs one source task: poll → transforms → converters → produce, then
//! store the source offsets (see [`super::offsets`] for how a batch is made
//! exactly-once).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use runnel_core::client::{partition_for_key, Cluster, Consumer, Producer, ProducerRecord};
use runnel_core::record::Header as RawHeader;
use runnel_core::topic::{NewTopic, TopicPartition};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::errors::{Failure, Stage};
use super::offsets::{ensure_topic, OffsetStore, PendingRecord};
use super::status::State;
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
    pub(crate) producer: Producer,
    pub(crate) cluster: Cluster,
    pub(crate) offsets: Arc<OffsetStore>,
    pub(crate) end_reader: Consumer,
    pub(crate) partitions: HashMap<String, i32>,
    pub(crate) sticky: u32,
}

impl SourceRunner {
    pub(crate) async fn run(mut self) {
        let (name, id, status) = (self.rt.name.clone(), self.rt.task_id, self.rt.status.clone());
        status.set_task(&name, id, State::Running, None);
        self.offsets.start_task(&name, id);
        let mut result = self.run_inner().await;
        if result.is_ok() {
            // A clean stop: wait for the last offsets and clear the note.
            result = self.offsets.finish_task(&name, id).await.map_err(|e| TaskError::fatal(e.to_string()));
        }
        self.task.stop().await;
        let _ = self.producer.close().await;
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

    async fn run_inner(&mut self) -> Result<(), TaskError> {
        self.task.start(&self.task_props, &self.context).await?;
        let cancel = self.rt.cancel.clone();
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            if !self.rt.wait_while_paused().await {
                return Ok(());
            }
            let records = {
                let mut backoff = self.rt.errors.backoff();
                loop {
                    match self.task.poll().await {
                        Ok(r) => break r,
                        Err(e) => {
                            if !backoff.retry(Stage::TaskPoll, &e, &cancel).await {
                                return Err(e);
                            }
                        }
                    }
                }
            };
            if records.is_empty() {
                continue;
            }
            self.send_batch(records).await?;
        }
    }

    async fn partition_count(&mut self, topic: &str) -> Result<i32, TaskError> {
        if let Some(n) = self.partitions.get(topic) {
            return Ok(*n);
        }
        let n = match self.cluster.broker() {
            Some(broker) => {
                broker.ensure_topic(topic).map_err(|e| TaskError::fatal(format!("topic `{topic}`: {e}")))?;
                broker
                    .partition_count(topic)
                    .map_err(|e| TaskError::fatal(format!("topic `{topic}`: {e}")))?
            }
            None => ensure_topic(&self.cluster, NewTopic::new(topic, 1))
                .await
                .map_err(|e| TaskError::fatal(e.to_string()))?,
        };
        self.partitions.insert(topic.to_string(), n);
        Ok(n)
    }

    async fn send_batch(&mut self, records: Vec<SourceRecord>) -> Result<(), TaskError> {
        let name = self.rt.name.clone();
        let fatal = |what: &str| {
            let what = what.to_string();
            move |e: runnel_core::Error| TaskError::fatal(format!("{what}: {e}"))
        };
        // Source partitions in order of first appearance. A source usually
        // repeats the partition of the record before, so that is tried first.
        let mut partitions: Vec<SourceMap> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut pidx = Vec::with_capacity(records.len());
        for r in &records {
            let i = match pidx.last() {
                Some(&last) if partitions[last] == r.source_partition => last,
                _ => *index.entry(partition_key(&r.source_partition)).or_insert_with(|| {
                    partitions.push(r.source_partition.clone());
                    partitions.len() - 1
                }),
            };
            pidx.push(i);
        }
        // Transform, convert and pick partitions.
        self.sticky = self.sticky.wrapping_add(1);
        let mut produced: Vec<(usize, ProducerRecord)> = Vec::with_capacity(records.len());
        let mut skipped: Vec<PendingRecord<'_>> = Vec::new();
        let mut last_topic: Option<(Arc<str>, i32)> = None;
        for (i, r) in records.iter().enumerate() {
            let topic = match &last_topic {
                Some((t, _)) if **t == *r.record.topic => Some(t.clone()),
                _ => None,
            };
            match prepare(&self.rt, r, topic).await? {
                Some(mut pr) => {
                    let n = match &last_topic {
                        Some((t, n)) if Arc::ptr_eq(t, &pr.topic) => *n,
                        _ => {
                            let n = self.partition_count(&pr.topic).await?;
                            last_topic = Some((pr.topic.clone(), n));
                            n
                        }
                    };
                    let p = match (pr.partition, &pr.key) {
                        (Some(p), _) => p,
                        (None, Some(k)) => partition_for_key(k, n),
                        (None, None) => {
                            ((self.sticky as usize + self.rt.task_id as usize) % n.max(1) as usize) as i32
                        }
                    };
                    pr.partition = Some(p);
                    produced.push((i, pr));
                }
                None => skipped.push((i, pidx[i], &r.source_offset)),
            }
        }
        // The offsets of each source partition's last record.
        let mut last: Vec<Option<usize>> = vec![None; partitions.len()];
        for (i, p) in pidx.iter().enumerate() {
            last[*p] = Some(i);
        }
        let entries: Vec<(SourceMap, SourceMap)> = partitions
            .iter()
            .zip(&last)
            .filter_map(|(p, i)| Some((p.clone(), records[(*i)?].source_offset.clone())))
            .collect();
        let store = |e: crate::error::ConnectError| TaskError::fatal(e.to_string());
        let task_id = self.rt.task_id;
        if produced.is_empty() {
            // Nothing to produce, so no note: store the offsets and wait.
            self.offsets.store_offsets(&name, task_id, &entries).await.map_err(store)?;
        } else {
            // Write the pending batch, then produce.
            let mut by_tp: BTreeMap<TopicPartition, Vec<PendingRecord<'_>>> = BTreeMap::new();
            for (i, pr) in &produced {
                let (topic, partition) = (&pr.topic, pr.partition.unwrap_or(0));
                let recs = match by_tp
                    .iter_mut()
                    .find(|(tp, _)| tp.partition == partition && *tp.topic == **topic)
                {
                    Some((_, recs)) => recs,
                    None => by_tp.entry(TopicPartition::new(topic.to_string(), partition)).or_default(),
                };
                recs.push((*i, pidx[*i], &records[*i].source_offset));
            }
            let tps: Vec<TopicPartition> = by_tp.keys().cloned().collect();
            let ends = self.end_reader.end_offsets(&tps).map_err(fatal("reading log end offsets"))?;
            let targets: Vec<_> = by_tp
                .into_iter()
                .map(|(tp, recs)| {
                    let end = ends.get(&tp).copied().unwrap_or(0);
                    (tp, end, recs)
                })
                .collect();
            self.rt.topics.record(&name, targets.iter().map(|(tp, ..)| tp.topic.as_str()));
            self.offsets
                .write_batch_note(&name, task_id, &partitions, &targets, &skipped)
                .await
                .map_err(store)?;
            let mut deliveries = Vec::with_capacity(produced.len());
            for (i, pr) in produced {
                deliveries.push((i, self.producer.enqueue(pr).await.map_err(fatal("producing"))?));
            }
            self.producer.flush().await.map_err(fatal("producing"))?;
            let mut meta = RecordMetadata { topic: String::new(), partition: 0, offset: 0 };
            for (i, d) in deliveries {
                let m = d.wait().await.map_err(fatal("producing"))?;
                if *meta.topic != *m.topic {
                    meta.topic = m.topic.to_string();
                }
                (meta.partition, meta.offset) = (m.partition, m.offset);
                self.task.commit_record(&records[i], &meta).await?;
            }
            // The records and the note now give the offsets: they are sent
            // without waiting (the next note waits for them and repeats them).
            self.offsets.send_batch_offsets(&name, task_id, entries).await.map_err(store)?;
        }
        debug!(connector = %name, task = self.rt.task_id, records = records.len(), "source batch stored");
        self.task.commit().await
    }
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
