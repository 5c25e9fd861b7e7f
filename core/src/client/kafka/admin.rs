//! The `kafka://` admin client: librdkafka's admin API, metadata and group
//! listings behind Runnel's [`crate::client::Admin`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic as RdNewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use super::{blocking, broker_error, kafka_error, KafkaCluster, REQUEST_TIMEOUT};
use crate::client::answers::{GroupDescription, GroupListing, GroupMember, OffsetSpec, PartitionLag};
use crate::client::AssignmentStrategy;
use crate::topic::{NewTopic, PartitionDescription, TopicDescription, TopicPartition};
use crate::{Error, Result};

pub(crate) struct KafkaAdmin {
    cluster: Arc<KafkaCluster>,
    admin: Arc<AdminClient<DefaultClientContext>>,
}

impl std::fmt::Debug for KafkaAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAdmin").field("cluster", &self.cluster).finish()
    }
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT)).request_timeout(Some(REQUEST_TIMEOUT))
}

/// The first result's error, if any, as ours.
fn check<T>(
    op: &str,
    subject: &str,
    results: Vec<std::result::Result<T, (String, rdkafka::types::RDKafkaErrorCode)>>,
) -> Result<()> {
    for r in results {
        if let Err((_, code)) = r {
            return Err(broker_error(op, code, Some(subject)));
        }
    }
    Ok(())
}

impl KafkaAdmin {
    pub(crate) fn new(cluster: Arc<KafkaCluster>) -> KafkaAdmin {
        KafkaAdmin { admin: cluster.admin().clone(), cluster }
    }

    pub(crate) async fn create_topic(&self, topic: NewTopic) -> Result<()> {
        crate::topic::validate_topic_name(&topic.name)?;
        let mut t = RdNewTopic::new(&topic.name, topic.num_partitions, TopicReplication::Fixed(-1));
        for (k, v) in &topic.configs {
            t = t.set(k, v);
        }
        let r =
            self.admin.create_topics([&t], &options()).await.map_err(|e| kafka_error("create topic", e))?;
        check(&format!("create topic {}", topic.name), &topic.name, r)
    }

    pub(crate) async fn delete_topic(&self, name: &str) -> Result<()> {
        let r = self
            .admin
            .delete_topics(&[name], &options())
            .await
            .map_err(|e| kafka_error("delete topic", e))?;
        check(&format!("delete topic {name}"), name, r)
    }

    pub(crate) async fn list_topics(&self) -> Result<Vec<String>> {
        let meta = self.cluster.meta().clone();
        blocking(move || {
            let md = meta.fetch_metadata(None, REQUEST_TIMEOUT).map_err(|e| kafka_error("list topics", e))?;
            let mut names: Vec<String> =
                md.topics().iter().map(|t| t.name().to_string()).filter(|n| !n.starts_with("__")).collect();
            names.sort();
            Ok(names)
        })
        .await
    }

