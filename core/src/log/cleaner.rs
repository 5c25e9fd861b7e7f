//! Retention (deleting old segments) and compaction (keeping the latest
//! record per key), run by the broker's background thread or on demand.
//!
//! Both work only on sealed segments (retention may first roll an expired
//! active segment, as Kafka does) and hold the segment map's lock only to
//! swap results in, so appends and reads carry on while they run.
//!
//! # Compaction
//!
//! 1. The *cleanable* range is the sealed segments, oldest first, up to the
//!    first one whose newest record is younger than `min.compaction.lag.ms`.
//! 2. A pass runs when the bytes written since the last pass are at least
//!    `min.cleanable.dirty.ratio` of the cleanable bytes (or when forced).
//! 3. An offset map from a 128-bit hash of each key to the key's latest offset
//!    is built over the range (at most [`MAX_OFFSET_MAP_KEYS`] keys per pass;
//!    a larger range is cleaned a prefix at a time).
//! 4. Segments are cleaned in groups whose total size fits `segment.bytes`.
//!    A record is kept if it has no key, or it is the latest for its key and
//!    is not a tombstone whose timestamp is older than `delete.retention.ms`.
//!    Batches that keep every record are copied byte for byte; others are
//!    re-encoded with the same codec and base offset, records keeping their
//!    offsets; batches that keep nothing disappear.
//! 5. The group's output is written as `<base>.log.cleaned` with its indexes,
//!    fsynced, and renamed to `<base>.log.swap` — the commit point. Then an
//!    empty `<base>.compacted` file marks it (a compacted segment may have
//!    offset gaps; all others are checked for contiguity). The old
//!    segments' files are then removed and the swap renamed to `<base>.log`.
//!    [`finish_interrupted_cleaning`] completes or discards this at open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use tracing::{debug, info};

use super::segment::{
    file_name, parse_file_name, LogSegment, OpenMode, SegmentIndexes, CLEANED_SUFFIX, COMPACTED_SUFFIX,
    INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::{remove_if_exists, sync_dir, Log};
use crate::record::{RecordBatch, RecordBatchBuilder};
use crate::{Error, Result};

/// Most distinct keys one compaction pass tracks (about 40 MB of map).
pub const MAX_OFFSET_MAP_KEYS: usize = 1 << 20;

/// Per-log cleaner bookkeeping.
#[derive(Debug)]
pub(crate) struct CleanerState {
    /// Offsets below this have been through a compaction pass.
    first_dirty_offset: i64,
}

impl CleanerState {
    pub(crate) fn new(log_start: i64) -> Self {
        CleanerState { first_dirty_offset: log_start }
    }
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes freed.
    pub bytes_deleted: u64,
    /// Log start offset afterwards.
    pub log_start_offset: i64,
}

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Whether a pass ran (it is skipped below the dirty ratio).
    pub ran: bool,
    /// Segments read.
    pub segments_cleaned: usize,
    /// Segments written.
    pub segments_written: usize,
    /// Records read.
    pub records_read: u64,
    /// Records dropped (superseded or expired tombstones).
    pub records_removed: u64,
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
}

/// 128-bit key hash (two keyed SipHash-1-3 runs); a collision would need
/// ~2^64 keys, so equal hashes are treated as equal keys.
#[derive(Debug)]
struct KeyHasher(std::collections::hash_map::RandomState, std::collections::hash_map::RandomState);

impl KeyHasher {
    fn new() -> Self {
        KeyHasher(Default::default(), Default::default())
    }
    fn hash(&self, key: &[u8]) -> u128 {
        let mut a = self.0.build_hasher();
        a.write(key);
        let mut b = self.1.build_hasher();
        b.write(key);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }
}

/// Completes or discards a compaction interrupted by a crash (see the module
/// docs), so the directory holds only whole segments.
pub(crate) fn finish_interrupted_cleaning(dir: &Path) -> Result<()> {
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(CLEANED_SUFFIX) {
            remove_if_exists(&entry.path())?;
        } else if let Some(base) = parse_file_name(&name, &format!("{LOG_SUFFIX}{SWAP_SUFFIX}")) {
            swaps.push(base);
        } else if let Some(base) = parse_file_name(&name, LOG_SUFFIX) {
            logs.push(base);
        }
    }
    for base in swaps {
        let swap = dir.join(file_name(base, &format!("{LOG_SUFFIX}{SWAP_SUFFIX}")));
        let last = last_offset_in(&swap)?;
        info!(path = %swap.display(), "completing interrupted compaction");
        for &old in logs.iter().filter(|&&b| b >= base && b <= last.unwrap_or(base)) {
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, COMPACTED_SUFFIX] {
                if old != base || (suffix != LOG_SUFFIX && suffix != COMPACTED_SUFFIX) {
                    remove_if_exists(&dir.join(file_name(old, suffix)))?;
                }
            }
        }
        // The indexes of the swapped segment are rebuilt at open.
        mark_compacted(dir, base)?;
        let target = dir.join(file_name(base, LOG_SUFFIX));
        std::fs::rename(&swap, &target).map_err(Error::io("rename", &swap))?;
    }
    sync_dir(dir)
}

