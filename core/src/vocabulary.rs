//! The vocabulary every layer of `runnel-core` shares: plain data types
//! with no behaviour beyond naming themselves. It uses nothing else in the
//! crate, so any layer may use it (see the layer map in the crate docs).

use std::fmt;

/// A topic and a partition number; displayed and stored on disk as
/// `topic-partition`, as Kafka names partition directories.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`'s partition `partition`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A committed position: the next offset to consume, plus optional metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    /// Next offset the group will consume.
    pub offset: i64,
    /// Free-form metadata stored with the commit.
    pub metadata: String,
    /// When it was committed (ms since the epoch).
    pub commit_timestamp: i64,
}

impl OffsetAndMetadata {
    /// An offset with no metadata, stamped `now`.
    pub fn new(offset: i64, now: i64) -> Self {
        OffsetAndMetadata { offset, metadata: String::new(), commit_timestamp: now }
    }
}

/// How a group's partitions are divided among its members
/// (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignmentStrategy {
    /// Per topic, contiguous ranges of partitions (`range`).
    Range,
    /// All partitions dealt out one by one (`roundrobin`).
    RoundRobin,
    /// Balanced, keeps partitions where they are, and revokes only those that
    /// move (`cooperative-sticky`).
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// Kafka's protocol name.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The strategy Kafka's protocol name or the Java client's class name
    /// (`org.apache.kafka.clients.consumer.RangeAssignor`, or just
    /// `RangeAssignor`) stands for.
    ///
    /// ```
    /// use runnel_core::vocabulary::AssignmentStrategy;
    /// assert_eq!(AssignmentStrategy::from_name("roundrobin"), Some(AssignmentStrategy::RoundRobin));
    /// assert_eq!(AssignmentStrategy::from_name("org.apache.kafka.clients.consumer.RangeAssignor"),
    ///            Some(AssignmentStrategy::Range));
    /// assert_eq!(AssignmentStrategy::from_name("sticky"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        let short = name.trim().rsplit('.').next().unwrap_or_default();
        Some(match short {
            "range" | "RangeAssignor" => AssignmentStrategy::Range,
            "roundrobin" | "RoundRobinAssignor" => AssignmentStrategy::RoundRobin,
            "cooperative-sticky" | "CooperativeStickyAssignor" => AssignmentStrategy::CooperativeSticky,
            _ => return None,
        })
    }
}

/// The state of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to rejoin.
    PreparingRebalance,
    /// Assigned and consuming.
    Stable,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Kafka's protocol error codes (the ones Runnel's server and wire clients
/// send or act on), as in the protocol guide's error table.
///
/// ```
/// use runnel_core::vocabulary::ErrorCode;
/// assert_eq!(ErrorCode::RebalanceInProgress.code(), 27);
/// assert_eq!(ErrorCode::from_code(27), Some(ErrorCode::RebalanceInProgress));
/// assert_eq!(ErrorCode::from_code(9999), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
#[allow(missing_docs)] // Each variant is Kafka's error of that name.
pub enum ErrorCode {
    None = 0,
    UnknownServerError = -1,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    MessageTooLarge = 10,
    CoordinatorLoadInProgress = 14,
    CoordinatorNotAvailable = 15,
    NotCoordinator = 16,
    InvalidTopicException = 17,
    IllegalGeneration = 22,
    InconsistentGroupProtocol = 23,
    UnknownMemberId = 25,
    InvalidSessionTimeout = 26,
    RebalanceInProgress = 27,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidConfig = 40,
    InvalidRequest = 42,
    OutOfOrderSequenceNumber = 45,
    InvalidProducerEpoch = 47,
    KafkaStorageError = 56,
    NonEmptyGroup = 68,
    GroupIdNotFound = 69,
    MemberIdRequired = 79,
    InvalidRecord = 87,
}

impl ErrorCode {
    const ALL: [ErrorCode; 28] = [
        ErrorCode::None,
        ErrorCode::UnknownServerError,
        ErrorCode::OffsetOutOfRange,
        ErrorCode::CorruptMessage,
        ErrorCode::UnknownTopicOrPartition,
        ErrorCode::MessageTooLarge,
        ErrorCode::CoordinatorLoadInProgress,
        ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotCoordinator,
        ErrorCode::InvalidTopicException,
        ErrorCode::IllegalGeneration,
        ErrorCode::InconsistentGroupProtocol,
        ErrorCode::UnknownMemberId,
        ErrorCode::InvalidSessionTimeout,
        ErrorCode::RebalanceInProgress,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TopicAlreadyExists,
        ErrorCode::InvalidPartitions,
        ErrorCode::InvalidReplicationFactor,
        ErrorCode::InvalidConfig,
        ErrorCode::InvalidRequest,
        ErrorCode::OutOfOrderSequenceNumber,
        ErrorCode::InvalidProducerEpoch,
        ErrorCode::KafkaStorageError,
        ErrorCode::NonEmptyGroup,
        ErrorCode::GroupIdNotFound,
        ErrorCode::MemberIdRequired,
        ErrorCode::InvalidRecord,
    ];

    /// The code on the wire.
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// The variant for a code on the wire; `None` for a code this enum does
    /// not list.
    pub fn from_code(code: i16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_error_code_round_trips() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
        let distinct: std::collections::HashSet<i16> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(distinct.len(), ErrorCode::ALL.len());
    }
}
