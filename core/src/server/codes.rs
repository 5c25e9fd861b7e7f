//! Kafka's error codes, and how this crate's errors map onto them.

use crate::{CommitRejection, Error};

pub(crate) const NONE: i16 = 0;
pub(crate) const UNKNOWN_SERVER_ERROR: i16 = -1;
pub(crate) const OFFSET_OUT_OF_RANGE: i16 = 1;
pub(crate) const CORRUPT_MESSAGE: i16 = 2;
pub(crate) const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub(crate) const MESSAGE_TOO_LARGE: i16 = 10;
pub(crate) const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub(crate) const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub(crate) const NOT_COORDINATOR: i16 = 16;
pub(crate) const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub(crate) const ILLEGAL_GENERATION: i16 = 22;
pub(crate) const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub(crate) const UNKNOWN_MEMBER_ID: i16 = 25;
pub(crate) const INVALID_SESSION_TIMEOUT: i16 = 26;
pub(crate) const REBALANCE_IN_PROGRESS: i16 = 27;
pub(crate) const UNSUPPORTED_VERSION: i16 = 35;
pub(crate) const TOPIC_ALREADY_EXISTS: i16 = 36;
pub(crate) const INVALID_PARTITIONS: i16 = 37;
pub(crate) const INVALID_REPLICATION_FACTOR: i16 = 38;
pub(crate) const INVALID_REQUEST: i16 = 42;
pub(crate) const INVALID_CONFIG: i16 = 40;
pub(crate) const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub(crate) const INVALID_PRODUCER_EPOCH: i16 = 47;
pub(crate) const KAFKA_STORAGE_ERROR: i16 = 56;
pub(crate) const NON_EMPTY_GROUP: i16 = 68;
pub(crate) const GROUP_ID_NOT_FOUND: i16 = 69;
pub(crate) const MEMBER_ID_REQUIRED: i16 = 79;
pub(crate) const INVALID_RECORD: i16 = 87;

/// The Kafka error code a client should see for `e`.
pub(crate) fn for_error(e: &Error) -> i16 {
    match e {
        Error::UnknownTopic(_) | Error::UnknownPartition(_) => UNKNOWN_TOPIC_OR_PARTITION,
        Error::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        Error::InvalidBatch { .. } => CORRUPT_MESSAGE,
        Error::RecordTooLarge { .. } | Error::MessageTooLarge { .. } => MESSAGE_TOO_LARGE,
        Error::InvalidConfig { .. } => INVALID_CONFIG,
        Error::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
        Error::TopicExists(_) => TOPIC_ALREADY_EXISTS,
        Error::InvalidPartitions { .. } => INVALID_PARTITIONS,
        Error::PartitionOffline { .. } | Error::Corrupt { .. } | Error::Io { .. } => KAFKA_STORAGE_ERROR,
        Error::UnknownMember { .. } => UNKNOWN_MEMBER_ID,
        Error::CommitFailed { rejection, .. } => match rejection {
            CommitRejection::UnknownMember | CommitRejection::GroupActive => UNKNOWN_MEMBER_ID,
            CommitRejection::IllegalGeneration => ILLEGAL_GENERATION,
        },
        Error::InconsistentGroupProtocol { .. } => INCONSISTENT_GROUP_PROTOCOL,
        Error::GroupNotEmpty(_) => NON_EMPTY_GROUP,
        Error::UnknownGroup(_) => GROUP_ID_NOT_FOUND,
        _ => UNKNOWN_SERVER_ERROR,
    }
}
