//! The Kafka wire-protocol server: existing Kafka clients (librdkafka,
//! kafka-python, kcat, the Java client) produce, consume, join groups and
//! administer topics against a Runnel data directory.
//!
//! * One tokio task per connection reads a frame, answers it, and only then
//!   reads the next: pipelined requests are answered in order, as Kafka does
//!   (it mutes a connection while a request is in flight).
//! * Frames are decoded and encoded with `kafka-protocol`; a frame over
//!   `socket.request.max.bytes`, a malformed or truncated one, or an API
//!   version outside [`versions::SUPPORTED`] closes that connection (logged
//!   once); every other client keeps being served.
//! * Record batches are stored exactly as they arrive (compression
//!   included) after validation, and fetches hand the stored bytes back.
//! * Groups live in the broker's [`crate::broker::group::GroupCoordinator`],
//!   shared with embedded clients of the same process. The coordinator
//!   computes assignments itself with the strategy the members agree on
//!   (range, roundrobin, cooperative-sticky); the leader's SyncGroup
//!   assignment is accepted but not used. Groups of any other protocol
//!   type (Kafka Connect's `connect`, ...) are leader-assigned as in Kafka:
//!   the coordinator passes metadata to the leader and its assignment back
//!   (the broker's `broker::group` module keeps those groups).
//!
//! # Example
//!
//! ```
//! use runnel_core::client::Cluster;
//! use runnel_core::server::{KafkaServer, ServerConfig};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await?;
//! let server = KafkaServer::start(&cluster, ServerConfig::new("127.0.0.1:0".parse()?)).await?;
//! println!("Kafka clients can use bootstrap.servers={}", server.local_addr());
//! server.shutdown().await;
//! cluster.close().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod admin;
mod alloc;
mod data;
mod frame;
mod groups;
mod idempotence;
mod metrics;
mod versions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::broker::{Broker, BrokerHandle};
use crate::vocabulary::ErrorCode;
use crate::{Error, Result};
use frame::FrameError;

pub use alloc::LargeAllocGuard;

/// Settings of a [`KafkaServer`], with Kafka's broker keys where one exists.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (`listeners`).
    pub listen: SocketAddr,
    /// The `host:port` clients are told to connect to
    /// (`advertised.listeners`); defaults to the bound address.
    pub advertised: Option<(String, u16)>,
    /// This broker's id in metadata (`node.id`).
    pub node_id: i32,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// Connections idle this long are closed (`connections.max.idle.ms`).
    pub idle_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Where to serve Prometheus metrics (`GET /metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Shortest session timeout a member may ask for (`group.min.session.timeout.ms`).
    pub group_min_session_timeout_ms: i32,
    /// Longest session timeout a member may ask for (`group.max.session.timeout.ms`).
    pub group_max_session_timeout_ms: i32,
}

impl ServerConfig {
    /// Defaults (Kafka's) listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            advertised: None,
            node_id: 1,
            max_request_bytes: 100 * 1024 * 1024,
            idle_timeout: Duration::from_millis(600_000),
            shutdown_timeout: Duration::from_secs(30),
            metrics_listen: None,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
        }
    }

    /// Parses an advertised listener, `host:port` or `PLAINTEXT://host:port`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming `advertised.listeners`.
    pub fn parse_advertised(value: &str) -> Result<(String, u16)> {
        let bad = |reason: &str| Error::InvalidConfig {
            key: "advertised.listeners".into(),
            reason: format!("'{value}': {reason}"),
        };
        let rest = value.split_once("://").map_or(value, |(_, r)| r);
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("expected host:port"))?;
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = port.parse::<u16>().map_err(|_| bad("port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(bad("port 0 cannot be advertised"));
        }
        Ok((host.trim_matches(['[', ']']).to_string(), port))
    }
}

/// State every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    broker: Arc<Broker>,
    node_id: i32,
    host: StrBytes,
    port: i32,
    cluster_id: StrBytes,
    producer_ids: idempotence::ProducerIds,
    producers: idempotence::ProducerStates,
    metrics: Arc<metrics::Metrics>,
    shutdown: watch::Receiver<bool>,
    session_timeouts: std::ops::RangeInclusive<i32>,
}

