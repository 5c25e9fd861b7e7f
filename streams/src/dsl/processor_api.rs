//! The Processor API: [`Topology::add_source`], [`Topology::add_processor`],
//! [`Topology::add_sink`] and [`Topology::add_state_store`] build a
//! topology node by node (Kafka's `Topology` methods); [`StoreBuilder`]
//! defines a key-value store a processor reads and writes through a
//! [`KeyValueStoreRef`]; [`StreamsBuilder::add_state_store`] and
//! [`KStream::process_with_stores`] mix such processors into the DSL.
//!
//! # Lifecycle
//!
//! A processor added here (or with [`KStream::process`]) is shared between
//! its parent, which forwards records to it, and its task, which calls
//! [`Processor::init`] before the first record (stores restored),
//! [`Processor::punctuate`] when a schedule is due, and
//! [`Processor::close`] when the task closes. Stream-time schedules are
//! checked after every record; wall-clock ones whenever the stream thread
//! (or [`TopologyTestDriver::advance_wall_clock_time`](crate::TopologyTestDriver::advance_wall_clock_time))
//! checks.

use std::sync::{Arc, Mutex, PoisonError};

use crate::dsl::KStream;
use crate::dsl::{StreamsBuilder, Topics};
use crate::graph::{
    downcast_children, share, BuildContext, Erased, Factory, Graph, NodeDef, NodeId, NodeKind, SinkTarget,
    StoreDef, TopicRef,
};
use crate::processor::managed::{Lifecycle, Managed, ManagedNode};
use crate::processor::{Forwarder, Processor, ProcessorContext};
use crate::record::Record;
use crate::serdes::Serde;
use crate::source_sink::{FixedTopic, SinkNode, SourceNode};
use crate::store::state::TypedSerdes;
use crate::topology::Topology;
use crate::StreamsError;

/// The parent's handle on a managed processor. A task runs on one thread
/// at a time, so the lock is never contended.
struct ManagedHandle<K, V>(Arc<Mutex<Managed<K, V>>>);

impl<K, V> Processor<K, V> for ManagedHandle<K, V> {
    fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<K, V>) -> Result<(), StreamsError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0.process(ctx, record)
    }
}

/// Adds a processor node whose processor the task initializes, punctuates
/// and closes, connected to `stores`.
pub(crate) fn add_managed_processor<KI, VI, KO, VO, P, M>(
    graph: &mut Graph,
    name: String,
    parents: Vec<NodeId>,
    stores: Vec<String>,
    make: M,
) -> NodeId
where
    KI: Send + 'static,
    VI: Send + 'static,
    KO: Clone + 'static,
    VO: Clone + 'static,
    P: Processor<KI, VI> + 'static,
    M: Fn(Forwarder<KO, VO>) -> P + Send + Sync + 'static,
{
    let node_name = name.clone();
    let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
        let children = downcast_children::<KO, VO>(&node_name, children)?;
        let processor: Box<dyn Processor<KI, VI>> = Box::new(make(Forwarder::new(children)));
        let shared = Arc::new(Mutex::new(Managed(processor)));
        ctx.managed.push(ManagedNode { node: Arc::clone(&shared) as Arc<Mutex<dyn Lifecycle>> });
        let handle: Box<dyn Processor<KI, VI>> = Box::new(ManagedHandle(shared));
        Ok(Box::new(handle) as Erased)
    });
    graph.push(NodeDef {
        name,
        kind: NodeKind::Processor { stores },
        parents,
        factory,
        share: share::<KI, VI>,
    })
}

/// A key-value store for the Processor API (Kafka's
/// `Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(name), ...)`):
/// RocksDB, with a changelog topic `<application.id>-<name>-changelog`.
/// Writes go to RocksDB and the changelog after each record unless the
/// record cache is enabled, which merges them until the next commit.
pub struct StoreBuilder<K, V> {
    name: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    caching: bool,
}

