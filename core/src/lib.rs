//! Runnel's core: records, the durable partitioned log, and the broker state
//! that holds topics.
//!
//! # Design
//!
//! * **Kafka's bytes on disk.** A partition is a directory of segments whose
//!   `.log` files are plain concatenations of Kafka v2 record batches, with
//!   Kafka's `.index` and `.timeindex` layouts beside them. A batch received
//!   from a client is validated, given offsets by rewriting its first eight
//!   bytes, and written as it came, compression included; a fetch hands the
//!   same bytes back.
//! * **Synchronous storage, bounded memory.** [`log::Log`] does file I/O on the
//!   caller's thread (async callers wrap it with `spawn_blocking`); it keeps no
//!   record data in memory, only the active segment's sparse index. Sealed
//!   segments' indexes are searched on disk.
//! * **Recovery trusts nothing unverified.** A clean shutdown leaves a marker;
//!   without it the active segment is re-read batch by batch and cut at the
//!   first torn or corrupt batch, and its indexes are rebuilt. Damage inside a
//!   sealed segment is reported with file and position, never skipped.
//! * **Background maintenance never blocks appends.** Retention and compaction
//!   work on sealed segments and swap results in under a short lock.
//!
//! # Layers
//!
//! Each module calls only the layers below it; `tests/end_to_end/layering.rs` at the
//! workspace root reads the source and fails on an upward reference or a
//! cycle between modules.
//!
//! | layer | owns | may use |
//! | --- | --- | --- |
//! | [`vocabulary`], [`time`] | [`TopicPartition`](vocabulary::TopicPartition), [`OffsetAndMetadata`](vocabulary::OffsetAndMetadata), group states, assignment strategy names, [`ErrorCode`](vocabulary::ErrorCode); clocks | nothing |
//! | [`record`] | Kafka's v2 record batch codec, compression, CRC32C, the murmur2 partitioner | vocabulary |
//! | `error` | [`Error`], [`Result`] | vocabulary, record |
//! | [`topic`] | topic names, [`NewTopic`](topic::NewTopic), descriptions | vocabulary, error |
//! | [`log`] | one partition's storage: segments, indexes, recovery, retention, compaction | all of the above |
//! | [`broker`] | topics, partitions, group coordination, committed offsets | log and below |
//! | `protocol` | Kafka's framing and the error code of each [`Error`], shared by the server and the wire clients | vocabulary, error |
//! | [`server`] | the Kafka wire-protocol server over a broker ([`broker::BrokerHandle`]) | broker, protocol, and below |
//! | [`client`] | `Cluster`, `Producer`, `Consumer`, `Admin`; the embedded backend (calls `broker`), the `kafka://` backend (librdkafka) and the wire group client (uses `protocol`) | broker, protocol, and below; never `server` |
//!
//! # Example
//!
//! ```
//! use runnel_core::broker::{Broker, BrokerConfig};
//! use runnel_core::record::{Compression, RecordBatchBuilder};
//! use runnel_core::topic::NewTopic;
//!
//! let dir = tempfile::tempdir()?;
//! let broker = Broker::open(dir.path(), BrokerConfig::default())?;
//! broker.create_topic(NewTopic::new("clicks", 2))?;
//!
//! let log = broker.log("clicks", 0)?;
//! let mut batch = RecordBatchBuilder::new(Compression::None);
//! batch.append(1_700_000_000_000, Some(b"u42"), Some(b"{\"page\":\"/\"}"), &[]);
//! let appended = log.append(&mut batch.build(0)?)?;
//! assert_eq!(appended.first_offset, 0);
//!
//! let records = log.read_records(0, 1 << 20)?;
//! assert_eq!(records[0].key.as_deref(), Some(&b"u42"[..]));
//! broker.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod broker;
pub mod client;
mod error;
pub mod log;
pub(crate) mod protocol;
pub mod record;
pub mod server;
pub mod time;
pub mod topic;
pub mod vocabulary;

pub use error::{CommitRejection, Error, Result};
