//! Windowed aggregations: [`KGroupedStream::windowed_by`] and
//! [`KGroupedStream::windowed_by_sessions`], the streams they return, and
//! their processors.
//!
//! Results are tables keyed by [`Windowed<K>`]: every update of a window's
//! aggregate is forwarded when the store's cache flushes, as with
//! non-windowed aggregations. A record is dropped, and counted in
//! `dropped-records-total`, when every window it belongs to has closed:
//! stream time has passed the window's end plus grace. Window stores are
//! segmented by time (see [`crate::window`]), so old windows expire by
//! dropping whole segments.

use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use tracing::debug;

use crate::dsl::kgrouped::{add_materializing_node, aggregation_node, AggregationNode};
use crate::dsl::suppress::{finish_windowed, EmitStrategy};
use crate::dsl::KGroupedStream;
use crate::dsl::KTable;
use crate::graph::{Graph, NodeId};
use crate::options::Materialized;
use crate::processor::typed_store::TypedStore;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;
use crate::serdes::Serde;
use crate::stateful::{aggregate_fn, count_fn, reduce_fn, StreamAggFn};
use crate::store::rocks::Segmenting;
use crate::window::{
    read_time, KeyTime, SessionWindowedSerde, SessionWindows, TimeWindows, Window, WindowStoreKeySerde,
    Windowed,
};
use crate::{Serdes, StreamsError};

type Res = Result<(), StreamsError>;

/// Merges two session aggregates of one key when a record bridges them.
pub(crate) type MergerFn<K, VR> = Arc<dyn Fn(&K, VR, VR) -> VR + Send + Sync>;

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Aggregates per key and time window: tumbling windows, or hopping
    /// ones with [`TimeWindows::advance_by`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use runnel_streams::{
    ///     Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, TimeWindows,
    ///     TopologyTestDriver,
    /// };
    ///
    /// let minute = Duration::from_secs(60);
    /// let mut builder = StreamsBuilder::new();
    /// builder
    ///     .stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
    ///     .windowed_by(TimeWindows::of_size_and_grace(minute, Duration::from_secs(10)))
    ///     .count(Materialized::as_("clicks-per-minute"))
    ///     .to_stream()
    ///     .map(|w, count| (format!("{}@{}", w.key, w.window.start), count.unwrap_or(0)))
    ///     .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
    /// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
    /// let clicks = driver.create_input_topic("clicks", Serdes::string(), Serdes::string());
    /// let counts = driver.create_output_topic("counts", Serdes::string(), Serdes::i64());
    /// clicks.pipe_input_with_timestamp("ann".into(), "/".into(), 5_000)?;
    /// clicks.pipe_input_with_timestamp("ann".into(), "/".into(), 65_000)?;
    /// clicks.pipe_input_with_timestamp("ann".into(), "/".into(), 59_000)?; // late, within grace
    /// clicks.pipe_input_with_timestamp("ann".into(), "/".into(), 80_000)?;
    /// clicks.pipe_input_with_timestamp("ann".into(), "/".into(), 2_000)?; // after end + grace: dropped
    /// assert_eq!(
    ///     counts.read_key_values_to_list()?,
    ///     vec![("ann@0".into(), 1), ("ann@60000".into(), 1), ("ann@0".into(), 2), ("ann@60000".into(), 2)]
    /// );
    /// assert_eq!(driver.metrics().dropped_records_total, 1);
    /// # Ok::<(), runnel_streams::StreamsError>(())
    /// ```
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream { grouped: self.clone_grouping(), windows, emit: EmitStrategy::OnWindowUpdate }
    }

    /// Aggregates per key and session: records of a key closer than the
    /// inactivity gap share a session; a record between two sessions merges
    /// them (the merged-away sessions are deleted downstream).
    pub fn windowed_by_sessions(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream { grouped: self.clone_grouping(), windows }
    }

    fn clone_grouping(&self) -> KGroupedStream<K, V> {
        KGroupedStream {
            graph: Rc::clone(&self.graph),
            node: self.node,
            repartition_required: self.repartition_required,
            grouped: self.grouped.clone(),
        }
    }
}

