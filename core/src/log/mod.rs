//! One partition's storage: a directory of segments, appended to at the end,
//! read from anywhere, trimmed by retention and compaction.
//!
//! ```text
//! clicks-0/
//!   00000000000000000000.log        batches, exactly as Kafka stores them
//!   00000000000000000000.index      offset -> position, sparse
//!   00000000000000000000.timeindex  timestamp -> offset, sparse
//!   00000000000000368769.log        the active segment (appends go here)
//!   ...
//!   .clean-shutdown                 present only between a clean close and the next open
//! ```
//!
//! # Durability
//!
//! `append` returns once the batches are written to the OS. They are fsynced
//! when `flush.messages` records or `flush.ms` milliseconds have accumulated,
//! on [`Log::flush`] and on [`Log::close`]; [`AppendInfo::flushed`] tells
//! whether the append itself ended with an fsync. A flush covers every
//! earlier segment too. A rolled segment is sealed (fsynced, index files
//! written) on a background thread, as Kafka does, so a roll never stalls
//! appends behind a large fsync; each completed seal records the *recovery
//! point* (`recovery-point`: every offset below it is on disk).
//!
//! # Recovery
//!
//! [`Log::close`] fsyncs, writes the active segment's indexes and the
//! recovery point, and leaves a `.clean-shutdown` marker recording the log
//! end offset and active segment size. [`Log::open`] removes the marker. If
//! it was missing, every segment from the one holding the recovery point on
//! is verified batch by batch (header, length, CRC-32C, offset continuity)
//! and cut at the first invalid byte (segments after a cut are removed: a
//! flush covers all earlier segments, so nothing after a torn point was ever
//! acknowledged as durable), and their indexes are rebuilt. Segments below
//! the recovery point were fsynced: their index files are sanity-checked
//! (rebuilt when damaged) and the batches after the last index entry are
//! verified. Damage there, or in any segment after a clean
//! shutdown, is not cut: `open` fails with [`Error::Corrupt`] naming the file
//! and byte position. The same happens when segments do not chain (one ends
//! at an offset other than where the next begins: a lost tail or a missing
//! file), or when the active segment no longer matches the offset and size
//! the clean-shutdown marker recorded. Reads verify the CRC of every batch
//! they return, and that each batch starts where the previous one ended
//! (compaction output, marked by a `.compacted` file, may skip offsets but
//! never go back): damage the CRC does not cover — the base offset — is
//! caught this way. A read returns the intact batches before a damaged one
//! and fails with [`Error::Corrupt`] when the damaged batch comes first.
//!
//! Indexes are only accelerators: entries are checked against the log on
//! every lookup, and damaged index files are rebuilt at open.
//!
//! # Example
//!
//! ```
//! use runnel_core::log::{Log, LogConfig};
//! use runnel_core::record::{Compression, RecordBatchBuilder};
//! use runnel_core::time::SystemClock;
//! use runnel_core::topic::TopicPartition;
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), TopicPartition::new("t", 0), LogConfig::default(), Arc::new(SystemClock))?;
//! let mut b = RecordBatchBuilder::new(Compression::Snappy);
//! for i in 0..3 {
//!     b.append(1_000 + i, None, Some(format!("v{i}").as_bytes()), &[]);
//! }
//! let info = log.append(&mut b.build(0)?)?;
//! assert_eq!((info.first_offset, info.last_offset), (0, 2));
//! let records = log.read_records(1, 1 << 20)?;
//! assert_eq!(records.len(), 2);
//! assert_eq!(log.offset_for_timestamp(1_002)?, Some((2, 1_002)));
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cleaner;
mod config;
mod index;
mod scan;
mod segment;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tracing::{debug, info, warn};

use crate::record::Record;
use crate::record::{batches, RecordBatch, TimestampType};
use crate::time::SharedClock;
use crate::topic::TopicPartition;
use crate::{Error, Result};

pub use cleaner::{CompactionReport, RetentionReport, MAX_OFFSET_MAP_KEYS};
pub use config::{CleanupPolicy, LogConfig, TOPIC_CONFIG_KEYS};
pub use segment::{
    file_name, RecoveryReport, CLEANED_SUFFIX, COMPACTED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
};

use segment::{LogSegment, OpenMode};

