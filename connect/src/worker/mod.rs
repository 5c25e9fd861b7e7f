//! The [`Worker`]: runs connectors from configs against one cluster,
//! standalone ([`Worker::start`]) or as one worker of a distributed Connect
//! cluster ([`Worker::start_distributed`], see `distributed`: the workers
//! share config, status and offsets topics and divide connectors and tasks
//! through a group; the task runners below are the same).
//!
//! For each connector the worker checks the whole config before anything
//! starts (the runtime's keys, the connector's [`ConfigDef`](crate::config_def::ConfigDef),
//! the transforms, the converters), starts the connector, asks it for up to
//! `tasks.max` task configs and runs each task on its own tokio task:
//!
//! - **source tasks** poll → transform → convert → produce; before each
//!   batch is produced, the worker notes in the offsets topic where each
//!   target partition ended, and after it stores the source offsets; a
//!   restart that finds such a note counts what reached the log and resumes
//!   right after it, so sources are exactly-once when the task is the only
//!   writer of its target partitions;
//! - **sink tasks** consume as the group `connect-<name>`, convert,
//!   transform and `put`; every `offset.flush.interval.ms` they `flush` and
//!   the worker commits the offsets through the group.
//!
//! Memory is bounded: a task holds at most one poll's records (the source's
//! batch, the consumer's `max.poll.records`); there are no queues between
//! stages. A task that fails goes to FAILED in the [`StatusStore`] with its
//! error; the others keep running.
//!
//! After a connector is added it can be paused, resumed, stopped (tasks
//! shut down, config kept: the [`TargetState`]), restarted whole or task by
//! task, and given a new config (`lifecycle`); its offsets can be read, and
//! while stopped altered or reset (`offsets_admin`, Kafka's KIP-875); the
//! topics its tasks used are tracked (`topics`); and a config can be
//! checked key by key into a [`ConfigReport`] (`validate`). The
//! [`rest`](crate::rest) API is a thin layer over these methods.

mod blocking;
mod config;
mod distributed;
mod errors;
mod files;
mod lifecycle;
mod offsets;
mod offsets_admin;
mod sink;
mod source;
mod status;
mod table;
mod topics;
mod validate;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_core::client::{Cluster, ConsumerConfig};
use runnel_core::topic::NewTopic;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::{
    ConnectorConfig, ConverterConfig, DistributedConfig, ErrorsConfig, Tolerance, WorkerConfig,
    DEFAULT_CONVERTER,
};
pub use errors::Stage;
pub use files::{load_config_file, parse_json, parse_properties, parse_toml, FlatConfig};
pub use lifecycle::RestartRequest;
pub use offsets_admin::ConnectorOffset;
pub use status::{ConnectorStatus, State, StatusStore, TaskStatus};
pub use validate::{ConfigReport, ConfigReportEntry};

use crate::converter::Converter;
use crate::error::ConnectError;
use crate::plugin::{Connector, ConnectorKind, PluginRegistry, Props, SourceTaskContext};
use crate::transforms::{TransformChain, TransformError};
use errors::ErrorHandler;
use offsets::OffsetStore;
use topics::ActiveTopics;

/// What every task runner shares: names, converters, transforms, errors,
/// status and the stop and pause signals.
pub(crate) struct TaskRuntime {
    pub(crate) name: String,
    pub(crate) task_id: u32,
    pub(crate) props: Props,
    pub(crate) chain: TransformChain,
    pub(crate) key_converter: Box<dyn Converter>,
    pub(crate) value_converter: Box<dyn Converter>,
    pub(crate) key_class: String,
    pub(crate) value_class: String,
    pub(crate) errors: Arc<ErrorHandler>,
    pub(crate) status: StatusStore,
    pub(crate) topics: ActiveTopics,
    pub(crate) cancel: CancellationToken,
    pub(crate) paused: watch::Receiver<bool>,
}

impl TaskRuntime {
    /// Waits while the connector is paused (status PAUSED); `false` when
    /// cancelled meanwhile.
    pub(crate) async fn wait_while_paused(&mut self) -> bool {
        if !*self.paused.borrow() {
            return true;
        }
        self.status.set_task(&self.name, self.task_id, State::Paused, None);
        let ok = source::wait_unpaused(&mut self.paused, &self.cancel).await;
        if ok {
            self.status.set_task(&self.name, self.task_id, State::Running, None);
        }
        ok
    }
}

