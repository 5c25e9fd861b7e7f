//! The Kafka wire protocol's parts that the server and the wire clients
//! share: framing ([`frame`]), the error code each of this crate's errors
//! stands for, and small conversions. It knows nothing of the broker or of
//! clients; the server and the clients both build on it.

pub(crate) mod frame;

use kafka_protocol::protocol::StrBytes;

use crate::vocabulary::ErrorCode;
use crate::{CommitRejection, Error};

/// `v` as the protocol crate's string type.
pub(crate) fn str_bytes(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The Kafka error code a client should see for `e`.
pub(crate) fn error_code_for(e: &Error) -> ErrorCode {
    match e {
        Error::UnknownTopic(_) | Error::UnknownPartition(_) => ErrorCode::UnknownTopicOrPartition,
        Error::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        Error::InvalidBatch { .. } => ErrorCode::CorruptMessage,
        Error::RecordTooLarge { .. } | Error::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
        Error::InvalidConfig { .. } => ErrorCode::InvalidConfig,
        Error::InvalidTopicName { .. } => ErrorCode::InvalidTopicException,
        Error::TopicExists(_) => ErrorCode::TopicAlreadyExists,
        Error::InvalidPartitions { .. } => ErrorCode::InvalidPartitions,
        Error::PartitionOffline { .. } | Error::Corrupt { .. } | Error::Io { .. } => {
            ErrorCode::KafkaStorageError
        }
        Error::UnknownMember { .. } => ErrorCode::UnknownMemberId,
        Error::CommitFailed { rejection, .. } => match rejection {
            CommitRejection::UnknownMember | CommitRejection::GroupActive => ErrorCode::UnknownMemberId,
            CommitRejection::IllegalGeneration => ErrorCode::IllegalGeneration,
        },
        Error::InconsistentGroupProtocol { .. } => ErrorCode::InconsistentGroupProtocol,
        Error::GroupNotEmpty(_) => ErrorCode::NonEmptyGroup,
        Error::UnknownGroup(_) => ErrorCode::GroupIdNotFound,
        _ => ErrorCode::UnknownServerError,
    }
}
