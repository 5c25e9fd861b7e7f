//! Grouping and aggregation: [`KGroupedStream`], [`KGroupedTable`], and the
//! `KStream` operators that create them (`group_by_key`, `group_by`,
//! `to_table`).
//!
//! # Naming (as Kafka)
//!
//! An aggregation's store is named by [`Materialized::as_`] or generated
//! first (`KSTREAM-AGGREGATE-STATE-STORE-0000000003`), then its node
//! (`KSTREAM-AGGREGATE-0000000004`). A repartition inserted in front is
//! named after the store (`<application.id>-<store>-repartition`) unless
//! [`Grouped::name`] names it.
//!
//! Records with a null key cannot reach an aggregation: keys are plain
//! `K`, and a serde for `K` rejects null (Kafka drops null-key records).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use super::{KGroupedStream, KGroupedTable};
use crate::change::{Change, ChangeSerde, OptionalSerde};
use crate::dsl::kstream::{add_repartition, RepartitionNames};
use crate::dsl::ktable::MissingSerde;
use crate::dsl::KStream;
use crate::dsl::KTable;
use crate::graph::{Graph, NodeId, TopicRef};
use crate::options::{Consumed, Grouped, Materialized};
use crate::processor::typed_store::TypedStore;
use crate::processor::Processor;
use crate::serdes::Serde;
use crate::source_sink::SourceNode;
use crate::stateful::{
    aggregate_fn, count_fn, reduce_fn, ChangeForwarder, StreamAggFn, StreamAggregate, TableAggFn,
    TableAggregate, TableSource,
};
use crate::{Serdes, StreamsError};

/// The store name of `materialized`, or a generated `<prefix>-STATE-STORE-<n>`;
/// defines the store.
pub(crate) fn define_store<K, V>(
    graph: &mut Graph,
    materialized: &Materialized<K, V>,
    prefix: &str,
) -> String {
    let store = materialized.name.clone().unwrap_or_else(|| graph.new_name(&format!("{prefix}-STATE-STORE")));
    if materialized.versioning.is_some() {
        graph.errors.push(StreamsError::Unsupported {
            node: store.clone(),
            reason: "a versioned store can only materialize a source table (StreamsBuilder::table)"
                .to_string(),
        });
    }
    graph.add_store(&store, materialized.caching);
    store
}

/// What both kinds of aggregation define first: the store, the node name,
/// and the store's serdes.
pub(crate) struct AggregationNode<K, VR> {
    pub(crate) store: String,
    pub(crate) name: String,
    pub(crate) ks: Arc<dyn Serde<K>>,
    pub(crate) vs: Arc<dyn Serde<VR>>,
}

/// Defines the store of an aggregation named with `prefix` and resolves its
/// serdes: the materialized ones, else the grouping's key serde and
/// `default_value_serde`.
pub(crate) fn aggregation_node<K: 'static, VR: 'static>(
    graph: &mut Graph,
    prefix: &str,
    materialized: Materialized<K, VR>,
    grouped_key_serde: &Arc<dyn Serde<K>>,
    default_value_serde: Option<Arc<dyn Serde<VR>>>,
) -> AggregationNode<K, VR> {
    let store = define_store(graph, &materialized, prefix);
    let name = graph.new_name(prefix);
    let default_key = Some(Arc::clone(grouped_key_serde));
    let ks = serde_or_missing(graph, materialized.key_serde, default_key, (&name, &store, "key"));
    let vs = serde_or_missing(graph, materialized.value_serde, default_value_serde, (&name, &store, "value"));
    AggregationNode { store, name, ks, vs }
}

/// `given`, else `default`, else a build error naming node, store and part.
pub(crate) fn serde_or_missing<T: 'static>(
    graph: &mut Graph,
    given: Option<Arc<dyn Serde<T>>>,
    default: Option<Arc<dyn Serde<T>>>,
    (node, store, part): (&str, &str, &'static str),
) -> Arc<dyn Serde<T>> {
    given.or(default).unwrap_or_else(|| {
        graph.errors.push(StreamsError::MissingSerde {
            node: node.to_string(),
            store: store.to_string(),
            part,
        });
        Arc::new(MissingSerde)
    })
}

