//! Zero-copy decoding of Kafka v2 record batches.
//!
//! Layout of one batch (all integers big-endian):
//!
//! | offset | size | field | notes |
//! | ------ | ---- | ----- | ----- |
//! | 0  | 8 | baseOffset | offset of the first record; set by the log on append |
//! | 8  | 4 | batchLength | bytes after this field (total size − 12) |
//! | 12 | 4 | partitionLeaderEpoch | |
//! | 16 | 1 | magic | always 2 |
//! | 17 | 4 | crc | CRC-32C of bytes 21..end |
//! | 21 | 2 | attributes | bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control, 6 delete horizon |
//! | 23 | 4 | lastOffsetDelta | offset of last record − baseOffset |
//! | 27 | 8 | baseTimestamp | timestamp of the first record |
//! | 35 | 8 | maxTimestamp | largest record timestamp (or append time) |
//! | 43 | 8 | producerId | −1 when not idempotent |
//! | 51 | 2 | producerEpoch | |
//! | 53 | 4 | baseSequence | |
//! | 57 | 4 | recordsCount | |
//! | 61 | … | records | compressed as one stream when codec ≠ 0 |
//!
//! Each record is `length: varint` followed by `length` bytes: `attributes:
//! int8` (unused, 0), `timestampDelta: varlong`, `offsetDelta: varint`,
//! `keyLength: varint` (−1 = null) + key, `valueLength: varint` + value,
//! `headersCount: varint`, then per header `keyLength: varint` + UTF-8 key,
//! `valueLength: varint` (−1 = null) + value.
//!
//! Because baseOffset, batchLength, partitionLeaderEpoch and magic sit before
//! the CRC'd range, the log can assign offsets by rewriting the first 8 bytes
//! without touching the CRC.

use std::borrow::Cow;

use super::compression::decompress;
use super::varint::{get_varint, get_varlong};
use super::{Compression, Header, Record, RecordError, TimestampType};
use bytes::Bytes;

/// Size of the fixed batch header, up to the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batchLength`: baseOffset + batchLength.
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format Runnel reads and writes.
pub const MAGIC_V2: i8 = 2;
/// Upper bound on the decompressed records section of one batch; a stream
/// that inflates beyond it is rejected as corrupt.
pub const MAX_UNCOMPRESSED_BATCH_BYTES: usize = 256 * 1024 * 1024;

