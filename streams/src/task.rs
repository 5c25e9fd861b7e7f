//! [`StreamTask`]: one sub-topology instantiated for one input partition,
//! with its state stores.
//!
//! # Runtime-facing API
//!
//! The runtime drives a task with:
//!
//! * [`process`](StreamTask::process) for each input record; after a
//!   record that took a store's cache over its budget, the task flushes its
//!   stores itself (evict-by-flush).
//! * [`flush`](StreamTask::flush) on commit: caches → RocksDB, changelog
//!   records to the collector, merged results downstream. Then, once the
//!   producer has acknowledged everything (changelog offsets known),
//!   [`write_checkpoint`](StreamTask::write_checkpoint), then commit the
//!   input offsets.
//! * On assignment: [`changelog_partitions`](StreamTask::changelog_partitions)
//!   and [`checkpointed_offsets`](StreamTask::checkpointed_offsets) say
//!   what to restore from where (offset 0 when a partition has no entry);
//!   feed each changelog record to [`restore`](StreamTask::restore), then
//!   start processing.
//! * [`close`](StreamTask::close) after a final flush and checkpoint.
//!
//! # Checkpoints (Kafka's at-least-once behaviour)
//!
//! The checkpoint is kept across restarts: after a crash the stores are
//! restored from the last checkpointed offsets, not from 0.
//! [`write_checkpoint`](StreamTask::write_checkpoint) first flushes RocksDB's
//! memtables (the write-ahead log is off), so a checkpoint never claims more
//! than the disk holds. RocksDB may hold writes newer than the checkpoint;
//! replaying the changelog from the checkpoint rewrites them with the
//! logged values. As in Kafka under at-least-once, input records processed
//! after the last commit are processed again after a crash, so aggregates
//! may count them twice; exactly-once needs transactions (a later step).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::metrics::Counters;
use crate::processor::managed::ManagedNode;
use crate::processor::FlushListener;
use crate::processor::{ProcessorContext, Punctuation, PunctuationType, ScheduleId, TaskId};
use crate::record::{ConsumedRecord, RecordCollector, SinkRecord};
use crate::source_sink::SourceProcessor;
use crate::store::checkpoint::{self, Offsets};
use crate::store::state::{StoreHandle, TaskStores};
use crate::StreamsError;

/// The processors of one sub-topology for one partition, its stores, and
/// its stream time. Records are processed one at a time, each to completion.
pub(crate) struct StreamTask {
    id: TaskId,
    /// Topic → index into `sources`; a handful of entries, scanned linearly.
    topics: Vec<(String, usize)>,
    sources: Vec<Box<dyn SourceProcessor>>,
    /// Largest timestamp processed; `i64::MIN` before the first record.
    stream_time: i64,
    stores: TaskStores,
    /// Per store: the node forwarding its flushed entries, if any.
    listeners: Vec<Option<Box<dyn FlushListener>>>,
    /// `<state.dir>/<application.id>/<task>`, for stateful tasks.
    state_dir: Option<PathBuf>,
    /// The instance's counters.
    metrics: Arc<Counters>,
    /// Records processed since the last [`report_metrics`](Self::report_metrics).
    unreported: u64,
    /// Processor API nodes: initialized before the first record,
    /// punctuated, closed with the task.
    managed: Vec<ManagedNode>,
    /// Whether the managed nodes were initialized.
    initialized: bool,
    /// Their punctuations.
    schedules: Vec<Schedule>,
}

/// A punctuation a managed node scheduled.
struct Schedule {
    /// Index into the task's managed nodes.
    node: usize,
    id: ScheduleId,
    interval: i64,
    kind: PunctuationType,
    /// When it fires next (stream time or wall-clock ms).
    next: i64,
}

