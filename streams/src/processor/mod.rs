//! The processor API: what every node of an instantiated topology implements.
//!
//! A task's nodes form a tree of typed trait objects: a node that outputs
//! `(KO, VO)` owns a [`Forwarder<KO, VO>`] holding its children as
//! `Box<dyn Processor<KO, VO>>`. Passing a record down costs one virtual call
//! per node and no boxing; the per-task [`ProcessorContext`] travels along by
//! reference.

pub(crate) mod managed;
mod store_ref;
pub(crate) mod typed_store;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::metrics::Counters;
use crate::record::{Headers, Record, RecordCollector};
use crate::store::state::TaskStores;
use crate::StreamsError;
pub use store_ref::KeyValueStoreRef;

/// A node that receives records of key type `K` and value type `V`
/// (Kafka's `Processor`).
///
/// Implement it to plug custom logic in with
/// [`KStream::process`](crate::KStream::process) or
/// [`Topology::add_processor`](crate::Topology::add_processor); forward
/// results through the [`Forwarder`] the processor was built with. Such a
/// processor is [`init`](Self::init)ialized once its task's stores are
/// restored, before its first record, can
/// [`schedule`](ProcessorContext::schedule) punctuations there, and is
/// [`close`](Self::close)d with its task.
pub trait Processor<K, V>: Send {
    /// Called once before the first record (or punctuation), with the
    /// task's stores restored: look stores up
    /// ([`ProcessorContext::key_value_store`]) and schedule punctuations
    /// ([`ProcessorContext::schedule`]).
    ///
    /// # Errors
    ///
    /// Any error stops the task.
    fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let _ = ctx;
        Ok(())
    }

    /// Handles one record.
    ///
    /// # Errors
    ///
    /// Any error stops the task; the runtime reports it and does not commit
    /// the record's offset.
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<(), StreamsError>;

    /// A punctuation scheduled in [`init`](Self::init) is due (Kafka's
    /// `Punctuator#punctuate`): records forwarded here go downstream like
    /// any others.
    ///
    /// # Errors
    ///
    /// Any error stops the task.
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        let _ = (ctx, punctuation);
        Ok(())
    }

    /// Called once when the task closes (after its last commit on a clean
    /// shutdown).
    fn close(&mut self) {}
}

/// Which clock a punctuation follows (Kafka's `PunctuationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// The task's stream time: fires when records carry it past the next
    /// due time, at most once per record (Kafka's `STREAM_TIME`).
    StreamTime,
    /// The system clock (the test driver's in
    /// [`TopologyTestDriver`](crate::TopologyTestDriver)): fires when the
    /// thread checks, whether records arrive or not (Kafka's
    /// `WALL_CLOCK_TIME`).
    WallClockTime,
}

/// Names one scheduled punctuation of a processor (returned by
/// [`ProcessorContext::schedule`], passed back in [`Punctuation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScheduleId(pub(crate) u32);

/// A due punctuation, as [`Processor::punctuate`] receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Punctuation {
    /// Which schedule fired.
    pub id: ScheduleId,
    /// Its clock.
    pub kind: PunctuationType,
    /// The time it fired at: the stream time, or the wall-clock time in ms.
    pub timestamp: i64,
}

/// A punctuation requested in `init`: its id, interval (ms) and clock.
pub(crate) type ScheduleRequest = (ScheduleId, i64, PunctuationType);

/// Identifies a stream task: the sub-topology and the input partition it
/// processes. Displays as Kafka does: `0_1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// Sub-topology number.
    pub subtopology: u32,
    /// Input partition.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// What a processor may know and use while handling a record: the input
/// record's topic, partition and offset, the task's stream time, and (for
/// sink nodes) the record collector.
///
/// One context exists per input record and is passed by `&mut` down the
/// whole chain, so records forwarded by a processor keep the metadata of the
/// input record that caused them, as in Kafka.
///
/// State stores live in the task and are reached through this context by
/// the handle a stateful node resolved when it was instantiated (an index,
/// no lookup by name per record). Keeping stores in the task, not in
/// processors, lets one store serve several nodes and lets the runtime
/// flush and checkpoint them between records.
pub struct ProcessorContext<'a> {
    pub(crate) task: TaskId,
    pub(crate) topic: &'a str,
    /// Index of `topic` in the task's topic list (kept in cache entries).
    pub(crate) topic_index: usize,
    pub(crate) stores: &'a mut TaskStores,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) stream_time: i64,
    pub(crate) collector: &'a mut dyn RecordCollector,
    pub(crate) metrics: &'a Counters,
    /// While a processor is initialized: the punctuations it schedules,
    /// and the next free id.
    pub(crate) scheduling: Option<(Vec<ScheduleRequest>, u32)>,
}

