//! [`TopologyTestDriver`]: runs a topology synchronously over in-memory
//! topics, for tests (Kafka's `TopologyTestDriver`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::StreamsConfig;
use crate::metrics::{Counters, StreamsMetrics};
use crate::record::{ConsumedRecord, Headers, Record, RecordCollector, SinkRecord};
use crate::serdes::Serde;
use crate::store::changelog_topic;
use crate::store::global::GlobalStores;
use crate::store::kv::{KeyValueStore, StoreReader};
use crate::store::state::StoreHandle;
use crate::store::window_view::{SessionStore, View, WindowStore};
use crate::task::StreamTask;
use crate::topology::Topology;
use crate::StreamsError;

/// Runs a [`Topology`] without a cluster or threads: every sub-topology is
/// one task on partition 0, and piping a record into an input topic runs it
/// through its sub-topology to completion before `pipe_input` returns.
///
/// Records a sink writes to a topic the topology reads (a repartition topic,
/// or a user topic read by another sub-topology) are fed to that task right
/// after the current record, in the order they were written, so results are
/// deterministic. Every written record can also be read from an output topic
/// (repartition topics by their full name, `<application.id>-<name>-repartition`).
/// When processing fails, the error is returned and the records the failing
/// one had caused but not yet processed are dropped. A topology that writes
/// every record back to its own input never finishes a pipe, as in Kafka.
///
/// State: stores live in a temporary directory removed with the driver,
/// unless the config sets `state.dir`. After each piped record (and the
/// records it caused) the driver flushes every task like a commit, so
/// aggregation results, changelog records (readable as output topics
/// `<application.id>-<store>-changelog`) and their downstream effects
/// appear per input record. Read a store with
/// [`TopologyTestDriver::get_key_value_store`].
///
/// Timestamps: an input topic starts at time 0 and
/// [`TestInputTopic::pipe_input`] uses its current time (move it with
/// [`TestInputTopic::advance_time`]); or give timestamps explicitly. Each
/// task's stream time is the largest timestamp it has processed.
///
/// ```
/// use runnel_streams::{Consumed, Produced, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver};
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream::<String, i64>("amounts", Consumed::with(Serdes::string(), Serdes::i64()))
///     .filter(|_, amount| *amount > 100)
///     .map_values(|amount| amount * 2)
///     .to("large-amounts", Produced::with(Serdes::string(), Serdes::i64()));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("test-app"))?;
///
/// let input = driver.create_input_topic("amounts", Serdes::string(), Serdes::i64());
/// let output = driver.create_output_topic("large-amounts", Serdes::string(), Serdes::i64());
/// input.pipe_input("a".to_string(), 50)?;
/// input.pipe_input_with_timestamp("b".to_string(), 500, 1_000)?;
///
/// let record = output.read_record()?;
/// assert_eq!((record.key.as_str(), record.value, record.timestamp), ("b", 1000, 1_000));
/// assert!(output.is_empty());
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
pub struct TopologyTestDriver {
    state: Rc<RefCell<DriverState>>,
}

impl fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.borrow();
        f.debug_struct("TopologyTestDriver")
            .field("application_id", &state.application_id)
            .field("tasks", &state.tasks.iter().map(StreamTask::id).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A record as stored in an in-memory topic.
struct StoredRecord {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
    headers: Headers,
}

struct DriverState {
    application_id: String,
    tasks: Vec<StreamTask>,
    /// Topic → index of the task reading it.
    readers: HashMap<String, usize>,
    /// Records written by sinks and not read yet, per topic.
    outputs: HashMap<String, VecDeque<StoredRecord>>,
    /// Next offset per topic (inputs and outputs).
    offsets: HashMap<String, i64>,
    wall_clock_ms: i64,
    /// Counters all tasks share.
    metrics: Arc<Counters>,
    /// Global tables' stores, updated by records piped to their topics.
    globals: GlobalStores,
    /// The temporary state directory, removed after the tasks close.
    _temp_dir: Option<tempfile::TempDir>,
}

impl Drop for DriverState {
    /// Closes every task (Processor API nodes get [`Processor::close`](crate::Processor::close)),
    /// then the temporary state directory goes.
    fn drop(&mut self) {
        self.close_tasks();
    }
}

impl DriverState {
    /// Closes every task (their errors are dropped, as on Kafka's close).
    fn close_tasks(&mut self) {
        for task in self.tasks.drain(..) {
            let _ = task.close();
        }
    }
}

fn next_offset(offsets: &mut HashMap<String, i64>, topic: &str) -> i64 {
    let next = match offsets.get_mut(topic) {
        Some(next) => next,
        None => offsets.entry(topic.to_string()).or_insert(0),
    };
    let offset = *next;
    *next += 1;
    offset
}

/// Stores sink output and queues records for topics the topology reads.
struct DriverCollector<'a> {
    readers: &'a HashMap<String, usize>,
    outputs: &'a mut HashMap<String, VecDeque<StoredRecord>>,
    offsets: &'a mut HashMap<String, i64>,
    pending: &'a mut VecDeque<(String, StoredRecord)>,
}

