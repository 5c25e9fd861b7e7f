//! Corruption tests: copies of a real log are damaged — bytes flipped,
//! files truncated or removed — and each open must give the documented
//! outcome (see `runnel_core::log`), never a panic and never wrong data:
//!
//! * active segment after a crash: cut at the first damaged batch, the rest kept;
//! * sealed segment, or any segment after a clean shutdown: reported as
//!   `Error::Corrupt` naming the file, at open or when the damaged batch is read;
//! * index files: rebuilt, every record still reads back;
//! * a missing segment file: reported at open.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{batch, open_log, Rng};
use runnel_core::log::{LogConfig, CLEAN_SHUTDOWN_FILE, RECOVERY_POINT_FILE};
use runnel_core::record::{batches, Compression};
use runnel_core::Error;

fn config() -> LogConfig {
    LogConfig { segment_bytes: 8 * 1024, index_interval_bytes: 256, ..LogConfig::default() }
}

type Contents = BTreeMap<i64, Vec<u8>>;

/// A reference log of several segments in every codec.
struct Reference {
    dir: tempfile::TempDir,
    contents: Contents,
}

impl Reference {
    fn build(clean: bool) -> Reference {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path(), config()).unwrap();
        let codecs =
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        for i in 0..150u64 {
            log.append(&mut batch(i, 1 + (i as usize % 9), codecs[i as usize % 5])).unwrap();
        }
        let contents = read_all(&log).unwrap();
        assert_eq!(contents.len() as i64, log.log_end_offset());
        assert!(log.segments().len() >= 5, "the reference spans several segments");
        if clean {
            log.close().unwrap();
        } else {
            // A crash after a flush: every sealed segment is below the
            // recovery point; only the active segment is unverified.
            log.flush().unwrap();
        }
        drop(log);
        assert_eq!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists(), clean);
        Reference { dir, contents }
    }

    /// A fresh copy to damage.
    fn copy(&self) -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
        copy
    }
}

fn read_all(log: &runnel_core::log::Log) -> runnel_core::Result<Contents> {
    let mut out = Contents::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let records = log.read_records(offset, 2048)?;
        let last = records.last().expect("data below the log end").offset;
        for r in records {
            out.insert(r.offset, r.value.unwrap().to_vec());
        }
        offset = last + 1;
    }
    Ok(out)
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// (position, base offset, length) of each batch in a segment file.
fn batch_layout(path: &Path) -> Vec<(usize, i64, usize)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    for b in batches(&bytes) {
        let b = b.unwrap();
        out.push((pos, b.base_offset(), b.as_bytes().len()));
        pos += b.as_bytes().len();
    }
    out
}

fn flip(path: &Path, position: usize, rng: &mut Rng) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[position] ^= 1 << rng.below(8);
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn below(contents: &Contents, end: i64) -> Contents {
    contents.range(..end).map(|(k, v)| (*k, v.clone())).collect()
}

fn assert_corrupt_names(err: &Error, file: &Path) {
    match err {
        Error::Corrupt { path, .. } => assert_eq!(path, file, "{err}"),
        other => panic!("expected a corruption error naming {}, got {other}", file.display()),
    }
}

#[test]
fn a_torn_active_segment_is_cut_to_its_last_whole_batch() {
    let reference = Reference::build(false);
    let mut rng = Rng::from_time();
    for _ in 0..30 {
        let copy = reference.copy();
        let active = files(copy.path(), ".log").pop().unwrap();
        let layout = batch_layout(&active);
        let size = std::fs::metadata(&active).unwrap().len();
        let cut = rng.below(size);
        truncate(&active, cut);
        let kept_end = layout
            .iter()
            .find(|(pos, _, len)| (pos + len) as u64 > cut)
            .map_or(reference.contents.len() as i64, |(_, base, _)| *base);
        let log = open_log(copy.path(), config()).unwrap();
        assert_eq!(log.log_end_offset(), kept_end, "cut at {cut}");
        assert_eq!(read_all(&log).unwrap(), below(&reference.contents, kept_end));
        assert_eq!(log.append(&mut batch(999, 2, Compression::Lz4)).unwrap().first_offset, kept_end);
        assert_eq!(read_all(&log).unwrap().len() as i64, kept_end + 2);
    }
}