impl ProcessorContext<'_> {
    /// The task processing the record.
    pub fn task_id(&self) -> TaskId {
        self.task
    }
    /// Topic of the input record being processed.
    pub fn topic(&self) -> &str {
        self.topic
    }
    /// Partition of the input record being processed.
    pub fn partition(&self) -> i32 {
        self.partition
    }
    /// Offset of the input record being processed.
    pub fn offset(&self) -> i64 {
        self.offset
    }
    /// The task's stream time: the largest record timestamp it has seen,
    /// including the current input record.
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// Schedules [`Processor::punctuate`] every `interval` on `kind`'s
    /// clock (Kafka's `ProcessorContext#schedule`). Stream-time
    /// punctuations first fire with the first record; wall-clock ones
    /// `interval` after the processor's `init`. A punctuation late by
    /// several intervals fires once.
    ///
    /// # Errors
    ///
    /// [`StreamsError::Runtime`] outside [`Processor::init`], or for a zero
    /// interval.
    pub fn schedule(
        &mut self,
        interval: std::time::Duration,
        kind: PunctuationType,
    ) -> Result<ScheduleId, StreamsError> {
        let interval = crate::duration::millis(interval);
        let Some((requests, next)) = self.scheduling.as_mut() else {
            return Err(StreamsError::Runtime {
                reason: "schedule is only available in Processor::init".into(),
            });
        };
        if interval < 1 {
            return Err(StreamsError::Runtime {
                reason: "a punctuation interval must be at least 1 ms".into(),
            });
        }
        let id = ScheduleId(*next);
        *next += 1;
        requests.push((id, interval, kind));
        Ok(id)
    }

    /// A typed handle on the task's key-value store `name`, added with
    /// [`Topology::add_state_store`](crate::Topology::add_state_store) or
    /// [`StreamsBuilder::add_state_store`](crate::StreamsBuilder::add_state_store)
    /// and connected to this processor. Look it up in
    /// [`Processor::init`] and keep it.
    ///
    /// # Errors
    ///
    /// [`StreamsError::UnknownStore`] when the task has no such store;
    /// [`StreamsError::Runtime`] when its key or value type is not `K`, `V`.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStoreRef<K, V>, StreamsError> {
        KeyValueStoreRef::resolve(self.stores, name)
    }
    pub(crate) fn collector(&mut self) -> &mut dyn RecordCollector {
        &mut *self.collector
    }
}

impl fmt::Debug for ProcessorContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorContext")
            .field("task", &self.task)
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("stream_time", &self.stream_time)
            .finish_non_exhaustive()
    }
}

/// A node's children, all accepting the node's output types. Forwarding to
/// one child moves the record; to several, clones it for all but the last.
pub struct Forwarder<K, V> {
    children: Vec<Box<dyn Processor<K, V>>>,
}

impl<K: Clone, V: Clone> Forwarder<K, V> {
    pub(crate) fn new(children: Vec<Box<dyn Processor<K, V>>>) -> Self {
        Forwarder { children }
    }

    /// Sends `record` to every child, in the order they were added.
    ///
    /// # Errors
    ///
    /// The first child's error; later children do not see the record.
    #[inline]
    pub fn forward(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, V>,
    ) -> Result<(), StreamsError> {
        match self.children.split_last_mut() {
            None => Ok(()),
            Some((last, rest)) => {
                for child in rest {
                    child.process(ctx, record.clone())?;
                }
                last.process(ctx, record)
            }
        }
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children (records forwarded are dropped).
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

impl<K, V> fmt::Debug for Forwarder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarder").field("children", &self.children.len()).finish()
    }
}

/// A node with several parents (after `merge`): each parent holds one handle
/// to the same processor. A task runs on one thread at a time and the graph
/// is acyclic, so the lock is never contended nor re-entered.
pub(crate) struct SharedProcessor<K, V>(Arc<Mutex<Box<dyn Processor<K, V>>>>);

impl<K: 'static, V: 'static> SharedProcessor<K, V> {
    /// `n` handles to `processor`.
    pub(crate) fn handles(processor: Box<dyn Processor<K, V>>, n: usize) -> Vec<Box<dyn Processor<K, V>>> {
        let shared = Arc::new(Mutex::new(processor));
        (0..n).map(|_| Box::new(SharedProcessor(Arc::clone(&shared))) as Box<dyn Processor<K, V>>).collect()
    }
}

impl<K, V> Processor<K, V> for SharedProcessor<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<(), StreamsError> {
        // A panic in a previous record already failed the task; the
        // processor holds no invariant the lock protects.
        self.0.lock().unwrap_or_else(PoisonError::into_inner).process(ctx, record)
    }
}

/// Receives a store's flushed entries and forwards them downstream: the
/// node that owns the store (an aggregation, a table source) registers one,
/// holding its children. `new`/`old` are the flushed value and the value
/// RocksDB held before.
pub(crate) trait FlushListener: Send {
    fn apply(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        key: &[u8],
        new: Option<&[u8]>,
        old: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), StreamsError>;
}
