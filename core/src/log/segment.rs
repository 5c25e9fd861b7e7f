//! One segment of a partition: a `.log` file of concatenated batches and its
//! two sparse indexes.
//!
//! Files are named by the segment's base offset, zero-padded to 20 digits:
//! `00000000000000368769.log`, `.index`, `.timeindex` (see [`file_name`]).
//! Writes go through positioned writes (`pwrite`) at the segment's current
//! size and reads through positioned reads, so readers never share a file
//! cursor with the writer. `size` is published only after a batch is fully
//! written: a reader never sees half a batch.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::RwLock;

use tracing::warn;

use super::index::{OffsetEntry, SparseIndex, TimeEntry};
use super::scan::{BatchScanner, Invalid};
use crate::record::{BatchHeader, RecordBatch, BATCH_HEADER_LEN};
use crate::{Error, Result};

/// Suffix of segment data files.
pub const LOG_SUFFIX: &str = ".log";
/// Suffix of offset index files.
pub const INDEX_SUFFIX: &str = ".index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Suffix of a compaction output not yet committed (deleted at open).
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a committed compaction output awaiting its final rename.
pub const SWAP_SUFFIX: &str = ".swap";
/// Suffix of the empty marker file beside a segment written by compaction.
/// Such a segment may have offset gaps between batches; every other segment
/// is contiguous, and its reads check that each batch starts where the
/// previous one ended.
pub const COMPACTED_SUFFIX: &str = ".compacted";

/// `<base offset, 20 digits><suffix>`, Kafka's segment file naming.
pub fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// Parses `<20 digits><suffix>` back into a base offset.
pub(crate) fn parse_file_name(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

const SCAN_CHUNK: usize = 1 << 20;

/// Removes every file of the segment at `base` in `dir` (missing ones are fine).
pub(crate) fn remove_files(dir: &Path, base: i64) -> Result<()> {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, COMPACTED_SUFFIX] {
        let path = dir.join(file_name(base, suffix));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("delete", &path)(e)),
        }
    }
    Ok(())
}

/// The indexes of a segment plus the state that decides when to add entries.
#[derive(Debug)]
pub(crate) struct SegmentIndexes {
    pub(crate) offset: SparseIndex<OffsetEntry>,
    pub(crate) time: SparseIndex<TimeEntry>,
    bytes_since_entry: u64,
    /// Largest timestamp seen in the segment so far.
    running_max_timestamp: i64,
    last_indexed_timestamp: i64,
}

impl SegmentIndexes {
    pub(crate) fn empty(dir: &Path, base_offset: i64) -> Self {
        SegmentIndexes {
            offset: SparseIndex::in_memory(dir.join(file_name(base_offset, INDEX_SUFFIX)), Vec::new()),
            time: SparseIndex::in_memory(dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)), Vec::new()),
            bytes_since_entry: 0,
            running_max_timestamp: -1,
            last_indexed_timestamp: -1,
        }
    }

    /// Accounts for a batch written at `position`, adding entries when
    /// `interval` bytes have passed since the last one.
    pub(crate) fn on_batch(&mut self, segment_base: i64, position: u64, header: &BatchHeader, interval: u32) {
        self.running_max_timestamp = self.running_max_timestamp.max(header.max_timestamp);
        if self.bytes_since_entry >= u64::from(interval) {
            let relative_offset = (header.base_offset - segment_base) as u32;
            self.offset.push(OffsetEntry { relative_offset, position: position as u32 });
            if self.running_max_timestamp > self.last_indexed_timestamp {
                self.time.push(TimeEntry { timestamp: self.running_max_timestamp, relative_offset });
                self.last_indexed_timestamp = self.running_max_timestamp;
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.total_len() as u64;
    }
}

/// What a full scan of a segment found.
#[derive(Debug)]
struct FullScan {
    indexes: SegmentIndexes,
    next_offset: i64,
    max_timestamp: i64,
    valid_batches: u64,
    valid_end: u64,
    invalid: Option<Invalid>,
}

/// What recovery did to a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Batches found valid.
    pub valid_batches: u64,
    /// Bytes cut from the end of the segment.
    pub truncated_bytes: u64,
    /// Why the cut was made, if it was.
    pub reason: Option<String>,
}

