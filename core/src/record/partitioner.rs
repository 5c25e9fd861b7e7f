//! Kafka's default partitioner: murmur2 of the key bytes, so a key lands on
//! the same partition as with the Java client (and librdkafka's
//! `murmur2_random`), for the same partition count.

/// Kafka's 32-bit murmur2 (seed `0x9747b28c`), as `Utils.murmur2` in the
/// Java client, including its treatment of the trailing 1-3 bytes.
///
/// ```
/// assert_eq!(runnel_core::record::murmur2(b"12345"), -1188365604);
/// ```
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a keyed record:
/// `toPositive(murmur2(key)) % partitions`.
///
/// ```
/// use runnel_core::record::partition_for_key;
/// assert_eq!(partition_for_key(b"user-42", 8), partition_for_key(b"user-42", 8));
/// ```
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as i64 % i64::from(partitions.max(1))) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values the Java client's Utils.murmur2 returns, covering every tail length
        // (0 to 3 bytes after the 4-byte blocks).
        for (key, hash) in [
            ("1", -1993445489),
            ("12", 126087238),
            ("123", -267702483),
            ("1234", -1614185708),
            ("12345", -1188365604),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "murmur2({key:?})");
        }
    }

    #[test]
    fn keyed_partitions_follow_to_positive_modulo() {
        // toPositive(-1188365604) = 959118044; 959118044 % 8 = 4, % 3 = 2.
        assert_eq!(partition_for_key(b"12345", 8), 4);
        assert_eq!(partition_for_key(b"12345", 3), 2);
        // toPositive(-267702483) = 1879781165: % 10 = 5, % 4 = 1; toPositive(126087238) % 7 = 4.
        assert_eq!(partition_for_key(b"123", 10), 5);
        assert_eq!(partition_for_key(b"123", 4), 1);
        assert_eq!(partition_for_key(b"12", 7), 4);
        for n in 1..50 {
            let p = partition_for_key(b"any key", n);
            assert!((0..n).contains(&p));
        }
    }
}