impl<K: 'static, V: 'static> StoreBuilder<K, V> {
    /// A persistent key-value store `name` with these serdes.
    pub fn key_value(name: impl Into<String>, key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        StoreBuilder {
            name: name.into(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            caching: false,
        }
    }

    /// Puts the store behind the task's record cache (Kafka's
    /// `withCachingEnabled`).
    #[must_use]
    pub fn with_caching_enabled(mut self) -> Self {
        self.caching = true;
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn definition(&self) -> StoreDef {
        let serdes: (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) =
            (Arc::clone(&self.key_serde), Arc::clone(&self.value_serde));
        StoreDef {
            name: self.name.clone(),
            caching: self.caching,
            segmenting: None,
            ranged: true,
            timestamped: false,
            typed: Some(TypedSerdes(Arc::new(serdes))),
            internal: false,
            window_cache: None,
        }
    }
}

impl Topology {
    /// An empty topology, to build with the `add_*` methods (Kafka's
    /// `new Topology()`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use runnel_streams::{
    ///     Forwarder, Processor, ProcessorContext, Punctuation, PunctuationType, Record, Serdes, StoreBuilder,
    ///     StreamsConfig, StreamsError, Topology, TopologyTestDriver,
    /// };
    /// use runnel_streams::KeyValueStoreRef;
    ///
    /// /// Counts words per key and emits every count each 10 s of stream time.
    /// struct WordCount {
    ///     out: Forwarder<String, i64>,
    ///     counts: Option<KeyValueStoreRef<String, i64>>,
    /// }
    ///
    /// impl Processor<String, String> for WordCount {
    ///     fn init(&mut self, ctx: &mut ProcessorContext<'_>) -> Result<(), StreamsError> {
    ///         self.counts = Some(ctx.key_value_store("counts")?);
    ///         ctx.schedule(Duration::from_secs(10), PunctuationType::StreamTime)?;
    ///         Ok(())
    ///     }
    ///     fn process(&mut self, ctx: &mut ProcessorContext<'_>, record: Record<String, String>) -> Result<(), StreamsError> {
    ///         let counts = self.counts.as_ref().expect("init ran");
    ///         for word in record.value.split_whitespace() {
    ///             let n = counts.get(ctx, &word.to_string())?.unwrap_or(0);
    ///             counts.put(ctx, &word.to_string(), Some(&(n + 1)))?;
    ///         }
    ///         Ok(())
    ///     }
    ///     fn punctuate(&mut self, ctx: &mut ProcessorContext<'_>, p: Punctuation) -> Result<(), StreamsError> {
    ///         for (word, n) in self.counts.as_ref().expect("init ran").all(ctx)? {
    ///             self.out.forward(ctx, Record::new(word, n, p.timestamp))?;
    ///         }
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let mut topology = Topology::new();
    /// topology
    ///     .add_source("Source", "lines", Serdes::string(), Serdes::string())?
    ///     .add_processor("Count", |out| WordCount { out, counts: None }, &["Source"])?
    ///     .add_state_store(StoreBuilder::key_value("counts", Serdes::string(), Serdes::i64()), &["Count"])?
    ///     .add_sink("Sink", "word-counts", Serdes::string(), Serdes::i64(), &["Count"])?;
    /// let driver = TopologyTestDriver::new(topology, StreamsConfig::new("words"))?;
    /// let lines = driver.create_input_topic("lines", Serdes::string(), Serdes::string());
    /// let out = driver.create_output_topic("word-counts", Serdes::string(), Serdes::i64());
    /// // The first record fires the stream-time schedule (due from 0), after
    /// // the record is processed; it is due again at 10 s.
    /// lines.pipe_input_with_timestamp("l1".into(), "a b a".into(), 1_000)?;
    /// assert_eq!(out.read_key_values_to_list()?, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// lines.pipe_input_with_timestamp("l2".into(), "b".into(), 9_999)?;
    /// assert_eq!(out.read_key_values_to_list()?, vec![]);
    /// lines.pipe_input_with_timestamp("l3".into(), "b".into(), 10_000)?;
    /// assert_eq!(out.read_key_values_to_list()?, vec![("a".to_string(), 2), ("b".to_string(), 3)]);
    /// # Ok::<(), StreamsError>(())
    /// ```
    pub fn new() -> Topology {
        Topology::empty()
    }

    /// Changes this topology through the graph it was built from, keeping
    /// it unchanged when the change fails.
    fn change(
        &mut self,
        f: impl FnOnce(&mut Graph) -> Result<(), StreamsError>,
    ) -> Result<&mut Self, StreamsError> {
        let mut graph = self.to_graph();
        f(&mut graph)?;
        if let Some(error) = graph.errors.drain(..).next() {
            return Err(error);
        }
        *self = Topology::from_graph(graph)?;
        Ok(self)
    }

    /// Adds a source node `name` reading `topics` with these serdes.
    ///
    /// # Errors
    /// A name or topic already used, or an empty topic name.
    pub fn add_source<K, V>(
        &mut self,
        name: &str,
        topics: impl Into<Topics>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Result<&mut Self, StreamsError>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let topics: Vec<TopicRef> = topics.into().0.into_iter().map(TopicRef::Named).collect();
        let (ks, vs): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) = (Arc::new(key_serde), Arc::new(value_serde));
        self.change(|graph| {
            graph.add_source::<K, V, _, _>(name.to_string(), topics, move |out| SourceNode {
                key_serde: Arc::clone(&ks),
                value_serde: Arc::clone(&vs),
                out,
            });
            Ok(())
        })
    }

    /// Adds a processor node `name` receiving the records of `parents`
    /// (each must forward `(KI, VI)`); `supplier` builds one processor
    /// per task from its children.
    ///
    /// # Errors
    /// An unknown parent or a name already used.
    pub fn add_processor<KI, VI, KO, VO, P, S>(
        &mut self,
        name: &str,
        supplier: S,
        parents: &[&str],
    ) -> Result<&mut Self, StreamsError>
    where
        KI: Send + 'static,
        VI: Send + 'static,
        KO: Clone + 'static,
        VO: Clone + 'static,
        P: Processor<KI, VI> + 'static,
        S: Fn(Forwarder<KO, VO>) -> P + Send + Sync + 'static,
    {
        self.change(|graph| {
            let parents = parent_ids(graph, name, parents)?;
            add_managed_processor::<KI, VI, KO, VO, P, S>(
                graph,
                name.to_string(),
                parents,
                Vec::new(),
                supplier,
            );
            Ok(())
        })
    }

    /// Adds a sink node `name` writing the records of `parents` to `topic`.
    ///
    /// # Errors
    /// An unknown parent or a name already used.
    pub fn add_sink<K, V>(
        &mut self,
        name: &str,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        parents: &[&str],
    ) -> Result<&mut Self, StreamsError>
    where
        K: Send + 'static,
        V: Send + 'static,
    {
        let (ks, vs): (Arc<dyn Serde<K>>, Arc<dyn Serde<V>>) = (Arc::new(key_serde), Arc::new(value_serde));
        let topic = topic.to_string();
        self.change(|graph| {
            let parents = parent_ids(graph, name, parents)?;
            let sink_name: Arc<str> = Arc::from(name);
            let target = SinkTarget::Topic(TopicRef::Named(topic.clone()));
            let factory_topic = topic.clone();
            let make = move |_ctx: &BuildContext<'_>| {
                SinkNode::new(
                    Arc::clone(&sink_name),
                    FixedTopic(factory_topic.clone()),
                    Arc::clone(&ks),
                    Arc::clone(&vs),
                )
            };
            let node = graph.add_sink::<K, V, _, _>(name.to_string(), parents[0], target, make);
            graph.nodes[node].parents = parents;
            Ok(())
        })
    }

