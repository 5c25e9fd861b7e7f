//! The leader's incremental assignor and the bytes members exchange.
//!
//! Metadata a worker joins with, and the assignment the leader sends each
//! worker, are JSON (protocol `runnel-connect-1`; not Kafka's binary Connect
//! protocol, so Java workers cannot join a Runnel group by mistake):
//!
//! ```text
//! metadata   = {"worker_id": "host:port", "config_offset": 17,
//!               "owned": {"connectors": ["src"], "tasks": [["src", 0]]}}
//! assignment = {"config_offset": 17, "leader": "<member id>",
//!               "connectors": ["src"], "tasks": [["src", 0]],
//!               "all": {"<member id>": {"worker_id": .., "connectors": [..], "tasks": [..]}, ..}}
//! ```
//!
//! Assignment is incremental: what a live worker owns stays with it (unless
//! its connector was deleted or lost the task); new work goes to the least
//! loaded worker (connectors and tasks balanced separately); work of a
//! worker that left is held back for `scheduled.rebalance.max.delay.ms`
//! (it may come back), then given out like new work. Nothing that runs is
//! moved to balance load, so a worker never has to revoke work before
//! another may start it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// The group protocol's name.
pub(crate) const PROTOCOL: &str = "runnel-connect-1";

/// A task: connector name and task id.
pub(crate) type TaskId = (String, u32);

/// What one worker runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owned {
    /// Connectors (the connector objects, which compute task configs).
    #[serde(default)]
    pub(crate) connectors: BTreeSet<String>,
    /// Tasks.
    #[serde(default)]
    pub(crate) tasks: BTreeSet<TaskId>,
}

impl Owned {
    fn len(&self) -> (usize, usize) {
        (self.connectors.len(), self.tasks.len())
    }
}

/// A worker's join metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Metadata {
    /// The worker's id (its REST `host:port`).
    pub(crate) worker_id: String,
    /// How far the worker has read the config topic.
    pub(crate) config_offset: i64,
    /// What it runs now.
    #[serde(default)]
    pub(crate) owned: Owned,
}

/// A worker's entry in the full assignment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WorkerShare {
    /// The worker's id.
    pub(crate) worker_id: String,
    /// What it was given.
    #[serde(flatten)]
    pub(crate) owned: Owned,
}

/// What the leader sends each worker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Assignment {
    /// The config topic offset the leader assigned from: read it at least
    /// this far before acting.
    pub(crate) config_offset: i64,
    /// The leader's member id.
    pub(crate) leader: String,
    /// This worker's share.
    #[serde(flatten)]
    pub(crate) owned: Owned,
    /// Every worker's share by member id (a new leader learns from it what
    /// departed workers ran).
    #[serde(default)]
    pub(crate) all: BTreeMap<String, WorkerShare>,
}

/// The leader's memory between rebalances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LeaderState {
    /// When held-back work of departed workers is given out (ms).
    pub(crate) deadline: Option<i64>,
}

/// The assignor's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Member id → its share.
    pub(crate) shares: BTreeMap<String, WorkerShare>,
    /// Work held back for departed workers (given out at the deadline).
    pub(crate) held: Owned,
}

