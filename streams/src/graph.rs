//! The processor graph a [`StreamsBuilder`](crate::StreamsBuilder) records:
//! node descriptions plus type-erased factories.
//!
//! # Type erasure
//!
//! A node's input and output types are known only where the DSL call creates
//! it, so each [`NodeDef`] stores a [`Factory`] closure monomorphized there.
//! At task instantiation nodes are built children-first; a factory receives
//! its children as `Box<dyn Any>` values, downcasts each to
//! `Box<dyn Processor<KO, VO>>` (its own output types), and returns itself
//! boxed the same way for its parents. A mismatch would be a bug in this
//! crate and surfaces as [`StreamsError::Internal`], never a panic. Once
//! built, the chain is plain trait objects: no `Any`, no downcasts per record.
//!
//! Nodes with several parents are built once and handed out as
//! [`SharedProcessor`] handles, which needs a second monomorphized function,
//! [`NodeDef::share`], typed by the node's input.

use std::any::Any;
use std::sync::Arc;

use crate::processor::FlushListener;
use crate::processor::{Forwarder, Processor, SharedProcessor};
use crate::source_sink::SourceProcessor;
use crate::store::global::GlobalStores;
use crate::store::rocks::Segmenting;
use crate::store::state::{StoreHandle, TypedSerdes};
use crate::StreamsError;

/// Index of a node in [`Graph::nodes`]; parents always have smaller ids.
pub(crate) type NodeId = usize;

/// A built processor behind `Any`: `Box<dyn Processor<K, V>>` for processor
/// and sink nodes, `Box<dyn SourceProcessor>` for source nodes.
pub(crate) type Erased = Box<dyn Any + Send>;

/// What factories need from the task they are instantiated for: the
/// application id, the task's stores (name and changelog topic, by handle)
/// and a place to register the listener that forwards a store's flushes.
pub(crate) struct BuildContext<'a> {
    pub(crate) application_id: &'a str,
    /// The instance's global stores, for global-table joins.
    pub(crate) globals: &'a GlobalStores,
    pub(crate) stores: &'a [(String, String)],
    pub(crate) listeners: Vec<Option<Box<dyn FlushListener>>>,
    /// Processor API nodes of the task: initialized, punctuated and closed
    /// by it.
    pub(crate) managed: Vec<crate::processor::managed::ManagedNode>,
}

impl BuildContext<'_> {
    /// The handle and changelog topic of the task's store `name`.
    pub(crate) fn store(&self, node: &str, name: &str) -> Result<(StoreHandle, &str), StreamsError> {
        self.stores
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| (StoreHandle(i), self.stores[i].1.as_str()))
            .ok_or_else(|| StreamsError::Internal {
                node: node.to_string(),
                reason: format!("store {name:?} is not in the task"),
            })
    }

    /// Makes `listener` receive the flushes of `store`.
    pub(crate) fn set_flush_listener(&mut self, store: StoreHandle, listener: Box<dyn FlushListener>) {
        self.listeners[store.0] = Some(listener);
    }
}

/// Builds one node given its built children (in child order).
pub(crate) type Factory =
    Arc<dyn Fn(&mut BuildContext<'_>, Vec<Erased>) -> Result<Erased, StreamsError> + Send + Sync>;

/// Turns one built node into `n` handles for its `n` parents.
pub(crate) type ShareFn = fn(&str, Erased, usize) -> Result<Vec<Erased>, StreamsError>;

/// A topic as named in the topology. Repartition topics get the application
/// id as prefix only when the topology is bound to an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicRef {
    /// A user topic, used as is.
    Named(String),
    /// An internal topic: the stored suffix is `<name>-repartition`.
    Repartition(String),
}

impl TopicRef {
    /// The topic name for `application_id`.
    pub(crate) fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicRef::Named(name) => name.clone(),
            TopicRef::Repartition(suffix) => format!("{application_id}-{suffix}"),
        }
    }

    /// The name as described (without the application id).
    pub(crate) fn as_str(&self) -> &str {
        match self {
            TopicRef::Named(name) | TopicRef::Repartition(name) => name,
        }
    }
}

