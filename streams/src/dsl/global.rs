//! [`GlobalKTable`]: a table every instance holds in full, and the
//! stream-table joins that look it up (Kafka's `globalTable`,
//! `KStream#join(GlobalKTable, …)` and `leftJoin`).
//!
//! A global table reads every partition of its topic into a local RocksDB
//! store (see [`crate::store::global`]); the runtime brings the store up to
//! the topic's end before stream threads start, then keeps it current on a
//! global thread. Because every instance has every key, a stream joins a
//! global table by any key it derives from its records, with no
//! repartitioning and no co-partitioning requirement.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::GlobalKTable;
use crate::dsl::KStream;
use crate::graph::{
    downcast_children, share, BuildContext, Erased, Factory, GlobalDef, Graph, NodeDef, NodeKind,
};
use crate::options::{Consumed, Materialized};
use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::Record;
use crate::serdes::Serde;
use crate::store::global::GlobalStore;
use crate::store::serde_error::serde_error;
use crate::StreamsError;

impl<K, V> fmt::Debug for GlobalKTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalKTable").field("store", &self.store).finish_non_exhaustive()
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the table's store.
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

/// Adds `StreamsBuilder::global_table`.
pub(crate) fn global_table<K: 'static, V: 'static>(
    graph_rc: &Rc<RefCell<Graph>>,
    topic: String,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> GlobalKTable<K, V> {
    let mut graph = graph_rc.borrow_mut();
    let store = materialized.name.unwrap_or_else(|| graph.new_name(&format!("{topic}-STATE-STORE")));
    let taken =
        graph.stores.iter().any(|s| s.name == store) || graph.globals.iter().any(|g| g.store == store);
    if taken {
        graph.errors.push(StreamsError::DuplicateStore { store: store.clone() });
    }
    if topic.is_empty() {
        graph.errors.push(StreamsError::EmptyTopicName { node: format!("global table {store}") });
    }
    let source = graph.name_or(consumed.name.clone(), "KSTREAM-SOURCE");
    let processor = graph.new_name("KTABLE-SOURCE");
    graph.globals.push(GlobalDef { store: store.clone(), topic, source, processor });
    drop(graph);
    GlobalKTable {
        graph: Rc::clone(graph_rc),
        store,
        key_serde: materialized.key_serde.unwrap_or(consumed.key_serde),
        value_serde: materialized.value_serde.unwrap_or(consumed.value_serde),
    }
}

/// Maps a stream record to the global table's key.
type KeySelector<K, V, GK> = Arc<dyn Fn(&K, &V) -> GK + Send + Sync>;
/// Combines a stream value with the matching table value (`None` when no
/// match, left joins only) into the output, or `None` to drop.
type Joiner<V, GV, VR> = Arc<dyn Fn(&V, Option<&GV>) -> Option<VR> + Send + Sync>;

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Joins each record with the global table's value for
    /// `key_selector(key, value)`; records without a match are dropped. The
    /// output keeps the stream's key.
    pub fn join_global<GK, GV, VR, S, J>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_selector: S,
        joiner: J,
    ) -> KStream<K, VR>
    where
        GK: 'static,
        GV: 'static,
        VR: Clone + Send + 'static,
        S: Fn(&K, &V) -> GK + Send + Sync + 'static,
        J: Fn(&V, &GV) -> VR + Send + Sync + 'static,
    {
        let joiner: Joiner<V, GV, VR> = Arc::new(move |v, gv| gv.map(|gv| joiner(v, gv)));
        self.add_global_join(table, Arc::new(key_selector), joiner, "KSTREAM-JOIN")
    }

    /// Like [`join_global`](Self::join_global), but records without a match
    /// are joined with `None` instead of dropped.
    pub fn left_join_global<GK, GV, VR, S, J>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_selector: S,
        joiner: J,
    ) -> KStream<K, VR>
    where
        GK: 'static,
        GV: 'static,
        VR: Clone + Send + 'static,
        S: Fn(&K, &V) -> GK + Send + Sync + 'static,
        J: Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    {
        let joiner: Joiner<V, GV, VR> = Arc::new(move |v, gv| Some(joiner(v, gv)));
        self.add_global_join(table, Arc::new(key_selector), joiner, "KSTREAM-LEFTJOIN")
    }

    fn add_global_join<GK: 'static, GV: 'static, VR: Clone + Send + 'static>(
        &self,
        table: &GlobalKTable<GK, GV>,
        selector: KeySelector<K, V, GK>,
        joiner: Joiner<V, GV, VR>,
        prefix: &str,
    ) -> KStream<K, VR> {
        let mut graph = self.graph().borrow_mut();
        if !Rc::ptr_eq(&table.graph, self.graph()) {
            let node = graph.new_name(prefix);
            graph.errors.push(StreamsError::ForeignStream { node });
        }
        let name = graph.new_name(prefix);
        let (node_name, store) = (name.clone(), table.store.clone());
        let (key_serde, value_serde) = (Arc::clone(&table.key_serde), Arc::clone(&table.value_serde));
        let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
            let children = downcast_children::<K, VR>(&node_name, children)?;
            let global = ctx.globals.find(&store).cloned().ok_or_else(|| StreamsError::Internal {
                node: node_name.clone(),
                reason: format!("global store {store:?} is not open"),
            })?;
            let processor: Box<dyn Processor<K, V>> = Box::new(GlobalJoin {
                global,
                key_serde: Arc::clone(&key_serde),
                value_serde: Arc::clone(&value_serde),
                selector: Arc::clone(&selector),
                joiner: Arc::clone(&joiner),
                buffer: Vec::new(),
                out: Forwarder::new(children),
                _key: PhantomData,
            });
            Ok(Box::new(processor) as Erased)
        });
        let node = graph.push(NodeDef {
            name,
            kind: NodeKind::Processor { stores: Vec::new() },
            parents: vec![self.node()],
            factory,
            share: share::<K, V>,
        });
        drop(graph);
        self.derive(node, self.repartition_required())
    }
}

/// Looks a stream record up in a global store.
struct GlobalJoin<K, V, GK, GV, VR> {
    global: Arc<GlobalStore>,
    key_serde: Arc<dyn Serde<GK>>,
    value_serde: Arc<dyn Serde<GV>>,
    selector: KeySelector<K, V, GK>,
    joiner: Joiner<V, GV, VR>,
    buffer: Vec<u8>,
    out: Forwarder<K, VR>,
    _key: PhantomData<fn(GK)>,
}

impl<K, V, GK, GV, VR> Processor<K, V> for GlobalJoin<K, V, GK, GV, VR>
where
    K: Clone + Send,
    V: Send,
    GK: 'static,
    GV: 'static,
    VR: Clone + Send,
{
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<(), StreamsError> {
        let Record { key, value, timestamp, headers } = record;
        let table_key = (self.selector)(&key, &value);
        let topic = self.global.topic();
        self.buffer.clear();
        self.key_serde
            .serialize_into(topic, &table_key, &mut self.buffer)
            .map_err(|e| serde_error(self.global.name(), "serialize", "key", e))?;
        let found = match self.global.get(&self.buffer)? {
            None => None,
            Some(bytes) => Some(
                self.value_serde
                    .deserialize(topic, &bytes)
                    .map_err(|e| serde_error(self.global.name(), "deserialize", "value", e))?,
            ),
        };
        match (self.joiner)(&value, found.as_ref()) {
            Some(joined) => self.out.forward(ctx, Record { key, value: joined, timestamp, headers }),
            None => Ok(()),
        }
    }
}
