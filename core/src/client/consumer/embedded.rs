//! The embedded backend of [`super::Consumer`]: fetches straight from the
//! logs of a broker in this process and runs the group protocol in-process.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use tracing::{debug, warn};

use super::super::embedded::EmbeddedCluster;
use super::super::{AssignmentStrategy, ConsumerConfig, ConsumerRecord, OffsetReset};
use super::fetch::PartitionState;
use super::membership::{self, Membership, Phase};
use crate::broker::group::{JoinRequest, SyncOutcome};
use crate::broker::is_internal;
use crate::client::{OffsetAndTimestamp, RebalanceListener};
use crate::topic::TopicPartition;
use crate::vocabulary::OffsetAndMetadata;
use crate::{Error, Result};

#[derive(Debug)]
enum Subscription {
    None,
    Topics(BTreeSet<String>),
    Pattern(Regex),
    Manual,
}

/// The embedded consumer: reads logs of a broker in this process.
pub(crate) struct EmbeddedConsumer {
    cluster: Arc<EmbeddedCluster>,
    config: ConsumerConfig,
    subscription: Subscription,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    group: Option<Membership>,
    listener: Option<Box<dyn RebalanceListener>>,
    /// Topics the pattern matched at the last metadata change.
    resolved_topics: BTreeSet<String>,
    metadata_epoch: u64,
    next_auto_commit: Instant,
    rotation: usize,
    closed: bool,
}

