//! [`KTable::suppress`] with [`Suppressed`] and [`BufferConfig`], and
//! [`EmitStrategy`] for windowed aggregations (KIP-825).
//!
//! # How it runs
//!
//! The suppress node keeps the table's updates in a buffer, one entry per
//! key, and forwards a key's latest update only when its time has come:
//!
//! - [`Suppressed::until_window_closes`]: when the window has closed,
//!   stream time at or past the window's end plus the aggregation's grace
//!   period, so each window emits exactly its final result;
//! - [`Suppressed::until_time_limit`]: `limit` after the key's update was
//!   first buffered (later updates replace the value but do not restart
//!   the timer), a rate limit per key.
//!
//! Stream time is the largest timestamp the node has seen. The buffer is a
//! RocksDB store with a changelog (`<application.id>-<name>-store-changelog`),
//! so what waits survives a restart and moves with its task. An entry
//! remembers the value last emitted for its key, so what is forwarded is a
//! [`Change`] from that value to the latest one, as downstream aggregations
//! need.
//!
//! # Store layout
//!
//! ```text
//! 'k' ‖ key                       → buffer time ‖ record timestamp ‖ flags ‖ new value length ‖ new value ‖ prior value
//! 't' ‖ buffer time (ordered) ‖ key → (empty): the entries in the order they are due
//! 's'                             → the node's stream time
//! ```

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::change::Change;
use crate::dsl::KTable;
use crate::graph::{downcast_children, share, BuildContext, Erased, Factory, NodeDef, NodeKind};
use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::{Headers, Record};
use crate::serdes::Serde;
use crate::store::cache::EntryContext;
use crate::store::serde_error::serde_error;
use crate::store::state::StoreHandle;
use crate::store::{ordered_time, ordered_time_of};
use crate::window::Windowed;
use crate::StreamsError;

/// What a full buffer does (Kafka's `BufferConfig` kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenFull {
    /// Emit the oldest entries early until the buffer fits again.
    EmitEarly,
    /// Fail the task: nothing may be emitted before its time.
    ShutDown,
}

/// How much a suppression buffer may hold, and what happens when it is
/// full (Kafka's `Suppressed.BufferConfig`).
///
/// ```
/// use runnel_streams::BufferConfig;
///
/// let strict = BufferConfig::unbounded();
/// let rate_limit = BufferConfig::max_records(10_000).emit_early_when_full();
/// let guarded = BufferConfig::max_bytes(64 << 20).shut_down_when_full();
/// # let _ = (strict, rate_limit, guarded);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: Option<u64>,
    max_bytes: Option<u64>,
    when_full: WhenFull,
}

impl BufferConfig {
    /// No limit (the buffer grows as needed; it is on disk, in RocksDB).
    pub fn unbounded() -> BufferConfig {
        BufferConfig { max_records: None, max_bytes: None, when_full: WhenFull::ShutDown }
    }

    /// At most `records` keys; when full, emits the oldest early (change
    /// it with [`shut_down_when_full`](Self::shut_down_when_full)).
    pub fn max_records(records: u64) -> BufferConfig {
        BufferConfig { max_records: Some(records), max_bytes: None, when_full: WhenFull::EmitEarly }
    }

    /// At most `bytes` of keys and values; when full, emits the oldest
    /// early.
    pub fn max_bytes(bytes: u64) -> BufferConfig {
        BufferConfig { max_records: None, max_bytes: Some(bytes), when_full: WhenFull::EmitEarly }
    }

    /// Also at most `records` keys.
    #[must_use]
    pub fn with_max_records(mut self, records: u64) -> BufferConfig {
        self.max_records = Some(records);
        self
    }

    /// Also at most `bytes` of keys and values.
    #[must_use]
    pub fn with_max_bytes(mut self, bytes: u64) -> BufferConfig {
        self.max_bytes = Some(bytes);
        self
    }

    /// When full, emit the oldest entries before their time.
    #[must_use]
    pub fn emit_early_when_full(mut self) -> BufferConfig {
        self.when_full = WhenFull::EmitEarly;
        self
    }