pub(crate) const CRC_START: usize = 21;
const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// The fixed 61-byte header of a v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch when appended.
    pub partition_leader_epoch: i32,
    /// Format version; 2.
    pub magic: i8,
    /// Stored CRC-32C of bytes 21..end.
    pub crc: u32,
    /// Codec, timestamp type and flags.
    pub attributes: i16,
    /// `last offset − base offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id or −1.
    pub producer_id: i64,
    /// Idempotent producer epoch or −1.
    pub producer_epoch: i16,
    /// Sequence of the first record or −1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf` and checks magic and length.
    ///
    /// # Errors
    /// [`RecordError::Truncated`] when fewer than 61 bytes are present,
    /// [`RecordError::UnsupportedMagic`] or [`RecordError::InvalidLength`] for
    /// a header that cannot start a v2 batch.
    pub fn parse(buf: &[u8]) -> Result<Self, RecordError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(RecordError::Truncated { needed: BATCH_HEADER_LEN, available: buf.len() });
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes(buf[17..21].try_into().expect("4 bytes")),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        };
        if header.magic != MAGIC_V2 {
            return Err(RecordError::UnsupportedMagic(header.magic));
        }
        if (header.batch_length as i64) < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(RecordError::InvalidLength(header.batch_length));
        }
        if header.last_offset_delta < 0 || header.records_count < 0 {
            return Err(RecordError::Malformed("negative lastOffsetDelta or recordsCount"));
        }
        Ok(header)
    }

    /// Total size of the batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(i64::from(self.last_offset_delta))
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The compression codec.
    ///
    /// # Errors
    /// An undefined codec id.
    pub fn compression(&self) -> Result<Compression, RecordError> {
        Compression::from_id(self.attributes & ATTR_COMPRESSION_MASK)
    }

    /// Whether timestamps are create time or log-append time.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Holds control records (transaction markers), not user data.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// A view over one encoded batch.
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    header: BatchHeader,
    bytes: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// Parses the batch at the start of `buf` (which may hold more after it).
    ///
    /// # Errors
    /// A bad header, or fewer bytes than the header's length.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RecordError> {
        let header = BatchHeader::parse(buf)?;
        let total = header.total_len();
        if buf.len() < total {
            return Err(RecordError::Truncated { needed: total, available: buf.len() });
        }
        Ok(RecordBatch { header, bytes: &buf[..total] })
    }

    /// The header fields.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The whole encoded batch.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }

    /// CRC-32C of the checksummed range, as computed from the bytes.
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[CRC_START..])
    }

    /// Checks the stored CRC against the bytes.
    ///
    /// # Errors
    /// [`RecordError::CrcMismatch`].
    pub fn verify_crc(&self) -> Result<(), RecordError> {
        let computed = self.computed_crc();
        if computed != self.header.crc {
            return Err(RecordError::CrcMismatch { stored: self.header.crc, computed });
        }
        Ok(())
    }

    /// The records section, decompressed if the batch is compressed. Does not
    /// check the CRC; call [`RecordBatch::verify_crc`] for untrusted bytes.
    ///
    /// # Errors
    /// An unknown codec or a stream the codec rejects.
    pub fn records(&self) -> Result<Records<'a>, RecordError> {
        let raw = &self.bytes[BATCH_HEADER_LEN..];
        let codec = self.header.compression()?;
        let data = match codec {
            Compression::None => Cow::Borrowed(raw),
            other => Cow::Owned(decompress(other, raw, MAX_UNCOMPRESSED_BATCH_BYTES)?),
        };
        Ok(Records { data, header: self.header })
    }

    /// Decodes every record, checking the CRC, the record structure, the
    /// record count and that offset deltas run 0, 1, … with the last one equal
    /// to `lastOffsetDelta`. Returns the largest record timestamp.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<i64, RecordError> {
        self.verify_crc()?;
        if self.header.records_count == 0 {
            return Err(RecordError::Empty);
        }
        let records = self.records()?;
        let mut found = 0i32;
        let mut max_timestamp = i64::MIN;
        let mut last_delta = -1i64;
        for record in records.iter() {
            let record = record?;
            let delta = record.offset.wrapping_sub(self.header.base_offset);
            if delta != last_delta + 1 {
                return Err(RecordError::Malformed("record offset deltas are not consecutive"));
            }
            last_delta = delta;
            max_timestamp = max_timestamp.max(record.create_timestamp);
            found += 1;
        }
        if found != self.header.records_count {
            return Err(RecordError::CountMismatch { declared: self.header.records_count, found });
        }
        if last_delta != i64::from(self.header.last_offset_delta) {
            return Err(RecordError::Malformed("lastOffsetDelta does not match the last record"));
        }
        Ok(max_timestamp)
    }

    /// Decodes all records into owned [`Record`]s, skipping those below
    /// `min_offset`.
    ///
    /// # Errors
    /// As [`RecordBatch::records`] and record decoding.
    pub fn to_records(&self, min_offset: i64) -> Result<Vec<Record>, RecordError> {
        let records = self.records()?;
        let mut out = Vec::with_capacity(self.header.records_count.max(0) as usize);
        for record in records.iter() {
            let record = record?;
            if record.offset >= min_offset {
                out.push(record.to_record()?);
            }
        }
        Ok(out)
    }
}

/// The (decompressed) records section of a batch.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    data: Cow<'a, [u8]>,
    header: BatchHeader,
}

impl Records<'_> {
    /// Iterates over the records in order.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter { data: &self.data, pos: 0, remaining: self.header.records_count, header: self.header }
    }

    /// The records section as decoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }
}

/// Iterator over the records of a batch; yields an error (then stops) on
/// malformed input.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    data: &'a [u8],
    pos: usize,
    remaining: i32,
    header: BatchHeader,
}

/// A record decoded in place from a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Offset in the partition.
    pub offset: i64,
    /// Effective timestamp: the record's own, or the batch's append time for
    /// `LogAppendTime` batches.
    pub timestamp: i64,
    /// The timestamp the producer wrote (equals `timestamp` for create time).
    pub create_timestamp: i64,
    /// Timestamp meaning.
    pub timestamp_type: TimestampType,
    /// Key bytes or `None` for null.
    pub key: Option<&'a [u8]>,
    /// Value bytes or `None` for null (a tombstone when a key is present).
    pub value: Option<&'a [u8]>,
    headers_count: i32,
    headers: &'a [u8],
}

/// One header decoded in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// Header name.
    pub key: &'a str,
    /// Header value or `None` for null.
    pub value: Option<&'a [u8]>,
}

fn take_bytes<'a>(buf: &'a [u8], pos: &mut usize, len: i32) -> Result<Option<&'a [u8]>, RecordError> {
    if len < 0 {
        return if len == -1 {
            Ok(None)
        } else {
            Err(RecordError::Malformed("negative field length other than -1"))
        };
    }
    let end = pos
        .checked_add(len as usize)
        .filter(|&e| e <= buf.len())
        .ok_or(RecordError::Malformed("field runs past the end of the record"))?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(Some(out))
}

