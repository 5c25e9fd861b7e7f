//! The runtime against real clusters: the embedded one, and a Runnel broker
//! over the Kafka protocol (`kafka://`, through librdkafka).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_core::client::{Cluster, ConsumerConfig, ProducerConfig, ProducerRecord};
use runnel_core::topic::{NewTopic, TopicPartition};
use runnel_streams::{
    Consumed, ErrorResponse, Produced, Serdes, Streams, StreamsBuilder, StreamsConfig, StreamsError,
    StreamsState,
};
use runnel_testkit::served::ServedCluster;

/// An embedded cluster in a temp dir, optionally served over the Kafka
/// protocol (the test kit's [`ServedCluster`]), with a state dir beside it.
struct TestCluster {
    served: ServedCluster,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestCluster {
    type Target = ServedCluster;

    fn deref(&self) -> &ServedCluster {
        &self.served
    }
}

impl TestCluster {
    async fn open(kafka: bool) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let embedded = Cluster::open(&format!("file:{}", dir.path().join("data").display())).await.unwrap();
        TestCluster { served: ServedCluster::start(embedded, kafka).await, _dir: dir }
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("state")
    }

    async fn close(self) {
        self.served.close().await.unwrap();
    }
}

async fn create(cluster: &Cluster, topic: &str, partitions: i32) {
    cluster.admin().create_topic(NewTopic::new(topic, partitions)).await.unwrap();
}

async fn produce(cluster: &Cluster, topic: &str, records: impl IntoIterator<Item = (String, String)>) {
    produce_at(cluster, topic, None, records).await
}

