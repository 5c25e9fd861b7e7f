//! Zig-zag varints as used inside Kafka v2 records (protobuf encoding).
//!
//! A signed value `n` is first zig-zag mapped (`(n << 1) ^ (n >> 63)`) so small
//! magnitudes of either sign stay short, then written 7 bits at a time, least
//! significant group first, with the high bit of each byte set when more follow.
//! An `int32` varint takes at most 5 bytes, an `int64` varlong at most 10.

use super::RecordError;

/// Appends `value` as a zig-zag varint (used for both varint and varlong fields).
#[inline]
pub(crate) fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `value` as a zig-zag varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, value: i32) {
    put_varlong(out, i64::from(value));
}

/// Number of bytes `value` takes as a zig-zag varint.
#[inline]
pub(crate) fn varlong_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    // 1 byte per started group of 7 bits; zero still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a zig-zag varlong from `buf` at `*pos`, advancing `*pos`.
#[inline(always)]
pub(crate) fn get_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordError> {
    // Fast paths: record fields (lengths, deltas) almost always take one or
    // two bytes.
    let rest = buf.get(*pos..).unwrap_or_default();
    let raw = match rest {
        [b0, ..] if *b0 < 0x80 => {
            *pos += 1;
            u64::from(*b0)
        }
        [b0, b1, ..] if *b1 < 0x80 => {
            *pos += 2;
            u64::from(b0 & 0x7f) | (u64::from(*b1) << 7)
        }
        _ => return get_varlong_slow(buf, pos),
    };
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

#[cold]
fn get_varlong_slow(buf: &[u8], pos: &mut usize) -> Result<i64, RecordError> {
    let mut raw: u64 = 0;
    let mut shift = 0u32;
    loop {
        let Some(&byte) = buf.get(*pos) else {
            return Err(RecordError::Malformed("varint runs past the end of the record"));
        };
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(RecordError::Malformed("varint longer than 64 bits"));
        }
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(RecordError::Malformed("varint longer than 10 bytes"));
        }
    }
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Reads a zig-zag varint that must fit in 32 bits.
#[inline(always)]
pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordError> {
    let v = get_varlong(buf, pos)?;
    i32::try_from(v).map_err(|_| RecordError::Malformed("varint does not fit in 32 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_the_protobuf_zigzag_table() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            put_varlong(&mut out, *value);
            assert_eq!(&out, bytes, "encoding {value}");
            assert_eq!(varlong_len(*value), bytes.len());
            let mut pos = 0;
            assert_eq!(get_varlong(&out, &mut pos).unwrap(), *value);
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        let mut pos = 0;
        assert!(get_varlong(&[0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(get_varlong(&[0xff; 11], &mut pos).is_err());
        let mut pos = 0;
        let mut big = Vec::new();
        put_varlong(&mut big, i64::from(i32::MAX) + 1);
        assert!(get_varint(&big, &mut pos).is_err());
    }

    proptest! {
        #[test]
        fn varlong_round_trips(value in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, value);
            prop_assert_eq!(out.len(), varlong_len(value));
            let mut pos = 0;
            prop_assert_eq!(get_varlong(&out, &mut pos).unwrap(), value);
            prop_assert_eq!(pos, out.len());
        }
    }
}
