//! [`RocksStore`]: one RocksDB instance holding one store's keys and values
//! as bytes, optionally split into time segments.
//!
//! # Segments (window and session stores)
//!
//! A segmented store splits time into ranges of `interval` milliseconds,
//! placed by the time in each key ([`KeyTime`]), and stores each key under
//! its segment's id: `segment id (8 bytes, ordered) ‖ key`, all in one
//! column family. The store tracks the largest time it was written (its
//! observed stream time); segments whose whole range lies before
//! `observed - retention` are removed with one range delete, so expiring
//! old windows costs no per-key deletes (Kafka's segmented bytes store).
//! Writes into a removed range are skipped.
//!
//! An earlier layout kept each segment in a column family of its own; but
//! RocksDB rewrites and syncs its OPTIONS file on every column family
//! created or dropped, which took a third of a stream-stream join's time
//! when event time moved fast. Stores of that layout are converted when
//! opened.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use tokio::sync::Notify;

use rocksdb::{
    BlockBasedOptions, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::store::memory::SharedMemory;
use crate::store::Entries;
use crate::window::KeyTime;
use crate::StreamsError;

/// How a window or session store splits its keys by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segmenting {
    /// Milliseconds per segment.
    pub(crate) interval: i64,
    /// How long a key is kept after its time, in milliseconds.
    pub(crate) retention: i64,
    /// Where the time sits in a key.
    pub(crate) time: KeyTime,
    /// Whether this is a stream-stream join's window store. It is read by
    /// ranges only, so it keeps no bloom filter (the filter answers point
    /// lookups only, and building it cost its flushes). (Its entries past
    /// the retention are left out earlier, by the window cache's flush.)
    pub(crate) join: bool,
}

impl Segmenting {
    /// Kafka's choice: half the retention, at least a minute.
    pub(crate) fn new(retention: i64, time: KeyTime) -> Self {
        Segmenting { interval: (retention / 2).max(60_000), retention, time, join: false }
    }

    /// The same, for a stream-stream join's window store.
    pub(crate) fn for_join(self) -> Self {
        Segmenting { join: true, ..self }
    }

    fn segment_id(&self, time: i64) -> i64 {
        time.div_euclid(self.interval)
    }

    /// The times a range from `from` to `to` can hold, when both bounds
    /// are keys of one record key (the same bytes before the time part):
    /// a key's entries are in time order, so the range holds only times
    /// between the two bounds'. `None` when the bounds span several keys.
    fn time_span(&self, from: &[u8], to: Option<&[u8]>) -> Option<(i64, i64)> {
        let to = to?;
        let suffix = match self.time {
            KeyTime::WindowStart => 12,
            KeyTime::SessionEnd => 16,
        };
        if from.len() != to.len()
            || from.len() < suffix
            || from[..from.len() - suffix] != to[..to.len() - suffix]
        {
            return None;
        }
        Some((self.time.of(from)?, self.time.of(to)?))
    }
}

/// The segments of a segmented store.
struct Segments {
    spec: Segmenting,
    /// Largest key time written.
    observed: i64,
    /// Segments before this id have been removed.
    removed_below: i64,
    /// The newest segment written, if any.
    newest: Option<i64>,
}

impl Segments {
    /// The smallest segment id still live at the observed time.
    fn min_live(&self) -> i64 {
        self.spec.segment_id(self.observed.saturating_sub(self.spec.retention))
    }
}

/// The stored key of `key` in segment `id`.
fn segment_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    segment_key_into(&mut out, id, key);
    out
}

/// Replaces `out` with the stored key of `key` in segment `id`.
fn segment_key_into(out: &mut Vec<u8>, id: i64, key: &[u8]) {
    out.clear();
    out.extend_from_slice(&crate::store::ordered_time(id));
    out.extend_from_slice(key);
}

/// The segment id of a stored key.
fn segment_of(stored: &[u8]) -> Option<i64> {
    crate::store::ordered_time_of(stored.get(..8)?)
}

