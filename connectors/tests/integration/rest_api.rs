//! The REST API through real HTTP (a small HTTP/1.1 client over a tokio
//! socket) against a real worker on an embedded cluster in a temp dir,
//! with the file connectors: every endpoint, Kafka Connect's status codes
//! and JSON shapes, and the errors.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_connect::config_def::{ConfigDef, ConfigType, Importance};
use runnel_connect::plugin::{
    PluginRegistry, Props, SourceConnector, SourceRecord, SourceTask, SourceTaskContext, TaskError,
    TopicPartition,
};
use runnel_connect::rest::RestServer;
use runnel_connect::worker::{Worker, WorkerConfig};
use runnel_core::client::{Cluster, ConsumerConfig, ProducerConfig, ProducerRecord};
use runnel_core::topic::NewTopic;
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running worker with its REST server.
struct Api {
    addr: SocketAddr,
    cluster: Cluster,
    worker: Arc<Worker>,
    server: RestServer,
    _dir: tempfile::TempDir,
}

/// An HTTP answer: the status and the body as JSON (`Null` when empty).
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Json,
}

impl Reply {
    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_else(|| panic!("no error message in {:?}", self.body))
    }

    /// An error answer in Kafka's shape, with this code, naming `what`.
    fn assert_error(&self, code: u16, what: &str) {
        assert_eq!(self.status, code, "{:?}", self.body);
        assert_eq!(self.body["error_code"], json!(code), "{:?}", self.body);
        assert!(self.message().contains(what), "`{}` does not name `{what}`", self.message());
    }
}

impl Api {
    async fn start() -> Api {
        Api::start_with(|_| {}, &[]).await
    }

