//! The group APIs over the broker's shared group coordinator, and committed
//! offsets.
//!
//! Kafka's classic protocol lets the group leader compute assignments; this
//! coordinator computes them itself (the same assignors, so the result is
//! what the leader would have sent) so that wire clients and embedded
//! clients can share one group. The leader still receives every member's
//! subscription and may send an assignment; it is not used.
//!
//! Groups of any other protocol type (`connect`, ...) are generic: the
//! leader's assignment is what members get (`generic_join`, `generic_sync`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tracing::{debug, warn};

use super::{blocking, Shared};
use crate::broker::group::{
    GenericHeartbeatOutcome, GenericJoinError, GenericJoinOutcome, GenericJoinRequest, GenericSyncOutcome,
    GroupState, HeartbeatOutcome, JoinRequest, SyncOutcome,
};
use crate::protocol::error_code_for;
use crate::protocol::str_bytes as s;
use crate::topic::TopicPartition;
use crate::vocabulary::AssignmentStrategy;
use crate::vocabulary::ErrorCode;
use crate::vocabulary::OffsetAndMetadata;

const CONSUMER: &str = "consumer";

/// The assignor a client's protocol name stands for.
fn strategy(name: &str) -> Option<AssignmentStrategy> {
    match name {
        "range" | "RangeAssigner" => Some(AssignmentStrategy::Range),
        "roundrobin" | "RoundRobinAssigner" => Some(AssignmentStrategy::RoundRobin),
        "cooperative-sticky" => Some(AssignmentStrategy::CooperativeSticky),
        _ => None,
    }
}

/// Decodes a consumer subscription (version-prefixed).
fn decode_subscription(metadata: &Bytes) -> Result<ConsumerProtocolSubscription, String> {
    if metadata.len() < 2 {
        return Err("subscription metadata shorter than its version".into());
    }
    let version = i16::from_be_bytes([metadata[0], metadata[1]]);
    if version < 0 {
        return Err(format!("subscription version {version}"));
    }
    let mut buf = metadata.slice(2..);
    // Newer versions only append fields: read what we know.
    std::panic::catch_unwind(move || ConsumerProtocolSubscription::decode(&mut buf, version.min(3)))
        .map_err(|_| "subscription metadata does not decode".to_string())?
        .map_err(|e| format!("subscription metadata: {e}"))
}

fn versioned(version: i16, body: &impl Encodable) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(version);
    body.encode(&mut out, version).expect("consumer protocol message encodes");
    out.freeze()
}

/// A member's subscription as the leader's assignor reads it: version 1,
/// with owned partitions (librdkafka's cooperative assignor needs them).
fn subscription_bytes(topics: &BTreeSet<String>, owned: &[TopicPartition]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in owned {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let owned = by_topic
        .into_iter()
        .map(|(t, p)| {
            kafka_protocol::messages::consumer_protocol_subscription::TopicPartition::default()
                .with_topic(TopicName(s(t)))
                .with_partitions(p)
        })
        .collect();
    versioned(
        1,
        &ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| s(t)).collect())
            .with_owned_partitions(owned),
    )
}

fn assignment_bytes(partitions: &[TopicPartition]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    versioned(
        0,
        &ConsumerProtocolAssignment::default().with_assigned_partitions(
            by_topic
                .into_iter()
                .map(|(t, mut p)| {
                    p.sort_unstable();
                    AssignedPartitions::default().with_topic(TopicName(s(t))).with_partitions(p)
                })
                .collect(),
        ),
    )
}

