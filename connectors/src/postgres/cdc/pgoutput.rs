//! Decoding pgoutput, PostgreSQL's built-in logical decoding output
//! (protocol version 1), from the data of XLogData messages.
//!
//! Layouts (big-endian integers, `String` NUL-terminated):
//!
//! ```text
//! Begin     'B' | final (commit) LSN u64 | commit time i64 (µs since 2000) | xid u32
//! Commit    'C' | flags u8 | commit LSN u64 | end LSN u64 | commit time i64
//! Origin    'O' | origin commit LSN u64 | name String
//! Relation  'R' | oid u32 | namespace String | name String | replica identity u8
//!               | ncols u16 | ncols × (flags u8 (1 = key) | name String | type oid u32 | typmod i32)
//! Type      'Y' | oid u32 | namespace String | name String
//! Insert    'I' | oid u32 | 'N' TupleData
//! Update    'U' | oid u32 | ['K' TupleData | 'O' TupleData] | 'N' TupleData
//! Delete    'D' | oid u32 | ('K' | 'O') TupleData
//! Truncate  'T' | nrels u32 | options u8 (1 cascade, 2 restart identity) | nrels × oid u32
//! Message   'M' | flags u8 | LSN u64 | prefix String | length u32 | content
//! TupleData     ncols u16 | ncols × ('n' null | 'u' unchanged TOAST | 't' len u32 text | 'b' len u32 binary)
//! ```
//!
//! Column values borrow the message's buffer (`Bytes` slices): decoding
//! copies no row data.

use bytes::Bytes;

use crate::postgres::lsn::Lsn;

/// One column of a Relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RelationColumn {
    /// Part of the replica identity (the key for `DEFAULT`, every column
    /// for `FULL`).
    pub(crate) key: bool,
    pub(crate) name: String,
    pub(crate) type_oid: u32,
    pub(crate) type_modifier: i32,
}

/// A table's shape as the stream describes it, sent before its first
/// change and again after it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Relation {
    pub(crate) oid: u32,
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// `d` default (primary key), `n` nothing, `f` full, `i` index.
    pub(crate) replica_identity: u8,
    pub(crate) columns: Vec<RelationColumn>,
}

/// One column value of a row image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Datum {
    Null,
    /// A TOASTed value the change did not touch, so not sent.
    Unchanged,
    /// The value in its text form (the type's output function).
    Text(Bytes),
    /// The value in binary form (not requested by this client).
    Binary(Bytes),
}

/// Which old row image an update or delete carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OldImage {
    /// The replica identity columns only (others null).
    Key,
    /// The whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// A decoded pgoutput message.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PgOutput {
    Begin { final_lsn: Lsn, commit_time_micros: i64, xid: u32 },
    Commit { commit_lsn: Lsn, end_lsn: Lsn, commit_time_micros: i64 },
    Origin,
    Relation(Relation),
    Type { oid: u32, namespace: String, name: String },
    Insert { relation: u32, new: Vec<Datum> },
    Update { relation: u32, old: Option<(OldImage, Vec<Datum>)>, new: Vec<Datum> },
    Delete { relation: u32, old: (OldImage, Vec<Datum>) },
    Truncate { relations: Vec<u32>, cascade: bool, restart_identity: bool },
    Message { transactional: bool, lsn: Lsn, prefix: String, content: Bytes },
}

/// A pgoutput message that could not be decoded, with what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message {tag:?}: {reason}")]
pub(crate) struct DecodeError {
    tag: char,
    reason: String,
}

struct Reader {
    data: Bytes,
    at: usize,
    tag: u8,
}

