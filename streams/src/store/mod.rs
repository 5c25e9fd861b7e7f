//! State stores: RocksDB key-value stores with a record cache in front and a
//! changelog topic behind.
//!
//! # Layout
//!
//! * One RocksDB instance per task and store, in
//!   `<state.dir>/<application.id>/<task>/<store>` (task `0_1`), with the
//!   task's checkpoint file beside the stores:
//!   `<state.dir>/<application.id>/<task>/.checkpoint` ([`checkpoint`]).
//! * Memory is bounded per process, not per store ([`memory`]): one LRU
//!   block cache of `statestore.memory.max.bytes`, and a write-buffer
//!   manager that charges every store's memtables to it.
//! * Each store has a [`cache::RecordCache`] that merges updates per key
//!   until the task flushes (on commit, or after a record that took a
//!   cache over its share of `statestore.cache.max.bytes`). A flush writes
//!   the latest values to RocksDB in one batch, sends them to the changelog
//!   topic `<application.id>-<store>-changelog` (partition = the task's
//!   partition; a delete is a tombstone) and forwards them downstream.
//!   Plain key-value stores keep flushed and read values in the cache
//!   within its budget, and a stream-stream join's window stores keep their
//!   recent windows ([`window_cache`]), so lookups skip RocksDB.
//! * Processors reach their stores through
//!   [`ProcessorContext`](crate::ProcessorContext) with a
//!   [`state::StoreHandle`] (an index resolved when the task is built) and
//!   [`typed::TypedStore`] for serdes.

pub(crate) mod cache;
pub(crate) mod cache_entry;
pub(crate) mod checkpoint;
pub(crate) mod global;
pub(crate) mod kv;
pub(crate) mod memory;
pub(crate) mod rocks;
pub(crate) mod serde_error;
pub(crate) mod state;
pub(crate) mod window_cache;
pub(crate) mod window_view;

/// A store's keys and values, in key-byte order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A time as 8 key bytes that sort as the times do (negative ones first):
/// the sign bit flipped, big-endian. Buffers and versioned stores order
/// their keys by time with it.
pub(crate) fn ordered_time(time: i64) -> [u8; 8] {
    ((time as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time of [`ordered_time`] bytes (`None` unless 8 bytes).
pub(crate) fn ordered_time_of(bytes: &[u8]) -> Option<i64> {
    let raw = u64::from_be_bytes(bytes.try_into().ok()?);
    Some((raw ^ (1 << 63)) as i64)
}

/// The first key after every key starting with `prefix` (`None`: no end).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Appends `n` as the 4-byte big-endian length the stores' internal
/// layouts put before variable-length parts.
pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

/// The changelog topic of store `store` in application `application_id`.
pub(crate) fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}
