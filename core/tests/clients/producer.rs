//! The producer against the embedded cluster: partitioning, batching,
//! backpressure, flush and close.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_core::broker::BrokerConfig;
use runnel_core::client::{partition_for_key, ProducerConfig, ProducerRecord};
use runnel_core::topic::NewTopic;
use runnel_core::Error;

async fn cluster(dir: &std::path::Path, auto_create: bool) -> common::TestCluster {
    let config =
        BrokerConfig { background_maintenance: false, auto_create_topics: auto_create, ..Default::default() };
    common::TestCluster::open(dir, config).await
}

fn create(cluster: &common::TestCluster, topic: &str, partitions: i32) {
    cluster.broker().unwrap().create_topic(NewTopic::new(topic, partitions)).unwrap();
}

fn read_partition(cluster: &common::TestCluster, topic: &str, p: i32) -> Vec<runnel_core::record::Record> {
    let log = cluster.broker().unwrap().log(topic, p).unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let records = log.read_records(offset, 1 << 20).unwrap();
        offset = records.last().unwrap().offset + 1;
        out.extend(records);
    }
    out
}

#[tokio::test]
async fn keyed_records_land_where_the_java_partitioner_puts_them_in_send_order() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "orders", 6);
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut deliveries = Vec::new();
    for i in 0..600 {
        let key = format!("customer-{}", i % 37);
        let value = format!("order-{i}");
        expected.entry(partition_for_key(key.as_bytes(), 6)).or_default().push(value.clone());
        deliveries.push(producer.enqueue(ProducerRecord::new("orders").key(key).value(value)).await.unwrap());
    }
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for d in deliveries {
        let meta = d.await.unwrap();
        offsets.entry(meta.partition).or_default().push(meta.offset);
    }
    for (p, values) in &expected {
        let stored: Vec<String> = read_partition(&cluster, "orders", *p)
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(&stored, values, "partition {p} holds its keys in send order");
        assert_eq!(offsets[p], (0..values.len() as i64).collect::<Vec<_>>());
    }
    producer.close().await.unwrap();
}

#[tokio::test]
async fn keyless_records_stick_to_a_partition_for_a_batch_then_move_on() {
    if common::skip_on_kafka("librdkafka picks the partition of a keyless record when it sends the batch") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "logs", 4);
    let config = ProducerConfig::default().linger_ms(60_000).batch_size(2000);
    let producer = cluster.producer(config).unwrap();
    let mut partitions = Vec::new();
    for i in 0..200 {
        let d = producer.enqueue(ProducerRecord::new("logs").value(format!("line {i:>40}"))).await.unwrap();
        partitions.push(d.partition());
    }
    producer.flush().await.unwrap();
    // Runs of the same partition, each about one batch (2000 bytes / ~70 per record).
    let mut runs = vec![(partitions[0], 1)];
    for p in &partitions[1..] {
        if *p == runs.last().unwrap().0 {
            runs.last_mut().unwrap().1 += 1;
        } else {
            runs.push((*p, 1));
        }
    }
    assert!(runs.len() >= 5, "moves on after each batch: {runs:?}");
    assert!(runs[..runs.len() - 1].iter().all(|(_, n)| *n >= 20), "sticks for a whole batch: {runs:?}");
    let used: std::collections::BTreeSet<i32> = partitions.iter().copied().collect();
    assert!(used.len() > 1);
}

#[tokio::test]
async fn explicit_partitions_headers_and_timestamps_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "t", 3);
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let meta = producer
        .send(
            ProducerRecord::new("t")
                .partition(2)
                .key("k")
                .value("v")
                .timestamp(1_234_567)
                .header("trace", "abc"),
        )
        .await
        .unwrap();
    assert_eq!((meta.partition, meta.offset, meta.timestamp), (2, 0, 1_234_567));
    let stored = &read_partition(&cluster, "t", 2)[0];
    assert_eq!(stored.timestamp, 1_234_567);
    assert_eq!(stored.headers[0].key, "trace");
    assert_eq!(stored.headers[0].value.as_deref(), Some(&b"abc"[..]));
    let tombstone = producer.send(ProducerRecord::new("t").partition(2).key("k")).await.unwrap();
    assert_eq!(tombstone.offset, 1);
    assert_eq!(read_partition(&cluster, "t", 2)[1].value, None);
}