impl Reader {
    fn fail(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError { tag: self.tag as char, reason: reason.into() }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.data.len() - self.at < n {
            return Err(self.fail(format!("ends after {} bytes, {n} more expected", self.at)));
        }
        let slice = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let rest = &self.data[self.at..];
        let end = memchr::memchr(0, rest).ok_or_else(|| self.fail("a string without its terminating NUL"))?;
        let text = std::str::from_utf8(&rest[..end]).map_err(|_| self.fail("a name that is not UTF-8"))?;
        let text = text.to_string();
        self.at += end + 1;
        Ok(text)
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.data.len() - self.at < n {
            return Err(
                self.fail(format!("a value of {n} bytes with only {} left", self.data.len() - self.at))
            );
        }
        let value = self.data.slice(self.at..self.at + n);
        self.at += n;
        Ok(value)
    }

    fn tuple(&mut self) -> Result<Vec<Datum>, DecodeError> {
        let n = self.u16()? as usize;
        let mut datums = Vec::with_capacity(n);
        for _ in 0..n {
            datums.push(match self.u8()? {
                b'n' => Datum::Null,
                b'u' => Datum::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    Datum::Text(self.bytes(len)?)
                }
                b'b' => {
                    let len = self.u32()? as usize;
                    Datum::Binary(self.bytes(len)?)
                }
                other => return Err(self.fail(format!("column kind {:?}", other as char))),
            });
        }
        Ok(datums)
    }

    fn expect_new(&mut self) -> Result<(), DecodeError> {
        match self.u8()? {
            b'N' => Ok(()),
            other => Err(self.fail(format!("{:?} where the new row ('N') belongs", other as char))),
        }
    }

    fn done(&self) -> Result<(), DecodeError> {
        if self.at == self.data.len() {
            Ok(())
        } else {
            Err(self.fail(format!("{} bytes left over", self.data.len() - self.at)))
        }
    }
}