/// How a windowed aggregation's store is laid out.
pub(crate) struct WindowedLayout {
    /// Size (or gap) plus grace: the shortest retention allowed.
    pub(crate) minimum_retention: i64,
    /// Where the segmenting time sits in a key.
    pub(crate) time: KeyTime,
    /// Whether the processor reads the store by range.
    pub(crate) ranged: bool,
    /// Whether values start with a timestamp.
    pub(crate) timestamped: bool,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> KGroupedStream<K, V> {
    /// What every windowed aggregation does before adding its node: define
    /// the segmented store (retention: the asked one, at least the minimum,
    /// else a build error), resolve its serdes, and insert a repartition
    /// topic if the key changed. Returns the store, node name and serdes,
    /// and the node's parent.
    pub(crate) fn windowed_aggregation<VR: 'static>(
        &self,
        graph: &mut Graph,
        prefix: &str,
        materialized: Materialized<K, VR>,
        default_value_serde: Option<Arc<dyn Serde<VR>>>,
        layout: WindowedLayout,
    ) -> (AggregationNode<K, VR>, NodeId) {
        let asked = materialized.retention;
        let node =
            aggregation_node(graph, prefix, materialized, &self.grouped.key_serde, default_value_serde);
        let minimum = layout.minimum_retention;
        let retention = match asked {
            None => minimum,
            Some(asked) => {
                let asked = crate::duration::millis(asked);
                if asked < minimum {
                    graph.errors.push(StreamsError::RetentionTooShort {
                        store: node.store.clone(),
                        retention_ms: asked,
                        minimum_ms: minimum,
                    });
                }
                asked.max(minimum)
            }
        };
        let segmenting = Segmenting::new(retention, layout.time);
        graph.set_store_layout(&node.store, segmenting, layout.ranged, layout.timestamped);
        let parent = self.aggregation_parent(graph, &node.store);
        (node, parent)
    }
}

/// A grouped stream with time windows, ready to aggregate (Kafka's
/// `TimeWindowedKStream`); from [`KGroupedStream::windowed_by`].
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
    emit: EmitStrategy,
}

impl<K, V> fmt::Debug for TimeWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindowedKStream").field("windows", &self.windows).finish_non_exhaustive()
    }
}

impl<K, V> TimeWindowedKStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// When the aggregation emits its results (Kafka's `emitStrategy`,
    /// KIP-825): on every update (the default, as the record cache
    /// flushes), or [`EmitStrategy::on_window_close`], once per window
    /// with its final result.
    #[must_use]
    pub fn emit_strategy(mut self, emit: EmitStrategy) -> Self {
        self.emit = emit;
        self
    }

    fn finish<VR: Clone + Send + 'static>(&self, table: KTable<Windowed<K>, VR>) -> KTable<Windowed<K>, VR> {
        finish_windowed(table, self.emit)
    }
}

impl<K, V> TimeWindowedKStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Counts records per key and window.
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

    /// Folds the values of each key and window into an aggregate starting
    /// at `initializer()`. The aggregate's serde must be set with
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
            minimum_retention: windows.size.saturating_add(windows.grace),
            time: KeyTime::WindowStart,
            ranged: false,
            timestamped: false,
        };
        let (AggregationNode { store, name, ks, vs }, parent) =
            self.grouped.windowed_aggregation(&mut graph, prefix, materialized, default_value_serde, layout);
        let store_key: Arc<dyn Serde<Windowed<K>>> =
            Arc::new(WindowStoreKeySerde { inner: Arc::clone(&ks), size: windows.size });
        let serdes = (Arc::clone(&store_key), Arc::clone(&vs));
        let node = add_materializing_node::<K, Windowed<K>, V, VR, _, _>(
            &mut graph,
            name,
            parent,
            &store,
            (store_key, vs),
            move |store| WindowAggregate { store, key_serde: Arc::clone(&ks), windows, f: Arc::clone(&f) },
        );
        drop(graph);
        let table =
            KTable::new(Rc::clone(graph_rc), node, Some(store)).windowed(serdes.0, serdes.1, windows.grace);
        self.finish(table)
    }
}