impl RecordCollector for DriverCollector<'_> {
    fn send(&mut self, record: SinkRecord<'_>) -> Result<(), StreamsError> {
        let stored = || StoredRecord {
            offset: 0,
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            timestamp: record.timestamp,
            headers: record.headers.to_vec(),
        };
        let offset = next_offset(self.offsets, record.topic);
        if self.readers.contains_key(record.topic) {
            self.pending.push_back((record.topic.to_string(), StoredRecord { offset, ..stored() }));
        }
        self.outputs
            .entry(record.topic.to_string())
            .or_default()
            .push_back(StoredRecord { offset, ..stored() });
        Ok(())
    }
}

impl DriverState {
    /// Processes `record` from `topic` and everything it causes.
    fn pipe(&mut self, topic: &str, mut record: StoredRecord) -> Result<(), StreamsError> {
        if let Some(global) = self.globals.for_topic(topic) {
            // A global table's topic updates its store directly, as the
            // global thread does; records without a key are skipped.
            record.offset = next_offset(&mut self.offsets, topic);
            if let Some(key) = record.key.as_deref() {
                global.apply([(key, record.value.as_deref())])?;
            }
            return Ok(());
        }
        if !self.readers.contains_key(topic) {
            let mut known: Vec<String> = self.readers.keys().cloned().collect();
            known.sort();
            return Err(StreamsError::UnknownTopic { topic: topic.to_string(), known });
        }
        record.offset = next_offset(&mut self.offsets, topic);
        let mut pending = VecDeque::from([(topic.to_string(), record)]);
        self.settle(&mut pending)
    }

    /// Runs the wall-clock punctuations due at the driver's clock, then
    /// what they caused.
    fn punctuate_wall_clock(&mut self) -> Result<(), StreamsError> {
        self.each_task(|task, now, collector| task.punctuate_wall_clock(now, collector))
    }