/// Adds node `name` owning `store` (keys `KS`, values `VS`), fed by
/// `parent` with `(KI, VI)`, forwarding the store's flushed `Change<VS>`s
/// keyed by `KS` (for windowed stores, `KI` is the record key and `KS` the
/// windowed key).
pub(crate) fn add_materializing_node<KI, KS, VI, VS, P, M>(
    graph: &mut Graph,
    name: String,
    parent: NodeId,
    store: &str,
    serdes: (Arc<dyn Serde<KS>>, Arc<dyn Serde<VS>>),
    make: M,
) -> NodeId
where
    KI: 'static,
    KS: Clone + Send + 'static,
    VI: 'static,
    VS: Clone + Send + 'static,
    P: Processor<KI, VI> + 'static,
    M: Fn(TypedStore<KS, VS>) -> P + Send + Sync + 'static,
{
    let store_name: Arc<str> = Arc::from(store);
    let (key_serde, value_serde) = serdes;
    graph.add_store_processor::<KI, VI, KS, Change<VS>, P, _>(
        name,
        vec![parent],
        store.to_string(),
        move |handle, changelog, out| {
            let typed = TypedStore::new(
                handle,
                &store_name,
                changelog,
                Arc::clone(&key_serde),
                Arc::clone(&value_serde),
            );
            let listener = ChangeForwarder {
                store: Arc::clone(&store_name),
                topic: Arc::from(changelog),
                key_serde: Arc::clone(&key_serde),
                value_serde: Arc::clone(&value_serde),
                out,
            };
            (make(typed), Box::new(listener))
        },
    )
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Groups the stream by its current key for an aggregation. If a
    /// key-changing operator came before, the aggregation first writes the
    /// stream through a repartition topic with `grouped`'s serdes.
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream {
            graph: Rc::clone(self.graph()),
            node: self.node(),
            repartition_required: self.repartition_required(),
            grouped,
        }
    }

    /// Groups the stream by a new key, `selector(key, value)`; the
    /// aggregation repartitions by it (`KSTREAM-KEY-SELECT` then a
    /// repartition topic).
    pub fn group_by<KR, F>(&self, selector: F, grouped: Grouped<KR, V>) -> KGroupedStream<KR, V>
    where
        KR: Clone + Send + 'static,
        F: Fn(&K, &V) -> KR + Send + Sync + 'static,
    {
        self.select_key(selector).group_by_key(grouped)
    }

    /// The stream as a table: each record is the key's latest value. The
    /// store needs both serdes from `materialized`; a repartition comes
    /// first if the key was changed.
    pub fn to_table(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        let mut graph = self.graph().borrow_mut();
        let store = define_store(&mut graph, &materialized, "KSTREAM-TOTABLE");
        let name = graph.new_name("KSTREAM-TOTABLE");
        let ks = serde_or_missing(&mut graph, materialized.key_serde, None, (&name, &store, "key"));
        let vs = serde_or_missing(&mut graph, materialized.value_serde, None, (&name, &store, "value"));
        let parent = if self.repartition_required() {
            let names = RepartitionNames {
                base: store.clone(),
                sink: graph.new_name("KSTREAM-SINK"),
                source: graph.new_name("KSTREAM-SOURCE"),
            };
            add_repartition(&mut graph, self.node(), names, Arc::clone(&ks), Arc::clone(&vs), None)
        } else {
            self.node()
        };
        let lookup = (Arc::clone(&ks), Arc::clone(&vs));
        let node =
            add_materializing_node::<K, K, V, V, _, _>(&mut graph, name, parent, &store, (ks, vs), |store| {
                TableSource { store }
            });
        drop(graph);
        KTable::new(Rc::clone(self.graph()), node, Some(store)).with_serdes(lookup.0, lookup.1)
    }
}

