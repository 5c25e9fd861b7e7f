//! Sliding-window aggregation: [`KGroupedStream::windowed_by_sliding`],
//! [`SlidingWindowedKStream`] and its processor (the algorithm of Kafka's
//! `KStreamSlidingWindowAggregate`, forward-iterating).
//!
//! # How windows are kept
//!
//! Each record at `t` may own two windows: its *left* window
//! `[t - d, t]` and its *right* window `[t + 1, t + 1 + d]`, created only
//! when a later record falls in it. Every other window is one of those, so
//! a key has at most two windows per record within the retention. Each
//! stored aggregate carries the largest record timestamp in its window
//! (`8-byte timestamp ‖ value`, Kafka's `ValueAndTimestamp` layout): it
//! tells whether a window holds records after a given time, which is how
//! a new window's aggregate is derived from existing ones without keeping
//! the records themselves.

use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use tracing::debug;

use crate::change::Change;
use crate::dsl::kgrouped::AggregationNode;
use crate::dsl::kwindowed::WindowedLayout;
use crate::dsl::KGroupedStream;
use crate::dsl::KTable;
use crate::options::Materialized;
use crate::processor::typed_store::TypedStore;
use crate::processor::{Processor, ProcessorContext};
use crate::record::{Headers, Record};
use crate::serdes::{Serde, SerdeError};
use crate::stateful::{aggregate_fn, count_fn, reduce_fn, ChangeForwarder, StreamAggFn};
use crate::store::serde_error::serde_error;
use crate::window::{read_time, KeyTime, SlidingWindows, WindowStoreKeySerde, Windowed};
use crate::{Serdes, StreamsError};

type Res = Result<(), StreamsError>;

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Aggregates per key over sliding windows of
    /// [`SlidingWindows::time_difference_ms`]: every window that holds a
    /// distinct set of the key's records is aggregated (Kafka's
    /// `windowedBy(SlidingWindows)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use runnel_streams::{
    ///     Consumed, Grouped, Materialized, Serdes, SlidingWindows, StreamsBuilder, StreamsConfig,
    ///     TopologyTestDriver,
    /// };
    ///
    /// let mut builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("logins", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by_sliding(SlidingWindows::of_time_difference_with_no_grace(Duration::from_secs(10)))
    ///     .count(Materialized::as_("logins-within-10s"));
    /// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
    /// let logins = driver.create_input_topic("logins", Serdes::string(), Serdes::string());
    /// for t in [20_000, 25_000, 33_000] {
    ///     logins.pipe_input_with_timestamp("ann".into(), "ok".into(), t)?;
    /// }
    /// let store = driver.get_window_store("logins-within-10s", Serdes::string(), Serdes::i64())?;
    /// // Windows ending at each record, and the one starting right after 20s.
    /// assert_eq!(
    ///     store.fetch_range(&"ann".to_string(), 0, 40_000)?,
    ///     vec![(10_000, 1), (15_000, 2), (20_001, 1), (23_000, 2), (25_001, 1)]
    /// );
    /// # Ok::<(), runnel_streams::StreamsError>(())
    /// ```
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            grouped: KGroupedStream {
                graph: Rc::clone(&self.graph),
                node: self.node,
                repartition_required: self.repartition_required,
                grouped: self.grouped.clone(),
            },
            windows,
            emit: crate::dsl::suppress::EmitStrategy::OnWindowUpdate,
        }
    }
}

/// A grouped stream with sliding windows, ready to aggregate (Kafka's
/// `TimeWindowedKStream` over `SlidingWindows`); from
/// [`KGroupedStream::windowed_by_sliding`]. Window keys carry
/// `[start, start + time difference]`, both ends inclusive.
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
    emit: crate::dsl::suppress::EmitStrategy,
}

impl<K, V> fmt::Debug for SlidingWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlidingWindowedKStream").field("windows", &self.windows).finish_non_exhaustive()
    }
}