/// A byte-level key-value store in its own RocksDB directory.
///
/// The write-ahead log is off, as in Kafka Streams: the changelog topic is
/// the store's durable log, and [`RocksStore::flush`] persists memtables
/// before a checkpoint claims their content.
pub(crate) struct RocksStore {
    name: String,
    path: PathBuf,
    db: DB,
    write_options: WriteOptions,
    /// Time segments, for window and session stores.
    segments: Option<Segments>,
    /// Keeps the shared block cache alive while the store is open.
    #[cfg_attr(not(test), allow(dead_code, reason = "held, not read"))]
    memory: Arc<SharedMemory>,
    /// The directory's claim in this process; declared last, so it is
    /// released after RocksDB has closed (and its lock file is free).
    _claim: DirectoryClaim,
}

/// Store directories open in this process.
static OPEN_DIRECTORIES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Woken whenever a store directory of this process is released.
static RELEASED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// A store directory's claim in this process: a second open of the same
/// directory fails at once with [`StreamsError::StoreLocked`] (a typed
/// error, not RocksDB's lock message), and dropping the claim wakes whoever
/// waits on [`store_released`].
#[derive(Debug)]
struct DirectoryClaim(PathBuf);

impl DirectoryClaim {
    fn acquire(path: &Path) -> Option<Self> {
        let mut open = OPEN_DIRECTORIES.lock().unwrap_or_else(PoisonError::into_inner);
        open.insert(path.to_path_buf()).then(|| DirectoryClaim(path.to_path_buf()))
    }
}

impl Drop for DirectoryClaim {
    fn drop(&mut self) {
        OPEN_DIRECTORIES.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.0);
        RELEASED.notify_waiters();
    }
}

/// Notified each time a store directory of this process is released. To
/// wait without missing a release, enable a `notified()` future before
/// trying to open.
pub(crate) fn store_released() -> &'static Notify {
    &RELEASED
}

impl RocksStore {
    /// Opens (creating if needed) the store `name` in directory `path`,
    /// charging its memory to `memory`.
    #[cfg(test)]
    pub(crate) fn open(name: &str, path: &Path, memory: Arc<SharedMemory>) -> Result<Self, StreamsError> {
        Self::open_segmented(name, path, memory, None)
    }

    /// Opens the store `name` in `path`; with `segmenting`, keys go to time
    /// segments (see the module docs). Existing segments are found on disk.
    pub(crate) fn open_segmented(
        name: &str,
        path: &Path,
        memory: Arc<SharedMemory>,
        segmenting: Option<Segmenting>,
    ) -> Result<Self, StreamsError> {
        let fail = |op, reason: String| StreamsError::Store {
            store: name.to_string(),
            path: path.to_path_buf(),
            op,
            reason,
        };
        std::fs::create_dir_all(path).map_err(|e| fail("create directory", e.to_string()))?;
        let claim = DirectoryClaim::acquire(path)
            .ok_or_else(|| StreamsError::StoreLocked { store: name.to_string(), path: path.to_path_buf() })?;
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&memory.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_top_level_index_and_filter(true);
        // Aggregations look up keys they have never seen (a new window, a
        // new key): a bloom filter answers most of those without reading
        // data blocks, as Kafka Streams' RocksDB config does.
        if segmenting.is_none_or(|s| !s.join) {
            table.set_bloom_filter(10.0, false);
        }
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_block_based_table_factory(&table);
        options.set_write_buffer_manager(&memory.write_buffers);
        // Flushes and the first compaction write uncompressed (most of a
        // window store's data is deleted by then); LZ4 below.
        let lz4 = rocksdb::DBCompressionType::Lz4;
        let none = rocksdb::DBCompressionType::None;
        options.set_compression_per_level(&[none, none, lz4, lz4, lz4, lz4, lz4]);
        options.set_max_open_files(256);
        let existing = if path.join("CURRENT").exists() {
            DB::list_cf(&options, path).map_err(|e| fail("list column families", e.to_string()))?
        } else {
            Vec::new()
        };
        let mut db = if existing.is_empty() {
            DB::open(&options, path)
        } else {
            DB::open_cf(&options, path, &existing)
        }
        .map_err(|e| fail("open", e.to_string()))?;
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        let segments = match segmenting {
            None => None,
            Some(spec) => {
                convert_segment_families(&mut db, &existing, spec, &write_options)
                    .map_err(|e| fail("convert segment column families", e.to_string()))?;
                // The observed time restarts at the newest segment's start
                // (a lower bound): expiry is at most one segment late after
                // a reopen.
                let mut first = db.iterator(IteratorMode::Start);
                let oldest = first.next().transpose().map_err(|e| fail("open", e.to_string()))?;
                let mut last = db.iterator(IteratorMode::End);
                let newest = last.next().transpose().map_err(|e| fail("open", e.to_string()))?;
                let newest = newest.and_then(|(k, _)| segment_of(&k));
                let oldest = oldest.and_then(|(k, _)| segment_of(&k));
                Some(Segments {
                    spec,
                    observed: newest.map_or(i64::MIN, |id| id.saturating_mul(spec.interval)),
                    removed_below: oldest.unwrap_or(i64::MIN),
                    newest,
                })
            }
        };
        Ok(RocksStore {
            name: name.to_string(),
            path: path.to_path_buf(),
            db,
            write_options,
            segments,
            memory,
            _claim: claim,
        })
    }

