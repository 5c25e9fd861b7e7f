//! A connector's life after it was added: pause, resume, stop (tasks shut
//! down, config kept), restart of the connector or single tasks, config
//! updates, removal and the worker's shutdown.
//!
//! Every operation checks its connector out of the worker's table
//! (`table.rs`) for its duration, so two operations on one connector never
//! interleave, while no lock is held during plugin code: other connectors'
//! operations and every read go on. Stopping a task or a connector waits
//! at most `task.shutdown.graceful.timeout.ms`. A connector that fails to
//! start again (on resume, restart or a config update) stays known with
//! its config and shows FAILED with the error as its trace; a restart
//! tries again.

use tracing::info;

use super::{
    kind_of, stop_run, stop_slot, ConnectorConfig, ConnectorStatus, Managed, Running, State, TargetState,
    TaskSlot, Worker,
};
use crate::error::ConnectError;
use crate::plugin::{Connector, ConnectorKind, Props};

/// Which parts of a connector `POST /connectors/{name}/restart` restarts
/// (Kafka's KIP-745).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartRequest {
    /// Restart the tasks too, not just the connector.
    pub include_tasks: bool,
    /// Restart only the instances that are FAILED.
    pub only_failed: bool,
}

impl Worker {
    /// Pauses a connector's tasks (sources stop polling, sinks stop
    /// consuming; both keep their place). A stopped connector starts paused.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn pause_connector(&self, name: &str) -> Result<(), ConnectError> {
        self.set_target(name, TargetState::Paused).await
    }

    /// Resumes a paused or stopped connector.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn resume_connector(&self, name: &str) -> Result<(), ConnectError> {
        self.set_target(name, TargetState::Started).await
    }

    /// Stops a connector: its tasks flush, commit and stop, the connector
    /// stops, and its config is kept (state STOPPED, no tasks). Offsets may
    /// then be altered or reset; resume starts it again.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn stop_connector(&self, name: &str) -> Result<(), ConnectError> {
        self.set_target(name, TargetState::Stopped).await
    }

    async fn set_target(&self, name: &str, target: TargetState) -> Result<(), ConnectError> {
        if let Some(d) = self.dist() {
            return d.set_target(name, target).await;
        }
        let mut checkout = self.connectors.checkout(name).await?;
        let m = &mut *checkout;
        m.target = target;
        match (target, m.run.as_ref()) {
            (TargetState::Stopped, _) => {
                if let Some(run) = m.run.take() {
                    stop_run(name, run, self.config.shutdown_timeout).await;
                }
                self.put_bare_status(name, m.kind, State::Stopped, None);
            }
            (_, Some(run)) => {
                let paused = target == TargetState::Paused;
                run.pause.send_replace(paused);
                self.status.set_connector(name, if paused { State::Paused } else { State::Running }, None);
            }
            (_, None) => self.start_managed(m, None).await,
        }
        info!(connector = name, ?target, "connector target state changed");
        Ok(())
    }

    /// Starts a managed connector that has no running instance, in its
    /// target state (`connector` when one was already made and checked);
    /// a failure leaves it FAILED with the error as trace.
    async fn start_managed(&self, m: &mut Managed, connector: Option<Connector>) {
        let name = m.config.name.clone();
        let connector = match connector {
            Some(c) => Ok(c),
            None => self.validate(&m.config.props).map(|(_, c)| c),
        };
        let paused = m.target == TargetState::Paused;
        let result = match connector {
            Ok(c) => self.start_run(&m.config, c, paused).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(run) => m.run = Some(run),
            Err(e) => {
                tracing::error!(connector = %name, error = %e, "connector failed to start");
                self.put_bare_status(&name, m.kind, State::Failed, Some(e.to_string()));
            }
        }
    }

    /// A connector status with no tasks.
    fn put_bare_status(&self, name: &str, kind: ConnectorKind, state: State, trace: Option<String>) {
        self.status.put_connector(ConnectorStatus {
            name: name.to_string(),
            kind,
            state,
            trace,
            worker_id: self.worker_id.clone(),
            tasks: Vec::new(),
        });
    }

    /// Creates a connector or replaces the config of an existing one
    /// (`PUT /connectors/{name}/config`). An existing connector is stopped
    /// and started again with the new config in its current target state.
    /// Returns whether it was created.
    ///
    /// # Errors
    /// A config error naming the key (the running connector is then left
    /// as it was); [`ConnectError::ConnectorStart`] when a *new* connector
    /// refuses to start.
    pub async fn put_connector_config(&self, props: Props) -> Result<bool, ConnectError> {
        let (config, connector) = self.validate(&props)?;
        let name = config.name.clone();
        if let Some(d) = self.dist() {
            return d.put_config(&name, &props, false).await;
        }
        let mut checkout = match self.connectors.checkout(&name).await {
            Ok(checkout) => checkout,
            Err(ConnectError::UnknownConnector(_)) => {
                return self.create(config, connector).await.map(|()| true)
            }
            Err(e) => return Err(e),
        };
        let m = &mut *checkout;
        if let Some(run) = m.run.take() {
            stop_run(&name, run, self.config.shutdown_timeout).await;
        }
        m.kind = kind_of(&connector);
        m.config = config;
        match m.target {
            TargetState::Stopped => self.put_bare_status(&name, m.kind, State::Stopped, None),
            _ => self.start_managed(m, Some(connector)).await,
        }
        info!(connector = %name, "connector config updated");
        Ok(false)
    }

    /// Restarts a connector and, as asked, its tasks. Returns the status
    /// as it was, with the instances being restarted shown as RESTARTING
    /// (Kafka's answer); the restart is done when this returns. A stopped
    /// connector has nothing to restart.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn restart_connector(
        &self,
        name: &str,
        request: RestartRequest,
    ) -> Result<ConnectorStatus, ConnectError> {
        if let Some(d) = self.dist() {
            return d.restart_connector(self, name, request).await;
        }
        let mut checkout = self.connectors.checkout(name).await?;
        let m = &mut *checkout;
        let mut plan = self.status.connector(name).unwrap_or_else(|| ConnectorStatus {
            name: name.to_string(),
            kind: m.kind,
            state: State::Unassigned,
            trace: None,
            worker_id: self.worker_id.clone(),
            tasks: Vec::new(),
        });
        if m.target == TargetState::Stopped {
            return Ok(plan);
        }
        let restart_connector = !request.only_failed || plan.state == State::Failed;
        let mut tasks: Vec<u32> = Vec::new();
        if request.include_tasks {
            for t in &mut plan.tasks {
                if !request.only_failed || t.state == State::Failed {
                    tasks.push(t.id);
                    t.state = State::Restarting;
                }
            }
        }
        if restart_connector {
            plan.state = State::Restarting;
        }
        let Some(run) = m.run.as_mut() else {
            // It failed to start: starting it is the restart.
            if restart_connector {
                self.start_managed(m, None).await;
            }
            return Ok(plan);
        };
        if restart_connector {
            match self.restart_connector_object(&m.config, run).await {
                Ok(true) => {}
                Ok(false) => {
                    // Its task configs changed: restart everything with the new ones.
                    let run = m.run.take().expect("checked above");
                    stop_run(name, run, self.config.shutdown_timeout).await;
                    self.start_managed(m, None).await;
                    return Ok(plan);
                }
                Err(e) => {
                    let run = m.run.take().expect("checked above");
                    stop_run(name, run, self.config.shutdown_timeout).await;
                    self.put_bare_status(name, m.kind, State::Failed, Some(e.to_string()));
                    return Ok(plan);
                }
            }
        }
        for id in tasks {
            self.restart_slot(&m.config, run, id).await;
        }
        info!(
            connector = name,
            include_tasks = request.include_tasks,
            only_failed = request.only_failed,
            "connector restarted"
        );
        Ok(plan)
    }

    /// Replaces a running connector's connector object with a fresh,
    /// started one; `Ok(false)` when the new one splits the work into
    /// different task configs (the caller then restarts the tasks).
    async fn restart_connector_object(
        &self,
        config: &ConnectorConfig,
        run: &mut Running,
    ) -> Result<bool, ConnectError> {
        let (_, mut fresh) = self.validate(&config.props)?;
        let start_err = |source| ConnectError::ConnectorStart { connector: config.name.clone(), source };
        let task_configs = match &mut fresh {
            Connector::Source(c) => {
                c.start(&config.props).await.map_err(start_err)?;
                c.task_configs(config.tasks_max)
            }
            Connector::Sink(c) => {
                c.start(&config.props).await.map_err(start_err)?;
                c.task_configs(config.tasks_max)
            }
        };
        let old = std::mem::replace(&mut run.connector, fresh);
        super::stop_connector_object(&config.name, old, self.config.shutdown_timeout).await;
        let state = if *run.pause.borrow() { State::Paused } else { State::Running };
        self.status.set_connector(&config.name, state, None);
        let same = task_configs.len().min(config.tasks_max) == run.tasks.len()
            && task_configs.iter().zip(&run.tasks).all(|(new, slot)| *new == slot.props);
        Ok(same)
    }

    /// Restarts one task of a running connector.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`]; [`ConnectError::UnknownTask`]
    /// (also for a stopped connector, which has no tasks).
    pub async fn restart_task(&self, name: &str, task: u32) -> Result<(), ConnectError> {
        if let Some(d) = self.dist() {
            return d.restart_task(name, task).await;
        }
        let mut checkout = self.connectors.checkout(name).await?;
        let m = &mut *checkout;
        let unknown = || ConnectError::UnknownTask { connector: name.to_string(), task };
        let run = m.run.as_mut().ok_or_else(unknown)?;
        if task as usize >= run.tasks.len() {
            return Err(unknown());
        }
        self.restart_slot(&m.config, run, task).await;
        info!(connector = name, task, "task restarted");
        Ok(())
    }

    /// Stops task `id` (it flushes and commits) and spawns it again with
    /// the same config.
    async fn restart_slot(&self, config: &ConnectorConfig, run: &mut Running, id: u32) {
        let slot = &mut run.tasks[id as usize];
        stop_slot(slot, self.config.shutdown_timeout, &config.name, id).await;
        *slot = TaskSlot { props: slot.props.clone(), cancel: run.cancel.child_token(), handle: None };
        self.status.set_task(&config.name, id, State::Unassigned, None);
        self.spawn_slot(config, run, id).await;
    }

    /// Stops a connector's tasks (each flushes and commits) and the
    /// connector, and forgets it and its active topics. Its stored offsets
    /// stay.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn remove_connector(&self, name: &str) -> Result<(), ConnectError> {
        if let Some(d) = self.dist() {
            return d.remove(name).await;
        }
        let mut checkout = self.connectors.checkout(name).await?;
        checkout.remove();
        if let Some(run) = checkout.run.take() {
            stop_run(name, run, self.config.shutdown_timeout).await;
        }
        drop(checkout);
        self.status.remove(name);
        self.topics.reset(name);
        Ok(())
    }

    /// Stops every connector cleanly (final flush and commit, offsets
    /// stored), then closes the cluster if the worker opened it.
    ///
    /// # Errors
    /// [`ConnectError::Cluster`] when the cluster fails to close.
    pub async fn shutdown(&self) -> Result<(), ConnectError> {
        if let Some(d) = self.dist() {
            d.shutdown(self).await;
        }
        for mut checkout in self.connectors.checkout_all(self.config.shutdown_timeout).await {
            let name = checkout.config.name.clone();
            if let Some(run) = checkout.run.take() {
                stop_run(&name, run, self.config.shutdown_timeout).await;
            }
            self.status.set_connector(&name, State::Stopped, None);
        }
        self.offsets.close().await;
        if self.owns_cluster {
            self.cluster.close().await.map_err(ConnectError::cluster("closing the cluster"))?;
        }
        Ok(())
    }
}
