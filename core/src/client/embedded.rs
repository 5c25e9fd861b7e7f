//! The embedded backend: clients talk to a [`Broker`] in this process.

use crate::broker::Broker;

/// A broker shared by the clients of one [`super::Cluster`].
#[derive(Debug)]
pub(crate) struct EmbeddedCluster {
    broker: Broker,
}

impl EmbeddedCluster {
    pub(crate) fn new(broker: Broker) -> Self {
        EmbeddedCluster { broker }
    }

    pub(crate) fn broker(&self) -> &Broker {
        &self.broker
    }
}
