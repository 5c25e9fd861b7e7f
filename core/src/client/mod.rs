//! The client API users, Streams and Connect share: [`Cluster`],
//! [`Producer`], [`Consumer`] and [`Admin`].
//!
//! A cluster is named by a URL. `file:<dir>` opens the embedded cluster: a
//! [`Broker`](crate::broker::Broker) in this process owning that data
//! directory. `kafka://host:port[,host:port]` reaches a Kafka-compatible
//! cluster (`runnel broker`, Apache Kafka, Redpanda) through librdkafka;
//! callers do not change, because every client is an enum over the two
//! backends behind the same methods. The client test suites run on both
//! backends (`RUNNEL_TEST_BACKEND=kafka` in `scripts/test`, against
//! `runnel broker`); against Apache Kafka or Redpanda `kafka://` is not
//! tested here, as neither runs on the CI machine.
//!
//! Config keys follow the Java client (`acks`, `linger.ms`, `batch.size`,
//! `group.id`, `auto.offset.reset`, ...), see [`ProducerConfig`] and
//! [`ConsumerConfig`].

mod admin;
mod answers;
mod config;
mod consumer;
pub(crate) mod embedded;
pub(crate) mod kafka;
mod listener;
mod membership;
mod producer;
mod record;

use std::path::PathBuf;
use std::sync::Arc;

pub use crate::record::{murmur2, partition_for_key};
pub use crate::vocabulary::{OffsetAndMetadata, TopicPartition};
pub use admin::Admin;
pub use answers::{
    GroupDescription, GroupListing, GroupMember, OffsetAndTimestamp, OffsetSpec, PartitionLag,
};
pub use config::{Acks, AssignmentStrategy, ConsumerConfig, OffsetReset, ProducerConfig};
pub use consumer::Consumer;
pub use listener::RebalanceListener;
pub use membership::{GroupMembership, Joined, MembershipConfig, MembershipEvent};
pub use producer::{Delivery, Producer};
pub use record::{ConsumerRecord, ProducerRecord, RecordMetadata};

use crate::broker::{Broker, BrokerConfig, BrokerHandle};
use crate::{Error, Result};
use embedded::EmbeddedCluster;

/// Where a cluster lives, parsed from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterUrl {
    /// `file:<data dir>`: the embedded cluster.
    File(PathBuf),
    /// `kafka://host:port[,host:port...]`: a Kafka-compatible cluster.
    Kafka(Vec<String>),
}

impl std::str::FromStr for ClusterUrl {
    type Err = Error;

    /// ```
    /// use runnel_core::client::ClusterUrl;
    /// assert_eq!("file:./data".parse::<ClusterUrl>()?, ClusterUrl::File("./data".into()));
    /// assert_eq!(
    ///     "kafka://a:9092,b:9092".parse::<ClusterUrl>()?,
    ///     ClusterUrl::Kafka(vec!["a:9092".into(), "b:9092".into()])
    /// );
    /// # Ok::<(), runnel_core::Error>(())
    /// ```
    fn from_str(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
        if let Some(path) = url.strip_prefix("file:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(invalid("no directory after file:"));
            }
            return Ok(ClusterUrl::File(PathBuf::from(path)));
        }
        if let Some(hosts) = url.strip_prefix("kafka://") {
            let hosts: Vec<String> =
                hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect();
            if hosts.is_empty() {
                return Err(invalid("no host:port after kafka://"));
            }
            if let Some(bad) =
                hosts.iter().find(|h| h.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err()))
            {
                return Err(invalid(&format!("'{bad}' is not host:port")));
            }
            return Ok(ClusterUrl::Kafka(hosts));
        }
        Err(invalid("expected file:<data dir> or kafka://host:port"))
    }
}

#[derive(Debug, Clone)]
enum Backend {
    Embedded(Arc<EmbeddedCluster>),
    Kafka(Arc<kafka::KafkaCluster>),
}

