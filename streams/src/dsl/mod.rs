//! The Streams DSL: [`StreamsBuilder`](crate::StreamsBuilder) and the
//! streams and tables it builds ([`KStream`](crate::KStream),
//! [`KTable`](crate::KTable), grouped and windowed streams, joins,
//! suppression), plus the Processor API's way into a topology. Every
//! operation adds nodes to the logical graph ([`crate::graph`]); a
//! [`Topology`](crate::Topology) is what they build.

pub(crate) mod builder;
pub(crate) mod fk_join;
pub(crate) mod global;
pub(crate) mod kgrouped;
pub(crate) mod kjoin;
pub(crate) mod ksliding;
pub(crate) mod kstream;
pub(crate) mod ktable;
pub(crate) mod ktable_join;
pub(crate) mod kwindowed;
pub(crate) mod processor_api;
pub(crate) mod suppress;
pub(crate) mod versioned;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::graph::{Graph, NodeId};
use crate::options::Grouped;
use crate::serdes::Serde;
use ktable::StoreSerdes;

/// Builds a [`Topology`] with the DSL: start with [`StreamsBuilder::stream`],
/// chain [`KStream`] operators, then [`StreamsBuilder::build`].
///
/// Nodes get Kafka-style names from a counter shared by the whole builder
/// (`KSTREAM-SOURCE-0000000000`, `KSTREAM-FILTER-0000000001`, ...) unless
/// named explicitly.
///
/// ```
/// use runnel_streams::{Consumed, Produced, Serdes, StreamsBuilder};
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
///     .filter(|_user, page| page.starts_with("/docs"))
///     .to("doc-clicks", Produced::with(Serdes::string(), Serdes::string()));
/// let topology = builder.build()?;
///
/// assert_eq!(
///     topology.describe().to_string(),
///     "Topologies:
///    Sub-topology: 0
///     Source: KSTREAM-SOURCE-0000000000 (topics: [clicks])
///       --> KSTREAM-FILTER-0000000001
///     Processor: KSTREAM-FILTER-0000000001 (stores: [])
///       --> KSTREAM-SINK-0000000002
///       <-- KSTREAM-SOURCE-0000000000
///     Sink: KSTREAM-SINK-0000000002 (topic: doc-clicks)
///       <-- KSTREAM-FILTER-0000000001
///
/// "
/// );
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
#[derive(Default)]
pub struct StreamsBuilder {
    pub(crate) graph: Rc<RefCell<Graph>>,
}

/// One or several topic names for [`StreamsBuilder::stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics(pub(crate) Vec<String>);

/// A stream of records with keys `K` and values `V`, as a handle into the
/// [`StreamsBuilder`](crate::StreamsBuilder) that created it.
///
/// Each operator adds a node to the builder's graph and returns a handle to
/// it; a handle may be used several times (each use is another child, and
/// records are cloned to each). Operators that can change the key (`map`,
/// `flat_map`, `select_key`, `process`) mark the result as needing a
/// repartition before a grouping or join, as Kafka Streams does.
///
/// Closures must be `Fn + Send + Sync + 'static`: a topology is instantiated
/// once per task and tasks run on several threads, sharing the closures.
///
/// ```
/// use runnel_streams::{Consumed, Produced, Serdes, StreamsBuilder};
///
/// let mut builder = StreamsBuilder::new();
/// let words = builder.stream::<String, String>("lines", Consumed::with(Serdes::string(), Serdes::string()));
/// words
///     .flat_map_values(|line| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
///     .filter(|_, word| word.len() > 3)
///     .select_key(|_, word| word.clone())
///     .to("long-words", Produced::with(Serdes::string(), Serdes::string()));
/// let topology = builder.build()?;
/// assert_eq!(topology.describe().subtopologies().len(), 1);
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
pub struct KStream<K, V> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) node: NodeId,
    pub(crate) repartition_required: bool,
    pub(crate) next_name: Option<String>,
    _types: PhantomData<fn() -> (K, V)>,
}

