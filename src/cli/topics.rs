//! `runnel topics …`: topic administration on an embedded data directory.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;
use runnel::core::broker::{Broker, BrokerConfig};
use runnel::core::topic::NewTopic;

#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// List topic names.
    List,
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, short, default_value_t = 1)]
        partitions: i32,
        /// A config override, `key=value` (repeatable), e.g. `--config retention.ms=3600000`.
        #[arg(long = "config", short)]
        configs: Vec<String>,
    },
    /// Show partitions, offsets, sizes and config overrides.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Grow a topic to a larger partition count.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        total: i32,
    },
}

fn parse_configs(configs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    configs
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
            _ => bail!("--config '{kv}' is not key=value"),
        })
        .collect()
}

pub(crate) fn run(dir: &Path, cmd: TopicsCommand) -> anyhow::Result<()> {
    let config = BrokerConfig { background_maintenance: false, ..BrokerConfig::default() };
    let broker = Broker::open(dir, config).with_context(|| format!("opening {}", dir.display()))?;
    match cmd {
        TopicsCommand::List => {
            for name in broker.list_topics() {
                println!("{name}");
            }
        }
        TopicsCommand::Create { name, partitions, configs } => {
            let mut topic = NewTopic::new(&name, partitions);
            topic.configs = parse_configs(&configs)?;
            broker.create_topic(topic)?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicsCommand::Describe { name } => {
            let d = broker.describe_topic(&name)?;
            let configs: Vec<String> = d.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("topic: {}  partitions: {}  configs: {}", d.name, d.partitions.len(), configs.join(","));
            for p in d.partitions {
                match p.offline_reason {
                    Some(reason) => println!("  partition {}: OFFLINE: {reason}", p.partition),
                    None => println!(
                        "  partition {}: offsets {}..{}  {} bytes in {} segment(s)",
                        p.partition, p.log_start_offset, p.log_end_offset, p.size_bytes, p.segments
                    ),
                }
            }
        }
        TopicsCommand::Delete { name } => {
            broker.delete_topic(&name)?;
            println!("deleted topic {name}");
        }
        TopicsCommand::AddPartitions { name, total } => {
            broker.create_partitions(&name, total)?;
            println!("topic {name} now has {total} partitions");
        }
    }
    broker.close()?;
    Ok(())
}
