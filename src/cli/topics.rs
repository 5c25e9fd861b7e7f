//! `runnel topics …`: topic administration.

use clap::Subcommand;
use runnel::core::topic::NewTopic;

use super::{key_values, open};

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
    /// Show partitions, offsets, sizes and configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Change configs or grow the partition count.
    Alter {
        /// Topic name.
        name: String,
        /// New total partition count (only growing is allowed).
        #[arg(long, short)]
        partitions: Option<i32>,
        /// Set a config override, `key=value` (repeatable).
        #[arg(long = "config", short)]
        configs: Vec<String>,
        /// Remove a config override, reverting to the default (repeatable).
        #[arg(long = "delete-config")]
        delete_configs: Vec<String>,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
}

pub(crate) async fn run(url: &str, cmd: TopicsCommand) -> anyhow::Result<()> {
    let cluster = open(url, false).await?;
    let admin = cluster.admin();
    match cmd {
        TopicsCommand::List => {
            for name in admin.list_topics().await? {
                println!("{name}");
            }
        }
        TopicsCommand::Create { name, partitions, configs } => {
            let mut topic = NewTopic::new(&name, partitions);
            topic.configs = key_values("--config", &configs)?;
            admin.create_topic(topic).await?;
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicsCommand::Describe { name } => {
            let d = admin.describe_topic(&name).await?;
            let overrides: Vec<String> = d.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "topic: {}  partitions: {}  configs: {}",
                d.name,
                d.partitions.len(),
                overrides.join(",")
            );
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
        TopicsCommand::Alter { name, partitions, configs, delete_configs } => {
            if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
                anyhow::bail!("nothing to alter: give --partitions, --config or --delete-config");
            }
            let set = key_values("--config", &configs)?;
            if !set.is_empty() || !delete_configs.is_empty() {
                admin.alter_topic_config(&name, set, delete_configs).await?;
                println!("altered configs of topic {name}");
            }
            if let Some(total) = partitions {
                admin.create_partitions(&name, total).await?;
                println!("topic {name} now has {total} partitions");
            }
        }
        TopicsCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            println!("deleted topic {name}");
        }
    }
    cluster.close().await?;
    Ok(())
}
