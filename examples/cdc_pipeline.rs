//! The pipeline the platform exists for, in one embedded process:
//!
//! ```text
//! PostgreSQL tables customers, orders
//!   ──► Connect: PostgresCdcSource (Debezium's events, JSON) ──► topics shop.public.customers, shop.public.orders
//!   ──► Streams app "cdc-pipeline": orders (as created) re-keyed by customer, joined to the
//!       customers table (its name), revenue summed per customer in 1-minute tumbling windows
//!   ──► topic revenue-per-customer (JSON with schemas)
//!   ──► Connect: PostgresSink (upsert by customer and window) ──► table revenue_per_customer
//! ```
//!
//! `cargo run --example cdc_pipeline -- <libpq URL of your database>`, e.g.
//! `postgresql://postgres:secret@127.0.0.1:5432/shop`. The database needs
//! `wal_level=logical` and tables
//! `customers (id bigint PRIMARY KEY, name text)` and
//! `orders (id bigint PRIMARY KEY, customer_id bigint, amount_cents bigint)`;
//! the sink creates `revenue_per_customer (customer_id, window_start,
//! customer_name, revenue_cents)` in the same database. It runs until
//! Ctrl-C. `tests/end_to_end/cdc_pipeline.rs` runs it against a throwaway PostgreSQL
//! and checks the table against the orders.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use runnel::connect::plugin::PluginRegistry;
use runnel::connect::worker::{Worker, WorkerConfig};
use runnel::core::client::Cluster;
use runnel::core::topic::NewTopic;
use runnel::streams::{
    Consumed, Grouped, Joined, Materialized, Produced, Serdes, Streams, StreamsBuilder, StreamsConfig,
    TimeWindows,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The CDC source's topic prefix.
pub const PREFIX: &str = "shop";
/// Where the Streams app writes and the sink reads.
pub const OUTPUT_TOPIC: &str = "revenue-per-customer";
/// The sink's table.
pub const TABLE: &str = "revenue_per_customer";
/// Tumbling window size.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Where the database is.
#[derive(Clone, Debug)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
}

impl Database {
    /// From a libpq URL, `postgresql://user:password@host:port/dbname`.
    pub fn from_url(url: &str) -> anyhow::Result<Database> {
        let config: tokio_postgres::Config = url.parse().context("a libpq URL")?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        Ok(Database {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            user: config.get_user().unwrap_or("postgres").to_string(),
            password: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).to_string())
                .unwrap_or_default(),
            dbname: config.get_dbname().unwrap_or("postgres").to_string(),
        })
    }
}

/// A CDC key: `{"id": …}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Id {
    pub id: i64,
}

/// A Debezium change event (JSON without schemas): the row after, and the op.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event<T> {
    pub after: Option<T>,
    pub op: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Customer {
    pub id: i64,
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub customer_id: i64,
    pub amount_cents: i64,
}

/// A customer's revenue in a window, so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Revenue {
    pub name: String,
    pub cents: i64,
}

