//! [`KStream`]: a typed record stream under construction, and
//! [`BranchedKStream`] for `split`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::KStream;
use crate::graph::{downcast_children, BuildContext, Erased, Factory, Graph, NodeId, RepartitionDef};
use crate::graph::{SinkTarget, TopicRef};
use crate::nodes::{BranchPredicate, Filter, FlatMap, FlatMapValues, Map, MapValues, PassThrough, Peek};
use crate::nodes::{SelectKey, Split};
use crate::options::{Branched, Named, Produced, Repartitioned};
use crate::processor::{Forwarder, Processor};
use crate::source_sink::{DynamicTopic, FixedTopic, SinkNode, SourceNode};
use crate::StreamsError;

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: Rc::clone(&self.graph),
            node: self.node,
            repartition_required: self.repartition_required,
            next_name: self.next_name.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let graph = self.graph.borrow();
        let name = graph.nodes.get(self.node).map_or("?", |n| n.name.as_str());
        f.debug_struct("KStream")
            .field("node", &name)
            .field("repartition_required", &self.repartition_required)
            .finish()
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub(crate) fn new(graph: Rc<RefCell<Graph>>, node: NodeId) -> Self {
        KStream { graph, node, repartition_required: false, next_name: None, _types: PhantomData }
    }

    pub(crate) fn derive<KO, VO>(&self, node: NodeId, repartition_required: bool) -> KStream<KO, VO> {
        KStream {
            graph: Rc::clone(&self.graph),
            node,
            repartition_required,
            next_name: None,
            _types: PhantomData,
        }
    }

    /// Adds a processor child of this stream's node.
    fn add<KO, VO, P, M>(&self, prefix: &str, repartition_required: bool, make: M) -> KStream<KO, VO>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        P: Processor<K, V> + 'static,
        M: Fn(Forwarder<KO, VO>) -> P + Send + Sync + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.name_or(self.next_name.clone(), prefix);
        let node = graph.add_processor::<K, V, KO, VO, P, M>(name, vec![self.node], make);
        drop(graph);
        self.derive(node, repartition_required)
    }

    /// Whether a key-changing operator came since the last repartition
    /// (grouping and joins will insert one automatically).
    pub(crate) fn repartition_required(&self) -> bool {
        self.repartition_required
    }

    /// The builder's graph.
    pub(crate) fn graph(&self) -> &Rc<RefCell<Graph>> {
        &self.graph
    }

    /// The node this handle points at.
    pub(crate) fn node(&self) -> NodeId {
        self.node
    }

    /// The same stream, with `name` for the node the next operator on the
    /// returned handle creates (instead of a generated `KSTREAM-...-<n>`).
    /// For [`split`](KStream::split) the name is the branch-name prefix; for
    /// [`repartition`](KStream::repartition) the topic's base name, unless
    /// [`Repartitioned::name`] is set.
    pub fn named(&self, name: Named) -> KStream<K, V> {
        let mut named = self.clone();
        named.next_name = Some(name.0);
        named
    }

    /// Keeps the records for which `predicate` holds.
    pub fn filter<F>(&self, predicate: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let pred = Arc::new(predicate);
        self.add("KSTREAM-FILTER", self.repartition_required, move |out| Filter {
            pred: Arc::clone(&pred),
            keep: true,
            out,
        })
    }

    /// Drops the records for which `predicate` holds.
    pub fn filter_not<F>(&self, predicate: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        let pred = Arc::new(predicate);
        self.add("KSTREAM-FILTER", self.repartition_required, move |out| Filter {
            pred: Arc::clone(&pred),
            keep: false,
            out,
        })
    }

    /// Replaces each record's key and value. Marks the stream for repartition.
    pub fn map<KO, VO, F>(&self, mapper: F) -> KStream<KO, VO>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        F: Fn(K, V) -> (KO, VO) + Send + Sync + 'static,
    {
        let f = Arc::new(mapper);
        self.add("KSTREAM-MAP", true, move |out| Map { f: Arc::clone(&f), out })
    }

    /// Replaces each record's value, keeping the key.
    pub fn map_values<VO, F>(&self, mapper: F) -> KStream<K, VO>
    where
        VO: Clone + Send + 'static,
        F: Fn(V) -> VO + Send + Sync + 'static,
    {
        self.map_values_with_key(move |_key, value| mapper(value))
    }

    /// Replaces each record's value using the key too (Kafka's
    /// `ValueMapperWithKey`).
    pub fn map_values_with_key<VO, F>(&self, mapper: F) -> KStream<K, VO>
    where
        VO: Clone + Send + 'static,
        F: Fn(&K, V) -> VO + Send + Sync + 'static,
    {
        let f = Arc::new(mapper);
        self.add("KSTREAM-MAPVALUES", self.repartition_required, move |out| MapValues {
            f: Arc::clone(&f),
            out,
        })
    }

    /// Replaces each record with zero or more records (same timestamp and
    /// headers). Marks the stream for repartition.
    pub fn flat_map<KO, VO, I, F>(&self, mapper: F) -> KStream<KO, VO>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        I: IntoIterator<Item = (KO, VO)>,
        F: Fn(K, V) -> I + Send + Sync + 'static,
    {
        let f = Arc::new(mapper);
        self.add("KSTREAM-FLATMAP", true, move |out| FlatMap { f: Arc::clone(&f), out })
    }

    /// Replaces each record's value with zero or more values, each keeping
    /// the key, timestamp and headers.
    pub fn flat_map_values<VO, I, F>(&self, mapper: F) -> KStream<K, VO>
    where
        VO: Clone + Send + 'static,
        I: IntoIterator<Item = VO>,
        F: Fn(V) -> I + Send + Sync + 'static,
    {
        let f = Arc::new(move |_key: &K, value: V| mapper(value));
        self.add("KSTREAM-FLATMAPVALUES", self.repartition_required, move |out| FlatMapValues {
            f: Arc::clone(&f),
            out,
        })
    }

    /// Replaces each record's key. Marks the stream for repartition.
    pub fn select_key<KO, F>(&self, selector: F) -> KStream<KO, V>
    where
        KO: Clone + Send + 'static,
        F: Fn(&K, &V) -> KO + Send + Sync + 'static,
    {
        let f = Arc::new(selector);
        self.add("KSTREAM-KEY-SELECT", true, move |out| SelectKey { f: Arc::clone(&f), out })
    }

    /// Calls `action` on each record and passes it on unchanged.
    pub fn peek<F>(&self, action: F) -> KStream<K, V>
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        let f = Arc::new(action);
        self.add("KSTREAM-PEEK", self.repartition_required, move |out| Peek { f: Arc::clone(&f), out })
    }

    /// Calls `action` on each record; a terminal operation.
    pub fn foreach<F>(&self, action: F)
    where
        F: Fn(&K, &V) + Send + Sync + 'static,
    {
        let f = Arc::new(action);
        let _: KStream<K, V> = self.add("KSTREAM-FOREACH", false, move |out| Peek { f: Arc::clone(&f), out });
    }

    /// Runs a custom [`Processor`]. `supplier` is called once per task with
    /// the node's [`Forwarder`] and returns the processor, which forwards
    /// `(KO, VO)` records through it. Marks the stream for repartition.
    pub fn process<KO, VO, P, S>(&self, supplier: S) -> KStream<KO, VO>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        P: Processor<K, V> + 'static,
        S: Fn(Forwarder<KO, VO>) -> P + Send + Sync + 'static,
    {
        self.add_managed("KSTREAM-PROCESSOR", Vec::new(), supplier)
    }

    /// Adds a Processor API node (initialized, punctuated and closed by its
    /// task) connected to `stores`; marks the stream for repartition.
    pub(crate) fn add_managed<KO, VO, P, S>(
        &self,
        prefix: &str,
        stores: Vec<String>,
        supplier: S,
    ) -> KStream<KO, VO>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        P: Processor<K, V> + 'static,
        S: Fn(Forwarder<KO, VO>) -> P + Send + Sync + 'static,
    {
        let mut graph = self.graph.borrow_mut();
        let name = graph.name_or(self.next_name.clone(), prefix);
        let node = crate::dsl::processor_api::add_managed_processor::<K, V, KO, VO, P, S>(
            &mut graph,
            name,
            vec![self.node],
            stores,
            supplier,
        );
        drop(graph);
        self.derive(node, true)
    }

    /// A stream of the records of both streams, each in its own order.
    ///
    /// `other` must come from the same builder; otherwise
    /// [`StreamsBuilder::build`](crate::StreamsBuilder::build) fails with
    /// [`StreamsError::ForeignStream`].
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut graph = self.graph.borrow_mut();
        let name = graph.name_or(self.next_name.clone(), "KSTREAM-MERGE");
        let mut parents = vec![self.node];
        if Rc::ptr_eq(&self.graph, &other.graph) {
            parents.push(other.node);
        } else {
            graph.errors.push(StreamsError::ForeignStream { node: name.clone() });
        }
        let node = graph.add_processor::<K, V, K, V, _, _>(name, parents, |out| PassThrough { out });
        drop(graph);
        self.derive(node, self.repartition_required || other.repartition_required)
    }

    /// Splits the stream by predicates; see [`BranchedKStream`].
    pub fn split(&self) -> BranchedKStream<K, V> {
        let mut graph = self.graph.borrow_mut();
        let (name, prefix) = match &self.next_name {
            Some(name) => (name.clone(), name.clone()),
            None => {
                let name = graph.new_name("KSTREAM-BRANCH");
                let prefix = format!("{name}-");
                (name, prefix)
            }
        };
        let node =
            graph.add_processor::<K, V, K, V, _, _>(name.clone(), vec![self.node], |out| PassThrough { out });
        graph.set_factory(node, split_factory::<K, V>(name, Arc::from(Vec::new()), false));
        drop(graph);
        BranchedKStream {
            stream: self.derive(node, self.repartition_required),
            prefix,
            predicates: Vec::new(),
            branches: HashMap::new(),
        }
    }

    /// Writes the stream to `topic`.
    ///
    /// An empty topic name makes [`build`](crate::StreamsBuilder::build) fail
    /// with [`StreamsError::EmptyTopicName`].
    pub fn to(&self, topic: impl Into<String>, produced: Produced<K, V>) {
        let topic = TopicRef::Named(topic.into());
        let resolve = topic.clone();
        self.add_sink(produced, SinkTarget::Topic(topic), move |name, ctx, ks, vs| {
            SinkNode::new(name, FixedTopic(resolve.resolve(ctx.application_id)), ks, vs)
        });
    }

    /// Writes each record to the topic `extractor` picks for it (Kafka's
    /// `TopicNameExtractor`). Return a `&'static str` to avoid allocating per
    /// record.
    pub fn to_dynamic<T, F>(&self, extractor: F, produced: Produced<K, V>)
    where
        T: AsRef<str> + 'static,
        F: Fn(&K, &V) -> T + Send + Sync + 'static,
    {
        let f = Arc::new(extractor);
        self.add_sink(produced, SinkTarget::Dynamic, move |name, _ctx, ks, vs| {
            SinkNode::new(name, DynamicTopic(Arc::clone(&f)), ks, vs)
        });
    }

    fn add_sink<P, M>(&self, produced: Produced<K, V>, target: SinkTarget, make: M)
    where
        P: Processor<K, V> + 'static,
        M: Fn(Arc<str>, &BuildContext<'_>, Arc<dyn crate::Serde<K>>, Arc<dyn crate::Serde<V>>) -> P
            + Send
            + Sync
            + 'static,
    {
        let Produced { key_serde, value_serde, name } = produced;
        let mut graph = self.graph.borrow_mut();
        let name = graph.name_or(name.or_else(|| self.next_name.clone()), "KSTREAM-SINK");
        let node_name: Arc<str> = Arc::from(name.as_str());
        graph.add_sink::<K, V, P, _>(name, self.node, target, move |ctx| {
            make(Arc::clone(&node_name), ctx, Arc::clone(&key_serde), Arc::clone(&value_serde))
        });
    }

    /// Writes the stream to the internal topic
    /// `<application.id>-<name>-repartition` and reads it back, so records
    /// are partitioned by their current key. This ends the current
    /// sub-topology; the returned stream starts a new one and no longer needs
    /// a repartition.
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let Repartitioned { key_serde, value_serde, name, partitions } = repartitioned;
        let mut graph = self.graph.borrow_mut();
        let (base, sink_name, source_name) = match name.or_else(|| self.next_name.clone()) {
            Some(base) => {
                let sink = format!("{base}-repartition-sink");
                let source = format!("{base}-repartition-source");
                (base, sink, source)
            }
            None => {
                let base = graph.new_name("KSTREAM-REPARTITION");
                (base, graph.new_name("KSTREAM-SINK"), graph.new_name("KSTREAM-SOURCE"))
            }
        };
        let source = add_repartition(
            &mut graph,
            self.node,
            RepartitionNames { base, sink: sink_name, source: source_name },
            key_serde,
            value_serde,
            partitions,
        );
        drop(graph);
        self.derive(source, false)
    }
}

