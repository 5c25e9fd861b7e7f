//! The main job, for now: open an embedded data directory, create a topic,
//! write records in compressed batches, read them back, look one up by
//! timestamp, reopen the directory and show that everything is still there.
//!
//! ```text
//! cargo run --release --example quickstart [-- <data dir>]
//! ```
//!
//! Without an argument it uses a fresh temporary directory.

use std::time::Instant;

use anyhow::Context;
use runnel::core::broker::{Broker, BrokerConfig};
use runnel::core::record::{Compression, Header, RecordBatchBuilder};
use runnel::core::topic::NewTopic;

fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args().nth(1).map_or_else(|| temp.path().to_path_buf(), Into::into);
    println!("data directory: {}", dir.display());

    let broker = Broker::open(&dir, BrokerConfig::default())?;
    if !broker.list_topics().contains(&"page-views".to_string()) {
        broker.create_topic(NewTopic::new("page-views", 3).config("segment.bytes", "1048576"))?;
        println!("created topic page-views with 3 partitions (segment.bytes=1 MiB)");
    }

    let pages = ["/", "/pricing", "/docs", "/blog", "/signup"];
    let start = Instant::now();
    let base_ts = 1_700_000_000_000i64;
    let mut written = 0u64;
    for partition in 0..3 {
        let log = broker.log("page-views", partition)?;
        for batch_no in 0..20 {
            let mut batch = RecordBatchBuilder::new(Compression::Lz4);
            for i in 0..500 {
                let n = batch_no * 500 + i;
                let user = format!("user-{}", n % 97);
                let value = format!(
                    r#"{{"user":"{user}","page":"{}","n":{n}}}"#,
                    pages[(n % pages.len() as i64) as usize]
                );
                batch.append(
                    base_ts + n,
                    Some(user.as_bytes()),
                    Some(value.as_bytes()),
                    &[Header::new("source", "quickstart")],
                );
            }
            let info = log.append(&mut batch.build(0)?)?;
            written += info.record_count;
        }
    }
    println!("appended {written} records in lz4 batches in {:.1?}", start.elapsed());

    for partition in 0..3 {
        let log = broker.log("page-views", partition)?;
        let mut offset = log.log_start_offset();
        let mut count = 0;
        while offset < log.log_end_offset() {
            let records = log.read_records(offset, 256 * 1024)?;
            let last = records.last().context("a read below the end returns records")?;
            offset = last.offset + 1;
            count += records.len();
        }
        let (hit, ts) =
            log.offset_for_timestamp(base_ts + 5_000)?.context("timestamp lookup finds a record")?;
        let first = &log.read_records(hit, 1)?[0];
        println!(
            "partition {partition}: read {count} records (offsets {}..{}), {} segments; \
             first record at or after t+5000ms is offset {hit} (t={ts}): {}",
            log.log_start_offset(),
            log.log_end_offset(),
            log.segments().len(),
            String::from_utf8_lossy(first.value.as_deref().unwrap_or_default()),
        );
    }
    broker.close()?;
    drop(broker);

    let reopened = Broker::open(&dir, BrokerConfig::default())?;
    let description = reopened.describe_topic("page-views")?;
    for p in &description.partitions {
        println!(
            "after reopen: partition {} holds offsets {}..{} in {} bytes",
            p.partition, p.log_start_offset, p.log_end_offset, p.size_bytes
        );
    }
    reopened.close()?;
    Ok(())
}