/// Adds `StreamsBuilder::table`: a source reading `topic` (null values are
/// deletes) and a `KTABLE-SOURCE` node materializing it.
pub(crate) fn table<K, V>(
    graph_rc: &Rc<RefCell<Graph>>,
    topic: String,
    consumed: Consumed<K, V>,
    materialized: Materialized<K, V>,
) -> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let Consumed { key_serde, value_serde, name } = consumed;
    let mut graph = graph_rc.borrow_mut();
    let source_name = graph.name_or(name, "KSTREAM-SOURCE");
    let (ks, vs) = (Arc::clone(&key_serde), Arc::clone(&value_serde));
    let source = graph.add_source::<K, Option<V>, _, _>(
        source_name,
        vec![TopicRef::Named(topic.clone())],
        move |out| SourceNode {
            key_serde: Arc::clone(&ks),
            value_serde: Arc::new(OptionalSerde(Arc::clone(&vs))),
            out,
        },
    );
    if let Some(history) = materialized.versioning {
        drop(graph);
        return crate::dsl::versioned::versioned_table(
            graph_rc,
            source,
            &topic,
            materialized,
            (key_serde, value_serde),
            history,
        );
    }
    let store = define_store(&mut graph, &materialized, &topic);
    let name = graph.new_name("KTABLE-SOURCE");
    let ks = materialized.key_serde.unwrap_or(key_serde);
    let vs = materialized.value_serde.unwrap_or(value_serde);
    let lookup = (Arc::clone(&ks), Arc::clone(&vs));
    let node = add_materializing_node::<K, K, Option<V>, V, _, _>(
        &mut graph,
        name,
        source,
        &store,
        (ks, vs),
        |store| TableSource { store },
    );
    drop(graph);
    KTable::new(Rc::clone(graph_rc), node, Some(store)).with_serdes(lookup.0, lookup.1)
}

impl<K, V> fmt::Debug for KGroupedStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KGroupedStream").field("repartition_required", &self.repartition_required).finish()
    }
}

impl<K, V> KGroupedStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Counts records per key. The store's value serde defaults to `i64`.
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let f: StreamAggFn<K, V, i64> = count_fn();
        self.build("KSTREAM-AGGREGATE", materialized, Some(Arc::new(Serdes::i64())), f)
    }

    /// Combines the values of each key with `reducer(aggregate, value)`; the
    /// first value is the initial aggregate. The value serde defaults to
    /// the grouping's.
    pub fn reduce<F>(&self, reducer: F, materialized: Materialized<K, V>) -> KTable<K, V>
    where
        F: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let f: StreamAggFn<K, V, V> = reduce_fn(reducer);
        let default = Some(Arc::clone(&self.grouped.value_serde));
        self.build("KSTREAM-REDUCE", materialized, default, f)
    }

    /// Folds the values of each key into an aggregate starting at
    /// `initializer()`, with `aggregator(key, value, aggregate)`. The
    /// aggregate's serde must be set with [`Materialized::with_value_serde`].
    pub fn aggregate<VR, I, A>(
        &self,
        initializer: I,
        aggregator: A,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
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
    ) -> KTable<K, VR> {
        let mut graph = self.graph.borrow_mut();
        let AggregationNode { store, name, ks, vs } =
            aggregation_node(&mut graph, prefix, materialized, &self.grouped.key_serde, default_value_serde);
        let parent = self.aggregation_parent(&mut graph, &store);
        let lookup = (Arc::clone(&ks), Arc::clone(&vs));
        let node = add_materializing_node::<K, K, V, VR, _, _>(
            &mut graph,
            name,
            parent,
            &store,
            (ks, vs),
            move |store| StreamAggregate { store, f: Arc::clone(&f) },
        );
        drop(graph);
        KTable::new(Rc::clone(&self.graph), node, Some(store)).with_serdes(lookup.0, lookup.1)
    }
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> KGroupedStream<K, V> {
    /// The node feeding an aggregation with store `store`: a repartition
    /// topic (named after the grouping or the store) if the key changed,
    /// else the grouped stream's node.
    pub(crate) fn aggregation_parent(&self, graph: &mut Graph, store: &str) -> NodeId {
        if !self.repartition_required {
            return self.node;
        }
        let names = repartition_names(graph, self.grouped.name.as_deref(), store);
        let (gk, gv) = (Arc::clone(&self.grouped.key_serde), Arc::clone(&self.grouped.value_serde));
        add_repartition(graph, self.node, names, gk, gv, None)
    }
}

/// Kafka's names: `<name>-repartition-{sink,source}` for a named grouping,
/// generated sink and source names otherwise; the topic is
/// `<name or store>-repartition`.
pub(crate) fn repartition_names(graph: &mut Graph, name: Option<&str>, store: &str) -> RepartitionNames {
    match name {
        Some(name) => RepartitionNames {
            base: name.to_string(),
            sink: format!("{name}-repartition-sink"),
            source: format!("{name}-repartition-source"),
        },
        None => RepartitionNames {
            base: store.to_string(),
            sink: graph.new_name("KSTREAM-SINK"),
            source: graph.new_name("KSTREAM-SOURCE"),
        },
    }
}

