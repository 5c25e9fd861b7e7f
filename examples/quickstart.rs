//! The main job: a real pipeline on the embedded cluster, in one process.
//!
//! ```text
//! examples/data/users.log ──► Connect FileStreamSource ──► topic users (1 partition)
//!   ──► Streams: parse each line, key by user ──► table users-by-id (RocksDB + changelog,
//!       through a repartition topic of 3 partitions, co-partitioned with the clicks)
//! examples/data/clicks.log ──► Connect FileStreamSource ──► topic clicks (1 partition)
//!   ──► Streams app "quickstart-clicks": parse each line (event time from the log),
//!       repartition by user (3 partitions), left-join each click with the users
//!       table (its user's region, "unknown" when the user is not in it), count per
//!       user in 5-minute tumbling windows with 1 minute of grace (RocksDB store +
//!       changelog topic)
//!   ──► topic click-counts ──► Connect FileStreamSink ──► click-counts.txt
//! ```
//!
//! The users are loaded first: the clicks source starts once the users
//! table's input holds every user, and each join task reads the users it
//! can fetch before its clicks (`max.task.idle.ms`, KIP-695).
//!
//! Run it with `scripts/quickstart` (which first installs what the build
//! needs), or `cargo run --release --example quickstart [-- <work dir>]`.
//! Without a work dir it uses a fresh temporary directory. It prints
//! progress while it runs and a summary at the end: records in, windows
//! out, the busiest windows, time taken.
//!
//! Each output line is `<window start> <user> <region> <count>`. Streams emits a
//! window's count each time it commits while the window is open (Kafka's
//! behaviour with caching on), so a window can appear more than once; its
//! last line is its final count.
//!
//! `tests/end_to_end/quickstart.rs` runs this same pipeline and checks its output
//! against counts computed straight from the sample file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use runnel::connect::plugin::PluginRegistry;
use runnel::connect::worker::{State, Worker, WorkerConfig};
use runnel::core::client::{Cluster, ConsumerConfig};
use runnel::core::topic::{NewTopic, TopicPartition};
use runnel::streams::{
    Consumed, Forwarder, Grouped, Joined, Materialized, Processor, ProcessorContext, Produced, Record,
    Repartitioned, Serdes, Streams, StreamsBuilder, StreamsConfig, StreamsError, StreamsState, TimeWindows,
};
use serde::{Deserialize, Serialize};

/// The sample click log that ships with the repository.
pub const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/clicks.log");
/// The sample users table: `<time> <user> <region>` per line.
pub const USERS_SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/users.log");
/// The region of a click whose user is not in the users table.
pub const UNKNOWN_REGION: &str = "unknown";
/// Tumbling window size.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// How late (in event time) a click may arrive and still be counted.
pub const GRACE: Duration = Duration::from_secs(60);

const APP_ID: &str = "quickstart-clicks";
const INPUT_TOPIC: &str = "clicks";
const USERS_TOPIC: &str = "users";
const USERS_STORE: &str = "users-by-id";
const OUTPUT_TOPIC: &str = "click-counts";
const REPARTITION_NAME: &str = "clicks-by-user";
const STORE: &str = "clicks-per-user-5min";

/// The final (region, count) per (window start in ms, user).
pub type WindowCounts = BTreeMap<(i64, String), (String, u64)>;

/// Where the pipeline reads and writes.
pub struct Options {
    /// The click log to read.
    pub input: PathBuf,
    /// The users file to read.
    pub users: PathBuf,
    /// The embedded cluster's data directory, the Streams state directory
    /// and the output file live under here.
    pub work_dir: PathBuf,
    /// Draw a progress line on the terminal.
    pub progress: bool,
}

