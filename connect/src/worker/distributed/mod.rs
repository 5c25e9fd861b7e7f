//! Distributed mode: several workers (processes) form one Connect cluster
//! through a Kafka-compatible cluster (a Runnel broker or Kafka).
//!
//! - **Config topic** (`config.storage.topic`): connector configs, task
//!   configs, target states; any worker writes (a REST call on any worker
//!   goes straight to the topic), every worker reads ([`logs`]).
//! - **Status topic** (`status.storage.topic`): each worker publishes the
//!   states of what it runs; every worker reads, so the REST API's status
//!   shows the whole cluster from any worker.
//! - **Offsets topic**: as in standalone mode; a worker about to start a
//!   source task reads the task's offsets (and finishes its pending batch)
//!   again, since another worker may have run it.
//! - **Group** (`group.id`, protocol type `connect`): the workers join it
//!   through [`GroupMembership`]; the leader divides connectors and tasks
//!   ([`assignor`]: incremental: running work stays where it is, new work
//!   goes to the least loaded worker, a departed worker's work waits
//!   `scheduled.rebalance.max.delay.ms` for it, then moves). Each worker
//!   starts and stops only what changed in its share.
//!
//! Three tasks per worker: *membership* (join, sync, heartbeat; the leader
//! rejoins when the config topic changes what there is to run, and when
//! held-back work is due), *reconcile* (makes the local connectors and
//! tasks match the share and the configs), *publish* (writes the local
//! tasks' state changes to the status topic).
//!
//! The task runners are the standalone worker's ([`Worker::spawn_task`]).

mod assignor;
mod logs;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use runnel_core::client::{GroupMembership, MembershipConfig, MembershipEvent};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{
    kind_of, stop_connector_object, stop_slot, ConnectorInfo, ConnectorStatus, State, TargetState, TaskSlot,
    TaskStatus, Worker,
};
use crate::error::ConnectError;
use crate::plugin::{Connector, ConnectorKind, Props};
use crate::worker::StatusStore;
use assignor::{Assignment, LeaderState, Metadata, Owned, TaskId, WorkerShare, PROTOCOL};
use logs::{ConfigLog, StatusEntry, StatusLog};

/// The distributed part of a [`Worker`].
pub(super) struct Distributed {
    configs: ConfigLog,
    statuses: StatusLog,
    /// This worker's latest share.
    assignment: watch::Sender<Option<Assignment>>,
    generation: AtomicI32,
    cancel: CancellationToken,
    handles: Mutex<Vec<JoinHandle<()>>>,
    local: tokio::sync::Mutex<Local>,
}

/// What runs here.
#[derive(Default)]
struct Local {
    connectors: BTreeMap<String, LocalConnector>,
    tasks: BTreeMap<TaskId, LocalTask>,
    /// Restart requests already acted on (or written before this worker
    /// started), by record key: the request id.
    restarts_seen: BTreeMap<String, String>,
}

struct LocalConnector {
    connector: Option<Connector>,
    props: Props,
    target: TargetState,
}

struct LocalTask {
    slot: TaskSlot,
    /// The connector config it started with (converters, transforms and
    /// error handling come from it, not from the task config).
    connector_props: Props,
    pause: watch::Sender<bool>,
}

