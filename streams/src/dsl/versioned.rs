//! Versioned tables (KIP-889, KIP-914): a source table materialized with
//! [`Materialized::with_versioning`](crate::Materialized::with_versioning)
//! keeps every value of a key with the time it became valid, for a
//! history retention period, so a stream-table join reads the table *as
//! of the stream record's timestamp* ([`KStream::join_table`](crate::KStream::join_table)),
//! not as of whenever the record happens to be processed.
//!
//! # Semantics
//!
//! - A table record with timestamp `t` makes its value valid from `t`
//!   until the next version of the key. A record older than the key's
//!   latest version (out of order) is stored in the history but changes
//!   nothing downstream: the table's current value stays the latest
//!   (Kafka's versioned `KTable` source).
//! - A lookup as of `t` finds the version valid at `t`; a delete
//!   (tombstone) is a version with no value. Lookups older than the history
//!   retention behind the table's stream time find nothing.
//! - Joins that read the table's current value (table-table and
//!   foreign-key joins) read the latest version.
//!
//! # Store layout
//!
//! ```text
//! len(key) (u32) ‖ key ‖ valid-from time (ordered)  →  1 ‖ value   (or 0: deleted)
//! ```
//!
//! A key's versions are one key range in time order. The store has a
//! changelog like any other; it has no record cache (Kafka's versioned
//! stores have none either).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crate::change::Change;
use crate::dsl::KTable;
use crate::graph::{
    downcast_children, share, BuildContext, Erased, Factory, Graph, NodeDef, NodeId, NodeKind,
};
use crate::options::Materialized;
use crate::processor::typed_store::TypedStore;
use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::Record;
use crate::serdes::Serde;
use crate::store::cache::EntryContext;
use crate::store::state::StoreHandle;
use crate::store::{ordered_time, ordered_time_of, prefix_end};
use crate::StreamsError;

fn version_key(prefix: &[u8], time: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 8);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&ordered_time(time));
    out
}

/// A versioned store as a processor reads and writes it: keys are
/// `len(key) ‖ key ‖ time`, one entry per version.
pub(crate) struct VersionedStore<K, V> {
    /// The store, its current key being the prefix of all its versions.
    store: TypedStore<K, V>,
    /// How far behind stream time versions are kept, in ms.
    history: i64,
}

/// One version: valid from `time`, `None` when the key was deleted.
type Version = (i64, Option<Vec<u8>>);

impl<K: 'static, V: 'static> VersionedStore<K, V> {
    pub(crate) fn new(
        handle: StoreHandle,
        name: &str,
        changelog: &str,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        history: i64,
    ) -> Self {
        VersionedStore { store: TypedStore::new(handle, name, changelog, key_serde, value_serde), history }
    }

    /// Sets the key of the next calls.
    pub(crate) fn set_key(&mut self, key: &K) -> Result<(), StreamsError> {
        self.store.set_key_length_prefixed(key)
    }