/// Appends `key ‖ start ‖ seq` (a time window's store key) to `out`.
fn window_store_key<K: 'static>(
    serde: &dyn Serde<K>,
    topic: &str,
    key: &K,
    start: i64,
    out: &mut Vec<u8>,
) -> Result<(), crate::SerdeError> {
    serde.serialize_into(topic, key, out)?;
    out.extend_from_slice(&start.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    Ok(())
}

/// `count`, `reduce` and `aggregate` of a time-windowed stream (Kafka's
/// `KStreamWindowAggregate`).
pub(crate) struct WindowAggregate<K, V, VR> {
    store: TypedStore<Windowed<K>, VR>,
    key_serde: Arc<dyn Serde<K>>,
    windows: TimeWindows,
    f: StreamAggFn<K, V, VR>,
}

impl<K, V, VR> Processor<K, V> for WindowAggregate<K, V, VR>
where
    K: Clone + Send + 'static,
    V: Clone + Send,
    VR: Send + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        let Record { key, value, timestamp, headers } = record;
        let mut open = self.windows.windows_iter(timestamp).filter(|w| w.end > close).peekable();
        if open.peek().is_none() {
            ctx.metrics.record_dropped();
            debug!(task = %ctx.task, topic = ctx.topic, offset = ctx.offset, timestamp, close,
                "dropping a record later than every window's end plus grace");
            return Ok(());
        }
        let (mut value, mut headers) = (Some(value), Some(headers));
        while let Some(window) = open.next() {
            let serde = &*self.key_serde;
            self.store.set_key_with(|topic, out| window_store_key(serde, topic, &key, window.start, out))?;
            let current = self.store.get(ctx)?;
            // The last open window takes the value; earlier ones get copies.
            let (v, h) = match open.peek() {
                Some(_) => (value.clone(), headers.clone()),
                None => (value.take(), headers.take()),
            };
            let (Some(v), Some(h)) = (v, h) else { break };
            let next = (self.f)(&key, v, current);
            self.store.put(ctx, Some(&next), timestamp, h)?;
        }
        Ok(())
    }
}

/// A grouped stream with session windows, ready to aggregate (Kafka's
/// `SessionWindowedKStream`); from [`KGroupedStream::windowed_by_sessions`].
///
/// ```
/// use std::time::Duration;
/// use runnel_streams::{
///     Consumed, Grouped, Materialized, Serdes, SessionWindows, StreamsBuilder, StreamsConfig,
///     TopologyTestDriver, Produced, Window,
/// };
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
///     .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
///     .windowed_by_sessions(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(5)))
///     .count(Materialized::as_("sessions"))
///     .to_stream()
///     .to("out", Produced::with(Serdes::session_windowed(Serdes::string()), Serdes::nullable(Serdes::i64())));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("app"))?;
/// let clicks = driver.create_input_topic("clicks", Serdes::string(), Serdes::string());
/// let out = driver.create_output_topic("out", Serdes::session_windowed(Serdes::string()), Serdes::nullable(Serdes::i64()));
/// clicks.pipe_input_with_timestamp("ann".into(), "/".into(), 1_000)?;
/// clicks.pipe_input_with_timestamp("ann".into(), "/".into(), 3_000)?;
/// let updates: Vec<(Window, Option<i64>)> =
///     out.read_key_values_to_list()?.into_iter().map(|(w, c)| (w.window, c)).collect();
/// // The second click extends the first session: the old one is deleted.
/// assert_eq!(
///     updates,
///     vec![
///         (Window::new(1_000, 1_000), Some(1)),
///         (Window::new(1_000, 1_000), None),
///         (Window::new(1_000, 3_000), Some(2)),
///     ]
/// );
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K, V> fmt::Debug for SessionWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWindowedKStream").field("windows", &self.windows).finish_non_exhaustive()
    }
}

