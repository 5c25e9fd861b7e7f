//! Table-table joins on the key: [`KTable::join`], [`KTable::left_join`]
//! and [`KTable::outer_join`], and [`KTable::materialize`], which gives a
//! derived table (a filter, a mapping, a join) a store of its own.
//!
//! # How it runs
//!
//! Both tables' updates are tagged with their side and reach one join node
//! (two parents, like `merge`). An update of one side reads the other
//! side's store for the same key and computes the result twice: with the
//! update's new value and with its old value. The node forwards the pair
//! as a [`Change`] of the result, so the result is a table whose
//! downstream (`group_by` aggregations) can subtract what a key
//! contributed before; a result that disappears is forwarded as a delete.
//!
//! Whether a pair has a result depends on the join: inner needs both
//! values, left needs the left one, outer either. This reproduces the
//! KTable-KTable table of Kafka's join semantics (`streams/tests/integration/joins.rs`
//! replays it). The lookup sees the other table's current value, as in
//! Kafka without versioned stores.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::change::Change;
use crate::dsl::kgrouped::{add_materializing_node, define_store, serde_or_missing};
use crate::dsl::kjoin::{JoinKind, Side, TagNode};
use crate::dsl::versioned::TableReader;
use crate::dsl::KTable;
use crate::graph::{downcast_children, share, BuildContext, Erased, Factory, NodeDef, NodeKind};
use crate::options::Materialized;
use crate::processor::typed_store::TypedStore;
use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::Record;
use crate::StreamsError;

type TableJoiner<V1, V2, VR> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> VR + Send + Sync>;

/// The join node of one task: reads the other side's store on each update.
struct TableTableJoin<K, V1, V2, VR> {
    kind: JoinKind,
    left: TableReader<K, V1>,
    right: TableReader<K, V2>,
    joiner: TableJoiner<V1, V2, VR>,
    out: Forwarder<K, Change<VR>>,
}

impl<K, V1, V2, VR> TableTableJoin<K, V1, V2, VR> {
    /// The result of a left and a right value, if this join has one.
    fn result(&self, left: Option<&V1>, right: Option<&V2>) -> Option<VR> {
        let present = match self.kind {
            JoinKind::Inner => left.is_some() && right.is_some(),
            JoinKind::Left => left.is_some(),
            JoinKind::Outer => left.is_some() || right.is_some(),
        };
        present.then(|| (self.joiner)(left, right))
    }
}

impl<K, V1, V2, VR> Processor<K, Side<Change<V1>, Change<V2>>> for TableTableJoin<K, V1, V2, VR>
where
    K: Clone + Send + 'static,
    V1: Send + 'static,
    V2: Send + 'static,
    VR: Clone + Send + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, Side<Change<V1>, Change<V2>>>,
    ) -> Result<(), StreamsError> {
        let Record { key, value, timestamp, headers } = record;
        let change = match value {
            Side::Left(update) => {
                self.right.set_key(&key)?;
                let right = self.right.get(ctx)?;
                Change {
                    new: self.result(update.new.as_ref(), right.as_ref()),
                    old: self.result(update.old.as_ref(), right.as_ref()),
                }
            }
            Side::Right(update) => {
                self.left.set_key(&key)?;
                let left = self.left.get(ctx)?;
                Change {
                    new: self.result(left.as_ref(), update.new.as_ref()),
                    old: self.result(left.as_ref(), update.old.as_ref()),
                }
            }
        };
        if change.new.is_none() && change.old.is_none() {
            return Ok(());
        }
        self.out.forward(ctx, Record { key, value: change, timestamp, headers })
    }
}

/// Takes a table's updates into a store of its own.
struct TableMaterialize<K, V> {
    store: TypedStore<K, V>,
}

impl<K: Send + 'static, V: Send + 'static> Processor<K, Change<V>> for TableMaterialize<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, Change<V>>,
    ) -> Result<(), StreamsError> {
        self.store.set_key(&record.key)?;
        self.store.put(ctx, record.value.new.as_ref(), record.timestamp, record.headers)
    }
}