/// Names of a repartition topic's base and of its sink and source nodes.
pub(crate) struct RepartitionNames {
    pub(crate) base: String,
    pub(crate) sink: String,
    pub(crate) source: String,
}

/// Adds a sink to `<application.id>-<base>-repartition` under `parent` and
/// a source reading it back; returns the source, which starts a new
/// sub-topology.
pub(crate) fn add_repartition<K, V>(
    graph: &mut Graph,
    parent: NodeId,
    names: RepartitionNames,
    key_serde: Arc<dyn crate::Serde<K>>,
    value_serde: Arc<dyn crate::Serde<V>>,
    partitions: Option<u32>,
) -> NodeId
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    let RepartitionNames { base, sink: sink_name, source: source_name } = names;
    let suffix = format!("{base}-repartition");
    if base.is_empty() {
        graph.errors.push(StreamsError::EmptyTopicName { node: sink_name.clone() });
    }
    if partitions == Some(0) {
        graph.errors.push(StreamsError::ZeroPartitions { topic: suffix.clone() });
    }
    let topic = TopicRef::Repartition(suffix.clone());
    let resolve = topic.clone();
    let node_name: Arc<str> = Arc::from(sink_name.as_str());
    let (ks, vs) = (Arc::clone(&key_serde), Arc::clone(&value_serde));
    graph.add_sink::<K, V, _, _>(sink_name, parent, SinkTarget::Topic(topic.clone()), move |ctx| {
        let topic = FixedTopic(resolve.resolve(ctx.application_id));
        SinkNode::new(Arc::clone(&node_name), topic, Arc::clone(&ks), Arc::clone(&vs))
    });
    let source = graph.add_source::<K, V, _, _>(source_name, vec![topic], move |out| SourceNode {
        key_serde: Arc::clone(&key_serde),
        value_serde: Arc::clone(&value_serde),
        out,
    });
    graph.repartitions.push(RepartitionDef { suffix, partitions });
    source
}