pub(super) fn find_coordinator(
    shared: &Arc<Shared>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let answer = |key_type: i8| -> (i16, Option<StrBytes>) {
        if key_type == 0 {
            (ErrorCode::None.code(), None)
        } else {
            (
                ErrorCode::CoordinatorNotAvailable.code(),
                Some(s("transactions are not supported by this broker")),
            )
        }
    };
    if version < 4 {
        let (code, msg) = answer(req.key_type);
        let resp = FindCoordinatorResponse::default().with_error_code(code).with_error_message(msg);
        if code != ErrorCode::None.code() {
            return resp.with_node_id(BrokerId(-1)).with_port(-1);
        }
        return resp
            .with_node_id(BrokerId(shared.node_id))
            .with_host(shared.host.clone())
            .with_port(shared.port);
    }
    FindCoordinatorResponse::default().with_coordinators(
        req.coordinator_keys
            .into_iter()
            .map(|key| {
                let (code, msg) = answer(req.key_type);
                let c = Coordinator::default().with_key(key).with_error_code(code).with_error_message(msg);
                if code != ErrorCode::None.code() {
                    c.with_node_id(BrokerId(-1)).with_port(-1)
                } else {
                    c.with_node_id(BrokerId(shared.node_id))
                        .with_host(shared.host.clone())
                        .with_port(shared.port)
                }
            })
            .collect(),
    )
}

/// `(partition, offset, metadata)` of one committed position.
type Position = (i32, i64, String);

fn counts(shared: &Shared) -> impl Fn(&str) -> Option<i32> + '_ {
    |t: &str| shared.broker().partition_count(t).ok()
}

/// A join's session and rebalance timeouts in ms; `None` (logged) when the
/// session timeout is outside Kafka's `group.min.session.timeout.ms` and
/// `group.max.session.timeout.ms`. Version 0 has no rebalance timeout: the
/// session timeout serves.
fn join_timeouts(shared: &Shared, group: &str, req: &JoinGroupRequest, version: i16) -> Option<(u64, u64)> {
    if !shared.session_timeouts.contains(&req.session_timeout_ms) {
        warn!(
            group,
            session_timeout_ms = req.session_timeout_ms,
            "JoinGroup refused: session timeout outside group.min/max.session.timeout.ms"
        );
        return None;
    }
    let session_timeout = req.session_timeout_ms as u64;
    let rebalance_timeout = if version == 0 || req.rebalance_timeout_ms <= 0 {
        session_timeout
    } else {
        req.rebalance_timeout_ms as u64
    };
    Some((session_timeout, rebalance_timeout))
}

