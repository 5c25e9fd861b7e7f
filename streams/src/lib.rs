//! Runnel Streams: a typed stream-processing DSL in the spirit of Kafka
//! Streams. Build a [`Topology`] with [`StreamsBuilder`] and [`KStream`]
//! operators, test it with [`TopologyTestDriver`], and run it with
//! [`Streams`] on any `runnel-core` cluster (embedded or `kafka://`): one
//! task per input partition, spread over stream threads and, across
//! processes, by the consumer group protocol; RocksDB state restored from
//! changelog topics.
//!
//! # Design
//!
//! * **Typed at the edges, bytes in topics.** Source nodes decode keys and
//!   values with a [`Serde`]; sink nodes encode into reusable buffers and
//!   hand borrowed bytes to a [`RecordCollector`]. Built-in serdes use
//!   Kafka's byte layouts, so Java and Runnel applications share topics.
//! * **Nulls only where asked for.** Keys and values are plain `K` and `V`;
//!   a Kafka null reaching a plain serde is an error. Streams that carry
//!   nulls (tombstones, keyless topics) say so in their types with
//!   [`Serdes::nullable`] (`Option<T>`) or [`Serdes::unit`] (`()`).
//! * **Descriptions plus type-erased factories.** The builder records each
//!   node's name, role and parents with a factory closure monomorphized where
//!   the node's types were known. A task instantiates its sub-topology by
//!   calling factories children-first and downcasting each child (once) to
//!   `Box<dyn Processor<KO, VO>>`. Processing a record is then one virtual
//!   call per node, records move by value, and fan-out clones.
//! * **Sub-topologies cut at repartition topics.** Repartition topics are
//!   named `<application.id>-<name>-repartition`, resolved when the topology
//!   is bound to an application ([`Topology::repartition_topics`]).
//! * **State lives in the task.** Aggregations and tables
//!   ([`KGroupedStream`], [`KTable`]) keep RocksDB stores owned by the task
//!   and reached through [`ProcessorContext`] by an index resolved at task
//!   build time. A per-store record cache merges updates per key; a flush
//!   (commit) writes RocksDB, the compacted changelog topic
//!   `<application.id>-<store>-changelog`, and forwards the merged results
//!   downstream, as Kafka does with caching on. All stores of a process
//!   share one RocksDB block cache (`statestore.memory.max.bytes`).
//!
//! * **The runtime is a client like any other.** [`Streams`] uses only
//!   `runnel-core`'s client API (consumers, a producer, the admin client),
//!   so the same application runs embedded or against a Kafka-compatible
//!   cluster; its producer is the [`RecordCollector`] of every task.
//!
//! * **Joins.** Stream-stream joins ([`KStream::join`], `left_join`,
//!   `outer_join` in [`JoinWindows`]) keep both sides in changelogged
//!   window stores and follow Kafka's semantics since 3.1: a left or outer
//!   result with a missing side is emitted only once its window closed.
//!   Joined topics must be co-partitioned: a side whose key changed is
//!   repartitioned, and different partition counts fail
//!   [`Streams::start`] naming both topics. Stream-table joins
//!   ([`KStream::join_table`], [`KStream::left_join_table`]) look the
//!   table up when the stream record arrives. [`GlobalKTable`] joins too.
//!
//! Not yet here: versioned tables (a stream-table join as of the record's
//! timestamp), table-table and foreign-key joins, suppression, interactive
//! queries and exactly-once processing; those are open issues.
//!
//! # Layers
//!
//! Modules call only downward; `tests/end_to_end/layering.rs` at the
//! workspace root fails on a cycle between modules (unit tests aside).
//!
//! | layer | modules |
//! | --- | --- |
//! | data | `record`, `serdes`, `window` (window types and their serdes), `change`, `duration`, `error`, `config`, `options`, `metrics` |
//! | state | `store` (RocksDB stores, record and window caches, changelogs, checkpoints) |
//! | processing | `processor` (the `Processor` trait, its context, flush listeners, typed store handles, Processor API nodes as tasks hold them) |
//! | nodes | `nodes`, `source_sink`, `stateful` (the processors the DSL uses) |
//! | graph | `graph` (the logical graph and its factories) |
//! | tasks | `task`, `topology` |
//! | DSL | `dsl`: the types the DSL returns (`KStream`, `KTable`, grouped streams, `StreamsBuilder`) are declared in `dsl` itself, since they return each other; their operations live in its child modules |
//! | runtime | `runtime` (stream threads, rebalancing, interactive queries), `test_driver`, `describe` |
//!
//! # Example
//!
//! ```
//! use runnel_streams::{
//!     Consumed, Produced, Repartitioned, Serdes, StreamsBuilder, StreamsConfig, TopologyTestDriver,
//! };
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct Click {
//!     page: String,
//!     country: String,
//! }
//!
//! let mut builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, Click>("clicks", Consumed::with(Serdes::string(), Serdes::json()))
//!     .filter(|_user, click| click.country == "NL")
//!     .select_key(|_user, click| click.page.clone())
//!     .repartition(Repartitioned::with(Serdes::string(), Serdes::json()).name("by-page"))
//!     .map_values(|click: Click| click.country)
//!     .to("nl-clicks-by-page", Produced::with(Serdes::string(), Serdes::string()));
//! let topology = builder.build()?;
//! assert_eq!(topology.repartition_topics("dash")[0].name, "dash-by-page-repartition");
//!
//! let driver = TopologyTestDriver::new(topology, StreamsConfig::new("dash"))?;
//! let clicks = driver.create_input_topic("clicks", Serdes::string(), Serdes::json());
//! let out = driver.create_output_topic("nl-clicks-by-page", Serdes::string(), Serdes::string());
//! clicks.pipe_input("u1".into(), Click { page: "/docs".into(), country: "NL".into() })?;
//! clicks.pipe_input("u2".into(), Click { page: "/blog".into(), country: "BE".into() })?;
//! assert_eq!(out.read_key_values_to_list()?, vec![("/docs".to_string(), "NL".to_string())]);
//! # Ok::<(), runnel_streams::StreamsError>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

mod change;
mod config;
mod describe;
mod dsl;
mod duration;
mod error;
mod graph;
mod metrics;
mod nodes;
mod options;
mod processor;
mod record;
mod runtime;
mod serdes;
mod source_sink;
mod stateful;
mod store;
mod task;
mod test_driver;
mod topology;
mod window;

pub use change::Change;
pub use config::StreamsConfig;
pub use describe::{
    GlobalStoreDescription, NodeDescription, NodeDescriptionKind, SubtopologyDescription, TopologyDescription,
};
pub use dsl::kjoin::{JoinWindows, Joined, StreamJoined};
pub use dsl::ksliding::SlidingWindowedKStream;
pub use dsl::kstream::BranchedKStream;
pub use dsl::kwindowed::{SessionWindowedKStream, TimeWindowedKStream};
pub use dsl::processor_api::StoreBuilder;
pub use dsl::suppress::{BufferConfig, EmitStrategy, Suppressed};
pub use dsl::{GlobalKTable, KGroupedStream, KGroupedTable, KStream, KTable, StreamsBuilder, Topics};
pub use error::{BoxError, StreamsError};
pub use metrics::StreamsMetrics;
pub use options::{Branched, Consumed, Grouped, Materialized, Named, Produced, Repartitioned};
pub use processor::KeyValueStoreRef;
pub use processor::{
    Forwarder, Processor, ProcessorContext, Punctuation, PunctuationType, ScheduleId, TaskId,
};
pub use record::{Headers, Record, RecordCollector, SinkRecord};
pub use runtime::{ErrorResponse, HostInfo, KeyQueryMetadata, StoreQueryParameters, Streams, StreamsState};
pub use serdes::{
    ByteArraySerde, BytesSerde, F64Serde, I32Serde, I64Serde, JsonSerde, Nullable, Serde, SerdeError, Serdes,
    StringSerde, U32Serde, U64Serde, UnitSerde,
};
pub use store::kv::KeyValueStore;
pub use store::window_view::{SessionStore, WindowStore};
pub use test_driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use topology::{ChangelogTopic, RepartitionTopic, Topology};
pub use window::{
    SessionWindowedSerde, SessionWindows, SlidingWindows, TimeWindowedSerde, TimeWindows, Window, Windowed,
};
