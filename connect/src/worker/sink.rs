//! Runs one sink task: consume as the group `connect-<name>` → converters →
//! transforms → put; every `offset.flush.interval.ms` flush, then commit the
//! offsets through the group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_core::client::{Consumer, ConsumerRecord, RebalanceListener};
use tracing::{info, warn};

use super::errors::{Failure, Stage};
use super::status::State;
use super::{transform_class, TaskRuntime};
use crate::plugin::{
    ErrantRecordReporter, Props, SinkRecord, SinkTask, SinkTaskContext, TaskError, TopicPartition,
};
use crate::record::{ConnectRecord, Header};

/// Partition moves heard inside `poll`, handled after it returns.
#[derive(Default)]
pub(crate) struct Moves {
    assigned: Vec<TopicPartition>,
    revoked: Vec<TopicPartition>,
}

pub(crate) struct MoveListener(pub(crate) Arc<Mutex<Moves>>);

impl RebalanceListener for MoveListener {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).revoked.extend_from_slice(partitions);
    }

    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).assigned.extend_from_slice(partitions);
    }
}

/// The worker's [`ErrantRecordReporter`]: the task's error handler, at
/// stage `TASK_PUT`.
struct WorkerReporter {
    errors: Arc<super::errors::ErrorHandler>,
    /// The connector's class, for the `class.name` header.
    class: String,
}

/// The failure a sink task reported for one record.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RecordRejected(String);

#[async_trait::async_trait]
impl ErrantRecordReporter for WorkerReporter {
    async fn report(&self, record: &SinkRecord, error: &str) -> Result<(), TaskError> {
        let describe =
            || format!("{}-{} offset {}", record.original.topic, record.original.partition, record.offset);
        let failure = Failure::new(Stage::TaskPut, self.class.clone(), &RecordRejected(error.to_string()));
        self.errors.tolerate(failure, record.raw.as_deref(), describe).await
    }
}

pub(crate) struct SinkRunner {
    pub(crate) rt: TaskRuntime,
    pub(crate) task: Box<dyn SinkTask>,
    pub(crate) task_props: Props,
    pub(crate) consumer: Consumer,
    pub(crate) moves: Arc<Mutex<Moves>>,
    pub(crate) flush_interval: Duration,
    pub(crate) dlq: Option<Arc<runnel_core::client::Producer>>,
    /// Next offset to consume per partition, since the last commit or start.
    pub(crate) offsets: BTreeMap<TopicPartition, i64>,
    pub(crate) assigned: BTreeSet<TopicPartition>,
}

impl SinkRunner {
    pub(crate) async fn run(mut self) {
        let (name, id, status) = (self.rt.name.clone(), self.rt.task_id, self.rt.status.clone());
        status.set_task(&name, id, State::Running, None);
        let mut result = self.run_inner().await;
        if result.is_ok() {
            // Stopping cleanly: a last flush and commit.
            result = self.commit().await;
            let assigned: Vec<TopicPartition> = self.assigned.iter().cloned().collect();
            if let Err(e) = self.task.close(&assigned).await {
                warn!(connector = %name, task = id, error = %e, "closing partitions failed");
            }
        }
        self.task.stop().await;
        if result.is_ok() {
            let _ = self.consumer.close().await;
        }
        if let Some(dlq) = &self.dlq {
            let _ = dlq.close().await;
        }
        match result {
            Ok(()) => {
                info!(connector = %name, task = id, "sink task stopped");
                status.set_task(&name, id, State::Stopped, None)
            }
            Err(e) => {
                tracing::error!(connector = %name, task = id, error = %e, "sink task failed");
                status.set_task(&name, id, State::Failed, Some(e.to_string()))
            }
        }
    }

