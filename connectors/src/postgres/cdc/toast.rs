//! `toast.fill`: unchanged TOASTed values filled from the last row image
//! emitted for the key, instead of Debezium's placeholder.
//!
//! PostgreSQL does not send a value stored out of line (TOASTed, over
//! ~2 kB) when an UPDATE leaves it alone: pgoutput marks it `u`. Debezium
//! then emits `unavailable.value.placeholder`. With `toast.fill=true` this
//! connector keeps the last row image it emitted per key in a RocksDB
//! store under the worker's `state.dir`, and fills such values from it.
//!
//! # Exact after a crash
//!
//! After a crash the stream sends again every change after the last
//! stored offset, so the store may already hold images of changes that
//! are about to be sent again. Filling them from the newest image would be
//! wrong (a later value in an earlier event). So images are versions: a
//! change is filled from the newest image *before* it, never after, and a
//! re-sent change writes the same version again. Versions are pruned only
//! once the worker has stored the records past them (the flush position),
//! keeping per key the newest image at or below that point.
//!
//! # Layout
//!
//! ```text
//! key   = table u16 len | table (schema.name, UTF-8) | row key u32 len | row key | version
//! row key = per primary-key column: 0 (null) | 1 + u32 len + text
//! version = commit LSN u64 BE | change LSN u64 BE  (a snapshot row: consistent point | 0)
//! value = ncols u16 | ncols × (name u16 len | name | kind u8 | [u32 len | bytes])
//!         kind: 0 null, 1 text, 2 binary, 3 unavailable (no value known)
//! ```
//!
//! Big-endian versions sort in commit order inside a key's prefix, so the
//! image before a change is one `seek_for_prev`.
//!
//! RocksDB calls run on the reader task: they touch the memtable and the
//! block cache, and this store is opt-in; the writes go to RocksDB's WAL
//! without fsync, which survives a kill -9 of the worker. A store lost
//! with its machine only costs placeholders (logged once).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, DB};
use tracing::warn;

use super::pgoutput::Datum;
use crate::postgres::conn::PgError;
use crate::postgres::lsn::Lsn;

/// Where a row image sits in commit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    /// The transaction's commit LSN (a snapshot's consistent point).
    pub(crate) commit: Lsn,
    /// The change's own LSN (0 for snapshot rows).
    pub(crate) change: Lsn,
}

impl Version {
    fn bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.commit.0.to_be_bytes());
        out[8..].copy_from_slice(&self.change.0.to_be_bytes());
        out
    }

    /// The version just before this one (the newest a fill may read).
    fn predecessor(self) -> Option<Version> {
        match (self.commit.0, self.change.0) {
            (0, 0) => None,
            (c, 0) => Some(Version { commit: Lsn(c - 1), change: Lsn(u64::MAX) }),
            (c, l) => Some(Version { commit: Lsn(c), change: Lsn(l - 1) }),
        }
    }
}

/// A store failure, with what the store was doing.
#[derive(Debug, thiserror::Error)]
#[error("toast.fill store at {path}: {op}: {source}")]
pub(crate) struct ToastError {
    path: PathBuf,
    op: &'static str,
    source: rocksdb::Error,
}

impl From<ToastError> for PgError {
    fn from(e: ToastError) -> PgError {
        PgError::LocalState(e.to_string())
    }
}

/// Versions to prune once the flush position passes their commit.
struct Pending {
    commit: Lsn,
    prefix: Vec<u8>,
    /// Prune below this version (or through it, for a deleted row).
    version: Version,
    deleted: bool,
}

/// The last emitted row images per key, versioned in commit order.
pub(crate) struct ToastStore {
    db: DB,
    path: PathBuf,
    /// In commit order; bounded by the records not yet stored by the
    /// worker (the task's queue and the worker's batches).
    pending: VecDeque<Pending>,
    warned_missing: bool,
}

impl std::fmt::Debug for ToastStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToastStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The row key of an image: its primary-key columns' text, or `None`
/// when a key column has no value in the image.
pub(crate) fn row_key(image: &[Datum], key_columns: &[usize]) -> Option<Vec<u8>> {
    if key_columns.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for &i in key_columns {
        match image.get(i)? {
            Datum::Null => out.push(0),
            Datum::Text(b) | Datum::Binary(b) => {
                out.push(1);
                out.extend_from_slice(&(b.len() as u32).to_be_bytes());
                out.extend_from_slice(b);
            }
            Datum::Unchanged => return None,
        }
    }
    Some(out)
}