/// Name of the marker a clean close leaves in the partition directory.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// What the clean-shutdown marker records, as one text line:
/// `log_end_offset=<n> active_segment_size=<bytes>`. Opening checks the
/// active segment against it, so a segment cut short while the process was
/// down is reported rather than trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CleanShutdown {
    log_end_offset: i64,
    active_segment_size: u64,
}

impl std::fmt::Display for CleanShutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "log_end_offset={} active_segment_size={}", self.log_end_offset, self.active_segment_size)
    }
}

impl CleanShutdown {
    /// The marker's contents; `None` when it is missing or unreadable (the
    /// log is then recovered as after a crash).
    fn read(path: &Path) -> Option<CleanShutdown> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut end = None;
        let mut size = None;
        for part in text.split_whitespace() {
            match part.split_once('=')? {
                ("log_end_offset", v) => end = v.parse().ok(),
                ("active_segment_size", v) => size = v.parse().ok(),
                _ => return None,
            }
        }
        Some(CleanShutdown { log_end_offset: end?, active_segment_size: size? })
    }
}

impl Drop for Log {
    /// Waits for a background seal still running, so a log reopened right
    /// after this one is dropped never races it. Does not close cleanly: a
    /// log dropped without [`Log::close`] is recovered at the next open.
    fn drop(&mut self) {
        if let Err(e) = self.wait_for_seals() {
            warn!(partition = %self.partition, error = %e, "background seal failed");
        }
    }
}

/// File holding the offset below which every segment is known to be fsynced.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";

/// The recorded recovery point, 0 when missing or unreadable (then every
/// segment is verified after a crash).
fn read_recovery_point(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join(RECOVERY_POINT_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Records the recovery point atomically (temp file, fsync, rename, fsync dir).
fn write_recovery_point(dir: &Path, offset: i64) -> Result<()> {
    let path = dir.join(RECOVERY_POINT_FILE);
    let tmp = dir.join(format!("{RECOVERY_POINT_FILE}.tmp"));
    File::create(&tmp)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, format!("{offset}\n").as_bytes())?;
            f.sync_all()
        })
        .map_err(Error::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
    sync_dir(dir)
}

fn join_seal(handle: std::thread::JoinHandle<Result<()>>, dir: &Path) -> Result<()> {
    handle.join().unwrap_or_else(|_| {
        Err(Error::Io {
            op: "seal segment",
            path: dir.to_path_buf(),
            source: std::io::Error::other("the background seal thread panicked"),
        })
    })
}

/// Each segment must end where the next begins (a compacted one may end
/// earlier); a gap means a segment lost its tail or a file went missing.
fn check_segment_chain(segments: &BTreeMap<i64, Arc<LogSegment>>) -> Result<()> {
    let list: Vec<_> = segments.values().collect();
    for pair in list.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let broken = if a.is_contiguous() {
            a.next_offset() != b.base_offset()
        } else {
            a.next_offset() > b.base_offset()
        };
        if broken {
            return Err(Error::Corrupt {
                path: a.log_path().to_path_buf(),
                position: a.size(),
                reason: format!(
                    "segment ends at offset {} but the next segment starts at {}: data is missing",
                    a.next_offset(),
                    b.base_offset()
                ),
            });
        }
    }
    Ok(())
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub first_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// Number of records appended.
    pub record_count: u64,
    /// The append time written into the batches for a `LogAppendTime` log.
    pub log_append_time: Option<i64>,
    /// First offset still stored.
    pub log_start_offset: i64,
    /// Whether the append ended with an fsync: these records and everything
    /// before them are on disk.
    pub flushed: bool,
}

/// Batches read from the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedBatches {
    /// Whole batches; the first contains the requested offset (it may start
    /// before it). Empty at the log end.
    pub bytes: Vec<u8>,
    /// Offset the next appended record will get (single node: the high watermark).
    pub high_watermark: i64,
    /// First offset still stored.
    pub log_start_offset: i64,
}

/// A summary of one segment, for describe and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Base offset (the file name).
    pub base_offset: i64,
    /// Offset after the last batch.
    pub next_offset: i64,
    /// Bytes in the `.log` file.
    pub size_bytes: u64,
    /// Largest record timestamp, −1 when empty.
    pub max_timestamp: i64,
    /// Whether it is the active segment.
    pub active: bool,
}

#[derive(Debug)]
struct Appender {
    active: Arc<LogSegment>,
    unflushed_records: u64,
    first_unflushed_ms: Option<i64>,
}

