//! Groups of any protocol type other than `consumer` (Kafka Connect's
//! `connect`, or an application's own): Kafka's classic group protocol
//! with the assignment computed by the group's *leader*, not here.
//!
//! The coordinator only keeps membership and passes bytes along:
//!
//! 1. Members *join* with a protocol type and a list of `(protocol name,
//!    metadata)` pairs, opaque to the coordinator. A new member, or a known
//!    member joining again, starts a rebalance: every member must rejoin
//!    (their heartbeats answer "rebalance in progress").
//! 2. The join phase ends when every member has rejoined, or when the
//!    largest rebalance timeout passes (members that did not rejoin are
//!    removed). The coordinator bumps the generation, picks the protocol
//!    (the first of the leader's that every member offers), keeps the
//!    leader if it is still a member (else takes the first member) and
//!    answers every pending join; the leader's answer carries every
//!    member's metadata for the chosen protocol.
//! 3. The leader *syncs* with one assignment (bytes) per member; the other
//!    members' syncs wait for it, then each gets its own bytes.
//! 4. A member silent for its session timeout is removed, and so is one
//!    that *leaves*; the others rebalance.
//!
//! Time is passed in (`now`, milliseconds), so timeouts are unit-tested
//! with a manual clock. Callers wait for changes with [`GenericGroups::watch`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;
use tracing::info;

/// A request to join (or rejoin) a generic group.
#[derive(Debug, Clone)]
pub(crate) struct GenericJoinRequest {
    /// The group.
    pub(crate) group_id: String,
    /// `None` for a new member; the id from the previous join otherwise.
    pub(crate) member_id: Option<String>,
    /// The client's name, for logs and describe.
    pub(crate) client_id: String,
    /// The protocol type (`connect`, ...); all members must agree.
    pub(crate) protocol_type: String,
    /// `(protocol name, metadata)`, preferred first.
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// `session.timeout.ms`.
    pub(crate) session_timeout_ms: u64,
    /// `rebalance.timeout.ms`: how long a rebalance waits for this member.
    pub(crate) rebalance_timeout_ms: u64,
}

/// What a member learns when the join phase it joined completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinedGeneration {
    /// The new generation.
    pub(crate) generation: i32,
    /// The chosen protocol.
    pub(crate) protocol: String,
    /// The leader's member id.
    pub(crate) leader: String,
    /// This member's id.
    pub(crate) member_id: String,
    /// Every member's `(id, metadata)` for the chosen protocol; empty
    /// unless this member is the leader.
    pub(crate) members: Vec<(String, Bytes)>,
}

/// What waiting for a join returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GenericJoinOutcome {
    /// Still waiting for members to rejoin.
    Pending,
    /// The join phase completed.
    Joined(JoinedGeneration),
    /// The member is not (or no longer) in the group.
    UnknownMember,
}

/// What a sync returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GenericSyncOutcome {
    /// Waiting for the leader's assignment.
    Pending,
    /// This member's assignment (empty when the leader gave it nothing).
    Assigned(Bytes),
    /// A rebalance started since this member joined: join again.
    RebalanceInProgress,
    /// The generation is not the group's current one.
    IllegalGeneration,
    /// The member is not (or no longer) in the group.
    UnknownMember,
}

/// What a heartbeat returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GenericHeartbeatOutcome {
    /// Keep going.
    Ok,
    /// A rebalance is in progress: join again.
    RebalanceInProgress,
    /// The generation is not the group's current one.
    IllegalGeneration,
    /// The member is not (or no longer) in the group.
    UnknownMember,
}

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GenericJoinError {
    /// The member id is unknown to the group: join again without one.
    UnknownMember,
    /// The protocol type differs from the group's, or no protocol is
    /// shared with the members; the message says which.
    InconsistentProtocol(String),
}

/// A generic group's state (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GenericGroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assigned.
    Stable,
}

impl GenericGroupState {
    /// Kafka's name for the state.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GenericGroupState::Empty => "Empty",
            GenericGroupState::PreparingRebalance => "PreparingRebalance",
            GenericGroupState::CompletingRebalance => "CompletingRebalance",
            GenericGroupState::Stable => "Stable",
        }
    }
}

/// One member as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GenericMemberDescription {
    /// Member id.
    pub(crate) member_id: String,
    /// Client id.
    pub(crate) client_id: String,
    /// Metadata for the group's protocol (empty before one was chosen).
    pub(crate) metadata: Bytes,
    /// The member's current assignment.
    pub(crate) assignment: Bytes,
}

