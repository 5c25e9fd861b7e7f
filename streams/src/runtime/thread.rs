//! A stream thread: one group member that owns the tasks of the
//! partitions assigned to it and runs them.
//!
//! The loop: poll → adopt the assignment (create tasks for new partitions,
//! close tasks whose partitions left) → buffer records per task → process
//! them in timestamp order, handing output to the producer after each input
//! record → every `commit.interval.ms`, wait for output and commit the
//! consumed offsets. A partition whose buffer holds
//! `buffered.records.per.partition` records is paused until it drains, so
//! memory stays bounded whatever the input rate.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_core::client::{AssignmentStrategy, Cluster, ConsumerConfig, OffsetReset, ProducerConfig};
use runnel_core::topic::TopicPartition;
use tracing::{debug, info, warn};

use super::client_error;
use super::collector::{OutputSender, PendingOutput};
use super::queues::TaskQueues;
use crate::config::StreamsConfig;
use crate::metrics::Counters;
use crate::processor::TaskId;
use crate::record::ConsumedRecord;
use crate::store::global::GlobalStores;
use crate::task::StreamTask;
use crate::topology::Topology;
use crate::StreamsError;

/// Input records one task processes before the thread looks at the others
/// and at the clock.
const RECORDS_PER_TURN: usize = 1000;

/// What a stream thread needs to run.
pub(crate) struct ThreadSpec {
    pub(crate) name: String,
    pub(crate) topology: Arc<Topology>,
    pub(crate) config: StreamsConfig,
    pub(crate) cluster: Cluster,
    pub(crate) shutdown: Arc<AtomicBool>,
    /// The instance's metrics, shared by all its tasks.
    pub(crate) metrics: Arc<Counters>,
    /// The instance's global stores, read by global-table joins.
    pub(crate) globals: Arc<GlobalStores>,
    /// Holds processing back until every thread has joined the group.
    pub(crate) startup: Arc<StartupBarrier>,
    /// The thread's index in the instance, from 0.
    pub(crate) index: usize,
    /// Interactive reads waiting for this thread's stores.
    pub(crate) queries: Arc<super::queries::QueryInbox>,
}

/// How long threads wait for their siblings before processing anyway (a
/// thread may get no partition when there are more threads than tasks).
const STARTUP_WAIT: Duration = Duration::from_secs(5);

/// The stream threads of one instance start together: the first thread to
/// join the group gets every partition, and would process records until
/// the next thread's join moves half of them, and the new owners would
/// process those records again. So no thread processes until every thread
/// holds partitions and no partition is held by two threads (or
/// [`STARTUP_WAIT`] has passed).
#[derive(Debug)]
pub(crate) struct StartupBarrier {
    /// Each thread's assignment, by thread index.
    assignments: std::sync::Mutex<Vec<Vec<TopicPartition>>>,
    passed: AtomicBool,
    deadline: Instant,
}

impl StartupBarrier {
    pub(crate) fn new(threads: usize) -> Self {
        StartupBarrier {
            assignments: std::sync::Mutex::new(vec![Vec::new(); threads]),
            passed: AtomicBool::new(false),
            deadline: Instant::now() + STARTUP_WAIT,
        }
    }

    /// Whether thread `index`, holding `assignment`, may process.
    fn ready(&self, index: usize, assignment: &[TopicPartition]) -> bool {
        if self.passed.load(Ordering::Acquire) {
            return true;
        }
        let mut all = self.assignments.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = all.get_mut(index) {
            slot.clear();
            slot.extend_from_slice(assignment);
        }
        let held: usize = all.iter().map(Vec::len).sum();
        let distinct: BTreeSet<&TopicPartition> = all.iter().flatten().collect();
        let settled = all.iter().all(|a| !a.is_empty()) && distinct.len() == held;
        if settled || Instant::now() >= self.deadline {
            self.passed.store(true, Ordering::Release);
            return true;
        }
        false
    }
}

