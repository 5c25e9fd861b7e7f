//! The runtime: [`Streams`] runs a [`Topology`] against a cluster.
//!
//! `num.stream.threads` OS threads each join the consumer group named by
//! `application.id` and run the tasks (one per input partition of each
//! sub-topology) of the partitions the group gives them; several processes
//! with the same `application.id` share the work the same way, and when
//! one leaves, the group moves its partitions — and so its tasks — to the
//! others. Each thread drives its own single-threaded tokio runtime, so
//! processing never waits on the caller's executor.

mod collector;
mod control;
mod global;
mod internal_topics;
mod queries;
mod queues;
mod thread;

pub use crate::config::HostInfo;
pub use queries::{KeyQueryMetadata, StoreQueryParameters};

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use runnel_core::client::Cluster;
use tracing::{error, info, warn};

use crate::config::StreamsConfig;
use crate::metrics::Counters;
use crate::store::global::GlobalStores;
use crate::topology::Topology;
use crate::StreamsError;
use thread::ThreadSpec;

/// The lifecycle of a [`Streams`] instance, as Kafka's `KafkaStreams.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamsState {
    /// Built, not started.
    Created,
    /// Threads are running.
    Running,
    /// `close` was called; threads are finishing.
    PendingShutdown,
    /// Closed cleanly.
    NotRunning,
    /// Every thread stopped on an error (see [`Streams::errors`]).
    Error,
}

/// What to do when a stream thread stops on an error, as Kafka's
/// `StreamThreadExceptionResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorResponse {
    /// Start a new thread in place of the failed one. Its tasks restart
    /// from the last committed offsets, so a record that always fails is
    /// retried for ever: use it for transient errors.
    ReplaceThread,
    /// Stop every thread of this instance (the default).
    ShutdownClient,
    /// Stop every instance of the application: this one asks the others
    /// through the control topic `<application.id>-control`, and they stop
    /// within a fraction of a second with the reason in their
    /// [`Streams::errors`].
    ShutdownApplication,
}

type ErrorHandler = Arc<dyn Fn(&StreamsError) -> ErrorResponse + Send + Sync>;

/// Wraps a client error as [`StreamsError::Client`] naming what the runtime
/// was doing: `.map_err(client_error("poll"))`.
pub(crate) fn client_error(op: &'static str) -> impl FnOnce(runnel_core::Error) -> StreamsError {
    move |source| StreamsError::Client { op, source: Box::new(source) }
}

/// What the threads of one instance share.
pub(crate) struct Shared {
    state: Mutex<StreamsState>,
    errors: Mutex<Vec<String>>,
    shutdown: Arc<AtomicBool>,
    handler: Mutex<Option<ErrorHandler>>,
    metrics: Arc<Counters>,
}

impl Shared {
    fn set_state(&self, state: StreamsState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
    }
}

/// A running (or runnable) streams application instance.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use runnel_core::client::Cluster;
/// use runnel_core::topic::NewTopic;
/// use runnel_streams::{Consumed, Produced, Serdes, Streams, StreamsBuilder, StreamsConfig, StreamsState};
///
/// let dir = tempfile::tempdir()?;
/// let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await?;
/// cluster.admin().create_topic(NewTopic::new("words", 2)).await?;
/// cluster.admin().create_topic(NewTopic::new("shouted", 2)).await?;
///
/// let mut builder = StreamsBuilder::new();
/// builder
///     .stream::<String, String>("words", Consumed::with(Serdes::string(), Serdes::string()))
///     .map_values(|w| w.to_uppercase())
///     .to("shouted", Produced::with(Serdes::string(), Serdes::string()));
/// let config = StreamsConfig::new("shouter").with_state_dir(dir.path().join("state"));
/// let streams = Streams::new(builder.build()?, config, cluster.clone())?;
/// streams.start().await?;
/// assert_eq!(streams.state(), StreamsState::Running);
/// streams.close().await?;
/// assert_eq!(streams.state(), StreamsState::NotRunning);
/// cluster.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Streams {
    topology: Arc<Topology>,
    config: StreamsConfig,
    cluster: Cluster,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// One per stream thread, for interactive reads.
    inboxes: Mutex<Vec<Arc<queries::QueryInbox>>>,
    /// The global tables' stores, once started.
    globals: Mutex<Option<Arc<GlobalStores>>>,
}

