//! The `kafka://` consumer: librdkafka's consumer behind Runnel's API.
//! librdkafka runs the group protocol on its own threads; rebalance
//! callbacks reach the [`RebalanceListener`] from inside `poll`, as on the
//! embedded backend.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, warn};

use super::{blocking, kafka_error, tpl_of, tps_of, KafkaCluster, REQUEST_TIMEOUT};

/// How long `close` waits for librdkafka to leave the group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
use crate::client::answers::OffsetAndTimestamp;
use crate::client::listener::RebalanceListener;
use crate::client::{AssignmentStrategy, ConsumerConfig, ConsumerRecord, OffsetReset};
use crate::record::{Header, TimestampType};
use crate::topic::TopicPartition;
use crate::vocabulary::OffsetAndMetadata;
use crate::{CommitRejection, Error, Result};

/// Routes librdkafka's rebalance callbacks to the listener.
pub(crate) struct Ctx {
    listener: Mutex<Option<Box<dyn RebalanceListener>>>,
    /// A group error librdkafka reported outside any message (a refused
    /// join): `poll` returns it.
    group_error: Mutex<Option<(RDKafkaErrorCode, String)>>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(
                code
                @ (RDKafkaErrorCode::InconsistentGroupProtocol | RDKafkaErrorCode::InvalidSessionTimeout),
            ) => {
                *self.group_error.lock().expect("error lock") = Some((code, reason.to_string()));
            }
            _ => warn!(target: "librdkafka", "{error}: {reason}"),
        }
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                warn!(target: "librdkafka", fac, "{message}")
            }
            _ => debug!(target: "librdkafka", fac, "{message}"),
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let tps = tps_of(tpl);
            if tps.is_empty() {
                return;
            }
            if let Some(l) = self.listener.lock().expect("listener lock").as_mut() {
                if consumer.assignment_lost() {
                    l.on_partitions_lost(&tps);
                } else {
                    l.on_partitions_revoked(&tps);
                }
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let tps = tps_of(tpl);
            if tps.is_empty() {
                return;
            }
            if let Some(l) = self.listener.lock().expect("listener lock").as_mut() {
                l.on_partitions_assigned(&tps);
            }
        }
    }
}

type Inner = BaseConsumer<Ctx>;

pub(crate) struct KafkaConsumer {
    consumer: Option<Arc<Inner>>,
    cluster: Arc<KafkaCluster>,
    config: ConsumerConfig,
    manual: bool,
    paused: BTreeSet<TopicPartition>,
    /// Where each manually assigned partition was last set to start
    /// (assign, seek): librdkafka reports no position until it fetched.
    starts: HashMap<TopicPartition, Offset>,
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("group_id", &self.config.group_id)
            .field("client_id", &self.config.client_id)
            .finish()
    }
}

fn commit_error(group: &str, e: KafkaError) -> Error {
    let rejection = match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownMemberId) => CommitRejection::UnknownMember,
        Some(RDKafkaErrorCode::IllegalGeneration | RDKafkaErrorCode::RebalanceInProgress) => {
            CommitRejection::IllegalGeneration
        }
        _ => return kafka_error(&format!("commit for group {group}"), e),
    };
    Error::CommitFailed { group: group.to_string(), rejection, reason: e.to_string() }
}

/// librdkafka refuses to mix eager and cooperative assignors (Java's
/// default, `range,cooperative-sticky`, does so to migrate): keep those of
/// the first one's kind.
fn librdkafka_strategies(strategies: &[AssignmentStrategy]) -> String {
    let cooperative = |s: &AssignmentStrategy| *s == AssignmentStrategy::CooperativeSticky;
    let first = strategies.first().is_some_and(cooperative);
    strategies.iter().filter(|s| cooperative(s) == first).map(|s| s.name()).collect::<Vec<_>>().join(",")
}

fn is_nothing_to_commit(e: &KafkaError) -> bool {
    e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset)
}

