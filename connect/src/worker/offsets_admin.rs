//! Reading, altering and resetting a connector's offsets (Kafka's KIP-875,
//! `GET`/`PATCH`/`DELETE /connectors/{name}/offsets`).
//!
//! - **Sources**: the source partitions and offsets in the offsets topic
//!   (see [`super::offsets`]); altering writes new offsets, a `null` offset
//!   or a reset writes tombstones.
//! - **Sinks**: the committed offsets of the group `connect-<name>`, shown
//!   as partition `{"kafka_topic": t, "kafka_partition": p}` and offset
//!   `{"kafka_offset": o}`; altering commits through the group, a `null`
//!   offset removes that partition's commit, a reset deletes the group's.
//!
//! Altering and resetting need the connector STOPPED, so no task races
//! the change; reading works in any state.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::{TargetState, Worker};
use crate::error::ConnectError;
use crate::plugin::{ConnectorKind, SourceMap, TopicPartition};

/// One partition's offset, as the REST API shows it; `offset` is `None`
/// in an alter request that removes the partition's offset.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectorOffset {
    /// The source partition, or `{"kafka_topic", "kafka_partition"}` for a sink.
    pub partition: SourceMap,
    /// The source offset, or `{"kafka_offset"}` for a sink.
    pub offset: Option<SourceMap>,
}

impl Worker {
    /// A connector's offsets.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`]; [`ConnectError::Cluster`] when
    /// the group cannot be read.
    pub async fn connector_offsets(&self, name: &str) -> Result<Vec<ConnectorOffset>, ConnectError> {
        let kind = self.connector_kind(name).await?;
        if self.is_distributed() && kind == ConnectorKind::Source {
            // Another worker may run its tasks: read what they stored.
            self.offsets.reload_connector(&self.cluster, name).await?;
        }
        Ok(match kind {
            ConnectorKind::Source => self
                .offsets
                .offsets(name)
                .into_iter()
                .map(|(partition, offset)| ConnectorOffset { partition, offset: Some(offset) })
                .collect(),
            ConnectorKind::Sink => self
                .sink_committed(name)
                .await?
                .into_iter()
                .map(|(tp, offset)| ConnectorOffset {
                    partition: sink_partition(&tp),
                    offset: Some(sink_offset(offset)),
                })
                .collect(),
        })
    }

    /// Checks the connector out for an offsets change (`what`), checking
    /// that it exists and is stopped; returns the checkout, which keeps it
    /// stopped during the change, and the connector's kind.
    async fn checkout_stopped(
        &self,
        name: &str,
        what: &str,
    ) -> Result<(super::table::Checkout<'_>, ConnectorKind), ConnectError> {
        self.not_distributed(what)?;
        let m = self.connectors.checkout(name).await?;
        if m.target != TargetState::Stopped || m.run.is_some() {
            return Err(ConnectError::NotStopped(name.to_string()));
        }
        let kind = m.kind;
        Ok((m, kind))
    }

    /// Alters a stopped connector's offsets: each entry sets a partition's
    /// offset, or with `offset: None` removes it. Entries are all checked
    /// before any is written.
    ///
    /// # Errors
    /// [`ConnectError::UnknownConnector`]; [`ConnectError::NotStopped`];
    /// [`ConnectError::InvalidOffsets`] naming the bad entry;
    /// [`ConnectError::Cluster`].
    pub async fn alter_offsets(&self, name: &str, offsets: Vec<ConnectorOffset>) -> Result<(), ConnectError> {
        let (_connectors, kind) = self.checkout_stopped(name, "altering offsets").await?;
        match kind {
            ConnectorKind::Source => {
                let (set, remove): (Vec<_>, Vec<_>) = offsets.into_iter().partition(|o| o.offset.is_some());
                let set: Vec<(SourceMap, SourceMap)> =
                    set.into_iter().filter_map(|o| Some((o.partition, o.offset?))).collect();
                let remove: Vec<SourceMap> = remove.into_iter().map(|o| o.partition).collect();
                self.offsets.write(name, &set).await?;
                self.offsets.remove(name, &remove).await?;
            }
            ConnectorKind::Sink => {
                let mut changes: BTreeMap<TopicPartition, Option<i64>> = BTreeMap::new();
                for (i, o) in offsets.iter().enumerate() {
                    let bad = |reason: String| ConnectError::InvalidOffsets {
                        connector: name.to_string(),
                        reason: format!("entry {i}: {reason}"),
                    };
                    let tp = parse_sink_partition(&o.partition).map_err(bad)?;
                    let offset = o.offset.as_ref().map(parse_sink_offset).transpose().map_err(bad)?;
                    changes.insert(tp, offset);
                }
                self.alter_sink(name, changes).await?;
            }
        }
        Ok(())
    }

    /// Removes every offset of a stopped connector, so it starts over: a
    /// source from the beginning of its source, a sink from the group's
    /// `auto.offset.reset`.
    ///
    /// # Errors
    /// As [`Worker::alter_offsets`].
    pub async fn reset_offsets(&self, name: &str) -> Result<(), ConnectError> {
        let (_connectors, kind) = self.checkout_stopped(name, "resetting offsets").await?;
        match kind {
            ConnectorKind::Source => {
                let partitions: Vec<SourceMap> =
                    self.offsets.offsets(name).into_iter().map(|(p, _)| p).collect();
                self.offsets.remove(name, &partitions).await?;
                for (task, _) in self.offsets.pending(name) {
                    self.offsets.write_pending(name, task, None).await?;
                }
            }
            ConnectorKind::Sink => self.delete_sink_group(name).await?,
        }
        Ok(())
    }

