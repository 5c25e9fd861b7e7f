//! The persisted topic registry: `<data dir>/topics.json`.
//!
//! ```json
//! {"version": 1, "topics": [{"name": "clicks", "partitions": 8, "configs": {"retention.ms": "86400000"}}]}
//! ```
//!
//! Written atomically: a temp file is written and fsynced, renamed over the
//! old one, and the directory fsynced, so a crash leaves either the old or the
//! new registry, never a torn one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::log::sync_dir;
use crate::{Error, Result};

/// File name of the registry inside the data directory.
pub const METADATA_FILE: &str = "topics.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicRecord {
    pub(crate) name: String,
    pub(crate) partitions: i32,
    #[serde(default)]
    pub(crate) configs: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataFile {
    version: u32,
    topics: Vec<TopicRecord>,
}

/// Reads the registry; a missing file is an empty registry.
pub(crate) fn load(dir: &Path) -> Result<Vec<TopicRecord>> {
    let path = dir.join(METADATA_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", &path)(e)),
    };
    let file: MetadataFile = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        path: path.clone(),
        position: 0,
        reason: format!("topic registry does not parse: {e}"),
    })?;
    if file.version != VERSION {
        return Err(Error::Corrupt {
            path,
            position: 0,
            reason: format!("unsupported topic registry version {} (expected {VERSION})", file.version),
        });
    }
    Ok(file.topics)
}

/// Replaces the registry atomically.
pub(crate) fn store(dir: &Path, topics: Vec<TopicRecord>) -> Result<()> {
    let path = dir.join(METADATA_FILE);
    let tmp = dir.join(format!("{METADATA_FILE}.tmp"));
    let body =
        serde_json::to_vec_pretty(&MetadataFile { version: VERSION, topics }).expect("registry serializes");
    let mut file = std::fs::File::create(&tmp).map_err(Error::io("create", &tmp))?;
    file.write_all(&body).map_err(Error::io("write", &tmp))?;
    file.sync_all().map_err(Error::io("fsync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
    sync_dir(dir)
}
