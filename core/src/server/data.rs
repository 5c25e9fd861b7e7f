//! Metadata, Produce, Fetch, ListOffsets and InitProducerId.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, ProducerId,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, warn};

use super::idempotence::SequenceCheck;
use super::{blocking, Shared};
use crate::broker::is_internal;
use crate::protocol::error_code_for;
use crate::record::{batches, BatchHeader};
use crate::topic::TopicPartition;
use crate::vocabulary::ErrorCode;
use crate::Error;

fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub(super) async fn metadata(shared: &Arc<Shared>, req: MetadataRequest, version: i16) -> MetadataResponse {
    // v0 asks for every topic with an empty list; later versions with null.
    let requested: Option<Vec<String>> = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t.into_iter().filter_map(|t| t.name.map(|n| n.0.to_string())).collect()),
    };
    let auto_create = req.allow_auto_topic_creation || version < 4;
    let topics = blocking(shared, move |s| {
        let broker = s.broker();
        let names = match requested {
            None => broker.list_all_topics(),
            Some(names) => names,
        };
        names
            .into_iter()
            .map(|name| {
                if auto_create && !is_internal(&name) {
                    if let Err(e) = broker.ensure_topic(&name) {
                        debug!(topic = %name, error = %e, "metadata: topic not created");
                    }
                }
                topic_metadata(s, &name)
            })
            .collect::<Vec<_>>()
    })
    .await;
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(shared.node_id))
            .with_host(shared.host.clone())
            .with_port(shared.port)])
        .with_cluster_id(Some(shared.cluster_id.clone()))
        .with_controller_id(BrokerId(shared.node_id))
        .with_topics(topics)
}

fn topic_metadata(shared: &Shared, name: &str) -> MetadataResponseTopic {
    let topic = MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_is_internal(is_internal(name));
    match shared.broker().partition_logs(name) {
        Err(e) => {
            let code = match crate::topic::validate_topic_name(name) {
                Err(_) => ErrorCode::InvalidTopicException.code(),
                Ok(()) => error_code_for(&e).code(),
            };
            topic.with_error_code(code)
        }
        Ok(logs) => topic.with_partitions(
            logs.iter()
                .enumerate()
                .map(|(p, log)| {
                    let node = BrokerId(shared.node_id);
                    let part = MetadataResponsePartition::default()
                        .with_partition_index(p as i32)
                        .with_replica_nodes(vec![node])
                        .with_leader_epoch(0);
                    match log {
                        Ok(_) => part.with_leader_id(node).with_isr_nodes(vec![node]),
                        Err(_) => part
                            .with_error_code(ErrorCode::KafkaStorageError.code())
                            .with_leader_id(BrokerId(-1))
                            .with_offline_replicas(vec![node]),
                    }
                })
                .collect(),
        ),
    }
}

/// One partition's share of a produce request.
struct PartitionWrite {
    topic: String,
    partition: i32,
    records: Option<Bytes>,
}

/// What came of one partition's write.
struct PartitionResult {
    code: i16,
    message: Option<String>,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
}

impl PartitionResult {
    fn error(code: i16, message: String) -> Self {
        PartitionResult {
            code,
            message: Some(message),
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
        }
    }
}

