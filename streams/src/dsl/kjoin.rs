//! Stream-stream joins: [`KStream::join`], [`KStream::left_join`] and
//! [`KStream::outer_join`] within [`JoinWindows`], configured by
//! [`StreamJoined`].
//!
//! # How it runs
//!
//! Both inputs are tagged with their side and reach one join node (two
//! parents, like `merge`), so one processor per task owns the join's state:
//!
//! - a window store per side, `key ‖ timestamp ‖ seq` → value, holding
//!   every record (duplicates kept: `seq` is a per-task counter) for
//!   `before + after + grace`, with a changelog;
//! - for left and outer joins, a shared store of the records no record of
//!   the other side has matched yet, `timestamp ‖ side ‖ key ‖ seq` →
//!   value, in time order, with a changelog.
//!
//! A record is put into its side's store, then joined with every record of
//! the other side's store whose timestamp is within the window; the result
//! carries the larger timestamp. A record of an outer side that matches
//! nothing waits in the shared store; one of the other side that matches it
//! later takes it out. Kafka's semantics since 3.1 (KIP-633 and the fix of
//! spurious left/outer results): a result with a missing side is emitted
//! only once the record's window has closed — stream time past its window
//! end plus grace — and never eagerly. Records later than that are dropped
//! and counted in `dropped-records-total`.
//!
//! Stream time is the task's (the largest timestamp seen on any of its
//! inputs), as for windowed aggregations.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::dsl::kgrouped::repartition_names;
use crate::dsl::kstream::add_repartition;
use crate::dsl::KStream;
use crate::dsl::KTable;
use crate::duration::millis;
use crate::graph::NodeKind;
use crate::graph::{downcast_children, share, BuildContext, Erased, Factory, Graph, NodeDef, NodeId};
use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::{Headers, Record};
use crate::serdes::Serde;
use crate::store::cache::EntryContext;
use crate::store::rocks::Segmenting;
use crate::store::serde_error::serde_error;
use crate::store::state::StoreHandle;
use crate::store::window_cache::{window_key, window_key_into};
use crate::store::{ordered_time, ordered_time_of, put_len};
use crate::window::KeyTime;
use crate::StreamsError;

/// Which records of two streams join (Kafka's `JoinWindows`): a record of
/// this stream at time `t` joins a record of the other at `t'` when
/// `t - before <= t' <= t + after`. Records arriving more than `grace`
/// after their window closed are dropped.
///
/// ```
/// use std::time::Duration;
/// use runnel_streams::JoinWindows;
///
/// // Within 5 s either way; records up to 1 s late still join.
/// let windows = JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(1));
/// assert_eq!(windows.size(), Duration::from_secs(10));
/// // Only other records up to 2 s after this one.
/// let after_only = JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(2)).before(Duration::ZERO);
/// assert_eq!(after_only.size(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    pub(crate) before: i64,
    pub(crate) after: i64,
    pub(crate) grace: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join; late records are dropped
    /// at once.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> JoinWindows {
        JoinWindows { before: millis(difference), after: millis(difference), grace: 0 }
    }

    /// Records at most `difference` apart join; records up to `grace` late
    /// are still joined.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> JoinWindows {
        JoinWindows { before: millis(difference), after: millis(difference), grace: millis(grace) }
    }

    /// How far before a record of this stream the other's may be.
    #[must_use]
    pub fn before(mut self, difference: Duration) -> JoinWindows {
        self.before = millis(difference);
        self
    }

    /// How far after a record of this stream the other's may be.
    #[must_use]
    pub fn after(mut self, difference: Duration) -> JoinWindows {
        self.after = millis(difference);
        self
    }

    /// `before + after`.
    pub fn size(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.before.saturating_add(self.after)).unwrap_or(0))
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.grace).unwrap_or(0))
    }
}

/// Serdes and names of a stream-stream join (Kafka's `StreamJoined`): the
/// key serde and both value serdes (for the join's stores, changelogs and
/// repartition topics), and optionally the join's name (its nodes and
/// repartition topics) and its stores' name.
pub struct StreamJoined<K, V1, V2> {
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V1>>,
    pub(crate) other_value_serde: Arc<dyn Serde<V2>>,
    pub(crate) name: Option<String>,
    pub(crate) store_name: Option<String>,
}

impl<K, V1, V2> StreamJoined<K, V1, V2> {
    /// A join whose key, this stream's values and the other stream's
    /// values use these serdes.
    pub fn with(
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V1>,
        other_value_serde: impl Serde<V2>,
    ) -> StreamJoined<K, V1, V2> {
        StreamJoined {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            other_value_serde: Arc::new(other_value_serde),
            name: None,
            store_name: None,
        }
    }

    /// Names the join: its node is `<name>`, its repartition topics (when
    /// a side changed its key) `<application.id>-<name>-left-repartition`
    /// and `-right-repartition`.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Names the join's stores `<name>-this-join-store`,
    /// `<name>-other-join-store` and `<name>-outer-shared-join-store`.
    #[must_use]
    pub fn with_store_name(mut self, name: impl Into<String>) -> Self {
        self.store_name = Some(name.into());
        self
    }
}