/// Creates the empty `<base>.compacted` marker, durably.
fn mark_compacted(dir: &Path, base: i64) -> Result<()> {
    let marker = dir.join(file_name(base, COMPACTED_SUFFIX));
    File::create(&marker).and_then(|f| f.sync_all()).map_err(Error::io("create", &marker))?;
    sync_dir(dir)
}

/// Last offset of the last batch in a complete segment file.
fn last_offset_in(path: &Path) -> Result<Option<i64>> {
    let file = File::open(path).map_err(Error::io("open", path))?;
    let size = file.metadata().map_err(Error::io("stat", path))?.len();
    let mut scanner = super::scan::BatchScanner::new(&file, path, 0, size, 1 << 20);
    let mut last = None;
    loop {
        match scanner.next_batch(true)? {
            Ok(Some(b)) => last = Some(b.batch.last_offset()),
            Ok(None) => return Ok(last),
            Err(invalid) => {
                return Err(Error::Corrupt {
                    path: path.to_path_buf(),
                    position: invalid.position,
                    reason: invalid.reason,
                })
            }
        }
    }
}

impl Log {
    /// Deletes whole segments past `retention.ms` (newest record older than
    /// `now − retention.ms`) or beyond `retention.bytes`, oldest first, and
    /// advances the log start offset. An expired active segment is rolled
    /// first. Does nothing unless `cleanup.policy` includes `delete`.
    ///
    /// # Errors
    /// I/O failures.
    pub fn delete_old_segments(&self, now: i64) -> Result<RetentionReport> {
        let _cleaner = self.cleaner.lock().expect("cleaner lock");
        self.wait_for_seals()?;
        let config = self.config();
        let mut report = RetentionReport { log_start_offset: self.log_start_offset(), ..Default::default() };
        if !config.cleanup_policy.delete || self.is_closed() {
            return Ok(report);
        }
        let mut segments = self.segment_snapshot();
        // An empty sealed segment (compaction can leave one) holds nothing to keep.
        let last = segments.len() - 1;
        let expired = |i: usize, s: &LogSegment, ms: i64| {
            (s.size() == 0 && i < last) || (s.size() > 0 && now.saturating_sub(s.max_timestamp()) > ms)
        };
        let mut count = 0;
        if let Some(ms) = config.retention_ms {
            count = segments.iter().enumerate().take_while(|(i, s)| expired(*i, s, ms)).count();
        }
        if count == segments.len() && count > 0 {
            // Everything is expired, the active segment included: roll so it
            // can go too.
            let mut appender = self.lock_appender()?;
            if Arc::ptr_eq(&appender.active, segments.last().expect("non-empty")) {
                self.roll_locked(&mut appender, now)?;
            }
            drop(appender);
            self.wait_for_seals()?;
            segments = self.segment_snapshot();
        }
        let sealed = segments.len() - 1;
        count = count.min(sealed);
        if let Some(limit) = config.retention_bytes {
            let total: u64 = segments[count..].iter().map(|s| s.size()).sum();
            let mut excess = total.saturating_sub(limit);
            while count < sealed && excess >= segments[count].size() {
                excess -= segments[count].size();
                count += 1;
            }
        }
        if count == 0 {
            return Ok(report);
        }
        let doomed = &segments[..count];
        {
            let mut map = self.segments.write().expect("segments lock");
            for s in doomed {
                map.remove(&s.base_offset());
            }
            let start = *map.keys().next().expect("the active segment remains");
            self.log_start_offset.store(start, std::sync::atomic::Ordering::Release);
            report.log_start_offset = start;
        }
        for s in doomed {
            report.bytes_deleted += s.size();
            s.delete_files()?;
        }
        report.segments_deleted = count;
        sync_dir(&self.dir)?;
        info!(
            partition = %self.partition,
            segments = count,
            bytes = report.bytes_deleted,
            log_start_offset = report.log_start_offset,
            "deleted segments by retention"
        );
        Ok(report)
    }

