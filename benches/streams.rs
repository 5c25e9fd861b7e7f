//! Streams throughput on the embedded cluster (issue 5's benchmark, part
//! (a)): N JSON click events in 8 partitions with 100k distinct keys; a
//! stateless app (filter + map_values) writes to an output topic. The
//! ceiling, in the same run: a hand-written loop over the same input (a
//! plain consumer, the same JSON parsing, filter and mapping, nothing
//! written), no framework and no durability.
//!
//! `cargo bench --bench streams` (10M records); `RUNNEL_BENCH_RECORDS=N`
//! for fewer. The windowed count (part (b)) arrives with windows.

use std::time::{Duration, Instant};

use runnel::core::client::{Cluster, ConsumerConfig, ProducerConfig, ProducerRecord};
use runnel::core::topic::{NewTopic, TopicPartition};
use runnel::streams::{Consumed, Produced, Serdes, Streams, StreamsBuilder, StreamsConfig};
use serde::{Deserialize, Serialize};

const PARTITIONS: i32 = 8;
const KEYS: u64 = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Click {
    user: u64,
    page: String,
    country: String,
    ts: i64,
}

fn click(i: u64) -> Click {
    let countries = ["NL", "BE", "DE", "FR", "US"];
    Click {
        user: i % KEYS,
        page: format!("/page/{}", i % 1000),
        country: countries[(i % 5) as usize].to_string(),
        ts: 1_700_000_000_000 + i as i64,
    }
}

/// What both the app and the ceiling do to a click: keep four countries
/// out of five and reduce the event to its page.
fn keep(c: &Click) -> bool {
    c.country != "US"
}

fn page_of(c: Click) -> String {
    c.page
}

async fn total_end_offsets(cluster: &Cluster, topic: &str) -> i64 {
    let consumer = cluster.consumer(ConsumerConfig::default()).unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p)).collect();
    consumer.end_offsets(&tps).unwrap().values().sum()
}

#[tokio::main]
async fn main() {
    let n: u64 =
        std::env::var("RUNNEL_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().join("data").display())).await.unwrap();
    for t in ["clicks", "pages"] {
        cluster.admin().create_topic(NewTopic::new(t, PARTITIONS)).await.unwrap();
    }
    println!("streams benchmark: {n} JSON click events, {PARTITIONS} partitions, {KEYS} keys");
    let producer = cluster.producer(ProducerConfig::default().linger_ms(5)).unwrap();
    let start = Instant::now();
    let mut bytes = 0usize;
    let mut window = std::collections::VecDeque::new();
    for i in 0..n {
        let value = serde_json::to_vec(&click(i)).unwrap();
        bytes += value.len();
        let record = ProducerRecord::new("clicks").key(format!("user{}", i % KEYS)).value(value);
        window.push_back(producer.enqueue(record).await.unwrap());
        if window.len() > 100_000 {
            window.pop_front().unwrap().await.unwrap();
        }
    }
    for d in window {
        d.await.unwrap();
    }
    println!(
        "input written in {:.1} s ({:.0} bytes per value on average)",
        start.elapsed().as_secs_f64(),
        bytes as f64 / n as f64
    );
    let expected = (0..n).filter(|i| i % 5 != 4).count() as i64;

    // Ceiling: a plain consumer and the same per-record work.
    let mut consumer = cluster.consumer(ConsumerConfig::default()).unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new("clicks", p)).collect();
    consumer.assign(tps.clone()).unwrap();
    consumer.seek_to_beginning(&tps).unwrap();
    let start = Instant::now();
    let (mut seen, mut kept, mut out_bytes) = (0u64, 0i64, 0usize);
    while seen < n {
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            seen += 1;
            let c: Click = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            if keep(&c) {
                let page = page_of(c);
                out_bytes += page.len();
                kept += 1;
            }
        }
    }
    let ceiling_secs = start.elapsed().as_secs_f64();
    assert_eq!(kept, expected);
    std::hint::black_box(out_bytes);
    let ceiling = n as f64 / ceiling_secs;
    println!(
        "ceiling (hand-written loop): {n} records in {ceiling_secs:.2} s = {:.2}M records/s",
        ceiling / 1e6
    );

    // The Streams app, one thread and two.
    for threads in [1usize, 2] {
        let out = format!("pages-{threads}");
        cluster.admin().create_topic(NewTopic::new(&out, PARTITIONS)).await.unwrap();
        let mut builder = StreamsBuilder::new();
        builder
            .stream::<String, Click>("clicks", Consumed::with(Serdes::string(), Serdes::json()))
            .filter(|_, c| keep(c))
            .map_values(page_of)
            .to(out.clone(), Produced::with(Serdes::string(), Serdes::string()));
        let config = StreamsConfig::new(format!("bench-{threads}"))
            .with_state_dir(dir.path().join("state"))
            .with_num_stream_threads(threads);
        let streams = Streams::new(builder.build().unwrap(), config, cluster.clone()).unwrap();
        let start = Instant::now();
        streams.start().await.unwrap();
        while total_end_offsets(&cluster, &out).await < expected {
            assert!(streams.errors().is_empty(), "{:?}", streams.errors());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        streams.close().await.unwrap();
        let rate = n as f64 / secs;
        println!(
            "streams filter+map_values, {threads} thread(s): {n} records in {secs:.2} s = {:.2}M records/s, {:.0} MB/s in; {:.0}% of the ceiling",
            rate / 1e6,
            bytes as f64 / secs / 1e6,
            100.0 * rate / ceiling
        );
        if threads == 1 {
            println!("target (a) >= 1M records/s: {}", if rate >= 1e6 { "met" } else { "MISSED" });
        }
    }
    cluster.close().await.unwrap();
}
