//! Parts (c) and (d) of the streams benchmark (issue 16): joins.
//!
//! * (c) A stream-stream inner join of two 8-partition topics of N/2
//!   records each (100k keys), `JoinWindows::of_time_difference_with_no_grace`
//!   of one minute. Each key comes back every 100k records of a side, two
//!   minutes of event time later, and its right record is 10 s after its
//!   left one: every left record joins exactly one right record.
//! * (d) A stream-table join of N records against a table of N/10 keys
//!   (all in the table, written with earlier timestamps so each task reads
//!   its table partition before the stream).
//!
//! The ceiling, in the same run: a plain consumer reading the same topics
//! and doing the same join with in-memory maps (window eviction for (c),
//! the joiner's string formatting), nothing written or made durable. The
//! app's time runs from `Streams::start` until every input record is
//! processed and `close` has committed. Peak RSS is the process's high
//! water mark (`VmHWM`) from the app's start to its close, reset before
//! each run through `/proc/self/clear_refs`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use runnel::core::client::Cluster;
use runnel::core::topic::NewTopic;
use runnel::streams::{
    Consumed, JoinWindows, Joined, Materialized, Produced, Serdes, StreamJoined, Streams, StreamsBuilder,
    StreamsConfig,
};

use super::{
    cache_bytes, config, median, produce, read_all, runs, spread, total_end_offsets, KEYS, PARTITIONS,
};

const BASE: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;
/// How far a right record of (c) is after the left one with its key.
const RIGHT_LAG: i64 = 10_000;

/// Event time of record `i` of a side of (c): each key (every `KEYS`
/// records) two minutes after its previous record.
fn join_ts(i: u64) -> i64 {
    BASE + (i * 2 * MINUTE as u64 / KEYS) as i64
}

/// Resets the process's peak RSS to its current RSS (Linux 4.0+).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A field of `/proc/self/status` in MiB (`VmHWM`, `VmRSS`).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One side's records of the ceiling's join: key → (timestamp, value),
/// oldest first.
type SideMap = HashMap<Vec<u8>, VecDeque<(i64, Vec<u8>)>>;

/// What an app run measured.
struct Run {
    rate: f64,
    out: i64,
    peak_mib: f64,
    start_mib: f64,
    dropped: u64,
}

