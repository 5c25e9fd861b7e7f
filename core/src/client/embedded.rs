//! The embedded backend: clients talk to a [`Broker`] in this process.

use std::sync::Arc;

use crate::broker::Broker;

/// A broker shared by the clients of one [`super::Cluster`].
#[derive(Debug)]
pub(crate) struct EmbeddedCluster {
    broker: Arc<Broker>,
}

impl EmbeddedCluster {
    pub(crate) fn new(broker: Broker) -> Self {
        EmbeddedCluster { broker: Arc::new(broker) }
    }

    pub(crate) fn broker(&self) -> &Broker {
        &self.broker
    }
}

impl EmbeddedCluster {
    /// The shared handle (the Kafka-protocol server serves it).
    pub(crate) fn shared_broker(&self) -> Arc<Broker> {
        self.broker.clone()
    }
}