impl<K, V> SlidingWindowedKStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// When the aggregation emits its results (KIP-825): on every update
    /// (the default), or [`EmitStrategy::on_window_close`](crate::EmitStrategy::on_window_close),
    /// once per window with its final result.
    #[must_use]
    pub fn emit_strategy(mut self, emit: crate::dsl::suppress::EmitStrategy) -> Self {
        self.emit = emit;
        self
    }

    fn finish<VR: Clone + Send + 'static>(&self, table: KTable<Windowed<K>, VR>) -> KTable<Windowed<K>, VR> {
        crate::dsl::suppress::finish_windowed(table, self.emit)
    }

    /// Counts the records of each key in each window.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let f: StreamAggFn<K, V, i64> = count_fn();
        self.build("KSTREAM-AGGREGATE", materialized, Some(Arc::new(Serdes::i64())), f)
    }

    /// Combines the values of each key and window with
    /// `reducer(aggregate, value)`.
    pub fn reduce<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let f: StreamAggFn<K, V, V> = reduce_fn(reducer);
        let default = Some(Arc::clone(&self.grouped.grouped.value_serde));
        self.build("KSTREAM-REDUCE", materialized, default, f)
    }

    /// Folds each window's values into an aggregate starting at
    /// `initializer()`. The aggregate's serde must be set with
    /// [`Materialized::with_value_serde`].
    pub fn aggregate<VR, I, A>(
        &self,
        initializer: I,
        aggregator: A,
        materialized: Materialized<K, VR>,
    ) -> KTable<Windowed<K>, VR>
    where
        VR: Clone + Send + 'static,
        I: Fn() -> VR + Send + Sync + 'static,
        A: Fn(&K, V, VR) -> VR + Send + Sync + 'static,
    {
        let f: StreamAggFn<K, V, VR> = aggregate_fn(initializer, aggregator);
        self.build("KSTREAM-AGGREGATE", materialized, None, f)
    }

    fn build<VR: Clone + Send + 'static>(
        &self,
        prefix: &str,
        materialized: Materialized<K, VR>,
        default_value_serde: Option<Arc<dyn Serde<VR>>>,
        f: StreamAggFn<K, V, VR>,
    ) -> KTable<Windowed<K>, VR> {
        let graph_rc = &self.grouped.graph;
        let windows = self.windows;
        let mut graph = graph_rc.borrow_mut();
        let layout = WindowedLayout {
            // A record's right window can still change until `t + 2d + grace`.
            minimum_retention: windows.difference.saturating_mul(2).saturating_add(windows.grace),
            time: KeyTime::WindowStart,
            ranged: true,
            timestamped: true,
        };
        let (AggregationNode { store, name, ks, vs }, parent) =
            self.grouped.windowed_aggregation(&mut graph, prefix, materialized, default_value_serde, layout);
        let store_key: Arc<dyn Serde<Windowed<K>>> =
            Arc::new(WindowStoreKeySerde { inner: Arc::clone(&ks), size: windows.difference });
        let store_name: Arc<str> = Arc::from(store.as_str());
        let serdes = (Arc::clone(&store_key), Arc::clone(&vs));
        let node = graph.add_store_processor::<K, V, Windowed<K>, Change<VR>, SlidingAggregate<K, V, VR>, _>(
            name,
            vec![parent],
            store.clone(),
            move |handle, changelog, out| {
                let stamped: Arc<dyn Serde<Stamped<VR>>> = Arc::new(StampedSerde(Arc::clone(&vs)));
                let typed = TypedStore::new(handle, &store_name, changelog, Arc::clone(&store_key), stamped);
                let listener = ChangeForwarder {
                    store: Arc::clone(&store_name),
                    topic: Arc::from(changelog),
                    key_serde: Arc::clone(&store_key),
                    value_serde: Arc::new(UnstampedSerde(Arc::clone(&vs))),
                    out,
                };
                let processor = SlidingAggregate {
                    store: typed,
                    key_serde: Arc::clone(&ks),
                    windows,
                    f: Arc::clone(&f),
                    prefix: Vec::new(),
                };
                (processor, Box::new(listener))
            },
        );
        drop(graph);
        // A window is updated while its end is at least stream time minus
        // grace: it is closed once stream time passes end + grace.
        let closes_after = windows.grace.saturating_add(1);
        let table =
            KTable::new(Rc::clone(graph_rc), node, Some(store)).windowed(serdes.0, serdes.1, closes_after);
        self.finish(table)
    }
}

/// An aggregate with the largest record timestamp in its window.
#[derive(Debug, Clone)]
pub(crate) struct Stamped<VR> {
    value: VR,
    max_timestamp: i64,
}

/// `8-byte timestamp ‖ value`, Kafka's `ValueAndTimestamp` layout.
struct StampedSerde<VR>(Arc<dyn Serde<VR>>);

impl<VR: 'static> Serde<Stamped<VR>> for StampedSerde<VR> {
    fn serialize_into(&self, topic: &str, value: &Stamped<VR>, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(&value.max_timestamp.to_be_bytes());
        self.0.serialize_into(topic, &value.value, out)
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<Stamped<VR>, SerdeError> {
        if bytes.len() < 8 {
            return Err(SerdeError::Length {
                type_name: "timestamped aggregate",
                expected: 8,
                actual: bytes.len(),
            });
        }
        Ok(Stamped { value: self.0.deserialize(topic, &bytes[8..])?, max_timestamp: read_time(bytes, 0) })
    }
}