    /// Runs a compaction pass if the log is compacted and dirty enough;
    /// `force` runs it regardless (which also drops tombstones that expired
    /// since the last pass). See the [module docs](self).
    ///
    /// # Errors
    /// I/O failures and [`Error::Corrupt`] for damaged segments (nothing is
    /// changed then).
    pub fn compact(&self, now: i64, force: bool) -> Result<CompactionReport> {
        let mut state = self.cleaner.lock().expect("cleaner lock");
        self.wait_for_seals()?;
        let config = self.config();
        let mut report = CompactionReport::default();
        if !config.cleanup_policy.compact || self.is_closed() {
            return Ok(report);
        }
        let segments = self.segment_snapshot();
        let sealed = &segments[..segments.len() - 1];
        let cleanable: Vec<_> = sealed
            .iter()
            .take_while(|s| {
                s.size() == 0 || now.saturating_sub(s.max_timestamp()) >= config.min_compaction_lag_ms
            })
            .cloned()
            .collect();
        let total: u64 = cleanable.iter().map(|s| s.size()).sum();
        let dirty: u64 =
            cleanable.iter().filter(|s| s.next_offset() > state.first_dirty_offset).map(|s| s.size()).sum();
        let dirty_enough = dirty > 0 && (dirty as f64) >= config.min_cleanable_dirty_ratio * total as f64;
        if total == 0 || !(force || dirty_enough) {
            return Ok(report);
        }

        // Offset map: key hash -> latest offset, over a prefix of the range.
        let hasher = KeyHasher::new();
        let mut latest: HashMap<u128, i64> = HashMap::new();
        let mut mapped = 0;
        for segment in &cleanable {
            segment.for_each_batch(|position, batch| {
                if batch.header().is_control() {
                    return Ok(());
                }
                let records = batch.records().map_err(|e| corrupt(segment, position, e))?;
                for record in records.iter() {
                    let record = record.map_err(|e| corrupt(segment, position, e))?;
                    if let Some(key) = record.key {
                        latest.insert(hasher.hash(key), record.offset);
                    }
                }
                Ok(())
            })?;
            mapped += 1;
            if latest.len() >= MAX_OFFSET_MAP_KEYS {
                break;
            }
        }
        let range = &cleanable[..mapped];

        // Group consecutive segments whose combined size fits one segment.
        let mut groups: Vec<&[Arc<LogSegment>]> = Vec::new();
        let mut start = 0;
        while start < range.len() {
            let mut end = start + 1;
            let mut size = range[start].size();
            while end < range.len()
                && size + range[end].size() <= config.segment_bytes
                && range[end].next_offset() - range[start].base_offset() <= i64::from(i32::MAX)
            {
                size += range[end].size();
                end += 1;
            }
            groups.push(&range[start..end]);
            start = end;
        }
        report.ran = true;
        for group in groups {
            self.clean_group(group, &latest, &hasher, now, &config, &mut report)?;
        }
        state.first_dirty_offset = range.last().map_or(state.first_dirty_offset, |s| s.next_offset());
        info!(
            partition = %self.partition,
            segments = report.segments_cleaned,
            records_removed = report.records_removed,
            bytes_before = report.bytes_before,
            bytes_after = report.bytes_after,
            "compacted log"
        );
        Ok(report)
    }

    fn clean_group(
        &self,
        group: &[Arc<LogSegment>],
        latest: &HashMap<u128, i64>,
        hasher: &KeyHasher,
        now: i64,
        config: &super::LogConfig,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let base = group[0].base_offset();
        let cleaned_path = self.dir.join(file_name(base, &format!("{LOG_SUFFIX}{CLEANED_SUFFIX}")));
        let out = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&cleaned_path)
            .map_err(Error::io("create", &cleaned_path))?;
        let mut indexes = SegmentIndexes::empty(&self.dir, base);
        let mut written = 0u64;
        let mut write_batch = |bytes: &[u8]| -> Result<()> {
            let header = crate::record::BatchHeader::parse(bytes).expect("valid batch");
            out.write_all_at(bytes, written).map_err(Error::io("write", &cleaned_path))?;
            indexes.on_batch(base, written, &header, config.index_interval_bytes);
            written += bytes.len() as u64;
            Ok(())
        };
        for segment in group {
            report.bytes_before += segment.size();
            segment.for_each_batch(|position, batch| {
                let kept = self
                    .filter_batch(batch, latest, hasher, now, config, report)
                    .map_err(|e| corrupt(segment, position, e))?;
                match kept {
                    Kept::All => write_batch(batch.as_bytes()),
                    Kept::None => Ok(()),
                    Kept::Some(bytes) => write_batch(&bytes),
                }
            })?;
        }
        report.bytes_after += written;
        report.segments_cleaned += group.len();
        report.segments_written += 1;
        out.sync_all().map_err(Error::io("fsync", &cleaned_path))?;
        drop(out);
        let index_cleaned = self.dir.join(file_name(base, &format!("{INDEX_SUFFIX}{CLEANED_SUFFIX}")));
        let time_cleaned = self.dir.join(file_name(base, &format!("{TIME_INDEX_SUFFIX}{CLEANED_SUFFIX}")));
        indexes.offset.write_to(&index_cleaned)?;
        indexes.time.write_to(&time_cleaned)?;