pub(super) async fn produce(shared: &Arc<Shared>, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    if req.transactional_id.is_some() {
        warn!("transactional produce refused: transactions are not supported");
    }
    let transactional = req.transactional_id.is_some();
    let writes: Vec<Vec<PartitionWrite>> = req
        .topic_data
        .into_iter()
        .map(|t| {
            let topic = t.name.0.to_string();
            t.partition_data
                .into_iter()
                .map(|p| PartitionWrite { topic: topic.clone(), partition: p.index, records: p.records })
                .collect()
        })
        .collect();
    // Appends run inline: a write to the page cache takes microseconds, and a
    // hop to the blocking pool per request cost more than the append itself
    // (it capped a connection at ~20k produce requests/s). Logs configured
    // to fsync per append (flush.messages=1) block this worker while they do.
    let results = {
        writes
            .into_iter()
            .map(|topic| {
                topic
                    .into_iter()
                    .map(|w| {
                        let r = if transactional {
                            PartitionResult::error(
                                ErrorCode::InvalidRequest.code(),
                                "transactions are not supported by this broker".into(),
                            )
                        } else {
                            write_partition(shared, &w)
                        };
                        (w, r)
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    if acks == 0 {
        return None;
    }
    Some(
        ProduceResponse::default().with_responses(
            results
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(|t| {
                    let name = topic_name(&t[0].0.topic);
                    TopicProduceResponse::default().with_name(name).with_partition_responses(
                        t.into_iter()
                            .map(|(w, r)| {
                                PartitionProduceResponse::default()
                                    .with_index(w.partition)
                                    .with_error_code(r.code)
                                    .with_error_message(r.message.map(StrBytes::from_string))
                                    .with_base_offset(r.base_offset)
                                    .with_log_append_time_ms(r.log_append_time)
                                    .with_log_start_offset(r.log_start_offset)
                            })
                            .collect(),
                    )
                })
                .collect(),
        ),
    )
}

fn write_partition(shared: &Shared, w: &PartitionWrite) -> PartitionResult {
    let broker = shared.broker();
    let fail = |e: Error| PartitionResult::error(error_code_for(&e).code(), e.to_string());
    if is_internal(&w.topic) {
        return PartitionResult::error(
            ErrorCode::InvalidTopicException.code(),
            format!("cannot produce to internal topic {}", w.topic),
        );
    }
    if let Err(e) = broker.ensure_topic(&w.topic) {
        return fail(e);
    }
    let log = match broker.log(&w.topic, w.partition) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let Some(records) = w.records.as_ref().filter(|r| !r.is_empty()) else {
        return PartitionResult::error(
            ErrorCode::InvalidRecord.code(),
            "produce request without records".into(),
        );
    };
    // Produce v3+ carries exactly one batch per partition (Kafka's rule).
    let header = match BatchHeader::parse(records) {
        Ok(h) => h,
        Err(e) => {
            return PartitionResult::error(ErrorCode::CorruptMessage.code(), format!("record batch: {e}"))
        }
    };
    if header.total_len() != records.len() {
        let count = batches(records).count();
        return PartitionResult::error(
            ErrorCode::InvalidRecord.code(),
            format!("expected exactly one record batch per partition, got {count} ({} bytes)", records.len()),
        );
    }
    if header.is_transactional() || header.is_control() {
        return PartitionResult::error(
            ErrorCode::InvalidRecord.code(),
            "transactional and control batches are not accepted (transactions are not supported)".into(),
        );
    }
    let mut buf = records.to_vec();
    let tp = TopicPartition::new(&w.topic, w.partition);
    let append = |buf: &mut Vec<u8>| match log.append(buf) {
        Ok(info) => {
            shared.metrics.bytes_in(&w.topic, buf.len(), info.record_count);
            Ok(PartitionResult {
                code: ErrorCode::None.code(),
                message: None,
                base_offset: info.first_offset,
                log_append_time: info.log_append_time.unwrap_or(-1),
                log_start_offset: info.log_start_offset,
            })
        }
        Err(e) => Err(e),
    };
    if header.producer_id < 0 {
        return append(&mut buf).unwrap_or_else(fail);
    }
    let state = shared.producers.partition(&tp);
    let mut state = state.lock().expect("producer state lock");
    match state.check(header.producer_id, header.producer_epoch, header.base_sequence) {
        SequenceCheck::Append => match append(&mut buf) {
            Ok(r) => {
                state.record(
                    header.producer_id,
                    header.producer_epoch,
                    header.base_sequence,
                    header.records_count,
                    r.base_offset,
                );
                r
            }
            Err(e) => fail(e),
        },
        SequenceCheck::Duplicate { base_offset } => {
            debug!(partition = %tp, producer = header.producer_id, seq = header.base_sequence, "duplicate batch dropped");
            PartitionResult {
                code: ErrorCode::None.code(),
                message: None,
                base_offset,
                log_append_time: -1,
                log_start_offset: log.log_start_offset(),
            }
        }
        SequenceCheck::OutOfOrder { expected } => PartitionResult::error(
            ErrorCode::OutOfOrderSequenceNumber.code(),
            format!(
                "producer {} epoch {}: sequence {} out of order for {tp}, expected {expected}",
                header.producer_id, header.producer_epoch, header.base_sequence
            ),
        ),
        SequenceCheck::Fenced { current } => PartitionResult::error(
            ErrorCode::InvalidProducerEpoch.code(),
            format!(
                "producer {} epoch {} is fenced by epoch {current} on {tp}",
                header.producer_id, header.producer_epoch
            ),
        ),
    }
}

pub(super) async fn init_producer_id(
    shared: &Arc<Shared>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default();
    if req.transactional_id.is_some() {
        warn!("InitProducerId with a transactional.id refused: transactions are not supported");
        return resp
            .with_error_code(ErrorCode::InvalidRequest.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    // KIP-360: a producer may ask to bump its epoch after a fatal error.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return resp.with_producer_id(req.producer_id).with_producer_epoch(req.producer_epoch + 1);
    }
    match blocking(shared, |s| s.producer_ids.allocate()).await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "cannot allocate a producer id");
            resp.with_error_code(error_code_for(&e).code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}

struct FetchSlot {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// Looked up once per request; the error code if there is no such log.
    log: Result<Arc<crate::log::Log>, i16>,
}

pub(super) async fn fetch(shared: &Arc<Shared>, req: FetchRequest) -> FetchResponse {
    let slots: Vec<FetchSlot> = req
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.topic.0.to_string();
            t.partitions.iter().map(move |p| FetchSlot {
                log: shared.broker().log(&topic, p.partition).map_err(|e| error_code_for(&e).code()),
                topic: topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
            })
        })
        .collect();
    let max_bytes = if req.max_bytes <= 0 { usize::MAX } else { req.max_bytes as usize };
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // Subscribe before the first read so no append in between is missed.
    let mut watches: Vec<tokio::sync::watch::Receiver<i64>> =
        slots.iter().filter_map(|s| s.log.as_ref().ok().map(|l| l.watch_end_offset())).collect();
    let mut shutdown = shared.shutdown.clone();
    loop {
        for w in &mut watches {
            w.borrow_and_update();
        }
        let (results, total) = read_all(&slots, max_bytes);
        let any_error = results.iter().any(|r| r.error_code != ErrorCode::None.code());
        if total >= min_bytes || any_error || tokio::time::Instant::now() >= deadline || watches.is_empty() {
            return finish_fetch(shared, &slots, results);
        }
        let changed = futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = super::stopped(&mut shutdown) => return finish_fetch(shared, &slots, results),
            (r, _, _) = changed => {
                if r.is_err() {
                    // A log closed (topic deleted): answer with what we have.
                    return finish_fetch(shared, &slots, results);
                }
            }
        }
    }
}

fn read_all(slots: &[FetchSlot], max_bytes: usize) -> (Vec<PartitionData>, usize) {
    let mut total = 0usize;
    let results = slots
        .iter()
        .map(|s| {
            let part = PartitionData::default().with_partition_index(s.partition);
            let log = match &s.log {
                Ok(l) => l,
                Err(code) => return part.with_error_code(*code).with_high_watermark(-1),
            };
            let budget = s.max_bytes.min(max_bytes.saturating_sub(total));
            if budget == 0 && total > 0 {
                let end = log.log_end_offset();
                return part
                    .with_high_watermark(end)
                    .with_last_stable_offset(end)
                    .with_log_start_offset(log.log_start_offset())
                    .with_records(Some(Bytes::new()));
            }
            match log.read(s.offset, budget.max(1)) {
                Ok(f) => {
                    total += f.bytes.len();
                    part.with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.high_watermark)
                        .with_log_start_offset(f.log_start_offset)
                        .with_records(Some(Bytes::from(f.bytes)))
                }
                Err(e) => {
                    if !matches!(e, Error::OffsetOutOfRange { .. }) {
                        warn!(topic = %s.topic, partition = s.partition, error = %e, "fetch failed");
                    }
                    part.with_error_code(error_code_for(&e).code())
                        .with_high_watermark(log.log_end_offset())
                        .with_last_stable_offset(log.log_end_offset())
                        .with_log_start_offset(log.log_start_offset())
                }
            }
        })
        .collect();
    (results, total)
}

fn finish_fetch(shared: &Shared, slots: &[FetchSlot], results: Vec<PartitionData>) -> FetchResponse {
    for (slot, r) in slots.iter().zip(&results) {
        if let Some(records) = r.records.as_ref().filter(|r| !r.is_empty()) {
            let n = batches(records).filter_map(|b| b.ok()).map(|b| b.header().records_count as u64).sum();
            shared.metrics.bytes_out(&slot.topic, records.len(), n);
        }
    }
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (slot, data) in slots.iter().zip(results) {
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == slot.topic => t.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(topic_name(&slot.topic))
                    .with_partitions(vec![data]),
            ),
        }
    }
    FetchResponse::default().with_responses(topics)
}

