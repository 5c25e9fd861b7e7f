//! The embedded broker: topic administration, persistence, the data
//! directory lock (across processes), offline partitions, and background
//! maintenance.

use crate::common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::batch;
use runnel_core::broker::{Broker, BrokerConfig, METADATA_FILE};
use runnel_core::log::{file_name, LOG_SUFFIX};
use runnel_core::record::{Compression, RecordBatchBuilder};
use runnel_core::time::{Clock, ManualClock};
use runnel_core::topic::NewTopic;
use runnel_core::Error;

fn quiet() -> BrokerConfig {
    BrokerConfig { background_maintenance: false, ..BrokerConfig::default() }
}

#[test]
fn topics_are_created_described_grown_and_deleted_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path(), quiet()).unwrap();
        broker
            .create_topic(
                NewTopic::new("orders", 3).config("segment.bytes", "4096").config("retention.ms", "-1"),
            )
            .unwrap();
        broker.create_topic(NewTopic::new("audit.log", 1)).unwrap();
        assert_eq!(broker.list_topics(), vec!["audit.log".to_string(), "orders".to_string()]);
        for p in 0..3 {
            broker.log("orders", p).unwrap().append(&mut batch(p as u64, 10, Compression::Lz4)).unwrap();
        }
        broker.create_partitions("orders", 5).unwrap();
        broker.log("orders", 4).unwrap().append(&mut batch(9, 2, Compression::None)).unwrap();
        broker.close().unwrap();
    }
    let broker = Broker::open(dir.path(), quiet()).unwrap();
    let d = broker.describe_topic("orders").unwrap();
    assert_eq!(d.partitions.len(), 5);
    assert_eq!(d.configs.get("segment.bytes").map(String::as_str), Some("4096"));
    let ends: Vec<i64> = d.partitions.iter().map(|p| p.log_end_offset).collect();
    assert_eq!(ends, vec![10, 10, 10, 0, 2]);
    assert_eq!(
        broker.log("orders", 0).unwrap().config().segment_bytes,
        4096,
        "overrides apply after restart"
    );
    assert_eq!(broker.log("orders", 0).unwrap().config().retention_ms, None);

    broker.delete_topic("orders").unwrap();
    assert_eq!(broker.list_topics(), vec!["audit.log".to_string()]);
    assert!(!dir.path().join("orders-0").exists(), "partition directories are removed");
    assert!(matches!(broker.log("orders", 0), Err(Error::UnknownTopic(_))));
    broker.create_topic(NewTopic::new("orders", 1)).unwrap();
    assert_eq!(broker.log("orders", 0).unwrap().log_end_offset(), 0, "a re-created topic starts empty");
    broker.close().unwrap();
    drop(broker);
    let broker = Broker::open(dir.path(), quiet()).unwrap();
    assert_eq!(broker.partition_count("orders").unwrap(), 1);
}

#[test]
fn bad_admin_requests_are_rejected_with_what_was_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), quiet()).unwrap();
    broker.create_topic(NewTopic::new("a.b", 1)).unwrap();
    let cases: Vec<(NewTopic, &str)> = vec![
        (NewTopic::new("a.b", 1), "already exists"),
        (NewTopic::new("a_b", 1), "collides with existing topic 'a.b'"),
        (NewTopic::new("bad name", 1), "not allowed"),
        (NewTopic::new("x".repeat(250), 1), "longer than the maximum of 249"),
        (NewTopic::new("zero", 0), "not between 1 and"),
        (NewTopic::new("cfg", 1).config("retention.ms", "soon"), "retention.ms"),
        (NewTopic::new("cfg", 1).config("no.such.key", "1"), "no.such.key"),
        (NewTopic::new("cfg", 1).config("cleanup.policy", "archive"), "cleanup.policy"),
    ];
    for (topic, needle) in cases {
        let name = topic.name.clone();
        let err = broker.create_topic(topic).unwrap_err().to_string();
        assert!(err.contains(needle), "{name}: {err}");
    }
    assert!(broker.create_partitions("a.b", 1).unwrap_err().to_string().contains("must be larger"));
    assert!(matches!(broker.create_partitions("nope", 3), Err(Error::UnknownTopic(_))));
    assert!(matches!(broker.delete_topic("nope"), Err(Error::UnknownTopic(_))));
    assert!(matches!(broker.log("a.b", 1), Err(Error::UnknownPartition(_))));
    assert_eq!(broker.list_topics(), vec!["a.b".to_string()], "nothing was created by a failed request");
}

