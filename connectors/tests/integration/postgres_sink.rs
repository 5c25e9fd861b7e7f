//! `PostgresSink` against a real, throwaway PostgreSQL (see
//! `runnel_testkit::postgres`): each insert and key mode, deletes and
//! truncates, created and widened tables with Debezium's types, the
//! offsets table that makes a restarted task skip what it applied, and a
//! CDC → sink round trip through a real worker and embedded cluster that
//! ends with equal tables.

use runnel_testkit as support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use runnel_connect::data::{Decimal, DecimalValue, Schema, SchemaBuilder, SchemaType, Struct, Value};
use runnel_connect::plugin::{
    PluginRegistry, SinkConnector, SinkRecord, SinkTask, SinkTaskContext, TaskError,
};
use runnel_connect::record::ConnectRecord;
use runnel_connect::worker::{Worker, WorkerConfig};
use runnel_connectors::postgres::PostgresSink;
use runnel_core::client::Cluster;
use runnel_core::topic::TopicPartition;
use support::postgres::{TestPostgres, PASSWORD};

macro_rules! postgres_or_skip {
    () => {
        match TestPostgres::start() {
            Some(pg) => pg,
            None => return,
        }
    };
}

const TOPIC: &str = "shop.public.orders";

fn sink_props(pg: &TestPostgres, db: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut props: HashMap<String, String> = [
        ("connector.class", "io.debezium.connector.jdbc.JdbcSinkConnector"),
        ("connection.username", "postgres"),
        ("connection.password", PASSWORD),
        ("name", "orders-sink"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    props.insert("connection.url".into(), format!("jdbc:postgresql://127.0.0.1:{}/{db}", pg.port()));
    for (k, v) in extra {
        props.insert(k.to_string(), v.to_string());
    }
    props
}

async fn started(props: &HashMap<String, String>) -> Result<Box<dyn SinkTask>, TaskError> {
    let mut connector = PostgresSink::default();
    connector.start(props).await?;
    let mut task = connector.create_task();
    let context =
        SinkTaskContext { connector: props["name"].clone(), task_id: 0, ..SinkTaskContext::default() };
    task.start(props, &context).await?;
    Ok(task)
}

/// `put`, then `flush`: the sink writes a batch while the next one is
/// converted, and `flush` waits until everything put is committed.
async fn put(task: &mut dyn SinkTask, records: Vec<SinkRecord>) -> Result<(), TaskError> {
    task.put(records).await?;
    task.flush(&BTreeMap::new()).await
}

fn row_schema() -> Schema {
    SchemaBuilder::structure()
        .name("shop.public.orders.Value")
        .field("id", Schema::of(SchemaType::Int32))
        .field("customer", Schema::optional_of(SchemaType::String))
        .field(
            "total",
            Decimal::builder(2).parameter("connect.decimal.precision", "10").optional().build().unwrap(),
        )
        .build()
        .unwrap()
}

fn key_schema() -> Schema {
    SchemaBuilder::structure()
        .name("shop.public.orders.Key")
        .field("id", Schema::of(SchemaType::Int32))
        .build()
        .unwrap()
}

fn row(id: i32, customer: &str, cents: i128) -> Struct {
    Struct::with_values(
        row_schema(),
        vec![
            Value::Int32(id),
            Value::String(customer.into()),
            Value::Bytes(DecimalValue::new(cents, 2).to_bytes()),
        ],
    )
    .unwrap()
}

fn envelope_schema() -> Schema {
    let optional = row_schema();
    SchemaBuilder::structure()
        .name("shop.public.orders.Envelope")
        .field("before", optional.clone())
        .field("after", optional)
        .field("op", Schema::of(SchemaType::String))
        .build()
        .unwrap()
}

/// A Debezium change event for key `id` at `offset` of partition 0.
fn event(offset: i64, op: &str, id: i32, after: Option<Struct>) -> SinkRecord {
    let value = Struct::with_values(
        envelope_schema(),
        vec![Value::Null, after.map_or(Value::Null, Value::Struct), Value::String(op.into())],
    )
    .unwrap();
    keyed(offset, id, Some(envelope_schema()), Value::Struct(value))
}

fn keyed(offset: i64, id: i32, value_schema: Option<Schema>, value: Value) -> SinkRecord {
    let key = Struct::with_values(key_schema(), vec![Value::Int32(id)]).unwrap();
    let record = ConnectRecord::new(TOPIC, Value::Null)
        .with_key(Some(key_schema()), Value::Struct(key))
        .with_value(value_schema, value);
    SinkRecord { record, original: TopicPartition::new(TOPIC, 0), offset, raw: None }
}

/// A plain row (a struct value) without a key.
fn plain(offset: i64, r: Struct) -> SinkRecord {
    let record = ConnectRecord::new(TOPIC, Value::Null).with_value(Some(row_schema()), Value::Struct(r));
    SinkRecord { record, original: TopicPartition::new(TOPIC, 0), offset, raw: None }
}

async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.get::<_, Option<String>>(i).unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

const ORDERS: &str = "SELECT id::text, customer, total::text FROM shop_public_orders ORDER BY id, total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_insert_mode_and_key_mode_writes_what_it_should() {
    let pg = postgres_or_skip!();
    let client = pg.client("postgres").await;
    for db in ["inserts", "upserts", "updates", "kafka_keys"] {
        client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    }
    // insert, no key: every record is a new row, duplicates included.
    let props = sink_props(&pg, "inserts", &[("schema.evolution", "basic")]);
    let mut task = started(&props).await.unwrap();
    put(
        &mut *task,
        vec![plain(0, row(1, "ann", 1050)), plain(1, row(1, "ann", 1050)), plain(2, row(2, "bob", -5))],
    )
    .await
    .unwrap();
    let db = pg.client("inserts").await;
    assert_eq!(rows(&db, ORDERS).await, ["1|ann|10.50", "1|ann|10.50", "2|bob|-0.05"]);
    // A longer run goes through COPY: tabs, newlines and backslashes
    // survive its text format, NULLs stay NULL.
    let odd = "tab\there\\back\nline\r";
    let mut long: Vec<SinkRecord> =
        (3..40).map(|i| plain(i64::from(i), row(i, odd, i128::from(i)))).collect();
    long.push(plain(
        40,
        Struct::with_values(row_schema(), vec![Value::Int32(40), Value::Null, Value::Null]).unwrap(),
    ));
    put(&mut *task, long).await.unwrap();
    let got = rows(&db, "SELECT count(*)::text, count(DISTINCT customer)::text, min(customer) FROM shop_public_orders WHERE id >= 3").await;
    assert_eq!(got, [format!("38|1|{odd}")]);
    assert_eq!(rows(&db, "SELECT coalesce(customer, 'NULL'), coalesce(total::text, 'NULL') FROM shop_public_orders WHERE id = 40").await, ["NULL|NULL"]);

    // upsert by record key: the last change of a key wins, within a batch too.
    let props = sink_props(
        &pg,
        "upserts",
        &[("schema.evolution", "basic"), ("insert.mode", "upsert"), ("primary.key.mode", "record_key")],
    );
    let mut task = started(&props).await.unwrap();
    put(
        &mut *task,
        vec![
            event(0, "c", 1, Some(row(1, "ann", 100))),
            event(1, "u", 1, Some(row(1, "ann", 200))),
            event(2, "r", 2, Some(row(2, "bob", 300))),
        ],
    )
    .await
    .unwrap();
    put(&mut *task, vec![event(3, "u", 2, Some(row(2, "bob", 301)))]).await.unwrap();
    let db = pg.client("upserts").await;
    assert_eq!(rows(&db, ORDERS).await, ["1|ann|2.00", "2|bob|3.01"]);
    let pk = rows(
        &db,
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
         AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'shop_public_orders'::regclass AND i.indisprimary",
    )
    .await;
    assert_eq!(pk, ["id"], "the key's column is the primary key");

    // update: existing rows change, missing ones are not created.
    let db = pg.client("updates").await;
    db.batch_execute(
        "CREATE TABLE shop_public_orders (id integer PRIMARY KEY, customer text, total numeric(10,2)); \
         INSERT INTO shop_public_orders VALUES (1, 'old', 1)",
    )
    .await
    .unwrap();
    let props = sink_props(&pg, "updates", &[("insert.mode", "update"), ("primary.key.mode", "record_key")]);
    let mut task = started(&props).await.unwrap();
    put(
        &mut *task,
        vec![event(0, "u", 1, Some(row(1, "new", 700))), event(1, "u", 9, Some(row(9, "ghost", 1)))],
    )
    .await
    .unwrap();
    assert_eq!(rows(&db, ORDERS).await, ["1|new|7.00"]);

    // kafka: topic, partition and offset are the key.
    let props = sink_props(
        &pg,
        "kafka_keys",
        &[("schema.evolution", "basic"), ("insert.mode", "upsert"), ("primary.key.mode", "kafka")],
    );
    let mut task = started(&props).await.unwrap();
    put(&mut *task, vec![plain(5, row(1, "ann", 1)), plain(6, row(1, "ann", 2))]).await.unwrap();
    let db = pg.client("kafka_keys").await;
    let got = rows(
        &db,
        "SELECT __connect_topic, __connect_partition::text, __connect_offset::text, total::text \
         FROM shop_public_orders ORDER BY __connect_offset",
    )
    .await;
    assert_eq!(got, [format!("{TOPIC}|0|5|0.01"), format!("{TOPIC}|0|6|0.02")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_tombstones_and_truncates_follow_the_config() {
    let pg = postgres_or_skip!();
    let client = pg.client("postgres").await;
    client.batch_execute("CREATE DATABASE shop").await.unwrap();
    let props = sink_props(
        &pg,
        "shop",
        &[
            ("schema.evolution", "basic"),
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
            ("delete.enabled", "true"),
            ("truncate.enabled", "true"),
        ],
    );
    let mut task = started(&props).await.unwrap();
    put(&mut *task, (1..=4).map(|id| event(i64::from(id), "c", id, Some(row(id, "x", 1)))).collect())
        .await
        .unwrap();
    // A delete event, then Debezium's tombstone for the same key; a
    // tombstone alone for another key.
    put(
        &mut *task,
        vec![event(5, "d", 1, None), keyed(6, 1, None, Value::Null), keyed(7, 3, None, Value::Null)],
    )
    .await
    .unwrap();
    let db = pg.client("shop").await;
    assert_eq!(rows(&db, "SELECT id::text FROM shop_public_orders ORDER BY id").await, ["2", "4"]);
    // A delete and a write of one key in one batch keep their order.
    put(&mut *task, vec![event(8, "d", 2, None), event(9, "c", 2, Some(row(2, "back", 5)))]).await.unwrap();
    assert_eq!(
        rows(&db, "SELECT id::text, customer FROM shop_public_orders ORDER BY id").await,
        ["2|back", "4|x"]
    );
    // A truncate event (key and rows null).
    put(&mut *task, vec![event(10, "t", 0, None)]).await.unwrap();
    assert!(rows(&db, "SELECT id::text FROM shop_public_orders").await.is_empty());

    // With deletes off (the default), deletes and tombstones are skipped.
    let off = sink_props(&pg, "shop", &[("insert.mode", "upsert"), ("primary.key.mode", "record_key")]);
    let mut task = {
        let mut off = off.clone();
        off.insert("name".into(), "second".into());
        started(&off).await.unwrap()
    };
    put(
        &mut *task,
        vec![event(0, "c", 7, Some(row(7, "y", 1))), event(1, "d", 7, None), keyed(2, 7, None, Value::Null)],
    )
    .await
    .unwrap();
    assert_eq!(rows(&db, "SELECT id::text FROM shop_public_orders").await, ["7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_get_debezium_types_and_grow_with_schema_evolution_only() {
    let pg = postgres_or_skip!();
    let client = pg.client("postgres").await;
    client.batch_execute("CREATE DATABASE shop").await.unwrap();
    let named = |b: SchemaBuilder, name: &str| b.name(name).optional().build().unwrap();
    let schema = SchemaBuilder::structure()
        .field("id", Schema::of(SchemaType::Int64))
        .field("at", named(SchemaBuilder::int64(), "io.debezium.time.MicroTimestamp"))
        .field("at_tz", named(SchemaBuilder::string(), "io.debezium.time.ZonedTimestamp"))
        .field("day", named(SchemaBuilder::int32(), "io.debezium.time.Date"))
        .field("uid", named(SchemaBuilder::string(), "io.debezium.data.Uuid"))
        .field("doc", named(SchemaBuilder::string(), "io.debezium.data.Json"))
        .field("raw", Schema::optional_of(SchemaType::Bytes))
        .field(
            "tags",
            SchemaBuilder::array(Schema::optional_of(SchemaType::String)).optional().build().unwrap(),
        )
        .build()
        .unwrap();
    let value = Struct::with_values(
        schema.clone(),
        vec![
            Value::Int64(1),
            Value::Int64(1_700_000_000_123_456),
            Value::String("2023-11-14T22:13:20.5Z".into()),
            Value::Int32(19_000),
            Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            Value::String("{\"a\": [1, 2]}".into()),
            Value::Bytes(vec![0, 1, 255]),
            Value::Array(vec![Value::String("x,y".into()), Value::Null]),
        ],
    )
    .unwrap();
    let record = |offset: i64, schema: &Schema, value: Struct| SinkRecord {
        record: ConnectRecord::new("events", Value::Null)
            .with_value(Some(schema.clone()), Value::Struct(value)),
        original: TopicPartition::new("events", 0),
        offset,
        raw: None,
    };
    // Without schema.evolution or auto.create, a missing table is an error naming it.
    let mut strict = started(&sink_props(&pg, "shop", &[])).await.unwrap();
    let err = put(&mut *strict, vec![record(0, &schema, value.clone())]).await.unwrap_err();
    assert!(err.to_string().contains("table events does not exist"), "{err}");

    let props = sink_props(&pg, "shop", &[("auto.create", "true"), ("name", "typed")]);
    let mut task = started(&props).await.unwrap();
    put(&mut *task, vec![record(0, &schema, value)]).await.unwrap();
    let db = pg.client("shop").await;
    let types = rows(
        &db,
        "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull::text FROM pg_attribute \
         WHERE attrelid = 'events'::regclass AND attnum > 0 ORDER BY attnum",
    )
    .await;
    assert_eq!(
        types,
        [
            "id|bigint|true",
            "at|timestamp(6) without time zone|false",
            "at_tz|timestamp with time zone|false",
            "day|date|false",
            "uid|uuid|false",
            "doc|json|false",
            "raw|bytea|false",
            "tags|text[]|false",
        ]
    );
    let got = rows(
        &db,
        "SELECT at::text, at_tz::text, day::text, uid::text, doc::text, raw::text, tags::text FROM events",
    )
    .await;
    assert_eq!(
        got,
        ["2023-11-14 22:13:20.123456|2023-11-14 22:13:20.5+00|2022-01-08|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{\"a\": [1, 2]}|\\x0001ff|{\"x,y\",NULL}"]
    );

    // A new field: refused without schema.evolution, added with basic.
    let wider = schema.to_builder().field("note", Schema::optional_of(SchemaType::String)).build().unwrap();
    let mut values: Vec<Value> = Struct::with_values(schema.clone(), vec![Value::Int64(2); 1])
        .map_or_else(|_| vec![Value::Int64(2)], |s| s.values().to_vec());
    values.resize(8, Value::Null);
    values.push(Value::String("hi".into()));
    let wide = Struct::with_values(wider.clone(), values).unwrap();
    let err = put(&mut *task, vec![record(1, &wider, wide.clone())]).await.unwrap_err();
    assert!(err.to_string().contains("has no column note"), "{err}");
    let props = sink_props(&pg, "shop", &[("schema.evolution", "basic"), ("name", "typed")]);
    let mut task = started(&props).await.unwrap();
    put(&mut *task, vec![record(1, &wider, wide)]).await.unwrap();
    assert_eq!(rows(&db, "SELECT id::text, note FROM events ORDER BY id").await, ["1|NULL", "2|hi"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_task_skips_the_records_it_already_applied() {
    let pg = postgres_or_skip!();
    let client = pg.client("postgres").await;
    client.batch_execute("CREATE DATABASE shop").await.unwrap();
    // Plain inserts without a key: a repeated record would be a second row.
    let props = sink_props(&pg, "shop", &[("schema.evolution", "basic")]);
    let batch = |from: i64, to: i64| (from..to).map(|i| plain(i, row(i as i32, "c", 1))).collect::<Vec<_>>();
    let mut task = started(&props).await.unwrap();
    put(&mut *task, batch(0, 10)).await.unwrap();
    put(&mut *task, batch(10, 20)).await.unwrap();
    drop(task); // no stop, no flush: as if killed
    let mut again = started(&props).await.unwrap();
    // The worker redelivers from its last committed offset (here: 5).
    put(&mut *again, batch(5, 25)).await.unwrap();
    let db = pg.client("shop").await;
    assert_eq!(
        rows(&db, "SELECT count(*)::text, count(DISTINCT id)::text FROM shop_public_orders").await,
        ["25|25"]
    );
    let offsets =
        rows(&db, "SELECT connector, topic, partition::text, next_offset::text FROM __runnel_sink_offsets")
            .await;
    assert_eq!(offsets, [format!("orders-sink|{TOPIC}|0|25")]);
    // A bad record fails the batch and names itself; nothing of the batch is applied.
    let mut bad = plain(25, row(25, "c", 1));
    bad.record.value_schema = None;
    let err = put(&mut *again, vec![plain(26, row(26, "c", 1)), bad]).await.unwrap_err();
    assert!(err.to_string().contains("at offset 25") && err.to_string().contains("schemas.enable"), "{err}");
    assert_eq!(rows(&db, "SELECT count(*)::text FROM shop_public_orders").await, ["25"]);
}

fn registry() -> PluginRegistry {
    let mut r = PluginRegistry::new();
    runnel_connectors::register(&mut r);
    r
}

/// A worker on `cluster` with JSON converters (schemas on) that commits
/// every 100 ms.
async fn worker(cluster: &Cluster) -> Worker {
    let props: BTreeMap<String, String> = [
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter"),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
        ("offset.flush.interval.ms", "100"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Worker::with_cluster(WorkerConfig::from_props(&props).unwrap(), registry(), cluster.clone())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdc_into_the_sink_leaves_the_sink_table_equal_to_the_source() {
    let pg = postgres_or_skip!();
    let admin = pg.client("postgres").await;
    for db in ["source", "target"] {
        admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    }
    let source = pg.client("source").await;
    source
        .batch_execute(
            "CREATE TABLE orders (id integer PRIMARY KEY, customer text NOT NULL, total numeric(12,2), \
             placed timestamp(6), note text); \
             INSERT INTO orders SELECT g, 'c' || (g % 97), g * 1.25, '2026-01-01'::timestamp + g * interval '1 second', \
             NULL FROM generate_series(1, 2000) g",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let worker = worker(&cluster).await;
    let mut cdc: HashMap<String, String> = pg.connector_props("source", "shop").into_iter().collect();
    cdc.insert("name".into(), "cdc".into());
    cdc.insert("table.include.list".into(), "public.orders".into());
    cdc.insert("poll.interval.ms".into(), "50".into());
    worker.add_connector(cdc).await.unwrap();
    // Change events into `orders`; the same events flattened by Debezium's
    // transform into `orders_flat`.
    let upserts = [
        ("topics", TOPIC),
        ("schema.evolution", "basic"),
        ("insert.mode", "upsert"),
        ("primary.key.mode", "record_key"),
        ("delete.enabled", "true"),
    ];
    let mut sink = sink_props(&pg, "target", &upserts);
    sink.insert("collection.name.format".into(), "orders".into());
    worker.add_connector(sink).await.unwrap();
    let mut flat = sink_props(&pg, "target", &upserts);
    for (k, v) in [
        ("name", "flat-sink"),
        ("collection.name.format", "orders_flat"),
        ("transforms", "unwrap"),
        ("transforms.unwrap.type", "io.debezium.transforms.ExtractNewRecordState"),
        ("transforms.unwrap.delete.tombstone.handling.mode", "tombstone"),
    ] {
        flat.insert(k.into(), v.into());
    }
    worker.add_connector(flat).await.unwrap();
    // A mixed workload while both run: updates, deletes, inserts, a key
    // change (an id whose residue mod 50 no round deletes).
    for round in 0..10 {
        let sql = format!(
            "UPDATE orders SET total = total + 1, note = 'r{round}' WHERE id % 10 = {round}; \
             DELETE FROM orders WHERE id % 50 = {round}; \
             INSERT INTO orders SELECT 2000 + {round} * 100 + g, 'new', g, now()::timestamp(6), NULL \
             FROM generate_series(1, 100) g; \
             UPDATE orders SET id = id + 100000 WHERE id = {} ",
            1025 + round
        );
        source.batch_execute(&sql).await.unwrap();
    }
    let target = pg.client("target").await;
    let source_rows = || async {
        rows(&source, "SELECT id::text, customer, total::text, placed::text, coalesce(note, '') FROM orders ORDER BY id").await
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let want = source_rows().await;
        let got = match target
            .query(
                "SELECT id::text, customer, total::text, placed::text, coalesce(note, '') FROM orders ORDER BY id",
                &[],
            )
            .await
        {
            Ok(r) => r
                .iter()
                .map(|r| (0..5).map(|i| r.get::<_, Option<String>>(i).unwrap_or_default()).collect::<Vec<_>>().join("|"))
                .collect::<Vec<_>>(),
            Err(_) => Vec::new(),
        };
        let flat = match target.query_one("SELECT count(*)::text FROM orders_flat", &[]).await {
            Ok(row) => row.get::<_, String>(0),
            Err(_) => String::new(), // not created yet
        };
        if got == want && flat == want.len().to_string() {
            // 2000 rows, 1000 inserted; round r deletes 40 of the first
            // 2000 and 2 of each earlier round's 100: 490 in all.
            assert_eq!(want.len(), 2510, "rows after the workload");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink table did not converge: {} rows in the source, {} in the sink; worker status {:?}",
            want.len(),
            got.len(),
            worker.status().all()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let types = rows(
        &target,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass \
         AND attnum > 0 ORDER BY attnum",
    )
    .await;
    assert_eq!(types, ["integer", "text", "numeric(12,2)", "timestamp(6) without time zone", "text"]);
    let differ = "SELECT count(*)::text FROM ((SELECT * FROM orders EXCEPT SELECT * FROM orders_flat) \
                  UNION ALL (SELECT * FROM orders_flat EXCEPT SELECT * FROM orders)) d";
    assert_eq!(rows(&target, differ).await, ["0"], "the flattened rows are the same rows");
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_login_or_database_names_the_sink_key_to_fix() {
    let pg = postgres_or_skip!();
    let mut wrong = sink_props(&pg, "postgres", &[]);
    wrong.insert("connection.password".into(), "not-it".into());
    let err = started(&wrong).await.err().expect("refused");
    assert!(err.to_string().contains("(connection.password)"), "{err}");
    let err = started(&sink_props(&pg, "no_such_db", &[])).await.err().expect("refused");
    assert!(err.to_string().contains("`no_such_db` does not exist (connection.url)"), "{err}");
    let mut bad_url = sink_props(&pg, "postgres", &[]);
    bad_url.insert("connection.url".into(), "jdbc:mysql://127.0.0.1/db".into());
    let err = started(&bad_url).await.err().expect("refused");
    assert!(
        err.to_string().contains("connection.url") && err.to_string().contains("PostgreSQL only"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_connection_is_lost_mid_write_is_written_again_once() {
    let pg = postgres_or_skip!();
    let admin = pg.client("postgres").await;
    admin.batch_execute("CREATE DATABASE shop").await.unwrap();
    let props = sink_props(&pg, "shop", &[("schema.evolution", "basic")]);
    let batch = |from: i64, to: i64| (from..to).map(|i| plain(i, row(i as i32, "c", 1))).collect::<Vec<_>>();
    let mut task = started(&props).await.unwrap();
    put(&mut *task, batch(0, 30)).await.unwrap();
    // Another session holds the table, so the next batch's write waits in
    // the server; its connection is cut there.
    let db = pg.client("shop").await;
    db.batch_execute("BEGIN; LOCK TABLE shop_public_orders IN ACCESS EXCLUSIVE MODE").await.unwrap();
    task.put(batch(30, 60)).await.unwrap();
    let waiting = "SELECT pid FROM pg_stat_activity WHERE application_name = 'runnel-sink orders-sink' \
                   AND wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: i32 = loop {
        if let Some(row) = admin.query_opt(waiting, &[]).await.unwrap() {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "the sink's write never waited for the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    admin.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    db.batch_execute("ROLLBACK").await.unwrap();
    let err = task.flush(&BTreeMap::new()).await.unwrap_err();
    assert!(matches!(err, TaskError::Retriable(_)), "a lost connection is worth retrying: {err}");
    // As the worker does within errors.retry.timeout: again, then on.
    task.flush(&BTreeMap::new()).await.unwrap();
    put(&mut *task, batch(60, 70)).await.unwrap();
    assert_eq!(
        rows(&db, "SELECT count(*)::text, count(DISTINCT id)::text, max(id)::text FROM shop_public_orders")
            .await,
        ["70|70|69"]
    );
    let offsets = rows(&db, "SELECT next_offset::text FROM __runnel_sink_offsets").await;
    assert_eq!(offsets, ["70"]);
}

/// JSON with schemas, as the JSON converter reads it.
fn json_record(id: i32, name: &str, total: i64) -> (Vec<u8>, Vec<u8>) {
    let key = format!(
        r#"{{"schema":{{"type":"struct","fields":[{{"field":"id","type":"int32","optional":false}}]}},"payload":{{"id":{id}}}}}"#
    );
    let value = format!(
        r#"{{"schema":{{"type":"struct","name":"rows.Value","fields":[{{"field":"id","type":"int32","optional":false}},{{"field":"name","type":"string","optional":true}},{{"field":"total","type":"int64","optional":true}}]}},"payload":{{"id":{id},"name":"{name}","total":{total}}}}}"#
    );
    (key.into_bytes(), value.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_table_refuses_go_to_the_dead_letter_queue_with_the_postgres_error() {
    use runnel_core::client::{ConsumerConfig, ProducerConfig, ProducerRecord};
    let pg = postgres_or_skip!();
    let admin = pg.client("postgres").await;
    admin.batch_execute("CREATE DATABASE shop").await.unwrap();
    let db = pg.client("shop").await;
    db.batch_execute(
        "CREATE TABLE rows (id integer PRIMARY KEY, name varchar(8), total bigint CHECK (total >= 0))",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let mut bad = Vec::new();
    for i in 0..60 {
        let (key, value) = match i {
            10 | 30 => json_record(i, "neg", -5),           // the CHECK refuses it
            40 => json_record(i, "far-too-long-a-name", 1), // varchar(8) refuses it
            50 => (json_record(i, "", 0).0, br#"{"schema":null,"payload":{"id":50}}"#.to_vec()), // no schema
            _ => json_record(i, "ok", i64::from(i)),
        };
        if matches!(i, 10 | 30 | 40 | 50) {
            bad.push(i64::from(i));
        }
        producer.send(ProducerRecord::new("rows").partition(0).key(key).value(value)).await.unwrap();
    }
    let worker = worker(&cluster).await;
    let mut props = sink_props(
        &pg,
        "shop",
        &[
            ("topics", "rows"),
            ("insert.mode", "upsert"),
            ("primary.key.mode", "record_key"),
            ("collection.name.format", "rows"),
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "rows-dlq"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
        ],
    );
    props.insert("name".into(), "rows-sink".into());
    worker.add_connector(props).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let next: Option<i64> = db
            .query_opt("SELECT next_offset FROM __runnel_sink_offsets WHERE connector = 'rows-sink'", &[])
            .await
            .ok()
            .flatten()
            .map(|r| r.get(0));
        if next == Some(60) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink did not get through the topic: {:?}",
            worker.status().all()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written = rows(&db, "SELECT count(*)::text FROM rows").await;
    assert_eq!(written, ["56"], "every other row is written");
    let mut consumer = cluster.consumer(ConsumerConfig::default()).unwrap();
    let dlq = vec![TopicPartition::new("rows-dlq", 0)];
    consumer.assign(dlq.clone()).unwrap();
    consumer.seek_to_beginning(&dlq).unwrap();
    let mut reported = Vec::new();
    while reported.len() < 4 {
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let header = |k: &str| {
                r.headers
                    .iter()
                    .find(|h| h.key == format!("__connect.errors.{k}"))
                    .and_then(|h| h.value.as_deref().map(|v| String::from_utf8_lossy(v).to_string()))
                    .unwrap_or_default()
            };
            assert_eq!(header("stage"), "TASK_PUT");
            assert_eq!(header("topic"), "rows");
            let offset: i64 = header("offset").parse().unwrap();
            let message = header("exception.message");
            match offset {
                10 | 30 => assert!(message.contains("check constraint"), "{message}"),
                40 => assert!(message.contains("too long"), "{message}"),
                50 => assert!(message.contains("schema"), "{message}"),
                other => panic!("offset {other} reported: {message}"),
            }
            assert!(r.value.is_some(), "the record as consumed");
            reported.push(offset);
        }
        assert!(Instant::now() < deadline, "dead letter queue: {reported:?}");
    }
    reported.sort_unstable();
    assert_eq!(reported, bad);
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reduction_buffer_writes_each_keys_last_change_and_identifiers_keep_their_case_when_quoted() {
    let pg = postgres_or_skip!();
    let admin = pg.client("postgres").await;
    admin.batch_execute("CREATE DATABASE shop").await.unwrap();
    let db = pg.client("shop").await;
    // Every row written is logged, to count the writes a batch makes.
    db.batch_execute(
        "CREATE TABLE shop_public_orders (id integer PRIMARY KEY, customer text, total numeric(10,2));
         CREATE TABLE writes (id integer, op text);
         CREATE FUNCTION log_write() RETURNS trigger AS $$ BEGIN
           INSERT INTO writes VALUES (coalesce(NEW.id, OLD.id), TG_OP); RETURN NULL; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER writes AFTER INSERT OR UPDATE OR DELETE ON shop_public_orders
           FOR EACH ROW EXECUTE FUNCTION log_write();",
    )
    .await
    .unwrap();
    let batch = || {
        vec![
            event(0, "c", 1, Some(row(1, "v1", 1))),
            event(1, "d", 1, None),
            event(2, "c", 1, Some(row(1, "v2", 2))),
            event(3, "c", 2, Some(row(2, "x", 3))),
            event(4, "d", 2, None),
            event(5, "u", 1, Some(row(1, "v3", 4))),
        ]
    };
    let keys = [("insert.mode", "upsert"), ("primary.key.mode", "record_key"), ("delete.enabled", "true")];
    let mut plain = sink_props(&pg, "shop", &keys);
    plain.insert("name".into(), "plain".into());
    let mut task = started(&plain).await.unwrap();
    put(&mut *task, batch()).await.unwrap();
    let count = |id: i32| format!("SELECT count(*)::text FROM writes WHERE id = {id}");
    assert_eq!(rows(&db, &count(1)).await, ["4"], "every change of key 1 written in order");
    assert_eq!(rows(&db, "SELECT id::text, customer FROM shop_public_orders").await, ["1|v3"]);
    db.batch_execute("TRUNCATE writes; DELETE FROM shop_public_orders; TRUNCATE writes").await.unwrap();
    let mut reducing = sink_props(&pg, "shop", &keys);
    reducing.insert("name".into(), "reducing".into());
    reducing.insert("use.reduction.buffer".into(), "true".into());
    let mut task = started(&reducing).await.unwrap();
    put(&mut *task, batch()).await.unwrap();
    assert_eq!(rows(&db, &count(1)).await, ["1"], "only key 1's last change is written");
    assert_eq!(rows(&db, &count(2)).await, ["0"], "key 2's last change deletes a row that is not there");
    assert_eq!(rows(&db, "SELECT id::text, customer FROM shop_public_orders").await, ["1|v3"]);

    // quote.identifiers keeps the case of table and column names.
    let schema = SchemaBuilder::structure().field("Id", Schema::of(SchemaType::Int32)).build().unwrap();
    let record = |topic: &str| SinkRecord {
        record: ConnectRecord::new(topic, Value::Null).with_value(
            Some(schema.clone()),
            Value::Struct(Struct::with_values(schema.clone(), vec![Value::Int32(7)]).unwrap()),
        ),
        original: TopicPartition::new(topic, 0),
        offset: 0,
        raw: None,
    };
    for (quoted, topic) in [("true", "Mixed.Case"), ("false", "Lower.Case")] {
        let mut props =
            sink_props(&pg, "shop", &[("schema.evolution", "basic"), ("quote.identifiers", quoted)]);
        props.insert("name".into(), format!("quoted-{quoted}"));
        let mut task = started(&props).await.unwrap();
        put(&mut *task, vec![record(topic)]).await.unwrap();
    }
    assert_eq!(rows(&db, "SELECT \"Id\"::text FROM \"Mixed_Case\"").await, ["7"]);
    assert_eq!(rows(&db, "SELECT id::text FROM lower_case").await, ["7"]);
}