/// What happened, as printed at the end.
#[derive(Debug)]
pub struct Summary {
    /// Lines in the input file.
    pub lines_in_file: u64,
    /// Users in the users file (read into the table before the clicks).
    pub users: u64,
    /// Records the file source wrote to `clicks`.
    pub source_records: u64,
    /// Lines of the users file the Streams app could not parse (skipped).
    pub malformed_users: u64,
    /// Lines the Streams app could not parse (skipped and counted).
    pub malformed: u64,
    /// Clicks later than the window grace (dropped by Streams and counted).
    pub dropped_late: u64,
    /// Window updates written to `click-counts` (and by the sink to the file).
    pub updates: u64,
    /// Final count per (window start in ms, user): the last line per window.
    pub windows: WindowCounts,
    /// The output file.
    pub output: PathBuf,
    /// Wall time from start to the last output line on disk.
    pub elapsed: Duration,
}

/// One parsed line of the click log: `<RFC 3339 UTC time> <user> <page>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click<'a> {
    /// Event time, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Who clicked.
    pub user: &'a str,
    /// What.
    pub page: &'a str,
}

/// Parses `2026-12-01T09:00:05.830Z user-02 /pricing`; `None` for anything
/// else (truncated lines, impossible dates, banners).
pub fn parse_click(line: &str) -> Option<Click<'_>> {
    let mut fields = line.split_ascii_whitespace();
    let (time, user, page) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    Some(Click { timestamp_ms: parse_utc_millis(time)?, user, page })
}

/// One parsed line of the users file: `<RFC 3339 UTC time> <user> <region>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User<'a> {
    /// Since when the user has this region, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// The user.
    pub user: &'a str,
    /// Where the user is.
    pub region: &'a str,
}

