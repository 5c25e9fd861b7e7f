//! The embedded group coordinator: membership, generations, rebalances and
//! assignment for consumer groups.
//!
//! The protocol follows Kafka's classic group protocol, run in-process:
//!
//! 1. A member *joins* with its subscription, supported assignors and the
//!    partitions it owns. A join from a new member, or a changed
//!    subscription, starts a rebalance: every member must rejoin (members
//!    learn it from their heartbeat).
//! 2. The rebalance completes when every member has rejoined, or when the
//!    largest rebalance timeout (`max.poll.interval.ms`) passes — members
//!    that did not rejoin are removed. The coordinator then picks the first
//!    assignor all members support, computes the assignment, and bumps the
//!    *generation*. Members *sync* to receive their partitions.
//! 3. Members *heartbeat*; one that stays silent for `session.timeout.ms`
//!    is removed and a rebalance starts. A change in the partition count of
//!    a subscribed topic also starts one.
//! 4. Offset commits carry the member id and generation; a commit from a
//!    member that is no longer in the group, or from an old generation (a
//!    zombie), is rejected.
//!
//! With `cooperative-sticky`, members keep consuming during a rebalance.
//! A partition that moves is first left out of everyone's assignment; its old
//! owner revokes it and rejoins, and the follow-up rebalance gives it to the
//! new owner. Only moved partitions are ever revoked.
//!
//! Time is passed in (`now`), so session timeouts are tested with a manual
//! clock.

pub(crate) mod assignor;
mod generic;

pub(crate) use generic::{
    GenericGroups, GenericHeartbeatOutcome, GenericJoinError, GenericJoinOutcome, GenericJoinRequest,
    GenericSyncOutcome,
};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::watch;
use tracing::info;

use crate::topic::TopicPartition;
use crate::vocabulary::AssignmentStrategy;
pub use crate::vocabulary::GroupState;
use crate::{CommitRejection, Error, Result};
use assignor::MemberSubscription;

/// Ends a rebalance's join phase once every member has rejoined or the
/// `deadline` has passed: members that did not rejoin are removed, and
/// true is returned. False while the phase goes on. Shared by consumer and
/// leader-assigned groups.
fn end_join_phase<M>(
    members: &mut BTreeMap<String, M>,
    joined: impl Fn(&M) -> bool,
    deadline: i64,
    now: i64,
    group_id: &str,
) -> bool {
    if !members.values().all(&joined) && now < deadline {
        return false;
    }
    members.retain(|id, m| {
        let keep = joined(m);
        if !keep {
            info!(group = group_id, member = %id, "member removed: did not rejoin within the rebalance timeout");
        }
        keep
    });
    true
}

/// A request to join (or rejoin) a group.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The group.
    pub group_id: String,
    /// `None` for a new member; the id from the previous join otherwise.
    pub member_id: Option<String>,
    /// The client's name, for describe.
    pub client_id: String,
    /// Subscribed topics.
    pub topics: BTreeSet<String>,
    /// Supported assignors, preferred first.
    pub strategies: Vec<AssignmentStrategy>,
    /// Partitions the member owns now (cooperative rebalancing).
    pub owned: Vec<TopicPartition>,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u64,
    /// `max.poll.interval.ms`: how long a rebalance waits for this member.
    pub rebalance_timeout_ms: u64,
}

/// A member's share after a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAssignment {
    /// The generation this assignment belongs to.
    pub generation: i32,
    /// The assignor that produced it.
    pub protocol: AssignmentStrategy,
    /// Partitions to consume.
    pub partitions: Vec<TopicPartition>,
}

/// What a sync returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The rebalance is still waiting for members.
    Pending,
    /// The rebalance completed.
    Assigned(MemberAssignment),
    /// The member is not (or no longer) in the group: join again as new.
    UnknownMember,
    /// A newer rebalance started since this member joined: join again.
    Rejoin,
}

/// What a heartbeat returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// Keep going.
    Ok,
    /// A rebalance is in progress or the member's generation is old: rejoin.
    Rejoin,
    /// The member was removed (session timeout, or left): join again as new.
    UnknownMember,
}

/// One member in a group description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Subscribed topics.
    pub topics: BTreeSet<String>,
    /// Partitions the member said it owned when it last joined.
    pub owned: Vec<TopicPartition>,
    /// Current assignment.
    pub assignment: Vec<TopicPartition>,
}

/// A group's membership as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: GroupState,
    /// Current generation.
    pub generation: i32,
    /// The assignor in use.
    pub protocol: Option<AssignmentStrategy>,
    /// Members, by id.
    pub members: Vec<MemberDescription>,
}