/// A generic group as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GenericGroupDescription {
    /// State.
    pub(crate) state: GenericGroupState,
    /// Protocol type.
    pub(crate) protocol_type: String,
    /// The chosen protocol, once a generation completed.
    pub(crate) protocol: Option<String>,
    /// Current generation.
    pub(crate) generation: i32,
    /// Members by id.
    pub(crate) members: Vec<GenericMemberDescription>,
}

#[derive(Debug)]
struct Member {
    client_id: String,
    protocols: Vec<(String, Bytes)>,
    last_heartbeat: i64,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    /// Joined the rebalance in progress (or the last completed one).
    joined: bool,
}

#[derive(Debug)]
struct Group {
    protocol_type: String,
    generation: i32,
    state: GenericGroupState,
    rebalance_deadline: i64,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    assignments: BTreeMap<String, Bytes>,
    changed: watch::Sender<u64>,
}

impl Group {
    fn new(protocol_type: &str) -> Self {
        Group {
            protocol_type: protocol_type.to_string(),
            generation: 0,
            state: GenericGroupState::Empty,
            rebalance_deadline: 0,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            assignments: BTreeMap::new(),
            changed: watch::Sender::new(0),
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn start_rebalance(&mut self, group_id: &str, now: i64, reason: &str) {
        if self.state == GenericGroupState::PreparingRebalance {
            self.bump();
            return;
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        info!(group = group_id, generation = self.generation, reason, "rebalance started");
        self.state = GenericGroupState::PreparingRebalance;
        self.rebalance_deadline = now.saturating_add(timeout as i64);
        self.assignments.clear();
        for m in self.members.values_mut() {
            m.joined = false;
        }
        self.bump();
    }

    fn remove(&mut self, group_id: &str, id: &str, now: i64, reason: &str) {
        if self.members.remove(id).is_none() {
            return;
        }
        info!(group = group_id, member = id, reason, "member removed");
        if self.members.is_empty() {
            self.state = GenericGroupState::Empty;
            self.assignments.clear();
            self.leader = None;
            self.bump();
        } else {
            self.start_rebalance(group_id, now, reason);
        }
    }

    fn expire(&mut self, group_id: &str, now: i64) {
        let dead: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_sub(m.last_heartbeat) > m.session_timeout_ms as i64)
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            self.remove(group_id, &id, now, "session timed out");
        }
    }

    /// Ends the join phase if everyone rejoined or the deadline passed.
    fn try_complete(&mut self, group_id: &str, now: i64) {
        if self.state != GenericGroupState::PreparingRebalance {
            return;
        }
        if !super::end_join_phase(&mut self.members, |m| m.joined, self.rebalance_deadline, now, group_id) {
            return;
        }
        if self.members.is_empty() {
            self.state = GenericGroupState::Empty;
            self.leader = None;
            self.bump();
            return;
        }
        let leader = match &self.leader {
            Some(l) if self.members.contains_key(l) => l.clone(),
            _ => self.members.keys().next().expect("non-empty").clone(),
        };
        // Joins check that a shared protocol exists, so one is found.
        let protocol = self.members[&leader]
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
            .unwrap_or_default();
        self.generation += 1;
        self.leader = Some(leader.clone());
        self.protocol = Some(protocol.clone());
        self.state = GenericGroupState::CompletingRebalance;
        info!(
            group = group_id,
            generation = self.generation,
            protocol,
            leader,
            members = self.members.len(),
            "join phase completed"
        );
        self.bump();
    }

    fn metadata_of(&self, member: &Member) -> Bytes {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        member.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

/// The generic (non-consumer) groups of one broker.
#[derive(Debug, Default)]
pub(crate) struct GenericGroups {
    groups: Mutex<HashMap<String, Group>>,
    next_member: std::sync::atomic::AtomicU64,
}

impl GenericGroups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins (or rejoins) a group and starts a rebalance; returns the member
    /// id to use from now on. Wait for the outcome with
    /// [`GenericGroups::join_outcome`].
    ///
    /// # Errors
    /// [`GenericJoinError`]: an unknown member id, or a protocol type or
    /// protocol list the group's members do not share.
    pub(crate) fn join(&self, req: GenericJoinRequest, now: i64) -> Result<String, GenericJoinError> {
        let mut groups = self.lock();
        let group = groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.protocol_type));
        group.expire(&req.group_id, now);
        if group.members.is_empty() {
            group.protocol_type = req.protocol_type.clone();
        } else if group.protocol_type != req.protocol_type {
            return Err(GenericJoinError::InconsistentProtocol(format!(
                "group `{}` has protocol type `{}`, not `{}`",
                req.group_id, group.protocol_type, req.protocol_type
            )));
        }
        if req.protocols.is_empty() {
            return Err(GenericJoinError::InconsistentProtocol("no protocol offered".into()));
        }
        let shared = req.protocols.iter().any(|(name, _)| {
            group
                .members
                .iter()
                .filter(|(id, _)| req.member_id.as_deref() != Some(id.as_str()))
                .all(|(_, m)| m.protocols.iter().any(|(n, _)| n == name))
        });
        if !shared {
            let offered: Vec<&str> = req.protocols.iter().map(|(n, _)| n.as_str()).collect();
            return Err(GenericJoinError::InconsistentProtocol(format!(
                "none of the protocols {offered:?} is offered by every member of group `{}`",
                req.group_id
            )));
        }
        let (member_id, is_new) = match req.member_id {
            Some(id) if group.members.contains_key(&id) => (id, false),
            Some(_) => return Err(GenericJoinError::UnknownMember),
            None => {
                let n = self.next_member.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (format!("{}-{n}-{:x}", req.client_id, now), true)
            }
        };
        if group.state != GenericGroupState::PreparingRebalance {
            group.start_rebalance(
                &req.group_id,
                now,
                if is_new { "member joined" } else { "member rejoined" },
            );
        }
        group.members.insert(
            member_id.clone(),
            Member {
                client_id: req.client_id,
                protocols: req.protocols,
                last_heartbeat: now,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                joined: true,
            },
        );
        // A new member may extend how long the rebalance waits.
        let deadline = now.saturating_add(req.rebalance_timeout_ms as i64);
        group.rebalance_deadline = group.rebalance_deadline.max(deadline);
        group.bump();
        group.try_complete(&req.group_id, now);
        Ok(member_id)
    }

