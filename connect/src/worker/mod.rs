//! The standalone [`Worker`]: runs connectors from configs against one
//! cluster.
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

mod config;
mod errors;
mod files;
mod offsets;
mod sink;
mod source;
mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use runnel_core::client::{Cluster, ConsumerConfig};
use runnel_core::topic::NewTopic;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{
    ConnectorConfig, ConverterConfig, ErrorsConfig, Tolerance, WorkerConfig, DEFAULT_CONVERTER,
};
pub use errors::Stage;
pub use files::{load_config_file, parse_json, parse_properties, parse_toml, FlatConfig};
pub use status::{ConnectorStatus, State, StatusStore, TaskStatus};

use crate::converter::Converter;
use crate::error::ConnectError;
use crate::plugin::{Connector, ConnectorKind, PluginRegistry, Props, SourceTaskContext};
use crate::transforms::{TransformChain, TransformError};
use errors::ErrorHandler;
use offsets::OffsetStore;

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
    pub(crate) errors: ErrorHandler,
    pub(crate) status: StatusStore,
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

struct Running {
    connector: Connector,
    config: ConnectorConfig,
    cancel: CancellationToken,
    pause: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
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
    connectors: tokio::sync::Mutex<BTreeMap<String, Running>>,
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
            connectors: tokio::sync::Mutex::new(BTreeMap::new()),
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

    /// Connector and task statuses (shared; stays current).
    pub fn status(&self) -> StatusStore {
        self.status.clone()
    }

