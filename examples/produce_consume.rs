//! The client API on its own, embedded: a producer writes page views to a
//! topic; a consumer group reads them back, counts views per page and
//! commits; reopening the data directory shows that records and committed
//! offsets survived. (The main job, a Connect and Streams pipeline, is
//! `examples/quickstart.rs`.)
//!
//! ```text
//! cargo run --release --example produce_consume [-- <data dir>]
//! ```
//!
//! Without an argument it uses a fresh temporary directory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runnel::core::client::{Cluster, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord};
use runnel::core::record::Compression;
use runnel::core::topic::NewTopic;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map_or_else(|| temp.path().to_path_buf(), Into::into);
    let url = format!("file:{}", dir.display());
    println!("cluster: {url}");

    let cluster = Cluster::open(&url).await?;
    let admin = cluster.admin();
    if !admin.list_topics().await?.contains(&"page-views".to_string()) {
        admin.create_topic(NewTopic::new("page-views", 3).config("segment.bytes", "1048576")).await?;
        println!("created topic page-views with 3 partitions");
    }

    // Produce 30,000 page views, keyed by user, in lz4 batches.
    let pages = ["/", "/pricing", "/docs", "/blog", "/signup"];
    let producer = cluster.producer(ProducerConfig::default().compression(Compression::Lz4))?;
    let start = Instant::now();
    let mut pending = Vec::new();
    for n in 0..30_000usize {
        let user = format!("user-{}", n % 97);
        let page = pages[n % pages.len()];
        let record = ProducerRecord::new("page-views").key(user).value(page).header("source", "quickstart");
        pending.push(producer.enqueue(record).await?);
    }
    let mut last = None;
    for delivery in pending {
        last = Some(delivery.await?);
    }
    producer.close().await?;
    let last = last.expect("sent records");
    println!(
        "produced 30000 records in {:.1?} (last: partition {} offset {})",
        start.elapsed(),
        last.partition,
        last.offset
    );

    // Consume them as a group and count views per page.
    let mut consumer =
        cluster.consumer(ConsumerConfig::group("page-counter").offset_reset(OffsetReset::Earliest))?;
    consumer.subscribe(["page-views"])?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut seen = 0;
    while seen < 30_000 {
        for record in consumer.poll(Duration::from_secs(5)).await? {
            let page = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
            *counts.entry(page).or_default() += 1;
            seen += 1;
        }
    }
    consumer.commit_sync().await?;
    let assignment: Vec<String> = consumer.assignment().iter().map(ToString::to_string).collect();
    println!("consumed {seen} records as group page-counter (assignment: {})", assignment.join(", "));
    for (page, n) in &counts {
        println!("  {page:<8} {n} views");
    }
    consumer.close().await?;
    cluster.close().await?;

    // Everything is still there after a reopen, including the group's offsets.
    let cluster = Cluster::open(&url).await?;
    let group = cluster.admin().describe_group("page-counter").await?;
    for p in &group.partitions {
        println!(
            "after reopen: {} committed {} of {} (lag {})",
            p.partition,
            p.committed.unwrap_or(-1),
            p.log_end_offset,
            p.lag
        );
    }
    cluster.close().await?;
    Ok(())
}
