//! Unit tests of the log: append, read, roll, timestamps, flush, recovery,
//! retention and compaction, each against a real directory.

use std::sync::Arc;

use super::*;
use crate::record::{Compression, RecordBatchBuilder};
use crate::time::{Clock, ManualClock};

const T0: i64 = 1_700_000_000_000;

fn open(dir: &Path, config: LogConfig, clock: &ManualClock) -> Log {
    Log::open(dir, TopicPartition::new("t", 0), config, Arc::new(clock.clone())).unwrap()
}

/// A batch of `n` records with keys `k<i>` and values `v<i>` (i from `first`).
fn batch(codec: Compression, first: usize, n: usize, ts: i64) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(codec);
    for i in first..first + n {
        b.append(ts + i as i64, Some(format!("k{i}").as_bytes()), Some(format!("v{i}").as_bytes()), &[]);
    }
    b.build(0).unwrap()
}

fn keyed(pairs: &[(&str, Option<&str>)], ts: i64) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for (k, v) in pairs {
        b.append(ts, Some(k.as_bytes()), v.map(str::as_bytes), &[]);
    }
    b.build(0).unwrap()
}

fn values(log: &Log, from: i64) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let records = log.read_records(offset, 4096).unwrap();
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        out.extend(records.into_iter().map(|r| {
            (r.offset, String::from_utf8(r.value.map_or(b"<null>".to_vec(), |v| v.to_vec())).unwrap())
        }));
    }
    out
}

fn small_segments() -> LogConfig {
    LogConfig { segment_bytes: 1024, index_interval_bytes: 128, ..LogConfig::default() }
}

#[test]
fn appended_batches_get_consecutive_offsets_and_read_back_in_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open(dir.path(), LogConfig::default(), &clock);
    let mut next = 0;
    for codec in
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
    {
        let mut bytes = batch(codec, next, 10, T0);
        let before = bytes.clone();
        let info = log.append(&mut bytes).unwrap();
        assert_eq!((info.first_offset, info.last_offset), (next as i64, next as i64 + 9));
        // Stored as it came: only the base offset (and leader epoch) changed.
        assert_eq!(bytes[16..], before[16..]);
        next += 10;
    }
    let got = values(&log, 0);
    assert_eq!(got.len(), 50);
    for (i, (offset, value)) in got.iter().enumerate() {
        assert_eq!((*offset, value.as_str()), (i as i64, format!("v{i}").as_str()));
    }
}

#[test]
fn reading_inside_a_batch_returns_the_whole_batch_and_records_from_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), &ManualClock::new(T0));
    log.append(&mut batch(Compression::None, 0, 10, T0)).unwrap();
    log.append(&mut batch(Compression::None, 10, 10, T0)).unwrap();
    let fetched = log.read(15, 1).unwrap();
    let first = crate::record::RecordBatch::parse(&fetched.bytes).unwrap();
    assert_eq!(first.base_offset(), 10, "the batch holding offset 15, whole, even past max_bytes");
    assert_eq!(fetched.bytes.len(), first.as_bytes().len());
    let records = log.read_records(15, 1 << 20).unwrap();
    assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), (15..20).collect::<Vec<_>>());
}

#[test]
fn max_bytes_bounds_a_read_to_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), &ManualClock::new(T0));
    let mut lens = Vec::new();
    for i in 0..10 {
        let mut b = batch(Compression::None, i * 5, 5, T0);
        lens.push(b.len());
        log.append(&mut b).unwrap();
    }
    let three: usize = lens[..3].iter().sum();
    let fetched = log.read(0, three + lens[3] / 2).unwrap();
    assert_eq!(fetched.bytes.len(), three);
    assert_eq!(fetched.high_watermark, 50);
}

#[test]
fn reads_outside_the_log_are_offset_out_of_range_and_the_end_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), &ManualClock::new(T0));
    log.append(&mut batch(Compression::None, 0, 3, T0)).unwrap();
    assert!(log.read(3, 100).unwrap().bytes.is_empty());
    for bad in [-1, 4] {
        let err = log.read(bad, 100).unwrap_err();
        assert!(matches!(err, Error::OffsetOutOfRange { offset, .. } if offset == bad), "{err}");
    }
}

#[test]
fn invalid_batches_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), &ManualClock::new(T0));
    let good = batch(Compression::None, 0, 3, T0);
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut request = good.clone();
    request.extend_from_slice(&bad_crc);
    let err = log.append(&mut request).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidBatch { position, .. } if *position == good.len()),
        "the second batch is named: {err}"
    );
    assert!(err.to_string().contains("crc"), "{err}");
    let mut truncated = good[..good.len() - 4].to_vec();
    assert!(log.append(&mut truncated).unwrap_err().to_string().contains("truncated"));
    let mut magic1 = good.clone();
    magic1[16] = 1;
    assert!(log.append(&mut magic1).unwrap_err().to_string().contains("magic"));
    assert!(log.append(&mut []).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);

    let small = LogConfig { max_message_bytes: 80, ..LogConfig::default() };
    log.set_config(small);
    let err = log.append(&mut good.clone()).unwrap_err();
    assert!(matches!(err, Error::RecordTooLarge { max: 80, .. }), "{err}");
}