/// One partition's log. Cheap to share behind an `Arc`; appends are
/// serialized internally, reads run concurrently with appends and with the
/// background cleaner.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    partition: TopicPartition,
    config: RwLock<Arc<LogConfig>>,
    clock: SharedClock,
    segments: RwLock<BTreeMap<i64, Arc<LogSegment>>>,
    appender: Mutex<Appender>,
    log_end_offset: AtomicI64,
    log_start_offset: AtomicI64,
    cleaner: Mutex<cleaner::CleanerState>,
    /// The background seal of the most recently rolled segment.
    pending_seal: Mutex<Option<std::thread::JoinHandle<Result<()>>>>,
    /// Set by the first failed write or fsync; see [`Log::check_failed`].
    failed: Mutex<Option<String>>,
    /// Publishes the log end offset to waiting readers after every append.
    end_offset_tx: tokio::sync::watch::Sender<i64>,
    closed: AtomicBool,
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("fsync directory", dir))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("delete", path)(e)),
    }
}

impl Log {
    /// Opens the log in `dir` (creating it if needed), recovering as
    /// described in the [module docs](self).
    ///
    /// # Errors
    /// I/O failures, and [`Error::Corrupt`] for damage that recovery must
    /// not silently remove.
    pub fn open(
        dir: impl AsRef<Path>,
        partition: TopicPartition,
        config: LogConfig,
        clock: SharedClock,
    ) -> Result<Log> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        let now = clock.now_ms();
        cleaner::finish_interrupted_cleaning(&dir)?;

        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io("list", &dir))? {
            let entry = entry.map_err(Error::io("list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // An index or recovery point whose write a crash interrupted.
                remove_if_exists(&entry.path())?;
            } else if let Some(base) = segment::parse_file_name(&name, LOG_SUFFIX) {
                bases.push(base);
            } else if let Some(base) = segment::parse_file_name(&name, INDEX_SUFFIX)
                .or_else(|| segment::parse_file_name(&name, TIME_INDEX_SUFFIX))
                .or_else(|| segment::parse_file_name(&name, COMPACTED_SUFFIX))
            {
                index_files.push((base, entry.path()));
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                debug!(path = %path.display(), "removing index without a segment");
                remove_if_exists(&path)?;
            }
        }

        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_state = CleanShutdown::read(&marker);
        let clean = clean_state.is_some();
        let recovery_point = read_recovery_point(&dir);
        let mut segments = BTreeMap::new();
        if bases.is_empty() {
            let segment = LogSegment::create(&dir, 0, now)?;
            segments.insert(0, Arc::new(segment));
            sync_dir(&dir)?;
        } else {
            let last = *bases.last().expect("non-empty");
            // After a crash, every segment from the one holding the recovery
            // point on may hold unflushed bytes: verify them all.
            let recover_from =
                bases.iter().rev().find(|&&b| b <= recovery_point).copied().unwrap_or(bases[0]);
            for (i, &base) in bases.iter().enumerate() {
                let mode = match (clean, base == last) {
                    (true, true) => OpenMode::ActiveClean,
                    (true, false) => OpenMode::Sealed,
                    (false, _) if base >= recover_from => OpenMode::ActiveRecover,
                    (false, _) => OpenMode::Sealed,
                };
                let (segment, report) = LogSegment::open(&dir, base, mode, config.index_interval_bytes, now)?;
                let cut = report.truncated_bytes > 0;
                if cut {
                    warn!(
                        partition = %partition,
                        segment = base,
                        truncated_bytes = report.truncated_bytes,
                        reason = report.reason.as_deref().unwrap_or(""),
                        "recovered log after unclean shutdown"
                    );
                }
                if mode == OpenMode::ActiveRecover && base != last {
                    // A segment that ends cleanly but short of the next one lost
                    // its unflushed tail whole (a crash right after a roll).
                    let next_base = bases[i + 1];
                    let cut = cut
                        || (segment.is_contiguous() && segment.next_offset() != next_base)
                        || segment.next_offset() > next_base;
                    if cut {
                        // Nothing after a torn point was ever flushed (a flush
                        // covers every earlier segment): drop what follows.
                        for &later in &bases[i + 1..] {
                            warn!(partition = %partition, segment = later, "removing segment after a torn one");
                            segment::remove_files(&dir, later)?;
                        }
                        segments.insert(base, Arc::new(segment));
                        sync_dir(&dir)?;
                        break;
                    }
                    segment.seal()?;
                }
                segments.insert(base, Arc::new(segment));
            }
        }
        check_segment_chain(&segments)?;
        let active = segments.values().next_back().expect("at least one segment").clone();
        if let Some(state) = clean_state {
            if active.next_offset() != state.log_end_offset || active.size() != state.active_segment_size {
                return Err(Error::Corrupt {
                    path: active.log_path().to_path_buf(),
                    position: active.size(),
                    reason: format!(
                        "at clean shutdown the log ended at offset {} with {} bytes in this segment; \
                         now it ends at offset {} with {} bytes",
                        state.log_end_offset,
                        state.active_segment_size,
                        active.next_offset(),
                        active.size()
                    ),
                });
            }
        }
        if marker.exists() {
            std::fs::remove_file(&marker).map_err(Error::io("delete", &marker))?;
            sync_dir(&dir)?;
        }
        let log_start = *segments.keys().next().expect("at least one segment");
        let log_end = active.next_offset();
        info!(partition = %partition, log_start, log_end, segments = segments.len(), clean, "log opened");
        Ok(Log {
            dir,
            partition,
            config: RwLock::new(Arc::new(config)),
            clock,
            segments: RwLock::new(segments),
            appender: Mutex::new(Appender { active, unflushed_records: 0, first_unflushed_ms: None }),
            log_end_offset: AtomicI64::new(log_end),
            log_start_offset: AtomicI64::new(log_start),
            cleaner: Mutex::new(cleaner::CleanerState::new(log_start)),
            pending_seal: Mutex::new(None),
            failed: Mutex::new(None),
            end_offset_tx: tokio::sync::watch::Sender::new(log_end),
            closed: AtomicBool::new(false),
        })
    }

    /// The partition this log stores.
    pub fn partition(&self) -> &TopicPartition {
        &self.partition
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<LogConfig> {
        self.config.read().expect("config lock").clone()
    }

    /// Replaces the configuration (takes effect for the next append or
    /// cleaner pass).
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write().expect("config lock") = Arc::new(config);
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    /// A receiver that sees the log end offset change after every append:
    /// readers wait on it instead of polling.
    pub fn watch_end_offset(&self) -> tokio::sync::watch::Receiver<i64> {
        self.end_offset_tx.subscribe()
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().expect("segments lock").values().map(|s| s.size()).sum()
    }

    /// One entry per segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segments = self.segments.read().expect("segments lock");
        let last = segments.keys().next_back().copied();
        segments
            .values()
            .map(|s| SegmentInfo {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                size_bytes: s.size(),
                max_timestamp: s.max_timestamp(),
                active: Some(s.base_offset()) == last,
            })
            .collect()
    }

    fn segment_snapshot(&self) -> Vec<Arc<LogSegment>> {
        self.segments.read().expect("segments lock").values().cloned().collect()
    }

    fn lock_appender(&self) -> Result<MutexGuard<'_, Appender>> {
        let guard = self.appender.lock().expect("appender lock");
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed(format!("log {}", self.partition)));
        }
        self.check_failed()?;
        Ok(guard)
    }

    /// After a failed write or fsync the log refuses appends and flushes
    /// until it is reopened (recovery then decides what is on disk), as
    /// Kafka takes a failed log directory offline: a later flush must never
    /// report durable what an earlier failure left unsynced.
    fn check_failed(&self) -> Result<()> {
        match &*self.failed.lock().expect("failure lock") {
            Some(reason) => {
                Err(Error::PartitionOffline { partition: self.partition.clone(), reason: reason.clone() })
            }
            None => Ok(()),
        }
    }

    /// Records a write or fsync failure (the first one wins) and returns it.
    fn fail(&self, e: Error) -> Error {
        let mut failed = self.failed.lock().expect("failure lock");
        if failed.is_none() {
            tracing::error!(partition = %self.partition, error = %e, "log failed; refusing appends until reopened");
            *failed = Some(e.to_string());
        }
        e
    }

    /// Appends one or more concatenated v2 batches, as a producer sends them.
    ///
    /// Every batch is validated first (magic, length, CRC, record structure
    /// and count, `max.message.bytes`); if any is bad, nothing is written.
    /// Offsets are then assigned by rewriting each batch's base offset in
    /// `batches` (hence `&mut`), and for `LogAppendTime` logs the append time
    /// is written and the CRC recomputed. The bytes are otherwise stored as
    /// they came, compression included.
    ///
    /// # Errors
    /// [`Error::InvalidBatch`] or [`Error::RecordTooLarge`] for bad input,
    /// [`Error::Closed`] after close, I/O errors from the file system.
    pub fn append(&self, batches_buf: &mut [u8]) -> Result<AppendInfo> {
        self.append_checked(batches_buf, true)
    }

    /// Appends one batch built by this process's own encoder: the header,
    /// length and size limit are checked, but the CRC and the per-record
    /// walk are skipped (the encoder computed them a moment ago).
    pub(crate) fn append_own(&self, batch: &mut [u8]) -> Result<AppendInfo> {
        self.append_checked(batch, false)
    }

    fn append_checked(&self, batches_buf: &mut [u8], untrusted: bool) -> Result<AppendInfo> {
        let config = self.config();
        // Validate everything before taking the lock or writing anything.
        let mut found = Vec::new(); // (start, len, true max timestamp)
        let mut pos = 0usize;
        while pos < batches_buf.len() {
            let invalid =
                |source| Error::InvalidBatch { partition: self.partition.clone(), position: pos, source };
            let batch = RecordBatch::parse(&batches_buf[pos..]).map_err(invalid)?;
            let len = batch.as_bytes().len();
            if len > config.max_message_bytes as usize {
                return Err(Error::RecordTooLarge {
                    partition: self.partition.clone(),
                    size: len,
                    max: config.max_message_bytes as usize,
                });
            }
            let max_ts =
                if untrusted { batch.validate().map_err(invalid)? } else { batch.header().max_timestamp };
            found.push((pos, len, max_ts));
            pos += len;
        }
        if found.is_empty() {
            return Err(Error::InvalidBatch {
                partition: self.partition.clone(),
                position: 0,
                source: crate::record::RecordError::Empty,
            });
        }

        let mut appender = self.lock_appender()?;
        let now = self.clock.now_ms();
        let log_append_time = (config.message_timestamp_type == TimestampType::LogAppendTime).then_some(now);
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut records = 0u64;
        for (start, len, max_ts) in found {
            let bytes = &mut batches_buf[start..start + len];
            bytes[0..8].copy_from_slice(&next.to_be_bytes());
            bytes[12..16].copy_from_slice(&0i32.to_be_bytes()); // partition leader epoch
            let mut attributes = i16::from_be_bytes([bytes[21], bytes[22]]);
            let stored_max = i64::from_be_bytes(bytes[35..43].try_into().expect("8 bytes"));
            let (new_max, new_attributes) = match log_append_time {
                Some(t) => (t, attributes | 0x08),
                None => (max_ts, attributes & !0x08),
            };
            if new_max != stored_max || new_attributes != attributes {
                attributes = new_attributes;
                bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
                bytes[35..43].copy_from_slice(&new_max.to_be_bytes());
                let crc = crc32c::crc32c(&bytes[21..]);
                bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            }
            let header = crate::record::BatchHeader::parse(bytes).expect("validated above");
            self.maybe_roll(&mut appender, &config, &header, len as u64, now)?;
            appender.active.append(bytes, &header, config.index_interval_bytes).map_err(|e| self.fail(e))?;
            records += header.records_count as u64;
            next = header.next_offset();
            self.log_end_offset.store(next, Ordering::Release);
        }
        self.end_offset_tx.send_replace(next);
        appender.unflushed_records += records;
        appender.first_unflushed_ms.get_or_insert(now);
        let due = config.flush_messages.is_some_and(|n| appender.unflushed_records >= n)
            || config
                .flush_ms
                .is_some_and(|ms| now.saturating_sub(appender.first_unflushed_ms.unwrap_or(now)) >= ms);
        if due {
            self.flush_locked(&mut appender)?;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            record_count: records,
            log_append_time,
            log_start_offset: self.log_start_offset(),
            flushed: due,
        })
    }

    fn maybe_roll(
        &self,
        appender: &mut Appender,
        config: &LogConfig,
        header: &crate::record::BatchHeader,
        len: u64,
        now: i64,
    ) -> Result<()> {
        let active = &appender.active;
        if active.size() == 0 {
            return Ok(());
        }
        let reason = if active.size() + len > config.segment_bytes {
            "segment.bytes"
        } else if header.max_timestamp.saturating_sub(active.roll_base_ms()) >= config.segment_ms {
            "segment.ms"
        } else if header.last_offset() - active.base_offset() > i64::from(i32::MAX) {
            "offset range"
        } else {
            return Ok(());
        };
        debug!(partition = %self.partition, reason, base = header.base_offset, "rolling segment");
        self.roll_locked(appender, now)
    }

    /// Seals the active segment and starts a new one at the log end.
    /// Starts a new active segment at the log end. The old one is sealed
    /// (fsync, index files) on a background thread, as Kafka does, so a roll
    /// does not stall appends behind a large fsync; any flush, the cleaner
    /// and close wait for it first, so "flushed" always covers every earlier
    /// segment. Each completed seal records the recovery point.
    fn roll_locked(&self, appender: &mut Appender, now: i64) -> Result<()> {
        // The new segment exists before the old one stops taking appends, so
        // a failure here leaves the log as it was.
        let base = self.log_end_offset();
        let segment = Arc::new(LogSegment::create(&self.dir, base, now)?);
        sync_dir(&self.dir)?;

        let sealed = appender.active.clone();
        let mut pending = self.pending_seal.lock().expect("seal lock");
        let previous = pending.take();
        let dir = self.dir.clone();
        let spawned =
            std::thread::Builder::new().name("runnel-segment-seal".into()).spawn(move || -> Result<()> {
                // Seal this segment even if the previous seal failed, but record
                // a recovery point only when every earlier seal succeeded.
                let earlier = previous.map_or(Ok(()), |p| join_seal(p, &dir));
                sealed.seal()?;
                earlier?;
                write_recovery_point(&dir, sealed.next_offset())
            });
        match spawned {
            Ok(handle) => *pending = Some(handle),
            Err(e) => return Err(self.fail(Error::io("spawn seal thread", &self.dir)(e))),
        }
        drop(pending);
        appender.unflushed_records = 0;
        appender.first_unflushed_ms = None;
        self.segments.write().expect("segments lock").insert(base, segment.clone());
        appender.active = segment;
        Ok(())
    }

    /// Seals the active segment (if it holds data) and starts a new one.
    ///
    /// # Errors
    /// I/O failures; [`Error::Closed`] after close.
    pub fn roll(&self) -> Result<()> {
        let mut appender = self.lock_appender()?;
        if appender.active.size() == 0 {
            return Ok(());
        }
        let now = self.clock.now_ms();
        self.roll_locked(&mut appender, now)
    }

    /// Waits for the background seal of rolled segments, if one is running.
    /// The lock is held while joining so that no new seal starts beside the
    /// one being waited for: seals (and the recovery points they write) stay
    /// strictly in order.
    fn wait_for_seals(&self) -> Result<()> {
        let mut pending = self.pending_seal.lock().expect("seal lock");
        if let Some(handle) = pending.take() {
            join_seal(handle, &self.dir).map_err(|e| self.fail(e))?;
        }
        self.check_failed()
    }

    fn flush_locked(&self, appender: &mut Appender) -> Result<()> {
        self.wait_for_seals()?;
        appender.active.flush().map_err(|e| self.fail(e))?;
        appender.unflushed_records = 0;
        appender.first_unflushed_ms = None;
        Ok(())
    }

    /// fsyncs everything appended so far.
    ///
    /// # Errors
    /// I/O failures; [`Error::Closed`] after close.
    pub fn flush(&self) -> Result<()> {
        let mut appender = self.lock_appender()?;
        self.flush_locked(&mut appender)
    }

    /// fsyncs if `flush.ms` has passed since the oldest unflushed append
    /// (called by the broker's background thread). Returns whether it did.
    ///
    /// # Errors
    /// I/O failures.
    pub fn flush_if_due(&self, now: i64) -> Result<bool> {
        let Some(ms) = self.config().flush_ms else {
            return Ok(false);
        };
        let mut appender = match self.lock_appender() {
            Ok(a) => a,
            Err(Error::Closed(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        match appender.first_unflushed_ms {
            Some(first) if now.saturating_sub(first) >= ms => {
                self.flush_locked(&mut appender)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Reads whole batches starting with the one that contains `offset`, up
    /// to about `max_bytes` (at least one batch). An empty result means the
    /// offset is the log end.
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] below the log start or past the log end;
    /// [`Error::Corrupt`] naming file and position if stored bytes fail
    /// their CRC.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchedBatches> {
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset();
        if offset < log_start || offset > log_end {
            return Err(Error::OffsetOutOfRange {
                partition: self.partition.clone(),
                offset,
                log_start_offset: log_start,
                log_end_offset: log_end,
            });
        }
        let mut out =
            FetchedBatches { bytes: Vec::new(), high_watermark: log_end, log_start_offset: log_start };
        if offset == log_end {
            return Ok(out);
        }
        let candidates: Vec<Arc<LogSegment>> = {
            let segments = self.segments.read().expect("segments lock");
            let log_start = self.log_start_offset();
            if offset < log_start {
                // Retention removed the segment since the check above.
                return Err(Error::OffsetOutOfRange {
                    partition: self.partition.clone(),
                    offset,
                    log_start_offset: log_start,
                    log_end_offset: log_end,
                });
            }
            let from = segments.range(..=offset).next_back().map_or(log_start, |(b, _)| *b);
            segments.range(from..).map(|(_, s)| s.clone()).collect()
        };
        for segment in candidates {
            if let Some(bytes) = segment.read(offset, max_bytes)? {
                out.bytes = bytes;
                break;
            }
        }
        out.high_watermark = self.log_end_offset();
        Ok(out)
    }

    /// Reads and decodes records from `offset` on (records before `offset`
    /// in the first batch are skipped; control batches are skipped).
    ///
    /// # Errors
    /// As [`Log::read`], plus [`Error::Corrupt`] for batches that fail to decode.
    pub fn read_records(&self, offset: i64, max_bytes: usize) -> Result<Vec<Record>> {
        let fetched = self.read(offset, max_bytes)?;
        let mut out = Vec::new();
        for batch in batches(&fetched.bytes) {
            let batch = batch.map_err(|e| self.corrupt_in_fetch(offset, e))?;
            if batch.header().is_control() {
                continue;
            }
            out.extend(batch.to_records(offset).map_err(|e| self.corrupt_in_fetch(offset, e))?);
        }
        Ok(out)
    }

    fn corrupt_in_fetch(&self, offset: i64, e: crate::record::RecordError) -> Error {
        Error::Corrupt {
            path: self.dir.clone(),
            position: 0,
            reason: format!("batch read at offset {offset} does not decode: {e}"),
        }
    }

    /// The first record whose timestamp is at least `timestamp`, as
    /// `(offset, timestamp)`; `None` if every record is older.
    ///
    /// # Errors
    /// I/O failures and [`Error::Corrupt`].
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let floor = self.log_start_offset();
        for segment in self.segment_snapshot() {
            if segment.max_timestamp() < timestamp {
                continue;
            }
            if let Some(found) = segment.find_by_timestamp(timestamp, floor)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// fsyncs, writes the active segment's indexes and the clean-shutdown
    /// marker. Further appends fail with [`Error::Closed`]. Idempotent.
    ///
    /// # Errors
    /// I/O failures (the marker is then not written, so the next open
    /// recovers).
    pub fn close(&self) -> Result<()> {
        let appender = self.appender.lock().expect("appender lock");
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.wait_for_seals()?;
        appender.active.flush().map_err(|e| self.fail(e))?;
        appender.active.write_indexes()?;
        write_recovery_point(&self.dir, appender.active.next_offset())?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        let state = CleanShutdown {
            log_end_offset: appender.active.next_offset(),
            active_segment_size: appender.active.size(),
        };
        File::create(&marker)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, state.to_string().as_bytes())?;
                f.sync_all()
            })
            .map_err(Error::io("create", &marker))?;
        sync_dir(&self.dir)?;
        self.closed.store(true, Ordering::Release);
        debug!(partition = %self.partition, "log closed cleanly");
        Ok(())
    }

    /// Stops accepting appends without writing anything (the log is about to
    /// be deleted).
    pub(crate) fn shut(&self) {
        // The cleaner lock first (the order retention uses): a compaction or
        // retention pass in progress finishes before the files go away.
        let _cleaner = self.cleaner.lock().expect("cleaner lock");
        let _appender = self.appender.lock().expect("appender lock");
        self.closed.store(true, Ordering::Release);
        if let Err(e) = self.wait_for_seals() {
            warn!(partition = %self.partition, error = %e, "background seal failed while shutting the log");
        }
    }

    /// Whether [`Log::close`] has run.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests;