        // Commit point: the swap file exists.
        let swap_path = self.dir.join(file_name(base, &format!("{LOG_SUFFIX}{SWAP_SUFFIX}")));
        std::fs::rename(&cleaned_path, &swap_path).map_err(Error::io("rename", &cleaned_path))?;
        sync_dir(&self.dir)?;
        // The output may have offset gaps: mark it (only after the commit
        // point, so an uncompacted segment never carries the mark).
        mark_compacted(&self.dir, base)?;
        for segment in group {
            if segment.base_offset() == base {
                remove_if_exists(&self.dir.join(file_name(base, INDEX_SUFFIX)))?;
                remove_if_exists(&self.dir.join(file_name(base, TIME_INDEX_SUFFIX)))?;
            } else {
                segment.delete_files()?;
            }
        }
        let rename = |from: &Path, to: String| {
            std::fs::rename(from, self.dir.join(to)).map_err(Error::io("rename", from))
        };
        rename(&index_cleaned, file_name(base, INDEX_SUFFIX))?;
        rename(&time_cleaned, file_name(base, TIME_INDEX_SUFFIX))?;
        rename(&swap_path, file_name(base, LOG_SUFFIX))?;
        sync_dir(&self.dir)?;

        let (segment, _) =
            LogSegment::open(&self.dir, base, OpenMode::Sealed, config.index_interval_bytes, now)?;
        let mut map = self.segments.write().expect("segments lock");
        for old in group {
            map.remove(&old.base_offset());
        }
        map.insert(base, Arc::new(segment));
        debug!(partition = %self.partition, base, segments = group.len(), bytes = written, "swapped in cleaned segment");
        Ok(())
    }

    fn filter_batch(
        &self,
        batch: &RecordBatch<'_>,
        latest: &HashMap<u128, i64>,
        hasher: &KeyHasher,
        now: i64,
        config: &super::LogConfig,
        report: &mut CompactionReport,
    ) -> std::result::Result<Kept, crate::record::RecordError> {
        let header = batch.header();
        if header.is_control() {
            return Ok(Kept::All);
        }
        let records = batch.records()?;
        let mut keep = Vec::new();
        let mut total = 0usize;
        for record in records.iter() {
            let record = record?;
            total += 1;
            let retained = match record.key {
                None => true,
                Some(key) => {
                    let newest = latest.get(&hasher.hash(key)).copied().unwrap_or(record.offset);
                    let expired_tombstone = record.value.is_none()
                        && record.timestamp.saturating_add(config.delete_retention_ms) <= now;
                    newest <= record.offset && !expired_tombstone
                }
            };
            if retained {
                keep.push(record);
            }
        }
        report.records_read += total as u64;
        report.records_removed += (total - keep.len()) as u64;
        if keep.len() == total {
            return Ok(Kept::All);
        }
        if keep.is_empty() {
            return Ok(Kept::None);
        }
        let mut builder = RecordBatchBuilder::rebuild_of(header)?;
        for r in &keep {
            builder.append_raw(
                (r.offset - header.base_offset) as i32,
                r.create_timestamp,
                r.key,
                r.value,
                r.headers_len(),
                r.raw_headers(),
            );
        }
        Ok(Kept::Some(builder.build(header.base_offset)?))
    }
}

enum Kept {
    All,
    None,
    Some(Vec<u8>),
}

fn corrupt(segment: &LogSegment, position: u64, e: crate::record::RecordError) -> Error {
    Error::Corrupt { path: segment.log_path().to_path_buf(), position, reason: e.to_string() }
}
