//! Postgres CDC benchmark: `cargo bench --bench cdc`.
//!
//! A throwaway PostgreSQL (wal_level=logical) gets 1,000,000 row changes
//! — 60% inserts, 30% updates, 10% deletes of ~100-byte rows — committed in
//! 1,000-row transactions. Then, in the same run:
//!
//! 1. **Reference**: `pg_recvlogical` reads the same WAL from a slot of its
//!    own with pgoutput (protocol 1, the same publication) to /dev/null.
//! 2. **Throughput**: `PostgresCdcSource` reads it from its slot into the
//!    embedded log with the JSON converter (schemas on, as Debezium's
//!    default), until every event and tombstone is stored: changes/s, MB/s
//!    of stored records, and the ratio to the reference.
//! 3. **Latency**: with the connector running (and the previous phase's
//!    dirty pages written back with `sync`), changes are committed at a
//!    paced 20,000/s (20 transactions of 1,000 per second) for 10 s; the
//!    latency of a transaction is from its COMMIT returning to its last
//!    record being in the log (p50, p99, max).
//!
//! Peak RSS is printed (memory is bounded by `max.queue.size`).
//! `RUNNEL_BENCH_CHANGES` sets the change count (default 1,000,000).

use runnel_testkit::postgres;
#[path = "support/rss.rs"]
mod rss;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use runnel::connect::plugin::PluginRegistry;
use runnel::connect::worker::{Worker, WorkerConfig};
use runnel::core::client::{Cluster, ConsumerConfig};
use runnel::core::topic::TopicPartition;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const TOPIC: &str = "bench.public.rows";
const TRANSACTION_ROWS: u64 = 1_000;
const TARGET_CHANGES_PER_S: f64 = 100_000.0;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One transaction of 1,000 changes on rows `[base, base + 1000)`: 600
/// inserts of new rows, 300 updates and 100 deletes of rows inserted by
/// the transaction before (so every update and delete hits a row).
fn transaction(t: u64) -> String {
    let base = t * 600;
    let payload = "repeat(md5(g::text), 2) || 'abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefgh'";
    let mut sql = format!(
        "BEGIN; INSERT INTO rows SELECT g, {payload}, g FROM generate_series({base}, {}) g;",
        base + 599
    );
    if t > 0 {
        let prev = base - 600;
        sql.push_str(&format!("UPDATE rows SET n = n + 1 WHERE id BETWEEN {prev} AND {};", prev + 299));
        sql.push_str(&format!("DELETE FROM rows WHERE id BETWEEN {} AND {};", prev + 300, prev + 399));
    } else {
        sql.push_str("UPDATE rows SET n = n + 1 WHERE id BETWEEN 0 AND 299;");
        // Not 300..399: the next transaction deletes those.
        sql.push_str("DELETE FROM rows WHERE id BETWEEN 400 AND 499;");
    }
    sql.push_str("COMMIT;");
    sql
}

