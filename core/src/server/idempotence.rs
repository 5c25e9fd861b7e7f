//! Idempotent produce: producer ids, and per-partition sequence tracking
//! that drops retried batches and refuses gaps.
//!
//! Producer ids are handed out from blocks reserved in the data directory's
//! `producer-ids` file, so an id is never reused across restarts. Sequence
//! state lives in memory: after a restart a known producer's next batch is
//! accepted whatever its sequence (as Kafka does once a producer's state has
//! expired), and tracking resumes from it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::topic::TopicPartition;
use crate::{Error, Result};

const ID_BLOCK: i64 = 1000;
/// Kafka keeps the last five batches per producer for duplicate detection
/// (and so allows at most five in flight).
const CACHED_BATCHES: usize = 5;

/// Allocates producer ids.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    path: PathBuf,
    /// `(next id, end of the reserved block)`.
    next: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("producer-ids");
        let start = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(|e| Error::Corrupt {
                path: path.clone(),
                position: 0,
                reason: format!("producer id block '{}' is not a number: {e}", s.trim()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io("read", &path)(e)),
        };
        Ok(ProducerIds { path, next: Mutex::new((start, start)) })
    }

    /// A fresh producer id.
    pub(crate) fn allocate(&self) -> Result<i64> {
        let mut next = self.next.lock().expect("producer ids lock");
        if next.0 >= next.1 {
            let end = next.0 + ID_BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, end.to_string()).map_err(Error::io("write", &tmp))?;
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(Error::io("fsync", &tmp))?;
            std::fs::rename(&tmp, &self.path).map_err(Error::io("rename", &self.path))?;
            if let Some(dir) = self.path.parent() {
                crate::log::sync_dir(dir)?;
            }
            next.1 = end;
        }
        let id = next.0;
        next.0 += 1;
        Ok(id)
    }
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// New and in order: append it.
    Append,
    /// A retry of a batch already stored at this base offset.
    Duplicate { base_offset: i64 },
    /// A gap or a reordering: refuse with OUT_OF_ORDER_SEQUENCE_NUMBER.
    OutOfOrder { expected: i32 },
    /// An older epoch of the producer: refuse with INVALID_PRODUCER_EPOCH.
    Fenced { current: i16 },
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    /// `(first sequence, last sequence, base offset)`, newest last.
    batches: VecDeque<(i32, i32, i64)>,
}

/// Sequence state of every idempotent producer writing to one partition.
/// Hold the lock across check and append so the two are one step.
#[derive(Debug, Default)]
pub(crate) struct PartitionProducers {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl PartitionProducers {
    pub(crate) fn check(&self, producer_id: i64, epoch: i16, first_seq: i32) -> SequenceCheck {
        let Some(entry) = self.producers.get(&producer_id) else { return SequenceCheck::Append };
        if epoch < entry.epoch {
            return SequenceCheck::Fenced { current: entry.epoch };
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder { expected: 0 }
            };
        }
        if let Some(&(_, _, base)) = entry.batches.iter().find(|(first, _, _)| *first == first_seq) {
            return SequenceCheck::Duplicate { base_offset: base };
        }
        let expected = entry.batches.back().map_or(first_seq, |&(_, last, _)| next_seq(last));
        if first_seq == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::OutOfOrder { expected }
        }
    }

    /// Records an appended batch.
    pub(crate) fn record(
        &mut self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        records: i32,
        base_offset: i64,
    ) {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        let last = (first_seq as i64 + records as i64 - 1).rem_euclid(i32::MAX as i64 + 1) as i32;
        entry.batches.push_back((first_seq, last, base_offset));
        while entry.batches.len() > CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }
}

/// Per-partition producer state for the whole broker.
#[derive(Debug, Default)]
pub(crate) struct ProducerStates {
    partitions: Mutex<HashMap<TopicPartition, Arc<Mutex<PartitionProducers>>>>,
}

impl ProducerStates {
    pub(crate) fn partition(&self, tp: &TopicPartition) -> Arc<Mutex<PartitionProducers>> {
        self.partitions.lock().expect("producer states lock").entry(tp.clone()).or_default().clone()
    }

    /// Forgets the state of a deleted topic's partitions.
    pub(crate) fn forget_topic(&self, topic: &str) {
        self.partitions.lock().expect("producer states lock").retain(|tp, _| tp.topic != topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_must_follow_on_and_retries_return_the_first_offset() {
        let mut p = PartitionProducers::default();
        assert_eq!(p.check(7, 0, 0), SequenceCheck::Append);
        p.record(7, 0, 0, 10, 100);
        assert_eq!(p.check(7, 0, 0), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(p.check(7, 0, 11), SequenceCheck::OutOfOrder { expected: 10 });
        assert_eq!(p.check(7, 0, 10), SequenceCheck::Append);
        p.record(7, 0, 10, 5, 110);
        for i in 0..CACHED_BATCHES as i32 {
            p.record(7, 0, 15 + i, 1, 115 + i as i64);
        }
        // The oldest cached batches are forgotten; a replay of one is a gap.
        assert_eq!(p.check(7, 0, 0), SequenceCheck::OutOfOrder { expected: 20 });
        assert_eq!(p.check(7, 0, 19), SequenceCheck::Duplicate { base_offset: 119 });
    }

    #[test]
    fn epochs_fence_old_producers_and_restart_sequences() {
        let mut p = PartitionProducers::default();
        p.record(1, 3, 0, 1, 0);
        assert_eq!(p.check(1, 2, 1), SequenceCheck::Fenced { current: 3 });
        assert_eq!(p.check(1, 4, 5), SequenceCheck::OutOfOrder { expected: 0 });
        assert_eq!(p.check(1, 4, 0), SequenceCheck::Append);
        // Other producers are independent.
        assert_eq!(p.check(2, 0, 42), SequenceCheck::Append);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut p = PartitionProducers::default();
        p.record(1, 0, i32::MAX - 1, 2, 0);
        assert_eq!(p.check(1, 0, 0), SequenceCheck::Append);
    }

    #[test]
    fn producer_ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        let a: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
        drop(ids);
        let ids = ProducerIds::open(dir.path()).unwrap();
        let b = ids.allocate().unwrap();
        assert!(a.iter().all(|&x| x < b), "{a:?} then {b}");
        std::fs::write(dir.path().join("producer-ids"), "junk").unwrap();
        let err = ProducerIds::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("producer id block"), "{err}");
    }
}