    /// When full, fail the task with
    /// [`StreamsError::SuppressionBufferFull`] (the stream thread stops and
    /// the uncaught-exception handler decides).
    #[must_use]
    pub fn shut_down_when_full(mut self) -> BufferConfig {
        self.when_full = WhenFull::ShutDown;
        self
    }

    fn over(&self, records: u64, bytes: u64) -> bool {
        self.max_records.is_some_and(|max| records > max) || self.max_bytes.is_some_and(|max| bytes > max)
    }
}

/// When an entry is due.
#[derive(Clone)]
enum Due<K> {
    /// At its window's end plus the grace period.
    WindowClose(Arc<dyn Fn(&K) -> i64 + Send + Sync>),
    /// `limit` ms after it was first buffered.
    Limit(i64),
}

/// What [`KTable::suppress`] holds back (Kafka's `Suppressed`).
///
/// ```
/// use std::time::Duration;
/// use runnel_streams::{
///     BufferConfig, Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, Suppressed,
///     TimeWindows, TopologyTestDriver,
/// };
///
/// let minute = Duration::from_secs(60);
/// let mut b = StreamsBuilder::new();
/// b.stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
///     .windowed_by(TimeWindows::of_size_and_grace(minute, Duration::from_secs(10)))
///     .count(Materialized::as_("clicks-per-minute"))
///     .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
///     .to_stream()
///     .map(|w, n| (w.key.clone(), n.unwrap_or(0)))
///     .to("final-counts", Produced::with(Serdes::string(), Serdes::i64()));
/// let driver = TopologyTestDriver::new(b.build()?, StreamsConfig::new("final"))?;
/// let clicks = driver.create_input_topic("clicks", Serdes::string(), Serdes::string());
/// let out = driver.create_output_topic("final-counts", Serdes::string(), Serdes::i64());
/// clicks.pipe_input_with_timestamp("ann".into(), "/a".into(), 1_000)?;
/// clicks.pipe_input_with_timestamp("ann".into(), "/b".into(), 2_000)?;
/// assert!(out.read_key_values_to_list()?.is_empty()); // the minute is still open
/// clicks.pipe_input_with_timestamp("bob".into(), "/c".into(), 70_000)?; // past 60 s + 10 s of grace
/// assert_eq!(out.read_key_values_to_list()?, vec![("ann".to_string(), 2)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Suppressed<K> {
    due: Due<K>,
    buffer: BufferConfig,
    name: Option<String>,
    _key: PhantomData<fn() -> K>,
}

impl<K: 'static> Suppressed<Windowed<K>> {
    /// Only each window's final result, once stream time has passed the
    /// window's end plus the aggregation's grace period. The buffer must
    /// not emit early: [`BufferConfig::unbounded`], or a bounded one with
    /// [`shut_down_when_full`](BufferConfig::shut_down_when_full).
    pub fn until_window_closes(buffer: BufferConfig) -> Suppressed<Windowed<K>> {
        Suppressed {
            due: Due::WindowClose(Arc::new(|w: &Windowed<K>| w.window.end)),
            buffer,
            name: None,
            _key: PhantomData,
        }
    }
}

impl<K> Suppressed<K> {
    /// A key's latest update, `limit` (in stream time) after its first
    /// update since it was last emitted.
    pub fn until_time_limit(limit: Duration, buffer: BufferConfig) -> Suppressed<K> {
        let limit = crate::duration::millis(limit);
        Suppressed { due: Due::Limit(limit), buffer, name: None, _key: PhantomData }
    }

    /// Names the node and its buffer store `<name>-store` (changelog
    /// `<application.id>-<name>-store-changelog`).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// When a windowed aggregation emits (Kafka's `EmitStrategy`, KIP-825).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmitStrategy {
    /// Every update, as the record cache flushes (the default).
    #[default]
    OnWindowUpdate,
    /// Each window once, with its final result, when it closes.
    OnWindowClose,
}