#[test]
fn a_flipped_byte_in_the_active_segment_cuts_from_the_damaged_batch() {
    let reference = Reference::build(false);
    let mut rng = Rng::from_time();
    for _ in 0..60 {
        let copy = reference.copy();
        let active = files(copy.path(), ".log").pop().unwrap();
        let layout = batch_layout(&active);
        let size = std::fs::metadata(&active).unwrap().len();
        let at = rng.below(size) as usize;
        flip(&active, at, &mut rng);
        let &(pos, base, _) = layout.iter().rev().find(|(pos, _, _)| *pos <= at).unwrap();
        // Bytes 12..16 (partition leader epoch) are outside the CRC and carry no data.
        let harmless = (12..16).contains(&(at - pos));
        let log = open_log(copy.path(), config()).unwrap();
        let want = if harmless { reference.contents.clone() } else { below(&reference.contents, base) };
        assert_eq!(read_all(&log).unwrap(), want, "flip at {at} (batch at {pos})");
    }
}

/// Every read either returns the original records or reports corruption in
/// `damaged`; returns whether any corruption was reported.
fn check_reads_are_exact_or_report(
    log: &runnel_core::log::Log,
    reference: &Contents,
    damaged: &Path,
) -> bool {
    let mut reported = false;
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        match log.read_records(offset, 1024) {
            Ok(records) => {
                assert_eq!(records[0].offset, offset, "a read never skips offsets");
                for r in &records {
                    assert_eq!(
                        Some(&r.value.as_ref().unwrap().to_vec()),
                        reference.get(&r.offset),
                        "offset {}",
                        r.offset
                    );
                }
                offset = records.last().unwrap().offset + 1;
            }
            Err(e) => {
                assert_corrupt_names(&e, damaged);
                reported = true;
                offset += 1;
            }
        }
    }
    reported
}

#[test]
fn damage_in_a_sealed_segment_is_reported_never_skipped() {
    let mut rng = Rng::from_time();
    for clean in [false, true] {
        let reference = Reference::build(clean);
        for _ in 0..40 {
            let copy = reference.copy();
            let mut logs = files(copy.path(), ".log");
            logs.pop(); // the active segment
            let target = logs[rng.below(logs.len() as u64) as usize].clone();
            let layout = batch_layout(&target);
            let size = std::fs::metadata(&target).unwrap().len();
            let at = rng.below(size) as usize;
            flip(&target, at, &mut rng);
            let &(pos, _, _) = layout.iter().rev().find(|(pos, _, _)| *pos <= at).unwrap();
            let harmless = (12..16).contains(&(at - pos));
            match open_log(copy.path(), config()) {
                Err(e) => {
                    assert!(!harmless, "a harmless flip must not fail the open: {e}");
                    assert_corrupt_names(&e, &target);
                }
                Ok(log) => {
                    let reported = check_reads_are_exact_or_report(&log, &reference.contents, &target);
                    assert_eq!(reported, !harmless, "flip at {at} of {} (batch at {pos})", target.display());
                }
            }
        }
    }
}

#[test]
fn without_a_recovery_point_every_segment_is_verified_and_cut_at_the_first_damage() {
    let reference = Reference::build(false);
    let mut rng = Rng::from_time();
    for _ in 0..20 {
        let copy = reference.copy();
        std::fs::remove_file(copy.path().join(RECOVERY_POINT_FILE)).unwrap();
        let logs = files(copy.path(), ".log");
        let target = logs[rng.below(logs.len() as u64 - 1) as usize].clone();
        let layout = batch_layout(&target);
        let size = std::fs::metadata(&target).unwrap().len();
        let cut = rng.below(size);
        truncate(&target, cut);
        let kept_end =
            layout.iter().find(|(pos, _, len)| (pos + len) as u64 > cut).map(|(_, base, _)| *base).unwrap();
        let log = open_log(copy.path(), config()).unwrap();
        assert_eq!(log.log_end_offset(), kept_end);
        assert_eq!(read_all(&log).unwrap(), below(&reference.contents, kept_end));
        let later = files(copy.path(), ".log");
        assert_eq!(later.last().unwrap(), &target, "segments after the cut are removed");
        assert_eq!(log.append(&mut batch(7, 3, Compression::Zstd)).unwrap().first_offset, kept_end);
    }
}

