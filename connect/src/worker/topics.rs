//! [`ActiveTopics`]: the topics each connector produced to or consumed
//! from since it was created or its topics were last reset (Kafka's
//! KIP-558, `GET /connectors/{name}/topics`).
//!
//! Tasks report once per batch, not per record: the common case (every
//! topic already known) takes only a read lock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

/// Active topics by connector; shared by the worker and its tasks, cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct ActiveTopics {
    inner: Arc<RwLock<BTreeMap<String, BTreeSet<String>>>>,
}

impl ActiveTopics {
    /// Notes that `connector` used these topics.
    pub(crate) fn record<'a>(&self, connector: &str, topics: impl IntoIterator<Item = &'a str> + Clone) {
        {
            let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
            if let Some(known) = map.get(connector) {
                if topics.clone().into_iter().all(|t| known.contains(t)) {
                    return;
                }
            }
        }
        let mut map = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let known = map.entry(connector.to_string()).or_default();
        for t in topics {
            if !known.contains(t) {
                known.insert(t.to_string());
            }
        }
    }

    /// The topics `connector` used, sorted.
    pub(crate) fn get(&self, connector: &str) -> Vec<String> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.get(connector).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Forgets the topics of `connector`.
    pub(crate) fn reset(&self, connector: &str) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).remove(connector);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_accumulate_per_connector_until_reset() {
        let t = ActiveTopics::default();
        t.record("a", ["x", "y"]);
        t.record("a", ["x"]);
        t.record("b", ["z"]);
        assert_eq!(t.get("a"), ["x", "y"]);
        assert_eq!(t.get("b"), ["z"]);
        t.reset("a");
        assert!(t.get("a").is_empty());
        assert_eq!(t.get("b"), ["z"]);
    }
}