#[derive(Debug)]
struct Member {
    client_id: String,
    topics: BTreeSet<String>,
    strategies: Vec<AssignmentStrategy>,
    owned: Vec<TopicPartition>,
    last_heartbeat: i64,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    /// Rejoined for the rebalance in progress (or the last completed one).
    joined: bool,
}

#[derive(Debug)]
struct Group {
    generation: i32,
    state: GroupState,
    rebalance_deadline: i64,
    protocol: Option<AssignmentStrategy>,
    members: BTreeMap<String, Member>,
    assignment: BTreeMap<String, Vec<TopicPartition>>,
    partition_counts: BTreeMap<String, i32>,
    /// The last cooperative rebalance held partitions back; the rejoin of
    /// their old owner must start the follow-up rebalance.
    moves_pending: bool,
    changed: watch::Sender<u64>,
}

impl Group {
    fn new() -> Self {
        Group {
            generation: 0,
            state: GroupState::Empty,
            rebalance_deadline: 0,
            protocol: None,
            members: BTreeMap::new(),
            assignment: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            moves_pending: false,
            changed: watch::Sender::new(0),
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    fn start_rebalance(&mut self, group_id: &str, now: i64, reason: &str) {
        let timeout = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        if self.state == GroupState::PreparingRebalance {
            // Already waiting: members that rejoined stay joined.
            self.bump();
            return;
        }
        info!(group = group_id, generation = self.generation, reason, "rebalance started");
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = now.saturating_add(timeout as i64);
        for m in self.members.values_mut() {
            m.joined = false;
        }
        self.bump();
    }

    fn expire(&mut self, group_id: &str, now: i64) {
        let dead: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_sub(m.last_heartbeat) > m.session_timeout_ms as i64)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &dead {
            info!(group = group_id, member = %id, "member removed after session timeout");
            self.members.remove(id);
            self.assignment.remove(id);
        }
        if !dead.is_empty() {
            self.after_departure(group_id, now, "member session timed out");
        }
    }

    fn after_departure(&mut self, group_id: &str, now: i64, reason: &str) {
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.assignment.clear();
            self.bump();
        } else {
            self.start_rebalance(group_id, now, reason);
        }
    }

    /// Completes the rebalance if everyone rejoined or the deadline passed.
    fn try_complete(&mut self, group_id: &str, now: i64, counts: &dyn Fn(&str) -> Option<i32>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        if !end_join_phase(&mut self.members, |m| m.joined, self.rebalance_deadline, now, group_id) {
            return;
        }
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.assignment.clear();
            self.bump();
            return;
        }
        // The first assignor of the first member that every member supports.
        let first = self.members.values().next().expect("non-empty");
        let protocol = first
            .strategies
            .iter()
            .copied()
            .find(|s| self.members.values().all(|m| m.strategies.contains(s)))
            .unwrap_or(AssignmentStrategy::Range);
        let topics: BTreeSet<&String> = self.members.values().flat_map(|m| m.topics.iter()).collect();
        let partition_counts: BTreeMap<String, i32> =
            topics.into_iter().filter_map(|t| counts(t).map(|n| (t.clone(), n))).collect();
        let subs: Vec<MemberSubscription> = self
            .members
            .iter()
            .map(|(id, m)| MemberSubscription {
                member_id: id.clone(),
                topics: m.topics.clone(),
                owned: m.owned.clone(),
            })
            .collect();
        let mut target = assignor::assign(protocol, &subs, &partition_counts);
        self.moves_pending = false;
        if protocol == AssignmentStrategy::CooperativeSticky {
            // Hold back partitions that change owner: the current owner must
            // revoke them first, then rejoin for a follow-up rebalance.
            let owner: HashMap<&TopicPartition, &String> =
                self.members.iter().flat_map(|(id, m)| m.owned.iter().map(move |tp| (tp, id))).collect();
            for (id, list) in target.iter_mut() {
                let before = list.len();
                list.retain(|tp| owner.get(tp).is_none_or(|o| *o == id));
                self.moves_pending |= list.len() != before;
            }
        }
        self.generation += 1;
        self.protocol = Some(protocol);
        self.assignment = target;
        self.partition_counts = partition_counts;
        self.state = GroupState::Stable;
        info!(
            group = group_id,
            generation = self.generation,
            protocol = protocol.name(),
            members = self.members.len(),
            "rebalance completed"
        );
        self.bump();
    }
}

/// All consumer groups of one broker, and (through
/// [`GroupCoordinator::generic`]) its groups of other protocol types.
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    next_member: std::sync::atomic::AtomicU64,
    generic: GenericGroups,
}