#[test]
fn segments_roll_by_size_and_every_offset_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_segments(), &ManualClock::new(T0));
    for i in 0..40 {
        log.append(&mut batch(Compression::None, i * 3, 3, T0)).unwrap();
    }
    let segments = log.segments();
    assert!(segments.len() > 3, "{segments:?}");
    assert!(segments.iter().all(|s| s.size_bytes <= 1024));
    for w in segments.windows(2) {
        assert_eq!(w[0].next_offset, w[1].base_offset);
    }
    for offset in 0..120 {
        let r = log.read_records(offset, 1).unwrap();
        assert_eq!(r[0].offset, offset);
    }
    log.flush().unwrap(); // waits for the background seals
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names.contains(&"00000000000000000000.index".to_string()), "sealed segments have index files");
    assert!(names.contains(&"00000000000000000000.timeindex".to_string()));
}

#[test]
fn segments_roll_by_segment_ms_measured_in_record_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig { segment_ms: 1000, ..LogConfig::default() };
    let log = open(dir.path(), config, &ManualClock::new(T0));
    log.append(&mut batch(Compression::None, 0, 1, T0)).unwrap();
    log.append(&mut batch(Compression::None, 0, 1, T0 + 500)).unwrap();
    assert_eq!(log.segments().len(), 1);
    log.append(&mut batch(Compression::None, 0, 1, T0 + 1000)).unwrap();
    assert_eq!(log.segments().len(), 2);
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small_segments(), &ManualClock::new(T0));
    // Timestamps not monotonic: each batch i has records at T0 + 10*i + {0, 1, 2}, but
    // every fifth batch is stamped an hour early.
    let mut expected = Vec::new();
    for i in 0..60i64 {
        let ts = if i % 5 == 4 { T0 - 3_600_000 } else { T0 + 10 * i };
        let mut b = RecordBatchBuilder::new(Compression::Lz4);
        for j in 0..3 {
            b.append(ts + j, None, Some(b"x"), &[]);
            expected.push((i * 3 + j, ts + j));
        }
        log.append(&mut b.build(0).unwrap()).unwrap();
    }
    for target in
        [T0 - 3_600_001, T0 - 3_600_000, T0, T0 + 1, T0 + 3, T0 + 95, T0 + 591, T0 + 592, T0 + 10_000]
    {
        let want = expected.iter().find(|(_, ts)| *ts >= target).copied();
        assert_eq!(log.offset_for_timestamp(target).unwrap(), want, "target {target}");
    }
}

#[test]
fn flush_messages_and_flush_ms_decide_when_an_append_is_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open(dir.path(), LogConfig { flush_messages: Some(5), ..LogConfig::default() }, &clock);
    assert!(!log.append(&mut batch(Compression::None, 0, 3, T0)).unwrap().flushed);
    assert!(log.append(&mut batch(Compression::None, 0, 3, T0)).unwrap().flushed);
    assert!(!log.append(&mut batch(Compression::None, 0, 1, T0)).unwrap().flushed);

    let dir2 = tempfile::tempdir().unwrap();
    let log = open(dir2.path(), LogConfig { flush_ms: Some(1000), ..LogConfig::default() }, &clock);
    assert!(!log.append(&mut batch(Compression::None, 0, 1, T0)).unwrap().flushed);
    clock.advance(999);
    assert!(!log.flush_if_due(clock.now_ms()).unwrap());
    clock.advance(1);
    assert!(log.flush_if_due(clock.now_ms()).unwrap());
    assert!(!log.flush_if_due(clock.now_ms()).unwrap(), "nothing left to flush");
    log.append(&mut batch(Compression::None, 0, 1, T0)).unwrap();
    clock.advance(1000);
    assert!(log.append(&mut batch(Compression::None, 0, 1, T0)).unwrap().flushed);
}

#[test]
fn log_append_time_overwrites_timestamps_and_keeps_the_crc_valid() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0 + 777);
    let config = LogConfig { message_timestamp_type: TimestampType::LogAppendTime, ..LogConfig::default() };
    let log = open(dir.path(), config, &clock);
    let info = log.append(&mut batch(Compression::Gzip, 0, 4, T0)).unwrap();
    assert_eq!(info.log_append_time, Some(T0 + 777));
    let records = log.read_records(0, 1 << 20).unwrap();
    assert!(records
        .iter()
        .all(|r| r.timestamp == T0 + 777 && r.timestamp_type == TimestampType::LogAppendTime));
}

