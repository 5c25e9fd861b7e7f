//! The README's main job, `examples/quickstart.rs`, run as CI runs it: the
//! whole pipeline (file sources → topics → Streams: clicks left-joined with
//! the users table, windowed count → topic → file sink) over the sample
//! click log and users file, with its output checked against counts and
//! regions computed here straight from the sample files.

use std::collections::BTreeMap;

#[path = "../../examples/quickstart.rs"]
#[allow(dead_code)]
mod example;

use example::{parse_click, parse_user, Options, GRACE, SAMPLE, UNKNOWN_REGION, USERS_SAMPLE, WINDOW};

#[test]
fn the_parser_reads_the_log_format_and_refuses_what_is_not_a_click() {
    let click = parse_click("2026-12-01T09:00:05.830Z user-02 /pricing").unwrap();
    // 2026-12-01T09:00:05.830Z, as `date -u -d 2026-12-01T09:00:05.830Z +%s%3N` prints it.
    assert_eq!(click.timestamp_ms, 1_796_115_605_830);
    assert_eq!((click.user, click.page), ("user-02", "/pricing"));
    assert_eq!(example::format_utc(1_796_115_605_830), "2026-12-01T09:00:05Z");
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
    let users_text = std::fs::read_to_string(USERS_SAMPLE).unwrap();
    let regions: BTreeMap<&str, &str> =
        users_text.lines().map(|l| parse_user(l).unwrap()).map(|u| (u.user, u.region)).collect();
    let size = WINDOW.as_millis() as i64;
    let mut expected: BTreeMap<(i64, String), (String, u64)> = BTreeMap::new();
    for c in &clicks {
        let region = regions.get(c.user).copied().unwrap_or(UNKNOWN_REGION).to_string();
        expected
            .entry((c.timestamp_ms - c.timestamp_ms.rem_euclid(size), c.user.to_string()))
            .or_insert((region, 0))
            .1 += 1;
    }
    // The join is exercised both ways: users in the table, one who is not.
    let unknown = clicks.iter().filter(|c| !regions.contains_key(c.user)).count();
    assert!(unknown > 0 && unknown < clicks.len(), "{unknown} clicks of users not in the table");
    assert!(regions.values().collect::<std::collections::BTreeSet<_>>().len() >= 3);
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
    let options = Options {
        input: SAMPLE.into(),
        users: USERS_SAMPLE.into(),
        work_dir: dir.path().to_path_buf(),
        progress: false,
    };
    let summary = example::run(&options).await.unwrap();

    assert_eq!(summary.lines_in_file, lines.len() as u64);
    assert_eq!(summary.source_records, lines.len() as u64, "records in = records out of the source");
    assert_eq!(summary.malformed, 3);
    assert_eq!((summary.users, summary.malformed_users), (regions.len() as u64, 0));
    assert_eq!(summary.dropped_late, 0);
    assert_eq!(summary.windows.len(), expected.len(), "windows out");
    assert_eq!(summary.windows, expected, "final region and count per window");
    assert_eq!(summary.windows.values().map(|(_, n)| n).sum::<u64>(), clicks.len() as u64);
    assert!(summary.updates >= expected.len() as u64);
    let written = std::fs::read_to_string(&summary.output).unwrap();
    assert_eq!(written.lines().count() as u64, summary.updates);
}