fn split_factory<K, V>(node: String, predicates: Arc<[BranchPredicate<K, V>]>, has_default: bool) -> Factory
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    Arc::new(move |_ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
        let out = downcast_children::<K, V>(&node, children)?;
        let expected = predicates.len() + usize::from(has_default);
        if out.len() != expected {
            return Err(StreamsError::Internal {
                node: node.clone(),
                reason: format!("split has {} children for {expected} branches", out.len()),
            });
        }
        let split: Box<dyn Processor<K, V>> =
            Box::new(Split { predicates: Arc::clone(&predicates), has_default, out });
        Ok(Box::new(split) as Erased)
    })
}

/// The branches of a [`KStream::split`] (Kafka's `BranchedKStream`): each
/// record goes to the first branch whose predicate holds, else to the
/// default branch, else is dropped.
///
/// ```
/// use runnel_streams::{Branched, Consumed, Serdes, StreamsBuilder};
///
/// let mut builder = StreamsBuilder::new();
/// let numbers = builder.stream::<String, i64>("numbers", Consumed::with(Serdes::string(), Serdes::i64()));
/// let branches = numbers
///     .split()
///     .branch(|_, n| *n < 0, Branched::as_("negative"))
///     .default_branch(Branched::as_("other"));
/// assert!(branches.contains_key("KSTREAM-BRANCH-0000000001-negative"));
/// assert!(branches.contains_key("KSTREAM-BRANCH-0000000001-other"));
/// ```
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    prefix: String,
    predicates: Vec<BranchPredicate<K, V>>,
    branches: HashMap<String, KStream<K, V>>,
}

