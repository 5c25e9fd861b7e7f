//! `FileStreamSink`: one line per record, exactly once.
//!
//! Each record's value is written in its string form (strings as they are,
//! bytes as UTF-8, null as `null`, anything else as Connect prints it)
//! followed by `\n`. On `flush` the data is written and fsynced, then
//! `<file>.offsets` is replaced atomically (write a temp file, fsync,
//! rename, fsync the directory):
//!
//! ```json
//! {"length": 1234, "offsets": [{"topic": "lines", "partition": 0, "offset": 41}]}
//! ```
//!
//! `length` is the data file's length at that flush and `offset` the last
//! offset written per topic-partition (as consumed, before transforms). On
//! start the data file is cut back to `length` (dropping lines written
//! after the last flush: the worker will deliver them again), and records
//! at or below `offset` are skipped, so after a crash the file neither
//! loses nor repeats a line.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use runnel_connect::config_def::{ConfigDef, ConfigType, Importance, Validator};
use runnel_connect::data::Value;
use runnel_connect::plugin::{
    Props, SinkConnector, SinkRecord, SinkTask, SinkTaskContext, TaskError, TopicPartition,
};
use serde_json::json;
use tracing::{info, warn};

/// Bytes reserved up front for a write buffer (`put` writes what each call
/// buffered, in the background and without fsync; a poll of 10,000 lines of
/// 100 bytes fits).
const WRITE_CHUNK: usize = 1024 * 1024;

fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define("file", ConfigType::String, Importance::High, "The file to append lines to.")
        .validate(Validator::NonEmpty)
}

/// The `FileStreamSink` connector: one task writing one file.
#[derive(Debug, Default)]
pub struct FileStreamSink {
    props: Props,
}

impl FileStreamSink {
    /// The class name.
    pub const CLASS: &'static str = "FileStreamSink";
}

#[async_trait]
impl SinkConnector for FileStreamSink {
    fn config_def(&self) -> ConfigDef {
        config_def()
    }

    async fn start(&mut self, props: &Props) -> Result<(), TaskError> {
        config_def().parse(props)?;
        self.props = props.clone();
        Ok(())
    }

    /// One task: a file has one writer.
    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        vec![self.props.clone()]
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileStreamSinkTask::default())
    }
}

/// What `<file>.offsets` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkOffsets {
    /// The data file's length at the last flush.
    pub length: u64,
    /// The last offset written per topic-partition.
    pub offsets: BTreeMap<TopicPartition, i64>,
}

impl SinkOffsets {
    /// The offsets file beside `file`.
    pub fn path_for(file: &Path) -> PathBuf {
        let mut name = file.file_name().unwrap_or_default().to_os_string();
        name.push(".offsets");
        file.with_file_name(name)
    }