impl<K, V> KTable<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Joins this table with `other` on the key (Kafka's
    /// `KTable#join(KTable)`): the result holds `joiner(this, other)` for
    /// every key in both tables, and is updated, or loses the key, when
    /// either side changes. Both tables must be materialized (read with
    /// [`StreamsBuilder::table`](crate::StreamsBuilder::table), aggregated,
    /// or [`materialize`](Self::materialize)d) and co-partitioned. The
    /// result is not materialized; [`materialize`](Self::materialize) it
    /// to join it again or query it.
    ///
    /// Each result carries the timestamp of the update that caused it
    /// (Kafka uses the larger of both sides' timestamps; the stores here
    /// keep no timestamps).
    ///
    /// ```
    /// use runnel_streams::{Consumed, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver};
    ///
    /// let mut b = StreamsBuilder::new();
    /// let c = || Consumed::with(Serdes::string(), Serdes::string());
    /// let names = b.table::<String, String>("names", c(), Materialized::new());
    /// let emails = b.table::<String, String>("emails", c(), Materialized::new());
    /// names
    ///     .join(&emails, |name, email| format!("{name} <{email}>"))
    ///     .to_stream()
    ///     .to("contacts", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    /// let driver = TopologyTestDriver::new(b.build()?, StreamsConfig::new("contacts"))?;
    /// let n = driver.create_input_topic("names", Serdes::string(), Serdes::nullable(Serdes::string()));
    /// let e = driver.create_input_topic("emails", Serdes::string(), Serdes::nullable(Serdes::string()));
    /// let out = driver.create_output_topic("contacts", Serdes::string(), Serdes::nullable(Serdes::string()));
    /// n.pipe_input("u1".into(), Some("Ann".into()))?; // no email yet: nothing
    /// e.pipe_input("u1".into(), Some("ann@example.com".into()))?;
    /// e.pipe_input("u1".into(), None)?; // the email is deleted: so is the contact
    /// assert_eq!(
    ///     out.read_key_values_to_list()?,
    ///     vec![("u1".to_string(), Some("Ann <ann@example.com>".to_string())), ("u1".to_string(), None)]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join<V2, VR, F>(&self, other: &KTable<K, V2>, joiner: F) -> KTable<K, VR>
    where
        V2: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&V, &V2) -> VR + Send + Sync + 'static,
    {
        let joiner: TableJoiner<V, V2, VR> = Arc::new(move |l, r| match (l, r) {
            (Some(l), Some(r)) => joiner(l, r),
            _ => unreachable!("an inner join calls its joiner with both values"),
        });
        self.table_join(other, joiner, JoinKind::Inner, "KTABLE-JOIN")
    }

    /// As [`join`](Self::join), and a key of this table that `other`
    /// lacks has the result `joiner(this, None)` (Kafka's
    /// `KTable#leftJoin`).
    pub fn left_join<V2, VR, F>(&self, other: &KTable<K, V2>, joiner: F) -> KTable<K, VR>
    where
        V2: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    {
        let joiner: TableJoiner<V, V2, VR> = Arc::new(move |l, r| match l {
            Some(l) => joiner(l, r),
            None => unreachable!("a left join calls its joiner with the left value"),
        });
        self.table_join(other, joiner, JoinKind::Left, "KTABLE-LEFTJOIN")
    }

    /// As [`join`](Self::join), and a key in either table alone has the
    /// result `joiner(this, other)` with the missing side `None` (Kafka's
    /// `KTable#outerJoin`).
    pub fn outer_join<V2, VR, F>(&self, other: &KTable<K, V2>, joiner: F) -> KTable<K, VR>
    where
        V2: Clone + Send + 'static,
        VR: Clone + Send + 'static,
        F: Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    {
        self.table_join(other, Arc::new(joiner), JoinKind::Outer, "KTABLE-OUTERJOIN")
    }

    fn table_join<V2, VR>(
        &self,
        other: &KTable<K, V2>,
        joiner: TableJoiner<V, V2, VR>,
        kind: JoinKind,
        prefix: &str,
    ) -> KTable<K, VR>
    where
        V2: Clone + Send + 'static,
        VR: Clone + Send + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.new_name(prefix);
        if !Rc::ptr_eq(&self.graph, &other.graph) {
            graph.errors.push(StreamsError::ForeignStream { node: name.clone() });
        }
        let (Some((left_store, (left_ks, left_vs))), Some((right_store, (right_ks, right_vs)))) =
            (self.lookup(), other.lookup())
        else {
            graph.errors.push(StreamsError::TableNotMaterialized { node: name });
            drop(graph);
            return KTable::new(Rc::clone(&self.graph), self.node, None);
        };
        graph.copartitions.push(vec![self.node, other.node]);
        let this_name = graph.new_name("KTABLE-JOINTHIS");
        let left = graph.add_processor::<K, Change<V>, K, Side<Change<V>, Change<V2>>, _, _>(
            this_name,
            vec![self.node],
            |out| TagNode { wrap: Side::Left, out, _types: PhantomData },
        );
        let other_name = graph.new_name("KTABLE-JOINOTHER");
        let right = graph.add_processor::<K, Change<V2>, K, Side<Change<V>, Change<V2>>, _, _>(
            other_name,
            vec![other.node],
            |out| TagNode { wrap: Side::Right, out, _types: PhantomData },
        );
        let node_name = name.clone();
        let stores = vec![left_store.clone(), right_store.clone()];
        let (left_versions, right_versions) = (self.versioned, other.versioned);
        let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
            let out = downcast_children::<K, Change<VR>>(&node_name, children)?;
            let left_serdes = (Arc::clone(&left_ks), Arc::clone(&left_vs));
            let left = TableReader::open(ctx, &node_name, &left_store, left_serdes, left_versions)?;
            let right_serdes = (Arc::clone(&right_ks), Arc::clone(&right_vs));
            let right = TableReader::open(ctx, &node_name, &right_store, right_serdes, right_versions)?;
            let processor: Box<dyn Processor<K, Side<Change<V>, Change<V2>>>> = Box::new(TableTableJoin {
                kind,
                left,
                right,
                joiner: Arc::clone(&joiner),
                out: Forwarder::new(out),
            });
            Ok(Box::new(processor) as Erased)
        });
        let node = graph.push(NodeDef {
            name,
            kind: NodeKind::Processor { stores },
            parents: vec![left, right],
            factory,
            share: share::<K, Side<Change<V>, Change<V2>>>,
        });
        drop(graph);
        KTable::new(Rc::clone(&self.graph), node, None)
    }

    /// This table with a store of its own, named by `materialized` (or
    /// generated), so it can be joined, looked up by a stream, or read
    /// with [`TopologyTestDriver::get_key_value_store`](crate::TopologyTestDriver::get_key_value_store).
    /// What Kafka's `filter`, `mapValues` and `join` overloads with a
    /// `Materialized` do. The store needs both serdes from
    /// `materialized`; like every materialized table, it forwards its
    /// updates when its record cache flushes.
    ///
    /// ```
    /// use runnel_streams::{Consumed, Materialized, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver};
    ///
    /// let mut b = StreamsBuilder::new();
    /// b.table::<String, i64>("prices", Consumed::with(Serdes::string(), Serdes::i64()), Materialized::new())
    ///     .filter(|_, price| *price > 100)
    ///     .materialize(Materialized::as_("expensive").with_key_serde(Serdes::string()).with_value_serde(Serdes::i64()));
    /// let driver = TopologyTestDriver::new(b.build()?, StreamsConfig::new("shop"))?;
    /// let prices = driver.create_input_topic("prices", Serdes::string(), Serdes::i64());
    /// prices.pipe_input("tv".into(), 900)?;
    /// prices.pipe_input("pen".into(), 2)?;
    /// let store = driver.get_key_value_store("expensive", Serdes::string(), Serdes::i64())?;
    /// assert_eq!((store.get(&"tv".to_string())?, store.get(&"pen".to_string())?), (Some(900), None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn materialize(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        let mut graph = self.graph.borrow_mut();
        let store = define_store(&mut graph, &materialized, "KTABLE-MATERIALIZE");
        let name = graph.new_name("KTABLE-MATERIALIZE");
        let ks = serde_or_missing(&mut graph, materialized.key_serde, None, (&name, &store, "key"));
        let vs = serde_or_missing(&mut graph, materialized.value_serde, None, (&name, &store, "value"));
        let lookup = (Arc::clone(&ks), Arc::clone(&vs));
        let node = add_materializing_node::<K, K, Change<V>, V, _, _>(
            &mut graph,
            name,
            self.node,
            &store,
            (ks, vs),
            |store| TableMaterialize { store },
        );
        drop(graph);
        KTable::new(Rc::clone(&self.graph), node, Some(store)).with_serdes(lookup.0, lookup.1)
    }
}
