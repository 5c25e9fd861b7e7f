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
//!               "skipped": [[<batch index>, <partition index>, {offset}], ..],
//!               "previous": [[{partition}, {offset}], ..]}
//!         or null once the task stopped cleanly
//! ```
//!
//! A list of records may hold, in place of single records, *runs*: records
//! with consecutive batch indices from one source partition whose offsets
//! are integers under the same names ([`SourceOffset::integers`]). A run
//! gives the first offset's values and then, per record, the differences
//! from the record before, so a file source's note costs a few bytes per
//! line rather than its whole offset:
//!
//! ```text
//! {"run": [<first batch index>, <partition index>], "fields": ["position", "inode"],
//!  "values": [4196, 17, 100, 0, 98, 0], "count": 3}
//! ```
//!
//! It is written before a batch is produced, so a worker killed between
//! producing and storing offsets can tell, on restart, how many records of
//! the batch reached each target partition (log end now minus `end`) and
//! resume right after them: no record is lost and none is produced twice,
//! provided the task is the only writer of those partitions while it was
//! down (other writers would make the worker skip records instead).
//!
//! A batch costs two waits: the note, then the records. The batch's offsets
//! are then sent without waiting: they travel with the next batch's note,
//! which repeats them in `previous` (the offsets the last batch stored, in
//! case they did not arrive), and the note is not cleared between batches.
//! Once a batch's records are in the log its note alone gives its offsets,
//! so a note left behind by a finished batch recovers to the offsets already
//! stored; the next note replaces it only after waiting for them. A clean
//! stop waits for the last offsets and clears the note.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use runnel_core::client::{Cluster, ConsumerConfig, Delivery, Producer, ProducerRecord};
use runnel_core::topic::{NewTopic, TopicPartition};
use serde_json::{json, Value as Json};
use tracing::{info, warn};

use crate::error::ConnectError;
use crate::plugin::{partition_key, SourceMap, SourceOffset, MAX_OFFSET_INTEGERS};

const PENDING: &str = "__runnel.pending";

#[derive(Default)]
struct Stored {
    /// connector → partition key → (partition, offset).
    offsets: HashMap<String, HashMap<String, (SourceMap, SourceMap)>>,
    /// (connector, task) → pending batch (its JSON text, parsed when asked).
    pending: BTreeMap<(String, u32), Arc<str>>,
}

/// What a running source task sent after its last batch without waiting.
#[derive(Default)]
struct Unconfirmed {
    /// The deliveries of the offsets records.
    deliveries: Vec<Delivery>,
    /// Those offsets, repeated in the task's next note.
    entries: Vec<(SourceMap, SourceMap)>,
}

