//! The file connectors and the worker against a real embedded cluster in a
//! temp dir: source resume, truncation and rotation; sink replays; errors
//! with tolerance, the dead letter queue and FAILED tasks; config errors.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use runnel_connect::data::{Schema, SchemaType, Value};
use runnel_connect::plugin::{PluginRegistry, SinkRecord, SinkTask, SinkTaskContext, TopicPartition};
use runnel_connect::record::ConnectRecord;
use runnel_connect::worker::{State, Worker, WorkerConfig};
use runnel_connectors::file::FileStreamSinkTask;
use runnel_core::client::{Cluster, ConsumerConfig, ConsumerRecord, ProducerConfig, ProducerRecord};

fn registry() -> PluginRegistry {
    let mut r = PluginRegistry::new();
    runnel_connectors::register(&mut r);
    r
}

fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn worker_config(dir: &Path) -> WorkerConfig {
    let p: BTreeMap<String, String> = [
        ("cluster", format!("file:{}", dir.display())),
        ("key.converter", "org.apache.kafka.connect.storage.StringConverter".into()),
        ("value.converter", "org.apache.kafka.connect.storage.StringConverter".into()),
        ("offset.flush.interval.ms", "50".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    WorkerConfig::from_props(&p).unwrap()
}

async fn start(cluster: &Cluster, dir: &Path) -> Worker {
    Worker::with_cluster(worker_config(dir), registry(), cluster.clone()).await.unwrap()
}

/// Every record of a topic, read from the beginning without a group.
async fn read_topic(cluster: &Cluster, topic: &str) -> Vec<ConsumerRecord> {
    let Ok(d) = cluster.admin().describe_topic(topic).await else { return Vec::new() };
    let tps: Vec<TopicPartition> =
        (0..d.partitions.len() as i32).map(|p| TopicPartition::new(topic, p)).collect();
    let mut c = cluster.consumer(ConsumerConfig::default().auto_commit(false)).unwrap();
    c.assign(tps.clone()).unwrap();
    c.seek_to_beginning(&tps).unwrap();
    let ends = c.end_offsets(&tps).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut done = true;
        for tp in &tps {
            if c.position(tp).await.unwrap() < ends[tp] {
                done = false;
            }
        }
        if done || Instant::now() > deadline {
            return out;
        }
        out.extend(c.poll(Duration::from_millis(100)).await.unwrap());
    }
}

async fn topic_lines(cluster: &Cluster, topic: &str) -> Vec<String> {
    read_topic(cluster, topic)
        .await
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap())
        .collect()
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn source_props(file: &Path) -> HashMap<String, String> {
    props(&[
        ("name", "src"),
        ("connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector"),
        ("file", file.to_str().unwrap()),
        ("topic", "lines"),
        ("batch.size", "7"),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_resumes_without_duplicates_and_follows_truncation_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let input = dir.path().join("in.txt");
    let cluster = Cluster::open(&format!("file:{}", data.display())).await.unwrap();
    append(&input, (0..50).map(|i| format!("a{i}")));
    // A partial last line waits for its newline.
    std::fs::OpenOptions::new().append(true).open(&input).unwrap().write_all(b"partial").unwrap();

    let worker = start(&cluster, &data).await;
    worker.add_connector(source_props(&input)).await.unwrap();
    wait_for("50 lines", || async { topic_lines(&cluster, "lines").await.len() == 50 }).await;
    worker.shutdown().await.unwrap();

    // Restart: no line again, the partial line completes, new lines follow.
    append(&input, ["-done".to_string()]);
    append(&input, (50..60).map(|i| format!("a{i}")));
    let worker = start(&cluster, &data).await;
    worker.add_connector(source_props(&input)).await.unwrap();
    let mut expected: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    expected.push("partial-done".into());
    expected.extend((50..60).map(|i| format!("a{i}")));
    wait_for("61 lines", || async { topic_lines(&cluster, "lines").await.len() >= 61 }).await;
    assert_eq!(topic_lines(&cluster, "lines").await, expected);

    // Truncation: the file starts over.
    std::fs::write(&input, "t0\nt1\n").unwrap();
    expected.extend(["t0".to_string(), "t1".to_string()]);
    wait_for("truncated lines", || async { topic_lines(&cluster, "lines").await.len() >= expected.len() })
        .await;
    assert_eq!(topic_lines(&cluster, "lines").await, expected);

    // Rotation: the rest of the old file, then the new one from the start.
    append(&input, ["t2".to_string()]);
    std::fs::rename(&input, dir.path().join("in.txt.1")).unwrap();
    append(&input, (0..3).map(|i| format!("r{i}")));
    expected.push("t2".into());
    expected.extend((0..3).map(|i| format!("r{i}")));
    wait_for("rotated lines", || async { topic_lines(&cluster, "lines").await.len() >= expected.len() })
        .await;
    assert_eq!(topic_lines(&cluster, "lines").await, expected);
    assert_eq!(worker.status().task("src", 0).unwrap().state, State::Running);
    worker.shutdown().await.unwrap();

    // Rotated while stopped: the new file (another inode) is read from 0.
    std::fs::rename(&input, dir.path().join("in.txt.2")).unwrap();
    append(&input, ["n0".to_string()]);
    let worker = start(&cluster, &data).await;
    worker.add_connector(source_props(&input)).await.unwrap();
    expected.push("n0".into());
    wait_for("new file", || async { topic_lines(&cluster, "lines").await.len() >= expected.len() }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(topic_lines(&cluster, "lines").await, expected);
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

fn sink_record(topic: &str, offset: i64, line: &str) -> SinkRecord {
    SinkRecord {
        record: ConnectRecord::new(topic, Value::Null)
            .with_value(Some(Schema::of(SchemaType::String)), Value::String(line.into())),
        original: TopicPartition::new(topic, 0),
        offset,
        raw: None,
    }
}

#[tokio::test]
async fn file_sink_skips_replays_and_cuts_unflushed_lines_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let config = props(&[("file", out.to_str().unwrap())]);
    let ctx = SinkTaskContext::default();
    let mut task = FileStreamSinkTask::default();
    task.start(&config, &ctx).await.unwrap();
    task.put((0..5).map(|i| sink_record("t", i, &format!("l{i}"))).collect()).await.unwrap();
    task.flush(&BTreeMap::new()).await.unwrap();
    // Lines past the flush reach the file, then the process dies.
    task.put((5..7).map(|i| sink_record("t", i, &format!("l{i}"))).collect()).await.unwrap();
    drop(task);
    std::fs::OpenOptions::new().append(true).open(&out).unwrap().write_all(b"l5\nl6\n").unwrap();

    // Restarted, the worker replays from an older commit.
    let mut task = FileStreamSinkTask::default();
    task.start(&config, &ctx).await.unwrap();
    task.put((2..9).map(|i| sink_record("t", i, &format!("l{i}"))).collect()).await.unwrap();
    task.flush(&BTreeMap::new()).await.unwrap();
    let expected: String = (0..9).map(|i| format!("l{i}\n")).collect();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    let stored = runnel_connectors::file::SinkOffsets::load(&out).unwrap();
    assert_eq!(stored.offsets[&TopicPartition::new("t", 0)], 8);
    assert_eq!(stored.length, expected.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_goes_to_the_dlq_with_tolerance_all_and_fails_the_task_with_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cluster = Cluster::open(&format!("file:{}", data.display())).await.unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    for v in [r#"{"a":1}"#, "not json", r#"{"a":2}"#] {
        producer.send(ProducerRecord::new("json-in").value(v).header("h", "x")).await.unwrap();
    }
    producer.flush().await.unwrap();

    let worker = start(&cluster, &data).await;
    let tolerant = dir.path().join("tolerant.txt");
    let strict = dir.path().join("strict.txt");
    let sink = |name: &str, file: &Path, tolerance: &str| {
        props(&[
            ("name", name),
            ("connector.class", "FileStreamSink"),
            ("file", file.to_str().unwrap()),
            ("topics", "json-in"),
            ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
            ("value.converter.schemas.enable", "false"),
            ("errors.tolerance", tolerance),
            ("errors.log.enable", "true"),
            ("errors.log.include.messages", "true"),
            ("errors.deadletterqueue.topic.name", "dlq"),
            ("errors.deadletterqueue.topic.replication.factor", "1"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
        ])
    };
    worker.add_connector(sink("tolerant", &tolerant, "all")).await.unwrap();
    worker.add_connector(sink("strict", &strict, "none")).await.unwrap();

    let status = worker.status();
    wait_for("the strict task to fail", || async {
        status.task("strict", 0).unwrap().state == State::Failed
    })
    .await;
    let failed = status.task("strict", 0).unwrap();
    let trace = failed.trace.unwrap();
    assert!(trace.contains("VALUE_CONVERTER") && trace.contains("json-in"), "{trace}");

    wait_for("the tolerant sink's lines", || async {
        std::fs::read_to_string(&tolerant).unwrap_or_default().lines().count() == 2
    })
    .await;
    assert_eq!(status.task("tolerant", 0).unwrap().state, State::Running);
    let lines = std::fs::read_to_string(&tolerant).unwrap();
    assert_eq!(lines, "{a:1}\n{a:2}\n");

    let dlq = read_topic(&cluster, "dlq").await;
    assert_eq!(dlq.len(), 1);
    let r = &dlq[0];
    assert_eq!(r.value.as_deref(), Some(&b"not json"[..]));
    let header = |k: &str| {
        let h = r.headers.iter().find(|h| h.key == k).unwrap_or_else(|| panic!("no header {k}"));
        String::from_utf8(h.value.clone().unwrap().to_vec()).unwrap()
    };
    assert_eq!(header("h"), "x");
    assert_eq!(header("__connect.errors.topic"), "json-in");
    assert_eq!(header("__connect.errors.partition"), "0");
    assert_eq!(header("__connect.errors.offset"), "1");
    assert_eq!(header("__connect.errors.connector.name"), "tolerant");
    assert_eq!(header("__connect.errors.task.id"), "0");
    assert_eq!(header("__connect.errors.stage"), "VALUE_CONVERTER");
    assert_eq!(header("__connect.errors.class.name"), "org.apache.kafka.connect.json.JsonConverter");
    assert!(header("__connect.errors.exception.class.name").contains("ConverterError"));
    assert!(header("__connect.errors.exception.message").contains("json-in"));
    assert!(!header("__connect.errors.exception.stacktrace").is_empty());
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}

#[tokio::test]
async fn config_errors_name_the_key_and_unknown_classes_list_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cluster = Cluster::open(&format!("file:{}", data.display())).await.unwrap();
    let worker = start(&cluster, &data).await;
    let cases: Vec<(HashMap<String, String>, Vec<&str>)> = vec![
        (
            props(&[("name", "x"), ("connector.class", "com.acme.Missing")]),
            vec!["com.acme.Missing", "FileStreamSink", "FileStreamSource"],
        ),
        (props(&[("name", "x"), ("connector.class", "FileStreamSource"), ("topic", "t")]), vec!["`file`"]),
        (
            props(&[
                ("name", "x"),
                ("connector.class", "FileStreamSource"),
                ("file", "f"),
                ("topic", "t"),
                ("batch.size", "many"),
            ]),
            vec!["`batch.size`"],
        ),
        (props(&[("name", "x"), ("connector.class", "FileStreamSink"), ("file", "f")]), vec!["`topics`"]),
        (
            props(&[
                ("name", "x"),
                ("connector.class", "FileStreamSink"),
                ("file", "f"),
                ("topics", "t"),
                ("transforms", "r"),
            ]),
            vec!["`transforms.r.type`"],
        ),
        (
            props(&[
                ("name", "x"),
                ("connector.class", "FileStreamSink"),
                ("file", "f"),
                ("topics", "t"),
                ("value.converter", "Avro"),
            ]),
            vec!["value.converter", "Avro"],
        ),
        (
            props(&[
                ("name", "x"),
                ("connector.class", "FileStreamSink"),
                ("file", "f"),
                ("topics", "t"),
                ("errors.retry.timeout", "soon"),
            ]),
            vec!["`errors.retry.timeout`"],
        ),
    ];
    for (p, needles) in cases {
        let err = worker.add_connector(p).await.unwrap_err().to_string();
        for n in needles {
            assert!(err.contains(n), "`{n}` not in: {err}");
        }
    }
    assert!(worker.connectors().await.is_empty());
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();
}
