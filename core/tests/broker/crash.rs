//! Crash test: a child process appends with `flush.messages=1` and prints an
//! acknowledgement after each append returns; the parent kills it with
//! SIGKILL at random moments, many rounds. After every kill the log must
//! reopen, hold every acknowledged batch intact, and accept appends again.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{batch, open_log, value_for, Rng};
use runnel_core::log::LogConfig;
use runnel_core::record::Compression;

const CHILD_ENV: &str = "RUNNEL_CRASH_CHILD_DIR";
const ROUND_ENV: &str = "RUNNEL_CRASH_CHILD_ROUND";

fn config() -> LogConfig {
    LogConfig {
        flush_messages: Some(1),
        segment_bytes: 64 * 1024,
        index_interval_bytes: 512,
        ..LogConfig::default()
    }
}

/// The child side: appends forever until killed. Only runs when the parent
/// starts this binary with the child environment (hence `#[ignore]`).
#[test]
#[ignore = "run by crash_at_random_moments_never_loses_an_acknowledged_batch as a child process"]
fn crash_child() {
    let dir = std::env::var(CHILD_ENV).expect("child started without a directory");
    let round: u64 = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let log = open_log(dir.as_ref(), config()).unwrap();
    let codecs =
        [Compression::None, Compression::Lz4, Compression::Zstd, Compression::Snappy, Compression::Gzip];
    for i in 0.. {
        let id = round * 1_000_000 + i;
        let n = 1 + (i as usize * 7) % 40;
        let mut bytes = batch(id, n, codecs[i as usize % codecs.len()]);
        let info = log.append(&mut bytes).unwrap();
        assert!(info.flushed);
        println!("ack {id} {} {}", info.first_offset, info.record_count);
    }
}

#[derive(Debug, Clone, Copy)]
struct Ack {
    id: u64,
    first_offset: i64,
    count: usize,
}

#[test]
fn crash_at_random_moments_never_loses_an_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::from_time();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<Ack> = Vec::new();
    let rounds = 25;
    for round in 1..=rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                &runnel_testkit::test_name(module_path!(), "crash_child"),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parts: Vec<&str> = line.split_whitespace().collect();
                if parts.len() == 4 && parts[0] == "ack" {
                    acks.push(Ack {
                        id: parts[1].parse().unwrap(),
                        first_offset: parts[2].parse().unwrap(),
                        count: parts[3].parse().unwrap(),
                    });
                }
            }
            acks
        });
        std::thread::sleep(Duration::from_millis(30 + rng.below(120)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let new_acks = reader.join().unwrap();
        acked.extend(new_acks.iter().copied());

        let log =
            open_log(dir.path(), config()).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        for ack in &acked {
            let records = log.read_records(ack.first_offset, 1).unwrap();
            let batch_records: Vec<_> =
                records.into_iter().filter(|r| r.offset < ack.first_offset + ack.count as i64).collect();
            assert_eq!(batch_records.len(), ack.count, "round {round}: batch {} incomplete", ack.id);
            for (j, r) in batch_records.iter().enumerate() {
                assert_eq!(r.offset, ack.first_offset + j as i64);
                assert_eq!(
                    r.value.as_deref(),
                    Some(&value_for(ack.id, j)[..]),
                    "round {round}: batch {}",
                    ack.id
                );
            }
        }
        let end = acked.last().map_or(0, |a| a.first_offset + a.count as i64);
        assert!(log.log_end_offset() >= end, "round {round}: log end below the last ack");
        // Appends continue after recovery.
        let info = log.append(&mut batch(u64::MAX / 2 + round, 3, Compression::None)).unwrap();
        assert_eq!(info.first_offset, log.log_end_offset() - 3);
        if round % 2 == 0 {
            log.close().unwrap();
        }
        eprintln!(
            "round {round}: {} acks this round, {} total, log end {}",
            new_acks.len(),
            acked.len(),
            log.log_end_offset()
        );
    }
    assert!(acked.len() > rounds as usize * 5, "children made progress before being killed");
}
