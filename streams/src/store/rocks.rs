//! [`RocksStore`]: one RocksDB instance holding one store's keys and values
//! as bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use crate::store::memory::SharedMemory;
use crate::store::Entries;
use crate::StreamsError;

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
    /// Keeps the shared block cache alive while the store is open.
    #[cfg_attr(not(test), allow(dead_code, reason = "held, not read"))]
    memory: Arc<SharedMemory>,
}

impl RocksStore {
    /// Opens (creating if needed) the store `name` in directory `path`,
    /// charging its memory to `memory`.
    pub(crate) fn open(name: &str, path: &Path, memory: Arc<SharedMemory>) -> Result<Self, StreamsError> {
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
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_block_based_table_factory(&table);
        options.set_write_buffer_manager(&memory.write_buffers);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.set_max_open_files(256);
        let db = DB::open(&options, path).map_err(|e| fail("open", e.to_string()))?;
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        Ok(RocksStore { name: name.to_string(), path: path.to_path_buf(), db, write_options, memory })
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
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        self.db.get(key).map_err(|e| self.error("read", e))
    }

    /// Writes puts (`Some`) and deletes (`None`) atomically.
    pub(crate) fn write<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), StreamsError> {
        let mut batch = WriteBatch::default();
        for (key, value) in entries {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        self.db.write_opt(batch, &self.write_options).map_err(|e| self.error("write", e))
    }

    /// Every key and value, in key-byte order.
    pub(crate) fn all(&self) -> Result<Entries, StreamsError> {
        self.db
            .iterator(IteratorMode::Start)
            .map(|item| item.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(|e| self.error("iterate", e)))
            .collect()
    }

    /// Persists memtables to disk (needed before writing a checkpoint, since
    /// the write-ahead log is off).
    pub(crate) fn flush(&self) -> Result<(), StreamsError> {
        self.db.flush().map_err(|e| self.error("flush", e))
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
        let store = open(dir.path(), "counts");
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
        let (a, b) = (open(dir.path(), "a"), open(dir.path(), "b"));
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
}