    /// Reads the offsets file; an empty set when there is none.
    ///
    /// # Errors
    /// An I/O error, or a file that is not the expected JSON.
    pub fn load(file: &Path) -> Result<SinkOffsets, String> {
        let path = Self::path_for(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SinkOffsets::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let bad = |what: &str| format!("{}: {what}", path.display());
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
        let length = v.get("length").and_then(|l| l.as_u64()).ok_or_else(|| bad("no `length`"))?;
        let mut offsets = BTreeMap::new();
        for o in v.get("offsets").and_then(|o| o.as_array()).ok_or_else(|| bad("no `offsets`"))? {
            let topic =
                o.get("topic").and_then(|t| t.as_str()).ok_or_else(|| bad("an offset without `topic`"))?;
            let partition =
                o.get("partition").and_then(|p| p.as_i64()).ok_or_else(|| bad("no `partition`"))?;
            let offset = o.get("offset").and_then(|p| p.as_i64()).ok_or_else(|| bad("no `offset`"))?;
            offsets.insert(TopicPartition::new(topic, partition as i32), offset);
        }
        Ok(SinkOffsets { length, offsets })
    }

    /// Replaces the offsets file atomically and durably.
    fn store(&self, file: &Path) -> std::io::Result<()> {
        let path = Self::path_for(file);
        let tmp = path.with_extension("offsets.tmp");
        let body = json!({
            "length": self.length,
            "offsets": self.offsets.iter().map(|(tp, o)| json!({
                "topic": tp.topic, "partition": tp.partition, "offset": o,
            })).collect::<Vec<_>>(),
        });
        let mut f = File::create(&tmp)?;
        f.write_all(body.to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }
}

/// The task of [`FileStreamSink`].
#[derive(Debug, Default)]
pub struct FileStreamSinkTask {
    path: PathBuf,
    file: Option<File>,
    /// Lines not yet written.
    buffer: Vec<u8>,
    /// The data file's length including what was written (not `buffer`).
    written: u64,
    /// Last offset accepted per partition (written or buffered).
    offsets: BTreeMap<TopicPartition, i64>,
    /// Whether lines were accepted since the last flush.
    dirty: bool,
    /// The chunk being written on a blocking thread, and its length.
    writing: Option<(ChunkWrite, u64)>,
    /// The buffer of the last chunk written, to fill next.
    spare: Vec<u8>,
}

/// A chunk write on a blocking thread; it hands back the file, the outcome
/// and the buffer.
type ChunkWrite = tokio::task::JoinHandle<(File, std::io::Result<()>, Vec<u8>)>;

fn io_error(path: &Path, e: std::io::Error) -> TaskError {
    TaskError::retriable(format!("file {}: {e}", path.display()))
}

impl FileStreamSinkTask {
    /// Waits for the chunk being written, if any: the file and the emptied
    /// buffer come back.
    async fn finish_write(&mut self) -> Result<(), TaskError> {
        let Some((writing, len)) = self.writing.take() else {
            return Ok(());
        };
        let (file, result, mut spent) =
            writing.await.map_err(|e| TaskError::fatal(format!("file writer thread: {e}")))?;
        self.file = Some(file);
        // Filled again later: no fresh memory (and no growing copies) per chunk.
        spent.clear();
        self.spare = spent;
        if let Err(e) = result {
            // Whether a part was written is unknown: fail, and the restart
            // cuts the file back to the last flushed length.
            return Err(TaskError::fatal(format!("writing {}: {e}", self.path.display())));
        }
        self.written += len;
        Ok(())
    }

    /// Hands the buffer to a blocking thread that writes it (and fsyncs
    /// when `sync`), after the chunk before it, and returns without waiting
    /// for it: lines are written while the next ones are converted. One
    /// chunk is in flight at most.
    async fn start_write(&mut self, sync: bool) -> Result<(), TaskError> {
        self.finish_write().await?;
        let Some(mut file) = self.file.take() else {
            return Err(TaskError::fatal("file sink is not started"));
        };
        let buffer = std::mem::replace(&mut self.buffer, std::mem::take(&mut self.spare));
        let len = buffer.len() as u64;
        let writing = tokio::task::spawn_blocking(move || {
            let r = file.write_all(&buffer).and_then(|()| if sync { file.sync_data() } else { Ok(()) });
            (file, r, buffer)
        });
        self.writing = Some((writing, len));
        Ok(())
    }
}

/// Appends a value's line (without the newline) to `out`.
fn write_line(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => out.extend_from_slice(s.as_bytes()),
        Value::Bytes(b) => out.extend_from_slice(String::from_utf8_lossy(b).as_bytes()),
        Value::Null => out.extend_from_slice(b"null"),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

#[async_trait]
impl SinkTask for FileStreamSinkTask {
    async fn start(&mut self, props: &Props, _context: &SinkTaskContext) -> Result<(), TaskError> {
        let config = config_def().parse(props)?;
        self.path = PathBuf::from(config.require_string("file")?);
        let path = self.path.clone();
        let (file, stored) = tokio::task::spawn_blocking(move || -> Result<(File, SinkOffsets), TaskError> {
            let stored = SinkOffsets::load(&path).map_err(TaskError::fatal)?;
            let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_error(&path, e))?;
            let len = file.metadata().map_err(|e| io_error(&path, e))?.len();
            if len > stored.length {
                // Lines written after the last flush: they will be delivered again.
                warn!(file = %path.display(), len, flushed = stored.length, "cutting unflushed lines");
                file.set_len(stored.length).map_err(|e| io_error(&path, e))?;
                file.sync_all().map_err(|e| io_error(&path, e))?;
            } else if len < stored.length {
                warn!(file = %path.display(), len, flushed = stored.length, "file is shorter than at the last flush");
            }
            Ok((file, stored))
        })
        .await
        .map_err(|e| TaskError::fatal(format!("file sink start: {e}")))??;
        self.written = file.metadata().map_err(|e| io_error(&self.path, e))?.len();
        self.file = Some(file);
        self.offsets = stored.offsets;
        info!(file = %self.path.display(), partitions = self.offsets.len(), "file sink started");
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), TaskError> {
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(WRITE_CHUNK + WRITE_CHUNK / 4);
        }
        // The last offset written of the partition of the current run of
        // records (a poll returns each partition's records together).
        let mut written_up_to: Option<i64> = None;
        let mut run_starts = true;
        for (n, r) in records.iter().enumerate() {
            if run_starts {
                written_up_to = self.offsets.get(&r.original).copied();
            }
            run_starts = records.get(n + 1).is_none_or(|next| next.original != r.original);
            if written_up_to.is_some_and(|last| r.offset <= last) {
                continue; // written before a crash: a replay
            }
            write_line(&mut self.buffer, &r.record.value);
            self.buffer.push(b'\n');
            self.dirty = true;
            // Note the offset at the last record of each run of one partition.
            if run_starts {
                self.offsets.insert(r.original.clone(), r.offset);
            }
        }
        // Written now (in the background), not held back until the next
        // flush: a sink that has caught up shows its lines at once.
        if !self.buffer.is_empty() {
            self.start_write(false).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), TaskError> {
        if !self.dirty {
            return Ok(());
        }
        self.start_write(true).await?;
        self.finish_write().await?;
        self.dirty = false;
        let stored = SinkOffsets { length: self.written, offsets: self.offsets.clone() };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || stored.store(&path).map_err(|e| io_error(&path, e)))
            .await
            .map_err(|e| TaskError::fatal(format!("file sink flush: {e}")))?
    }

    async fn stop(&mut self) {
        let _ = self.finish_write().await;
        self.file = None;
    }
}