impl<K, V> fmt::Debug for BranchedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BranchedKStream")
            .field("prefix", &self.prefix)
            .field("branches", &self.branches.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<K, V> BranchedKStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn add_branch(&mut self, branched: Branched, position: usize, has_default: bool) {
        let key = format!("{}{}", self.prefix, branched.0.unwrap_or_else(|| position.to_string()));
        let mut graph = self.stream.graph.borrow_mut();
        let node = graph.add_processor::<K, V, K, V, _, _>(key.clone(), vec![self.stream.node], |out| {
            PassThrough { out }
        });
        let split_name = graph.nodes[self.stream.node].name.clone();
        let predicates: Arc<[BranchPredicate<K, V>]> = Arc::from(self.predicates.clone());
        graph.set_factory(self.stream.node, split_factory::<K, V>(split_name, predicates, has_default));
        drop(graph);
        let branch = self.stream.derive(node, self.stream.repartition_required);
        self.branches.insert(key, branch);
    }

    /// Adds a branch for the records `predicate` holds for (and no earlier
    /// branch took).
    pub fn branch<F>(mut self, predicate: F, branched: Branched) -> Self
    where
        F: Fn(&K, &V) -> bool + Send + Sync + 'static,
    {
        self.predicates.push(Arc::new(predicate));
        let position = self.predicates.len();
        self.add_branch(branched, position, false);
        self
    }

    /// Adds a branch for the records no predicate took and returns all
    /// branches by name.
    pub fn default_branch(mut self, branched: Branched) -> HashMap<String, KStream<K, V>> {
        self.add_branch(branched, 0, true);
        self.branches
    }

    /// Drops the records no predicate took and returns all branches by name.
    pub fn no_default_branch(self) -> HashMap<String, KStream<K, V>> {
        self.branches
    }
}

#[cfg(test)]
mod tests {
    use crate::{Consumed, Named, Repartitioned, Serdes, StreamsBuilder};

    #[test]
    fn key_changing_operators_mark_the_stream_for_repartition() {
        let mut builder = StreamsBuilder::new();
        let s = builder.stream::<String, String>("in", Consumed::with(Serdes::string(), Serdes::string()));
        assert!(!s.repartition_required());
        assert!(!s.filter(|_, _| true).map_values(|v| v).peek(|_, _| ()).repartition_required());
        assert!(s.map(|k, v| (k, v)).repartition_required());
        assert!(s.select_key(|k, _| k.clone()).repartition_required());
        assert!(s.flat_map(|k, v| Some((k, v))).repartition_required());
        let rekeyed = s.select_key(|k, _| k.clone());
        assert!(rekeyed.filter(|_, _| true).repartition_required(), "the flag survives value-only ops");
        assert!(s.merge(&rekeyed).repartition_required());
        let repartitioned = rekeyed
            .named(Named::as_("r"))
            .repartition(Repartitioned::with(Serdes::string(), Serdes::string()));
        assert!(!repartitioned.repartition_required());
    }
}
