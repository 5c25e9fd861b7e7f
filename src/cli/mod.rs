//! Argument parsing and dispatch for the `runnel` binary.

mod bench;
mod broker;
mod connect;
mod consume;
mod groups;
mod produce;
mod topics;

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use runnel::core::broker::BrokerConfig;
use runnel::core::client::Cluster;

/// Runnel: a Kafka-style streaming platform.
#[derive(Debug, Parser)]
#[command(name = "runnel", version, about)]
pub(crate) struct Cli {
    /// Cluster URL: `file:<data dir>` for the embedded cluster.
    #[arg(long, global = true, default_value = "file:./runnel-data", env = "RUNNEL_CLUSTER")]
    cluster: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Send lines from stdin (or a file) as records.
    Produce(produce::ProduceArgs),
    /// Print records from a topic.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Serve a data directory to Kafka clients over the Kafka wire protocol.
    Broker(broker::BrokerArgs),
    /// Measure producer and consumer throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run a Connect worker: standalone, `runnel connect worker.properties conn1.properties …`, or
    /// one of a distributed cluster, `runnel connect --distributed worker.properties`.
    Connect(connect::ConnectArgs),
}

/// Opens the cluster named by `--cluster`, without background maintenance
/// threads for short-lived commands.
pub(crate) async fn open(url: &str, long_running: bool) -> anyhow::Result<Cluster> {
    let config = BrokerConfig { background_maintenance: long_running, ..BrokerConfig::default() };
    Cluster::open_with(url, config).await.with_context(|| format!("opening cluster {url}"))
}

/// Parses repeated `key=value` arguments.
pub(crate) fn key_values(flag: &str, pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
            _ => bail!("{flag} '{kv}' is not key=value"),
        })
        .collect()
}

impl Cli {
    /// Whether the command is a throughput benchmark that benefits from a
    /// multi-threaded runtime (see `main`).
    pub(crate) fn wants_parallel_runtime(&self) -> bool {
        matches!(&self.command, Command::Bench(b) if b.is_throughput())
            || matches!(self.command, Command::Connect(_))
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Topics(cmd) => topics::run(&cli.cluster, cmd).await,
        Command::Produce(args) => produce::run(&cli.cluster, args).await,
        Command::Consume(args) => consume::run(&cli.cluster, args).await,
        Command::Groups(cmd) => groups::run(&cli.cluster, cmd).await,
        Command::Bench(cmd) => bench::run(&cli.cluster, cmd).await,
        Command::Broker(args) => broker::run(args).await,
        Command::Connect(args) => connect::run(&cli.cluster, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_need_an_equals_sign_and_a_key() {
        assert_eq!(key_values("--config", &["a=1".into()]).unwrap()["a"], "1");
        assert!(key_values("--config", &["a".into()]).unwrap_err().to_string().contains("is not key=value"));
        assert!(key_values("--config", &["=1".into()]).is_err());
    }
}
