//! Argument parsing and dispatch for the `runnel` binary.

mod topics;

use std::path::PathBuf;

use anyhow::bail;
use clap::{Parser, Subcommand};

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
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
}

/// The data directory named by a `file:` cluster URL.
fn data_dir(cluster: &str) -> anyhow::Result<PathBuf> {
    match cluster.strip_prefix("file:") {
        Some(path) if !path.is_empty() => Ok(PathBuf::from(path.strip_prefix("//").unwrap_or(path))),
        Some(_) => bail!("cluster URL '{cluster}' names no directory (expected file:<path>)"),
        None if cluster.starts_with("kafka://") => {
            bail!("cluster URL '{cluster}': the kafka:// backend is not available yet; use file:<data dir>")
        }
        None => bail!("cluster URL '{cluster}' is not understood (expected file:<data dir>)"),
    }
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Topics(cmd) => topics::run(&data_dir(&cli.cluster)?, cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_a_data_dir_or_explain_why_not() {
        assert_eq!(data_dir("file:./x").unwrap(), PathBuf::from("./x"));
        assert_eq!(data_dir("file:///tmp/x").unwrap(), PathBuf::from("/tmp/x"));
        assert!(data_dir("file:").unwrap_err().to_string().contains("names no directory"));
        assert!(data_dir("kafka://h:9092").unwrap_err().to_string().contains("not available yet"));
        assert!(data_dir("http://x").unwrap_err().to_string().contains("not understood"));
    }
}
