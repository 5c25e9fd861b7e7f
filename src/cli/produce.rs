//! `runnel produce TOPIC`: one record per input line.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use runnel::core::client::{ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{key_values, open};

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic to write to.
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Split each line at the first occurrence of this into key and value.
    #[arg(long)]
    key_separator: Option<String>,
    /// A header added to every record, `key=value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// A producer property, `key=value` (repeatable), e.g. `--property compression.type=zstd`.
    #[arg(long = "property")]
    properties: Vec<String>,
}

pub(crate) async fn run(url: &str, args: ProduceArgs) -> anyhow::Result<()> {
    let props = key_values("--property", &args.properties)?;
    let config = ProducerConfig::from_properties(&props)?;
    let headers = key_values("--header", &args.headers)?;
    let input: Box<dyn AsyncRead + Unpin + Send> = match &args.file {
        Some(path) => Box::new(
            tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    let cluster = open(url, false).await?;
    let producer = cluster.producer(config)?;
    let mut lines = BufReader::new(input).lines();
    let topic: std::sync::Arc<str> = std::sync::Arc::from(args.topic.as_str());
    let mut pending = Vec::new();
    let mut count = 0u64;
    while let Some(line) = lines.next_line().await.context("reading input")? {
        let mut record = ProducerRecord::new(topic.clone());
        match args.key_separator.as_deref().and_then(|sep| line.split_once(sep)) {
            Some((key, value)) => record = record.key(key.to_string()).value(value.to_string()),
            None => record = record.value(line),
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        for (k, v) in &headers {
            record = record.header(k.clone(), v.clone());
        }
        pending.push(producer.enqueue(record).await?);
        count += 1;
        if pending.len() >= 10_000 {
            for d in pending.drain(..) {
                d.await?;
            }
        }
    }
    for d in pending {
        d.await?;
    }
    producer.close().await?;
    cluster.close().await?;
    eprintln!("produced {count} record(s) to {}", args.topic);
    Ok(())
}
