//! `FileStreamSource`: tails a file, one record per line.
//!
//! Source partition `{"filename": <file>}`; source offset
//! `{"position": <byte after the line>, "inode": <the file's inode>}`
//! (Kafka's offset plus the inode, so a restart can tell a rotated file).
//! Only complete lines (ending in `\n`; a `\r` before it is dropped) become
//! records; a partial last line waits for its newline.
//!
//! - **Resume**: a restart seeks to the stored position, so no line is
//!   lost or repeated.
//! - **Truncation**: a file shorter than the position read so far is read
//!   again from 0.
//! - **Rotation**: when the path names another file (inode changed), the
//!   old file is read to its end, then the new one from 0; a partial last
//!   line of the old file is emitted as a line.

use std::io::SeekFrom;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use runnel_connect::config_def::{ConfigDef, ConfigType, Importance, Validator};
use runnel_connect::data::{Schema, SchemaType, Value};
use runnel_connect::plugin::{
    Props, SourceConnector, SourceMap, SourceOffset, SourceRecord, SourceTask, SourceTaskContext, TaskError,
};
use runnel_connect::record::ConnectRecord;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tracing::{info, warn};

/// How long `poll` waits when the file has no new complete line.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// The fields of a source offset.
const OFFSET_FIELDS: &[&str] = &["position", "inode"];

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define("file", ConfigType::String, Importance::High, "The file to read.")
        .validate(Validator::NonEmpty)
        .define("topic", ConfigType::String, Importance::High, "The topic to write lines to.")
        .validate(Validator::NonEmpty)
        .define_with_default(
            "batch.size",
            ConfigType::Int,
            2000,
            Importance::Low,
            "Most lines returned by one poll.",
        )
        .validate(Validator::Range { min: Some(1.0), max: None })
}

/// The `FileStreamSource` connector: one task reading one file.
#[derive(Debug, Default)]
pub struct FileStreamSource {
    props: Props,
}

impl FileStreamSource {
    /// The class name.
    pub const CLASS: &'static str = "FileStreamSource";
}

#[async_trait]
impl SourceConnector for FileStreamSource {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        config_def().parse(props)?;
        self.props = props.clone();
        Ok(())
    }

    /// One task: a file has one reader.
    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone()]
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileStreamSourceTask::default())
    }
}

/// The task of [`FileStreamSource`].
#[derive(Debug, Default)]
pub struct FileStreamSourceTask {
    path: PathBuf,
    topic: String,
    batch_size: usize,
    /// `{"filename": ..}`, shared by every record.
    partition: Arc<SourceMap>,
    reader: Option<BufReader<tokio::fs::File>>,
    inode: u64,
    /// Byte after the last line returned (the start of `partial`).
    position: u64,
    /// Bytes of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// The path was seen naming another file: the old one is read to its
    /// end once more before the new one is opened (a writer may have
    /// appended between this task's last read and the rename).
    rotation_seen: bool,
}

impl FileStreamSourceTask {
    fn offset(&self, position: u64) -> SourceOffset {
        SourceOffset::integers(OFFSET_FIELDS, [position as i64, self.inode as i64])
    }

    fn record(&self, line: &[u8], position: u64) -> SourceRecord {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // Checked first as UTF-8 (fast); only invalid bytes take the lossy path.
        let text = match std::str::from_utf8(line) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(line).into_owned(),
        };
        let value = Value::String(text);
        let record = ConnectRecord {
            topic: self.topic.clone(),
            value_schema: Some(Schema::of(SchemaType::String)),
            value,
            ..ConnectRecord::default()
        };
        SourceRecord::new(self.partition.clone(), self.offset(position), record)
    }

    /// Opens the file at `position`; `Ok(false)` when it does not exist yet.
    async fn open(&mut self, position: u64) -> Result<bool, TaskError> {
        let io = |e: std::io::Error| TaskError::retriable(format!("file {}: {e}", self.path.display()));
        let file = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().await.map_err(io)?;
        self.inode = meta.ino();
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        reader.seek(SeekFrom::Start(position)).await.map_err(io)?;
        self.position = position;
        self.partial.clear();
        self.reader = Some(reader);
        Ok(true)
    }
}

