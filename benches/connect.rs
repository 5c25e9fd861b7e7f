//! Connect throughput on the embedded cluster (issue 6's benchmark): a file
//! of N lines of 100 bytes (10M by default) goes FileStreamSource → topic →
//! FileStreamSink in one standalone [`Worker`], and the output file must come
//! out byte-identical to the input.
//!
//! * The topic has **one partition** (the embedded broker's default, created
//!   up front as a deployment would): a file's line order survives only
//!   through a single partition (as with Kafka), and the check below is a
//!   byte compare.
//! * Keys and values go through `StringConverter` (the lines are text; the
//!   key is null); no transforms.
//! * Tuning, with Kafka's keys: the source's `batch.size` = 10000 lines per
//!   poll (`RUNNEL_BENCH_BATCH`; the connector's default is 2000), the
//!   worker's `producer.batch.size` = 1 MiB and `consumer.max.poll.records`
//!   = 10000, and `offset.flush.interval.ms` = 500, so the sink's last lines
//!   are written at most half a second after they arrive.
//!
//! Figures: the source stage (start → the topic holds every line), the sink
//! stage (first → last byte of the output file), end to end (start → output
//! complete and equal to the input), MB/s, and the peak RSS of the process
//! (`VmHWM`). The reference, measured in the same run: a plain loop reading
//! the input line by line and writing each line to another file through
//! buffered I/O, with no framework and no durability.
//!
//! `cargo bench --bench connect`; `RUNNEL_BENCH_LINES=N` for another size.

#[path = "support/rss.rs"]
mod rss;

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use runnel::connect::plugin::{PluginRegistry, Props};
use runnel::connect::worker::{Worker, WorkerConfig};
use runnel::core::client::{Cluster, ConsumerConfig};
use runnel::core::topic::{NewTopic, TopicPartition};

const LINE_BYTES: usize = 100;
const TARGET_LINES_PER_S: f64 = 1_000_000.0;

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Writes `n` lines of exactly 100 bytes (newline included): a line number
/// and printable filler that varies from line to line.
fn generate(path: &Path, n: u64) -> u64 {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut line = [0u8; LINE_BYTES];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        let head = format!("line {i:010} ");
        line[..head.len()].copy_from_slice(head.as_bytes());
        for b in &mut line[head.len()..LINE_BYTES - 1] {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = ALPHABET[(state % ALPHABET.len() as u64) as usize];
        }
        line[LINE_BYTES - 1] = b'\n';
        out.write_all(&line).unwrap();
    }
    out.flush().unwrap();
    n * LINE_BYTES as u64
}

/// The reference: read lines, write lines, nothing else. Returns seconds.
fn raw_copy(from: &Path, to: &Path) -> (f64, u64) {
    let start = Instant::now();
    let mut input = BufReader::with_capacity(256 * 1024, std::fs::File::open(from).unwrap());
    let mut output = BufWriter::with_capacity(1 << 20, std::fs::File::create(to).unwrap());
    let mut line = Vec::with_capacity(256);
    let mut lines = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        lines += 1;
        output.write_all(&line).unwrap();
    }
    output.into_inner().unwrap().sync_data().unwrap();
    (start.elapsed().as_secs_f64(), lines)
}

