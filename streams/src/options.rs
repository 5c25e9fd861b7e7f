//! Parameter objects of the DSL, named like Kafka's: [`Consumed`],
//! [`Produced`], [`Repartitioned`], [`Named`], [`Branched`].

use std::fmt;
use std::sync::Arc;

use crate::serdes::Serde;

/// How a stream reads its topics: key and value serdes, and optionally the
/// source node's name.
pub struct Consumed<K, V> {
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Consumed<K, V> {
    /// Reads keys and values with these serdes.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Consumed { key_serde: Arc::new(key_serde), value_serde: Arc::new(value_serde), name: None }
    }

    /// Names the source node (instead of `KSTREAM-SOURCE-<n>`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How a stream writes a topic: key and value serdes, and optionally the sink
/// node's name. Records go to the producer's default partitioner.
pub struct Produced<K, V> {
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Produced<K, V> {
    /// Writes keys and values with these serdes.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Produced { key_serde: Arc::new(key_serde), value_serde: Arc::new(value_serde), name: None }
    }

    /// Names the sink node (instead of `KSTREAM-SINK-<n>`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How [`KStream::repartition`](crate::KStream::repartition) writes and reads
/// its internal topic `<application.id>-<name>-repartition`.
pub struct Repartitioned<K, V> {
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<u32>,
}

impl<K, V> Repartitioned<K, V> {
    /// Repartitions with these serdes, a generated name and the runtime's
    /// choice of partition count.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Repartitioned {
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            name: None,
            partitions: None,
        }
    }

    /// Names the topic `<application.id>-<name>-repartition` and the nodes
    /// `<name>-repartition-sink` / `<name>-repartition-source`. Without a
    /// name the base is a generated `KSTREAM-REPARTITION-<n>`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Number of partitions of the repartition topic.
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}

impl<K, V> fmt::Debug for Consumed<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumed").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<K, V> fmt::Debug for Produced<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Produced").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<K, V> fmt::Debug for Repartitioned<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repartitioned")
            .field("name", &self.name)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// A name for the next operator's node, instead of a generated one; see
/// [`KStream::named`](crate::KStream::named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named(pub(crate) String);

impl Named {
    /// The name `name` (Kafka's `Named.as`).
    pub fn as_(name: impl Into<String>) -> Self {
        Named(name.into())
    }
}

/// Names a branch of [`KStream::split`](crate::KStream::split). The branch's
/// key in the returned map (and its node's name) is the split's prefix
/// followed by the branch name, or by the branch's position (from 1; `0`
/// for the default branch) when unnamed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branched(pub(crate) Option<String>);

impl Branched {
    /// A branch named `name` (Kafka's `Branched.as`).
    pub fn as_(name: impl Into<String>) -> Self {
        Branched(Some(name.into()))
    }
}

/// How a grouping repartitions: the serdes of the grouped key and value
/// (used for the repartition topic and as the store's defaults) and
/// optionally the repartition topic's base name (Kafka's `Grouped`).
pub struct Grouped<K, V> {
    pub(crate) key_serde: Arc<dyn Serde<K>>,
    pub(crate) value_serde: Arc<dyn Serde<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> Grouped<K, V> {
    /// Groups with these serdes.
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Grouped { key_serde: Arc::new(key_serde), value_serde: Arc::new(value_serde), name: None }
    }

    /// Names a repartition topic `<application.id>-<name>-repartition`
    /// (instead of one named after the aggregation's store).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K, V> Clone for Grouped<K, V> {
    fn clone(&self) -> Self {
        Grouped {
            key_serde: Arc::clone(&self.key_serde),
            value_serde: Arc::clone(&self.value_serde),
            name: self.name.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Grouped<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grouped").field("name", &self.name).finish_non_exhaustive()
    }
}

/// How a table or aggregation is stored (Kafka's `Materialized`): the
/// store's name and serdes, and whether its record cache is on.
///
/// Without a name the store gets a generated one
/// (`KSTREAM-AGGREGATE-STATE-STORE-0000000001`). Serdes not given here come
/// from the operation ([`Grouped`], [`Consumed`], or `i64` for `count`);
/// an operation whose result type has no known serde (`aggregate`,
/// `to_table`) needs [`Materialized::with_value_serde`].
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<Arc<dyn Serde<K>>>,
    pub(crate) value_serde: Option<Arc<dyn Serde<V>>>,
    pub(crate) caching: bool,
    pub(crate) retention: Option<std::time::Duration>,
    /// History retention of a versioned store.
    pub(crate) versioning: Option<std::time::Duration>,
}

impl<K, V> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized {
            name: None,
            key_serde: None,
            value_serde: None,
            caching: true,
            retention: None,
            versioning: None,
        }
    }
}

impl<K, V> Materialized<K, V> {
    /// A store with a generated name and the operation's serdes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store named `name` (Kafka's `Materialized.as`); its changelog is
    /// `<application.id>-<name>-changelog`.
    pub fn as_(name: impl Into<String>) -> Self {
        Materialized { name: Some(name.into()), ..Self::default() }
    }

    /// A store with these serdes (Kafka's `Materialized.with`).
    pub fn with(key_serde: impl Serde<K>, value_serde: impl Serde<V>) -> Self {
        Self::default().with_key_serde(key_serde).with_value_serde(value_serde)
    }

    /// Sets the key serde.
    pub fn with_key_serde(mut self, serde: impl Serde<K>) -> Self {
        self.key_serde = Some(Arc::new(serde));
        self
    }

    /// Sets the value serde.
    pub fn with_value_serde(mut self, serde: impl Serde<V>) -> Self {
        self.value_serde = Some(Arc::new(serde));
        self
    }

    /// Makes the store versioned (Kafka's
    /// `Stores.persistentVersionedKeyValueStore(name, historyRetention)`,
    /// KIP-889): every value of a key is kept with the time it became
    /// valid, for `history` behind stream time, so a stream-table join
    /// reads the table as of each stream record's timestamp. For
    /// [`StreamsBuilder::table`](crate::StreamsBuilder::table) only; see
    /// the semantics in [`KStream::join_table`](crate::KStream::join_table).
    pub fn with_versioning(mut self, history: std::time::Duration) -> Self {
        self.versioning = Some(history);
        self
    }

    /// Turns the record cache off: every record's updates are flushed and
    /// forwarded right after the record (updates to one key caused by one
    /// input record are still merged).
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }

    /// How long a windowed store keeps a window after its start (session
    /// stores: after its end). The default and the minimum is the window
    /// size plus grace (session stores: the gap plus grace); a shorter one
    /// fails `build()`. Ignored by key-value stores.
    pub fn with_retention(mut self, retention: std::time::Duration) -> Self {
        self.retention = Some(retention);
        self
    }
}

impl<K, V> fmt::Debug for Materialized<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Materialized")
            .field("name", &self.name)
            .field("caching", &self.caching)
            .finish_non_exhaustive()
    }
}