pub(super) async fn join(
    shared: &Arc<Shared>,
    req: JoinGroupRequest,
    client_id: &str,
    version: i16,
) -> JoinGroupResponse {
    let group = req.group_id.0.to_string();
    let fail = |code: i16| JoinGroupResponse::default().with_error_code(code).with_generation_id(-1);
    if req.protocol_type.as_str() != CONSUMER {
        return generic_join(shared, req, client_id, version).await;
    }
    if shared.broker().groups().generic().is_active(&group, shared.broker().now_ms()) {
        warn!(group, "JoinGroup refused: the group exists with another protocol type");
        return fail(ErrorCode::InconsistentGroupProtocol.code());
    }
    let mut strategies = Vec::new();
    let mut names: Vec<(AssignmentStrategy, StrBytes)> = Vec::new();
    let mut subscription = None;
    for p in &req.protocols {
        let Some(st) = strategy(p.name.as_str()) else { continue };
        match decode_subscription(&p.metadata) {
            Ok(sub) => {
                subscription.get_or_insert(sub);
                strategies.push(st);
                names.push((st, p.name.clone()));
            }
            Err(reason) => {
                warn!(group, protocol = %p.name, %reason, "JoinGroup: bad subscription metadata");
                return fail(ErrorCode::InconsistentGroupProtocol.code());
            }
        }
    }
    let Some(subscription) = subscription else {
        let offered: Vec<&str> = req.protocols.iter().map(|p| p.name.as_str()).collect();
        warn!(
            group,
            ?offered,
            "JoinGroup refused: no supported assignor offered (range, roundrobin, cooperative-sticky)"
        );
        return fail(ErrorCode::InconsistentGroupProtocol.code());
    };
    let topics: BTreeSet<String> = subscription.topics.iter().map(|t| t.to_string()).collect();
    let owned: Vec<TopicPartition> = subscription
        .owned_partitions
        .iter()
        .flat_map(|tp| tp.partitions.iter().map(|&p| TopicPartition::new(tp.topic.0.as_str(), p)))
        .collect();
    let Some((session_timeout, rebalance_timeout)) = join_timeouts(shared, &group, &req, version) else {
        return fail(ErrorCode::InvalidSessionTimeout.code());
    };
    let mut join = JoinRequest {
        group_id: group.clone(),
        member_id: (!req.member_id.is_empty()).then(|| req.member_id.to_string()),
        client_id: client_id.to_string(),
        topics,
        strategies,
        owned,
        session_timeout_ms: session_timeout,
        rebalance_timeout_ms: rebalance_timeout,
    };
    let coordinator = shared.broker().groups();
    let mut shutdown = shared.shutdown.clone();
    loop {
        let member_id = match coordinator.join(join.clone(), shared.broker().now_ms(), &counts(shared)) {
            Ok(id) => id,
            Err(e) => {
                debug!(group, error = %e, "JoinGroup refused");
                return fail(error_code_for(&e).code());
            }
        };
        join.member_id = Some(member_id.clone());
        let mut changes = coordinator.watch(&group);
        let assignment = loop {
            changes.borrow_and_update();
            let now = shared.broker().now_ms();
            match coordinator.sync(&group, &member_id, now, &counts(shared)) {
                SyncOutcome::Assigned(a) => break Some(a),
                SyncOutcome::Rejoin => break None,
                SyncOutcome::UnknownMember => {
                    return fail(ErrorCode::UnknownMemberId.code()).with_member_id(s(&member_id));
                }
                SyncOutcome::Pending => {}
            }
            // A member waiting here is alive: keep its session fresh.
            coordinator.heartbeat(&group, &member_id, -1, now, &counts(shared));
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = super::stopped(&mut shutdown) => return fail(ErrorCode::CoordinatorNotAvailable.code()),
            }
        };
        let Some(assignment) = assignment else { continue };
        let description = coordinator.describe(&group, shared.broker().now_ms());
        let members = description.map(|d| d.members).unwrap_or_default();
        let leader = members.iter().map(|m| m.member_id.clone()).min().unwrap_or_else(|| member_id.clone());
        let protocol_name = names
            .iter()
            .find(|(st, _)| *st == assignment.protocol)
            .map_or_else(|| s(assignment.protocol.name()), |(_, n)| n.clone());
        let response_members = if leader == member_id {
            members
                .iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(s(&m.member_id))
                        .with_metadata(subscription_bytes(&m.topics, &m.owned))
                })
                .collect()
        } else {
            Vec::new()
        };
        return JoinGroupResponse::default()
            .with_generation_id(assignment.generation)
            .with_protocol_type(Some(s(CONSUMER)))
            .with_protocol_name(Some(protocol_name))
            .with_leader(s(&leader))
            .with_member_id(s(&member_id))
            .with_members(response_members);
    }
}

pub(super) async fn sync(shared: &Arc<Shared>, req: SyncGroupRequest) -> SyncGroupResponse {
    let group = req.group_id.0.as_str();
    let broker = shared.broker();
    if broker.groups().generic().is_active(group, broker.now_ms()) {
        return generic_sync(shared, req).await;
    }
    let resp = SyncGroupResponse::default();
    match broker.groups().sync(group, req.member_id.as_str(), broker.now_ms(), &counts(shared)) {
        SyncOutcome::Assigned(a) if a.generation == req.generation_id => resp
            .with_protocol_type(Some(s(CONSUMER)))
            .with_protocol_name(req.protocol_name.or_else(|| Some(s(a.protocol.name()))))
            .with_assignment(assignment_bytes(&a.partitions)),
        SyncOutcome::Assigned(a) => {
            debug!(group, member = %req.member_id, asked = req.generation_id, current = a.generation, "SyncGroup for an old generation");
            resp.with_error_code(ErrorCode::IllegalGeneration.code())
        }
        SyncOutcome::Pending | SyncOutcome::Rejoin => {
            resp.with_error_code(ErrorCode::RebalanceInProgress.code())
        }
        SyncOutcome::UnknownMember => resp.with_error_code(ErrorCode::UnknownMemberId.code()),
    }
}

