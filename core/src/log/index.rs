//! Sparse indexes of one segment: `.index` (offset → position) and
//! `.timeindex` (timestamp → offset).
//!
//! On-disk layouts are Kafka's, big-endian, one fixed-size entry after another
//! with no header:
//!
//! | file | entry | bytes |
//! | ---- | ----- | ----- |
//! | `.index` | relative offset `u32` (batch base offset − segment base), file position `u32` of that batch | 8 |
//! | `.timeindex` | timestamp `i64` (largest record timestamp in the segment up to and including the batch), relative offset `u32` of that batch's base offset | 12 |
//!
//! Keys strictly increase from entry to entry. An entry is added after at
//! least `index.interval.bytes` of batches since the previous one, so an index
//! holds about one entry per 4 KiB of log.
//!
//! The active segment's index lives in memory (a `Vec`) and is written out
//! when the segment is sealed or the log closes cleanly; after a crash it is
//! rebuilt from the log. A sealed segment's index is searched on disk with
//! positioned reads (a binary search costs ~log2(entries) small reads that the
//! page cache serves), so memory does not grow with the size of the log.
//! Indexes are derivable: any file that fails its sanity check is rebuilt.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    const SIZE: usize;
    /// The search key (relative offset or timestamp).
    fn key(&self) -> i64;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(buf: &[u8]) -> Self;
}

/// `.index` entry: batch base offset relative to the segment, and its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn key(&self) -> i64 {
        i64::from(self.relative_offset)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes(buf[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")),
        }
    }
}

/// `.timeindex` entry: running max timestamp, and the batch's relative offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn key(&self) -> i64 {
        self.timestamp
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(buf[0..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes")),
        }
    }
}

/// Where an index's entries live.
#[derive(Debug)]
enum Storage<E> {
    /// Active segment: entries in memory, file written on seal.
    Memory(Vec<E>),
    /// Sealed segment: entries in an open file (kept open so a segment that
    /// is deleted or replaced stays readable by whoever still holds it).
    File { file: File, entries: usize },
}

/// A sparse index of one segment.
#[derive(Debug)]
pub(crate) struct SparseIndex<E> {
    path: PathBuf,
    storage: Storage<E>,
}

