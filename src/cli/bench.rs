//! `runnel bench produce|consume|end-to-end`: throughput and latency, in
//! the spirit of Kafka's `kafka-producer-perf-test` and
//! `kafka-consumer-perf-test`.
//!
//! `--reference` also runs the same workload straight against the log
//! (no client: batches appended, or read and decoded, in this process) and
//! prints the ratio, which is the client's overhead.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use runnel::core::client::{Cluster, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord};
use runnel::core::log::{Log, LogConfig};
use runnel::core::record::{batches, Compression, RecordBatchBuilder};
use runnel::core::time::SystemClock;
use runnel::core::topic::{NewTopic, TopicPartition};
use serde_json::json;

use super::{key_values, open};

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Send records as fast as possible (or at --throughput).
    Produce(ProduceBench),
    /// Read records from the beginning of a topic.
    Consume(ConsumeBench),
    /// Produce at a fixed rate while consuming; report end-to-end latency.
    EndToEnd(EndToEndBench),
}

#[derive(Debug, Args)]
pub(crate) struct ProduceBench {
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "runnel-bench")]
    topic: String,
    /// Records to send.
    #[arg(long, default_value_t = 10_000_000)]
    num_records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per second to aim for; -1 for as fast as possible.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    throughput: i64,
    /// Partitions when the topic is created.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// A producer property, `key=value` (repeatable).
    #[arg(long = "producer-property")]
    properties: Vec<String>,
    /// Also append the same records straight to a log and print the ratio.
    #[arg(long)]
    reference: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeBench {
    /// Topic to read.
    #[arg(long, default_value = "runnel-bench")]
    topic: String,
    /// Stop after this many records (default: everything in the topic).
    #[arg(long)]
    num_records: Option<u64>,
    /// Read as a member of this group (default: assign every partition).
    #[arg(long)]
    group: Option<String>,
    /// A consumer property, `key=value` (repeatable).
    #[arg(long = "consumer-property")]
    properties: Vec<String>,
    /// Also read and decode the same partitions straight from the logs and print the ratio.
    #[arg(long)]
    reference: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct EndToEndBench {
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "runnel-bench-e2e")]
    topic: String,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    num_records: u64,
    /// Value size in bytes (at least 8: it carries the send time).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records per second.
    #[arg(long, default_value_t = 100_000)]
    throughput: i64,
    /// Partitions when the topic is created.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// A producer property (default here: linger.ms=0).
    #[arg(long = "producer-property")]
    properties: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Latency samples in microseconds.
struct Latencies(Vec<u32>);

impl Latencies {
    fn summary(mut self) -> serde_json::Value {
        if self.0.is_empty() {
            return json!({});
        }
        self.0.sort_unstable();
        let q = |p: f64| f64::from(self.0[((self.0.len() - 1) as f64 * p) as usize]) / 1000.0;
        let avg = self.0.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / self.0.len() as f64 / 1000.0;
        json!({
            "avg_ms": avg, "p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999),
            "max_ms": f64::from(*self.0.last().unwrap()) / 1000.0,
        })
    }
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} records ({per_sec})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

async fn ensure_topic(cluster: &Cluster, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin = cluster.admin();
    if !admin.list_topics().await?.iter().any(|t| t == topic) {
        admin.create_topic(NewTopic::new(topic, partitions)).await?;
    }
    Ok(())
}

fn figures(records: u64, bytes: u64, elapsed: Duration) -> serde_json::Value {
    let secs = elapsed.as_secs_f64();
    json!({
        "records": records,
        "seconds": secs,
        "records_per_sec": records as f64 / secs,
        "mb_per_sec": bytes as f64 / 1e6 / secs,
    })
}

fn print(json_out: bool, what: &str, value: &serde_json::Value) {
    if json_out {
        println!("{value}");
        return;
    }
    let f = |k: &str| value.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
    println!(
        "{what}: {} records, {:.1} records/sec ({:.2} MB/sec) in {:.2} s",
        value["records"],
        f("records_per_sec"),
        f("mb_per_sec"),
        f("seconds")
    );
    if let Some(lat) = value.get("latency").filter(|l| l.get("p50_ms").is_some()) {
        let g = |k: &str| lat.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        println!(
            "latency: avg {:.3} ms, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
            g("avg_ms"),
            g("p50_ms"),
            g("p99_ms"),
            g("p999_ms"),
            g("max_ms")
        );
    }
    if let Some(r) = value.get("reference") {
        println!(
            "reference (the log alone): {:.1} records/sec; client/log ratio {:.2}",
            r["records_per_sec"].as_f64().unwrap_or(f64::NAN),
            value["client_to_log_ratio"].as_f64().unwrap_or(f64::NAN)
        );
    }
}