impl<'a> RecordIter<'a> {
    fn decode_next(&mut self) -> Result<RecordRef<'a>, RecordError> {
        let len = get_varint(self.data, &mut self.pos)?;
        if len < 0 {
            return Err(RecordError::Malformed("negative record length"));
        }
        let start = self.pos;
        let end = start
            .checked_add(len as usize)
            .filter(|&e| e <= self.data.len())
            .ok_or(RecordError::Malformed("record runs past the end of the batch"))?;
        let rec = &self.data[start..end];
        let mut p = 1usize; // attributes byte (unused)
        if rec.is_empty() {
            return Err(RecordError::Malformed("empty record"));
        }
        let ts_delta = get_varlong(rec, &mut p)?;
        let offset_delta = get_varint(rec, &mut p)?;
        let key_len = get_varint(rec, &mut p)?;
        let key = take_bytes(rec, &mut p, key_len)?;
        let value_len = get_varint(rec, &mut p)?;
        let value = take_bytes(rec, &mut p, value_len)?;
        let headers_count = get_varint(rec, &mut p)?;
        if headers_count < 0 {
            return Err(RecordError::Malformed("negative header count"));
        }
        let headers = &rec[p..];
        // Walk the headers once so a record either decodes fully or errors here.
        let mut hp = 0usize;
        for _ in 0..headers_count {
            let klen = get_varint(headers, &mut hp)?;
            let k = take_bytes(headers, &mut hp, klen)?.ok_or(RecordError::Malformed("null header key"))?;
            std::str::from_utf8(k).map_err(|_| RecordError::Malformed("header key is not UTF-8"))?;
            let vlen = get_varint(headers, &mut hp)?;
            take_bytes(headers, &mut hp, vlen)?;
        }
        if hp != headers.len() {
            return Err(RecordError::Malformed("record length does not match its fields"));
        }
        self.pos = end;
        let create_timestamp = self.header.base_timestamp.wrapping_add(ts_delta);
        let timestamp_type = self.header.timestamp_type();
        let timestamp = match timestamp_type {
            TimestampType::CreateTime => create_timestamp,
            TimestampType::LogAppendTime => self.header.max_timestamp,
        };
        Ok(RecordRef {
            offset: self.header.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp,
            create_timestamp,
            timestamp_type,
            key,
            value,
            headers_count,
            headers,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordRef<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining <= 0 {
            if self.remaining == 0 && self.pos != self.data.len() {
                self.remaining = -1;
                return Some(Err(RecordError::Malformed("bytes left after the last record")));
            }
            return None;
        }
        if self.pos >= self.data.len() {
            let declared = self.header.records_count;
            let found = declared - self.remaining;
            self.remaining = -1;
            return Some(Err(RecordError::CountMismatch { declared, found }));
        }
        match self.decode_next() {
            Ok(r) => {
                self.remaining -= 1;
                Some(Ok(r))
            }
            Err(e) => {
                self.remaining = -1;
                Some(Err(e))
            }
        }
    }
}

impl<'a> RecordRef<'a> {
    /// Iterates over the headers (already validated when the record decoded).
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'a>> + 'a {
        let buf = self.headers;
        let mut pos = 0usize;
        (0..self.headers_count).map_while(move |_| {
            let klen = get_varint(buf, &mut pos).ok()?;
            let key = take_bytes(buf, &mut pos, klen).ok()??;
            let vlen = get_varint(buf, &mut pos).ok()?;
            let value = take_bytes(buf, &mut pos, vlen).ok()?;
            Some(HeaderRef { key: std::str::from_utf8(key).ok()?, value })
        })
    }

    /// The encoded headers, as stored (for re-encoding without decoding).
    pub(crate) fn raw_headers(&self) -> &'a [u8] {
        self.headers
    }

    /// Number of headers.
    pub fn headers_len(&self) -> usize {
        self.headers_count as usize
    }

    /// Copies the record into an owned [`Record`].
    ///
    /// # Errors
    /// Never for a record produced by [`RecordIter`]; kept fallible for
    /// forward compatibility.
    pub fn to_record(&self) -> Result<Record, RecordError> {
        Ok(Record {
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            key: self.key.map(Bytes::copy_from_slice),
            value: self.value.map(Bytes::copy_from_slice),
            headers: self
                .headers()
                .map(|h| Header { key: h.key.to_string(), value: h.value.map(Bytes::copy_from_slice) })
                .collect(),
        })
    }
}

/// Walks concatenated batches. A trailing partial batch (as a size-limited
/// fetch may return) ends the iteration without an error; a header that
/// cannot start a batch yields one error and ends it.
pub fn batches(buf: &[u8]) -> BatchIter<'_> {
    BatchIter { buf, pos: 0, failed: false }
}

/// Iterator returned by [`batches`].
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl BatchIter<'_> {
    /// Byte position of the next batch in the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<RecordBatch<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let rest = &self.buf[self.pos..];
        if rest.len() < BATCH_HEADER_LEN {
            return None;
        }
        match RecordBatch::parse(rest) {
            Ok(batch) => {
                self.pos += batch.as_bytes().len();
                Some(Ok(batch))
            }
            Err(RecordError::Truncated { .. }) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