fn prefix(table: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + table.len() + 4 + key.len() + 16);
    out.extend_from_slice(&(table.len() as u16).to_be_bytes());
    out.extend_from_slice(table.as_bytes());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

fn versioned(prefix: &[u8], version: Version) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&version.bytes());
    key
}

fn encode_image(names: &[&str], image: &[Datum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&(names.len() as u16).to_be_bytes());
    for (i, name) in names.iter().enumerate() {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        let (kind, bytes) = match image.get(i).unwrap_or(&Datum::Null) {
            Datum::Null => (0u8, None),
            Datum::Text(b) => (1, Some(b)),
            Datum::Binary(b) => (2, Some(b)),
            Datum::Unchanged => (3, None),
        };
        out.push(kind);
        if let Some(b) = bytes {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
    out
}

/// The value of column `wanted` in an encoded image; `None` when the
/// image does not have it (or is malformed).
fn image_value(encoded: &[u8], wanted: &str) -> Option<Datum> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let slice = encoded.get(at..at + n)?;
        at += n;
        Some(slice)
    };
    let count = u16::from_be_bytes(take(2)?.try_into().ok()?);
    for _ in 0..count {
        let len = u16::from_be_bytes(take(2)?.try_into().ok()?) as usize;
        let name = take(len)?;
        let matches = name == wanted.as_bytes();
        let kind = take(1)?[0];
        let datum = match kind {
            0 => Datum::Null,
            3 => Datum::Unchanged,
            1 | 2 => {
                let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
                let bytes = Bytes::copy_from_slice(take(len)?);
                if kind == 1 {
                    Datum::Text(bytes)
                } else {
                    Datum::Binary(bytes)
                }
            }
            _ => return None,
        };
        if matches {
            return Some(datum);
        }
    }
    None
}

