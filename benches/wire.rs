//! The broker over loopback, in the spirit of kafka-producer-perf-test, and
//! the same workload against NATS JetStream in the same run.
//!
//! Runnel: `runnel broker` in its own process; librdkafka (rdkafka's
//! `BaseProducer`/`BaseConsumer`) sends N 100-byte records into 8
//! partitions (acks=1, linger 5 ms, 1 MiB batches, no compression), then a
//! consumer reads them all back. Latency: records sent at a fixed rate
//! (50k/s) carry their send time; a concurrent consumer measures
//! produce→consume time.
//!
//! JetStream: Debian's `nats-server -js` with file storage; async-nats
//! publishes the same records asynchronously (acks awaited in a window)
//! to 8 subjects of one stream, an ordered consumer reads them back, and
//! the same latency run follows.
//!
//! `cargo bench --bench wire` (10M records); `RUNNEL_BENCH_RECORDS=N` for
//! fewer; `RUNNEL_BENCH_RUNNEL_ONLY=1` skips JetStream. Without
//! `nats-server` the comparison is skipped loudly.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
// mimalloc replaces malloc for the whole benchmark process, librdkafka's C
// code included (the `override` feature). Under glibc malloc, librdkafka's
// consumer spends most of its time allocating a message on its broker thread
// and freeing it on the application thread: 1.15-1.4M records/s and p99 up
// to 5.9 ms, against 2.2M/s and 1.4 ms with mimalloc, on this 2-core machine.
// The JetStream client shares the process, so both sides run on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const PARTITIONS: i32 = 8;
const RECORD: usize = 100;
const LATENCY_RATE: u64 = 50_000;
const LATENCY_SECS: u64 = 10;

#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    produce_rps: f64,
    produce_mbps: f64,
    consume_rps: f64,
    consume_mbps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn payload_with_time() -> Vec<u8> {
    let mut v = vec![b'x'; RECORD];
    v[..8].copy_from_slice(&now_nanos().to_be_bytes());
    v
}

fn latency_of(payload: &[u8]) -> Option<f64> {
    let sent = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
    Some(now_nanos().saturating_sub(sent) as f64 / 1e6)
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64, f64) {
    if ms.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    (at(0.50), at(0.99), at(0.999))
}

// ---------------------------------------------------------------- Runnel

struct Counting {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

fn producer(bootstrap: &str, linger_ms: &str) -> BaseProducer<Counting> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("linger.ms", linger_ms)
        .set("batch.size", "1048576")
        .set("message.max.bytes", "2097152")
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(Counting { ok: AtomicU64::new(0), failed: AtomicU64::new(0) })
        .expect("producer")
}

fn consumer(bootstrap: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench-{topic}"))
        .set("enable.auto.commit", "false")
        // Nothing is committed, so skip the per-message offset store.
        .set("enable.auto.offset.store", "false")
        // Fetch sizes stay at librdkafka's defaults (50 MiB per request, 1 MiB
        // per partition). librdkafka keeps one fetch in flight per broker, so
        // larger responses only lengthen the gap between parsing one and
        // receiving the next: 10 MiB per partition measured 40% slower.
        .set("fetch.wait.max.ms", "100")
        .set("queued.min.messages", "1000000")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

fn send(p: &BaseProducer<Counting>, topic: &str, payload: &[u8]) {
    let mut record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(payload);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                p.poll(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("produce failed: {e}"),
        }
    }
}

/// Reads `n` messages from the consumer's queue in batches of up to 10k
/// (librdkafka's `rd_kafka_consume_batch_queue`, what confluent-kafka's
/// `consume(num_messages)` uses); returns the payload bytes.
fn consume_batched(c: &BaseConsumer, n: u64) -> usize {
    use rdkafka::bindings as rd;
    let (mut got, mut bytes) = (0u64, 0usize);
    let mut batch: Vec<*mut rd::rd_kafka_message_t> = vec![std::ptr::null_mut(); 10_000];
    // SAFETY: the queue handle comes from a live consumer and is destroyed
    // before it; each message librdkafka returns is read, then destroyed once.
    unsafe {
        let queue = rd::rd_kafka_queue_get_consumer(c.client().native_ptr());
        assert!(!queue.is_null(), "no consumer queue");
        while got < n {
            let k = rd::rd_kafka_consume_batch_queue(queue, 10_000, batch.as_mut_ptr(), batch.len());
            assert!(k > 0, "consumer stalled at {got} of {n}");
            for &m in &batch[..k as usize] {
                assert_eq!((*m).err, rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR, "consume failed");
                got += 1;
                bytes += (*m).len;
                rd::rd_kafka_message_destroy(m);
            }
        }
        rd::rd_kafka_queue_destroy(queue);
    }
    bytes
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the command).
    (ticks(11) + ticks(12)) / 100.0
}