impl EmitStrategy {
    /// Every update (the default).
    pub fn on_window_update() -> EmitStrategy {
        EmitStrategy::OnWindowUpdate
    }

    /// Each window once, when it closes (stream time past its end plus
    /// grace): a windowed aggregation followed by
    /// `suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))`,
    /// its buffer named after the aggregation's store.
    pub fn on_window_close() -> EmitStrategy {
        EmitStrategy::OnWindowClose
    }
}

/// The table a windowed aggregation returns under `emit`.
pub(crate) fn finish_windowed<K, V>(
    table: KTable<Windowed<K>, V>,
    emit: EmitStrategy,
) -> KTable<Windowed<K>, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    match emit {
        EmitStrategy::OnWindowUpdate => table,
        EmitStrategy::OnWindowClose => {
            let store = table.store.clone();
            let name = format!("{}-emit-final", store.as_deref().unwrap_or("KTABLE"));
            let mut suppressed =
                table.suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name(name));
            // The aggregation's store stays the one to query.
            suppressed.store = store;
            suppressed
        }
    }
}

/// Key prefixes of the buffer store.
const ENTRY: u8 = b'k';
const TIME: u8 = b't';
const STREAM_TIME: &[u8] = b"s";

fn time_key(time: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.push(TIME);
    out.extend_from_slice(&ordered_time(time));
    out.extend_from_slice(key);
    out
}

/// One buffered entry, as stored.
struct Entry {
    buffer_time: i64,
    timestamp: i64,
    new: Option<Vec<u8>>,
    prior: Option<Vec<u8>>,
}

const HAS_NEW: u8 = 1;
const HAS_PRIOR: u8 = 2;

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let new = self.new.as_deref().unwrap_or_default();
        let prior = self.prior.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(21 + new.len() + prior.len());
        out.extend_from_slice(&self.buffer_time.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.push((u8::from(self.new.is_some()) * HAS_NEW) | (u8::from(self.prior.is_some()) * HAS_PRIOR));
        crate::store::put_len(&mut out, new.len());
        out.extend_from_slice(new);
        out.extend_from_slice(prior);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Entry> {
        let buffer_time = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let timestamp = i64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        let flags = *bytes.get(16)?;
        let len = u32::from_be_bytes(bytes.get(17..21)?.try_into().ok()?) as usize;
        let new = bytes.get(21..21 + len)?;
        let prior = bytes.get(21 + len..)?;
        Some(Entry {
            buffer_time,
            timestamp,
            new: (flags & HAS_NEW != 0).then(|| new.to_vec()),
            prior: (flags & HAS_PRIOR != 0).then(|| prior.to_vec()),
        })
    }
}

/// What the node knows of its buffer, read from the store once per task.
struct BufferState {
    stream_time: i64,
    /// No entry is due before this (a lower bound).
    earliest: Option<i64>,
    records: u64,
    bytes: u64,
}

/// The suppress node of one task.
struct SuppressNode<K, V> {
    due: Due<K>,
    grace: i64,
    buffer: BufferConfig,
    store: StoreHandle,
    topic: Arc<str>,
    store_name: Arc<str>,
    node: Arc<str>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    out: Forwarder<K, Change<V>>,
    state: Option<BufferState>,
}