#[test]
fn a_segment_that_lost_whole_batches_after_the_recovery_point_is_cut_there() {
    // A crash right after a roll: the rolled segment's unflushed tail is gone
    // on a batch boundary, so nothing looks torn, yet it stops short of the
    // next segment.
    let reference = Reference::build(false);
    let copy = reference.copy();
    std::fs::remove_file(copy.path().join(RECOVERY_POINT_FILE)).unwrap();
    let logs = files(copy.path(), ".log");
    let target = logs[logs.len() - 2].clone();
    let layout = batch_layout(&target);
    let (pos, base, _) = layout[layout.len() / 2];
    truncate(&target, pos as u64);
    let log = open_log(copy.path(), config()).unwrap();
    assert_eq!(log.log_end_offset(), base);
    assert_eq!(read_all(&log).unwrap(), below(&reference.contents, base));
    assert_eq!(files(copy.path(), ".log").last().unwrap(), &target);
}

#[test]
fn a_truncated_sealed_segment_is_reported_at_open() {
    let mut rng = Rng::from_time();
    for clean in [false, true] {
        let reference = Reference::build(clean);
        for _ in 0..25 {
            let copy = reference.copy();
            let mut logs = files(copy.path(), ".log");
            logs.pop();
            let target = logs[rng.below(logs.len() as u64) as usize].clone();
            let size = std::fs::metadata(&target).unwrap().len();
            let cut = rng.below(size);
            truncate(&target, cut);
            let err =
                open_log(copy.path(), config()).expect_err("a shortened sealed segment is never accepted");
            assert_corrupt_names(&err, &target);
        }
    }
}

#[test]
fn a_truncated_active_segment_after_a_clean_shutdown_is_reported_at_open() {
    let reference = Reference::build(true);
    let mut rng = Rng::from_time();
    for _ in 0..20 {
        let copy = reference.copy();
        let active = files(copy.path(), ".log").pop().unwrap();
        let size = std::fs::metadata(&active).unwrap().len();
        truncate(&active, rng.below(size));
        let err = open_log(copy.path(), config()).expect_err("clean data that shrank is reported");
        assert_corrupt_names(&err, &active);
    }
}

#[test]
fn a_missing_segment_file_is_reported_at_open() {
    let reference = Reference::build(true);
    let copy = reference.copy();
    let logs = files(copy.path(), ".log");
    std::fs::remove_file(&logs[2]).unwrap();
    let err = open_log(copy.path(), config()).unwrap_err();
    assert_corrupt_names(&err, &logs[1]);
    assert!(err.to_string().contains("data is missing"), "{err}");
}

#[test]
fn damaged_index_files_are_rebuilt_and_every_record_reads_back() {
    let mut rng = Rng::from_time();
    for clean in [false, true] {
        let reference = Reference::build(clean);
        for _ in 0..40 {
            let copy = reference.copy();
            let mut indexes = files(copy.path(), ".index");
            indexes.extend(files(copy.path(), ".timeindex"));
            let target = indexes[rng.below(indexes.len() as u64) as usize].clone();
            let size = std::fs::metadata(&target).unwrap().len();
            if size == 0 {
                continue;
            }
            if rng.below(2) == 0 {
                flip(&target, rng.below(size) as usize, &mut rng);
            } else {
                truncate(&target, rng.below(size));
            }
            let log = open_log(copy.path(), config()).unwrap_or_else(|e| panic!("{}: {e}", target.display()));
            assert_eq!(read_all(&log).unwrap(), reference.contents, "{}", target.display());
            for offset in (0..reference.contents.len() as i64).step_by(7) {
                assert_eq!(log.read_records(offset, 1).unwrap()[0].offset, offset);
            }
        }
    }
}

#[test]
fn garbage_files_never_panic_the_open() {
    let mut rng = Rng::from_time();
    for _ in 0..30 {
        let dir = tempfile::tempdir().unwrap();
        let len = rng.below(4096) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        std::fs::write(dir.path().join("00000000000000000000.log"), &bytes).unwrap();
        if rng.below(2) == 0 {
            std::fs::write(dir.path().join("00000000000000000000.index"), &bytes[..len / 2]).unwrap();
            std::fs::write(dir.path().join(CLEAN_SHUTDOWN_FILE), b"log_end_offset=5 active_segment_size=99")
                .unwrap();
        }
        match open_log(dir.path(), config()) {
            Ok(log) => {
                let _ = read_all(&log);
            }
            Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e}"),
        }
    }
}