/// Starts `builder`'s app, waits until it processed `inputs` records,
/// closes it and counts what it wrote to `out`.
async fn run_app(
    cluster: &Cluster,
    builder: StreamsBuilder,
    config: StreamsConfig,
    inputs: u64,
    rate_of: u64,
    out: &str,
) -> Run {
    reset_peak_rss();
    let start_mib = status_mib("VmRSS:");
    let streams = Streams::new(builder.build().unwrap(), config, cluster.clone()).unwrap();
    let start = Instant::now();
    streams.start().await.unwrap();
    let mut first = None;
    while streams.metrics().process_total < inputs {
        assert!(streams.errors().is_empty(), "{:?}", streams.errors());
        if first.is_none() && streams.metrics().process_total > 0 {
            first = Some(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let processed = start.elapsed().as_secs_f64();
    let dropped = streams.metrics().dropped_records_total;
    streams.close().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "    first record processed {:.2} s after start, all processed at {processed:.2} s, closed at {secs:.2} s",
        first.unwrap_or(processed)
    );
    Run {
        rate: rate_of as f64 / secs,
        out: total_end_offsets(cluster, out).await,
        peak_mib: status_mib("VmHWM:"),
        start_mib,
        dropped,
    }
}

/// Prints the medians against the ceiling and checks the 0.5× target.
fn summary(part: &str, what: &str, ceiling: f64, one: &[f64], two: &[f64]) {
    let runs = one.len();
    for (threads, rates) in [(1, one), (2, two)] {
        println!(
            "({part}) {what}, {threads} thread(s), median of {runs}: {}; {:.2}x the ceiling",
            spread(rates),
            median(rates) / ceiling
        );
    }
    let best = median(one).max(median(two));
    println!(
        "target ({part}) >= 0.5x the ceiling (median, best thread count): {} ({:.2}x)",
        if best >= 0.5 * ceiling { "met" } else { "MISSED" },
        best / ceiling
    );
}

/// Part (c): a stream-stream inner join of two topics, `n / 2` records each.
pub async fn stream_stream(cluster: &Cluster, dir: &std::path::Path, n: u64) {
    let per_side = n / 2;
    for t in ["join-left", "join-right"] {
        cluster.admin().create_topic(NewTopic::new(t, PARTITIONS)).await.unwrap();
    }
    let start = Instant::now();
    produce(cluster, "join-left", per_side, |i| {
        (format!("user{}", i % KEYS), format!("o{i}").into_bytes(), join_ts(i))
    })
    .await;
    produce(cluster, "join-right", per_side, |i| {
        (format!("user{}", i % KEYS), format!("p{i}").into_bytes(), join_ts(i) + RIGHT_LAG)
    })
    .await;
    println!(
        "(c) stream-stream join: {per_side} + {per_side} records, {KEYS} keys, 1-minute join windows; input written in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let (mut ceilings, mut one, mut two) = (Vec::new(), Vec::new(), Vec::new());
    let mut expected = 0i64;
    for run in 0..runs() {
        // Ceiling: both sides in maps, each record joined with the other
        // side's records of its key within a minute; records older than
        // the window behind both sides' times are evicted.
        // Times are kept per partition (a key has the same partition on
        // both sides), as a task's stream time is: one side's partitions
        // move at different speeds.
        let mut maps: [SideMap; 2] = [HashMap::new(), HashMap::new()];
        let mut times = [[i64::MIN; PARTITIONS as usize]; 2];
        let (mut pairs, mut out_bytes) = (0i64, 0usize);
        let secs =
            read_all(cluster, &["join-left", "join-right"], 2 * per_side, |side, p, key, value, ts| {
                times[side][p] = times[side][p].max(ts);
                let horizon = times[0][p].min(times[1][p]).saturating_sub(2 * MINUTE);
                let other = &mut maps[1 - side];
                if let Some(records) = other.get_mut(key) {
                    while records.front().is_some_and(|(t, _)| *t < horizon) {
                        records.pop_front();
                    }
                    for (t, v) in records.iter() {
                        if (ts - t).abs() <= MINUTE {
                            let (l, r) = if side == 0 { (value, &v[..]) } else { (&v[..], value) };
                            let joined = format!(
                                "{}+{}",
                                std::str::from_utf8(l).unwrap(),
                                std::str::from_utf8(r).unwrap()
                            );
                            out_bytes += joined.len();
                            pairs += 1;
                        }
                    }
                }
                let mine = maps[side].entry(key.to_vec()).or_default();
                while mine.front().is_some_and(|(t, _)| *t < horizon) {
                    mine.pop_front();
                }
                mine.push_back((ts, value.to_vec()));
            })
            .await;
        std::hint::black_box(out_bytes);
        drop(maps);
        expected = pairs;
        let ceiling = (2 * per_side) as f64 / secs;
        ceilings.push(ceiling);
        println!(
            "(c) run {run}: ceiling (plain consumer, in-memory maps): {} records in {secs:.2} s = {:.2}M records/s in; {pairs} pairs",
            2 * per_side,
            ceiling / 1e6
        );
        for threads in [1usize, 2] {
            let out = format!("joined-{threads}-{run}");
            cluster.admin().create_topic(NewTopic::new(&out, PARTITIONS)).await.unwrap();
            let mut b = StreamsBuilder::new();
            let c = || Consumed::with(Serdes::string(), Serdes::string());
            let left = b.stream::<String, String>("join-left", c());
            let right = b.stream::<String, String>("join-right", c());
            left.join(
                &right,
                |l, r| format!("{l}+{r}"),
                JoinWindows::of_time_difference_with_no_grace(Duration::from_millis(MINUTE as u64)),
                StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()),
            )
            .to(out.clone(), Produced::with(Serdes::string(), Serdes::string()));
            let app = format!("bench-ssjoin-{threads}-{run}");
            let config = config(&app, dir, threads).with_cache_max_bytes(cache_bytes());
            let r = run_app(cluster, b, config, 2 * per_side, 2 * per_side, &out).await;
            println!(
                "(c) run {run}: streams join, {threads} thread(s): {:.2}M records/s in ({:.2}x the ceiling); {} pairs out ({}), {} dropped; peak RSS {:.0} MiB (RSS at start {:.0} MiB)",
                r.rate / 1e6,
                r.rate / ceiling,
                r.out,
                if r.out == pairs { "as the ceiling" } else { "DIFFERS from the ceiling" },
                r.dropped,
                r.peak_mib,
                r.start_mib,
            );
            if threads == 1 { &mut one } else { &mut two }.push(r.rate);
        }
    }
    println!("(c) ceiling, median: {}; {expected} pairs", spread(&ceilings));
    summary("c", "streams stream-stream join", median(&ceilings), &one, &two);
}

/// Part (d): a stream-table join of `n` records against `n / 10` keys.
pub async fn stream_table(cluster: &Cluster, dir: &std::path::Path, n: u64) {
    let keys = (n / 10).max(1);
    for t in ["users", "visits"] {
        cluster.admin().create_topic(NewTopic::new(t, PARTITIONS)).await.unwrap();
    }
    let start = Instant::now();
    produce(cluster, "users", keys, |i| {
        (format!("user{i}"), format!("region{}", i % 50).into_bytes(), BASE - 3_600_000)
    })
    .await;
    produce(cluster, "visits", n, |i| {
        (format!("user{}", i % keys), format!("/page/{}", i % 1000).into_bytes(), BASE + i as i64)
    })
    .await;
    println!(
        "(d) stream-table join: {n} records against a table of {keys} keys; input written in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let (mut ceilings, mut one, mut two) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs() {
        // Ceiling: the table into a HashMap, then each visit looked up and
        // joined; reading the table counts in the time, as in the app.
        let mut table: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(keys as usize);
        let (mut joined, mut out_bytes) = (0u64, 0usize);
        let table_secs = read_all(cluster, &["users"], keys, |_, _, key, value, _| {
            table.insert(key.to_vec(), value.to_vec());
        })
        .await;
        let secs = table_secs
            + read_all(cluster, &["visits"], n, |_, _, key, value, _| {
                if let Some(region) = table.get(key) {
                    let out = format!(
                        "{}@{}",
                        std::str::from_utf8(value).unwrap(),
                        std::str::from_utf8(region).unwrap()
                    );
                    out_bytes += out.len();
                    joined += 1;
                }
            })
            .await;
        std::hint::black_box(out_bytes);
        drop(table);
        let ceiling = n as f64 / secs;
        ceilings.push(ceiling);
        println!(
            "(d) run {run}: ceiling (plain consumer, HashMap): {n} records + {keys} table records in {secs:.2} s = {:.2}M records/s; {joined} joined",
            ceiling / 1e6
        );
        for threads in [1usize, 2] {
            let out = format!("visits-by-region-{threads}-{run}");
            cluster.admin().create_topic(NewTopic::new(&out, PARTITIONS)).await.unwrap();
            let mut b = StreamsBuilder::new();
            let c = || Consumed::with(Serdes::string(), Serdes::string());
            let users = b.table::<String, String>("users", c(), Materialized::new());
            b.stream::<String, String>("visits", c())
                .join_table(
                    &users,
                    |page, region| format!("{page}@{region}"),
                    Joined::with(Serdes::string(), Serdes::string(), Serdes::string()),
                )
                .to(out.clone(), Produced::with(Serdes::string(), Serdes::string()));
            let app = format!("bench-stjoin-{threads}-{run}");
            let config = config(&app, dir, threads).with_cache_max_bytes(cache_bytes());
            let r = run_app(cluster, b, config, keys + n, n, &out).await;
            // A visit processed before its user's table record was read
            // finds nothing (Kafka's max.task.idle.ms=0 behaviour).
            println!(
                "(d) run {run}: streams join_table, {threads} thread(s): {:.2}M records/s ({:.2}x the ceiling); {} joined out, {} visits found no user yet; peak RSS {:.0} MiB (RSS at start {:.0} MiB)",
                r.rate / 1e6,
                r.rate / ceiling,
                r.out,
                joined as i64 - r.out,
                r.peak_mib,
                r.start_mib,
            );
            if threads == 1 { &mut one } else { &mut two }.push(r.rate);
        }
    }
    println!("(d) ceiling, median: {}", spread(&ceilings));
    summary("d", "streams stream-table join", median(&ceilings), &one, &two);
}
