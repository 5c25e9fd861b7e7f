//! Plain data the client API answers with, shared by the front types
//! (`Admin`, `Consumer`) and both backends.

use crate::client::AssignmentStrategy;
use crate::topic::TopicPartition;

/// A group in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// `Stable`, `PreparingRebalance`, or `Empty` (no members, offsets only).
    pub state: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Assigned partitions.
    pub assignment: Vec<TopicPartition>,
}

/// Committed offset, log end and lag of one partition for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: TopicPartition,
    /// Committed offset, if any.
    pub committed: Option<i64>,
    /// Log end offset.
    pub log_end_offset: i64,
    /// `log end − committed` (the whole log when nothing is committed).
    pub lag: i64,
    /// The member consuming it, if any.
    pub member_id: Option<String>,
}

/// A consumer group as `describe_group` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State name.
    pub state: String,
    /// Generation.
    pub generation: i32,
    /// Assignor in use.
    pub protocol: Option<AssignmentStrategy>,
    /// Members.
    pub members: Vec<GroupMember>,
    /// Per partition: committed offset, log end and lag.
    pub partitions: Vec<PartitionLag>,
}

/// Where `reset_group_offsets` moves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// First offset still stored.
    Earliest,
    /// Log end.
    Latest,
    /// First offset with a timestamp at or after this (log end if none).
    Timestamp(i64),
    /// This offset (clamped into the log).
    Offset(i64),
}

/// An offset found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// The first offset whose record timestamp is at or after the query.
    pub offset: i64,
    /// That record's timestamp.
    pub timestamp: i64,
}