    /// The current key's versions, oldest first.
    fn versions(&self, ctx: &ProcessorContext<'_>) -> Result<Vec<Version>, StreamsError> {
        // One scan over every key starting with the prefix: a version
        // stamped `i64::MAX` included.
        let prefix = self.store.key();
        let end = prefix_end(prefix);
        let mut versions = Vec::new();
        for (key, value) in ctx.stores.range(self.store.handle(), prefix, end.as_deref())? {
            let Some(time) = key.get(prefix.len()..).and_then(ordered_time_of) else { continue };
            let value = match value.split_first() {
                Some((1, rest)) => Some(rest.to_vec()),
                _ => None,
            };
            versions.push((time, value));
        }
        Ok(versions)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, StreamsError> {
        self.store.decode_value(bytes)
    }

    /// The current key's value as of `time`: the version valid then;
    /// nothing when `time` is older than the history kept.
    pub(crate) fn get_as_of(&self, ctx: &ProcessorContext<'_>, time: i64) -> Result<Option<V>, StreamsError> {
        if time < ctx.stream_time.saturating_sub(self.history) {
            return Ok(None);
        }
        let versions = self.versions(ctx)?;
        match versions.iter().rev().find(|(t, _)| *t <= time) {
            Some((_, Some(bytes))) => self.decode(bytes).map(Some),
            _ => Ok(None),
        }
    }

    /// The current key's latest value.
    pub(crate) fn get(&self, ctx: &ProcessorContext<'_>) -> Result<Option<V>, StreamsError> {
        match self.versions(ctx)?.pop() {
            Some((_, Some(bytes))) => self.decode(&bytes).map(Some),
            _ => Ok(None),
        }
    }

    /// Stores `value` as the current key's version from `time`; returns
    /// the previous latest value when this version is the new latest
    /// (`None` when it arrived out of order). Versions that fell out of
    /// the history are removed, keeping the one still valid at its start.
    fn put(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        value: Option<&V>,
        time: i64,
    ) -> Result<Option<Option<V>>, StreamsError> {
        // Older than the history kept: nothing would ever read it (Kafka's
        // versioned store skips such puts too).
        let bound = ctx.stream_time.saturating_sub(self.history);
        if time < bound {
            return Ok(None);
        }
        let versions = self.versions(ctx)?;
        let latest = versions.last();
        let in_order = latest.is_none_or(|(t, _)| time >= *t);
        let previous = match (in_order, latest) {
            (true, Some((_, Some(bytes)))) => Some(Some(self.decode(bytes)?)),
            (true, _) => Some(None),
            (false, _) => None,
        };
        let mut stored = vec![u8::from(value.is_some())];
        if let Some(v) = value {
            self.store.encode_value_into(v, &mut stored)?;
        }
        let context =
            EntryContext { timestamp: time, topic: ctx.topic_index, offset: ctx.offset, headers: Vec::new() };
        let (handle, prefix) = (self.store.handle(), self.store.key());
        ctx.stores.put(handle, &version_key(prefix, time), Some(stored), context.clone());
        // History: versions that ended before the bound are dropped.
        let mut times: Vec<i64> = versions.iter().map(|(t, _)| *t).collect();
        times.push(time);
        times.sort_unstable();
        times.dedup();
        for pair in times.windows(2) {
            let (start, next) = (pair[0], pair[1]);
            if next <= bound {
                ctx.stores.put(handle, &version_key(prefix, start), None, context.clone());
            }
        }
        Ok(previous)
    }
}

/// A table's store as the nodes joining it read it: a plain key-value
/// store or a versioned one.
pub(crate) enum TableReader<K, V> {
    Plain(TypedStore<K, V>),
    Versioned(VersionedStore<K, V>),
}

impl<K: 'static, V: 'static> TableReader<K, V> {
    /// A reader of the table store `handle`, versioned when `history` is
    /// set.
    pub(crate) fn new(
        handle: StoreHandle,
        name: &str,
        changelog: &str,
        serdes: (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>),
        history: Option<i64>,
    ) -> Self {
        let (ks, vs) = serdes;
        match history {
            Some(history) => {
                TableReader::Versioned(VersionedStore::new(handle, name, changelog, ks, vs, history))
            }
            None => TableReader::Plain(TypedStore::new(handle, name, changelog, ks, vs)),
        }
    }

    /// A reader of the table store named `store`, resolved for node `node`.
    pub(crate) fn open(
        ctx: &mut crate::graph::BuildContext<'_>,
        node: &str,
        store: &str,
        serdes: (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>),
        history: Option<i64>,
    ) -> Result<Self, StreamsError> {
        let (handle, changelog) = ctx.store(node, store)?;
        Ok(Self::new(handle, store, changelog, serdes, history))
    }

    pub(crate) fn set_key(&mut self, key: &K) -> Result<(), StreamsError> {
        match self {
            TableReader::Plain(s) => s.set_key(key),
            TableReader::Versioned(s) => s.set_key(key),
        }
    }