pub(super) fn heartbeat(shared: &Arc<Shared>, req: HeartbeatRequest) -> HeartbeatResponse {
    let broker = shared.broker();
    let generic = broker.groups().generic();
    if generic.is_active(req.group_id.0.as_str(), broker.now_ms()) {
        let outcome = generic.heartbeat(
            req.group_id.0.as_str(),
            req.member_id.as_str(),
            req.generation_id,
            broker.now_ms(),
        );
        return HeartbeatResponse::default().with_error_code(match outcome {
            GenericHeartbeatOutcome::Ok => ErrorCode::None.code(),
            GenericHeartbeatOutcome::RebalanceInProgress => ErrorCode::RebalanceInProgress.code(),
            GenericHeartbeatOutcome::IllegalGeneration => ErrorCode::IllegalGeneration.code(),
            GenericHeartbeatOutcome::UnknownMember => ErrorCode::UnknownMemberId.code(),
        });
    }
    let outcome = broker.groups().heartbeat(
        req.group_id.0.as_str(),
        req.member_id.as_str(),
        req.generation_id,
        broker.now_ms(),
        &counts(shared),
    );
    HeartbeatResponse::default().with_error_code(match outcome {
        HeartbeatOutcome::Ok => ErrorCode::None.code(),
        HeartbeatOutcome::Rejoin => ErrorCode::RebalanceInProgress.code(),
        HeartbeatOutcome::UnknownMember => ErrorCode::UnknownMemberId.code(),
    })
}

pub(super) fn leave(shared: &Arc<Shared>, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let broker = shared.broker();
    let group = req.group_id.0.as_str();
    let leave = |member: &str| {
        if broker.groups().generic().is_active(group, broker.now_ms()) {
            broker.groups().generic().leave(group, member, broker.now_ms());
        } else {
            broker.groups().leave(group, member, broker.now_ms());
        }
    };
    if version < 3 {
        leave(req.member_id.as_str());
        return LeaveGroupResponse::default();
    }
    LeaveGroupResponse::default().with_members(
        req.members
            .into_iter()
            .map(|m| {
                leave(m.member_id.as_str());
                MemberResponse::default()
                    .with_member_id(m.member_id)
                    .with_group_instance_id(m.group_instance_id)
            })
            .collect(),
    )
}

/// JoinGroup for a protocol type other than `consumer`: the coordinator
/// keeps membership, the leader assigns (see [`crate::broker::group::GenericGroups`]).
async fn generic_join(
    shared: &Arc<Shared>,
    req: JoinGroupRequest,
    client_id: &str,
    version: i16,
) -> JoinGroupResponse {
    let group = req.group_id.0.to_string();
    let fail = |code: i16| JoinGroupResponse::default().with_error_code(code).with_generation_id(-1);
    let broker = shared.broker();
    if broker.groups().describe(&group, broker.now_ms()).is_some_and(|d| !d.members.is_empty()) {
        warn!(group, protocol_type = %req.protocol_type, "JoinGroup refused: the group is a consumer group");
        return fail(ErrorCode::InconsistentGroupProtocol.code());
    }
    let Some((session_timeout, rebalance_timeout)) = join_timeouts(shared, &group, &req, version) else {
        return fail(ErrorCode::InvalidSessionTimeout.code());
    };
    let join = GenericJoinRequest {
        group_id: group.clone(),
        member_id: (!req.member_id.is_empty()).then(|| req.member_id.to_string()),
        client_id: client_id.to_string(),
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        session_timeout_ms: session_timeout,
        rebalance_timeout_ms: rebalance_timeout,
    };
    let generic = broker.groups().generic();
    let mut changes = generic.watch(&group, &join.protocol_type);
    let member_id = match generic.join(join, broker.now_ms()) {
        Ok(id) => id,
        Err(GenericJoinError::UnknownMember) => {
            return fail(ErrorCode::UnknownMemberId.code()).with_member_id(req.member_id);
        }
        Err(GenericJoinError::InconsistentProtocol(reason)) => {
            warn!(group, %reason, "JoinGroup refused");
            return fail(ErrorCode::InconsistentGroupProtocol.code());
        }
    };
    let mut shutdown = shared.shutdown.clone();
    loop {
        changes.borrow_and_update();
        match generic.join_outcome(&group, &member_id, shared.broker().now_ms()) {
            GenericJoinOutcome::Joined(j) => {
                return JoinGroupResponse::default()
                    .with_generation_id(j.generation)
                    .with_protocol_type(Some(req.protocol_type.clone()))
                    .with_protocol_name(Some(s(&j.protocol)))
                    .with_leader(s(&j.leader))
                    .with_member_id(s(&member_id))
                    .with_members(
                        j.members
                            .into_iter()
                            .map(|(id, metadata)| {
                                JoinGroupResponseMember::default()
                                    .with_member_id(s(&id))
                                    .with_metadata(metadata)
                            })
                            .collect(),
                    );
            }
            GenericJoinOutcome::UnknownMember => {
                return fail(ErrorCode::UnknownMemberId.code()).with_member_id(s(&member_id));
            }
            GenericJoinOutcome::Pending => {}
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = super::stopped(&mut shutdown) => return fail(ErrorCode::CoordinatorNotAvailable.code()),
        }
    }
}