    /// Whether the join phase `member_id` joined has completed. A member
    /// waiting here counts as alive.
    pub(crate) fn join_outcome(&self, group_id: &str, member_id: &str, now: i64) -> GenericJoinOutcome {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return GenericJoinOutcome::UnknownMember };
        if let Some(m) = group.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        group.expire(group_id, now);
        group.try_complete(group_id, now);
        let Some(member) = group.members.get(member_id) else { return GenericJoinOutcome::UnknownMember };
        if group.state == GenericGroupState::PreparingRebalance || !member.joined {
            return GenericJoinOutcome::Pending;
        }
        let leader = group.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            group.members.iter().map(|(id, m)| (id.clone(), group.metadata_of(m))).collect()
        } else {
            Vec::new()
        };
        GenericJoinOutcome::Joined(JoinedGeneration {
            generation: group.generation,
            protocol: group.protocol.clone().unwrap_or_default(),
            leader,
            member_id: member_id.to_string(),
            members,
        })
    }

    /// Syncs: the leader hands in every member's assignment
    /// (`assignments`); every member then gets its own. A follower's sync
    /// stays [`GenericSyncOutcome::Pending`] until the leader's arrives.
    pub(crate) fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> GenericSyncOutcome {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return GenericSyncOutcome::UnknownMember };
        if let Some(m) = group.members.get_mut(member_id) {
            m.last_heartbeat = now;
        }
        group.expire(group_id, now);
        group.try_complete(group_id, now);
        if !group.members.contains_key(member_id) {
            return GenericSyncOutcome::UnknownMember;
        }
        if group.state == GenericGroupState::PreparingRebalance {
            return GenericSyncOutcome::RebalanceInProgress;
        }
        if generation != group.generation {
            return GenericSyncOutcome::IllegalGeneration;
        }
        if group.state == GenericGroupState::CompletingRebalance && group.leader.as_deref() == Some(member_id)
        {
            group.assignments =
                assignments.into_iter().filter(|(id, _)| group.members.contains_key(id)).collect();
            group.state = GenericGroupState::Stable;
            info!(group = group_id, generation, "assignment received from the leader");
            group.bump();
        }
        match group.state {
            GenericGroupState::Stable => {
                GenericSyncOutcome::Assigned(group.assignments.get(member_id).cloned().unwrap_or_default())
            }
            _ => GenericSyncOutcome::Pending,
        }
    }

    /// Records that the member is alive; says whether it must rejoin.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        now: i64,
    ) -> GenericHeartbeatOutcome {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return GenericHeartbeatOutcome::UnknownMember };
        group.expire(group_id, now);
        group.try_complete(group_id, now);
        let Some(member) = group.members.get_mut(member_id) else {
            return GenericHeartbeatOutcome::UnknownMember;
        };
        member.last_heartbeat = now;
        if group.state == GenericGroupState::PreparingRebalance {
            GenericHeartbeatOutcome::RebalanceInProgress
        } else if generation != group.generation {
            GenericHeartbeatOutcome::IllegalGeneration
        } else {
            GenericHeartbeatOutcome::Ok
        }
    }

    /// Removes a member (it is closing); the others rebalance. Returns
    /// whether it was a member.
    pub(crate) fn leave(&self, group_id: &str, member_id: &str, now: i64) -> bool {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else { return false };
        let known = group.members.contains_key(member_id);
        group.remove(group_id, member_id, now, "member left");
        known
    }

    /// Whether this id names a generic group with members.
    pub(crate) fn is_active(&self, group_id: &str, now: i64) -> bool {
        let mut groups = self.lock();
        groups.get_mut(group_id).is_some_and(|g| {
            g.expire(group_id, now);
            !g.members.is_empty()
        })
    }

    /// A receiver that changes whenever the group does (to wait for a join
    /// phase or the leader's assignment without polling).
    pub(crate) fn watch(&self, group_id: &str, protocol_type: &str) -> watch::Receiver<u64> {
        let mut groups = self.lock();
        groups.entry(group_id.to_string()).or_insert_with(|| Group::new(protocol_type)).changed.subscribe()
    }

    /// The group's state and members; `None` if unknown.
    pub(crate) fn describe(&self, group_id: &str, now: i64) -> Option<GenericGroupDescription> {
        let mut groups = self.lock();
        let group = groups.get_mut(group_id)?;
        group.expire(group_id, now);
        Some(GenericGroupDescription {
            state: group.state,
            protocol_type: group.protocol_type.clone(),
            protocol: group.protocol.clone(),
            generation: group.generation,
            members: group
                .members
                .iter()
                .map(|(id, m)| GenericMemberDescription {
                    member_id: id.clone(),
                    client_id: m.client_id.clone(),
                    metadata: group.metadata_of(m),
                    assignment: group.assignments.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Ids of the generic groups that have members.
    pub(crate) fn active_groups(&self) -> Vec<String> {
        let groups = self.lock();
        let mut v: Vec<String> =
            groups.iter().filter(|(_, g)| !g.members.is_empty()).map(|(id, _)| id.clone()).collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(member: Option<&str>, meta: &'static str) -> GenericJoinRequest {
        GenericJoinRequest {
            group_id: "g".into(),
            member_id: member.map(String::from),
            client_id: "w".into(),
            protocol_type: "connect".into(),
            protocols: vec![("v1".into(), Bytes::from_static(meta.as_bytes()))],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
        }
    }

    fn joined(g: &GenericGroups, id: &str, now: i64) -> JoinedGeneration {
        match g.join_outcome("g", id, now) {
            GenericJoinOutcome::Joined(j) => j,
            other => panic!("expected a completed join, got {other:?}"),
        }
    }

    #[test]
    fn the_leader_gets_every_members_metadata_and_its_assignment_reaches_each_member() {
        let g = GenericGroups::default();
        let a = g.join(req(None, "meta-a"), 0).unwrap();
        let ja = joined(&g, &a, 0);
        assert_eq!((ja.generation, ja.leader.as_str()), (1, a.as_str()));
        assert_eq!(g.sync("g", &a, 1, vec![(a.clone(), Bytes::from_static(b"x"))], 0), {
            GenericSyncOutcome::Assigned(Bytes::from_static(b"x"))
        });
        // b joins: a learns of the rebalance from its heartbeat and rejoins.
        let b = g.join(req(None, "meta-b"), 10).unwrap();
        assert_eq!(g.join_outcome("g", &b, 10), GenericJoinOutcome::Pending);
        assert_eq!(g.heartbeat("g", &a, 1, 20), GenericHeartbeatOutcome::RebalanceInProgress);
        g.join(req(Some(&a), "meta-a2"), 30).unwrap();
        let (ja, jb) = (joined(&g, &a, 30), joined(&g, &b, 30));
        assert_eq!((ja.generation, ja.leader.clone()), (2, a.clone()), "the leader stays the leader");
        assert_eq!(ja.protocol, "v1");
        let metas: Vec<&[u8]> = ja.members.iter().map(|(_, m)| m.as_ref()).collect();
        assert_eq!(metas.len(), 2);
        assert!(metas.contains(&&b"meta-a2"[..]) && metas.contains(&&b"meta-b"[..]));
        assert!(jb.members.is_empty(), "only the leader sees the members");
        // The follower waits for the leader's assignment.
        assert_eq!(g.sync("g", &b, 2, vec![], 31), GenericSyncOutcome::Pending);
        assert_eq!(g.heartbeat("g", &b, 2, 31), GenericHeartbeatOutcome::Ok, "completing is not rebalancing");
        let plan = vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))];
        assert_eq!(g.sync("g", &a, 2, plan, 32), GenericSyncOutcome::Assigned(Bytes::from_static(b"A")));
        assert_eq!(g.sync("g", &b, 2, vec![], 33), GenericSyncOutcome::Assigned(Bytes::from_static(b"B")));
        assert_eq!(g.heartbeat("g", &b, 1, 34), GenericHeartbeatOutcome::IllegalGeneration);
        let d = g.describe("g", 35).unwrap();
        assert_eq!((d.state, d.members.len()), (GenericGroupState::Stable, 2));
    }

    #[test]
    fn a_silent_member_is_removed_and_the_survivor_leads_the_next_generation() {
        let g = GenericGroups::default();
        let a = g.join(req(None, "a"), 0).unwrap();
        let b = g.join(req(None, "b"), 0).unwrap();
        // a's first generation completed alone; b's arrival makes it rejoin.
        assert_eq!(g.sync("g", &a, 1, vec![], 0), GenericSyncOutcome::RebalanceInProgress);
        g.join(req(Some(&a), "a"), 0).unwrap();
        assert_eq!(joined(&g, &a, 0).leader, a);
        g.sync("g", &a, 2, vec![], 0);
        // a goes silent; b keeps heartbeating.
        for t in (1_000..=10_000).step_by(1_000) {
            assert_eq!(g.heartbeat("g", &b, 2, t), GenericHeartbeatOutcome::Ok);
        }
        assert_eq!(g.heartbeat("g", &b, 2, 10_001), GenericHeartbeatOutcome::RebalanceInProgress);
        g.join(req(Some(&b), "b"), 10_002).unwrap();
        let jb = joined(&g, &b, 10_002);
        assert_eq!((jb.generation, jb.leader.as_str(), jb.members.len()), (3, b.as_str(), 1));
        assert_eq!(g.heartbeat("g", &a, 2, 10_003), GenericHeartbeatOutcome::UnknownMember);
        assert_eq!(g.join(req(Some(&a), "a"), 10_004), Err(GenericJoinError::UnknownMember));
    }

    #[test]
    fn a_member_that_does_not_rejoin_in_time_is_dropped_from_the_generation() {
        let g = GenericGroups::default();
        let a = g.join(req(None, "a"), 0).unwrap();
        g.sync("g", &a, 1, vec![], 0);
        let b = g.join(req(None, "b"), 100).unwrap();
        // a heartbeats but never rejoins: after the rebalance timeout b goes on alone.
        for t in (5_000..=30_000).step_by(5_000) {
            assert_eq!(g.heartbeat("g", &a, 1, t), GenericHeartbeatOutcome::RebalanceInProgress);
            assert_eq!(g.join_outcome("g", &b, t), GenericJoinOutcome::Pending);
        }
        let jb = joined(&g, &b, 30_101);
        assert_eq!((jb.leader.as_str(), jb.members.len()), (b.as_str(), 1));
        assert_eq!(g.heartbeat("g", &a, 1, 30_102), GenericHeartbeatOutcome::UnknownMember);
    }

    #[test]
    fn leaving_starts_a_rebalance_and_mismatched_protocols_are_refused() {
        let g = GenericGroups::default();
        let a = g.join(req(None, "a"), 0).unwrap();
        let b = g.join(req(None, "b"), 0).unwrap();
        g.join(req(Some(&a), "a"), 0).unwrap();
        g.sync("g", &joined(&g, &a, 0).leader, 2, vec![], 0);
        assert!(g.leave("g", &b, 5));
        assert_eq!(g.heartbeat("g", &a, 2, 6), GenericHeartbeatOutcome::RebalanceInProgress);
        let mut other = req(None, "c");
        other.protocol_type = "consumer-ish".into();
        assert!(
            matches!(g.join(other, 7), Err(GenericJoinError::InconsistentProtocol(m)) if m.contains("protocol type"))
        );
        let mut other = req(None, "c");
        other.protocols = vec![("v2".into(), Bytes::new())];
        assert!(
            matches!(g.join(other, 7), Err(GenericJoinError::InconsistentProtocol(m)) if m.contains("v2"))
        );
    }
}