#[test]
fn clean_close_and_reopen_keeps_everything_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    {
        let log = open(dir.path(), small_segments(), &clock);
        for i in 0..30 {
            log.append(&mut batch(Compression::Snappy, i * 2, 2, T0 + i as i64)).unwrap();
        }
        log.close().unwrap();
        assert!(log
            .append(&mut batch(Compression::None, 0, 1, T0))
            .unwrap_err()
            .to_string()
            .contains("closed"));
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    }
    let log = open(dir.path(), small_segments(), &clock);
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists(), "the marker is consumed at open");
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.append(&mut batch(Compression::None, 60, 1, T0)).unwrap().first_offset, 60);
    let got = values(&log, 0);
    assert_eq!(got.len(), 61);
    assert_eq!(log.offset_for_timestamp(T0 + 29 + 58).unwrap(), Some((58, T0 + 29 + 58)));
}

#[test]
fn unclean_reopen_truncates_a_torn_tail_and_rebuilds_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let active_path;
    {
        let log = open(dir.path(), small_segments(), &clock);
        for i in 0..20 {
            log.append(&mut batch(Compression::None, i, 1, T0)).unwrap();
        }
        let active = log.segments().pop().unwrap();
        active_path = dir.path().join(file_name(active.base_offset, LOG_SUFFIX));
        // Dropped without close: a crash. Then tear the last batch.
    }
    let len = std::fs::metadata(&active_path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&active_path).unwrap();
    f.set_len(len - 7).unwrap();
    let log = open(dir.path(), small_segments(), &clock);
    assert_eq!(log.log_end_offset(), 19, "the torn last batch is gone, the rest intact");
    assert_eq!(values(&log, 0).len(), 19);
    assert_eq!(log.append(&mut batch(Compression::None, 19, 1, T0)).unwrap().first_offset, 19);
}

#[test]
fn retention_by_time_deletes_old_segments_and_advances_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig { retention_ms: Some(60_000), ..small_segments() };
    let log = open(dir.path(), config, &clock);
    for i in 0..30 {
        log.append(&mut batch(Compression::None, i * 3, 3, T0 + i as i64 * 10_000)).unwrap();
    }
    let segments_before = log.segments();
    clock.set(T0 + 200_000);
    let report = log.delete_old_segments(clock.now_ms()).unwrap();
    assert!(report.segments_deleted > 0);
    let start = log.log_start_offset();
    assert_eq!(start, report.log_start_offset);
    // Every deleted record was older than the horizon; the first kept segment is not expired.
    let kept = log.segments();
    assert!(kept[0].max_timestamp >= T0 + 200_000 - 60_000, "{kept:?}");
    assert!(segments_before.iter().filter(|s| s.base_offset < start).all(|s| s.max_timestamp < T0 + 140_000));
    let err = log.read(start - 1, 100).unwrap_err();
    assert!(matches!(err, Error::OffsetOutOfRange { .. }), "{err}");
    assert_eq!(log.read_records(start, 1).unwrap()[0].offset, start);
    assert!(!dir.path().join(file_name(0, LOG_SUFFIX)).exists(), "files removed");

    // Everything expired, the active segment included: rolled and deleted.
    clock.set(T0 + 10_000_000);
    log.delete_old_segments(clock.now_ms()).unwrap();
    assert_eq!(log.log_start_offset(), 90);
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(log.append(&mut batch(Compression::None, 0, 1, T0)).unwrap().first_offset, 90);
}