/// SyncGroup of a generic group: the leader's call hands in the
/// assignments; every call waits until they are there.
async fn generic_sync(shared: &Arc<Shared>, req: SyncGroupRequest) -> SyncGroupResponse {
    let group = req.group_id.0.to_string();
    let generic = shared.broker().groups().generic();
    let mut assignments: Vec<(String, Bytes)> =
        req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect();
    let mut changes = generic.watch(&group, "");
    let mut shutdown = shared.shutdown.clone();
    let resp = SyncGroupResponse::default();
    loop {
        changes.borrow_and_update();
        let outcome = generic.sync(
            &group,
            req.member_id.as_str(),
            req.generation_id,
            std::mem::take(&mut assignments),
            shared.broker().now_ms(),
        );
        match outcome {
            GenericSyncOutcome::Assigned(bytes) => {
                return resp
                    .with_protocol_type(req.protocol_type)
                    .with_protocol_name(req.protocol_name)
                    .with_assignment(bytes)
            }
            GenericSyncOutcome::Pending => {}
            GenericSyncOutcome::RebalanceInProgress => {
                return resp.with_error_code(ErrorCode::RebalanceInProgress.code())
            }
            GenericSyncOutcome::IllegalGeneration => {
                return resp.with_error_code(ErrorCode::IllegalGeneration.code())
            }
            GenericSyncOutcome::UnknownMember => {
                return resp.with_error_code(ErrorCode::UnknownMemberId.code())
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = super::stopped(&mut shutdown) => return resp.with_error_code(ErrorCode::CoordinatorNotAvailable.code()),
        }
    }
}

pub(super) async fn offset_commit(shared: &Arc<Shared>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let member = (!req.member_id.is_empty() || req.generation_id_or_member_epoch >= 0)
        .then(|| (req.member_id.to_string(), req.generation_id_or_member_epoch));
    let topics: Vec<(TopicName, Vec<Position>)> = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .into_iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.committed_offset,
                        p.committed_metadata.map(|m| m.to_string()).unwrap_or_default(),
                    )
                })
                .collect();
            (t.name, parts)
        })
        .collect();
    blocking(shared, move |sh| {
        let broker = sh.broker();
        let now = broker.now_ms();
        let mut offsets = BTreeMap::new();
        let mut unknown = BTreeSet::new();
        for (topic, parts) in &topics {
            for (p, offset, metadata) in parts {
                let tp = TopicPartition::new(topic.0.as_str(), *p);
                if broker.log(&tp.topic, tp.partition).is_err() {
                    unknown.insert(tp);
                    continue;
                }
                offsets.insert(
                    tp,
                    OffsetAndMetadata { offset: *offset, metadata: metadata.clone(), commit_timestamp: now },
                );
            }
        }
        let member = member.as_ref().map(|(m, g)| (m.as_str(), *g));
        let code =
            match broker.groups().commit(&group, member, now, || broker.commit_offsets(&group, &offsets)) {
                Ok(()) => ErrorCode::None.code(),
                Err(e) => {
                    debug!(group, error = %e, "offset commit refused");
                    error_code_for(&e).code()
                }
            };
        OffsetCommitResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(name, parts)| {
                    let partitions = parts
                        .into_iter()
                        .map(|(p, _, _)| {
                            let tp = TopicPartition::new(name.0.as_str(), p);
                            let c = if unknown.contains(&tp) {
                                ErrorCode::UnknownTopicOrPartition.code()
                            } else {
                                code
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(c)
                        })
                        .collect();
                    OffsetCommitResponseTopic::default().with_name(name).with_partitions(partitions)
                })
                .collect(),
        )
    })
    .await
}