    fn error(&self, op: &'static str, e: rocksdb::Error) -> StreamsError {
        StreamsError::Store { store: self.name.clone(), path: self.path.clone(), op, reason: e.to_string() }
    }

    /// The store's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The store's directory.
    #[cfg_attr(not(test), allow(dead_code, reason = "for tests and the runtime's logs"))]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The memory bound this store is charged to.
    #[cfg_attr(not(test), allow(dead_code, reason = "for tests and the runtime's metrics"))]
    pub(crate) fn memory(&self) -> &Arc<SharedMemory> {
        &self.memory
    }

    /// The value of `key`, if any.
    /// Calls `read` with the stored value of `key` (`None` when absent)
    /// without copying it out of RocksDB (key-value stores; a segmented
    /// store copies).
    pub(crate) fn read<T>(
        &self,
        key: &[u8],
        read: impl FnOnce(Option<&[u8]>) -> Result<T, StreamsError>,
    ) -> Result<T, StreamsError> {
        let Some(segments) = &self.segments else {
            let pinned = self.db.get_pinned(key).map_err(|e| self.error("read", e))?;
            return read(pinned.as_deref());
        };
        let Some(id) = live_segment(segments, key) else { return read(None) };
        // The stored key is built on the stack when it fits (every read of
        // a windowed aggregation comes here).
        let mut buffer = [0u8; 128];
        let heap;
        let stored: &[u8] = if key.len() + 8 <= buffer.len() {
            buffer[..8].copy_from_slice(&crate::store::ordered_time(id));
            buffer[8..8 + key.len()].copy_from_slice(key);
            &buffer[..8 + key.len()]
        } else {
            heap = segment_key(id, key);
            &heap
        };
        let pinned = self.db.get_pinned(stored).map_err(|e| self.error("read", e))?;
        read(pinned.as_deref())
    }

