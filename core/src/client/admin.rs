//! Administration: topics, configs and consumer groups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::answers::{GroupDescription, GroupListing, GroupMember, OffsetSpec, PartitionLag};
use super::embedded::EmbeddedCluster;
use super::kafka::admin::KafkaAdmin;
use crate::broker::group::GroupState;
use crate::topic::{NewTopic, TopicDescription, TopicPartition};
use crate::vocabulary::OffsetAndMetadata;
use crate::{Error, Result};

/// Administers a cluster; cheap to clone.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::collections::BTreeMap;
/// use runnel_core::client::{Cluster, OffsetSpec};
/// use runnel_core::topic::NewTopic;
///
/// let dir = tempfile::tempdir()?;
/// let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await?;
/// let admin = cluster.admin();
/// admin.create_topic(NewTopic::new("orders", 3).config("retention.ms", "86400000")).await?;
/// admin.create_partitions("orders", 6).await?;
/// let set = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
/// admin.alter_topic_config("orders", set, vec![]).await?;
/// assert_eq!(admin.describe_configs("orders").await?["cleanup.policy"].0, "compact");
///
/// // Plan a reset of a (memberless) group without applying it.
/// let plan = admin.reset_group_offsets("billing", &["orders".into()], OffsetSpec::Earliest, true).await?;
/// assert_eq!(plan.len(), 6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Embedded(Arc<EmbeddedCluster>),
    Kafka(Arc<KafkaAdmin>),
}

impl Admin {
    pub(crate) fn embedded(cluster: Arc<EmbeddedCluster>) -> Admin {
        Admin { backend: Backend::Embedded(cluster) }
    }

    pub(crate) fn kafka(admin: KafkaAdmin) -> Admin {
        Admin { backend: Backend::Kafka(Arc::new(admin)) }
    }