impl<E: IndexEntry> SparseIndex<E> {
    /// An empty in-memory index that will be written to `path`.
    pub(crate) fn in_memory(path: PathBuf, entries: Vec<E>) -> Self {
        SparseIndex { path, storage: Storage::Memory(entries) }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the index file of a sealed segment for on-disk search.
    ///
    /// Returns `Ok(None)` when the file is missing or fails the sanity check
    /// (`check` is given every entry in order); the caller rebuilds it.
    pub(crate) fn open_file(
        path: PathBuf,
        mut check: impl FnMut(Option<&E>, &E) -> bool,
    ) -> Result<Option<Self>> {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &path)(e)),
        };
        let len = file.metadata().map_err(Error::io("stat", &path))?.len() as usize;
        if len % E::SIZE != 0 {
            return Ok(None);
        }
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, 0).map_err(Error::io("read", &path))?;
        let mut prev: Option<E> = None;
        for chunk in bytes.chunks_exact(E::SIZE) {
            let e = E::decode(chunk);
            if prev.is_some_and(|p| p.key() >= e.key()) || !check(prev.as_ref(), &e) {
                return Ok(None);
            }
            prev = Some(e);
        }
        Ok(Some(SparseIndex { path, storage: Storage::File { file, entries: len / E::SIZE } }))
    }

    /// Loads an index file fully into memory (the active segment after a
    /// clean shutdown). Same checks as [`SparseIndex::open_file`].
    pub(crate) fn load(path: PathBuf, check: impl FnMut(Option<&E>, &E) -> bool) -> Result<Option<Self>> {
        let Some(index) = Self::open_file(path, check)? else {
            return Ok(None);
        };
        let entries = index.all_entries()?;
        Ok(Some(SparseIndex { path: index.path, storage: Storage::Memory(entries) }))
    }

    pub(crate) fn len(&self) -> usize {
        match &self.storage {
            Storage::Memory(v) => v.len(),
            Storage::File { entries, .. } => *entries,
        }
    }

    fn entry(&self, i: usize) -> Result<E> {
        match &self.storage {
            Storage::Memory(v) => Ok(v[i]),
            Storage::File { file, .. } => {
                let mut buf = [0u8; 16];
                file.read_exact_at(&mut buf[..E::SIZE], (i * E::SIZE) as u64)
                    .map_err(Error::io("read", &self.path))?;
                Ok(E::decode(&buf[..E::SIZE]))
            }
        }
    }

    pub(crate) fn last(&self) -> Result<Option<E>> {
        match self.len() {
            0 => Ok(None),
            n => self.entry(n - 1).map(Some),
        }
    }

    /// The entry with the largest key `<= key` (`strict`: `< key`).
    pub(crate) fn floor(&self, key: i64, strict: bool) -> Result<Option<E>> {
        // Binary search for the number of entries whose key passes.
        let passes = |e: &E| if strict { e.key() < key } else { e.key() <= key };
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if passes(&self.entry(mid)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            Ok(None)
        } else {
            self.entry(lo - 1).map(Some)
        }
    }

    /// Adds an entry to an in-memory index.
    pub(crate) fn push(&mut self, entry: E) {
        match &mut self.storage {
            Storage::Memory(v) => v.push(entry),
            Storage::File { .. } => unreachable!("sealed indexes are never appended to"),
        }
    }

    fn all_entries(&self) -> Result<Vec<E>> {
        (0..self.len()).map(|i| self.entry(i)).collect()
    }

    /// Writes the entries to `path` (replacing it) and fsyncs. The in-memory
    /// index stays in memory; see [`SparseIndex::into_file`] for sealing.
    pub(crate) fn write_to(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(self.len() * E::SIZE);
        for e in self.all_entries()? {
            e.encode(&mut bytes);
        }
        // Written beside and renamed over, so a reader never sees half a file.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        file.write_all(&bytes).map_err(Error::io("write", &tmp))?;
        file.sync_all().map_err(Error::io("fsync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(Error::io("rename", &tmp))?;
        Ok(())
    }

    /// Writes an in-memory index to its file and switches to on-disk search.
    pub(crate) fn seal(&mut self) -> Result<()> {
        if let Storage::Memory(_) = self.storage {
            self.write_to(&self.path)?;
            let file = File::open(&self.path).map_err(Error::io("open", &self.path))?;
            let entries = self.len();
            self.storage = Storage::File { file, entries };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn floor_lookup_agrees_with_a_linear_scan_in_memory_and_on_disk(
            mut keys in proptest::collection::btree_set(0u32..100_000, 0..300),
            probes in proptest::collection::vec(0i64..100_100, 1..50),
        ) {
            let keys: Vec<u32> = std::mem::take(&mut keys).into_iter().collect();
            let entries: Vec<OffsetEntry> = keys.iter().map(|&k| OffsetEntry { relative_offset: k, position: k * 3 }).collect();
            let dir = tempfile::tempdir().unwrap();
            let mut index = SparseIndex::in_memory(dir.path().join("x.index"), entries.clone());
            for strict in [false, true] {
                for &p in &probes {
                    let expected = entries.iter().rev().find(|e| if strict { e.key() < p } else { e.key() <= p }).copied();
                    prop_assert_eq!(index.floor(p, strict).unwrap(), expected);
                }
            }
            index.seal().unwrap();
            let reopened = SparseIndex::<OffsetEntry>::open_file(dir.path().join("x.index"), |_, _| true).unwrap().unwrap();
            for strict in [false, true] {
                for &p in &probes {
                    let expected = entries.iter().rev().find(|e| if strict { e.key() < p } else { e.key() <= p }).copied();
                    prop_assert_eq!(index.floor(p, strict).unwrap(), expected);
                    prop_assert_eq!(reopened.floor(p, strict).unwrap(), expected);
                }
            }
        }
    }

    #[test]
    fn damaged_index_files_are_reported_for_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.timeindex");
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(SparseIndex::<TimeEntry>::open_file(path.clone(), |_, _| true).unwrap().is_none());
        // Keys out of order.
        let mut bytes = Vec::new();
        TimeEntry { timestamp: 5, relative_offset: 1 }.encode(&mut bytes);
        TimeEntry { timestamp: 4, relative_offset: 2 }.encode(&mut bytes);
        std::fs::write(&path, &bytes).unwrap();
        assert!(SparseIndex::<TimeEntry>::open_file(path.clone(), |_, _| true).unwrap().is_none());
        // Rejected by the caller's check.
        bytes.truncate(12);
        std::fs::write(&path, &bytes).unwrap();
        assert!(SparseIndex::<TimeEntry>::open_file(path.clone(), |_, _| false).unwrap().is_none());
        assert!(SparseIndex::<TimeEntry>::open_file(path, |_, _| true).unwrap().is_some());
        assert!(SparseIndex::<TimeEntry>::open_file(dir.path().join("missing"), |_, _| true)
            .unwrap()
            .is_none());
    }
}