fn run_runnel(bootstrap: &str, n: u64, broker_pid: u32) -> Figures {
    let mut f = Figures::default();
    // Throughput: produce everything, then read it back.
    let p = producer(bootstrap, "5");
    let payload = vec![b'x'; RECORD];
    let cpu0 = cpu_secs(broker_pid);
    let start = Instant::now();
    for i in 0..n {
        send(&p, "bench", &payload);
        if i % 10_000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(300)).expect("flush");
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(p.context().failed.load(Ordering::Relaxed), 0, "deliveries failed");
    assert_eq!(p.context().ok.load(Ordering::Relaxed), n);
    f.produce_rps = n as f64 / secs;
    f.produce_mbps = (n as usize * RECORD) as f64 / secs / 1e6;
    println!(
        "runnel    produce: {n} records in {secs:.2} s (broker CPU {:.0}% of one core)",
        100.0 * (cpu_secs(broker_pid) - cpu0) / secs
    );

    let c = consumer(bootstrap, "bench");
    let cpu0 = cpu_secs(broker_pid);
    let me0 = cpu_secs(std::process::id());
    let start = Instant::now();
    let bytes = consume_batched(&c, n);
    let secs = start.elapsed().as_secs_f64();
    f.consume_rps = n as f64 / secs;
    f.consume_mbps = bytes as f64 / secs / 1e6;
    println!(
        "runnel    consume: {n} records in {secs:.2} s (broker CPU {:.0}% of one core, consumer {:.0}%)",
        100.0 * (cpu_secs(broker_pid) - cpu0) / secs,
        100.0 * (cpu_secs(std::process::id()) - me0) / secs
    );

    // Latency at a fixed rate, consumer running alongside.
    let total = LATENCY_RATE * LATENCY_SECS;
    let reader = {
        let bootstrap = bootstrap.to_string();
        std::thread::spawn(move || {
            let c = consumer(&bootstrap, "latency");
            let mut ms = Vec::with_capacity(total as usize);
            while (ms.len() as u64) < total {
                match c.poll(Duration::from_secs(10)) {
                    Some(Ok(m)) => ms.extend(m.payload().and_then(latency_of)),
                    Some(Err(e)) => panic!("latency consume failed: {e}"),
                    None => panic!("latency consumer stalled at {}", ms.len()),
                }
            }
            ms
        })
    };
    std::thread::sleep(Duration::from_millis(500)); // let the consumer connect
    let p = producer(bootstrap, "0");
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / LATENCY_RATE);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        send(&p, "latency", &payload_with_time());
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    (f.p50_ms, f.p99_ms, f.p999_ms) = percentiles(reader.join().unwrap());
    f
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_runnel(dir: &std::path::Path) -> (Process, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["broker", "--listen", "127.0.0.1:0", "--config", "num.partitions=8", "--data"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start runnel broker");
    let line = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let addr = line.rsplit(' ').next().unwrap().to_string();
    (Process(child), addr)
}

fn create_topics(bootstrap: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cluster = runnel::core::client::Cluster::open(&format!("kafka://{bootstrap}")).await.unwrap();
        for t in ["bench", "latency"] {
            let topic =
                runnel::core::topic::NewTopic::new(t, PARTITIONS).config("max.message.bytes", "2097152");
            cluster.admin().create_topic(topic).await.unwrap();
        }
    });
}

// ------------------------------------------------------------- JetStream

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_nats(dir: &std::path::Path) -> Option<(Process, u16)> {
    let port = free_port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((Process(child), port))
}

async fn run_jetstream(port: u16, n: u64) -> Figures {
    use async_nats::jetstream::{self, consumer::pull, stream};
    let mut f = Figures::default();
    let client =
        tokio::time::timeout(Duration::from_secs(10), async_nats::connect(format!("127.0.0.1:{port}")))
            .await
            .expect("connecting to nats-server timed out")
            .expect("connect to nats");
    // Up to 20k publishes awaiting their acks (the library's default cap is 5k).
    let js = jetstream::context::ContextBuilder::new().max_ack_inflight(20_000).build(client);
    for (name, subjects) in [("BENCH", "bench.>"), ("LATENCY", "latency.>")] {
        let config = stream::Config {
            name: name.to_string(),
            subjects: vec![subjects.to_string()],
            storage: stream::StorageType::File,
            ..Default::default()
        };
        tokio::time::timeout(Duration::from_secs(10), js.create_stream(config))
            .await
            .expect("creating a JetStream stream timed out")
            .expect("create stream");
    }
    let subjects: Vec<String> = (0..PARTITIONS).map(|p| format!("bench.{p}")).collect();
    let payload = bytes::Bytes::from(vec![b'x'; RECORD]);
    let start = Instant::now();
    let mut window = VecDeque::new();
    for i in 0..n {
        let ack =
            js.publish(subjects[(i % PARTITIONS as u64) as usize].clone(), payload.clone()).await.unwrap();
        window.push_back(ack);
        if window.len() >= 16_000 {
            window.pop_front().unwrap().await.expect("publish ack");
        }
    }
    for ack in window {
        ack.await.expect("publish ack");
    }
    let secs = start.elapsed().as_secs_f64();
    f.produce_rps = n as f64 / secs;
    f.produce_mbps = (n as usize * RECORD) as f64 / secs / 1e6;
    println!("jetstream publish: {n} records in {secs:.2} s");

    let stream = js.get_stream("BENCH").await.unwrap();
    let consumer = stream.create_consumer(pull::OrderedConfig::default()).await.unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let start = Instant::now();
    let (mut got, mut bytes) = (0u64, 0usize);
    while got < n {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("jetstream consumer stalled")
            .unwrap()
            .unwrap();
        got += 1;
        bytes += m.payload.len();
    }
    let secs = start.elapsed().as_secs_f64();
    f.consume_rps = n as f64 / secs;
    f.consume_mbps = bytes as f64 / secs / 1e6;
    println!("jetstream consume: {n} records in {secs:.2} s");

    // Latency at the same fixed rate, an ordered consumer alongside.
    let total = LATENCY_RATE * LATENCY_SECS;
    let stream = js.get_stream("LATENCY").await.unwrap();
    let consumer = stream.create_consumer(pull::OrderedConfig::default()).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut messages = consumer.messages().await.unwrap();
        let mut ms = Vec::with_capacity(total as usize);
        while (ms.len() as u64) < total {
            let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("latency consumer stalled")
                .unwrap()
                .unwrap();
            ms.extend(latency_of(&m.payload));
        }
        ms
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    let mut window = VecDeque::new();
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / LATENCY_RATE);
        tokio::time::sleep_until(due.into()).await;
        let subject = format!("latency.{}", i % PARTITIONS as u64);
        window.push_back(js.publish(subject, bytes::Bytes::from(payload_with_time())).await.unwrap());
        if window.len() >= 16_000 {
            window.pop_front().unwrap().await.expect("publish ack");
        }
    }
    for ack in window {
        ack.await.expect("publish ack");
    }
    (f.p50_ms, f.p99_ms, f.p999_ms) = percentiles(reader.await.unwrap());
    f
}