    /// A worker with the file connectors, more plugins (`plugins`) and
    /// more worker settings (`settings`).
    async fn start_with(plugins: impl FnOnce(&mut PluginRegistry), settings: &[(&str, &str)]) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let cluster = Cluster::open(&format!("file:{}", data.display())).await.unwrap();
        let props: BTreeMap<String, String> = [
            ("cluster", format!("file:{}", data.display())),
            ("key.converter", "org.apache.kafka.connect.storage.StringConverter".into()),
            ("value.converter", "org.apache.kafka.connect.storage.StringConverter".into()),
            ("offset.flush.interval.ms", "50".into()),
            ("listeners", "http://127.0.0.1:0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
        let mut registry = PluginRegistry::new();
        runnel_connectors::register(&mut registry);
        plugins(&mut registry);
        let worker = Arc::new(
            Worker::with_cluster(WorkerConfig::from_props(&props).unwrap(), registry, cluster.clone())
                .await
                .unwrap(),
        );
        let server = RestServer::start(worker.clone()).await.unwrap();
        Api { addr: server.local_addrs()[0], cluster, worker, server, _dir: dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self._dir.path().join(name)
    }

    async fn stop(self) {
        self.server.shutdown().await;
        self.worker.shutdown().await.unwrap();
    }

    /// One request; a worker that does not answer within 60 s fails the
    /// test (a hung worker must not hang the suite).
    async fn call(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        tokio::time::timeout(Duration::from_secs(60), self.call_once(method, path, body))
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: no answer within 60 s"))
    }

    async fn call_once(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        let body = if body.is_empty() {
            Json::Null
        } else {
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"))
        };
        Reply { status, body }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    async fn send(&self, method: &str, path: &str, body: Json) -> Reply {
        self.call(method, path, Some(&body.to_string())).await
    }

    /// Polls `GET path` until `check` holds.
    async fn wait_until(&self, what: &str, path: &str, check: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.get(path).await;
            if r.status == 200 && check(&r.body) {
                return r.body;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; last: {:?}", r.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every value of a topic, from the beginning.
    async fn topic_lines(&self, topic: &str) -> Vec<String> {
        let Ok(d) = self.cluster.admin().describe_topic(topic).await else { return Vec::new() };
        let tps: Vec<TopicPartition> =
            (0..d.partitions.len() as i32).map(|p| TopicPartition::new(topic, p)).collect();
        let mut c = self.cluster.consumer(ConsumerConfig::default().auto_commit(false)).unwrap();
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
            for r in c.poll(Duration::from_millis(100)).await.unwrap() {
                out.push(String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap());
            }
        }
    }

    async fn wait_for_lines(&self, topic: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.topic_lines(topic).await;
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "timed out at {} of {n} lines in `{topic}`", lines.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn source_config(file: &Path) -> Json {
    json!({"connector.class": "FileStreamSource", "file": file, "topic": "lines", "batch.size": 4})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_connector_through_its_whole_life_over_http() {
    let api = Api::start().await;
    let input = api.path("in.txt");
    append(&input, (0..10).map(|i| format!("line-{i}")));

    // Server info and plugins.
    let r = api.get("/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(r.body.get("commit").is_some() && r.body.get("kafka_cluster_id").is_some(), "{:?}", r.body);
    let r = api.get("/connector-plugins").await;
    let plugins = r.body.as_array().unwrap();
    let find = |class: &str| plugins.iter().find(|p| p["class"] == json!(class)).unwrap().clone();
    assert_eq!(find("FileStreamSource")["type"], json!("source"));
    assert_eq!(find("FileStreamSink")["type"], json!("sink"));
    assert!(!find("FileStreamSink")["version"].as_str().unwrap().is_empty());

    // Create; a second create conflicts.
    let r = api.send("POST", "/connectors", json!({"name": "src", "config": source_config(&input)})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["name"], json!("src"));
    assert_eq!(r.body["type"], json!("source"));
    assert_eq!(r.body["config"]["name"], json!("src"));
    assert_eq!(r.body["config"]["batch.size"], json!("4"));
    assert_eq!(r.body["tasks"], json!([{"connector": "src", "task": 0}]));
    let r = api.send("POST", "/connectors", json!({"name": "src", "config": source_config(&input)})).await;
    r.assert_error(409, "src");
    let lines = api.wait_for_lines("lines", 10).await;
    assert_eq!(lines, (0..10).map(|i| format!("line-{i}")).collect::<Vec<_>>());

    // Listing, with each expansion and both.
    assert_eq!(api.get("/connectors").await.body, json!(["src"]));
    let status_only = api.get("/connectors?expand=status").await.body;
    assert_eq!(status_only["src"]["status"]["connector"]["state"], json!("RUNNING"));
    assert!(status_only["src"].get("info").is_none());
    let info_only = api.get("/connectors?expand=info").await.body;
    assert_eq!(info_only["src"]["info"]["type"], json!("source"));
    assert!(info_only["src"].get("status").is_none());
    let both = api.get("/connectors?expand=info&expand=status").await.body;
    assert_eq!(both["src"]["info"]["name"], json!("src"));
    assert_eq!(both["src"]["status"]["name"], json!("src"));

    // Config, info, status and tasks.
    let config = api.get("/connectors/src/config").await.body;
    assert_eq!(config["file"], json!(input));
    assert_eq!(config["name"], json!("src"));
    assert_eq!(api.get("/connectors/src").await.body["config"], config);
    let status = api.get("/connectors/src/status").await.body;
    assert_eq!(status["name"], json!("src"));
    assert_eq!(status["type"], json!("source"));
    assert_eq!(status["connector"]["state"], json!("RUNNING"));
    assert!(status["connector"]["worker_id"].is_string());
    assert_eq!(status["tasks"][0]["id"], json!(0));
    assert_eq!(status["tasks"][0]["state"], json!("RUNNING"));
    let tasks = api.get("/connectors/src/tasks").await.body;
    assert_eq!(tasks[0]["id"], json!({"connector": "src", "task": 0}));
    assert_eq!(tasks[0]["config"]["topic"], json!("lines"));
    let task = api.get("/connectors/src/tasks/0/status").await.body;
    assert_eq!((task["id"].clone(), task["state"].clone()), (json!(0), json!("RUNNING")));
    api.get("/connectors/src/tasks/7/status").await.assert_error(404, "7");
    api.get("/connectors/src/tasks/x/status").await.assert_error(404, "x");

    // Active topics and their reset.
    assert_eq!(api.get("/connectors/src/topics").await.body, json!({"src": {"topics": ["lines"]}}));
    let r = api.call("PUT", "/connectors/src/topics/reset", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(api.get("/connectors/src/topics").await.body, json!({"src": {"topics": []}}));
    append(&input, ["line-10".to_string()]);
    api.wait_until("the topic to be active again", "/connectors/src/topics", |b| {
        b["src"]["topics"] == json!(["lines"])
    })
    .await;
    api.wait_for_lines("lines", 11).await;

    // Pause and resume.
    assert_eq!(api.call("PUT", "/connectors/src/pause", None).await.status, 202);
    api.wait_until("PAUSED", "/connectors/src/status", |s| {
        s["connector"]["state"] == json!("PAUSED") && s["tasks"][0]["state"] == json!("PAUSED")
    })
    .await;
    assert_eq!(api.call("PUT", "/connectors/src/resume", None).await.status, 202);
    api.wait_until("RUNNING", "/connectors/src/status", |s| {
        s["connector"]["state"] == json!("RUNNING") && s["tasks"][0]["state"] == json!("RUNNING")
    })
    .await;

    // Offsets: readable any time, changed only when STOPPED.
    let file_len = std::fs::metadata(&input).unwrap().len();
    let offsets = api
        .wait_until("the stored offset", "/connectors/src/offsets", |b| {
            b["offsets"][0]["offset"]["position"] == json!(file_len)
        })
        .await;
    assert_eq!(offsets["offsets"][0]["partition"], json!({"filename": input}));
    let patch = json!({"offsets": [{"partition": {"filename": input}, "offset": {"position": 0}}]});
    api.send("PATCH", "/connectors/src/offsets", patch.clone()).await.assert_error(400, "STOPPED");
    api.call("DELETE", "/connectors/src/offsets", None).await.assert_error(400, "STOPPED");

    assert_eq!(api.call("PUT", "/connectors/src/stop", None).await.status, 202);
    let status = api.get("/connectors/src/status").await.body;
    assert_eq!(status["connector"]["state"], json!("STOPPED"));
    assert_eq!(status["tasks"], json!([]));
    assert_eq!(api.get("/connectors/src/tasks").await.body, json!([]));
    assert_eq!(api.get("/connectors/src/config").await.body, config);

    // Alter to the start of line 6, resume: lines 6.. come again.
    let position: usize = (0..6).map(|i| format!("line-{i}\n").len()).sum();
    let patch = json!({"offsets": [{"partition": {"filename": input}, "offset": {"position": position}}]});
    let r = api.send("PATCH", "/connectors/src/offsets", patch).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.message().contains("altered"));
    let offsets = api.get("/connectors/src/offsets").await.body;
    assert_eq!(offsets["offsets"][0]["offset"], json!({"position": position}));
    assert_eq!(api.call("PUT", "/connectors/src/resume", None).await.status, 202);
    let lines = api.wait_for_lines("lines", 11 + 5).await;
    assert_eq!(lines[11..], (6..11).map(|i| format!("line-{i}")).collect::<Vec<_>>());

    // Reset: the whole file again.
    assert_eq!(api.call("PUT", "/connectors/src/stop", None).await.status, 202);
    let r = api.call("DELETE", "/connectors/src/offsets", None).await;
    assert_eq!(r.status, 200);
    assert!(r.message().contains("reset"));
    assert_eq!(api.get("/connectors/src/offsets").await.body, json!({"offsets": []}));
    assert_eq!(api.call("PUT", "/connectors/src/resume", None).await.status, 202);
    let lines = api.wait_for_lines("lines", 16 + 11).await;
    assert_eq!(lines[16..], (0..11).map(|i| format!("line-{i}")).collect::<Vec<_>>());

    // PATCH config merges; null removes (here making it invalid: 400, unchanged).
    let r = api.send("PATCH", "/connectors/src/config", json!({"batch.size": 2})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["config"]["batch.size"], json!("2"));
    assert_eq!(api.get("/connectors/src/config").await.body["file"], json!(input));
    api.send("PATCH", "/connectors/src/config", json!({"topic": null})).await.assert_error(400, "topic");
    assert_eq!(api.get("/connectors/src/config").await.body["topic"], json!("lines"));
    api.send("PATCH", "/connectors/src/config", json!({"name": "other"})).await.assert_error(400, "name");

    // PUT config: 200 when updating, 201 when creating.
    let mut updated = source_config(&input);
    updated["batch.size"] = json!("3");
    let r = api.send("PUT", "/connectors/src/config", updated.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["config"]["batch.size"], json!("3"));
    let other = api.path("other.txt");
    append(&other, ["o".to_string()]);
    let mut created = source_config(&other);
    created["topic"] = json!("other");
    let r = api.send("PUT", "/connectors/src2/config", created).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["name"], json!("src2"));
    api.send("PUT", "/connectors/src2/config", json!({"connector.class": "FileStreamSource", "name": "x"}))
        .await
        .assert_error(400, "name");
    assert_eq!(api.get("/connectors").await.body, json!(["src", "src2"]));

    // Restarts.
    api.wait_until("RUNNING", "/connectors/src/status", |s| s["tasks"][0]["state"] == json!("RUNNING")).await;
    let r = api.call("POST", "/connectors/src/restart", None).await;
    assert_eq!((r.status, r.body.clone()), (204, Json::Null));
    let r = api.call("POST", "/connectors/src/restart?includeTasks=true", None).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["connector"]["state"], json!("RESTARTING"));
    assert_eq!(r.body["tasks"][0]["state"], json!("RESTARTING"));
    api.wait_until("RUNNING", "/connectors/src/status", |s| s["tasks"][0]["state"] == json!("RUNNING")).await;
    let r = api.call("POST", "/connectors/src/restart?includeTasks=true&onlyFailed=true", None).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["connector"]["state"], json!("RUNNING"), "nothing failed, nothing restarts");
    assert_eq!(r.body["tasks"][0]["state"], json!("RUNNING"));
    api.call("POST", "/connectors/src/restart?includeTasks=maybe", None)
        .await
        .assert_error(400, "includeTasks");
    assert_eq!(api.call("POST", "/connectors/src/tasks/0/restart", None).await.status, 204);
    api.call("POST", "/connectors/src/tasks/3/restart", None).await.assert_error(404, "3");
    api.wait_until("RUNNING", "/connectors/src/status", |s| s["tasks"][0]["state"] == json!("RUNNING")).await;
    // Nothing was lost or repeated by the restarts.
    append(&input, ["line-11".to_string()]);
    let lines = api.wait_for_lines("lines", 28).await;
    assert_eq!(lines.len(), 28);
    assert_eq!(lines[27], "line-11");

    // Delete.
    assert_eq!(api.call("DELETE", "/connectors/src", None).await.status, 204);
    api.get("/connectors/src").await.assert_error(404, "src");
    api.call("DELETE", "/connectors/src", None).await.assert_error(404, "src");
    assert_eq!(api.get("/connectors").await.body, json!(["src2"]));
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_offsets_topics_and_restarting_only_failed_tasks() {
    let api = Api::start().await;
    api.cluster.admin().create_topic(NewTopic::new("in", 1)).await.unwrap();
    let producer = api.cluster.producer(ProducerConfig::default()).unwrap();
    for i in 0..5 {
        producer.send(ProducerRecord::new("in").value(format!("v{i}"))).await.unwrap();
    }
    producer.flush().await.unwrap();
    let out = api.path("out.txt");
    let config = json!({"connector.class": "FileStreamSink", "file": out, "topics": "in"});
    let r = api.send("POST", "/connectors", json!({"name": "sink", "config": config})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["type"], json!("sink"));

    let committed = json!({"offsets": [{
        "partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": {"kafka_offset": 5}}]});
    api.wait_until("the committed offsets", "/connectors/sink/offsets", |b| *b == committed).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "v0\nv1\nv2\nv3\nv4\n");
    assert_eq!(api.get("/connectors/sink/topics").await.body, json!({"sink": {"topics": ["in"]}}));

    assert_eq!(api.call("PUT", "/connectors/sink/stop", None).await.status, 202);
    let at = |o: Json| json!({"offsets": [{"partition": {"kafka_topic": "in", "kafka_partition": 0}, "offset": o}]});
    let r = api.send("PATCH", "/connectors/sink/offsets", at(json!({"kafka_offset": 2}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(api.get("/connectors/sink/offsets").await.body, at(json!({"kafka_offset": 2})));
    let r = api.send("PATCH", "/connectors/sink/offsets", at(Json::Null)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(api.get("/connectors/sink/offsets").await.body, json!({"offsets": []}));
    let bad = json!({"offsets": [{"partition": {"kafka_topic": "in"}, "offset": {"kafka_offset": 1}}]});
    api.send("PATCH", "/connectors/sink/offsets", bad).await.assert_error(400, "kafka_partition");
    api.send("PATCH", "/connectors/sink/offsets", at(json!({"kafka_offset": -3})))
        .await
        .assert_error(400, "kafka_offset");
    api.send("PATCH", "/connectors/sink/offsets", at(json!({"kafka_offset": 4}))).await;
    assert_eq!(api.call("DELETE", "/connectors/sink/offsets", None).await.status, 200);
    assert_eq!(api.get("/connectors/sink/offsets").await.body, json!({"offsets": []}));
    assert_eq!(api.call("PUT", "/connectors/sink/resume", None).await.status, 202);
    api.wait_until("RUNNING", "/connectors/sink/status", |s| s["tasks"][0]["state"] == json!("RUNNING"))
        .await;
    // The sink re-reads from the start but skips what it already wrote.
    api.wait_until("the committed offsets", "/connectors/sink/offsets", |b| *b == committed).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "v0\nv1\nv2\nv3\nv4\n");

    // A task that fails on a record that is not JSON; onlyFailed restarts just it.
    producer.send(ProducerRecord::new("json-in").value("not json")).await.unwrap();
    producer.flush().await.unwrap();
    let strict = json!({"name": "strict", "config": {
        "connector.class": "FileStreamSink", "file": api.path("strict.txt"), "topics": "json-in",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false"}});
    assert_eq!(api.send("POST", "/connectors", strict).await.status, 201);
    let failed = api
        .wait_until("FAILED", "/connectors/strict/tasks/0/status", |t| t["state"] == json!("FAILED"))
        .await;
    assert!(failed["trace"].as_str().unwrap().contains("json-in"), "{failed:?}");
    let r = api.call("POST", "/connectors/strict/restart?includeTasks=true&onlyFailed=true", None).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["connector"]["state"], json!("RUNNING"));
    assert_eq!(r.body["tasks"][0]["state"], json!("RESTARTING"));
    let r = api.call("POST", "/connectors/strict/restart?onlyFailed=true", None).await;
    assert_eq!(r.status, 202, "onlyFailed alone answers with the status");
    api.wait_until("FAILED again", "/connectors/strict/tasks/0/status", |t| t["state"] == json!("FAILED"))
        .await;
    assert_eq!(
        api.get("/connectors/sink/status").await.body["tasks"][0]["state"],
        json!("RUNNING"),
        "the other connector keeps running"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_malformed_requests_and_unknown_names() {
    let api = Api::start().await;

    // Validate: every bad key is reported, named.
    let bad =
        json!({"connector.class": "FileStreamSource", "name": "v", "tasks.max": "zero", "file": "/tmp/x"});
    let r = api.send("PUT", "/connector-plugins/FileStreamSource/config/validate", bad).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["name"], json!("FileStreamSource"));
    assert_eq!(r.body["error_count"], json!(2), "{:#}", r.body);
    assert!(r.body["groups"].as_array().unwrap().contains(&json!("Common")));
    let configs = r.body["configs"].as_array().unwrap();
    let key = |name: &str| configs.iter().find(|c| c["definition"]["name"] == json!(name)).unwrap().clone();
    let tasks_max = key("tasks.max");
    assert_eq!(tasks_max["value"]["value"], json!("zero"));
    assert!(tasks_max["value"]["errors"][0].as_str().unwrap().contains("tasks.max"));
    assert_eq!(tasks_max["definition"]["type"], json!("INT"));
    assert_eq!(tasks_max["definition"]["default_value"], json!("1"));
    assert_eq!(tasks_max["definition"]["group"], json!("Common"));
    assert!(key("topic")["value"]["errors"][0].as_str().unwrap().contains("topic"));
    assert_eq!(key("topic")["definition"]["required"], json!(true));
    assert_eq!(key("file")["value"]["errors"], json!([]));
    assert_eq!(key("file")["value"]["value"], json!("/tmp/x"));
    // The class may come from the path alone, under any of its names.
    let good = json!({"name": "v", "file": "/tmp/x", "topic": "t"});
    let r = api
        .send(
            "PUT",
            "/connector-plugins/org.apache.kafka.connect.file.FileStreamSourceConnector/config/validate",
            good,
        )
        .await;
    assert_eq!(r.body["error_count"], json!(0), "{:#}", r.body);
    let sink = json!({"name": "v", "file": "/tmp/x", "topics": "a", "errors.tolerance": "most"});
    let r = api.send("PUT", "/connector-plugins/FileStreamSink/config/validate", sink).await;
    assert_eq!(r.body["error_count"], json!(1), "{:#}", r.body);
    assert!(r.body["groups"].as_array().unwrap().contains(&json!("Error Handling")));
    api.send("PUT", "/connector-plugins/NoSuch/config/validate", json!({})).await.assert_error(404, "NoSuch");
    api.send(
        "PUT",
        "/connector-plugins/FileStreamSink/config/validate",
        json!({"connector.class": "FileStreamSource"}),
    )
    .await
    .assert_error(400, "connector.class");

    // Malformed payloads: 400 naming the problem.
    api.call("POST", "/connectors", Some("{\"name\": \"x\", \"config\": {"))
        .await
        .assert_error(400, "line 1 column");
    api.call("POST", "/connectors", None).await.assert_error(400, "empty");
    api.send("POST", "/connectors", json!(["x"])).await.assert_error(400, "JSON object");
    api.send("POST", "/connectors", json!({"config": {"connector.class": "FileStreamSource"}}))
        .await
        .assert_error(400, "\"name\"");
    api.send("POST", "/connectors", json!({"name": "x"})).await.assert_error(400, "\"config\"");
    api.send("POST", "/connectors", json!({"name": "x", "config": {"file": "/tmp/x"}}))
        .await
        .assert_error(400, "connector.class");
    api.send("POST", "/connectors", json!({"name": "x", "config": {"connector.class": "Nope"}}))
        .await
        .assert_error(400, "Nope");
    api.send(
        "POST",
        "/connectors",
        json!({"name": "x", "config": {"connector.class": "FileStreamSource", "file": ["a"]}}),
    )
    .await
    .assert_error(400, "`file`");
    api.send(
        "POST",
        "/connectors",
        json!({"name": "x", "config": {"name": "y", "connector.class": "FileStreamSource"}}),
    )
    .await
    .assert_error(400, "`y`");
    api.call("PUT", "/connectors/x/config", Some("{'single': 'quotes'}")).await.assert_error(400, "column");
    api.call("PATCH", "/connectors/x/config", Some("nope")).await.assert_error(400, "malformed JSON");
    assert!(api.get("/connectors").await.body == json!([]), "nothing was created");

    // Unknown connectors and paths: 404 naming them.
    for (method, path) in [
        ("GET", "/connectors/ghost"),
        ("DELETE", "/connectors/ghost"),
        ("GET", "/connectors/ghost/config"),
        ("GET", "/connectors/ghost/status"),
        ("GET", "/connectors/ghost/tasks"),
        ("GET", "/connectors/ghost/tasks/0/status"),
        ("POST", "/connectors/ghost/tasks/0/restart"),
        ("POST", "/connectors/ghost/restart"),
        ("PUT", "/connectors/ghost/pause"),
        ("PUT", "/connectors/ghost/resume"),
        ("PUT", "/connectors/ghost/stop"),
        ("GET", "/connectors/ghost/topics"),
        ("PUT", "/connectors/ghost/topics/reset"),
        ("GET", "/connectors/ghost/offsets"),
        ("DELETE", "/connectors/ghost/offsets"),
    ] {
        let r = api.call(method, path, None).await;
        assert_eq!(r.status, 404, "{method} {path}: {:?}", r.body);
        r.assert_error(404, "ghost");
    }
    api.send("PATCH", "/connectors/ghost/config", json!({"a": "b"})).await.assert_error(404, "ghost");
    api.send("PATCH", "/connectors/ghost/offsets", json!({"offsets": []})).await.assert_error(404, "ghost");
    api.send("PATCH", "/connectors/ghost/offsets", json!({"offsets": 3})).await.assert_error(400, "offsets");
    api.get("/no/such/path").await.assert_error(404, "/no/such/path");
    api.stop().await;
}

/// A source connector that hangs where its config says (`hang.in`):
/// `start` (the connector's start never returns), `stop` (the connector's
/// stop never returns) or `task` (its task's poll and stop never return).
struct Hanging {
    hang_in: String,
}

struct HangingTask {
    hang: bool,
}

#[async_trait::async_trait]
impl SourceConnector for Hanging {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().define("hang.in", ConfigType::String, Importance::High, "start, stop or task")
    }

    async fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        self.hang_in = props.get("hang.in").cloned().unwrap_or_default();
        if self.hang_in == "start" {
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![Props::new()]
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(HangingTask { hang: self.hang_in == "task" })
    }

    async fn stop(&mut self) {
        if self.hang_in == "stop" {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl SourceTask for HangingTask {
    async fn start(&mut self, _props: &Props, _context: &SourceTaskContext) -> Result<(), TaskError> {
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, TaskError> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Vec::new())
    }

    async fn stop(&mut self) {
        if self.hang {
            std::future::pending::<()>().await;
        }
    }
}

fn hanging(name: &str, hang_in: &str) -> Json {
    json!({"name": name, "config": {"connector.class": "Hanging", "hang.in": hang_in, "tasks.max": "1"}})
}

/// Plugins that hang in `start`, in `stop`, or in their task freeze neither
/// the REST API nor other connectors: reads answer at once, a file
/// connector is created and runs meanwhile, and deleting a connector whose
/// stop (or task) hangs returns after `task.shutdown.graceful.timeout.ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_hangs_in_start_or_stop_freezes_nothing_else() {
    let api = Api::start_with(
        |registry| registry.register_source("Hanging", &[], || Box::new(Hanging { hang_in: String::new() })),
        &[("task.shutdown.graceful.timeout.ms", "300")],
    )
    .await;
    let quick = Duration::from_secs(3);

    // A connector whose start never returns: its POST hangs, nothing else does.
    let stuck = {
        let (addr, body) = (api.addr, hanging("stuck-start", "start").to_string());
        tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "POST /connectors HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(request.as_bytes()).await.unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
        })
    };
    api.wait_until("the starting connector listed", "/connectors", |b| b == &json!(["stuck-start"])).await;
    let started = Instant::now();
    let r = api.get("/connectors/stuck-start/config").await;
    assert_eq!((r.status, &r.body["hang.in"]), (200, &json!("start")), "{:?}", r.body);

    // Another connector is created and moves data meanwhile.
    let input = api.path("in.txt");
    append(&input, (0..5).map(|i| format!("line-{i}")));
    let r = api.send("POST", "/connectors", json!({"name": "files", "config": source_config(&input)})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(api.wait_for_lines("lines", 5).await.len(), 5);
    assert!(started.elapsed() < Duration::from_secs(20), "reads and another connector were held up");

    // Deleting a connector whose stop hangs, or whose task hangs, is bounded.
    for (name, hang_in) in [("stuck-stop", "stop"), ("stuck-task", "task")] {
        let r = api.send("POST", "/connectors", hanging(name, hang_in)).await;
        assert_eq!(r.status, 201, "{name}: {:?}", r.body);
        api.wait_until("its task running", &format!("/connectors/{name}/status"), |b| {
            b["tasks"][0]["state"] == json!("RUNNING")
        })
        .await;
        let asked = Instant::now();
        let r = api.call("DELETE", &format!("/connectors/{name}"), None).await;
        assert_eq!(r.status, 204, "{name}: {:?}", r.body);
        assert!(asked.elapsed() < quick, "{name}: DELETE took {:?}", asked.elapsed());
        assert_eq!(api.get(&format!("/connectors/{name}")).await.status, 404, "{name}");
    }
    let r = api.get("/connectors").await;
    assert_eq!(r.body, json!(["files", "stuck-start"]));

    // The worker's shutdown does not wait for the start that never returns.
    let asked = Instant::now();
    api.stop().await;
    assert!(asked.elapsed() < Duration::from_secs(10), "shutdown took {:?}", asked.elapsed());
    stuck.abort();
}
