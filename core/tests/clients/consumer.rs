//! The consumer against the embedded cluster: assign, poll, positions,
//! seeks, offset reset, pause/resume and commits (groups: groups.rs beside this file).

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runnel_core::broker::BrokerConfig;
use runnel_core::client::{ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord};
use runnel_core::topic::{NewTopic, TopicPartition};
use runnel_core::Error;

async fn open(dir: &std::path::Path) -> common::TestCluster {
    let config =
        BrokerConfig { background_maintenance: false, auto_create_topics: false, ..Default::default() };
    common::TestCluster::open(dir, config).await
}

async fn produce(cluster: &runnel_core::client::Cluster, topic: &str, partition: i32, n: usize, ts0: i64) {
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    for i in 0..n {
        producer
            .enqueue(
                ProducerRecord::new(topic)
                    .partition(partition)
                    .value(format!("{partition}:{i}"))
                    .timestamp(ts0 + i as i64),
            )
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
}

/// Polls until `n` records have arrived (at most 10 s): the `kafka://`
/// backend fetches in the background, so the first poll may come early.
async fn poll_until(
    consumer: &mut runnel_core::client::Consumer,
    n: usize,
) -> Vec<runnel_core::client::ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(100)).await.unwrap());
    }
    got
}

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

#[tokio::test]
async fn assigned_partitions_are_read_in_order_in_chunks_of_max_poll_records() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 2)).unwrap();
    produce(&cluster, "t", 0, 1000, 0).await;
    produce(&cluster, "t", 1, 700, 0).await;
    let config =
        ConsumerConfig::default().offset_reset(OffsetReset::Earliest).set("max.poll.records", "300").unwrap();
    let mut consumer = cluster.consumer(config).unwrap();
    consumer.assign([tp("t", 0), tp("t", 1)]).unwrap();
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    while seen.values().map(Vec::len).sum::<usize>() < 1700 {
        let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
        assert!(!records.is_empty() && records.len() <= 300, "{}", records.len());
        for r in records {
            assert_eq!(r.value.as_deref().unwrap(), format!("{}:{}", r.partition, r.offset).as_bytes());
            seen.entry(r.partition).or_default().push(r.offset);
        }
    }
    assert_eq!(seen[&0], (0..1000).collect::<Vec<_>>());
    assert_eq!(seen[&1], (0..700).collect::<Vec<_>>());
    assert_eq!(consumer.position(&tp("t", 0)).await.unwrap(), 1000);
    assert!(consumer.poll(Duration::from_millis(50)).await.unwrap().is_empty());
}

#[tokio::test]
async fn poll_waits_for_new_records_and_returns_as_soon_as_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 1)).unwrap();
    let mut consumer = cluster.consumer(ConsumerConfig::default()).unwrap();
    consumer.assign([tp("t", 0)]).unwrap();
    let start = Instant::now();
    assert!(consumer.poll(Duration::from_millis(200)).await.unwrap().is_empty());
    assert!(start.elapsed() >= Duration::from_millis(200), "an empty poll waits out its timeout");

    let producer_cluster = cluster.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        produce(&producer_cluster, "t", 0, 1, 0).await;
    });
    let start = Instant::now();
    let records = consumer.poll(Duration::from_secs(30)).await.unwrap();
    assert_eq!(records.len(), 1);
    assert!(start.elapsed() < Duration::from_secs(10), "woken by the append, not the 30 s timeout");
    writer.await.unwrap();
}

#[tokio::test]
async fn seeks_positions_and_timestamp_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 1)).unwrap();
    produce(&cluster, "t", 0, 100, 1_000).await;
    let mut consumer = cluster.consumer(ConsumerConfig::default()).unwrap();
    let p0 = tp("t", 0);
    assert!(matches!(consumer.seek(&p0, 5), Err(Error::NotAssigned(_))));
    consumer.assign([p0.clone()]).unwrap();
    assert_eq!(consumer.position(&p0).await.unwrap(), 100, "latest by default");
    consumer.seek(&p0, 40).unwrap();
    assert_eq!(consumer.poll(Duration::from_secs(1)).await.unwrap()[0].offset, 40);
    consumer.seek_to_beginning(std::slice::from_ref(&p0)).unwrap();
    assert_eq!(consumer.poll(Duration::from_secs(1)).await.unwrap()[0].offset, 0);
    consumer.seek_to_end(std::slice::from_ref(&p0)).unwrap();
    assert!(consumer.poll(Duration::from_millis(20)).await.unwrap().is_empty());

    let found = consumer.offsets_for_times(&BTreeMap::from([(p0.clone(), 1_050)])).unwrap();
    let hit = found[&p0].unwrap();
    assert_eq!((hit.offset, hit.timestamp), (50, 1_050));
    assert_eq!(consumer.offsets_for_times(&BTreeMap::from([(p0.clone(), 9_999)])).unwrap()[&p0], None);
    consumer.seek(&p0, hit.offset).unwrap();
    assert_eq!(consumer.poll(Duration::from_secs(1)).await.unwrap()[0].timestamp, 1_050);
    assert_eq!(consumer.beginning_offsets(std::slice::from_ref(&p0)).unwrap()[&p0], 0);
    assert_eq!(consumer.end_offsets(std::slice::from_ref(&p0)).unwrap()[&p0], 100);
}