    /// The embedded cluster; each method has already returned for `kafka://`.
    fn cluster(&self) -> &Arc<EmbeddedCluster> {
        match &self.backend {
            Backend::Embedded(c) => c,
            Backend::Kafka(_) => unreachable!("kafka:// calls are dispatched before the embedded code"),
        }
    }

    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::broker::Broker) -> Result<T> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T>> {
        let cluster = self.cluster().clone();
        async move {
            tokio::task::spawn_blocking(move || f(cluster.broker()))
                .await
                .map_err(|e| Error::Closed(format!("admin task ({e})")))?
        }
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// See [`crate::broker::Broker::create_topic`].
    pub async fn create_topic(&self, topic: NewTopic) -> Result<()> {
        if let Backend::Kafka(k) = &self.backend {
            return k.create_topic(topic).await;
        }
        self.blocking(move |b| b.create_topic(topic)).await
    }

    /// Deletes a topic and its data.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        if let Backend::Kafka(k) = &self.backend {
            return k.delete_topic(name).await;
        }
        let name = name.to_string();
        self.blocking(move |b| b.delete_topic(&name)).await
    }

    /// Topic names (internal topics excluded).
    ///
    /// # Errors
    /// Never for the embedded cluster; network errors for `kafka://`.
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        if let Backend::Kafka(k) = &self.backend {
            return k.list_topics().await;
        }
        Ok(self.cluster().broker().list_topics())
    }

    /// Partitions, offsets, sizes and config overrides of a topic.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        if let Backend::Kafka(k) = &self.backend {
            return k.describe_topic(name).await;
        }
        self.cluster().broker().describe_topic(name)
    }

    /// Grows a topic to `total` partitions.
    ///
    /// # Errors
    /// See [`crate::broker::Broker::create_partitions`].
    pub async fn create_partitions(&self, name: &str, total: i32) -> Result<()> {
        if let Backend::Kafka(k) = &self.backend {
            return k.create_partitions(name, total).await;
        }
        let name = name.to_string();
        self.blocking(move |b| b.create_partitions(&name, total)).await
    }

    /// Every config of a topic: `key → (effective value, is an override)`.
    ///
    /// # Errors
    /// [`Error::UnknownTopic`].
    pub async fn describe_configs(&self, topic: &str) -> Result<BTreeMap<String, (String, bool)>> {
        if let Backend::Kafka(k) = &self.backend {
            return k.describe_configs(topic).await;
        }
        self.cluster().broker().topic_configs(topic)
    }

    /// Sets and deletes topic config overrides (incrementally).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`]; [`Error::InvalidConfig`] naming the key.
    pub async fn alter_topic_config(
        &self,
        topic: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<()> {
        if let Backend::Kafka(k) = &self.backend {
            return k.alter_topic_config(topic, set, delete).await;
        }
        let topic = topic.to_string();
        self.blocking(move |b| b.alter_topic_config(&topic, &set, &delete)).await
    }

    /// Groups with members or committed offsets.
    ///
    /// # Errors
    /// Never for the embedded cluster; network errors for `kafka://`.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        if let Backend::Kafka(k) = &self.backend {
            return k.list_groups().await;
        }
        let broker = self.cluster().broker();
        let now = broker.now_ms();
        let mut ids: BTreeSet<String> = broker.groups().active_groups().into_iter().collect();
        ids.extend(broker.groups_with_offsets());
        Ok(ids
            .into_iter()
            .map(|group_id| {
                let state = broker.groups().describe(&group_id, now).map_or(GroupState::Empty, |d| d.state);
                GroupListing { group_id, state: state.name().to_string() }
            })
            .collect())
    }

    /// Members, assignment, and committed offset, log end and lag per partition.
    ///
    /// # Errors
    /// [`Error::UnknownGroup`] for a group with neither members nor offsets.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        if let Backend::Kafka(k) = &self.backend {
            return k.describe_group(group).await;
        }
        let broker = self.cluster().broker();
        let live = broker.groups().describe(group, broker.now_ms());
        let committed = broker.committed_offsets(group);
        if live.as_ref().is_none_or(|d| d.members.is_empty()) && committed.is_empty() {
            return Err(Error::UnknownGroup(group.to_string()));
        }
        let members: Vec<GroupMember> = live
            .as_ref()
            .map(|d| {
                d.members
                    .iter()
                    .map(|m| GroupMember {
                        member_id: m.member_id.clone(),
                        client_id: m.client_id.clone(),
                        assignment: m.assignment.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut tps: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
        tps.extend(members.iter().flat_map(|m| m.assignment.iter().cloned()));
        let partitions = tps
            .into_iter()
            .map(|tp| {
                let (start, end) = broker
                    .log(&tp.topic, tp.partition)
                    .map_or((0, -1), |l| (l.log_start_offset(), l.log_end_offset()));
                let c = committed.get(&tp).map(|o| o.offset);
                let member_id =
                    members.iter().find(|m| m.assignment.contains(&tp)).map(|m| m.member_id.clone());
                PartitionLag {
                    lag: (end - c.unwrap_or(start)).max(0),
                    committed: c,
                    log_end_offset: end,
                    member_id,
                    partition: tp,
                }
            })
            .collect();
        let (state, generation, protocol) = match &live {
            Some(d) if !d.members.is_empty() => (d.state.name().to_string(), d.generation, d.protocol),
            _ => ("Empty".to_string(), live.as_ref().map_or(0, |d| d.generation), None),
        };
        Ok(GroupDescription { group_id: group.to_string(), state, generation, protocol, members, partitions })
    }

    /// Deletes a group's committed offsets. The group must have no members.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`]; [`Error::UnknownGroup`].
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        if let Backend::Kafka(k) = &self.backend {
            return k.delete_group(group).await;
        }
        let group = group.to_string();
        self.blocking(move |b| {
            b.groups().remove_if_empty(&group, b.now_ms())?;
            if b.delete_group_offsets(&group)? == 0 {
                return Err(Error::UnknownGroup(group));
            }
            Ok(())
        })
        .await
    }

    /// Moves a group's committed offsets for `partitions` (or every
    /// partition of `topics`) to `spec`; returns the new offsets. With
    /// `dry_run`, only computes them. The group must have no members, as
    /// with Kafka's tool.
    ///
    /// # Errors
    /// [`Error::GroupNotEmpty`]; unknown topics or partitions.
    pub async fn reset_group_offsets(
        &self,
        group: &str,
        topics: &[String],
        spec: OffsetSpec,
        dry_run: bool,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        if let Backend::Kafka(k) = &self.backend {
            return k.reset_group_offsets(group, topics, spec, dry_run).await;
        }
        let group = group.to_string();
        let topics = topics.to_vec();
        self.blocking(move |b| {
            if let Some(d) = b.groups().describe(&group, b.now_ms()) {
                if !d.members.is_empty() {
                    return Err(Error::GroupNotEmpty(group));
                }
            }
            let mut targets = BTreeMap::new();
            for topic in &topics {
                for p in 0..b.partition_count(topic)? {
                    let log = b.log(topic, p)?;
                    let (start, end) = (log.log_start_offset(), log.log_end_offset());
                    let offset = match spec {
                        OffsetSpec::Earliest => start,
                        OffsetSpec::Latest => end,
                        OffsetSpec::Timestamp(ts) => log.offset_for_timestamp(ts)?.map_or(end, |(o, _)| o),
                        OffsetSpec::Offset(o) => o.clamp(start, end),
                    };
                    targets.insert(TopicPartition::new(topic.clone(), p), offset);
                }
            }
            if !dry_run {
                let now = b.now_ms();
                let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> =
                    targets.iter().map(|(tp, &o)| (tp.clone(), OffsetAndMetadata::new(o, now))).collect();
                b.commit_offsets(&group, &offsets)?;
            }
            Ok(targets)
        })
        .await
    }
}