#[tokio::test]
async fn bad_sends_fail_clearly_and_send_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "t", 2);
    let config = ProducerConfig::default().set("max.request.size", "1000").unwrap();
    let producer = cluster.producer(config).unwrap();
    let err = producer.send(ProducerRecord::new("missing").value("x")).await.unwrap_err();
    assert!(matches!(err, Error::UnknownTopic(ref t) if t == "missing"), "{err}");
    let err = producer.send(ProducerRecord::new("t").partition(5).value("x")).await.unwrap_err();
    assert!(err.to_string().contains("unknown partition t-5"), "{err}");
    let err = producer.send(ProducerRecord::new("t").value(vec![0u8; 2000])).await.unwrap_err();
    assert!(err.to_string().contains("exceeds max.request.size=1000"), "{err}");
    producer.flush().await.unwrap();
    let log_ends: Vec<i64> =
        (0..2).map(|p| cluster.broker().unwrap().log("t", p).unwrap().log_end_offset()).collect();
    assert_eq!(log_ends, vec![0, 0]);
    // The producer still works.
    producer.send(ProducerRecord::new("t").value("ok")).await.unwrap();
}

#[tokio::test]
async fn unknown_topics_are_created_when_auto_create_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), true).await;
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    producer.send(ProducerRecord::new("fresh").value("x")).await.unwrap();
    assert_eq!(cluster.broker().unwrap().partition_count("fresh").unwrap(), 1);
    let err = producer.send(ProducerRecord::new("bad name").value("x")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidTopicName { .. }), "{err}");
}

#[tokio::test]
async fn a_full_buffer_applies_backpressure_until_batches_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "t", 1);
    let config = ProducerConfig::default()
        .linger_ms(3_600_000)
        .batch_size(1 << 20)
        .set("buffer.memory", "4096")
        .unwrap()
        .set("max.request.size", "1024")
        .unwrap()
        // Over the network a flush takes longer on a busy machine.
        .set("max.block.ms", if common::kafka_backend() { "10000" } else { "200" })
        .unwrap();
    let producer = cluster.producer(config).unwrap();
    let mut accepted = Vec::new();
    let blocked = loop {
        match producer.enqueue(ProducerRecord::new("t").value(vec![1u8; 500])).await {
            Ok(d) => accepted.push(d),
            Err(e) => break e,
        }
        assert!(accepted.len() < 100, "the buffer bound never applied");
    };
    assert!(matches!(blocked, Error::Timeout { what: "producer buffer memory", .. }), "{blocked}");
    if !common::kafka_backend() {
        assert_eq!(accepted.len(), 4096 / 521, "as many 521-byte records as fit in 4096 bytes");
    }
    let accepted_count = accepted.len() as i64;
    // A send waiting for memory proceeds as soon as a flush frees it.
    let producer = std::sync::Arc::new(producer);
    let waiting = {
        let producer = producer.clone();
        tokio::spawn(async move { producer.enqueue(ProducerRecord::new("t").value(vec![2u8; 500])).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    producer.flush().await.unwrap();
    let late = waiting.await.unwrap().unwrap();
    for d in accepted {
        d.await.unwrap();
    }
    producer.flush().await.unwrap();
    assert_eq!(late.await.unwrap().offset, accepted_count);
}

#[tokio::test]
async fn close_and_drop_send_everything_already_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "t", 2);
    let slow = ProducerConfig::default().linger_ms(3_600_000).batch_size(1 << 20);
    let producer = cluster.producer(slow.clone()).unwrap();
    let mut deliveries = Vec::new();
    for i in 0..500 {
        deliveries
            .push(producer.enqueue(ProducerRecord::new("t").key(format!("{i}")).value("x")).await.unwrap());
    }
    producer.close().await.unwrap();
    for d in deliveries {
        d.await.unwrap();
    }
    assert!(matches!(producer.send(ProducerRecord::new("t").value("late")).await, Err(Error::Closed(_))));

    let producer = cluster.producer(slow).unwrap();
    let mut deliveries = Vec::new();
    for _ in 0..100 {
        deliveries.push(producer.enqueue(ProducerRecord::new("t").partition(0).value("y")).await.unwrap());
    }
    drop(producer);
    let last = futures::future::join_all(deliveries.into_iter().map(|d| d.wait())).await;
    assert!(last.iter().all(Result::is_ok));
    let total: i64 = (0..2).map(|p| cluster.broker().unwrap().log("t", p).unwrap().log_end_offset()).sum();
    assert_eq!(total, 600);
}

