//! [`StatusStore`]: connector and task states, as the REST API's
//! `/connectors/{name}/status` shows them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::plugin::ConnectorKind;

/// A connector's or task's state (Kafka's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not started yet.
    Unassigned,
    /// Running.
    Running,
    /// Paused by the user.
    Paused,
    /// Stopped after an error; the trace says why.
    Failed,
    /// Stopped cleanly; for a connector, stopped by the user with its
    /// config kept (`PUT /connectors/{name}/stop`).
    Stopped,
    /// About to be restarted (shown in a restart request's answer).
    Restarting,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Unassigned => "UNASSIGNED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Failed => "FAILED",
            State::Stopped => "STOPPED",
            State::Restarting => "RESTARTING",
        })
    }
}

/// One task's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStatus {
    /// The task id.
    pub id: u32,
    /// Its state.
    pub state: State,
    /// The error chain when FAILED.
    pub trace: Option<String>,
    /// The worker running it.
    pub worker_id: String,
}

/// One connector's status with its tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorStatus {
    /// The connector's name.
    pub name: String,
    /// Source or sink.
    pub kind: ConnectorKind,
    /// The connector's state.
    pub state: State,
    /// The error chain when FAILED.
    pub trace: Option<String>,
    /// The worker running it.
    pub worker_id: String,
    /// Its tasks by id.
    pub tasks: Vec<TaskStatus>,
}

/// Connector and task statuses, shared by the worker, its tasks and
/// whoever reads them (the REST layer). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct StatusStore {
    inner: Arc<RwLock<BTreeMap<String, ConnectorStatus>>>,
}

impl StatusStore {
    /// One connector's status.
    pub fn connector(&self, name: &str) -> Option<ConnectorStatus> {
        self.read().get(name).cloned()
    }

    /// Every connector's status, by name.
    pub fn all(&self) -> Vec<ConnectorStatus> {
        self.read().values().cloned().collect()
    }

    /// One task's status.
    pub fn task(&self, connector: &str, id: u32) -> Option<TaskStatus> {
        self.read().get(connector)?.tasks.iter().find(|t| t.id == id).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ConnectorStatus>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ConnectorStatus>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn put_connector(&self, status: ConnectorStatus) {
        self.write().insert(status.name.clone(), status);
    }

    pub(crate) fn remove(&self, name: &str) {
        self.write().remove(name);
    }

    /// Makes sure task `id` of `name` has an entry (UNASSIGNED), creating
    /// the connector's entry if needed (distributed mode keeps only the
    /// local tasks here).
    pub(crate) fn ensure_task(&self, name: &str, kind: ConnectorKind, id: u32, worker_id: &str) {
        let mut map = self.write();
        let c = map.entry(name.to_string()).or_insert_with(|| ConnectorStatus {
            name: name.to_string(),
            kind,
            state: State::Unassigned,
            trace: None,
            worker_id: worker_id.to_string(),
            tasks: Vec::new(),
        });
        let fresh =
            TaskStatus { id, state: State::Unassigned, trace: None, worker_id: worker_id.to_string() };
        match c.tasks.iter_mut().find(|t| t.id == id) {
            Some(t) => *t = fresh,
            None => c.tasks.push(fresh),
        }
    }

    /// Forgets task `id` of `name` (and the connector's entry once it has no tasks).
    pub(crate) fn remove_task(&self, name: &str, id: u32) {
        let mut map = self.write();
        if let Some(c) = map.get_mut(name) {
            c.tasks.retain(|t| t.id != id);
            if c.tasks.is_empty() {
                map.remove(name);
            }
        }
    }

    pub(crate) fn set_connector(&self, name: &str, state: State, trace: Option<String>) {
        if let Some(c) = self.write().get_mut(name) {
            c.state = state;
            c.trace = trace;
        }
    }

    pub(crate) fn set_task(&self, name: &str, id: u32, state: State, trace: Option<String>) {
        if let Some(c) = self.write().get_mut(name) {
            if let Some(t) = c.tasks.iter_mut().find(|t| t.id == id) {
                // A failed task stays failed until restarted.
                if t.state == State::Failed && state != State::Running && state != State::Unassigned {
                    return;
                }
                t.state = state;
                t.trace = trace;
            }
        }
    }
}