/// The class of the transform a [`TransformError`] names.
pub(crate) fn transform_class(props: &Props, e: &TransformError) -> String {
    match e {
        TransformError::Apply { alias, .. } => {
            props.get(&format!("transforms.{alias}.type")).cloned().unwrap_or_else(|| alias.clone())
        }
        _ => "transforms".to_string(),
    }
}

/// What the user asked a connector to be (Kafka's target state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// Running (`PUT …/resume`, or just created).
    Started,
    /// Tasks keep their place but move no data (`PUT …/pause`).
    Paused,
    /// Connector and tasks shut down, config kept (`PUT …/stop`); the
    /// only state in which offsets may be altered or reset.
    Stopped,
}

/// A connector the worker knows: its config and, unless stopped (or failed
/// to start), its running instance.
pub(crate) struct Managed {
    config: ConnectorConfig,
    kind: ConnectorKind,
    target: TargetState,
    run: Option<Running>,
}

/// A started connector and its tasks.
struct Running {
    connector: Connector,
    cancel: CancellationToken,
    pause: watch::Sender<bool>,
    tasks: Vec<TaskSlot>,
}

/// One task: its config and, once spawned, its tokio task (cancelled by
/// its own token, a child of the connector's).
struct TaskSlot {
    props: Props,
    cancel: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

/// A connector as `GET /connectors/{name}` shows it (Kafka's `ConnectorInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// The connector's name.
    pub name: String,
    /// Its config as given.
    pub config: Props,
    /// Source or sink.
    pub kind: ConnectorKind,
    /// Its tasks' configs, by task id (empty while stopped).
    pub tasks: Vec<Props>,
}

/// A standalone Connect worker. See the [module docs](self).
///
/// ```no_run
/// # async fn run() -> Result<(), runnel_connect::ConnectError> {
/// use runnel_connect::plugin::PluginRegistry;
/// use runnel_connect::worker::{load_config_file, Worker, WorkerConfig};
///
/// let worker_config = WorkerConfig::from_props(&load_config_file("worker.properties".as_ref())?)?;
/// let worker = Worker::start(worker_config, PluginRegistry::new()).await?;
/// let connector = load_config_file("file-source.properties".as_ref())?;
/// worker.add_connector(connector.into_iter().collect()).await?;
/// // ... until asked to stop:
/// worker.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct Worker {
    config: WorkerConfig,
    cluster: Cluster,
    owns_cluster: bool,
    registry: PluginRegistry,
    status: StatusStore,
    offsets: Arc<OffsetStore>,
    worker_id: String,
    topics: ActiveTopics,
    connectors: table::ConnectorTable,
    /// Set in distributed mode ([`Worker::start_distributed`]).
    distributed: std::sync::OnceLock<distributed::Distributed>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("cluster", &self.config.cluster)
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

impl Worker {
    /// Opens the worker's cluster (`cluster` / `bootstrap.servers`), reads
    /// the stored source offsets, and returns a worker with no connectors.
    ///
    /// # Errors
    /// [`ConnectError::Cluster`] when the cluster or the offsets topic cannot be read.
    pub async fn start(config: WorkerConfig, registry: PluginRegistry) -> Result<Worker, ConnectError> {
        let cluster = Cluster::open(&config.cluster)
            .await
            .map_err(ConnectError::cluster(format!("opening cluster {}", config.cluster)))?;
        let mut worker = Worker::with_cluster(config, registry, cluster).await?;
        worker.owns_cluster = true;
        Ok(worker)
    }

    /// Like [`Worker::start`] on an already open cluster (which
    /// [`Worker::shutdown`] leaves open).
    ///
    /// # Errors
    /// As [`Worker::start`].
    pub async fn with_cluster(
        config: WorkerConfig,
        registry: PluginRegistry,
        cluster: Cluster,
    ) -> Result<Worker, ConnectError> {
        let producer =
            cluster.producer(config.producer_config()?).map_err(ConnectError::cluster("offsets producer"))?;
        let offsets = OffsetStore::open(
            &cluster,
            &config.offset_storage_topic,
            config.offset_storage_partitions,
            producer,
        )
        .await?;
        let worker_id = config.listeners.first().cloned().unwrap_or_else(|| "standalone".into());
        let worker_id = worker_id.trim_start_matches("http://").trim_start_matches("https://").to_string();
        Ok(Worker {
            config,
            cluster,
            owns_cluster: false,
            registry,
            status: StatusStore::default(),
            offsets: Arc::new(offsets),
            worker_id,
            topics: ActiveTopics::default(),
            connectors: table::ConnectorTable::default(),
            distributed: std::sync::OnceLock::new(),
        })
    }

