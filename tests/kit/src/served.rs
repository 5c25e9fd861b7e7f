//! An embedded cluster, and the cluster handle the clients under test use:
//! the same embedded one, or `kafka://` through a Kafka-protocol server over
//! it. The server runs on its own runtime thread, as a separate broker
//! process would, so clients that block (librdkafka's synchronous calls)
//! cannot starve it.

use std::sync::mpsc;
use std::thread::JoinHandle;

use runnel_core::client::Cluster;
use runnel_core::server::{KafkaServer, ServerConfig};

/// Whether this run tests the `kafka://` backend (`RUNNEL_TEST_BACKEND=kafka`):
/// clients then reach the same broker through the Kafka-protocol server
/// and librdkafka, while tests still inspect the broker directly.
pub fn kafka_backend() -> bool {
    std::env::var("RUNNEL_TEST_BACKEND").as_deref() == Ok("kafka")
}

/// Says that a test does not apply to the `kafka://` backend, and why.
pub fn skip_on_kafka(why: &str) -> bool {
    if kafka_backend() {
        eprintln!("skipped on kafka://: {why}");
    }
    kafka_backend()
}

/// See the [module docs](self).
pub struct ServedCluster {
    /// The embedded cluster, for inspecting the broker.
    pub embedded: Cluster,
    /// The cluster clients are created from.
    pub client: Cluster,
    /// The server's `host:port` when served over the Kafka protocol.
    pub bootstrap: Option<String>,
    /// Without close(), the server keeps running until the test process
    /// exits, so clients dropped after the cluster can still leave cleanly.
    server: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl ServedCluster {
    /// `embedded` as it is, or served over the Kafka protocol on a free
    /// port of 127.0.0.1 when `serve` (group session timeouts down to
    /// 100 ms, so group tests stay quick).
    pub async fn start(embedded: Cluster, serve: bool) -> ServedCluster {
        if !serve {
            return ServedCluster { client: embedded.clone(), embedded, bootstrap: None, server: None };
        }
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let served = embedded.clone();
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
            config.group_min_session_timeout_ms = 100;
            let server = rt.block_on(KafkaServer::start(&served, config)).unwrap();
            addr_tx.send(server.local_addr()).unwrap();
            let _ = stop_rx.recv();
            rt.block_on(server.shutdown());
        });
        let addr = tokio::task::spawn_blocking(move || addr_rx.recv().unwrap()).await.unwrap();
        let client = Cluster::open(&format!("kafka://{addr}")).await.unwrap();
        ServedCluster { embedded, client, bootstrap: Some(addr.to_string()), server: Some((stop_tx, thread)) }
    }

    /// The broker behind both handles.
    pub fn broker(&self) -> Option<&runnel_core::broker::Broker> {
        self.embedded.broker()
    }

    /// Stops the server (if any) and closes the embedded cluster cleanly.
    pub async fn close(mut self) -> runnel_core::Result<()> {
        if let Some((stop, thread)) = self.server.take() {
            let _ = stop.send(());
            tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
        }
        self.embedded.close().await
    }
}

/// Clients under test are created from [`ServedCluster::client`].
impl std::ops::Deref for ServedCluster {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.client
    }
}
