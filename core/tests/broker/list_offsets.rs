//! On `kafka://`, the offsets of many partitions are asked in one
//! ListOffsets request (per partition leader), not one round trip per
//! partition: counted by the server's own per-API request metrics.

use std::io::{Read, Write};
use std::net::SocketAddr;

use runnel_core::client::{Cluster, ConsumerConfig, ProducerConfig, ProducerRecord};
use runnel_core::server::{KafkaServer, ServerConfig};
use runnel_core::topic::{NewTopic, TopicPartition};

/// How many ListOffsets requests the server has answered.
fn list_offsets_requests(metrics: SocketAddr) -> u64 {
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    page.lines()
        .find_map(|l| l.strip_prefix("runnel_request_duration_seconds_count{api=\"ListOffsets\"} "))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offsets_of_many_partitions_take_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = KafkaServer::start(&embedded, config).await.unwrap();
    let metrics = server.metrics_addr().unwrap();

    embedded.admin().create_topic(NewTopic::new("t", 8)).await.unwrap();
    let producer = embedded.producer(ProducerConfig::default()).unwrap();
    for p in 0..8 {
        for i in 0..=p {
            producer.send(ProducerRecord::new("t").partition(p).value(format!("{p}-{i}"))).await.unwrap();
        }
    }
    producer.close().await.unwrap();
    let broker = embedded.broker().unwrap();

    let client = Cluster::open(&format!("kafka://{}", server.local_addr())).await.unwrap();
    let consumer = client.consumer(ConsumerConfig::default().auto_commit(false)).unwrap();
    let tps: Vec<TopicPartition> = (0..8).map(|p| TopicPartition::new("t", p)).collect();
    // Warm up: librdkafka learns the leaders with a metadata request first.
    consumer.end_offsets(&tps[..1]).unwrap();

    let before = list_offsets_requests(metrics);
    let ends = tokio::task::spawn_blocking({
        let tps = tps.clone();
        move || {
            let ends = consumer.end_offsets(&tps).unwrap();
            let begins = consumer.beginning_offsets(&tps).unwrap();
            (ends, begins)
        }
    })
    .await
    .unwrap();
    let asked = list_offsets_requests(metrics) - before;
    for tp in &tps {
        let log = broker.log(&tp.topic, tp.partition).unwrap();
        assert_eq!(ends.0[tp], log.log_end_offset(), "end of {tp}");
        assert_eq!(ends.1[tp], log.log_start_offset(), "beginning of {tp}");
    }
    // One request for the ends and one for the beginnings; per partition it was 16 or more.
    assert!(asked <= 2, "{asked} ListOffsets requests for 8 partitions, twice");

    client.close().await.unwrap();
    server.shutdown().await;
    embedded.close().await.unwrap();
}
