//! Error handling for a connector's records (Kafka's
//! `RetryWithToleranceOperator` and `DeadLetterQueueReporter`).
//!
//! - Retriable failures ([`TaskError::Retriable`]) are retried with
//!   exponential backoff (300 ms, doubling, capped at
//!   `errors.retry.delay.max.ms`) until `errors.retry.timeout` has passed.
//! - A record that still fails in conversion or a transform, or that a
//!   sink task reports through its `ErrantRecordReporter` (KIP-610, stage
//!   `TASK_PUT`), is, with `errors.tolerance=all`, skipped: logged when
//!   `errors.log.enable`, and for sinks written as it was consumed to the
//!   dead letter queue, with
//!   `__connect.errors.*` headers when
//!   `errors.deadletterqueue.context.headers.enable`. With
//!   `errors.tolerance=none` it fails the task.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use runnel_core::client::{ConsumerRecord, Producer, ProducerRecord};
use runnel_core::record::Header as RawHeader;
use tracing::{error, warn};

use super::config::{ErrorsConfig, Tolerance};
use crate::plugin::TaskError;

/// Where in the pipeline a failure happened (Kafka's `Stage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A source task's `poll`.
    TaskPoll,
    /// A sink task's `put`.
    TaskPut,
    /// Key conversion.
    KeyConverter,
    /// Value conversion.
    ValueConverter,
    /// Header conversion.
    HeaderConverter,
    /// A transform.
    Transformation,
    /// Producing to the cluster.
    KafkaProduce,
    /// Consuming from the cluster.
    KafkaConsume,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::TaskPoll => "TASK_POLL",
            Stage::TaskPut => "TASK_PUT",
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
            Stage::KafkaConsume => "KAFKA_CONSUME",
        })
    }
}

/// A record-level failure: the stage, the class that failed and the error.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) stage: Stage,
    /// The converter's or transform's class.
    pub(crate) class: String,
    /// The Rust type of the error (Kafka's exception class).
    pub(crate) error_type: &'static str,
    /// The error's message.
    pub(crate) message: String,
    /// The error and its sources, one per line (Kafka's stack trace).
    pub(crate) trace: String,
}

impl Failure {
    pub(crate) fn new<E: StdError + 'static>(stage: Stage, class: impl Into<String>, e: &E) -> Failure {
        Failure {
            stage,
            class: class.into(),
            error_type: std::any::type_name::<E>(),
            message: e.to_string(),
            trace: error_chain(e),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error in stage {} ({}): {}", self.stage, self.class, self.message)
    }
}

/// An error and its sources, one per line.
pub(crate) fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str("\ncaused by: ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Applies a connector's `errors.*` settings.
pub(crate) struct ErrorHandler {
    config: ErrorsConfig,
    connector: String,
    task_id: u32,
    dlq: Option<(Arc<Producer>, Arc<str>)>,
}

impl ErrorHandler {
    pub(crate) fn new(config: ErrorsConfig, connector: &str, task_id: u32) -> ErrorHandler {
        ErrorHandler { config, connector: connector.to_string(), task_id, dlq: None }
    }

    /// Sends tolerated sink failures to `topic` through `producer`.
    pub(crate) fn with_dlq(mut self, producer: Arc<Producer>, topic: &str) -> ErrorHandler {
        self.dlq = Some((producer, Arc::from(topic)));
        self
    }

    /// Whether retriable failures are retried at all (`errors.retry.timeout` ≠ 0).
    pub(crate) fn retries_enabled(&self) -> bool {
        self.config.retry_timeout != Some(Duration::ZERO)
    }

    /// A backoff for one operation: retriable failures are retried until
    /// `errors.retry.timeout`.
    pub(crate) fn backoff(&self) -> Backoff<'_> {
        Backoff { handler: self, start: Instant::now(), delay: Duration::from_millis(300) }
    }

    /// Handles a record that failed: `Ok` when tolerated (logged, and sent to
    /// the dead letter queue if there is one and `raw` is given), `Err` with
    /// the failure when it must fail the task.
    pub(crate) async fn tolerate(
        &self,
        failure: Failure,
        raw: Option<&ConsumerRecord>,
        describe: impl FnOnce() -> String,
    ) -> Result<(), TaskError> {
        if self.config.tolerance == Tolerance::None {
            return Err(TaskError::fatal(format!(
                "tolerance exceeded in error handler: {failure}\n{}",
                failure.trace
            )));
        }
        if self.config.log_enable {
            if self.config.log_include_messages {
                error!(connector = %self.connector, task = self.task_id, stage = %failure.stage,
                    class = %failure.class, record = %describe(), "{}", failure.trace);
            } else {
                error!(connector = %self.connector, task = self.task_id, stage = %failure.stage,
                    class = %failure.class, "{}", failure.trace);
            }
        }
        if let (Some((producer, topic)), Some(raw)) = (&self.dlq, raw) {
            let mut record = ProducerRecord::new(topic.clone());
            record.key = raw.key.clone();
            record.value = raw.value.clone();
            record.timestamp = Some(raw.timestamp);
            record.headers = raw.headers.clone();
            if self.config.dlq_context_headers {
                let mut h = |k: &str, v: String| {
                    record
                        .headers
                        .push(RawHeader { key: format!("__connect.errors.{k}"), value: Some(Bytes::from(v)) })
                };
                h("topic", raw.topic.to_string());
                h("partition", raw.partition.to_string());
                h("offset", raw.offset.to_string());
                h("connector.name", self.connector.clone());
                h("task.id", self.task_id.to_string());
                h("stage", failure.stage.to_string());
                h("class.name", failure.class.clone());
                h("exception.class.name", failure.error_type.to_string());
                h("exception.message", failure.message.clone());
                h("exception.stacktrace", failure.trace.clone());
            }
            producer.send(record).await.map_err(|e| {
                TaskError::fatal(format!("writing to the dead letter queue `{topic}` failed: {e}"))
            })?;
        }
        Ok(())
    }
}

/// Exponential backoff for one operation (see [`ErrorHandler::backoff`]).
pub(crate) struct Backoff<'a> {
    handler: &'a ErrorHandler,
    start: Instant,
    delay: Duration,
}

impl Backoff<'_> {
    /// After a failure: `true` when the operation should be tried again
    /// (after this waited), `false` when the failure is final (not
    /// retriable, out of time, or cancelled).
    pub(crate) async fn retry(
        &mut self,
        stage: Stage,
        error: &TaskError,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> bool {
        if !error.is_retriable() || cancel.is_cancelled() {
            return false;
        }
        let config = &self.handler.config;
        let remaining = match config.retry_timeout {
            None => Duration::MAX,
            Some(limit) => limit.saturating_sub(self.start.elapsed()),
        };
        if remaining.is_zero() {
            return false;
        }
        let wait = self.delay.min(config.retry_delay_max).min(remaining);
        if config.log_enable {
            warn!(connector = %self.handler.connector, task = self.handler.task_id, %stage, %error,
                wait_ms = wait.as_millis() as u64, "retrying after a retriable failure");
        }
        self.delay = self.delay.saturating_mul(2);
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = cancel.cancelled() => false,
        }
    }
}