/// Decodes one pgoutput message.
///
/// # Errors
/// [`DecodeError`] naming the message and what was wrong; never panics on
/// any input.
pub(crate) fn decode(data: Bytes) -> Result<PgOutput, DecodeError> {
    let tag = *data.first().ok_or(DecodeError { tag: ' ', reason: "empty".into() })?;
    let mut r = Reader { data, at: 1, tag };
    let message = match tag {
        b'B' => PgOutput::Begin { final_lsn: Lsn(r.u64()?), commit_time_micros: r.i64()?, xid: r.u32()? },
        b'C' => {
            let _flags = r.u8()?;
            PgOutput::Commit {
                commit_lsn: Lsn(r.u64()?),
                end_lsn: Lsn(r.u64()?),
                commit_time_micros: r.i64()?,
            }
        }
        b'O' => {
            let _lsn = r.u64()?;
            let _name = r.string()?;
            PgOutput::Origin
        }
        b'R' => {
            let oid = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let replica_identity = r.u8()?;
            let n = r.u16()? as usize;
            let mut columns = Vec::with_capacity(n);
            for _ in 0..n {
                let flags = r.u8()?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            let namespace = if namespace.is_empty() { "pg_catalog".to_string() } else { namespace };
            PgOutput::Relation(Relation { oid, namespace, name, replica_identity, columns })
        }
        b'Y' => PgOutput::Type { oid: r.u32()?, namespace: r.string()?, name: r.string()? },
        b'I' => {
            let relation = r.u32()?;
            r.expect_new()?;
            PgOutput::Insert { relation, new: r.tuple()? }
        }
        b'U' => {
            let relation = r.u32()?;
            let old = match r.u8()? {
                b'K' => Some((OldImage::Key, r.tuple()?)),
                b'O' => Some((OldImage::Full, r.tuple()?)),
                b'N' => {
                    r.at -= 1;
                    None
                }
                other => return Err(r.fail(format!("row kind {:?}", other as char))),
            };
            r.expect_new()?;
            PgOutput::Update { relation, old, new: r.tuple()? }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = match r.u8()? {
                b'K' => OldImage::Key,
                b'O' => OldImage::Full,
                other => return Err(r.fail(format!("row kind {:?}", other as char))),
            };
            PgOutput::Delete { relation, old: (kind, r.tuple()?) }
        }
        b'T' => {
            let n = r.u32()? as usize;
            let options = r.u8()?;
            if n > r.data.len() / 4 {
                return Err(r.fail(format!("{n} relations in {} bytes", r.data.len())));
            }
            let mut relations = Vec::with_capacity(n);
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            PgOutput::Truncate { relations, cascade: options & 1 == 1, restart_identity: options & 2 == 2 }
        }
        b'M' => {
            let transactional = r.u8()? & 1 == 1;
            let lsn = Lsn(r.u64()?);
            let prefix = r.string()?;
            let len = r.u32()? as usize;
            PgOutput::Message { transactional, lsn, prefix, content: r.bytes(len)? }
        }
        other => return Err(DecodeError { tag: other as char, reason: "unknown message type".into() }),
    };
    r.done()?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_bytes() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(16384u32.to_be_bytes());
        m.extend(b"public\0orders\0");
        m.push(b'd');
        m.extend(2u16.to_be_bytes());
        m.push(1);
        m.extend(b"id\0");
        m.extend(23u32.to_be_bytes());
        m.extend((-1i32).to_be_bytes());
        m.push(0);
        m.extend(b"note\0");
        m.extend(25u32.to_be_bytes());
        m.extend((-1i32).to_be_bytes());
        m
    }

    #[test]
    fn a_relation_and_an_update_with_an_old_key_decode_field_by_field() {
        let relation = decode(Bytes::from(relation_bytes())).unwrap();
        let PgOutput::Relation(r) = relation else { panic!("{relation:?}") };
        assert_eq!(
            (r.oid, r.namespace.as_str(), r.name.as_str(), r.replica_identity),
            (16384, "public", "orders", b'd')
        );
        assert_eq!(
            r.columns[0],
            RelationColumn { key: true, name: "id".into(), type_oid: 23, type_modifier: -1 }
        );
        assert!(!r.columns[1].key);

        let mut u = vec![b'U'];
        u.extend(16384u32.to_be_bytes());
        u.push(b'K');
        u.extend(2u16.to_be_bytes());
        u.extend(b"t\0\0\0\x017n");
        u.push(b'N');
        u.extend(2u16.to_be_bytes());
        u.extend(b"t\0\0\0\x018u");
        let update = decode(Bytes::from(u)).unwrap();
        assert_eq!(
            update,
            PgOutput::Update {
                relation: 16384,
                old: Some((OldImage::Key, vec![Datum::Text(Bytes::from_static(b"7")), Datum::Null])),
                new: vec![Datum::Text(Bytes::from_static(b"8")), Datum::Unchanged],
            }
        );
    }

    #[test]
    fn an_update_without_an_old_image_and_begin_commit_decode() {
        let mut u = vec![b'U'];
        u.extend(1u32.to_be_bytes());
        u.push(b'N');
        u.extend(1u16.to_be_bytes());
        u.push(b'n');
        assert_eq!(
            decode(Bytes::from(u)).unwrap(),
            PgOutput::Update { relation: 1, old: None, new: vec![Datum::Null] }
        );
        let mut b = vec![b'B'];
        b.extend(0x10u64.to_be_bytes());
        b.extend(5i64.to_be_bytes());
        b.extend(700u32.to_be_bytes());
        assert_eq!(
            decode(Bytes::from(b)).unwrap(),
            PgOutput::Begin { final_lsn: Lsn(0x10), commit_time_micros: 5, xid: 700 }
        );
    }

    #[test]
    fn every_truncation_of_a_message_is_an_error_and_never_a_panic() {
        let whole = relation_bytes();
        for cut in 0..whole.len() {
            assert!(decode(Bytes::copy_from_slice(&whole[..cut])).is_err(), "cut at {cut}");
        }
        let mut extra = whole.clone();
        extra.push(0);
        assert!(decode(Bytes::from(extra)).unwrap_err().to_string().contains("left over"));
        let mut t = vec![b'T'];
        t.extend(u32::MAX.to_be_bytes());
        t.push(0);
        assert!(decode(Bytes::from(t)).is_err());
        assert!(decode(Bytes::from_static(b"Z")).unwrap_err().to_string().contains("unknown"));
    }
}