/// Parses `2026-11-21T09:07:00Z user-01 APAC`; `None` for anything else.
pub fn parse_user(line: &str) -> Option<User<'_>> {
    let click = parse_click(line)?;
    Some(User { timestamp_ms: click.timestamp_ms, user: click.user, region: click.page })
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` to ms since the epoch.
fn parse_utc_millis(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next()??);
    if d.next().is_some() || t.next().is_some() || millis.len() > 3 {
        return None;
    }
    let millis: i64 = format!("{millis:0<3}").parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    if !(0..24).contains(&hour) || !(0..60).contains(&minute) || !(0..60).contains(&second) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ms since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (the inverse of the parser,
/// to the second).
pub fn format_utc(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000) / 1000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The Streams app's first step: a line becomes a click keyed by user, with
/// the log's time as the record's event time (the file source stamps
/// records with the time it read them). Lines that do not parse are
/// counted and skipped.
struct ParseClicks {
    out: Forwarder<String, String>,
    malformed: Arc<AtomicU64>,
}

impl Processor<(), String> for ParseClicks {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<(), String>,
    ) -> Result<(), StreamsError> {
        match parse_click(&record.value) {
            Some(click) => {
                let parsed = Record::new(click.user.to_string(), click.page.to_string(), click.timestamp_ms);
                self.out.forward(ctx, parsed)
            }
            None => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

/// A line of the users file becomes the user's region keyed by user,
/// stamped with the line's time. Lines that do not parse are counted and
/// skipped.
struct ParseUsers {
    out: Forwarder<String, String>,
    malformed: Arc<AtomicU64>,
}

impl Processor<(), String> for ParseUsers {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<(), String>,
    ) -> Result<(), StreamsError> {
        match parse_user(&record.value) {
            Some(user) => {
                let parsed = Record::new(user.user.to_string(), user.region.to_string(), user.timestamp_ms);
                self.out.forward(ctx, parsed)
            }
            None => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

/// What a window holds per user: the region of its clicks and how many.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RegionCount {
    region: String,
    clicks: u64,
}

fn topology(
    malformed: &Arc<AtomicU64>,
    malformed_users: &Arc<AtomicU64>,
) -> Result<runnel::streams::Topology, StreamsError> {
    let (malformed_users, malformed) = (Arc::clone(malformed_users), Arc::clone(malformed));
    let mut builder = StreamsBuilder::new();
    let string = || Serdes::string();
    let users = builder
        .stream::<(), String>(USERS_TOPIC, Consumed::with(Serdes::unit(), string()))
        .process(move |out| ParseUsers { out, malformed: Arc::clone(&malformed_users) })
        .to_table(Materialized::as_(USERS_STORE).with_key_serde(string()).with_value_serde(string()));
    builder
        .stream::<(), String>(INPUT_TOPIC, Consumed::with(Serdes::unit(), string()))
        .process(move |out| ParseClicks { out, malformed: Arc::clone(&malformed) })
        .repartition(Repartitioned::with(string(), string()).name(REPARTITION_NAME).partitions(3))
        .left_join_table(
            &users,
            |_page, region: Option<&String>| region.map_or(UNKNOWN_REGION, String::as_str).to_string(),
            Joined::with(string(), string(), string()),
        )
        .group_by_key(Grouped::with(string(), string()))
        .windowed_by(TimeWindows::of_size_and_grace(WINDOW, GRACE))
        .aggregate(
            RegionCount::default,
            |_user, region, agg| RegionCount { region, clicks: agg.clicks + 1 },
            Materialized::as_(STORE).with_value_serde(Serdes::json()),
        )
        .to_stream()
        .filter(|_, agg| agg.is_some())
        .map(|w, agg| {
            let RegionCount { region, clicks } = agg.unwrap_or_default();
            let line = format!("{} {} {region} {clicks}", format_utc(w.window.start), w.key);
            (w.key.clone(), line)
        })
        .to(OUTPUT_TOPIC, Produced::with(string(), string()));
    builder.build()
}

fn props(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Sum of the log end offsets of a topic's partitions.
async fn end_total(cluster: &Cluster, topic: &str, partitions: i32) -> anyhow::Result<u64> {
    let consumer = cluster.consumer(ConsumerConfig::default().auto_commit(false))?;
    let tps: Vec<TopicPartition> = (0..partitions).map(|p| TopicPartition::new(topic, p)).collect();
    let ends = consumer.end_offsets(&tps)?;
    Ok(ends.values().map(|&e| e.max(0) as u64).sum())
}

/// Reads the sink's file: the number of lines, and the last count per window.
fn read_output(path: &Path) -> anyhow::Result<(u64, WindowCounts)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, BTreeMap::new())),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut windows = BTreeMap::new();
    let mut lines = 0;
    for line in text.lines() {
        let mut f = line.split(' ');
        let parsed = (|| {
            let start = parse_utc_millis(f.next()?)?;
            let user = f.next()?.to_string();
            let region = f.next()?.to_string();
            let count: u64 = f.next()?.parse().ok()?;
            Some(((start, user), (region, count)))
        })();
        let Some((window, count)) = parsed else { bail!("unexpected line in {}: {line:?}", path.display()) };
        windows.insert(window, count);
        lines += 1;
    }
    Ok((lines, windows))
}

/// Runs the whole pipeline once over `options.input` and returns what it did.
///
/// # Errors
/// Any failure of the cluster, a connector task or the Streams app (with
/// its trace), or no progress for 60 s.
pub async fn run(options: &Options) -> anyhow::Result<Summary> {
    let start = Instant::now();
    let input = std::fs::canonicalize(&options.input)
        .with_context(|| format!("input {}", options.input.display()))?;
    let lines_in_file =
        std::fs::read(&input)?.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count() as u64;
    let users_file = std::fs::canonicalize(&options.users)
        .with_context(|| format!("users {}", options.users.display()))?;
    let users_text = std::fs::read_to_string(&users_file)?;
    let users = users_text.lines().filter(|l| parse_user(l).is_some()).count() as u64;
    std::fs::create_dir_all(&options.work_dir)?;
    let output = options.work_dir.join("click-counts.txt");

    let cluster = Cluster::open(&format!("file:{}", options.work_dir.join("data").display())).await?;
    let admin = cluster.admin();
    let existing = admin.list_topics().await?;
    for (topic, partitions) in [(INPUT_TOPIC, 1), (USERS_TOPIC, 1), (OUTPUT_TOPIC, 3)] {
        if !existing.iter().any(|t| t == topic) {
            admin.create_topic(NewTopic::new(topic, partitions)).await?;
        }
    }

    // Connect: the worker runs in this process, on the same cluster.
    let string = "org.apache.kafka.connect.storage.StringConverter";
    let worker_config = WorkerConfig::from_props(
        &[("key.converter", string), ("value.converter", string), ("offset.flush.interval.ms", "200")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )?;
    let mut registry = PluginRegistry::new();
    runnel::connectors::register(&mut registry);
    let worker = Worker::with_cluster(worker_config, registry, cluster.clone()).await?;

    // Streams: two threads, state in RocksDB under the work dir.
    let malformed = Arc::new(AtomicU64::new(0));
    let config = StreamsConfig::new(APP_ID)
        .with_state_dir(options.work_dir.join("streams-state"))
        .with_num_stream_threads(2)
        .with_commit_interval(Duration::from_millis(200));
    let malformed_users = Arc::new(AtomicU64::new(0));
    let streams = Streams::new(topology(&malformed, &malformed_users)?, config, cluster.clone())?;
    streams.start().await?;

    let (input_s, output_s) = (input.display().to_string(), output.display().to_string());
    // The users first: the clicks source starts once the users table's
    // input (the repartition topic by user) holds every user.
    let users_s = users_file.display().to_string();
    worker
        .add_connector(props(&[
            ("name", "users-source"),
            ("connector.class", "FileStreamSource"),
            ("file", &users_s),
            ("topic", USERS_TOPIC),
        ]))
        .await?;
    let users_input = format!("{APP_ID}-{USERS_STORE}-repartition");
    let waiting_since = Instant::now();
    while end_total(&cluster, &users_input, 3).await.unwrap_or(0) < users {
        if streams.state() == StreamsState::Error {
            bail!("the streams app stopped: {}", streams.errors().join("; "));
        }
        if waiting_since.elapsed() > Duration::from_secs(60) {
            bail!("the users table did not load in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker
        .add_connector(props(&[
            ("name", "click-counts-sink"),
            ("connector.class", "FileStreamSink"),
            ("file", &output_s),
            ("topics", OUTPUT_TOPIC),
        ]))
        .await?;
    worker
        .add_connector(props(&[
            ("name", "clicks-source"),
            ("connector.class", "FileStreamSource"),
            ("file", &input_s),
            ("topic", INPUT_TOPIC),
        ]))
        .await?;

    let bar = if options.progress {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let repartition_topic = format!("{APP_ID}-{REPARTITION_NAME}-repartition");
    let mut last_change = (Instant::now(), (0, 0, 0));
    let (source_records, updates, windows) = loop {
        for status in worker.status().all() {
            let failed = std::iter::once((status.state, &status.trace))
                .chain(status.tasks.iter().map(|t| (t.state, &t.trace)))
                .find(|(state, _)| *state == State::Failed);
            if let Some((_, trace)) = failed {
                bail!("connector {} failed: {}", status.name, trace.as_deref().unwrap_or("(no trace)"));
            }
        }
        if streams.state() == StreamsState::Error {
            bail!("the streams app stopped: {}", streams.errors().join("; "));
        }
        let source_records = end_total(&cluster, INPUT_TOPIC, 1).await?;
        let processed = streams.metrics().process_total;
        let updates = end_total(&cluster, OUTPUT_TOPIC, 3).await?;
        let (written, windows) = read_output(&output)?;
        bar.set_message(format!(
            "source {source_records}/{lines_in_file} lines · streams {processed} records processed · \
             sink {written} window updates written"
        ));
        // Done when the source has read every line, the app has committed
        // past everything on both of its input topics (a commit comes after
        // its output is acknowledged), and the sink's file holds every
        // update the app wrote.
        if source_records == lines_in_file && written == updates {
            let group = admin.describe_group(APP_ID).await.ok();
            let caught_up = group.is_some_and(|g| {
                let committed_input: i64 = g
                    .partitions
                    .iter()
                    .filter(|p| p.partition.topic == INPUT_TOPIC)
                    .filter_map(|p| p.committed)
                    .sum();
                let repartition_end: i64 = g
                    .partitions
                    .iter()
                    .filter(|p| p.partition.topic == repartition_topic)
                    .map(|p| p.log_end_offset.max(0))
                    .sum();
                committed_input as u64 == lines_in_file
                    && repartition_end as u64 == lines_in_file - malformed.load(Ordering::Relaxed)
                    && g.partitions.iter().all(|p| p.lag == 0)
            });
            // The output topic only grows before that commit, so once the
            // app has caught up, `updates` is final.
            if caught_up && end_total(&cluster, OUTPUT_TOPIC, 3).await? == written {
                break (source_records, written, windows);
            }
        }
        let seen = (source_records, processed, written);
        if seen != last_change.1 {
            last_change = (Instant::now(), seen);
        } else if last_change.0.elapsed() > Duration::from_secs(60) {
            bail!("no progress for 60 s (source {source_records}, processed {processed}, written {written})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let dropped_late = streams.metrics().dropped_records_total;
    worker.shutdown().await?;
    streams.close().await?;
    cluster.close().await?;
    Ok(Summary {
        lines_in_file,
        users,
        source_records,
        malformed: malformed.load(Ordering::Relaxed),
        malformed_users: malformed_users.load(Ordering::Relaxed),
        dropped_late,
        updates,
        windows,
        output,
        elapsed,
    })
}

fn print_summary(summary: &Summary) {
    let counted: u64 = summary.windows.values().map(|(_, count)| count).sum();
    let users: std::collections::BTreeSet<&str> = summary.windows.keys().map(|(_, u)| u.as_str()).collect();
    let unknown: u64 =
        summary.windows.values().filter(|(region, _)| region == UNKNOWN_REGION).map(|(_, count)| count).sum();
    println!(
        "records in:   {} lines in the file, {} records written by the file source to `{INPUT_TOPIC}`; {} users in the table",
        summary.lines_in_file, summary.source_records, summary.users
    );
    println!(
        "streams:      {counted} clicks counted ({unknown} of users not in the table, region {UNKNOWN_REGION}), {} malformed lines skipped, {} late clicks dropped (grace {} s)",
        summary.malformed,
        summary.dropped_late,
        GRACE.as_secs()
    );
    println!(
        "windows out:  {} (user × {}-minute window, {} users), from {} updates written to `{OUTPUT_TOPIC}`",
        summary.windows.len(),
        WINDOW.as_secs() / 60,
        users.len(),
        summary.updates
    );
    let mut busiest: Vec<_> = summary.windows.iter().collect();
    busiest.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
    println!("busiest windows:");
    for ((start, user), (region, count)) in busiest.iter().take(3) {
        println!("              {} {user:<8} {region:<7} {count} clicks", format_utc(*start));
    }
    println!(
        "output:       {} ({} lines; a window's last line is its final count)",
        summary.output.display(),
        summary.updates
    );
    println!("time taken:   {:.2} s", summary.elapsed.as_secs_f64());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let work_dir = std::env::args().nth(1).map_or_else(|| temp.path().to_path_buf(), PathBuf::from);
    println!("Runnel quickstart: {SAMPLE}, users from {USERS_SAMPLE}");
    println!(
        "  → Connect file source → topic {INPUT_TOPIC} → Streams (joined with the users table, {}-minute tumbling windows per user, RocksDB)",
        WINDOW.as_secs() / 60
    );
    println!(
        "  → topic {OUTPUT_TOPIC} → Connect file sink → {}",
        work_dir.join("click-counts.txt").display()
    );
    let options = Options { input: SAMPLE.into(), users: USERS_SAMPLE.into(), work_dir, progress: true };
    let summary = run(&options).await?;
    print_summary(&summary);
    if std::env::args().nth(1).is_none() {
        println!("(the work dir was temporary; pass a directory to keep the data and the output)");
    }
    Ok(())
}