/// Appends `n` records of `size` bytes straight to a scratch log, in
/// batches of `batch_size`: what the producer's work costs without the client.
fn reference_append(n: u64, size: usize, batch_size: usize) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir().context("scratch directory")?;
    let log = Log::open(
        dir.path(),
        TopicPartition::new("reference", 0),
        LogConfig::default(),
        Arc::new(SystemClock),
    )?;
    let value = vec![b'x'; size];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut builder = RecordBatchBuilder::with_capacity(Compression::None, batch_size);
    let now = runnel::core::time::Clock::now_ms(&SystemClock);
    while sent < n {
        builder.clear();
        while sent < n && builder.estimated_size() + size + 21 <= batch_size.max(size + 100) {
            builder.append(now, None, Some(&value), &[]);
            sent += 1;
        }
        log.append(&mut builder.build(0)?)?;
    }
    let elapsed = start.elapsed();
    log.close()?;
    Ok(figures(n, n * size as u64, elapsed))
}

async fn produce(url: &str, args: ProduceBench) -> anyhow::Result<()> {
    let props = key_values("--producer-property", &args.properties)?;
    let config = ProducerConfig::from_properties(&props)?;
    let batch_size = config.batch_size;
    let cluster = open(url, false).await?;
    ensure_topic(&cluster, &args.topic, args.partitions).await?;
    let producer = cluster.producer(config)?;
    let payload = Bytes::from(vec![b'x'; args.record_size]);
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    let bar = progress(args.num_records, args.json);
    // Every delivery is checked; the send-to-ack latency of every 8th is sampled.
    type Sent = (runnel::core::client::Delivery, Option<Instant>);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Sent>>(64);
    let collector = tokio::spawn(async move {
        let mut lat = Vec::new();
        while let Some(chunk) = rx.recv().await {
            for (d, sent) in chunk {
                d.wait().await?;
                if let Some(sent) = sent {
                    lat.push(sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
            }
        }
        anyhow::Ok(Latencies(lat))
    });
    let start = Instant::now();
    let mut chunk = Vec::with_capacity(1024);
    for i in 0..args.num_records {
        if args.throughput > 0 && i % 64 == 0 {
            let due = start + Duration::from_secs_f64(i as f64 / args.throughput as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        let d = producer.enqueue(ProducerRecord::new(topic.clone()).value(payload.clone())).await?;
        chunk.push((d, (i % 8 == 0).then(Instant::now)));
        if chunk.len() == 1024 {
            tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(1024))).await.ok();
            bar.inc(1024);
        }
    }
    tx.send(chunk).await.ok();
    drop(tx);
    producer.flush().await?;
    let elapsed = start.elapsed();
    let latencies = collector.await.context("latency collector")??;
    bar.finish_and_clear();
    producer.close().await?;
    cluster.close().await?;
    let mut out = figures(args.num_records, args.num_records * args.record_size as u64, elapsed);
    out["latency"] = latencies.summary();
    if args.reference {
        let reference = reference_append(args.num_records, args.record_size, batch_size)?;
        out["client_to_log_ratio"] = json!(
            out["records_per_sec"].as_f64().unwrap_or(0.0)
                / reference["records_per_sec"].as_f64().unwrap_or(1.0)
        );
        out["reference"] = reference;
    }
    print(args.json, "produce", &out);
    Ok(())
}

/// Reads and decodes every record of the topic's partitions straight from
/// the logs.
fn reference_read(cluster: &Cluster, topic: &str, limit: u64) -> anyhow::Result<serde_json::Value> {
    let broker = cluster.broker().context("reference reads need the embedded cluster")?;
    let start = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    'partitions: for p in 0..broker.partition_count(topic)? {
        let log = broker.log(topic, p)?;
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let fetched = log.read(offset, 1 << 20)?;
            for batch in batches(&fetched.bytes) {
                let batch = batch?;
                for r in batch.records()?.iter() {
                    let r = r?;
                    if r.offset < offset {
                        continue;
                    }
                    bytes += r.value.map_or(0, |v| v.len() as u64);
                    records += 1;
                    offset = r.offset + 1;
                    if records >= limit {
                        break 'partitions;
                    }
                }
            }
        }
    }
    Ok(figures(records, bytes, start.elapsed()))
}

async fn consume(url: &str, args: ConsumeBench) -> anyhow::Result<()> {
    let props = key_values("--consumer-property", &args.properties)?;
    let mut config = ConsumerConfig::from_properties(&props)?;
    config.auto_offset_reset = OffsetReset::Earliest;
    config.group_id = args.group.clone().or(config.group_id);
    let cluster = open(url, false).await?;
    let partitions = cluster.admin().describe_topic(&args.topic).await?.partitions;
    let available: i64 = partitions.iter().map(|p| p.log_end_offset - p.log_start_offset).sum();
    let target = args.num_records.unwrap_or(available.max(0) as u64);
    let mut consumer = cluster.consumer(config.clone())?;
    if config.group_id.is_some() {
        consumer.subscribe([args.topic.clone()])?;
    } else {
        let tps: Vec<TopicPartition> =
            partitions.iter().map(|p| TopicPartition::new(&args.topic, p.partition)).collect();
        consumer.assign(tps.clone())?;
        consumer.seek_to_beginning(&tps)?;
    }
    let bar = progress(target, args.json);
    let start = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut idle_since = Instant::now();
    while records < target {
        let batch = consumer.poll(Duration::from_millis(200)).await?;
        if batch.is_empty() {
            anyhow::ensure!(
                idle_since.elapsed() < Duration::from_secs(10),
                "no records for 10 s after {records} of {target}"
            );
            continue;
        }
        idle_since = Instant::now();
        records += batch.len() as u64;
        bytes += batch.iter().map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64)).sum::<u64>();
        bar.inc(batch.len() as u64);
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    consumer.close().await?;
    let mut out = figures(records, bytes, elapsed);
    if args.reference {
        let reference = reference_read(&cluster, &args.topic, records)?;
        out["client_to_log_ratio"] = json!(
            out["records_per_sec"].as_f64().unwrap_or(0.0)
                / reference["records_per_sec"].as_f64().unwrap_or(1.0)
        );
        out["reference"] = reference;
    }
    cluster.close().await?;
    print(args.json, "consume", &out);
    Ok(())
}