impl Worker {
    /// Starts a worker of a distributed Connect cluster: opens the cluster,
    /// reads the config and status topics, joins `group.id`, and runs what
    /// the group's leader assigns it. Connectors are added through the
    /// REST API (any worker).
    ///
    /// # Errors
    /// [`ConnectError::WorkerConfig`] without `group.id`;
    /// [`ConnectError::Cluster`] when the cluster or a shared topic cannot be read.
    pub async fn start_distributed(
        config: super::WorkerConfig,
        registry: crate::plugin::PluginRegistry,
    ) -> Result<Arc<Worker>, ConnectError> {
        config.group_id()?;
        let worker = Worker::start(config, registry).await?;
        if worker.worker_id.ends_with(":0") {
            warn!(
                worker = %worker.worker_id,
                "the first REST listener has port 0: statuses name this worker by it, so give each worker \
                 its own port to tell them apart"
            );
        }
        let d = &worker.config.distributed;
        let cancel = CancellationToken::new();
        let producer = |what: &'static str| {
            worker.cluster.producer(worker.config.producer_config()?).map_err(ConnectError::cluster(what))
        };
        let (configs, config_tail) = ConfigLog::open(
            &worker.cluster,
            &d.config_storage_topic,
            producer("config producer")?,
            cancel.clone(),
        )
        .await?;
        let (statuses, status_tail) = StatusLog::open(
            &worker.cluster,
            &d.status_storage_topic,
            d.status_storage_partitions,
            producer("status producer")?,
            cancel.clone(),
        )
        .await?;
        // Restart requests from before this worker started are not for it.
        let restarts_seen = configs.read(|s| {
            s.restarts.iter().map(|(k, v)| (k.clone(), request_id_of(v))).collect::<BTreeMap<_, _>>()
        });
        let dist = Distributed {
            configs,
            statuses,
            assignment: watch::Sender::new(None),
            generation: AtomicI32::new(-1),
            cancel,
            handles: Mutex::new(vec![config_tail, status_tail]),
            local: tokio::sync::Mutex::new(Local { restarts_seen, ..Local::default() }),
        };
        if worker.distributed.set(dist).is_err() {
            unreachable!("a new worker has no distributed part yet");
        }
        let worker = Arc::new(worker);
        let tasks = vec![
            tokio::spawn(membership(worker.clone())),
            tokio::spawn(reconcile_loop(worker.clone())),
            tokio::spawn(publish_loop(worker.clone())),
        ];
        worker.dist().expect("set above").handles.lock().unwrap_or_else(|e| e.into_inner()).extend(tasks);
        info!(group = worker.config.distributed.group_id.as_deref().unwrap_or_default(), worker = %worker.worker_id, "distributed worker started");
        Ok(worker)
    }

    /// Whether this worker is part of a distributed cluster.
    pub fn is_distributed(&self) -> bool {
        self.distributed.get().is_some()
    }

    pub(super) fn dist(&self) -> Option<&Distributed> {
        self.distributed.get()
    }

    pub(super) fn kind_of_class(&self, props: &Props) -> ConnectorKind {
        props
            .get("connector.class")
            .and_then(|c| self.registry.create(c).ok())
            .map_or(ConnectorKind::Source, |c| kind_of(&c))
    }
}

/// The REST-facing operations in distributed mode: reads come from the
/// shared topics, writes go to the config topic.
impl Distributed {
    pub(crate) fn connectors(&self) -> Vec<String> {
        self.configs.read(|s| s.connectors.keys().cloned().collect())
    }

    pub(crate) fn connector_config(&self, name: &str) -> Option<Props> {
        self.configs.read(|s| s.connectors.get(name).cloned())
    }

    pub(crate) fn target_state(&self, name: &str) -> Option<TargetState> {
        self.configs.read(|s| s.connectors.contains_key(name).then(|| s.target(name)))
    }

    pub(crate) fn connector_info(&self, worker: &Worker, name: &str) -> Option<ConnectorInfo> {
        let (config, tasks) = self.configs.read(|s| {
            Some((s.connectors.get(name)?.clone(), s.tasks.get(name).cloned().unwrap_or_default()))
        })?;
        Some(ConnectorInfo { name: name.to_string(), kind: worker.kind_of_class(&config), config, tasks })
    }