impl Shared {
    fn broker(&self) -> &Broker {
        &self.broker
    }
}

/// A running Kafka-protocol server over an embedded cluster.
#[derive(Debug)]
pub struct KafkaServer {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl KafkaServer {
    /// Binds `config.listen` and starts serving `cluster`'s broker: an
    /// embedded `client::Cluster` (a `file:` cluster, whose embedded clients
    /// then share topics and groups with the server's clients) or a shared
    /// [`Broker`].
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a non-embedded cluster; I/O errors binding.
    pub async fn start(cluster: &impl BrokerHandle, config: ServerConfig) -> Result<KafkaServer> {
        let broker = cluster.embedded_broker().ok_or_else(|| Error::InvalidUrl {
            url: "kafka://".into(),
            reason: "a server needs an embedded (file:) cluster to serve".into(),
        })?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| Error::io("listen on", config.listen.to_string())(e))?;
        let local_addr = listener.local_addr().map_err(Error::io("local address of", "listener"))?;
        let (host, port) =
            config.advertised.clone().unwrap_or_else(|| (local_addr.ip().to_string(), local_addr.port()));
        let cluster_id = cluster_id(broker.dir())?;
        let producer_ids = idempotence::ProducerIds::open(broker.dir())?;
        let (stop, shutdown) = watch::channel(false);
        let metrics = Arc::new(metrics::Metrics::default());
        let (metrics_addr, metrics_task) = match config.metrics_listen {
            Some(addr) => {
                let l =
                    TcpListener::bind(addr).await.map_err(|e| Error::io("listen on", addr.to_string())(e))?;
                let bound = l.local_addr().map_err(Error::io("local address of", "metrics listener"))?;
                info!(addr = %bound, "metrics at http://{bound}/metrics");
                let task = tokio::spawn(metrics::serve(l, metrics.clone(), broker.clone(), shutdown.clone()));
                (Some(bound), Some(task))
            }
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            broker,
            node_id: config.node_id,
            host: StrBytes::from_string(host.clone()),
            port: i32::from(port),
            cluster_id: StrBytes::from_string(cluster_id),
            producer_ids,
            producers: idempotence::ProducerStates::default(),
            metrics,
            shutdown: shutdown.clone(),
            session_timeouts: config.group_min_session_timeout_ms..=config.group_max_session_timeout_ms,
        });
        info!(listen = %local_addr, advertised = %format!("{host}:{port}"), "Kafka protocol server listening");
        let accept = tokio::spawn(accept_loop(listener, shared, config, shutdown));
        Ok(KafkaServer { local_addr, metrics_addr, stop, accept, metrics_task })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound metrics address, if metrics are served.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Stops accepting, lets every connection finish the request it is
    /// serving (long-polling fetches return at once), then returns. The
    /// cluster stays open: close it afterwards to flush and mark it clean.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.accept.await;
        if let Some(t) = self.metrics_task {
            let _ = t.await;
        }
        info!("Kafka protocol server stopped");
    }
}