/// How to open an existing segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// A sealed segment: indexes searched on disk, tail verified.
    Sealed,
    /// The active segment after a clean shutdown: indexes loaded into memory.
    ActiveClean,
    /// The active segment after a crash: every batch verified, the torn or
    /// corrupt tail truncated, indexes rebuilt.
    ActiveRecover,
}

/// One segment.
#[derive(Debug)]
pub(crate) struct LogSegment {
    base_offset: i64,
    dir: PathBuf,
    log_path: PathBuf,
    file: File,
    size: AtomicU64,
    next_offset: AtomicI64,
    max_timestamp: AtomicI64,
    /// Max timestamp of the first batch, or the wall clock when the segment
    /// was created empty: what `segment.ms` measures from.
    roll_base_ms: AtomicI64,
    /// No compaction has touched it: batches follow each other without gaps.
    contiguous: bool,
    indexes: RwLock<SegmentIndexes>,
}

impl LogSegment {
    /// Creates a new, empty active segment (truncating a stale file of the
    /// same name, which cannot hold data at or above the log end).
    pub(crate) fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<Self> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(Error::io("create", &log_path))?;
        Ok(LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            log_path,
            file,
            size: AtomicU64::new(0),
            next_offset: AtomicI64::new(base_offset),
            max_timestamp: AtomicI64::new(-1),
            roll_base_ms: AtomicI64::new(now_ms),
            contiguous: true,
            indexes: RwLock::new(SegmentIndexes::empty(dir, base_offset)),
        })
    }

    /// Opens an existing segment.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        mode: OpenMode,
        index_interval: u32,
        now_ms: i64,
    ) -> Result<(Self, RecoveryReport)> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = OpenOptions::new()
            .read(true)
            .write(mode != OpenMode::Sealed)
            .open(&log_path)
            .map_err(Error::io("open", &log_path))?;
        let size = file.metadata().map_err(Error::io("stat", &log_path))?.len();
        let contiguous = !dir.join(file_name(base_offset, COMPACTED_SUFFIX)).exists();
        let segment = LogSegment {
            base_offset,
            dir: dir.to_path_buf(),
            log_path,
            file,
            size: AtomicU64::new(size),
            next_offset: AtomicI64::new(base_offset),
            max_timestamp: AtomicI64::new(-1),
            roll_base_ms: AtomicI64::new(now_ms),
            contiguous,
            indexes: RwLock::new(SegmentIndexes::empty(dir, base_offset)),
        };
        let report = match mode {
            OpenMode::ActiveRecover => segment.recover(index_interval)?,
            OpenMode::Sealed | OpenMode::ActiveClean => {
                segment.load_indexes(mode == OpenMode::Sealed, index_interval)?;
                RecoveryReport::default()
            }
        };
        if let Some(first) = segment.first_batch_header()? {
            segment.roll_base_ms.store(first.max_timestamp, Ordering::Relaxed);
        }
        Ok((segment, report))
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Bytes of complete batches.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Offset after the last batch (the base offset when empty).
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Largest record timestamp, −1 when empty.
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Whether batches follow each other without offset gaps (never compacted).
    pub(crate) fn is_contiguous(&self) -> bool {
        self.contiguous
    }

    pub(crate) fn roll_base_ms(&self) -> i64 {
        self.roll_base_ms.load(Ordering::Relaxed)
    }

    fn corrupt(&self, position: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt { path: self.log_path.clone(), position, reason: reason.into() }
    }

    fn first_batch_header(&self) -> Result<Option<BatchHeader>> {
        if self.size() < BATCH_HEADER_LEN as u64 {
            return Ok(None);
        }
        self.header_at(0).map(Some)
    }

    /// Reads and parses the batch header at `position`.
    fn header_at(&self, position: u64) -> Result<BatchHeader> {
        let mut buf = [0u8; BATCH_HEADER_LEN];
        self.file.read_exact_at(&mut buf, position).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => self.corrupt(position, "file ends inside a batch header"),
            _ => Error::io("read", &self.log_path)(e),
        })?;
        BatchHeader::parse(&buf).map_err(|e| self.corrupt(position, format!("bad batch header: {e}")))
    }

    /// Scans `[start, size)`, verifying CRCs; calls `f` per batch.
    fn scan_from(
        &self,
        start: u64,
        mut f: impl FnMut(u64, &RecordBatch<'_>) -> std::result::Result<(), String>,
    ) -> Result<std::result::Result<(), Invalid>> {
        let mut scanner = BatchScanner::new(&self.file, &self.log_path, start, self.size(), SCAN_CHUNK);
        loop {
            match scanner.next_batch(true)? {
                Ok(None) => return Ok(Ok(())),
                Ok(Some(b)) => {
                    if let Err(reason) = f(b.position, &b.batch) {
                        return Ok(Err(Invalid { position: b.position, reason }));
                    }
                }
                Err(invalid) => return Ok(Err(invalid)),
            }
        }
    }

    /// Checks a batch's offsets against what precedes it in the segment.
    /// `strict` (any segment compaction has not rewritten) requires each
    /// batch to start exactly where the previous one ended; a compacted
    /// segment may have gaps but never goes backwards. This is what catches
    /// damage to the base offset, which the batch CRC does not cover.
    fn check_offsets(
        &self,
        expected: i64,
        header: &BatchHeader,
        strict: bool,
    ) -> std::result::Result<(), String> {
        if strict && header.base_offset != expected {
            return Err(format!(
                "batch base offset {} does not follow the previous batch's end {expected}",
                header.base_offset
            ));
        }
        if header.base_offset < expected {
            return Err(format!(
                "batch base offset {} is below the previous batch's end {expected}",
                header.base_offset
            ));
        }
        if header.last_offset().saturating_sub(self.base_offset) > i64::from(u32::MAX) {
            return Err(format!(
                "batch last offset {} is too far above the segment base {}",
                header.last_offset(),
                self.base_offset
            ));
        }
        Ok(())
    }

    /// Reads every batch from the start, verifying each, and builds fresh
    /// in-memory indexes. Stops at the first invalid batch.
    fn full_scan(&self, index_interval: u32) -> Result<FullScan> {
        let mut scan = FullScan {
            indexes: SegmentIndexes::empty(&self.dir, self.base_offset),
            next_offset: self.base_offset,
            max_timestamp: -1,
            valid_batches: 0,
            valid_end: 0,
            invalid: None,
        };
        let outcome = self.scan_from(0, |position, batch| {
            let header = batch.header();
            self.check_offsets(scan.next_offset, header, self.contiguous)?;
            scan.indexes.on_batch(self.base_offset, position, header, index_interval);
            scan.next_offset = header.next_offset();
            scan.max_timestamp = scan.max_timestamp.max(header.max_timestamp);
            scan.valid_batches += 1;
            scan.valid_end = position + header.total_len() as u64;
            Ok(())
        })?;
        scan.invalid = outcome.err();
        Ok(scan)
    }

    /// Publishes what a full scan found.
    fn install(&self, scan: FullScan) {
        self.next_offset.store(scan.next_offset, Ordering::Release);
        self.max_timestamp.store(scan.max_timestamp, Ordering::Release);
        *self.indexes.write().expect("index lock") = scan.indexes;
    }

    /// Full scan: verify every batch, cut at the first bad one, rebuild the
    /// in-memory indexes.
    fn recover(&self, index_interval: u32) -> Result<RecoveryReport> {
        let mut scan = self.full_scan(index_interval)?;
        let mut report = RecoveryReport { valid_batches: scan.valid_batches, ..Default::default() };
        if let Some(invalid) = scan.invalid.take() {
            report.truncated_bytes = self.size() - scan.valid_end;
            report.reason = Some(format!("at byte {}: {}", invalid.position, invalid.reason));
            warn!(
                path = %self.log_path.display(),
                position = invalid.position,
                truncated_bytes = report.truncated_bytes,
                reason = %invalid.reason,
                "truncating torn or corrupt tail of segment"
            );
            self.file.set_len(scan.valid_end).map_err(Error::io("truncate", &self.log_path))?;
            self.file.sync_all().map_err(Error::io("fsync", &self.log_path))?;
            self.size.store(scan.valid_end, Ordering::Release);
        }
        self.install(scan);
        Ok(report)
    }

    /// Loads (or rebuilds) the indexes of a segment that was closed cleanly
    /// or sealed, then verifies the batches after the last index entry. Any
    /// damage found is an error: these bytes were already acknowledged as
    /// durable, so they are reported, not cut.
    fn load_indexes(&self, sealed: bool, index_interval: u32) -> Result<()> {
        let size = self.size();
        let offset_path = self.dir.join(file_name(self.base_offset, INDEX_SUFFIX));
        let time_path = self.dir.join(file_name(self.base_offset, TIME_INDEX_SUFFIX));
        let offset_check = |_: Option<&OffsetEntry>, e: &OffsetEntry| u64::from(e.position) < size;
        let offset = if sealed {
            SparseIndex::open_file(offset_path, offset_check)?
        } else {
            SparseIndex::load(offset_path, offset_check)?
        };
        let time_check = |prev: Option<&TimeEntry>, e: &TimeEntry| {
            prev.is_none_or(|p| p.relative_offset <= e.relative_offset)
        };
        let time = if sealed {
            SparseIndex::open_file(time_path, time_check)?
        } else {
            SparseIndex::load(time_path, time_check)?
        };
        let (Some(offset), Some(time)) = (offset, time) else {
            return self.rebuild_indexes(sealed, index_interval);
        };
        // Verify the tail: every batch from the last offset-index entry on.
        let (start, start_offset) = match offset.last()? {
            Some(e) => (u64::from(e.position), Some(self.base_offset + i64::from(e.relative_offset))),
            None => (0, None),
        };
        if let Some(claimed) = start_offset {
            // An entry that does not point at the batch it names means the
            // index, not the log, is damaged: rebuild it from the log.
            if !matches!(self.header_at(start), Ok(h) if h.base_offset == claimed) {
                return self.rebuild_indexes(sealed, index_interval);
            }
        }
        let mut max_ts = time.last()?.map_or(-1, |e| e.timestamp);
        let mut next = start_offset.unwrap_or(self.base_offset);
        let mut first = true;
        let mut bytes_since_entry = 0u64;
        let outcome = self.scan_from(start, |_, batch| {
            let header = batch.header();
            if let Some(expected) = start_offset.filter(|_| first) {
                if header.base_offset != expected {
                    return Err(format!(
                        "offset index says offset {expected} starts here but the batch starts at {}",
                        header.base_offset
                    ));
                }
            }
            first = false;
            self.check_offsets(next, header, self.contiguous)?;
            next = header.next_offset();
            max_ts = max_ts.max(header.max_timestamp);
            bytes_since_entry += header.total_len() as u64;
            Ok(())
        })?;
        if let Err(invalid) = outcome {
            return Err(self.corrupt(invalid.position, invalid.reason));
        }
        if let Some(last_time) = time.last()? {
            if self.base_offset + i64::from(last_time.relative_offset) >= next {
                return self.rebuild_indexes(sealed, index_interval);
            }
        }
        self.next_offset.store(next, Ordering::Release);
        self.max_timestamp.store(max_ts, Ordering::Release);
        let mut indexes = self.indexes.write().expect("index lock");
        indexes.offset = offset;
        indexes.time = time;
        indexes.bytes_since_entry = bytes_since_entry;
        indexes.running_max_timestamp = max_ts;
        indexes.last_indexed_timestamp = indexes.time.last()?.map_or(-1, |e| e.timestamp);
        Ok(())
    }

    /// Rebuilds both indexes from the log; for a sealed segment writes them
    /// to disk. Damage found while reading is an error.
    fn rebuild_indexes(&self, sealed: bool, index_interval: u32) -> Result<()> {
        warn!(path = %self.log_path.display(), "index missing or damaged; rebuilding from the log");
        let mut scan = self.full_scan(index_interval)?;
        if let Some(invalid) = scan.invalid {
            return Err(self.corrupt(invalid.position, invalid.reason));
        }
        if sealed {
            scan.indexes.offset.seal()?;
            scan.indexes.time.seal()?;
        }
        self.install(scan);
        Ok(())
    }

    /// Writes one batch at the end of the segment. Only the log's appender
    /// calls this, one batch at a time.
    pub(crate) fn append(&self, bytes: &[u8], header: &BatchHeader, index_interval: u32) -> Result<()> {
        let position = self.size();
        if let Err(e) = self.file.write_all_at(bytes, position) {
            // Leave no partial batch past the published size.
            let _ = self.file.set_len(position);
            return Err(Error::io("write", &self.log_path)(e));
        }
        if position == 0 {
            self.roll_base_ms.store(header.max_timestamp, Ordering::Relaxed);
        }
        self.indexes.write().expect("index lock").on_batch(
            self.base_offset,
            position,
            header,
            index_interval,
        );
        self.max_timestamp.fetch_max(header.max_timestamp, Ordering::AcqRel);
        self.next_offset.store(header.next_offset(), Ordering::Release);
        self.size.store(position + bytes.len() as u64, Ordering::Release);
        Ok(())
    }

    /// fsyncs the data file.
    pub(crate) fn flush(&self) -> Result<()> {
        self.file.sync_data().map_err(Error::io("fsync", &self.log_path))
    }

    /// Makes the segment read-only: fsyncs the data, writes and fsyncs both
    /// index files, and switches index search to disk.
    pub(crate) fn seal(&self) -> Result<()> {
        self.flush()?;
        let mut indexes = self.indexes.write().expect("index lock");
        indexes.offset.seal()?;
        indexes.time.seal()?;
        Ok(())
    }

    /// Writes the in-memory indexes of the active segment to disk (clean
    /// shutdown) without sealing it.
    pub(crate) fn write_indexes(&self) -> Result<()> {
        let indexes = self.indexes.read().expect("index lock");
        indexes.offset.write_to(indexes.offset.path())?;
        indexes.time.write_to(indexes.time.path())?;
        Ok(())
    }

    /// Finds the batch that contains `offset` or, when compaction removed it,
    /// the first batch after it. Returns its position and header.
    fn locate(&self, offset: i64, size: u64) -> Result<Option<(u64, BatchHeader)>> {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX));
        let entry = self.indexes.read().expect("index lock").offset.floor(relative, false)?;
        let (mut position, mut expected) = (0, self.base_offset);
        if let Some(e) = entry {
            // The index only accelerates: trust an entry only if the batch it
            // points at starts at the offset it claims, else scan from 0.
            let pos = u64::from(e.position);
            let claimed = self.base_offset + i64::from(e.relative_offset);
            match self.header_at(pos) {
                Ok(h) if h.base_offset == claimed => (position, expected) = (pos, claimed),
                _ => warn!(
                    path = %self.log_path.display(),
                    position = pos,
                    "offset index entry does not match the log; scanning from the segment start"
                ),
            }
        }
        let mut last_header = position;
        while position + (BATCH_HEADER_LEN as u64) <= size {
            let header = self.header_at(position)?;
            self.check_offsets(expected, &header, self.contiguous)
                .map_err(|reason| self.corrupt(position, reason))?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            expected = header.next_offset();
            last_header = position;
            position += header.total_len() as u64;
        }
        if position != size {
            // A length field that jumps past the end would otherwise end the
            // walk quietly and skip whatever the damaged batch hid.
            return Err(self.corrupt(last_header, "batch length runs past the end of the segment"));
        }
        Ok(None)
    }

    /// Reads whole batches starting with the one holding `offset`, up to
    /// `max_bytes` (but always the whole first batch, so a consumer can make
    /// progress past a batch larger than its fetch size). Every returned
    /// batch's CRC is verified.
    pub(crate) fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<Vec<u8>>> {
        let size = self.size();
        let Some((position, first)) = self.locate(offset, size)? else {
            return Ok(None);
        };
        let first_len = first.total_len() as u64;
        if position + first_len > size {
            return Err(self.corrupt(position, "batch runs past the end of the segment"));
        }
        let len = (max_bytes as u64).max(first_len).min(size - position) as usize;
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, position).map_err(Error::io("read", &self.log_path))?;
        // Keep the valid batches; damage is an error only when it is the
        // first batch, so a reader gets everything up to the exact spot.
        let mut keep = 0usize;
        let mut expected = first.base_offset;
        while keep + BATCH_HEADER_LEN <= len {
            let checked = RecordBatch::parse(&bytes[keep..])
                .map_err(|e| e.to_string())
                .and_then(|b| b.verify_crc().map(|()| b).map_err(|e| e.to_string()))
                .and_then(|b| self.check_offsets(expected, b.header(), self.contiguous).map(|()| b));
            match checked {
                Ok(b) => {
                    keep += b.as_bytes().len();
                    expected = b.header().next_offset();
                }
                Err(_) if keep > 0 => break,
                Err(reason) => return Err(self.corrupt(position, reason)),
            }
        }
        bytes.truncate(keep);
        Ok(Some(bytes))
    }

    /// The first record at or after `offset_floor` whose timestamp is at
    /// least `timestamp`: `(offset, timestamp)`.
    pub(crate) fn find_by_timestamp(&self, timestamp: i64, offset_floor: i64) -> Result<Option<(i64, i64)>> {
        let size = self.size();
        let start_offset = {
            let indexes = self.indexes.read().expect("index lock");
            let from_time = indexes
                .time
                .floor(timestamp, true)?
                .map_or(self.base_offset, |e| self.base_offset + i64::from(e.relative_offset));
            from_time.max(offset_floor)
        };
        let Some((position, first)) = self.locate(start_offset, size)? else {
            return Ok(None);
        };
        let mut expected = first.base_offset;
        let mut scanner = BatchScanner::new(&self.file, &self.log_path, position, size, 64 * 1024);
        loop {
            let b = match scanner.next_batch(true)? {
                Ok(Some(b)) => b,
                Ok(None) => return Ok(None),
                Err(invalid) => return Err(self.corrupt(invalid.position, invalid.reason)),
            };
            let header = b.batch.header();
            self.check_offsets(expected, header, self.contiguous)
                .map_err(|reason| self.corrupt(b.position, reason))?;
            expected = header.next_offset();
            if header.max_timestamp < timestamp || header.last_offset() < offset_floor {
                continue;
            }
            let records = b.batch.records().map_err(|e| self.corrupt(b.position, e.to_string()))?;
            for record in records.iter() {
                let record = record.map_err(|e| self.corrupt(b.position, e.to_string()))?;
                if record.offset >= offset_floor && record.timestamp >= timestamp {
                    return Ok(Some((record.offset, record.timestamp)));
                }
            }
        }
    }

    /// Reads every batch of the segment in order (for the cleaner).
    pub(crate) fn for_each_batch(
        &self,
        mut f: impl FnMut(u64, &RecordBatch<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut scanner = BatchScanner::new(&self.file, &self.log_path, 0, self.size(), SCAN_CHUNK);
        let mut expected = self.base_offset;
        loop {
            match scanner.next_batch(true)? {
                Ok(Some(b)) => {
                    self.check_offsets(expected, b.batch.header(), self.contiguous)
                        .map_err(|reason| self.corrupt(b.position, reason))?;
                    expected = b.batch.header().next_offset();
                    f(b.position, &b.batch)?
                }
                Ok(None) => return Ok(()),
                Err(invalid) => return Err(self.corrupt(invalid.position, invalid.reason)),
            }
        }
    }

    /// Removes the segment's files. The open handle keeps the data readable
    /// for anyone still holding this segment.
    pub(crate) fn delete_files(&self) -> Result<()> {
        remove_files(&self.dir, self.base_offset)
    }
}
