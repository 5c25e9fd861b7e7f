//! The Postgres CDC source survives kill -9: a `runnel connect` worker
//! process streaming 200,000 row changes from four concurrent writers is
//! SIGKILLed five times and restarted on the same data directory. After the
//! last restart the table rebuilt from the topic (latest value per key,
//! tombstones as deletes) must equal the source table, and every committed
//! change must be in the topic; duplicates (only ever a replay of what was
//! not yet committed when a worker died) are counted and printed.

use runnel_testkit::kill;
use runnel_testkit::postgres;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::TestPostgres;
use runnel::core::client::{Cluster, ConsumerConfig};
use runnel::core::topic::TopicPartition;

const WRITERS: i64 = 4;
const CHANGES_PER_WRITER: i64 = 50_000;
const KEYS_PER_WRITER: i64 = 2_000;
const CHANGES_PER_TRANSACTION: i64 = 20;

fn spawn_worker(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("connect")
        .arg(dir.join("worker.properties"))
        .arg(dir.join("cdc.json"))
        .env("RUNNEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// What one writer committed: per key, the changes in commit order as
/// `(op, value)` with `op` `c`, `u` or `d` (for a delete, the value
/// deleted). Values are unique, so each change is identified by them.
type Committed = BTreeMap<i64, Vec<(char, i64)>>;

/// Writes inserts, updates and deletes over its own keys, in transactions.
async fn writer(pg: &TestPostgres, w: i64) -> Committed {
    let client = pg.client("crash").await;
    let mut committed = Committed::new();
    let mut present: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64);
    let mut n = 0;
    while n < CHANGES_PER_WRITER {
        let mut sql = String::from("BEGIN;");
        let mut batch = Vec::new();
        for _ in 0..CHANGES_PER_TRANSACTION {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = w * KEYS_PER_WRITER + (state % KEYS_PER_WRITER as u64) as i64;
            let value = w * 1_000_000_000 + n;
            n += 1;
            let (op, value) = match present.entry(key) {
                std::collections::hash_map::Entry::Vacant(slot) => {
                    sql.push_str(&format!("INSERT INTO kv VALUES ({key}, {value}, {w}, repeat('p', 60));"));
                    slot.insert(value);
                    ('c', value)
                }
                std::collections::hash_map::Entry::Occupied(slot) if state % 5 == 0 => {
                    sql.push_str(&format!("DELETE FROM kv WHERE id = {key};"));
                    // The delete event's before image holds the deleted value.
                    ('d', slot.remove())
                }
                std::collections::hash_map::Entry::Occupied(mut slot) => {
                    sql.push_str(&format!("UPDATE kv SET v = {value} WHERE id = {key};"));
                    slot.insert(value);
                    ('u', value)
                }
            };
            batch.push((key, op, value));
        }
        sql.push_str("COMMIT;");
        client.batch_execute(&sql).await.unwrap();
        for (key, op, value) in batch {
            committed.entry(key).or_default().push((op, value));
        }
    }
    committed
}

/// Every record of the topic in order: key id and value (`None`: tombstone).
async fn topic(dir: &Path, topic: &str) -> Vec<(i64, Option<serde_json::Value>)> {
    let cluster = Cluster::open(&format!("file:{}", dir.join("data").display())).await.unwrap();
    let d = cluster.admin().describe_topic(topic).await.unwrap();
    let tps: Vec<TopicPartition> =
        (0..d.partitions.len() as i32).map(|p| TopicPartition::new(topic, p)).collect();
    let mut c = cluster.consumer(ConsumerConfig::default().auto_commit(false)).unwrap();
    c.assign(tps.clone()).unwrap();
    c.seek_to_beginning(&tps).unwrap();
    let ends = c.end_offsets(&tps).unwrap();
    let mut out = Vec::new();
    loop {
        let mut done = true;
        for tp in &tps {
            done &= c.position(tp).await.unwrap() >= ends[tp];
        }
        if done {
            break;
        }
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let key: serde_json::Value = serde_json::from_slice(&r.key.unwrap()).unwrap();
            let value = r.value.map(|v| serde_json::from_slice(&v).unwrap());
            out.push((key["id"].as_i64().unwrap(), value));
        }
    }
    cluster.close().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_five_times_loses_no_committed_change() {
    let Some(pg) = TestPostgres::start() else { return };
    let admin = pg.client("postgres").await;
    admin.batch_execute("CREATE DATABASE crash").await.unwrap();
    let db = pg.client("crash").await;
    // REPLICA IDENTITY FULL: a delete event carries the deleted value.
    db.batch_execute(
        "CREATE TABLE kv (id bigint PRIMARY KEY, v bigint NOT NULL, writer int NOT NULL, pad text);
         ALTER TABLE kv REPLICA IDENTITY FULL;",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("worker.properties"),
        format!(
            "cluster=file:{}\nkey.converter=org.apache.kafka.connect.json.JsonConverter\n\
             key.converter.schemas.enable=false\nvalue.converter=org.apache.kafka.connect.json.JsonConverter\n\
             value.converter.schemas.enable=false\noffset.flush.interval.ms=200\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut config: serde_json::Map<String, serde_json::Value> =
        pg.connector_props("crash", "crash").into_iter().map(|(k, v)| (k, v.into())).collect();
    config.insert("heartbeat.interval.ms".into(), "500".into());
    config.insert("status.update.interval.ms".into(), "500".into());
    std::fs::write(
        dir.path().join("cdc.json"),
        serde_json::json!({"name": "cdc", "config": config}).to_string(),
    )
    .unwrap();

    let worker = spawn_worker(dir.path());
    // The slot exists before the writers start, so every change is streamed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while db
        .query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'debezium'", &[])
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no slot after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pg = Arc::new(pg);
    let writing = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let pg = Arc::clone(&pg);
            tokio::spawn(async move { writer(&pg, w).await })
        })
        .collect();
    let killer = {
        let dir = dir.path().to_path_buf();
        kill::kill_while_writing(worker, 5, Duration::from_millis(1500), Arc::clone(&writing), move || {
            spawn_worker(&dir)
        })
    };
    let mut committed = Committed::new();
    for w in writers {
        committed.extend(w.await.unwrap());
    }
    writing.store(false, Ordering::Relaxed);
    let mut worker = killer.await.unwrap();
    // Done when the slot has confirmed everything written.
    let end: i64 = db.query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[]).await.unwrap().get(0);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let confirmed: Option<i64> = db
            .query_one("SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = 'debezium'", &[])
            .await
            .unwrap()
            .get(0);
        if confirmed.unwrap_or(0) >= end {
            break;
        }
        assert!(worker.try_wait().unwrap().is_none(), "the last worker exited");
        assert!(Instant::now() < deadline, "slot confirmed {confirmed:?} of {end} after 300 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status().unwrap().success());
    assert!(worker.wait().unwrap().success());

    // The table rebuilt from the topic equals the source table.
    let events = topic(dir.path(), "crash.public.kv").await;
    let mut rebuilt: BTreeMap<i64, i64> = BTreeMap::new();
    let mut seen: HashSet<(i64, char, i64)> = HashSet::new();
    let mut changes = 0u64;
    let mut duplicates = 0u64;
    for (key, value) in &events {
        let Some(value) = value else {
            rebuilt.remove(key);
            continue;
        };
        changes += 1;
        let op = value["op"].as_str().unwrap().chars().next().unwrap();
        let image = if op == 'd' { &value["before"] } else { &value["after"] };
        let v = image["v"].as_i64().unwrap();
        match op {
            'd' => {
                rebuilt.remove(key);
            }
            _ => {
                rebuilt.insert(*key, v);
            }
        }
        if !seen.insert((*key, op, v)) {
            duplicates += 1;
        }
    }
    let source: BTreeMap<i64, i64> =
        db.query("SELECT id, v FROM kv", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rebuilt.len(), source.len());
    assert!(rebuilt == source, "the table rebuilt from the topic differs from the source table");

    // Every committed change is in the topic.
    let total: usize = committed.values().map(Vec::len).sum();
    assert_eq!(total as i64, WRITERS * CHANGES_PER_WRITER);
    let mut missing = 0;
    for (key, list) in &committed {
        for (op, value) in list {
            if !seen.contains(&(*key, *op, *value)) {
                missing += 1;
            }
        }
    }
    println!(
        "{total} committed changes, {changes} change events in the topic ({duplicates} duplicates from replays after the 5 kills), {missing} missing"
    );
    assert_eq!(missing, 0, "committed changes missing from the topic");
}
