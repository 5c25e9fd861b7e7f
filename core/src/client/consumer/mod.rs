//! The consumer: read records from assigned partitions, alone (`assign`)
//! or as a member of a group (`subscribe`), and commit positions.
//!
//! `poll` returns as soon as records are available and otherwise waits —
//! without spinning — for new appends, a rebalance, or the timeout. It
//! returns at most `max.poll.records` records and advances the position of
//! each partition past the records it returned.
//!
//! In a group, membership is kept by a background heartbeat (so processing
//! between polls may take up to `max.poll.interval.ms`). Rebalances run
//! inside `poll`; a [`RebalanceListener`] hears which partitions are
//! revoked, assigned or lost, so work can be handed over. With the eager
//! assignors (`range`, `roundrobin`) everything is revoked at the start of a
//! rebalance; with `cooperative-sticky` only the partitions that move.
//!
//! Dropping a consumer without [`Consumer::close`] leaves its group
//! gracefully but commits nothing; [`Consumer::abandon`] simulates a crash.
//!
//! # Blocking calls
//!
//! The `async` methods never block a runtime thread. The plain ones that
//! look offsets up — [`Consumer::assign`] (committed offsets),
//! [`Consumer::seek_to_beginning`], [`Consumer::seek_to_end`],
//! [`Consumer::beginning_offsets`], [`Consumer::end_offsets`],
//! [`Consumer::offsets_for_times`] and [`Consumer::committed`] — read the
//! log directly on the embedded backend, but on `kafka://` wait for the
//! broker (librdkafka's synchronous calls), up to its request timeout.
//! Async code on `kafka://` should call them through
//! `tokio::task::spawn_blocking`. Offsets of many partitions are asked in
//! one request per partition leader, not one per partition.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use runnel_core::client::{Cluster, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord};
//!
//! let dir = tempfile::tempdir()?;
//! let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await?;
//! let producer = cluster.producer(ProducerConfig::default())?;
//! producer.send(ProducerRecord::new("clicks").key("u1").value("/home")).await?;
//!
//! let mut consumer = cluster.consumer(ConsumerConfig::group("dashboards").offset_reset(OffsetReset::Earliest))?;
//! consumer.subscribe(["clicks"])?;
//! let records = consumer.poll(Duration::from_secs(5)).await?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"/home"[..]));
//! consumer.commit_sync().await?;
//! consumer.close().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod embedded;
mod fetch;
mod membership;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::embedded::EmbeddedCluster;
use super::kafka::consumer::KafkaConsumer;
use super::kafka::KafkaCluster;
use super::{ConsumerConfig, ConsumerRecord, OffsetAndTimestamp, RebalanceListener};
use crate::topic::TopicPartition;
use crate::vocabulary::OffsetAndMetadata;
use crate::Result;
use embedded::EmbeddedConsumer;

#[derive(Debug)]
enum Backend {
    Embedded(EmbeddedConsumer),
    Kafka(KafkaConsumer),
}

/// Reads records; see the [module docs](self).
#[derive(Debug)]
pub struct Consumer {
    backend: Backend,
}

/// Calls the same method on whichever backend this consumer has.
macro_rules! dispatch {
    ($self:ident, $call:ident($($arg:expr),*)) => {
        match &$self.backend {
            Backend::Embedded(c) => c.$call($($arg),*),
            Backend::Kafka(c) => c.$call($($arg),*),
        }
    };
    (mut $self:ident, $call:ident($($arg:expr),*)) => {
        match &mut $self.backend {
            Backend::Embedded(c) => c.$call($($arg),*),
            Backend::Kafka(c) => c.$call($($arg),*),
        }
    };
    (async mut $self:ident, $call:ident($($arg:expr),*)) => {
        match &mut $self.backend {
            Backend::Embedded(c) => c.$call($($arg),*).await,
            Backend::Kafka(c) => c.$call($($arg),*).await,
        }
    };
}

