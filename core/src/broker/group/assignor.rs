//! Partition assignors: pure functions from members (with subscriptions and
//! what they own now) and partition counts to an assignment.
//!
//! * `range`: per topic, members subscribed to it in member-id order get
//!   contiguous ranges; the first `partitions % members` get one more.
//! * `roundrobin`: all partitions, in topic then partition order, dealt one
//!   by one to the members (in member-id order) subscribed to their topic.
//! * `cooperative-sticky`: balanced (counts differ by at most one among
//!   members with the same subscription), and keeps each partition with its
//!   current owner whenever balance allows. The coordinator then holds back
//!   partitions that change owner until the old owner has revoked them
//!   (see `GroupCoordinator`).

use std::collections::{BTreeMap, BTreeSet};

use crate::topic::TopicPartition;
use crate::vocabulary::AssignmentStrategy;

/// What the assignor knows about one member.
#[derive(Debug, Clone)]
pub(crate) struct MemberSubscription {
    pub(crate) member_id: String,
    pub(crate) topics: BTreeSet<String>,
    pub(crate) owned: Vec<TopicPartition>,
}

/// Member id → assigned partitions (every member appears, maybe empty).
pub(crate) type Assignment = BTreeMap<String, Vec<TopicPartition>>;

pub(crate) fn assign(
    strategy: AssignmentStrategy,
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut members: Vec<&MemberSubscription> = members.iter().collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let mut out: Assignment = members.iter().map(|m| (m.member_id.clone(), Vec::new())).collect();
    match strategy {
        AssignmentStrategy::Range => {
            for (topic, &n) in partitions {
                let subscribed: Vec<&&MemberSubscription> =
                    members.iter().filter(|m| m.topics.contains(topic)).collect();
                if subscribed.is_empty() {
                    continue;
                }
                let per = n as usize / subscribed.len();
                let extra = n as usize % subscribed.len();
                let mut next = 0i32;
                for (i, m) in subscribed.iter().enumerate() {
                    let count = per + usize::from(i < extra);
                    let list = out.get_mut(&m.member_id).expect("every member has an entry");
                    for _ in 0..count {
                        list.push(TopicPartition::new(topic.clone(), next));
                        next += 1;
                    }
                }
            }
        }
        AssignmentStrategy::RoundRobin => {
            let mut cursor = 0usize;
            for (topic, &n) in partitions {
                for p in 0..n {
                    // The next member (circularly) subscribed to this topic.
                    for step in 0..members.len() {
                        let m = members[(cursor + step) % members.len()];
                        if m.topics.contains(topic) {
                            out.get_mut(&m.member_id)
                                .expect("entry")
                                .push(TopicPartition::new(topic.clone(), p));
                            cursor = (cursor + step + 1) % members.len();
                            break;
                        }
                    }
                }
            }
        }
        AssignmentStrategy::CooperativeSticky => sticky(&members, partitions, &mut out),
    }
    out
}