impl GroupCoordinator {
    /// The groups whose protocol type is not `consumer` (Kafka Connect's
    /// `connect`, ...): leader-assigned, see [`GenericGroups`].
    pub(crate) fn generic(&self) -> &GenericGroups {
        &self.generic
    }

    /// Joins (or rejoins) a group; returns the member id to use from now on.
    ///
    /// # Errors
    /// [`Error::UnknownMember`] when `member_id` names a member the group
    /// removed: join again without an id.
    pub fn join(&self, req: JoinRequest, now: i64, counts: &dyn Fn(&str) -> Option<i32>) -> Result<String> {
        let mut groups = self.groups.lock().expect("groups lock");
        let group = groups.entry(req.group_id.clone()).or_insert_with(Group::new);
        group.expire(&req.group_id, now);
        if !group.members.is_empty()
            && !req.strategies.iter().any(|s| group.members.values().all(|m| m.strategies.contains(s)))
        {
            return Err(Error::InconsistentGroupProtocol {
                group: req.group_id,
                offered: req.strategies.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
            });
        }
        let (member_id, is_new) = match req.member_id {
            Some(id) if group.members.contains_key(&id) => (id, false),
            Some(id) => return Err(Error::UnknownMember { group: req.group_id, member: id }),
            None => {
                let n = self.next_member.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (format!("{}-{n}-{:x}", req.client_id, now), true)
            }
        };
        let changed_subscription = group
            .members
            .get(&member_id)
            .is_some_and(|m| m.topics != req.topics || m.strategies != req.strategies);
        let member = group.members.entry(member_id.clone()).or_insert_with(|| Member {
            client_id: req.client_id.clone(),
            topics: BTreeSet::new(),
            strategies: Vec::new(),
            owned: Vec::new(),
            last_heartbeat: now,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            joined: false,
        });
        member.topics = req.topics;
        member.strategies = req.strategies;
        member.owned = req.owned;
        member.last_heartbeat = now;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        // A member already in the current generation that rejoins with the
        // same subscription and the partitions it was given needs no
        // rebalance (unless a cooperative move is waiting for it).
        let up_to_date = !is_new
            && !changed_subscription
            && group.state == GroupState::Stable
            && !group.moves_pending
            && group.members[&member_id].joined
            && {
                let mut owned = group.members[&member_id].owned.clone();
                owned.sort();
                let mut assigned = group.assignment.get(&member_id).cloned().unwrap_or_default();
                assigned.sort();
                owned == assigned
            };
        if group.state != GroupState::PreparingRebalance && !up_to_date {
            let reason = if is_new {
                "member joined"
            } else if changed_subscription {
                "subscription changed"
            } else {
                "member rejoined"
            };
            group.start_rebalance(&req.group_id, now, reason);
        }
        group.members.get_mut(&member_id).expect("inserted").joined = true;
        group.try_complete(&req.group_id, now, counts);
        Ok(member_id)
    }