pub(super) fn list_offsets(
    shared: &Arc<Shared>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    // leader_epoch exists from v4 on.
    let epoch = if version >= 4 { 0 } else { -1 };
    let broker = shared.broker();
    ListOffsetsResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                let topic = t.name.0.to_string();
                ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            let resp = ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_leader_epoch(epoch);
                            let log = match broker.log(&topic, p.partition_index) {
                                Ok(l) => l,
                                Err(e) => {
                                    return resp
                                        .with_error_code(error_code_for(&e).code())
                                        .with_offset(-1)
                                        .with_timestamp(-1)
                                }
                            };
                            let found = match p.timestamp {
                                -1 => Ok(Some((log.log_end_offset(), -1))),
                                -2 | -4 => Ok(Some((log.log_start_offset(), -1))),
                                -3 => max_timestamp(&log),
                                ts if ts >= 0 => log.offset_for_timestamp(ts),
                                _ => Ok(None),
                            };
                            match found {
                                Ok(Some((offset, ts))) => resp.with_offset(offset).with_timestamp(ts),
                                Ok(None) => resp.with_offset(-1).with_timestamp(-1),
                                Err(e) => resp
                                    .with_error_code(error_code_for(&e).code())
                                    .with_offset(-1)
                                    .with_timestamp(-1),
                            }
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

/// The record with the largest timestamp (ListOffsets' MAX_TIMESTAMP, -3).
fn max_timestamp(log: &crate::log::Log) -> crate::Result<Option<(i64, i64)>> {
    let max = log.segments().iter().map(|s| s.max_timestamp).max().unwrap_or(-1);
    if max < 0 {
        return Ok(None);
    }
    log.offset_for_timestamp(max)
}