/// Where a sink writes.
#[derive(Debug, Clone)]
pub(crate) enum SinkTarget {
    /// Always this topic.
    Topic(TopicRef),
    /// A topic chosen per record.
    Dynamic,
}

/// The role of a node, as described.
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Source { topics: Vec<TopicRef> },
    Processor { stores: Vec<String> },
    Sink { target: SinkTarget },
}

/// One node of the graph.
#[derive(Clone)]
pub(crate) struct NodeDef {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<NodeId>,
    pub(crate) factory: Factory,
    pub(crate) share: ShareFn,
}

/// A repartition topic the topology needs created.
#[derive(Debug, Clone)]
pub(crate) struct RepartitionDef {
    pub(crate) suffix: String,
    pub(crate) partitions: Option<u32>,
}

/// A global table: its store, topic, and the names of its source and
/// processor (for `describe`).
#[derive(Debug, Clone)]
pub(crate) struct GlobalDef {
    pub(crate) store: String,
    pub(crate) topic: String,
    pub(crate) source: String,
    pub(crate) processor: String,
}

/// A state store the topology defines.
#[derive(Debug, Clone)]
pub(crate) struct StoreDef {
    pub(crate) name: String,
    /// Whether the store's record cache is on (`Materialized`).
    pub(crate) caching: bool,
    /// Time segments, for window and session stores.
    pub(crate) segmenting: Option<Segmenting>,
    /// Whether processors read the store by key range (the cache keeps
    /// its keys ordered).
    pub(crate) ranged: bool,
    /// Whether values start with an 8-byte timestamp (sliding windows).
    pub(crate) timestamped: bool,
    /// The key and value serdes of a Processor API store, for typed
    /// handles (`(Arc<dyn Serde<K>>, Arc<dyn Serde<V>>)`).
    pub(crate) typed: Option<TypedSerdes>,
    /// Whether the store's keys or values have an internal layout (join
    /// windows, buffers, versions) that the interactive-query views cannot
    /// read.
    pub(crate) internal: bool,
    /// For a stream-stream join's window store, read one key's time range
    /// per record: the join's name and the store's side (0 or 1). Its cache
    /// is that side of a [`WindowCache`](crate::store::window_cache::WindowCache)
    /// shared with the join's other window store, which keeps flushed
    /// entries readable.
    pub(crate) window_cache: Option<(String, usize)>,
}

/// The graph under construction.
#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) repartitions: Vec<RepartitionDef>,
    pub(crate) stores: Vec<StoreDef>,
    /// Global tables.
    pub(crate) globals: Vec<GlobalDef>,
    /// Problems found while building, reported by `build()`.
    pub(crate) errors: Vec<StreamsError>,
    /// Nodes whose input topics must be co-partitioned (the two inputs
    /// of a join).
    pub(crate) copartitions: Vec<Vec<NodeId>>,
    counter: u64,
}

impl Graph {
    /// A graph of these parts (a built topology's, to add nodes to).
    pub(crate) fn from_parts(
        nodes: Vec<NodeDef>,
        repartitions: Vec<RepartitionDef>,
        stores: Vec<StoreDef>,
        globals: Vec<GlobalDef>,
        copartitions: Vec<Vec<NodeId>>,
    ) -> Graph {
        let counter = nodes.len() as u64;
        Graph { nodes, repartitions, stores, globals, errors: Vec::new(), copartitions, counter }
    }

