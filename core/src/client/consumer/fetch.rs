//! Per-partition fetch state: the position, and whole batches fetched from
//! the log that later polls decode from, so a poll decodes only the records
//! it returns.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use crate::client::ConsumerRecord;
use crate::log::Log;
use crate::record::{batches, Header, RecordBatch};
use crate::topic::TopicPartition;
use crate::{Error, Result};

/// One assigned partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) log: Arc<Log>,
    pub(crate) end_offset: watch::Receiver<i64>,
    /// Next offset to return; `None` until resolved (committed or reset).
    pub(crate) position: Option<i64>,
    pub(crate) paused: bool,
    /// Batches fetched but not fully returned yet.
    fetched: Option<Bytes>,
}

impl PartitionState {
    pub(crate) fn new(tp: &TopicPartition, log: Arc<Log>) -> Self {
        let end_offset = log.watch_end_offset();
        PartitionState {
            topic: Arc::from(tp.topic.as_str()),
            partition: tp.partition,
            log,
            end_offset,
            position: None,
            paused: false,
            fetched: None,
        }
    }

    /// Moves the position (seek, reset); drops fetched data.
    pub(crate) fn seek(&mut self, offset: i64) {
        self.position = Some(offset);
        self.fetched = None;
    }

    /// Marks the current log end as seen, so a later wait returns only when
    /// more data arrives.
    pub(crate) fn mark_seen(&mut self) {
        self.end_offset.borrow_and_update();
    }

    /// Appends up to `max` records from the position to `out`, fetching up
    /// to `max_bytes` from the log when the buffered batches are used up.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] when the position is no longer in the log
    /// (the caller applies `auto.offset.reset`); [`Error::Corrupt`].
    pub(crate) fn poll_into(
        &mut self,
        out: &mut Vec<ConsumerRecord>,
        max: usize,
        max_bytes: usize,
    ) -> Result<()> {
        let Some(mut position) = self.position else { return Ok(()) };
        if self.paused || max == 0 {
            return Ok(());
        }
        while out.len() < max {
            let buffered = match &self.fetched {
                Some(b) => b.clone(),
                None => {
                    if position >= self.log.log_end_offset() {
                        break;
                    }
                    let fetched = self.log.read(position, max_bytes)?;
                    if fetched.bytes.is_empty() {
                        break;
                    }
                    Bytes::from(fetched.bytes)
                }
            };
            let start = position;
            let exhausted =
                decode_from(&buffered, &self.topic, self.partition, &mut position, out, max).map_err(
                    |reason| Error::Corrupt { path: self.log.dir().to_path_buf(), position: 0, reason },
                )?;
            self.fetched = (!exhausted).then_some(buffered);
            if exhausted && position == start {
                break; // nothing at or after the position in what the log returned
            }
        }
        self.position = Some(position);
        Ok(())
    }
}

/// Decodes records at or after `*position` from `buf` into `out` (at most
/// `max` in total), advancing `*position`. Returns whether every batch in
/// `buf` has been passed.
fn decode_from(
    buf: &Bytes,
    topic: &Arc<str>,
    partition: i32,
    position: &mut i64,
    out: &mut Vec<ConsumerRecord>,
    max: usize,
) -> std::result::Result<bool, String> {
    for batch in batches(buf) {
        let batch: RecordBatch<'_> = batch.map_err(|e| e.to_string())?;
        if batch.last_offset() < *position {
            continue;
        }
        if batch.header().is_control() {
            *position = batch.header().next_offset();
            continue;
        }
        let records = batch.records().map_err(|e| e.to_string())?;
        let shared = batch.header().compression().is_ok_and(|c| c == crate::record::Compression::None);
        for record in records.iter() {
            let r = record.map_err(|e| e.to_string())?;
            if r.offset < *position {
                continue;
            }
            if out.len() >= max {
                return Ok(false);
            }
            // Uncompressed batches are sliced without copying.
            let bytes = |s: &[u8]| if shared { buf.slice_ref(s) } else { Bytes::copy_from_slice(s) };
            out.push(ConsumerRecord {
                topic: topic.clone(),
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                timestamp_type: r.timestamp_type,
                key: r.key.map(bytes),
                value: r.value.map(bytes),
                headers: r
                    .headers()
                    .map(|h| Header { key: h.key.to_string(), value: h.value.map(bytes) })
                    .collect(),
            });
            *position = r.offset + 1;
        }
        // Offsets past the last record (compaction gaps) are skipped too.
        *position = (*position).max(batch.header().next_offset());
    }
    Ok(true)
}