/// Which sides may appear without a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
    Outer,
}

impl JoinKind {
    fn outer(self, left: bool) -> bool {
        match self {
            JoinKind::Inner => false,
            JoinKind::Left => left,
            JoinKind::Outer => true,
        }
    }
}

/// A record of either input, tagged on its way into the join node.
#[derive(Debug, Clone)]
pub(crate) enum Side<V1, V2> {
    Left(V1),
    Right(V2),
}

/// A stored record of the other side within a record's join window: its
/// time, sequence and value.
type Match<V1, V2> = (i64, u32, Side<V1, V2>);

/// Tags one input's records with their side.
pub(crate) struct TagNode<K, V1, V2, V> {
    pub(crate) wrap: fn(V) -> Side<V1, V2>,
    pub(crate) out: Forwarder<K, Side<V1, V2>>,
    pub(crate) _types: PhantomData<fn() -> V>,
}

impl<K, V1, V2, V> Processor<K, V> for TagNode<K, V1, V2, V>
where
    K: Clone + Send,
    V1: Clone + Send,
    V2: Clone + Send,
    V: Send,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<(), StreamsError> {
        let Record { key, value, timestamp, headers } = record;
        self.out.forward(ctx, Record { key, value: (self.wrap)(value), timestamp, headers })
    }
}

type Joiner<V1, V2, VR> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> VR + Send + Sync>;

/// The join's stores, as resolved in a task.
struct JoinStores {
    /// Left, right.
    windows: [StoreHandle; 2],
    /// The changelog topics, which store serdes are called with.
    topics: [Arc<str>; 2],
    names: [Arc<str>; 2],
    shared: Option<(StoreHandle, Arc<str>, Arc<str>)>,
}

/// Side bytes in the shared store's keys.
const LEFT: u8 = 0;
const RIGHT: u8 = 1;

/// The join node of one task.
struct StreamStreamJoin<K, V1, V2, VR> {
    kind: JoinKind,
    windows: JoinWindows,
    stores: JoinStores,
    key_serde: Arc<dyn Serde<K>>,
    left_serde: Arc<dyn Serde<V1>>,
    right_serde: Arc<dyn Serde<V2>>,
    joiner: Joiner<V1, V2, VR>,
    out: Forwarder<K, VR>,
    /// Keeps duplicates (same key and time) apart in the window stores.
    seq: u32,
    /// No record in the shared store closes before this: `None` when not
    /// known (after a restart), `Some(None)` when none waits.
    earliest_pending: Option<Option<i64>>,
    key: Vec<u8>,
    /// Window-store keys built per record (the record's own, then the
    /// bounds of the other side's range), reusing their allocations.
    bounds: (Vec<u8>, Vec<u8>),
}

/// `close ‖ side ‖ key ‖ seq`, the shared store's key, where `close` is
/// the end of the record's window: the store is in closing order.
fn pending_key(close: i64, side: u8, key: &[u8], seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 13);
    out.extend_from_slice(&close.to_be_bytes());
    out.push(side);
    out.extend_from_slice(key);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

