//! `PostgresCdcSource` against a real, throwaway PostgreSQL (see
//! `runnel_testkit::postgres`) and a real embedded cluster: events checked
//! field by field against Debezium's documented envelope, every mapped
//! type, replica identities, schema changes, snapshot modes, heartbeats,
//! a lost slot, and the errors an operator must be able to act on.

use runnel_testkit as support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use runnel_connect::plugin::PluginRegistry;
use runnel_connect::worker::{State, Worker, WorkerConfig};
use runnel_core::client::{Cluster, ConsumerConfig};
use runnel_core::topic::TopicPartition;
use serde_json::{json, Value as Json};
use support::postgres::TestPostgres;

macro_rules! postgres_or_skip {
    () => {
        match TestPostgres::start() {
            Some(pg) => pg,
            None => return,
        }
    };
}

fn registry() -> PluginRegistry {
    let mut r = PluginRegistry::new();
    runnel_connectors::register(&mut r);
    r
}

async fn worker(cluster: &Cluster) -> Worker {
    worker_with(cluster, &[]).await
}

async fn worker_with(cluster: &Cluster, extra: &[(&str, &str)]) -> Worker {
    let props: BTreeMap<String, String> = [
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter"),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
        ("offset.flush.interval.ms", "100"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Worker::with_cluster(WorkerConfig::from_props(&props).unwrap(), registry(), cluster.clone())
        .await
        .unwrap()
}

fn connector(pg: &TestPostgres, db: &str, name: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut props: HashMap<String, String> = pg.connector_props(db, "dbserver1").into_iter().collect();
    props.insert("name".into(), name.into());
    props.insert("status.update.interval.ms".into(), "200".into());
    props.insert("poll.interval.ms".into(), "50".into());
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    props
}

/// One record as the JSON converter wrote it: key and value documents
/// (`Json::Null` for a Kafka null).
#[derive(Debug, Clone)]
struct Event {
    key: Json,
    value: Json,
    headers: Vec<(String, String)>,
}

impl Event {
    fn payload(&self) -> &Json {
        &self.value["payload"]
    }
    fn op(&self) -> &str {
        self.payload()["op"].as_str().unwrap_or("")
    }
}

async fn read_topic(cluster: &Cluster, topic: &str) -> Vec<Event> {
    let Ok(d) = cluster.admin().describe_topic(topic).await else { return Vec::new() };
    let tps: Vec<TopicPartition> =
        (0..d.partitions.len() as i32).map(|p| TopicPartition::new(topic, p)).collect();
    let mut c = cluster.consumer(ConsumerConfig::default().auto_commit(false)).unwrap();
    c.assign(tps.clone()).unwrap();
    c.seek_to_beginning(&tps).unwrap();
    let ends = c.end_offsets(&tps).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut done = true;
        for tp in &tps {
            if c.position(tp).await.unwrap() < ends[tp] {
                done = false;
            }
        }
        if done || Instant::now() > deadline {
            return out;
        }
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            let parse =
                |b: Option<bytes::Bytes>| b.map_or(Json::Null, |b| serde_json::from_slice(&b).unwrap());
            let headers = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.key.clone(),
                        String::from_utf8_lossy(h.value.as_deref().unwrap_or_default()).into_owned(),
                    )
                })
                .collect();
            out.push(Event { key: parse(r.key), value: parse(r.value), headers });
        }
    }
}

