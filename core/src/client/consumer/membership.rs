//! A consumer's membership in its group: join and sync with the
//! coordinator, and a background heartbeat that tells the consumer when to
//! rejoin (or that it was removed).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{debug, warn};

use super::super::embedded::EmbeddedCluster;
use crate::broker::group::HeartbeatOutcome;
use crate::client::AssignmentStrategy;

/// Where the member is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not joined (new, or after being removed).
    Out,
    /// Joined; waiting for the rebalance to complete.
    Joining,
    /// Holding an assignment for `generation`.
    Stable,
}

/// State shared with the heartbeat task.
#[derive(Debug)]
pub(crate) struct Shared {
    /// `(member id, generation)` while in the group.
    pub(crate) member: Mutex<Option<(String, i32)>>,
    /// The coordinator asked for a rejoin.
    pub(crate) rejoin: AtomicBool,
    /// The coordinator no longer knows this member.
    pub(crate) lost: AtomicBool,
    /// When `poll` last returned (or was entered).
    pub(crate) last_poll: Mutex<Instant>,
    /// A `poll` is running: the member is not idle, however long it waits.
    pub(crate) in_poll: AtomicBool,
    /// Wakes a waiting `poll`.
    pub(crate) wake: Notify,
}

impl Shared {
    /// Records what the coordinator answered a heartbeat; returns whether
    /// the consumer must act on it (rejoin, or its membership is lost).
    pub(crate) fn heard(&self, outcome: HeartbeatOutcome) -> bool {
        match outcome {
            HeartbeatOutcome::Ok => return false,
            HeartbeatOutcome::Rejoin => self.rejoin.store(true, Ordering::Release),
            HeartbeatOutcome::UnknownMember => self.lost.store(true, Ordering::Release),
        }
        true
    }
}

/// Group membership of one consumer.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) group_id: String,
    pub(crate) phase: Phase,
    pub(crate) member_id: Option<String>,
    pub(crate) generation: i32,
    pub(crate) protocol: Option<AssignmentStrategy>,
    pub(crate) shared: Arc<Shared>,
    /// Changes with every membership or assignment change of the group.
    pub(crate) changes: Option<tokio::sync::watch::Receiver<u64>>,
    /// Stops the heartbeat thread when dropped or sent to.
    heartbeat: Option<std::sync::mpsc::Sender<()>>,
}

impl Membership {
    pub(crate) fn new(group_id: String) -> Self {
        Membership {
            group_id,
            phase: Phase::Out,
            member_id: None,
            generation: -1,
            protocol: None,
            shared: Arc::new(Shared {
                member: Mutex::new(None),
                rejoin: AtomicBool::new(false),
                lost: AtomicBool::new(false),
                last_poll: Mutex::new(Instant::now()),
                in_poll: AtomicBool::new(false),
                wake: Notify::new(),
            }),
            changes: None,
            heartbeat: None,
        }
    }

    pub(crate) fn set_member(&mut self, member_id: Option<String>, generation: i32) {
        self.member_id = member_id.clone();
        self.generation = generation;
        *self.shared.member.lock().expect("member lock") = member_id.map(|m| (m, generation));
    }

    /// Starts the heartbeat (once), on a thread of its own, as Kafka's
    /// consumer does: a caller that is busy between polls, or runs on a
    /// single-threaded runtime it keeps busy (a stream thread in a long
    /// flush or a RocksDB write stall), keeps its membership until
    /// `max.poll.interval.ms`.
    pub(crate) fn ensure_heartbeat(
        &mut self,
        cluster: &Arc<EmbeddedCluster>,
        interval: Duration,
        max_poll_interval: Duration,
    ) {
        if self.heartbeat.is_some() {
            return;
        }
        self.changes = Some(cluster.broker().groups().watch(&self.group_id));
        let cluster = cluster.clone();
        let shared = self.shared.clone();
        let group = self.group_id.clone();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::Builder::new().name(format!("heartbeat-{group}")).spawn(move || {
            // Ends when the sender is dropped or sends.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let Some((member, generation)) = shared.member.lock().expect("member lock").clone() else {
                    continue;
                };
                let broker = cluster.broker();
                let idle = shared.last_poll.lock().expect("poll lock").elapsed();
                if !shared.in_poll.load(Ordering::Acquire) && idle > max_poll_interval {
                    warn!(group = %group, member = %member, ?idle, "max.poll.interval.ms exceeded; leaving the group");
                    broker.groups().leave(&group, &member, broker.now_ms());
                    shared.lost.store(true, Ordering::Release);
                    shared.wake.notify_one();
                    continue;
                }
                let counts = |t: &str| broker.partition_count(t).ok();
                let outcome = broker.groups().heartbeat(&group, &member, generation, broker.now_ms(), &counts);
                if outcome == HeartbeatOutcome::Rejoin {
                    debug!(group = %group, member = %member, "heartbeat: rejoin needed");
                }
                if shared.heard(outcome) {
                    shared.wake.notify_one();
                }
            }
        });
        match spawned {
            Ok(_) => self.heartbeat = Some(stop),
            Err(e) => warn!(group = %self.group_id, error = %e, "cannot start the heartbeat thread"),
        }
    }

    /// Makes sure the group-change receiver is current: marks what it has
    /// seen, and subscribes again if the group entry was removed.
    pub(crate) fn refresh_changes(&mut self, cluster: &Arc<EmbeddedCluster>) {
        let closed = self.changes.as_ref().is_none_or(|c| c.has_changed().is_err());
        if closed {
            self.changes = Some(cluster.broker().groups().watch(&self.group_id));
        }
        if let Some(c) = self.changes.as_mut() {
            c.borrow_and_update();
        }
    }

    /// Stops heartbeating (close, or a simulated crash).
    pub(crate) fn stop_heartbeat(&mut self) {
        if let Some(stop) = self.heartbeat.take() {
            let _ = stop.send(());
        }
    }
}

/// Marks a `poll` in progress for the heartbeat's `max.poll.interval.ms`
/// check; on drop, records when it ended.
#[derive(Debug)]
pub(crate) struct InPoll(Arc<Shared>);

impl InPoll {
    pub(crate) fn enter(shared: &Arc<Shared>) -> InPoll {
        shared.in_poll.store(true, Ordering::Release);
        *shared.last_poll.lock().expect("poll lock") = Instant::now();
        InPoll(shared.clone())
    }
}

impl Drop for InPoll {
    fn drop(&mut self) {
        *self.0.last_poll.lock().expect("poll lock") = Instant::now();
        self.0.in_poll.store(false, Ordering::Release);
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}