#[test]
fn retention_by_bytes_keeps_the_log_under_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig { retention_ms: None, retention_bytes: Some(3000), ..small_segments() };
    let log = open(dir.path(), config, &clock);
    for i in 0..60 {
        log.append(&mut batch(Compression::None, i * 3, 3, T0)).unwrap();
    }
    let before = log.size_bytes();
    log.delete_old_segments(clock.now_ms()).unwrap();
    let after = log.size_bytes();
    assert!(before > 3000 && after <= 3000 + 1024, "{before} -> {after}");
    assert!(log.log_start_offset() > 0);
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_preserves_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut config = small_segments();
    config.cleanup_policy = CleanupPolicy { delete: false, compact: true };
    config.delete_retention_ms = 1000;
    let log = open(dir.path(), config, &clock);
    // 100 writes over 5 keys, then a tombstone for "a" and a last write.
    let mut model = std::collections::BTreeMap::new();
    for i in 0..100 {
        let key = ["a", "b", "c", "d", "e"][i % 5];
        let value = format!("{key}{i}");
        let info = log.append(&mut keyed(&[(key, Some(&value))], T0)).unwrap();
        model.insert(key.to_string(), (info.first_offset, value));
    }
    log.append(&mut keyed(&[("a", None)], T0)).unwrap();
    log.roll().unwrap();
    log.append(&mut keyed(&[("z", Some("tail"))], T0)).unwrap();

    let report = log.compact(T0, true).unwrap();
    assert!(report.ran && report.records_removed > 0, "{report:?}");
    let got = values(&log, 0);
    // b..e keep their latest; a keeps only its (young) tombstone; z is in the active segment.
    let mut want: Vec<(i64, String)> =
        model.iter().filter(|(k, _)| k.as_str() != "a").map(|(_, (o, v))| (*o, v.clone())).collect();
    want.push((100, "<null>".into()));
    want.push((101, "tail".into()));
    want.sort();
    assert_eq!(got, want);
    assert_eq!(log.log_end_offset(), 102);

    // After delete.retention.ms the tombstone goes too.
    clock.set(T0 + 1000);
    log.compact(clock.now_ms(), true).unwrap();
    let got = values(&log, 0);
    assert!(!got.iter().any(|(o, _)| *o == 100), "{got:?}");
    assert_eq!(got.len(), 5);

    // And everything survives a reopen.
    log.close().unwrap();
    let mut config = small_segments();
    config.cleanup_policy = CleanupPolicy { delete: false, compact: true };
    let reopened = open(dir.path(), config, &clock);
    assert_eq!(values(&reopened, 0), got);
}

#[test]
fn an_interrupted_compaction_is_completed_or_discarded_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config =
        LogConfig { cleanup_policy: CleanupPolicy { delete: false, compact: true }, ..small_segments() };
    {
        let log = open(dir.path(), config.clone(), &clock);
        for i in 0..40 {
            let key = format!("k{}", i % 4);
            log.append(&mut keyed(&[(&key, Some("v"))], T0)).unwrap();
        }
        log.close().unwrap();
    }
    // A stray .cleaned file (crash before the commit point) is discarded.
    std::fs::write(dir.path().join(file_name(0, ".log.cleaned")), b"garbage").unwrap();
    let log = open(dir.path(), config.clone(), &clock);
    assert!(!dir.path().join(file_name(0, ".log.cleaned")).exists());
    assert_eq!(values(&log, 0).len(), 40);

    // A committed swap whose old segments were not yet removed is completed:
    // simulate by copying segment 0 to 0.log.swap with only its last batch.
    let seg0 = dir.path().join(file_name(0, LOG_SUFFIX));
    let bytes = std::fs::read(&seg0).unwrap();
    let mut last_batch = None;
    for b in batches(&bytes) {
        last_batch = Some(b.unwrap().as_bytes().to_vec());
    }
    drop(log);
    std::fs::write(dir.path().join(file_name(0, ".log.swap")), last_batch.unwrap()).unwrap();
    std::fs::write(dir.path().join(file_name(0, COMPACTED_SUFFIX)), b"").unwrap();
    let log = open(dir.path(), config, &clock);
    let got = values(&log, 0);
    assert!(got.len() < 40, "the swapped-in segment replaced segment 0");
    assert!(!dir.path().join(file_name(0, ".log.swap")).exists());
    assert_eq!(log.log_end_offset(), 40);
}

#[test]
fn a_batch_with_any_base_offset_from_a_producer_is_accepted_without_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), &ManualClock::new(T0));
    for base in [i64::MAX - 1, i64::MIN, -5] {
        let mut b = RecordBatchBuilder::new(Compression::None);
        for i in 0..3 {
            b.append(T0, None, Some(&[i]), &[]);
        }
        let info = log.append(&mut b.build(base).unwrap()).unwrap();
        assert_eq!(info.last_offset - info.first_offset, 2);
    }
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn empty_sealed_segments_left_by_compaction_do_not_stall_time_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        cleanup_policy: CleanupPolicy { delete: true, compact: true },
        retention_ms: Some(1000),
        delete_retention_ms: 1000,
        ..small_segments()
    };
    let log = open(dir.path(), config, &clock);
    // Segment 1: tombstones only, which compaction removes once expired.
    log.append(&mut keyed(&[("a", None), ("b", None)], T0)).unwrap();
    log.roll().unwrap();
    // Large enough that compaction cleans the two segments in separate groups.
    log.append(&mut keyed(&[("c", Some(&"x".repeat(950)))], T0)).unwrap();
    log.roll().unwrap();
    log.append(&mut keyed(&[("d", Some("new"))], T0 + 10_000)).unwrap();
    clock.set(T0 + 5000);
    log.compact(clock.now_ms(), true).unwrap();
    assert_eq!(log.segments()[0].size_bytes, 0, "the tombstone segment is now empty");
    let report = log.delete_old_segments(clock.now_ms()).unwrap();
    assert_eq!(report.segments_deleted, 2, "the empty segment and the expired one behind it");
    assert_eq!(log.log_start_offset(), 3);
}
