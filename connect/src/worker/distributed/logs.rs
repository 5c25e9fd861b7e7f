//! The shared topics of distributed mode, read by every worker from the
//! beginning and followed: the config topic and the status topic.
//!
//! Config topic (compacted, one partition, so every worker applies the
//! records in the same order), Kafka Connect's keys with JSON values:
//!
//! ```text
//! connector-<name>     {"properties": {<connector config>}}   or null: deleted
//! task-<name>-<n>      {"properties": {<task config>}}        (staged)
//! commit-<name>        {"tasks": <count>}                      staged task configs 0..count take effect
//! target-state-<name>  {"state": "STARTED" | "PAUSED" | "STOPPED"}
//! restart-connector-<name>  {"id": "<request id>", "include-tasks": bool, "only-failed": bool}
//! restart-task-<name>-<n>   {"id": "<request id>"}
//! ```
//!
//! A restart record is a request to whichever worker runs the instance
//! (Kafka's KIP-745 writes them the same way); a worker acts on the ones
//! written after it started.
//!
//! Status topic (compacted), written by the worker that runs the instance:
//!
//! ```text
//! status-connector-<name>    {"state": "RUNNING", "trace": null, "worker_id": "host:port", "generation": 3}
//! status-task-<name>-<n>     (same)                                         or null: forgotten
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use runnel_core::client::{Cluster, Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerRecord};
use runnel_core::topic::{NewTopic, TopicPartition};
use serde_json::{json, Value as Json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::ConnectError;
use crate::plugin::Props;
use crate::worker::offsets::ensure_topic;
use crate::worker::{State, TargetState};

/// Follows a topic from the beginning, applying each record; says how far
/// it has read.
pub(crate) struct Tail {
    topic: String,
    tps: Vec<TopicPartition>,
    positions: watch::Receiver<BTreeMap<i32, i64>>,
    end_reader: Mutex<Consumer>,
}

impl Tail {
    /// Starts following `topic` (created compacted with `partitions` if
    /// missing); `apply` sees every record in order.
    pub(crate) async fn start(
        cluster: &Cluster,
        topic: &str,
        partitions: i32,
        mut apply: impl FnMut(&ConsumerRecord) + Send + 'static,
        cancel: CancellationToken,
    ) -> Result<(Tail, JoinHandle<()>), ConnectError> {
        let n = ensure_topic(cluster, NewTopic::new(topic, partitions).config("cleanup.policy", "compact"))
            .await?;
        let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(topic, p)).collect();
        let what = || format!("reading topic `{topic}`");
        let config = || ConsumerConfig::default().auto_commit(false);
        let mut consumer = cluster.consumer(config()).map_err(ConnectError::cluster(what()))?;
        crate::worker::blocking::off_runtime(|| {
            consumer.assign(tps.clone())?;
            consumer.seek_to_beginning(&tps)
        })
        .map_err(ConnectError::cluster(what()))?;
        let end_reader = cluster.consumer(config()).map_err(ConnectError::cluster(what()))?;
        let (tx, positions) = watch::channel(tps.iter().map(|tp| (tp.partition, 0)).collect());
        let name = topic.to_string();
        let parts = tps.clone();
        let handle = tokio::spawn(async move {
            while !cancel.is_cancelled() {
                let records = tokio::select! {
                    r = consumer.poll(Duration::from_millis(200)) => r,
                    _ = cancel.cancelled() => break,
                };
                match records {
                    Ok(records) => records.iter().for_each(&mut apply),
                    Err(e) => {
                        warn!(topic = name, error = %e, "reading failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
                let mut now = BTreeMap::new();
                for tp in &parts {
                    if let Ok(p) = consumer.position(tp).await {
                        now.insert(tp.partition, p);
                    }
                }
                tx.send_if_modified(|old| {
                    let changed = *old != now;
                    *old = now;
                    changed
                });
            }
            let _ = consumer.close().await;
        });
        Ok((Tail { topic: topic.to_string(), tps, positions, end_reader: Mutex::new(end_reader) }, handle))
    }

    /// A receiver that changes whenever more of the topic was read.
    pub(crate) fn changes(&self) -> watch::Receiver<BTreeMap<i32, i64>> {
        self.positions.clone()
    }

    /// The read position of partition 0 (the config topic's only one).
    pub(crate) fn position(&self) -> i64 {
        self.positions.borrow().get(&0).copied().unwrap_or(0)
    }

    /// Waits until every partition is read up to `targets` (exclusive ends).
    async fn wait_for(&self, targets: &BTreeMap<i32, i64>, timeout: Duration) -> Result<(), ConnectError> {
        let mut rx = self.positions.clone();
        let reached =
            |p: &BTreeMap<i32, i64>| targets.iter().all(|(part, end)| p.get(part).is_some_and(|o| o >= end));
        let wait = async {
            loop {
                if reached(&rx.borrow_and_update()) {
                    return true;
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(true) => Ok(()),
            _ => Err(ConnectError::Cluster {
                what: format!("reading topic `{}` up to {targets:?}", self.topic),
                source: runnel_core::Error::Timeout {
                    what: "the worker to read a shared topic",
                    ms: timeout.as_millis() as u64,
                },
            }),
        }
    }

    /// Waits until partition 0 is read past `offset`.
    pub(crate) async fn wait_past(&self, offset: i64, timeout: Duration) -> Result<(), ConnectError> {
        self.wait_for(&BTreeMap::from([(0, offset + 1)]), timeout).await
    }

    /// Waits until everything written so far is read.
    pub(crate) async fn catch_up(&self, timeout: Duration) -> Result<(), ConnectError> {
        let ends = crate::worker::blocking::off_runtime(|| {
            self.end_reader.lock().unwrap_or_else(|e| e.into_inner()).end_offsets(&self.tps)
        })
        .map_err(ConnectError::cluster(format!("end offsets of `{}`", self.topic)))?;
        let targets = ends.into_iter().map(|(tp, end)| (tp.partition, end)).collect();
        self.wait_for(&targets, timeout).await
    }
}

/// The cluster's connector configs as the config topic says.
#[derive(Debug, Default)]
pub(crate) struct ConfigState {
    /// Connector configs by name.
    pub(crate) connectors: BTreeMap<String, Props>,
    /// Committed task configs by connector.
    pub(crate) tasks: BTreeMap<String, Vec<Props>>,
    /// Target states by connector (absent: started).
    pub(crate) targets: BTreeMap<String, TargetState>,
    /// The latest restart request per record key (`restart-...`).
    pub(crate) restarts: BTreeMap<String, Json>,
    staged: BTreeMap<String, BTreeMap<u32, Props>>,
}

impl ConfigState {
    /// Every connector with its number of committed tasks (what the
    /// leader assigns); a stopped connector has none.
    pub(crate) fn work(&self) -> BTreeMap<String, u32> {
        self.connectors
            .keys()
            .map(|c| {
                let n = match self.target(c) {
                    TargetState::Stopped => 0,
                    _ => self.tasks.get(c).map_or(0, |t| t.len() as u32),
                };
                (c.clone(), n)
            })
            .collect()
    }

    /// The target state of a connector.
    pub(crate) fn target(&self, name: &str) -> TargetState {
        self.targets.get(name).copied().unwrap_or(TargetState::Started)
    }

    fn apply(&mut self, key: &str, value: Option<Json>) {
        let props = |v: &Json| -> Option<Props> {
            v.get("properties")?
                .as_object()?
                .iter()
                .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        };
        if let Some(name) = key.strip_prefix("connector-") {
            match value.as_ref().and_then(props) {
                Some(p) => {
                    self.connectors.insert(name.to_string(), p);
                }
                None => {
                    self.connectors.remove(name);
                    self.tasks.remove(name);
                    self.targets.remove(name);
                    self.staged.remove(name);
                }
            }
        } else if let Some(rest) = key.strip_prefix("task-") {
            let Some((name, id)) = rest.rsplit_once('-') else { return };
            let (Ok(id), Some(p)) = (id.parse::<u32>(), value.as_ref().and_then(props)) else { return };
            self.staged.entry(name.to_string()).or_default().insert(id, p);
        } else if let Some(name) = key.strip_prefix("commit-") {
            let Some(n) = value.as_ref().and_then(|v| v.get("tasks")?.as_u64()) else { return };
            let staged = self.staged.remove(name).unwrap_or_default();
            let tasks: Option<Vec<Props>> = (0..n as u32).map(|i| staged.get(&i).cloned()).collect();
            match tasks {
                Some(t) => {
                    self.tasks.insert(name.to_string(), t);
                }
                None => warn!(connector = name, tasks = n, "task commit without every task config; ignored"),
            }
        } else if key.starts_with("restart-") {
            match value {
                Some(v) => self.restarts.insert(key.to_string(), v),
                None => self.restarts.remove(key),
            };
        } else if let Some(name) = key.strip_prefix("target-state-") {
            let state =
                match value.as_ref().and_then(|v| v.get("state")?.as_str().map(String::from)).as_deref() {
                    Some("PAUSED") => TargetState::Paused,
                    Some("STOPPED") => TargetState::Stopped,
                    _ => TargetState::Started,
                };
            self.targets.insert(name.to_string(), state);
        }
    }
}

fn record_key_value(r: &ConsumerRecord) -> Option<(String, Option<Json>)> {
    let key = std::str::from_utf8(r.key.as_deref()?).ok()?.to_string();
    let value = r.value.as_deref().and_then(|v| serde_json::from_slice(v).ok());
    Some((key, value))
}

/// The config topic: read into a [`ConfigState`], written by any worker.
pub(crate) struct ConfigLog {
    pub(crate) tail: Tail,
    pub(crate) state: Arc<RwLock<ConfigState>>,
    producer: Producer,
    topic: String,
}

/// How long a write waits to be read back.
const READ_BACK: Duration = Duration::from_secs(30);

impl ConfigLog {
    pub(crate) async fn open(
        cluster: &Cluster,
        topic: &str,
        producer: Producer,
        cancel: CancellationToken,
    ) -> Result<(ConfigLog, JoinHandle<()>), ConnectError> {
        let state = Arc::new(RwLock::new(ConfigState::default()));
        let writer = state.clone();
        let apply = move |r: &ConsumerRecord| {
            if let Some((key, value)) = record_key_value(r) {
                writer.write().unwrap_or_else(|e| e.into_inner()).apply(&key, value);
            }
        };
        let (tail, handle) = Tail::start(cluster, topic, 1, apply, cancel.clone()).await?;
        if tail.tps.len() != 1 {
            cancel.cancel();
            return Err(ConnectError::WorkerConfig(crate::config_def::ConfigError::invalid(
                "config.storage.topic",
                topic,
                format!(
                    "the config topic has {} partitions; it must have exactly one (every worker must read \
                     the configs in the same order)",
                    tail.tps.len()
                ),
            )));
        }
        let log = ConfigLog { tail, state, producer, topic: topic.to_string() };
        log.tail.catch_up(READ_BACK).await?;
        Ok((log, handle))
    }

    /// Reads the state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&ConfigState) -> T) -> T {
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes records in order and waits until they are read back.
    pub(crate) async fn write(&self, records: Vec<(String, Option<Json>)>) -> Result<(), ConnectError> {
        let mut last = -1;
        for (key, value) in records {
            let mut record = ProducerRecord::new(self.topic.as_str()).key(key.clone());
            record.value = value.map(|v| Bytes::from(v.to_string()));
            let meta = self.producer.send(record).await.map_err(ConnectError::cluster(format!(
                "writing `{key}` to the config topic `{}`",
                self.topic
            )))?;
            last = last.max(meta.offset);
        }
        if last >= 0 {
            self.tail.wait_past(last, READ_BACK).await?;
        }
        Ok(())
    }

    /// The record of a connector config.
    pub(crate) fn connector_record(name: &str, props: &Props) -> (String, Option<Json>) {
        (format!("connector-{name}"), Some(json!({ "properties": props })))
    }

    /// The records of a connector's task configs and their commit.
    pub(crate) fn task_records(name: &str, tasks: &[Props]) -> Vec<(String, Option<Json>)> {
        let mut records: Vec<(String, Option<Json>)> = tasks
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("task-{name}-{i}"), Some(json!({ "properties": p }))))
            .collect();
        records.push((format!("commit-{name}"), Some(json!({ "tasks": tasks.len() }))));
        records
    }

    /// The record of a restart request for a connector (and its tasks).
    pub(crate) fn restart_connector_record(
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> (String, Option<Json>) {
        (
            format!("restart-connector-{name}"),
            Some(json!({"id": request_id(), "include-tasks": include_tasks, "only-failed": only_failed})),
        )
    }

    /// The record of a restart request for one task.
    pub(crate) fn restart_task_record(name: &str, task: u32) -> (String, Option<Json>) {
        (format!("restart-task-{name}-{task}"), Some(json!({"id": request_id()})))
    }

    /// The record of a target state.
    pub(crate) fn target_record(name: &str, target: TargetState) -> (String, Option<Json>) {
        let state = match target {
            TargetState::Started => "STARTED",
            TargetState::Paused => "PAUSED",
            TargetState::Stopped => "STOPPED",
        };
        (format!("target-state-{name}"), Some(json!({ "state": state })))
    }
}

/// A request id unique enough to tell two requests of one key apart.
fn request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{}-{n}", now.as_nanos(), std::process::id())
}

/// One published status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusEntry {
    pub(crate) state: State,
    pub(crate) trace: Option<String>,
    pub(crate) worker_id: String,
}

/// The cluster's statuses as the status topic says: connector → (its
/// status, task id → status).
pub(crate) type StatusMap = BTreeMap<String, (Option<StatusEntry>, BTreeMap<u32, StatusEntry>)>;

fn parse_state(s: &str) -> State {
    match s {
        "RUNNING" => State::Running,
        "PAUSED" => State::Paused,
        "FAILED" => State::Failed,
        "STOPPED" => State::Stopped,
        "RESTARTING" => State::Restarting,
        _ => State::Unassigned,
    }
}

/// The status topic.
pub(crate) struct StatusLog {
    pub(crate) statuses: Arc<RwLock<StatusMap>>,
    producer: Producer,
    topic: String,
    _tail: Tail,
}

impl StatusLog {
    pub(crate) async fn open(
        cluster: &Cluster,
        topic: &str,
        partitions: i32,
        producer: Producer,
        cancel: CancellationToken,
    ) -> Result<(StatusLog, JoinHandle<()>), ConnectError> {
        let statuses: Arc<RwLock<StatusMap>> = Arc::default();
        let writer = statuses.clone();
        let apply = move |r: &ConsumerRecord| {
            let Some((key, value)) = record_key_value(r) else { return };
            let entry = value.as_ref().map(|v| StatusEntry {
                state: parse_state(v.get("state").and_then(Json::as_str).unwrap_or_default()),
                trace: v.get("trace").and_then(Json::as_str).map(String::from),
                worker_id: v.get("worker_id").and_then(Json::as_str).unwrap_or_default().to_string(),
            });
            let mut map = writer.write().unwrap_or_else(|e| e.into_inner());
            if let Some(name) = key.strip_prefix("status-connector-") {
                map.entry(name.to_string()).or_default().0 = entry;
            } else if let Some(rest) = key.strip_prefix("status-task-") {
                let Some((name, id)) = rest.rsplit_once('-') else { return };
                let Ok(id) = id.parse::<u32>() else { return };
                let tasks = &mut map.entry(name.to_string()).or_default().1;
                match entry {
                    Some(e) => {
                        tasks.insert(id, e);
                    }
                    None => {
                        tasks.remove(&id);
                    }
                }
            }
        };
        let (tail, handle) = Tail::start(cluster, topic, partitions, apply, cancel).await?;
        tail.catch_up(READ_BACK).await?;
        Ok((StatusLog { statuses, producer, topic: topic.to_string(), _tail: tail }, handle))
    }

    /// Publishes a status (`None` forgets it): `task` `None` for the connector.
    pub(crate) async fn put(
        &self,
        connector: &str,
        task: Option<u32>,
        entry: Option<&StatusEntry>,
        generation: i32,
    ) -> Result<(), ConnectError> {
        let key = match task {
            Some(t) => format!("status-task-{connector}-{t}"),
            None => format!("status-connector-{connector}"),
        };
        let mut record = ProducerRecord::new(self.topic.as_str()).key(key.clone());
        record.value = entry.map(|e| {
            Bytes::from(
                json!({"state": e.state.to_string(), "trace": e.trace, "worker_id": e.worker_id, "generation": generation})
                    .to_string(),
            )
        });
        self.producer.send(record).await.map_err(ConnectError::cluster(format!(
            "writing `{key}` to the status topic `{}`",
            self.topic
        )))?;
        Ok(())
    }

    /// A snapshot.
    pub(crate) fn snapshot(&self) -> StatusMap {
        self.statuses.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Props {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn task_configs_take_effect_only_when_committed_and_deletion_forgets_everything() {
        let mut s = ConfigState::default();
        s.apply("connector-a", Some(json!({"properties": {"name": "a", "tasks.max": "2"}})));
        s.apply("task-a-0", Some(json!({"properties": {"x": "0"}})));
        s.apply("task-a-1", Some(json!({"properties": {"x": "1"}})));
        assert_eq!(s.work(), BTreeMap::from([("a".to_string(), 0)]), "not committed yet");
        s.apply("commit-a", Some(json!({"tasks": 2})));
        assert_eq!(s.work(), BTreeMap::from([("a".to_string(), 2)]));
        assert_eq!(s.tasks["a"][1], p(&[("x", "1")]));
        s.apply("target-state-a", Some(json!({"state": "STOPPED"})));
        assert_eq!((s.target("a"), s.work()["a"]), (TargetState::Stopped, 0));
        // A commit naming a task never written is ignored.
        s.apply("commit-a", Some(json!({"tasks": 3})));
        assert_eq!(s.tasks["a"].len(), 2);
        s.apply("connector-a", None);
        assert!(s.work().is_empty() && s.tasks.is_empty() && s.targets.is_empty());
        // A connector whose name has dashes.
        s.apply("task-my-conn-7", Some(json!({"properties": {}})));
        s.apply("commit-my-conn", Some(json!({"tasks": 0})));
        assert!(s.staged.is_empty());
    }
}
