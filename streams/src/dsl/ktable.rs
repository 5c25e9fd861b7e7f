//! [`KTable`]: a changelog stream seen as a table, one value per key.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::KTable;
use crate::change::Change;
use crate::dsl::KGroupedTable;
use crate::dsl::KStream;
use crate::graph::{Graph, NodeId};
use crate::options::Grouped;
use crate::serdes::{Serde, SerdeError};
use crate::stateful::{
    KeyValueMapper, Predicate, TableFilter, TableMapValues, TableSelect, TableToStream, ValueMapper,
};

/// The key and value serdes of a table's store.
pub(crate) type StoreSerdes<K, V> = (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>);

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            graph: Rc::clone(&self.graph),
            node: self.node,
            store: self.store.clone(),
            serdes: self.serdes.clone(),
            grace: self.grace,
            versioned: self.versioned,
            _types: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let graph = self.graph.borrow();
        let name = graph.nodes.get(self.node).map_or("?", |n| n.name.as_str());
        f.debug_struct("KTable").field("node", &name).field("store", &self.store).finish()
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(crate) fn new(graph: Rc<RefCell<Graph>>, node: NodeId, store: Option<String>) -> Self {
        KTable { graph, node, store, serdes: None, grace: None, versioned: None, _types: PhantomData }
    }

    /// This table, its records (and store) written with these serdes.
    pub(crate) fn with_serdes(
        mut self,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        self.serdes = Some((key_serde, value_serde));
        self
    }

    /// The store to read the table by key from, and its serdes: a
    /// materialized key-value table's (not a windowed table's, whose store
    /// keys hold windows).
    pub(crate) fn lookup(&self) -> Option<(String, StoreSerdes<K, V>)> {
        match (&self.store, &self.serdes, self.grace) {
            (Some(store), Some(serdes), None) => Some((store.clone(), serdes.clone())),
            _ => None,
        }
    }

    /// This table, the result of a windowed aggregation with `grace`, its
    /// records written with these serdes.
    pub(crate) fn windowed(
        mut self,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
        grace: i64,
    ) -> Self {
        self.serdes = Some((key_serde, value_serde));
        self.grace = Some(grace);
        self
    }

    /// The name of the store holding this table, when it is materialized
    /// (readable with
    /// [`TopologyTestDriver::get_key_value_store`](crate::TopologyTestDriver::get_key_value_store)).
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    fn add<KO, VO, P, M>(&self, prefix: &str, make: M) -> NodeId
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        P: crate::Processor<K, Change<V>> + 'static,
        M: Fn(crate::Forwarder<KO, Change<VO>>) -> P + Send + Sync + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.new_name(prefix);
        graph.add_processor::<K, Change<V>, KO, Change<VO>, P, M>(name, vec![self.node], make)
    }

    /// The table of the entries for which `predicate` holds; a key whose
    /// new value fails is deleted from the result.
    pub fn filter<F>(&self, predicate: F) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_impl(Arc::new(predicate), true)
    }

    /// The table of the entries for which `predicate` does not hold.
    pub fn filter_not<F>(&self, predicate: F) -> KTable<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.filter_impl(Arc::new(predicate), false)
    }

    fn filter_impl(&self, pred: Predicate<K, V>, keep: bool) -> KTable<K, V> {
        let node = self.add::<K, V, _, _>("KTABLE-FILTER", move |out| TableFilter {
            pred: Arc::clone(&pred),
            keep,
            out,
        });
        KTable::new(Rc::clone(&self.graph), node, None)
    }

    /// The table with each value replaced by `mapper(value)`.
    pub fn map_values<VO, F>(&self, mapper: F) -> KTable<K, VO>
    where
        VO: Clone + Send + 'static,
        F: Fn(V) -> VO + Send + Sync + 'static,
    {
        let f: ValueMapper<K, V, VO> = Arc::new(move |_key: &K, value: V| mapper(value));
        let node =
            self.add::<K, VO, _, _>("KTABLE-MAPVALUES", move |out| TableMapValues { f: Arc::clone(&f), out });
        KTable::new(Rc::clone(&self.graph), node, None)
    }

    /// The table's updates as a stream: each update's new value, `None`
    /// when the key was deleted. Write it with a nullable value serde
    /// (`Serdes::nullable(..)`) to produce Kafka tombstones for deletes.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let node = {
            let mut graph = self.graph.borrow_mut();
            let name = graph.new_name("KTABLE-TOSTREAM");
            graph.add_processor::<K, Change<V>, K, Option<V>, _, _>(name, vec![self.node], |out| {
                TableToStream { out }
            })
        };
        KStream::new(Rc::clone(&self.graph), node)
    }

    /// Re-groups the table by a new key: `selector` maps each entry to its
    /// group key and the value the group aggregates. The result always goes
    /// through a repartition topic (`<application.id>-<store>-repartition`,
    /// named after the aggregation's store, or `Grouped::name`).
    pub fn group_by<KR, VR, F>(&self, selector: F, grouped: Grouped<KR, VR>) -> KGroupedTable<KR, VR>
    where
        KR: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&K, &V) -> (KR, VR) + Send + Sync + 'static,
    {
        let f: KeyValueMapper<K, V, KR, VR> = Arc::new(selector);
        let node =
            self.add::<KR, VR, _, _>("KTABLE-SELECT", move |out| TableSelect { f: Arc::clone(&f), out });
        KGroupedTable::new(Rc::clone(&self.graph), node, grouped)
    }
}

/// Stands in for a serde the user did not give; the topology fails to
/// build with [`StreamsError::MissingSerde`](crate::StreamsError::MissingSerde)
/// before this can be called.
pub(crate) struct MissingSerde;

impl<T: 'static> Serde<T> for MissingSerde {
    fn serialize_into(&self, _topic: &str, _value: &T, _out: &mut Vec<u8>) -> Result<(), SerdeError> {
        Err(SerdeError::UnexpectedNull { type_name: "missing serde" })
    }
    fn deserialize(&self, _topic: &str, _bytes: &[u8]) -> Result<T, SerdeError> {
        Err(SerdeError::UnexpectedNull { type_name: "missing serde" })
    }
}