impl<K, V> fmt::Debug for KGroupedTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KGroupedTable").field("grouped", &self.grouped).finish()
    }
}

impl<K, V> KGroupedTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(crate) fn new(graph: Rc<RefCell<Graph>>, node: NodeId, grouped: Grouped<K, V>) -> Self {
        KGroupedTable { graph, node, grouped }
    }

    /// Counts the table entries per group; a count that drops to 0 stays
    /// in the table as 0 (as in Kafka).
    pub fn count(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let f: TableAggFn<K, V, i64> = Arc::new(|_, change, count| {
            let count =
                count.unwrap_or(0) - i64::from(change.old.is_some()) + i64::from(change.new.is_some());
            Some(count)
        });
        self.build("KTABLE-AGGREGATE", materialized, Some(Arc::new(Serdes::i64())), f)
    }

    /// Keeps one value per group: `adder(aggregate, value)` for a value
    /// joining the group, `subtractor(aggregate, value)` for one leaving.
    /// The value serde defaults to the grouping's.
    pub fn reduce<A, S>(&self, adder: A, subtractor: S, materialized: Materialized<K, V>) -> KTable<K, V>
    where
        A: Fn(V, V) -> V + Send + Sync + 'static,
        S: Fn(V, V) -> V + Send + Sync + 'static,
    {
        let f: TableAggFn<K, V, V> = Arc::new(move |_, change, agg| {
            let agg = match (agg, change.old) {
                (Some(agg), Some(old)) => Some(subtractor(agg, old)),
                (agg, _) => agg,
            };
            match (agg, change.new) {
                (Some(agg), Some(new)) => Some(adder(agg, new)),
                (None, new) => new,
                (agg, None) => agg,
            }
        });
        let default = Some(Arc::clone(&self.grouped.value_serde));
        self.build("KTABLE-REDUCE", materialized, default, f)
    }

    /// Folds each group into an aggregate starting at `initializer()`:
    /// `adder(key, value, aggregate)` for a value joining the group,
    /// `subtractor(key, value, aggregate)` for one leaving it. The
    /// aggregate's serde must be set with [`Materialized::with_value_serde`].
    pub fn aggregate<VR, I, A, S>(
        &self,
        initializer: I,
        adder: A,
        subtractor: S,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR>
    where
        VR: Clone + Send + 'static,
        I: Fn() -> VR + Send + Sync + 'static,
        A: Fn(&K, V, VR) -> VR + Send + Sync + 'static,
        S: Fn(&K, V, VR) -> VR + Send + Sync + 'static,
    {
        let f: TableAggFn<K, V, VR> = Arc::new(move |key, change, agg| {
            let mut agg = agg.unwrap_or_else(&initializer);
            if let Some(old) = change.old {
                agg = subtractor(key, old, agg);
            }
            if let Some(new) = change.new {
                agg = adder(key, new, agg);
            }
            Some(agg)
        });
        self.build("KTABLE-AGGREGATE", materialized, None, f)
    }

    fn build<VR: Clone + Send + 'static>(
        &self,
        prefix: &str,
        materialized: Materialized<K, VR>,
        default_value_serde: Option<Arc<dyn Serde<VR>>>,
        f: TableAggFn<K, V, VR>,
    ) -> KTable<K, VR> {
        let mut graph = self.graph.borrow_mut();
        let AggregationNode { store, name, ks, vs } =
            aggregation_node(&mut graph, prefix, materialized, &self.grouped.key_serde, default_value_serde);
        let names = repartition_names(&mut graph, self.grouped.name.as_deref(), &store);
        let change_serde: Arc<dyn Serde<Change<V>>> =
            Arc::new(ChangeSerde(Arc::clone(&self.grouped.value_serde)));
        let parent = add_repartition(
            &mut graph,
            self.node,
            names,
            Arc::clone(&self.grouped.key_serde),
            change_serde,
            None,
        );
        let lookup = (Arc::clone(&ks), Arc::clone(&vs));
        let node = add_materializing_node::<K, K, Change<V>, VR, _, _>(
            &mut graph,
            name,
            parent,
            &store,
            (ks, vs),
            move |store| TableAggregate { store, f: Arc::clone(&f) },
        );
        drop(graph);
        KTable::new(Rc::clone(&self.graph), node, Some(store)).with_serdes(lookup.0, lookup.1)
    }
}