/// Source offsets, read from the offsets topic at start and kept in memory.
pub(crate) struct OffsetStore {
    topic: Arc<str>,
    partitions: i32,
    producer: Producer,
    stored: Mutex<Stored>,
    /// (connector, task) → offsets sent without waiting.
    unconfirmed: Mutex<HashMap<(String, u32), Unconfirmed>>,
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

/// Reads the whole offsets topic.
async fn read_all(cluster: &Cluster, topic: &str, n: i32) -> Result<Stored, ConnectError> {
    let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(topic, p)).collect();
    let what = || format!("reading the offsets topic `{topic}`");
    let mut consumer = cluster
        .consumer(ConsumerConfig::default().auto_commit(false))
        .map_err(ConnectError::cluster(what()))?;
    let (ends, begins) = super::blocking::off_runtime(|| {
        consumer.assign(tps.clone())?;
        consumer.seek_to_beginning(&tps)?;
        Ok::<_, runnel_core::Error>((consumer.end_offsets(&tps)?, consumer.beginning_offsets(&tps)?))
    })
    .map_err(ConnectError::cluster(what()))?;
    let mut stored = Stored::default();
    let mut count = 0usize;
    loop {
        let mut done = true;
        for tp in &tps {
            // An empty partition is read (a position is only known after a fetch).
            if ends[tp] <= begins.get(tp).copied().unwrap_or(0) {
                continue;
            }
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
    Ok(stored)
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
        let stored = read_all(cluster, topic, n).await?;
        Ok(OffsetStore {
            topic: Arc::from(topic),
            partitions: n,
            producer,
            stored: Mutex::new(stored),
            unconfirmed: Mutex::new(HashMap::new()),
        })
    }

    /// Reads the topic again and takes what it says about `connector`
    /// (distributed mode: another worker may have run its tasks since).
    pub(crate) async fn reload_connector(
        &self,
        cluster: &Cluster,
        connector: &str,
    ) -> Result<(), ConnectError> {
        let mut fresh = read_all(cluster, &self.topic, self.partitions).await?;
        let mut stored = self.lock();
        match fresh.offsets.remove(connector) {
            Some(o) => stored.offsets.insert(connector.to_string(), o),
            None => stored.offsets.remove(connector),
        };
        stored.pending.retain(|(c, _), _| c != connector);
        for ((c, t), note) in fresh.pending {
            if c == connector {
                stored.pending.insert((c, t), note);
            }
        }
        Ok(())
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
        let notes: Vec<(u32, Arc<str>)> = self
            .lock()
            .pending
            .iter()
            .filter(|((c, _), _)| c == connector)
            .map(|((_, t), v)| (*t, v.clone()))
            .collect();
        notes.into_iter().map(|(t, v)| (t, serde_json::from_str(&v).unwrap_or(Json::Null))).collect()
    }

    /// Stores offsets and waits until they are written.
    pub(crate) async fn write(
        &self,
        connector: &str,
        entries: &[(SourceMap, SourceMap)],
    ) -> Result<(), ConnectError> {
        let deliveries = self.send_offsets(connector, entries).await?;
        self.wait(deliveries).await
    }

    /// Sends offsets without waiting; await the deliveries with [`OffsetStore::wait`]
    /// (or [`OffsetStore::write_note`]). The offsets read back by
    /// [`OffsetStore::offsets`] change at once.
    pub(crate) async fn send_offsets(
        &self,
        connector: &str,
        entries: &[(SourceMap, SourceMap)],
    ) -> Result<Vec<Delivery>, ConnectError> {
        let mut deliveries = Vec::with_capacity(entries.len());
        for (partition, offset) in entries {
            let key = json!([connector, partition]).to_string();
            let value = serde_json::to_string(offset).unwrap_or_default();
            deliveries.push(self.send(key, Some(value)).await?);
        }
        let mut stored = self.lock();
        let map = stored.offsets.entry(connector.to_string()).or_default();
        for (partition, offset) in entries {
            map.insert(partition_key(partition), (partition.clone(), offset.clone()));
        }
        Ok(deliveries)
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

    fn take_unconfirmed(&self, connector: &str, task: u32) -> Unconfirmed {
        let mut map = self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&(connector.to_string(), task)).unwrap_or_default()
    }

    /// Forgets what an earlier run of this task left unconfirmed (a failed
    /// run leaves its note, which recovery has handled before a restart).
    pub(crate) fn start_task(&self, connector: &str, task: u32) {
        drop(self.take_unconfirmed(connector, task));
    }

    /// Writes a source task's pending batch before it is produced, and waits
    /// for it and for the offsets the task's last batch sent without waiting
    /// (which the note repeats as `previous`).
    pub(crate) async fn write_batch_note(
        &self,
        connector: &str,
        task: u32,
        partitions: &[Arc<SourceMap>],
        targets: &[(TopicPartition, i64, Vec<u8>)],
        skipped: &[u8],
    ) -> Result<(), ConnectError> {
        let earlier = self.take_unconfirmed(connector, task);
        let note = pending_batch(partitions, targets, skipped, &earlier.entries);
        self.write_note(connector, task, Some(note), earlier.deliveries).await
    }

    /// Sends the offsets of a batch whose records and note are written,
    /// without waiting: the task's next note (or [`OffsetStore::store_offsets`],
    /// or [`OffsetStore::finish_task`]) waits for them.
    pub(crate) async fn send_batch_offsets(
        &self,
        connector: &str,
        task: u32,
        entries: Vec<(SourceMap, SourceMap)>,
    ) -> Result<(), ConnectError> {
        let mut earlier = self.take_unconfirmed(connector, task);
        let deliveries = self.send_offsets(connector, &entries).await?;
        // An earlier batch's deliveries were waited for by the note written
        // since; keep any not yet awaited.
        earlier.deliveries.extend(deliveries);
        let mut map = self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner());
        map.insert((connector.to_string(), task), Unconfirmed { deliveries: earlier.deliveries, entries });
        Ok(())
    }