impl StreamTask {
    pub(crate) fn new(id: TaskId, sources: Vec<(Vec<String>, Box<dyn SourceProcessor>)>) -> Self {
        let mut topics = Vec::new();
        let mut processors = Vec::with_capacity(sources.len());
        for (index, (source_topics, source)) in sources.into_iter().enumerate() {
            topics.extend(source_topics.into_iter().map(|t| (t, index)));
            processors.push(source);
        }
        StreamTask {
            id,
            topics,
            sources: processors,
            stream_time: i64::MIN,
            stores: TaskStores::default(),
            listeners: Vec::new(),
            state_dir: None,
            metrics: Arc::default(),
            unreported: 0,
            managed: Vec::new(),
            initialized: false,
            schedules: Vec::new(),
        }
    }

    /// The task's stream time (`i64::MIN` before any record).
    pub(crate) fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// Starts the task from a stream time committed before (records older
    /// than its windows' grace are then late, as before the restart).
    pub(crate) fn resume_stream_time(&mut self, stream_time: i64) {
        self.stream_time = self.stream_time.max(stream_time);
    }

    /// Gives the task its Processor API nodes.
    pub(crate) fn with_managed(mut self, managed: Vec<ManagedNode>) -> Self {
        self.managed = managed;
        self
    }

    /// A context for calls that are not about an input record (init and
    /// punctuations): no topic, offset -1.
    fn bare_context<'a>(
        id: TaskId,
        stores: &'a mut TaskStores,
        stream_time: i64,
        collector: &'a mut dyn RecordCollector,
        metrics: &'a Counters,
    ) -> ProcessorContext<'a> {
        ProcessorContext {
            task: id,
            topic: "",
            topic_index: 0,
            stores,
            partition: id.partition,
            offset: -1,
            stream_time,
            collector,
            metrics,
            scheduling: None,
        }
    }

    /// Initializes the managed nodes once, collecting their schedules;
    /// `now_ms` is the wall clock, where wall-clock schedules start.
    pub(crate) fn init_processors(
        &mut self,
        now_ms: i64,
        collector: &mut dyn RecordCollector,
    ) -> Result<(), StreamsError> {
        if self.initialized {
            return Ok(());
        }
        self.initialized = true;
        let mut next_id = 0u32;
        for (index, managed) in self.managed.iter().enumerate() {
            let mut ctx = Self::bare_context(
                self.id,
                &mut self.stores,
                self.stream_time,
                &mut *collector,
                &self.metrics,
            );
            ctx.scheduling = Some((Vec::new(), next_id));
            managed.node.lock().unwrap_or_else(std::sync::PoisonError::into_inner).init(&mut ctx)?;
            let (requests, next) = ctx.scheduling.take().unwrap_or_default();
            next_id = next;
            for (id, interval, kind) in requests {
                let next = match kind {
                    // Kafka starts stream-time schedules at 0: the first
                    // record fires them.
                    PunctuationType::StreamTime => 0,
                    PunctuationType::WallClockTime => now_ms.saturating_add(interval),
                };
                self.schedules.push(Schedule { node: index, id, interval, kind, next });
            }
        }
        Ok(())
    }

    /// Fires the due schedules of `kind` at `now` (stream time or wall
    /// clock): each at most once, then due again `interval` later (or
    /// `interval` after `now` when it is late by more).
    fn punctuate(
        &mut self,
        kind: PunctuationType,
        now: i64,
        collector: &mut dyn RecordCollector,
    ) -> Result<(), StreamsError> {
        for i in 0..self.schedules.len() {
            let schedule = &self.schedules[i];
            if schedule.kind != kind || schedule.next > now {
                continue;
            }
            let (node, id, interval) = (schedule.node, schedule.id, schedule.interval);
            let mut next = schedule.next.saturating_add(interval);
            if next <= now {
                next = now.saturating_add(interval);
            }
            self.schedules[i].next = next;
            let managed = &self.managed[node];
            let mut ctx = Self::bare_context(
                self.id,
                &mut self.stores,
                self.stream_time,
                &mut *collector,
                &self.metrics,
            );
            let punctuation = Punctuation { id, kind, timestamp: now };
            managed
                .node
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .punctuate(&mut ctx, punctuation)?;
        }
        Ok(())
    }

    /// Fires the wall-clock schedules due at `now_ms` (initializing the
    /// managed nodes first if no record came yet).
    pub(crate) fn punctuate_wall_clock(
        &mut self,
        now_ms: i64,
        collector: &mut dyn RecordCollector,
    ) -> Result<(), StreamsError> {
        if self.managed.is_empty() {
            return Ok(());
        }
        self.init_processors(now_ms, collector)?;
        self.punctuate(PunctuationType::WallClockTime, now_ms, collector)?;
        if self.stores.over_budget {
            self.flush(collector)?;
        }
        Ok(())
    }

    /// Adds the records processed since the last call to the instance's
    /// counters (one atomic add per batch instead of per record).
    pub(crate) fn report_metrics(&mut self) {
        if self.unreported > 0 {
            self.metrics.add_processed(self.unreported);
            self.unreported = 0;
        }
    }

    /// Makes the task count into the instance's shared counters.
    pub(crate) fn with_metrics(mut self, metrics: Arc<Counters>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Gives the task its stores (in slot order), their flush listeners and
    /// its state directory.
    pub(crate) fn with_stores(
        mut self,
        stores: TaskStores,
        listeners: Vec<Option<Box<dyn FlushListener>>>,
        state_dir: PathBuf,
    ) -> Self {
        self.stores = stores;
        self.listeners = listeners;
        self.state_dir = Some(state_dir);
        self
    }

    /// The task's id.
    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    /// Topics this task reads.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|(t, _)| t.as_str())
    }

    /// The task's stores (for tests and interactive reads).
    pub(crate) fn stores(&self) -> &TaskStores {
        &self.stores
    }

    /// Runs one record through the sub-topology. Stream time advances to
    /// the record's timestamp first, so processors see it included. If a
    /// store's cache went over its budget, the task's stores are flushed
    /// afterwards (changelog and downstream records go to `collector`).
    ///
    /// Records with negative timestamps are rejected, like Kafka's default
    /// `FailOnInvalidTimestamp` extractor.
    pub(crate) fn process(
        &mut self,
        record: &ConsumedRecord<'_>,
        collector: &mut dyn RecordCollector,
    ) -> Result<(), StreamsError> {
        let Some(topic_index) = self.topics.iter().position(|(t, _)| t == record.topic) else {
            return Err(StreamsError::UnknownTopic {
                topic: record.topic.to_string(),
                known: self.topics().map(str::to_string).collect(),
            });
        };
        if record.timestamp < 0 {
            return Err(StreamsError::InvalidTimestamp {
                topic: record.topic.to_string(),
                partition: record.partition,
                offset: record.offset,
                timestamp: record.timestamp,
            });
        }
        if !self.initialized && !self.managed.is_empty() {
            self.init_processors(wall_clock_ms(), collector)?;
        }
        self.stream_time = self.stream_time.max(record.timestamp);
        let mut ctx = ProcessorContext {
            task: self.id,
            topic: record.topic,
            topic_index,
            stores: &mut self.stores,
            partition: record.partition,
            offset: record.offset,
            stream_time: self.stream_time,
            collector: &mut *collector,
            metrics: &self.metrics,
            scheduling: None,
        };
        self.sources[self.topics[topic_index].1].process_consumed(&mut ctx, record)?;
        self.unreported += 1;
        if !self.schedules.is_empty() {
            self.punctuate(PunctuationType::StreamTime, self.stream_time, collector)?;
        }
        if self.stores.over_budget {
            self.flush(collector)?;
        }
        Ok(())
    }

    /// Flushes every store's record cache: the latest value of each key
    /// written since the last flush goes to RocksDB (one batch per store),
    /// to the store's changelog topic (partition = the task's partition; a
    /// delete is a tombstone) and downstream as one merged update. Stores
    /// are flushed in topological order, repeated until no cache is dirty,
    /// so updates a flush causes in downstream stores are flushed too.
    ///
    /// # Errors
    ///
    /// RocksDB failures ([`StreamsError::Store`]), collector errors, and
    /// errors of the processors the flushed records reach.
    pub(crate) fn flush(&mut self, collector: &mut dyn RecordCollector) -> Result<(), StreamsError> {
        while let Some(slot) = self.stores.slots.iter().position(|s| !s.cache.is_empty(&self.stores.windows))
        {
            for index in slot..self.stores.slots.len() {
                self.flush_store(StoreHandle(index), collector)?;
            }
        }
        self.stores.over_budget = false;
        Ok(())
    }

    fn flush_store(
        &mut self,
        store: StoreHandle,
        collector: &mut dyn RecordCollector,
    ) -> Result<(), StreamsError> {
        let StreamTask { id, topics, stores, listeners, stream_time, metrics, .. } = self;
        let slot = &mut stores.slots[store.0];
        if slot.cache.is_empty(&stores.windows) {
            return Ok(());
        }
        let mut entries = slot.cache.drain(&mut stores.windows);
        slot.last_miss.get_mut().take();
        let olds = match listeners[store.0] {
            Some(_) => entries
                .iter_mut()
                .map(|e| match e.old.take() {
                    Some(known) => Ok(known),
                    None => slot.rocks.get(&e.key),
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        slot.rocks.write(entries.iter().map(|e| (e.key.as_slice(), e.value.as_deref())))?;
        for entry in &entries {
            collector.send(SinkRecord {
                topic: &slot.changelog,
                partition: Some(id.partition),
                key: Some(&entry.key),
                value: entry.value.as_deref(),
                timestamp: entry.context.timestamp,
                headers: &[],
            })?;
        }
        let Some(listener) = listeners[store.0].as_mut() else { return Ok(()) };
        for (entry, old) in entries.into_iter().zip(olds) {
            if entry.value.is_none() && old.is_none() {
                continue;
            }
            let mut ctx = ProcessorContext {
                task: *id,
                topic: &topics[entry.context.topic].0,
                topic_index: entry.context.topic,
                stores,
                partition: id.partition,
                offset: entry.context.offset,
                stream_time: *stream_time,
                collector: &mut *collector,
                metrics,
                scheduling: None,
            };
            let (value, timestamp, headers) =
                (entry.value.as_deref(), entry.context.timestamp, entry.context.headers);
            listener.apply(&mut ctx, &entry.key, value, old.as_deref(), timestamp, headers)?;
        }
        Ok(())
    }
}

/// The system clock in ms since the epoch.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The API the runtime (`streams/src/runtime`) drives; see the module docs.
#[cfg_attr(not(test), allow(dead_code, reason = "called by the runtime, which lands next"))]
impl StreamTask {
    /// Splits `bytes` of record cache evenly among the task's stores (the
    /// runtime gives each task its share of `statestore.cache.max.bytes`).
    /// Stores with caching off keep a budget of 0 (every update flushed
    /// after its record).
    pub(crate) fn set_cache_max_bytes(&mut self, bytes: usize) {
        self.stores.set_cache_max_bytes(bytes);
    }

    /// The changelog topic-partitions of the task's stores, resolved
    /// (`<application.id>-<store>-changelog`, the task's partition).
    pub(crate) fn changelog_partitions(&self) -> Vec<(String, i32)> {
        self.stores.slots.iter().map(|s| (s.changelog.clone(), self.id.partition)).collect()
    }

    fn checkpoint_path(&self) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|d| d.join(".checkpoint"))
    }

    /// The offsets in the task's checkpoint file: where restoring each
    /// changelog partition starts. Empty for a stateless task or when no
    /// checkpoint was written (restore from offset 0).
    ///
    /// # Errors
    ///
    /// [`StreamsError::Checkpoint`] naming the file when it cannot be read
    /// or is corrupt (the runtime may then wipe the stores and restore
    /// from 0).
    pub(crate) fn checkpointed_offsets(&self) -> Result<HashMap<(String, i32), i64>, StreamsError> {
        match self.checkpoint_path() {
            Some(path) => checkpoint::read(&path),
            None => Ok(Offsets::new()),
        }
    }

    /// Persists RocksDB's memtables, then replaces the checkpoint file with
    /// `offsets` (changelog topic-partition → next offset to restore from),
    /// atomically. Call after [`flush`](StreamTask::flush) once the
    /// collector has delivered the changelog records. A no-op for a
    /// stateless task.
    ///
    /// # Errors
    ///
    /// [`StreamsError::Store`] when RocksDB cannot flush,
    /// [`StreamsError::Checkpoint`] when the file cannot be written.
    pub(crate) fn write_checkpoint(&self, offsets: &HashMap<(String, i32), i64>) -> Result<(), StreamsError> {
        let Some(path) = self.checkpoint_path() else { return Ok(()) };
        for slot in &self.stores.slots {
            slot.rocks.flush()?;
        }
        checkpoint::write(&path, offsets)
    }

    /// Applies one changelog record to the store logging to
    /// `changelog_topic`: a put, or a delete when `value` is `None`. Writes
    /// RocksDB directly: nothing is cached, logged or forwarded.
    ///
    /// # Errors
    ///
    /// [`StreamsError::UnknownChangelog`] when no store of the task logs to
    /// the topic; [`StreamsError::Store`] when RocksDB fails.
    pub(crate) fn restore(
        &mut self,
        changelog_topic: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StreamsError> {
        let id = self.id;
        let stores = &mut self.stores;
        let slot = stores.slots.iter_mut().find(|s| s.changelog == changelog_topic).ok_or_else(|| {
            StreamsError::UnknownChangelog { task: id.to_string(), topic: changelog_topic.to_string() }
        })?;
        slot.cache.bypassed(&mut stores.windows, key);
        slot.rocks.write([(key, value)])
    }

    /// Persists RocksDB's memtables and closes the stores. Cached updates
    /// not [`flush`](StreamTask::flush)ed are dropped (a dirty close: their
    /// input records were not committed and will be processed again).
    ///
    /// # Errors
    ///
    /// [`StreamsError::Store`] when RocksDB cannot flush; the stores are
    /// closed anyway.
    pub(crate) fn close(self) -> Result<(), StreamsError> {
        for managed in &self.managed {
            managed.node.lock().unwrap_or_else(std::sync::PoisonError::into_inner).close();
        }
        let mut result = Ok(());
        for slot in &self.stores.slots {
            if let Err(e) = slot.rocks.flush() {
                result = result.and(Err(e));
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Consumed, Grouped, Materialized, Serdes, StreamsBuilder, StreamsConfig, Topology};

    /// Keeps what was sent: topic, partition, key, value.
    #[derive(Default)]
    struct Sent(Vec<Sent1>);

    /// Topic, partition, key, value.
    type Sent1 = (String, Option<i32>, Option<Vec<u8>>, Option<Vec<u8>>);

    impl RecordCollector for Sent {
        fn send(&mut self, r: SinkRecord<'_>) -> Result<(), StreamsError> {
            self.0.push((
                r.topic.to_string(),
                r.partition,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ));
            Ok(())
        }
    }

    fn counting_topology() -> Topology {
        let mut b = StreamsBuilder::new();
        b.stream::<String, String>("in", Consumed::with(Serdes::string(), Serdes::string()))
            .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
            .count(Materialized::as_("counts"))
            .to_stream()
            .to("out", crate::Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
        b.build().unwrap()
    }

    fn record<'a>(key: &'a [u8], offset: i64) -> ConsumedRecord<'a> {
        ConsumedRecord {
            topic: "in",
            partition: 3,
            offset,
            timestamp: 10,
            key: Some(key),
            value: Some(b"v"),
            headers: &[],
        }
    }

    fn count(task: &StreamTask, key: &[u8]) -> Option<i64> {
        let store = task.stores().find("counts").unwrap();
        task.stores().get(store, key).unwrap().map(|b| i64::from_be_bytes(b.as_ref().try_into().unwrap()))
    }

    #[test]
    fn flush_writes_rocksdb_the_changelog_and_one_merged_downstream_record() {
        let dir = tempfile::tempdir().unwrap();
        let config = StreamsConfig::new("app").with_state_dir(dir.path());
        let mut task = counting_topology().build_task(0, 3, &config).unwrap();
        assert_eq!(task.changelog_partitions(), vec![("app-counts-changelog".to_string(), 3)]);
        let mut sent = Sent::default();
        for offset in 0..3 {
            task.process(&record(b"k", offset), &mut sent).unwrap();
        }
        assert!(sent.0.is_empty(), "updates wait in the cache until a flush");
        assert_eq!(count(&task, b"k"), Some(3), "reads see cached updates");
        task.flush(&mut sent).unwrap();
        let three = Some(3i64.to_be_bytes().to_vec());
        assert_eq!(
            sent.0,
            vec![
                ("app-counts-changelog".to_string(), Some(3), Some(b"k".to_vec()), three.clone()),
                ("out".to_string(), None, Some(b"k".to_vec()), three),
            ]
        );
        assert!(dir.path().join("app").join("0_3").join("counts").is_dir());
    }

    #[test]
    fn a_full_cache_is_flushed_after_the_record_that_filled_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = StreamsConfig::new("app").with_state_dir(dir.path()).with_cache_max_bytes(0);
        let mut task = counting_topology().build_task(0, 0, &config).unwrap();
        let mut sent = Sent::default();
        task.process(&record(b"k", 0), &mut sent).unwrap();
        assert_eq!(sent.0.len(), 2, "changelog and downstream record without an explicit flush");
        task.set_cache_max_bytes(1 << 20);
        task.process(&record(b"k", 1), &mut sent).unwrap();
        assert_eq!(sent.0.len(), 2, "a larger budget caches again");
    }

    #[test]
    fn restore_applies_changelog_bytes_without_emitting() {
        let dir = tempfile::tempdir().unwrap();
        let config = StreamsConfig::new("app").with_state_dir(dir.path());
        let mut task = counting_topology().build_task(0, 1, &config).unwrap();
        task.restore("app-counts-changelog", b"a", Some(&7i64.to_be_bytes())).unwrap();
        task.restore("app-counts-changelog", b"b", Some(&1i64.to_be_bytes())).unwrap();
        task.restore("app-counts-changelog", b"b", None).unwrap();
        assert_eq!((count(&task, b"a"), count(&task, b"b")), (Some(7), None));
        let err = task.restore("app-other-changelog", b"a", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "task 0_1 has no store logging to changelog topic \"app-other-changelog\""
        );
        // Processing continues from the restored state.
        let mut sent = Sent::default();
        let mut rec = record(b"a", 0);
        rec.partition = 1;
        task.process(&rec, &mut sent).unwrap();
        assert_eq!(count(&task, b"a"), Some(8));
        task.flush(&mut sent).unwrap();
        task.close().unwrap();
        let task = counting_topology().build_task(0, 1, &config).unwrap();
        assert_eq!(count(&task, b"a"), Some(8), "reopened from disk");
    }

    #[test]
    fn checkpoint_round_trips_through_the_task_and_corruption_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = StreamsConfig::new("app").with_state_dir(dir.path());
        let task = counting_topology().build_task(0, 2, &config).unwrap();
        assert!(task.checkpointed_offsets().unwrap().is_empty());
        let offsets: HashMap<(String, i32), i64> = [(("app-counts-changelog".to_string(), 2), 42)].into();
        task.write_checkpoint(&offsets).unwrap();
        task.close().unwrap();
        let task = counting_topology().build_task(0, 2, &config).unwrap();
        assert_eq!(task.checkpointed_offsets().unwrap(), offsets, "kept across restarts (at-least-once)");
        let path = dir.path().join("app").join("0_2").join(".checkpoint");
        std::fs::write(&path, "0\n1\napp-counts-changelog two 42\n").unwrap();
        let err = task.checkpointed_offsets().unwrap_err().to_string();
        assert_eq!(err, format!("checkpoint file {}: line 3: bad partition \"two\"", path.display()));
    }

    #[test]
    fn stores_of_different_tasks_share_the_process_memory_bound() {
        let dir = tempfile::tempdir().unwrap();
        let config = StreamsConfig::new("app").with_state_dir(dir.path());
        let a = counting_topology().build_task(0, 0, &config).unwrap();
        let b = counting_topology().build_task(0, 1, &config).unwrap();
        let (sa, sb) = (&a.stores().slots[0].rocks, &b.stores().slots[0].rocks);
        assert_ne!(sa.path(), sb.path());
        assert!(Arc::ptr_eq(sa.memory(), sb.memory()));
    }

    #[test]
    fn stateless_tasks_have_no_state_dir_or_changelogs() {
        let mut b = StreamsBuilder::new();
        b.stream::<String, String>("in", Consumed::with(Serdes::string(), Serdes::string()))
            .to("out", crate::Produced::with(Serdes::string(), Serdes::string()));
        let dir = tempfile::tempdir().unwrap();
        let config = StreamsConfig::new("app").with_state_dir(dir.path());
        let task = b.build().unwrap().build_task(0, 0, &config).unwrap();
        assert!(task.changelog_partitions().is_empty());
        task.write_checkpoint(&HashMap::new()).unwrap();
        assert!(!dir.path().join("app").exists());
    }

    #[test]
    fn a_window_store_restores_from_its_changelog_into_segments() {
        let topology = || {
            let mut b = StreamsBuilder::new();
            b.stream::<String, String>("in", Consumed::with(Serdes::string(), Serdes::string()))
                .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
                .windowed_by(crate::TimeWindows::of_size_with_no_grace(std::time::Duration::from_secs(60)))
                .count(Materialized::as_("w"));
            b.build().unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let config = StreamsConfig::new("app").with_state_dir(dir.path());
        let mut task = topology().build_task(0, 0, &config).unwrap();
        let mut sent = Sent::default();
        for (offset, ts) in [(0, 1_000), (1, 2_000), (2, 61_000)] {
            let mut rec = record(b"k", offset);
            rec.partition = 0;
            rec.timestamp = ts;
            task.process(&rec, &mut sent).unwrap();
        }
        task.flush(&mut sent).unwrap();
        let logged: Vec<_> = sent.0.iter().filter(|r| r.0 == "app-w-changelog").cloned().collect();
        assert_eq!(logged.len(), 2, "one record per window: {logged:?}");
        drop(task);
        // A fresh state directory: everything comes from the changelog.
        let dir = tempfile::tempdir().unwrap();
        let config = StreamsConfig::new("app").with_state_dir(dir.path());
        let mut task = topology().build_task(0, 0, &config).unwrap();
        for (topic, _, key, value) in &logged {
            task.restore(topic, key.as_deref().unwrap(), value.as_deref()).unwrap();
        }
        let slot = &task.stores().slots[0];
        assert_eq!(slot.rocks.segment_starts(), vec![0, 60_000]);
        let key0 = [b"k".as_slice(), &0i64.to_be_bytes(), &[0; 4]].concat();
        let store = task.stores().find("w").unwrap();
        let count = task
            .stores()
            .get(store, &key0)
            .unwrap()
            .map(|b| i64::from_be_bytes(b.as_ref().try_into().unwrap()));
        assert_eq!(count, Some(2));
    }
}
