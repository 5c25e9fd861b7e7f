//! Log throughput benchmark (a bench binary, not a timed test).
//!
//! ```text
//! cargo bench -p runnel-core --bench log_throughput [-- --records N --dir PATH]
//! ```
//!
//! Appends N (default 10 million) 100-byte records to one partition in
//! ~16 KiB batches and reads them back, printing records/s, MB/s and
//! per-append latency percentiles for:
//!
//! 1. append without fsync (flush left to the OS, segments sealed in the background);
//! 2. append with an fsync every 1 MiB (`flush.messages` = records per MiB);
//! 3. read from offset 0 to the end in 1 MiB fetches, decoding every record;
//!
//! and, in the same run on the same disk, the raw sequential write bandwidth
//! of the same bytes (`write_all` of each batch + `sync_data` every 1 MiB,
//! and without the syncs), with the ratios. A final phase writes a 2 GiB log
//! and the run reports peak RSS (VmHWM) over everything.
//!
//! Batches are encoded up front into a pool of 64 distinct batches (1 MiB) that
//! the loops cycle through, so the figures measure the log (validation: CRC
//! and record walk, offset assignment, write, index) rather than the encoder,
//! whose own speed is printed separately.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_core::log::{Log, LogConfig};
use runnel_core::record::{batches, Compression, RecordBatchBuilder};
use runnel_core::time::SystemClock;
use runnel_core::topic::TopicPartition;

const VALUE_BYTES: usize = 100;
const BATCH_BYTES: usize = 16 * 1024;
const POOL: usize = 64; // 64 x 16 KiB = 1 MiB
const MB: f64 = 1_000_000.0;

struct Args {
    records: u64,
    dir: PathBuf,
}

fn args() -> Args {
    let mut records = 10_000_000u64;
    let mut dir = std::env::var_os("RUNNEL_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--records" => records = it.next().and_then(|v| v.parse().ok()).expect("--records N"),
            "--dir" => dir = it.next().map(PathBuf::from).expect("--dir PATH"),
            _ => {} // cargo bench passes --bench
        }
    }
    Args { records, dir }
}

/// 64 distinct ~16 KiB batches of 100-byte records.
fn batch_pool() -> (Vec<Vec<u8>>, usize) {
    let mut pool = Vec::with_capacity(POOL);
    let mut per_batch = 0;
    let ts = SystemClock::now();
    for b in 0..POOL {
        let mut builder = RecordBatchBuilder::with_capacity(Compression::None, BATCH_BYTES);
        let mut i = 0usize;
        while builder.estimated_size() + VALUE_BYTES + 12 <= BATCH_BYTES {
            let mut value = [0u8; VALUE_BYTES];
            for (j, v) in value.iter_mut().enumerate() {
                *v = b'a' + ((b * 31 + i * 7 + j) % 26) as u8;
            }
            builder.append(ts + i as i64, None, Some(&value), &[]);
            i += 1;
        }
        per_batch = i;
        pool.push(builder.build(0).unwrap());
    }
    (pool, per_batch)
}

trait Now {
    fn now() -> i64;
}
impl Now for SystemClock {
    fn now() -> i64 {
        use runnel_core::time::Clock;
        SystemClock.now_ms()
    }
}

fn percentiles(lat: &mut [u32]) -> String {
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize];
    format!(
        "append latency p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        p(0.5),
        p(0.99),
        p(0.999),
        lat[lat.len() - 1]
    )
}

struct Figure {
    records: u64,
    bytes: u64,
    elapsed: Duration,
}

impl Figure {
    fn add(&mut self, other: &Figure) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
    }

    fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
    fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / MB / self.elapsed.as_secs_f64()
    }
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<28} {:>12.0} records/s {:>9.1} MB/s  ({} records, {:.1} MB in {:.2?})",
            self.records_per_sec(),
            self.mb_per_sec(),
            self.records,
            self.bytes as f64 / MB,
            self.elapsed
        )
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, TopicPartition::new("bench", 0), config, Arc::new(SystemClock)).unwrap()
}