/// Records (events and tombstones) transaction `t` produces.
const RECORDS_PER_TRANSACTION: u64 = 1_100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let changes = env_or("RUNNEL_BENCH_CHANGES", 1_000_000) / TRANSACTION_ROWS * TRANSACTION_ROWS;
    let transactions = changes / TRANSACTION_ROWS;
    let pg = postgres::TestPostgres::start_with(&["max_wal_size = 8GB", "checkpoint_timeout = 30min"])
        .expect("the CDC benchmark needs PostgreSQL server binaries (scripts/setup test)");
    let admin = pg.client("postgres").await;
    admin.batch_execute("CREATE DATABASE bench").await.unwrap();
    let db = pg.client("bench").await;
    for sql in [
        "CREATE TABLE rows (id bigint PRIMARY KEY, payload text NOT NULL, n bigint NOT NULL)",
        "CREATE PUBLICATION dbz_publication FOR ALL TABLES",
        "SELECT pg_create_logical_replication_slot('debezium', 'pgoutput')",
        "SELECT pg_create_logical_replication_slot('reference', 'pgoutput')",
    ] {
        db.batch_execute(sql).await.unwrap();
    }
    println!(
        "cdc benchmark: {changes} changes (60% insert, 30% update, 10% delete; rows of ~100 bytes) in {transactions} \
         transactions of {TRANSACTION_ROWS}"
    );
    let start = Instant::now();
    for t in 0..transactions {
        db.batch_execute(&transaction(t)).await.unwrap();
    }
    let end_lsn: String = db.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    let wal_bytes: i64 = db
        .query_one("SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = 'reference'", &[])
        .await
        .unwrap()
        .get(0);
    println!(
        "written in {:.1} s; {:.0} MB of WAL to decode",
        start.elapsed().as_secs_f64(),
        wal_bytes as f64 / 1e6
    );

    // 1. The reference: pg_recvlogical, pgoutput, to /dev/null.
    let recvlogical = pg.tool("pg_recvlogical");
    let started = Instant::now();
    let out = Command::new(&recvlogical)
        .args(["-h", "127.0.0.1", "-p", &pg.port().to_string(), "-U", "postgres", "-d", "bench"])
        .args(["--slot", "reference", "--start", "--no-loop", "-f", "/dev/null", "-E", &end_lsn])
        .args(["-o", "proto_version=1", "-o", "publication_names=dbz_publication"])
        .env("PGPASSWORD", postgres::PASSWORD)
        .output()
        .unwrap();
    let reference_secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "pg_recvlogical: {}", String::from_utf8_lossy(&out.stderr));
    let reference_rate = changes as f64 / reference_secs;
    println!("reference (pg_recvlogical, pgoutput → /dev/null): {reference_rate:>10.0} changes/s  {reference_secs:.2} s");

    // 2. The connector, into the embedded log with the JSON converter.
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().join("data").display())).await.unwrap();
    let worker_props: std::collections::BTreeMap<String, String> = [
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter"),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
        ("offset.flush.interval.ms", "1000"),
        ("producer.batch.size", "1048576"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut registry = PluginRegistry::new();
    runnel::connectors::register(&mut registry);
    let worker =
        Worker::with_cluster(WorkerConfig::from_props(&worker_props).unwrap(), registry, cluster.clone())
            .await
            .unwrap();
    let mut props: HashMap<String, String> = pg.connector_props("bench", "bench").into_iter().collect();
    props.insert("name".into(), "bench".into());
    props.insert("snapshot.mode".into(), "no_data".into());
    props.insert("status.update.interval.ms".into(), "1000".into());
    props.insert("poll.interval.ms".into(), "20".into());
    let max_queue = props.get("max.queue.size").cloned().unwrap_or_else(|| "8192".into());
    let watcher = cluster.consumer(ConsumerConfig::default().auto_commit(false)).unwrap();
    let tp = [TopicPartition::new(TOPIC, 0)];
    let stored = |watcher: &runnel::core::client::Consumer| -> u64 {
        watcher.end_offsets(&tp).ok().and_then(|e| e.get(&tp[0]).copied()).unwrap_or(0).max(0) as u64
    };
    let expected = transactions * RECORDS_PER_TRANSACTION;
    let started = Instant::now();
    worker.add_connector(props).await.unwrap();
    let deadline = started + Duration::from_secs(900);
    while stored(&watcher) < expected {
        assert!(Instant::now() < deadline, "{} of {expected} records after 15 min", stored(&watcher));
        if let Some(t) = worker.status().task("bench", 0) {
            assert_ne!(t.state, runnel::connect::worker::State::Failed, "{:?}", t.trace);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let log_bytes: u64 = walk_size(&dir.path().join("data").join(format!("{TOPIC}-0")));
    let rate = changes as f64 / secs;
    println!(
        "PostgresCdcSource → embedded log (JSON):         {rate:>10.0} changes/s  {:.2} s, {expected} records, {:.1} MB/s stored",
        secs,
        log_bytes as f64 / secs / 1e6
    );
    println!("ratio to pg_recvlogical: {:.2} (target >= 0.70)", rate / reference_rate);
    println!(
        "peak RSS after the throughput run: {:.0} MiB (max.queue.size = {max_queue})",
        rss::peak_rss_mib()
    );

    // 3. Latency at a paced 20,000 changes/s. The throughput run left
    // hundreds of MB of dirty pages (the log, PostgreSQL's WAL); they are
    // written back first, so the paced run measures the pipeline at that
    // rate, not the kernel's writeback of the previous phase.
    let synced = Instant::now();
    let _ = Command::new("sync").status();
    println!("page cache written back before the paced run in {:.1} s", synced.elapsed().as_secs_f64());
    let paced_transactions = 200u64;
    let interval = Duration::from_millis(50);
    let base_records = stored(&watcher);
    let mut commits = Vec::with_capacity(paced_transactions as usize);
    let mut latencies = Vec::with_capacity(paced_transactions as usize);
    let mut next = Instant::now();
    let mut t = transactions;
    let mut seen = 0usize;
    let watch = |commits: &Vec<Instant>, latencies: &mut Vec<Duration>, seen: &mut usize| {
        let now_stored = stored(&watcher) - base_records;
        while *seen < commits.len() && now_stored >= (*seen as u64 + 1) * RECORDS_PER_TRANSACTION {
            latencies.push(commits[*seen].elapsed());
            *seen += 1;
        }
    };
    while commits.len() < paced_transactions as usize {
        while Instant::now() < next {
            watch(&commits, &mut latencies, &mut seen);
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        next += interval;
        db.batch_execute(&transaction(t)).await.unwrap();
        commits.push(Instant::now());
        t += 1;
        watch(&commits, &mut latencies, &mut seen);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < commits.len() {
        assert!(Instant::now() < deadline, "paced records missing");
        watch(&commits, &mut latencies, &mut seen);
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    // A latency is recorded when the watcher sees it, up to 0.5 ms late.
    latencies.sort();
    let (p50, p99, max) =
        (percentile(&latencies, 0.50), percentile(&latencies, 0.99), *latencies.last().unwrap());
    println!(
        "latency at 20,000 changes/s, COMMIT → last record of the transaction in the log: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms (target p99 <= 100 ms)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    println!("peak RSS: {:.0} MiB", rss::peak_rss_mib());
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: >= 0.7x pg_recvlogical: {}; >= 100k changes/s: {}; p99 <= 100 ms: {}",
        met(rate >= 0.7 * reference_rate),
        met(rate >= TARGET_CHANGES_PER_S),
        met(p99 <= Duration::from_millis(100))
    );
}

fn walk_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(|e| e.ok()).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}