#[tokio::test]
async fn concurrent_senders_keep_their_own_order_within_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "t", 1);
    let producer = std::sync::Arc::new(cluster.producer(ProducerConfig::default().linger_ms(1)).unwrap());
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            let producer = producer.clone();
            tokio::spawn(async move {
                for i in 0..500 {
                    producer.enqueue(ProducerRecord::new("t").value(format!("{task}:{i}"))).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    producer.flush().await.unwrap();
    let mut next = [0; 4];
    for r in read_partition(&cluster, "t", 0) {
        let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
        let (task, i) = v.split_once(':').unwrap();
        let (task, i): (usize, usize) = (task.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[task], "task {task} out of order");
        next[task] += 1;
    }
    assert_eq!(next, [500; 4]);
}

#[tokio::test]
async fn a_record_over_the_topics_max_message_bytes_fails_its_delivery_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    cluster
        .broker()
        .unwrap()
        .create_topic(NewTopic::new("small", 1).config("max.message.bytes", "300"))
        .unwrap();
    let producer = cluster.producer(ProducerConfig::default().linger_ms(0)).unwrap();
    let err = producer.send(ProducerRecord::new("small").value(vec![0u8; 500])).await.unwrap_err();
    assert!(matches!(err, Error::SendFailed { .. }), "{err}");
    // librdkafka passes on the broker's error code, not its message.
    let expected =
        if common::kafka_backend() { "MessageSizeTooLarge" } else { "exceeds max.message.bytes=300" };
    assert!(err.to_string().contains(expected), "{err}");
    let ok = producer.send(ProducerRecord::new("small").value("fits")).await.unwrap();
    assert_eq!(ok.offset, 0, "the rejected batch took no offsets");
}

#[tokio::test]
async fn with_linger_zero_direct_and_batched_appends_keep_per_partition_order() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "t", 3);
    let producer = cluster.producer(ProducerConfig::default().linger_ms(0)).unwrap();
    // Slow sends (appended directly), then a fast burst (past the direct budget:
    // batched), then slow again; keys spread them over the partitions.
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut pending = Vec::new();
    for phase in 0..3 {
        for i in 0..600 {
            let key = format!("k{}", i % 7);
            let value = format!("{phase}-{i}");
            expected.entry(partition_for_key(key.as_bytes(), 3)).or_default().push(value.clone());
            pending.push(producer.enqueue(ProducerRecord::new("t").key(key).value(value)).await.unwrap());
            if phase != 1 && i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    for d in pending {
        d.await.unwrap();
    }
    for (p, values) in expected {
        let stored: Vec<String> = read_partition(&cluster, "t", p)
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(stored, values, "partition {p}");
    }
    // Keyless direct sends still move between partitions.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        seen.insert(producer.send(ProducerRecord::new("t").value(vec![0u8; 100])).await.unwrap().partition);
    }
    assert!(seen.len() > 1, "sticky partitioning moves on after a batch's worth: {seen:?}");
}