/// Appends `batches` batches from the pool; returns the figure and latencies.
fn append_run(log: &Log, pool: &[Vec<u8>], per_batch: usize, batches: u64) -> (Figure, Vec<u32>) {
    let mut scratch = vec![0u8; BATCH_BYTES];
    let mut lat = Vec::with_capacity(batches as usize);
    let mut bytes = 0u64;
    let start = Instant::now();
    for i in 0..batches {
        let src = &pool[i as usize % POOL];
        scratch.clear();
        scratch.extend_from_slice(src);
        let t = Instant::now();
        log.append(&mut scratch).unwrap();
        lat.push(t.elapsed().as_micros() as u32);
        bytes += src.len() as u64;
    }
    let elapsed = start.elapsed();
    (Figure { records: batches * per_batch as u64, bytes, elapsed }, lat)
}

/// Plain `write_all` of the same batches to `file`, `sync_data` every
/// `sync_every` batches (0: never).
fn raw_run(file: &mut File, pool: &[Vec<u8>], per_batch: usize, batches: u64, sync_every: u64) -> Figure {
    let mut bytes = 0u64;
    let start = Instant::now();
    for i in 0..batches {
        let src = &pool[i as usize % POOL];
        file.write_all(src).unwrap();
        bytes += src.len() as u64;
        if sync_every > 0 && (i + 1) % sync_every == 0 {
            file.sync_data().unwrap();
        }
    }
    if sync_every > 0 {
        file.sync_data().unwrap();
    }
    let elapsed = start.elapsed();
    Figure { records: batches * per_batch as u64, bytes, elapsed }
}

fn read_run(log: &Log) -> Figure {
    let mut offset = 0i64;
    let end = log.log_end_offset();
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut checksum = 0u64;
    let start = Instant::now();
    while offset < end {
        let fetched = log.read(offset, 1 << 20).unwrap();
        bytes += fetched.bytes.len() as u64;
        for batch in batches(&fetched.bytes) {
            let batch = batch.unwrap();
            let recs = batch.records().unwrap();
            for r in recs.iter() {
                let r = r.unwrap();
                if r.offset < offset {
                    continue;
                }
                checksum = checksum.wrapping_add(r.value.map_or(0, |v| v.len() as u64 + u64::from(v[0])));
                records += 1;
                offset = r.offset + 1;
            }
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(records as i64, end, "every record read back (checksum {checksum})");
    Figure { records, bytes, elapsed }
}

/// Writes back all dirty pages so one phase's leftovers do not slow the next.
fn drain() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets target"
    } else {
        "BELOW TARGET"
    }
}