impl<K, V1, V2, VR> StreamStreamJoin<K, V1, V2, VR>
where
    K: Clone + Send + 'static,
    V1: Clone + Send + 'static,
    V2: Clone + Send + 'static,
    VR: Clone + Send + 'static,
{
    /// How far after a record of `side` its window reaches.
    fn extent(&self, side: u8) -> i64 {
        if side == LEFT {
            self.windows.after
        } else {
            self.windows.before
        }
    }

    fn entry(ctx: &ProcessorContext<'_>, timestamp: i64, headers: &Headers) -> EntryContext {
        EntryContext { timestamp, topic: ctx.topic_index, offset: ctx.offset, headers: headers.clone() }
    }

    fn encode<T: 'static>(
        serde: &dyn Serde<T>,
        topic: &str,
        store: &str,
        value: &T,
    ) -> Result<Option<Vec<u8>>, StreamsError> {
        serde.serialize(topic, value).map_err(|e| serde_error(store, "serialize", "value", e))
    }

    /// Decodes a stored value of `side`.
    fn decode(&self, side: u8, topic: &str, store: &str, bytes: &[u8]) -> Result<Side<V1, V2>, StreamsError> {
        let fail = |e| serde_error(store, "deserialize", "value", e);
        Ok(if side == LEFT {
            Side::Left(self.left_serde.deserialize(topic, bytes).map_err(fail)?)
        } else {
            Side::Right(self.right_serde.deserialize(topic, bytes).map_err(fail)?)
        })
    }

    /// The joiner's result for a record and its match, if any, each in
    /// its place (left, right).
    fn apply(&self, record: &Side<V1, V2>, other: Option<&Side<V1, V2>>) -> VR {
        let (mut left, mut right) = (None, None);
        for value in std::iter::once(record).chain(other) {
            match value {
                Side::Left(v) => left = Some(v),
                Side::Right(v) => right = Some(v),
            }
        }
        (self.joiner)(left, right)
    }

    /// Emits the waiting records whose window has closed, in the order
    /// their windows closed.
    fn emit_closed(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
        let Some((handle, topic, name)) = self.stores.shared.clone() else { return Ok(()) };
        let stream_time = ctx.stream_time;
        let grace = self.windows.grace;
        if let Some(earliest) = self.earliest_pending {
            match earliest {
                None => return Ok(()),
                Some(close) if close.saturating_add(grace) >= stream_time => return Ok(()),
                Some(_) => {}
            }
        }
        // Keys start with the window's end: every entry before this bound
        // has closed, none after it has.
        let bound = stream_time.saturating_sub(grace).max(0);
        let upper = bound.to_be_bytes();
        for (bytes, value) in ctx.stores.range(handle, &[], Some(&upper[..]))? {
            if bytes.len() < 13 {
                continue;
            }
            let close = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
            let side = bytes[8];
            if side > RIGHT {
                continue;
            }
            let time = close.saturating_sub(self.extent(side));
            let context = Self::entry(ctx, time, &Headers::default());
            ctx.stores.put(handle, &bytes, None, context.clone());
            // Emitted without a match, the record is final: it leaves its
            // window store too, so a late record of the other side cannot
            // join it after that result.
            let (record_key, seq) = (&bytes[9..bytes.len() - 4], &bytes[bytes.len() - 4..]);
            let seq = u32::from_be_bytes(seq.try_into().expect("4 bytes"));
            ctx.stores.put(
                self.stores.windows[usize::from(side)],
                &window_key(record_key, time, seq),
                None,
                context,
            );
            // An entry of a side this join does not keep (a changelog
            // written by another kind of join under the same store name)
            // is dropped.
            if !self.kind.outer(side == LEFT) {
                continue;
            }
            let key = self
                .key_serde
                .deserialize(&topic, &bytes[9..bytes.len() - 4])
                .map_err(|e| serde_error(&name, "deserialize", "key", e))?;
            let result = self.apply(&self.decode(side, &topic, &name, &value)?, None);
            self.out
                .forward(ctx, Record { key, value: result, timestamp: time, headers: Headers::default() })?;
        }
        // What waits from the bound on closes no earlier than the bound.
        self.earliest_pending = Some(Some(bound));
        Ok(())
    }
}

