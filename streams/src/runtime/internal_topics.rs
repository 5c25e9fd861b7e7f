//! Before threads start: check the input topics exist and create the
//! internal topics (repartition and changelog) the topology needs.

use std::collections::{BTreeSet, HashMap};

use runnel_core::client::Cluster;
use runnel_core::topic::NewTopic;
use runnel_core::Error as CoreError;
use tracing::info;

use super::client_error;
use crate::config::StreamsConfig;
use crate::topology::Topology;
use crate::StreamsError;

/// Fails with [`StreamsError::MissingSourceTopics`] naming every missing
/// input topic; creates missing internal topics. Internal topics without a
/// set partition count get as many partitions as the largest input topic,
/// so every task has its partition. Creating a topic another instance
/// created first is not an error.
pub(crate) async fn prepare(
    topology: &Topology,
    config: &StreamsConfig,
    cluster: &Cluster,
) -> Result<(), StreamsError> {
    let app = config.application_id();
    let admin = cluster.admin();
    let existing: BTreeSet<String> =
        admin.list_topics().await.map_err(client_error("list topics"))?.into_iter().collect();
    let repartition = topology.repartition_topics(app);
    let changelogs = topology.changelog_topics(app);
    let internal: BTreeSet<&str> = repartition
        .iter()
        .map(|t| t.name.as_str())
        .chain(changelogs.iter().map(|c| c.name.as_str()))
        .collect();
    let sources: Vec<String> =
        topology.source_topics(app).into_iter().filter(|t| !internal.contains(t.as_str())).collect();
    let missing: Vec<String> = sources
        .iter()
        .chain(topology.global_topics().iter())
        .filter(|t| !existing.contains(*t))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(StreamsError::MissingSourceTopics { topics: missing });
    }
    let mut max_partitions = 1;
    let mut counts: HashMap<String, i32> = HashMap::new();
    for topic in &sources {
        let described = admin.describe_topic(topic).await.map_err(client_error("describe topic"))?;
        max_partitions = max_partitions.max(described.partitions.len() as i32);
        counts.insert(topic.clone(), described.partitions.len() as i32);
    }
    // Joined topics must be co-partitioned; a repartition topic of a join
    // takes the partition count of the topics it is joined with. Counts
    // known: the input topics', internal topics that exist already, and
    // those set explicitly.
    for t in &repartition {
        if existing.contains(&t.name) {
            let described = admin.describe_topic(&t.name).await.map_err(client_error("describe topic"))?;
            counts.insert(t.name.clone(), described.partitions.len() as i32);
        } else if let Some(n) = t.partitions {
            counts.insert(t.name.clone(), n as i32);
        }
    }
    let groups = topology.copartition_groups(app);
    let mut join_partitions: HashMap<String, i32> = HashMap::new();
    for group in &groups {
        if let Some(n) = group.iter().find_map(|t| counts.get(t)) {
            for topic in group {
                if !counts.contains_key(topic) {
                    join_partitions.entry(topic.clone()).or_insert(*n);
                }
            }
        }
    }
    for group in &groups {
        let known: Vec<(String, i32)> = group
            .iter()
            .filter_map(|t| counts.get(t).or_else(|| join_partitions.get(t)).map(|n| (t.clone(), *n)))
            .collect();
        if known.windows(2).any(|w| w[0].1 != w[1].1) {
            return Err(StreamsError::NotCopartitioned { topics: known });
        }
    }
    let mut wanted: Vec<NewTopic> = Vec::new();
    for t in &repartition {
        let partitions = t
            .partitions
            .map(|p| p as i32)
            .or_else(|| join_partitions.get(&t.name).copied())
            .unwrap_or(max_partitions);
        max_partitions = max_partitions.max(partitions);
        wanted.push(NewTopic::new(&t.name, partitions));
    }
    for c in &changelogs {
        let topic = NewTopic::new(&c.name, max_partitions);
        wanted.push(match c.retention_ms {
            None => topic.config("cleanup.policy", "compact"),
            Some(ms) => {
                topic.config("cleanup.policy", "compact,delete").config("retention.ms", ms.to_string())
            }
        });
    }
    wanted.push(NewTopic::new(super::control::control_topic(app), 1));
    for topic in wanted {
        if existing.contains(&topic.name) {
            continue;
        }
        let name = topic.name.clone();
        match admin.create_topic(topic).await {
            Ok(()) => info!(topic = %name, "created internal topic"),
            Err(CoreError::TopicExists(_)) => {}
            Err(e) => return Err(client_error("create internal topic")(e)),
        }
    }
    Ok(())
}