#[test]
#[ignore = "run by a_data_directory_is_held_by_one_process_at_a_time as a child process"]
fn lock_child() {
    let dir = std::env::var("RUNNEL_LOCK_CHILD_DIR").unwrap();
    match Broker::open(&dir, quiet()) {
        Ok(_) => println!("child: opened"),
        Err(e) => println!("child: {e}"),
    }
}

#[test]
fn a_data_directory_is_held_by_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let run_child = || {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                &runnel_testkit::test_name(module_path!(), "lock_child"),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("RUNNEL_LOCK_CHILD_DIR", dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let at = stdout.find("child: ").unwrap_or_else(|| panic!("child printed no verdict: {stdout}"));
        stdout[at..].lines().next().unwrap().to_string()
    };
    let broker = Broker::open(dir.path(), quiet()).unwrap();
    let refused = run_child();
    assert!(refused.contains("is in use by another process"), "{refused}");
    assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");
    // In the same process, too.
    assert!(matches!(Broker::open(dir.path(), quiet()), Err(Error::DataDirLocked { .. })));
    broker.close().unwrap();
    drop(broker);
    assert_eq!(run_child(), "child: opened");
}

#[test]
fn a_damaged_partition_goes_offline_and_the_others_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = Broker::open(dir.path(), quiet()).unwrap();
        broker.create_topic(NewTopic::new("t", 2).config("segment.bytes", "2048")).unwrap();
        for p in 0..2 {
            let log = broker.log("t", p).unwrap();
            for i in 0..30 {
                log.append(&mut batch(i, 3, Compression::None)).unwrap();
            }
        }
        broker.close().unwrap();
    }
    // Cut a sealed segment of partition 1 short.
    let sealed = dir.path().join("t-1").join(file_name(0, LOG_SUFFIX));
    let len = std::fs::metadata(&sealed).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&sealed).unwrap().set_len(len - 10).unwrap();

    let broker = Broker::open(dir.path(), quiet()).unwrap();
    let d = broker.describe_topic("t").unwrap();
    assert!(d.partitions[0].offline_reason.is_none());
    let reason = d.partitions[1].offline_reason.clone().expect("partition 1 is offline");
    assert!(reason.contains(&sealed.display().to_string()), "{reason}");
    match broker.log("t", 1) {
        Err(Error::PartitionOffline { reason, .. }) => assert!(reason.contains("corrupt")),
        other => panic!("expected offline, got {other:?}"),
    }
    let log = broker.log("t", 0).unwrap();
    assert_eq!(log.read_records(0, 1 << 20).unwrap()[0].offset, 0);
    log.append(&mut batch(1, 1, Compression::None)).unwrap();
}

#[test]
fn a_damaged_topic_registry_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    Broker::open(dir.path(), quiet()).unwrap().create_topic(NewTopic::new("t", 1)).unwrap();
    std::fs::write(dir.path().join(METADATA_FILE), b"{\"version\":1,\"topics\":[{\"name\":").unwrap();
    let err = Broker::open(dir.path(), quiet()).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { path, .. } if path.ends_with(METADATA_FILE)), "{err}");
}

#[test]
fn maintenance_applies_retention_and_compaction_at_the_given_time() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let config = BrokerConfig { clock: Arc::new(clock.clone()), ..quiet() };
    let broker = Broker::open(dir.path(), config).unwrap();
    broker
        .create_topic(
            NewTopic::new("events", 1).config("segment.bytes", "1024").config("retention.ms", "60000"),
        )
        .unwrap();
    broker
        .create_topic(
            NewTopic::new("profiles", 1)
                .config("segment.bytes", "1024")
                .config("cleanup.policy", "compact")
                .config("min.cleanable.dirty.ratio", "0.01"),
        )
        .unwrap();
    let now = clock.now_ms();
    let events = broker.log("events", 0).unwrap();
    let profiles = broker.log("profiles", 0).unwrap();
    for i in 0..50 {
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.append(now, Some(b"user"), Some(format!("v{i}").as_bytes()), &[]);
        events.append(&mut b.build(0).unwrap()).unwrap();
        profiles.append(&mut b.build(0).unwrap()).unwrap();
    }
    let report = broker.run_maintenance(clock.now_ms());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.retention.is_empty(), "nothing is old yet");
    assert_eq!(report.compaction.len(), 1, "the compacted topic is dirty");
    clock.advance(61_000);
    let report = broker.run_maintenance(clock.now_ms());
    assert_eq!(report.retention.len(), 1);
    assert_eq!(events.log_start_offset(), 50, "all expired, the active segment rolled and deleted");
    assert!(report.compaction.is_empty(), "nothing new to compact");
    let mut kept = Vec::new();
    let mut offset = 0;
    while offset < profiles.log_end_offset() {
        let records = profiles.read_records(offset, 1 << 20).unwrap();
        offset = records.last().unwrap().offset + 1;
        kept.extend(records);
    }
    assert!(
        kept.len() < 50 && kept.iter().any(|r| r.value.as_deref() == Some(&b"v49"[..])),
        "{}",
        kept.len()
    );
}