impl KafkaConsumer {
    pub(crate) fn new(cluster: &Arc<KafkaCluster>, config: ConsumerConfig) -> Result<KafkaConsumer> {
        let config = config.validated()?;
        let mut c = cluster.config();
        c.set("client.id", &config.client_id)
            .set("enable.auto.commit", config.enable_auto_commit.to_string())
            .set("auto.commit.interval.ms", config.auto_commit_interval_ms.to_string())
            .set(
                "auto.offset.reset",
                match config.auto_offset_reset {
                    OffsetReset::Earliest => "earliest",
                    OffsetReset::Latest => "latest",
                    OffsetReset::None => "error",
                },
            )
            .set("session.timeout.ms", config.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", config.heartbeat_interval_ms.to_string())
            // librdkafka insists on max.poll.interval.ms >= session.timeout.ms.
            .set(
                "max.poll.interval.ms",
                config.max_poll_interval_ms.max(config.session_timeout_ms).to_string(),
            )
            // Pattern subscriptions see new topics at each metadata refresh.
            .set("topic.metadata.refresh.interval.ms", "5000")
            .set("max.partition.fetch.bytes", config.max_partition_fetch_bytes.to_string())
            .set("fetch.max.bytes", config.fetch_max_bytes.to_string())
            .set("partition.assignment.strategy", librdkafka_strategies(&config.assignment_strategies))
            .set("enable.partition.eof", "false");
        match &config.group_id {
            Some(g) => {
                c.set("group.id", g);
            }
            None => {
                // librdkafka's consumer needs a group even for assign(); this
                // one never joins (no subscribe) and never commits.
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let unique = format!("runnel-unjoined-{}-{n}", std::process::id());
                c.set("group.id", unique)
                    .set("enable.auto.commit", "false")
                    .set("enable.auto.offset.store", "false");
            }
        }
        let consumer: Inner = c
            .create_with_context(Ctx { listener: Mutex::new(None), group_error: Mutex::new(None) })
            .map_err(|e| kafka_error("create a Kafka consumer", e))?;
        Ok(KafkaConsumer {
            consumer: Some(Arc::new(consumer)),
            cluster: cluster.clone(),
            config,
            manual: false,
            paused: BTreeSet::new(),
            starts: HashMap::new(),
        })
    }

    fn c(&self) -> Result<&Arc<Inner>> {
        self.consumer.as_ref().ok_or_else(|| Error::Closed("consumer".into()))
    }

    fn group(&self, op: &'static str) -> Result<&str> {
        self.config.group_id.as_deref().ok_or(Error::NoGroup(op))
    }

    pub(crate) fn subscribe(&mut self, topics: Vec<String>) -> Result<()> {
        self.group("subscribe")?;
        for t in &topics {
            crate::topic::validate_topic_name(t)?;
        }
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        self.c()?.subscribe(&refs).map_err(|e| kafka_error("subscribe", e))?;
        self.manual = false;
        self.paused.clear();
        Ok(())
    }

    pub(crate) fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        self.group("subscribe_pattern")?;
        regex::Regex::new(pattern).map_err(|e| Error::InvalidConfig {
            key: "subscription pattern".into(),
            reason: e.to_string(),
        })?;
        // librdkafka treats a subscription starting with '^' as a regex.
        let anchored = format!("^{pattern}$");
        self.c()?.subscribe(&[anchored.as_str()]).map_err(|e| kafka_error("subscribe", e))?;
        self.manual = false;
        self.paused.clear();
        Ok(())
    }

    pub(crate) fn set_rebalance_listener(&mut self, listener: Box<dyn RebalanceListener>) {
        if let Some(c) = &self.consumer {
            *c.context().listener.lock().expect("listener lock") = Some(listener);
        }
    }