    /// The worker's config (the REST layer reads `listeners` from it).
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// The REST listeners, as configured.
    pub fn listeners(&self) -> &[String] {
        &self.config.listeners
    }

    /// The plugin registry.
    pub fn registry(&self) -> &PluginRegistry {
        &self.registry
    }

    /// Connector and task statuses (standalone: shared, stays current;
    /// distributed: the whole cluster's, from the status topic, as of now).
    pub fn status(&self) -> StatusStore {
        match self.dist() {
            Some(d) => d.status(self),
            None => self.status.clone(),
        }
    }

    /// The cluster the worker runs against.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The id this worker reports in statuses (its first listener's
    /// `host:port`, or `standalone`).
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The names of the connectors (running, paused, stopped or failed).
    pub async fn connectors(&self) -> Vec<String> {
        if let Some(d) = self.dist() {
            return d.connectors();
        }
        self.connectors.names()
    }

    /// A connector's config.
    pub async fn connector_config(&self, name: &str) -> Option<Props> {
        if let Some(d) = self.dist() {
            return d.connector_config(name);
        }
        self.connectors.view(name).map(|v| v.config)
    }

    /// A connector's config, kind and task configs.
    pub async fn connector_info(&self, name: &str) -> Option<ConnectorInfo> {
        if let Some(d) = self.dist() {
            return d.connector_info(self, name);
        }
        let view = self.connectors.view(name)?;
        Some(ConnectorInfo {
            name: name.to_string(),
            config: view.config,
            kind: view.kind,
            tasks: view.tasks,
        })
    }

    /// What the user last asked the connector to be.
    pub async fn target_state(&self, name: &str) -> Option<TargetState> {
        if let Some(d) = self.dist() {
            return d.target_state(name);
        }
        self.connectors.view(name).map(|v| v.target)
    }

