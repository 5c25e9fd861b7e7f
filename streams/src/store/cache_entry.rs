//! What both caches in front of RocksDB (the record cache and the join's
//! window cache) share: an entry's record context, a flushed entry, and
//! the hasher of their maps.

use crate::record::Headers;

/// Where the latest update of a key came from; flushed records carry it
/// downstream like Kafka's `LRUCacheEntry` record context.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EntryContext {
    pub(crate) timestamp: i64,
    /// Index of the input topic in the task's topic list.
    pub(crate) topic: usize,
    pub(crate) offset: i64,
    pub(crate) headers: Headers,
}

/// One flushed entry: a key's latest value (`None` deletes it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DirtyEntry {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) context: EntryContext,
    /// The value RocksDB holds for the key, when known from the read that
    /// preceded the first update (`None`: unknown, read it at flush).
    pub(crate) old: Option<Option<Vec<u8>>>,
}

/// A fast hasher for short byte keys (the multiply-rotate scheme of
/// rustc's `FxHasher`). Keys come from the application's own records, and
/// a task's cache is bounded, so the DoS resistance of SipHash buys
/// nothing here; its cost showed in profiles.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    /// Folds the state's 128-bit product with the seed: the low bits, which
    /// pick the bucket of a `HashMap`, then depend on every input bit. Fx's
    /// plain state does not mix upwards into them: keys that differ only in
    /// their last bytes (`user1`…`user999999`) fell into a few hundred
    /// buckets, and every probe walked long chains.
    #[inline]
    fn finish(&self) -> u64 {
        let folded = u128::from(self.0) * u128::from(FX_SEED);
        (folded >> 64) as u64 ^ folded as u64
    }
}

/// Builds [`FxHasher`]s.
pub(crate) type BuildFxHasher = std::hash::BuildHasherDefault<FxHasher>;
