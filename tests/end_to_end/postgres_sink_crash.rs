//! CDC → Postgres sink survives kill -9: one `runnel connect` process runs
//! the CDC source on a table of 100,000 rows and the Postgres sink into
//! another database. Once the snapshot is in the sink, two writers commit
//! a mixed insert/update/delete workload while the process is SIGKILLed
//! five times and restarted on the same data directory. (A kill during the
//! snapshot makes the source take a new one, as Debezium does; rows
//! deleted between the two never reach the topic as deletes.) Afterwards the sink's table equals the source table,
//! and a trigger on the sink's offsets table shows every committed batch
//! moved its partition's offset forward: no batch was applied twice (a
//! change event the CDC source replayed after a kill is a second event, at
//! its own offset, applied idempotently as an upsert).

use runnel_testkit::kill;
use runnel_testkit::postgres;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::TestPostgres;

const ROWS: i64 = 100_000;
const WRITERS: i64 = 2;
const CHANGES_PER_WRITER: i64 = 15_000;
const CHANGES_PER_TRANSACTION: i64 = 25;

/// The worker process of the moment, killed if the test ends early.
#[derive(Clone, Default)]
struct CurrentWorker(Arc<std::sync::Mutex<Option<u32>>>);

impl CurrentWorker {
    fn set(&self, child: &Child) {
        *self.0.lock().unwrap() = Some(child.id());
    }
}

impl Drop for CurrentWorker {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) == 1 {
            if let Some(pid) = self.0.lock().unwrap().take() {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            }
        }
    }
}

