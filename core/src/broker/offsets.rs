//! Committed consumer offsets, kept in the compacted internal topic
//! `__consumer_offsets` and cached in memory.
//!
//! Records use Kafka's own layout, so Kafka tooling can read the topic
//! (all integers big-endian, strings as `int16 length + UTF-8`):
//!
//! | part | layout |
//! | ---- | ------ |
//! | key (offset commit, version 1) | `int16 version=1`, `string group`, `string topic`, `int32 partition` |
//! | value (version 3) | `int16 version=3`, `int64 offset`, `int32 leader epoch (-1)`, `string metadata`, `int64 commit timestamp` |
//! | deletion | the key with a null value (a tombstone, removed by compaction) |
//!
//! One commit request is one batch, so it is stored all or nothing. The
//! topic is created on the first commit and replayed when the broker opens.

use std::collections::{BTreeMap, HashMap};

use crate::record::{Compression, RecordBatchBuilder};
use crate::topic::TopicPartition;
pub use crate::vocabulary::OffsetAndMetadata;
use crate::{Error, Result};

/// Name of the internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn get_string(buf: &[u8], pos: &mut usize) -> Option<String> {
    let len = i16::from_be_bytes(buf.get(*pos..*pos + 2)?.try_into().ok()?);
    *pos += 2;
    if len < 0 {
        return Some(String::new());
    }
    let s = std::str::from_utf8(buf.get(*pos..*pos + len as usize)?).ok()?.to_string();
    *pos += len as usize;
    Some(s)
}

fn get<const N: usize>(buf: &[u8], pos: &mut usize) -> Option<[u8; N]> {
    let out = buf.get(*pos..*pos + N)?.try_into().ok()?;
    *pos += N;
    Some(out)
}

pub(crate) fn encode_key(group: &str, tp: &TopicPartition) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + group.len() + tp.topic.len());
    out.extend_from_slice(&1i16.to_be_bytes());
    put_string(&mut out, group);
    put_string(&mut out, &tp.topic);
    out.extend_from_slice(&tp.partition.to_be_bytes());
    out
}

pub(crate) fn encode_value(o: &OffsetAndMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(26 + o.metadata.len());
    out.extend_from_slice(&3i16.to_be_bytes());
    out.extend_from_slice(&o.offset.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes());
    put_string(&mut out, &o.metadata);
    out.extend_from_slice(&o.commit_timestamp.to_be_bytes());
    out
}

/// Decodes an offset-commit key; `None` for other record kinds (group
/// metadata, version 2) or garbage.
pub(crate) fn decode_key(buf: &[u8]) -> Option<(String, TopicPartition)> {
    let mut pos = 0;
    let version = i16::from_be_bytes(get(buf, &mut pos)?);
    if !(0..=1).contains(&version) {
        return None;
    }
    let group = get_string(buf, &mut pos)?;
    let topic = get_string(buf, &mut pos)?;
    let partition = i32::from_be_bytes(get(buf, &mut pos)?);
    Some((group, TopicPartition::new(topic, partition)))
}

/// Decodes offset-commit values of versions 0 to 3; `None` for anything else.
pub(crate) fn decode_value(buf: &[u8]) -> Option<OffsetAndMetadata> {
    let mut pos = 0;
    let version = i16::from_be_bytes(get(buf, &mut pos)?);
    let offset = i64::from_be_bytes(get(buf, &mut pos)?);
    match version {
        3 => {
            let _leader_epoch = i32::from_be_bytes(get(buf, &mut pos)?);
            let metadata = get_string(buf, &mut pos)?;
            let commit_timestamp = i64::from_be_bytes(get(buf, &mut pos)?);
            Some(OffsetAndMetadata { offset, metadata, commit_timestamp })
        }
        0..=2 => {
            let metadata = get_string(buf, &mut pos)?;
            let commit_timestamp = i64::from_be_bytes(get(buf, &mut pos)?);
            Some(OffsetAndMetadata { offset, metadata, commit_timestamp })
        }
        _ => None,
    }
}

/// The in-memory view of `__consumer_offsets`: group → partition → offset.
#[derive(Debug, Default)]
pub(crate) struct OffsetCache {
    groups: HashMap<String, BTreeMap<TopicPartition, OffsetAndMetadata>>,
}

impl OffsetCache {
    /// Applies one stored record (a commit, or a tombstone deleting one).
    pub(crate) fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Some((group, tp)) = decode_key(key) else { return };
        match value.and_then(decode_value) {
            Some(o) => {
                self.groups.entry(group).or_default().insert(tp, o);
            }
            None => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.remove(&tp);
                    if g.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
        }
    }

    pub(crate) fn group(&self, group: &str) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        self.groups.get(group).cloned().unwrap_or_default()
    }

    pub(crate) fn groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.groups.keys().cloned().collect();
        v.sort();
        v
    }
}

/// Encodes a commit (or, with `None` values, a deletion) as one batch.
pub(crate) fn encode_batch(
    group: &str,
    entries: &[(TopicPartition, Option<OffsetAndMetadata>)],
    now: i64,
) -> Result<Vec<u8>> {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for (tp, o) in entries {
        let value = o.as_ref().map(encode_value);
        b.append(now, Some(&encode_key(group, tp)), value.as_deref(), &[]);
    }
    b.build(0).map_err(|e| Error::InvalidBatch {
        partition: TopicPartition::new(OFFSETS_TOPIC, 0),
        position: 0,
        source: e,
    })
}

/// The partition of the offsets topic that holds `group`'s commits.
pub(crate) fn partition_for_group(group: &str, partitions: i32) -> i32 {
    crate::record::partition_for_key(group.as_bytes(), partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip_in_kafkas_layout() {
        let tp = TopicPartition::new("clicks", 7);
        let key = encode_key("dashboards", &tp);
        assert_eq!(&key[..2], &[0, 1], "key version 1");
        assert_eq!(decode_key(&key), Some(("dashboards".to_string(), tp)));
        let o = OffsetAndMetadata { offset: 42, metadata: "m".into(), commit_timestamp: 1_700_000_000_000 };
        let value = encode_value(&o);
        assert_eq!(&value[..2], &[0, 3], "value version 3");
        assert_eq!(decode_value(&value), Some(o));
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), None, "group metadata records are skipped");
        assert_eq!(decode_value(&[0, 3, 1]), None, "truncated values are rejected");
    }

    #[test]
    fn tombstones_delete_and_empty_groups_disappear() {
        let mut cache = OffsetCache::default();
        let tp = TopicPartition::new("t", 0);
        cache.apply(&encode_key("g", &tp), Some(&encode_value(&OffsetAndMetadata::new(5, 1))));
        assert_eq!(cache.group("g")[&tp].offset, 5);
        cache.apply(&encode_key("g", &tp), None);
        assert!(cache.groups().is_empty());
    }
}