/// `(topic, partition, offset, metadata)` for the requested partitions (or
/// every committed one).
fn committed(
    shared: &Shared,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, Vec<Position>)> {
    let all = shared.broker().committed_offsets(group);
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(t, parts)| {
                let found = parts
                    .into_iter()
                    .map(|p| match all.get(&TopicPartition::new(t.as_str(), p)) {
                        Some(o) => (p, o.offset, o.metadata.clone()),
                        None => (p, -1, String::new()),
                    })
                    .collect();
                (t, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<Position>> = BTreeMap::new();
            for (tp, o) in all {
                by_topic.entry(tp.topic).or_default().push((tp.partition, o.offset, o.metadata));
            }
            by_topic.into_iter().collect()
        }
    }
}

pub(super) fn offset_fetch(
    shared: &Arc<Shared>,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version < 8 {
        let topics =
            req.topics.map(|t| t.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
        let found = committed(shared, req.group_id.0.as_str(), topics);
        return OffsetFetchResponse::default().with_topics(
            found
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default().with_name(TopicName(s(&t))).with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, o, m)| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(s(&m)))
                            })
                            .collect(),
                    )
                })
                .collect(),
        );
    }
    OffsetFetchResponse::default().with_groups(
        req.groups
            .into_iter()
            .map(|g| {
                let topics = g
                    .topics
                    .map(|t| t.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
                let found = committed(shared, g.group_id.0.as_str(), topics);
                OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_topics(
                    found
                        .into_iter()
                        .map(|(t, parts)| {
                            OffsetFetchResponseTopics::default().with_name(TopicName(s(&t))).with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, o, m)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_committed_leader_epoch(-1)
                                            .with_metadata(Some(s(&m)))
                                    })
                                    .collect(),
                            )
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

pub(super) fn list(shared: &Arc<Shared>, req: ListGroupsRequest) -> ListGroupsResponse {
    let broker = shared.broker();
    let now = broker.now_ms();
    let mut ids: BTreeSet<String> = broker.groups().active_groups().into_iter().collect();
    ids.extend(broker.groups_with_offsets());
    let filter: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let generic = broker.groups().generic();
    let generic_ids = generic.active_groups();
    let generic_listed = generic_ids.iter().filter_map(|id| {
        let d = generic.describe(id, now)?;
        let name = d.state.name();
        if !filter.is_empty() && !filter.contains(&name.to_lowercase()) {
            return None;
        }
        Some(
            ListedGroup::default()
                .with_group_id(GroupId(s(id)))
                .with_protocol_type(s(&d.protocol_type))
                .with_group_state(s(name))
                .with_group_type(s("classic")),
        )
    });
    let generic_listed: Vec<ListedGroup> = generic_listed.collect();
    ListGroupsResponse::default().with_groups(
        ids.into_iter()
            .filter(|id| !generic_ids.contains(id))
            .filter_map(|id| {
                let state = broker.groups().describe(&id, now).map_or(GroupState::Empty, |d| d.state);
                let name = state.name();
                if !filter.is_empty() && !filter.contains(&name.to_lowercase()) {
                    return None;
                }
                Some(
                    ListedGroup::default()
                        .with_group_id(GroupId(s(&id)))
                        .with_protocol_type(s(CONSUMER))
                        .with_group_state(s(name))
                        .with_group_type(s("classic")),
                )
            })
            .chain(generic_listed)
            .collect(),
    )
}

pub(super) fn describe(shared: &Arc<Shared>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let broker = shared.broker();
    let now = broker.now_ms();
    DescribeGroupsResponse::default().with_groups(
        req.groups
            .into_iter()
            .map(|id| {
                if let Some(d) = broker.groups().generic().describe(id.0.as_str(), now) {
                    if !d.members.is_empty() {
                        return DescribedGroup::default()
                            .with_group_id(id)
                            .with_group_state(s(d.state.name()))
                            .with_protocol_type(s(&d.protocol_type))
                            .with_protocol_data(s(d.protocol.as_deref().unwrap_or_default()))
                            .with_members(
                                d.members
                                    .into_iter()
                                    .map(|m| {
                                        DescribedGroupMember::default()
                                            .with_member_id(s(&m.member_id))
                                            .with_client_id(s(&m.client_id))
                                            .with_client_host(s(""))
                                            .with_member_metadata(m.metadata)
                                            .with_member_assignment(m.assignment)
                                    })
                                    .collect(),
                            );
                    }
                }
                let live = broker.groups().describe(id.0.as_str(), now);
                let has_offsets = !broker.committed_offsets(id.0.as_str()).is_empty();
                let group = DescribedGroup::default().with_group_id(id);
                match live {
                    Some(d) if !d.members.is_empty() || has_offsets || d.state != GroupState::Empty => group
                        .with_group_state(s(d.state.name()))
                        .with_protocol_type(s(CONSUMER))
                        .with_protocol_data(s(d.protocol.map_or("", |p| p.name())))
                        .with_members(
                            d.members
                                .iter()
                                .map(|m| {
                                    DescribedGroupMember::default()
                                        .with_member_id(s(&m.member_id))
                                        .with_client_id(s(&m.client_id))
                                        .with_client_host(s(""))
                                        .with_member_metadata(subscription_bytes(&m.topics, &m.owned))
                                        .with_member_assignment(assignment_bytes(&m.assignment))
                                })
                                .collect(),
                        ),
                    _ if has_offsets => group.with_group_state(s("Empty")).with_protocol_type(s(CONSUMER)),
                    _ => group.with_group_state(s("Dead")),
                }
            })
            .collect(),
    )
}

pub(super) async fn delete(shared: &Arc<Shared>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    blocking(shared, move |sh| {
        let broker = sh.broker();
        DeleteGroupsResponse::default().with_results(
            req.groups_names
                .into_iter()
                .map(|id| {
                    let group = id.0.to_string();
                    let known = broker.groups().describe(&group, broker.now_ms()).is_some();
                    let code = match broker.groups().remove_if_empty(&group, broker.now_ms()) {
                        Err(e) => error_code_for(&e).code(),
                        Ok(()) => match broker.delete_group_offsets(&group) {
                            Ok(0) if !known => ErrorCode::GroupIdNotFound.code(),
                            Ok(_) => ErrorCode::None.code(),
                            Err(e) => {
                                warn!(group, error = %e, "deleting group offsets failed");
                                error_code_for(&e).code()
                            }
                        },
                    };
                    DeletableGroupResult::default().with_group_id(id).with_error_code(code)
                })
                .collect(),
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_round_trip_and_garbage_is_an_error() {
        let topics: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let bytes = subscription_bytes(&topics, &[TopicPartition::new("a", 1)]);
        let sub = decode_subscription(&bytes).unwrap();
        assert_eq!(sub.topics.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>(), topics);
        assert!(decode_subscription(&Bytes::from_static(&[0])).is_err());
        assert!(decode_subscription(&Bytes::from_static(&[0, 1, 0, 0, 0, 9, 1])).is_err());
    }

    #[test]
    fn unknown_assignors_are_not_mapped() {
        assert_eq!(strategy("range"), Some(AssignmentStrategy::Range));
        assert_eq!(strategy("RoundRobinAssigner"), Some(AssignmentStrategy::RoundRobin));
        assert_eq!(strategy("sticky"), None);
    }

    #[test]
    fn assignments_group_partitions_by_topic() {
        let bytes = assignment_bytes(&[
            TopicPartition::new("t", 2),
            TopicPartition::new("t", 0),
            TopicPartition::new("u", 1),
        ]);
        let mut buf = bytes.slice(2..);
        let a = ConsumerProtocolAssignment::decode(&mut buf, 0).unwrap();
        assert_eq!(a.assigned_partitions.len(), 2);
        assert_eq!(a.assigned_partitions[0].partitions, vec![0, 2]);
    }
}