impl<K, V1, V2, VR> Processor<K, Side<V1, V2>> for StreamStreamJoin<K, V1, V2, VR>
where
    K: Clone + Send + 'static,
    V1: Clone + Send + 'static,
    V2: Clone + Send + 'static,
    VR: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, Side<V1, V2>>,
    ) -> Result<(), StreamsError> {
        let Record { key, value, timestamp, headers } = record;
        let side = match value {
            Side::Left(_) => LEFT,
            Side::Right(_) => RIGHT,
        };
        let (this, other) = (usize::from(side), usize::from(1 - side));
        let stream_time = ctx.stream_time;
        // Too late for its own window: dropped, as Kafka does.
        if timestamp.saturating_add(self.extent(side)).saturating_add(self.windows.grace) < stream_time {
            ctx.metrics.record_dropped();
            tracing::debug!(timestamp, stream_time, "join: record later than its window plus grace dropped");
            return self.emit_closed(ctx);
        }
        self.key.clear();
        let topic = Arc::clone(&self.stores.topics[this]);
        let name = Arc::clone(&self.stores.names[this]);
        self.key_serde
            .serialize_into(&topic, &key, &mut self.key)
            .map_err(|e| serde_error(&name, "serialize", "key", e))?;
        let bytes = match &value {
            Side::Left(v) => Self::encode(&*self.left_serde, &topic, &name, v)?,
            Side::Right(v) => Self::encode(&*self.right_serde, &topic, &name, v)?,
        };
        let Some(bytes) = bytes else {
            // A null value does not join (Kafka skips it).
            return Ok(());
        };
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let context = Self::entry(ctx, timestamp, &headers);
        // A copy only for a record that may wait for its window to close
        // (left and outer joins).
        let waiting_bytes =
            (self.kind.outer(side == LEFT) && self.stores.shared.is_some()).then(|| bytes.clone());
        window_key_into(&mut self.bounds.0, &self.key, timestamp, seq);
        ctx.stores.put(self.stores.windows[this], &self.bounds.0, Some(bytes), context);

        // The other side's records within the window.
        let (from, to) = if side == LEFT {
            (timestamp.saturating_sub(self.windows.before), timestamp.saturating_add(self.windows.after))
        } else {
            (timestamp.saturating_sub(self.windows.after), timestamp.saturating_add(self.windows.before))
        };
        let n = self.key.len();
        window_key_into(&mut self.bounds.0, &self.key, from.max(0), 0);
        window_key_into(&mut self.bounds.1, &self.key, to.saturating_add(1), 0);
        let (other_topic, other_name) = (&self.stores.topics[other], &self.stores.names[other]);
        // The matches, decoded straight from the store's bytes (the cache
        // lends them): time, sequence and value of each.
        let mut matches: SmallVec<[Match<V1, V2>; 2]> = SmallVec::new();
        ctx.stores.range_each(
            self.stores.windows[other],
            &self.bounds.0,
            Some(&self.bounds.1),
            |stored, other_bytes| {
                if stored.len() == n + 12 {
                    let other_time = i64::from_be_bytes(stored[n..n + 8].try_into().expect("8 bytes"));
                    let other_seq = u32::from_be_bytes(stored[n + 8..].try_into().expect("4 bytes"));
                    matches.push((
                        other_time,
                        other_seq,
                        self.decode(1 - side, other_topic, other_name, other_bytes)?,
                    ));
                }
                Ok(())
            },
        )?;
        let other_outer = self.kind.outer(other == 0);
        let matched = !matches.is_empty();
        for (other_time, other_seq, other_value) in matches {
            let result = self.apply(&value, Some(&other_value));
            if other_outer {
                // The other record has a match now: it no longer waits.
                if let Some((shared, _, _)) = self.stores.shared {
                    let other_close = other_time.saturating_add(self.extent(1 - side));
                    let waiting = pending_key(other_close, 1 - side, &self.key, other_seq);
                    if ctx.stores.get(shared, &waiting)?.is_some() {
                        let context = Self::entry(ctx, other_time, &headers);
                        ctx.stores.put(shared, &waiting, None, context);
                    }
                }
            }
            let out = Record {
                key: key.clone(),
                value: result,
                timestamp: timestamp.max(other_time),
                headers: headers.clone(),
            };
            self.out.forward(ctx, out)?;
        }
        if !matched && self.kind.outer(side == LEFT) {
            if let Some((shared, _, _)) = self.stores.shared {
                let context = Self::entry(ctx, timestamp, &headers);
                let close = timestamp.saturating_add(self.extent(side));
                ctx.stores.put(shared, &pending_key(close, side, &self.key, seq), waiting_bytes, context);
                if let Some(known) = self.earliest_pending.as_mut() {
                    *known = Some(known.map_or(close, |c| c.min(close)));
                }
            }
        }
        self.emit_closed(ctx)
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Joins records of this stream and `other` with the same key whose
    /// timestamps are within `windows` (Kafka's `KStream#join`): each pair
    /// becomes `joiner(this, other)` with the larger timestamp.
    ///
    /// A side whose key changed since it was read (`map`, `select_key`,
    /// ...) goes through a repartition topic first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use runnel_streams::{Consumed, JoinWindows, Produced, Serdes, StreamJoined, StreamsBuilder, StreamsConfig, TopologyTestDriver};
    ///
    /// let mut b = StreamsBuilder::new();
    /// let views = b.stream::<String, String>("views", Consumed::with(Serdes::string(), Serdes::string()));
    /// let clicks = b.stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()));
    /// views
    ///     .join(
    ///         &clicks,
    ///         |view, click| format!("{view}->{click}"),
    ///         JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(10)),
    ///         StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()),
    ///     )
    ///     .to("view-clicks", Produced::with(Serdes::string(), Serdes::string()));
    /// let driver = TopologyTestDriver::new(b.build()?, StreamsConfig::new("ad-app"))?;
    /// let (v, c) = (driver.create_input_topic("views", Serdes::string(), Serdes::string()),
    ///               driver.create_input_topic("clicks", Serdes::string(), Serdes::string()));
    /// let out = driver.create_output_topic("view-clicks", Serdes::string(), Serdes::string());
    /// v.pipe_input_with_timestamp("u1".into(), "ad7".into(), 1_000)?;
    /// c.pipe_input_with_timestamp("u1".into(), "buy".into(), 5_000)?;   // within 10 s
    /// c.pipe_input_with_timestamp("u1".into(), "late".into(), 20_000)?; // too far apart
    /// assert_eq!(out.read_key_values_to_list()?, vec![("u1".to_string(), "ad7->buy".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join<V2, VR, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR>
    where
        V2: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&V, &V2) -> VR + Send + Sync + 'static,
    {
        let joiner: Joiner<V, V2, VR> = Arc::new(move |l, r| match (l, r) {
            (Some(l), Some(r)) => joiner(l, r),
            _ => unreachable!("an inner join joins only matched pairs"),
        });
        self.stream_join(other, joiner, windows, joined, JoinKind::Inner)
    }

    /// As [`join`](Self::join), and every record of this stream that no
    /// record of `other` joined within its window becomes
    /// `joiner(this, None)` once the window has closed (stream time past
    /// its end plus grace), never before.
    pub fn left_join<V2, VR, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR>
    where
        V2: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    {
        let joiner: Joiner<V, V2, VR> = Arc::new(move |l, r| match l {
            Some(l) => joiner(l, r),
            None => unreachable!("a left join never emits a right record alone"),
        });
        self.stream_join(other, joiner, windows, joined, JoinKind::Left)
    }

    /// As [`left_join`](Self::left_join), for both sides: an unmatched
    /// record of either stream becomes `joiner(Some(this), None)` or
    /// `joiner(None, Some(other))` once its window has closed.
    pub fn outer_join<V2, VR, F>(
        &self,
        other: &KStream<K, V2>,
        joiner: F,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR>
    where
        V2: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    {
        self.stream_join(other, Arc::new(joiner), windows, joined, JoinKind::Outer)
    }

    fn stream_join<V2, VR>(
        &self,
        other: &KStream<K, V2>,
        joiner: Joiner<V, V2, VR>,
        windows: JoinWindows,
        joined: StreamJoined<K, V, V2>,
        kind: JoinKind,
    ) -> KStream<K, VR>
    where
        V2: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        if !Rc::ptr_eq(&self.graph, &other.graph) {
            let name = graph.new_name("KSTREAM-JOIN");
            graph.errors.push(StreamsError::ForeignStream { node: name });
        }
        let prefix = match kind {
            JoinKind::Inner => "KSTREAM-JOIN",
            JoinKind::Left => "KSTREAM-LEFTJOIN",
            JoinKind::Outer => "KSTREAM-OUTERJOIN",
        };
        let name = graph.name_or(joined.name.clone().or_else(|| self.next_name.clone()), prefix);
        let base = joined.store_name.clone().unwrap_or_else(|| name.clone());
        let this_store = format!("{base}-this-join-store");
        let other_store = format!("{base}-other-join-store");
        let shared_store = (kind != JoinKind::Inner).then(|| format!("{base}-outer-shared-join-store"));
        // Each window store keeps a record for as long as one of the other
        // side may still join it.
        let retention = windows.before.saturating_add(windows.after).saturating_add(windows.grace).max(1);
        for (side, store) in [&this_store, &other_store].into_iter().enumerate() {
            graph.add_store(store, true);
            graph.set_store_internal(store);
            graph.set_store_layout(
                store,
                Segmenting::new(retention, KeyTime::WindowStart).for_join(),
                true,
                false,
            );
            if let Some(def) = graph.store_mut(store) {
                def.window_cache = Some((base.clone(), side));
            }
        }
        if let Some(shared) = &shared_store {
            graph.add_internal_store(shared, true);
        }
        // A side whose key changed is repartitioned by its new key first.
        let left_parent = join_input(
            &mut graph,
            self.node,
            self.repartition_required,
            joined.name.as_deref().map(|n| format!("{n}-left")),
            &format!("{base}-left"),
            Arc::clone(&joined.key_serde),
            Arc::clone(&joined.value_serde),
        );
        let right_parent = join_input(
            &mut graph,
            other.node,
            other.repartition_required,
            joined.name.as_deref().map(|n| format!("{n}-right")),
            &format!("{base}-right"),
            Arc::clone(&joined.key_serde),
            Arc::clone(&joined.other_value_serde),
        );
        graph.copartitions.push(vec![left_parent, right_parent]);
        let this_name = graph.new_name("KSTREAM-JOINTHIS");
        let left = graph.add_processor::<K, V, K, Side<V, V2>, _, _>(this_name, vec![left_parent], |out| {
            TagNode { wrap: Side::Left, out, _types: PhantomData }
        });
        let other_name = graph.new_name("KSTREAM-JOINOTHER");
        let right =
            graph.add_processor::<K, V2, K, Side<V, V2>, _, _>(other_name, vec![right_parent], |out| {
                TagNode { wrap: Side::Right, out, _types: PhantomData }
            });
        let node_name = name.clone();
        let stores_used: Vec<String> =
            [Some(this_store.clone()), Some(other_store.clone()), shared_store.clone()]
                .into_iter()
                .flatten()
                .collect();
        let StreamJoined { key_serde, value_serde, other_value_serde, .. } = joined;
        let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
            let out = downcast_children::<K, VR>(&node_name, children)?;
            let (l, l_topic) = ctx.store(&node_name, &this_store)?;
            let l_topic: Arc<str> = Arc::from(l_topic);
            let (r, r_topic) = ctx.store(&node_name, &other_store)?;
            let r_topic: Arc<str> = Arc::from(r_topic);
            let shared = match &shared_store {
                Some(s) => {
                    let (h, topic) = ctx.store(&node_name, s)?;
                    Some((h, Arc::from(topic), Arc::from(s.as_str())))
                }
                None => None,
            };
            let processor: Box<dyn Processor<K, Side<V, V2>>> = Box::new(StreamStreamJoin {
                kind,
                windows,
                stores: JoinStores {
                    windows: [l, r],
                    topics: [l_topic, r_topic],
                    names: [Arc::from(this_store.as_str()), Arc::from(other_store.as_str())],
                    shared,
                },
                key_serde: Arc::clone(&key_serde),
                left_serde: Arc::clone(&value_serde),
                right_serde: Arc::clone(&other_value_serde),
                joiner: Arc::clone(&joiner),
                out: Forwarder::new(out),
                seq: initial_seq(),
                earliest_pending: None,
                key: Vec::new(),
                bounds: (Vec::new(), Vec::new()),
            });
            Ok(Box::new(processor) as Erased)
        });
        let node = graph.push(NodeDef {
            name,
            kind: NodeKind::Processor { stores: stores_used },
            parents: vec![left, right],
            factory,
            share: share::<K, Side<V, V2>>,
        });
        drop(graph);
        self.derive(node, false)
    }
}

