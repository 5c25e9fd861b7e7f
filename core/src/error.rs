//! The crate's error type.

use std::path::PathBuf;

use crate::record::RecordError;
use crate::vocabulary::TopicPartition;

/// Result alias for runnel-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in runnel-core. Each variant carries what is
/// needed to act on it: the file and position, the topic-partition and
/// offset, the config key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("open", "write", "fsync", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes are damaged.
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage in the file.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Bytes handed to `append` are not a valid batch.
    #[error("invalid record batch for {partition} at byte {position} of the request: {source}")]
    InvalidBatch {
        /// Target partition.
        partition: TopicPartition,
        /// Position of the bad batch in the appended buffer.
        position: usize,
        /// The decode error.
        #[source]
        source: RecordError,
    },
    /// A batch larger than `max.message.bytes`.
    #[error("batch of {size} bytes for {partition} exceeds max.message.bytes={max}")]
    RecordTooLarge {
        /// Target partition.
        partition: TopicPartition,
        /// Batch size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A read below the log start offset or past the end.
    #[error("offset {offset} is out of range for {partition} (log start {log_start_offset}, log end {log_end_offset})")]
    OffsetOutOfRange {
        /// The partition.
        partition: TopicPartition,
        /// The requested offset.
        offset: i64,
        /// First offset still stored.
        log_start_offset: i64,
        /// Offset the next record will get.
        log_end_offset: i64,
    },
    /// A config key or value is unacceptable.
    #[error("invalid config {key}: {reason}")]
    InvalidConfig {
        /// The config key, as the user wrote it.
        key: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A topic name Kafka would not accept.
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName {
        /// The name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Creating a topic that exists.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// A topic that does not exist.
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    /// A partition number outside the topic.
    #[error("unknown partition {0}")]
    UnknownPartition(TopicPartition),
    /// A partition count that is not allowed.
    #[error("invalid partition count for topic '{topic}': {reason}")]
    InvalidPartitions {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// Another process holds the data directory.
    #[error("data directory {} is in use by another process{}", path.display(), holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    DataDirLocked {
        /// The directory.
        path: PathBuf,
        /// What the lock file says about the holder, if readable.
        holder: Option<String>,
    },
    /// The partition could not be opened at startup and is offline.
    #[error("partition {partition} is offline: {reason}")]
    PartitionOffline {
        /// The partition.
        partition: TopicPartition,
        /// The error that took it offline.
        reason: String,
    },
    /// The log or broker was closed.
    #[error("{0} is closed")]
    Closed(String),
    /// A record larger than a client limit.
    #[error("record of {size} bytes for topic '{topic}' exceeds {setting}={limit}")]
    MessageTooLarge {
        /// Target topic.
        topic: String,
        /// Estimated encoded size.
        size: usize,
        /// The limit.
        limit: usize,
        /// The setting that sets it.
        setting: &'static str,
    },
    /// A wait ran out of time.
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// The limit in milliseconds.
        ms: u64,
    },
    /// A record was accepted by `send` but could not be stored.
    #[error("send to {topic}-{partition} failed: {source}")]
    SendFailed {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Why.
        #[source]
        source: std::sync::Arc<Error>,
    },
    /// A consumer has no position for a partition and `auto.offset.reset=none`.
    #[error("no committed offset for {0} and auto.offset.reset=none")]
    NoOffset(TopicPartition),
    /// A cluster URL that cannot be used.
    #[error("invalid cluster URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// An operation that needs `group.id` on a consumer without one.
    #[error("{0} requires group.id to be set")]
    NoGroup(&'static str),
    /// A group no longer knows this member.
    #[error("member {member} is not in group '{group}'")]
    UnknownMember {
        /// Group.
        group: String,
        /// Member id.
        member: String,
    },
    /// An offset commit was rejected.
    #[error("commit to group '{group}' rejected: {reason}")]
    CommitFailed {
        /// Group.
        group: String,
        /// Which check failed.
        rejection: CommitRejection,
        /// Why, in words.
        reason: String,
    },
    /// A member offered no assignor that every current member supports.
    #[error("no assignor in common with the members of group '{group}' (offered: {offered})")]
    InconsistentGroupProtocol {
        /// Group.
        group: String,
        /// What the joining member supports.
        offered: String,
    },
    /// Deleting a group that still has members.
    #[error("group '{0}' still has active members")]
    GroupNotEmpty(String),
    /// A group that does not exist.
    #[error("unknown group '{0}'")]
    UnknownGroup(String),
    /// A request to a Kafka cluster (the `kafka://` backend, or a group
    /// coordinator over the wire) failed.
    #[error("{op}: {reason}")]
    Kafka {
        /// What was being done.
        op: String,
        /// librdkafka's error, or the broker's error code and name.
        reason: String,
        /// The Kafka protocol error code the broker answered, if it did.
        code: Option<i16>,
        /// Whether trying again can succeed: the code is retriable in
        /// Kafka's protocol (`NOT_COORDINATOR`, `REQUEST_TIMED_OUT`, ...), or
        /// the broker could not be reached or did not answer in time.
        retriable: bool,
    },
    /// A partition that is not assigned to this consumer.
    #[error("partition {0} is not assigned to this consumer")]
    NotAssigned(TopicPartition),
}

/// Why the group coordinator refused an offset commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitRejection {
    /// The member is not (or no longer) in the group.
    UnknownMember,
    /// The member's generation is older than the group's.
    IllegalGeneration,
    /// A commit without a member id while the group has members.
    GroupActive,
}

impl Error {
    /// A failed Kafka request that carries no broker error code.
    pub(crate) fn kafka(op: impl Into<String>, reason: impl Into<String>, retriable: bool) -> Error {
        Error::Kafka { op: op.into(), reason: reason.into(), code: None, retriable }
    }

    /// A broker's answer of error `code` to `op`: the reason names the
    /// code (`NotCoordinator (16)`), and whether it is retriable comes from
    /// Kafka's protocol.
    pub(crate) fn kafka_code(op: impl Into<String>, code: i16, detail: Option<&str>) -> Error {
        let known = kafka_protocol::ResponseError::try_from_code(code);
        let name = known.map_or_else(|| "NONE".to_string(), |e| format!("{e:?}"));
        let reason = match detail {
            Some(detail) if !detail.is_empty() => format!("the broker answered {name} ({code}): {detail}"),
            _ => format!("the broker answered {name} ({code})"),
        };
        Error::Kafka { op: op.into(), reason, code: Some(code), retriable: Error::code_is_retriable(code) }
    }

    /// Whether Kafka's protocol marks error `code` retriable.
    pub(crate) fn code_is_retriable(code: i16) -> bool {
        kafka_protocol::ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
    }

    /// Whether trying the same call again can succeed: a retriable broker
    /// error, or a broker that could not be reached in time.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::Kafka { retriable: true, .. })
    }

    /// The Kafka protocol error code a broker answered, when this error is
    /// one.
    pub fn kafka_error_code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => *code,
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