/// A handle to a cluster; clone it freely. Creates producers, consumers
/// and admin clients that all talk to the same cluster.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use runnel_core::client::{Cluster, ProducerConfig, ProducerRecord};
/// let dir = tempfile::tempdir()?;
/// let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await?;
/// let producer = cluster.producer(ProducerConfig::default())?;
/// producer.send(ProducerRecord::new("events").value("hi")).await?;
/// cluster.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Cluster {
    backend: Backend,
}

impl Cluster {
    /// Opens the cluster named by `url` with default broker settings.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`]; for `file:`, whatever opening the data
    /// directory reports (e.g. [`Error::DataDirLocked`]).
    pub async fn open(url: &str) -> Result<Cluster> {
        Self::open_with(url, BrokerConfig::default()).await
    }

    /// Opens the cluster named by `url`; `config` applies to an embedded one.
    ///
    /// # Errors
    /// As [`Cluster::open`].
    pub async fn open_with(url: &str, config: BrokerConfig) -> Result<Cluster> {
        match url.parse::<ClusterUrl>()? {
            ClusterUrl::File(dir) => {
                let broker = tokio::task::spawn_blocking(move || Broker::open(dir, config))
                    .await
                    .map_err(|e| Error::Closed(format!("broker open task ({e})")))??;
                Ok(Cluster::embedded(broker))
            }
            ClusterUrl::Kafka(hosts) => {
                Ok(Cluster { backend: Backend::Kafka(Arc::new(kafka::KafkaCluster::connect(&hosts).await?)) })
            }
        }
    }

    /// Wraps an already open embedded broker.
    pub fn embedded(broker: Broker) -> Cluster {
        Cluster { backend: Backend::Embedded(Arc::new(EmbeddedCluster::new(broker))) }
    }

    /// The bootstrap servers of a `kafka://` cluster (empty when embedded).
    pub fn bootstrap_servers(&self) -> Vec<String> {
        match &self.backend {
            Backend::Embedded(_) => Vec::new(),
            Backend::Kafka(k) => k.bootstrap_servers(),
        }
    }

    /// The embedded broker, if this cluster is embedded.
    pub fn broker(&self) -> Option<&Broker> {
        match &self.backend {
            Backend::Embedded(e) => Some(e.broker()),
            Backend::Kafka(_) => None,
        }
    }

    /// A new producer.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for inconsistent settings.
    pub fn producer(&self, config: ProducerConfig) -> Result<Producer> {
        match &self.backend {
            Backend::Embedded(e) => Producer::embedded(e.clone(), config),
            Backend::Kafka(k) => Producer::kafka(k.clone(), config),
        }
    }

    /// An admin client.
    pub fn admin(&self) -> Admin {
        match &self.backend {
            Backend::Embedded(e) => Admin::embedded(e.clone()),
            Backend::Kafka(k) => Admin::kafka(kafka::admin::KafkaAdmin::new(k.clone())),
        }
    }

    /// A new consumer.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for inconsistent settings.
    pub fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        match &self.backend {
            Backend::Embedded(e) => Consumer::embedded(e.clone(), config),
            Backend::Kafka(k) => Consumer::kafka(k, config),
        }
    }

    /// Closes an embedded cluster cleanly (every log fsynced and marked
    /// clean). Clients still open fail from then on.
    ///
    /// # Errors
    /// The first log that failed to close.
    pub async fn close(&self) -> Result<()> {
        match &self.backend {
            Backend::Embedded(e) => {
                let e = e.clone();
                tokio::task::spawn_blocking(move || e.broker().close())
                    .await
                    .map_err(|e| Error::Closed(format!("broker close task ({e})")))?
            }
            // Each client closes its own connections.
            Backend::Kafka(_) => Ok(()),
        }
    }
}

/// An embedded cluster hands its broker to the Kafka-protocol server
/// (`KafkaServer::start(&cluster, ..)`); a `kafka://` cluster has none.
impl BrokerHandle for Cluster {
    fn embedded_broker(&self) -> Option<Arc<Broker>> {
        match &self.backend {
            Backend::Embedded(e) => Some(e.shared_broker()),
            Backend::Kafka(_) => None,
        }
    }
}