#[test]
fn the_background_thread_runs_retention_and_timed_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        retention_check_interval_ms: 20,
        flush_scheduler_interval_ms: 20,
        ..BrokerConfig::default()
    };
    let broker = Broker::open(dir.path(), config).unwrap();
    broker
        .create_topic(NewTopic::new("old", 1).config("retention.ms", "1000").config("segment.bytes", "1024"))
        .unwrap();
    let log = broker.log("old", 0).unwrap();
    for _ in 0..20 {
        // Timestamps an hour in the past: already expired.
        let mut b = RecordBatchBuilder::new(Compression::None);
        b.append(runnel_core::time::SystemClock.now_ms() - 3_600_000, None, Some(&[7u8; 100]), &[]);
        log.append(&mut b.build(0).unwrap()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.log_start_offset() < 20 {
        assert!(Instant::now() < deadline, "the background thread never deleted the expired segments");
        std::thread::sleep(Duration::from_millis(10));
    }
    broker.close().unwrap();
}

#[test]
fn compaction_runs_while_appends_and_reads_continue() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(dir.path(), quiet()).unwrap();
    broker
        .create_topic(
            NewTopic::new("kv", 1).config("segment.bytes", "65536").config("cleanup.policy", "compact"),
        )
        .unwrap();
    let log = broker.log("kv", 0).unwrap();
    let write = |log: &runnel_core::log::Log, from: u64, to: u64| {
        for i in from..to {
            let mut b = RecordBatchBuilder::new(Compression::None);
            for j in 0..20 {
                let key = format!("key-{}", (i * 20 + j) % 500);
                b.append(1_700_000_000_000, Some(key.as_bytes()), Some(format!("{i}-{j}").as_bytes()), &[]);
            }
            log.append(&mut b.build(0).unwrap()).unwrap();
        }
    };
    write(&log, 0, 3000);
    log.roll().unwrap();

    let compacting = Arc::new(AtomicBool::new(true));
    let appended_during = Arc::new(AtomicU64::new(0));
    let appender = {
        let log = log.clone();
        let compacting = compacting.clone();
        let appended_during = appended_during.clone();
        std::thread::spawn(move || {
            let mut i = 3000;
            while compacting.load(Ordering::Acquire) {
                write(&log, i, i + 1);
                let _ = log.read_records(log.log_end_offset() - 1, 1 << 16).unwrap();
                appended_during.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            i
        })
    };
    while appended_during.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let before = appended_during.load(Ordering::Relaxed);
    let report = log.compact(1_700_000_000_000, true).unwrap();
    let during = appended_during.load(Ordering::Relaxed) - before;
    compacting.store(false, Ordering::Release);
    let written_to = appender.join().unwrap();
    assert!(report.ran && report.records_removed > 50_000, "{report:?}");
    assert!(during > 0, "appends completed while compaction ran");

    // Every key still reads back its latest value.
    let mut latest = std::collections::HashMap::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read_records(offset, 1 << 20).unwrap();
        offset = records.last().unwrap().offset + 1;
        for r in records {
            latest.insert(r.key.unwrap(), r.value.unwrap());
        }
    }
    assert_eq!(latest.len(), 500);
    let last_batch = written_to - 1;
    for j in 0..20u64 {
        let key = format!("key-{}", (last_batch * 20 + j) % 500);
        assert_eq!(latest[key.as_bytes()], format!("{last_batch}-{j}").as_bytes());
    }
}