/// A starting point for a task's duplicate counter that differs between
/// runs, so that records restored from a changelog are not overwritten by
/// new ones with the same key, time and counter.
fn initial_seq() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
}

/// The node a join reads one side from: the side itself, or a repartition
/// topic by its key when the key changed.
#[allow(clippy::too_many_arguments, reason = "a side and how to repartition it")]
fn join_input<K, V>(
    graph: &mut Graph,
    node: NodeId,
    repartition_required: bool,
    name: Option<String>,
    base: &str,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
) -> NodeId
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    if !repartition_required {
        return node;
    }
    let names = repartition_names(graph, name.as_deref(), base);
    add_repartition(graph, node, names, key_serde, value_serde, None)
}

/// Serdes of a stream-table join (Kafka's `Joined`): the key, the
/// stream's values (for a repartition topic when the stream's key
/// changed) and the table's values (to read its store).
pub struct Joined<K, V, VT> {
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) table_value_serde: Arc<dyn Serde<VT>>,
    pub(crate) name: Option<String>,
    pub(crate) grace: Option<Duration>,
}

impl<K, V, VT> Joined<K, V, VT> {
    /// A join whose key, stream values and table values use these serdes.
    pub fn with(
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        table_value_serde: impl Serde<VT>,
    ) -> Joined<K, V, VT> {
        Joined {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            table_value_serde: Arc::new(table_value_serde),
            name: None,
            grace: None,
        }
    }

