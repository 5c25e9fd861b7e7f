//! Records and the Kafka v2 `RecordBatch` codec.
//!
//! Runnel stores batches on disk exactly as Kafka does (magic 2, CRC32C), so a
//! batch produced by any Kafka client can be written to a segment and later
//! served to a fetch without re-encoding. This module owns that format:
//!
//! * [`RecordBatchBuilder`] encodes records into one batch, optionally
//!   compressed;
//! * [`RecordBatch`] is a zero-copy view over one encoded batch: header fields,
//!   CRC check, and decoding of its records (decompressing when needed);
//! * [`batches`] walks a buffer of concatenated batches, as found in a segment
//!   file or a fetch response.
//!
//! # Example
//!
//! ```
//! use runnel_core::record::{batches, Compression, RecordBatchBuilder};
//!
//! let mut builder = RecordBatchBuilder::new(Compression::Lz4);
//! builder.append(1_700_000_000_000, Some(b"user-1"), Some(b"clicked"), &[]);
//! builder.append(1_700_000_000_005, None, Some(b"scrolled"), &[]);
//! let bytes = builder.build(0)?;
//!
//! let batch = batches(&bytes).next().unwrap()?;
//! batch.verify_crc()?;
//! let records = batch.records()?;
//! let values: Vec<_> = records.iter().map(|r| r.unwrap().value.unwrap().to_vec()).collect();
//! assert_eq!(values, vec![b"clicked".to_vec(), b"scrolled".to_vec()]);
//! # Ok::<(), runnel_core::record::RecordError>(())
//! ```

mod batch;
mod builder;
mod compression;
mod partitioner;
mod varint;

use bytes::Bytes;

pub use batch::{
    batches, BatchHeader, BatchIter, HeaderRef, RecordBatch, RecordIter, RecordRef, Records,
    BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, MAX_UNCOMPRESSED_BATCH_BYTES,
};
pub use builder::RecordBatchBuilder;
pub use partitioner::{murmur2, partition_for_key};

/// Compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Records stored as they are.
    #[default]
    None,
    /// gzip (codec id 1).
    Gzip,
    /// Snappy with xerial framing (codec id 2).
    Snappy,
    /// LZ4 frame format (codec id 3).
    Lz4,
    /// Zstandard (codec id 4).
    Zstd,
}

impl Compression {
    /// The codec id stored in the batch attributes.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for a batch attribute id.
    ///
    /// # Errors
    /// An id Kafka does not define (5-7) is [`RecordError::UnknownCompression`].
    pub fn from_id(id: i16) -> Result<Self, RecordError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(RecordError::UnknownCompression(other)),
        })
    }

    /// Kafka's name for the codec (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| RecordError::UnknownCompressionName(s.to_string()))
    }
}

/// What a record's timestamp means (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Set by the producer when the record was created.
    #[default]
    CreateTime,
    /// Set by the log when the batch was appended.
    LogAppendTime,
}

/// A record header: a UTF-8 key and an optional byte value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header { key: key.into(), value: Some(value.into()) }
    }
}

/// A record as stored in a partition: its offset, timestamp, key, value and
/// headers. Decoded from a batch with [`RecordRef::to_record`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// Position of the record in its partition.
    pub offset: i64,
    /// Milliseconds since the Unix epoch; see [`Record::timestamp_type`].
    pub timestamp: i64,
    /// Whether the timestamp was set by the producer or the log.
    pub timestamp_type: TimestampType,
    /// Optional key (used for partitioning and compaction).
    pub key: Option<Bytes>,
    /// Optional value; `None` with a key is a tombstone.
    pub value: Option<Bytes>,
    /// Headers in the order they were written.
    pub headers: Vec<Header>,
}

/// Errors decoding or encoding record batches. Positions are relative to the
/// start of the batch or buffer being decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The buffer ends before the structure it must contain.
    #[error("truncated batch: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The magic byte is not 2; older message formats are not accepted.
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    UnsupportedMagic(i8),
    /// The batch length field is impossible.
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    /// The stored CRC does not match the batch contents.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// Compression codec id 5-7.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i16),
    /// A codec name that is not none, gzip, snappy, lz4 or zstd.
    #[error("unknown compression type '{0}' (expected none, gzip, snappy, lz4 or zstd)")]
    UnknownCompressionName(String),
    /// The codec failed to compress or decompress.
    #[error("{} compression failed: {reason}", codec.name())]
    Compression {
        /// The codec.
        codec: Compression,
        /// What the codec reported.
        reason: String,
    },
    /// A record inside the batch is malformed.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
    /// The header's record count disagrees with the records present.
    #[error("batch header says {declared} records but {found} were found")]
    CountMismatch {
        /// Count in the header.
        declared: i32,
        /// Records decoded.
        found: i32,
    },
    /// A batch with no records.
    #[error("batch contains no records")]
    Empty,
    /// Too many records or bytes for one batch.
    #[error("batch too large: {0}")]
    TooLarge(String),
}
