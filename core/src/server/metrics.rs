//! Broker metrics in Prometheus' text format, served over HTTP at
//! `/metrics`: bytes and records in and out per topic, request latency
//! histograms per API, connections, groups and consumer lag.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::versions::SUPPORTED;
use crate::broker::Broker;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] =
    [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

#[derive(Debug, Default)]
struct TopicCounters {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
    records_out: AtomicU64,
}

/// Counters shared by every connection of one server.
#[derive(Debug)]
pub(crate) struct Metrics {
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    requests_refused: AtomicU64,
    latency: Vec<(ApiKey, Histogram)>,
    topics: Mutex<HashMap<String, Arc<TopicCounters>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            requests_refused: AtomicU64::new(0),
            latency: SUPPORTED.iter().map(|&(k, _, _)| (k, Histogram::default())).collect(),
            topics: Mutex::new(HashMap::new()),
        }
    }
}

impl Metrics {
    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn request_refused(&self) {
        self.requests_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe(&self, api: ApiKey, elapsed: Duration) {
        let Some((_, h)) = self.latency.iter().find(|(k, _)| *k == api) else { return };
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            h.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        let mut topics = self.topics.lock().expect("metrics lock");
        if let Some(t) = topics.get(topic) {
            return t.clone();
        }
        topics.entry(topic.to_string()).or_default().clone()
    }

    pub(crate) fn bytes_in(&self, topic: &str, bytes: usize, records: u64) {
        let t = self.topic(topic);
        t.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        t.records_in.fetch_add(records, Ordering::Relaxed);
    }

    pub(crate) fn bytes_out(&self, topic: &str, bytes: usize, records: u64) {
        let t = self.topic(topic);
        t.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
        t.records_out.fetch_add(records, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self, broker: &Broker) -> String {
        let mut out = String::with_capacity(8192);
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        gauge(
            &mut out,
            "runnel_connections",
            "Open client connections.",
            "gauge",
            self.connections_open.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "runnel_connections_total",
            "Client connections accepted.",
            "counter",
            self.connections_total.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            &mut out,
            "runnel_requests_refused_total",
            "Requests refused as malformed, oversized or of an unsupported version.",
            "counter",
            self.requests_refused.load(Ordering::Relaxed).to_string(),
        );

        let topics: BTreeMap<String, Arc<TopicCounters>> =
            self.topics.lock().expect("metrics lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (name, help, pick) in [
            ("runnel_topic_bytes_in_total", "Record batch bytes produced.", 0),
            ("runnel_topic_records_in_total", "Records produced.", 1),
            ("runnel_topic_bytes_out_total", "Record batch bytes fetched.", 2),
            ("runnel_topic_records_out_total", "Records fetched (whole batches).", 3),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (topic, c) in &topics {
                let v =
                    [&c.bytes_in, &c.records_in, &c.bytes_out, &c.records_out][pick].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}{{topic=\"{}\"}} {v}", escape(topic));
            }
        }

        let name = "runnel_request_duration_seconds";
        let _ = writeln!(out, "# HELP {name} Time from a request's arrival to its response, per API.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (api, h) in &self.latency {
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_bucket{{api=\"{api:?}\",le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "{name}_bucket{{api=\"{api:?}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{api=\"{api:?}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{api=\"{api:?}\"}} {count}");
        }

        let now = broker.now_ms();
        let active = broker.groups().active_groups();
        gauge(&mut out, "runnel_groups", "Consumer groups with members.", "gauge", active.len().to_string());
        let name = "runnel_group_members";
        let _ = writeln!(out, "# HELP {name} Members per consumer group.\n# TYPE {name} gauge");
        for g in &active {
            if let Some(d) = broker.groups().describe(g, now) {
                let _ = writeln!(out, "{name}{{group=\"{}\"}} {}", escape(g), d.members.len());
            }
        }
        let name = "runnel_consumer_lag";
        let _ = writeln!(out, "# HELP {name} Log end offset minus the group's committed offset.");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let groups: BTreeSet<String> = broker.groups_with_offsets().into_iter().collect();
        for g in &groups {
            for (tp, committed) in broker.committed_offsets(g) {
                if let Ok(log) = broker.log(&tp.topic, tp.partition) {
                    let lag = (log.log_end_offset() - committed.offset).max(0);
                    let _ = writeln!(
                        out,
                        "{name}{{group=\"{}\",topic=\"{}\",partition=\"{}\"}} {lag}",
                        escape(g),
                        escape(&tp.topic),
                        tp.partition
                    );
                }
            }
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    broker: Arc<Broker>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = super::stopped(&mut shutdown) => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            // Read the request head (bounded: 8 KiB, 5 s).
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    let n = stream.read(&mut chunk).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Some(())
            })
            .await;
            if !matches!(head, Ok(Some(()))) {
                debug!(%peer, "metrics endpoint: incomplete request");
                return;
            }
            let line =
                String::from_utf8_lossy(buf.split(|&b| b == b'\r').next().unwrap_or_default()).to_string();
            let mut parts = line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, body) = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
                let body =
                    tokio::task::spawn_blocking(move || metrics.render(&broker)).await.unwrap_or_default();
                ("200 OK", body)
            } else {
                ("404 Not Found", format!("no such page: {method} {path}; metrics are at GET /metrics\n"))
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