    /// Stores the offsets of a batch that produced nothing (so wrote no
    /// note) and waits; then clears the task's note, which would recover
    /// older offsets.
    pub(crate) async fn store_offsets(
        &self,
        connector: &str,
        task: u32,
        entries: &[(SourceMap, SourceMap)],
    ) -> Result<(), ConnectError> {
        let mut deliveries = self.take_unconfirmed(connector, task).deliveries;
        deliveries.extend(self.send_offsets(connector, entries).await?);
        self.wait(deliveries).await?;
        self.clear_note(connector, task).await
    }

    /// After a clean stop: waits for the task's last offsets and clears its note.
    pub(crate) async fn finish_task(&self, connector: &str, task: u32) -> Result<(), ConnectError> {
        self.wait(self.take_unconfirmed(connector, task).deliveries).await?;
        self.clear_note(connector, task).await
    }

    async fn clear_note(&self, connector: &str, task: u32) -> Result<(), ConnectError> {
        if self.lock().pending.contains_key(&(connector.to_string(), task)) {
            self.write_note(connector, task, None, Vec::new()).await?;
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
        self.write_note(connector, task, batch.map(|b| b.to_string()), Vec::new()).await
    }

    /// Stores (or with `None` clears) a task's pending batch, given as JSON
    /// text (see [`pending_batch`]), and waits until it and `earlier`
    /// (deliveries sent before it) are written.
    pub(crate) async fn write_note(
        &self,
        connector: &str,
        task: u32,
        note: Option<String>,
        mut earlier: Vec<Delivery>,
    ) -> Result<(), ConnectError> {
        let key = json!([PENDING, connector, task]).to_string();
        let note: Option<Arc<str>> = note.map(Arc::from);
        let value = note.as_deref().map(|n| Bytes::copy_from_slice(n.as_bytes()));
        earlier.push(self.send_bytes(Bytes::from(key), value).await?);
        self.wait(earlier).await?;
        let mut stored = self.lock();
        match note {
            Some(b) => stored.pending.insert((connector.to_string(), task), b),
            None => stored.pending.remove(&(connector.to_string(), task)),
        };
        Ok(())
    }

    async fn send(&self, key: String, value: Option<String>) -> Result<Delivery, ConnectError> {
        self.send_bytes(Bytes::from(key), value.map(Bytes::from)).await
    }

    async fn send_bytes(&self, key: Bytes, value: Option<Bytes>) -> Result<Delivery, ConnectError> {
        let mut record = ProducerRecord::new(self.topic.clone()).key(key);
        record.value = value;
        self.producer
            .enqueue(record)
            .await
            .map_err(ConnectError::cluster(format!("writing offsets to `{}`", self.topic)))
    }

    /// Flushes the store's producer and waits for `deliveries`.
    pub(crate) async fn wait(&self, deliveries: Vec<Delivery>) -> Result<(), ConnectError> {
        let what = || format!("writing offsets to `{}`", self.topic);
        self.producer.flush().await.map_err(ConnectError::cluster(what()))?;
        for d in deliveries {
            d.wait().await.map_err(ConnectError::cluster(what()))?;
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
                    Some(v) => self.pending.insert(id, Arc::from(v.to_string())),
                    None => self.pending.remove(&id),
                };
            }
            _ => warn!(key = %key, "skipping an offsets record with an unexpected key"),
        }
    }
}

