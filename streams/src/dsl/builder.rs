//! [`StreamsBuilder`]: the entry point of the DSL.

use std::rc::Rc;
use std::sync::Arc;

use super::{StreamsBuilder, Topics};
use crate::dsl::GlobalKTable;
use crate::dsl::KStream;
use crate::dsl::KTable;
use crate::graph::TopicRef;
use crate::options::{Consumed, Materialized};
use crate::source_sink::SourceNode;
use crate::topology::Topology;
use crate::StreamsError;

impl std::fmt::Debug for StreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsBuilder").field("nodes", &self.graph.borrow().nodes.len()).finish()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topics` (one name or several), decoded
    /// with `consumed`'s serdes.
    ///
    /// Invalid topics (none, an empty name, a topic another source already
    /// reads) make [`build`](StreamsBuilder::build) fail.
    pub fn stream<K, V>(&mut self, topics: impl Into<Topics>, consumed: Consumed<K, V>) -> KStream<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        let Consumed { key_serde, value_serde, name } = consumed;
        let topics = topics.into().0.into_iter().map(TopicRef::Named).collect();
        let mut graph = self.graph.borrow_mut();
        let name = graph.name_or(name, "KSTREAM-SOURCE");
        let node = graph.add_source::<K, V, _, _>(name, topics, move |out| SourceNode {
            key_serde: Arc::clone(&key_serde),
            value_serde: Arc::clone(&value_serde),
            out,
        });
        drop(graph);
        KStream::new(Rc::clone(&self.graph), node)
    }

    /// A table of the latest value per key of `topic`, materialized in a
    /// RocksDB store (named by `materialized`, else
    /// `<topic>-STATE-STORE-<n>`). A record with a null value (tombstone)
    /// deletes its key. Serdes not set on `materialized` come from
    /// `consumed`.
    pub fn table<K, V>(
        &mut self,
        topic: impl Into<String>,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V>
    where
        K: Clone + Send + 'static,
        V: Clone + Send + 'static,
    {
        crate::dsl::kgrouped::table(&self.graph, topic.into(), consumed, materialized)
    }

    /// A table of `topic` held in full by every instance (all partitions),
    /// for joins with [`KStream::join_global`] by any key. Its store is
    /// named by `materialized` (else `<topic>-STATE-STORE-<n>`) and is not
    /// changelogged: the topic is its log. A tombstone deletes its key.
    pub fn global_table<K, V>(
        &mut self,
        topic: impl Into<String>,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V>
    where
        K: 'static,
        V: 'static,
    {
        crate::dsl::global::global_table(&self.graph, topic.into(), consumed, materialized)
    }

    /// Validates the graph and returns the topology. [`KStream`] handles
    /// kept after this point are detached: operators on them add nothing.
    ///
    /// # Errors
    ///
    /// [`StreamsError`] naming the problem: no source
    /// ([`NoSources`](StreamsError::NoSources)), a node name used twice, an
    /// empty topic name, a topic read by two sources, a repartition topic
    /// with zero partitions, or a merge of streams from different builders.
    pub fn build(self) -> Result<Topology, StreamsError> {
        let graph = std::mem::take(&mut *self.graph.borrow_mut());
        Topology::from_graph(graph)
    }
}

impl From<&str> for Topics {
    fn from(topic: &str) -> Self {
        Topics(vec![topic.to_string()])
    }
}

impl From<String> for Topics {
    fn from(topic: String) -> Self {
        Topics(vec![topic])
    }
}

impl From<&[&str]> for Topics {
    fn from(topics: &[&str]) -> Self {
        Topics(topics.iter().map(|t| t.to_string()).collect())
    }
}

impl<const N: usize> From<[&str; N]> for Topics {
    fn from(topics: [&str; N]) -> Self {
        Topics(topics.iter().map(|t| t.to_string()).collect())
    }
}

impl From<Vec<String>> for Topics {
    fn from(topics: Vec<String>) -> Self {
        Topics(topics)
    }
}

impl From<Vec<&str>> for Topics {
    fn from(topics: Vec<&str>) -> Self {
        Topics(topics.into_iter().map(str::to_string).collect())
    }
}
