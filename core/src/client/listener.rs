//! The callback a consumer runs when its group assignment changes; both
//! backends call it.

use crate::topic::TopicPartition;

/// Hears about partitions moving to and from this consumer during
/// rebalances. Callbacks run inside `poll`, before it returns records.
///
/// ```
/// use runnel_core::client::RebalanceListener;
/// use runnel_core::topic::TopicPartition;
///
/// /// Flushes per-partition state when a partition leaves this consumer.
/// struct HandOver;
///
/// impl RebalanceListener for HandOver {
///     fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
///         for tp in partitions {
///             println!("flushing state of {tp} before it moves");
///         }
///     }
///     fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
///         println!("now owning {} more partition(s)", partitions.len());
///     }
/// }
/// # let _ = HandOver;
/// ```
pub trait RebalanceListener: Send {
    /// These partitions are being taken away; commit or hand over their work now.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// These partitions were added to this consumer's assignment.
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        let _ = partitions;
    }

    /// These partitions were lost without a chance to commit (the consumer
    /// was removed from the group). Defaults to `on_partitions_revoked`.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions);
    }
}