// ------------------------------------------------------------------ main

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let n: u64 =
        std::env::var("RUNNEL_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    println!("wire benchmark: {n} records of {RECORD} bytes, {PARTITIONS} partitions; latency at {LATENCY_RATE}/s for {LATENCY_SECS} s");

    let runnel_dir = tempfile::tempdir().unwrap();
    let (broker, bootstrap) = start_runnel(runnel_dir.path());
    create_topics(&bootstrap);
    let r = run_runnel(&bootstrap, n, broker.0.id());
    drop(broker);

    let nats_dir = tempfile::tempdir().unwrap();
    let runnel_only = std::env::var_os("RUNNEL_BENCH_RUNNEL_ONLY").is_some();
    let j = match start_nats(nats_dir.path()).filter(|_| !runnel_only) {
        Some((nats, port)) => {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let j = rt.block_on(run_jetstream(port, n));
            drop(nats);
            Some(j)
        }
        None => {
            println!("\n*** nats-server not found (apt-get install nats-server): JetStream comparison SKIPPED ***\n");
            None
        }
    };

    println!();
    println!("| measure | runnel | jetstream | ratio | target |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, a: f64, b: Option<f64>, target: &str, higher_is_better: bool| {
        let (b_s, ratio) = match b {
            Some(b) if higher_is_better => (format!("{b:.2}"), format!("{:.2}x", a / b)),
            Some(b) => (format!("{b:.2}"), format!("{:.2}x", b / a)),
            None => ("-".into(), "-".into()),
        };
        println!("| {name} | {a:.2} | {b_s} | {ratio} | {target} |");
    };
    row(
        "produce (M records/s)",
        r.produce_rps / 1e6,
        j.map(|j| j.produce_rps / 1e6),
        ">= 1.0, >= 2x JetStream",
        true,
    );
    row("produce (MB/s)", r.produce_mbps, j.map(|j| j.produce_mbps), "", true);
    row(
        "consume (M records/s)",
        r.consume_rps / 1e6,
        j.map(|j| j.consume_rps / 1e6),
        ">= 2.0, >= 2x JetStream",
        true,
    );
    row("consume (MB/s)", r.consume_mbps, j.map(|j| j.consume_mbps), "", true);
    row("latency p50 (ms)", r.p50_ms, j.map(|j| j.p50_ms), "", false);
    row("latency p99 (ms)", r.p99_ms, j.map(|j| j.p99_ms), "<= 5", false);
    row("latency p99.9 (ms)", r.p999_ms, j.map(|j| j.p999_ms), "", false);
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("target produce >= 1M records/s: {}", verdict(r.produce_rps >= 1e6));
    println!("target consume >= 2M records/s: {}", verdict(r.consume_rps >= 2e6));
    println!("target p99 <= 5 ms at {LATENCY_RATE}/s: {}", verdict(r.p99_ms <= 5.0));
    if let Some(j) = j {
        println!(
            "target produce >= 2x JetStream: {} ({:.2}x)",
            verdict(r.produce_rps >= 2.0 * j.produce_rps),
            r.produce_rps / j.produce_rps
        );
        println!(
            "target consume >= 2x JetStream: {} ({:.2}x)",
            verdict(r.consume_rps >= 2.0 * j.consume_rps),
            r.consume_rps / j.consume_rps
        );
    }
}