fn main() {
    let args = args();
    let root = tempfile::Builder::new().prefix("runnel-bench-").tempdir_in(&args.dir).unwrap();
    println!("runnel log throughput benchmark");
    println!("directory: {} (set --dir or RUNNEL_BENCH_DIR to move it)", root.path().display());

    let t = Instant::now();
    let (pool, per_batch) = batch_pool();
    let encode = t.elapsed();
    let batch_len = pool[0].len();
    let batches = args.records.div_ceil(per_batch as u64);
    println!(
        "{} records of {VALUE_BYTES} bytes, {per_batch} per batch ({batch_len} bytes), {batches} batches; \
         encoding the pool: {:.0} records/s",
        batches * per_batch as u64,
        (POOL * per_batch) as f64 / encode.as_secs_f64()
    );
    let per_mib = (1 << 20) / batch_len as u64; // batches per fsync

    // CPU cost of what append does to each batch before writing it.
    let t = Instant::now();
    for i in 0..batches.min(20_000) {
        let b = runnel_core::record::RecordBatch::parse(&pool[i as usize % POOL]).unwrap();
        std::hint::black_box(b.computed_crc());
    }
    let crc_us = t.elapsed().as_secs_f64() * 1e6 / batches.min(20_000) as f64;
    let t = Instant::now();
    for i in 0..batches.min(20_000) {
        let b = runnel_core::record::RecordBatch::parse(&pool[i as usize % POOL]).unwrap();
        std::hint::black_box(b.validate().unwrap());
    }
    let validate_us = t.elapsed().as_secs_f64() * 1e6 / batches.min(20_000) as f64;
    println!("per batch: crc32c {crc_us:.2} us, full validation (crc + record walk) {validate_us:.2} us");

    // fsync every 1 MiB, log vs raw disk: alternating rounds on the same disk
    // so drift in the (virtual) disk's speed hits both sides alike.
    let rounds = 8u64;
    let dir2 = root.path().join("fsync");
    let config = LogConfig { flush_messages: Some(per_mib * per_batch as u64), ..LogConfig::default() };
    let log = open(&dir2, config);
    let mut raw_sync = Figure { records: 0, bytes: 0, elapsed: Duration::ZERO };
    let mut append_sync = Figure { records: 0, bytes: 0, elapsed: Duration::ZERO };
    let mut lat2 = Vec::new();
    let raw_path = root.path().join("raw-sync");
    let mut raw_file = File::create(&raw_path).unwrap();
    for round in 0..rounds {
        let n = batches / rounds + u64::from(round < batches % rounds);
        drain();
        let raw = raw_run(&mut raw_file, &pool, per_batch, n, per_mib);
        raw_sync.add(&raw);
        drain();
        let (ours, lat) = append_run(&log, &pool, per_batch, n);
        append_sync.add(&ours);
        lat2.extend(lat);
        println!("  round {round}: raw {:.1} MB/s, log {:.1} MB/s", raw.mb_per_sec(), ours.mb_per_sec());
    }
    log.close().unwrap();
    drop(log);
    drop(raw_file);
    std::fs::remove_dir_all(&dir2).unwrap();
    std::fs::remove_file(&raw_path).unwrap();

    // No fsync: raw, then the log; then read the log back.
    drain();
    let raw_path = root.path().join("raw-nosync");
    let mut raw_file = File::create(&raw_path).unwrap();
    let raw_nosync = raw_run(&mut raw_file, &pool, per_batch, batches, 0);
    drop(raw_file);
    std::fs::remove_file(&raw_path).unwrap();
    drain();
    let dir1 = root.path().join("nosync");
    let log = open(&dir1, LogConfig::default());
    let (append, mut lat1) = append_run(&log, &pool, per_batch, batches);
    let t = Instant::now();
    log.flush().unwrap();
    let final_flush = t.elapsed();
    // Read back (page cache warm, as for a consumer keeping up).
    let read = read_run(&log);
    log.close().unwrap();
    drop(log);
    std::fs::remove_dir_all(&dir1).unwrap();
    drain();

    // A 2 GiB log, for peak memory.
    let dir3 = root.path().join("2gib");
    let log = open(&dir3, LogConfig::default());
    let big_batches = (2u64 << 30).div_ceil(batch_len as u64);
    let (big, _) = append_run(&log, &pool, per_batch, big_batches);
    let big_size = log.size_bytes();
    log.close().unwrap();
    drop(log);
    std::fs::remove_dir_all(&dir3).unwrap();
    let rss = peak_rss_mb();

    println!();
    println!("{}", raw_nosync.line("raw write_all (no sync)"));
    println!("{}", raw_sync.line("raw write_all+sync/1MiB"));
    println!("{}", append.line("append (no fsync)"));
    println!("    {}; final flush {:.2?}", percentiles(&mut lat1), final_flush);
    println!("{}", append_sync.line("append (fsync every 1 MiB)"));
    println!("    {}", percentiles(&mut lat2));
    println!("{}", read.line("read (1 MiB fetches)"));
    println!("{}", big.line("append 2 GiB log"));
    println!();
    let sync_ratio = append_sync.mb_per_sec() / raw_sync.mb_per_sec();
    println!(
        "append no fsync: {:.2}M records/s (target >= 3M): {}; {:.0}% of raw unsynced write bandwidth",
        append.records_per_sec() / 1e6,
        verdict(append.records_per_sec() >= 3e6),
        100.0 * append.mb_per_sec() / raw_nosync.mb_per_sec()
    );
    println!(
        "append fsync/1MiB: {:.1} MB/s = {:.0}% of raw {:.1} MB/s, same bytes, alternating rounds (target >= 70%): {}",
        append_sync.mb_per_sec(),
        100.0 * sync_ratio,
        raw_sync.mb_per_sec(),
        verdict(sync_ratio >= 0.7)
    );
    println!(
        "read: {:.2}M records/s (target >= 8M): {}",
        read.records_per_sec() / 1e6,
        verdict(read.records_per_sec() >= 8e6)
    );
    println!(
        "peak RSS {:.1} MB over the run, which wrote a {:.2} GB log (target < 200 MB): {}",
        rss,
        big_size as f64 / 1e9,
        verdict(rss < 200.0)
    );
}
