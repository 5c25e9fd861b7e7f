//! The README's main job, `examples/quickstart.rs`, run as CI runs it: the
//! whole pipeline (file source → topic → Streams windowed count → topic →
//! file sink) over the sample click log, with its output checked against
//! counts computed here straight from the sample file.

use std::collections::BTreeMap;

#[path = "../examples/quickstart.rs"]
#[allow(dead_code)]
mod quickstart;

use quickstart::{parse_click, Options, GRACE, SAMPLE, WINDOW};

#[test]
fn the_parser_reads_the_log_format_and_refuses_what_is_not_a_click() {
    let click = parse_click("2026-12-01T09:00:05.830Z user-02 /pricing").unwrap();
    // 2026-12-01T09:00:05.830Z, as `date -u -d 2026-12-01T09:00:05.830Z +%s%3N` prints it.
    assert_eq!(click.timestamp_ms, 1_796_115_605_830);
    assert_eq!((click.user, click.page), ("user-02", "/pricing"));
    assert_eq!(quickstart::format_utc(1_796_115_605_830), "2026-12-01T09:00:05Z");
    assert_eq!(parse_click("2024-02-29T23:59:59Z u /").unwrap().timestamp_ms, 1_709_251_199_000);
    for bad in [
        "2026-12-01T09:14:1",
        "2026-13-01T09:33:00.000Z user-03 /docs",
        "2026-02-30T09:33:00.000Z user-03 /docs",
        "-- log rotated --",
        "2026-12-01T09:00:05.830Z user-02",
        "2026-12-01T09:00:05.830Z user-02 /a extra",
        "2026-12-01T24:00:00Z user-02 /",
    ] {
        assert_eq!(parse_click(bad), None, "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_job_counts_every_click_of_the_sample_in_its_window() {
    // What the pipeline must produce, from the file alone.
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let clicks: Vec<_> = lines.iter().filter_map(|l| parse_click(l)).collect();
    let size = WINDOW.as_millis() as i64;
    let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for c in &clicks {
        *expected
            .entry((c.timestamp_ms - c.timestamp_ms.rem_euclid(size), c.user.to_string()))
            .or_default() += 1;
    }
    // No click is later than the grace behind the newest click before it,
    // so none may be dropped (whatever partition its user lands on).
    let mut newest = clicks[0].timestamp_ms;
    let mut worst_lateness = 0;
    for c in &clicks {
        worst_lateness = worst_lateness.max(newest - c.timestamp_ms);
        newest = newest.max(c.timestamp_ms);
    }
    assert!(worst_lateness > 0, "the sample has out-of-order clicks");
    assert!(worst_lateness < GRACE.as_millis() as i64);
    // The sample is a real test of the pipeline: many windows, and lines
    // that must be skipped.
    assert!(expected.len() > 100, "{} windows", expected.len());
    assert_eq!(lines.len() - clicks.len(), 3, "malformed lines in the sample");

    let dir = tempfile::tempdir().unwrap();
    let options = Options { input: SAMPLE.into(), work_dir: dir.path().to_path_buf(), progress: false };
    let summary = quickstart::run(&options).await.unwrap();

    assert_eq!(summary.lines_in_file, lines.len() as u64);
    assert_eq!(summary.source_records, lines.len() as u64, "records in = records out of the source");
    assert_eq!(summary.malformed, 3);
    assert_eq!(summary.dropped_late, 0);
    assert_eq!(summary.windows.len(), expected.len(), "windows out");
    assert_eq!(summary.windows, expected, "final count per window");
    assert_eq!(summary.windows.values().sum::<u64>(), clicks.len() as u64);
    assert!(summary.updates >= expected.len() as u64);
    let written = std::fs::read_to_string(&summary.output).unwrap();
    assert_eq!(written.lines().count() as u64, summary.updates);
}
