//! Postgres sink benchmark: `cargo bench --bench pg_sink`.
//!
//! 1,000,000 records (`RUNNEL_BENCH_ROWS`) of ~100-byte rows, JSON with
//! schemas as the CDC source writes them (key `{id}`, value `{id, payload,
//! n}`), in a topic of 4 partitions on the embedded cluster. Then, in the
//! same run against one throwaway PostgreSQL:
//!
//! 1. **Reference**: `psql` `\copy` of the same rows (CSV) into an empty
//!    table with the same primary key.
//! 2. **Sink**: a worker runs `PostgresSink` (`insert.mode=upsert`,
//!    `primary.key.mode=record_key`, one task, the table created by the
//!    sink) from the beginning of the topic until its offsets table holds
//!    every record: rows/s and the ratio to the reference. Runs with the
//!    worker's `consumer.max.poll.records` of 500 (Kafka's default: one
//!    transaction per 500 rows) and of 5,000 (`batch.size` 5,000).
//!
//! Targets (issue 20): ≥ 0.5× the `\copy` rate and ≥ 100,000 rows/s.

use runnel_testkit::postgres;
#[path = "support/rss.rs"]
mod rss;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use runnel::connect::plugin::PluginRegistry;
use runnel::connect::worker::{State, Worker, WorkerConfig};
use runnel::core::client::{Cluster, ProducerConfig, ProducerRecord};
use runnel::core::topic::NewTopic;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const TOPIC: &str = "bench.public.rows";
const PARTITIONS: i32 = 4;

