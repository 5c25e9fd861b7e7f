//! [`Topology`]: the validated processor graph, cut into sub-topologies at
//! repartition topics, and the instantiation of its tasks.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::config::StreamsConfig;
use crate::describe::{
    GlobalStoreDescription, NodeDescription, NodeDescriptionKind, SubtopologyDescription, TopologyDescription,
};
use crate::graph::{
    BuildContext, Erased, GlobalDef, Graph, NodeDef, NodeId, NodeKind, RepartitionDef, SinkTarget, StoreDef,
};
use crate::processor::TaskId;
use crate::source_sink::SourceProcessor;
use crate::store::cache::{RecordCache, StoreCache, WindowSide};
use crate::store::changelog_topic;
use crate::store::global::GlobalStores;
use crate::store::memory::SharedMemory;
use crate::store::rocks::RocksStore;
use crate::store::state::{StoreSlot, TaskStores};
use crate::store::window_cache::WindowCache;
use crate::task::StreamTask;
use crate::StreamsError;

/// A repartition topic the runtime must create before starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepartitionTopic {
    /// Full name: `<application.id>-<name>-repartition`.
    pub name: String,
    /// Partition count, or `None` to match the upstream sub-topology's
    /// input partitions (Kafka's default).
    pub partitions: Option<u32>,
}

/// How much longer than its store a window changelog keeps records.
const WINDOW_CHANGELOG_EXTRA_MS: i64 = 24 * 60 * 60 * 1000;

/// A changelog topic the runtime must create (compacted:
/// `cleanup.policy=compact`) before starting. It needs as many partitions
/// as the input of the sub-topology owning the store: task `s_p` logs to
/// partition `p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogTopic {
    /// Full name: `<application.id>-<store>-changelog`.
    pub name: String,
    /// The store it backs.
    pub store: String,
    /// For window and session stores: the store's retention plus a day
    /// (Kafka's `windowstore.changelog.additional.retention.ms`), to be
    /// set as `retention.ms` with `cleanup.policy=compact,delete`. `None`
    /// for key-value stores (compacted only).
    pub retention_ms: Option<i64>,
}

/// A validated processor graph, built by
/// [`StreamsBuilder::build`](crate::StreamsBuilder::build).
///
/// The graph is split into sub-topologies: the connected parts left after
/// cutting at repartition topics (a repartition sink ends one, the matching
/// source starts another). Each sub-topology runs as one task per input
/// partition. A topology is not tied to an application until it runs:
/// repartition topics get the `application.id` prefix then.
///
/// ```
/// use runnel_streams::{Consumed, Produced, Repartitioned, Serdes, StreamsBuilder};
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
///     .select_key(|_, page| page.clone())
///     .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).name("by-page").partitions(4))
///     .to("clicks-by-page", Produced::with(Serdes::string(), Serdes::string()));
/// let topology = builder.build()?;
///
/// assert_eq!(topology.describe().subtopologies().len(), 2);
/// let internal = topology.repartition_topics("app");
/// assert_eq!(internal[0].name, "app-by-page-repartition");
/// assert_eq!(internal[0].partitions, Some(4));
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
pub struct Topology {
    nodes: Vec<NodeDef>,
    children: Vec<Vec<NodeId>>,
    /// Node ids of each sub-topology, ascending.
    subtopologies: Vec<Vec<NodeId>>,
    repartitions: Vec<RepartitionDef>,
    stores: Vec<StoreDef>,
    globals: Vec<GlobalDef>,
    /// Nodes whose input topics must have equal partition counts.
    copartitions: Vec<Vec<NodeId>>,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology").field("description", &self.describe().to_string()).finish()
    }
}

impl Topology {
    /// A topology with no nodes (it cannot run until sources are added).
    pub(crate) fn empty() -> Topology {
        Topology {
            nodes: Vec::new(),
            children: Vec::new(),
            subtopologies: Vec::new(),
            repartitions: Vec::new(),
            stores: Vec::new(),
            globals: Vec::new(),
            copartitions: Vec::new(),
        }
    }

    /// The graph this topology was built from, to add nodes to.
    pub(crate) fn to_graph(&self) -> Graph {
        Graph::from_parts(
            self.nodes.clone(),
            self.repartitions.clone(),
            self.stores.clone(),
            self.globals.clone(),
            self.copartitions.clone(),
        )
    }

    /// Checks the topology can run (it has sources, names are unique).
    pub(crate) fn check(&self) -> Result<(), StreamsError> {
        validate(&self.nodes)
    }

