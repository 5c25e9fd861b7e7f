//! `examples/cdc_pipeline.rs` against a throwaway PostgreSQL: customers and
//! orders captured by CDC, joined and summed per customer and minute by
//! Streams, written back by the Postgres sink; the sink's table must hold,
//! per customer, exactly the revenue of the orders table, under the
//! customer's name.

#[path = "../../examples/cdc_pipeline.rs"]
#[allow(dead_code)]
mod example;
use runnel_testkit::postgres;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use example::{Database, PREFIX, TABLE};
use runnel::core::client::ConsumerConfig;
use runnel::core::topic::TopicPartition;

async fn revenue(db: &tokio_postgres::Client, sql: &str) -> BTreeMap<i64, (i64, String)> {
    db.query(sql, &[])
        .await
        .map(|rows| rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_joined_to_customers_land_as_revenue_per_customer_and_minute() {
    let Some(pg) = postgres::TestPostgres::start() else { return };
    let admin = pg.client("postgres").await;
    admin.batch_execute("CREATE DATABASE shop").await.unwrap();
    let db = pg.client("shop").await;
    db.batch_execute(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text);
         CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, amount_cents bigint NOT NULL);
         INSERT INTO customers SELECT g, 'customer-' || g FROM generate_series(1, 20) g;",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database = Database {
        host: "127.0.0.1".into(),
        port: pg.port(),
        user: "postgres".into(),
        password: postgres::PASSWORD.into(),
        dbname: "shop".into(),
    };
    let pipeline = example::start(&database, dir.path()).await.unwrap();
    // The customers are in their topic before any order is written.
    let consumer = pipeline.cluster.consumer(ConsumerConfig::default()).unwrap();
    let customers = [TopicPartition::new(format!("{PREFIX}.public.customers"), 0)];
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumer.end_offsets(&customers).ok().and_then(|e| e.values().next().copied()).unwrap_or(0) < 20 {
        assert!(Instant::now() < deadline, "the customers never reached their topic");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for round in 0..4 {
        db.batch_execute(&format!(
            "INSERT INTO orders SELECT {round} * 1000 + g, 1 + (g * 7) % 20, 100 + g * 3 FROM generate_series(1, 100) g"
        ))
        .await
        .unwrap();
    }
    let want_sql = "SELECT customer_id, sum(amount_cents)::bigint, 'customer-' || customer_id \
                    FROM orders GROUP BY customer_id";
    let got_sql = format!(
        "SELECT customer_id, sum(revenue_cents)::bigint, min(customer_name) FROM {TABLE} GROUP BY customer_id"
    );
    let want = revenue(&db, want_sql).await;
    assert_eq!(want.len(), 20);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = revenue(&db, &got_sql).await;
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revenue_per_customer never matched the orders:\n want {want:?}\n got  {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let windows: i64 = db.query_one(&format!("SELECT count(*) FROM {TABLE}"), &[]).await.unwrap().get(0);
    println!("revenue of 400 orders by 20 customers in {windows} (customer, minute) rows");
    pipeline.shutdown().await.unwrap();
}