    /// The topics a connector produced to or consumed from since it was
    /// created or they were last reset.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn active_topics(&self, name: &str) -> Result<Vec<String>, ConnectError> {
        self.require(name).await?;
        Ok(self.topics.get(name))
    }

    /// Forgets the topics a connector used.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn reset_active_topics(&self, name: &str) -> Result<(), ConnectError> {
        self.require(name).await?;
        self.topics.reset(name);
        Ok(())
    }

    /// The error for an operation distributed mode does not offer yet.
    fn not_distributed(&self, what: &str) -> Result<(), ConnectError> {
        match self.is_distributed() {
            true => {
                Err(ConnectError::Unsupported(format!("{what} is not supported in distributed mode yet")))
            }
            false => Ok(()),
        }
    }

    async fn require(&self, name: &str) -> Result<(), ConnectError> {
        if let Some(d) = self.dist() {
            return match d.connector_config(name) {
                Some(_) => Ok(()),
                None => Err(ConnectError::UnknownConnector(name.to_string())),
            };
        }
        match self.connectors.view(name).is_some() {
            true => Ok(()),
            false => Err(ConnectError::UnknownConnector(name.to_string())),
        }
    }

    /// Checks a connector config completely without starting it: the
    /// runtime's keys, the class, the connector's own keys, transforms,
    /// converters and, for sinks, `topics`/`topics.regex`.
    ///
    /// # Errors
    /// The first problem, naming the key (or the class and the known ones).
    pub fn validate(&self, props: &Props) -> Result<(ConnectorConfig, Connector), ConnectError> {
        let config = ConnectorConfig::parse(props, &self.config)?;
        let name = config.name.clone();
        let connector = self
            .registry
            .create(&config.class)
            .map_err(|source| ConnectError::UnknownClass { connector: name.clone(), source })?;
        let def = match &connector {
            Connector::Source(c) => c.config_def(),
            Connector::Sink(c) => c.config_def(),
        };
        def.parse(props)
            .map_err(|source| ConnectError::ConnectorConfig { connector: name.clone(), source })?;
        let cross = match &connector {
            Connector::Source(c) => c.validate(props),
            Connector::Sink(c) => c.validate(props),
        };
        if let Some(source) = cross.into_iter().next() {
            return Err(ConnectError::ConnectorConfig { connector: name.clone(), source });
        }
        TransformChain::from_config(props)
            .map_err(|e| ConnectError::Transform { connector: name.clone(), source: Box::new(e) })?;
        config.key_converter.build(&name, "key.converter", true)?;
        config.value_converter.build(&name, "value.converter", false)?;
        if let Connector::Sink(_) = &connector {
            if let Some(source) = sink_topics_error(&config) {
                return Err(ConnectError::ConnectorConfig { connector: name, source });
            }
        }
        Ok((config, connector))
    }

    /// Validates and starts a connector and its tasks (distributed mode:
    /// validates it and stores it in the config topic; the group's leader
    /// assigns it).
    ///
    /// # Errors
    /// A config error naming the key; [`ConnectError::DuplicateConnector`];
    /// [`ConnectError::ConnectorStart`] when the connector refuses to start
    /// (it is then not added).
    pub async fn add_connector(&self, props: Props) -> Result<(), ConnectError> {
        let (config, connector) = self.validate(&props)?;
        let name = config.name.clone();
        if let Some(d) = self.dist() {
            return d.put_config(&name, &props, true).await.map(|_| ());
        }
        self.create(config, connector).await
    }

    /// Adds a new connector to the table and starts it. It is listed at
    /// once; a start that fails removes it, and one that hangs holds up
    /// nothing else.
    ///
    /// # Errors
    /// [`ConnectError::DuplicateConnector`]; [`ConnectError::ConnectorStart`].
    async fn create(&self, config: ConnectorConfig, connector: Connector) -> Result<(), ConnectError> {
        let kind = kind_of(&connector);
        let view = table::View {
            config: config.props.clone(),
            kind,
            target: TargetState::Started,
            tasks: Vec::new(),
        };
        let mut slot = self.connectors.reserve(&config.name, view)?;
        let run = self.start_run(&config, connector, false).await?;
        slot.fill(Managed { config, kind, target: TargetState::Started, run: Some(run) });
        Ok(())
    }

    /// Starts a validated connector and spawns its tasks (paused if asked);
    /// statuses go to RUNNING (or PAUSED) with UNASSIGNED tasks.
    async fn start_run(
        &self,
        config: &ConnectorConfig,
        mut connector: Connector,
        paused: bool,
    ) -> Result<Running, ConnectError> {
        let name = config.name.clone();
        let props = &config.props;
        let start_err = |source| ConnectError::ConnectorStart { connector: name.clone(), source };
        let (kind, task_configs) = match &mut connector {
            Connector::Source(c) => {
                c.start(props).await.map_err(start_err)?;
                (ConnectorKind::Source, c.task_configs(config.tasks_max))
            }
            Connector::Sink(c) => {
                c.start(props).await.map_err(start_err)?;
                (ConnectorKind::Sink, c.task_configs(config.tasks_max))
            }
        };
        let task_configs: Vec<Props> = task_configs.into_iter().take(config.tasks_max).collect();
        self.status.put_connector(ConnectorStatus {
            name: name.clone(),
            kind,
            state: if paused { State::Paused } else { State::Running },
            trace: None,
            worker_id: self.worker_id.clone(),
            tasks: (0..task_configs.len() as u32)
                .map(|id| TaskStatus {
                    id,
                    state: State::Unassigned,
                    trace: None,
                    worker_id: self.worker_id.clone(),
                })
                .collect(),
        });
        let cancel = CancellationToken::new();
        let (pause, _) = watch::channel(paused);
        if kind == ConnectorKind::Source {
            if let Err(e) = self.recover_pending(&name, None).await {
                stop_connector_object(&name, connector, self.config.shutdown_timeout).await;
                return Err(e);
            }
        }
        let mut run = Running { connector, cancel, pause, tasks: Vec::new() };
        for props in task_configs {
            let slot = TaskSlot { props, cancel: run.cancel.child_token(), handle: None };
            run.tasks.push(slot);
            let id = run.tasks.len() as u32 - 1;
            self.spawn_slot(config, &mut run, id).await;
        }
        info!(connector = %name, tasks = run.tasks.len(), %kind, paused, "connector started");
        Ok(run)
    }

    /// Spawns task `id` of `run` from its slot; a task that cannot be
    /// built goes to FAILED.
    async fn spawn_slot(&self, config: &ConnectorConfig, run: &mut Running, id: u32) {
        let slot = &run.tasks[id as usize];
        let (props, cancel, paused) = (slot.props.clone(), slot.cancel.clone(), run.pause.subscribe());
        match self.spawn_task(config, &run.connector, id, props, cancel, paused).await {
            Ok(handle) => run.tasks[id as usize].handle = Some(handle),
            Err(e) => self.status.set_task(&config.name, id, State::Failed, Some(e.to_string())),
        }
    }

    /// Finishes the pending batches a killed worker left behind (see
    /// `offsets`): stores the offsets of what reached the log. Every task's,
    /// or with `only` just that task's.
    async fn recover_pending(&self, name: &str, only: Option<u32>) -> Result<(), ConnectError> {
        let mut pending = self.offsets.pending(name);
        pending.retain(|(task, _)| only.is_none_or(|t| t == *task));
        if pending.is_empty() {
            return Ok(());
        }
        let reader = self
            .cluster
            .consumer(ConsumerConfig::default().auto_commit(false))
            .map_err(ConnectError::cluster("end offsets"))?;
        for (task, batch) in pending {
            let tps: BTreeSet<runnel_core::topic::TopicPartition> = batch
                .get("targets")
                .and_then(|t| t.as_array())
                .map(|ts| {
                    ts.iter()
                        .filter_map(|t| {
                            Some(runnel_core::topic::TopicPartition::new(
                                t.get("topic")?.as_str()?,
                                t.get("partition")?.as_i64()? as i32,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let tps: Vec<_> = tps.into_iter().collect();
            let ends = blocking::off_runtime(|| reader.end_offsets(&tps))
                .map_err(ConnectError::cluster("reading log end offsets"))?;
            if let Some(entries) = offsets::recover_pending(&batch, &ends) {
                info!(
                    connector = name,
                    task,
                    partitions = entries.len(),
                    "resuming after an unfinished batch"
                );
                self.offsets.write(name, &entries).await?;
            }
            self.offsets.write_pending(name, task, None).await?;
        }
        Ok(())
    }

    async fn spawn_task(
        &self,
        config: &ConnectorConfig,
        connector: &Connector,
        id: u32,
        task_props: Props,
        cancel: CancellationToken,
        paused: watch::Receiver<bool>,
    ) -> Result<JoinHandle<()>, ConnectError> {
        let name = config.name.clone();
        let mut errors = ErrorHandler::new(config.errors.clone(), &name, id);
        let mut dlq = None;
        if let (Connector::Sink(_), Some(topic)) = (connector, &config.errors.dlq_topic) {
            let n = self.cluster.broker().map_or(1, |b| b.config().num_partitions);
            offsets::ensure_topic(&self.cluster, NewTopic::new(topic, n)).await?;
            let producer = Arc::new(
                self.cluster
                    .producer(self.config.producer_config()?)
                    .map_err(ConnectError::cluster("DLQ producer"))?,
            );
            errors = errors.with_dlq(producer.clone(), topic);
            dlq = Some(producer);
        }
        let rt = TaskRuntime {
            name: name.clone(),
            task_id: id,
            props: config.props.clone(),
            chain: TransformChain::from_config(&config.props)
                .map_err(|e| ConnectError::Transform { connector: name.clone(), source: Box::new(e) })?,
            key_converter: config.key_converter.build(&name, "key.converter", true)?,
            value_converter: config.value_converter.build(&name, "value.converter", false)?,
            key_class: config.key_converter.class.clone(),
            value_class: config.value_converter.class.clone(),
            errors: Arc::new(errors),
            status: self.status.clone(),
            topics: self.topics.clone(),
            cancel,
            paused,
        };
        Ok(match connector {
            Connector::Source(c) => {
                let producer = self
                    .cluster
                    .producer(self.config.producer_config()?)
                    .map_err(ConnectError::cluster("source producer"))?;
                let end_reader = self
                    .cluster
                    .consumer(ConsumerConfig::default().auto_commit(false))
                    .map_err(ConnectError::cluster("source offsets reader"))?;
                let storage = source::Storage {
                    name: Arc::from(name.as_str()),
                    task_id: id,
                    topics: self.topics.clone(),
                    producer: Arc::new(producer),
                    offsets: self.offsets.clone(),
                    remote: self.cluster.broker().is_none(),
                };
                let runner = source::SourceRunner {
                    rt,
                    task: c.create_task(),
                    task_props,
                    context: SourceTaskContext::new(&name, id, self.offsets.offsets(&name))
                        .with_state_dir(&self.config.state_dir),
                    storage,
                    cluster: self.cluster.clone(),
                    end_reader: Some(end_reader),
                    partitions: HashMap::new(),
                    sticky: 0,
                    spare: Vec::new(),
                };
                tokio::spawn(runner.run())
            }
            Connector::Sink(c) => {
                let mut consumer_config = self.config.consumer_config(&format!("connect-{name}"))?;
                consumer_config.client_id = format!("connector-consumer-{name}-{id}");
                let mut consumer =
                    self.cluster.consumer(consumer_config).map_err(ConnectError::cluster("sink consumer"))?;
                let moves = Arc::new(Mutex::new(sink::Moves::default()));
                consumer.set_rebalance_listener(sink::MoveListener(moves.clone()));
                match &config.topics_regex {
                    Some(pattern) => consumer.subscribe_pattern(pattern),
                    None => consumer.subscribe(config.topics.clone()),
                }
                .map_err(ConnectError::cluster(format!("connector `{name}`: subscribing")))?;
                let runner = sink::SinkRunner {
                    rt,
                    task: c.create_task(),
                    task_props,
                    consumer,
                    moves,
                    flush_interval: self.config.offset_flush_interval,
                    dlq,
                    offsets: BTreeMap::new(),
                    assigned: BTreeSet::new(),
                };
                tokio::spawn(runner.run())
            }
        })
    }
}

/// What is wrong with a sink's `topics`, `topics.regex` and dead letter
/// queue settings, naming the key.
fn sink_topics_error(config: &ConnectorConfig) -> Option<crate::config_def::ConfigError> {
    use crate::config_def::ConfigError;
    match (config.topics.is_empty(), &config.topics_regex) {
        (true, None) => {
            return Some(ConfigError::invalid("topics", "", "a sink needs `topics` or `topics.regex`"))
        }
        (false, Some(r)) => {
            return Some(ConfigError::invalid("topics.regex", r, "set either `topics` or `topics.regex`"))
        }
        (true, Some(r)) => {
            if let Err(e) = regex::Regex::new(r) {
                return Some(ConfigError::invalid("topics.regex", r, e.to_string()));
            }
        }
        _ => {}
    }
    match &config.errors.dlq_topic {
        Some(dlq) if config.topics.contains(dlq) => Some(ConfigError::invalid(
            "errors.deadletterqueue.topic.name",
            dlq,
            "the dead letter queue cannot be one of the connector's topics",
        )),
        _ => None,
    }
}

/// Source or sink.
fn kind_of(connector: &Connector) -> ConnectorKind {
    match connector {
        Connector::Source(_) => ConnectorKind::Source,
        Connector::Sink(_) => ConnectorKind::Sink,
    }
}

/// Stops a connector object. Its `stop` runs in a task of its own, and the
/// worker waits for it at most `grace` (`task.shutdown.graceful.timeout.ms`):
/// a plugin that hangs in `stop` is left behind, logged, and holds up
/// nothing else.
async fn stop_connector_object(name: &str, connector: Connector, grace: Duration) {
    let mut stopping = tokio::spawn(async move {
        let mut connector = connector;
        match &mut connector {
            Connector::Source(c) => c.stop().await,
            Connector::Sink(c) => c.stop().await,
        }
    });
    if tokio::time::timeout(grace, &mut stopping).await.is_err() {
        stopping.abort();
        warn!(
            connector = name,
            timeout_ms = grace.as_millis() as u64,
            "the connector did not stop within task.shutdown.graceful.timeout.ms; no longer waiting for it"
        );
    }
}

/// Stops a task: cancels it and waits until it has flushed and stopped, at
/// most `grace` (`task.shutdown.graceful.timeout.ms`); a task still running
/// then is aborted at its next await and logged.
async fn stop_slot(slot: &mut TaskSlot, grace: Duration, connector: &str, task: u32) {
    slot.cancel.cancel();
    if let Some(mut handle) = slot.handle.take() {
        if tokio::time::timeout(grace, &mut handle).await.is_err() {
            handle.abort();
            warn!(
                connector,
                task,
                timeout_ms = grace.as_millis() as u64,
                "the task did not stop within task.shutdown.graceful.timeout.ms; aborted"
            );
        }
    }
}

/// Stops every task (each flushes and commits), then the connector; each
/// bounded by `grace`.
async fn stop_run(name: &str, mut run: Running, grace: Duration) {
    run.cancel.cancel();
    for (id, slot) in run.tasks.iter_mut().enumerate() {
        stop_slot(slot, grace, name, id as u32).await;
    }
    stop_connector_object(name, run.connector, grace).await;
    info!(connector = %name, "connector stopped");
}
