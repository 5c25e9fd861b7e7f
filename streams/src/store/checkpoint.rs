//! A task's checkpoint file: the changelog offset up to which its stores
//! hold the changelog's content.
//!
//! # Layout
//!
//! Kafka's `OffsetCheckpoint` text format, UTF-8, `\n` line ends:
//!
//! ```text
//! 0                              <- version
//! 2                              <- number of entries
//! app-counts-changelog 3 1042    <- topic, partition, offset (space separated)
//! app-totals-changelog 3 77
//! ```
//!
//! The offset is the next changelog offset to restore from. Writes go to
//! `.checkpoint.tmp`, are fsynced, renamed over `.checkpoint`, and the
//! directory is fsynced, so a crash leaves the old or the new file.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::Path;

use crate::StreamsError;

/// Changelog topic-partition → offset.
pub(crate) type Offsets = HashMap<(String, i32), i64>;

const VERSION: &str = "0";

fn error(path: &Path, reason: impl Into<String>) -> StreamsError {
    StreamsError::Checkpoint { path: path.to_path_buf(), reason: reason.into() }
}

/// Reads `path`; a missing file is an empty checkpoint.
pub(crate) fn read(path: &Path) -> Result<Offsets, StreamsError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Offsets::new()),
        Err(e) => return Err(error(path, format!("cannot read: {e}"))),
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, VERSION)) => {}
        Some((n, other)) => return Err(error(path, format!("line {n}: unsupported version {other:?}"))),
        None => return Err(error(path, "empty file")),
    }
    let (n, count) = lines.next().ok_or_else(|| error(path, "line 2: missing entry count"))?;
    let count: usize =
        count.parse().map_err(|_| error(path, format!("line {n}: {count:?} is not an entry count")))?;
    let mut offsets = Offsets::with_capacity(count);
    for (n, line) in lines.by_ref().take(count) {
        let fields: Vec<&str> = line.split(' ').collect();
        let [topic, partition, offset] = fields[..] else {
            return Err(error(path, format!("line {n}: expected \"topic partition offset\", got {line:?}")));
        };
        let partition =
            partition.parse().map_err(|_| error(path, format!("line {n}: bad partition {partition:?}")))?;
        let offset: i64 =
            offset.parse().map_err(|_| error(path, format!("line {n}: bad offset {offset:?}")))?;
        if topic.is_empty() || offset < 0 {
            return Err(error(path, format!("line {n}: invalid entry {line:?}")));
        }
        offsets.insert((topic.to_string(), partition), offset);
    }
    if offsets.len() != count {
        return Err(error(path, format!("expected {count} entries, found {}", offsets.len())));
    }
    if let Some((n, extra)) = lines.find(|(_, l)| !l.is_empty()) {
        return Err(error(path, format!("line {n}: unexpected content {extra:?} after {count} entries")));
    }
    Ok(offsets)
}

/// Replaces `path` atomically with `offsets` (sorted, for stable files).
pub(crate) fn write(path: &Path, offsets: &Offsets) -> Result<(), StreamsError> {
    let mut entries: Vec<_> = offsets.iter().collect();
    entries.sort();
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for ((topic, partition), offset) in entries {
        if topic.is_empty() || topic.contains(char::is_whitespace) {
            return Err(error(path, format!("topic name {topic:?} cannot be checkpointed")));
        }
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    let tmp = path.with_extension("tmp");
    let io = |op: &str, e: std::io::Error| error(path, format!("cannot {op}: {e}"));
    let mut file = File::create(&tmp).map_err(|e| io("create temporary file", e))?;
    file.write_all(text.as_bytes()).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("fsync", e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| io("rename temporary file", e))?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("fsync directory", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".checkpoint");
        assert!(read(&path).unwrap().is_empty());
        let offsets: Offsets =
            [(("app-a-changelog".to_string(), 3), 1042), (("app-b-changelog".to_string(), 0), 0)].into();
        write(&path, &offsets).unwrap();
        assert_eq!(read(&path).unwrap(), offsets);
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n2\napp-a-changelog 3 1042\napp-b-changelog 0 0\n");
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn corrupt_checkpoint_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".checkpoint");
        for (text, reason) in [
            ("0\n1\napp-a-changelog 3 x\n", "line 3: bad offset \"x\""),
            ("1\n0\n", "line 1: unsupported version \"1\""),
            ("0\n2\napp-a-changelog 3 1\n", "expected 2 entries, found 1"),
            ("0\nmany\n", "line 2: \"many\" is not an entry count"),
            ("", "empty file"),
        ] {
            fs::write(&path, text).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert_eq!(err, format!("checkpoint file {}: {reason}", path.display()));
        }
    }
}