/// The data directory's cluster id, created on first use.
fn cluster_id(dir: &std::path::Path) -> Result<String> {
    use std::hash::{BuildHasher, Hasher};
    let path = dir.join("cluster.id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read", &path)(e)),
    }
    let mut bytes = Vec::with_capacity(16);
    for salt in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        h.write_u32(std::process::id());
        bytes.extend_from_slice(&h.finish().to_be_bytes());
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u128 = u128::from_be_bytes(bytes.try_into().expect("16 bytes"));
    let id: String = (0..22)
        .map(|_| {
            let c = ALPHABET[(bits & 63) as usize] as char;
            bits >>= 6;
            c
        })
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &id).map_err(Error::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("rename", &path))?;
    Ok(id)
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    config: ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    let config = config.clone();
                    connections.spawn(async move {
                        shared.metrics.connection_opened();
                        serve_connection(stream, peer, &shared, &config).await;
                        shared.metrics.connection_closed();
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        info!(connections = open, "waiting for in-flight requests before shutdown");
    }
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(left = connections.len(), "shutdown timeout: aborting connections still busy");
        connections.abort_all();
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, config: &ServerConfig) {
    let _ = stream.set_nodelay(true);
    debug!(%peer, "connection opened");
    let (read, write) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut writer = BufWriter::with_capacity(64 * 1024, write);
    let mut shutdown = shared.shutdown.clone();
    loop {
        let frame = tokio::select! {
            biased;
            _ = stopped(&mut shutdown) => break,
            read = tokio::time::timeout(config.idle_timeout, crate::protocol::frame::read_frame(&mut reader, config.max_request_bytes)) => {
                match read {
                    Err(_) => {
                        debug!(%peer, "closing idle connection");
                        break;
                    }
                    Ok(Ok(Some(frame))) => frame,
                    Ok(Ok(None)) => break,
                    Ok(Err(reason)) => {
                        shared.metrics.request_refused();
                        warn!(%peer, %reason, "closing connection");
                        break;
                    }
                }
            }
        };
        let started = Instant::now();
        let request = match frame::decode_request(frame) {
            Ok(r) => r,
            Err(FrameError::ApiVersionsTooNew { correlation_id }) => {
                let body =
                    ResponseKind::ApiVersions(versions::api_versions(ErrorCode::UnsupportedVersion.code()));
                match frame::encode_response(ApiKey::ApiVersions, 0, correlation_id, &body) {
                    Ok(bytes) => {
                        if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        warn!(%peer, error = %e, "cannot encode ApiVersions fallback");
                        break;
                    }
                }
                continue;
            }
            Err(FrameError::Close(reason)) => {
                shared.metrics.request_refused();
                warn!(%peer, %reason, "closing connection");
                break;
            }
        };
        let (api, version, correlation_id) = (request.api_key, request.version, request.correlation_id);
        let response = handle(shared, request, peer).await;
        shared.metrics.observe(api, started.elapsed());
        let Some(body) = response else { continue };
        let bytes: BytesMut = match frame::encode_response(api, version, correlation_id, &body) {
            Ok(b) => b,
            Err(e) => {
                warn!(%peer, error = %e, "cannot encode response; closing connection");
                break;
            }
        };
        if let Err(e) = writer.write_all(&bytes).await {
            debug!(%peer, error = %e, "write failed");
            break;
        }
        // Flush when no further request is already buffered, so a pipelined
        // burst goes out in few writes.
        if reader.buffer().is_empty() {
            if let Err(e) = writer.flush().await {
                debug!(%peer, error = %e, "flush failed");
                break;
            }
        }
    }
    let _ = writer.flush().await;
    debug!(%peer, "connection closed");
}

/// Answers one request; `None` when no response is due (produce, acks=0).
async fn handle(shared: &Arc<Shared>, request: frame::Request, peer: SocketAddr) -> Option<ResponseKind> {
    let version = request.version;
    let client_id = request.client_id;
    Some(match request.body {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(versions::api_versions(ErrorCode::None.code()))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(data::metadata(shared, r, version).await),
        RequestKind::Produce(r) => return data::produce(shared, r).await.map(ResponseKind::Produce),
        RequestKind::Fetch(r) => ResponseKind::Fetch(data::fetch(shared, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(data::list_offsets(shared, r, version)),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(data::init_producer_id(shared, r).await)
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(shared, r, version))
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join(shared, r, &client_id, version).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(shared, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(shared, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(shared, r, version)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(groups::offset_commit(shared, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(groups::offset_fetch(shared, r, version)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(shared, r)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(groups::describe(shared, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete(shared, r).await),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(shared, r, version).await)
        }
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(admin::delete_topics(shared, r).await),
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(shared, r).await)
        }
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(admin::describe_configs(shared, r)),
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(admin::alter_configs(shared, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(admin::incremental_alter_configs(shared, r).await)
        }
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(admin::describe_cluster(shared, r)),
        other => {
            // The frame decoder only lets advertised APIs through.
            warn!(%peer, request = ?std::mem::discriminant(&other), "request type without a handler");
            return None;
        }
    })
}

/// Runs blocking broker work (file I/O, fsync) off the async workers.
/// A protocol string from a `&str`.
pub(crate) async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> T + Send + 'static,
) -> T {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || f(&shared)).await.expect("blocking broker task panicked")
}

/// Resolves once the server is shutting down.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}