    pub(crate) fn from_graph(graph: Graph) -> Result<Self, StreamsError> {
        let Graph { nodes, repartitions, stores, globals, errors, copartitions, .. } = graph;
        if let Some(error) = errors.into_iter().next() {
            return Err(error);
        }
        validate(&nodes)?;
        for global in &globals {
            let read_by = nodes.iter().find(|n| {
                matches!(&n.kind, NodeKind::Source { topics } if topics.iter().any(|t| t.as_str() == global.topic))
            });
            if let Some(node) = read_by {
                return Err(StreamsError::TopicSourcedTwice {
                    topic: global.topic.clone(),
                    first: format!("global table {}", global.store),
                    second: node.name.clone(),
                });
            }
        }
        let mut children = vec![Vec::new(); nodes.len()];
        for (id, node) in nodes.iter().enumerate() {
            for &parent in &node.parents {
                children[parent].push(id);
            }
        }
        let subtopologies = connected_components(&nodes);
        Ok(Topology { nodes, children, subtopologies, repartitions, stores, globals, copartitions })
    }

    /// Groups of topics that must have the same number of partitions
    /// (the topics feeding the two sides of each join), for
    /// `application_id`.
    pub(crate) fn copartition_groups(&self, application_id: &str) -> Vec<Vec<String>> {
        self.copartitions
            .iter()
            .map(|group| {
                let mut topics = Vec::new();
                let mut stack: Vec<NodeId> = group.clone();
                let mut seen = std::collections::BTreeSet::new();
                while let Some(id) = stack.pop() {
                    if !seen.insert(id) {
                        continue;
                    }
                    let node = &self.nodes[id];
                    if let NodeKind::Source { topics: refs } = &node.kind {
                        topics.extend(refs.iter().map(|t| t.resolve(application_id)));
                    }
                    stack.extend(node.parents.iter().copied());
                }
                topics.sort();
                topics.dedup();
                topics
            })
            .collect()
    }

    /// Describes the sub-topologies and nodes; its `Display` prints like
    /// Kafka's `TopologyDescription`.
    pub fn describe(&self) -> TopologyDescription {
        let sizes = self.downstream_sizes();
        let order = |a: &NodeId, b: &NodeId| {
            sizes[*b].cmp(&sizes[*a]).then_with(|| self.nodes[*a].name.cmp(&self.nodes[*b].name))
        };
        let names = |mut ids: Vec<NodeId>| {
            ids.sort_by(order);
            ids.dedup();
            ids.into_iter().map(|id| self.nodes[id].name.clone()).collect::<Vec<_>>()
        };
        let subtopologies: Vec<SubtopologyDescription> = self
            .subtopologies
            .iter()
            .enumerate()
            .map(|(index, ids)| {
                let mut ids = ids.clone();
                ids.sort_by(order);
                let nodes = ids
                    .into_iter()
                    .map(|id| {
                        let node = &self.nodes[id];
                        NodeDescription {
                            name: node.name.clone(),
                            kind: describe_kind(&node.kind),
                            predecessors: names(node.parents.clone()),
                            successors: names(self.children[id].clone()),
                        }
                    })
                    .collect();
                SubtopologyDescription { id: index as u32, nodes }
            })
            .collect();
        let first = subtopologies.len() as u32;
        let globals = self
            .globals
            .iter()
            .enumerate()
            .map(|(i, g)| GlobalStoreDescription {
                id: first + i as u32,
                source: g.source.clone(),
                topic: g.topic.clone(),
                processor: g.processor.clone(),
                store: g.store.clone(),
            })
            .collect();
        TopologyDescription { subtopologies, globals }
    }

