//! The `kafka://` backend: Runnel's client API over librdkafka (through the
//! `rdkafka` crate), for a Runnel broker or any Kafka-compatible cluster.
//!
//! Settings are translated from the Java keys of [`super::ProducerConfig`]
//! and [`super::ConsumerConfig`] to librdkafka's. Keyed records are
//! partitioned with murmur2, as by the Java client and the embedded
//! backend, so a key lands on the same partition whichever backend wrote it.

pub(crate) mod admin;
pub(crate) mod consumer;
pub(crate) mod producer;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::topic::TopicPartition;
use crate::{Error, Result};

/// How long metadata and offset queries wait for the cluster.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A Kafka-compatible cluster reached over the network.
pub(crate) struct KafkaCluster {
    bootstrap: String,
    /// A group-less client for metadata, watermarks and group listings.
    meta: Arc<BaseConsumer>,
    admin: Arc<AdminClient<DefaultClientContext>>,
}

impl std::fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCluster").field("bootstrap", &self.bootstrap).finish()
    }
}

impl KafkaCluster {
    /// Connects (fetching metadata once, so a wrong address fails here with
    /// a clear error rather than on first use).
    /// The bootstrap servers, `host:port` each.
    pub(crate) fn bootstrap_servers(&self) -> Vec<String> {
        self.bootstrap.split(',').map(String::from).collect()
    }

    pub(crate) async fn connect(hosts: &[String]) -> Result<KafkaCluster> {
        let bootstrap = hosts.join(",");
        let mut config = base_config(&bootstrap);
        config.set("client.id", "runnel-metadata");
        let meta: BaseConsumer = config.create().map_err(|e| kafka_error("create a Kafka client", e))?;
        let meta = Arc::new(meta);
        let admin: AdminClient<DefaultClientContext> =
            base_config(&bootstrap).create().map_err(|e| kafka_error("create a Kafka admin client", e))?;
        let probe = meta.clone();
        let url = format!("kafka://{bootstrap}");
        blocking(move || {
            probe
                .fetch_metadata(None, Duration::from_secs(10))
                .map(|_| ())
                .map_err(|e| kafka_error(&format!("reach {url}"), e))
        })
        .await?;
        Ok(KafkaCluster { bootstrap, meta, admin: Arc::new(admin) })
    }

    pub(crate) fn config(&self) -> ClientConfig {
        base_config(&self.bootstrap)
    }

    pub(crate) fn meta(&self) -> &Arc<BaseConsumer> {
        &self.meta
    }

    pub(crate) fn admin(&self) -> &Arc<AdminClient<DefaultClientContext>> {
        &self.admin
    }

    /// Partition count of `topic`.
    pub(crate) fn partition_count(&self, topic: &str) -> Result<i32> {
        let md = self
            .meta
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| kafka_error(&format!("fetch metadata of {topic}"), e))?;
        let t = md.topics().first().ok_or_else(|| Error::UnknownTopic(topic.to_string()))?;
        if let Some(code) = t.error() {
            return Err(broker_error(&format!("metadata of {topic}"), code.into(), Some(topic)));
        }
        Ok(t.partitions().len() as i32)
    }
}

fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    // librdkafka logs through its own logger; keep it to real problems.
    c.set("log_level", "3");
    c
}

/// Runs a blocking librdkafka call off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Closed(format!("kafka client task ({e})")))?
}

/// Our error for a librdkafka error during `op`.
pub(crate) fn kafka_error(op: &str, e: KafkaError) -> Error {
    match e.rdkafka_error_code() {
        Some(code) => broker_error(op, code, None),
        None => Error::kafka(op, e.to_string(), false),
    }
}

/// Our error for a broker (or librdkafka) error code during `op`.
pub(crate) fn broker_error(op: &str, code: RDKafkaErrorCode, topic: Option<&str>) -> Error {
    let topic = topic.map(str::to_string);
    match (code, topic) {
        (RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic, Some(t)) => {
            Error::UnknownTopic(t)
        }
        (RDKafkaErrorCode::TopicAlreadyExists, Some(t)) => Error::TopicExists(t),
        (RDKafkaErrorCode::InvalidTopic, Some(t)) => Error::InvalidTopicName {
            name: t,
            reason: "the cluster refused it (an illegal name, or an internal topic)".into(),
        },
        (RDKafkaErrorCode::InvalidPartitions, Some(t)) => {
            Error::InvalidPartitions { topic: t, reason: "refused by the cluster".into() }
        }
        _ => librdkafka_error(op, code, None),
    }
}

/// Our error for librdkafka's `code`: a broker's code (zero or more) keeps
/// its number and Kafka's retriability; librdkafka's own (negative) codes
/// are retriable when the broker could not be reached or did not answer.
pub(crate) fn librdkafka_error(op: &str, code: RDKafkaErrorCode, detail: Option<&str>) -> Error {
    // librdkafka's names, as before (`MessageSizeTooLarge (Broker: ...)`).
    let reason = match detail {
        Some(detail) => format!("{code:?} ({code}): {detail}"),
        None => format!("{code:?} ({code})"),
    };
    match i16::try_from(code as i32) {
        Ok(broker) if broker > 0 => Error::Kafka {
            op: op.to_string(),
            reason,
            code: Some(broker),
            retriable: Error::code_is_retriable(broker),
        },
        _ => {
            let retriable = matches!(
                code,
                RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::MessageTimedOut
            );
            Error::kafka(op, reason, retriable)
        }
    }
}

pub(crate) fn tpl_of(tps: &[TopicPartition]) -> rdkafka::TopicPartitionList {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for tp in tps {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    tpl
}

pub(crate) fn tps_of(tpl: &rdkafka::TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect()
}

#[cfg(test)]
mod error_tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::{broker_error, librdkafka_error};
    use crate::Error;

    #[test]
    fn a_broker_error_keeps_its_code_and_kafkas_retriability() {
        let e = broker_error("commit offsets", RDKafkaErrorCode::NotCoordinator, None);
        assert_eq!(e.kafka_error_code(), Some(16));
        assert!(e.is_retriable(), "NOT_COORDINATOR is retriable in Kafka's protocol");
        assert!(e.to_string().contains("NotCoordinator ("), "librdkafka's name for it: {e}");
        let e = broker_error("join group", RDKafkaErrorCode::GroupAuthorizationFailed, None);
        assert_eq!((e.kafka_error_code(), e.is_retriable()), (Some(30), false));
        let e = Error::kafka_code("heartbeat (group 'g')", 27, None);
        assert_eq!(
            (e.kafka_error_code(), e.is_retriable()),
            (Some(27), false),
            "REBALANCE_IN_PROGRESS: rejoin"
        );
        let e = Error::kafka_code("sync group (group 'g')", 15, None);
        assert!(e.is_retriable() && e.to_string().contains("CoordinatorNotAvailable (15)"), "{e}");
    }

    #[test]
    fn librdkafkas_own_codes_carry_no_broker_code_and_retry_only_when_unreached() {
        let e = librdkafka_error("fetch metadata", RDKafkaErrorCode::BrokerTransportFailure, Some("down"));
        assert_eq!((e.kafka_error_code(), e.is_retriable()), (None, true));
        assert!(e.to_string().ends_with(": down"), "{e}");
        let e = librdkafka_error("create topic", RDKafkaErrorCode::InvalidArgument, None);
        assert_eq!((e.kafka_error_code(), e.is_retriable()), (None, false));
        assert!(!Error::UnknownTopic("t".into()).is_retriable(), "errors of ours are not retriable");
    }
}