impl<K, V> SuppressNode<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn context(timestamp: i64) -> EntryContext {
        EntryContext { timestamp, topic: 0, offset: -1, headers: Headers::default() }
    }

    fn corrupt(&self, key: &[u8]) -> StreamsError {
        StreamsError::Internal {
            node: self.node.to_string(),
            reason: format!("suppression buffer {} holds a malformed entry for key {key:?}", self.store_name),
        }
    }

    /// The buffer's state, read from the store (after a restore) the first
    /// time. The time index is checked against the entries: the two are
    /// separate changelog records, and a crash between them may have kept
    /// one without the other.
    fn load(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        if self.state.is_some() {
            return Ok(());
        }
        // Index keys without their entry go; entries without their index
        // key get it. A consistent buffer is left untouched.
        let mut orphans: std::collections::HashSet<Vec<u8>> =
            ctx.stores.range(self.store, &[TIME], Some(&[TIME + 1]))?.into_iter().map(|(k, _)| k).collect();
        let stream_time = match ctx.stores.get(self.store, STREAM_TIME)? {
            Some(bytes) => {
                bytes.get(..8).and_then(|b| b.try_into().ok()).map_or(i64::MIN, i64::from_be_bytes)
            }
            None => i64::MIN,
        };
        let mut state = BufferState { stream_time, earliest: None, records: 0, bytes: 0 };
        for (key, value) in ctx.stores.range(self.store, &[ENTRY], Some(&[ENTRY + 1]))? {
            let entry = Entry::decode(&value).ok_or_else(|| self.corrupt(&key))?;
            let index = time_key(entry.buffer_time, key.get(1..).unwrap_or_default());
            if !orphans.remove(&index) {
                ctx.stores.put(self.store, &index, Some(Vec::new()), Self::context(0));
            }
            state.records += 1;
            state.bytes += (key.len() + value.len()) as u64;
            state.earliest = Some(state.earliest.map_or(entry.buffer_time, |e| e.min(entry.buffer_time)));
        }
        for index in orphans {
            ctx.stores.put(self.store, &index, None, Self::context(0));
        }
        self.state = Some(state);
        Ok(())
    }

    /// Entries whose buffer time is at most this are due.
    fn expiry(&self, stream_time: i64) -> i64 {
        match &self.due {
            Due::WindowClose(_) => stream_time.saturating_sub(self.grace),
            Due::Limit(limit) => stream_time.saturating_sub(*limit),
        }
    }

    /// Forwards the entry the time-index key `index` points at and
    /// removes both.
    fn emit(&mut self, ctx: &mut ProcessorContext<'_>, index: &[u8]) -> Result<(), StreamsError> {
        ctx.stores.put(self.store, index, None, Self::context(0));
        let key = index.get(9..).ok_or_else(|| self.corrupt(index))?;
        let mut entry_key = Vec::with_capacity(1 + key.len());
        entry_key.push(ENTRY);
        entry_key.extend_from_slice(key);
        let Some(bytes) = ctx.stores.get(self.store, &entry_key)?.map(|b| b.into_owned()) else {
            return Ok(());
        };
        let entry = Entry::decode(&bytes).ok_or_else(|| self.corrupt(key))?;
        ctx.stores.put(self.store, &entry_key, None, Self::context(entry.timestamp));
        if let Some(state) = self.state.as_mut() {
            state.records = state.records.saturating_sub(1);
            state.bytes = state.bytes.saturating_sub((entry_key.len() + bytes.len()) as u64);
        }
        if entry.new.is_none() && entry.prior.is_none() {
            // Added and deleted while buffered: downstream never saw it.
            return Ok(());
        }
        let value = |bytes: Option<Vec<u8>>| {
            bytes
                .map(|b| self.value_serde.deserialize(&self.topic, &b))
                .transpose()
                .map_err(|e| serde_error(&self.store_name, "deserialize", "value", e))
        };
        let change = Change { new: value(entry.new)?, old: value(entry.prior)? };
        let record_key = self
            .key_serde
            .deserialize(&self.topic, key)
            .map_err(|e| serde_error(&self.store_name, "deserialize", "key", e))?;
        let record = Record {
            key: record_key,
            value: change,
            timestamp: entry.timestamp,
            headers: Headers::default(),
        };
        self.out.forward(ctx, record)
    }

    /// Emits every due entry, in the order they became due.
    fn emit_due(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let Some(state) = self.state.as_ref() else { return Ok(()) };
        let expiry = self.expiry(state.stream_time);
        if state.earliest.is_none_or(|e| e > expiry) {
            return Ok(());
        }
        let upper = time_key(expiry.saturating_add(1), &[]);
        for (index, _) in ctx.stores.range(self.store, &[TIME], Some(&upper))? {
            self.emit(ctx, &index)?;
        }
        if let Some(state) = self.state.as_mut() {
            state.earliest = (state.records > 0).then(|| expiry.saturating_add(1));
        }
        Ok(())
    }

    /// Emits the oldest entries early, or fails, while the buffer is over
    /// its limits.
    fn enforce_limits(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        loop {
            let Some(state) = self.state.as_ref() else { return Ok(()) };
            if !self.buffer.over(state.records, state.bytes) {
                return Ok(());
            }
            if self.buffer.when_full == WhenFull::ShutDown {
                return Err(StreamsError::SuppressionBufferFull {
                    node: self.node.to_string(),
                    records: state.records,
                    bytes: state.bytes,
                });
            }
            // Every pass removes one index entry, so this ends.
            let Some(index) = self.oldest(ctx)? else { return Ok(()) };
            self.emit(ctx, &index)?;
        }
    }

    /// The time-index key of the entry due first. The search starts at
    /// the known lower bound of buffer times and widens a window that
    /// doubles each time it finds nothing, so it reads a few index entries,
    /// not the whole index.
    fn oldest(&mut self, ctx: &ProcessorContext<'_>) -> Result<Option<Vec<u8>>, StreamsError> {
        let Some(low) = self.state.as_ref().and_then(|s| s.earliest) else {
            let all = ctx.stores.range(self.store, &[TIME], Some(&[TIME + 1]))?;
            return Ok(all.into_iter().next().map(|(k, _)| k));
        };
        let from = time_key(low, &[]);
        let mut width: i64 = 1_000;
        loop {
            let high = low.saturating_add(width);
            let to = if high == i64::MAX { vec![TIME + 1] } else { time_key(high, &[]) };
            if let Some((index, _)) = ctx.stores.range(self.store, &from, Some(&to))?.into_iter().next() {
                if let (Some(state), Some(time)) =
                    (self.state.as_mut(), index.get(1..9).and_then(ordered_time_of))
                {
                    // What is left starts no earlier than this entry.
                    state.earliest = Some(time);
                }
                return Ok(Some(index));
            }
            if high == i64::MAX {
                return Ok(None);
            }
            width = width.saturating_mul(2);
        }
    }
}