/// Computes the assignment.
///
/// - `members`: live members and their metadata;
/// - `previous`: the last full assignment this leader knows (by member id);
/// - `work`: every connector with its number of committed tasks;
/// - `now`, `delay`: the clock and `scheduled.rebalance.max.delay.ms`.
pub(crate) fn assign(
    members: &BTreeMap<String, Metadata>,
    previous: &BTreeMap<String, WorkerShare>,
    work: &BTreeMap<String, u32>,
    state: &mut LeaderState,
    now: i64,
    delay_ms: i64,
) -> Plan {
    let exists_connector = |c: &String| work.contains_key(c);
    let exists_task = |(c, t): &TaskId| work.get(c).is_some_and(|n| t < n);
    // What live workers keep (each unit once, first claim wins).
    let mut shares: BTreeMap<String, WorkerShare> = BTreeMap::new();
    let mut taken = Owned::default();
    for (id, meta) in members {
        let mut keep = Owned::default();
        for c in meta.owned.connectors.iter().filter(|c| exists_connector(c)) {
            if taken.connectors.insert(c.clone()) {
                keep.connectors.insert(c.clone());
            }
        }
        for t in meta.owned.tasks.iter().filter(|t| exists_task(t)) {
            if taken.tasks.insert(t.clone()) {
                keep.tasks.insert(t.clone());
            }
        }
        shares.insert(id.clone(), WorkerShare { worker_id: meta.worker_id.clone(), owned: keep });
    }
    // Work of departed workers that nobody runs now.
    let mut lost = Owned::default();
    for (id, share) in previous {
        if members.contains_key(id) {
            continue;
        }
        lost.connectors.extend(
            share
                .owned
                .connectors
                .iter()
                .filter(|c| exists_connector(c) && !taken.connectors.contains(*c))
                .cloned(),
        );
        lost.tasks.extend(
            share.owned.tasks.iter().filter(|t| exists_task(t) && !taken.tasks.contains(*t)).cloned(),
        );
    }
    let mut held = Owned::default();
    if lost.len() != (0, 0) && delay_ms > 0 {
        let deadline = *state.deadline.get_or_insert(now.saturating_add(delay_ms));
        if now < deadline {
            held = lost;
        } else {
            state.deadline = None;
        }
    } else {
        state.deadline = None;
    }
    if held.len() == (0, 0) {
        state.deadline = None;
    }
    if shares.is_empty() {
        return Plan { shares, held };
    }
    // Everything else nobody runs goes to the least loaded.
    for c in work.keys() {
        if taken.connectors.contains(c) || held.connectors.contains(c) {
            continue;
        }
        let least = shares.iter_mut().min_by_key(|(_, s)| s.owned.connectors.len()).expect("non-empty").1;
        least.owned.connectors.insert(c.clone());
    }
    for (c, n) in work {
        for t in 0..*n {
            let task = (c.clone(), t);
            if taken.tasks.contains(&task) || held.tasks.contains(&task) {
                continue;
            }
            let least = shares.iter_mut().min_by_key(|(_, s)| s.owned.tasks.len()).expect("non-empty").1;
            least.owned.tasks.insert(task);
        }
    }
    Plan { shares, held }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(worker: &str, connectors: &[&str], tasks: &[(&str, u32)]) -> Metadata {
        Metadata {
            worker_id: worker.into(),
            config_offset: 0,
            owned: Owned {
                connectors: connectors.iter().map(|c| c.to_string()).collect(),
                tasks: tasks.iter().map(|(c, t)| (c.to_string(), *t)).collect(),
            },
        }
    }

    fn work(w: &[(&str, u32)]) -> BTreeMap<String, u32> {
        w.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    }

    #[test]
    fn new_work_goes_to_the_least_loaded_and_running_work_stays_put() {
        let members: BTreeMap<String, Metadata> = [
            ("m1".to_string(), meta("w1", &["a"], &[("a", 0), ("a", 1)])),
            ("m2".to_string(), meta("w2", &[], &[])),
        ]
        .into();
        let mut state = LeaderState::default();
        let plan = assign(&members, &BTreeMap::new(), &work(&[("a", 2), ("b", 2)]), &mut state, 0, 1000);
        let (m1, m2) = (&plan.shares["m1"].owned, &plan.shares["m2"].owned);
        assert_eq!(m1.connectors, BTreeSet::from(["a".to_string()]));
        assert_eq!(m1.tasks.len(), 2, "a's tasks stay where they run");
        assert_eq!(m2.connectors, BTreeSet::from(["b".to_string()]));
        assert_eq!(m2.tasks, BTreeSet::from([("b".to_string(), 0), ("b".to_string(), 1)]));
        assert_eq!(plan.held, Owned::default());
    }

    #[test]
    fn deleted_connectors_and_removed_tasks_are_dropped_and_duplicates_kept_once() {
        let members: BTreeMap<String, Metadata> = [
            ("m1".to_string(), meta("w1", &["gone", "a"], &[("a", 0), ("a", 3), ("gone", 0)])),
            ("m2".to_string(), meta("w2", &["a"], &[("a", 0)])),
        ]
        .into();
        let plan =
            assign(&members, &BTreeMap::new(), &work(&[("a", 2)]), &mut LeaderState::default(), 0, 1000);
        assert_eq!(plan.shares["m1"].owned.connectors, BTreeSet::from(["a".to_string()]));
        assert_eq!(plan.shares["m1"].owned.tasks, BTreeSet::from([("a".to_string(), 0)]));
        assert!(plan.shares["m2"].owned.connectors.is_empty());
        assert_eq!(plan.shares["m2"].owned.tasks, BTreeSet::from([("a".to_string(), 1)]));
    }

    #[test]
    fn a_departed_workers_work_is_held_back_until_the_delay_passes() {
        let previous: BTreeMap<String, WorkerShare> = [
            (
                "m1".to_string(),
                WorkerShare { worker_id: "w1".into(), owned: meta("w1", &["a"], &[("a", 0)]).owned },
            ),
            (
                "m2".to_string(),
                WorkerShare { worker_id: "w2".into(), owned: meta("w2", &["b"], &[("b", 0)]).owned },
            ),
        ]
        .into();
        let members: BTreeMap<String, Metadata> =
            [("m1".to_string(), meta("w1", &["a"], &[("a", 0)]))].into();
        let w = work(&[("a", 1), ("b", 1)]);
        let mut state = LeaderState::default();
        let plan = assign(&members, &previous, &w, &mut state, 100, 1000);
        assert_eq!(plan.held, meta("w2", &["b"], &[("b", 0)]).owned);
        assert_eq!(state.deadline, Some(1100));
        assert_eq!(plan.shares["m1"].owned, meta("w1", &["a"], &[("a", 0)]).owned);
        // Still held a moment before the deadline; the deadline does not move.
        let plan = assign(&members, &previous, &w, &mut state, 1099, 1000);
        assert_eq!(plan.held.tasks.len(), 1);
        assert_eq!(state.deadline, Some(1100));
        // At the deadline the survivor gets it.
        let plan = assign(&members, &previous, &w, &mut state, 1100, 1000);
        assert_eq!(plan.held, Owned::default());
        assert_eq!(plan.shares["m1"].owned, meta("w1", &["a", "b"], &[("a", 0), ("b", 0)]).owned);
        assert_eq!(state.deadline, None);
        // With no delay, it moves at once.
        let plan = assign(&members, &previous, &w, &mut LeaderState::default(), 0, 0);
        assert_eq!(plan.shares["m1"].owned.tasks.len(), 2);
    }

    #[test]
    fn assignments_round_trip_through_json() {
        let a = Assignment {
            config_offset: 4,
            leader: "m1".into(),
            owned: meta("w1", &["a"], &[("a", 0)]).owned,
            all: [("m1".to_string(), WorkerShare { worker_id: "w1".into(), owned: Owned::default() })].into(),
        };
        let bytes = serde_json::to_vec(&a).unwrap();
        assert_eq!(serde_json::from_slice::<Assignment>(&bytes).unwrap(), a);
        let m = meta("w1", &[], &[("a", 1)]);
        assert_eq!(serde_json::from_slice::<Metadata>(&serde_json::to_vec(&m).unwrap()).unwrap(), m);
    }
}