    /// Calls `f` on every task with the driver's clock and a collector,
    /// then processes what it caused.
    fn each_task(
        &mut self,
        mut f: impl FnMut(&mut StreamTask, i64, &mut DriverCollector<'_>) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let mut pending = VecDeque::new();
        for task in &mut self.tasks {
            let mut collector = DriverCollector {
                readers: &self.readers,
                outputs: &mut self.outputs,
                offsets: &mut self.offsets,
                pending: &mut pending,
            };
            f(task, self.wall_clock_ms, &mut collector)?;
        }
        self.settle(&mut pending)
    }

    /// Processes `pending` and everything it causes, committing (flushing
    /// every task) after each round, until nothing is left.
    fn settle(&mut self, pending: &mut VecDeque<(String, StoredRecord)>) -> Result<(), StreamsError> {
        loop {
            self.process_pending(pending)?;
            // Commit: flush every task; flushed results may feed other tasks.
            for task in &mut self.tasks {
                let mut collector = DriverCollector {
                    readers: &self.readers,
                    outputs: &mut self.outputs,
                    offsets: &mut self.offsets,
                    pending: &mut *pending,
                };
                task.flush(&mut collector)?;
            }
            if pending.is_empty() {
                return Ok(());
            }
        }
    }

    /// Processes queued records, and the records they cause, in order.
    fn process_pending(
        &mut self,
        pending: &mut VecDeque<(String, StoredRecord)>,
    ) -> Result<(), StreamsError> {
        while let Some((topic, record)) = pending.pop_front() {
            let task = self.readers[&topic];
            let consumed = ConsumedRecord {
                topic: &topic,
                partition: 0,
                offset: record.offset,
                timestamp: record.timestamp,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &record.headers,
            };
            let mut collector = DriverCollector {
                readers: &self.readers,
                outputs: &mut self.outputs,
                offsets: &mut self.offsets,
                pending,
            };
            self.tasks[task].process(&consumed, &mut collector)?;
            self.tasks[task].report_metrics();
        }
        Ok(())
    }
}

impl TopologyTestDriver {
    /// Instantiates every sub-topology of `topology` as one task.
    ///
    /// # Errors
    ///
    /// [`StreamsError::InvalidConfig`] when the config is invalid.
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self, StreamsError> {
        config.validate()?;
        topology.check()?;
        let application_id = config.application_id().to_string();
        let (config, temp_dir) = match config.state_dir_override() {
            Some(_) => (config, None),
            None => {
                let dir = tempfile::Builder::new().prefix("runnel-streams-test-").tempdir().map_err(|e| {
                    StreamsError::InvalidConfig {
                        key: StreamsConfig::STATE_DIR.to_string(),
                        reason: format!("cannot create a temporary state directory: {e}"),
                    }
                })?;
                (config.with_state_dir(dir.path()), Some(dir))
            }
        };
        let mut tasks = Vec::with_capacity(topology.subtopology_count());
        let mut readers = HashMap::new();
        let metrics = Arc::new(Counters::default());
        let globals = GlobalStores::open(&topology.global_stores(), &config)?;
        for subtopology in 0..topology.subtopology_count() {
            let task = topology
                .build_task_with_globals(subtopology, 0, &config, &globals)?
                .with_metrics(Arc::clone(&metrics));
            readers.extend(task.topics().map(|t| (t.to_string(), tasks.len())));
            tasks.push(task);
        }
        let mut state = DriverState {
            application_id,
            tasks,
            readers,
            outputs: HashMap::new(),
            offsets: HashMap::new(),
            wall_clock_ms: 0,
            metrics,
            globals,
            _temp_dir: temp_dir,
        };
        // Processor API nodes start now, on the driver's clock.
        state.each_task(|task, now, collector| task.init_processors(now, collector))?;
        Ok(TopologyTestDriver { state: Rc::new(RefCell::new(state)) })
    }

    /// A handle to write typed records into topic `name`. Writing to a
    /// topic the topology does not read fails with
    /// [`StreamsError::UnknownTopic`].
    pub fn create_input_topic<K, V>(
        &self,
        name: impl Into<String>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            state: Rc::clone(&self.state),
            topic: name.into(),
            key_serde: Box::new(key_serde),
            value_serde: Box::new(value_serde),
            current_time: RefCell::new(0),
        }
    }

