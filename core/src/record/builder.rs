//! Encoding records into one v2 batch.

use super::batch::BatchHeader;
use super::batch::{BATCH_HEADER_LEN, CRC_START, LOG_OVERHEAD, MAGIC_V2};
use super::compression::compress;
use super::varint::{put_varint, put_varlong, varlong_len};
use super::{Compression, Header, RecordError, TimestampType};

/// Builds one Kafka v2 record batch.
///
/// Records are encoded as they are appended; [`RecordBatchBuilder::build`]
/// compresses the records section (if a codec is set), writes the header and
/// the CRC. The base timestamp is the first record's timestamp and offset
/// deltas count from 0, exactly as the Java producer writes them.
///
/// ```
/// use runnel_core::record::{Compression, Header, RecordBatch, RecordBatchBuilder};
///
/// let mut b = RecordBatchBuilder::new(Compression::None);
/// b.append(10, Some(b"k"), Some(b"v"), &[Header::new("trace", "abc")]);
/// let bytes = b.build(42)?;
/// let batch = RecordBatch::parse(&bytes)?;
/// assert_eq!((batch.base_offset(), batch.last_offset()), (42, 42));
/// # Ok::<(), runnel_core::record::RecordError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    compression: Compression,
    timestamp_type: TimestampType,
    records: Vec<u8>,
    count: i32,
    last_offset_delta: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    /// Fixed max timestamp (a rebuilt log-append-time batch keeps its own).
    max_timestamp_override: Option<i64>,
    attributes_extra: i16,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl RecordBatchBuilder {
    /// An empty builder that will compress with `compression`.
    pub fn new(compression: Compression) -> Self {
        Self::with_capacity(compression, 0)
    }

    /// An empty builder with room for `bytes` of encoded records.
    pub fn with_capacity(compression: Compression, bytes: usize) -> Self {
        RecordBatchBuilder {
            compression,
            timestamp_type: TimestampType::CreateTime,
            records: {
                // Room for the header in front, so `into_batch` need not copy.
                let mut v = Vec::with_capacity(BATCH_HEADER_LEN + bytes);
                v.resize(BATCH_HEADER_LEN, 0);
                v
            },
            count: 0,
            last_offset_delta: -1,
            base_timestamp: None,
            max_timestamp: -1,
            max_timestamp_override: None,
            attributes_extra: 0,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    /// Marks the batch's timestamps as log-append time.
    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// Sets the idempotent-producer fields.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Appends one record; returns its offset delta within the batch.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> i32 {
        let offset_delta = self.last_offset_delta + 1;
        let mut raw_headers = Vec::new();
        for h in headers {
            put_bytes(&mut raw_headers, Some(h.key.as_bytes()));
            put_bytes(&mut raw_headers, h.value.as_deref());
        }
        self.append_raw(offset_delta, timestamp, key, value, headers.len(), &raw_headers);
        offset_delta
    }

    /// A builder that re-encodes a subset of `header`'s batch (compaction):
    /// same base offset, codec, timestamp type, producer fields and base
    /// timestamp; records keep their offset deltas.
    pub(crate) fn rebuild_of(header: &BatchHeader) -> Result<Self, RecordError> {
        let mut b = RecordBatchBuilder::new(header.compression()?);
        b.timestamp_type = header.timestamp_type();
        b.base_timestamp = Some(header.base_timestamp);
        b.attributes_extra = header.attributes & 0x30; // transactional, control
        if b.timestamp_type == TimestampType::LogAppendTime {
            b.max_timestamp_override = Some(header.max_timestamp);
        }
        b.producer_id = header.producer_id;
        b.producer_epoch = header.producer_epoch;
        b.base_sequence = header.base_sequence;
        Ok(b)
    }

    /// Appends a record with an explicit offset delta (greater than the
    /// previous one) and already-encoded headers.
    pub(crate) fn append_raw(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers_count: usize,
        raw_headers: &[u8],
    ) {
        debug_assert!(offset_delta > self.last_offset_delta);
        let base_timestamp = *self.base_timestamp.get_or_insert(timestamp);
        let ts_delta = timestamp.wrapping_sub(base_timestamp);
        let bytes_len = |b: Option<&[u8]>| match b {
            Some(b) => varlong_len(b.len() as i64) + b.len(),
            None => 1,
        };
        let body = 1
            + varlong_len(ts_delta)
            + varlong_len(i64::from(offset_delta))
            + bytes_len(key)
            + bytes_len(value)
            + varlong_len(headers_count as i64)
            + raw_headers.len();
        let out = &mut self.records;
        out.reserve(body + 5);
        put_varlong(out, body as i64);
        out.push(0);
        put_varlong(out, ts_delta);
        put_varint(out, offset_delta);
        put_bytes(out, key);
        put_bytes(out, value);
        put_varlong(out, headers_count as i64);
        out.extend_from_slice(raw_headers);
        self.count += 1;
        self.last_offset_delta = offset_delta;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    /// Number of records appended.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// No records appended yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size the batch would have uncompressed.
    pub fn estimated_size(&self) -> usize {
        self.records.len()
    }

    /// Encodes the batch with `base_offset` (the log overwrites it on append).
    ///
    /// # Errors
    /// [`RecordError::Empty`] with no records, a codec failure, or a batch
    /// over 2 GiB.
    pub fn build(&self, base_offset: i64) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::new();
        self.build_into(base_offset, &mut out)?;
        Ok(out)
    }

    /// Like [`RecordBatchBuilder::build`], appending to `out`.
    ///
    /// # Errors
    /// As [`RecordBatchBuilder::build`].
    pub fn build_into(&self, base_offset: i64, out: &mut Vec<u8>) -> Result<(), RecordError> {
        if self.count == 0 {
            return Err(RecordError::Empty);
        }
        let start = out.len();
        out.resize(start + BATCH_HEADER_LEN, 0);
        match self.compression {
            Compression::None => out.extend_from_slice(self.records_section()),
            codec => out.extend_from_slice(&compress(codec, self.records_section())?),
        }
        self.finish_header(base_offset, &mut out[start..])
    }

    /// Encodes the batch, consuming the builder. Without compression the
    /// records are not copied: the header is written into space reserved
    /// in front of them.
    ///
    /// # Errors
    /// As [`RecordBatchBuilder::build`].
    pub fn into_batch(mut self, base_offset: i64) -> Result<Vec<u8>, RecordError> {
        if self.compression != Compression::None {
            return self.build(base_offset);
        }
        if self.count == 0 {
            return Err(RecordError::Empty);
        }
        let mut out = std::mem::take(&mut self.records);
        self.finish_header(base_offset, &mut out)?;
        Ok(out)
    }

    fn records_section(&self) -> &[u8] {
        &self.records[BATCH_HEADER_LEN..]
    }

    /// Writes the 61-byte header into `batch[..61]` (the records section
    /// follows it) and the CRC.
    fn finish_header(&self, base_offset: i64, batch: &mut [u8]) -> Result<(), RecordError> {
        let batch_length = batch.len() - LOG_OVERHEAD;
        let batch_length = i32::try_from(batch_length)
            .map_err(|_| RecordError::TooLarge(format!("{batch_length} bytes")))?;
        let mut attributes = self.compression.id() | self.attributes_extra;
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= 0x08;
        }
        let h = &mut batch[..BATCH_HEADER_LEN];
        h[0..8].copy_from_slice(&base_offset.to_be_bytes());
        h[8..12].copy_from_slice(&batch_length.to_be_bytes());
        h[12..16].copy_from_slice(&0i32.to_be_bytes()); // partition leader epoch
        h[16] = MAGIC_V2 as u8;
        h[21..23].copy_from_slice(&attributes.to_be_bytes());
        h[23..27].copy_from_slice(&self.last_offset_delta.to_be_bytes());
        h[27..35].copy_from_slice(&self.base_timestamp.unwrap_or(0).to_be_bytes());
        h[35..43].copy_from_slice(&self.max_timestamp_override.unwrap_or(self.max_timestamp).to_be_bytes());
        h[43..51].copy_from_slice(&self.producer_id.to_be_bytes());
        h[51..53].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[53..57].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[57..61].copy_from_slice(&self.count.to_be_bytes());
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(())
    }

    /// Empties the builder for reuse, keeping its allocation.
    pub fn clear(&mut self) {
        self.records.truncate(BATCH_HEADER_LEN);
        self.count = 0;
        self.last_offset_delta = -1;
        self.base_timestamp = None;
        self.max_timestamp = -1;
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => put_varint(out, -1),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{batches, Record, RecordBatch};
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    const CODECS: [Compression; 5] =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

    type ArbRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>);

    fn arb_record() -> impl Strategy<Value = ArbRecord> {
        (
            0i64..4_000_000_000_000,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
            proptest::collection::vec(
                ("[a-z]{0,8}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10))),
                0..3,
            ),
        )
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips_for_every_codec(
            records in proptest::collection::vec(arb_record(), 1..30),
            codec_ix in 0usize..5,
            base in 0i64..1_000_000_000,
        ) {
            let codec = CODECS[codec_ix];
            let mut b = RecordBatchBuilder::new(codec);
            for (ts, k, v, hs) in &records {
                let headers: Vec<Header> = hs.iter().map(|(k, v)| Header { key: k.clone(), value: v.clone().map(Bytes::from) }).collect();
                b.append(*ts, k.as_deref(), v.as_deref(), &headers);
            }
            let bytes = b.build(base).unwrap();
            let batch = RecordBatch::parse(&bytes).unwrap();
            let max_ts = batch.validate().unwrap();
            prop_assert_eq!(max_ts, records.iter().map(|r| r.0).max().unwrap());
            prop_assert_eq!(batch.header().compression().unwrap(), codec);
            let decoded = batch.to_records(0).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (r, (ts, k, v, hs))) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(r.offset, base + i as i64);
                prop_assert_eq!(r.timestamp, *ts);
                prop_assert_eq!(r.key.as_deref(), k.as_deref());
                prop_assert_eq!(r.value.as_deref(), v.as_deref());
                prop_assert_eq!(r.headers.len(), hs.len());
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for batch in batches(&data).flatten() {
                let _ = batch.validate();
                let _ = batch.to_records(0);
            }
        }

        #[test]
        fn flipping_any_byte_after_the_crc_is_detected(flip in 21usize..200, bit in 0u8..8) {
            let mut b = RecordBatchBuilder::new(Compression::None);
            for i in 0..5u8 {
                b.append(1000 + i64::from(i), Some(&[i; 7]), Some(&[i; 30]), &[]);
            }
            let mut bytes = b.build(0).unwrap();
            let at = flip % bytes.len().max(22);
            prop_assume!(at >= 21);
            bytes[at] ^= 1 << bit;
            // Detected either as an impossible header or as a CRC mismatch.
            prop_assert!(RecordBatch::parse(&bytes).and_then(|b| b.verify_crc()).is_err());
        }
    }

    #[test]
    fn batches_encoded_by_kafka_protocol_decode_identically() {
        use kafka_protocol::records as kp;
        for codec in CODECS {
            let kp_codec = match codec {
                Compression::None => kp::Compression::None,
                Compression::Gzip => kp::Compression::Gzip,
                Compression::Snappy => kp::Compression::Snappy,
                Compression::Lz4 => kp::Compression::Lz4,
                Compression::Zstd => kp::Compression::Zstd,
            };
            let input: Vec<kp::Record> = (0..50)
                .map(|i| kp::Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: kp::TimestampType::Creation,
                    offset: 100 + i,
                    sequence: -1,
                    timestamp: 1_700_000_000_000 + i * 3,
                    key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
                    value: (i % 7 != 0).then(|| Bytes::from(vec![i as u8; i as usize * 10])),
                    headers: Default::default(),
                })
                .collect();
            let mut buf = bytes::BytesMut::new();
            kp::RecordBatchEncoder::encode(
                &mut buf,
                &input,
                &kp::RecordEncodeOptions { version: 2, compression: kp_codec },
            )
            .unwrap();
            let mut ours: Vec<Record> = Vec::new();
            for batch in batches(&buf) {
                let batch = batch.unwrap();
                batch.verify_crc().unwrap();
                assert_eq!(batch.header().compression().unwrap(), codec);
                ours.extend(batch.to_records(0).unwrap());
            }
            assert_eq!(ours.len(), input.len());
            for (a, b) in ours.iter().zip(&input) {
                assert_eq!((a.offset, a.timestamp), (b.offset, b.timestamp));
                assert_eq!(a.key, b.key);
                assert_eq!(a.value, b.value);
            }
        }
    }

    #[test]
    fn batches_we_encode_decode_with_kafka_protocol() {
        use kafka_protocol::records as kp;
        for codec in CODECS {
            let mut b = RecordBatchBuilder::new(codec);
            for i in 0..40i64 {
                let headers = [Header::new("h", format!("v{i}"))];
                b.append(5_000 + i, Some(format!("k{i}").as_bytes()), Some(&[i as u8; 64]), &headers);
            }
            let bytes = b.build(7).unwrap();
            let mut buf = Bytes::from(bytes);
            let set = kp::RecordBatchDecoder::decode(&mut buf).unwrap();
            assert_eq!(set.records.len(), 40, "{codec:?}");
            for (i, r) in set.records.iter().enumerate() {
                assert_eq!(r.offset, 7 + i as i64);
                assert_eq!(r.timestamp, 5_000 + i as i64);
                assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
                assert_eq!(r.headers.len(), 1);
            }
        }
    }

    #[test]
    fn log_append_time_records_take_the_batch_max_timestamp() {
        let mut b = RecordBatchBuilder::new(Compression::None).timestamp_type(TimestampType::LogAppendTime);
        b.append(1, None, Some(b"a"), &[]);
        b.append(9, None, Some(b"b"), &[]);
        let bytes = b.build(0).unwrap();
        let batch = RecordBatch::parse(&bytes).unwrap();
        let recs = batch.to_records(0).unwrap();
        assert!(recs.iter().all(|r| r.timestamp == 9 && r.timestamp_type == TimestampType::LogAppendTime));
    }

    #[test]
    fn reading_from_inside_a_batch_skips_earlier_records() {
        let mut b = RecordBatchBuilder::new(Compression::Zstd);
        for i in 0..10 {
            b.append(i, None, Some(&[i as u8]), &[]);
        }
        let bytes = b.build(100).unwrap();
        let recs = RecordBatch::parse(&bytes).unwrap().to_records(105).unwrap();
        assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), (105..110).collect::<Vec<_>>());
    }

    #[test]
    fn empty_builder_refuses_to_build() {
        assert!(matches!(RecordBatchBuilder::new(Compression::None).build(0), Err(RecordError::Empty)));
    }
}
