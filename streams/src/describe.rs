//! [`TopologyDescription`]: what [`Topology::describe`](crate::Topology::describe)
//! returns, printed exactly like Kafka's `TopologyDescription`.

use std::fmt;

/// The sub-topologies of a topology and their nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyDescription {
    pub(crate) subtopologies: Vec<SubtopologyDescription>,
    pub(crate) globals: Vec<GlobalStoreDescription>,
}

/// A global table's store, its source and the processor updating it
/// (Kafka's `GlobalStore` description). Global stores get no tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalStoreDescription {
    pub(crate) id: u32,
    pub(crate) source: String,
    pub(crate) topic: String,
    pub(crate) processor: String,
    pub(crate) store: String,
}

impl GlobalStoreDescription {
    /// The sub-topology number, after the task-generating ones.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// The store's name.
    pub fn store(&self) -> &str {
        &self.store
    }
    /// The topic the store copies.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

impl fmt::Display for GlobalStoreDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Sub-topology: {} for global store (will not generate tasks)", self.id)?;
        writeln!(f, "    Source: {} (topics: [{}])\n      --> {}", self.source, self.topic, self.processor)?;
        writeln!(
            f,
            "    Processor: {} (stores: [{}])\n      --> none\n      <-- {}",
            self.processor, self.store, self.source
        )?;
        writeln!(f)
    }
}

impl TopologyDescription {
    /// Sub-topologies by id (0, 1, ...).
    pub fn subtopologies(&self) -> &[SubtopologyDescription] {
        &self.subtopologies
    }

    /// The global stores, numbered after the sub-topologies.
    pub fn global_stores(&self) -> &[GlobalStoreDescription] {
        &self.globals
    }
}

/// One sub-topology: a connected part of the graph, run as one task per
/// input partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtopologyDescription {
    pub(crate) id: u32,
    pub(crate) nodes: Vec<NodeDescription>,
}

impl SubtopologyDescription {
    /// The sub-topology's id (the first part of its task ids).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Nodes in Kafka's order: larger downstream graph first, then by name.
    pub fn nodes(&self) -> &[NodeDescription] {
        &self.nodes
    }

    /// The node called `name`, if it is in this sub-topology.
    pub fn node(&self, name: &str) -> Option<&NodeDescription> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// One node: its name, role, and neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDescription {
    pub(crate) name: String,
    pub(crate) kind: NodeDescriptionKind,
    pub(crate) predecessors: Vec<String>,
    pub(crate) successors: Vec<String>,
}

impl NodeDescription {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Source, processor or sink, with its topics or stores.
    pub fn kind(&self) -> &NodeDescriptionKind {
        &self.kind
    }
    /// Names of the nodes sending to this one.
    pub fn predecessors(&self) -> &[String] {
        &self.predecessors
    }
    /// Names of the nodes this one sends to.
    pub fn successors(&self) -> &[String] {
        &self.successors
    }
}

/// The role of a described node. Repartition topics appear without the
/// application id prefix, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeDescriptionKind {
    /// Reads topics.
    Source {
        /// The topics read.
        topics: Vec<String>,
    },
    /// Transforms records.
    Processor {
        /// State stores the processor uses.
        stores: Vec<String>,
    },
    /// Writes a topic.
    Sink {
        /// The topic, or `None` when a closure picks it per record.
        topic: Option<String>,
    },
}

struct Names<'a>(&'a [String]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&self.0.join(", "))
        }
    }
}

/// Java's `Set.toString()`: `[a, b]`.
struct JavaSet<'a>(&'a [String]);

impl fmt::Display for JavaSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0.join(", "))
    }
}

impl fmt::Display for NodeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (succ, pred) = (Names(&self.successors), Names(&self.predecessors));
        match &self.kind {
            NodeDescriptionKind::Source { topics } => {
                write!(f, "Source: {} (topics: {})\n      --> {succ}", self.name, JavaSet(topics))
            }
            NodeDescriptionKind::Processor { stores } => write!(
                f,
                "Processor: {} (stores: {})\n      --> {succ}\n      <-- {pred}",
                self.name,
                JavaSet(stores)
            ),
            NodeDescriptionKind::Sink { topic: Some(topic) } => {
                write!(f, "Sink: {} (topic: {topic})\n      <-- {pred}", self.name)
            }
            NodeDescriptionKind::Sink { topic: None } => {
                write!(f, "Sink: {} (extractor class: topic chooser)\n      <-- {pred}", self.name)
            }
        }
    }
}

impl fmt::Display for SubtopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Sub-topology: {}", self.id)?;
        for node in &self.nodes {
            writeln!(f, "    {node}")?;
        }
        writeln!(f)
    }
}

/// Kafka's layout, byte for byte: `"Topologies:\n "`, then each
/// sub-topology indented by two spaces and followed by a blank line.
impl fmt::Display for TopologyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Topologies:\n ")?;
        for subtopology in &self.subtopologies {
            write!(f, "  {subtopology}")?;
        }
        for global in &self.globals {
            write!(f, "  {global}")?;
        }
        Ok(())
    }
}
