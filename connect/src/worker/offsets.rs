//! The source offsets store: a compacted topic, Kafka's format.
//!
//! ```text
//! key   = JSON ["<connector>", {<source partition>}]     e.g. ["src",{"filename":"/tmp/in.txt"}]
//! value = JSON {<source offset>} or null (deleted)      e.g. {"position":4096}
//! ```
//!
//! Beside them the worker keeps one *pending batch* entry per task, under a
//! key Kafka's tools skip (three elements instead of two):
//!
//! ```text
//! key   = JSON ["__runnel.pending", "<connector>", <task id>]
//! value = JSON {"partitions": [{..}, ..],
//!               "targets": [{"topic": t, "partition": p, "end": <log end before the batch>,
//!                            "records": [[<batch index>, <partition index>, {offset}], ..]}, ..],
//!               "skipped": [[<batch index>, <partition index>, {offset}], ..]}
//!         or null once the batch's offsets are stored
//! ```
//!
//! It is written before a batch is produced, so a worker killed between
//! producing and storing offsets can tell, on restart, how many records of
//! the batch reached each target partition (log end now minus `end`) and
//! resume right after them: no record is lost and none is produced twice,
//! provided the task is the only writer of those partitions while it was
//! down (other writers would make the worker skip records instead).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use runnel_core::client::{Cluster, ConsumerConfig, Producer, ProducerRecord};
use runnel_core::topic::{NewTopic, TopicPartition};
use serde_json::{json, Value as Json};
use tracing::{info, warn};

use crate::error::ConnectError;
use crate::plugin::{partition_key, SourceMap};

const PENDING: &str = "__runnel.pending";

#[derive(Default)]
struct Stored {
    /// connector → partition key → (partition, offset).
    offsets: HashMap<String, HashMap<String, (SourceMap, SourceMap)>>,
    /// (connector, task) → pending batch.
    pending: BTreeMap<(String, u32), Json>,
}

/// Source offsets, read from the offsets topic at start and kept in memory.
pub(crate) struct OffsetStore {
    topic: Arc<str>,
    producer: Producer,
    stored: Mutex<Stored>,
}

/// Creates `topic` (compacted) unless it exists.
pub(crate) async fn ensure_topic(cluster: &Cluster, topic: NewTopic) -> Result<i32, ConnectError> {
    let admin = cluster.admin();
    let name = topic.name.clone();
    match admin.describe_topic(&name).await {
        Ok(d) => return Ok(d.partitions.len() as i32),
        Err(runnel_core::Error::UnknownTopic(_)) => {}
        Err(e) => return Err(ConnectError::cluster(format!("describing topic `{name}`"))(e)),
    }
    let partitions = topic.num_partitions;
    match admin.create_topic(topic).await {
        Ok(()) | Err(runnel_core::Error::TopicExists(_)) => {}
        Err(e) => return Err(ConnectError::cluster(format!("creating topic `{name}`"))(e)),
    }
    match admin.describe_topic(&name).await {
        Ok(d) => Ok(d.partitions.len() as i32),
        Err(_) => Ok(partitions),
    }
}