    /// Holds each stream record back until stream time passes its
    /// timestamp plus `grace`, then joins it with the table as of its
    /// timestamp (Kafka's `Joined#withGracePeriod`, KIP-923), so table
    /// updates that arrive late, but within `grace`, still count. The
    /// table must be versioned
    /// ([`Materialized::with_versioning`](crate::Materialized::with_versioning));
    /// records are buffered in a store with a changelog
    /// (`<name>-grace-buffer-store`, headers kept) and joined in timestamp
    /// order, checked each time a stream record arrives. A record already
    /// older than stream time minus `grace` is joined at once.
    #[must_use]
    pub fn with_grace_period(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Names the join node (and its repartition topic
    /// `<application.id>-<name>-repartition`).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

type TableJoiner<V, VT, VR> = Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>;

/// Looks each stream record's key up in the table's store.
struct StreamTableJoin<K, V, VT, VR> {
    store: crate::dsl::versioned::TableReader<K, VT>,
    joiner: TableJoiner<V, VT, VR>,
    out: Forwarder<K, VR>,
    /// With a grace period: where records wait.
    buffer: Option<GraceBuffer<K, V>>,
}

/// Stream records waiting for their grace period to pass: `time ‖ seq`
/// → `len(key) ‖ key ‖ headers ‖ value`, in time order, where headers
/// are `count ‖ (len(name) ‖ name ‖ len(value) ‖ value)*` (u32 lengths).
struct GraceBuffer<K, V> {
    handle: StoreHandle,
    name: Arc<str>,
    topic: Arc<str>,
    grace: i64,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    seq: u32,
    /// Nothing waits from before this; `None` when unknown (after a
    /// restart).
    earliest: Option<i64>,
}

/// The first `n` bytes of `rest`, which moves past them.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

/// A u32 length from the front of `rest`.
fn take_len(rest: &mut &[u8]) -> Option<usize> {
    take(rest, 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

impl<K, V> GraceBuffer<K, V>
where
    K: 'static,
    V: 'static,
{
    fn push(&mut self, ctx: &mut ProcessorContext<'_>, record: &Record<K, V>) -> Result<(), StreamsError> {
        let fail = |part, e| serde_error(&self.name, "serialize", part, e);
        let mut key = Vec::new();
        self.key_serde.serialize_into(&self.topic, &record.key, &mut key).map_err(|e| fail("key", e))?;
        let mut value = Vec::with_capacity(4 + key.len() + 16);
        put_len(&mut value, key.len());
        value.extend_from_slice(&key);
        put_len(&mut value, record.headers.len());
        for (name, bytes) in &record.headers {
            put_len(&mut value, name.len());
            value.extend_from_slice(name.as_bytes());
            put_len(&mut value, bytes.len());
            value.extend_from_slice(bytes);
        }
        self.value_serde
            .serialize_into(&self.topic, &record.value, &mut value)
            .map_err(|e| fail("value", e))?;
        self.seq = self.seq.wrapping_add(1);
        let mut stored_key = ordered_time(record.timestamp).to_vec();
        stored_key.extend_from_slice(&self.seq.to_be_bytes());
        let context = EntryContext {
            timestamp: record.timestamp,
            topic: ctx.topic_index,
            offset: ctx.offset,
            headers: Vec::new(),
        };
        ctx.stores.put(self.handle, &stored_key, Some(value), context);
        if let Some(earliest) = self.earliest.as_mut() {
            *earliest = (*earliest).min(record.timestamp);
        }
        Ok(())
    }

    /// Takes the records whose grace period has passed out, oldest first.
    fn due(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<Vec<Record<K, V>>, StreamsError> {
        let bound = ctx.stream_time.saturating_sub(self.grace);
        if self.earliest.is_some_and(|e| e > bound) {
            return Ok(Vec::new());
        }
        let upper = ordered_time(bound.saturating_add(1));
        let mut due = Vec::new();
        for (stored_key, value) in ctx.stores.range(self.handle, &[], Some(&upper))? {
            let context = EntryContext {
                timestamp: bound,
                topic: ctx.topic_index,
                offset: ctx.offset,
                headers: Vec::new(),
            };
            ctx.stores.put(self.handle, &stored_key, None, context);
            let corrupt = || StreamsError::Internal {
                node: self.name.to_string(),
                reason: format!("malformed grace-buffer entry {stored_key:?}"),
            };
            let timestamp = stored_key.get(..8).and_then(ordered_time_of).ok_or_else(corrupt)?;
            let mut rest = value.as_slice();
            let key = take_len(&mut rest).and_then(|n| take(&mut rest, n)).ok_or_else(corrupt)?.to_vec();
            let count = take_len(&mut rest).ok_or_else(corrupt)?;
            let mut headers = Headers::default();
            for _ in 0..count {
                let name = take_len(&mut rest).and_then(|n| take(&mut rest, n)).ok_or_else(corrupt)?;
                let name = String::from_utf8_lossy(name).into_owned();
                let bytes = take_len(&mut rest).and_then(|n| take(&mut rest, n)).ok_or_else(corrupt)?;
                headers.push((name, bytes.to_vec()));
            }
            let fail = |part, e| serde_error(&self.name, "deserialize", part, e);
            let key = self.key_serde.deserialize(&self.topic, &key).map_err(|e| fail("key", e))?;
            let value = self.value_serde.deserialize(&self.topic, rest).map_err(|e| fail("value", e))?;
            due.push(Record { key, value, timestamp, headers });
        }
        // What still waits is past the bound.
        self.earliest = Some(bound.saturating_add(1));
        Ok(due)
    }
}

impl<K, V, VT, VR> Processor<K, V> for StreamTableJoin<K, V, VT, VR>
where
    K: Clone + Send + 'static,
    V: Send + 'static,
    VT: Send + 'static,
    VR: Clone + Send + 'static,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<(), StreamsError> {
        let Some(buffer) = self.buffer.as_mut() else { return self.join(ctx, record) };
        if record.timestamp.saturating_add(buffer.grace) > ctx.stream_time {
            buffer.push(ctx, &record)?;
        } else {
            self.join(ctx, record)?;
        }
        let due = self.buffer.as_mut().map(|b| b.due(ctx)).transpose()?.unwrap_or_default();
        for record in due {
            self.join(ctx, record)?;
        }
        Ok(())
    }
}

impl<K, V, VT, VR> StreamTableJoin<K, V, VT, VR>
where
    K: Clone + Send + 'static,
    V: Send + 'static,
    VT: Send + 'static,
    VR: Clone + Send + 'static,
{
    /// Joins `record` with the table as of its timestamp (a plain table:
    /// its latest value).
    fn join(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<(), StreamsError> {
        let Record { key, value, timestamp, headers } = record;
        self.store.set_key(&key)?;
        // A versioned table answers as of the record's time; a plain one
        // with its latest value.
        let current = self.store.get_as_of(ctx, timestamp)?;
        match (self.joiner)(&value, current.as_ref()) {
            Some(result) => self.out.forward(ctx, Record { key, value: result, timestamp, headers }),
            None => Ok(()),
        }
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Joins each record of this stream with the table's value for its key
    /// at the time the record is processed (Kafka's `KStream#join(KTable)`):
    /// records whose key is not in the table are dropped; updates of the
    /// table alone emit nothing. The table must be materialized
    /// ([`StreamsBuilder::table`](crate::StreamsBuilder::table) or an
    /// aggregation), and the stream is repartitioned first if its key
    /// changed; both must have the same partition count.
    ///
    /// ```
    /// use runnel_streams::{Consumed, Joined, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver};
    ///
    /// let mut b = StreamsBuilder::new();
    /// let users = b.table::<String, String>("users", Consumed::with(Serdes::string(), Serdes::string()), Materialized::new());
    /// b.stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
    ///     .join_table(&users, |page, region| format!("{page}@{region}"), Joined::with(Serdes::string(), Serdes::string(), Serdes::string()))
    ///     .to("clicks-by-region", Produced::with(Serdes::string(), Serdes::string()));
    /// let driver = TopologyTestDriver::new(b.build()?, StreamsConfig::new("enrich"))?;
    /// let (u, c) = (driver.create_input_topic("users", Serdes::string(), Serdes::string()),
    ///               driver.create_input_topic("clicks", Serdes::string(), Serdes::string()));
    /// let out = driver.create_output_topic("clicks-by-region", Serdes::string(), Serdes::string());
    /// c.pipe_input("ann".into(), "/early".into())?;   // ann is not in the table yet: dropped
    /// u.pipe_input("ann".into(), "EU".into())?;
    /// c.pipe_input("ann".into(), "/docs".into())?;
    /// assert_eq!(out.read_key_values_to_list()?, vec![("ann".to_string(), "/docs@EU".to_string())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_table<VT, VR, F>(
        &self,
        table: &KTable<K, VT>,
        joiner: F,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR>
    where
        VT: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&V, &VT) -> VR + Send + Sync + 'static,
    {
        let joiner: TableJoiner<V, VT, VR> = Arc::new(move |v, t| t.map(|t| joiner(v, t)));
        self.table_join(table, joiner, joined, "KSTREAM-JOIN")
    }

    /// As [`join_table`](Self::join_table), and a record whose key is not
    /// in the table becomes `joiner(value, None)` (Kafka's
    /// `KStream#leftJoin(KTable)`).
    pub fn left_join_table<VT, VR, F>(
        &self,
        table: &KTable<K, VT>,
        joiner: F,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR>
    where
        VT: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    {
        let joiner: TableJoiner<V, VT, VR> = Arc::new(move |v, t| Some(joiner(v, t)));
        self.table_join(table, joiner, joined, "KSTREAM-LEFTJOIN")
    }

    fn table_join<VT, VR>(
        &self,
        table: &KTable<K, VT>,
        joiner: TableJoiner<V, VT, VR>,
        joined: Joined<K, V, VT>,
        prefix: &str,
    ) -> KStream<K, VR>
    where
        VT: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.name_or(joined.name.clone().or_else(|| self.next_name.clone()), prefix);
        if !Rc::ptr_eq(&self.graph, &table.graph) {
            graph.errors.push(StreamsError::ForeignStream { node: name.clone() });
        }
        let Some(store) = table.store.clone() else {
            graph.errors.push(StreamsError::TableNotMaterialized { node: name.clone() });
            drop(graph);
            return self.derive(self.node, false);
        };
        let parent = join_input(
            &mut graph,
            self.node,
            self.repartition_required,
            joined.name.clone(),
            &name,
            Arc::clone(&joined.key_serde),
            Arc::clone(&joined.value_serde),
        );
        graph.copartitions.push(vec![parent, table.node]);
        let node_name = name.clone();
        let store_name = store.clone();
        let versioned = table.versioned;
        let grace = joined.grace.map(millis);
        if let (Some(grace), Some(history)) = (grace, versioned) {
            if grace > history {
                graph.errors.push(StreamsError::Unsupported {
                    node: name.clone(),
                    reason: format!(
                        "the grace period ({grace} ms) is longer than the table's history retention ({history} ms): \
                         records released after it would find no version"
                    ),
                });
            }
        }
        if grace.is_some() && versioned.is_none() {
            graph.errors.push(StreamsError::Unsupported {
                node: name.clone(),
                reason: "a stream-table join with a grace period needs a versioned table (Materialized::with_versioning)"
                    .to_string(),
            });
        }
        // With a grace period, records wait in a buffer store.
        let buffering = grace.map(|grace| (format!("{name}-grace-buffer-store"), grace));
        if let Some((buffer, _)) = &buffering {
            graph.add_internal_store(buffer, true);
        }
        let mut stores = vec![store];
        stores.extend(buffering.as_ref().map(|(buffer, _)| buffer.clone()));
        let Joined { key_serde, value_serde, table_value_serde, .. } = joined;
        let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
            let out = downcast_children::<K, VR>(&node_name, children)?;
            let serdes = (Arc::clone(&key_serde), Arc::clone(&table_value_serde));
            let store =
                crate::dsl::versioned::TableReader::open(ctx, &node_name, &store_name, serdes, versioned)?;
            let buffer = match &buffering {
                Some((buffer_name, grace)) => {
                    let (handle, topic) = ctx.store(&node_name, buffer_name)?;
                    Some(GraceBuffer {
                        handle,
                        name: Arc::from(buffer_name.as_str()),
                        topic: Arc::from(topic),
                        grace: *grace,
                        key_serde: Arc::clone(&key_serde),
                        value_serde: Arc::clone(&value_serde),
                        seq: initial_seq(),
                        earliest: None,
                    })
                }
                None => None,
            };
            let processor: Box<dyn Processor<K, V>> = Box::new(StreamTableJoin {
                store,
                joiner: Arc::clone(&joiner),
                out: Forwarder::new(out),
                buffer,
            });
            Ok(Box::new(processor) as Erased)
        });
        let node = graph.push(NodeDef {
            name,
            kind: NodeKind::Processor { stores },
            parents: vec![parent],
            factory,
            share: share::<K, V>,
        });
        drop(graph);
        self.derive(node, false)
    }
}
