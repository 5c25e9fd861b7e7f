//! `runnel consume TOPIC`: print records, as a group member or from chosen
//! partitions and positions.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use runnel::core::client::{ConsumerConfig, OffsetReset};
use runnel::core::topic::TopicPartition;

use super::{key_values, open};

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Consume as a member of this group (positions are committed).
    #[arg(long)]
    group: Option<String>,
    /// Start at the earliest offset when there is no committed position.
    #[arg(long)]
    from_beginning: bool,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Start offset: a number, `earliest` or `latest` (not with --group).
    #[arg(long)]
    offset: Option<String>,
    /// Start at the first record with this timestamp (ms) or later (not with --group).
    #[arg(long)]
    timestamp: Option<i64>,
    /// Exit after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Exit after this many milliseconds without a record.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print `key<TAB>value`.
    #[arg(long)]
    print_key: bool,
    /// Print partition, offset and timestamp before each record.
    #[arg(long)]
    print_metadata: bool,
    /// A consumer property, `key=value` (repeatable).
    #[arg(long = "property")]
    properties: Vec<String>,
}

pub(crate) async fn run(url: &str, args: ConsumeArgs) -> anyhow::Result<()> {
    let props = key_values("--property", &args.properties)?;
    let mut config = ConsumerConfig::from_properties(&props)?;
    if args.from_beginning {
        config.auto_offset_reset = OffsetReset::Earliest;
    }
    config.group_id = args.group.clone().or(config.group_id);
    let positioned = args.offset.is_some() || args.timestamp.is_some() || args.partition.is_some();
    if config.group_id.is_some() && (args.offset.is_some() || args.timestamp.is_some()) {
        bail!("--offset and --timestamp choose positions by hand and cannot be used with --group");
    }
    let cluster = open(url, true).await?;
    let mut consumer = cluster.consumer(config.clone())?;
    if config.group_id.is_some() && !positioned {
        consumer.subscribe([args.topic.clone()])?;
    } else {
        let partitions: Vec<TopicPartition> = match args.partition {
            Some(p) => vec![TopicPartition::new(&args.topic, p)],
            None => {
                let n = cluster.admin().describe_topic(&args.topic).await?.partitions.len() as i32;
                (0..n).map(|p| TopicPartition::new(&args.topic, p)).collect()
            }
        };
        consumer.assign(partitions.clone())?;
        match (args.offset.as_deref(), args.timestamp) {
            (Some("earliest"), _) => consumer.seek_to_beginning(&partitions)?,
            (Some("latest"), _) => consumer.seek_to_end(&partitions)?,
            (Some(n), _) => {
                let offset: i64 = n
                    .parse()
                    .with_context(|| format!("--offset '{n}' is not a number, earliest or latest"))?;
                for tp in &partitions {
                    consumer.seek(tp, offset)?;
                }
            }
            (None, Some(ts)) => {
                let query: BTreeMap<TopicPartition, i64> =
                    partitions.iter().map(|tp| (tp.clone(), ts)).collect();
                let found = consumer.offsets_for_times(&query)?;
                let ends = consumer.end_offsets(&partitions)?;
                for tp in &partitions {
                    consumer.seek(tp, found[tp].map_or(ends[tp], |o| o.offset))?;
                }
            }
            (None, None) if args.from_beginning => consumer.seek_to_beginning(&partitions)?,
            (None, None) => {}
        }
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'outer: loop {
        let records = tokio::select! {
            r = consumer.poll(Duration::from_millis(100)) => r?,
            _ = &mut ctrl_c => break,
        };
        if !records.is_empty() {
            last_record = Instant::now();
        }
        for r in records {
            if args.print_metadata {
                write!(out, "partition={} offset={} timestamp={}\t", r.partition, r.offset, r.timestamp)?;
            }
            if args.print_key {
                let key = r.key.as_deref().map_or("null".into(), String::from_utf8_lossy);
                write!(out, "{key}\t")?;
            }
            let value = r.value.as_deref().map_or("null".into(), String::from_utf8_lossy);
            writeln!(out, "{value}")?;
            count += 1;
            if args.max_messages.is_some_and(|max| count >= max) {
                break 'outer;
            }
        }
        out.flush()?;
        if args.timeout_ms.is_some_and(|ms| last_record.elapsed() >= Duration::from_millis(ms)) {
            break;
        }
    }
    out.flush()?;
    drop(out);
    consumer.close().await?;
    cluster.close().await?;
    eprintln!("consumed {count} record(s)");
    Ok(())
}