/// Whether two files hold the same bytes (compared in 1 MiB chunks), and
/// the FNV-1a hash of the first.
fn same_bytes(a: &Path, b: &Path) -> (bool, u64) {
    let (mut fa, mut fb) = (std::fs::File::open(a).unwrap(), std::fs::File::open(b).unwrap());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    loop {
        let n = read_full(&mut fa, &mut ba);
        let m = read_full(&mut fb, &mut bb);
        if n != m || ba[..n] != bb[..m] {
            return (false, hash);
        }
        for &byte in &ba[..n] {
            hash = (hash ^ byte as u64).wrapping_mul(0x100_0000_01b3);
        }
        if n == 0 {
            return (true, hash);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read(&mut buf[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

/// CPU time this process has used (user + system), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which ends with ')': utime is the
    // 14th field of the line and stime the 15th, in clock ticks.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

fn props(pairs: &[(&str, &str)]) -> Props {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn rate(lines: u64, secs: f64) -> String {
    format!(
        "{:>10.0} lines/s  {:>7.1} MB/s",
        lines as f64 / secs,
        (lines * LINE_BYTES as u64) as f64 / secs / 1e6
    )
}

#[tokio::main]
async fn main() {
    let n = env_or("RUNNEL_BENCH_LINES", 10_000_000);
    let batch = env_or("RUNNEL_BENCH_BATCH", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let (input, output, copy) =
        (dir.path().join("in.txt"), dir.path().join("out.txt"), dir.path().join("copy.txt"));
    println!(
        "connect benchmark: {n} lines of {LINE_BYTES} bytes, file source → topic (1 partition) → file sink"
    );
    println!(
        "converters: StringConverter (keys and values); source batch.size = {batch}; producer.batch.size = 1 MiB; \
         consumer.max.poll.records = 10000; offset.flush.interval.ms = 500"
    );
    let start = Instant::now();
    let size = generate(&input, n);
    println!("input written in {:.1} s ({:.0} MB)", start.elapsed().as_secs_f64(), size as f64 / 1e6);
    println!("peak RSS after generating the input: {:.0} MiB", rss::peak_rss_mib());

    // The reference, on a warm page cache like the pipeline.
    let (copy_secs, copy_lines) = raw_copy(&input, &copy);
    assert_eq!(copy_lines, n);
    assert!(same_bytes(&input, &copy).0, "the reference copy differs from the input");
    std::fs::remove_file(&copy).unwrap();

    let cluster = Cluster::open(&format!("file:{}", dir.path().join("data").display())).await.unwrap();
    let config = WorkerConfig::from_props(
        &[
            ("key.converter", "org.apache.kafka.connect.storage.StringConverter"),
            ("value.converter", "org.apache.kafka.connect.storage.StringConverter"),
            ("offset.flush.interval.ms", "500"),
            ("producer.batch.size", "1048576"),
            ("consumer.max.poll.records", "10000"),
            ("listeners", "http://127.0.0.1:0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    )
    .unwrap();
    let mut registry = PluginRegistry::new();
    runnel::connectors::register(&mut registry);
    let worker = Worker::with_cluster(config, registry, cluster.clone()).await.unwrap();
    // Created up front, as a deployment would: a sink subscribed to a topic
    // that does not exist yet only sees it at its next metadata check.
    cluster.admin().create_topic(NewTopic::new("lines", 1)).await.unwrap();
    let watcher = cluster.consumer(ConsumerConfig::default().auto_commit(false)).unwrap();
    let tp = [TopicPartition::new("lines", 0)];

    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let batch = batch.to_string();
    let (input_s, output_s) = (input.display().to_string(), output.display().to_string());
    worker
        .add_connector(props(&[
            ("name", "bench-sink"),
            ("connector.class", "FileStreamSink"),
            ("file", &output_s),
            ("topics", "lines"),
        ]))
        .await
        .unwrap();
    worker
        .add_connector(props(&[
            ("name", "bench-source"),
            ("connector.class", "FileStreamSource"),
            ("file", &input_s),
            ("topic", "lines"),
            ("batch.size", &batch),
        ]))
        .await
        .unwrap();
    let (mut source_done, mut sink_first, mut sink_done) = (None, None, None);
    let deadline = start + Duration::from_secs(600);
    while sink_done.is_none() || source_done.is_none() {
        assert!(Instant::now() < deadline, "the pipeline did not finish in 10 minutes");
        if source_done.is_none() {
            let end = watcher.end_offsets(&tp).ok().and_then(|e| e.get(&tp[0]).copied()).unwrap_or(0);
            if end as u64 >= n {
                source_done = Some(start.elapsed());
            }
        }
        let written = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
        if written > 0 && sink_first.is_none() {
            sink_first = Some(start.elapsed());
        }
        if written >= size && sink_done.is_none() {
            sink_done = Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (source_done, sink_first, sink_done) =
        (source_done.unwrap(), sink_first.unwrap(), sink_done.unwrap());
    let cpu = cpu_seconds() - cpu_start;
    let out_size = std::fs::metadata(&output).unwrap().len();
    let (identical, hash) = same_bytes(&input, &output);
    let verified = start.elapsed();
    let rss = rss::peak_rss_mib();
    worker.shutdown().await.unwrap();
    cluster.close().await.unwrap();

    let e2e = sink_done.as_secs_f64();
    println!(
        "reference (read lines + write lines, no framework): {}  {:.2} s",
        rate(n, copy_secs),
        copy_secs
    );
    println!(
        "source stage (start → topic holds all lines):        {}  {:.2} s",
        rate(n, source_done.as_secs_f64()),
        source_done.as_secs_f64()
    );
    println!(
        "sink stage (first → last line written):              {}  {:.2} s (first line after {:.3} s)",
        rate(n, (sink_done - sink_first).as_secs_f64()),
        (sink_done - sink_first).as_secs_f64(),
        sink_first.as_secs_f64()
    );
    println!("end to end (start → output complete):                {}  {:.2} s", rate(n, e2e), e2e);
    println!(
        "output: {out_size} bytes (input {size}), byte-identical: {identical}, FNV-1a {hash:016x}, verified after {:.2} s",
        verified.as_secs_f64()
    );
    println!("end to end / reference: {:.2}", copy_secs / e2e);
    println!(
        "CPU during the pipeline (user + system, all threads): {cpu:.2} s, {:.2} µs per line, {:.2} cores busy",
        cpu / n as f64 * 1e6,
        cpu / e2e
    );
    println!("peak RSS (VmHWM): {rss:.0} MiB");
    assert!(identical && out_size == size, "the output file differs from the input");
    let met = n as f64 / e2e >= TARGET_LINES_PER_S;
    println!("target >= 1M lines/s end to end: {}", if met { "met" } else { "MISSED" });
}