fn payload(i: u64) -> String {
    format!("{:032x}{:032x}abcdefghijklmnopqrstuvwxyz0123456789", i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i)
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("RUNNEL_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let pg = postgres::TestPostgres::start_with(&["max_wal_size = 8GB", "checkpoint_timeout = 30min"])
        .expect("the pg_sink benchmark needs PostgreSQL server binaries (scripts/setup test)");
    let admin = pg.client("postgres").await;
    admin.batch_execute("CREATE DATABASE bench").await.unwrap();
    let db = pg.client("bench").await;

    // The input: JSON with schemas, as the CDC source and Debezium write it.
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().join("data").display())).await.unwrap();
    cluster.admin().create_topic(NewTopic::new(TOPIC, PARTITIONS)).await.unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let key_schema = r#"{"type":"struct","name":"bench.public.rows.Key","optional":false,"fields":[{"field":"id","type":"int64","optional":false}]}"#;
    let value_schema = r#"{"type":"struct","name":"bench.public.rows.Value","optional":true,"fields":[{"field":"id","type":"int64","optional":false},{"field":"payload","type":"string","optional":false},{"field":"n","type":"int64","optional":false}]}"#;
    let csv_path = dir.path().join("rows.csv");
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path).unwrap());
    let start = Instant::now();
    let mut in_flight = Vec::new();
    for i in 0..rows {
        let p = payload(i);
        let key = format!(r#"{{"schema":{key_schema},"payload":{{"id":{i}}}}}"#);
        let value =
            format!(r#"{{"schema":{value_schema},"payload":{{"id":{i},"payload":"{p}","n":{}}}}}"#, i % 1000);
        writeln!(csv, "{i},{p},{}", i % 1000).unwrap();
        in_flight.push(
            producer
                .enqueue(ProducerRecord::new(TOPIC).key(key.into_bytes()).value(value.into_bytes()))
                .await
                .unwrap(),
        );
        if in_flight.len() >= 50_000 {
            for f in in_flight.drain(..) {
                f.await.unwrap();
            }
        }
    }
    for f in in_flight.drain(..) {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
    csv.flush().unwrap();
    drop(csv);
    println!(
        "pg_sink benchmark: {rows} records (JSON with schemas, ~{} bytes of row) in {PARTITIONS} partitions, written in {:.1} s",
        payload(0).len() + 16,
        start.elapsed().as_secs_f64()
    );

    // 1. The reference: psql \copy into an empty table with the same key.
    db.batch_execute(
        "CREATE TABLE rows_copy (id bigint PRIMARY KEY, payload text NOT NULL, n bigint NOT NULL)",
    )
    .await
    .unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let started = Instant::now();
    let out = Command::new(pg.tool("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "bench",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .arg("-c")
        .arg(format!("\\copy rows_copy FROM '{}' WITH (FORMAT csv)", csv_path.display()))
        .env("PGPASSWORD", postgres::PASSWORD)
        .output()
        .unwrap();
    let copy_secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "psql \\copy: {}", String::from_utf8_lossy(&out.stderr));
    let copy_rate = rows as f64 / copy_secs;
    println!("reference (psql \\copy, CSV):                 {copy_rate:>10.0} rows/s  {copy_secs:.2} s");

    // 2. The sink, at two poll sizes.
    let mut best = 0.0f64;
    for (run, max_poll) in [(0, 500u32), (1, 5_000)] {
        let table = format!("rows_sink_{run}");
        let worker_props: BTreeMap<String, String> = [
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter".to_string()),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter".to_string()),
            ("offset.flush.interval.ms", "1000".to_string()),
            ("consumer.max.poll.records", max_poll.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut registry = PluginRegistry::new();
        runnel::connectors::register(&mut registry);
        let worker =
            Worker::with_cluster(WorkerConfig::from_props(&worker_props).unwrap(), registry, cluster.clone())
                .await
                .unwrap();
        let name = format!("sink-{run}");
        let props: HashMap<String, String> = [
            ("name", name.clone()),
            ("connector.class", "io.debezium.connector.jdbc.JdbcSinkConnector".into()),
            ("topics", TOPIC.into()),
            ("connection.url", format!("jdbc:postgresql://127.0.0.1:{}/bench", pg.port())),
            ("connection.username", "postgres".into()),
            ("connection.password", postgres::PASSWORD.into()),
            ("insert.mode", "upsert".into()),
            ("primary.key.mode", "record_key".into()),
            ("schema.evolution", "basic".into()),
            ("collection.name.format", table.clone()),
            ("batch.size", max_poll.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let started = Instant::now();
        worker.add_connector(props).await.unwrap();
        let deadline = started + Duration::from_secs(900);
        loop {
            let applied: i64 = db
                .query_one(
                    "SELECT coalesce(sum(next_offset), 0)::bigint FROM __runnel_sink_offsets WHERE connector = $1",
                    &[&name],
                )
                .await
                .map(|r| r.get(0))
                .unwrap_or(0);
            if applied as u64 >= rows {
                break;
            }
            if let Some(t) = worker.status().task(&name, 0) {
                assert_ne!(t.state, State::Failed, "{:?}", t.trace);
            }
            assert!(Instant::now() < deadline, "{applied} of {rows} rows after 15 min");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        worker.shutdown().await.unwrap();
        let count: i64 = db.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0);
        assert_eq!(count as u64, rows, "rows in {table}");
        let diff: i64 = db
            .query_one(
                &format!(
                    "SELECT count(*) FROM ((SELECT * FROM rows_copy EXCEPT SELECT id, payload, n FROM {table}) \
                     UNION ALL (SELECT id, payload, n FROM {table} EXCEPT SELECT * FROM rows_copy)) d"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(diff, 0, "{table} differs from the \\copy of the same rows");
        let rate = rows as f64 / secs;
        best = best.max(rate);
        println!(
            "PostgresSink, upsert, max.poll.records {max_poll:>5}:    {rate:>10.0} rows/s  {secs:.2} s ({:.2}x \\copy); table equal to the \\copy's",
            rate / copy_rate
        );
    }
    println!(
        "target >= 0.5x \\copy and >= 100000 rows/s (best run): {} ({:.2}x, {best:.0} rows/s)",
        if best >= 0.5 * copy_rate && best >= 100_000.0 { "met" } else { "MISSED" },
        best / copy_rate
    );
    println!("peak RSS: {:.0} MiB", rss::peak_rss_mib());
    cluster.close().await.unwrap();
}