    /// The current key's latest value.
    pub(crate) fn get(&self, ctx: &ProcessorContext<'_>) -> Result<Option<V>, StreamsError> {
        match self {
            TableReader::Plain(s) => s.lookup(ctx),
            TableReader::Versioned(s) => s.get(ctx),
        }
    }

    /// The current key's value as of `time` (a plain store only knows the
    /// latest).
    pub(crate) fn get_as_of(&self, ctx: &ProcessorContext<'_>, time: i64) -> Result<Option<V>, StreamsError> {
        match self {
            TableReader::Plain(s) => s.lookup(ctx),
            TableReader::Versioned(s) => s.get_as_of(ctx, time),
        }
    }

    /// The changelog topic, which the store's serdes are called with.
    pub(crate) fn topic(&self) -> &str {
        match self {
            TableReader::Plain(s) => s.topic(),
            TableReader::Versioned(s) => s.store.topic(),
        }
    }

    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        match self {
            TableReader::Plain(s) => s.name(),
            TableReader::Versioned(s) => s.store.name(),
        }
    }
}

/// The source node of a versioned table: stores each record as a version
/// and forwards it only when it is the key's new latest version.
pub(crate) struct VersionedTableSource<K, V> {
    pub(crate) store: VersionedStore<K, V>,
    pub(crate) out: Forwarder<K, Change<V>>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> Processor<K, Option<V>>
    for VersionedTableSource<K, V>
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, Option<V>>,
    ) -> Result<(), StreamsError> {
        let Record { key, value, timestamp, headers } = record;
        self.store.set_key(&key)?;
        let Some(old) = self.store.put(ctx, value.as_ref(), timestamp)? else {
            tracing::debug!(timestamp, "versioned table: an out-of-order record is kept in the history only");
            return Ok(());
        };
        if old.is_none() && value.is_none() {
            return Ok(());
        }
        self.out.forward(ctx, Record { key, value: Change { new: value, old }, timestamp, headers })
    }
}

/// Adds the versioned store and source node of `StreamsBuilder::table`
/// under `source` (which reads `topic`).
pub(crate) fn versioned_table<K, V>(
    graph_rc: &Rc<RefCell<Graph>>,
    source: NodeId,
    topic: &str,
    materialized: Materialized<K, V>,
    serdes: (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>),
    history: std::time::Duration,
) -> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let mut graph = graph_rc.borrow_mut();
    let store = materialized.name.clone().unwrap_or_else(|| graph.new_name(&format!("{topic}-STATE-STORE")));
    graph.add_internal_store(&store, false);
    let history = crate::duration::millis(history);
    let ks = materialized.key_serde.unwrap_or(serdes.0);
    let vs = materialized.value_serde.unwrap_or(serdes.1);
    let name = graph.new_name("KTABLE-SOURCE");
    let (node_name, store_name, factory_ks, factory_vs) =
        (name.clone(), store.clone(), Arc::clone(&ks), Arc::clone(&vs));
    let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
        let out = downcast_children::<K, Change<V>>(&node_name, children)?;
        let (handle, changelog) = ctx.store(&node_name, &store_name)?;
        let store = VersionedStore::new(
            handle,
            &store_name,
            changelog,
            Arc::clone(&factory_ks),
            Arc::clone(&factory_vs),
            history,
        );
        let processor: Box<dyn Processor<K, Option<V>>> =
            Box::new(VersionedTableSource { store, out: Forwarder::new(out) });
        Ok(Box::new(processor) as Erased)
    });
    let node = graph.push(NodeDef {
        name,
        kind: NodeKind::Processor { stores: vec![store.clone()] },
        parents: vec![source],
        factory,
        share: share::<K, Option<V>>,
    });
    drop(graph);
    let mut table = KTable::new(Rc::clone(graph_rc), node, Some(store)).with_serdes(ks, vs);
    table.versioned = Some(history);
    table
}
