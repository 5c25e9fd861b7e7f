//! The crate's error type.

use crate::serdes::SerdeError;

/// A boxed error from user code or an external system.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong building or running a topology. Variants
/// carry the node, topic, partition and offset involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// The topology reads from no topic.
    #[error("invalid topology: it has no source nodes (call StreamsBuilder::stream first)")]
    NoSources,
    /// Two nodes have the same name.
    #[error("invalid topology: node name {name:?} is used more than once")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A topic name (or repartition name) is empty.
    #[error("invalid topology: node {node} has an empty topic name")]
    EmptyTopicName {
        /// The source, sink or repartition node.
        node: String,
    },
    /// A source node was given no topics.
    #[error("invalid topology: source node {node} has no topics")]
    NoTopics {
        /// The source node.
        node: String,
    },
    /// Two source nodes read the same topic.
    #[error("invalid topology: topic {topic:?} is read by both {first} and {second}")]
    TopicSourcedTwice {
        /// The topic.
        topic: String,
        /// The first source node reading it.
        first: String,
        /// The second source node reading it.
        second: String,
    },
    /// A repartition topic was asked to have zero partitions.
    #[error("invalid topology: repartition topic {topic:?} needs at least one partition")]
    ZeroPartitions {
        /// The repartition topic (without the application id).
        topic: String,
    },
    /// `merge` was given a stream from another `StreamsBuilder`.
    #[error("invalid topology: {node} merges a stream from another StreamsBuilder")]
    ForeignStream {
        /// The merge node.
        node: String,
    },
    /// A config value is missing or invalid.
    #[error("invalid config {key}: {reason}")]
    InvalidConfig {
        /// The config key, Kafka-style (`application.id`).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A config key is not known.
    #[error("unknown config key {key:?}")]
    UnknownConfig {
        /// The key.
        key: String,
    },
    /// A record's key or value could not be deserialized at a source node.
    #[error("cannot deserialize {part} of record {topic}-{partition}@{offset}: {source}")]
    Deserialization {
        /// The topic read from.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// `"key"` or `"value"`.
        part: &'static str,
        /// What the serde reported.
        #[source]
        source: SerdeError,
    },
    /// A record's key or value could not be serialized at a sink node.
    #[error("cannot serialize {part} for topic {topic:?} at {node}: {source}")]
    Serialization {
        /// The sink node.
        node: String,
        /// The destination topic.
        topic: String,
        /// `"key"` or `"value"`.
        part: &'static str,
        /// What the serde reported.
        #[source]
        source: SerdeError,
    },
    /// A record has a negative timestamp (Kafka's `FailOnInvalidTimestamp`).
    #[error("record {topic}-{partition}@{offset} has invalid timestamp {timestamp}")]
    InvalidTimestamp {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
        /// The timestamp.
        timestamp: i64,
    },
    /// A record was given for a topic that no source node reads.
    #[error("no source node reads topic {topic:?} (topics read: {known:?})")]
    UnknownTopic {
        /// The topic.
        topic: String,
        /// The topics the topology reads, resolved for the application id.
        known: Vec<String>,
    },
    /// A test output topic was read while empty.
    #[error("output topic {topic:?} has no more records")]
    EmptyTopic {
        /// The topic.
        topic: String,
    },
    /// The record collector could not send a record.
    #[error("cannot send record to topic {topic:?}: {source}")]
    Send {
        /// The destination topic.
        topic: String,
        /// The producer's error.
        #[source]
        source: BoxError,
    },
    /// A user-supplied processor failed.
    #[error("processor {node} failed: {source}")]
    Processor {
        /// The processor node (as named in the topology, when known).
        node: String,
        /// The processor's error.
        #[source]
        source: BoxError,
    },
    /// Two aggregations or tables were materialized under the same store name.
    #[error("invalid topology: state store {store:?} is defined more than once")]
    DuplicateStore {
        /// The store name.
        store: String,
    },
    /// A stateful operator has no serde for its store or repartition topic.
    #[error("invalid topology: {node} needs a {part} serde for store {store:?} (set it on Materialized)")]
    MissingSerde {
        /// The node.
        node: String,
        /// The store.
        store: String,
        /// `"key"` or `"value"`.
        part: &'static str,
    },
    /// A windowed store's retention is shorter than its windows live.
    #[error(
        "invalid topology: store {store:?} has retention {retention_ms} ms, less than the {minimum_ms} ms \
         its windows stay open (size or gap plus grace)"
    )]
    RetentionTooShort {
        /// The store.
        store: String,
        /// The retention asked for.
        retention_ms: i64,
        /// Window size (or session gap) plus grace.
        minimum_ms: i64,
    },
    /// A state store operation failed (RocksDB or the filesystem).
    #[error("state store {store} at {}: cannot {op}: {reason}", path.display())]
    Store {
        /// The store name.
        store: String,
        /// The store's directory.
        path: std::path::PathBuf,
        /// What was being done (`"open"`, `"write"`, ...).
        op: &'static str,
        /// What RocksDB or the OS reported.
        reason: String,
    },
    /// A store's directory is open elsewhere in this process: another
    /// stream thread has not yet closed the task that moved from it.
    /// Opening a task waits for the release (up to a minute) before it
    /// reports this.
    #[error("state store {store} at {}: already open in this process", path.display())]
    StoreLocked {
        /// The store name.
        store: String,
        /// The store's directory.
        path: std::path::PathBuf,
    },
    /// A store's key or value could not be (de)serialized.
    #[error("state store {store}: cannot {op} {part}: {source}")]
    StoreSerde {
        /// The store name.
        store: String,
        /// `"serialize"` or `"deserialize"`.
        op: &'static str,
        /// `"key"` or `"value"`.
        part: &'static str,
        /// What the serde reported.
        #[source]
        source: SerdeError,
    },
    /// A task checkpoint file could not be read or written.
    #[error("checkpoint file {}: {reason}", path.display())]
    Checkpoint {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong (with the line number when parsing).
        reason: String,
    },
    /// A store name that the topology or task does not have.
    #[error("no state store {name:?} (stores: {known:?})")]
    UnknownStore {
        /// The name asked for.
        name: String,
        /// The stores that exist.
        known: Vec<String>,
    },
    /// A changelog record for a topic that no store of the task logs to.
    #[error("task {task} has no store logging to changelog topic {topic:?}")]
    UnknownChangelog {
        /// The task id (`0_1`).
        task: String,
        /// The topic.
        topic: String,
    },
    /// A cluster client call of the runtime failed.
    #[error("streams runtime: {op} failed: {source}")]
    Client {
        /// What the runtime was doing.
        op: &'static str,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// Input topics of the topology do not exist (Kafka's
    /// `MissingSourceTopicException`); create them before starting.
    #[error("source topics do not exist: {topics:?}")]
    MissingSourceTopics {
        /// The missing topics.
        topics: Vec<String>,
    },
    /// A stream or table was joined with a table that has no key-value
    /// store (a table derived by `filter`, `map_values` or a join and not
    /// materialized, or a windowed table).
    #[error(
        "invalid topology: {node} joins a table that is not materialized; join the table it was derived from, \
         or materialize it (KTable::materialize, or read it with StreamsBuilder::table)"
    )]
    TableNotMaterialized {
        /// The join node.
        node: String,
    },
    /// A feature was asked for where it is not supported (see the reason).
    #[error("invalid topology: {node}: {reason}")]
    Unsupported {
        /// The node or store concerned.
        node: String,
        /// What is not supported.
        reason: String,
    },
    /// `suppress` was used where it cannot work (see the reason).
    #[error("invalid topology: {node}: {reason}")]
    InvalidSuppression {
        /// The suppress node.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// A suppression buffer configured with `shut_down_when_full` is full.
    #[error(
        "suppression buffer of {node} is full ({records} records, {bytes} bytes) and is configured to shut down when full"
    )]
    SuppressionBufferFull {
        /// The suppress node.
        node: String,
        /// Entries buffered.
        records: u64,
        /// Bytes of keys and values buffered.
        bytes: u64,
    },
    /// Topics joined with each other have different partition counts, so
    /// records with the same key would meet in different tasks (Kafka's
    /// co-partitioning requirement).
    #[error(
        "topics joined must have the same number of partitions: {}; repartition one side \
         (KStream::repartition with Repartitioned::with_partitions) before the join",
        .topics.iter().map(|(t, n)| format!("{t} has {n}")).collect::<Vec<_>>().join(", ")
    )]
    NotCopartitioned {
        /// Each topic and its partition count.
        topics: Vec<(String, i32)>,
    },
    /// `Streams::start` was called on an instance that is not new.
    #[error("streams instance already started (state {state})")]
    AlreadyStarted {
        /// The state it is in.
        state: String,
    },
    /// The runtime could not do its own work (start or join a thread).
    #[error("streams runtime: {reason}")]
    Runtime {
        /// What went wrong.
        reason: String,
    },
    /// The topology's internal wiring is inconsistent (a bug in this crate).
    #[error("internal error in node {node}: {reason}")]
    Internal {
        /// The node being instantiated.
        node: String,
        /// What is inconsistent.
        reason: String,
    },
}