/// A task and the bookkeeping the thread keeps for it.
struct ActiveTask {
    task: StreamTask,
    /// Changelog partition → next offset to restore from, as last checkpointed.
    checkpoint: HashMap<(String, i32), i64>,
    queues: TaskQueues,
    /// Next offset to commit per input partition (a task has a handful).
    consumed: Vec<(Arc<str>, i32, i64)>,
    /// The task's input partitions, in the task's topic order.
    inputs: Vec<TopicPartition>,
    /// Per input: found empty while others had records, since when (see
    /// [`may_process`]).
    waiting: Vec<Option<Instant>>,
}

/// Runs the thread until `spec.shutdown` is set or an error stops it.
///
/// # Errors
/// The first processing, client or commit error; the caller's handler
/// decides what happens next.
pub(crate) async fn run(spec: &ThreadSpec) -> Result<(), StreamsError> {
    let app = spec.config.application_id().to_string();
    let mut consumer_config = ConsumerConfig::group(app.clone())
        .auto_commit(false)
        .offset_reset(OffsetReset::Earliest)
        .strategy(AssignmentStrategy::Range);
    consumer_config.client_id = format!("{}-consumer", spec.name);
    consumer_config.max_poll_records = spec.config.max_poll_records();
    for (key, value) in spec.config.consumer_overrides() {
        consumer_config = consumer_config.set(key, value).map_err(client_error("consumer setting"))?;
    }
    // `application.server` rides in the client id, whatever it was set to.
    if let Some(server) = spec.config.application_server() {
        if !consumer_config.client_id.ends_with(&format!("@{server}")) {
            consumer_config.client_id = format!("{}@{server}", consumer_config.client_id);
        }
    }
    let mut consumer = spec.cluster.consumer(consumer_config).map_err(client_error("create consumer"))?;
    let topics = spec.topology.source_topics(&app);
    consumer.subscribe(topics.clone()).map_err(client_error("subscribe"))?;
    let producer_config =
        ProducerConfig { client_id: format!("{}-producer", spec.name), ..Default::default() };
    let producer =
        spec.cluster.producer(producer_config.linger_ms(5)).map_err(client_error("create producer"))?;
    let mut sender = OutputSender::new(producer);
    let mut pending = PendingOutput::default();

    // Which sub-topology reads each topic.
    let readers: HashMap<String, usize> = (0..spec.topology.subtopology_count())
        .flat_map(|s| spec.topology.subtopology_source_topics(s, &app).into_iter().map(move |t| (t, s)))
        .collect();
    let mut tasks: BTreeMap<TaskId, ActiveTask> = BTreeMap::new();
    let mut assignment: Vec<TopicPartition> = Vec::new();
    let mut paused: Vec<TopicPartition> = Vec::new();
    let buffer_limit = spec.config.buffered_records_per_partition();
    let task_idle = spec.config.max_task_idle();
    let commit_interval = spec.config.commit_interval();
    let mut last_commit = Instant::now();
    info!(thread = %spec.name, ?topics, "stream thread started");

    let result: Result<(), StreamsError> = async {
        while !spec.shutdown.load(Ordering::Relaxed) {
            let mut records =
                consumer.poll(Duration::from_millis(100)).await.map_err(client_error("poll"))?;
            let now_assigned = consumer.assignment();
            if now_assigned != assignment {
                adopt_assignment(spec, &readers, &now_assigned, &mut tasks, &mut sender, &mut consumer)
                    .await?;
                resume_after_rebalance(&mut consumer, &now_assigned, &mut tasks, &mut records)?;
                paused.retain(|tp| now_assigned.contains(tp));
                assignment = now_assigned;
            }
            // Records come in runs per partition: remember the last topic's
            // sub-topology rather than hashing every record's topic name.
            let mut last_topic: Option<(Arc<str>, Option<usize>)> = None;
            for record in records {
                let sub = match &last_topic {
                    Some((topic, sub)) if Arc::ptr_eq(topic, &record.topic) => *sub,
                    _ => {
                        let sub = readers.get(&*record.topic).copied();
                        last_topic = Some((Arc::clone(&record.topic), sub));
                        sub
                    }
                };
                let Some(sub) = sub else { continue };
                let id = TaskId { subtopology: sub as u32, partition: record.partition };
                // Records of a partition revoked during this poll are dropped:
                // its new owner reads them from the committed offset.
                if let Some(active) = tasks.get_mut(&id) {
                    active.queues.push(record);
                }
            }
            // Until every thread of the instance has joined the group, the
            // assignment is about to change: records wait in the buffers
            // (paused at the limit), so none is processed twice.
            if spec.startup.ready(spec.index, &assignment) {
                let now = crate::task::wall_clock_ms();
                for (id, active) in tasks.iter_mut() {
                    if may_process(active, *id, &consumer, task_idle) {
                        process_turn(active, task_idle.is_some(), &mut pending, &mut sender).await?;
                    }
                    // Wall-clock punctuations, whether records came or not.
                    active.task.punctuate_wall_clock(now, &mut pending)?;
                    sender.send_pending(&mut pending).await?;
                }
            }
            spec.queries.serve(tasks.values().map(|active| &active.task));
            apply_backpressure(&mut consumer, &tasks, &assignment, &mut paused, buffer_limit)?;
            if last_commit.elapsed() >= commit_interval {
                commit(&mut tasks, &mut sender, &mut consumer).await?;
                last_commit = Instant::now();
            }
        }
        // Clean shutdown: finish what is buffered, then commit it.
        for active in tasks.values_mut() {
            while !active.queues.is_empty() {
                process_turn(active, false, &mut pending, &mut sender).await?;
            }
        }
        commit(&mut tasks, &mut sender, &mut consumer).await?;
        for (id, active) in std::mem::take(&mut tasks) {
            active.task.close().map_err(|e| {
                warn!(task = %id, error = %e, "closing a task's stores failed");
                e
            })?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        // Do not commit after a failure: the failed record and everything
        // after the last commit are read again (at-least-once). Stores
        // close without flushing their caches.
        // The consumer leaves the group so a replacement thread, or
        // another instance, takes its partitions over without waiting for
        // the session timeout.
        for (_, active) in std::mem::take(&mut tasks) {
            let _ = active.task.close();
        }
        let _ = consumer.close().await;
        let _ = sender.close().await;
    } else {
        let _ = consumer.close().await;
        sender.close().await?;
    }
    info!(thread = %spec.name, ok = result.is_ok(), "stream thread stopped");
    result
}

/// After a rebalance the consumer may restart kept partitions from their
/// committed offsets (an eager rebalance revokes everything) while their
/// records still sit in the task buffers, which would process them twice.
/// So every buffered or just-fetched record is dropped and each partition
/// is sought to its first unprocessed offset: the oldest record dropped,
/// else the offset after the last processed one.
fn resume_after_rebalance(
    consumer: &mut runnel_core::client::Consumer,
    assigned: &[TopicPartition],
    tasks: &mut BTreeMap<TaskId, ActiveTask>,
    records: &mut Vec<runnel_core::client::ConsumerRecord>,
) -> Result<(), StreamsError> {
    let mut resume: HashMap<(Arc<str>, i32), i64> = HashMap::new();
    let mut earliest = |topic: &Arc<str>, partition: i32, offset: i64| {
        resume.entry((Arc::clone(topic), partition)).and_modify(|o| *o = (*o).min(offset)).or_insert(offset);
    };
    for record in records.drain(..) {
        earliest(&record.topic, record.partition, record.offset);
    }
    for active in tasks.values_mut() {
        for (topic, partition, head) in active.queues.clear() {
            earliest(&topic, partition, head);
        }
        for (topic, partition, next) in &active.consumed {
            earliest(topic, *partition, *next);
        }
    }
    for ((topic, partition), offset) in resume {
        let tp = TopicPartition::new(&*topic, partition);
        if assigned.contains(&tp) {
            consumer.seek(&tp, offset).map_err(client_error("seek after rebalance"))?;
        }
    }
    Ok(())
}

/// How long a task waits at most for records the cluster holds but the
/// consumer has not fetched yet, before it processes what it has (a
/// safeguard: a fetch normally delivers them within a poll).
const FETCH_WAIT_LIMIT: Duration = Duration::from_secs(5);

/// Whether a task may process its buffered records now (Kafka's
/// `max.task.idle.ms`, KIP-695). A task reading several partitions takes
/// their records in timestamp order, which it can only do while each has
/// records buffered. When one is empty, the task waits while the cluster
/// holds records of it that are not fetched yet (with `idle` = 0), and
/// with `idle` > 0 also up to `idle` for new ones; `None` never waits. So
/// a stream-table join reads the table's earlier records before the
/// stream's later ones, even right after the task starts.
fn may_process(
    active: &mut ActiveTask,
    id: TaskId,
    consumer: &runnel_core::client::Consumer,
    idle: Option<Duration>,
) -> bool {
    let Some(idle) = idle else { return true };
    if active.queues.is_empty() {
        active.waiting.fill(None);
        return true;
    }
    // Each empty partition waits on its own deadline, from when it was
    // first found empty until it has records again (Kafka's
    // `PartitionGroup`); past it, the task processes the others.
    let mut ready = true;
    for (input, waiting) in active.inputs.iter().zip(active.waiting.iter_mut()) {
        if active.queues.len_of(&input.topic, input.partition) > 0 {
            *waiting = None;
            continue;
        }
        let limit = match consumer.fetch_lag(input) {
            Some(0) if idle.is_zero() => {
                *waiting = None;
                continue;
            }
            Some(0) => idle,
            // Records to fetch, or a position not known yet.
            _ => FETCH_WAIT_LIMIT.max(idle),
        };
        let since = *waiting.get_or_insert_with(Instant::now);
        if since.elapsed() < limit {
            ready = false;
        } else {
            debug!(task = %id, topic = %input.topic, waited = ?since.elapsed(), "an input partition stayed empty; processing the others");
        }
    }
    ready
}

/// Processes up to [`RECORDS_PER_TURN`] buffered records of one task.
///
/// With `sync_inputs` (`max.task.idle.ms` >= 0), the turn ends after a
/// record that empties its partition's buffer while the task reads other
/// partitions: whether to go on is [`may_process`]'s call, before the
/// next record.
async fn process_turn(
    active: &mut ActiveTask,
    sync_inputs: bool,
    pending: &mut PendingOutput,
    sender: &mut OutputSender,
) -> Result<(), StreamsError> {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let several_inputs = sync_inputs && active.inputs.len() > 1;
    for _ in 0..RECORDS_PER_TURN {
        let Some((record, emptied)) = active.queues.pop() else { break };
        let last_of_partition = several_inputs && emptied;
        headers.clear();
        headers.extend(
            record.headers.iter().map(|h| (h.key.clone(), h.value.as_deref().unwrap_or_default().to_vec())),
        );
        let consumed = ConsumedRecord {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
        };
        let processed = active.task.process(&consumed, pending);
        if processed.is_err() {
            active.task.report_metrics();
        }
        processed?;
        let next = record.offset + 1;
        let same = |(t, p, _): &&mut (Arc<str>, i32, i64)| {
            *p == record.partition && (Arc::ptr_eq(t, &record.topic) || *t == record.topic)
        };
        match active.consumed.iter_mut().find(same) {
            Some((_, _, offset)) => *offset = next,
            None => active.consumed.push((record.topic, record.partition, next)),
        }
        if last_of_partition {
            break;
        }
    }
    // The turn's output goes to the producer in one hand-off; it is
    // confirmed before the next commit.
    sender.send_pending(pending).await?;
    active.task.report_metrics();
    Ok(())
}

/// Creates tasks for newly assigned partitions and closes tasks none of
/// whose partitions are assigned any more.
async fn adopt_assignment(
    spec: &ThreadSpec,
    readers: &HashMap<String, usize>,
    assigned: &[TopicPartition],
    tasks: &mut BTreeMap<TaskId, ActiveTask>,
    sender: &mut OutputSender,
    consumer: &mut runnel_core::client::Consumer,
) -> Result<(), StreamsError> {
    let wanted: BTreeSet<TaskId> = assigned
        .iter()
        .filter_map(|tp| {
            readers.get(&tp.topic).map(|&s| TaskId { subtopology: s as u32, partition: tp.partition })
        })
        .collect();
    let leaving: Vec<TaskId> = tasks.keys().filter(|id| !wanted.contains(id)).copied().collect();
    if !leaving.is_empty() {
        // Hand over cleanly when the group still accepts our commit; if it
        // does not (the rebalance already moved on), the new owner re-reads
        // from the last commit, which at-least-once allows.
        let mut closing: BTreeMap<TaskId, ActiveTask> =
            leaving.iter().filter_map(|id| tasks.remove_entry(id)).collect();
        if let Err(e) = commit(&mut closing, sender, consumer).await {
            warn!(thread = %spec.name, error = %e, "commit of revoked tasks failed; their new owner re-reads since the last commit");
        }
        for (id, active) in closing {
            if let Err(e) = active.task.close() {
                warn!(thread = %spec.name, task = %id, error = %e, "closing a task's stores failed");
            }
        }
        info!(thread = %spec.name, tasks = ?leaving, "closed revoked tasks");
    }
    let mut created = Vec::new();
    for id in &wanted {
        if tasks.contains_key(id) {
            continue;
        }
        created.push(*id);
        let mut task = open_task(spec, *id).await?.with_metrics(Arc::clone(&spec.metrics));
        let checkpoint = restore(spec, &mut task).await?;
        debug!(thread = %spec.name, task = %id, "created task");
        let inputs: Vec<TopicPartition> =
            task.topics().map(|t| TopicPartition::new(t, id.partition)).collect();
        let waiting = vec![None; inputs.len()];
        tasks.insert(
            *id,
            ActiveTask {
                task,
                checkpoint,
                queues: TaskQueues::default(),
                consumed: Vec::new(),
                inputs,
                waiting,
            },
        );
    }
    resume_stream_times(consumer, tasks, &created);
    // `statestore.cache.max.bytes` bounds the whole instance, as in Kafka:
    // each thread gets an even share, and each of its tasks an even part.
    let per_thread = spec.config.cache_max_bytes() as usize / spec.config.num_stream_threads().max(1);
    let share = per_thread / tasks.len().max(1);
    for active in tasks.values_mut() {
        active.task.set_cache_max_bytes(share);
    }
    Ok(())
}

/// The commit metadata that records a task's stream time.
fn stream_time_metadata(stream_time: i64) -> String {
    if stream_time == i64::MIN {
        String::new()
    } else {
        format!("{STREAM_TIME_PREFIX}{stream_time}")
    }
}

const STREAM_TIME_PREFIX: &str = "runnel.stream.time=";

/// Gives new tasks the stream time committed with their input partitions
/// (the largest of each task's), asking for all of them at once; a task
/// never committed starts from none.
fn resume_stream_times(
    consumer: &runnel_core::client::Consumer,
    tasks: &mut BTreeMap<TaskId, ActiveTask>,
    created: &[TaskId],
) {
    let tps: Vec<TopicPartition> =
        created.iter().filter_map(|id| tasks.get(id)).flat_map(|a| a.inputs.iter().cloned()).collect();
    if tps.is_empty() {
        return;
    }
    let committed = match consumer.committed(&tps) {
        Ok(committed) => committed,
        Err(e) => {
            debug!(error = %e, "no committed stream time");
            return;
        }
    };
    for (tp, offset) in committed {
        let Some(time) = offset
            .and_then(|c| c.metadata.strip_prefix(STREAM_TIME_PREFIX).and_then(|t| t.parse::<i64>().ok()))
        else {
            continue;
        };
        let owner = created.iter().find(|id| tasks.get(id).is_some_and(|a| a.inputs.contains(&tp)));
        if let Some(active) = owner.and_then(|id| tasks.get_mut(id)) {
            active.task.resume_stream_time(time);
        }
    }
}

/// How long a thread waits for another thread of the instance to release a
/// task's stores before failing.
const STORE_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Builds task `id`. When the task just moved from another thread of this
/// process, that thread may still hold its RocksDB stores until it polls
/// and closes its revoked tasks: opening them fails on RocksDB's lock, so
/// this retries until they are released (Kafka retries on its state
/// directory lock the same way).
async fn open_task(spec: &ThreadSpec, id: TaskId) -> Result<StreamTask, StreamsError> {
    retry_while_locked(&spec.name, id, STORE_LOCK_WAIT, || {
        spec.topology.build_task_with_globals(
            id.subtopology as usize,
            id.partition,
            &spec.config,
            &spec.globals,
        )
    })
    .await
}

/// Calls `open` until it does not fail with [`StreamsError::StoreLocked`]
/// (a store directory another thread of this process still holds), or
/// `wait` has passed. Between tries it sleeps until some store of the
/// process is released.
async fn retry_while_locked<T>(
    thread: &str,
    id: TaskId,
    wait: Duration,
    mut open: impl FnMut() -> Result<T, StreamsError>,
) -> Result<T, StreamsError> {
    let started = Instant::now();
    loop {
        // Listening before the try: a release between the failed open and
        // the wait still wakes it.
        let released = crate::store::rocks::store_released().notified();
        tokio::pin!(released);
        released.as_mut().enable();
        match open() {
            Err(StreamsError::StoreLocked { store, .. }) if started.elapsed() < wait => {
                debug!(thread, task = %id, store, "stores still held by another thread; waiting for their release");
                let left = wait.saturating_sub(started.elapsed());
                let _ = tokio::time::timeout(left, released).await;
            }
            other => return other,
        }
    }
}

/// Pauses partitions whose buffer is full and resumes those that drained.
fn apply_backpressure(
    consumer: &mut runnel_core::client::Consumer,
    tasks: &BTreeMap<TaskId, ActiveTask>,
    assignment: &[TopicPartition],
    paused: &mut Vec<TopicPartition>,
    limit: usize,
) -> Result<(), StreamsError> {
    let buffered =
        |tp: &TopicPartition| tasks.values().map(|t| t.queues.len_of(&tp.topic, tp.partition)).sum::<usize>();
    let full: Vec<TopicPartition> =
        assignment.iter().filter(|tp| !paused.contains(tp) && buffered(tp) >= limit).cloned().collect();
    let drained: Vec<TopicPartition> = paused.iter().filter(|tp| buffered(tp) < limit / 2).cloned().collect();
    if !full.is_empty() {
        consumer.pause(&full).map_err(client_error("pause"))?;
        paused.extend(full);
    }
    if !drained.is_empty() {
        consumer.resume(&drained).map_err(client_error("resume"))?;
        paused.retain(|tp| !drained.contains(tp));
    }
    Ok(())
}

/// Brings a new task's stores up to date from their changelogs, from the
/// checkpointed offsets (or the start); returns the offsets reached.
async fn restore(
    spec: &ThreadSpec,
    task: &mut StreamTask,
) -> Result<HashMap<(String, i32), i64>, StreamsError> {
    let partitions = task.changelog_partitions();
    if partitions.is_empty() {
        return Ok(HashMap::new());
    }
    let mut checkpoint = task.checkpointed_offsets().unwrap_or_else(|e| {
        warn!(thread = %spec.name, task = %task.id(), error = %e, "unreadable checkpoint: restoring from the start");
        HashMap::new()
    });
    let mut restorer =
        spec.cluster.consumer(ConsumerConfig::default()).map_err(client_error("create restore consumer"))?;
    let tps: Vec<TopicPartition> =
        partitions.iter().map(|(t, p)| TopicPartition::new(t.clone(), *p)).collect();
    let ends = restorer.end_offsets(&tps).map_err(client_error("read changelog end offsets"))?;
    let started = Instant::now();
    let mut restored = 0u64;
    for tp in &tps {
        let key = (tp.topic.clone(), tp.partition);
        let end = ends.get(tp).copied().unwrap_or(0);
        let mut next = checkpoint.get(&key).copied().unwrap_or(0);
        if next >= end {
            continue;
        }
        restorer.assign([tp.clone()]).map_err(client_error("assign changelog"))?;
        restorer.seek(tp, next).map_err(client_error("seek changelog"))?;
        while next < end {
            for record in
                restorer.poll(Duration::from_millis(200)).await.map_err(client_error("read changelog"))?
            {
                if record.offset >= end {
                    break;
                }
                if let Some(k) = record.key.as_deref() {
                    task.restore(&tp.topic, k, record.value.as_deref())?;
                    restored += 1;
                }
            }
            // The position, not the last record's offset: compaction leaves
            // gaps, possibly right before the end.
            next = restorer.position(tp).await.map_err(client_error("read changelog position"))?;
        }
        checkpoint.insert(key, next);
    }
    let _ = restorer.close().await;
    if restored > 0 {
        info!(thread = %spec.name, task = %task.id(), records = restored, ms = started.elapsed().as_millis() as u64, "restored state from changelog");
    }
    Ok(checkpoint)
}

/// Flushes the tasks' state, waits until all output (changelog included)
/// is stored, checkpoints the changelog offsets, then commits the consumed
/// offsets of `tasks`.
async fn commit(
    tasks: &mut BTreeMap<TaskId, ActiveTask>,
    sender: &mut OutputSender,
    consumer: &mut runnel_core::client::Consumer,
) -> Result<(), StreamsError> {
    let mut pending = PendingOutput::default();
    for active in tasks.values_mut() {
        active.task.flush(&mut pending)?;
        sender.send_pending(&mut pending).await?;
    }
    let confirmed = sender.flush().await?;
    for active in tasks.values_mut() {
        let mut changed = false;
        for (topic, partition) in active.task.changelog_partitions() {
            if let Some(&last) = confirmed.get(&(Arc::from(topic.as_str()), partition)) {
                active.checkpoint.insert((topic, partition), last + 1);
                changed = true;
            }
        }
        if changed {
            active.task.write_checkpoint(&active.checkpoint)?;
        }
    }
    // Each input partition's commit carries its task's stream time, so a
    // task that restarts (here or on another instance) resumes it (Kafka
    // keeps it in the commit metadata too).
    let offsets: BTreeMap<TopicPartition, (i64, String)> = tasks
        .values()
        .flat_map(|t| {
            let metadata = stream_time_metadata(t.task.stream_time());
            t.consumed
                .iter()
                .map(move |(topic, p, o)| (TopicPartition::new(&**topic, *p), (*o, metadata.clone())))
        })
        .collect();
    if offsets.is_empty() {
        return Ok(());
    }
    consumer.commit_offsets_with_metadata(&offsets).await.map_err(client_error("commit offsets"))?;
    debug!(partitions = offsets.len(), "committed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::SharedMemory;
    use crate::store::rocks::RocksStore;

    #[tokio::test]
    async fn opening_stores_another_thread_holds_waits_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counts");
        let open = || RocksStore::open_segmented("counts", &path, SharedMemory::shared(64 << 20), None);
        let held = open().unwrap();
        let err = open().expect_err("the directory is held");
        assert!(matches!(err, StreamsError::StoreLocked { ref store, .. } if store == "counts"), "{err}");
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(held);
        });
        let id = TaskId { subtopology: 0, partition: 1 };
        let started = Instant::now();
        let reopened = retry_while_locked("t", id, Duration::from_secs(10), open).await;
        assert!(reopened.is_ok(), "{:?}", reopened.err());
        assert!(started.elapsed() >= Duration::from_millis(150));
        releaser.join().unwrap();
        // Other errors, and a lock that outlasts the wait, are returned.
        let still_held = reopened.unwrap();
        let err =
            retry_while_locked("t", id, Duration::from_millis(100), open).await.expect_err("still held");
        assert!(matches!(err, StreamsError::StoreLocked { .. }), "{err}");
        drop(still_held);
    }
}