impl<K, V> Processor<K, Change<V>> for SuppressNode<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        self.load(ctx)?;
        let Record { key, value: change, timestamp, .. } = record;
        let mut key_bytes = Vec::new();
        self.key_serde
            .serialize_into(&self.topic, &key, &mut key_bytes)
            .map_err(|e| serde_error(&self.store_name, "serialize", "key", e))?;
        let encode = |value: Option<&V>| -> Result<Option<Vec<u8>>, StreamsError> {
            match value {
                Some(v) => {
                    let mut out = Vec::new();
                    self.value_serde
                        .serialize_into(&self.topic, v, &mut out)
                        .map_err(|e| serde_error(&self.store_name, "serialize", "value", e))?;
                    Ok(Some(out))
                }
                None => Ok(None),
            }
        };
        let new = encode(change.new.as_ref())?;
        let mut entry_key = Vec::with_capacity(1 + key_bytes.len());
        entry_key.push(ENTRY);
        entry_key.extend_from_slice(&key_bytes);
        let existing = ctx.stores.get(self.store, &entry_key)?.map(|b| b.into_owned());
        let state = self.state.as_mut().expect("loaded");
        if timestamp > state.stream_time {
            state.stream_time = timestamp;
            ctx.stores.put(
                self.store,
                STREAM_TIME,
                Some(timestamp.to_be_bytes().to_vec()),
                Self::context(timestamp),
            );
        }
        let entry = match existing {
            Some(bytes) => {
                let old = Entry::decode(&bytes).ok_or_else(|| self.corrupt(&key_bytes))?;
                let state = self.state.as_mut().expect("loaded");
                state.bytes = state.bytes.saturating_sub((entry_key.len() + bytes.len()) as u64);
                Entry { buffer_time: old.buffer_time, timestamp, new, prior: old.prior }
            }
            None => {
                let buffer_time = match &self.due {
                    Due::WindowClose(end) => end(&key),
                    Due::Limit(_) => timestamp,
                };
                let prior = encode(change.old.as_ref())?;
                ctx.stores.put(
                    self.store,
                    &time_key(buffer_time, &key_bytes),
                    Some(Vec::new()),
                    Self::context(timestamp),
                );
                let state = self.state.as_mut().expect("loaded");
                state.records += 1;
                state.earliest = Some(state.earliest.map_or(buffer_time, |e| e.min(buffer_time)));
                Entry { buffer_time, timestamp, new, prior }
            }
        };
        let value = entry.encode();
        let state = self.state.as_mut().expect("loaded");
        state.bytes += (entry_key.len() + value.len()) as u64;
        ctx.stores.put(self.store, &entry_key, Some(value), Self::context(timestamp));
        self.emit_due(ctx)?;
        self.enforce_limits(ctx)
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Holds this table's updates back in a buffer and forwards them as
    /// `suppressed` says (Kafka's `KTable#suppress`): a windowed
    /// aggregation's final result per window, or a key's latest update at
    /// most once per time limit. The buffer is a RocksDB store with a
    /// changelog, so it survives restarts. The table's serdes must be
    /// known: an aggregation's or a source table's result, or a table
    /// [`materialize`](Self::materialize)d first.
    pub fn suppress(&self, suppressed: Suppressed<K>) -> KTable<K, V> {
        let mut graph = self.graph.borrow_mut();
        let name = graph.name_or(suppressed.name.clone(), "KTABLE-SUPPRESS");
        let invalid = |reason: &str| StreamsError::InvalidSuppression {
            node: name.clone(),
            reason: reason.to_string(),
        };
        let grace = match (&suppressed.due, self.grace) {
            (Due::WindowClose(_), None) => {
                Err(invalid("until_window_closes needs the table of a windowed aggregation (its grace period)"))
            }
            (Due::WindowClose(_), Some(_)) if suppressed.buffer.when_full == WhenFull::EmitEarly => Err(invalid(
                "until_window_closes cannot emit early (results would not be final): use BufferConfig::unbounded() or shut_down_when_full()",
            )),
            (_, grace) => Ok(grace.unwrap_or(0)),
        };
        let (grace, (key_serde, value_serde)) = match (grace, self.serdes.clone()) {
            (Ok(grace), Some(serdes)) => (grace, serdes),
            (Err(e), _) => {
                graph.errors.push(e);
                drop(graph);
                return self.clone();
            }
            (Ok(_), None) => {
                graph.errors.push(invalid(
                    "the table's serdes are not known: suppress an aggregation or a source table, or materialize it first",
                ));
                drop(graph);
                return self.clone();
            }
        };
        let store = format!("{name}-store");
        graph.add_internal_store(&store, true);
        let node_name = name.clone();
        let store_name = store.clone();
        let Suppressed { due, buffer, .. } = suppressed;
        let (ks, vs) = (Arc::clone(&key_serde), Arc::clone(&value_serde));
        let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
            let out = downcast_children::<K, Change<V>>(&node_name, children)?;
            let (handle, topic) = ctx.store(&node_name, &store_name)?;
            let processor: Box<dyn Processor<K, Change<V>>> = Box::new(SuppressNode {
                due: due.clone(),
                grace,
                buffer,
                store: handle,
                topic: Arc::from(topic),
                store_name: Arc::from(store_name.as_str()),
                node: Arc::from(node_name.as_str()),
                key_serde: Arc::clone(&ks),
                value_serde: Arc::clone(&vs),
                out: Forwarder::new(out),
                state: None,
            });
            Ok(Box::new(processor) as Erased)
        });
        let node = graph.push(NodeDef {
            name,
            kind: NodeKind::Processor { stores: vec![store] },
            parents: vec![self.node],
            factory,
            share: share::<K, Change<V>>,
        });
        drop(graph);
        let mut table = KTable::new(Rc::clone(&self.graph), node, None);
        table.serdes = Some((key_serde, value_serde));
        table.grace = self.grace;
        table
    }
}