/// The sink record's key and value, JSON with schemas (what the sink's
/// JSON converter reads).
fn output(customer: i64, window_start: i64, revenue: &Revenue) -> (Vec<u8>, Vec<u8>) {
    let key = json!({
        "schema": {"type": "struct", "name": "revenue.Key", "fields": [
            {"field": "customer_id", "type": "int64", "optional": false},
            {"field": "window_start", "type": "int64", "optional": false,
             "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
        ]},
        "payload": {"customer_id": customer, "window_start": window_start},
    });
    let value = json!({
        "schema": {"type": "struct", "name": "revenue.Value", "fields": [
            {"field": "customer_id", "type": "int64", "optional": false},
            {"field": "window_start", "type": "int64", "optional": false,
             "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
            {"field": "customer_name", "type": "string", "optional": true},
            {"field": "revenue_cents", "type": "int64", "optional": false},
        ]},
        "payload": {"customer_id": customer, "window_start": window_start,
                    "customer_name": revenue.name, "revenue_cents": revenue.cents},
    });
    (key.to_string().into_bytes(), value.to_string().into_bytes())
}

/// Orders joined to customers, revenue per customer and minute.
fn topology() -> Result<runnel::streams::Topology, runnel::streams::StreamsError> {
    let mut b = StreamsBuilder::new();
    let customers = b.table::<Id, Event<Customer>>(
        format!("{PREFIX}.public.customers"),
        Consumed::with(Serdes::json(), Serdes::json()),
        Materialized::as_("customers"),
    );
    b.stream::<Id, Event<Order>>(
        format!("{PREFIX}.public.orders"),
        Consumed::with(Serdes::json(), Serdes::json()),
    )
    // New orders (snapshot reads and inserts), keyed by their customer.
    .flat_map(|_, event| match (event.op.as_str(), event.after) {
        ("c" | "r", Some(order)) => Some((Id { id: order.customer_id }, order)),
        _ => None,
    })
    .join_table(
        &customers,
        |order: &Order, customer: &Event<Customer>| {
            let name = customer.after.as_ref().and_then(|c| c.name.clone()).unwrap_or_default();
            Revenue { name, cents: order.amount_cents }
        },
        Joined::with(Serdes::json(), Serdes::json(), Serdes::json()),
    )
    .group_by_key(Grouped::with(Serdes::json(), Serdes::json()))
    .windowed_by(TimeWindows::of_size_with_no_grace(WINDOW))
    .aggregate(
        Revenue::default,
        |_, r: Revenue, sum: Revenue| Revenue { name: r.name, cents: sum.cents + r.cents },
        Materialized::as_("revenue").with_value_serde(Serdes::json()),
    )
    .to_stream()
    .flat_map(|w, revenue| revenue.map(|r| output(w.key.id, w.window.start, &r)))
    .to(OUTPUT_TOPIC, Produced::with(Serdes::byte_array(), Serdes::byte_array()));
    b.build()
}

fn props(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// The running pipeline.
pub struct Pipeline {
    pub cluster: Cluster,
    worker: Worker,
    streams: Streams,
}

impl Pipeline {
    /// Stops the app, the connectors and the cluster.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.streams.close().await?;
        self.worker.shutdown().await?;
        self.cluster.close().await?;
        Ok(())
    }
}

/// Starts the CDC source, the Streams app and the sink on an embedded
/// cluster in `dir`.
pub async fn start(db: &Database, dir: &Path) -> anyhow::Result<Pipeline> {
    let cluster = Cluster::open(&format!("file:{}", dir.join("data").display())).await?;
    let worker_props = props(&[
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ("offset.flush.interval.ms", "500".into()),
    ])
    .into_iter()
    .collect();
    let mut registry = PluginRegistry::new();
    runnel::connectors::register(&mut registry);
    let worker =
        Worker::with_cluster(WorkerConfig::from_props(&worker_props)?, registry, cluster.clone()).await?;
    worker
        .add_connector(props(&[
            ("name", "shop-cdc".into()),
            ("connector.class", "io.debezium.connector.postgresql.PostgresConnector".into()),
            ("database.hostname", db.host.clone()),
            ("database.port", db.port.to_string()),
            ("database.user", db.user.clone()),
            ("database.password", db.password.clone()),
            ("database.dbname", db.dbname.clone()),
            ("topic.prefix", PREFIX.into()),
            ("table.include.list", "public.customers,public.orders".into()),
            ("slot.name", "cdc_pipeline".into()),
            ("publication.name", "cdc_pipeline".into()),
            // Plain JSON events for the Streams app.
            ("key.converter.schemas.enable", "false".into()),
            ("value.converter.schemas.enable", "false".into()),
            ("key.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter".into()),
        ]))
        .await?;
    // The app starts before the first events: its input topics are made
    // here (the CDC source writes into them).
    for table in ["customers", "orders"] {
        let topic = format!("{PREFIX}.public.{table}");
        if cluster.admin().describe_topic(&topic).await.is_err() {
            cluster.admin().create_topic(NewTopic::new(&topic, 1)).await?;
        }
    }
    // Revenue updates leave the app at each commit (the record cache merges
    // them in between): every second here.
    let config = StreamsConfig::new("cdc-pipeline")
        .with_state_dir(dir.join("state"))
        .with_commit_interval(Duration::from_secs(1));
    let streams = Streams::new(topology()?, config, cluster.clone())?;
    streams.start().await?;
    worker
        .add_connector(props(&[
            ("name", "revenue-sink".into()),
            ("connector.class", "io.debezium.connector.jdbc.JdbcSinkConnector".into()),
            ("topics", OUTPUT_TOPIC.into()),
            ("connection.url", format!("jdbc:postgresql://{}:{}/{}", db.host, db.port, db.dbname)),
            ("connection.username", db.user.clone()),
            ("connection.password", db.password.clone()),
            ("insert.mode", "upsert".into()),
            ("primary.key.mode", "record_key".into()),
            ("schema.evolution", "basic".into()),
            ("collection.name.format", TABLE.into()),
        ]))
        .await?;
    Ok(Pipeline { cluster, worker, streams })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url =
        std::env::args().nth(1).context("usage: cdc_pipeline <postgresql://user:password@host:port/db>")?;
    let db = Database::from_url(&url)?;
    let dir = tempfile::tempdir()?;
    let pipeline = start(&db, dir.path()).await?;
    eprintln!("cdc_pipeline: running; revenue per customer and minute goes to {TABLE}. Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    pipeline.shutdown().await
}