impl<K, V> SessionWindowedKStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Counts records per key and session.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let f: StreamAggFn<K, V, i64> = count_fn();
        let merger: MergerFn<K, i64> = Arc::new(|_, a, b| a + b);
        self.build("KSTREAM-AGGREGATE", materialized, Some(Arc::new(Serdes::i64())), f, merger)
    }

    /// Combines the values of each session with `reducer(aggregate, value)`;
    /// merging sessions combines their aggregates with the same reducer.
    pub fn reduce<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<Windowed<K>, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let reducer = Arc::new(reducer);
        let r = Arc::clone(&reducer);
        let f: StreamAggFn<K, V, V> = reduce_fn(move |a, b| r(a, b));
        let merger: MergerFn<K, V> = Arc::new(move |_, a, b| reducer(a, b));
        let default = Some(Arc::clone(&self.grouped.grouped.value_serde));
        self.build("KSTREAM-REDUCE", materialized, default, f, merger)
    }

    /// Folds each session's values into an aggregate starting at
    /// `initializer()`; `merger(key, a, b)` combines the aggregates of two
    /// sessions a record joins. The aggregate's serde must be set with
    /// [`Materialized::with_value_serde`].
    pub fn aggregate<VR, I, A, M>(
        &self,
        initializer: I,
        aggregator: A,
        merger: M,
        materialized: Materialized<K, VR>,
    ) -> KTable<Windowed<K>, VR>
    where
        VR: Clone + Send + 'static,
        I: Fn() -> VR + Send + Sync + 'static,
        A: Fn(&K, V, VR) -> VR + Send + Sync + 'static,
        M: Fn(&K, VR, VR) -> VR + Send + Sync + 'static,
    {
        let f: StreamAggFn<K, V, VR> = aggregate_fn(initializer, aggregator);
        self.build("KSTREAM-AGGREGATE", materialized, None, f, Arc::new(merger))
    }

    fn build<VR: Clone + Send + 'static>(
        &self,
        prefix: &str,
        materialized: Materialized<K, VR>,
        default_value_serde: Option<Arc<dyn Serde<VR>>>,
        f: StreamAggFn<K, V, VR>,
        merger: MergerFn<K, VR>,
    ) -> KTable<Windowed<K>, VR> {
        let graph_rc = &self.grouped.graph;
        let windows = self.windows;
        let mut graph = graph_rc.borrow_mut();
        let layout = WindowedLayout {
            minimum_retention: windows.gap.saturating_add(windows.grace),
            time: KeyTime::SessionEnd,
            ranged: true,
            timestamped: false,
        };
        let (AggregationNode { store, name, ks, vs }, parent) =
            self.grouped.windowed_aggregation(&mut graph, prefix, materialized, default_value_serde, layout);
        let store_key: Arc<dyn Serde<Windowed<K>>> =
            Arc::new(SessionWindowedSerde { inner: Arc::clone(&ks) });
        let serdes = (Arc::clone(&store_key), Arc::clone(&vs));
        let node = add_materializing_node::<K, Windowed<K>, V, VR, _, _>(
            &mut graph,
            name,
            parent,
            &store,
            (store_key, vs),
            move |store| SessionAggregate {
                store,
                key_serde: Arc::clone(&ks),
                windows,
                f: Arc::clone(&f),
                merger: Arc::clone(&merger),
                prefix: Vec::new(),
            },
        );
        drop(graph);
        // A session can still grow until stream time passes its end plus
        // the gap plus grace (a record that late would be dropped).
        let closes_after = windows.gap.saturating_add(windows.grace).saturating_add(1);
        KTable::new(Rc::clone(graph_rc), node, Some(store)).windowed(serdes.0, serdes.1, closes_after)
    }
}