    /// The whole cluster's statuses, from the status topic.
    pub(crate) fn status(&self, worker: &Worker) -> StatusStore {
        let view = StatusStore::default();
        let published = self.statuses.snapshot();
        let configs: Vec<(String, Props, u32, TargetState)> = self.configs.read(|s| {
            s.connectors
                .iter()
                .map(|(n, p)| {
                    (n.clone(), p.clone(), s.tasks.get(n).map_or(0, |t| t.len() as u32), s.target(n))
                })
                .collect()
        });
        for (name, props, n, target) in configs {
            let (own, tasks) = published.get(&name).cloned().unwrap_or_default();
            let own = own.unwrap_or(StatusEntry {
                state: State::Unassigned,
                trace: None,
                worker_id: String::new(),
            });
            let n = if target == TargetState::Stopped { 0 } else { n };
            view.put_connector(ConnectorStatus {
                name: name.clone(),
                kind: worker.kind_of_class(&props),
                state: own.state,
                trace: own.trace,
                worker_id: own.worker_id,
                tasks: (0..n)
                    .map(|id| match tasks.get(&id) {
                        Some(t) => TaskStatus {
                            id,
                            state: t.state,
                            trace: t.trace.clone(),
                            worker_id: t.worker_id.clone(),
                        },
                        None => {
                            TaskStatus { id, state: State::Unassigned, trace: None, worker_id: String::new() }
                        }
                    })
                    .collect(),
            });
        }
        view
    }

    /// Stores a connector config (new or replacing); returns whether it is new.
    pub(crate) async fn put_config(
        &self,
        name: &str,
        props: &Props,
        must_be_new: bool,
    ) -> Result<bool, ConnectError> {
        let exists = self.connector_config(name).is_some();
        if exists && must_be_new {
            return Err(ConnectError::DuplicateConnector(name.to_string()));
        }
        self.configs.write(vec![ConfigLog::connector_record(name, props)]).await?;
        info!(connector = name, created = !exists, "connector config stored in the config topic");
        Ok(!exists)
    }

    pub(crate) async fn remove(&self, name: &str) -> Result<(), ConnectError> {
        let tasks = self
            .configs
            .read(|s| s.connectors.contains_key(name).then(|| s.tasks.get(name).map_or(0, Vec::len)));
        let Some(tasks) = tasks else { return Err(ConnectError::UnknownConnector(name.to_string())) };
        self.configs
            .write(vec![(format!("connector-{name}"), None), (format!("target-state-{name}"), None)])
            .await?;
        let generation = self.generation.load(Ordering::Relaxed);
        self.statuses.put(name, None, None, generation).await?;
        for t in 0..tasks as u32 {
            self.statuses.put(name, Some(t), None, generation).await?;
        }
        info!(connector = name, "connector deleted from the config topic");
        Ok(())
    }

    /// Asks the workers that run a connector (and, as asked, its tasks) to
    /// restart them; returns the status with what will restart marked
    /// RESTARTING (Kafka's answer).
    pub(crate) async fn restart_connector(
        &self,
        worker: &Worker,
        name: &str,
        request: super::RestartRequest,
    ) -> Result<ConnectorStatus, ConnectError> {
        let mut plan = self
            .status(worker)
            .connector(name)
            .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
        if self.target_state(name) == Some(TargetState::Stopped) {
            return Ok(plan);
        }
        if !request.only_failed || plan.state == State::Failed {
            plan.state = State::Restarting;
        }
        if request.include_tasks {
            for t in &mut plan.tasks {
                if !request.only_failed || t.state == State::Failed {
                    t.state = State::Restarting;
                }
            }
        }
        self.configs
            .write(vec![ConfigLog::restart_connector_record(
                name,
                request.include_tasks,
                request.only_failed,
            )])
            .await?;
        Ok(plan)
    }

    /// Asks the worker that runs a task to restart it.
    pub(crate) async fn restart_task(&self, name: &str, task: u32) -> Result<(), ConnectError> {
        let tasks = self.configs.read(|s| {
            s.connectors.contains_key(name).then(|| match s.target(name) {
                TargetState::Stopped => 0,
                _ => s.tasks.get(name).map_or(0, Vec::len),
            })
        });
        match tasks {
            None => Err(ConnectError::UnknownConnector(name.to_string())),
            Some(n) if task as usize >= n => {
                Err(ConnectError::UnknownTask { connector: name.to_string(), task })
            }
            Some(_) => self.configs.write(vec![ConfigLog::restart_task_record(name, task)]).await,
        }
    }