    /// Kafka's node "size": 1 plus the sizes of its children.
    fn downstream_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![1usize; self.nodes.len()];
        for id in (0..self.nodes.len()).rev() {
            sizes[id] += self.children[id].iter().map(|&c| sizes[c]).sum::<usize>();
        }
        sizes
    }

    /// The repartition topics to create for `application_id`.
    pub fn repartition_topics(&self, application_id: &str) -> Vec<RepartitionTopic> {
        self.repartitions
            .iter()
            .map(|r| RepartitionTopic {
                name: format!("{application_id}-{}", r.suffix),
                partitions: r.partitions,
            })
            .collect()
    }

    /// The changelog topics of the topology's state stores for
    /// `application_id`, to be created compacted. Each has as many
    /// partitions as the input of the sub-topology owning the store.
    pub fn changelog_topics(&self, application_id: &str) -> Vec<ChangelogTopic> {
        self.stores
            .iter()
            .map(|s| ChangelogTopic {
                name: changelog_topic(application_id, &s.name),
                store: s.name.clone(),
                retention_ms: s.segmenting.map(|seg| seg.retention.saturating_add(WINDOW_CHANGELOG_EXTRA_MS)),
            })
            .collect()
    }

    /// The sub-topology whose tasks hold store `name`.
    pub(crate) fn subtopology_of_store(&self, name: &str) -> Option<usize> {
        (0..self.subtopologies.len()).find(|&s| self.subtopology_stores(s).iter().any(|n| n == name))
    }

    /// Whether store `name` has an internal layout (see `StoreDef`).
    pub(crate) fn store_is_internal(&self, name: &str) -> bool {
        self.stores.iter().any(|s| s.name == name && s.internal)
    }

    /// Names of every store of the topology (global stores included).
    pub(crate) fn store_names(&self) -> Vec<String> {
        self.stores
            .iter()
            .map(|s| s.name.clone())
            .chain(self.globals.iter().map(|g| g.store.clone()))
            .collect()
    }

    /// Names of the state stores of sub-topology `subtopology`, in
    /// topological order.
    pub(crate) fn subtopology_stores(&self, subtopology: usize) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for &id in self.subtopologies.get(subtopology).into_iter().flatten() {
            if let NodeKind::Processor { stores } = &self.nodes[id].kind {
                for store in stores {
                    if !names.contains(store) {
                        names.push(store.clone());
                    }
                }
            }
        }
        names
    }

    /// Every topic the topology reads (user and repartition topics), for
    /// `application_id`.
    pub fn source_topics(&self, application_id: &str) -> Vec<String> {
        (0..self.subtopologies.len())
            .flat_map(|s| self.subtopology_source_topics(s, application_id))
            .collect()
    }

    /// Number of sub-topologies.
    pub fn subtopology_count(&self) -> usize {
        self.subtopologies.len()
    }

    /// The topics sub-topology `subtopology` reads, for `application_id`.
    pub(crate) fn subtopology_source_topics(&self, subtopology: usize, application_id: &str) -> Vec<String> {
        self.subtopologies
            .get(subtopology)
            .into_iter()
            .flatten()
            .filter_map(|&id| match &self.nodes[id].kind {
                NodeKind::Source { topics } => Some(topics.iter().map(|t| t.resolve(application_id))),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Builds one task: sub-topology `subtopology` on input partition
    /// `partition`, for the application `config` describes. Its stores are
    /// opened (created if needed) in
    /// `<state.dir>/<application.id>/<task>/<store>`, all charged to the
    /// process's shared RocksDB memory; each store's record cache gets an
    /// equal share of `statestore.cache.max.bytes` (the runtime can
    /// re-split it with [`StreamTask::set_cache_max_bytes`]).
    ///
    /// Nodes are built children-first (node ids grow from parents to
    /// children, so descending id order is a reverse topological order).
    #[cfg(test)]
    pub(crate) fn build_task(
        &self,
        subtopology: usize,
        partition: i32,
        config: &StreamsConfig,
    ) -> Result<StreamTask, StreamsError> {
        self.build_task_with_globals(subtopology, partition, config, GlobalStores::none())
    }

    /// The global tables' (store, topic) pairs.
    pub(crate) fn global_stores(&self) -> Vec<(String, String)> {
        self.globals.iter().map(|g| (g.store.clone(), g.topic.clone())).collect()
    }

    /// The topics global tables read.
    pub fn global_topics(&self) -> Vec<String> {
        self.globals.iter().map(|g| g.topic.clone()).collect()
    }

    /// [`build_task`](Self::build_task) for an instance with global stores.
    pub(crate) fn build_task_with_globals(
        &self,
        subtopology: usize,
        partition: i32,
        config: &StreamsConfig,
        globals: &GlobalStores,
    ) -> Result<StreamTask, StreamsError> {
        let application_id = config.application_id();
        let ids = self.subtopologies.get(subtopology).ok_or_else(|| StreamsError::Internal {
            node: String::new(),
            reason: format!("no sub-topology {subtopology}"),
        })?;
        let id = TaskId { subtopology: subtopology as u32, partition };
        let store_names = self.subtopology_stores(subtopology);
        let named: Vec<(String, String)> =
            store_names.iter().map(|n| (n.clone(), changelog_topic(application_id, n))).collect();
        let mut ctx = BuildContext {
            application_id,
            globals,
            stores: &named,
            listeners: Vec::new(),
            managed: Vec::new(),
        };
        ctx.listeners.resize_with(named.len(), || None);
        let mut stores = TaskStores::default();
        let task_dir = config.state_dir().join(application_id).join(id.to_string());
        if !named.is_empty() {
            let memory = SharedMemory::shared(config.memory_max_bytes());
            // A join's two window stores share one window cache.
            let mut window_caches: HashMap<&str, usize> = HashMap::new();
            for (name, changelog) in &named {
                let def = self.stores.iter().find(|s| &s.name == name);
                let caching = def.is_none_or(|s| s.caching);
                let segmenting = def.and_then(|s| s.segmenting);
                let rocks =
                    RocksStore::open_segmented(name, &task_dir.join(name), Arc::clone(&memory), segmenting)?;
                // Budgets are set below, once every store is known.
                let budget = 0;
                let cache = match (def, segmenting) {
                    (Some(StoreDef { window_cache: Some((join, side)), .. }), Some(segments)) => {
                        let cache = *window_caches.entry(join.as_str()).or_insert_with(|| {
                            stores.windows.push(WindowCache::new(budget, i64::MAX, i64::MIN));
                            stores.windows.len() - 1
                        });
                        // Entries written before this start (on disk)
                        // are RocksDB's alone.
                        let complete_from = rocks.segments_end().unwrap_or(i64::MIN);
                        stores.windows[cache].open_side(*side, segments.retention, complete_from);
                        StoreCache::Windows(WindowSide { cache, side: *side })
                    }
                    (Some(d), _) if d.ranged => StoreCache::Records(RecordCache::new_ordered(budget)),
                    (_, Some(_)) => StoreCache::Records(RecordCache::new(budget)),
                    _ => StoreCache::Records(RecordCache::new_keeping(budget)),
                };
                let value_offset = if def.is_some_and(|s| s.timestamped) { 8 } else { 0 };
                stores.slots.push(StoreSlot {
                    rocks,
                    cache,
                    changelog: changelog.clone(),
                    value_offset,
                    last_miss: Default::default(),
                    typed: def.and_then(|d| d.typed.clone()),
                    caching,
                });
            }
            stores.set_cache_max_bytes(usize::try_from(config.cache_max_bytes()).unwrap_or(usize::MAX));
        }
        // Built nodes waiting for their parents: one handle per parent edge.
        let mut built: HashMap<NodeId, Vec<Erased>> = HashMap::new();
        let mut sources = Vec::new();
        for &id in ids.iter().rev() {
            let node = &self.nodes[id];
            let mut children = Vec::with_capacity(self.children[id].len());
            for child in &self.children[id] {
                let handle =
                    built.get_mut(child).and_then(Vec::pop).ok_or_else(|| StreamsError::Internal {
                        node: node.name.clone(),
                        reason: format!("child {} was not built first", self.nodes[*child].name),
                    })?;
                children.push(handle);
            }
            let processor = (node.factory)(&mut ctx, children)?;
            match &node.kind {
                NodeKind::Source { topics } => {
                    let source = processor.downcast::<Box<dyn SourceProcessor>>().map_err(|_| {
                        StreamsError::Internal {
                            node: node.name.clone(),
                            reason: "source factory built something else".to_string(),
                        }
                    })?;
                    let topics = topics.iter().map(|t| t.resolve(application_id)).collect();
                    sources.push((topics, *source));
                }
                _ if node.parents.len() > 1 => {
                    built.insert(id, (node.share)(&node.name, processor, node.parents.len())?);
                }
                _ => {
                    built.insert(id, vec![processor]);
                }
            }
        }
        let task = StreamTask::new(id, sources).with_managed(std::mem::take(&mut ctx.managed));
        if named.is_empty() {
            return Ok(task);
        }
        let listeners = ctx.listeners;
        Ok(task.with_stores(stores, listeners, task_dir))
    }
}

fn describe_kind(kind: &NodeKind) -> NodeDescriptionKind {
    match kind {
        NodeKind::Source { topics } => {
            NodeDescriptionKind::Source { topics: topics.iter().map(|t| t.as_str().to_string()).collect() }
        }
        NodeKind::Processor { stores } => NodeDescriptionKind::Processor { stores: stores.clone() },
        NodeKind::Sink { target: SinkTarget::Topic(topic) } => {
            NodeDescriptionKind::Sink { topic: Some(topic.as_str().to_string()) }
        }
        NodeKind::Sink { target: SinkTarget::Dynamic } => NodeDescriptionKind::Sink { topic: None },
    }
}

fn validate(nodes: &[NodeDef]) -> Result<(), StreamsError> {
    if !nodes.iter().any(|n| matches!(n.kind, NodeKind::Source { .. })) {
        return Err(StreamsError::NoSources);
    }
    let mut names: HashMap<&str, NodeId> = HashMap::new();
    let mut readers: HashMap<&str, &str> = HashMap::new();
    for (id, node) in nodes.iter().enumerate() {
        if names.insert(&node.name, id).is_some() {
            return Err(StreamsError::DuplicateName { name: node.name.clone() });
        }
        match &node.kind {
            NodeKind::Source { topics } => {
                if topics.is_empty() {
                    return Err(StreamsError::NoTopics { node: node.name.clone() });
                }
                for topic in topics {
                    if topic.as_str().is_empty() {
                        return Err(StreamsError::EmptyTopicName { node: node.name.clone() });
                    }
                    if let Some(first) = readers.insert(topic.as_str(), &node.name) {
                        return Err(StreamsError::TopicSourcedTwice {
                            topic: topic.as_str().to_string(),
                            first: first.to_string(),
                            second: node.name.clone(),
                        });
                    }
                }
            }
            NodeKind::Sink { target: SinkTarget::Topic(topic) } if topic.as_str().is_empty() => {
                return Err(StreamsError::EmptyTopicName { node: node.name.clone() });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Groups nodes connected by parent edges or a shared store (union-find); groups are numbered
/// by their first node, so sub-topology ids follow the order the DSL built
/// them in.
fn connected_components(nodes: &[NodeDef]) -> Vec<Vec<NodeId>> {
    fn find(roots: &mut [NodeId], mut x: NodeId) -> NodeId {
        while roots[x] != x {
            roots[x] = roots[roots[x]];
            x = roots[x];
        }
        x
    }
    let mut roots: Vec<NodeId> = (0..nodes.len()).collect();
    let mut store_users: HashMap<&str, NodeId> = HashMap::new();
    for (id, node) in nodes.iter().enumerate() {
        let mut linked: Vec<NodeId> = node.parents.clone();
        if let NodeKind::Processor { stores } = &node.kind {
            // Nodes sharing a store must run in one task.
            linked.extend(stores.iter().map(|s| *store_users.entry(s.as_str()).or_insert(id)));
        }
        for other in linked {
            let (a, b) = (find(&mut roots, id), find(&mut roots, other));
            roots[a.max(b)] = a.min(b);
        }
    }
    let mut group_of_root: HashMap<NodeId, usize> = HashMap::new();
    let mut groups: Vec<Vec<NodeId>> = Vec::new();
    for id in 0..nodes.len() {
        let root = find(&mut roots, id);
        let group = *group_of_root.entry(root).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[group].push(id);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    fn node(name: &str, kind: NodeKind, parents: Vec<NodeId>) -> NodeDef {
        let factory: crate::graph::Factory =
            Arc::new(|_ctx: &mut BuildContext<'_>, _children: Vec<Erased>| {
                Err(StreamsError::Internal {
                    node: String::new(),
                    reason: "not built in this test".to_string(),
                })
            });
        NodeDef { name: name.to_string(), kind, parents, factory, share: crate::graph::share::<(), ()> }
    }

    #[test]
    fn nodes_sharing_a_store_belong_to_one_subtopology() {
        let source =
            |topic: &str| NodeKind::Source { topics: vec![crate::graph::TopicRef::Named(topic.to_string())] };
        let uses = |store: &str| NodeKind::Processor { stores: vec![store.to_string()] };
        let nodes = vec![
            node("src-a", source("a"), vec![]),
            node("src-b", source("b"), vec![]),
            node("src-c", source("c"), vec![]),
            node("p-a", uses("shared"), vec![0]),
            node("p-b", uses("shared"), vec![1]),
            node("p-c", uses("own"), vec![2]),
        ];
        assert_eq!(connected_components(&nodes), vec![vec![0, 1, 3, 4], vec![2, 5]]);
    }

    #[test]
    fn topologies_are_shared_across_threads_and_tasks_move_between_them() {
        assert_send_sync::<Topology>();
        assert_send::<StreamTask>();
    }
}