    /// A handle to read typed records the topology wrote to topic `name`.
    pub fn create_output_topic<K, V>(
        &self,
        name: impl Into<String>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            state: Rc::clone(&self.state),
            topic: name.into(),
            key_serde: Box::new(key_serde),
            value_serde: Box::new(value_serde),
        }
    }

    /// A typed read view of the state store `name`, whichever task holds it.
    ///
    /// # Errors
    ///
    /// [`StreamsError::UnknownStore`] naming the stores that exist.
    pub fn get_key_value_store<K, V>(
        &self,
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Result<KeyValueStore<K, V>, StreamsError> {
        let View { name, topic, reader, key_serde, value_serde } =
            self.store_view(name, key_serde, value_serde)?;
        Ok(KeyValueStore { name, topic, reader, key_serde, value_serde })
    }

    /// A typed read view of the time-windowed store `name` (of a
    /// `windowed_by` aggregation), with the record key's serde and the
    /// aggregate's.
    ///
    /// # Errors
    ///
    /// As [`get_key_value_store`](Self::get_key_value_store).
    pub fn get_window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Result<WindowStore<K, V>, StreamsError> {
        Ok(WindowStore(self.store_view(name, key_serde, value_serde)?))
    }

    /// A typed read view of the session store `name` (of a
    /// `windowed_by_sessions` aggregation).
    ///
    /// # Errors
    ///
    /// As [`get_key_value_store`](Self::get_key_value_store).
    pub fn get_session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Result<SessionStore<K, V>, StreamsError> {
        Ok(SessionStore(self.store_view(name, key_serde, value_serde)?))
    }

    /// A typed view of the store `name`: its reader and serdes.
    fn store_view<K, V>(
        &self,
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Result<View<K, V>, StreamsError> {
        let (topic, reader) = self.store_reader(name)?;
        let (key_serde, value_serde) = (Box::new(key_serde), Box::new(value_serde));
        Ok(View { name: name.to_string(), topic, reader, key_serde, value_serde })
    }

    /// The changelog topic (the store serdes' topic) and a byte reader of
    /// the store `name`.
    fn store_reader(&self, name: &str) -> Result<(String, Box<dyn StoreReader>), StreamsError> {
        let state = self.state.borrow();
        let found =
            state.tasks.iter().enumerate().find_map(|(t, task)| task.stores().find(name).map(|s| (t, s)));
        if found.is_none() {
            if let Some(global) = state.globals.find(name) {
                return Ok((
                    global.topic().to_string(),
                    crate::store::global::global_reader(Arc::clone(global)),
                ));
            }
        }
        let Some((task, store)) = found else {
            let known = state
                .tasks
                .iter()
                .flat_map(|t| t.stores().names())
                .chain(state.globals.iter().map(|g| g.name().to_string()))
                .collect();
            return Err(StreamsError::UnknownStore { name: name.to_string(), known });
        };
        let topic = changelog_topic(&state.application_id, name);
        Ok((topic, Box::new(DriverStore { state: Rc::clone(&self.state), task, store })))
    }

    /// The metrics of the driver's tasks, such as
    /// [`dropped_records_total`](StreamsMetrics::dropped_records_total).
    pub fn metrics(&self) -> StreamsMetrics {
        self.state.borrow().metrics.snapshot()
    }

    /// Topics the topology has written to so far, sorted.
    pub fn produced_topic_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.state.borrow().outputs.keys().cloned().collect();
        names.sort();
        names
    }

    /// Closes every task now (Kafka's `TopologyTestDriver#close`):
    /// Processor API nodes get [`Processor::close`](crate::Processor::close)
    /// and stores are flushed to disk. Dropping the driver and its topics
    /// does the same.
    pub fn close(self) {
        self.state.borrow_mut().close_tasks();
    }

    /// The driver's wall-clock time in milliseconds; it starts at 0.
    pub fn wall_clock_time(&self) -> i64 {
        self.state.borrow().wall_clock_ms
    }

    /// Moves the driver's wall clock forward and runs the wall-clock
    /// punctuations that became due (each at most once), then commits as
    /// after a record: what they forwarded reaches output topics and the
    /// tasks reading them.
    ///
    /// # Errors
    ///
    /// A punctuator's error, or one of the processing it caused.
    pub fn advance_wall_clock_time(&self, by: Duration) -> Result<(), StreamsError> {
        let mut state = self.state.borrow_mut();
        let millis = crate::duration::millis(by);
        state.wall_clock_ms = state.wall_clock_ms.saturating_add(millis);
        state.punctuate_wall_clock()
    }
}

/// Reads one store of one task of the driver.
struct DriverStore {
    state: Rc<RefCell<DriverState>>,
    task: usize,
    store: StoreHandle,
}

impl StoreReader for DriverStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        self.state.borrow().tasks[self.task].stores().view_get(self.store, key)
    }

    fn all(&self) -> Result<crate::store::Entries, StreamsError> {
        self.state.borrow().tasks[self.task].stores().view_all(self.store)
    }

    fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<crate::store::Entries, StreamsError> {
        self.state.borrow().tasks[self.task].stores().view_range(self.store, from, to)
    }
}

/// Writes typed records into one topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    state: Rc<RefCell<DriverState>>,
    topic: String,
    key_serde: Box<dyn Serde<K>>,
    value_serde: Box<dyn Serde<V>>,
    current_time: RefCell<i64>,
}