fn spawn_worker(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("connect")
        .arg(dir.join("worker.properties"))
        .arg(dir.join("cdc.json"))
        .arg(dir.join("sink.json"))
        .env("RUNNEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Updates, deletes and inserts over the writer's share of the keys.
async fn writer(pg: &TestPostgres, w: i64) {
    let client = pg.client("source").await;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
    let mut n = 0;
    while n < CHANGES_PER_WRITER {
        let mut sql = String::from("BEGIN;");
        for _ in 0..CHANGES_PER_TRANSACTION {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Keys of writer w: w, w + WRITERS, … (some beyond ROWS: inserts).
            let key = w + WRITERS * (state % (ROWS as u64 * 11 / 10 / WRITERS as u64)) as i64;
            let value = (w + 1) * 1_000_000_000 + n;
            n += 1;
            match state % 10 {
                0 => sql.push_str(&format!("DELETE FROM orders WHERE id = {key};")),
                _ => sql.push_str(&format!(
                    "INSERT INTO orders VALUES ({key}, {value}, 'w{w}') \
                     ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, note = EXCLUDED.note;"
                )),
            }
        }
        sql.push_str("COMMIT;");
        client.batch_execute(&sql).await.unwrap();
    }
}

async fn rows(client: &tokio_postgres::Client) -> Vec<(i64, i64, Option<String>)> {
    client
        .query("SELECT id, v, note FROM orders ORDER BY id", &[])
        .await
        .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_into_the_sink_killed_five_times_ends_equal_with_no_batch_applied_twice() {
    let Some(pg) = TestPostgres::start() else { return };
    let admin = pg.client("postgres").await;
    for db in ["source", "target"] {
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    }
    let source = pg.client("source").await;
    source
        .batch_execute(&format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, v bigint NOT NULL, note text);
             INSERT INTO orders SELECT g, g, 'initial' FROM generate_series(0, {}) g;",
            ROWS - 1
        ))
        .await
        .unwrap();
    // The sink's offsets table, made beforehand with a trigger that logs
    // each committed offset move.
    let target = pg.client("target").await;
    target
        .batch_execute(
            "CREATE TABLE __runnel_sink_offsets (connector text NOT NULL, topic text NOT NULL, \
               partition integer NOT NULL, next_offset bigint NOT NULL, PRIMARY KEY (connector, topic, partition));
             CREATE TABLE offset_moves (partition integer, old_next bigint, new_next bigint);
             CREATE FUNCTION log_move() RETURNS trigger AS $$ BEGIN
               INSERT INTO offset_moves VALUES (NEW.partition,
                 CASE WHEN TG_OP = 'UPDATE' THEN OLD.next_offset END, NEW.next_offset);
               RETURN NULL; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER moves AFTER INSERT OR UPDATE ON __runnel_sink_offsets
               FOR EACH ROW EXECUTE FUNCTION log_move();",
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("worker.properties"),
        format!(
            "cluster=file:{}\nkey.converter=org.apache.kafka.connect.json.JsonConverter\n\
             value.converter=org.apache.kafka.connect.json.JsonConverter\noffset.flush.interval.ms=200\n\
             listeners=http://127.0.0.1:0\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut cdc: serde_json::Map<String, serde_json::Value> =
        pg.connector_props("source", "shop").into_iter().map(|(k, v)| (k, v.into())).collect();
    cdc.insert("table.include.list".into(), "public.orders".into());
    cdc.insert("status.update.interval.ms".into(), "500".into());
    std::fs::write(
        dir.path().join("cdc.json"),
        serde_json::json!({"name": "cdc", "config": cdc}).to_string(),
    )
    .unwrap();
    let sink = serde_json::json!({"name": "orders-sink", "config": {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "topics": "shop.public.orders",
        "connection.url": format!("jdbc:postgresql://127.0.0.1:{}/target", pg.port()),
        "connection.username": "postgres",
        "connection.password": postgres::PASSWORD,
        "insert.mode": "upsert",
        "primary.key.mode": "record_key",
        "delete.enabled": "true",
        "schema.evolution": "basic",
        "collection.name.format": "orders",
    }});
    std::fs::write(dir.path().join("sink.json"), sink.to_string()).unwrap();

    let current = CurrentWorker::default();
    let worker = spawn_worker(dir.path());
    current.set(&worker);
    // The snapshot is in the sink before the writers and the kills start.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let count = target.query_one("SELECT count(*) FROM orders", &[]).await.map(|r| r.get::<_, i64>(0));
        if count.as_ref().is_ok_and(|&n| n == ROWS) {
            break;
        }
        assert!(Instant::now() < deadline, "the snapshot is not in the sink after 120 s: {count:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
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
        let (dir, current) = (dir.path().to_path_buf(), current.clone());
        kill::kill_while_writing(worker, 5, Duration::from_secs(2), Arc::clone(&writing), move || {
            let worker = spawn_worker(&dir);
            current.set(&worker);
            worker
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    writing.store(false, Ordering::Relaxed);
    let mut worker = killer.await.unwrap();

    let want = rows(&source).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let got = rows(&target).await;
        if got == want {
            break;
        }
        assert!(worker.try_wait().unwrap().is_none(), "the last worker exited");
        assert!(
            Instant::now() < deadline,
            "the sink table did not converge in 300 s: {} rows in the source, {} in the sink",
            want.len(),
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status().unwrap().success());
    assert!(worker.wait().unwrap().success());

    let moves: Vec<(i32, Option<i64>, i64)> = target
        .query("SELECT partition, old_next, new_next FROM offset_moves", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let backwards: Vec<_> = moves.iter().filter(|(_, old, new)| old.is_some_and(|old| *new <= old)).collect();
    assert!(backwards.is_empty(), "batches applied again: {backwards:?}");
    let inserts = moves.iter().filter(|(_, old, _)| old.is_none()).count();
    let partitions: i64 =
        target.query_one("SELECT count(*) FROM __runnel_sink_offsets", &[]).await.unwrap().get(0);
    assert_eq!(inserts as i64, partitions, "each partition's row is inserted once");
    println!(
        "{} rows equal in source and sink after 5 kills; {} batches committed, each moving its offset forward",
        want.len(),
        moves.len()
    );
}