/// Reads the aggregate of a stamped store value (for forwarding downstream).
struct UnstampedSerde<VR>(Arc<dyn Serde<VR>>);

impl<VR: 'static> Serde<VR> for UnstampedSerde<VR> {
    fn serialize_into(&self, topic: &str, value: &VR, out: &mut Vec<u8>) -> Result<(), SerdeError> {
        out.extend_from_slice(&[0; 8]);
        self.0.serialize_into(topic, value, out)
    }

    fn deserialize(&self, topic: &str, bytes: &[u8]) -> Result<VR, SerdeError> {
        match bytes.get(8..) {
            Some(rest) => self.0.deserialize(topic, rest),
            None => Err(SerdeError::Length {
                type_name: "timestamped aggregate",
                expected: 8,
                actual: bytes.len(),
            }),
        }
    }
}

/// One window of the current key found in the store.
struct Found<VR> {
    start: i64,
    aggregate: Stamped<VR>,
}

/// The sliding-window aggregation processor.
pub(crate) struct SlidingAggregate<K, V, VR> {
    store: TypedStore<Windowed<K>, Stamped<VR>>,
    key_serde: Arc<dyn Serde<K>>,
    windows: SlidingWindows,
    f: StreamAggFn<K, V, VR>,
    /// The current record's serialized key (reused).
    prefix: Vec<u8>,
}

/// What one record does besides updating existing windows.
struct Plan<VR> {
    starts: Vec<i64>,
    left_aggregate: Option<Stamped<VR>>,
    right_aggregate: Option<Stamped<VR>>,
    left_exists: bool,
    right_exists: bool,
    previous_timestamp: Option<i64>,
}

