//! Per-task input buffers: one queue per input partition, drained in
//! timestamp order (Kafka's `PartitionGroup`).

use std::collections::VecDeque;
use std::sync::Arc;

use runnel_core::client::ConsumerRecord;

/// The buffered records of one task's input partitions.
///
/// A task reading several co-partitioned topics (after `merge`, or a
/// repartition topic beside a user topic) sees their records in timestamp
/// order as far as the buffers allow: [`TaskQueues::pop`] takes the record
/// with the lowest timestamp among the partition heads. Like Kafka with
/// `max.task.idle.ms=0`, it does not wait for an empty partition to fill.
#[derive(Debug, Default)]
pub(crate) struct TaskQueues {
    queues: Vec<PartitionQueue>,
}

#[derive(Debug)]
struct PartitionQueue {
    topic: Arc<str>,
    partition: i32,
    records: VecDeque<ConsumerRecord>,
}

impl TaskQueues {
    /// Appends `record` to its partition's queue.
    pub(crate) fn push(&mut self, record: ConsumerRecord) {
        let at = self.queues.iter().position(|q| {
            q.partition == record.partition
                && (Arc::ptr_eq(&q.topic, &record.topic) || q.topic == record.topic)
        });
        let queue = match at {
            Some(i) => &mut self.queues[i],
            None => {
                self.queues.push(PartitionQueue {
                    topic: Arc::clone(&record.topic),
                    partition: record.partition,
                    records: VecDeque::new(),
                });
                self.queues.last_mut().expect("just pushed")
            }
        };
        queue.records.push_back(record);
    }

    /// The buffered record with the lowest timestamp among partition heads
    /// (the first partition wins a tie).
    pub(crate) fn pop(&mut self) -> Option<(ConsumerRecord, bool)> {
        let mut best: Option<(usize, i64)> = None;
        for (i, q) in self.queues.iter().enumerate() {
            if let Some(head) = q.records.front() {
                if best.is_none_or(|(_, ts)| head.timestamp < ts) {
                    best = Some((i, head.timestamp));
                }
            }
        }
        let queue = &mut self.queues[best?.0].records;
        let record = queue.pop_front()?;
        Some((record, queue.is_empty()))
    }

    /// Records buffered for `topic`-`partition`.
    pub(crate) fn len_of(&self, topic: &str, partition: i32) -> usize {
        self.queues
            .iter()
            .find(|q| q.partition == partition && &*q.topic == topic)
            .map_or(0, |q| q.records.len())
    }

    /// Empties every buffer, returning each partition's oldest buffered
    /// offset.
    pub(crate) fn clear(&mut self) -> Vec<(Arc<str>, i32, i64)> {
        let mut heads = Vec::new();
        for q in &mut self.queues {
            if let Some(head) = q.records.front() {
                heads.push((Arc::clone(&q.topic), q.partition, head.offset));
            }
            q.records.clear();
        }
        heads
    }

    /// Whether nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.iter().all(|q| q.records.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_core::record::TimestampType;

    fn record(topic: &Arc<str>, partition: i32, offset: i64, timestamp: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::clone(topic),
            partition,
            offset,
            timestamp,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn records_of_several_partitions_come_out_in_timestamp_order() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut q = TaskQueues::default();
        for (topic, offset, ts) in [(&a, 0, 10), (&a, 1, 30), (&b, 0, 20), (&b, 1, 40), (&a, 2, 35)] {
            q.push(record(topic, 3, offset, ts));
        }
        assert_eq!(q.len_of("a", 3), 3);
        assert_eq!(q.len_of("b", 3), 2);
        let order: Vec<(String, i64)> =
            std::iter::from_fn(|| q.pop()).map(|(r, _)| (r.topic.to_string(), r.timestamp)).collect();
        let expected = [("a", 10), ("b", 20), ("a", 30), ("a", 35), ("b", 40)];
        assert_eq!(order, expected.map(|(t, ts)| (t.to_string(), ts)));
        assert!(q.is_empty());
    }

    #[test]
    fn offsets_stay_in_order_within_a_partition_even_when_timestamps_go_back() {
        let a: Arc<str> = "a".into();
        let mut q = TaskQueues::default();
        q.push(record(&a, 0, 0, 50));
        q.push(record(&a, 0, 1, 5));
        assert_eq!(q.pop().map(|(r, emptied)| (r.offset, emptied)), Some((0, false)));
        assert_eq!(q.pop().map(|(r, emptied)| (r.offset, emptied)), Some((1, true)));
        assert!(q.pop().is_none());
    }
}