    /// The value of `key`, if any.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        self.read(key, |value| Ok(value.map(<[u8]>::to_vec)))
    }

    /// Writes puts (`Some`) and deletes (`None`) atomically. In a segmented
    /// store, keys are placed by their time; keys older than the retention
    /// are skipped, and segments that fell out of it are dropped after the
    /// write.
    pub(crate) fn write<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), StreamsError> {
        if self.segments.is_none() {
            let mut batch = WriteBatch::default();
            for (key, value) in entries {
                match value {
                    Some(value) => batch.put(key, value),
                    None => batch.delete(key),
                }
            }
            return self.db.write_opt(batch, &self.write_options).map_err(|e| self.error("write", e));
        }
        let entries: Vec<_> = entries.into_iter().collect();
        // Sized up front (key, value, segment prefix, tag and lengths): a
        // batch grown by appends copied itself over and over, a twentieth
        // of a join thread's time.
        let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len) + 24).sum();
        let mut batch = WriteBatch::with_capacity_bytes(bytes + 64);
        let mut segments = self.segments.take().expect("checked above");
        let result = self.write_segmented(&mut segments, &mut batch, &entries);
        self.segments = Some(segments);
        result
    }

    fn write_segmented(
        &mut self,
        segments: &mut Segments,
        batch: &mut WriteBatch,
        entries: &[(&[u8], Option<&[u8]>)],
    ) -> Result<(), StreamsError> {
        let times: Vec<Option<i64>> = entries.iter().map(|(k, _)| segments.spec.time.of(k)).collect();
        segments.observed = times.iter().flatten().fold(segments.observed, |a, &t| a.max(t));
        let min_live = segments.min_live();
        let mut stored = Vec::new();
        for (&(key, value), time) in entries.iter().zip(times) {
            let Some(time) = time else {
                return Err(StreamsError::Store {
                    store: self.name.clone(),
                    path: self.path.clone(),
                    op: "write",
                    reason: format!("key of {} bytes holds no window time", key.len()),
                });
            };
            let id = segments.spec.segment_id(time);
            if id < min_live {
                continue;
            }
            segments.newest = segments.newest.max(Some(id));
            segment_key_into(&mut stored, id, key);
            match value {
                Some(value) => batch.put(&stored, value),
                None => batch.delete(&stored),
            }
        }
        // Segments that fell out of the retention go in one range delete.
        if segments.newest.is_some() && segments.removed_below < min_live {
            let from = crate::store::ordered_time(segments.removed_below);
            batch.delete_range(from, crate::store::ordered_time(min_live));
            segments.removed_below = min_live;
        }
        let batch = std::mem::take(batch);
        self.db.write_opt(batch, &self.write_options).map_err(|e| self.error("write", e))
    }

    /// Starts of the segments that hold keys, oldest first (empty for a
    /// plain store).
    #[cfg_attr(not(test), allow(dead_code, reason = "for tests"))]
    pub(crate) fn segment_starts(&self) -> Vec<i64> {
        let Some(segments) = &self.segments else { return Vec::new() };
        let mut starts: Vec<i64> = Vec::new();
        for (key, _) in self.range_of_segments(segments, &[], None).unwrap_or_default() {
            let Some(time) = segments.spec.time.of(&key) else { continue };
            let start = segments.spec.segment_id(time) * segments.spec.interval;
            if !starts.contains(&start) {
                starts.push(start);
            }
        }
        starts
    }

    /// The end of the newest segment written: no key time of the store is
    /// at or after it. `None` for an empty or plain store.
    pub(crate) fn segments_end(&self) -> Option<i64> {
        let segments = self.segments.as_ref()?;
        Some(segments.newest?.saturating_add(1).saturating_mul(segments.spec.interval))
    }

    /// Every key and value, in key-byte order (segment by segment for a
    /// segmented store).
    pub(crate) fn all(&self) -> Result<Entries, StreamsError> {
        self.range(&[], None)
    }

    /// Keys from `from` (inclusive) up to `to` (exclusive; `None` = no
    /// bound), with their values, in key order within each segment, older
    /// segments first.
    pub(crate) fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Entries, StreamsError> {
        match &self.segments {
            None => self.iterate(from, to),
            Some(segments) => self.range_of_segments(segments, from, to),
        }
    }

    /// Stored keys from `from` to `to` (exclusive; `None` = no bound).
    fn iterate(&self, from: &[u8], to: Option<&[u8]>) -> Result<Entries, StreamsError> {
        let mut options = ReadOptions::default();
        if let Some(to) = to {
            options.set_iterate_upper_bound(to.to_vec());
        }
        self.db
            .iterator_opt(IteratorMode::From(from, Direction::Forward), options)
            .map(|item| item.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(|e| self.error("iterate", e)))
            .collect()
    }

    /// A segmented store's keys from `from` to `to`, segment by segment,
    /// older segments first.
    fn range_of_segments(
        &self,
        segments: &Segments,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<Entries, StreamsError> {
        let Some(newest) = segments.newest else { return Ok(Vec::new()) };
        // Bounds on one key (`key ‖ time ‖ ...`, equal key parts) hold
        // times: only the segments of those times can match.
        let (low, high) = segments.spec.time_span(from, to).unwrap_or((i64::MIN, i64::MAX));
        let first = segments.spec.segment_id(low).max(segments.removed_below).max(segments.min_live());
        let last = segments.spec.segment_id(high).min(newest);
        let mut all = Vec::new();
        for id in first..=last {
            let upper = match to {
                Some(to) => segment_key(id, to),
                None => crate::store::ordered_time(id.saturating_add(1)).to_vec(),
            };
            for (stored, value) in self.iterate(&segment_key(id, from), Some(&upper))? {
                all.push((stored[8..].to_vec(), value));
            }
        }
        Ok(all)
    }

    /// Persists memtables to disk (needed before writing a checkpoint, since
    /// the write-ahead log is off).
    pub(crate) fn flush(&self) -> Result<(), StreamsError> {
        self.db.flush().map_err(|e| self.error("flush", e))
    }
}