impl ToastStore {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// When RocksDB cannot open the directory (held by another process,
    /// not writable, corrupt).
    pub(crate) fn open(dir: &Path) -> Result<ToastStore, ToastError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let db = DB::open(&options, dir).map_err(|source| ToastError {
            path: dir.to_path_buf(),
            op: "open",
            source,
        })?;
        Ok(ToastStore { db, path: dir.to_path_buf(), pending: VecDeque::new(), warned_missing: false })
    }

    fn fail(&self, op: &'static str) -> impl FnOnce(rocksdb::Error) -> ToastError + '_ {
        move |source| ToastError { path: self.path.clone(), op, source }
    }

    /// Replaces the unchanged values of `image` (columns named `names`)
    /// with their values in the newest image of the row before `version`.
    /// Values not found stay unchanged (the placeholder); returns how many.
    ///
    /// # Errors
    /// A RocksDB read error.
    pub(crate) fn fill(
        &mut self,
        table: &str,
        key: &[u8],
        version: Version,
        names: &[&str],
        image: &mut [Datum],
    ) -> Result<usize, ToastError> {
        if !image.contains(&Datum::Unchanged) {
            return Ok(0);
        }
        let prefix = prefix(table, key);
        let previous = match version.predecessor() {
            Some(before) => {
                let mut iter = self.db.raw_iterator();
                iter.seek_for_prev(versioned(&prefix, before));
                iter.status().map_err(self.fail("read"))?;
                match (iter.key(), iter.value()) {
                    (Some(k), Some(v)) if k.len() == prefix.len() + 16 && k.starts_with(&prefix) => {
                        Some(v.to_vec())
                    }
                    _ => None,
                }
            }
            None => None,
        };
        let mut missing = 0;
        for (i, datum) in image.iter_mut().enumerate() {
            if *datum != Datum::Unchanged {
                continue;
            }
            match previous.as_deref().and_then(|p| image_value(p, names.get(i).copied().unwrap_or(""))) {
                Some(value) if value != Datum::Unchanged => *datum = value,
                _ => missing += 1,
            }
        }
        if missing > 0 && !self.warned_missing {
            self.warned_missing = true;
            warn!(
                table,
                store = %self.path.display(),
                "toast.fill: no earlier image of a row whose TOASTed value was unchanged (captured before this \
                 store existed, or the store was lost); sent as unavailable.value.placeholder (logged once)"
            );
        }
        Ok(missing)
    }

    /// Keeps `image` as the row's image at `version`.
    ///
    /// # Errors
    /// A RocksDB write error.
    pub(crate) fn record(
        &mut self,
        table: &str,
        key: &[u8],
        version: Version,
        names: &[&str],
        image: &[Datum],
    ) -> Result<(), ToastError> {
        let prefix = prefix(table, key);
        self.db.put(versioned(&prefix, version), encode_image(names, image)).map_err(self.fail("write"))?;
        // A snapshot row is a key's first image (the store is cleared when
        // a snapshot starts): nothing older to prune.
        if version.change != Lsn(0) {
            self.pending.push_back(Pending { commit: version.commit, prefix, version, deleted: false });
        }
        Ok(())
    }

    /// Forgets every image: a snapshot starts a new baseline.
    ///
    /// # Errors
    /// A RocksDB write error.
    pub(crate) fn clear(&mut self) -> Result<(), ToastError> {
        self.pending.clear();
        // Keys start with the table name's u16 length: no key starts with
        // 0xFFFF (PostgreSQL names are at most 63 bytes).
        let mut batch = WriteBatch::default();
        batch.delete_range(&[][..], &[0xFF, 0xFF][..]);
        self.db.write(batch).map_err(self.fail("clear"))
    }

    /// Whether images wait for the worker to store their records.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The row was deleted at `version`: its images go once that is stored.
    pub(crate) fn deleted(&mut self, table: &str, key: &[u8], version: Version) {
        self.pending.push_back(Pending {
            commit: version.commit,
            prefix: prefix(table, key),
            version,
            deleted: true,
        });
    }

    /// The worker stored every record of the transactions that committed
    /// before `flushed`: drops the images no change can need any more.
    ///
    /// # Errors
    /// A RocksDB write error.
    pub(crate) fn prune(&mut self, flushed: Lsn) -> Result<(), ToastError> {
        // The newest stored version per row: one pass over each row's
        // versions however many changes it had.
        let mut newest: std::collections::HashMap<Vec<u8>, (Version, bool)> =
            std::collections::HashMap::new();
        while self.pending.front().is_some_and(|p| p.commit < flushed) {
            let p = self.pending.pop_front().expect("checked");
            let entry = newest.entry(p.prefix).or_insert((p.version, p.deleted));
            if p.version >= entry.0 {
                *entry = (p.version, p.deleted);
            }
        }
        let mut batch = WriteBatch::default();
        for (prefix, (version, deleted)) in newest {
            let start = versioned(&prefix, Version { commit: Lsn(0), change: Lsn(0) });
            let end = version.bytes();
            for item in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
                let (k, _) = item.map_err(self.fail("prune"))?;
                if k.len() != prefix.len() + 16 || !k.starts_with(&prefix) {
                    break;
                }
                let v = &k[prefix.len()..];
                if v < &end[..] || (deleted && v == &end[..]) {
                    batch.delete(&k);
                } else {
                    break;
                }
            }
        }
        if !batch.is_empty() {
            self.db.write(batch).map_err(self.fail("prune"))?;
        }
        Ok(())
    }

    /// How many images the store holds (tests and diagnostics).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.db.iterator(IteratorMode::Start).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Datum {
        Datum::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn v(commit: u64, change: u64) -> Version {
        Version { commit: Lsn(commit), change: Lsn(change) }
    }

    const NAMES: [&str; 3] = ["id", "title", "body"];

    #[test]
    fn an_unchanged_value_is_filled_from_the_image_before_the_change_never_a_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ToastStore::open(dir.path()).unwrap();
        let key = row_key(&[text("1")], &[0]).unwrap();
        store.record("public.docs", &key, v(100, 0), &NAMES, &[text("1"), text("a"), text("A")]).unwrap();
        store.record("public.docs", &key, v(300, 250), &NAMES, &[text("1"), text("b"), text("B")]).unwrap();
        // A change between the two (sent again after a crash) sees A, not B.
        let mut image = [text("1"), text("c"), Datum::Unchanged];
        assert_eq!(store.fill("public.docs", &key, v(200, 150), &NAMES, &mut image).unwrap(), 0);
        assert_eq!(image[2], text("A"));
        // One after both sees B; the change at exactly (300, 250) sees A.
        let mut image = [text("1"), text("c"), Datum::Unchanged];
        store.fill("public.docs", &key, v(400, 350), &NAMES, &mut image).unwrap();
        assert_eq!(image[2], text("B"));
        let mut image = [text("1"), text("c"), Datum::Unchanged];
        store.fill("public.docs", &key, v(300, 250), &NAMES, &mut image).unwrap();
        assert_eq!(image[2], text("A"));
        // Another key, or another table, has nothing.
        let other = row_key(&[text("2")], &[0]).unwrap();
        let mut image = [text("2"), text("c"), Datum::Unchanged];
        assert_eq!(store.fill("public.docs", &other, v(400, 350), &NAMES, &mut image).unwrap(), 1);
        assert_eq!(image[2], Datum::Unchanged);
        let mut image = [text("1"), text("c"), Datum::Unchanged];
        assert_eq!(store.fill("public.docs2", &key, v(400, 350), &NAMES, &mut image).unwrap(), 1);
    }

    #[test]
    fn columns_are_matched_by_name_so_a_schema_change_keeps_filling() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ToastStore::open(dir.path()).unwrap();
        let key = row_key(&[text("1")], &[0]).unwrap();
        store.record("public.docs", &key, v(100, 0), &NAMES, &[text("1"), text("a"), text("A")]).unwrap();
        // A column was added before `body`.
        let names = ["id", "title", "extra", "body"];
        let mut image = [text("1"), text("a"), Datum::Null, Datum::Unchanged];
        store.fill("public.docs", &key, v(200, 150), &names, &mut image).unwrap();
        assert_eq!(image[3], text("A"));
    }

    #[test]
    fn pruning_keeps_the_newest_stored_image_and_drops_deleted_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ToastStore::open(dir.path()).unwrap();
        let key = row_key(&[text("1")], &[0]).unwrap();
        for (i, body) in ["A", "B", "C"].iter().enumerate() {
            let commit = 100 * (i as u64 + 1);
            store
                .record(
                    "public.docs",
                    &key,
                    v(commit, commit - 10),
                    &NAMES,
                    &[text("1"), text("t"), text(body)],
                )
                .unwrap();
        }
        // Nothing is stored by the worker yet: all three stay.
        store.prune(Lsn(100)).unwrap();
        assert_eq!(store.len(), 3);
        // The first two transactions are stored: only C and B... B is the
        // newest at or below the flush point, so A goes.
        store.prune(Lsn(250)).unwrap();
        assert_eq!(store.len(), 2);
        let mut image = [text("1"), text("t"), Datum::Unchanged];
        store.fill("public.docs", &key, v(250, 240), &NAMES, &mut image).unwrap();
        assert_eq!(image[2], text("B"));
        store.deleted("public.docs", &key, v(400, 390));
        store.prune(Lsn(1000)).unwrap();
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_snapshot_clears_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = ToastStore::open(dir.path()).unwrap();
        let key = row_key(&[text("1")], &[0]).unwrap();
        store.record("public.docs", &key, v(100, 90), &NAMES, &[text("1"), text("t"), text("A")]).unwrap();
        store.clear().unwrap();
        assert_eq!(store.len(), 0);
        assert!(!store.has_pending());
        store.record("public.docs", &key, v(200, 0), &NAMES, &[text("1"), text("t"), text("B")]).unwrap();
        assert!(!store.has_pending(), "snapshot rows are not pruned");
        let mut image = [text("1"), text("t"), Datum::Unchanged];
        store.fill("public.docs", &key, v(300, 290), &NAMES, &mut image).unwrap();
        assert_eq!(image[2], text("B"));
    }

    #[test]
    fn images_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = row_key(&[text("1"), Datum::Null], &[0, 1]).unwrap();
        {
            let mut store = ToastStore::open(dir.path()).unwrap();
            store.record("s.t", &key, v(100, 90), &NAMES, &[text("1"), Datum::Null, text("X")]).unwrap();
        }
        let mut store = ToastStore::open(dir.path()).unwrap();
        let mut image = [text("1"), Datum::Null, Datum::Unchanged];
        store.fill("s.t", &key, v(200, 190), &NAMES, &mut image).unwrap();
        assert_eq!(image[2], text("X"));
    }

    #[test]
    fn a_row_key_needs_every_key_column() {
        assert_eq!(row_key(&[Datum::Unchanged], &[0]), None);
        assert_eq!(row_key(&[text("1")], &[]), None);
        assert_eq!(row_key(&[text("1")], &[1]), None);
        assert_ne!(row_key(&[text("1"), text("2")], &[0, 1]), row_key(&[text("12"), text("")], &[0, 1]));
    }
}
