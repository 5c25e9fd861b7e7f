//! Batch compression codecs, byte-compatible with the Java client.
//!
//! In a v2 batch only the records section (everything after the 61-byte
//! header) is compressed, as one stream:
//!
//! | codec  | id | stream format |
//! | ------ | -- | ------------- |
//! | gzip   | 1  | RFC 1952 gzip member(s) |
//! | snappy | 2  | xerial framing: 16-byte header `82 'SNAPPY' 00`, version 1, compat 1; then blocks of `u32 BE length` + raw snappy. A stream without the header is read as one raw snappy block, as the Java client does |
//! | lz4    | 3  | LZ4 frame format (magic `04 22 4D 18`) |
//! | zstd   | 4  | zstd frame(s) |
//!
//! Decompression is bounded: a stream that inflates past the caller's limit is
//! an error rather than an allocation the size of whatever the input claims.

use std::io::{Read, Write};

use super::{Compression, RecordError};

const SNAPPY_XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const SNAPPY_XERIAL_BLOCK: usize = 32 * 1024;

/// Compresses `raw` with `codec`. `Compression::None` copies.
pub(crate) fn compress(codec: Compression, raw: &[u8]) -> Result<Vec<u8>, RecordError> {
    let io_err = |e: std::io::Error| RecordError::Compression { codec, reason: e.to_string() };
    match codec {
        Compression::None => Ok(raw.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 2),
                flate2::Compression::default(),
            );
            enc.write_all(raw).map_err(io_err)?;
            enc.finish().map_err(io_err)
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(raw.len() / 2 + 32);
            out.extend_from_slice(SNAPPY_XERIAL_HEADER);
            let mut encoder = snap::raw::Encoder::new();
            for block in raw.chunks(SNAPPY_XERIAL_BLOCK) {
                let compressed = encoder
                    .compress_vec(block)
                    .map_err(|e| RecordError::Compression { codec, reason: e.to_string() })?;
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(raw.len() / 2));
            enc.write_all(raw).map_err(io_err)?;
            enc.finish().map_err(|e| RecordError::Compression { codec, reason: e.to_string() })
        }
        Compression::Zstd => zstd::stream::encode_all(raw, 3).map_err(io_err),
    }
}

/// Decompresses `data` written by `codec`, failing if the output would exceed
/// `limit` bytes.
pub(crate) fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), limit),
        Compression::Snappy => decompress_snappy(data, limit),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::new(data)
                .map_err(|e| RecordError::Compression { codec, reason: e.to_string() })?;
            read_bounded(codec, dec, limit)
        }
    }
}

fn read_bounded(codec: Compression, reader: impl Read, limit: usize) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordError::Compression { codec, reason: e.to_string() })?;
    if out.len() > limit {
        return Err(RecordError::Compression {
            codec,
            reason: format!("decompressed size exceeds the limit of {limit} bytes"),
        });
    }
    Ok(out)
}

fn decompress_snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Snappy;
    let err = |reason: String| RecordError::Compression { codec, reason };
    let mut decoder = snap::raw::Decoder::new();
    let mut raw_block = |block: &[u8], out: &mut Vec<u8>| -> Result<(), RecordError> {
        let len = snap::raw::decompress_len(block).map_err(|e| err(e.to_string()))?;
        if out.len() + len > limit {
            return Err(err(format!("decompressed size exceeds the limit of {limit} bytes")));
        }
        let start = out.len();
        out.resize(start + len, 0);
        decoder.decompress(block, &mut out[start..]).map_err(|e| err(e.to_string()))?;
        Ok(())
    };
    let mut out = Vec::new();
    if data.len() < 16 || data[..8] != SNAPPY_XERIAL_HEADER[..8] {
        raw_block(data, &mut out)?;
        return Ok(out);
    }
    let mut pos = 16;
    while pos < data.len() {
        let Some(len_bytes) = data.get(pos..pos + 4) else {
            return Err(err("truncated xerial block length".into()));
        };
        let len = u32::from_be_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        pos += 4;
        let Some(block) = data.get(pos..pos + len) else {
            return Err(err(format!("xerial block of {len} bytes runs past the end")));
        };
        raw_block(block, &mut out)?;
        pos += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    #[test]
    fn every_codec_round_trips_large_and_empty_input() {
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for codec in ALL {
            for input in [&big[..], &[][..], b"x"] {
                let packed = compress(codec, input).unwrap();
                assert_eq!(decompress(codec, &packed, input.len()).unwrap(), input, "{codec:?}");
            }
        }
    }

    #[test]
    fn decompression_past_the_limit_is_an_error() {
        let big = vec![7u8; 100_000];
        for codec in ALL.into_iter().skip(1) {
            let packed = compress(codec, &big).unwrap();
            let err = decompress(codec, &packed, 99_999).unwrap_err();
            assert!(err.to_string().contains("limit"), "{codec:?}: {err}");
        }
    }

    #[test]
    fn raw_snappy_without_xerial_header_is_accepted() {
        let raw = snap::raw::Encoder::new().compress_vec(b"hello hello hello").unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, 100).unwrap(), b"hello hello hello");
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let garbage = [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
        for codec in ALL.into_iter().skip(1) {
            assert!(decompress(codec, &garbage, 1 << 20).is_err(), "{codec:?}");
        }
    }
}
