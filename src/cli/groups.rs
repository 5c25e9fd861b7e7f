//! `runnel groups …`: consumer group administration.

use clap::{ArgGroup, Subcommand};
use runnel::core::client::OffsetSpec;

use super::open;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// List groups with members or committed offsets.
    List,
    /// Show members and, per partition, committed offset, log end and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Move a group's committed offsets (prints the plan; `--execute` applies it).
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_timestamp", "to_offset"])))]
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic whose partitions are reset (repeatable).
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
        /// To the first offset still stored.
        #[arg(long)]
        to_earliest: bool,
        /// To the log end.
        #[arg(long)]
        to_latest: bool,
        /// To the first record at or after this timestamp (ms since the epoch).
        #[arg(long)]
        to_timestamp: Option<i64>,
        /// To this offset (clamped into the log).
        #[arg(long)]
        to_offset: Option<i64>,
        /// Apply the change (without it, only the plan is printed).
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group's committed offsets (the group must have no members).
    Delete {
        /// Group id.
        group: String,
    },
}

pub(crate) async fn run(url: &str, cmd: GroupsCommand) -> anyhow::Result<()> {
    let cluster = open(url, false).await?;
    let admin = cluster.admin();
    match cmd {
        GroupsCommand::List => {
            for g in admin.list_groups().await? {
                println!("{}\t{}", g.group_id, g.state);
            }
        }
        GroupsCommand::Describe { group } => {
            let d = admin.describe_group(&group).await?;
            let protocol = d.protocol.map_or("-", |p| p.name());
            println!(
                "group: {}  state: {}  generation: {}  assignor: {}",
                d.group_id, d.state, d.generation, protocol
            );
            println!(
                "{:<30} {:>9} {:>15} {:>15} {:>10}  MEMBER",
                "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
            );
            for p in &d.partitions {
                let committed = p.committed.map_or("-".to_string(), |c| c.to_string());
                println!(
                    "{:<30} {:>9} {:>15} {:>15} {:>10}  {}",
                    p.partition.topic,
                    p.partition.partition,
                    committed,
                    p.log_end_offset,
                    p.lag,
                    p.member_id.as_deref().unwrap_or("-")
                );
            }
            for m in &d.members {
                let parts: Vec<String> = m.assignment.iter().map(|tp| tp.to_string()).collect();
                println!("member {} ({}): {}", m.member_id, m.client_id, parts.join(","));
            }
        }
        GroupsCommand::ResetOffsets {
            group,
            topics,
            to_earliest,
            to_latest,
            to_timestamp,
            to_offset,
            execute,
        } => {
            let spec = match (to_earliest, to_latest, to_timestamp, to_offset) {
                (true, _, _, _) => OffsetSpec::Earliest,
                (_, true, _, _) => OffsetSpec::Latest,
                (_, _, Some(ts), _) => OffsetSpec::Timestamp(ts),
                (_, _, _, Some(o)) => OffsetSpec::Offset(o),
                _ => unreachable!("clap requires one of the --to-* flags"),
            };
            let plan = admin.reset_group_offsets(&group, &topics, spec, !execute).await?;
            for (tp, offset) in &plan {
                println!("{}\t{}\t{}", tp.topic, tp.partition, offset);
            }
            if execute {
                eprintln!("reset {} partition(s) of group {group}", plan.len());
            } else {
                eprintln!("dry run: nothing changed (add --execute to apply)");
            }
        }
        GroupsCommand::Delete { group } => {
            admin.delete_group(&group).await?;
            println!("deleted group {group}");
        }
    }
    cluster.close().await?;
    Ok(())
}