#[async_trait]
impl SourceTask for FileStreamSourceTask {
    async fn start(&mut self, props: &Props, context: &SourceTaskContext) -> Result<(), TaskError> {
        let config = config_def().parse(props)?;
        self.path = PathBuf::from(config.require_string("file")?);
        self.topic = config.require_string("topic")?.to_string();
        self.batch_size = config.get_int("batch.size").unwrap_or(2000).max(1) as usize;
        let mut partition = SourceMap::new();
        partition.insert("filename".into(), json!(self.path.to_string_lossy()));
        self.partition = Arc::new(partition);
        let stored = context.offset(&self.partition);
        let mut position = stored.and_then(|o| o.get("position")).and_then(|p| p.as_u64()).unwrap_or(0);
        // Stored as a signed integer (an inode past i64::MAX wraps round).
        let stored_inode =
            stored.and_then(|o| o.get("inode")).and_then(|i| i.as_i64().map(|i| i as u64).or(i.as_u64()));
        if let Ok(meta) = tokio::fs::metadata(&self.path).await {
            if stored_inode.is_some_and(|i| i != meta.ino()) {
                info!(file = %self.path.display(), "file was rotated while stopped: reading the new one from the start");
                position = 0;
            } else if meta.len() < position {
                warn!(file = %self.path.display(), position, len = meta.len(), "file was truncated: reading from the start");
                position = 0;
            }
        }
        self.position = position;
        self.open(position).await?;
        info!(file = %self.path.display(), position, "file source started");
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, TaskError> {
        if self.reader.is_none() && !self.open(self.position).await? {
            tokio::time::sleep(IDLE_WAIT).await;
            return Ok(Vec::new());
        }
        let path = self.path.clone();
        let io = |e: std::io::Error| TaskError::retriable(format!("file {}: {e}", path.display()));
        let mut records = Vec::with_capacity(self.batch_size.min(16 * 1024));
        let mut reader = self.reader.take().expect("opened above");
        // Lines are cut straight out of the reader's buffer; only a line that
        // straddles two reads is gathered in `partial`.
        let mut partial = std::mem::take(&mut self.partial);
        while records.len() < self.batch_size {
            let buf = match reader.fill_buf().await {
                Ok(buf) => buf,
                Err(e) => {
                    self.reader = Some(reader);
                    self.partial = partial;
                    return Err(io(e));
                }
            };
            if buf.is_empty() {
                break;
            }
            let mut used = 0;
            while records.len() < self.batch_size {
                let Some(newline) = memchr::memchr(b'\n', &buf[used..]) else {
                    partial.extend_from_slice(&buf[used..]);
                    used = buf.len();
                    break;
                };
                let line = &buf[used..used + newline + 1];
                used += newline + 1;
                let end = if partial.is_empty() {
                    let end = self.position + line.len() as u64;
                    records.push(self.record(line, end));
                    end
                } else {
                    partial.extend_from_slice(line);
                    let end = self.position + partial.len() as u64;
                    records.push(self.record(&partial, end));
                    partial.clear();
                    end
                };
                self.position = end;
            }
            reader.consume(used);
        }
        self.partial = partial;
        self.reader = Some(reader);
        if !records.is_empty() {
            return Ok(records);
        }
        // At the end of the file: look for truncation and rotation.
        let read_to = self.position + self.partial.len() as u64;
        match tokio::fs::metadata(&self.path).await {
            Ok(meta) if meta.ino() != self.inode && !self.rotation_seen => {
                // Read the old file once more before switching (no sleep).
                self.rotation_seen = true;
            }
            Ok(meta) if meta.ino() != self.inode => {
                info!(file = %self.path.display(), "file rotated: reading the new one from the start");
                self.rotation_seen = false;
                let rest = std::mem::take(&mut self.partial);
                self.open(0).await?;
                if !rest.is_empty() {
                    // The old file's last line never got its newline.
                    records.push(self.record(&rest, 0));
                    return Ok(records);
                }
            }
            Ok(meta) if meta.len() < read_to => {
                warn!(file = %self.path.display(), read_to, len = meta.len(), "file truncated: reading from the start");
                self.open(0).await?;
            }
            _ => {
                self.rotation_seen = false;
                tokio::time::sleep(IDLE_WAIT).await;
            }
        }
        Ok(records)
    }
}