/// As [`produce`], every record with timestamp `ts` when given.
async fn produce_at(
    cluster: &Cluster,
    topic: &str,
    ts: Option<i64>,
    records: impl IntoIterator<Item = (String, String)>,
) {
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    let mut deliveries = Vec::new();
    for (k, v) in records {
        let mut record = ProducerRecord::new(topic).key(k).value(v);
        if let Some(ts) = ts {
            record = record.timestamp(ts);
        }
        deliveries.push(producer.enqueue(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close().await.unwrap();
}

/// Reads `topic` from the beginning until `n` distinct key-value pairs
/// arrived (or 30 s passed); returns key → values in arrival order, each
/// value once. At-least-once allows a rebalance to repeat records (the
/// new owner re-reads since the last commit); the first occurrences still
/// come in input order.
async fn read(cluster: &Cluster, topic: &str, partitions: i32, n: usize) -> BTreeMap<String, Vec<String>> {
    let mut consumer = cluster.consumer(ConsumerConfig::default()).unwrap();
    let tps: Vec<TopicPartition> = (0..partitions).map(|p| TopicPartition::new(topic, p)).collect();
    consumer.assign(tps.clone()).unwrap();
    consumer.seek_to_beginning(&tps).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < n && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            let values = out.entry(key).or_default();
            if !values.contains(&value) {
                values.push(value);
                got += 1;
            }
        }
    }
    out
}

fn uppercase_topology() -> runnel_streams::Topology {
    let mut builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("words", Consumed::with(Serdes::string(), Serdes::string()))
        .filter(|_, w| !w.starts_with('#'))
        .map_values(|w| w.to_uppercase())
        .to("shouted", Produced::with(Serdes::string(), Serdes::string()));
    builder.build().unwrap()
}

fn config(app: &str, cluster: &TestCluster) -> StreamsConfig {
    StreamsConfig::new(app)
        .with_state_dir(cluster.state_dir())
        .with_commit_interval(Duration::from_millis(100))
}

async fn wait_for_state(streams: &Streams, state: StreamsState) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while streams.state() != state {
        assert!(Instant::now() < deadline, "state is {:?}, expected {state:?}", streams.state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (`secs` at most) until group `group` has two members and both own
/// partitions; `what` says what failed otherwise.
async fn wait_for_two_members(cluster: &Cluster, group: &str, secs: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        // The group exists once the first member joins.
        let described = cluster.admin().describe_group(group).await;
        if described
            .as_ref()
            .is_ok_and(|g| g.members.len() == 2 && g.members.iter().all(|m| !m.assignment.is_empty()))
        {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {described:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (30 s at most) until the instances together processed `n` records.
async fn wait_for_processed(instances: &[&Streams], n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let processed = || instances.iter().map(|s| s.metrics().process_total).sum::<u64>();
    while processed() < n {
        assert!(Instant::now() < deadline, "processed {}", processed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn two_threads_process_every_partition(kafka: bool) {
    let cluster = TestCluster::open(kafka).await;
    create(&cluster.client, "words", 4).await;
    create(&cluster.client, "shouted", 4).await;
    let input: Vec<(String, String)> = (0..400)
        .map(|i| (format!("k{}", i % 40), if i % 10 == 0 { format!("#{i}") } else { format!("w{i}") }))
        .collect();
    produce(&cluster.client, "words", input.clone()).await;

    let streams = Streams::new(
        uppercase_topology(),
        config("upper", &cluster).with_num_stream_threads(2),
        cluster.client.clone(),
    )
    .unwrap();
    streams.start().await.unwrap();
    let out = read(&cluster.client, "shouted", 4, 360).await;
    streams.close().await.unwrap();
    assert_eq!(streams.state(), StreamsState::NotRunning);

    // Every kept record, upper-cased, in input order per key.
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in input.iter().filter(|(_, v)| !v.starts_with('#')) {
        expected.entry(k.clone()).or_default().push(v.to_uppercase());
    }
    assert_eq!(out, expected);
    // Both threads joined before either processed: no record was
    // processed twice by a startup rebalance.
    let consumer = cluster.client.consumer(ConsumerConfig::default()).unwrap();
    let tps: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("shouted", p)).collect();
    let written: i64 = consumer.end_offsets(&tps).unwrap().values().sum();
    assert_eq!(written, 360, "records were written more than once");

    // The group committed every consumed offset on close.
    let group = cluster.client.admin().describe_group("upper").await.unwrap();
    let lag: i64 = group.partitions.iter().map(|l| l.lag).sum();
    assert_eq!(lag, 0, "committed offsets lag behind: {:?}", group.partitions);
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_threads_process_every_partition_embedded() {
    two_threads_process_every_partition(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_threads_process_every_partition_over_kafka_protocol() {
    two_threads_process_every_partition(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_partitions_and_the_survivor_takes_over() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "words", 4).await;
    create(&cluster.client, "shouted", 4).await;
    let a = Streams::new(uppercase_topology(), config("shared", &cluster), cluster.client.clone()).unwrap();
    let b = Streams::new(uppercase_topology(), config("shared", &cluster), cluster.client.clone()).unwrap();
    a.start().await.unwrap();
    b.start().await.unwrap();

    // Both members own partitions once the group settles.
    wait_for_two_members(&cluster.client, "shared", 30, "group never spread over two members").await;
    produce(&cluster.client, "words", (0..200).map(|i| (format!("k{i}"), format!("a{i}")))).await;
    let first = read(&cluster.client, "shouted", 4, 200).await;
    assert_eq!(first.len(), 200);

    // One instance leaves; the other takes every partition over.
    a.close().await.unwrap();
    produce(&cluster.client, "words", (0..200).map(|i| (format!("k{i}"), format!("b{i}")))).await;
    let all = read(&cluster.client, "shouted", 4, 400).await;
    for i in 0..200 {
        let values = &all[&format!("k{i}")];
        assert!(values.contains(&format!("A{i}")) && values.contains(&format!("B{i}")), "k{i}: {values:?}");
    }
    let group = cluster.client.admin().describe_group("shared").await.unwrap();
    assert_eq!(group.members.len(), 1);
    assert_eq!(group.members[0].assignment.len(), 4);
    b.close().await.unwrap();
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_input_topic_is_named_at_start() {
    let cluster = TestCluster::open(false).await;
    let streams =
        Streams::new(uppercase_topology(), config("missing", &cluster), cluster.client.clone()).unwrap();
    let err = streams.start().await.unwrap_err();
    assert!(
        matches!(&err, StreamsError::MissingSourceTopics { topics } if topics == &["words".to_string()]),
        "{err}"
    );
    assert_eq!(streams.state(), StreamsState::Created);
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_thread_is_replaced_then_the_client_shuts_down_as_the_handler_says() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "amounts", 1).await;
    create(&cluster.client, "doubled", 1).await;
    let mut builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("amounts", Consumed::with(Serdes::string(), Serdes::i64()))
        .map_values(|v| v * 2)
        .to("doubled", Produced::with(Serdes::string(), Serdes::i64()));
    // Not an 8-byte i64: deserializing it fails.
    produce(&cluster.client, "amounts", [("k".to_string(), "oops".to_string())]).await;

    let streams =
        Streams::new(builder.build().unwrap(), config("poison", &cluster), cluster.client.clone()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    streams.set_uncaught_error_handler(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            ErrorResponse::ReplaceThread
        } else {
            ErrorResponse::ShutdownClient
        }
    });
    streams.start().await.unwrap();
    wait_for_state(&streams, StreamsState::Error).await;
    // The replacement thread read the same record again and failed again.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let errors = streams.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("cannot deserialize value of record amounts-0@0"), "{errors:?}");
    streams.close().await.unwrap();
    assert_eq!(streams.state(), StreamsState::Error);
    // Nothing was committed past the poison record.
    // (The group is gone once its last member left without committing.)
    match cluster.client.admin().describe_group("poison").await {
        Ok(group) => {
            assert!(group.partitions.iter().all(|l| l.committed.is_none()), "{:?}", group.partitions)
        }
        Err(e) => assert!(matches!(e, runnel_core::Error::UnknownGroup(_)), "{e}"),
    }
    cluster.close().await;
}

/// Output the cluster refuses (over the output topic's
/// `max.message.bytes`) fails the thread with an error naming the topic,
/// and the input is not committed past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_the_cluster_refuses_stops_the_thread_and_commits_nothing() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "words", 1).await;
    cluster
        .client
        .admin()
        .create_topic(NewTopic::new("shouted", 1).config("max.message.bytes", "200"))
        .await
        .unwrap();
    produce(&cluster.client, "words", [("k1".to_string(), "fine".to_string())]).await;
    produce(&cluster.client, "words", [("k2".to_string(), "x".repeat(500))]).await;

    let streams =
        Streams::new(uppercase_topology(), config("refused", &cluster), cluster.client.clone()).unwrap();
    streams.set_uncaught_error_handler(|_| ErrorResponse::ShutdownClient);
    streams.start().await.unwrap();
    wait_for_state(&streams, StreamsState::Error).await;
    let errors = streams.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("cannot send record to topic \"shouted\"")
            && errors[0].contains("exceeds max.message.bytes=200"),
        "{errors:?}"
    );
    streams.close().await.unwrap();
    match cluster.client.admin().describe_group("refused").await {
        Ok(group) => {
            assert!(group.partitions.iter().all(|l| l.committed.is_none()), "{:?}", group.partitions)
        }
        Err(e) => assert!(matches!(e, runnel_core::Error::UnknownGroup(_)), "{e}"),
    }
    cluster.close().await;
}

// ------------------------------------------------- crash and restore

fn count_topology() -> runnel_streams::Topology {
    use runnel_streams::{Grouped, Materialized};
    let mut builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(
            Materialized::as_("click-counts")
                .with_key_serde(Serdes::string())
                .with_value_serde(Serdes::i64()),
        )
        .to_stream()
        .to("click-counts-out", Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())));
    builder.build().unwrap()
}

/// Not a test on its own: the child process the crash test starts and
/// kills. It runs the count app against the broker named in the
/// environment until it is killed.
#[test]
fn child_count_app() {
    let Ok(bootstrap) = std::env::var("RUNNEL_STREAMS_CHILD_BOOTSTRAP") else { return };
    let state_dir = std::env::var("RUNNEL_STREAMS_CHILD_STATE").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = Cluster::open(&format!("kafka://{bootstrap}")).await.unwrap();
        let config = StreamsConfig::new("counter")
            .with_state_dir(state_dir)
            .with_commit_interval(Duration::from_millis(200));
        let streams = Streams::new(count_topology(), config, cluster).unwrap();
        streams.start().await.unwrap();
        println!("child: running");
        // Runs until the parent kills this process.
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

/// Runs test `test` of this binary in a child process, which reads the
/// bootstrap address from `bootstrap_env` and its state directory from
/// `RUNNEL_STREAMS_CHILD_STATE`.
fn spawn_test(
    test: &str,
    bootstrap_env: &str,
    bootstrap: &str,
    state_dir: &std::path::Path,
) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &runnel_testkit::test_name(module_path!(), test),
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(bootstrap_env, bootstrap)
        .env("RUNNEL_STREAMS_CHILD_STATE", state_dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn spawn_child(bootstrap: &str, state_dir: &std::path::Path) -> std::process::Child {
    spawn_test("child_count_app", "RUNNEL_STREAMS_CHILD_BOOTSTRAP", bootstrap, state_dir)
}

/// Every record of `topic` up to its end offsets (30 s at most), as
/// (key, value) bytes, in each partition's order.
async fn raw_records_in_order(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut consumer = cluster.consumer(ConsumerConfig::default()).unwrap();
    let tps: Vec<TopicPartition> = (0..partitions).map(|p| TopicPartition::new(topic, p)).collect();
    let ends = consumer.end_offsets(&tps).unwrap();
    consumer.assign(tps.clone()).unwrap();
    consumer.seek_to_beginning(&tps).unwrap();
    let mut positions: BTreeMap<TopicPartition, i64> = tps.iter().map(|tp| (tp.clone(), 0)).collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while positions.iter().any(|(tp, p)| *p < ends[tp]) && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(100)).await.unwrap() {
            positions.insert(r.topic_partition(), r.offset + 1);
            out.push((r.key.unwrap().to_vec(), r.value.map(|v| v.to_vec())));
        }
    }
    out
}

/// Latest count per key in `click-counts-out`, read from the beginning.
async fn latest_counts(cluster: &Cluster, partitions: i32) -> BTreeMap<String, i64> {
    let mut latest = BTreeMap::new();
    for (key, value) in raw_records_in_order(cluster, "click-counts-out", partitions).await {
        let count = i64::from_be_bytes(value.unwrap()[..8].try_into().unwrap());
        latest.insert(String::from_utf8(key).unwrap(), count);
    }
    latest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_restored_from_the_changelog_after_the_app_is_killed() {
    let cluster = TestCluster::open(true).await;
    let bootstrap = cluster.bootstrap.clone().expect("served over the Kafka protocol");
    create(&cluster.embedded, "clicks", 2).await;
    create(&cluster.embedded, "click-counts-out", 2).await;
    let state_dir = cluster.state_dir();
    let keys = 20;
    let batch =
        |round: usize| (0..400).map(move |i| (format!("user{}", i % keys), format!("click{round}-{i}")));

    let mut child = spawn_child(&bootstrap, &state_dir);
    produce(&cluster.embedded, "clicks", batch(0)).await;
    // Wait until the child has committed some progress, then kill it hard.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let group = cluster.embedded.admin().describe_group("counter").await;
        if group
            .is_ok_and(|g| g.partitions.iter().filter(|p| p.committed.is_some_and(|c| c > 0)).count() == 2)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the child app never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    produce(&cluster.embedded, "clicks", batch(1)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    produce(&cluster.embedded, "clicks", batch(2)).await;

    // A new instance restores the store from the changelog and goes on.
    let mut child = spawn_child(&bootstrap, &state_dir);
    let truth = 1200 / keys as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let counts = latest_counts(&cluster.embedded, 2).await;
        if counts.len() == keys && counts.values().all(|c| *c >= truth) {
            break counts;
        }
        assert!(Instant::now() < deadline, "counts never caught up: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // At-least-once: a record processed after the last commit before the
    // kill is counted again, never lost; restoring from scratch instead of
    // the changelog would have lost the first round (committed offsets
    // skip it), so every count reaching the truth shows the restore.
    for (key, count) in &counts {
        assert!(*count >= truth && *count < 2 * truth, "{key}: {count} (truth {truth})");
    }
    // The changelog topic exists and is compacted.
    let described =
        cluster.embedded.admin().describe_configs("counter-click-counts-changelog").await.unwrap();
    assert_eq!(described.get("cleanup.policy").map(|(v, _)| v.as_str()), Some("compact"));
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_counts_run_on_the_cluster_with_a_compact_delete_changelog() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "clicks", 2).await;
    create(&cluster.client, "per-second", 2).await;
    // 10 keys, 3 seconds of clicks, then one click for the first second
    // after stream time has moved 10 s on: late by more than the grace.
    let producer = cluster.client.producer(ProducerConfig::default()).unwrap();
    let mut deliveries = Vec::new();
    for i in 0..300i64 {
        let record = ProducerRecord::new("clicks").key(format!("k{}", i % 10)).value("x").timestamp(i * 10);
        deliveries.push(producer.enqueue(record).await.unwrap());
    }
    for key in 0..10 {
        let tick = ProducerRecord::new("clicks").key(format!("k{key}")).value("x").timestamp(13_000);
        deliveries.push(producer.enqueue(tick).await.unwrap());
        let late = ProducerRecord::new("clicks").key(format!("k{key}")).value("x").timestamp(500);
        deliveries.push(producer.enqueue(late).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close().await.unwrap();

    let second = Duration::from_secs(1);
    let mut builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(runnel_streams::Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(runnel_streams::TimeWindows::of_size_and_grace(second, Duration::from_secs(2)))
        .count(runnel_streams::Materialized::as_("per-second"))
        .to_stream()
        .map(|w, c| (format!("{}@{}", w.key, w.window.start), c.unwrap_or(0).to_string()))
        .to("per-second", Produced::with(Serdes::string(), Serdes::string()));
    let streams = Streams::new(
        builder.build().unwrap(),
        // One thread: no rebalance, so no at-least-once repeats to allow for.
        config("windows", &cluster),
        cluster.client.clone(),
    )
    .unwrap();
    streams.start().await.unwrap();
    // Each key has 10 clicks in each of seconds 0, 1 and 2, and one at 13 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    let mut consumer = cluster.client.consumer(ConsumerConfig::default()).unwrap();
    let tps: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new("per-second", p)).collect();
    consumer.assign(tps.clone()).unwrap();
    consumer.seek_to_beginning(&tps).unwrap();
    let done = |latest: &BTreeMap<String, i64>| {
        latest.len() == 40 && latest.iter().all(|(k, &c)| c == if k.ends_with("@13000") { 1 } else { 10 })
    };
    while !done(&latest) && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let count: i64 = String::from_utf8(r.value.unwrap().to_vec()).unwrap().parse().unwrap();
            let slot = latest.entry(key).or_default();
            *slot = (*slot).max(count);
        }
    }
    let dropped = streams.metrics().dropped_records_total;
    streams.close().await.unwrap();
    assert!(done(&latest), "latest counts: {latest:?}");
    assert_eq!(dropped, 10, "one late click per key");
    let changelog = cluster.client.admin().describe_topic("windows-per-second-changelog").await.unwrap();
    assert_eq!(changelog.configs.get("cleanup.policy").map(String::as_str), Some("compact,delete"));
    let retention = (3_000 + 24 * 3600 * 1000).to_string();
    assert_eq!(changelog.configs.get("retention.ms"), Some(&retention));
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_table_is_restored_before_threads_start_and_kept_current() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "users", 2).await;
    create(&cluster.client, "clicks", 4).await;
    create(&cluster.client, "enriched", 4).await;
    produce(&cluster.client, "users", (0..50).map(|i| (format!("u{i}"), format!("name{i}")))).await;
    let topology = || {
        let mut builder = StreamsBuilder::new();
        let users = builder.global_table::<String, String>(
            "users",
            Consumed::with(Serdes::string(), Serdes::string()),
            runnel_streams::Materialized::as_("users"),
        );
        builder
            .stream::<String, String>("clicks", Consumed::with(Serdes::string(), Serdes::string()))
            .join_global(&users, |_, user| user.clone(), |user, name| format!("{user}={name}"))
            .to("enriched", Produced::with(Serdes::string(), Serdes::string()));
        builder.build().unwrap()
    };
    let streams = Streams::new(
        topology(),
        config("global", &cluster).with_num_stream_threads(2),
        cluster.client.clone(),
    )
    .unwrap();
    streams.start().await.unwrap();
    // Clicks produced right after start join with the whole table: it was
    // restored before the stream threads started.
    produce(&cluster.client, "clicks", (0..50).map(|i| (format!("c{i}"), format!("u{i}")))).await;
    let out = read(&cluster.client, "enriched", 4, 50).await;
    assert_eq!(out.len(), 50, "{out:?}");
    assert_eq!(out["c7"], vec!["u7=name7".to_string()]);
    // An update of the table reaches later joins.
    produce(&cluster.client, "users", [("u7".to_string(), "renamed".to_string())]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    loop {
        produce(&cluster.client, "clicks", [(format!("late{i}"), "u7".to_string())]).await;
        let out = read(&cluster.client, "enriched", 4, 51 + i).await;
        if out.get(&format!("late{i}")).is_some_and(|v| v == &vec!["u7=renamed".to_string()]) {
            break;
        }
        assert!(Instant::now() < deadline, "the update never reached the join: {out:?}");
        i += 1;
    }
    streams.close().await.unwrap();
    assert!(streams.errors().is_empty(), "{:?}", streams.errors());
    // The checkpoint covers every record applied.
    let checkpoint = cluster.state_dir().join("global").join("global").join(".checkpoint");
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    assert!(text.contains("users 0 ") && text.contains("users 1 "), "{text}");
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_application_stops_every_instance() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "amounts", 4).await;
    create(&cluster.client, "doubled", 4).await;
    let topology = || {
        let mut builder = StreamsBuilder::new();
        builder
            .stream::<String, i64>("amounts", Consumed::with(Serdes::string(), Serdes::i64()))
            .map_values(|v| v * 2)
            .to("doubled", Produced::with(Serdes::string(), Serdes::i64()));
        builder.build().unwrap()
    };
    let instances: Vec<Streams> = (0..2)
        .map(|i| {
            let config =
                config("stop-all", &cluster).with_state_dir(cluster.state_dir().join(format!("i{i}")));
            let streams = Streams::new(topology(), config, cluster.client.clone()).unwrap();
            streams.set_uncaught_error_handler(|_| ErrorResponse::ShutdownApplication);
            streams
        })
        .collect();
    for streams in &instances {
        streams.start().await.unwrap();
    }
    // Both instances own partitions before the poison record arrives.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for streams in &instances {
        assert_eq!(streams.state(), StreamsState::Running);
    }
    // Not an 8-byte i64: whichever instance reads it fails.
    produce(&cluster.client, "amounts", [("k".to_string(), "oops".to_string())]).await;
    for streams in &instances {
        wait_for_state(streams, StreamsState::Error).await;
    }
    let all: Vec<String> = instances.iter().flat_map(|s| s.errors()).collect();
    assert!(all.iter().any(|e| e.contains("cannot deserialize value")), "{all:?}");
    assert!(all.iter().any(|e| e.starts_with("application shutdown requested: ")), "{all:?}");
    for streams in &instances {
        streams.close().await.unwrap();
    }
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_tasks_move_between_threads_of_one_instance() {
    // The first thread opens every task's stores; when the second joins,
    // the tasks it takes over are still open in the first until it
    // notices the rebalance. Opening them must wait, not fail.
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "clicks", 8).await;
    create(&cluster.client, "click-counts-out", 8).await;
    produce(&cluster.client, "clicks", (0..800).map(|i| (format!("user{}", i % 80), "x".to_string()))).await;
    let streams = Streams::new(
        count_topology(),
        config("moving", &cluster).with_num_stream_threads(2),
        cluster.client.clone(),
    )
    .unwrap();
    streams.start().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(streams.errors().is_empty(), "{:?}", streams.errors());
        let counts = latest_counts(&cluster.client, 8).await;
        if counts.len() == 80 && counts.values().all(|&c| c == 10) {
            break;
        }
        assert!(Instant::now() < deadline, "counts: {counts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    streams.close().await.unwrap();
    assert!(streams.errors().is_empty(), "{:?}", streams.errors());
    cluster.close().await;
}

fn join_topology() -> runnel_streams::Topology {
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let left = b.stream::<String, String>("orders", c());
    let right = b.stream::<String, String>("payments", c());
    left.left_join(
        &right,
        |o, p: Option<&String>| format!("{o}+{}", p.map_or("none", String::as_str)),
        runnel_streams::JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(3600)),
        runnel_streams::StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()),
    )
    .to("paid-orders", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windowed_join_runs_on_the_cluster_and_a_new_instance_restores_its_stores() {
    let cluster = TestCluster::open(false).await;
    for topic in ["orders", "payments", "paid-orders"] {
        create(&cluster.client, topic, 2).await;
    }
    produce(
        &cluster.client,
        "orders",
        [("o1".to_string(), "book".to_string()), ("o2".to_string(), "pen".to_string())],
    )
    .await;
    produce(&cluster.client, "payments", [("o1".to_string(), "card".to_string())]).await;
    let streams = Streams::new(join_topology(), config("shop", &cluster), cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    let out = read(&cluster.client, "paid-orders", 2, 1).await;
    assert_eq!(out.get("o1"), Some(&vec!["book+card".to_string()]));
    streams.close().await.unwrap();

    // Another instance with an empty state directory: the orders come back
    // from the changelog, and a late payment still joins o2.
    let fresh = config("shop", &cluster).with_state_dir(cluster.state_dir().join("second"));
    let streams = Streams::new(join_topology(), fresh, cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    produce(&cluster.client, "payments", [("o2".to_string(), "cash".to_string())]).await;
    let out = read(&cluster.client, "paid-orders", 2, 2).await;
    assert_eq!(out.get("o2"), Some(&vec!["pen+cash".to_string()]), "{out:?}");
    streams.close().await.unwrap();
    // A left join never emitted an order without its payment: both windows
    // are still open.
    assert!(out.values().flatten().all(|v| !v.ends_with("+none")), "{out:?}");
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_topics_with_different_partition_counts_fail_at_start_naming_both() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "orders", 2).await;
    create(&cluster.client, "payments", 3).await;
    let streams =
        Streams::new(join_topology(), config("mismatch", &cluster), cluster.client.clone()).unwrap();
    let err = streams.start().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StreamsError::NotCopartitioned { .. }), "{text}");
    assert!(text.contains("orders has 2") && text.contains("payments has 3"), "{text}");
    cluster.close().await;
}

/// Clicks joined with their user's region from the `users` table, to
/// `clicks-by-region` as `page@region`.
fn clicks_by_region_topology() -> StreamsBuilder {
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let users = b.table::<String, String>("users", c(), runnel_streams::Materialized::new());
    b.stream::<String, String>("clicks", c())
        .join_table(
            &users,
            |page, region| format!("{page}@{region}"),
            runnel_streams::Joined::with(Serdes::string(), Serdes::string(), Serdes::string()),
        )
        .to("clicks-by-region", Produced::with(Serdes::string(), Serdes::string()));
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_table_join_runs_on_the_cluster() {
    let cluster = TestCluster::open(false).await;
    for topic in ["users", "clicks", "clicks-by-region"] {
        create(&cluster.client, topic, 2).await;
    }
    let b = clicks_by_region_topology();
    produce(&cluster.client, "users", (0..20).map(|i| (format!("u{i}"), format!("r{}", i % 3)))).await;
    let streams =
        Streams::new(b.build().unwrap(), config("regions", &cluster), cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    // The table is read (and its offsets committed) before the clicks
    // arrive: every click finds its user.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Unknown until the group first commits.
        let group = cluster.client.admin().describe_group("regions").await.ok();
        let partitions = group.map(|g| g.partitions).unwrap_or_default();
        let users: Vec<_> = partitions.iter().filter(|p| p.partition.topic == "users").collect();
        if users.len() == 2 && users.iter().all(|p| p.committed.is_some() && p.lag == 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the table was not read: {partitions:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    produce(&cluster.client, "clicks", (0..20).map(|i| (format!("u{i}"), format!("/p{i}")))).await;
    let out = read(&cluster.client, "clicks-by-region", 2, 20).await;
    streams.close().await.unwrap();
    for i in 0..20 {
        assert_eq!(out.get(&format!("u{i}")), Some(&vec![format!("/p{i}@r{}", i % 3)]), "{out:?}");
    }
    cluster.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_table_join_runs_on_the_cluster() {
    let cluster = TestCluster::open(false).await;
    for topic in ["names", "emails", "contacts"] {
        create(&cluster.client, topic, 2).await;
    }
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let names = b.table::<String, String>("names", c(), runnel_streams::Materialized::new());
    let emails = b.table::<String, String>("emails", c(), runnel_streams::Materialized::new());
    names
        .outer_join(&emails, |n, e| {
            format!("{}<{}>", n.map_or("?", String::as_str), e.map_or("?", String::as_str))
        })
        .to_stream()
        .to("contacts", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    let streams =
        Streams::new(b.build().unwrap(), config("contacts", &cluster), cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    produce(&cluster.client, "names", (0..10).map(|i| (format!("u{i}"), format!("n{i}")))).await;
    produce(&cluster.client, "emails", (5..15).map(|i| (format!("u{i}"), format!("e{i}")))).await;
    // Every key's latest result: both sides for u5..u9, one side otherwise.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected: BTreeMap<String, String> = (0..15)
        .map(|i| {
            let n = if i < 10 { format!("n{i}") } else { "?".into() };
            let e = if i >= 5 { format!("e{i}") } else { "?".into() };
            (format!("u{i}"), format!("{n}<{e}>"))
        })
        .collect();
    loop {
        let out = read(&cluster.client, "contacts", 2, 15).await;
        let latest: BTreeMap<String, String> =
            out.into_iter().filter_map(|(k, v)| v.last().cloned().map(|v| (k, v))).collect();
        if latest == expected {
            break;
        }
        assert!(Instant::now() < deadline, "latest results {latest:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    streams.close().await.unwrap();
    cluster.close().await;
}

/// Kafka's `max.task.idle.ms` = 0 (KIP-695): with the table and the
/// stream both written before the app starts, a task waits for the
/// table partition's records the cluster already holds before it
/// processes the stream's later ones, so every click finds its user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waits_for_fetchable_records_of_an_empty_input_so_a_stream_table_join_sees_the_table() {
    let cluster = TestCluster::open(false).await;
    for topic in ["users", "clicks", "clicks-by-region"] {
        create(&cluster.client, topic, 2).await;
    }
    let n = 3000;
    produce_at(
        &cluster.client,
        "users",
        Some(1_000),
        (0..n).map(|i| (format!("u{i}"), format!("r{}", i % 3))),
    )
    .await;
    // The clicks come in the reverse order of their users, so reading the
    // two partitions side by side would join most clicks before their
    // user is read.
    produce_at(
        &cluster.client,
        "clicks",
        Some(2_000),
        (0..n).rev().map(|i| (format!("u{i}"), format!("/p{i}"))),
    )
    .await;
    let b = clicks_by_region_topology();
    // Small polls, so the two partitions' records arrive interleaved.
    let config = StreamsConfig::from_props([
        ("application.id", "idle-app"),
        ("state.dir", cluster.state_dir().to_str().unwrap()),
        ("commit.interval.ms", "100"),
        ("max.poll.records", "50"),
        ("max.task.idle.ms", "0"),
    ])
    .unwrap();
    let streams = Streams::new(b.build().unwrap(), config, cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    wait_for_processed(&[&streams], 2 * n as u64).await;
    streams.close().await.unwrap();
    let out = read(&cluster.client, "clicks-by-region", 2, n).await;
    assert_eq!(out.values().map(Vec::len).sum::<usize>(), n, "clicks that found no user are missing");
    cluster.close().await;
}

// ------------------------------------- a join across two instances, one killed

fn paid_orders_topology() -> runnel_streams::Topology {
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    let orders = b.stream::<String, String>("orders", c());
    let payments = b.stream::<String, String>("payments", c());
    orders
        .join(
            &payments,
            |o, p| format!("{o}+{p}"),
            runnel_streams::JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(3600)),
            runnel_streams::StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()),
        )
        .to("paid", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

/// Not a test on its own: one instance of the join app, in a process the
/// kill test starts (and kills), against the broker in the environment.
#[test]
fn child_join_app() {
    let Ok(bootstrap) = std::env::var("RUNNEL_STREAMS_CHILD_JOIN_BOOTSTRAP") else { return };
    let state_dir = std::env::var("RUNNEL_STREAMS_CHILD_STATE").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = Cluster::open(&format!("kafka://{bootstrap}")).await.unwrap();
        let config = StreamsConfig::from_props([
            ("application.id", "joiner"),
            ("state.dir", state_dir.as_str()),
            ("commit.interval.ms", "200"),
            ("session.timeout.ms", "3000"),
            ("heartbeat.interval.ms", "300"),
        ])
        .unwrap();
        let streams = Streams::new(paid_orders_topology(), config, cluster).unwrap();
        streams.start().await.unwrap();
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
}

/// A child process killed (SIGKILL) when dropped, so a failing test
/// leaves none behind.
struct ChildApp(std::process::Child);

impl ChildApp {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildApp {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_join_child(bootstrap: &str, state_dir: &std::path::Path) -> ChildApp {
    ChildApp(spawn_test("child_join_app", "RUNNEL_STREAMS_CHILD_JOIN_BOOTSTRAP", bootstrap, state_dir))
}

/// Every record of `topic` up to its end offsets: (key, value) → how many.
async fn all_records(cluster: &Cluster, topic: &str, partitions: i32) -> BTreeMap<(String, String), usize> {
    let mut seen = BTreeMap::new();
    for (key, value) in records_in_order(cluster, topic, partitions).await {
        *seen.entry((key, value.expect("a record with a value"))).or_default() += 1;
    }
    seen
}

/// Issue 16's runtime test: a stream-stream join on 4-partition topics
/// runs in two instances (processes); one is SIGKILLed while orders wait
/// in its window stores for their payments. The survivor takes its
/// partitions over, restores those stores from their changelogs, and
/// emits every pair: at-least-once allows duplicates (counted), nothing
/// may be missing or wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_keeps_every_pair_when_one_of_two_instances_is_killed() {
    let cluster = TestCluster::open(true).await;
    let bootstrap = cluster.bootstrap.clone().expect("served over the Kafka protocol");
    for topic in ["orders", "payments", "paid"] {
        create(&cluster.embedded, topic, 4).await;
    }
    let state = cluster.state_dir();
    let mut a = spawn_join_child(&bootstrap, &state.join("a"));
    let mut b = spawn_join_child(&bootstrap, &state.join("b"));
    wait_for_two_members(&cluster.embedded, "joiner", 60, "the two instances never shared the partitions")
        .await;
    let n = 400;
    produce(&cluster.embedded, "orders", (0..n).map(|i| (format!("k{i}"), format!("o{i}")))).await;
    produce(&cluster.embedded, "payments", (0..n / 2).map(|i| (format!("k{i}"), format!("p{i}")))).await;
    // Mid-stream: the first half has joined, and both instances have
    // committed progress on their partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = all_records(&cluster.embedded, "paid", 4).await;
        let group = cluster.embedded.admin().describe_group("joiner").await.ok();
        let committed = group.map_or(0, |g| {
            g.partitions.iter().filter(|p| p.partition.topic == "orders" && p.committed.is_some()).count()
        });
        if out.len() == n / 2 && committed == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{} pairs, {committed} partitions committed", out.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.kill();
    produce(&cluster.embedded, "payments", (n / 2..n).map(|i| (format!("k{i}"), format!("p{i}")))).await;

    let expected: std::collections::BTreeSet<(String, String)> =
        (0..n).map(|i| (format!("k{i}"), format!("o{i}+p{i}"))).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let out = loop {
        let out = all_records(&cluster.embedded, "paid", 4).await;
        if expected.iter().all(|pair| out.contains_key(pair)) {
            break out;
        }
        let missing = expected.iter().filter(|p| !out.contains_key(*p)).count();
        assert!(Instant::now() < deadline, "{missing} pairs still missing after the kill");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    b.kill();
    let unexpected: Vec<_> = out.keys().filter(|p| !expected.contains(*p)).collect();
    assert!(unexpected.is_empty(), "pairs that should not exist: {unexpected:?}");
    let duplicates: usize = out.values().map(|c| c - 1).sum();
    println!("{} pairs, {duplicates} duplicates (at-least-once after the kill)", expected.len());
    cluster.close().await;
}

// ------------------------------------------------ suppress across a restart

fn final_counts_topology() -> runnel_streams::Topology {
    use runnel_streams::{BufferConfig, Grouped, Materialized, Suppressed, TimeWindows};
    let mut b = StreamsBuilder::new();
    b.stream::<String, String>("events", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
        .count(Materialized::as_("event-counts"))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("final"))
        .to_stream()
        .map(|w, n| (format!("{}@{}", w.key, w.window.start / 1000), n.unwrap_or(-1).to_string()))
        .to("final-counts", Produced::with(Serdes::string(), Serdes::string()));
    b.build().unwrap()
}

/// Issue 16, point 6: what a suppression buffer holds survives a restart
/// on an empty state directory (restored from its changelog), and every
/// window emits exactly one final count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppression_buffer_survives_a_restart_and_each_window_emits_once() {
    let cluster = TestCluster::open(false).await;
    for topic in ["events", "final-counts"] {
        create(&cluster.client, topic, 2).await;
    }
    let keys = 10;
    // Minute 0: three events per key, all windows stay open.
    produce_at(
        &cluster.client,
        "events",
        Some(1_000),
        (0..keys * 3).map(|i| (format!("k{}", i % keys), format!("e{i}"))),
    )
    .await;
    let streams =
        Streams::new(final_counts_topology(), config("final", &cluster), cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    wait_for_processed(&[&streams], keys as u64 * 3).await;
    streams.close().await.unwrap();
    let early = all_records(&cluster.client, "final-counts", 2).await;
    assert!(early.is_empty(), "nothing is final yet: {early:?}");

    // A new instance on an empty state directory: the counts and the
    // buffer come back from their changelogs. Minute 1 adds two events
    // per key, then events at 3 minutes close both minutes.
    let fresh = config("final", &cluster).with_state_dir(cluster.state_dir().join("second"));
    let streams = Streams::new(final_counts_topology(), fresh, cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    produce_at(
        &cluster.client,
        "events",
        Some(61_000),
        (0..keys * 2).map(|i| (format!("k{}", i % keys), format!("f{i}"))),
    )
    .await;
    produce_at(
        &cluster.client,
        "events",
        Some(180_000),
        (0..keys).map(|i| (format!("k{i}"), "late".to_string())),
    )
    .await;
    let mut expected = BTreeMap::new();
    for k in 0..keys {
        expected.insert((format!("k{k}@0"), "3".to_string()), 1);
        expected.insert((format!("k{k}@60"), "2".to_string()), 1);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let out = all_records(&cluster.client, "final-counts", 2).await;
        if out.len() >= expected.len() {
            break out;
        }
        assert!(Instant::now() < deadline, "final counts so far: {out:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    streams.close().await.unwrap();
    assert_eq!(out.len(), expected.len(), "{out:?}");
    // Read again after the close: nothing more came.
    let out = all_records(&cluster.client, "final-counts", 2).await;
    assert_eq!(out, expected, "one final count per window, each once");

    // A third instance, empty state again: the stream time committed with
    // the offsets comes back too, so clicks of the closed first minute are
    // late and dropped, not counted into a window already emitted.
    let third = config("final", &cluster).with_state_dir(cluster.state_dir().join("third"));
    let streams = Streams::new(final_counts_topology(), third, cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    produce_at(
        &cluster.client,
        "events",
        Some(2_000),
        (0..keys).map(|i| (format!("k{i}"), "late".to_string())),
    )
    .await;
    wait_for_processed(&[&streams], keys as u64).await;
    let dropped = streams.metrics().dropped_records_total;
    streams.close().await.unwrap();
    assert_eq!(dropped, keys as u64, "the late clicks were dropped");
    assert_eq!(all_records(&cluster.client, "final-counts", 2).await, expected, "no window emitted twice");
    cluster.close().await;
}

// ------------------------------------------ Processor API on the runtime

/// Emits a heartbeat every 100 ms of wall-clock time, records or not.
struct Heartbeat {
    out: runnel_streams::Forwarder<String, String>,
    beats: u64,
}

impl runnel_streams::Processor<String, String> for Heartbeat {
    fn init(&mut self, ctx: &mut runnel_streams::ProcessorContext<'_>) -> Result<(), StreamsError> {
        ctx.schedule(Duration::from_millis(100), runnel_streams::PunctuationType::WallClockTime).map(|_| ())
    }
    fn process(
        &mut self,
        _: &mut runnel_streams::ProcessorContext<'_>,
        _: runnel_streams::Record<String, String>,
    ) -> Result<(), StreamsError> {
        Ok(())
    }
    fn punctuate(
        &mut self,
        ctx: &mut runnel_streams::ProcessorContext<'_>,
        p: runnel_streams::Punctuation,
    ) -> Result<(), StreamsError> {
        self.beats += 1;
        let record = runnel_streams::Record::new(
            format!("task-{}", ctx.task_id()),
            format!("beat{}", self.beats),
            p.timestamp,
        );
        self.out.forward(ctx, record)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_punctuations_run_on_the_stream_thread_without_records() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "ticks", 2).await;
    create(&cluster.client, "beats", 1).await;
    let mut topology = runnel_streams::Topology::new();
    topology
        .add_source("Ticks", "ticks", Serdes::string(), Serdes::string())
        .unwrap()
        .add_processor("Beat", |out| Heartbeat { out, beats: 0 }, &["Ticks"])
        .unwrap()
        .add_sink("Beats", "beats", Serdes::string(), Serdes::string(), &["Beat"])
        .unwrap();
    let streams = Streams::new(topology, config("beats", &cluster), cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    // Two tasks (one per partition), each beating about ten times a second.
    let out = read(&cluster.client, "beats", 1, 8).await;
    streams.close().await.unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    for (task, beats) in &out {
        assert!(beats.len() >= 3, "{task}: {beats:?}");
        assert_eq!(beats[..3], ["beat1", "beat2", "beat3"], "{task}");
    }
    cluster.close().await;
}

// ------------------------------------------------- foreign-key join

/// Every record of `topic` in offset order per partition: (key, value).
async fn records_in_order(cluster: &Cluster, topic: &str, partitions: i32) -> Vec<(String, Option<String>)> {
    raw_records_in_order(cluster, topic, partitions)
        .await
        .into_iter()
        .map(|(key, value)| (String::from_utf8(key).unwrap(), value.map(|v| String::from_utf8(v).unwrap())))
        .collect()
}

/// Issue 16, point 4 on the runtime: the two tables have different
/// partition counts (orders 4, customers 2), so subscriptions and
/// responses cross tasks through their internal topics. Orders switch
/// customers five times in a row: responses to an older order value
/// arrive after newer ones and must be dropped, so no result ever pairs an
/// order with the name of a customer it does not name, and each order
/// ends joined with its last customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_join_across_different_partition_counts_drops_stale_responses() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "orders", 4).await;
    create(&cluster.client, "customers", 2).await;
    create(&cluster.client, "named-orders", 4).await;
    let mut b = StreamsBuilder::new();
    let c = || Consumed::with(Serdes::string(), Serdes::string());
    // No record cache on the orders: each of the five updates of an order
    // subscribes, so older responses are in flight when newer ones land.
    let orders =
        b.table::<String, String>("orders", c(), runnel_streams::Materialized::new().with_caching_disabled());
    let customers = b.table::<String, String>("customers", c(), runnel_streams::Materialized::new());
    orders
        .join_foreign_key(
            &customers,
            |o: &String| o.split(',').next().map(str::to_string),
            |o, name| format!("{o}|{name}"),
            // Every result goes out (none merged away in a cache).
            runnel_streams::Materialized::with(Serdes::string(), Serdes::string()).with_caching_disabled(),
        )
        .to_stream()
        .to("named-orders", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    let topology = b.build().unwrap();
    let streams =
        Streams::new(topology, config("fk", &cluster).with_num_stream_threads(2), cluster.client.clone())
            .unwrap();
    // Everything is written before the app starts: each task reads all five
    // updates of its orders before the first responses come back.
    produce(&cluster.client, "customers", (0..10).map(|i| (format!("c{i}"), format!("name-c{i}")))).await;
    for round in 0..5 {
        produce(
            &cluster.client,
            "orders",
            (0..100).map(|i| (format!("o{i}"), format!("c{},r{round}", (i + round) % 10))),
        )
        .await;
    }
    streams.start().await.unwrap();
    let expected: BTreeMap<String, String> =
        (0..100).map(|i| (format!("o{i}"), format!("c{},r4|name-c{}", (i + 4) % 10, (i + 4) % 10))).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        let out = records_in_order(&cluster.client, "named-orders", 4).await;
        let mut latest = BTreeMap::new();
        for (k, v) in &out {
            match v {
                Some(v) => latest.insert(k.clone(), v.clone()),
                None => latest.remove(k),
            };
        }
        if latest == expected {
            break out;
        }
        assert!(Instant::now() < deadline, "latest results: {latest:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    streams.close().await.unwrap();
    for (order, value) in &out {
        let value = value.as_deref().unwrap_or_default();
        let (left, name) = value.split_once('|').unwrap_or_else(|| panic!("{order}: {value}"));
        let customer = left.split(',').next().unwrap();
        assert_eq!(name, format!("name-{customer}"), "{order} was joined with a stale response: {value}");
    }
    cluster.close().await;
}

/// `Materialized::with_caching_disabled` holds on the runtime too (the
/// runtime's cache budget used to override it): every update of the
/// table is written to its changelog and forwarded, none merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_without_caching_logs_every_update_on_the_runtime() {
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "prices", 2).await;
    create(&cluster.client, "price-updates", 2).await;
    let mut b = StreamsBuilder::new();
    b.table::<String, String>(
        "prices",
        Consumed::with(Serdes::string(), Serdes::string()),
        runnel_streams::Materialized::as_("prices-store").with_caching_disabled(),
    )
    .to_stream()
    .to("price-updates", Produced::with(Serdes::string(), Serdes::nullable(Serdes::string())));
    produce(&cluster.client, "prices", (0..50).map(|i| (format!("p{}", i % 5), format!("v{i}")))).await;
    let streams =
        Streams::new(b.build().unwrap(), config("uncached", &cluster), cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    wait_for_processed(&[&streams], 50).await;
    streams.close().await.unwrap();
    let total = |topic: &'static str| {
        let client = cluster.client.clone();
        async move {
            let consumer = client.consumer(ConsumerConfig::default()).unwrap();
            let tps: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new(topic, p)).collect();
            consumer.end_offsets(&tps).unwrap().values().sum::<i64>()
        }
    };
    assert_eq!(total("uncached-prices-store-changelog").await, 50);
    assert_eq!(total("price-updates").await, 50);
    cluster.close().await;
}

// ------------------------------------------------- interactive queries

fn word_count_topology() -> runnel_streams::Topology {
    use runnel_streams::{Grouped, Materialized};
    let mut b = StreamsBuilder::new();
    b.stream::<String, String>("words", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::as_("word-counts"));
    b.build().unwrap()
}

/// Issue 16, point 8: two instances share a 4-partition topic; for every
/// key, the metadata names the instance whose store holds it (read there,
/// absent from the other), and the two instances' stores together hold
/// every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_metadata_names_the_instance_whose_store_holds_each_key() {
    use runnel_streams::StoreQueryParameters;
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "words", 4).await;
    let instance = |server: &str, dir: &str| {
        let config = config("iq", &cluster)
            .with_state_dir(cluster.state_dir().join(dir))
            .with_application_server(server);
        Streams::new(word_count_topology(), config, cluster.client.clone()).unwrap()
    };
    let (a, b) = (instance("127.0.0.1:7001", "a"), instance("127.0.0.1:7002", "b"));
    a.start().await.unwrap();
    b.start().await.unwrap();
    wait_for_two_members(&cluster.client, "iq", 30, "the instances never shared the partitions").await;
    // Word k<i> appears i % 5 + 1 times.
    produce(
        &cluster.client,
        "words",
        (0..40).flat_map(|i| (0..=i % 5).map(move |n| (format!("k{i}"), format!("{n}")))),
    )
    .await;
    let expected_total: u64 = (0..40).map(|i| i % 5 + 1).sum();
    wait_for_processed(&[&a, &b], expected_total).await;
    let params = || StoreQueryParameters::from_name("word-counts", Serdes::string(), Serdes::i64());
    let (store_a, store_b) = (a.store(params()).unwrap(), b.store(params()).unwrap());
    let mut hosts = std::collections::BTreeSet::new();
    for i in 0..40 {
        let key = format!("k{i}");
        let meta = a.query_metadata_for_key("word-counts", &key, &Serdes::string()).await.unwrap();
        let host = meta.active_host.clone().expect("an owner");
        hosts.insert(host.port);
        let (owner, other) = if host.port == 7001 { (&store_a, &store_b) } else { (&store_b, &store_a) };
        assert_eq!(owner.get(&key).unwrap(), Some(i as i64 % 5 + 1), "{key} on {host} ({meta:?})");
        assert_eq!(other.get(&key).unwrap(), None, "{key} is not on the other instance");
        assert_eq!(b.query_metadata_for_key("word-counts", &key, &Serdes::string()).await.unwrap(), meta);
    }
    assert_eq!(hosts.len(), 2, "both instances hold keys");
    let (all_a, all_b) = (store_a.all().unwrap(), store_b.all().unwrap());
    assert_eq!(all_a.len() + all_b.len(), 40);
    let err = a.store(StoreQueryParameters::from_name("nope", Serdes::string(), Serdes::i64())).unwrap_err();
    assert!(matches!(err, StreamsError::UnknownStore { .. }), "{err}");
    a.close().await.unwrap();
    // A view taken while running fails at once once its instance closed.
    let started = Instant::now();
    let err = store_a.get(&"k0".to_string()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "{err}");
    assert!(err.to_string().contains("cannot be read"), "{err}");
    b.close().await.unwrap();
    cluster.close().await;
}

/// A versioned table's history comes back from its changelog: a new
/// instance on an empty state directory joins late stream records with
/// the version valid at their time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versioned_table_is_restored_with_its_history() {
    let cluster = TestCluster::open(false).await;
    for topic in ["prices", "orders", "priced"] {
        create(&cluster.client, topic, 2).await;
    }
    let topology = || {
        let mut b = StreamsBuilder::new();
        let m = runnel_streams::Materialized::as_("price-history").with_versioning(Duration::from_secs(3600));
        let prices =
            b.table::<String, String>("prices", Consumed::with(Serdes::string(), Serdes::string()), m);
        b.stream::<String, String>("orders", Consumed::with(Serdes::string(), Serdes::string()))
            .join_table(
                &prices,
                |order, price| format!("{order}@{price}"),
                runnel_streams::Joined::with(Serdes::string(), Serdes::string(), Serdes::string()),
            )
            .to("priced", Produced::with(Serdes::string(), Serdes::string()));
        b.build().unwrap()
    };
    for (price, ts) in [("100", 10_000), ("120", 20_000), ("150", 30_000)] {
        produce_at(
            &cluster.client,
            "prices",
            Some(ts),
            (0..10).map(|i| (format!("item{i}"), price.to_string())),
        )
        .await;
    }
    let first = Streams::new(topology(), config("history", &cluster), cluster.client.clone()).unwrap();
    first.start().await.unwrap();
    wait_for_processed(&[&first], 30).await;
    first.close().await.unwrap();

    let fresh = config("history", &cluster).with_state_dir(cluster.state_dir().join("second"));
    let second = Streams::new(topology(), fresh, cluster.client.clone()).unwrap();
    second.start().await.unwrap();
    produce_at(
        &cluster.client,
        "orders",
        Some(25_000),
        (0..10).map(|i| (format!("item{i}"), format!("o{i}"))),
    )
    .await;
    let out = read(&cluster.client, "priced", 2, 10).await;
    second.close().await.unwrap();
    for i in 0..10 {
        assert_eq!(out.get(&format!("item{i}")), Some(&vec![format!("o{i}@120")]), "{out:?}");
    }
    cluster.close().await;
}

/// Interactive window fetches see updates the record cache holds before
/// any commit (Kafka's caching window store merges its cache into
/// fetches): a windowed count with a one-minute commit interval is read
/// right after processing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_fetch_sees_counts_not_yet_committed() {
    use runnel_streams::{Grouped, Materialized, StoreQueryParameters, TimeWindows};
    let cluster = TestCluster::open(false).await;
    create(&cluster.client, "taps", 1).await;
    let mut b = StreamsBuilder::new();
    b.stream::<String, String>("taps", Consumed::with(Serdes::string(), Serdes::string()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
        .count(Materialized::as_("tap-counts"));
    let config = config("taps", &cluster).with_commit_interval(Duration::from_secs(60));
    let streams = Streams::new(b.build().unwrap(), config, cluster.client.clone()).unwrap();
    streams.start().await.unwrap();
    produce_at(&cluster.client, "taps", Some(1_000), (0..3).map(|i| ("k".to_string(), i.to_string()))).await;
    produce_at(&cluster.client, "taps", Some(12_000), [("k".to_string(), "x".to_string())]).await;
    wait_for_processed(&[&streams], 4).await;
    let store = streams
        .window_store(StoreQueryParameters::from_name("tap-counts", Serdes::string(), Serdes::i64()))
        .unwrap();
    assert_eq!(store.fetch(&"k".to_string(), 0).unwrap(), Some(3));
    assert_eq!(store.fetch_range(&"k".to_string(), 0, 20_000).unwrap(), vec![(0, 3), (10_000, 1)]);
    streams.close().await.unwrap();
}