impl<K, V, VR> SlidingAggregate<K, V, VR>
where
    K: Clone + Send + 'static,
    V: Clone + Send,
    VR: Clone + Send + 'static,
{
    /// The key's windows starting in `from..=to`, by start.
    fn fetch(&self, ctx: &ProcessorContext<'_>, from: i64, to: i64) -> Result<Vec<Found<VR>>, StreamsError> {
        let n = self.prefix.len();
        let bound = |t: i64| [&self.prefix[..], &t.to_be_bytes(), &[0; 4]].concat();
        let mut found = Vec::new();
        for (bytes, value) in
            ctx.stores.range(self.store.handle(), &bound(from.max(0)), Some(&bound(to + 1)))?
        {
            if bytes.len() != n + 12 {
                continue;
            }
            found.push(Found { start: read_time(&bytes, n), aggregate: self.store.decode_value(&value)? });
        }
        found.sort_by_key(|w| w.start);
        Ok(found)
    }

    /// Adds the record to the window starting at `start` whose aggregate
    /// is `current` (`None`: a new window), unless the window has closed.
    #[allow(clippy::too_many_arguments, reason = "the record's parts and the window's")]
    fn update(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        key: &K,
        value: &V,
        headers: &Headers,
        timestamp: i64,
        start: i64,
        current: Option<Stamped<VR>>,
    ) -> Res {
        let end = start + self.windows.difference;
        if end < ctx.stream_time.saturating_sub(self.windows.grace) {
            return Ok(());
        }
        let (agg, max_timestamp) = match current {
            Some(c) => (Some(c.value), c.max_timestamp.max(timestamp)),
            None => (None, timestamp),
        };
        let next = Stamped { value: (self.f)(key, value.clone(), agg), max_timestamp };
        self.put(ctx, key, start, &next, headers)
    }

    fn put(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        key: &K,
        start: i64,
        value: &Stamped<VR>,
        headers: &Headers,
    ) -> Res {
        let serde = &*self.key_serde;
        self.store.set_key_with(|topic, out| {
            serde.serialize_into(topic, key, out)?;
            out.extend_from_slice(&start.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
            Ok(())
        })?;
        self.store.put(ctx, Some(value), value.max_timestamp, headers.clone())
    }

    /// Kafka's `processInOrder` (forward iteration over the windows that
    /// can involve a record at `t`: starts in `[t - 2d, t + 1]`).
    fn process_regular(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        key: &K,
        value: &V,
        headers: &Headers,
        t: i64,
    ) -> Res {
        let d = self.windows.difference;
        let mut plan = Plan {
            starts: Vec::new(),
            left_aggregate: None,
            right_aggregate: None,
            left_exists: false,
            right_exists: false,
            previous_timestamp: None,
        };
        for window in self.fetch(ctx, t - 2 * d, t + 1)? {
            let (start, end) = (window.start, window.start + d);
            plan.starts.push(start);
            let max = window.aggregate.max_timestamp;
            if end < t {
                plan.previous_timestamp = Some(max);
                plan.left_aggregate = Some(window.aggregate);
            } else if end == t {
                plan.left_exists = true;
                if max < t {
                    plan.previous_timestamp = Some(max);
                }
                self.update(ctx, key, value, headers, t, start, Some(window.aggregate))?;
            } else if start <= t {
                plan.right_aggregate = Some(window.aggregate.clone());
                self.update(ctx, key, value, headers, t, start, Some(window.aggregate))?;
            } else {
                // start == t + 1: the record's right window exists.
                plan.right_exists = true;
            }
        }
        self.create_windows(ctx, key, value, headers, t, plan)
    }

    fn create_windows(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        key: &K,
        value: &V,
        headers: &Headers,
        t: i64,
        plan: Plan<VR>,
    ) -> Res {
        let d = self.windows.difference;
        // The previous record's right window, if missing and `t` falls in it.
        if let Some(previous) = plan.previous_timestamp {
            let start = previous + 1;
            if !plan.starts.contains(&start) && start + d >= t {
                self.update(ctx, key, value, headers, t, start, None)?;
            }
        }
        // The record's left window, holding the previous record's window
        // content when the previous record is within `d`.
        if !plan.left_exists {
            let current = match (plan.previous_timestamp, plan.left_aggregate) {
                (Some(previous), Some(left)) if t - d <= previous => {
                    Some(Stamped { value: left.value, max_timestamp: t })
                }
                _ => None,
            };
            self.update(ctx, key, value, headers, t, t - d, current)?;
        }
        // The record's right window, when records after it exist.
        if !plan.right_exists {
            if let Some(right) = plan.right_aggregate.filter(|r| r.max_timestamp > t) {
                self.put(ctx, key, t + 1, &right, headers)?;
            }
        }
        Ok(())
    }

    /// Kafka's `processEarly`: a record at `t < d` would own a left window
    /// starting before 0; all such records share the window `[0, d]`.
    fn process_early(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        key: &K,
        value: &V,
        headers: &Headers,
        t: i64,
    ) -> Res {
        let d = self.windows.difference;
        let mut combined: Option<Stamped<VR>> = None;
        let mut right_aggregate: Option<Stamped<VR>> = None;
        let mut right_exists = false;
        let mut starts = Vec::new();
        let mut previous_timestamp = None;
        for window in self.fetch(ctx, 0, t + 1)? {
            let start = window.start;
            starts.push(start);
            let max = window.aggregate.max_timestamp;
            if start == 0 {
                if max < t {
                    previous_timestamp = Some(max);
                }
                combined = Some(window.aggregate);
            } else if start <= t {
                right_aggregate = Some(window.aggregate.clone());
                self.update(ctx, key, value, headers, t, start, Some(window.aggregate))?;
            } else {
                right_exists = true;
            }
        }
        if right_aggregate.is_none() {
            right_aggregate = combined.clone().filter(|c| c.max_timestamp > t);
        }
        if !right_exists {
            if let Some(right) = right_aggregate.filter(|r| r.max_timestamp > t) {
                self.put(ctx, key, t + 1, &right, headers)?;
            }
        }
        if let Some(previous) = previous_timestamp {
            if !starts.contains(&(previous + 1)) {
                self.update(ctx, key, value, headers, t, previous + 1, None)?;
            }
        }
        self.update(ctx, key, value, headers, t, 0, combined)?;
        debug_assert!(d > t);
        Ok(())
    }
}

impl<K, V, VR> Processor<K, V> for SlidingAggregate<K, V, VR>
where
    K: Clone + Send + 'static,
    V: Clone + Send,
    VR: Clone + Send + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let Record { key, value, timestamp: t, headers } = record;
        let d = self.windows.difference;
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        if t + 1 + d <= close {
            ctx.metrics.record_dropped();
            debug!(task = %ctx.task, topic = ctx.topic, offset = ctx.offset, timestamp = t, close,
                "dropping a record later than every sliding window it belongs to");
            return Ok(());
        }
        self.prefix.clear();
        self.key_serde
            .serialize_into(self.store.topic(), &key, &mut self.prefix)
            .map_err(|e| serde_error(self.store.name(), "serialize", "key", e))?;
        if t < d {
            self.process_early(ctx, &key, &value, &headers, t)
        } else {
            self.process_regular(ctx, &key, &value, &headers, t)
        }
    }
}
