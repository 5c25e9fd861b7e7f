//! Property test: random appends, reads, rolls, clean and unclean restarts,
//! retention and compaction against a simple in-memory model of a
//! partition. After every step the log must agree with the model.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use runnel_core::log::{CleanupPolicy, Log, LogConfig};
use runnel_core::record::{Compression, RecordBatchBuilder};
use runnel_core::time::{Clock, ManualClock};
use runnel_core::topic::TopicPartition;

const T0: i64 = 1_700_000_000_000;
const KEYS: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelRecord {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

#[derive(Debug, Clone)]
enum Op {
    /// Records as (key index or none, value length or tombstone, timestamp jitter).
    Append {
        codec: u8,
        records: Vec<(Option<u8>, Option<u8>, i16)>,
    },
    Read {
        at: u16,
        max_bytes: u16,
    },
    Roll,
    Reopen {
        clean: bool,
    },
    Advance {
        ms: u32,
    },
    Retention,
    Compact {
        force: bool,
    },
    FindTimestamp {
        back_ms: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..5, prop::collection::vec(
            (prop::option::weighted(0.9, 0u8..KEYS as u8), prop::option::weighted(0.85, 0u8..60), -3000i16..3000),
            1..12,
        )).prop_map(|(codec, records)| Op::Append { codec, records }),
        3 => (any::<u16>(), 1u16..2000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        2 => (0u32..40_000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Retention),
        1 => any::<bool>().prop_map(|force| Op::Compact { force }),
        1 => (0u16..60_000).prop_map(|back_ms| Op::FindTimestamp { back_ms }),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Policy {
    DeleteByTime,
    DeleteByBytes,
    Compact,
    CompactDelete,
}

fn config(policy: Policy, segment_bytes: u64) -> LogConfig {
    let mut c = LogConfig {
        segment_bytes,
        index_interval_bytes: 100,
        retention_ms: None,
        retention_bytes: None,
        delete_retention_ms: 20_000,
        min_compaction_lag_ms: 0,
        ..LogConfig::default()
    };
    match policy {
        Policy::DeleteByTime => c.retention_ms = Some(60_000),
        Policy::DeleteByBytes => c.retention_bytes = Some(1500),
        Policy::Compact => c.cleanup_policy = CleanupPolicy { delete: false, compact: true },
        Policy::CompactDelete => {
            c.cleanup_policy = CleanupPolicy { delete: true, compact: true };
            c.retention_ms = Some(120_000);
        }
    }
    c
}

fn open(dir: &Path, config: &LogConfig, clock: &ManualClock) -> Log {
    Log::open(dir, TopicPartition::new("model", 0), config.clone(), Arc::new(clock.clone())).unwrap()
}

fn key_bytes(k: u8) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

/// Everything in the log, from its start to its end.
fn contents(log: &Log) -> BTreeMap<i64, ModelRecord> {
    let mut out = BTreeMap::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read_records(offset, 700).unwrap();
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        for r in records {
            out.insert(
                r.offset,
                ModelRecord {
                    key: r.key.map(|b| b.to_vec()),
                    value: r.value.map(|b| b.to_vec()),
                    timestamp: r.timestamp,
                },
            );
        }
    }
    out
}

fn run(policy: Policy, segment_bytes: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = config(policy, segment_bytes);
    let mut log = open(dir.path(), &config, &clock);
    let mut model: BTreeMap<i64, ModelRecord> = BTreeMap::new();
    let mut log_end = 0i64;
    let mut counter = 0u64;

    for op in ops {
        match op {
            Op::Append { codec, records } => {
                let codec = [
                    Compression::None,
                    Compression::Gzip,
                    Compression::Snappy,
                    Compression::Lz4,
                    Compression::Zstd,
                ][codec as usize];
                let mut b = RecordBatchBuilder::new(codec);
                let mut pending = Vec::new();
                for (k, v, jitter) in records {
                    counter += 1;
                    let key = k.map(key_bytes);
                    let value = v.map(|len| {
                        let mut bytes = counter.to_string().into_bytes();
                        bytes.resize(bytes.len() + len as usize, b'x');
                        bytes
                    });
                    let ts = clock.now_ms() + i64::from(jitter);
                    b.append(ts, key.as_deref(), value.as_deref(), &[]);
                    pending.push(ModelRecord { key, value, timestamp: ts });
                }
                let info = log.append(&mut b.build(0).unwrap()).unwrap();
                prop_assert_eq!(info.first_offset, log_end);
                for r in pending {
                    model.insert(log_end, r);
                    log_end += 1;
                }
                prop_assert_eq!(info.last_offset, log_end - 1);
            }
            Op::Read { at, max_bytes } => {
                let start = log.log_start_offset();
                let span = (log_end - start + 1).max(1);
                let offset = start + i64::from(at) % span;
                let got = log.read_records(offset, max_bytes as usize).unwrap();
                let want: Vec<_> = model.range(offset..).take(got.len()).collect();
                prop_assert_eq!(got.is_empty(), model.range(offset..).next().is_none());
                for (r, (o, m)) in got.iter().zip(want) {
                    prop_assert_eq!(r.offset, *o);
                    prop_assert_eq!(r.key.as_deref(), m.key.as_deref());
                    prop_assert_eq!(r.value.as_deref(), m.value.as_deref());
                    prop_assert_eq!(r.timestamp, m.timestamp);
                }
            }
            Op::Roll => log.roll().unwrap(),
            Op::Reopen { clean } => {
                if clean {
                    log.close().unwrap();
                }
                drop(log);
                log = open(dir.path(), &config, &clock);
            }
            Op::Advance { ms } => clock.advance(i64::from(ms)),
            Op::Retention => {
                let before = log.segments();
                let old_start = log.log_start_offset();
                let now = clock.now_ms();
                let report = log.delete_old_segments(now).unwrap();
                let start = log.log_start_offset();
                prop_assert!(start >= old_start && start <= log_end);
                let removed: Vec<_> = model.range(..start).map(|(o, r)| (*o, r.clone())).collect();
                if let Some(ms) = config.retention_ms.filter(|_| config.retention_bytes.is_none()) {
                    for (o, r) in &removed {
                        prop_assert!(
                            r.timestamp < now - ms,
                            "offset {} (ts {}) deleted too early",
                            o,
                            r.timestamp
                        );
                    }
                }
                if let Some(limit) = config.retention_bytes {
                    let after = log.segments();
                    let sealed: Vec<_> = after.iter().filter(|s| !s.active).collect();
                    let total: u64 = after.iter().map(|s| s.size_bytes).sum();
                    if let Some(first) = sealed.first() {
                        prop_assert!(total.saturating_sub(limit) < first.size_bytes, "too little deleted");
                    }
                    prop_assert!(report.segments_deleted <= before.len());
                }
                model = model.split_off(&start);
            }
            Op::Compact { force } => {
                let now = clock.now_ms();
                // The cleanable range: sealed segments up to the first one with a record
                // younger than min.compaction.lag.ms (timestamps may lie in the future).
                let segments = log.segments();
                let cleanable: Vec<_> = segments
                    .iter()
                    .take_while(|s| {
                        !s.active
                            && (s.size_bytes == 0 || now - s.max_timestamp >= config.min_compaction_lag_ms)
                    })
                    .collect();
                let clean_end = segments[cleanable.len()].base_offset;
                let report = log.compact(now, force).unwrap();
                if force && config.cleanup_policy.compact {
                    let has_data = cleanable.iter().any(|s| s.size_bytes > 0);
                    prop_assert_eq!(report.ran, has_data);
                }
                let active_base = clean_end;
                if report.ran {
                    let mut latest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
                    for (o, r) in model.range(..active_base) {
                        if let Some(k) = &r.key {
                            latest.insert(k.clone(), *o);
                        }
                    }
                    model.retain(|o, r| {
                        if *o >= active_base {
                            return true;
                        }
                        match &r.key {
                            None => true,
                            Some(k) => {
                                let expired =
                                    r.value.is_none() && r.timestamp + config.delete_retention_ms <= now;
                                latest[k] == *o && !expired
                            }
                        }
                    });
                }
            }
            Op::FindTimestamp { back_ms } => {
                let target = clock.now_ms() - i64::from(back_ms);
                let start = log.log_start_offset();
                let want =
                    model.range(start..).find(|(_, r)| r.timestamp >= target).map(|(o, r)| (*o, r.timestamp));
                prop_assert_eq!(log.offset_for_timestamp(target).unwrap(), want);
            }
        }
        prop_assert_eq!(log.log_end_offset(), log_end);
        prop_assert_eq!(contents(&log), model.clone());
    }
    Ok(())
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::DeleteByTime),
        Just(Policy::DeleteByBytes),
        Just(Policy::Compact),
        Just(Policy::CompactDelete),
    ]
}

proptest! {
    // PROPTEST_CASES=5000 for a longer hunt.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
    ))]

    #[test]
    fn log_agrees_with_the_model(
        policy in policy(),
        segment_bytes in 200u64..3000,
        ops in prop::collection::vec(op(), 1..45),
    ) {
        run(policy, segment_bytes, ops)?;
    }
}