impl fmt::Debug for Streams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streams")
            .field("application_id", &self.config.application_id())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Streams {
    /// An instance of the application `config.application_id()` running
    /// `topology` on `cluster`. Nothing runs until [`Streams::start`].
    ///
    /// # Errors
    /// [`StreamsError::InvalidConfig`] naming a bad setting.
    pub fn new(topology: Topology, config: StreamsConfig, cluster: Cluster) -> Result<Streams, StreamsError> {
        config.validate()?;
        topology.check()?;
        Ok(Streams {
            topology: Arc::new(topology),
            config,
            cluster,
            shared: Arc::new(Shared {
                state: Mutex::new(StreamsState::Created),
                errors: Mutex::new(Vec::new()),
                shutdown: Arc::new(AtomicBool::new(false)),
                handler: Mutex::new(None),
                metrics: Arc::default(),
            }),
            threads: Mutex::new(Vec::new()),
            inboxes: Mutex::new(Vec::new()),
            globals: Mutex::new(None),
        })
    }

    /// Sets what happens when a stream thread fails (Kafka's
    /// `setUncaughtExceptionHandler`). Without one, the instance shuts
    /// down ([`ErrorResponse::ShutdownClient`]). Every failure is logged
    /// and kept in [`Streams::errors`] whatever the response.
    pub fn set_uncaught_error_handler(
        &self,
        handler: impl Fn(&StreamsError) -> ErrorResponse + Send + Sync + 'static,
    ) {
        *self.shared.handler.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(handler));
    }

    /// The instance's configuration.
    pub fn config(&self) -> &StreamsConfig {
        &self.config
    }

    /// The reader of store `name` across this instance's stream threads (or
    /// its global store), with the topic its serdes are called with.
    fn store_reader(
        &self,
        name: &str,
    ) -> Result<(String, Box<dyn crate::store::kv::StoreReader>), StreamsError> {
        if self.state() != StreamsState::Running {
            return Err(StreamsError::Runtime {
                reason: format!(
                    "store {name:?} cannot be read: the instance is {:?}, not Running",
                    self.state()
                ),
            });
        }
        let globals = self.globals.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(global) = globals.as_ref().and_then(|g| g.find(name)) {
            let reader = crate::store::global::global_reader(Arc::clone(global));
            return Ok((global.topic().to_string(), reader));
        }
        if self.topology.subtopology_of_store(name).is_none() {
            return Err(StreamsError::UnknownStore {
                name: name.to_string(),
                known: self.topology.store_names(),
            });
        }
        if self.topology.store_is_internal(name) {
            return Err(StreamsError::Unsupported {
                node: name.to_string(),
                reason: "the store's layout is internal (a join window, a buffer or a versioned table): \
                         interactive queries cannot read it"
                    .to_string(),
            });
        }
        let inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let reader = queries::RuntimeStoreReader {
            store: name.to_string(),
            inboxes,
            shutdown: Arc::clone(&self.shared.shutdown),
        };
        Ok((crate::store::changelog_topic(self.config.application_id(), name), Box::new(reader)))
    }

    /// A read-only view of the key-value store of `params` over every task
    /// of this instance (Kafka's `KafkaStreams#store` with
    /// `QueryableStoreTypes.keyValueStore()`): only the keys of the
    /// partitions this instance runs; find the others with
    /// [`query_metadata_for_key`](Self::query_metadata_for_key). Each read
    /// blocks until every stream thread answered (within about 100 ms).
    ///
    /// # Errors
    /// [`StreamsError::UnknownStore`]; [`StreamsError::Runtime`] when the
    /// instance is not running.
    pub fn store<K: 'static, V: 'static>(
        &self,
        params: StoreQueryParameters<K, V>,
    ) -> Result<crate::KeyValueStore<K, V>, StreamsError> {
        let (topic, reader) = self.store_reader(&params.name)?;
        let crate::store::window_view::View { name, topic, reader, key_serde, value_serde } =
            queries::view(topic, reader, params);
        Ok(crate::KeyValueStore { name, topic, reader, key_serde, value_serde })
    }

    /// As [`store`](Self::store), for a window store (a windowed
    /// aggregation's).
    ///
    /// # Errors
    /// As [`store`](Self::store).
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        params: StoreQueryParameters<K, V>,
    ) -> Result<crate::WindowStore<K, V>, StreamsError> {
        let (topic, reader) = self.store_reader(&params.name)?;
        Ok(crate::WindowStore(queries::view(topic, reader, params)))
    }

    /// As [`store`](Self::store), for a session store.
    ///
    /// # Errors
    /// As [`store`](Self::store).
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        params: StoreQueryParameters<K, V>,
    ) -> Result<crate::SessionStore<K, V>, StreamsError> {
        let (topic, reader) = self.store_reader(&params.name)?;
        Ok(crate::SessionStore(queries::view(topic, reader, params)))
    }

    /// Which instance holds `key` of store `store` (Kafka's
    /// `KafkaStreams#queryMetadataForKey`): the key's partition by the
    /// default partitioner over the store's input topic, and the
    /// `application.server` of the group member that owns it.
    ///
    /// # Errors
    /// [`StreamsError::UnknownStore`]; client errors describing the topic
    /// or the group.
    pub async fn query_metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
        key_serde: &dyn crate::Serde<K>,
    ) -> Result<KeyQueryMetadata, StreamsError> {
        let app = self.config.application_id();
        let Some(subtopology) = self.topology.subtopology_of_store(store) else {
            return Err(StreamsError::UnknownStore {
                name: store.to_string(),
                known: self.topology.store_names(),
            });
        };
        let topics = self.topology.subtopology_source_topics(subtopology, app);
        // As Kafka: the source topic with the most partitions, whose name
        // the key serde is called with.
        let admin = self.cluster.admin();
        let mut source: Option<(String, usize)> = None;
        for topic in &topics {
            let described = admin.describe_topic(topic).await.map_err(client_error("describe topic"))?;
            if source.as_ref().is_none_or(|(_, n)| described.partitions.len() > *n) {
                source = Some((topic.clone(), described.partitions.len()));
            }
        }
        let (topic, partitions) = source.ok_or_else(|| StreamsError::Runtime {
            reason: format!("store {store:?}: its sub-topology reads no topic"),
        })?;
        let key = key_serde
            .serialize(&topic, key)
            .map_err(|e| crate::store::serde_error::serde_error(store, "serialize", "key", e))?
            .unwrap_or_default();
        let partition = runnel_core::client::partition_for_key(&key, partitions as i32);
        let group = admin.describe_group(app).await.map_err(client_error("describe group"))?;
        let active_host = group
            .members
            .iter()
            .find(|m| m.assignment.iter().any(|tp| tp.partition == partition && topics.contains(&tp.topic)))
            .and_then(|m| queries::server_of_client_id(&m.client_id));
        Ok(KeyQueryMetadata { active_host, partition })
    }

    /// Creates the internal topics (repartition, changelog) and starts the
    /// stream threads.
    ///
    /// # Errors
    /// [`StreamsError::AlreadyStarted`]; [`StreamsError::MissingSourceTopics`]
    /// when an input topic does not exist; client errors creating topics.
    pub async fn start(&self) -> Result<(), StreamsError> {
        {
            let state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            if *state != StreamsState::Created {
                return Err(StreamsError::AlreadyStarted { state: format!("{:?}", *state) });
            }
        }
        internal_topics::prepare(&self.topology, &self.config, &self.cluster).await?;
        let app = self.config.application_id().to_string();
        let globals = Arc::new(GlobalStores::open(&self.topology.global_stores(), &self.config)?);
        let global_thread =
            if globals.is_empty() { None } else { Some(self.start_global_thread(&globals).await?) };
        let watcher = self.start_control_watcher()?;
        let startup = Arc::new(thread::StartupBarrier::new(self.config.num_stream_threads()));
        *self.globals.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&globals));
        let mut inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner);
        inboxes.clear();
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.extend(global_thread);
        threads.push(watcher);
        self.shared.set_state(StreamsState::Running);
        for i in 1..=self.config.num_stream_threads() {
            let spec = ThreadSpec {
                name: format!("{app}-StreamThread-{i}"),
                topology: Arc::clone(&self.topology),
                config: self.config.clone(),
                cluster: self.cluster.clone(),
                shutdown: Arc::clone(&self.shared.shutdown),
                metrics: Arc::clone(&self.shared.metrics),
                globals: Arc::clone(&globals),
                startup: Arc::clone(&startup),
                index: i - 1,
                queries: Arc::new(queries::QueryInbox::default()),
            };
            inboxes.push(Arc::clone(&spec.queries));
            let shared = Arc::clone(&self.shared);
            let handle = std::thread::Builder::new()
                .name(spec.name.clone())
                .spawn(move || supervise(spec, shared))
                .map_err(|e| StreamsError::Runtime {
                    reason: format!("cannot start a stream thread: {e}"),
                })?;
            threads.push(handle);
        }
        info!(application = %app, threads = threads.len(), "streams started");
        Ok(())
    }

    /// Starts the thread watching the control topic for shutdown requests.
    fn start_control_watcher(&self) -> Result<JoinHandle<()>, StreamsError> {
        let app = self.config.application_id().to_string();
        let (cluster, shared) = (self.cluster.clone(), Arc::clone(&self.shared));
        std::thread::Builder::new()
            .name(format!("{app}-ControlWatcher"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        error!(error = %e, "cannot build the control watcher's runtime");
                        return;
                    }
                };
                if let Err(e) = runtime.block_on(control::watch(cluster, app, shared)) {
                    // Without the watcher this instance only misses other
                    // instances' shutdown requests; it keeps processing.
                    warn!(error = %e, "the control watcher stopped");
                }
            })
            .map_err(|e| StreamsError::Runtime { reason: format!("cannot start the control watcher: {e}") })
    }

    /// Starts the global thread and waits until it has brought the global
    /// stores up to their topics' ends.
    async fn start_global_thread(&self, globals: &Arc<GlobalStores>) -> Result<JoinHandle<()>, StreamsError> {
        let name = format!("{}-GlobalStreamThread", self.config.application_id());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), StreamsError>>();
        let (cluster, stores, shared) = (self.cluster.clone(), Arc::clone(globals), Arc::clone(&self.shared));
        let interval = self.config.commit_interval();
        let thread_name = name.clone();
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let reason = format!("cannot build the global thread's runtime: {e}");
                        let _ = ready_tx.send(Err(StreamsError::Runtime { reason }));
                        return;
                    }
                };
                let result = runtime.block_on(async {
                    match global::GlobalUpdater::bootstrap(&cluster, stores).await {
                        Ok(updater) => {
                            let _ = ready_tx.send(Ok(()));
                            updater.run(&shared.shutdown, interval).await
                        }
                        Err(e) => {
                            let text = e.to_string();
                            let _ = ready_tx.send(Err(e));
                            Err(StreamsError::Runtime { reason: text })
                        }
                    }
                });
                if let Err(e) = result {
                    // Without current global tables joins would be wrong:
                    // the whole instance stops, as in Kafka.
                    error!(thread = %thread_name, error = %e, "global thread failed");
                    shared
                        .errors
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(format!("{thread_name}: {e}"));
                    shared.shutdown.store(true, Ordering::Relaxed);
                    shared.set_state(StreamsState::Error);
                }
            })
            .map_err(|e| StreamsError::Runtime { reason: format!("cannot start the global thread: {e}") })?;
        let ready = tokio::task::spawn_blocking(move || ready_rx.recv()).await.map_err(|e| {
            StreamsError::Runtime { reason: format!("cannot wait for the global thread: {e}") }
        })?;
        match ready {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => {
                Err(StreamsError::Runtime { reason: "the global thread stopped before starting".to_string() })
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> StreamsState {
        *self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance's metrics so far, such as
    /// [`dropped_records_total`](crate::StreamsMetrics::dropped_records_total).
    pub fn metrics(&self) -> crate::StreamsMetrics {
        self.shared.metrics.snapshot()
    }

    /// The errors stream threads stopped on, oldest first, as text.
    pub fn errors(&self) -> Vec<String> {
        self.shared.errors.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops the threads: each finishes the records it has buffered,
    /// commits, and leaves the group, so other instances take its
    /// partitions over at once.
    ///
    /// # Errors
    /// [`StreamsError::Runtime`] when a thread panicked.
    pub async fn close(&self) -> Result<(), StreamsError> {
        let errored = self.state() == StreamsState::Error;
        if !errored {
            self.shared.set_state(StreamsState::PendingShutdown);
        }
        self.shared.shutdown.store(true, Ordering::Relaxed);
        let handles: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let panicked =
            tokio::task::spawn_blocking(move || handles.into_iter().filter_map(|h| h.join().err()).count())
                .await
                .map_err(|e| StreamsError::Runtime { reason: format!("cannot join stream threads: {e}") })?;
        if !errored {
            self.shared.set_state(StreamsState::NotRunning);
        }
        if panicked > 0 {
            return Err(StreamsError::Runtime { reason: format!("{panicked} stream thread(s) panicked") });
        }
        Ok(())
    }
}

/// Runs one stream thread, replacing it or stopping the instance on error
/// as the handler says.
fn supervise(spec: ThreadSpec, shared: Arc<Shared>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(thread = %spec.name, error = %e, "cannot build the thread's runtime");
            return;
        }
    };
    loop {
        spec.queries.set_stopped(false);
        let result = runtime.block_on(thread::run(&spec));
        spec.queries.set_stopped(true);
        let Err(e) = result else { break };
        error!(thread = %spec.name, error = %e, "stream thread failed");
        shared.errors.lock().unwrap_or_else(PoisonError::into_inner).push(format!("{}: {e}", spec.name));
        let handler = shared.handler.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let response = handler.map_or(ErrorResponse::ShutdownClient, |h| h(&e));
        match response {
            ErrorResponse::ReplaceThread if !shared.shutdown.load(Ordering::Relaxed) => {
                warn!(thread = %spec.name, "replacing the failed stream thread");
                continue;
            }
            ErrorResponse::ReplaceThread => break,
            ErrorResponse::ShutdownApplication => {
                warn!(thread = %spec.name, "asking every instance of the application to shut down after the error");
                let app = spec.config.application_id();
                let reason = format!("{}: {e}", spec.name);
                if let Err(send) = runtime.block_on(control::request_shutdown(&spec.cluster, app, &reason)) {
                    error!(thread = %spec.name, error = %send, "cannot ask the other instances to shut down");
                }
                shared.shutdown.store(true, Ordering::Relaxed);
                shared.set_state(StreamsState::Error);
                break;
            }
            ErrorResponse::ShutdownClient => {
                warn!(thread = %spec.name, ?response, "shutting this instance down after the error");
                shared.shutdown.store(true, Ordering::Relaxed);
                shared.set_state(StreamsState::Error);
                break;
            }
        }
    }
}