/// Session aggregation (Kafka's `KStreamSessionWindowAggregate`).
pub(crate) struct SessionAggregate<K, V, VR> {
    store: TypedStore<Windowed<K>, VR>,
    key_serde: Arc<dyn Serde<K>>,
    windows: SessionWindows,
    f: StreamAggFn<K, V, VR>,
    merger: MergerFn<K, VR>,
    /// The current record's serialized key (reused).
    prefix: Vec<u8>,
}

impl<K, V, VR> SessionAggregate<K, V, VR>
where
    K: Clone + Send + 'static,
    VR: Send + 'static,
{
    /// The key's sessions that end at or after `earliest_end` and start at
    /// or before `latest_start`, oldest first.
    fn overlapping(
        &self,
        ctx: &ProcessorContext<'_>,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Window, VR)>, StreamsError> {
        let n = self.prefix.len();
        let from = [&self.prefix[..], &earliest_end.max(0).to_be_bytes()].concat();
        // Times are non-negative, so their first byte is below 0x80.
        let to = [&self.prefix[..], &[0x80]].concat();
        let mut found = Vec::new();
        for (bytes, value) in ctx.stores.range(self.store.handle(), &from, Some(&to))? {
            // A longer key that starts with this key's bytes is another key.
            if bytes.len() != n + 16 {
                continue;
            }
            let (end, start) = (read_time(&bytes, n), read_time(&bytes, n + 8));
            if end >= earliest_end && start <= latest_start {
                found.push((Window::new(start, end), self.store.decode_value(&value)?));
            }
        }
        found.sort_by_key(|(w, _)| (w.start, w.end));
        Ok(found)
    }

    fn set_session_key(&mut self, key: &K, window: Window) -> Res {
        let serde = &*self.key_serde;
        self.store.set_key_with(|topic, out| {
            serde.serialize_into(topic, key, out)?;
            out.extend_from_slice(&window.end.to_be_bytes());
            out.extend_from_slice(&window.start.to_be_bytes());
            Ok(())
        })
    }
}

impl<K, V, VR> Processor<K, V> for SessionAggregate<K, V, VR>
where
    K: Clone + Send + 'static,
    V: Send,
    VR: Send + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        let close = ctx.stream_time.saturating_sub(self.windows.grace);
        self.prefix.clear();
        self.key_serde
            .serialize_into(self.store.topic(), &key, &mut self.prefix)
            .map_err(|e| crate::store::serde_error::serde_error(self.store.name(), "serialize", "key", e))?;
        let gap = self.windows.gap;
        let sessions = self.overlapping(ctx, timestamp.saturating_sub(gap), timestamp.saturating_add(gap))?;
        let mut merged = Window::new(timestamp, timestamp);
        let mut aggregate: Option<VR> = None;
        let mut replaced = Vec::with_capacity(sessions.len());
        for (window, agg) in sessions {
            merged = Window::new(merged.start.min(window.start), merged.end.max(window.end));
            aggregate = Some(match aggregate {
                None => agg,
                Some(current) => (self.merger)(&key, current, agg),
            });
            replaced.push(window);
        }
        if merged.end < close {
            ctx.metrics.record_dropped();
            debug!(task = %ctx.task, topic = ctx.topic, offset = ctx.offset, timestamp, close,
                "dropping a record whose session ended before stream time minus grace");
            return Ok(());
        }
        for window in replaced {
            if window != merged {
                self.set_session_key(&key, window)?;
                self.store.put(ctx, None, timestamp, headers.clone())?;
            }
        }
        let next = (self.f)(&key, value, aggregate);
        self.set_session_key(&key, merged)?;
        self.store.put(ctx, Some(&next), timestamp, headers)
    }
}