/// Waits until `topic` holds at least `n` records and returns them all.
async fn wait_events(cluster: &Cluster, worker: &Worker, topic: &str, n: usize) -> Vec<Event> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = read_topic(cluster, topic).await;
        if events.len() >= n {
            return events;
        }
        // A failure of the connector writing this topic ends the wait.
        for status in worker.status().all() {
            let prefix =
                worker.connector_config(&status.name).await.and_then(|c| c.get("topic.prefix").cloned());
            if prefix
                .is_some_and(|p| topic.starts_with(&format!("{p}.")) || topic.ends_with(&format!(".{p}")))
            {
                for t in &status.tasks {
                    assert_ne!(t.state, State::Failed, "task of {} failed: {:?}", status.name, t.trace);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {n} records after 60 s: {events:#?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The task's state and trace, once it is FAILED (or panics after 60 s).
async fn wait_failed(worker: &Worker, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(task) = worker.status().task(name, 0) {
            if task.state == State::Failed {
                return task.trace.unwrap_or_default();
            }
        }
        assert!(
            Instant::now() < deadline,
            "task of {name} did not fail: {:?}",
            worker.status().connector(name)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn setup_db(pg: &TestPostgres, db: &str, sql: &str) -> tokio_postgres::Client {
    pg.client("postgres").await.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let client = pg.client(db).await;
    client.batch_execute(sql).await.unwrap();
    client
}

fn field<'a>(schema: &'a Json, name: &str) -> &'a Json {
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == name)
        .unwrap_or_else(|| panic!("no field {name} in {schema}"))
}

/// Debezium's documented `source` schema (3.1 layout), as its JSON converter writes it.
fn debezium_source_schema() -> Json {
    json!({"type":"struct","fields":[
        {"type":"string","optional":false,"field":"version"},
        {"type":"string","optional":false,"field":"connector"},
        {"type":"string","optional":false,"field":"name"},
        {"type":"int64","optional":false,"field":"ts_ms"},
        {"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,
         "parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
         "default":"false","field":"snapshot"},
        {"type":"string","optional":false,"field":"db"},
        {"type":"string","optional":true,"field":"sequence"},
        {"type":"int64","optional":true,"field":"ts_us"},
        {"type":"int64","optional":true,"field":"ts_ns"},
        {"type":"string","optional":false,"field":"schema"},
        {"type":"string","optional":false,"field":"table"},
        {"type":"int64","optional":true,"field":"txId"},
        {"type":"int64","optional":true,"field":"lsn"},
        {"type":"int64","optional":true,"field":"xmin"}],
      "optional":false,"name":"io.debezium.connector.postgresql.Source","version":1,"field":"source"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_stream_with_debeziums_envelope_field_by_field() {
    let pg = postgres_or_skip!();
    let db = setup_db(
        &pg,
        "shop",
        "CREATE TABLE customers (id serial PRIMARY KEY, first_name text NOT NULL, email varchar(255));
         INSERT INTO customers (first_name, email) VALUES ('Anne', 'annek@noanswer.org'), ('Bob', NULL);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    worker.add_connector(connector(&pg, "shop", "inventory", &[])).await.unwrap();
    let topic = "dbserver1.public.customers";
    let snapshot = wait_events(&cluster, &worker, topic, 2).await;
    assert_eq!(snapshot.iter().map(Event::op).collect::<Vec<_>>(), ["r", "r"]);
    assert_eq!(snapshot[0].payload()["source"]["snapshot"], "first");
    assert_eq!(snapshot[1].payload()["source"]["snapshot"], "last");
    assert_eq!(
        snapshot[0].payload()["after"],
        json!({"id": 1, "first_name": "Anne", "email": "annek@noanswer.org"})
    );
    assert_eq!(snapshot[1].payload()["after"], json!({"id": 2, "first_name": "Bob", "email": null}));

    db.batch_execute(
        "INSERT INTO customers (first_name, email) VALUES ('Carol', 'carol@example.com');
         UPDATE customers SET email = 'anne@example.com' WHERE id = 1;
         DELETE FROM customers WHERE id = 2;",
    )
    .await
    .unwrap();
    let events = wait_events(&cluster, &worker, topic, 6).await;
    let ops: Vec<&str> = events.iter().map(Event::op).collect();
    assert_eq!(ops, ["r", "r", "c", "u", "d", ""], "the delete is followed by a tombstone");

    // The insert, field by field against Debezium's documented layout.
    let insert = &events[2];
    let schema = &insert.value["schema"];
    let row = json!({"type":"struct","fields":[
        {"type":"int32","optional":false,"field":"id"},
        {"type":"string","optional":false,"field":"first_name"},
        {"type":"string","optional":true,"field":"email"}],
      "optional":true,"name":"dbserver1.public.customers.Value"});
    let mut before = row.clone();
    before["field"] = json!("before");
    let mut after = row;
    after["field"] = json!("after");
    let expected_schema = json!({"type":"struct","fields":[
        before, after, debezium_source_schema(),
        {"type":"struct","fields":[
            {"type":"string","optional":false,"field":"id"},
            {"type":"int64","optional":false,"field":"total_order"},
            {"type":"int64","optional":false,"field":"data_collection_order"}],
         "optional":true,"name":"event.block","version":1,"field":"transaction"},
        {"type":"string","optional":false,"field":"op"},
        {"type":"int64","optional":true,"field":"ts_ms"},
        {"type":"int64","optional":true,"field":"ts_us"},
        {"type":"int64","optional":true,"field":"ts_ns"}],
      "optional":false,"name":"dbserver1.public.customers.Envelope","version":2});
    assert_eq!(schema, &expected_schema);
    assert_eq!(
        insert.key,
        json!({"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],
                          "optional":false,"name":"dbserver1.public.customers.Key"},
               "payload":{"id":3}})
    );
    let p = insert.payload();
    assert_eq!(p["before"], Json::Null);
    assert_eq!(p["after"], json!({"id": 3, "first_name": "Carol", "email": "carol@example.com"}));
    assert_eq!(p["transaction"], Json::Null);
    let source = &p["source"];
    assert_eq!(source["connector"], "postgresql");
    assert_eq!(source["name"], "dbserver1");
    assert_eq!(source["snapshot"], "false");
    assert_eq!(source["db"], "shop");
    assert_eq!(source["schema"], "public");
    assert_eq!(source["table"], "customers");
    assert_eq!(source["xmin"], Json::Null);
    assert!(source["version"].as_str().unwrap().ends_with(".Runnel"));
    let lsn = source["lsn"].as_i64().unwrap();
    let sequence: Vec<Option<String>> = serde_json::from_str(source["sequence"].as_str().unwrap()).unwrap();
    assert_eq!(sequence[1].as_deref(), Some(lsn.to_string().as_str()), "sequence ends with the event's LSN");
    assert!(sequence[0].as_ref().unwrap().parse::<i64>().unwrap() <= lsn, "{sequence:?} {lsn}");
    assert!(source["txId"].as_i64().unwrap() > 0);
    let ts_us = source["ts_us"].as_i64().unwrap();
    assert_eq!(source["ts_ms"].as_i64().unwrap(), ts_us / 1000);
    assert_eq!(source["ts_ns"].as_i64().unwrap(), ts_us * 1000);
    assert_eq!(p["ts_ms"].as_i64().unwrap(), p["ts_us"].as_i64().unwrap() / 1000);
    assert!(p["ts_ms"].as_i64().unwrap() >= source["ts_ms"].as_i64().unwrap());
    // The three changes were one transaction: one txId, increasing LSNs.
    let tx: Vec<i64> = events[2..5].iter().map(|e| e.payload()["source"]["txId"].as_i64().unwrap()).collect();
    assert!(tx.iter().all(|t| *t == tx[0]), "{tx:?}");
    let lsns: Vec<i64> =
        events[2..5].iter().map(|e| e.payload()["source"]["lsn"].as_i64().unwrap()).collect();
    assert!(lsns.windows(2).all(|w| w[0] < w[1]), "{lsns:?}");

    // REPLICA IDENTITY DEFAULT: no before image on an update that keeps
    // the key; the delete's before holds the key (NOT NULL columns get
    // their zero value, nullable ones null).
    assert_eq!(events[3].payload()["before"], Json::Null);
    assert_eq!(events[3].payload()["after"]["email"], "anne@example.com");
    assert_eq!(events[4].payload()["before"], json!({"id": 2, "first_name": "", "email": null}));
    assert_eq!(events[4].payload()["after"], Json::Null);
    assert_eq!(events[5].key["payload"], json!({"id": 2}));
    assert_eq!(events[5].value, Json::Null);
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

const ALL_TYPES: &str = "
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
    CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
    CREATE TABLE all_types (
        id int PRIMARY KEY,
        c_int2 smallint, c_int4 integer, c_int8 bigint, c_float4 real, c_float8 double precision,
        c_numeric numeric(10,2), c_numeric_var numeric, c_money money,
        c_bool boolean, c_char char(3), c_varchar varchar(10), c_text text,
        c_bytea bytea, c_uuid uuid, c_json json, c_jsonb jsonb,
        c_date date, c_time time, c_time3 time(3), c_timetz timetz,
        c_ts timestamp, c_ts3 timestamp(3), c_tstz timestamptz, c_interval interval,
        c_enum mood, c_domain posint, c_int_array int[], c_text_array text[], c_inet inet, c_point point);";

const ALL_VALUES: &str = "-32768, 2147483647, 9223372036854775807, 1.5, 2.25,
    12345.67, 1.2300, 12.34,
    true, 'ab', 'hello', 'text',
    '\\x01ff', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": 1}', '{\"b\": [1, 2]}',
    '2026-12-01', '09:00:05.123456', '09:00:05.123', '09:00:05+02',
    '2026-12-01 09:00:05.123456', '2026-12-01 09:00:05.123', '2026-12-01 11:00:05.5+02', '1 day 2 hours',
    'happy', 7, '{1,NULL,3}', '{\"a b\",c}', '192.168.0.1/24', '(1,2)'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mapped_type_arrives_as_debezium_maps_it_from_the_snapshot_and_the_stream() {
    let pg = postgres_or_skip!();
    let db =
        setup_db(&pg, "types", &format!("{ALL_TYPES} INSERT INTO all_types VALUES (1, {ALL_VALUES});")).await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    worker.add_connector(connector(&pg, "types", "types", &[])).await.unwrap();
    // The same row from the stream, and the other modes on a second slot.
    let other_modes = [
        ("topic.prefix", "modes"),
        ("slot.name", "modes"),
        ("decimal.handling.mode", "string"),
        ("time.precision.mode", "connect"),
        ("binary.handling.mode", "hex"),
        ("interval.handling.mode", "string"),
    ];
    worker.add_connector(connector(&pg, "types", "modes", &other_modes)).await.unwrap();
    wait_events(&cluster, &worker, "dbserver1.public.all_types", 1).await;
    wait_events(&cluster, &worker, "modes.public.all_types", 1).await;
    db.batch_execute(&format!("INSERT INTO all_types VALUES (2, {ALL_VALUES});")).await.unwrap();
    let events = wait_events(&cluster, &worker, "dbserver1.public.all_types", 2).await;
    let expected = json!({
        "id": 1, "c_int2": -32768, "c_int4": 2147483647, "c_int8": 9223372036854775807i64,
        "c_float4": 1.5, "c_float8": 2.25,
        "c_numeric": "EtaH", "c_numeric_var": {"scale": 2, "value": "ew=="}, "c_money": "BNI=",
        "c_bool": true, "c_char": "ab ", "c_varchar": "hello", "c_text": "text",
        "c_bytea": "Af8=", "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "c_json": "{\"a\": 1}", "c_jsonb": "{\"b\": [1, 2]}",
        "c_date": 20788, "c_time": 32405123456i64, "c_time3": 32405123, "c_timetz": "07:00:05Z",
        "c_ts": 1796115605123456i64, "c_ts3": 1796115605123i64, "c_tstz": "2026-12-01T09:00:05.500000Z",
        "c_interval": 93600000000i64,
        "c_enum": "happy", "c_domain": 7, "c_int_array": [1, null, 3], "c_text_array": ["a b", "c"],
        "c_inet": "192.168.0.1/24", "c_point": "(1,2)"
    });
    assert_eq!(events[0].op(), "r");
    assert_eq!(events[0].payload()["after"], expected, "snapshot");
    let mut streamed = expected.clone();
    streamed["id"] = json!(2);
    assert_eq!(events[1].op(), "c");
    assert_eq!(events[1].payload()["after"], streamed, "stream");

    let schema = &events[1].value["schema"];
    let after = field(schema, "after");
    let logical = |name: &str| {
        let f = field(after, name);
        (f["type"].as_str().unwrap().to_string(), f["name"].as_str().unwrap_or("").to_string())
    };
    let cases = [
        ("c_int2", "int16", ""),
        ("c_int8", "int64", ""),
        ("c_float4", "float", ""),
        ("c_float8", "double", ""),
        ("c_numeric", "bytes", "org.apache.kafka.connect.data.Decimal"),
        ("c_numeric_var", "struct", "io.debezium.data.VariableScaleDecimal"),
        ("c_money", "bytes", "org.apache.kafka.connect.data.Decimal"),
        ("c_bytea", "bytes", ""),
        ("c_uuid", "string", "io.debezium.data.Uuid"),
        ("c_json", "string", "io.debezium.data.Json"),
        ("c_jsonb", "string", "io.debezium.data.Json"),
        ("c_date", "int32", "io.debezium.time.Date"),
        ("c_time", "int64", "io.debezium.time.MicroTime"),
        ("c_time3", "int32", "io.debezium.time.Time"),
        ("c_timetz", "string", "io.debezium.time.ZonedTime"),
        ("c_ts", "int64", "io.debezium.time.MicroTimestamp"),
        ("c_ts3", "int64", "io.debezium.time.Timestamp"),
        ("c_tstz", "string", "io.debezium.time.ZonedTimestamp"),
        ("c_interval", "int64", "io.debezium.time.MicroDuration"),
        ("c_enum", "string", "io.debezium.data.Enum"),
        ("c_domain", "int32", ""),
        ("c_int_array", "array", ""),
    ];
    for (column, t, name) in cases {
        assert_eq!(logical(column), (t.to_string(), name.to_string()), "{column}");
    }
    assert_eq!(
        field(after, "c_numeric")["parameters"],
        json!({"scale": "2", "connect.decimal.precision": "10"})
    );
    assert_eq!(field(after, "c_enum")["parameters"], json!({"allowed": "sad,ok,happy"}));
    assert_eq!(field(after, "c_int_array")["items"], json!({"type": "int32", "optional": true}));
    assert_eq!(field(after, "id")["optional"], json!(false));
    assert_eq!(field(after, "c_text")["optional"], json!(true));

    let modes = read_topic(&cluster, "modes.public.all_types").await;
    let m = &modes[0].payload()["after"];
    assert_eq!(m["c_numeric"], "12345.67");
    assert_eq!(m["c_numeric_var"], "1.2300");
    assert_eq!(m["c_bytea"], "01ff");
    assert_eq!(m["c_interval"], "P0Y0M1DT2H0M0S");
    assert_eq!(m["c_time"], 32405123);
    assert_eq!(m["c_ts"], 1796115605123i64);
    assert_eq!(m["c_date"], 20788);
    let modes_after = field(&modes[0].value["schema"], "after");
    assert_eq!(field(modes_after, "c_date")["name"], "org.apache.kafka.connect.data.Date");
    assert_eq!(field(modes_after, "c_ts")["name"], "org.apache.kafka.connect.data.Timestamp");
    assert_eq!(field(modes_after, "c_interval")["name"], "io.debezium.time.Interval");
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_identities_key_changes_tables_without_keys_and_truncates() {
    let pg = postgres_or_skip!();
    let db = setup_db(
        &pg,
        "ident",
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, note text);
         CREATE TABLE full_items (id int PRIMARY KEY, name text NOT NULL, note text);
         ALTER TABLE full_items REPLICA IDENTITY FULL;
         CREATE TABLE nokey (v text);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    let props =
        connector(&pg, "ident", "ident", &[("snapshot.mode", "no_data"), ("skipped.operations", "none")]);
    worker.add_connector(props).await.unwrap();
    // no_data: nothing is snapshotted; the slot exists once the task runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows =
            db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'debezium'", &[]).await.unwrap();
        if !rows.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.batch_execute(
        "INSERT INTO items VALUES (1, 'a', 'x'), (2, 'b', NULL);
         INSERT INTO full_items VALUES (1, 'a', 'x');
         INSERT INTO nokey VALUES ('free');
         UPDATE items SET name = 'a2' WHERE id = 1;
         UPDATE full_items SET name = 'a2' WHERE id = 1;
         UPDATE items SET id = 10 WHERE id = 1;
         DELETE FROM full_items WHERE id = 1;
         TRUNCATE items;",
    )
    .await
    .unwrap();
    let items = wait_events(&cluster, &worker, "dbserver1.public.items", 7).await;
    let ops: Vec<&str> = items.iter().map(Event::op).collect();
    assert_eq!(ops, ["c", "c", "u", "d", "", "c", "t"]);
    // DEFAULT identity, key unchanged: no before.
    assert_eq!(items[2].payload()["before"], Json::Null);
    // The key change: delete of the old key pointing at the new one, its
    // tombstone, then a create of the new key pointing back.
    assert_eq!(items[3].key["payload"], json!({"id": 1}));
    assert_eq!(items[3].payload()["before"], json!({"id": 1, "name": "", "note": null}));
    let newkey = items[3].headers.iter().find(|(k, _)| k == "__debezium.newkey").expect("newkey header");
    assert!(newkey.1.contains("10"), "{newkey:?}");
    assert_eq!((items[4].key["payload"].clone(), items[4].value.clone()), (json!({"id": 1}), Json::Null));
    assert_eq!(items[5].key["payload"], json!({"id": 10}));
    assert_eq!(items[5].payload()["after"], json!({"id": 10, "name": "a2", "note": "x"}));
    assert!(items[5].headers.iter().any(|(k, v)| k == "__debezium.oldkey" && v.contains('1')));
    // Truncate: null key, no images, the table in source.
    assert_eq!(items[6].key, Json::Null);
    assert_eq!(
        (items[6].payload()["before"].clone(), items[6].payload()["after"].clone()),
        (Json::Null, Json::Null)
    );
    assert_eq!(items[6].payload()["source"]["table"], "items");

    let full = wait_events(&cluster, &worker, "dbserver1.public.full_items", 4).await;
    assert_eq!(full.iter().map(Event::op).collect::<Vec<_>>(), ["c", "u", "d", ""]);
    assert_eq!(
        full[1].payload()["before"],
        json!({"id": 1, "name": "a", "note": "x"}),
        "FULL: the whole old row"
    );
    assert_eq!(full[2].payload()["before"], json!({"id": 1, "name": "a2", "note": "x"}));

    let nokey = wait_events(&cluster, &worker, "dbserver1.public.nokey", 1).await;
    assert_eq!(nokey[0].key, Json::Null, "no primary key: null key");
    assert_eq!(nokey[0].payload()["after"], json!({"v": "free"}));
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_mid_stream_changes_the_events_that_follow_without_a_restart() {
    let pg = postgres_or_skip!();
    let db = setup_db(&pg, "evolve", "CREATE TABLE t (id int PRIMARY KEY, note text, qty int);").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    worker.add_connector(connector(&pg, "evolve", "evolve", &[])).await.unwrap();
    let topic = "dbserver1.public.t";
    db.batch_execute("INSERT INTO t VALUES (1, 'one', 1);").await.unwrap();
    wait_events(&cluster, &worker, topic, 1).await;
    db.batch_execute(
        "ALTER TABLE t ADD COLUMN price numeric(6,2) NOT NULL DEFAULT 0;
         INSERT INTO t VALUES (2, 'two', 2, 9.5);
         ALTER TABLE t DROP COLUMN note;
         INSERT INTO t VALUES (3, 3, 1.25);
         ALTER TABLE t ALTER COLUMN qty TYPE bigint;
         INSERT INTO t VALUES (4, 4000000000, 2);",
    )
    .await
    .unwrap();
    let events = wait_events(&cluster, &worker, topic, 4).await;
    let names = |e: &Event| -> Vec<String> {
        field(&e.value["schema"], "after")["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&events[0]), ["id", "note", "qty"]);
    assert_eq!(names(&events[1]), ["id", "note", "qty", "price"]);
    assert_eq!(events[1].payload()["after"]["price"], "A7Y=", "9.50 at scale 2");
    assert_eq!(field(field(&events[1].value["schema"], "after"), "price")["optional"], json!(false));
    assert_eq!(names(&events[2]), ["id", "qty", "price"]);
    assert_eq!(field(field(&events[2].value["schema"], "after"), "qty")["type"], "int32");
    assert_eq!(field(field(&events[3].value["schema"], "after"), "qty")["type"], "int64");
    assert_eq!(events[3].payload()["after"]["qty"], 4000000000i64);
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

/// Waits until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn confirmed_flush(client: &tokio_postgres::Client, slot: &str) -> Option<u64> {
    let row = client
        .query_opt(
            "SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()?;
    row.get::<_, Option<i64>>(0).map(|l| l as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_modes_no_data_initial_only_and_always() {
    let pg = postgres_or_skip!();
    let db =
        setup_db(&pg, "modes", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    let ops = |events: &[Event]| events.iter().map(|e| e.op().to_string()).collect::<Vec<_>>();

    // no_data: the existing rows are not read; new changes are.
    worker
        .add_connector(connector(
            &pg,
            "modes",
            "nodata",
            &[("topic.prefix", "nodata"), ("slot.name", "nodata"), ("snapshot.mode", "no_data")],
        ))
        .await
        .unwrap();
    // initial_only: the rows, then nothing.
    worker
        .add_connector(connector(
            &pg,
            "modes",
            "only",
            &[("topic.prefix", "only"), ("slot.name", "only"), ("snapshot.mode", "initial_only")],
        ))
        .await
        .unwrap();
    // always: a snapshot at every start.
    let always = connector(
        &pg,
        "modes",
        "always",
        &[("topic.prefix", "always"), ("slot.name", "always"), ("snapshot.mode", "always")],
    );
    worker.add_connector(always.clone()).await.unwrap();
    wait_events(&cluster, &worker, "only.public.t", 2).await;
    wait_events(&cluster, &worker, "always.public.t", 2).await;
    eventually("the no_data slot", || async { confirmed_flush(&db, "nodata").await.is_some() }).await;
    db.batch_execute("INSERT INTO t VALUES (3);").await.unwrap();
    assert_eq!(ops(&wait_events(&cluster, &worker, "nodata.public.t", 1).await), ["c"]);
    assert_eq!(ops(&wait_events(&cluster, &worker, "always.public.t", 3).await), ["r", "r", "c"]);
    // The insert reached the others by now; initial_only never streams it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ops(&read_topic(&cluster, "only.public.t").await), ["r", "r"]);
    assert_eq!(ops(&read_topic(&cluster, "nodata.public.t").await), ["c"]);

    worker.remove_connector("always").await.unwrap();
    worker.add_connector(always).await.unwrap();
    let again = wait_events(&cluster, &worker, "always.public.t", 6).await;
    assert_eq!(ops(&again), ["r", "r", "c", "r", "r", "r"], "a new snapshot of all three rows");
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_after_the_last_stored_change_without_repeats() {
    let pg = postgres_or_skip!();
    let db = setup_db(&pg, "resume", "CREATE TABLE t (id int PRIMARY KEY, v int);").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let props = connector(&pg, "resume", "resume", &[]);
    let w = worker(&cluster).await;
    w.add_connector(props.clone()).await.unwrap();
    // Once the slot exists, changes are streamed rather than snapshotted.
    eventually("the slot", || async { confirmed_flush(&db, "debezium").await.is_some() }).await;
    db.batch_execute("INSERT INTO t SELECT g, g FROM generate_series(1, 100) g;").await.unwrap();
    wait_events(&cluster, &w, "dbserver1.public.t", 100).await;
    w.shutdown().await.unwrap();
    // Changes while the connector is down, then more after the restart.
    db.batch_execute("UPDATE t SET v = v + 1000 WHERE id <= 10; DELETE FROM t WHERE id > 95;").await.unwrap();
    let w = worker(&cluster).await;
    w.add_connector(props).await.unwrap();
    db.batch_execute("INSERT INTO t VALUES (500, 500);").await.unwrap();
    let events = wait_events(&cluster, &w, "dbserver1.public.t", 100 + 10 + 10 + 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = if events.len() > 121 { events } else { read_topic(&cluster, "dbserver1.public.t").await };
    let ops: Vec<&str> = events.iter().map(Event::op).collect();
    assert_eq!(ops.len(), 121, "{ops:?}");
    assert!(ops[..100].iter().all(|o| *o == "c"));
    assert!(ops[100..110].iter().all(|o| *o == "u"));
    assert_eq!(&ops[110..120], ["d", ""].repeat(5).as_slice());
    assert_eq!(ops[120], "c");
    w.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_advance_the_slot_while_the_captured_tables_idle_and_another_database_writes() {
    let pg = postgres_or_skip!();
    let quiet =
        setup_db(&pg, "quiet", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    let busy = setup_db(&pg, "busy", "CREATE TABLE log (id serial PRIMARY KEY, payload text);").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    worker
        .add_connector(connector(&pg, "quiet", "quiet", &[("heartbeat.interval.ms", "200")]))
        .await
        .unwrap();
    wait_events(&cluster, &worker, "dbserver1.public.t", 1).await;
    eventually("a confirmed position", || async { confirmed_flush(&quiet, "debezium").await.is_some() })
        .await;
    let before = confirmed_flush(&quiet, "debezium").await.unwrap();
    for _ in 0..20 {
        busy.batch_execute("INSERT INTO log (payload) SELECT repeat('x', 500) FROM generate_series(1, 500);")
            .await
            .unwrap();
    }
    let written: i64 =
        busy.query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[]).await.unwrap().get(0);
    eventually("the slot to pass the other database's writes", || async {
        confirmed_flush(&quiet, "debezium").await.unwrap() >= written as u64
    })
    .await;
    let after = confirmed_flush(&quiet, "debezium").await.unwrap();
    assert!(after > before + 1_000_000, "confirmed_flush_lsn moved {before} -> {after}");
    let beats = read_topic(&cluster, "__debezium-heartbeat.dbserver1").await;
    assert!(!beats.is_empty());
    assert_eq!(beats[0].key["payload"], json!({"serverName": "dbserver1"}));
    assert_eq!(beats[0].key["schema"]["name"], "io.debezium.connector.common.ServerNameKey");
    assert_eq!(beats[0].value["schema"]["name"], "io.debezium.connector.common.Heartbeat");
    assert!(beats[0].value["payload"]["ts_ms"].as_i64().unwrap() > 0);
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

async fn drop_slot_behind_its_back(client: &tokio_postgres::Client, slot: &str) {
    // The connector reconnects after its connection is ended, so end it
    // again before each try: a single kill can race with a reconnect.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        client
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active_pid IS NOT NULL"
            ))
            .await
            .unwrap();
        match client.batch_execute(&format!("SELECT pg_drop_replication_slot('{slot}')")).await {
            Ok(()) => return,
            Err(e) => assert!(Instant::now() < deadline, "drop {slot}: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_dropped_behind_the_connectors_back_fails_loudly_or_re_snapshots_when_needed() {
    let pg = postgres_or_skip!();
    let db = setup_db(&pg, "lost", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    worker
        .add_connector(connector(
            &pg,
            "lost",
            "strict",
            &[("slot.name", "strict"), ("topic.prefix", "strict")],
        ))
        .await
        .unwrap();
    let needed = [("slot.name", "needed"), ("topic.prefix", "needed"), ("snapshot.mode", "when_needed")];
    worker.add_connector(connector(&pg, "lost", "needed", &needed)).await.unwrap();
    wait_events(&cluster, &worker, "strict.public.t", 1).await;
    wait_events(&cluster, &worker, "needed.public.t", 1).await;
    drop_slot_behind_its_back(&db, "strict").await;
    drop_slot_behind_its_back(&db, "needed").await;
    let trace = wait_failed(&worker, "strict").await;
    assert!(
        trace.contains("replication slot `strict`") && trace.contains("snapshot.mode=when_needed"),
        "{trace}"
    );
    assert_eq!(trace.lines().count(), 1, "one line: {trace}");
    // when_needed: a new slot and a new snapshot, then streaming again.
    db.batch_execute("INSERT INTO t VALUES (2);").await.unwrap();
    let events = wait_events(&cluster, &worker, "needed.public.t", 3).await;
    let ops: Vec<&str> = events.iter().map(Event::op).collect();
    assert_eq!(&ops[..2], ["r", "r"], "the first snapshot, then the new one");
    assert!(events[1..].iter().any(|e| e.payload()["after"]["id"] == 2), "{ops:?}");
    // A restart of the strict one names both sides: the slot is missing
    // and where the stored offset was.
    worker.restart_task("strict", 0).await.unwrap();
    let trace = wait_failed(&worker, "strict").await;
    assert!(
        trace.contains("`strict` does not exist") && trace.contains("stored offset is at LSN"),
        "{trace}"
    );
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_errors_fail_the_task_with_one_line_saying_what_to_fix() {
    let pg = postgres_or_skip!();
    let db = setup_db(
        &pg,
        "errs",
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         CREATE PUBLICATION only_a FOR TABLE a;
         CREATE ROLE plain LOGIN PASSWORD 'plain';",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    let closed_port =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("password", vec![("database.password", "wrong")], "rejected the password of user `postgres`"),
        (
            "unreachable",
            vec![("database.port", closed_port.as_str())],
            "cannot reach PostgreSQL at 127.0.0.1:",
        ),
        (
            "privilege",
            vec![("database.user", "plain"), ("database.password", "plain")],
            "ALTER ROLE plain REPLICATION",
        ),
        (
            "coverage",
            vec![
                ("publication.name", "only_a"),
                ("publication.autocreate.mode", "disabled"),
                ("slot.name", "coverage"),
            ],
            "publication `only_a` does not cover the captured tables public.b",
        ),
        (
            "nopub",
            vec![("publication.name", "missing"), ("publication.autocreate.mode", "disabled")],
            "publication `missing` does not exist",
        ),
    ];
    for (name, extra, _) in &cases {
        worker.add_connector(connector(&pg, "errs", name, extra)).await.unwrap();
    }
    for (name, _, expected) in &cases {
        let trace = wait_failed(&worker, name).await;
        assert!(trace.contains(expected), "{name}: {trace}");
        assert_eq!(trace.lines().count(), 1, "{name}: one line: {trace}");
    }

    // A slot another connection holds: retried, then failed with the reason.
    worker
        .add_connector(connector(
            &pg,
            "errs",
            "holder",
            &[("slot.name", "held"), ("table.include.list", "public.a")],
        ))
        .await
        .unwrap();
    eventually("the held slot in use", || async {
        db.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'held' AND active", &[])
            .await
            .unwrap()
            .len()
            == 1
    })
    .await;
    let second = [
        ("slot.name", "held"),
        ("snapshot.mode", "no_data"),
        ("slot.max.retries", "2"),
        ("slot.retry.delay.ms", "100"),
        ("table.include.list", "public.a"),
        ("topic.prefix", "second"),
    ];
    worker.add_connector(connector(&pg, "errs", "second", &second)).await.unwrap();
    let trace = wait_failed(&worker, "second").await;
    assert!(trace.contains("another connection is using it"), "{trace}");
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();

    // wal_level below logical.
    let Some(replica) = TestPostgres::start_with(&["wal_level = replica"]) else { return };
    replica.client("postgres").await.batch_execute("CREATE DATABASE w").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = self::worker(&cluster).await;
    worker.add_connector(connector(&replica, "w", "walcheck", &[])).await.unwrap();
    let trace = wait_failed(&worker, "walcheck").await;
    assert!(trace.contains("wal_level=replica") && trace.contains("wal_level = logical"), "{trace}");
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[test]
fn validation_names_each_bad_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
        let worker = worker(&cluster).await;
        let props: HashMap<String, String> = [
            ("name", "bad"),
            ("connector.class", "io.debezium.connector.postgresql.PostgresConnector"),
            ("database.hostname", "localhost"),
            ("database.user", "u"),
            ("database.password", "p"),
            ("database.dbname", "d"),
            ("topic.prefix", "p"),
            ("plugin.name", "decoderbufs"),
            ("snapshot.mode", "sometimes"),
            ("decimal.handling.mode", "exact"),
            ("table.include.list", "public.(x"),
            ("max.batch.size", "10000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let report = worker.validate_report(&props);
        let bad: Vec<&str> =
            report.entries.iter().filter(|e| !e.errors.is_empty()).map(|e| e.key.name.as_str()).collect();
        for key in ["snapshot.mode", "decimal.handling.mode"] {
            assert!(bad.contains(&key), "{key} not named: {bad:?}");
        }
        // Fix the single-key errors: the cross-key checks name theirs.
        let mut props = props;
        props.insert("snapshot.mode".into(), "initial".into());
        props.insert("decimal.handling.mode".into(), "precise".into());
        let report = worker.validate_report(&props);
        let bad: Vec<&str> =
            report.entries.iter().filter(|e| !e.errors.is_empty()).map(|e| e.key.name.as_str()).collect();
        for key in ["plugin.name", "table.include.list", "max.queue.size"] {
            assert!(bad.contains(&key), "{key} not named: {bad:?}");
        }
        let err = worker.add_connector(props).await.unwrap_err().to_string();
        assert!(err.contains("plugin.name") && err.contains("pgoutput"), "{err}");
        cluster.close().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_toasted_value_is_the_placeholder_as_debezium_sends_it() {
    let pg = postgres_or_skip!();
    let db = setup_db(
        &pg,
        "toast",
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text, tags text[]);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
         ALTER TABLE docs ALTER COLUMN tags SET STORAGE EXTERNAL;",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    let custom = [("unavailable.value.placeholder", "__unchanged__")];
    worker.add_connector(connector(&pg, "toast", "toast", &custom)).await.unwrap();
    eventually("the slot", || async { confirmed_flush(&db, "debezium").await.is_some() }).await;
    // Out-of-line values (> 2 kB, stored externally), then an update that
    // leaves them alone.
    db.batch_execute(
        "INSERT INTO docs VALUES (1, 'a', repeat('x', 10000), ARRAY[repeat('t', 5000)]);
         UPDATE docs SET title = 'b' WHERE id = 1;",
    )
    .await
    .unwrap();
    let events = wait_events(&cluster, &worker, "dbserver1.public.docs", 2).await;
    assert_eq!(events[0].payload()["after"]["body"].as_str().unwrap().len(), 10000);
    let after = &events[1].payload()["after"];
    assert_eq!(after["title"], "b");
    assert_eq!(after["body"], "__unchanged__");
    assert_eq!(after["tags"], json!(["__unchanged__"]));
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toast_fill_fills_unchanged_toasted_values_from_the_last_image_across_a_restart() {
    let pg = postgres_or_skip!();
    let db = setup_db(
        &pg,
        "toastfill",
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text, tags text[]);
         ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
         ALTER TABLE docs ALTER COLUMN tags SET STORAGE EXTERNAL;
         INSERT INTO docs VALUES (1, 'snap', repeat('s', 9000), ARRAY[repeat('u', 4000)]);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_dir = state.to_str().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().join("data").display())).await.unwrap();
    let topic = "dbserver1.public.docs";
    let fill = [("toast.fill", "true")];
    let w = worker_with(&cluster, &[("state.dir", state_dir)]).await;
    w.add_connector(connector(&pg, "toastfill", "toastfill", &fill)).await.unwrap();
    wait_events(&cluster, &w, topic, 1).await;
    // Row 1 came from the snapshot; row 2 is streamed. Then updates that
    // leave the TOASTed columns alone, and a key change.
    db.batch_execute(
        "INSERT INTO docs VALUES (2, 'a', repeat('x', 10000), ARRAY[repeat('t', 5000)]);
         UPDATE docs SET title = 'b' WHERE id = 2;
         UPDATE docs SET title = 'snap2' WHERE id = 1;
         UPDATE docs SET body = repeat('y', 10000) WHERE id = 2;
         UPDATE docs SET title = 'c' WHERE id = 2;
         UPDATE docs SET id = 3, title = 'moved' WHERE id = 2;",
    )
    .await
    .unwrap();
    // r, c, u, u, u, u, then d + tombstone + c for the key change.
    let events = wait_events(&cluster, &w, topic, 9).await;
    let after = |i: usize| events[i].payload()["after"].clone();
    let len = |v: &Json, f: &str| v[f].as_str().map(str::len);
    let first = |v: &Json, c: char| v["body"].as_str().and_then(|s| s.chars().next()) == Some(c);
    assert_eq!((after(2)["title"].clone(), len(&after(2), "body")), (json!("b"), Some(10000)));
    assert!(first(&after(2), 'x'));
    assert_eq!(after(2)["tags"][0].as_str().map(str::len), Some(5000));
    assert_eq!(after(3)["title"], "snap2");
    assert!(first(&after(3), 's'), "filled from the snapshot image: {}", after(3));
    assert_eq!(after(3)["tags"][0].as_str().map(str::len), Some(4000));
    assert!(first(&after(5), 'y'), "the newest body, not the first one");
    let created = events.iter().rev().find(|e| e.op() == "c").unwrap().payload()["after"].clone();
    assert_eq!((created["id"].clone(), created["title"].clone()), (json!(3), json!("moved")));
    assert!(first(&created, 'y'), "a key change carries the row's values: {created}");
    assert!(events.iter().all(|e| !e.value.to_string().contains("__debezium_unavailable_value")));
    w.shutdown().await.unwrap();

    // A new worker on the same state: the store remembers row 3.
    let w = worker_with(&cluster, &[("state.dir", state_dir)]).await;
    w.add_connector(connector(&pg, "toastfill", "toastfill", &fill)).await.unwrap();
    db.batch_execute("UPDATE docs SET title = 'after restart' WHERE id = 3;").await.unwrap();
    let events = wait_events(&cluster, &w, topic, 10).await;
    let last = events.last().unwrap().payload()["after"].clone();
    assert_eq!(last["title"], "after restart");
    assert!(first(&last, 'y'), "{last}");
    assert_eq!(last["tags"][0].as_str().map(str::len), Some(5000));
    w.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

/// Which of a connector's connections use TLS: `(backend_type, ssl)` for
/// each backend whose application_name is the connector's.
async fn connection_tls(db: &tokio_postgres::Client, connector: &str) -> Vec<(String, bool)> {
    db.query(
        "SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.application_name = $1 ORDER BY 1",
        &[&format!("runnel-cdc {connector}")],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_as_libpq_sslmode_means_it_on_the_sql_and_the_replication_connection() {
    let Some((pg, certs)) = TestPostgres::start_tls() else { return };
    let db =
        setup_db(&pg, "tls", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');")
            .await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let w = worker(&cluster).await;
    let ca = certs.ca();
    let other_ca = certs.other_ca();
    let (ca, other_ca) = (ca.to_str().unwrap(), other_ca.to_str().unwrap());

    // verify-full: the certificate names 127.0.0.1, and its CA is given.
    let full = [("database.sslmode", "verify-full"), ("database.sslrootcert", ca)];
    w.add_connector(connector(&pg, "tls", "tls-full", &full)).await.unwrap();
    wait_events(&cluster, &w, "dbserver1.public.t", 1).await;
    db.batch_execute("INSERT INTO t VALUES (2, 'b')").await.unwrap();
    wait_events(&cluster, &w, "dbserver1.public.t", 2).await;
    let tls = connection_tls(&db, "tls-full").await;
    assert!(tls.iter().any(|(kind, _)| kind == "walsender"), "the replication connection: {tls:?}");
    assert!(tls.iter().all(|(_, ssl)| *ssl), "every connection encrypted: {tls:?}");
    w.remove_connector("tls-full").await.unwrap();

    // The wrong CA, and a host name the certificate does not name (it has
    // 127.0.0.1 and pg.runnel.test, not localhost): refused, saying why.
    let wrong_ca =
        [("database.sslmode", "verify-ca"), ("database.sslrootcert", other_ca), ("slot.name", "wrongca")];
    w.add_connector(connector(&pg, "tls", "tls-wrong-ca", &wrong_ca)).await.unwrap();
    let trace = wait_failed(&w, "tls-wrong-ca").await;
    assert!(trace.contains("TLS") && trace.contains("database.sslmode=verify-ca"), "{trace}");
    let mut by_name = connector(
        &pg,
        "tls",
        "tls-name",
        &[("database.sslmode", "verify-full"), ("database.sslrootcert", ca), ("slot.name", "byname")],
    );
    by_name.insert("database.hostname".into(), "localhost".into());
    w.add_connector(by_name.clone()).await.unwrap();
    let trace = wait_failed(&w, "tls-name").await;
    assert!(trace.contains("TLS") && trace.to_lowercase().contains("name"), "{trace}");
    w.remove_connector("tls-wrong-ca").await.unwrap();
    w.remove_connector("tls-name").await.unwrap();
    // verify-ca checks the chain only: the same host name is accepted.
    by_name.insert("name".into(), "tls-ca".into());
    by_name.insert("database.sslmode".into(), "verify-ca".into());
    by_name.insert("slot.name".into(), "caonly".into());
    w.add_connector(by_name).await.unwrap();
    // Its own snapshot of rows 1 and 2 follows the first connector's two events.
    let events = wait_events(&cluster, &w, "dbserver1.public.t", 4).await;
    assert_eq!(events.iter().filter(|e| e.op() == "r").count(), 3, "{events:#?}");
    eventually("the verify-ca connector's slot", || async { confirmed_flush(&db, "caonly").await.is_some() })
        .await;
    assert!(connection_tls(&db, "tls-ca").await.iter().all(|(_, ssl)| *ssl));

    // A certificate file that does not exist is named at validation.
    let missing = [("database.sslmode", "verify-full"), ("database.sslrootcert", "/nonexistent/ca.crt")];
    let report = w.validate_report(&connector(&pg, "tls", "tls-missing", &missing));
    let errors: Vec<String> = report
        .entries
        .iter()
        .filter(|e| e.key.name == "database.sslrootcert")
        .flat_map(|e| e.errors.clone())
        .collect();
    assert!(errors.iter().any(|e| e.contains("/nonexistent/ca.crt")), "{errors:?}");
    w.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_refuses_a_server_without_tls_and_prefer_falls_back() {
    let pg = postgres_or_skip!();
    setup_db(&pg, "notls", "CREATE TABLE t (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let w = worker(&cluster).await;
    w.add_connector(connector(&pg, "notls", "require", &[("database.sslmode", "require")])).await.unwrap();
    let trace = wait_failed(&w, "require").await;
    assert!(trace.contains("TLS") && trace.contains("database.sslmode=require"), "{trace}");
    w.remove_connector("require").await.unwrap();
    // prefer (the default) connects without TLS and streams.
    let db = pg.client("notls").await;
    w.add_connector(connector(&pg, "notls", "prefer", &[("slot.name", "prefer")])).await.unwrap();
    eventually("the prefer connector's slot", || async { confirmed_flush(&db, "prefer").await.is_some() })
        .await;
    db.batch_execute("INSERT INTO t VALUES (1)").await.unwrap();
    wait_events(&cluster, &w, "dbserver1.public.t", 1).await;
    w.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}