/// A table: the latest value per key, updated by a changelog stream (Kafka's
/// `KTable`).
///
/// Tables come from [`StreamsBuilder::table`](crate::StreamsBuilder::table),
/// [`KStream::to_table`] and aggregations ([`KGroupedStream`](crate::KGroupedStream),
/// [`KGroupedTable`]). Between its nodes a table forwards [`Change`]s (new
/// and old value of a key), so `group_by` aggregations can subtract what a
/// key contributed before. Materialized tables forward when their record
/// cache flushes (on commit, or when the cache is full): several updates to
/// a key between two commits reach downstream as one.
///
/// ```
/// use runnel_streams::{
///     Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver,
/// };
///
/// // user -> region; count users per region.
/// let mut builder = StreamsBuilder::new();
/// builder
///     .table::<String, String>("user-regions", Consumed::with(Serdes::string(), Serdes::string()), Materialized::new())
///     .group_by(|_user, region| (region.clone(), 1i64), Grouped::with(Serdes::string(), Serdes::i64()))
///     .count(Materialized::as_("users-per-region"))
///     .to_stream()
///     .to("region-counts", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("regions"))?;
/// let users = driver.create_input_topic("user-regions", Serdes::string(), Serdes::string());
/// let counts = driver.create_output_topic("region-counts", Serdes::string(), Serdes::nullable(Serdes::i64()));
///
/// users.pipe_input("alice".into(), "EU".into())?;
/// users.pipe_input("bob".into(), "EU".into())?;
/// users.pipe_input("alice".into(), "US".into())?; // alice moves: EU -1, US +1
/// assert_eq!(
///     counts.read_key_values_to_list()?,
///     vec![
///         ("EU".to_string(), Some(1)),
///         ("EU".to_string(), Some(2)),
///         ("EU".to_string(), Some(1)),
///         ("US".to_string(), Some(1)),
///     ]
/// );
/// let store = driver.get_key_value_store("users-per-region", Serdes::string(), Serdes::i64())?;
/// assert_eq!(store.get(&"EU".to_string())?, Some(1));
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
pub struct KTable<K, V> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) node: NodeId,
    /// The store holding the table, when materialized.
    pub(crate) store: Option<String>,
    /// The serdes of the table's keys and values, when known (materialized
    /// tables, windowed ones included): what `suppress` buffers with.
    pub(crate) serdes: Option<StoreSerdes<K, V>>,
    /// The grace period of the windowed aggregation this table is the
    /// result of, in ms.
    pub(crate) grace: Option<i64>,
    /// For a versioned table: its history retention in ms (its store holds
    /// versions, read through a `TableReader`).
    pub(crate) versioned: Option<i64>,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

/// A stream grouped by key, ready to aggregate (Kafka's `KGroupedStream`).
///
/// Each aggregation keeps its result per key in a RocksDB store and
/// returns it as a [`KTable`]. Updates are forwarded when the store's
/// record cache flushes: on commit (after every input record in the
/// [`TopologyTestDriver`](crate::TopologyTestDriver)) or when the cache is
/// full.
///
/// ```
/// use runnel_streams::{
///     Consumed, Grouped, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver,
/// };
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("lines", Consumed::with(Serdes::string(), Serdes::string()))
///     .flat_map_values(|line| line.split_whitespace().map(str::to_string).collect::<Vec<_>>())
///     .group_by(|_, word| word.clone(), Grouped::with(Serdes::string(), Serdes::string()))
///     .count(Materialized::as_("word-counts"))
///     .to_stream()
///     .to("counts", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
/// let topology = builder.build()?;
/// assert_eq!(topology.repartition_topics("wc")[0].name, "wc-word-counts-repartition");
/// assert_eq!(topology.changelog_topics("wc")[0].name, "wc-word-counts-changelog");
///
/// let driver = TopologyTestDriver::new(topology, StreamsConfig::new("wc"))?;
/// let lines = driver.create_input_topic("lines", Serdes::string(), Serdes::string());
/// let counts = driver.create_output_topic("counts", Serdes::string(), Serdes::nullable(Serdes::i64()));
/// lines.pipe_input("".into(), "a b a".into())?;
/// // One input record: "a" was updated twice, merged in the cache.
/// assert_eq!(counts.read_key_values_to_list()?, vec![("a".into(), Some(2)), ("b".into(), Some(1))]);
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
pub struct KGroupedStream<K, V> {
    pub(crate) graph: Rc<RefCell<Graph>>,
    pub(crate) node: NodeId,
    pub(crate) repartition_required: bool,
    pub(crate) grouped: Grouped<K, V>,
}