    fn start_offset(&self) -> Offset {
        if self.config.group_id.is_some() {
            return Offset::Invalid; // the committed offset, else auto.offset.reset
        }
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => Offset::Beginning,
            _ => Offset::End,
        }
    }

    pub(crate) fn assign(&mut self, partitions: Vec<TopicPartition>) -> Result<()> {
        let consumer = self.c()?.clone();
        let mut counts: HashMap<&str, i32> = HashMap::new();
        for tp in &partitions {
            let n = match counts.get(tp.topic.as_str()) {
                Some(&n) => n,
                None => {
                    let n = self.cluster.partition_count(&tp.topic)?;
                    counts.insert(&tp.topic, n);
                    n
                }
            };
            if tp.partition < 0 || tp.partition >= n {
                return Err(Error::UnknownPartition(tp.clone()));
            }
        }
        if !self.manual {
            consumer.unsubscribe();
        }
        // Pin "latest" to the log ends now (one request for them all), so
        // records written after assign() are read however late librdkafka
        // starts fetching.
        let ends = match self.start_offset() {
            Offset::End => Some(self.end_offsets(&partitions)?),
            _ => None,
        };
        let mut tpl = TopicPartitionList::new();
        let mut starts = HashMap::new();
        for tp in &partitions {
            let start = match &ends {
                Some(ends) => Offset::Offset(ends[tp]),
                None => self.start_offset(),
            };
            tpl.add_partition_offset(&tp.topic, tp.partition, start).map_err(|e| kafka_error("assign", e))?;
            starts.insert(tp.clone(), start);
        }
        consumer.assign(&tpl).map_err(|e| kafka_error("assign", e))?;
        self.starts = starts;
        self.manual = true;
        self.paused.retain(|tp| partitions.contains(tp));
        Ok(())
    }

    pub(crate) fn unsubscribe(&mut self) {
        if let Some(c) = &self.consumer {
            if self.manual {
                let _ = c.unassign();
            } else {
                c.unsubscribe();
            }
        }
        self.manual = false;
        self.paused.clear();
    }

    pub(crate) fn assignment(&self) -> Vec<TopicPartition> {
        let Ok(c) = self.c() else { return Vec::new() };
        let mut v = c.assignment().map(|tpl| tps_of(&tpl)).unwrap_or_default();
        v.sort();
        v
    }

    pub(crate) fn group_metadata(&self) -> Option<(String, i32)> {
        self.config.group_id.as_ref()?;
        let c = self.consumer.as_ref()?;
        // SAFETY: the client pointer is valid while `c` lives; librdkafka
        // returns a malloc'd copy (or null) that we free with its allocator.
        let id = unsafe {
            let p = rdkafka::bindings::rd_kafka_memberid(c.client().native_ptr());
            if p.is_null() {
                return None;
            }
            let s = std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
            rdkafka::bindings::rd_kafka_mem_free(c.client().native_ptr(), p.cast());
            s
        };
        (!id.is_empty()).then_some((id, -1))
    }

    fn check_assigned(&self, tps: &[TopicPartition]) -> Result<()> {
        let assigned = self.assignment();
        match tps.iter().find(|tp| !assigned.contains(tp)) {
            Some(tp) => Err(Error::NotAssigned(tp.clone())),
            None => Ok(()),
        }
    }

    fn seek_to(&mut self, tp: &TopicPartition, offset: Offset) -> Result<()> {
        self.check_assigned(std::slice::from_ref(tp))?;
        let c = self.c()?.clone();
        self.starts.insert(tp.clone(), offset);
        match c.seek(&tp.topic, tp.partition, offset, Duration::from_secs(10)) {
            Ok(()) => Ok(()),
            Err(e) if self.manual => {
                // Not fetching yet: assign again with this partition's new
                // start and every other partition's current position.
                debug!(partition = %tp, error = %e, "seek before fetching; re-assigning");
                let positions = c.position().map_err(|e| kafka_error("position", e))?;
                let mut tpl = TopicPartitionList::new();
                for other in self.assignment() {
                    // Every other partition keeps where it was set to start
                    // unless it fetched already (an unfetched one reports
                    // no position, which would restart it from
                    // auto.offset.reset).
                    let at = if &other == tp {
                        offset
                    } else {
                        match positions.find_partition(&other.topic, other.partition).map(|e| e.offset()) {
                            Some(Offset::Offset(o)) => Offset::Offset(o),
                            _ => self.starts.get(&other).copied().unwrap_or(Offset::Invalid),
                        }
                    };
                    tpl.add_partition_offset(&other.topic, other.partition, at)
                        .map_err(|e| kafka_error("seek", e))?;
                }
                c.assign(&tpl).map_err(|e| kafka_error("seek", e))
            }
            Err(e) => Err(kafka_error(&format!("seek {tp}"), e)),
        }
    }

    pub(crate) fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        self.seek_to(tp, Offset::Offset(offset.max(0)))
    }

    pub(crate) fn seek_to_beginning(&mut self, tps: &[TopicPartition]) -> Result<()> {
        tps.iter().try_for_each(|tp| self.seek_to(tp, Offset::Beginning))
    }

    pub(crate) fn seek_to_end(&mut self, tps: &[TopicPartition]) -> Result<()> {
        tps.iter().try_for_each(|tp| self.seek_to(tp, Offset::End))
    }

    pub(crate) async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.check_assigned(std::slice::from_ref(tp))?;
        let c = self.c()?.clone();
        let positions = c.position().map_err(|e| kafka_error("position", e))?;
        if let Some(Offset::Offset(o)) = positions.find_partition(&tp.topic, tp.partition).map(|e| e.offset())
        {
            return Ok(o);
        }
        // Not fetched yet: where assign or a seek set it to start (a reader
        // that sought to the beginning must not be told it is at the end).
        match self.starts.get(tp) {
            Some(Offset::Offset(o)) => return Ok(*o),
            Some(Offset::Beginning) => return Ok(self.watermarks(tp)?.0),
            Some(Offset::End) => return Ok(self.watermarks(tp)?.1),
            _ => {}
        }
        if self.config.group_id.is_some() {
            if let Some(Some(o)) = self.committed(std::slice::from_ref(tp))?.remove(tp) {
                return Ok(o.offset);
            }
        }
        let (low, high) = self.watermarks(tp)?;
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => Ok(low),
            OffsetReset::Latest => Ok(high),
            OffsetReset::None => Err(Error::NoOffset(tp.clone())),
        }
    }

    fn watermarks(&self, tp: &TopicPartition) -> Result<(i64, i64)> {
        self.c()?
            .fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error(&format!("watermarks of {tp}"), e))
    }

    pub(crate) fn offsets_for_times(
        &self,
        query: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        let mut tpl = TopicPartitionList::new();
        for (tp, &ts) in query {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(ts))
                .map_err(|e| kafka_error("offsets_for_times", e))?;
        }
        let found = self
            .c()?
            .offsets_for_times(tpl, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error("offsets_for_times", e))?;
        query
            .keys()
            .map(|tp| {
                let o = found.find_partition(&tp.topic, tp.partition).map(|e| e.offset());
                let hit = match o {
                    // librdkafka reports the offset only: read the record for its timestamp.
                    Some(Offset::Offset(offset)) => {
                        Some(OffsetAndTimestamp { offset, timestamp: self.record_timestamp(tp, offset)? })
                    }
                    _ => None,
                };
                Ok((tp.clone(), hit))
            })
            .collect()
    }

    /// The timestamp of the record at `offset` (or the first after it).
    fn record_timestamp(&self, tp: &TopicPartition, offset: i64) -> Result<i64> {
        let mut c = self.cluster.config();
        c.set("group.id", "runnel-timestamp-lookup")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        let reader: BaseConsumer = c.create().map_err(|e| kafka_error("create a Kafka consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
            .map_err(|e| kafka_error("assign", e))?;
        reader.assign(&tpl).map_err(|e| kafka_error("assign", e))?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        while Instant::now() < deadline {
            match reader.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => return Ok(m.timestamp().to_millis().unwrap_or(-1)),
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                _ => {}
            }
        }
        Ok(-1)
    }

    pub(crate) fn beginning_offsets(&self, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list_offsets(tps, Offset::Beginning, "beginning offsets")
    }

    pub(crate) fn end_offsets(&self, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list_offsets(tps, Offset::End, "end offsets")
    }

    /// The first (`Offset::Beginning`) or end (`Offset::End`) offsets of
    /// `tps` in one ListOffsets request per partition leader (librdkafka's
    /// `offsets_for_times` with Kafka's special timestamps -2 and -1),
    /// where asking each partition's watermarks took a round trip apiece.
    fn list_offsets(
        &self,
        tps: &[TopicPartition],
        which: Offset,
        what: &str,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        if tps.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut tpl = TopicPartitionList::new();
        for tp in tps {
            tpl.add_partition_offset(&tp.topic, tp.partition, which).map_err(|e| kafka_error(what, e))?;
        }
        let found = self.c()?.offsets_for_times(tpl, REQUEST_TIMEOUT).map_err(|e| kafka_error(what, e))?;
        tps.iter()
            .map(|tp| {
                let entry = found.find_partition(&tp.topic, tp.partition).ok_or_else(|| {
                    Error::kafka(format!("{what} of {tp}"), "the broker did not answer for it", true)
                })?;
                entry.error().map_err(|e| kafka_error(&format!("{what} of {tp}"), e))?;
                match entry.offset() {
                    Offset::Offset(offset) => Ok((tp.clone(), offset)),
                    other => Err(Error::kafka(
                        format!("{what} of {tp}"),
                        format!("the broker answered {other:?}, not an offset"),
                        false,
                    )),
                }
            })
            .collect()
    }

    /// The high watermark of the last fetch of `tp` minus the position
    /// (records fetched but not yet returned count as lag); no request.
    pub(crate) fn fetch_lag(&self, tp: &TopicPartition) -> Option<i64> {
        let c = self.c().ok()?;
        let topic = std::ffi::CString::new(tp.topic.as_str()).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client pointer is valid while `c` lives, `topic` is
        // a NUL-terminated string that outlives the call, and librdkafka
        // only writes the two offsets (from its cache; no request).
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                c.client().native_ptr(),
                topic.as_ptr(),
                tp.partition,
                &mut low,
                &mut high,
            )
        };
        if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || high < 0 {
            return None;
        }
        let positions = c.position().ok()?;
        if let Some(Offset::Offset(position)) =
            positions.find_partition(&tp.topic, tp.partition).map(|e| e.offset())
        {
            return Some((high - position).max(0));
        }
        // No record returned since the assignment: an empty partition has
        // nothing to fetch; else where assign or a seek started it.
        if low >= high {
            return Some(0);
        }
        match self.starts.get(tp) {
            Some(Offset::Offset(start)) => Some((high - start).max(0)),
            Some(Offset::Beginning) => Some(high - low),
            Some(Offset::End) => Some(0),
            _ => None,
        }
    }

    pub(crate) fn pause(&mut self, tps: &[TopicPartition]) -> Result<()> {
        self.check_assigned(tps)?;
        self.c()?.pause(&tpl_of(tps)).map_err(|e| kafka_error("pause", e))?;
        self.paused.extend(tps.iter().cloned());
        Ok(())
    }

    pub(crate) fn resume(&mut self, tps: &[TopicPartition]) -> Result<()> {
        self.check_assigned(tps)?;
        self.c()?.resume(&tpl_of(tps)).map_err(|e| kafka_error("resume", e))?;
        for tp in tps {
            self.paused.remove(tp);
        }
        Ok(())
    }

    pub(crate) fn paused(&self) -> Vec<TopicPartition> {
        self.paused.iter().cloned().collect()
    }

    pub(crate) async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let c = self.c()?.clone();
        let max = self.config.max_poll_records;
        let reset_none = self.config.auto_offset_reset == OffsetReset::None;
        let group = self.config.group_id.clone();
        let offered = librdkafka_strategies(&self.config.assignment_strategies);
        blocking(move || {
            let start = Instant::now();
            let deadline = start.checked_add(timeout);
            let mut topics: HashMap<String, Arc<str>> = HashMap::new();
            let mut out = Vec::new();
            loop {
                if let Some((code, reason)) = c.context().group_error.lock().expect("error lock").take() {
                    return Err(match code {
                        RDKafkaErrorCode::InconsistentGroupProtocol => Error::InconsistentGroupProtocol {
                            group: group.clone().unwrap_or_default(),
                            offered: offered.clone(),
                        },
                        code => super::librdkafka_error("join group", code, Some(&reason)),
                    });
                }
                // Wait in slices of at most 100 ms so a group error reported
                // on the side is noticed.
                let wait = if out.is_empty() {
                    deadline
                        .map_or(Duration::from_millis(100), |d| d.saturating_duration_since(Instant::now()))
                        .min(Duration::from_millis(100))
                } else {
                    Duration::ZERO
                };
                match c.poll(wait) {
                    None => {
                        if !out.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                    }
                    Some(Ok(m)) => {
                        let topic = match topics.get(m.topic()) {
                            Some(t) => t.clone(),
                            None => topics
                                .entry(m.topic().to_string())
                                .or_insert_with(|| Arc::from(m.topic()))
                                .clone(),
                        };
                        let (timestamp, timestamp_type) = match m.timestamp() {
                            rdkafka::Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
                            rdkafka::Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
                            rdkafka::Timestamp::NotAvailable => (-1, TimestampType::CreateTime),
                        };
                        let headers = m
                            .headers()
                            .map(|hs| {
                                hs.iter()
                                    .map(|h| Header {
                                        key: h.key.to_string(),
                                        value: h.value.map(Bytes::copy_from_slice),
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        out.push(ConsumerRecord {
                            topic,
                            partition: m.partition(),
                            offset: m.offset(),
                            timestamp,
                            timestamp_type,
                            key: m.key().map(Bytes::copy_from_slice),
                            value: m.payload().map(Bytes::copy_from_slice),
                            headers,
                        });
                        if out.len() >= max {
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        if reset_none
                            && e.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset)
                            && out.is_empty()
                        {
                            // librdkafka does not say which partition had no
                            // offset: name the first assigned one without a position.
                            let missing = c.position().ok().and_then(|positions| {
                                positions
                                    .elements()
                                    .iter()
                                    .find(|e| !matches!(e.offset(), Offset::Offset(_)))
                                    .map(|e| TopicPartition::new(e.topic(), e.partition()))
                            });
                            return Err(match missing {
                                Some(tp) => Error::NoOffset(tp),
                                None => {
                                    kafka_error("poll: no committed offset and auto.offset.reset=none", e)
                                }
                            });
                        }
                        match e.rdkafka_error_code() {
                            Some(RDKafkaErrorCode::InconsistentGroupProtocol) => {
                                return Err(Error::InconsistentGroupProtocol {
                                    group: group.clone().unwrap_or_default(),
                                    offered: offered.clone(),
                                })
                            }
                            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::InvalidSessionTimeout) => {
                                return Err(kafka_error("poll", e))
                            }
                            _ => {}
                        }
                        debug!(error = %e, "consumer poll reported an error");
                        if !out.is_empty() {
                            break;
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn commit_sync(&mut self) -> Result<()> {
        let group = self.group("commit")?.to_string();
        let c = self.c()?.clone();
        blocking(move || match c.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => Ok(()),
            Err(e) if is_nothing_to_commit(&e) => Ok(()),
            Err(e) => Err(commit_error(&group, e)),
        })
        .await
    }

    pub(crate) async fn commit_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let group = self.group("commit")?.to_string();
        let c = self.c()?.clone();
        let mut tpl = TopicPartitionList::new();
        for (tp, &o) in offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(o))
                .map_err(|e| kafka_error("commit", e))?;
        }
        blocking(move || c.commit(&tpl, CommitMode::Sync).map_err(|e| commit_error(&group, e))).await
    }

    pub(crate) async fn commit_offsets_with_metadata(
        &mut self,
        offsets: &BTreeMap<TopicPartition, (i64, String)>,
    ) -> Result<()> {
        let group = self.group("commit")?.to_string();
        let c = self.c()?.clone();
        let mut tpl = TopicPartitionList::new();
        for (tp, (o, metadata)) in offsets {
            let mut elem = tpl.add_partition(&tp.topic, tp.partition);
            elem.set_offset(Offset::Offset(*o)).map_err(|e| kafka_error("commit", e))?;
            elem.set_metadata(metadata.clone());
        }
        blocking(move || c.commit(&tpl, CommitMode::Sync).map_err(|e| commit_error(&group, e))).await
    }

    pub(crate) fn commit_async(&mut self, callback: impl FnOnce(Result<()>) + Send + 'static) {
        let prepared = self.group("commit").map(str::to_string).and_then(|g| Ok((g, self.c()?.clone())));
        tokio::spawn(async move {
            let result = match prepared {
                Err(e) => Err(e),
                Ok((group, c)) => {
                    blocking(move || match c.commit_consumer_state(CommitMode::Sync) {
                        Ok(()) => Ok(()),
                        Err(e) if is_nothing_to_commit(&e) => Ok(()),
                        Err(e) => Err(commit_error(&group, e)),
                    })
                    .await
                }
            };
            callback(result)
        });
    }

    pub(crate) fn committed(
        &self,
        tps: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndMetadata>>> {
        self.group("committed")?;
        let found = self
            .c()?
            .committed_offsets(tpl_of(tps), REQUEST_TIMEOUT)
            .map_err(|e| kafka_error("committed", e))?;
        Ok(tps
            .iter()
            .map(|tp| {
                let entry = found.find_partition(&tp.topic, tp.partition);
                let o = entry.as_ref().and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(OffsetAndMetadata {
                        offset: o,
                        metadata: e.metadata().to_string(),
                        commit_timestamp: -1,
                    }),
                    _ => None,
                });
                (tp.clone(), o)
            })
            .collect())
    }

    pub(crate) async fn close(&mut self) -> Result<()> {
        let Some(c) = self.consumer.take() else { return Ok(()) };
        let auto_commit = self.config.enable_auto_commit && self.config.group_id.is_some();
        let closing = blocking(move || {
            if auto_commit {
                if let Err(e) = c.commit_consumer_state(CommitMode::Sync) {
                    if !is_nothing_to_commit(&e) {
                        warn!(error = %e, "final auto-commit on close failed");
                    }
                }
            }
            // Dropping the last reference leaves the group and waits for it.
            drop(c);
            Ok(())
        });
        // librdkafka's close waits for the group to let the member go, which
        // has been seen to wait for ever during a rebalance under load. As
        // Java's `close()`, give up after a bound: the member then leaves
        // the group when its session times out (the closing thread stays
        // blocked in librdkafka).
        match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
            Ok(result) => result,
            Err(_) => {
                warn!(seconds = CLOSE_TIMEOUT.as_secs(), "consumer close did not finish; giving up on it");
                Ok(())
            }
        }
    }

    pub(crate) fn abandon(mut self) {
        // librdkafka has no way to stop heartbeating without leaving the
        // group, so the client is leaked instead: the group drops it once
        // it stops polling for max.poll.interval.ms.
        if let Some(c) = self.consumer.take() {
            std::mem::forget(c);
        }
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        if let Some(c) = self.consumer.take() {
            // Leave the group off the async workers when possible.
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn_blocking(move || drop(c))),
                Err(_) => drop(c),
            }
        }
    }
}
