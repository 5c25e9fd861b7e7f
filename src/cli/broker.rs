//! `runnel broker`: serve a data directory over the Kafka wire protocol.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use runnel::core::broker::BrokerConfig;
use runnel::core::client::Cluster;
use runnel::core::server::{KafkaServer, ServerConfig};

#[derive(Debug, Args)]
pub(crate) struct BrokerArgs {
    /// Data directory (created if missing).
    #[arg(long, default_value = "./runnel-data")]
    data: PathBuf,
    /// Address to listen on for Kafka clients (`listeners`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// `host:port` clients are told to connect to (`advertised.listeners`);
    /// defaults to the listen address.
    #[arg(long)]
    advertised_listener: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Broker properties, Kafka's keys (`num.partitions=3`,
    /// `log.retention.ms=...`); repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Largest request accepted, in bytes (`socket.request.max.bytes`).
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    max_request_bytes: usize,
    /// Close connections idle this long, in ms (`connections.max.idle.ms`).
    #[arg(long, default_value_t = 600_000)]
    idle_timeout_ms: u64,
}

pub(crate) async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let props = super::key_values("--config", &args.configs)?;
    let config = BrokerConfig::from_properties(&props).context("broker --config")?;
    let url = format!("file:{}", args.data.display());
    let cluster =
        Cluster::open_with(&url, config).await.with_context(|| format!("opening {}", args.data.display()))?;
    let mut server_config = ServerConfig::new(args.listen);
    server_config.advertised =
        args.advertised_listener.as_deref().map(ServerConfig::parse_advertised).transpose()?;
    server_config.metrics_listen = args.metrics;
    server_config.max_request_bytes = args.max_request_bytes;
    server_config.idle_timeout = std::time::Duration::from_millis(args.idle_timeout_ms);
    let server = KafkaServer::start(&cluster, server_config).await?;
    println!("runnel broker serving {} on {}", args.data.display(), server.local_addr());
    if let Some(m) = server.metrics_addr() {
        println!("metrics at http://{m}/metrics");
    }
    wait_for_signal().await?;
    eprintln!("shutting down: finishing in-flight requests");
    server.shutdown().await;
    cluster.close().await.context("closing the data directory")?;
    eprintln!("stopped cleanly");
    Ok(())
}

pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    StopSignals::install()?.wait().await;
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C) handlers, installed before a command starts
/// its work: a signal that arrives during start-up is held and ends the
/// command cleanly once it is up, instead of killing it half started.
pub(crate) struct StopSignals {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    pub(crate) fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Waits for either signal (one that came after `install` counts).
    pub(crate) async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