/// A table re-grouped by [`KTable::group_by`], ready to aggregate (Kafka's
/// `KGroupedTable`). Each table update reaches the aggregation as a
/// subtraction of the old value from its old group and an addition of the
/// new value to its new group, through a repartition topic.
///
/// ```
/// use runnel_streams::{
///     Consumed, Grouped, Materialized, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver,
/// };
///
/// // account -> (owner, balance) as "owner:balance"; total balance per owner.
/// let mut builder = StreamsBuilder::new();
/// builder
///     .table::<String, String>("accounts", Consumed::with(Serdes::string(), Serdes::string()), Materialized::new())
///     .group_by(
///         |_account, v| {
///             let (owner, balance) = v.split_once(':').unwrap();
///             (owner.to_string(), balance.parse::<i64>().unwrap())
///         },
///         Grouped::with(Serdes::string(), Serdes::i64()),
///     )
///     .aggregate(|| 0i64, |_, v, sum| sum + v, |_, v, sum| sum - v, Materialized::as_("balances").with_value_serde(Serdes::i64()));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("bank"))?;
/// let accounts = driver.create_input_topic("accounts", Serdes::string(), Serdes::string());
/// accounts.pipe_input("acc-1".into(), "ann:100".into())?;
/// accounts.pipe_input("acc-2".into(), "ann:50".into())?;
/// accounts.pipe_input("acc-1".into(), "bob:70".into())?; // acc-1 changes owner and balance
/// let balances = driver.get_key_value_store("balances", Serdes::string(), Serdes::i64())?;
/// assert_eq!(balances.all()?, vec![("ann".to_string(), 50), ("bob".to_string(), 70)]);
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
pub struct KGroupedTable<K, V> {
    graph: Rc<RefCell<Graph>>,
    node: NodeId,
    grouped: Grouped<K, V>,
}

/// A table of the latest value per key of a topic, held in full by every
/// instance; from [`StreamsBuilder::global_table`](crate::StreamsBuilder::global_table).
/// Join streams with it through [`KStream::join_global`] and
/// [`KStream::left_join_global`].
///
/// ```
/// use runnel_streams::{Consumed, Materialized, Produced, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver};
///
/// let mut builder = StreamsBuilder::new();
/// let countries = builder.global_table::<String, String>(
///     "countries",
///     Consumed::with(Serdes::string(), Serdes::string()),
///     Materialized::as_("countries-store"),
/// );
/// builder
///     .stream::<String, String>("orders", Consumed::with(Serdes::string(), Serdes::string()))
///     // value = country code; join on it, whatever the order's key
///     .join_global(&countries, |_order, code| code.clone(), |code, name| format!("{code}: {name}"))
///     .to("orders-with-country", Produced::with(Serdes::string(), Serdes::string()));
/// let driver = TopologyTestDriver::new(builder.build()?, StreamsConfig::new("shop"))?;
/// let table = driver.create_input_topic("countries", Serdes::string(), Serdes::string());
/// let orders = driver.create_input_topic("orders", Serdes::string(), Serdes::string());
/// let out = driver.create_output_topic("orders-with-country", Serdes::string(), Serdes::string());
/// table.pipe_input("NL".into(), "Netherlands".into())?;
/// orders.pipe_input("o1".into(), "NL".into())?;
/// orders.pipe_input("o2".into(), "XX".into())?; // no match: an inner join drops it
/// assert_eq!(out.read_key_values_to_list()?, vec![("o1".to_string(), "NL: Netherlands".to_string())]);
/// # Ok::<(), runnel_streams::StreamsError>(())
/// ```
pub struct GlobalKTable<K, V> {
    graph: Rc<RefCell<Graph>>,
    store: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}