    /// Adds `store` and connects it to the processors named (their
    /// [`ProcessorContext::key_value_store`] finds it).
    ///
    /// # Errors
    /// A store name already used, or an unknown processor.
    pub fn add_state_store<K: 'static, V: 'static>(
        &mut self,
        store: StoreBuilder<K, V>,
        processors: &[&str],
    ) -> Result<&mut Self, StreamsError> {
        self.change(|graph| {
            graph.add_store_def(store.definition());
            connect_store(graph, store.name(), processors)
        })
    }
}

impl Default for Topology {
    fn default() -> Self {
        Topology::new()
    }
}

/// The ids of the nodes named `parents` (at least one).
fn parent_ids(graph: &Graph, node: &str, parents: &[&str]) -> Result<Vec<NodeId>, StreamsError> {
    if parents.is_empty() {
        return Err(StreamsError::Runtime { reason: format!("node {node:?} needs at least one parent") });
    }
    parents
        .iter()
        .map(|p| {
            graph.nodes.iter().position(|n| n.name == *p).ok_or_else(|| StreamsError::Runtime {
                reason: format!("node {node:?}: no parent named {p:?}"),
            })
        })
        .collect()
}

/// Lists `store` among the stores of each processor named.
fn connect_store(graph: &mut Graph, store: &str, processors: &[&str]) -> Result<(), StreamsError> {
    for name in processors {
        let node = graph.nodes.iter_mut().find(|n| n.name == *name).ok_or_else(|| StreamsError::Runtime {
            reason: format!("store {store:?}: no processor named {name:?}"),
        })?;
        match &mut node.kind {
            NodeKind::Processor { stores } => {
                if !stores.iter().any(|s| s == store) {
                    stores.push(store.to_string());
                }
            }
            _ => {
                return Err(StreamsError::Runtime {
                    reason: format!("store {store:?}: {name:?} is not a processor"),
                })
            }
        }
    }
    Ok(())
}

impl StreamsBuilder {
    /// Adds a Processor API store that [`KStream::process_with_stores`]
    /// processors can connect to (Kafka's `StreamsBuilder#addStateStore`).
    pub fn add_state_store<K: 'static, V: 'static>(&mut self, store: StoreBuilder<K, V>) -> &mut Self {
        self.graph.borrow_mut().add_store_def(store.definition());
        self
    }
}

impl<K, V> KStream<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// As [`process`](KStream::process), with the processor connected to
    /// the stores named (added with
    /// [`StreamsBuilder::add_state_store`]), which it looks up in
    /// [`Processor::init`] (Kafka's `KStream#process(supplier, stores)`).
    pub fn process_with_stores<KO, VO, P, S>(&self, supplier: S, stores: &[&str]) -> KStream<KO, VO>
    where
        KO: Clone + Send + 'static,
        VO: Clone + Send + 'static,
        P: Processor<K, V> + 'static,
        S: Fn(Forwarder<KO, VO>) -> P + Send + Sync + 'static,
    {
        let stores = stores.iter().map(|s| s.to_string()).collect();
        self.add_managed("KSTREAM-PROCESSOR", stores, supplier)
    }
}