#[tokio::test]
async fn enqueue_many_keeps_order_confirms_every_record_and_stops_at_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "orders", 4);
    let producer = cluster.producer(ProducerConfig::default().linger_ms(5).batch_size(4096)).unwrap();
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut records = Vec::new();
    for i in 0..2_000 {
        let key = format!("k{}", i % 13);
        let value = format!("order-{i}");
        expected.entry(partition_for_key(key.as_bytes(), 4)).or_default().push(value.clone());
        records.push(ProducerRecord::new("orders").key(key).value(value));
    }
    let deliveries = producer.enqueue_many(&mut records).await.unwrap();
    assert!(records.is_empty());
    // Each delivery stands for its partition's next `records()` records,
    // stored at the offsets ending at its own.
    let mut covered: BTreeMap<i32, i64> = BTreeMap::new();
    for d in deliveries {
        let n = i64::from(d.records());
        assert!(n >= 1);
        let meta = d.await.unwrap();
        let before = covered.entry(meta.partition).or_insert(0);
        assert_eq!(meta.offset, *before + n - 1, "partition {}", meta.partition);
        *before += n;
    }
    for (p, values) in &expected {
        // The deliveries cover each partition's records…
        assert_eq!(covered[p], values.len() as i64, "partition {p}");
        // …and the partition holds its records in the order given.
        let stored: Vec<String> = read_partition(&cluster, "orders", *p)
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(&stored, values, "partition {p}");
    }
    if !common::kafka_backend() {
        // Records of one batch share one delivery: 2,000 records of ~20
        // bytes in 4 KiB batches are far fewer than 2,000 deliveries.
        let mut records: Vec<_> =
            (0..2_000).map(|i| ProducerRecord::new("orders").partition(0).value(format!("v{i}"))).collect();
        let deliveries = producer.enqueue_many(&mut records).await.unwrap();
        assert!(deliveries.len() < 50, "{} deliveries", deliveries.len());
        assert_eq!(deliveries.last().unwrap().partition(), 0);
        for d in deliveries {
            d.await.unwrap();
        }
    }

    // A record naming a missing partition: the records before it are
    // stored, it and the later ones are not, and the error names it.
    let before = read_partition(&cluster, "orders", 1).len();
    let mut records = vec![
        ProducerRecord::new("orders").partition(1).value("kept-1"),
        ProducerRecord::new("orders").partition(1).value("kept-2"),
        ProducerRecord::new("orders").partition(9).value("bad"),
        ProducerRecord::new("orders").partition(1).value("dropped"),
    ];
    let err = producer.enqueue_many(&mut records).await.unwrap_err();
    assert!(err.to_string().contains("unknown partition orders-9"), "{err}");
    assert!(records.is_empty());
    producer.flush().await.unwrap();
    let stored: Vec<String> = read_partition(&cluster, "orders", 1)[before..]
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(stored, ["kept-1", "kept-2"]);
    producer.close().await.unwrap();
}

#[tokio::test]
async fn enqueue_many_waits_for_memory_when_the_records_do_not_fit_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), false).await;
    create(&cluster, "t", 1);
    // 4 KiB of buffer for 40 records of ~520 bytes: they cannot all be
    // reserved at once, so they go in one by one as batches free memory.
    let config = ProducerConfig::default()
        .linger_ms(0)
        .batch_size(1024)
        .set("buffer.memory", "4096")
        .unwrap()
        .set("max.request.size", "1024")
        .unwrap()
        .set("max.block.ms", "10000")
        .unwrap();
    let producer = cluster.producer(config).unwrap();
    let mut records: Vec<_> = (0..40u8).map(|i| ProducerRecord::new("t").value(vec![i; 500])).collect();
    let deliveries = producer.enqueue_many(&mut records).await.unwrap();
    for d in deliveries {
        d.await.unwrap();
    }
    let stored: Vec<u8> =
        read_partition(&cluster, "t", 0).iter().map(|r| r.value.as_ref().unwrap()[0]).collect();
    assert_eq!(stored, (0..40u8).collect::<Vec<_>>());
    producer.close().await.unwrap();
}