/// Regression (issue 6, distributed Connect): on `kafka://`, the position
/// right after a seek to the beginning, before any fetch, was reported as
/// the end (auto.offset.reset=latest), so readers of a whole topic read nothing.
#[tokio::test]
async fn the_position_after_a_seek_to_the_beginning_or_end_is_known_before_any_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 3)).unwrap();
    for p in 0..3 {
        produce(&cluster, "t", p, 10, 1_000).await;
    }
    let all: Vec<TopicPartition> = (0..3).map(|p| tp("t", p)).collect();
    let mut consumer = cluster.consumer(ConsumerConfig::default()).unwrap();
    consumer.assign(all.clone()).unwrap();
    consumer.seek_to_beginning(&all).unwrap();
    for p in &all {
        assert_eq!(consumer.position(p).await.unwrap(), 0, "{p}");
    }
    // And every partition is read from its beginning, not just the last one sought.
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read < 30 {
        assert!(Instant::now() < deadline, "read {read} of 30 records");
        read += consumer.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    let p0 = tp("t", 0);
    let mut reader = cluster.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest)).unwrap();
    reader.assign([p0.clone()]).unwrap();
    reader.seek_to_end(std::slice::from_ref(&p0)).unwrap();
    assert_eq!(reader.position(&p0).await.unwrap(), 10);
}

#[tokio::test]
async fn auto_offset_reset_none_is_a_clear_error_and_earliest_or_latest_choose_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 1)).unwrap();
    produce(&cluster, "t", 0, 10, 0).await;
    let mut none = cluster.consumer(ConsumerConfig::group("g").offset_reset(OffsetReset::None)).unwrap();
    none.assign([tp("t", 0)]).unwrap();
    // librdkafka reports the missing offset asynchronously: poll until it does.
    let mut err = None;
    for _ in 0..100 {
        match none.poll(Duration::from_millis(50)).await {
            Err(e) => {
                err = Some(e);
                break;
            }
            Ok(records) => assert!(records.is_empty()),
        }
    }
    let err = err.expect("auto.offset.reset=none reports an error");
    assert_eq!(err.to_string(), "no committed offset for t-0 and auto.offset.reset=none");

    let mut earliest =
        cluster.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest)).unwrap();
    earliest.assign([tp("t", 0)]).unwrap();
    assert_eq!(earliest.poll(Duration::from_secs(1)).await.unwrap().len(), 10);
    let mut latest = cluster.consumer(ConsumerConfig::default()).unwrap();
    latest.assign([tp("t", 0)]).unwrap();
    assert!(latest.poll(Duration::from_millis(10)).await.unwrap().is_empty());
    produce(&cluster, "t", 0, 1, 0).await;
    assert_eq!(latest.poll(Duration::from_secs(1)).await.unwrap()[0].offset, 10);
}

#[tokio::test]
async fn paused_partitions_return_nothing_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 2)).unwrap();
    produce(&cluster, "t", 0, 5, 0).await;
    produce(&cluster, "t", 1, 5, 0).await;
    let mut consumer =
        cluster.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest)).unwrap();
    consumer.assign([tp("t", 0), tp("t", 1)]).unwrap();
    consumer.pause(&[tp("t", 1)]).unwrap();
    assert_eq!(consumer.paused(), vec![tp("t", 1)]);
    let got = poll_until(&mut consumer, 5).await;
    assert!(got.iter().all(|r| r.partition == 0) && got.len() == 5);
    assert!(
        consumer.poll(Duration::from_millis(300)).await.unwrap().is_empty(),
        "the paused partition stays quiet"
    );
    consumer.resume(&[tp("t", 1)]).unwrap();
    let records = poll_until(&mut consumer, 5).await;
    assert!(records.iter().all(|r| r.partition == 1) && records.len() == 5);
}