    /// A Kafka-style generated name: `KSTREAM-FILTER-0000000001`.
    pub(crate) fn new_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{:010}", self.counter);
        self.counter += 1;
        name
    }

    /// `given`, or a generated name with `prefix`.
    pub(crate) fn name_or(&mut self, given: Option<String>, prefix: &str) -> String {
        given.unwrap_or_else(|| self.new_name(prefix))
    }

    /// Defines store `name`; a name defined twice is a build error.
    pub(crate) fn add_store(&mut self, name: &str, caching: bool) {
        self.add_store_def(StoreDef {
            name: name.to_string(),
            caching,
            segmenting: None,
            ranged: false,
            timestamped: false,
            typed: None,
            internal: false,
            window_cache: None,
        });
    }

    /// Defines store `name` with an internal layout that processors read
    /// by key range (join buffers, suppression buffers, subscriptions,
    /// versions): ordered cache, not readable by interactive queries.
    pub(crate) fn add_internal_store(&mut self, name: &str, caching: bool) {
        self.add_store(name, caching);
        if let Some(def) = self.store_mut(name) {
            def.ranged = true;
            def.internal = true;
        }
    }

    /// The definition of store `name`.
    pub(crate) fn store_mut(&mut self, name: &str) -> Option<&mut StoreDef> {
        self.stores.iter_mut().find(|s| s.name == name)
    }

    /// Marks store `name` as having an internal layout (not readable by
    /// interactive queries).
    pub(crate) fn set_store_internal(&mut self, name: &str) {
        if let Some(def) = self.store_mut(name) {
            def.internal = true;
        }
    }

    /// Makes the store `name` a window or session store: split into time
    /// segments, its cache ordered when `ranged`.
    pub(crate) fn set_store_layout(
        &mut self,
        name: &str,
        segmenting: Segmenting,
        ranged: bool,
        timestamped: bool,
    ) {
        if let Some(def) = self.store_mut(name) {
            def.segmenting = Some(segmenting);
            def.ranged = ranged;
            def.timestamped = timestamped;
        }
    }

    /// Defines a store, reporting a duplicate name.
    pub(crate) fn add_store_def(&mut self, def: StoreDef) {
        if self.stores.iter().any(|s| s.name == def.name) {
            self.errors.push(StreamsError::DuplicateStore { store: def.name });
        } else {
            self.stores.push(def);
        }
    }

    /// Adds a node that owns store `store`: it consumes `(KI, VI)` and
    /// updates the store; its children receive the store's flushed updates
    /// through the listener `make` returns (given the store's handle, its
    /// changelog topic and the children).
    pub(crate) fn add_store_processor<KI, VI, KO, VO, P, M>(
        &mut self,
        name: String,
        parents: Vec<NodeId>,
        store: String,
        make: M,
    ) -> NodeId
    where
        KI: 'static,
        VI: 'static,
        KO: Clone + 'static,
        VO: Clone + 'static,
        P: Processor<KI, VI> + 'static,
        M: Fn(StoreHandle, &str, Forwarder<KO, VO>) -> (P, Box<dyn FlushListener>) + Send + Sync + 'static,
    {
        let (node_name, store_name) = (name.clone(), store.clone());
        let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
            let children = downcast_children::<KO, VO>(&node_name, children)?;
            let (handle, changelog) = ctx.store(&node_name, &store_name)?;
            let (processor, listener) = make(handle, changelog, Forwarder::new(children));
            ctx.set_flush_listener(handle, listener);
            let processor: Box<dyn Processor<KI, VI>> = Box::new(processor);
            Ok(Box::new(processor) as Erased)
        });
        self.push(NodeDef {
            name,
            kind: NodeKind::Processor { stores: vec![store] },
            parents,
            factory,
            share: share::<KI, VI>,
        })
    }

    pub(crate) fn push(&mut self, node: NodeDef) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Adds a processor node consuming `(KI, VI)` and forwarding `(KO, VO)`.
    /// `make` receives the node's children and returns the processor.
    pub(crate) fn add_processor<KI, VI, KO, VO, P, M>(
        &mut self,
        name: String,
        parents: Vec<NodeId>,
        make: M,
    ) -> NodeId
    where
        KI: 'static,
        VI: 'static,
        KO: Clone + 'static,
        VO: Clone + 'static,
        P: Processor<KI, VI> + 'static,
        M: Fn(Forwarder<KO, VO>) -> P + Send + Sync + 'static,
    {
        let node_name = name.clone();
        let factory: Factory = Arc::new(move |_ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
            let children = downcast_children::<KO, VO>(&node_name, children)?;
            let processor: Box<dyn Processor<KI, VI>> = Box::new(make(Forwarder::new(children)));
            Ok(Box::new(processor) as Erased)
        });
        self.push(NodeDef {
            name,
            kind: NodeKind::Processor { stores: Vec::new() },
            parents,
            factory,
            share: share::<KI, VI>,
        })
    }

    /// Adds a sink node consuming `(K, V)`; it has no children.
    pub(crate) fn add_sink<K, V, P, M>(
        &mut self,
        name: String,
        parent: NodeId,
        target: SinkTarget,
        make: M,
    ) -> NodeId
    where
        K: 'static,
        V: 'static,
        P: Processor<K, V> + 'static,
        M: Fn(&BuildContext<'_>) -> P + Send + Sync + 'static,
    {
        let factory: Factory = Arc::new(move |ctx: &mut BuildContext<'_>, _children: Vec<Erased>| {
            let processor: Box<dyn Processor<K, V>> = Box::new(make(ctx));
            Ok(Box::new(processor) as Erased)
        });
        self.push(NodeDef {
            name,
            kind: NodeKind::Sink { target },
            parents: vec![parent],
            factory,
            share: share::<K, V>,
        })
    }

    /// Adds a source node forwarding `(K, V)`.
    pub(crate) fn add_source<K, V, P, M>(&mut self, name: String, topics: Vec<TopicRef>, make: M) -> NodeId
    where
        K: Clone + 'static,
        V: Clone + 'static,
        P: SourceProcessor + 'static,
        M: Fn(Forwarder<K, V>) -> P + Send + Sync + 'static,
    {
        let node_name = name.clone();
        let factory: Factory = Arc::new(move |_ctx: &mut BuildContext<'_>, children: Vec<Erased>| {
            let children = downcast_children::<K, V>(&node_name, children)?;
            let source: Box<dyn SourceProcessor> = Box::new(make(Forwarder::new(children)));
            Ok(Box::new(source) as Erased)
        });
        self.push(NodeDef {
            name,
            kind: NodeKind::Source { topics },
            parents: Vec::new(),
            factory,
            share: no_share,
        })
    }

    /// Replaces a node's factory (used by `split`, whose processor learns its
    /// branches after the node is created).
    pub(crate) fn set_factory(&mut self, node: NodeId, factory: Factory) {
        self.nodes[node].factory = factory;
    }
}