    async fn connector_kind(&self, name: &str) -> Result<ConnectorKind, ConnectError> {
        if self.is_distributed() {
            let info = self.connector_info(name).await;
            return info.map(|i| i.kind).ok_or_else(|| ConnectError::UnknownConnector(name.to_string()));
        }
        self.connectors
            .view(name)
            .map(|v| v.kind)
            .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))
    }

    /// The committed offsets of a sink's group.
    async fn sink_committed(&self, name: &str) -> Result<BTreeMap<TopicPartition, i64>, ConnectError> {
        let group = sink_group(name);
        match self.cluster.admin().describe_group(&group).await {
            Ok(d) => Ok(d.partitions.into_iter().filter_map(|p| Some((p.partition, p.committed?))).collect()),
            Err(runnel_core::Error::UnknownGroup(_)) => Ok(BTreeMap::new()),
            Err(e) => Err(ConnectError::cluster(format!("reading the offsets of group `{group}`"))(e)),
        }
    }

    async fn delete_sink_group(&self, name: &str) -> Result<(), ConnectError> {
        let group = sink_group(name);
        match self.cluster.admin().delete_group(&group).await {
            Ok(()) | Err(runnel_core::Error::UnknownGroup(_)) => Ok(()),
            Err(e) => Err(ConnectError::cluster(format!("deleting the offsets of group `{group}`"))(e)),
        }
    }

    /// Applies sink offset changes. Removing a single partition's commit
    /// has no group API, so removals rewrite the group: delete its
    /// offsets, then commit the ones that stay.
    async fn alter_sink(
        &self,
        name: &str,
        changes: BTreeMap<TopicPartition, Option<i64>>,
    ) -> Result<(), ConnectError> {
        let mut commit: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        if changes.values().any(Option::is_none) {
            commit = self.sink_committed(name).await?;
            self.delete_sink_group(name).await?;
        }
        for (tp, offset) in changes {
            match offset {
                Some(o) => commit.insert(tp, o),
                None => commit.remove(&tp),
            };
        }
        if commit.is_empty() {
            return Ok(());
        }
        let group = sink_group(name);
        let what = || format!("committing offsets for group `{group}`");
        let mut consumer = self
            .cluster
            .consumer(self.config.consumer_config(&group)?)
            .map_err(ConnectError::cluster(what()))?;
        consumer.assign(commit.keys().cloned()).map_err(|e| ConnectError::InvalidOffsets {
            connector: name.to_string(),
            reason: e.to_string(),
        })?;
        let result = consumer.commit_offsets(&commit).await.map_err(ConnectError::cluster(what()));
        let _ = consumer.close().await;
        result
    }
}

/// The consumer group of a sink connector.
pub(crate) fn sink_group(name: &str) -> String {
    format!("connect-{name}")
}

fn sink_partition(tp: &TopicPartition) -> SourceMap {
    let mut m = SourceMap::new();
    m.insert("kafka_topic".into(), json!(tp.topic));
    m.insert("kafka_partition".into(), json!(tp.partition));
    m
}

fn sink_offset(offset: i64) -> SourceMap {
    let mut m = SourceMap::new();
    m.insert("kafka_offset".into(), json!(offset));
    m
}

fn parse_sink_partition(p: &SourceMap) -> Result<TopicPartition, String> {
    let topic = match p.get("kafka_topic") {
        Some(Json::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err("a sink partition needs \"kafka_topic\" (a topic name)".into()),
    };
    let partition = match p.get("kafka_partition").and_then(Json::as_i64) {
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => n as i32,
        _ => return Err("a sink partition needs \"kafka_partition\" (an integer >= 0)".into()),
    };
    if let Some(extra) = p.keys().find(|k| *k != "kafka_topic" && *k != "kafka_partition") {
        return Err(format!("unexpected key \"{extra}\" in a sink partition"));
    }
    Ok(TopicPartition::new(topic, partition))
}

fn parse_sink_offset(o: &SourceMap) -> Result<i64, String> {
    match o.get("kafka_offset").and_then(Json::as_i64) {
        Some(n) if n >= 0 && o.len() == 1 => Ok(n),
        _ => Err("a sink offset must be {\"kafka_offset\": <integer >= 0>} or null".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Json) -> SourceMap {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn sink_partitions_and_offsets_round_trip_and_bad_ones_are_named() {
        let tp = TopicPartition::new("t", 3);
        assert_eq!(parse_sink_partition(&sink_partition(&tp)).unwrap(), tp);
        assert_eq!(parse_sink_offset(&sink_offset(42)).unwrap(), 42);
        let err = parse_sink_partition(&map(json!({"kafka_topic": "t"}))).unwrap_err();
        assert!(err.contains("kafka_partition"), "{err}");
        let err = parse_sink_partition(&map(json!({"kafka_topic": "t", "kafka_partition": 0, "x": 1})));
        assert!(err.unwrap_err().contains("\"x\""));
        assert!(parse_sink_offset(&map(json!({"kafka_offset": -1}))).is_err());
        assert!(parse_sink_offset(&map(json!({"position": 1}))).is_err());
    }
}