#[tokio::test]
async fn committed_offsets_survive_a_restart_and_set_where_a_new_consumer_starts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cluster = open(dir.path()).await;
        cluster.broker().unwrap().create_topic(NewTopic::new("t", 1)).unwrap();
        produce(&cluster, "t", 0, 50, 0).await;
        let mut consumer = cluster
            .consumer(ConsumerConfig::group("g").auto_commit(false).offset_reset(OffsetReset::Earliest))
            .unwrap();
        consumer.assign([tp("t", 0)]).unwrap();
        let records = consumer.poll(Duration::from_secs(1)).await.unwrap();
        assert_eq!(records.len(), 50);
        consumer.commit_offsets(&BTreeMap::from([(tp("t", 0), 30)])).await.unwrap();
        let committed = consumer.committed(&[tp("t", 0)]).unwrap();
        assert_eq!(committed[&tp("t", 0)].as_ref().unwrap().offset, 30);
        consumer.close().await.unwrap();
        cluster.close().await.unwrap();
    }
    let cluster = open(dir.path()).await;
    let mut consumer = cluster.consumer(ConsumerConfig::group("g").offset_reset(OffsetReset::None)).unwrap();
    consumer.assign([tp("t", 0)]).unwrap();
    assert_eq!(consumer.poll(Duration::from_secs(1)).await.unwrap()[0].offset, 30);
    consumer.commit_sync().await.unwrap();
    assert_eq!(consumer.committed(&[tp("t", 0)]).unwrap()[&tp("t", 0)].as_ref().unwrap().offset, 50);
    // Another group is independent.
    let mut other =
        cluster.consumer(ConsumerConfig::group("other").offset_reset(OffsetReset::Earliest)).unwrap();
    other.assign([tp("t", 0)]).unwrap();
    assert_eq!(other.poll(Duration::from_secs(1)).await.unwrap()[0].offset, 0);
    assert!(matches!(
        cluster.consumer(ConsumerConfig::default()).unwrap().commit_sync().await,
        Err(Error::NoGroup(_))
    ));
}

#[tokio::test]
async fn a_position_below_the_log_start_resets_after_retention() {
    if common::skip_on_kafka(
        "librdkafka prefetches on assignment, so it may hold records retention removed later",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    let broker = cluster.broker().unwrap();
    broker
        .create_topic(NewTopic::new("t", 1).config("segment.bytes", "1024").config("retention.bytes", "2048"))
        .unwrap();
    let mut consumer =
        cluster.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest)).unwrap();
    consumer.assign([tp("t", 0)]).unwrap();
    consumer.seek(&tp("t", 0), 0).unwrap();
    let producer = cluster.producer(ProducerConfig::default().linger_ms(0)).unwrap();
    for _ in 0..100 {
        producer.send(ProducerRecord::new("t").value(vec![7u8; 100])).await.unwrap();
    }
    broker.run_maintenance(broker.now_ms());
    let start = broker.log("t", 0).unwrap().log_start_offset();
    assert!(start > 0);
    let records = consumer.poll(Duration::from_secs(1)).await.unwrap();
    assert_eq!(records[0].offset, start, "reset to the earliest offset still stored");
}

#[tokio::test]
async fn commit_async_reports_through_its_callback_and_auto_commit_commits_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 1)).unwrap();
    produce(&cluster, "t", 0, 20, 0).await;

    let mut manual = cluster
        .consumer(ConsumerConfig::group("async").auto_commit(false).offset_reset(OffsetReset::Earliest))
        .unwrap();
    manual.assign([tp("t", 0)]).unwrap();
    assert_eq!(manual.poll(Duration::from_secs(1)).await.unwrap().len(), 20);
    let (tx, rx) = tokio::sync::oneshot::channel();
    manual.commit_async(move |result| {
        let _ = tx.send(result);
    });
    rx.await.unwrap().unwrap();
    assert_eq!(manual.committed(&[tp("t", 0)]).unwrap()[&tp("t", 0)].as_ref().unwrap().offset, 20);

    let config = ConsumerConfig::group("auto")
        .offset_reset(OffsetReset::Earliest)
        .set("auto.commit.interval.ms", "50")
        .unwrap();
    let mut auto = cluster.consumer(config).unwrap();
    auto.assign([tp("t", 0)]).unwrap();
    assert_eq!(auto.poll(Duration::from_secs(1)).await.unwrap().len(), 20);
    assert_eq!(
        auto.committed(&[tp("t", 0)]).unwrap()[&tp("t", 0)],
        None,
        "nothing committed before the interval"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while auto.committed(&[tp("t", 0)]).unwrap()[&tp("t", 0)].is_none() {
        auto.poll(Duration::from_millis(20)).await.unwrap();
        assert!(Instant::now() < deadline, "auto-commit never ran");
    }
    assert_eq!(auto.committed(&[tp("t", 0)]).unwrap()[&tp("t", 0)].as_ref().unwrap().offset, 20);
}

#[tokio::test]
async fn poll_with_an_unbounded_timeout_returns_when_data_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 1)).unwrap();
    produce(&cluster, "t", 0, 3, 0).await;
    let mut consumer =
        cluster.consumer(ConsumerConfig::default().offset_reset(OffsetReset::Earliest)).unwrap();
    consumer.assign([tp("t", 0)]).unwrap();
    assert_eq!(consumer.poll(Duration::MAX).await.unwrap().len(), 3);
}