    pub(crate) async fn set_target(&self, name: &str, target: TargetState) -> Result<(), ConnectError> {
        if self.connector_config(name).is_none() {
            return Err(ConnectError::UnknownConnector(name.to_string()));
        }
        self.configs.write(vec![ConfigLog::target_record(name, target)]).await
    }

    /// Leaves the group and stops everything that runs here (each task
    /// flushes and commits).
    pub(crate) async fn shutdown(&self, worker: &Worker) {
        self.cancel.cancel();
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.await;
        }
        let mut local = self.local.lock().await;
        stop_everything(worker, &mut local).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Joins, syncs (the leader assigns), heartbeats; rejoins when told to,
/// and (as leader) when the work changes or held-back work is due.
async fn membership(worker: Arc<Worker>) {
    let d = worker.dist().expect("distributed");
    let cfg = &worker.config.distributed;
    let group = cfg.group_id.clone().unwrap_or_default();
    let mut settings = MembershipConfig::new(&group, "connect");
    settings.client_id = format!("connect-{}", worker.worker_id);
    settings.session_timeout = cfg.session_timeout;
    settings.rebalance_timeout = cfg.rebalance_timeout;
    // A heartbeat unanswered for a session is as good as a failed one.
    settings.request_timeout = cfg.session_timeout.min(settings.request_timeout);
    let backoff = Duration::from_millis(500);
    let mut member = loop {
        tokio::select! {
            m = GroupMembership::new(&worker.cluster, settings.clone()) => match m {
                Ok(m) => break m,
                Err(e) => warn!(group, error = %e, "cannot reach the group coordinator; retrying"),
            },
            _ = d.cancel.cancelled() => return,
        }
        tokio::time::sleep(backoff).await;
    };
    let mut last_all: BTreeMap<String, WorkerShare> = BTreeMap::new();
    let mut leader_state = LeaderState::default();
    let mut config_changes = d.configs.tail.changes();
    'rejoin: loop {
        if d.cancel.is_cancelled() {
            break;
        }
        let owned = d.assignment.borrow().as_ref().map(|a| a.owned.clone()).unwrap_or_default();
        let meta =
            Metadata { worker_id: worker.worker_id.clone(), config_offset: d.configs.tail.position(), owned };
        let meta = Bytes::from(serde_json::to_vec(&meta).unwrap_or_default());
        let joined = tokio::select! {
            j = member.join(vec![(PROTOCOL.to_string(), meta)]) => j,
            _ = d.cancel.cancelled() => break,
        };
        let joined = match joined {
            Ok(j) => j,
            Err(e) => {
                warn!(group, error = %e, "joining the group failed; retrying");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let mut assigned_work = None;
        let plan = if joined.is_leader() {
            if let Err(e) = d.configs.tail.catch_up(Duration::from_secs(30)).await {
                warn!(group, error = %e, "the leader could not read the config topic to its end");
            }
            let work = d.configs.read(|s| s.work());
            let members: BTreeMap<String, Metadata> = joined
                .members
                .iter()
                .map(|(id, m)| (id.clone(), serde_json::from_slice(m).unwrap_or_default()))
                .collect();
            let delay = cfg.scheduled_rebalance_max_delay.as_millis() as i64;
            let plan = assignor::assign(&members, &last_all, &work, &mut leader_state, now_ms(), delay);
            if plan.held != Owned::default() {
                info!(
                    group,
                    held_tasks = plan.held.tasks.len(),
                    held_connectors = plan.held.connectors.len(),
                    "work of departed workers held back until scheduled.rebalance.max.delay.ms passes"
                );
            }
            assigned_work = Some(work);
            let config_offset = d.configs.tail.position();
            plan.shares
                .iter()
                .map(|(id, share)| {
                    let a = Assignment {
                        config_offset,
                        leader: joined.member_id.clone(),
                        owned: share.owned.clone(),
                        all: plan.shares.clone(),
                    };
                    (id.clone(), Bytes::from(serde_json::to_vec(&a).unwrap_or_default()))
                })
                .collect()
        } else {
            Vec::new()
        };
        let event = tokio::select! {
            e = member.sync(plan) => e,
            _ = d.cancel.cancelled() => break,
        };
        match event {
            Ok(MembershipEvent::Assigned(bytes)) => match serde_json::from_slice::<Assignment>(&bytes) {
                Ok(a) => {
                    info!(
                        group,
                        generation = joined.generation,
                        connectors = a.owned.connectors.len(),
                        tasks = a.owned.tasks.len(),
                        leader = joined.is_leader(),
                        "assignment received"
                    );
                    last_all = a.all.clone();
                    d.generation.store(joined.generation, Ordering::Relaxed);
                    d.assignment.send_replace(Some(a));
                }
                Err(e) => {
                    error!(group, error = %e, "the leader's assignment does not parse; rejoining");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
            Ok(MembershipEvent::Rejoin) => continue,
            Ok(MembershipEvent::Lost) => {
                warn!(group, "this worker was removed from the group; stopping its work and joining again");
                d.assignment.send_replace(Some(Assignment::default()));
                continue;
            }
            Err(e) => {
                warn!(group, error = %e, "sync failed; rejoining");
                tokio::time::sleep(backoff).await;
                continue;
            }
        }
        // Heartbeat until something asks for a rebalance.
        config_changes.borrow_and_update();
        let mut next_heartbeat = tokio::time::Instant::now() + cfg.heartbeat_interval;
        let mut last_heard = tokio::time::Instant::now();
        loop {
            let due = leader_state
                .deadline
                .filter(|_| assigned_work.is_some())
                .map(|at| tokio::time::Instant::now() + Duration::from_millis((at - now_ms()).max(0) as u64));
            tokio::select! {
                _ = d.cancel.cancelled() => {
                    if let Err(e) = member.leave().await {
                        warn!(group, error = %e, "leaving the group failed");
                    }
                    break 'rejoin;
                }
                _ = tokio::time::sleep_until(next_heartbeat) => {
                    next_heartbeat = tokio::time::Instant::now() + cfg.heartbeat_interval;
                    match member.heartbeat().await {
                        Ok(MembershipEvent::Assigned(_)) => last_heard = tokio::time::Instant::now(),
                        Ok(MembershipEvent::Rejoin) => continue 'rejoin,
                        Ok(MembershipEvent::Lost) => {
                            warn!(group, "this worker was removed from the group; stopping its work and joining again");
                            d.assignment.send_replace(Some(Assignment::default()));
                            continue 'rejoin;
                        }
                        Err(e) => {
                            warn!(group, error = %e, "heartbeat failed");
                            if last_heard.elapsed() > cfg.session_timeout {
                                // The group has surely given our work to
                                // others by now: stop it, then join again.
                                warn!(group, "no heartbeat answer for session.timeout.ms; stopping this worker's work");
                                d.assignment.send_replace(Some(Assignment::default()));
                                tokio::time::sleep(backoff).await;
                                continue 'rejoin;
                            }
                        }
                    }
                }
                _ = config_changes.changed() => {
                    if let Some(before) = &assigned_work {
                        if *before != d.configs.read(|s| s.work()) {
                            info!(group, "connectors or tasks changed; rebalancing");
                            continue 'rejoin;
                        }
                    }
                }
                _ = async { match due { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                    info!(group, "the delay for departed workers passed; rebalancing");
                    continue 'rejoin;
                }
            }
        }
    }
}

/// Makes the local connectors and tasks match the share and the configs
/// whenever either changes.
async fn reconcile_loop(worker: Arc<Worker>) {
    let d = worker.dist().expect("distributed");
    let mut assignments = d.assignment.subscribe();
    let mut configs = d.configs.tail.changes();
    loop {
        tokio::select! {
            r = assignments.changed() => if r.is_err() { break },
            r = configs.changed() => if r.is_err() { break },
            _ = d.cancel.cancelled() => break,
        }
        let Some(a) = assignments.borrow_and_update().clone() else { continue };
        configs.borrow_and_update();
        if d.configs.tail.position() < a.config_offset {
            if let Err(e) = d.configs.tail.wait_past(a.config_offset - 1, Duration::from_secs(30)).await {
                warn!(error = %e, "behind on the config topic; applying the assignment anyway");
            }
        }
        let mut local = d.local.lock().await;
        reconcile(&worker, d, &a.owned, &mut local).await;
    }
}

fn request_id_of(v: &serde_json::Value) -> String {
    v.get("id").and_then(serde_json::Value::as_str).unwrap_or_default().to_string()
}

/// Acts on new restart requests: stops what must restart (the start loops
/// of [`reconcile`] start it again).
async fn take_restarts(
    worker: &Worker,
    d: &Distributed,
    local: &mut Local,
    restarts: BTreeMap<String, serde_json::Value>,
) {
    for (key, request) in restarts {
        let id = request_id_of(&request);
        if local.restarts_seen.get(&key) == Some(&id) {
            continue;
        }
        local.restarts_seen.insert(key.clone(), id);
        if let Some(name) = key.strip_prefix("restart-connector-") {
            let flag = |k: &str| request.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
            let (only_failed, include_tasks) = (flag("only-failed"), flag("include-tasks"));
            let connector_state =
                d.statuses.snapshot().get(name).and_then(|(c, _)| c.as_ref().map(|c| c.state));
            if local.connectors.contains_key(name) && (!only_failed || connector_state == Some(State::Failed))
            {
                let mut lc = local.connectors.remove(name).expect("present");
                if let Some(c) = lc.connector.take() {
                    stop_connector_object(name, c, worker.config.shutdown_timeout).await;
                }
                info!(connector = name, "connector restarting on request");
            }
            if include_tasks {
                let ids: Vec<u32> = local.tasks.keys().filter(|(c, _)| c == name).map(|(_, t)| *t).collect();
                for t in ids {
                    let state = worker.status.task(name, t).map(|s| s.state);
                    if !only_failed || state == Some(State::Failed) {
                        restart_local_task(worker, local, name, t).await;
                    }
                }
            }
        } else if let Some((name, t)) = key.strip_prefix("restart-task-").and_then(|r| r.rsplit_once('-')) {
            if let Ok(t) = t.parse::<u32>() {
                restart_local_task(worker, local, name, t).await;
            }
        }
    }
}

/// Stops a local task so that [`reconcile`] starts it again.
async fn restart_local_task(worker: &Worker, local: &mut Local, name: &str, id: u32) {
    if let Some(mut lt) = local.tasks.remove(&(name.to_string(), id)) {
        stop_slot(&mut lt.slot, worker.config.shutdown_timeout, name, id).await;
        worker.status.remove_task(name, id);
        info!(connector = name, task = id, "task restarting on request");
    }
}

async fn reconcile(worker: &Worker, d: &Distributed, share: &Owned, local: &mut Local) {
    let generation = d.generation.load(Ordering::Relaxed);
    let (configs, tasks, targets, restarts) = d.configs.read(|s| {
        let targets: BTreeMap<String, TargetState> =
            s.connectors.keys().map(|c| (c.clone(), s.target(c))).collect();
        (s.connectors.clone(), s.tasks.clone(), targets, s.restarts.clone())
    });
    take_restarts(worker, d, local, restarts).await;

    // Tasks that must stop: not ours, deleted, stopped, or with a new config.
    let stale: Vec<TaskId> = local
        .tasks
        .iter()
        .filter(|((c, t), lt)| {
            !share.tasks.contains(&(c.clone(), *t))
                || targets.get(c).is_none_or(|t| *t == TargetState::Stopped)
                || tasks.get(c).and_then(|v| v.get(*t as usize)).is_none_or(|p| *p != lt.slot.props)
                || configs.get(c).is_none_or(|p| *p != lt.connector_props)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in stale {
        let mut lt = local.tasks.remove(&key).expect("listed");
        stop_slot(&mut lt.slot, worker.config.shutdown_timeout, &key.0, key.1).await;
        worker.status.remove_task(&key.0, key.1);
        info!(connector = key.0.as_str(), task = key.1, "task stopped here");
    }
    // Connectors that must stop: not ours, deleted or with a new config.
    let stale: Vec<String> = local
        .connectors
        .iter()
        .filter(|(c, lc)| !share.connectors.contains(*c) || configs.get(*c).is_none_or(|p| *p != lc.props))
        .map(|(c, _)| c.clone())
        .collect();
    for name in stale {
        let mut lc = local.connectors.remove(&name).expect("listed");
        if let Some(c) = lc.connector.take() {
            stop_connector_object(&name, c, worker.config.shutdown_timeout).await;
        }
        info!(connector = name.as_str(), "connector stopped here");
    }
    // Connectors that are ours: start, or follow their target state.
    for name in &share.connectors {
        let (Some(props), Some(target)) = (configs.get(name), targets.get(name).copied()) else { continue };
        let running = local.connectors.get(name).map(|lc| (lc.target, lc.connector.is_some()));
        match running {
            Some((t, _)) if t == target => continue,
            Some((_, true)) if target != TargetState::Stopped => {
                // Paused <-> started: the connector object keeps running.
                local.connectors.get_mut(name).expect("present").target = target;
                let state = if target == TargetState::Paused { State::Paused } else { State::Running };
                publish_connector(worker, d, name, state, None, generation).await;
                continue;
            }
            _ => {}
        }
        if let Some(mut lc) = local.connectors.remove(name) {
            if let Some(c) = lc.connector.take() {
                stop_connector_object(name, c, worker.config.shutdown_timeout).await;
            }
        }
        if target == TargetState::Stopped {
            local
                .connectors
                .insert(name.clone(), LocalConnector { connector: None, props: props.clone(), target });
            publish_connector(worker, d, name, State::Stopped, None, generation).await;
            continue;
        }
        let lc = match start_connector(worker, d, name, props, tasks.get(name)).await {
            Ok(connector) => {
                let state = if target == TargetState::Paused { State::Paused } else { State::Running };
                publish_connector(worker, d, name, state, None, generation).await;
                LocalConnector { connector: Some(connector), props: props.clone(), target }
            }
            Err(e) => {
                error!(connector = %name, error = %e, "connector failed to start");
                publish_connector(worker, d, name, State::Failed, Some(e.to_string()), generation).await;
                LocalConnector { connector: None, props: props.clone(), target }
            }
        };
        local.connectors.insert(name.clone(), lc);
    }
    // Tasks that are ours: start the missing ones, follow pause.
    for (name, id) in &share.tasks {
        let (Some(props), Some(target)) = (configs.get(name), targets.get(name).copied()) else { continue };
        if target == TargetState::Stopped {
            continue;
        }
        let paused = target == TargetState::Paused;
        if let Some(lt) = local.tasks.get(&(name.clone(), *id)) {
            lt.pause.send_if_modified(|p| std::mem::replace(p, paused) != paused);
            continue;
        }
        let Some(task_props) = tasks.get(name).and_then(|v| v.get(*id as usize)).cloned() else { continue };
        match start_task(worker, name, props, *id, task_props, paused).await {
            Ok(lt) => {
                local.tasks.insert((name.clone(), *id), lt);
            }
            Err(e) => {
                error!(connector = %name, task = id, error = %e, "task failed to start");
                let entry = StatusEntry {
                    state: State::Failed,
                    trace: Some(e.to_string()),
                    worker_id: worker.worker_id.clone(),
                };
                if let Err(e) = d.statuses.put(name, Some(*id), Some(&entry), generation).await {
                    warn!(connector = %name, task = id, error = %e, "publishing a task status failed");
                }
            }
        }
    }
}

async fn publish_connector(
    worker: &Worker,
    d: &Distributed,
    name: &str,
    state: State,
    trace: Option<String>,
    generation: i32,
) {
    let entry = StatusEntry { state, trace, worker_id: worker.worker_id.clone() };
    if let Err(e) = d.statuses.put(name, None, Some(&entry), generation).await {
        warn!(connector = name, error = %e, "publishing a connector status failed");
    }
}

/// Starts a connector object here and, when its task configs differ from
/// the committed ones, writes the new ones to the config topic.
async fn start_connector(
    worker: &Worker,
    d: &Distributed,
    name: &str,
    props: &Props,
    committed: Option<&Vec<Props>>,
) -> Result<Connector, ConnectError> {
    let (config, mut connector) = worker.validate(props)?;
    let start_err = |source| ConnectError::ConnectorStart { connector: name.to_string(), source };
    let task_configs = match &mut connector {
        Connector::Source(c) => {
            c.start(props).await.map_err(start_err)?;
            c.task_configs(config.tasks_max)
        }
        Connector::Sink(c) => {
            c.start(props).await.map_err(start_err)?;
            c.task_configs(config.tasks_max)
        }
    };
    let task_configs: Vec<Props> = task_configs.into_iter().take(config.tasks_max).collect();
    if committed != Some(&task_configs) {
        if let Err(e) = d.configs.write(ConfigLog::task_records(name, &task_configs)).await {
            stop_connector_object(name, connector, worker.config.shutdown_timeout).await;
            return Err(e);
        }
        info!(connector = name, tasks = task_configs.len(), "task configs written to the config topic");
    }
    info!(connector = name, "connector started here");
    Ok(connector)
}

/// Starts task `id` of `name` here with the standalone worker's runners.
async fn start_task(
    worker: &Worker,
    name: &str,
    props: &Props,
    id: u32,
    task_props: Props,
    paused: bool,
) -> Result<LocalTask, ConnectError> {
    let (config, connector) = worker.validate(props)?;
    let kind = kind_of(&connector);
    if kind == ConnectorKind::Source {
        // Another worker may have run this task: take its latest offsets
        // and finish the batch it may have left half written.
        worker.offsets.reload_connector(&worker.cluster, name).await?;
        worker.recover_pending(name, Some(id)).await?;
    }
    worker.status.ensure_task(name, kind, id, &worker.worker_id);
    let (pause, paused_rx) = watch::channel(paused);
    let cancel = CancellationToken::new();
    let handle =
        worker.spawn_task(&config, &connector, id, task_props.clone(), cancel.clone(), paused_rx).await?;
    info!(connector = name, task = id, "task started here");
    Ok(LocalTask {
        slot: TaskSlot { props: task_props, cancel, handle: Some(handle) },
        connector_props: props.clone(),
        pause,
    })
}

async fn stop_everything(worker: &Worker, local: &mut Local) {
    for ((name, id), mut lt) in std::mem::take(&mut local.tasks) {
        stop_slot(&mut lt.slot, worker.config.shutdown_timeout, &name, id).await;
        worker.status.remove_task(&name, id);
    }
    for (name, mut lc) in std::mem::take(&mut local.connectors) {
        if let Some(c) = lc.connector.take() {
            stop_connector_object(&name, c, worker.config.shutdown_timeout).await;
        }
    }
}

/// Publishes the local tasks' state changes to the status topic.
async fn publish_loop(worker: Arc<Worker>) {
    let d = worker.dist().expect("distributed");
    let mut published: BTreeMap<TaskId, (State, Option<String>)> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = d.cancel.cancelled() => break,
        }
        let generation = d.generation.load(Ordering::Relaxed);
        let mut seen = BTreeSet::new();
        for c in worker.status.all() {
            for t in c.tasks {
                let key = (c.name.clone(), t.id);
                seen.insert(key.clone());
                let now = (t.state, t.trace.clone());
                if published.get(&key) == Some(&now) {
                    continue;
                }
                let entry =
                    StatusEntry { state: t.state, trace: t.trace, worker_id: worker.worker_id.clone() };
                match d.statuses.put(&c.name, Some(t.id), Some(&entry), generation).await {
                    Ok(()) => {
                        published.insert(key, now);
                    }
                    Err(e) => {
                        warn!(connector = %c.name, task = t.id, error = %e, "publishing a task status failed")
                    }
                }
            }
        }
        published.retain(|k, _| seen.contains(k));
    }
}