    pub(crate) async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let overrides: BTreeMap<String, String> = self
            .describe_configs(name)
            .await?
            .into_iter()
            .filter(|(_, (_, o))| *o)
            .map(|(k, (v, _))| (k, v))
            .collect();
        let meta = self.cluster.meta().clone();
        let cluster = self.cluster.clone();
        let topic = name.to_string();
        blocking(move || {
            let n = cluster.partition_count(&topic)?;
            let partitions = (0..n)
                .map(|p| {
                    let (low, high) = meta
                        .fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
                        .map_err(|e| kafka_error(&format!("watermarks of {topic}-{p}"), e))?;
                    Ok(PartitionDescription {
                        partition: p,
                        log_start_offset: low,
                        log_end_offset: high,
                        // Sizes and segments need DescribeLogDirs, which this client does not send.
                        size_bytes: 0,
                        segments: 0,
                        offline_reason: None,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(TopicDescription { name: topic, configs: overrides, partitions })
        })
        .await
    }

    pub(crate) async fn create_partitions(&self, name: &str, total: i32) -> Result<()> {
        let np = NewPartitions::new(name, total as usize);
        let r = self
            .admin
            .create_partitions([&np], &options())
            .await
            .map_err(|e| kafka_error("create partitions", e))?;
        check(&format!("grow {name} to {total} partitions"), name, r)
    }

    pub(crate) async fn describe_configs(&self, topic: &str) -> Result<BTreeMap<String, (String, bool)>> {
        let r = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &options())
            .await
            .map_err(|e| kafka_error("describe configs", e))?;
        let resource = r.into_iter().next().ok_or_else(|| Error::UnknownTopic(topic.to_string()))?;
        let resource = resource
            .map_err(|code| broker_error(&format!("describe configs of {topic}"), code, Some(topic)))?;
        if resource.entries.is_empty() {
            // rdkafka does not pass on a per-resource error: an unknown topic
            // comes back as a topic without configs. Ask the metadata.
            let cluster = self.cluster.clone();
            let name = topic.to_string();
            blocking(move || cluster.partition_count(&name)).await?;
        }
        Ok(resource
            .entries
            .into_iter()
            .filter_map(|e| {
                let overridden = matches!(e.source, ConfigSource::DynamicTopic);
                e.value.map(|v| (e.name, (v, overridden)))
            })
            .collect())
    }

    pub(crate) async fn alter_topic_config(
        &self,
        topic: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<()> {
        // AlterConfigs replaces the whole set of overrides: start from the
        // current ones.
        let mut overrides: BTreeMap<String, String> = self
            .describe_configs(topic)
            .await?
            .into_iter()
            .filter(|(_, (_, o))| *o)
            .map(|(k, (v, _))| (k, v))
            .collect();
        for k in &delete {
            overrides.remove(k);
        }
        overrides.extend(set);
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for (k, v) in &overrides {
            alter = alter.set(k, v);
        }
        let r = self
            .admin
            .alter_configs([&alter], &options())
            .await
            .map_err(|e| kafka_error("alter configs", e))?;
        for res in r {
            if let Err((_, code)) = res {
                return Err(broker_error(&format!("alter configs of {topic}"), code, Some(topic)));
            }
        }
        // rdkafka 0.39 drops per-resource AlterConfigs errors (it reports
        // every resource as altered), so check what the cluster now holds.
        let now = self.describe_configs(topic).await?;
        for (k, v) in &overrides {
            match now.get(k) {
                Some((value, true)) if value == v => {}
                _ => {
                    return Err(Error::InvalidConfig {
                        key: k.clone(),
                        reason: format!("the cluster refused {k}={v} for topic {topic}"),
                    })
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let meta = self.cluster.meta().clone();
        blocking(move || {
            let list =
                meta.fetch_group_list(None, REQUEST_TIMEOUT).map_err(|e| kafka_error("list groups", e))?;
            let mut out: Vec<GroupListing> = list
                .groups()
                .iter()
                .map(|g| GroupListing { group_id: g.name().to_string(), state: g.state().to_string() })
                .collect();
            out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
            Ok(out)
        })
        .await
    }

    /// A consumer of `group` that never subscribes: for reading and writing
    /// its committed offsets.
    fn group_client(&self, group: &str) -> Result<BaseConsumer> {
        let mut c = self.cluster.config();
        c.set("group.id", group).set("enable.auto.commit", "false");
        c.create().map_err(|e| kafka_error("create a Kafka client", e))
    }

    /// Every partition of every topic (to find a group's committed offsets:
    /// librdkafka asks for offsets by partition).
    fn all_partitions(&self) -> Result<Vec<TopicPartition>> {
        let md = self
            .cluster
            .meta()
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error("metadata", e))?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| !t.name().starts_with("__"))
            .flat_map(|t| t.partitions().iter().map(move |p| TopicPartition::new(t.name(), p.id())))
            .collect())
    }

    fn committed(&self, group: &str, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        if tps.is_empty() {
            return Ok(BTreeMap::new());
        }
        let client = self.group_client(group)?;
        let found = client
            .committed_offsets(super::tpl_of(tps), REQUEST_TIMEOUT)
            .map_err(|e| kafka_error(&format!("committed offsets of {group}"), e))?;
        Ok(found
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((TopicPartition::new(e.topic(), e.partition()), o)),
                _ => None,
            })
            .collect())
    }

    pub(crate) async fn describe_group(self: &Arc<Self>, group: &str) -> Result<GroupDescription> {
        let this = self.clone();
        let group = group.to_string();
        blocking(move || {
            let list = this
                .cluster
                .meta()
                .fetch_group_list(Some(&group), REQUEST_TIMEOUT)
                .map_err(|e| kafka_error(&format!("describe group {group}"), e))?;
            let info = list.groups().iter().find(|g| g.name() == group);
            let members: Vec<GroupMember> = info
                .map(|g| {
                    g.members()
                        .iter()
                        .map(|m| GroupMember {
                            member_id: m.id().to_string(),
                            client_id: m.client_id().to_string(),
                            assignment: m.assignment().map(decode_assignment).unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let committed = this.committed(&group, &this.all_partitions()?)?;
            let state = info.map_or("Dead", |g| g.state()).to_string();
            if members.is_empty() && committed.is_empty() {
                return Err(Error::UnknownGroup(group));
            }
            let mut tps: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
            tps.extend(members.iter().flat_map(|m| m.assignment.iter().cloned()));
            let partitions = tps
                .into_iter()
                .map(|tp| {
                    let (low, high) = this
                        .cluster
                        .meta()
                        .fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
                        .unwrap_or((0, -1));
                    let c = committed.get(&tp).copied();
                    let member_id =
                        members.iter().find(|m| m.assignment.contains(&tp)).map(|m| m.member_id.clone());
                    PartitionLag {
                        lag: (high - c.unwrap_or(low)).max(0),
                        committed: c,
                        log_end_offset: high,
                        member_id,
                        partition: tp,
                    }
                })
                .collect();
            let protocol = info.and_then(|g| match g.protocol() {
                "range" => Some(AssignmentStrategy::Range),
                "roundrobin" => Some(AssignmentStrategy::RoundRobin),
                "cooperative-sticky" => Some(AssignmentStrategy::CooperativeSticky),
                _ => None,
            });
            let state = if members.is_empty() { "Empty".to_string() } else { state };
            // librdkafka's group listing does not carry the generation.
            Ok(GroupDescription { group_id: group, state, generation: -1, protocol, members, partitions })
        })
        .await
    }

    pub(crate) async fn delete_group(&self, group: &str) -> Result<()> {
        let r = self
            .admin
            .delete_groups(&[group], &options())
            .await
            .map_err(|e| kafka_error("delete group", e))?;
        for res in r {
            if let Err((_, code)) = res {
                return Err(match code {
                    rdkafka::types::RDKafkaErrorCode::NonEmptyGroup => {
                        Error::GroupNotEmpty(group.to_string())
                    }
                    rdkafka::types::RDKafkaErrorCode::GroupIdNotFound => {
                        Error::UnknownGroup(group.to_string())
                    }
                    code => broker_error(&format!("delete group {group}"), code, None),
                });
            }
        }
        Ok(())
    }

    pub(crate) async fn reset_group_offsets(
        self: &Arc<Self>,
        group: &str,
        topics: &[String],
        spec: OffsetSpec,
        dry_run: bool,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let this = self.clone();
        let group = group.to_string();
        let topics = topics.to_vec();
        blocking(move || {
            let list = this
                .cluster
                .meta()
                .fetch_group_list(Some(&group), REQUEST_TIMEOUT)
                .map_err(|e| kafka_error("describe group", e))?;
            if list.groups().iter().any(|g| g.name() == group && !g.members().is_empty()) {
                return Err(Error::GroupNotEmpty(group));
            }
            let client = this.group_client(&group)?;
            let mut targets = BTreeMap::new();
            for topic in &topics {
                let n = this.cluster.partition_count(topic)?;
                for p in 0..n {
                    let (low, high) = client
                        .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                        .map_err(|e| kafka_error(&format!("watermarks of {topic}-{p}"), e))?;
                    let offset = match spec {
                        OffsetSpec::Earliest => low,
                        OffsetSpec::Latest => high,
                        OffsetSpec::Offset(o) => o.clamp(low, high),
                        OffsetSpec::Timestamp(ts) => {
                            let mut q = TopicPartitionList::new();
                            q.add_partition_offset(topic, p, Offset::Offset(ts))
                                .map_err(|e| kafka_error("reset offsets", e))?;
                            let found = client
                                .offsets_for_times(q, REQUEST_TIMEOUT)
                                .map_err(|e| kafka_error("offsets for times", e))?;
                            match found.find_partition(topic, p).map(|e| e.offset()) {
                                Some(Offset::Offset(o)) => o,
                                _ => high,
                            }
                        }
                    };
                    targets.insert(TopicPartition::new(topic.clone(), p), offset);
                }
            }
            if !dry_run {
                let mut tpl = TopicPartitionList::new();
                for (tp, &o) in &targets {
                    tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(o))
                        .map_err(|e| kafka_error("reset offsets", e))?;
                }
                client
                    .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
                    .map_err(|e| kafka_error(&format!("commit offsets of {group}"), e))?;
            }
            Ok(targets)
        })
        .await
    }
}

/// The partitions in a consumer-protocol assignment (empty if it does not decode).
fn decode_assignment(bytes: &[u8]) -> Vec<TopicPartition> {
    if bytes.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]).clamp(0, 3);
    let mut buf = bytes::Bytes::copy_from_slice(&bytes[2..]);
    std::panic::catch_unwind(move || ConsumerProtocolAssignment::decode(&mut buf, version))
        .ok()
        .and_then(|r| r.ok())
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |&p| TopicPartition::new(t.topic.0.as_str(), p)))
                .collect()
        })
        .unwrap_or_default()
}