/// Downcasts built children to the parent's output types.
pub(crate) fn downcast_children<K: 'static, V: 'static>(
    node: &str,
    children: Vec<Erased>,
) -> Result<Vec<Box<dyn Processor<K, V>>>, StreamsError> {
    children
        .into_iter()
        .map(|child| {
            child.downcast::<Box<dyn Processor<K, V>>>().map(|b| *b).map_err(|_| StreamsError::Internal {
                node: node.to_string(),
                reason: format!(
                    "a child does not accept ({}, {})",
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                ),
            })
        })
        .collect()
}

pub(crate) fn share<K: 'static, V: 'static>(
    node: &str,
    built: Erased,
    n: usize,
) -> Result<Vec<Erased>, StreamsError> {
    let processor = built.downcast::<Box<dyn Processor<K, V>>>().map_err(|_| StreamsError::Internal {
        node: node.to_string(),
        reason: "built processor has unexpected input types".to_string(),
    })?;
    Ok(SharedProcessor::handles(*processor, n).into_iter().map(|p| Box::new(p) as Erased).collect())
}

fn no_share(node: &str, _built: Erased, _n: usize) -> Result<Vec<Erased>, StreamsError> {
    Err(StreamsError::Internal { node: node.to_string(), reason: "a source node has no parents".to_string() })
}
