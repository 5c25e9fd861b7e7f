//! The admin client: topics, configs, and consumer groups (describe with
//! lag, delete, reset offsets with a dry run).

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use runnel_core::broker::BrokerConfig;
use runnel_core::client::{ConsumerConfig, OffsetReset, OffsetSpec, ProducerConfig, ProducerRecord};
use runnel_core::topic::{NewTopic, TopicPartition};
use runnel_core::Error;

async fn open(dir: &std::path::Path) -> common::TestCluster {
    let config = BrokerConfig { background_maintenance: false, ..Default::default() };
    common::TestCluster::open(dir, config).await
}

#[tokio::test]
async fn topics_and_configs_are_administered_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cluster = open(dir.path()).await;
        let admin = cluster.admin();
        admin.create_topic(NewTopic::new("t", 2).config("retention.ms", "1000")).await.unwrap();
        admin.create_partitions("t", 3).await.unwrap();
        assert_eq!(admin.list_topics().await.unwrap(), vec!["t".to_string()]);
        assert_eq!(admin.describe_topic("t").await.unwrap().partitions.len(), 3);
        let configs = admin.describe_configs("t").await.unwrap();
        assert_eq!(configs["retention.ms"], ("1000".to_string(), true));
        assert_eq!(configs["cleanup.policy"], ("delete".to_string(), false));

        let set = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        admin.alter_topic_config("t", set, vec!["retention.ms".to_string()]).await.unwrap();
        let log = cluster.broker().unwrap().log("t", 0).unwrap();
        assert!(log.config().cleanup_policy.compact, "applied to the running log");
        assert_eq!(
            log.config().retention_ms,
            Some(7 * 24 * 3_600_000),
            "deleted override reverts to the default"
        );

        let bad = BTreeMap::from([("retention.ms".to_string(), "soon".to_string())]);
        let err = admin.alter_topic_config("t", bad, vec![]).await.unwrap_err();
        assert!(err.to_string().contains("retention.ms"), "{err}");
        assert!(
            admin.describe_configs("t").await.unwrap()["cleanup.policy"].1,
            "a failed alter changes nothing"
        );
        let err = admin.alter_topic_config("missing", BTreeMap::new(), vec![]).await.unwrap_err();
        assert!(matches!(err, Error::UnknownTopic(_)));
        cluster.close().await.unwrap();
    }
    let cluster = open(dir.path()).await;
    let configs = cluster.admin().describe_configs("t").await.unwrap();
    assert_eq!(configs["cleanup.policy"], ("compact".to_string(), true));
    assert!(!configs["retention.ms"].1);
    cluster.admin().delete_topic("t").await.unwrap();
    assert!(cluster.admin().list_topics().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_listed_described_with_lag_reset_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    let admin = cluster.admin();
    admin.create_topic(NewTopic::new("t", 2)).await.unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    for i in 0..100 {
        producer
            .send(ProducerRecord::new("t").partition(i % 2).value("x").timestamp(1000 + i as i64))
            .await
            .unwrap();
    }
    let mut consumer = cluster
        .consumer(
            ConsumerConfig::group("g")
                .offset_reset(OffsetReset::Earliest)
                .auto_commit(false)
                .set("max.poll.records", "30")
                .unwrap(),
        )
        .unwrap();
    consumer.subscribe(["t"]).unwrap();
    let mut got = 0;
    while got < 30 {
        got += consumer.poll(Duration::from_secs(5)).await.unwrap().len();
    }
    consumer.commit_sync().await.unwrap();

    let listed = admin.list_groups().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].group_id.as_str(), listed[0].state.as_str()), ("g", "Stable"));
    let d = admin.describe_group("g").await.unwrap();
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].assignment.len(), 2);
    let total_lag: i64 = d.partitions.iter().map(|p| p.lag).sum();
    assert_eq!(total_lag, 70);
    assert!(d.partitions.iter().all(|p| p.log_end_offset == 50 && p.member_id.is_some()));

    // Active groups can be neither reset nor deleted.
    assert!(matches!(admin.delete_group("g").await, Err(Error::GroupNotEmpty(_))));
    assert!(matches!(
        admin.reset_group_offsets("g", &["t".into()], OffsetSpec::Earliest, true).await,
        Err(Error::GroupNotEmpty(_))
    ));
    consumer.close().await.unwrap();

    let before = admin.describe_group("g").await.unwrap().partitions;
    let dry = admin.reset_group_offsets("g", &["t".into()], OffsetSpec::Timestamp(1050), true).await.unwrap();
    assert_eq!(dry[&TopicPartition::new("t", 0)], 25, "partition 0 holds even i: 1050 is i=50, offset 25");
    assert_eq!(admin.describe_group("g").await.unwrap().partitions, before, "dry run changed nothing");
    let done = admin.reset_group_offsets("g", &["t".into()], OffsetSpec::Offset(10), false).await.unwrap();
    assert!(done.values().all(|&o| o == 10));
    let d = admin.describe_group("g").await.unwrap();
    assert_eq!(d.state, "Empty");
    assert!(d.partitions.iter().all(|p| p.committed == Some(10) && p.lag == 40));
    admin.reset_group_offsets("g", &["t".into()], OffsetSpec::Latest, false).await.unwrap();
    assert_eq!(admin.describe_group("g").await.unwrap().partitions.iter().map(|p| p.lag).sum::<i64>(), 0);

    admin.delete_group("g").await.unwrap();
    assert!(admin.list_groups().await.unwrap().is_empty());
    assert!(matches!(admin.describe_group("g").await, Err(Error::UnknownGroup(_))));
    assert!(matches!(admin.delete_group("g").await, Err(Error::UnknownGroup(_))));
}

#[tokio::test]
async fn the_offsets_topic_is_protected_from_clients() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    let admin = cluster.admin();
    admin.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let mut consumer = cluster.consumer(ConsumerConfig::group("g")).unwrap();
    consumer.commit_offsets(&BTreeMap::from([(TopicPartition::new("t", 0), 0)])).await.unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let err = producer.send(ProducerRecord::new("__consumer_offsets").value("x")).await.unwrap_err();
    assert!(err.to_string().contains("internal topic"), "{err}");
    for err in [
        admin.create_partitions("__consumer_offsets", 5).await.unwrap_err(),
        admin.delete_topic("__consumer_offsets").await.unwrap_err(),
        admin.create_topic(NewTopic::new("__consumer_offsets", 1)).await.unwrap_err(),
    ] {
        assert!(err.to_string().contains("internal topic"), "{err}");
    }
    assert!(!admin.list_topics().await.unwrap().contains(&"__consumer_offsets".to_string()));
}