/// Balanced and sticky: keep owned partitions up to each member's quota,
/// then give the rest to the least-loaded eligible member.
fn sticky(members: &[&MemberSubscription], partitions: &BTreeMap<String, i32>, out: &mut Assignment) {
    let all: Vec<TopicPartition> = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(*t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();
    if members.is_empty() {
        return;
    }
    let total = all.len();
    let base = total / members.len();
    let mut hi_slots = total % members.len();
    // Members that own the most get the larger quotas first (less movement).
    let mut order: Vec<&&MemberSubscription> = members.iter().collect();
    order.sort_by(|a, b| b.owned.len().cmp(&a.owned.len()).then(a.member_id.cmp(&b.member_id)));
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut quota: BTreeMap<String, usize> = BTreeMap::new();
    for m in order {
        let q = if hi_slots > 0 && m.owned.len() > base {
            hi_slots -= 1;
            base + 1
        } else {
            base
        };
        quota.insert(m.member_id.clone(), q);
        let keep = out.get_mut(&m.member_id).expect("entry");
        let mut owned = m.owned.clone();
        owned.sort();
        for tp in owned {
            let valid =
                m.topics.contains(&tp.topic) && partitions.get(&tp.topic).is_some_and(|&n| tp.partition < n);
            if keep.len() < q && valid && taken.insert(tp.clone()) {
                keep.push(tp);
            }
        }
    }
    // Leftover hi slots go to whoever takes new partitions first.
    for tp in all {
        if taken.contains(&tp) {
            continue;
        }
        let candidate = members.iter().filter(|m| m.topics.contains(&tp.topic)).min_by_key(|m| {
            let have = out[&m.member_id].len();
            let q = quota[&m.member_id];
            // Under quota first, then the fewest partitions, then id.
            (have >= q, have, m.member_id.clone())
        });
        if let Some(m) = candidate {
            let have = out[&m.member_id].len();
            if have >= quota[&m.member_id] && hi_slots > 0 {
                hi_slots -= 1;
            }
            out.get_mut(&m.member_id).expect("entry").push(tp.clone());
            taken.insert(tp);
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, topics: &[&str], owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned.iter().map(|(t, p)| TopicPartition::new(*t, *p)).collect(),
        }
    }

    fn names(list: &[TopicPartition]) -> Vec<String> {
        list.iter().map(|tp| tp.to_string()).collect()
    }

    #[test]
    fn range_gives_contiguous_ranges_with_the_extras_first() {
        let members = [member("a", &["t"], &[]), member("b", &["t"], &[]), member("c", &["t"], &[])];
        let out = assign(AssignmentStrategy::Range, &members, &BTreeMap::from([("t".to_string(), 7)]));
        assert_eq!(names(&out["a"]), ["t-0", "t-1", "t-2"]);
        assert_eq!(names(&out["b"]), ["t-3", "t-4"]);
        assert_eq!(names(&out["c"]), ["t-5", "t-6"]);
    }

    #[test]
    fn roundrobin_deals_partitions_across_topics() {
        let members = [member("a", &["x", "y"], &[]), member("b", &["x", "y"], &[])];
        let counts = BTreeMap::from([("x".to_string(), 3), ("y".to_string(), 2)]);
        let out = assign(AssignmentStrategy::RoundRobin, &members, &counts);
        assert_eq!(names(&out["a"]), ["x-0", "x-2", "y-1"]);
        assert_eq!(names(&out["b"]), ["x-1", "y-0"]);
    }

    #[test]
    fn members_beyond_the_partition_count_stay_idle() {
        for strategy in
            [AssignmentStrategy::Range, AssignmentStrategy::RoundRobin, AssignmentStrategy::CooperativeSticky]
        {
            let members: Vec<_> = ["a", "b", "c", "d"].iter().map(|id| member(id, &["t"], &[])).collect();
            let out = assign(strategy, &members, &BTreeMap::from([("t".to_string(), 2)]));
            assert_eq!(out.values().filter(|v| v.is_empty()).count(), 2, "{strategy:?}");
            assert_eq!(out.values().map(Vec::len).sum::<usize>(), 2);
        }
    }

    #[test]
    fn sticky_moves_only_what_balance_requires_when_a_member_joins() {
        let owned_a: Vec<(&str, i32)> = (0..3).map(|p| ("t", p)).collect();
        let owned_b: Vec<(&str, i32)> = (3..6).map(|p| ("t", p)).collect();
        let members =
            [member("a", &["t"], &owned_a), member("b", &["t"], &owned_b), member("c", &["t"], &[])];
        let out =
            assign(AssignmentStrategy::CooperativeSticky, &members, &BTreeMap::from([("t".to_string(), 6)]));
        assert_eq!(out["a"].len(), 2);
        assert_eq!(out["b"].len(), 2);
        assert_eq!(out["c"].len(), 2);
        assert!(out["a"].iter().all(|tp| tp.partition < 3), "a keeps only its own");
        assert!(out["b"].iter().all(|tp| tp.partition >= 3), "b keeps only its own");
    }

    proptest! {
        #[test]
        fn every_assignment_is_complete_exclusive_and_respects_subscriptions(
            strategy in prop_oneof![Just(AssignmentStrategy::Range), Just(AssignmentStrategy::RoundRobin), Just(AssignmentStrategy::CooperativeSticky)],
            counts in proptest::collection::vec(1i32..9, 1..4),
            subs in proptest::collection::vec((proptest::collection::btree_set(0usize..3, 1..3), proptest::collection::vec((0usize..3, 0i32..9), 0..6)), 1..6),
        ) {
            let topics: Vec<String> = (0..counts.len()).map(|i| format!("t{i}")).collect();
            let partitions: BTreeMap<String, i32> = topics.iter().cloned().zip(counts.iter().copied()).collect();
            let members: Vec<MemberSubscription> = subs.iter().enumerate().map(|(i, (ts, owned))| MemberSubscription {
                member_id: format!("m{i}"),
                topics: ts.iter().filter(|&&t| t < topics.len()).map(|&t| topics[t].clone()).collect(),
                owned: owned.iter().filter(|(t, _)| *t < topics.len()).map(|(t, p)| TopicPartition::new(topics[*t].clone(), *p)).collect(),
            }).collect();
            let out = assign(strategy, &members, &partitions);
            let mut seen = BTreeSet::new();
            for (id, list) in &out {
                let m = members.iter().find(|m| &m.member_id == id).unwrap();
                for tp in list {
                    prop_assert!(m.topics.contains(&tp.topic), "{} got {} without subscribing", id, tp);
                    prop_assert!(seen.insert(tp.clone()), "{} assigned twice", tp);
                }
            }
            let subscribed: BTreeSet<&String> = members.iter().flat_map(|m| m.topics.iter()).collect();
            let expected: usize = partitions.iter().filter(|(t, _)| subscribed.contains(t)).map(|(_, n)| *n as usize).sum();
            prop_assert_eq!(seen.len(), expected, "every subscribed partition is assigned");
            // With identical subscriptions, counts differ by at most one.
            if members.iter().all(|m| m.topics == members[0].topics) {
                let sizes: Vec<usize> = out.values().map(Vec::len).collect();
                if strategy != AssignmentStrategy::Range || partitions.len() == 1 {
                    prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{:?}", sizes);
                }
            }
        }
    }
}