impl OffsetStore {
    /// Opens the store: creates the topic if needed and reads it to the end.
    pub(crate) async fn open(
        cluster: &Cluster,
        topic: &str,
        partitions: i32,
        producer: Producer,
    ) -> Result<OffsetStore, ConnectError> {
        let n = ensure_topic(cluster, NewTopic::new(topic, partitions).config("cleanup.policy", "compact"))
            .await?;
        let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(topic, p)).collect();
        let what = || format!("reading the offsets topic `{topic}`");
        let mut consumer = cluster
            .consumer(ConsumerConfig::default().auto_commit(false))
            .map_err(ConnectError::cluster(what()))?;
        consumer.assign(tps.clone()).map_err(ConnectError::cluster(what()))?;
        consumer.seek_to_beginning(&tps).map_err(ConnectError::cluster(what()))?;
        let ends = consumer.end_offsets(&tps).map_err(ConnectError::cluster(what()))?;
        let mut stored = Stored::default();
        let mut count = 0usize;
        loop {
            let mut done = true;
            for tp in &tps {
                if consumer.position(tp).await.map_err(ConnectError::cluster(what()))? < ends[tp] {
                    done = false;
                }
            }
            if done {
                break;
            }
            for record in
                consumer.poll(Duration::from_millis(500)).await.map_err(ConnectError::cluster(what()))?
            {
                count += 1;
                stored.apply(record.key.as_deref(), record.value.as_deref());
            }
        }
        let _ = consumer.close().await;
        info!(topic, records = count, "read source offsets");
        Ok(OffsetStore { topic: Arc::from(topic), producer, stored: Mutex::new(stored) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored offsets of a connector's source partitions.
    pub(crate) fn offsets(&self, connector: &str) -> Vec<(SourceMap, SourceMap)> {
        self.lock().offsets.get(connector).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// The pending batches of a connector's tasks.
    pub(crate) fn pending(&self, connector: &str) -> Vec<(u32, Json)> {
        self.lock()
            .pending
            .iter()
            .filter(|((c, _), _)| c == connector)
            .map(|((_, t), v)| (*t, v.clone()))
            .collect()
    }

    /// Stores offsets and waits until they are written.
    pub(crate) async fn write(
        &self,
        connector: &str,
        entries: &[(SourceMap, SourceMap)],
    ) -> Result<(), ConnectError> {
        let mut deliveries = Vec::with_capacity(entries.len());
        for (partition, offset) in entries {
            let key = json!([connector, partition]).to_string();
            let value = Json::Object(offset.clone()).to_string();
            deliveries.push(self.send(key, Some(value)).await?);
        }
        self.wait(deliveries).await?;
        let mut stored = self.lock();
        let map = stored.offsets.entry(connector.to_string()).or_default();
        for (partition, offset) in entries {
            map.insert(partition_key(partition), (partition.clone(), offset.clone()));
        }
        Ok(())
    }

    /// Deletes the stored offsets of these source partitions (a tombstone
    /// each) and waits until written.
    pub(crate) async fn remove(&self, connector: &str, partitions: &[SourceMap]) -> Result<(), ConnectError> {
        let mut deliveries = Vec::with_capacity(partitions.len());
        for partition in partitions {
            deliveries.push(self.send(json!([connector, partition]).to_string(), None).await?);
        }
        self.wait(deliveries).await?;
        let mut stored = self.lock();
        if let Some(map) = stored.offsets.get_mut(connector) {
            for partition in partitions {
                map.remove(&partition_key(partition));
            }
        }
        Ok(())
    }

    /// Stores (or with `None` clears) a task's pending batch and waits until written.
    pub(crate) async fn write_pending(
        &self,
        connector: &str,
        task: u32,
        batch: Option<Json>,
    ) -> Result<(), ConnectError> {
        let key = json!([PENDING, connector, task]).to_string();
        let delivery = self.send(key, batch.as_ref().map(Json::to_string)).await?;
        self.wait(vec![delivery]).await?;
        let mut stored = self.lock();
        match batch {
            Some(b) => stored.pending.insert((connector.to_string(), task), b),
            None => stored.pending.remove(&(connector.to_string(), task)),
        };
        Ok(())
    }

    async fn send(
        &self,
        key: String,
        value: Option<String>,
    ) -> Result<runnel_core::client::Delivery, ConnectError> {
        let mut record = ProducerRecord::new(self.topic.clone()).key(Bytes::from(key));
        record.value = value.map(Bytes::from);
        self.producer
            .enqueue(record)
            .await
            .map_err(ConnectError::cluster(format!("writing offsets to `{}`", self.topic)))
    }

    async fn wait(&self, deliveries: Vec<runnel_core::client::Delivery>) -> Result<(), ConnectError> {
        let what = || format!("writing offsets to `{}`", self.topic);
        self.producer.flush().await.map_err(ConnectError::cluster(what()))?;
        for d in deliveries {
            d.await.map_err(ConnectError::cluster(what()))?;
        }
        Ok(())
    }

    /// Flushes and stops the store's producer.
    pub(crate) async fn close(&self) {
        let _ = self.producer.close().await;
    }
}

impl Stored {
    fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let Some(key) = key.and_then(|k| serde_json::from_slice::<Json>(k).ok()) else {
            warn!("skipping an offsets record whose key is not JSON");
            return;
        };
        let value = value.and_then(|v| serde_json::from_slice::<Json>(v).ok()).filter(|v| !v.is_null());
        match key.as_array().map(Vec::as_slice) {
            Some([Json::String(connector), Json::Object(partition)]) => {
                let map = self.offsets.entry(connector.clone()).or_default();
                match value {
                    Some(Json::Object(offset)) => {
                        map.insert(partition_key(partition), (partition.clone(), offset));
                    }
                    _ => {
                        map.remove(&partition_key(partition));
                    }
                }
            }
            Some([Json::String(tag), Json::String(connector), Json::Number(task)]) if tag == PENDING => {
                let id = (connector.clone(), task.as_u64().unwrap_or(0) as u32);
                match value {
                    Some(v) => self.pending.insert(id, v),
                    None => self.pending.remove(&id),
                };
            }
            _ => warn!(key = %key, "skipping an offsets record with an unexpected key"),
        }
    }
}

/// One record of a pending batch: its index in the batch, its source
/// partition's index in `partitions`, and its source offset.
pub(crate) type PendingRecord = (usize, usize, SourceMap);

/// Builds the pending-batch value.
pub(crate) fn pending_batch(
    partitions: &[SourceMap],
    targets: &[(TopicPartition, i64, Vec<PendingRecord>)],
    skipped: &[PendingRecord],
) -> Json {
    let rec = |(i, p, o): &PendingRecord| json!([i, p, o]);
    json!({
        "partitions": partitions,
        "targets": targets.iter().map(|(tp, end, records)| json!({
            "topic": tp.topic, "partition": tp.partition, "end": end,
            "records": records.iter().map(rec).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(rec).collect::<Vec<_>>(),
    })
}

/// The offsets to store for a pending batch, given the log end offsets now
/// of its target partitions: per source partition, the offset of its last
/// record such that every record of that partition before it reached the
/// cluster. Source partitions none of whose records arrived are left out.
///
/// Returns `None` for a malformed batch.
pub(crate) fn recover_pending(
    batch: &Json,
    ends_now: &BTreeMap<TopicPartition, i64>,
) -> Option<Vec<(SourceMap, SourceMap)>> {
    let partitions: Vec<SourceMap> =
        batch.get("partitions")?.as_array()?.iter().map(|p| p.as_object().cloned()).collect::<Option<_>>()?;
    let parse = |r: &Json| -> Option<PendingRecord> {
        let a = r.as_array()?;
        Some((a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize, a.get(2)?.as_object()?.clone()))
    };
    // (batch index, partition index, offset, landed)
    let mut all: Vec<(usize, usize, SourceMap, bool)> = Vec::new();
    for target in batch.get("targets")?.as_array()? {
        let tp =
            TopicPartition::new(target.get("topic")?.as_str()?, target.get("partition")?.as_i64()? as i32);
        let end = target.get("end")?.as_i64()?;
        let now = ends_now.get(&tp).copied().unwrap_or(end);
        let landed = (now - end).max(0) as usize;
        for (n, r) in target.get("records")?.as_array()?.iter().enumerate() {
            let (i, p, o) = parse(r)?;
            all.push((i, p, o, n < landed));
        }
    }
    for r in batch.get("skipped")?.as_array()? {
        let (i, p, o) = parse(r)?;
        all.push((i, p, o, true));
    }
    all.sort_by_key(|(i, ..)| *i);
    let mut out = Vec::new();
    for (pidx, partition) in partitions.iter().enumerate() {
        let mut last = None;
        for (_, p, offset, landed) in all.iter().filter(|(_, p, ..)| *p == pidx) {
            let _ = p;
            if !landed {
                break;
            }
            last = Some(offset.clone());
        }
        if let Some(offset) = last {
            out.push((partition.clone(), offset));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Json) -> SourceMap {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_pending_batch_resumes_after_the_records_that_reached_the_log() {
        let p = map(json!({"filename": "a"}));
        let off = |n: i64| map(json!({"position": n}));
        let tp = TopicPartition::new("t", 0);
        let batch = pending_batch(
            std::slice::from_ref(&p),
            &[(tp.clone(), 10, vec![(0, 0, off(1)), (2, 0, off(3)), (3, 0, off(4))])],
            &[(1, 0, off(2))],
        );
        let at = |end: i64| recover_pending(&batch, &BTreeMap::from([(tp.clone(), end)])).unwrap();
        assert_eq!(at(10), vec![]);
        assert_eq!(at(11), vec![(p.clone(), off(2))]);
        assert_eq!(at(12), vec![(p.clone(), off(3))]);
        assert_eq!(at(13), vec![(p.clone(), off(4))]);
    }
}
