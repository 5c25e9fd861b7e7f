//! `runnel connect worker.properties conn1.properties …`: a standalone
//! Connect worker running the given connectors, with the REST API on its
//! `listeners`, until SIGINT/SIGTERM.
//!
//! `runnel connect --distributed worker.properties`: one worker of a
//! distributed Connect cluster (`group.id`, `config.storage.topic`,
//! `status.storage.topic`, ...); connectors come through the REST API of
//! any worker.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use runnel::connect::plugin::PluginRegistry;
use runnel::connect::rest::RestServer;
use runnel::connect::worker::{load_config_file, Worker, WorkerConfig};

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The worker config (`.properties`, `.json` or `.toml`): Kafka
    /// Connect's keys (`bootstrap.servers` or `cluster`, `key.converter`,
    /// `value.converter`, `offset.storage.topic`, ...). Without `cluster`
    /// or `bootstrap.servers`, `--cluster` is used.
    worker: PathBuf,
    /// Run as a worker of a distributed Connect cluster (Kafka's
    /// connect-distributed): the workers sharing `group.id` divide the
    /// connectors and tasks; connectors are added through the REST API.
    #[arg(long)]
    distributed: bool,
    /// Connector configs (`name`, `connector.class`, `tasks.max`, ...), one
    /// file each.
    connectors: Vec<PathBuf>,
}

/// Every connector this binary knows.
fn registry() -> PluginRegistry {
    let mut registry = PluginRegistry::new();
    runnel::connectors::register(&mut registry);
    registry
}

pub(crate) async fn run(cluster: &str, args: ConnectArgs) -> anyhow::Result<()> {
    let mut signals = super::broker::StopSignals::install()?;
    let mut worker_props = load_config_file(&args.worker)?;
    if !worker_props.contains_key("cluster") && !worker_props.contains_key("bootstrap.servers") {
        worker_props.insert("cluster".into(), cluster.to_string());
    }
    let config =
        WorkerConfig::from_props(&worker_props).with_context(|| args.worker.display().to_string())?;
    if args.distributed {
        return run_distributed(config, &args, signals).await;
    }
    let mut connectors = Vec::new();
    for path in &args.connectors {
        connectors.push((path, load_config_file(path)?));
    }
    let url = config.cluster.clone();
    let worker = Arc::new(Worker::start(config, registry()).await?);
    for (path, props) in connectors {
        if let Err(e) = worker.add_connector(props.into_iter().collect()).await {
            let _ = worker.shutdown().await;
            return Err(anyhow::Error::new(e).context(path.display().to_string()));
        }
    }
    let rest = match RestServer::start(worker.clone()).await {
        Ok(rest) => rest,
        Err(e) => {
            let _ = worker.shutdown().await;
            return Err(e.into());
        }
    };
    eprintln!("runnel connect: {} connector(s) running against {url}", worker.connectors().await.len());
    eprintln!("runnel connect: REST API at {}", rest.url());
    signals.wait().await;
    eprintln!("shutting down: stopping the REST API and tasks (final flush and commit)");
    rest.shutdown().await;
    worker.shutdown().await?;
    eprintln!("stopped cleanly");
    Ok(())
}

async fn run_distributed(
    config: WorkerConfig,
    args: &ConnectArgs,
    mut signals: super::broker::StopSignals,
) -> anyhow::Result<()> {
    if let Some(path) = args.connectors.first() {
        anyhow::bail!(
            "{}: a distributed worker takes only the worker config; add connectors through the REST API \
             (POST /connectors)",
            path.display()
        );
    }
    config.group_id().with_context(|| args.worker.display().to_string())?;
    let url = config.cluster.clone();
    let worker = Worker::start_distributed(config, registry()).await?;
    let rest = match RestServer::start(worker.clone()).await {
        Ok(rest) => rest,
        Err(e) => {
            let _ = worker.shutdown().await;
            return Err(e.into());
        }
    };
    eprintln!("runnel connect: distributed worker {} against {url}", worker.worker_id());
    eprintln!("runnel connect: REST API at {}", rest.url());
    signals.wait().await;
    eprintln!("shutting down: leaving the group, stopping the REST API and tasks (final flush and commit)");
    rest.shutdown().await;
    worker.shutdown().await?;
    eprintln!("stopped cleanly");
    Ok(())
}