/// The machine's own wake-up noise: how late a thread sleeping 100 us wakes,
/// over `duration`. No end-to-end path that hands work between threads can
/// beat this floor; the bench prints it beside its own latency.
fn wakeup_noise_floor(duration: Duration) -> Latencies {
    let mut late = Vec::new();
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let t = Instant::now();
        std::thread::sleep(Duration::from_micros(100));
        late.push(t.elapsed().as_micros().saturating_sub(100).min(u128::from(u32::MAX)) as u32);
    }
    Latencies(late)
}

async fn end_to_end(url: &str, args: EndToEndBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.record_size >= 8,
        "--record-size must be at least 8 (the value carries the send time)"
    );
    anyhow::ensure!(args.throughput > 0, "--throughput must be positive");
    let mut props = key_values("--producer-property", &args.properties)?;
    props.entry("linger.ms".into()).or_insert_with(|| "0".into());
    let config = ProducerConfig::from_properties(&props)?;
    let cluster = open(url, false).await?;
    ensure_topic(&cluster, &args.topic, args.partitions).await?;
    let n = cluster.admin().describe_topic(&args.topic).await?.partitions.len() as i32;
    let tps: Vec<TopicPartition> = (0..n).map(|p| TopicPartition::new(&args.topic, p)).collect();
    let mut consumer = cluster.consumer(ConsumerConfig::default().set("max.poll.records", "10000")?)?;
    consumer.assign(tps.clone())?;
    consumer.seek_to_end(&tps)?;
    let base = Instant::now();
    let total = args.num_records;
    let reader = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(total as usize);
        while (lat.len() as u64) < total {
            for r in consumer.poll(Duration::from_secs(10)).await? {
                let value = r.value.context("bench record without a value")?;
                let sent = u64::from_be_bytes(value[..8].try_into()?);
                let now = base.elapsed().as_nanos() as u64;
                lat.push((now.saturating_sub(sent) / 1000).min(u64::from(u32::MAX)) as u32);
            }
        }
        consumer.close().await?;
        anyhow::Ok(Latencies(lat))
    });
    let producer = cluster.producer(config)?;
    let bar = progress(total, args.json);
    let start = Instant::now();
    let mut value = vec![b'x'; args.record_size];
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / args.throughput as f64);
        match due.checked_duration_since(Instant::now()) {
            Some(wait) if wait > Duration::from_micros(200) => tokio::time::sleep(wait).await,
            // Behind schedule: still let the reader (same thread) run now and then.
            _ if i % 16 == 0 => tokio::task::yield_now().await,
            _ => {}
        }
        value[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
        producer.enqueue(ProducerRecord::new(args.topic.as_str()).value(value.clone())).await?;
        if i % 4096 == 0 {
            bar.set_position(i);
        }
    }
    producer.flush().await?;
    let latencies = reader.await.context("reader task")??;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    producer.close().await?;
    cluster.close().await?;
    let mut out = figures(total, total * args.record_size as u64, elapsed);
    out["target_records_per_sec"] = json!(args.throughput);
    out["latency"] = latencies.summary();
    let floor = tokio::task::spawn_blocking(|| wakeup_noise_floor(Duration::from_secs(3))).await?.summary();
    if !args.json {
        println!(
            "machine wake-up noise (a thread sleeping 100 us, measured right after): p50 {:.3} ms late, p99 {:.3} ms, p99.9 {:.3} ms",
            floor["p50_ms"].as_f64().unwrap_or(f64::NAN),
            floor["p99_ms"].as_f64().unwrap_or(f64::NAN),
            floor["p999_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    out["wakeup_noise_floor"] = floor;
    print(args.json, "end-to-end", &out);
    Ok(())
}

impl BenchCommand {
    /// Produce and consume measure throughput; end-to-end measures latency.
    pub(crate) fn is_throughput(&self) -> bool {
        !matches!(self, BenchCommand::EndToEnd(_))
    }
}

pub(crate) async fn run(url: &str, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Produce(args) => produce(url, args).await,
        BenchCommand::Consume(args) => consume(url, args).await,
        BenchCommand::EndToEnd(args) => end_to_end(url, args).await,
    }
}