/// One record of a pending batch: its index in the batch, its source
/// partition's index in `partitions`, and its source offset.
#[cfg(test)]
pub(crate) type PendingRecord<'a> = (usize, usize, &'a SourceOffset);

/// A run of records being written (see the module docs).
struct Run {
    next: usize,
    partition: usize,
    names: &'static [&'static str],
    last: [i64; MAX_OFFSET_INTEGERS],
    count: usize,
}

/// Writes a list of a pending batch's records as JSON, one record at a time
/// — as the batch is prepared, while its offsets are still in the cache —
/// with runs of integer offsets written as differences (module docs).
pub(crate) struct PendingRecords {
    out: Vec<u8>,
    run: Option<Run>,
    empty: bool,
    number: itoa::Buffer,
}

impl Default for PendingRecords {
    fn default() -> PendingRecords {
        PendingRecords { out: b"[".to_vec(), run: None, empty: true, number: itoa::Buffer::new() }
    }
}

impl PendingRecords {
    /// Appends record `i` of the batch, from source partition `p`.
    pub(crate) fn push(&mut self, i: usize, p: usize, offset: &SourceOffset) {
        use std::io::Write as _;
        let integers = offset.as_integers();
        if let (Some((names, values)), Some(r)) = (integers, &mut self.run) {
            if r.next == i && r.partition == p && (std::ptr::eq(r.names, names) || r.names == names) {
                for (last, value) in r.last.iter_mut().zip(values) {
                    self.out.push(b',');
                    self.out.extend_from_slice(self.number.format(value.wrapping_sub(*last)).as_bytes());
                    *last = *value;
                }
                r.next += 1;
                r.count += 1;
                return;
            }
        }
        self.close_run();
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        match integers {
            Some((names, values)) => {
                let _ = write!(self.out, "{{\"run\":[{i},{p}],\"fields\":");
                let _ = serde_json::to_writer(&mut self.out, names);
                self.out.extend_from_slice(b",\"values\":[");
                for (k, value) in values.iter().enumerate() {
                    if k > 0 {
                        self.out.push(b',');
                    }
                    self.out.extend_from_slice(self.number.format(*value).as_bytes());
                }
                let mut last = [0; MAX_OFFSET_INTEGERS];
                last[..values.len()].copy_from_slice(values);
                self.run = Some(Run { next: i + 1, partition: p, names, last, count: 1 });
            }
            None => {
                let _ = write!(self.out, "[{i},{p},");
                offset.write_json(&mut self.out);
                self.out.push(b']');
            }
        }
    }

    fn close_run(&mut self) {
        use std::io::Write as _;
        if let Some(run) = self.run.take() {
            let _ = write!(self.out, "],\"count\":{}}}", run.count);
        }
    }

    /// The JSON array.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.close_run();
        self.out.push(b']');
        self.out
    }

    /// The records of `records` as a JSON array.
    #[cfg(test)]
    pub(crate) fn of<'a>(records: impl IntoIterator<Item = PendingRecord<'a>>) -> Vec<u8> {
        let mut list = PendingRecords::default();
        for (i, p, o) in records {
            list.push(i, p, o);
        }
        list.finish()
    }
}

