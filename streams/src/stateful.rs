//! Processors behind aggregations and tables. Stateful nodes update their
//! store and forward nothing themselves: their children receive the
//! store's flushed updates as [`Change`]s through a [`ChangeForwarder`]
//! (Kafka's forward-on-flush with caching enabled). Stateless table nodes
//! (`filter`, `map_values`, `to_stream`, `group_by`) transform changes as
//! they pass.

use std::sync::Arc;

use crate::change::Change;
use crate::processor::typed_store::TypedStore;
use crate::processor::FlushListener;
use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::{Headers, Record};
use crate::serdes::Serde;
use crate::store::serde_error::serde_error;
use crate::StreamsError;

type Res = Result<(), StreamsError>;

/// A user predicate on key and value, shared by all tasks.
pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;
/// A user value mapper (with the key), shared by all tasks.
pub(crate) type ValueMapper<K, V, VO> = Arc<dyn Fn(&K, V) -> VO + Send + Sync>;
/// A user mapper to a new key and value, shared by all tasks.
pub(crate) type KeyValueMapper<K, V, KR, VR> = Arc<dyn Fn(&K, &V) -> (KR, VR) + Send + Sync>;

/// Decodes a store's flushed entries and forwards them as changes.
pub(crate) struct ChangeForwarder<K, V> {
    pub(crate) store: Arc<str>,
    pub(crate) topic: Arc<str>,
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) out: Forwarder<K, Change<V>>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> FlushListener for ChangeForwarder<K, V> {
    fn apply(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        key: &[u8],
        new: Option<&[u8]>,
        old: Option<&[u8]>,
        timestamp: i64,
        headers: Headers,
    ) -> Res {
        let value = |bytes: Option<&[u8]>| {
            bytes
                .map(|b| self.value_serde.deserialize(&self.topic, b))
                .transpose()
                .map_err(|e| serde_error(&self.store, "deserialize", "value", e))
        };
        let change = Change { new: value(new)?, old: value(old)? };
        let key = self
            .key_serde
            .deserialize(&self.topic, key)
            .map_err(|e| serde_error(&self.store, "deserialize", "key", e))?;
        self.out.forward(ctx, Record { key, value: change, timestamp, headers })
    }
}

/// Folds a stream record into the current aggregate (`None` = no aggregate yet).
pub(crate) type StreamAggFn<K, V, VR> = Arc<dyn Fn(&K, V, Option<VR>) -> VR + Send + Sync>;

/// `count`: one more per record.
pub(crate) fn count_fn<K, V>() -> StreamAggFn<K, V, i64> {
    Arc::new(|_, _, count| count.unwrap_or(0) + 1)
}

/// `reduce`: the first value, then `reducer(aggregate, value)`.
pub(crate) fn reduce_fn<K, V, F>(reducer: F) -> StreamAggFn<K, V, V>
where
    F: Fn(V, V) -> V + Send + Sync + 'static,
{
    Arc::new(move |_, value, agg| match agg {
        Some(agg) => reducer(agg, value),
        None => value,
    })
}

/// `aggregate`: `aggregator(key, value, aggregate or initializer())`.
pub(crate) fn aggregate_fn<K, V, VR, I, A>(initializer: I, aggregator: A) -> StreamAggFn<K, V, VR>
where
    I: Fn() -> VR + Send + Sync + 'static,
    A: Fn(&K, V, VR) -> VR + Send + Sync + 'static,
{
    Arc::new(move |key, value, agg| aggregator(key, value, agg.unwrap_or_else(&initializer)))
}

/// `count`, `reduce` and `aggregate` of a grouped stream.
pub(crate) struct StreamAggregate<K, V, VR> {
    pub(crate) store: TypedStore<K, VR>,
    pub(crate) f: StreamAggFn<K, V, VR>,
}

impl<K: Send + 'static, V: Send, VR: Send + 'static> Processor<K, V> for StreamAggregate<K, V, VR> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Res {
        self.store.set_key(&record.key)?;
        let current = self.store.get(ctx)?;
        let next = (self.f)(&record.key, record.value, current);
        self.store.put(ctx, Some(&next), record.timestamp, record.headers)
    }
}

/// Applies a table change to the current aggregate; `None` deletes it.
pub(crate) type TableAggFn<K, V, VR> = Arc<dyn Fn(&K, Change<V>, Option<VR>) -> Option<VR> + Send + Sync>;