    /// The names of the running connectors.
    pub async fn connectors(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// A running connector's config.
    pub async fn connector_config(&self, name: &str) -> Option<Props> {
        self.connectors.lock().await.get(name).map(|r| r.config.props.clone())
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
        TransformChain::from_config(props)
            .map_err(|e| ConnectError::Transform { connector: name.clone(), source: Box::new(e) })?;
        config.key_converter.build(&name, "key.converter", true)?;
        config.value_converter.build(&name, "value.converter", false)?;
        if let Connector::Sink(_) = &connector {
            let bad = |key: &str, value: &str, reason: &str| ConnectError::ConnectorConfig {
                connector: name.clone(),
                source: crate::config_def::ConfigError::invalid(key, value, reason),
            };
            match (config.topics.is_empty(), &config.topics_regex) {
                (true, None) => return Err(bad("topics", "", "a sink needs `topics` or `topics.regex`")),
                (false, Some(r)) => {
                    return Err(bad("topics.regex", r, "set either `topics` or `topics.regex`"))
                }
                (true, Some(r)) => {
                    regex::Regex::new(r).map_err(|e| bad("topics.regex", r, &e.to_string()))?;
                }
                _ => {}
            }
            if let Some(dlq) = &config.errors.dlq_topic {
                if config.topics.contains(dlq) {
                    return Err(bad(
                        "errors.deadletterqueue.topic.name",
                        dlq,
                        "the dead letter queue cannot be one of the connector's topics",
                    ));
                }
            }
        }
        Ok((config, connector))
    }

    /// Validates and starts a connector and its tasks.
    ///
    /// # Errors
    /// A config error naming the key; [`ConnectError::DuplicateConnector`];
    /// [`ConnectError::ConnectorStart`] when the connector refuses to start.
    pub async fn add_connector(&self, props: Props) -> Result<(), ConnectError> {
        let (config, mut connector) = self.validate(&props)?;
        let name = config.name.clone();
        let mut connectors = self.connectors.lock().await;
        if connectors.contains_key(&name) {
            return Err(ConnectError::DuplicateConnector(name));
        }
        let start_err = |source| ConnectError::ConnectorStart { connector: name.clone(), source };
        let (kind, task_configs) = match &mut connector {
            Connector::Source(c) => {
                c.start(&props).await.map_err(start_err)?;
                (ConnectorKind::Source, c.task_configs(config.tasks_max))
            }
            Connector::Sink(c) => {
                c.start(&props).await.map_err(start_err)?;
                (ConnectorKind::Sink, c.task_configs(config.tasks_max))
            }
        };
        let task_configs: Vec<Props> = task_configs.into_iter().take(config.tasks_max).collect();
        self.status.put_connector(ConnectorStatus {
            name: name.clone(),
            kind,
            state: State::Running,
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
        let (pause, paused) = watch::channel(false);
        let mut tasks = Vec::new();
        if kind == ConnectorKind::Source {
            self.recover_pending(&name).await?;
        }
        for (id, task_props) in task_configs.into_iter().enumerate() {
            let id = id as u32;
            match self.spawn_task(&config, &connector, id, task_props, cancel.clone(), paused.clone()).await {
                Ok(handle) => tasks.push(handle),
                Err(e) => self.status.set_task(&name, id, State::Failed, Some(e.to_string())),
            }
        }
        info!(connector = %name, tasks = tasks.len(), %kind, "connector started");
        connectors.insert(name, Running { connector, config, cancel, pause, tasks });
        Ok(())
    }

    /// Finishes the pending batches a killed worker left behind (see
    /// `offsets`): stores the offsets of what reached the log.
    async fn recover_pending(&self, name: &str) -> Result<(), ConnectError> {
        let pending = self.offsets.pending(name);
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
            let ends = reader.end_offsets(&tps).map_err(ConnectError::cluster("reading log end offsets"))?;
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
            errors,
            status: self.status.clone(),
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
                let runner = source::SourceRunner {
                    rt,
                    task: c.create_task(),
                    task_props,
                    context: SourceTaskContext::new(&name, id, self.offsets.offsets(&name)),
                    producer,
                    cluster: self.cluster.clone(),
                    offsets: self.offsets.clone(),
                    end_reader,
                    partitions: HashMap::new(),
                    sticky: 0,
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

    /// Pauses a connector's tasks (sources stop polling, sinks stop
    /// consuming; both keep their place).
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn pause_connector(&self, name: &str) -> Result<(), ConnectError> {
        self.set_paused(name, true).await
    }

    /// Resumes a paused connector.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn resume_connector(&self, name: &str) -> Result<(), ConnectError> {
        self.set_paused(name, false).await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ConnectError> {
        let connectors = self.connectors.lock().await;
        let running = connectors.get(name).ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
        running.pause.send_replace(paused);
        self.status.set_connector(name, if paused { State::Paused } else { State::Running }, None);
        Ok(())
    }

    /// Stops a connector's tasks (each flushes and commits) and the
    /// connector, and forgets it.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`].
    pub async fn remove_connector(&self, name: &str) -> Result<(), ConnectError> {
        let running = self
            .connectors
            .lock()
            .await
            .remove(name)
            .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
        stop(running).await;
        self.status.remove(name);
        Ok(())
    }

    /// Stops every connector cleanly (final flush and commit, offsets
    /// stored), then closes the cluster if the worker opened it.
    ///
    /// # Errors
    /// [`ConnectError::Cluster`] when the cluster fails to close.
    pub async fn shutdown(&self) -> Result<(), ConnectError> {
        let running = std::mem::take(&mut *self.connectors.lock().await);
        for (name, r) in running {
            stop(r).await;
            self.status.set_connector(&name, State::Stopped, None);
        }
        self.offsets.close().await;
        if self.owns_cluster {
            self.cluster.close().await.map_err(ConnectError::cluster("closing the cluster"))?;
        }
        Ok(())
    }
}

async fn stop(mut running: Running) {
    running.cancel.cancel();
    for handle in running.tasks.drain(..) {
        let _ = handle.await;
    }
    match &mut running.connector {
        Connector::Source(c) => c.stop().await,
        Connector::Sink(c) => c.stop().await,
    }
    info!(connector = %running.config.name, "connector stopped");
}