    /// The member's assignment once the rebalance it joined completes.
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        now: i64,
        counts: &dyn Fn(&str) -> Option<i32>,
    ) -> SyncOutcome {
        let mut groups = self.groups.lock().expect("groups lock");
        let Some(group) = groups.get_mut(group_id) else { return SyncOutcome::UnknownMember };
        group.expire(group_id, now);
        group.try_complete(group_id, now, counts);
        let Some(member) = group.members.get(member_id) else { return SyncOutcome::UnknownMember };
        if group.state == GroupState::Stable && member.joined {
            SyncOutcome::Assigned(MemberAssignment {
                generation: group.generation,
                protocol: group.protocol.unwrap_or(AssignmentStrategy::Range),
                partitions: group.assignment.get(member_id).cloned().unwrap_or_default(),
            })
        } else if !member.joined {
            // A newer rebalance started after this member joined: join again.
            SyncOutcome::Rejoin
        } else {
            SyncOutcome::Pending
        }
    }

    /// Records that the member is alive; says whether it must rejoin.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        now: i64,
        counts: &dyn Fn(&str) -> Option<i32>,
    ) -> HeartbeatOutcome {
        let mut groups = self.groups.lock().expect("groups lock");
        let Some(group) = groups.get_mut(group_id) else { return HeartbeatOutcome::UnknownMember };
        group.expire(group_id, now);
        let Some(member) = group.members.get_mut(member_id) else { return HeartbeatOutcome::UnknownMember };
        member.last_heartbeat = now;
        if group.state == GroupState::Stable {
            let grown =
                group.partition_counts.iter().any(|(t, &n)| counts(t).is_some_and(|now_n| now_n != n));
            let appeared = group
                .members
                .values()
                .flat_map(|m| m.topics.iter())
                .any(|t| !group.partition_counts.contains_key(t) && counts(t).is_some());
            if grown || appeared {
                group.start_rebalance(group_id, now, "partitions of a subscribed topic changed");
            }
        }
        group.try_complete(group_id, now, counts);
        if group.state == GroupState::PreparingRebalance || generation != group.generation {
            HeartbeatOutcome::Rejoin
        } else {
            HeartbeatOutcome::Ok
        }
    }

    /// Removes a member (it is closing); the others rebalance.
    pub fn leave(&self, group_id: &str, member_id: &str, now: i64) {
        let mut groups = self.groups.lock().expect("groups lock");
        if let Some(group) = groups.get_mut(group_id) {
            if group.members.remove(member_id).is_some() {
                info!(group = group_id, member = member_id, "member left");
                group.assignment.remove(member_id);
                group.after_departure(group_id, now, "member left");
            }
        }
    }

    /// Checks that a commit comes from a current member of the current
    /// generation, or (with no member id) that the group has no members.
    ///
    /// # Errors
    /// [`Error::CommitFailed`] saying why.
    pub fn validate_commit(&self, group_id: &str, member: Option<(&str, i32)>, now: i64) -> Result<()> {
        self.commit(group_id, member, now, || Ok(()))
    }

    /// Validates a commit as [`GroupCoordinator::validate_commit`] does and,
    /// if it passes, runs `write` (which stores the offsets) before the group
    /// can change: a member fenced a moment earlier cannot slip a commit in.
    ///
    /// # Errors
    /// [`Error::CommitFailed`], or what `write` returns.
    pub fn commit(
        &self,
        group_id: &str,
        member: Option<(&str, i32)>,
        now: i64,
        write: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let mut groups = self.groups.lock().expect("groups lock");
        let fail = |rejection: CommitRejection, reason: String| Error::CommitFailed {
            group: group_id.to_string(),
            rejection,
            reason,
        };
        let Some(group) = groups.get_mut(group_id) else {
            return match member {
                None => write(),
                Some((id, _)) => {
                    Err(fail(CommitRejection::UnknownMember, format!("member {id} is not in the group")))
                }
            };
        };
        group.expire(group_id, now);
        match member {
            None if group.members.is_empty() => write(),
            None => Err(fail(
                CommitRejection::GroupActive,
                "the group has active members; only they may commit".into(),
            )),
            Some((id, _)) if !group.members.contains_key(id) => Err(fail(
                CommitRejection::UnknownMember,
                format!("member {id} is no longer in the group (it was removed or left)"),
            )),
            Some((_, generation)) if generation != group.generation => Err(fail(
                CommitRejection::IllegalGeneration,
                format!("generation {generation} is fenced; the group is at generation {}", group.generation),
            )),
            Some(_) => write(),
        }
    }

    /// A receiver that changes whenever the group's membership or
    /// assignment does (to wait for a rebalance without polling).
    pub fn watch(&self, group_id: &str) -> watch::Receiver<u64> {
        let mut groups = self.groups.lock().expect("groups lock");
        groups.entry(group_id.to_string()).or_insert_with(Group::new).changed.subscribe()
    }

    /// The group's state, generation and members; `None` if unknown.
    pub fn describe(&self, group_id: &str, now: i64) -> Option<GroupDescription> {
        let mut groups = self.groups.lock().expect("groups lock");
        let group = groups.get_mut(group_id)?;
        group.expire(group_id, now);
        Some(GroupDescription {
            group_id: group_id.to_string(),
            state: group.state,
            generation: group.generation,
            protocol: group.protocol,
            members: group
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    client_id: m.client_id.clone(),
                    topics: m.topics.clone(),
                    owned: m.owned.clone(),
                    assignment: group.assignment.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Groups that currently have members.
    pub fn active_groups(&self) -> Vec<String> {
        let groups = self.groups.lock().expect("groups lock");
        let mut v: Vec<String> =
            groups.iter().filter(|(_, g)| !g.members.is_empty()).map(|(id, _)| id.clone()).collect();
        v.sort();
        v
    }

    /// Forgets an empty group.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`] while it has members.
    pub fn remove_if_empty(&self, group_id: &str, now: i64) -> Result<()> {
        let mut groups = self.groups.lock().expect("groups lock");
        if let Some(group) = groups.get_mut(group_id) {
            group.expire(group_id, now);
            if !group.members.is_empty() {
                return Err(Error::GroupNotEmpty(group_id.to_string()));
            }
            groups.remove(group_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(t: &str) -> Option<i32> {
        match t {
            "t" => Some(4),
            _ => None,
        }
    }

    fn req(member: Option<&str>, owned: Vec<TopicPartition>, strategy: AssignmentStrategy) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member.map(String::from),
            client_id: "c".into(),
            topics: BTreeSet::from(["t".to_string()]),
            strategies: vec![strategy],
            owned,
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
        }
    }

    fn assigned(c: &GroupCoordinator, id: &str, now: i64) -> MemberAssignment {
        match c.sync("g", id, now, &counts) {
            SyncOutcome::Assigned(a) => a,
            other => panic!("expected an assignment, got {other:?}"),
        }
    }

    #[test]
    fn a_second_member_triggers_a_rebalance_that_waits_for_the_first_to_rejoin() {
        let c = GroupCoordinator::default();
        let a = c.join(req(None, vec![], AssignmentStrategy::Range), 0, &counts).unwrap();
        let first = assigned(&c, &a, 0);
        assert_eq!((first.generation, first.partitions.len()), (1, 4));
        let b = c.join(req(None, vec![], AssignmentStrategy::Range), 10, &counts).unwrap();
        assert_eq!(c.sync("g", &b, 10, &counts), SyncOutcome::Pending);
        assert_eq!(c.heartbeat("g", &a, 1, 20, &counts), HeartbeatOutcome::Rejoin);
        c.join(req(Some(&a), vec![], AssignmentStrategy::Range), 30, &counts).unwrap();
        let (ga, gb) = (assigned(&c, &a, 30), assigned(&c, &b, 30));
        assert_eq!((ga.generation, ga.partitions.len(), gb.partitions.len()), (2, 2, 2));
        // The old generation is fenced.
        assert!(c.validate_commit("g", Some((&a, 1)), 40).unwrap_err().to_string().contains("fenced"));
        c.validate_commit("g", Some((&a, 2)), 40).unwrap();
    }

    #[test]
    fn a_silent_member_is_removed_after_its_session_timeout() {
        let c = GroupCoordinator::default();
        let a = c.join(req(None, vec![], AssignmentStrategy::Range), 0, &counts).unwrap();
        let b = c.join(req(None, vec![], AssignmentStrategy::Range), 0, &counts).unwrap();
        c.join(req(Some(&a), vec![], AssignmentStrategy::Range), 0, &counts).unwrap();
        assert_eq!(assigned(&c, &b, 0).partitions.len(), 2);
        // b goes silent; a keeps heartbeating.
        for t in (1000..=10_000).step_by(1000) {
            assert_eq!(c.heartbeat("g", &a, 2, t, &counts), HeartbeatOutcome::Ok);
        }
        assert_eq!(c.heartbeat("g", &a, 2, 10_001, &counts), HeartbeatOutcome::Rejoin, "b expired");
        c.join(req(Some(&a), vec![], AssignmentStrategy::Range), 10_002, &counts).unwrap();
        assert_eq!(assigned(&c, &a, 10_002).partitions.len(), 4);
        assert_eq!(c.sync("g", &b, 10_003, &counts), SyncOutcome::UnknownMember);
        assert!(c
            .validate_commit("g", Some((&b, 2)), 10_004)
            .unwrap_err()
            .to_string()
            .contains("no longer in the group"));
    }

    #[test]
    fn cooperative_rebalances_hold_back_moving_partitions_until_they_are_revoked() {
        let coop = AssignmentStrategy::CooperativeSticky;
        let c = GroupCoordinator::default();
        let a = c.join(req(None, vec![], coop), 0, &counts).unwrap();
        let all = assigned(&c, &a, 0).partitions;
        let b = c.join(req(None, vec![], coop), 1, &counts).unwrap();
        c.join(req(Some(&a), all.clone(), coop), 2, &counts).unwrap();
        // a keeps two, gives nothing yet; b gets nothing until a revokes.
        let (ga, gb) = (assigned(&c, &a, 2), assigned(&c, &b, 2));
        assert_eq!(ga.partitions.len(), 2);
        assert!(ga.partitions.iter().all(|tp| all.contains(tp)));
        assert!(gb.partitions.is_empty());
        // a revokes the other two and rejoins; b now gets them.
        c.join(req(Some(&a), ga.partitions.clone(), coop), 3, &counts).unwrap();
        c.join(req(Some(&b), vec![], coop), 3, &counts).unwrap();
        let (ga2, gb2) = (assigned(&c, &a, 3), assigned(&c, &b, 3));
        assert_eq!(ga2.partitions, ga.partitions, "a's kept partitions never moved");
        assert_eq!(gb2.partitions.len(), 2);
        assert!(gb2.partitions.iter().all(|tp| !ga.partitions.contains(tp)));
    }
}