/// The segment a key of a segmented store is stored in; `None` when that
/// segment was removed (or the key holds no time).
fn live_segment(segments: &Segments, key: &[u8]) -> Option<i64> {
    let id = segments.spec.segment_id(segments.spec.time.of(key)?);
    (id >= segments.removed_below.max(segments.min_live())).then_some(id)
}

/// Moves the keys of an earlier layout's segment column families
/// (`segment-<start>`) into the default one under their segment ids, and
/// drops those families.
fn convert_segment_families(
    db: &mut DB,
    existing: &[String],
    spec: Segmenting,
    write_options: &WriteOptions,
) -> Result<(), rocksdb::Error> {
    for name in existing.iter().filter(|n| n.starts_with("segment-")) {
        let mut batch = WriteBatch::default();
        if let Some(cf) = db.cf_handle(name) {
            for item in db.iterator_cf(cf, IteratorMode::Start) {
                let (key, value) = item?;
                if let Some(time) = spec.time.of(&key) {
                    batch.put(segment_key(spec.segment_id(time), &key), value);
                }
            }
        }
        db.write_opt(batch, write_options)?;
        db.flush()?;
        db.drop_cf(name)?;
    }
    Ok(())
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore").field("name", &self.name).field("path", &self.path).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, name: &str) -> RocksStore {
        RocksStore::open(name, &dir.join(name), SharedMemory::shared(64 << 20)).unwrap()
    }

    #[test]
    fn store_reopened_from_disk_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path(), "counts");
        store.write([(&b"a"[..], Some(&b"1"[..])), (b"b", Some(b"2")), (b"c", Some(b"3"))]).unwrap();
        store.write([(&b"b"[..], None)]).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = open(dir.path(), "counts");
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(b"b").unwrap(), None);
        assert_eq!(
            store.all().unwrap(),
            vec![(b"a".to_vec(), b"1".to_vec()), (b"c".to_vec(), b"3".to_vec())]
        );
    }

    #[test]
    fn stores_share_one_block_cache_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, b) = (open(dir.path(), "a"), open(dir.path(), "b"));
        assert!(Arc::ptr_eq(a.memory(), b.memory()));
        // A later, different size does not create a second bound while
        // stores are open.
        let c = RocksStore::open("c", &dir.path().join("c"), SharedMemory::shared(2 << 20)).unwrap();
        assert!(Arc::ptr_eq(a.memory(), c.memory()));
        // Memtables are charged to the shared cache.
        let before = a.memory().usage();
        let value = vec![7u8; 64 * 1024];
        for i in 0..64u32 {
            a.write([(&i.to_be_bytes()[..], Some(&value[..]))]).unwrap();
        }
        assert!(a.memory().usage() > before, "usage {} did not grow from {before}", a.memory().usage());
    }

    #[test]
    fn open_failure_names_the_store_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err =
            RocksStore::open("counts", &file.join("counts"), SharedMemory::shared(64 << 20)).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("state store counts at "), "{text}");
        assert!(text.contains("not-a-dir/counts: cannot create directory"), "{text}");
    }

    fn window_key(key: &[u8], start: i64) -> Vec<u8> {
        [key, &start.to_be_bytes(), &[0, 0, 0, 0]].concat()
    }

    #[test]
    fn segments_expire_by_retention_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Segmenting::new(120_000, KeyTime::WindowStart);
        assert_eq!(spec.interval, 60_000);
        let open = || {
            RocksStore::open_segmented("w", &dir.path().join("w"), SharedMemory::shared(64 << 20), Some(spec))
                .unwrap()
        };
        let mut store = open();
        let (a0, a1) = (window_key(b"a", 0), window_key(b"a", 61_000));
        store.write([(&a0[..], Some(&b"1"[..])), (&a1[..], Some(&b"2"[..]))]).unwrap();
        assert_eq!(store.segment_starts(), vec![0, 60_000]);
        assert_eq!(store.get(&a0).unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.range(b"a", None).unwrap().len(), 2);
        store.flush().unwrap();
        drop(store);
        let mut store = open();
        assert_eq!(store.get(&a1).unwrap(), Some(b"2".to_vec()), "reopened with its segments");
        // Time 185s: retention reaches back to 65s, so segment 0 (0..60s) goes.
        let late = window_key(b"b", 185_000);
        store.write([(&late[..], Some(&b"3"[..]))]).unwrap();
        assert_eq!(store.segment_starts(), vec![60_000, 180_000]);
        assert_eq!(store.get(&a0).unwrap(), None);
        // A write into the dropped range is skipped.
        store.write([(&a0[..], Some(&b"9"[..]))]).unwrap();
        assert_eq!(store.get(&a0).unwrap(), None);
        assert_eq!(store.all().unwrap(), vec![(a1, b"2".to_vec()), (late, b"3".to_vec())]);
        let err = store.write([(&b"short"[..], None)]).unwrap_err().to_string();
        assert!(err.ends_with("cannot write: key of 5 bytes holds no window time"), "{err}");
    }

    /// A store written by the earlier layout (a column family per segment)
    /// is converted when opened: its keys are read back, the families gone.
    #[test]
    fn a_store_of_segment_column_families_is_converted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let (a, b) = (window_key(b"a", 61_000), window_key(b"b", 125_000));
        {
            let mut options = Options::default();
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            let db = DB::open_cf(&options, &path, ["default", "segment-60000", "segment-120000"]).unwrap();
            db.put_cf(db.cf_handle("segment-60000").unwrap(), &a, b"1").unwrap();
            db.put_cf(db.cf_handle("segment-120000").unwrap(), &b, b"2").unwrap();
            db.flush_cf(db.cf_handle("segment-60000").unwrap()).unwrap();
            db.flush_cf(db.cf_handle("segment-120000").unwrap()).unwrap();
        }
        let spec = Segmenting::new(120_000, KeyTime::WindowStart);
        let store =
            RocksStore::open_segmented("w", &path, SharedMemory::shared(64 << 20), Some(spec)).unwrap();
        assert_eq!(store.get(&a).unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.all().unwrap(), vec![(a, b"1".to_vec()), (b, b"2".to_vec())]);
        assert_eq!(store.segment_starts(), vec![60_000, 120_000]);
        assert_eq!(store.segments_end(), Some(180_000));
        drop(store);
        assert_eq!(DB::list_cf(&Options::default(), &path).unwrap(), vec!["default"]);
    }

    /// A range over one key's times reads only the segments of those
    /// times, and finds the same entries as a scan of every segment.
    #[test]
    fn a_range_over_one_keys_times_reads_the_segments_of_those_times() {
        let spec = Segmenting::new(1_200_000, KeyTime::WindowStart);
        let span = |from: &[u8], to: &[u8]| spec.time_span(from, Some(to));
        assert_eq!(span(&window_key(b"k", 5), &window_key(b"k", 70_000)), Some((5, 70_000)));
        assert_eq!(span(&window_key(b"k", 5), &window_key(b"j", 70_000)), None, "two keys");
        assert_eq!(span(b"k", &window_key(b"k", 70_000)), None, "a prefix bound");
        assert_eq!(spec.time_span(&window_key(b"k", 5), None), None);

        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksStore::open_segmented(
            "w",
            &dir.path().join("w"),
            SharedMemory::shared(64 << 20),
            Some(spec),
        )
        .unwrap();
        // Segments of 600 s: times 0 .. 1200 s fill three.
        let keys: Vec<Vec<u8>> =
            (0..5).flat_map(|t| [window_key(b"a", t * 300_000), window_key(b"b", t * 300_000)]).collect();
        store.write(keys.iter().map(|k| (&k[..], Some(&b"v"[..])))).unwrap();
        assert_eq!(store.segment_starts().len(), 3);
        let got = store.range(&window_key(b"a", 300_000), Some(&window_key(b"a", 900_001))).unwrap();
        let times: Vec<i64> = got.iter().map(|(k, _)| KeyTime::WindowStart.of(k).unwrap()).collect();
        assert_eq!(times, [300_000, 600_000, 900_000]);
        assert!(got.iter().all(|(k, _)| k.starts_with(b"a")));
    }
}
