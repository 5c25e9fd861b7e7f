//! The `kafka://` backend against librdkafka's mock cluster (several
//! brokers in-process): a broker goes down mid-run, leadership and the
//! group coordinator move, and producing and consuming carry on without
//! losing a record.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::mocking::{MockCluster, MockCoordinator};
use runnel_core::client::{Cluster, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord};

const TOPIC: &str = "failover";
const PARTITIONS: i32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producing_and_consuming_survive_a_broker_going_down() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic(TOPIC, PARTITIONS, 3).unwrap();
    // Leaders spread over brokers 1..=3; the group's coordinator on broker 2.
    for p in 0..PARTITIONS {
        mock.partition_leader(TOPIC, p, Some(1 + p % 3)).unwrap();
    }
    mock.coordinator(MockCoordinator::Group("readers".into()), 2).unwrap();
    let url = format!("kafka://{}", mock.bootstrap_servers());
    let cluster = Cluster::open(&url).await.unwrap();

    let producer = cluster
        .producer(ProducerConfig::default().linger_ms(5).set("enable.idempotence", "true").unwrap())
        .unwrap();
    let mut consumer = cluster
        .consumer(
            ConsumerConfig::group("readers")
                .offset_reset(OffsetReset::Earliest)
                .set("session.timeout.ms", "6000")
                .unwrap()
                .set("heartbeat.interval.ms", "500")
                .unwrap(),
        )
        .unwrap();
    consumer.subscribe([TOPIC]).unwrap();

    let total = 3000usize;
    let mut seen = BTreeSet::new();
    let mut deliveries = Vec::new();
    for i in 0..total {
        if i == total / 3 {
            // Broker 2 fails: its partitions and the coordinator move to broker 1.
            mock.broker_down(2).unwrap();
            for p in (0..PARTITIONS).filter(|p| 1 + p % 3 == 2) {
                mock.partition_leader(TOPIC, p, Some(1)).unwrap();
            }
            mock.coordinator(MockCoordinator::Group("readers".into()), 1).unwrap();
        }
        if i == 2 * total / 3 {
            mock.broker_up(2).unwrap();
        }
        let record = ProducerRecord::new(TOPIC).key(format!("k{}", i % 97)).value(format!("{i}"));
        deliveries.push(producer.enqueue(record).await.unwrap());
        if i % 100 == 0 {
            for r in consumer.poll(Duration::from_millis(1)).await.unwrap() {
                seen.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
    }
    for d in deliveries {
        d.wait_timeout(Duration::from_secs(60))
            .await
            .expect("every record is delivered despite the failover");
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.len() < total {
        assert!(Instant::now() < deadline, "consumed {} of {total} after the failover", seen.len());
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            seen.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(seen, (0..total).map(|i| i.to_string()).collect::<BTreeSet<_>>());
    consumer.commit_sync().await.unwrap();
    consumer.close().await.unwrap();
    producer.close().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_is_a_clear_error() {
    let err = Cluster::open("kafka://127.0.0.1:1").await.unwrap_err();
    assert!(err.to_string().contains("reach kafka://127.0.0.1:1"), "{err}");
}