impl Consumer {
    pub(crate) fn embedded(cluster: Arc<EmbeddedCluster>, config: ConsumerConfig) -> Result<Consumer> {
        Ok(Consumer { backend: Backend::Embedded(EmbeddedConsumer::embedded(cluster, config)?) })
    }

    pub(crate) fn kafka(cluster: &Arc<KafkaCluster>, config: ConsumerConfig) -> Result<Consumer> {
        Ok(Consumer { backend: Backend::Kafka(KafkaConsumer::new(cluster, config)?) })
    }

    /// Subscribes to topics as a member of the consumer group; partitions
    /// come from the group's assignment on the next `poll`.
    ///
    /// # Errors
    /// [`crate::Error::NoGroup`] without `group.id`; [`crate::Error::InvalidTopicName`].
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let topics: Vec<String> = topics.into_iter().map(Into::into).collect();
        dispatch!(mut self, subscribe(topics))
    }

    /// Subscribes to every topic whose whole name matches `pattern` (a
    /// regex), now and as topics are created or deleted.
    ///
    /// # Errors
    /// [`crate::Error::NoGroup`]; [`crate::Error::InvalidConfig`] for a bad regex.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        dispatch!(mut self, subscribe_pattern(pattern))
    }

    /// Sets the listener told about revoked, assigned and lost partitions.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        let listener: Box<dyn RebalanceListener> = Box::new(listener);
        dispatch!(mut self, set_rebalance_listener(listener))
    }

    /// Assigns partitions directly, outside any group rebalancing (commits
    /// still work when `group.id` is set and the group has no members).
    ///
    /// # Errors
    /// [`crate::Error::UnknownTopic`] / [`crate::Error::UnknownPartition`] /
    /// [`crate::Error::PartitionOffline`].
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) -> Result<()> {
        let partitions: Vec<TopicPartition> = partitions.into_iter().collect();
        dispatch!(mut self, assign(partitions))
    }

    /// Drops the subscription or manual assignment (leaving the group).
    pub fn unsubscribe(&mut self) {
        dispatch!(mut self, unsubscribe())
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        dispatch!(self, assignment())
    }

    /// `(member id, generation)` while in a group. The `kafka://` backend
    /// reports generation −1 (librdkafka does not expose it).
    pub fn group_metadata(&self) -> Option<(String, i32)> {
        dispatch!(self, group_metadata())
    }

    /// Moves the position of an assigned partition.
    ///
    /// # Errors
    /// [`crate::Error::NotAssigned`].
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        dispatch!(mut self, seek(tp, offset))
    }

    /// Moves positions to the first offset still stored.
    ///
    /// # Errors
    /// [`crate::Error::NotAssigned`].
    pub fn seek_to_beginning(&mut self, tps: &[TopicPartition]) -> Result<()> {
        dispatch!(mut self, seek_to_beginning(tps))
    }

    /// Moves positions to the log end (only new records).
    ///
    /// # Errors
    /// [`crate::Error::NotAssigned`].
    pub fn seek_to_end(&mut self, tps: &[TopicPartition]) -> Result<()> {
        dispatch!(mut self, seek_to_end(tps))
    }

    /// The next offset `poll` will return for `tp`, resolving it (committed
    /// offset or `auto.offset.reset`) if needed.
    ///
    /// # Errors
    /// [`crate::Error::NotAssigned`]; [`crate::Error::NoOffset`] with `auto.offset.reset=none`.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        dispatch!(async mut self, position(tp))
    }

    /// For each partition, the first offset whose timestamp is at or after
    /// the given one (`None` when every record is older).
    ///
    /// # Errors
    /// Unknown topics or partitions.
    pub fn offsets_for_times(
        &self,
        query: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        dispatch!(self, offsets_for_times(query))
    }

    /// The first offsets still stored.
    ///
    /// # Errors
    /// Unknown topics or partitions.
    pub fn beginning_offsets(&self, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        dispatch!(self, beginning_offsets(tps))
    }

    /// The log end offsets.
    ///
    /// # Errors
    /// Unknown topics or partitions.
    pub fn end_offsets(&self, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        dispatch!(self, end_offsets(tps))
    }

    /// How many records of `tp` the cluster holds after this consumer's
    /// position, as far as the client knows without a request: from the
    /// log itself on the embedded backend, from the high watermark of the
    /// last fetch over Kafka. `None` when not known yet (no position, no
    /// fetch). Kafka Streams waits on this before processing a task whose
    /// other inputs are buffered (KIP-695).
    pub fn fetch_lag(&self, tp: &TopicPartition) -> Option<i64> {
        dispatch!(self, fetch_lag(tp))
    }

    /// Stops returning records from these partitions until resumed (they
    /// stay assigned).
    ///
    /// # Errors
    /// [`crate::Error::NotAssigned`].
    pub fn pause(&mut self, tps: &[TopicPartition]) -> Result<()> {
        dispatch!(mut self, pause(tps))
    }

    /// Resumes paused partitions.
    ///
    /// # Errors
    /// [`crate::Error::NotAssigned`].
    pub fn resume(&mut self, tps: &[TopicPartition]) -> Result<()> {
        dispatch!(mut self, resume(tps))
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        dispatch!(self, paused())
    }

    /// Returns records from the assigned partitions, waiting up to `timeout`
    /// for some to arrive. Runs group rebalances and auto-commit.
    ///
    /// # Errors
    /// [`crate::Error::NoOffset`] with `auto.offset.reset=none`;
    /// [`crate::Error::Corrupt`] for damaged data; [`crate::Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel-safe on the embedded backend: positions advance only for
    /// records it returns.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        dispatch!(async mut self, poll(timeout))
    }

    /// Commits the current positions of all assigned partitions.
    ///
    /// # Errors
    /// [`crate::Error::NoGroup`]; [`crate::Error::CommitFailed`] when this
    /// member was removed from the group or its generation is fenced.
    pub async fn commit_sync(&mut self) -> Result<()> {
        dispatch!(async mut self, commit_sync())
    }

    /// Commits the given offsets (each the next offset to consume).
    ///
    /// # Errors
    /// As [`Consumer::commit_sync`].
    pub async fn commit_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        dispatch!(async mut self, commit_offsets(offsets))
    }

    /// Commits these offsets, each with a metadata string stored with it
    /// (Kafka's `OffsetAndMetadata.metadata`, read back by
    /// [`committed`](Self::committed)).
    ///
    /// # Errors
    /// As [`commit_offsets`](Self::commit_offsets).
    pub async fn commit_offsets_with_metadata(
        &mut self,
        offsets: &BTreeMap<TopicPartition, (i64, String)>,
    ) -> Result<()> {
        dispatch!(async mut self, commit_offsets_with_metadata(offsets))
    }

    /// Starts a commit of the current positions and returns at once; the
    /// callback receives the result.
    pub fn commit_async(&mut self, callback: impl FnOnce(Result<()>) + Send + 'static) {
        dispatch!(mut self, commit_async(callback))
    }

    /// The committed offsets of these partitions for this consumer's group.
    ///
    /// # Errors
    /// [`crate::Error::NoGroup`].
    pub fn committed(
        &self,
        tps: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        dispatch!(self, committed(tps))
    }

    /// Commits (with auto-commit on), leaves the group, and closes. As with
    /// the Java client, a failed final auto-commit (say, a rebalance moved
    /// the generation on) is logged, not returned: the records will be
    /// delivered again to the next owner.
    ///
    /// # Errors
    /// The `kafka://` backend reports a failure to leave the group cleanly.
    pub async fn close(&mut self) -> Result<()> {
        dispatch!(async mut self, close())
    }

    /// Drops the consumer as a crashed process would: no commit, no leave;
    /// the group notices after `session.timeout.ms`. For tests and fault
    /// drills.
    pub fn abandon(self) {
        match self.backend {
            Backend::Embedded(c) => c.abandon(),
            Backend::Kafka(c) => c.abandon(),
        }
    }
}