/// Builds the pending-batch value as JSON text from the lists of records
/// written by [`PendingRecords`].
pub(crate) fn pending_batch(
    partitions: &[Arc<SourceMap>],
    targets: &[(TopicPartition, i64, Vec<u8>)],
    skipped: &[u8],
    previous: &[(SourceMap, SourceMap)],
) -> String {
    use std::io::Write as _;
    // Writing into a Vec cannot fail.
    fn map(out: &mut Vec<u8>, m: &SourceMap) {
        let _ = serde_json::to_writer(&mut *out, m);
    }
    let mut out = Vec::with_capacity(256 + skipped.len() + targets.iter().map(|t| t.2.len()).sum::<usize>());
    out.extend_from_slice(b"{\"partitions\":[");
    for (n, p) in partitions.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        map(&mut out, p);
    }
    out.extend_from_slice(b"],\"targets\":[");
    for (n, (tp, end, recs)) in targets.iter().enumerate() {
        let topic = Json::String(tp.topic.to_string()).to_string();
        let _ = write!(
            out,
            "{}{{\"topic\":{topic},\"partition\":{},\"end\":{end},\"records\":",
            if n == 0 { "" } else { "," },
            tp.partition
        );
        out.extend_from_slice(recs);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"skipped\":");
    out.extend_from_slice(skipped);
    out.extend_from_slice(b",\"previous\":[");
    for (n, (p, o)) in previous.iter().enumerate() {
        out.extend_from_slice(if n == 0 { b"[" } else { b",[" });
        map(&mut out, p);
        out.push(b',');
        map(&mut out, o);
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    // serde_json and itoa write UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// The offsets to store for a pending batch, given the log end offsets now
/// of its target partitions: first the offsets the batch before it stored
/// (`previous`), then per source partition of the batch the offset of its
/// last record such that every record of that partition before it reached
/// the cluster, replacing a `previous` entry of the same partition. Source
/// partitions none of whose records arrived keep their `previous` offset,
/// or are left out.
///
/// Returns `None` for a malformed batch.
pub(crate) fn recover_pending(
    batch: &Json,
    ends_now: &BTreeMap<TopicPartition, i64>,
) -> Option<Vec<(SourceMap, SourceMap)>> {
    let partitions: Vec<SourceMap> =
        batch.get("partitions")?.as_array()?.iter().map(|p| p.as_object().cloned()).collect::<Option<_>>()?;
    let parse = |r: &Json| -> Option<Vec<(usize, usize, SourceMap)>> {
        if let Some(a) = r.as_array() {
            let one =
                (a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize, a.get(2)?.as_object()?.clone());
            return Some(vec![one]);
        }
        // A run: consecutive records, integer offsets as differences.
        let start = r.get("run")?.as_array()?;
        let (first, partition) = (start.first()?.as_u64()? as usize, start.get(1)?.as_u64()? as usize);
        let fields: Vec<&str> =
            r.get("fields")?.as_array()?.iter().map(Json::as_str).collect::<Option<_>>()?;
        let values: Vec<i64> =
            r.get("values")?.as_array()?.iter().map(Json::as_i64).collect::<Option<_>>()?;
        let count = r.get("count")?.as_u64()? as usize;
        if values.len() != fields.len() * count {
            return None;
        }
        let mut current = vec![0i64; fields.len()];
        let mut out = Vec::with_capacity(count);
        for k in 0..count {
            for (f, value) in current.iter_mut().enumerate() {
                let v = values[k * fields.len() + f];
                *value = if k == 0 { v } else { value.wrapping_add(v) };
            }
            let offset = fields.iter().zip(&current).map(|(f, v)| (f.to_string(), Json::from(*v))).collect();
            out.push((first + k, partition, offset));
        }
        Some(out)
    };
    // (batch index, partition index, offset, landed)
    let mut all: Vec<(usize, usize, SourceMap, bool)> = Vec::new();
    for target in batch.get("targets")?.as_array()? {
        let tp =
            TopicPartition::new(target.get("topic")?.as_str()?, target.get("partition")?.as_i64()? as i32);
        let end = target.get("end")?.as_i64()?;
        let now = ends_now.get(&tp).copied().unwrap_or(end);
        let landed = (now - end).max(0) as usize;
        let mut n = 0;
        for r in target.get("records")?.as_array()? {
            for (i, p, o) in parse(r)? {
                all.push((i, p, o, n < landed));
                n += 1;
            }
        }
    }
    for r in batch.get("skipped")?.as_array()? {
        for (i, p, o) in parse(r)? {
            all.push((i, p, o, true));
        }
    }
    all.sort_by_key(|(i, ..)| *i);
    let mut out: Vec<(SourceMap, SourceMap)> = Vec::new();
    // Notes written before `previous` existed have none.
    for entry in batch.get("previous").and_then(Json::as_array).map(Vec::as_slice).unwrap_or_default() {
        let pair = entry.as_array()?;
        out.push((pair.first()?.as_object()?.clone(), pair.get(1)?.as_object()?.clone()));
    }
    for (pidx, partition) in partitions.iter().enumerate() {
        let mut last = None;
        for (_, _, offset, landed) in all.iter().filter(|(_, p, ..)| *p == pidx) {
            if !landed {
                break;
            }
            last = Some(offset);
        }
        if let Some(offset) = last {
            match out.iter_mut().find(|(p, _)| p == partition) {
                Some(entry) => entry.1 = offset.clone(),
                None => out.push((partition.clone(), offset.clone())),
            }
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
        let (o1, o2, o3, o4) = (off(1).into(), off(2).into(), off(3).into(), off(4).into());
        let batch = pending_batch(
            &[Arc::new(p.clone())],
            &[(tp.clone(), 10, PendingRecords::of([(0, 0, &o1), (2, 0, &o3), (3, 0, &o4)]))],
            &PendingRecords::of([(1, 0, &o2)]),
            &[],
        );
        let batch: Json = serde_json::from_str(&batch).unwrap();
        let at = |end: i64| recover_pending(&batch, &BTreeMap::from([(tp.clone(), end)])).unwrap();
        assert_eq!(at(10), vec![]);
        assert_eq!(at(11), vec![(p.clone(), off(2))]);
        assert_eq!(at(12), vec![(p.clone(), off(3))]);
        assert_eq!(at(13), vec![(p.clone(), off(4))]);
    }

    #[test]
    fn a_pending_batch_keeps_the_previous_batch_offsets_its_records_do_not_replace() {
        let (a, b) = (map(json!({"filename": "a"})), map(json!({"filename": "b \"q\""})));
        let off = |n: i64| map(json!({"position": n, "inode": 7}));
        let tp = TopicPartition::new("t\u{e9}", 3);
        let (a5, a6) = (off(5).into(), off(6).into());
        let batch = pending_batch(
            &[Arc::new(a.clone())],
            &[(tp.clone(), 0, PendingRecords::of([(0, 0, &a5), (1, 0, &a6)]))],
            &PendingRecords::of([]),
            &[(a.clone(), off(4)), (b.clone(), off(9))],
        );
        let batch: Json = serde_json::from_str(&batch).unwrap();
        let at = |end: i64| recover_pending(&batch, &BTreeMap::from([(tp.clone(), end)])).unwrap();
        assert_eq!(at(0), vec![(a.clone(), off(4)), (b.clone(), off(9))]);
        assert_eq!(at(1), vec![(a.clone(), off(5)), (b.clone(), off(9))]);
        assert_eq!(at(7), vec![(a.clone(), off(6)), (b.clone(), off(9))]);
    }

    #[test]
    fn runs_of_integer_offsets_recover_as_offsets_written_one_by_one() {
        const FIELDS: &[&str] = &["position", "inode"];
        const OTHER: &[&str] = &["lsn"];
        let (a, b) = (Arc::new(map(json!({"file": "a"}))), Arc::new(map(json!({"file": "b"}))));
        // Batch indices 0..12: partition a, then b, a skip, another
        // field set, a map offset, and a wrap-around difference.
        let offsets: Vec<(usize, SourceOffset)> = vec![
            (0, SourceOffset::integers(FIELDS, [100, 7])),
            (0, SourceOffset::integers(FIELDS, [200, 7])),
            (0, SourceOffset::integers(FIELDS, [290, 7])),
            (1, SourceOffset::integers(FIELDS, [5, 9])),
            (1, SourceOffset::integers(FIELDS, [6, 9])), // skipped
            (1, SourceOffset::integers(FIELDS, [7, 9])),
            (0, SourceOffset::integers(OTHER, [1])),
            (0, SourceOffset::integers(OTHER, [2])),
            (0, SourceOffset::from(map(json!({"position": 400, "inode": 7})))),
            (0, SourceOffset::integers(FIELDS, [i64::MAX, 7])),
            (0, SourceOffset::integers(FIELDS, [i64::MIN, -1])),
            (1, SourceOffset::integers(FIELDS, [8, 9])),
        ];
        let tp = TopicPartition::new("t", 0);
        let pending: Vec<PendingRecord<'_>> =
            offsets.iter().enumerate().map(|(i, (p, o))| (i, *p, o)).collect();
        let kept: Vec<PendingRecord<'_>> = pending.iter().copied().filter(|(i, ..)| *i != 4).collect();
        let partitions = [a.clone(), b.clone()];
        let compact = pending_batch(
            &partitions,
            &[(tp.clone(), 0, PendingRecords::of(kept.clone()))],
            &PendingRecords::of([pending[4]]),
            &[],
        );
        // The same offsets as maps are written one record at a time.
        let as_maps: Vec<SourceOffset> =
            offsets.iter().map(|(_, o)| SourceOffset::from(o.to_map())).collect();
        let one_by_one: Vec<PendingRecord<'_>> =
            kept.iter().map(|(i, p, _)| (*i, *p, &as_maps[*i])).collect();
        let plain = pending_batch(
            &partitions,
            &[(tp.clone(), 0, PendingRecords::of(one_by_one))],
            &PendingRecords::of([(4, 1, &as_maps[4])]),
            &[],
        );
        assert!(compact.contains("\"run\""), "{compact}");
        let (compact, plain): (Json, Json) =
            (serde_json::from_str(&compact).unwrap(), serde_json::from_str(&plain).unwrap());
        // A long run costs a few bytes per record.
        let lines: Vec<SourceOffset> =
            (1..=10_000).map(|n| SourceOffset::integers(FIELDS, [n * 100, 7])).collect();
        let run: Vec<PendingRecord<'_>> = lines.iter().enumerate().map(|(i, o)| (i, 0, o)).collect();
        let long = pending_batch(
            &partitions[..1],
            &[(tp.clone(), 0, PendingRecords::of(run))],
            &PendingRecords::of([]),
            &[],
        );
        assert!(long.len() < 10_000 * 8, "{} bytes", long.len());
        for landed in 0..=kept.len() as i64 {
            let ends = BTreeMap::from([(tp.clone(), landed)]);
            let got = recover_pending(&compact, &ends).unwrap();
            assert_eq!(got, recover_pending(&plain, &ends).unwrap(), "{landed} landed");
            if landed == kept.len() as i64 {
                assert_eq!(
                    got,
                    vec![
                        (SourceMap::clone(&a), offsets[10].1.to_map()),
                        (SourceMap::clone(&b), offsets[11].1.to_map())
                    ]
                );
            }
        }
    }

    #[test]
    fn a_note_without_previous_still_recovers() {
        let p = map(json!({"filename": "a"}));
        let batch = json!({"partitions": [p], "skipped": [],
            "targets": [{"topic": "t", "partition": 0, "end": 2, "records": [[0, 0, {"position": 1}]]}]});
        let ends = BTreeMap::from([(TopicPartition::new("t", 0), 3)]);
        assert_eq!(recover_pending(&batch, &ends).unwrap(), vec![(p, map(json!({"position": 1})))]);
    }
}