    async fn run_inner(&mut self) -> Result<(), TaskError> {
        let reporter = WorkerReporter {
            errors: Arc::clone(&self.rt.errors),
            class: self.rt.props.get("connector.class").cloned().unwrap_or_default(),
        };
        let context = SinkTaskContext {
            connector: self.rt.name.clone(),
            task_id: self.rt.task_id,
            errant_record_reporter: Some(Arc::new(reporter)),
        };
        self.task.start(&self.task_props, &context).await?;
        let cancel = self.rt.cancel.clone();
        let mut last_flush = Instant::now();
        let mut paused = false;
        loop {
            let want_pause = *self.rt.paused.borrow();
            if want_pause != paused {
                let tps: Vec<TopicPartition> = self.consumer.assignment();
                if want_pause {
                    let _ = self.consumer.pause(&tps);
                    self.rt.status.set_task(&self.rt.name, self.rt.task_id, State::Paused, None);
                } else {
                    let _ = self.consumer.resume(&tps);
                    self.rt.status.set_task(&self.rt.name, self.rt.task_id, State::Running, None);
                }
                paused = want_pause;
            }
            let records = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                r = self.consumer.poll(Duration::from_millis(200)) => {
                    r.map_err(|e| TaskError::fatal(format!("consuming: {e}")))?
                }
            };
            self.handle_moves().await?;
            if paused {
                // Partitions assigned during a rebalance start unpaused.
                let _ = self.consumer.pause(&self.consumer.assignment());
            }
            if !records.is_empty() {
                // Records of one partition share one topic name (`Arc`).
                let same_partition = |a: &ConsumerRecord, b: &ConsumerRecord| {
                    a.partition == b.partition && (Arc::ptr_eq(&a.topic, &b.topic) || a.topic == b.topic)
                };
                let mut topics: Vec<&str> = Vec::new();
                for (n, r) in records.iter().enumerate() {
                    let repeat = n > 0 && Arc::ptr_eq(&records[n - 1].topic, &r.topic);
                    if !repeat && !topics.contains(&&*r.topic) {
                        topics.push(&r.topic);
                    }
                }
                self.rt.topics.record(&self.rt.name, topics.iter().copied());
                let mut batch = Vec::with_capacity(records.len());
                for (n, raw) in records.iter().enumerate() {
                    if let Some(r) = convert(&self.rt, raw).await? {
                        batch.push(r);
                    }
                    // A poll returns each partition's records together: note
                    // the next offset once per partition, at its last record.
                    if records.get(n + 1).is_none_or(|next| !same_partition(next, raw)) {
                        self.offsets.insert(raw.topic_partition(), raw.offset + 1);
                    }
                }
                if !batch.is_empty() {
                    self.put(batch).await?;
                }
            }
            if last_flush.elapsed() >= self.flush_interval {
                self.commit().await?;
                last_flush = Instant::now();
            }
        }
    }

    async fn put(&mut self, batch: Vec<SinkRecord>) -> Result<(), TaskError> {
        if !self.rt.errors.retries_enabled() {
            return self.task.put(batch).await;
        }
        let cancel = self.rt.cancel.clone();
        let mut backoff = self.rt.errors.backoff();
        loop {
            match self.task.put(batch.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if !backoff.retry(Stage::TaskPut, &e, &cancel).await {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Flushes the task and commits what it made durable.
    async fn commit(&mut self) -> Result<(), TaskError> {
        if self.offsets.is_empty() {
            return Ok(());
        }
        self.task.flush(&self.offsets).await?;
        if let Err(e) = self.consumer.commit_offsets(&self.offsets).await {
            // A rebalance moved the partitions: the next owner re-reads from
            // the last commit (the sink has flushed, so nothing is lost).
            warn!(connector = %self.rt.name, task = self.rt.task_id, error = %e, "offset commit failed");
        }
        self.offsets.retain(|tp, _| self.assigned.contains(tp));
        Ok(())
    }

    async fn handle_moves(&mut self) -> Result<(), TaskError> {
        let moves = std::mem::take(&mut *self.moves.lock().unwrap_or_else(|e| e.into_inner()));
        if !moves.revoked.is_empty() {
            let revoked: BTreeMap<TopicPartition, i64> = self
                .offsets
                .iter()
                .filter(|(tp, _)| moves.revoked.contains(tp))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            if !revoked.is_empty() {
                self.task.flush(&revoked).await?;
            }
            self.task.close(&moves.revoked).await?;
            for tp in &moves.revoked {
                self.assigned.remove(tp);
                self.offsets.remove(tp);
            }
        }
        if !moves.assigned.is_empty() {
            self.assigned.extend(moves.assigned.iter().cloned());
            self.task.open(&moves.assigned).await?;
        }
        Ok(())
    }
}

/// Converts and transforms one consumed record; `None` when dropped.
async fn convert(rt: &TaskRuntime, raw: &ConsumerRecord) -> Result<Option<SinkRecord>, TaskError> {
    let topic: &str = &raw.topic;
    let describe = || format!("{}-{} offset {}", raw.topic, raw.partition, raw.offset);
    let key = match rt.key_converter.to_connect(topic, raw.key.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            let f = Failure::new(Stage::KeyConverter, rt.key_class.clone(), &e);
            rt.errors.tolerate(f, Some(raw), describe).await?;
            return Ok(None);
        }
    };
    let value = match rt.value_converter.to_connect(topic, raw.value.as_deref()) {
        Ok(v) => v,
        Err(e) => {
            let f = Failure::new(Stage::ValueConverter, rt.value_class.clone(), &e);
            rt.errors.tolerate(f, Some(raw), describe).await?;
            return Ok(None);
        }
    };
    let record = ConnectRecord {
        topic: topic.to_string(),
        kafka_partition: Some(raw.partition),
        kafka_offset: Some(raw.offset),
        key_schema: key.schema,
        key: key.value,
        value_schema: value.schema,
        value: value.value,
        timestamp: Some(raw.timestamp),
        headers: raw
            .headers
            .iter()
            .map(|h| match &h.value {
                Some(v) => Header::raw(h.key.clone(), v.to_vec()),
                None => Header { key: h.key.clone(), schema: None, value: crate::data::Value::Null },
            })
            .collect(),
    };
    let original = raw.topic_partition();
    let kept = Some(Arc::new(raw.clone()));
    if rt.chain.is_empty() {
        return Ok(Some(SinkRecord { record, original, offset: raw.offset, raw: kept }));
    }
    match rt.chain.apply(record) {
        Ok(Some(record)) => Ok(Some(SinkRecord { record, original, offset: raw.offset, raw: kept })),
        Ok(None) => Ok(None),
        Err(e) => {
            let f = Failure::new(Stage::Transformation, transform_class(&rt.props, &e), &e);
            rt.errors.tolerate(f, Some(raw), describe).await?;
            Ok(None)
        }
    }
}
