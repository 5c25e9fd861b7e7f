//! Sequential reading of whole batches from a segment file, used by recovery,
//! index rebuilds, timestamp search and the cleaner.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::record::{BatchHeader, RecordBatch, BATCH_HEADER_LEN};
use crate::{Error, Result};

/// Why a scan stopped before the end of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// File position of the first byte that is not part of a valid batch.
    pub(crate) position: u64,
    /// What is wrong there.
    pub(crate) reason: String,
}

/// Reads batches from `[start, end)` of a file through a reusable buffer.
#[derive(Debug)]
pub(crate) struct BatchScanner<'f> {
    file: &'f File,
    path: &'f Path,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    buf_pos: u64,
    buf_len: usize,
    chunk: usize,
}

/// One batch read by [`BatchScanner::next_batch`].
#[derive(Debug)]
pub(crate) struct ScannedBatch<'a> {
    pub(crate) position: u64,
    pub(crate) batch: RecordBatch<'a>,
}

impl<'f> BatchScanner<'f> {
    pub(crate) fn new(file: &'f File, path: &'f Path, start: u64, end: u64, chunk: usize) -> Self {
        BatchScanner { file, path, pos: start, end, buf: Vec::new(), buf_pos: start, buf_len: 0, chunk }
    }

    /// Makes `[self.pos, self.pos + need)` available in the buffer.
    fn fill(&mut self, need: usize) -> Result<()> {
        let have_from = (self.pos - self.buf_pos) as usize;
        if have_from + need <= self.buf_len {
            return Ok(());
        }
        // Shift the unread tail to the front, then read more.
        self.buf.copy_within(have_from..self.buf_len, 0);
        self.buf_len -= have_from;
        self.buf_pos = self.pos;
        let want = need.max(self.chunk).min((self.end - self.buf_pos) as usize);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.buf_len < want {
            let n = self
                .file
                .read_at(&mut self.buf[self.buf_len..want], self.buf_pos + self.buf_len as u64)
                .map_err(Error::io("read", self.path))?;
            if n == 0 {
                break;
            }
            self.buf_len += n;
        }
        Ok(())
    }

    /// The next batch, `Ok(Ok(None))` at the end of the range, or
    /// `Ok(Err(invalid))` where the bytes stop being a well-formed batch
    /// (torn write, bad header, bad CRC). I/O failures are the outer error.
    pub(crate) fn next_batch(
        &mut self,
        verify_crc: bool,
    ) -> Result<Result<Option<ScannedBatch<'_>>, Invalid>> {
        if self.pos >= self.end {
            return Ok(Ok(None));
        }
        let left = self.end - self.pos;
        let here = self.pos;
        let invalid = |reason: String| Invalid { position: here, reason };
        if left < BATCH_HEADER_LEN as u64 {
            return Ok(Err(invalid(format!("{left} trailing bytes are too short for a batch header"))));
        }
        self.fill(BATCH_HEADER_LEN)?;
        let at = (self.pos - self.buf_pos) as usize;
        if self.buf_len < at + BATCH_HEADER_LEN {
            return Ok(Err(invalid("file ended while reading a batch header".into())));
        }
        let header = match BatchHeader::parse(&self.buf[at..at + BATCH_HEADER_LEN]) {
            Ok(h) => h,
            Err(e) => return Ok(Err(invalid(format!("bad batch header: {e}")))),
        };
        let total = header.total_len();
        if total as u64 > left {
            return Ok(Err(invalid(format!(
                "batch of {total} bytes runs past the end of the data ({left} bytes left)"
            ))));
        }
        self.fill(total)?;
        let at = (self.pos - self.buf_pos) as usize;
        if self.buf_len < at + total {
            return Ok(Err(invalid("file ended inside a batch".into())));
        }
        let position = self.pos;
        let batch = match RecordBatch::parse(&self.buf[at..at + total]) {
            Ok(b) => b,
            Err(e) => return Ok(Err(invalid(e.to_string()))),
        };
        if verify_crc {
            if let Err(e) = batch.verify_crc() {
                return Ok(Err(Invalid { position, reason: e.to_string() }));
            }
        }
        self.pos += total as u64;
        Ok(Ok(Some(ScannedBatch { position, batch })))
    }
}
