//! [`RocksStore`]: one RocksDB instance holding one store's keys and values
//! as bytes, optionally split into time segments.
//!
//! # Segments (window and session stores)
//!
//! A segmented store keeps each time range of `interval` milliseconds in
//! its own column family (`segment-<start>`), placed by the time in each
//! key ([`KeyTime`]). The store tracks the largest time it was written
//! (its observed stream time); a segment whose whole range lies before
//! `observed - retention` is dropped with one `drop_cf`, so expiring old
//! windows costs no per-key deletes (Kafka's segmented bytes store).
//! Writes into a dropped range are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
}

impl Segmenting {
    /// Kafka's choice: half the retention, at least a minute.
    pub(crate) fn new(retention: i64, time: KeyTime) -> Self {
        Segmenting { interval: (retention / 2).max(60_000), retention, time }
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

/// The live segments of a segmented store.
struct Segments {
    spec: Segmenting,
    /// Segment id → column family name.
    live: BTreeMap<i64, String>,
    /// Largest key time written.
    observed: i64,
}

impl Segments {
    fn cf_name(&self, id: i64) -> String {
        format!("segment-{}", id * self.spec.interval)
    }

    /// The smallest segment id still live at the observed time.
    fn min_live(&self) -> i64 {
        self.spec.segment_id(self.observed.saturating_sub(self.spec.retention))
    }
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
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&memory.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_top_level_index_and_filter(true);
        // Aggregations look up keys they have never seen (a new window, a
        // new key): a bloom filter answers most of those without reading
        // data blocks, as Kafka Streams' RocksDB config does.
        table.set_bloom_filter(10.0, false);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_block_based_table_factory(&table);
        options.set_write_buffer_manager(&memory.write_buffers);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_max_open_files(256);
        let existing = if path.join("CURRENT").exists() {
            DB::list_cf(&options, path).map_err(|e| fail("list column families", e.to_string()))?
        } else {
            Vec::new()
        };
        let db = if existing.is_empty() {
            DB::open(&options, path)
        } else {
            DB::open_cf(&options, path, &existing)
        }
        .map_err(|e| fail("open", e.to_string()))?;
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        let segments = segmenting.map(|spec| {
            let mut live = BTreeMap::new();
            let mut observed = i64::MIN;
            for cf in &existing {
                if let Some(start) = cf.strip_prefix("segment-").and_then(|s| s.parse::<i64>().ok()) {
                    live.insert(spec.segment_id(start), cf.clone());
                    observed = observed.max(start);
                }
            }
            Segments { spec, live, observed }
        });
        // The observed time restarts at the newest segment's start (a lower
        // bound): expiry is at most one segment late after a reopen.
        Ok(RocksStore {
            name: name.to_string(),
            path: path.to_path_buf(),
            db,
            write_options,
            segments,
            memory,
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
        if self.segments.is_some() {
            return read(self.get(key)?.as_deref());
        }
        let pinned = self.db.get_pinned(key).map_err(|e| self.error("read", e))?;
        read(pinned.as_deref())
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        let Some(segments) = &self.segments else {
            return self.db.get(key).map_err(|e| self.error("read", e));
        };
        let Some(time) = segments.spec.time.of(key) else { return Ok(None) };
        match segments.live.get(&segments.spec.segment_id(time)) {
            None => Ok(None),
            Some(cf) => self.db.get_cf(self.cf(cf)?, key).map_err(|e| self.error("read", e)),
        }
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StreamsError> {
        self.db.cf_handle(name).ok_or_else(|| StreamsError::Store {
            store: self.name.clone(),
            path: self.path.clone(),
            op: "find column family",
            reason: format!("segment {name} is not open"),
        })
    }

    /// Writes puts (`Some`) and deletes (`None`) atomically. In a segmented
    /// store, keys are placed by their time; keys older than the retention
    /// are skipped, and segments that fell out of it are dropped after the
    /// write.
    pub(crate) fn write<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), StreamsError> {
        let mut batch = WriteBatch::default();
        if self.segments.is_none() {
            for (key, value) in entries {
                match value {
                    Some(value) => batch.put(key, value),
                    None => batch.delete(key),
                }
            }
            return self.db.write_opt(batch, &self.write_options).map_err(|e| self.error("write", e));
        }
        let entries: Vec<_> = entries.into_iter().collect();
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
            if !segments.live.contains_key(&id) {
                let name = segments.cf_name(id);
                self.db.create_cf(&name, &Options::default()).map_err(|e| self.error("create segment", e))?;
                segments.live.insert(id, name);
            }
            let cf = self.cf(&segments.live[&id])?;
            match value {
                Some(value) => batch.put_cf(cf, key, value),
                None => batch.delete_cf(cf, key),
            }
        }
        let batch = std::mem::take(batch);
        self.db.write_opt(batch, &self.write_options).map_err(|e| self.error("write", e))?;
        let expired: Vec<i64> = segments.live.range(..min_live).map(|(&id, _)| id).collect();
        for id in expired {
            let name = segments.live.remove(&id).expect("listed above");
            self.db.drop_cf(&name).map_err(|e| self.error("drop segment", e))?;
        }
        Ok(())
    }

    /// Names of the live segments, oldest first (empty for a plain store).
    #[cfg_attr(not(test), allow(dead_code, reason = "for tests"))]
    pub(crate) fn segment_names(&self) -> Vec<String> {
        self.segments.iter().flat_map(|s| s.live.values().cloned()).collect()
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
        let read = |cf: Option<&rocksdb::ColumnFamily>| -> Result<Entries, StreamsError> {
            let mut options = ReadOptions::default();
            if let Some(to) = to {
                options.set_iterate_upper_bound(to.to_vec());
            }
            let mode = IteratorMode::From(from, Direction::Forward);
            let iter = match cf {
                Some(cf) => self.db.iterator_cf_opt(cf, options, mode),
                None => self.db.iterator_opt(mode, options),
            };
            iter.map(|item| {
                item.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(|e| self.error("iterate", e))
            })
            .collect()
        };
        match &self.segments {
            None => read(None),
            Some(segments) => {
                // Bounds on one key (`key ‖ time ‖ ...`, equal key parts)
                // hold times: only the segments of those times can match.
                let (low, high) = segments.spec.time_span(from, to).unwrap_or((i64::MIN, i64::MAX));
                let ids = segments.spec.segment_id(low)..=segments.spec.segment_id(high);
                let mut all = Vec::new();
                for (_, name) in segments.live.range(ids) {
                    all.extend(read(Some(self.cf(name)?))?);
                }
                Ok(all)
            }
        }
    }

    /// Persists memtables to disk (needed before writing a checkpoint, since
    /// the write-ahead log is off).
    pub(crate) fn flush(&self) -> Result<(), StreamsError> {
        match &self.segments {
            None => self.db.flush().map_err(|e| self.error("flush", e)),
            Some(segments) => {
                for name in segments.live.values() {
                    self.db.flush_cf(self.cf(name)?).map_err(|e| self.error("flush", e))?;
                }
                Ok(())
            }
        }
    }
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
        assert_eq!(store.segment_names(), vec!["segment-0", "segment-60000"]);
        assert_eq!(store.get(&a0).unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.range(b"a", None).unwrap().len(), 2);
        store.flush().unwrap();
        drop(store);
        let mut store = open();
        assert_eq!(store.get(&a1).unwrap(), Some(b"2".to_vec()), "reopened with its segments");
        // Time 185s: retention reaches back to 65s, so segment 0 (0..60s) goes.
        let late = window_key(b"b", 185_000);
        store.write([(&late[..], Some(&b"3"[..]))]).unwrap();
        assert_eq!(store.segment_names(), vec!["segment-60000", "segment-180000"]);
        assert_eq!(store.get(&a0).unwrap(), None);
        // A write into the dropped range is skipped.
        store.write([(&a0[..], Some(&b"9"[..]))]).unwrap();
        assert_eq!(store.get(&a0).unwrap(), None);
        assert_eq!(store.all().unwrap(), vec![(a1, b"2".to_vec()), (late, b"3".to_vec())]);
        let err = store.write([(&b"short"[..], None)]).unwrap_err().to_string();
        assert!(err.ends_with("cannot write: key of 5 bytes holds no window time"), "{err}");
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
        assert_eq!(store.segment_names().len(), 3);
        let got = store.range(&window_key(b"a", 300_000), Some(&window_key(b"a", 900_001))).unwrap();
        let times: Vec<i64> = got.iter().map(|(k, _)| KeyTime::WindowStart.of(k).unwrap()).collect();
        assert_eq!(times, [300_000, 600_000, 900_000]);
        assert!(got.iter().all(|(k, _)| k.starts_with(b"a")));
    }
}