/// `count`, `reduce` and `aggregate` of a grouped table.
pub(crate) struct TableAggregate<K, V, VR> {
    pub(crate) store: TypedStore<K, VR>,
    pub(crate) f: TableAggFn<K, V, VR>,
}

impl<K: Send + 'static, V: Send, VR: Send + 'static> Processor<K, Change<V>> for TableAggregate<K, V, VR> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, Change<V>>) -> Res {
        self.store.set_key(&record.key)?;
        let current = self.store.get(ctx)?;
        let next = (self.f)(&record.key, record.value, current);
        self.store.put(ctx, next.as_ref(), record.timestamp, record.headers)
    }
}

/// Materializes a table: each record is the key's new value (`None`, a
/// tombstone, deletes it). Input `I` is `V` (`to_table`) or `Option<V>`
/// (a table read from a topic).
pub(crate) struct TableSource<K, V> {
    pub(crate) store: TypedStore<K, V>,
}

impl<K: Send + 'static, V: Send + 'static, I: Into<Option<V>> + Send> Processor<K, I> for TableSource<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, I>) -> Res {
        self.store.set_key(&record.key)?;
        let value: Option<V> = record.value.into();
        self.store.put(ctx, value.as_ref(), record.timestamp, record.headers)
    }
}

/// `KTable::filter` / `filter_not`: a value that fails becomes absent, so
/// a key whose new value fails is deleted downstream.
pub(crate) struct TableFilter<K, V> {
    pub(crate) pred: Predicate<K, V>,
    pub(crate) keep: bool,
    pub(crate) out: Forwarder<K, Change<V>>,
}

impl<K: Clone + Send, V: Clone + Send> Processor<K, Change<V>> for TableFilter<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, Change<V>>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        let pass = |v: Option<V>| v.filter(|v| (self.pred)(&key, v) == self.keep);
        let change = Change { new: pass(value.new), old: pass(value.old) };
        if change.new.is_none() && change.old.is_none() {
            return Ok(());
        }
        self.out.forward(ctx, Record { key, value: change, timestamp, headers })
    }
}

/// `KTable::map_values`: maps the new and the old value.
pub(crate) struct TableMapValues<K, V, VO> {
    pub(crate) f: ValueMapper<K, V, VO>,
    pub(crate) out: Forwarder<K, Change<VO>>,
}

impl<K: Clone + Send, V: Send, VO: Clone + Send> Processor<K, Change<V>> for TableMapValues<K, V, VO> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, Change<V>>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        let change =
            Change { new: value.new.map(|v| (self.f)(&key, v)), old: value.old.map(|v| (self.f)(&key, v)) };
        self.out.forward(ctx, Record { key, value: change, timestamp, headers })
    }
}

/// `KTable::to_stream`: the new value of each change (`None` for a delete).
pub(crate) struct TableToStream<K, V> {
    pub(crate) out: Forwarder<K, Option<V>>,
}

impl<K: Clone + Send, V: Clone + Send> Processor<K, Change<V>> for TableToStream<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, Change<V>>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        self.out.forward(ctx, Record { key, value: value.new, timestamp, headers })
    }
}

/// `KTable::group_by`: re-keys a change. The old value is sent to its old
/// group as a subtraction, then the new value to its new group as an
/// addition (two records, as classic Kafka does), so a key moving between
/// groups leaves one and joins the other.
pub(crate) struct TableSelect<K, V, KR, VR> {
    pub(crate) f: KeyValueMapper<K, V, KR, VR>,
    pub(crate) out: Forwarder<KR, Change<VR>>,
}

impl<K: Send, V: Send, KR: Clone + Send, VR: Clone + Send> Processor<K, Change<V>>
    for TableSelect<K, V, KR, VR>
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, Change<V>>) -> Res {
        let Record { key, value, timestamp, headers } = record;
        if let Some(old) = &value.old {
            let (group, old) = (self.f)(&key, old);
            let change = Change { new: None, old: Some(old) };
            self.out
                .forward(ctx, Record { key: group, value: change, timestamp, headers: headers.clone() })?;
        }
        if let Some(new) = &value.new {
            let (group, new) = (self.f)(&key, new);
            self.out.forward(
                ctx,
                Record { key: group, value: Change { new: Some(new), old: None }, timestamp, headers },
            )?;
        }
        Ok(())
    }
}