impl<K, V> fmt::Debug for TestInputTopic<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestInputTopic")
            .field("topic", &self.topic)
            .field("current_time", &self.current_time.borrow())
            .finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Pipes a record stamped with the topic's current time.
    ///
    /// # Errors
    ///
    /// Serialization errors, [`StreamsError::UnknownTopic`] when no source
    /// reads the topic, and any error processing the record.
    pub fn pipe_input(&self, key: K, value: V) -> Result<(), StreamsError> {
        let timestamp = *self.current_time.borrow();
        self.pipe_record(Record::new(key, value, timestamp))
    }

    /// Pipes a record with an explicit timestamp (milliseconds).
    ///
    /// # Errors
    ///
    /// As [`TestInputTopic::pipe_input`].
    pub fn pipe_input_with_timestamp(&self, key: K, value: V, timestamp: i64) -> Result<(), StreamsError> {
        self.pipe_record(Record::new(key, value, timestamp))
    }

    /// Pipes a record with its timestamp and headers.
    ///
    /// # Errors
    ///
    /// As [`TestInputTopic::pipe_input`].
    pub fn pipe_record(&self, record: Record<K, V>) -> Result<(), StreamsError> {
        let serialize = |part, result: Result<_, _>| {
            result.map_err(|source| StreamsError::Serialization {
                node: "TestInputTopic".to_string(),
                topic: self.topic.clone(),
                part,
                source,
            })
        };
        let key = serialize("key", self.key_serde.serialize(&self.topic, &record.key))?;
        let value = serialize("value", self.value_serde.serialize(&self.topic, &record.value))?;
        let stored =
            StoredRecord { offset: 0, key, value, timestamp: record.timestamp, headers: record.headers };
        self.state.borrow_mut().pipe(&self.topic, stored)
    }

    /// Pipes records in order, all stamped with the topic's current time.
    ///
    /// # Errors
    ///
    /// As [`TestInputTopic::pipe_input`]; stops at the first error.
    pub fn pipe_key_value_list(&self, records: impl IntoIterator<Item = (K, V)>) -> Result<(), StreamsError> {
        records.into_iter().try_for_each(|(key, value)| self.pipe_input(key, value))
    }

    /// Moves the topic's current time forward.
    pub fn advance_time(&self, by: Duration) {
        let millis = crate::duration::millis(by);
        let mut time = self.current_time.borrow_mut();
        *time = time.saturating_add(millis);
    }
}

/// Reads typed records a [`TopologyTestDriver`] wrote to one topic, oldest
/// first; each read removes the record.
pub struct TestOutputTopic<K, V> {
    state: Rc<RefCell<DriverState>>,
    topic: String,
    key_serde: Box<dyn Serde<K>>,
    value_serde: Box<dyn Serde<V>>,
}

impl<K, V> fmt::Debug for TestOutputTopic<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestOutputTopic").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// Reads the next record: key, value, timestamp and headers.
    ///
    /// # Errors
    ///
    /// [`StreamsError::EmptyTopic`] when no record is left, or
    /// [`StreamsError::Deserialization`].
    pub fn read_record(&self) -> Result<Record<K, V>, StreamsError> {
        let stored = self
            .state
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| StreamsError::EmptyTopic { topic: self.topic.clone() })?;
        let error = |part, source| StreamsError::Deserialization {
            topic: self.topic.clone(),
            partition: 0,
            offset: stored.offset,
            part,
            source,
        };
        let key = self
            .key_serde
            .deserialize_nullable(&self.topic, stored.key.as_deref())
            .map_err(|e| error("key", e))?;
        let value = self
            .value_serde
            .deserialize_nullable(&self.topic, stored.value.as_deref())
            .map_err(|e| error("value", e))?;
        Ok(Record { key, value, timestamp: stored.timestamp, headers: stored.headers })
    }

    /// Reads the next record's key and value.
    ///
    /// # Errors
    ///
    /// As [`TestOutputTopic::read_record`].
    pub fn read_key_value(&self) -> Result<(K, V), StreamsError> {
        self.read_record().map(|r| (r.key, r.value))
    }

    /// Reads the next record's value.
    ///
    /// # Errors
    ///
    /// As [`TestOutputTopic::read_record`].
    pub fn read_value(&self) -> Result<V, StreamsError> {
        self.read_record().map(|r| r.value)
    }

    /// Reads all remaining records.
    ///
    /// # Errors
    ///
    /// As [`TestOutputTopic::read_record`]; records before the failing one
    /// are consumed.
    pub fn read_records_to_list(&self) -> Result<Vec<Record<K, V>>, StreamsError> {
        (0..self.queue_size()).map(|_| self.read_record()).collect()
    }

    /// Reads all remaining keys and values.
    ///
    /// # Errors
    ///
    /// As [`TestOutputTopic::read_records_to_list`].
    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>, StreamsError> {
        (0..self.queue_size()).map(|_| self.read_key_value()).collect()
    }

    /// Reads all remaining values.
    ///
    /// # Errors
    ///
    /// As [`TestOutputTopic::read_records_to_list`].
    pub fn read_values_to_list(&self) -> Result<Vec<V>, StreamsError> {
        (0..self.queue_size()).map(|_| self.read_value()).collect()
    }

    /// Number of records not read yet.
    pub fn queue_size(&self) -> usize {
        self.state.borrow().outputs.get(&self.topic).map_or(0, VecDeque::len)
    }

    /// Whether every record has been read.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }
}