impl std::fmt::Debug for EmbeddedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("client_id", &self.config.client_id)
            .field("group_id", &self.config.group_id)
            .field("subscription", &self.subscription)
            .field("assignment", &self.partitions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl EmbeddedConsumer {
    pub(crate) fn embedded(
        cluster: Arc<EmbeddedCluster>,
        config: ConsumerConfig,
    ) -> Result<EmbeddedConsumer> {
        let config = config.validated()?;
        let group = config.group_id.clone().map(Membership::new);
        let next_auto_commit = Instant::now() + Duration::from_millis(config.auto_commit_interval_ms);
        Ok(EmbeddedConsumer {
            cluster,
            config,
            subscription: Subscription::None,
            partitions: BTreeMap::new(),
            group,
            listener: None,
            resolved_topics: BTreeSet::new(),
            metadata_epoch: u64::MAX,
            next_auto_commit,
            rotation: 0,
            closed: false,
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed("consumer".into()));
        }
        Ok(())
    }

    /// Subscribes to topics as a member of the consumer group; partitions
    /// come from the group's assignment on the next `poll`.
    ///
    /// # Errors
    /// [`Error::NoGroup`] without `group.id`; [`Error::InvalidTopicName`].
    pub(crate) fn subscribe<I, S>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.check_open()?;
        if self.group.is_none() {
            return Err(Error::NoGroup("subscribe"));
        }
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        for t in &topics {
            crate::topic::validate_topic_name(t)?;
        }
        self.leave_manual();
        self.subscription = Subscription::Topics(topics);
        self.request_rejoin();
        Ok(())
    }

    /// Subscribes to every topic whose whole name matches `pattern` (a
    /// regex), now and as topics are created or deleted.
    ///
    /// # Errors
    /// [`Error::NoGroup`]; [`Error::InvalidConfig`] for a bad regex.
    pub(crate) fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        self.check_open()?;
        if self.group.is_none() {
            return Err(Error::NoGroup("subscribe_pattern"));
        }
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| Error::InvalidConfig {
            key: "subscription pattern".into(),
            reason: e.to_string(),
        })?;
        self.leave_manual();
        self.subscription = Subscription::Pattern(regex);
        self.metadata_epoch = u64::MAX;
        self.request_rejoin();
        Ok(())
    }

    /// Sets the listener told about revoked, assigned and lost partitions.
    pub(crate) fn set_rebalance_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        self.listener = Some(listener);
    }

    /// Assigns partitions directly, outside any group rebalancing (commits
    /// still work when `group.id` is set and the group has no members).
    ///
    /// # Errors
    /// [`Error::UnknownTopic`] / [`Error::UnknownPartition`] /
    /// [`Error::PartitionOffline`].
    pub(crate) fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) -> Result<()> {
        self.check_open()?;
        let wanted: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        let mut states = Vec::new();
        for tp in &wanted {
            if !self.partitions.contains_key(tp) {
                states.push((
                    tp.clone(),
                    PartitionState::new(tp, self.cluster.broker().log(&tp.topic, tp.partition)?),
                ));
            }
        }
        if !matches!(self.subscription, Subscription::Manual | Subscription::None) {
            self.unsubscribe_group();
        }
        self.subscription = Subscription::Manual;
        self.partitions.retain(|tp, _| wanted.contains(tp));
        self.partitions.extend(states);
        Ok(())
    }

    /// Drops the subscription or manual assignment (leaving the group).
    pub(crate) fn unsubscribe(&mut self) {
        self.unsubscribe_group();
        self.partitions.clear();
        self.subscription = Subscription::None;
    }

    fn leave_manual(&mut self) {
        if matches!(self.subscription, Subscription::Manual) {
            self.partitions.clear();
        }
    }

    fn unsubscribe_group(&mut self) {
        if let Some(g) = &mut self.group {
            if let Some(member) = g.member_id.clone() {
                let broker = self.cluster.broker();
                broker.groups().leave(&g.group_id, &member, broker.now_ms());
            }
            g.set_member(None, -1);
            g.phase = Phase::Out;
        }
        if !matches!(self.subscription, Subscription::Manual) {
            let revoked: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
            if !revoked.is_empty() {
                if let Some(l) = &mut self.listener {
                    l.on_partitions_revoked(&revoked);
                }
            }
            self.partitions.clear();
        }
    }

    fn request_rejoin(&mut self) {
        if let Some(g) = &self.group {
            g.shared.rejoin.store(true, Ordering::Release);
            g.shared.wake.notify_one();
        }
    }

    /// The partitions currently assigned.
    pub(crate) fn assignment(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }

    /// `(member id, generation)` while in a group.
    pub(crate) fn group_metadata(&self) -> Option<(String, i32)> {
        let g = self.group.as_ref()?;
        Some((g.member_id.clone()?, g.generation))
    }

    fn state(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState> {
        self.partitions.get_mut(tp).ok_or_else(|| Error::NotAssigned(tp.clone()))
    }

    /// Moves the position of an assigned partition.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub(crate) fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        self.state(tp)?.seek(offset.max(0));
        Ok(())
    }

    /// Moves positions to the first offset still stored.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub(crate) fn seek_to_beginning(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in tps {
            let s = self.state(tp)?;
            let start = s.log.log_start_offset();
            s.seek(start);
        }
        Ok(())
    }

    /// Moves positions to the log end (only new records).
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub(crate) fn seek_to_end(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in tps {
            let s = self.state(tp)?;
            let end = s.log.log_end_offset();
            s.seek(end);
        }
        Ok(())
    }

    /// The next offset `poll` will return for `tp`, resolving it (committed
    /// offset or `auto.offset.reset`) if needed.
    ///
    /// # Errors
    /// [`Error::NotAssigned`]; [`Error::NoOffset`] with `auto.offset.reset=none`.
    pub(crate) async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.state(tp)?;
        self.resolve_positions()?;
        Ok(self.state(tp)?.position.expect("resolved"))
    }

    /// For each partition, the first offset whose timestamp is at or after
    /// the given one (`None` when every record is older).
    ///
    /// # Errors
    /// Unknown topics or partitions.
    pub(crate) fn offsets_for_times(
        &self,
        query: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        query
            .iter()
            .map(|(tp, &ts)| {
                let log = self.cluster.broker().log(&tp.topic, tp.partition)?;
                let found = log
                    .offset_for_timestamp(ts)?
                    .map(|(offset, timestamp)| OffsetAndTimestamp { offset, timestamp });
                Ok((tp.clone(), found))
            })
            .collect()
    }

    /// The first offsets still stored.
    ///
    /// # Errors
    /// Unknown topics or partitions.
    pub(crate) fn beginning_offsets(&self, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        tps.iter()
            .map(|tp| {
                Ok((tp.clone(), self.cluster.broker().log(&tp.topic, tp.partition)?.log_start_offset()))
            })
            .collect()
    }

    /// The log end offsets.
    ///
    /// # Errors
    /// Unknown topics or partitions.
    pub(crate) fn end_offsets(&self, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        tps.iter()
            .map(|tp| Ok((tp.clone(), self.cluster.broker().log(&tp.topic, tp.partition)?.log_end_offset())))
            .collect()
    }

    /// Records after the position of `tp` in its log (`None` before the
    /// position is known).
    pub(crate) fn fetch_lag(&self, tp: &TopicPartition) -> Option<i64> {
        let position = self.partitions.get(tp)?.position?;
        let end = self.cluster.broker().log(&tp.topic, tp.partition).ok()?.log_end_offset();
        Some((end - position).max(0))
    }

    /// Stops returning records from these partitions until resumed (they
    /// stay assigned).
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub(crate) fn pause(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in tps {
            self.state(tp)?.paused = true;
        }
        Ok(())
    }

    /// Resumes paused partitions.
    ///
    /// # Errors
    /// [`Error::NotAssigned`].
    pub(crate) fn resume(&mut self, tps: &[TopicPartition]) -> Result<()> {
        for tp in tps {
            self.state(tp)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub(crate) fn paused(&self) -> Vec<TopicPartition> {
        self.partitions.iter().filter(|(_, s)| s.paused).map(|(tp, _)| tp.clone()).collect()
    }

    /// Returns records from the assigned partitions, waiting up to `timeout`
    /// for some to arrive. Runs group rebalances and auto-commit.
    ///
    /// # Errors
    /// [`Error::NoOffset`] with `auto.offset.reset=none`;
    /// [`Error::Corrupt`] for damaged data; [`Error::Closed`].
    ///
    /// # Cancel safety
    /// Cancel-safe: positions advance only for records it returns.
    pub(crate) async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        self.check_open()?;
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        let _in_poll = self.group.as_ref().map(|g| membership::InPoll::enter(&g.shared));
        loop {
            self.maintain_group()?;
            self.maybe_auto_commit();
            self.resolve_positions()?;
            let records = self.fetch()?;
            if !records.is_empty() {
                return Ok(records);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(records);
            }
            let auto_commits = self.config.enable_auto_commit && self.config.group_id.is_some();
            let until = if auto_commits {
                deadline.min(self.next_auto_commit.max(now + Duration::from_millis(1)))
            } else {
                deadline
            };
            self.wait(until).await;
        }
    }

    /// Waits for new data on an unpaused partition, a group event, or `until`.
    async fn wait(&mut self, until: Instant) {
        let group_wake = self.group.as_ref().map(|g| g.shared.clone());
        let mut group_changes = self.group.as_mut().and_then(|g| g.changes.clone());
        let mut waits: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> = Vec::new();
        for s in self.partitions.values_mut().filter(|s| !s.paused && s.position.is_some()) {
            waits.push(Box::pin(async move {
                let _ = s.end_offset.changed().await;
            }));
        }
        if let Some(shared) = &group_wake {
            waits.push(Box::pin(async move { shared.wake.notified().await }));
        }
        if let Some(changes) = group_changes.as_mut() {
            waits.push(Box::pin(async move {
                if changes.changed().await.is_err() {
                    // The group entry went away; the next poll subscribes again.
                    std::future::pending::<()>().await;
                }
            }));
        }
        let sleep = tokio::time::sleep_until(until.into());
        if waits.is_empty() {
            sleep.await;
        } else {
            tokio::select! {
                _ = sleep => {}
                _ = futures::future::select_all(waits) => {}
            }
        }
    }

    /// Reads up to `max.poll.records`, rotating the starting partition so
    /// none is starved.
    fn fetch(&mut self) -> Result<Vec<ConsumerRecord>> {
        let max = self.config.max_poll_records;
        let mut out = Vec::new();
        let keys: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        if keys.is_empty() {
            return Ok(out);
        }
        self.rotation = (self.rotation + 1) % keys.len();
        let mut budget = self.config.fetch_max_bytes;
        for i in 0..keys.len() {
            let tp = &keys[(self.rotation + i) % keys.len()];
            let reset = self.config.auto_offset_reset;
            let per_partition = self.config.max_partition_fetch_bytes.min(budget.max(1));
            let s = self.partitions.get_mut(tp).expect("listed");
            s.mark_seen();
            let before = out.len();
            match s.poll_into(&mut out, max, per_partition) {
                Ok(()) => {}
                Err(Error::OffsetOutOfRange { log_start_offset, log_end_offset, .. }) => {
                    let to = match reset {
                        OffsetReset::Earliest => log_start_offset,
                        OffsetReset::Latest => log_end_offset,
                        // Return what was read; the error comes back on the next poll.
                        OffsetReset::None if !out.is_empty() => break,
                        OffsetReset::None => return Err(Error::NoOffset(tp.clone())),
                    };
                    warn!(partition = %tp, position = ?s.position, reset_to = to, "position out of range; reset");
                    s.seek(to);
                }
                // Records already read from other partitions are returned; the
                // error comes back on the next poll (this partition did not move).
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(e),
            }
            let taken: usize =
                out[before..].iter().map(|r| r.value.as_ref().map_or(0, |v| v.len()) + 64).sum();
            budget = budget.saturating_sub(taken);
            if out.len() >= max || budget == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// Gives every partition without a position one: the committed offset,
    /// else `auto.offset.reset`.
    fn resolve_positions(&mut self) -> Result<()> {
        if self.partitions.values().all(|s| s.position.is_some()) {
            return Ok(());
        }
        let committed = match &self.config.group_id {
            Some(g) => self.cluster.broker().committed_offsets(g),
            None => BTreeMap::new(),
        };
        for (tp, s) in self.partitions.iter_mut().filter(|(_, s)| s.position.is_none()) {
            let (start, end) = (s.log.log_start_offset(), s.log.log_end_offset());
            let position = match committed.get(tp) {
                Some(o) if (start..=end).contains(&o.offset) => o.offset,
                _ => match self.config.auto_offset_reset {
                    OffsetReset::Earliest => start,
                    OffsetReset::Latest => end,
                    OffsetReset::None => return Err(Error::NoOffset(tp.clone())),
                },
            };
            debug!(partition = %tp, position, "position resolved");
            s.seek(position);
        }
        Ok(())
    }

    /// The topics the subscription names right now.
    fn subscribed_topics(&mut self) -> Option<BTreeSet<String>> {
        match &self.subscription {
            Subscription::Topics(t) => Some(t.clone()),
            Subscription::Pattern(re) => {
                let epoch = self.cluster.broker().metadata_epoch();
                if epoch != self.metadata_epoch {
                    self.metadata_epoch = epoch;
                    let matched: BTreeSet<String> = self
                        .cluster
                        .broker()
                        .list_all_topics()
                        .into_iter()
                        .filter(|t| !is_internal(t) && re.is_match(t))
                        .collect();
                    if matched != self.resolved_topics {
                        self.resolved_topics = matched;
                        self.request_rejoin();
                    }
                }
                Some(self.resolved_topics.clone())
            }
            Subscription::None | Subscription::Manual => None,
        }
    }

    /// Joins, syncs and applies assignments; never waits.
    fn maintain_group(&mut self) -> Result<()> {
        let Some(topics) = self.subscribed_topics() else { return Ok(()) };
        let heartbeat = Duration::from_millis(self.config.heartbeat_interval_ms);
        let max_poll = Duration::from_millis(self.config.max_poll_interval_ms);
        let cluster = self.cluster.clone();
        let broker = cluster.broker();
        let counts = |t: &str| broker.partition_count(t).ok();
        let g = self.group.as_mut().expect("subscriptions need a group");
        g.ensure_heartbeat(&cluster, heartbeat, max_poll);
        // The group changed since this member last looked (another member
        // joined or left): ask the coordinator now rather than at the next
        // heartbeat, so a stable member rejoins a new rebalance within a
        // poll instead of up to `heartbeat.interval.ms` later (the
        // coordinator is in-process; the call is a lock and a map lookup).
        let group_moved = g.changes.as_ref().is_some_and(|c| c.has_changed().unwrap_or(false));
        if group_moved && g.phase == Phase::Stable {
            if let Some(member) = &g.member_id {
                let outcome =
                    broker.groups().heartbeat(&g.group_id, member, g.generation, broker.now_ms(), &counts);
                // Read just below, in this same call: no wake-up needed.
                g.shared.heard(outcome);
            }
        }
        g.refresh_changes(&cluster);

        if g.shared.lost.swap(false, Ordering::AcqRel) {
            // Removed from the group: the partitions are gone without a commit.
            let lost: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
            warn!(group = %g.group_id, partitions = lost.len(), "removed from the group; partitions lost");
            g.set_member(None, -1);
            g.phase = Phase::Out;
            self.partitions.clear();
            if let Some(l) = &mut self.listener {
                if !lost.is_empty() {
                    l.on_partitions_lost(&lost);
                }
            }
        }
        let g = self.group.as_mut().expect("group");
        let wants_rejoin = g.shared.rejoin.swap(false, Ordering::AcqRel);
        // While joining, the sync below says whether to join again; a
        // heartbeat's rejoin request then is about the same rebalance.
        if g.phase == Phase::Out || (wants_rejoin && g.phase == Phase::Stable) {
            // As in the Java client, a member rebalances cooperatively only if
            // every assignor it offers is cooperative.
            let cooperative =
                self.config.assignment_strategies.iter().all(|s| *s == AssignmentStrategy::CooperativeSticky);
            if !cooperative && !self.partitions.is_empty() {
                // Eager: give everything back before rejoining.
                self.commit_for_rebalance(None);
                let revoked: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
                if let Some(l) = &mut self.listener {
                    l.on_partitions_revoked(&revoked);
                }
                self.partitions.clear();
            }
            let g = self.group.as_mut().expect("group");
            let request = JoinRequest {
                group_id: g.group_id.clone(),
                member_id: g.member_id.clone(),
                client_id: self.config.client_id.clone(),
                topics: topics.clone(),
                strategies: self.config.assignment_strategies.clone(),
                owned: self.partitions.keys().cloned().collect(),
                session_timeout_ms: self.config.session_timeout_ms,
                rebalance_timeout_ms: self.config.max_poll_interval_ms,
            };
            match broker.groups().join(request.clone(), broker.now_ms(), &counts) {
                Ok(member) => g.set_member(Some(member), g.generation),
                Err(Error::UnknownMember { .. }) => {
                    // Removed while away: what it owned is gone without a commit.
                    let lost: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
                    self.partitions.clear();
                    if !lost.is_empty() {
                        if let Some(l) = &mut self.listener {
                            l.on_partitions_lost(&lost);
                        }
                    }
                    let request = JoinRequest { member_id: None, owned: Vec::new(), ..request };
                    let member = broker.groups().join(request, broker.now_ms(), &counts)?;
                    g.set_member(Some(member), -1);
                }
                Err(e) => return Err(e),
            }
            g.phase = Phase::Joining;
        }
        let g = self.group.as_mut().expect("group");
        if g.phase != Phase::Joining {
            return Ok(());
        }
        let member = g.member_id.clone().expect("joined");
        if let Some(changes) = g.changes.as_mut() {
            // Anything after this wakes the next wait.
            changes.borrow_and_update();
        }
        match broker.groups().sync(&g.group_id, &member, broker.now_ms(), &counts) {
            SyncOutcome::Pending => Ok(()),
            SyncOutcome::Rejoin => {
                g.phase = Phase::Out;
                g.shared.wake.notify_one();
                Ok(())
            }
            SyncOutcome::UnknownMember => {
                g.shared.lost.store(true, Ordering::Release);
                Ok(())
            }
            SyncOutcome::Assigned(a) => {
                // Rejoin requests seen while waiting belonged to this rebalance.
                g.shared.rejoin.store(false, Ordering::Release);
                g.set_member(Some(member), a.generation);
                g.protocol = Some(a.protocol);
                g.phase = Phase::Stable;
                let group_id = g.group_id.clone();
                let new: BTreeSet<TopicPartition> = a.partitions.into_iter().collect();
                let revoked: Vec<TopicPartition> =
                    self.partitions.keys().filter(|tp| !new.contains(*tp)).cloned().collect();
                if !revoked.is_empty() {
                    self.commit_for_rebalance(Some(&revoked));
                    if let Some(l) = &mut self.listener {
                        l.on_partitions_revoked(&revoked);
                    }
                    for tp in &revoked {
                        self.partitions.remove(tp);
                    }
                    // Cooperative: rejoin so the revoked partitions can move.
                    self.request_rejoin();
                }
                let mut added = Vec::new();
                for tp in new {
                    if !self.partitions.contains_key(&tp) {
                        match broker.log(&tp.topic, tp.partition) {
                            Ok(log) => {
                                self.partitions.insert(tp.clone(), PartitionState::new(&tp, log));
                                added.push(tp);
                            }
                            Err(e) => {
                                warn!(group = %group_id, partition = %tp, error = %e, "assigned partition unavailable")
                            }
                        }
                    }
                }
                debug!(group = %group_id, generation = a.generation, added = added.len(), revoked = revoked.len(), "assignment applied");
                if let Some(l) = &mut self.listener {
                    l.on_partitions_assigned(&added);
                }
                Ok(())
            }
        }
    }

    fn positions(&self, only: Option<&[TopicPartition]>) -> BTreeMap<TopicPartition, i64> {
        self.partitions
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .collect()
    }

    /// Commits positions of partitions about to be revoked (auto-commit only).
    fn commit_for_rebalance(&mut self, only: Option<&[TopicPartition]>) {
        if self.config.enable_auto_commit && self.config.group_id.is_some() {
            let offsets = self.positions(only);
            if let Err(e) = self.commit_map(&offsets) {
                warn!(error = %e, "commit before revocation failed");
            }
        }
    }

    fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit
            || self.config.group_id.is_none()
            || Instant::now() < self.next_auto_commit
        {
            return;
        }
        self.next_auto_commit = Instant::now() + Duration::from_millis(self.config.auto_commit_interval_ms);
        let offsets = self.positions(None);
        if let Err(e) = self.commit_map(&offsets) {
            warn!(error = %e, "auto-commit failed");
        }
    }

    fn commit_map(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.commit_entries(offsets.iter().map(|(tp, &o)| (tp, o, "")))
    }

    fn commit_map_with(&self, offsets: &BTreeMap<TopicPartition, (i64, String)>) -> Result<()> {
        self.commit_entries(offsets.iter().map(|(tp, (o, metadata))| (tp, *o, metadata.as_str())))
    }

    /// Commits `(partition, offset, metadata)` entries.
    fn commit_entries<'a>(
        &self,
        offsets: impl ExactSizeIterator<Item = (&'a TopicPartition, i64, &'a str)>,
    ) -> Result<()> {
        let group = self.config.group_id.as_deref().ok_or(Error::NoGroup("commit"))?;
        if offsets.len() == 0 {
            return Ok(());
        }
        let broker = self.cluster.broker();
        let now = broker.now_ms();
        let member = match (&self.subscription, &self.group) {
            (Subscription::Topics(_) | Subscription::Pattern(_), Some(g)) => Some((
                g.member_id.clone().ok_or_else(|| Error::CommitFailed {
                    group: group.to_string(),
                    rejection: crate::CommitRejection::UnknownMember,
                    reason: "not a member yet (the first poll joins the group)".into(),
                })?,
                g.generation,
            )),
            _ => None,
        };
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = offsets
            .map(|(tp, o, metadata)| {
                let mut committed = OffsetAndMetadata::new(o, now);
                committed.metadata = metadata.to_string();
                (tp.clone(), committed)
            })
            .collect();
        let member = member.as_ref().map(|(m, g)| (m.as_str(), *g));
        broker.groups().commit(group, member, now, || broker.commit_offsets(group, &offsets))
    }

    /// Commits the current positions of all assigned partitions.
    ///
    /// # Errors
    /// [`Error::NoGroup`]; [`Error::CommitFailed`] when this member was
    /// removed from the group or its generation is fenced.
    pub(crate) async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.positions(None);
        self.commit_map(&offsets)
    }

    /// Commits the given offsets (each the next offset to consume).
    ///
    /// # Errors
    /// As [`EmbeddedConsumer::commit_sync`].
    pub(crate) async fn commit_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        self.commit_map(offsets)
    }

    /// Commits these offsets, each with its metadata string.
    pub(crate) async fn commit_offsets_with_metadata(
        &mut self,
        offsets: &BTreeMap<TopicPartition, (i64, String)>,
    ) -> Result<()> {
        self.commit_map_with(offsets)
    }

    /// Starts a commit of the current positions and returns at once; the
    /// callback receives the result.
    pub(crate) fn commit_async(&mut self, callback: impl FnOnce(Result<()>) + Send + 'static) {
        let result = {
            let offsets = self.positions(None);
            self.commit_map(&offsets)
        };
        tokio::spawn(async move { callback(result) });
    }

    /// The committed offsets of these partitions for this consumer's group.
    ///
    /// # Errors
    /// [`Error::NoGroup`].
    pub(crate) fn committed(
        &self,
        tps: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        let group = self.config.group_id.as_deref().ok_or(Error::NoGroup("committed"))?;
        let all = self.cluster.broker().committed_offsets(group);
        Ok(tps.iter().map(|tp| (tp.clone(), all.get(tp).cloned())).collect())
    }

    /// Commits (with auto-commit on), leaves the group, and closes. As with
    /// the Java client, a failed final auto-commit (say, a rebalance moved
    /// the generation on) is logged, not returned: the records will be
    /// delivered again to the next owner.
    ///
    /// # Errors
    /// Never today; kept fallible for the network backend.
    pub(crate) async fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        if self.config.enable_auto_commit && self.config.group_id.is_some() {
            let offsets = self.positions(None);
            if let Err(e) = self.commit_map(&offsets) {
                warn!(error = %e, "final auto-commit on close failed");
            }
        }
        self.unsubscribe_group();
        if let Some(g) = &mut self.group {
            g.stop_heartbeat();
        }
        self.closed = true;
        Ok(())
    }

    /// Drops the consumer as a crashed process would: no commit, no leave;
    /// the group notices after `session.timeout.ms`. For tests and fault
    /// drills.
    pub(crate) fn abandon(mut self) {
        if let Some(g) = &mut self.group {
            g.stop_heartbeat();
        }
        self.closed = true;
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        if !self.closed {
            self.unsubscribe_group();
        }
    }
}
