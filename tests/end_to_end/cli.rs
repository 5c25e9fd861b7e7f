//! The `runnel` binary manages topics in an embedded data directory: each
//! command runs as its own process against the same directory.

use std::process::Command;

fn runnel(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("--cluster")
        .arg(format!("file:{}", dir.display()))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn topics_can_be_created_listed_described_grown_and_deleted_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = runnel(
        dir.path(),
        &["topics", "create", "clicks", "--partitions", "3", "--config", "retention.ms=3600000"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("created topic clicks with 3 partition(s)"), "{out}");
    runnel(dir.path(), &["topics", "create", "orders"]);

    let (ok, out, _) = runnel(dir.path(), &["topics", "list"]);
    assert!(ok);
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["clicks", "orders"]);

    let (ok, out, _) = runnel(
        dir.path(),
        &["topics", "alter", "clicks", "--partitions", "4", "--config", "cleanup.policy=compact"],
    );
    assert!(ok, "{out}");
    let (ok, out, _) = runnel(dir.path(), &["topics", "describe", "clicks"]);
    assert!(ok);
    assert!(out.contains("partitions: 4") && out.contains("retention.ms=3600000"), "{out}");
    assert!(out.contains("cleanup.policy=compact"), "{out}");
    assert_eq!(out.matches("offsets 0..0").count(), 4, "{out}");

    let (ok, _, _) = runnel(dir.path(), &["topics", "delete", "clicks"]);
    assert!(ok);
    let (_, out, _) = runnel(dir.path(), &["topics", "list"]);
    assert_eq!(out.trim(), "orders");
}

#[test]
fn bad_requests_fail_with_a_message_that_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["topics", "create", "a b"], "invalid topic name 'a b'"),
        (&["topics", "create", "t", "--config", "retention.msec=1"], "invalid config retention.msec"),
        (&["topics", "create", "t", "--config", "retention.ms"], "is not key=value"),
        (&["topics", "describe", "missing"], "unknown topic 'missing'"),
    ];
    for (args, needle) in cases {
        let (ok, _, err) = runnel(dir.path(), args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["--cluster", "kafka://127.0.0.1:1", "topics", "list"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("reach kafka://127.0.0.1:1"), "{err}");
}

fn runnel_stdin(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("--cluster")
        .arg(format!("file:{}", dir.display()))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn records_round_trip_through_produce_consume_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    runnel(dir.path(), &["topics", "create", "lines", "--partitions", "2"]);
    let input: String = (0..20).map(|i| format!("key{}:value {i}\n", i % 3)).collect();
    let (ok, _, err) = runnel_stdin(
        dir.path(),
        &["produce", "lines", "--key-separator", ":", "--header", "source=cli"],
        &input,
    );
    assert!(ok, "{err}");
    assert!(err.contains("produced 20 record(s) to lines"), "{err}");

    let (ok, out, err) = runnel(
        dir.path(),
        &[
            "consume",
            "lines",
            "--group",
            "readers",
            "--from-beginning",
            "--max-messages",
            "20",
            "--print-key",
            "--print-metadata",
        ],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 20, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("partition=") && l.contains("\tkey")), "{out}");
    let mut values: Vec<&str> = lines.iter().map(|l| l.rsplit('\t').next().unwrap()).collect();
    values.sort_by_key(|v| v[6..].parse::<u32>().unwrap());
    assert_eq!(values, (0..20).map(|i| format!("value {i}")).collect::<Vec<_>>());

    // The group committed its positions: nothing left, lag 0.
    let (ok, out, _) = runnel(dir.path(), &["groups", "describe", "readers"]);
    assert!(ok);
    assert!(out.contains("state: Empty"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("lines")).count(), 2);
    assert!(
        out.lines().filter(|l| l.starts_with("lines")).all(|l| l.split_whitespace().nth(4) == Some("0")),
        "{out}"
    );

    // Reset to the beginning: a dry run changes nothing, --execute does.
    let (ok, out, err) =
        runnel(dir.path(), &["groups", "reset-offsets", "readers", "--topic", "lines", "--to-earliest"]);
    assert!(ok && err.contains("dry run"), "{err}");
    assert!(out.lines().all(|l| l.ends_with("\t0")), "{out}");
    let (_, out, _) = runnel(dir.path(), &["groups", "describe", "readers"]);
    assert!(out.lines().filter(|l| l.starts_with("lines")).all(|l| l.split_whitespace().nth(4) == Some("0")));
    let (ok, _, _) = runnel(
        dir.path(),
        &["groups", "reset-offsets", "readers", "--topic", "lines", "--to-earliest", "--execute"],
    );
    assert!(ok);
    let (_, out, _) = runnel(dir.path(), &["groups", "describe", "readers"]);
    let lag: u64 = out
        .lines()
        .filter(|l| l.starts_with("lines"))
        .map(|l| l.split_whitespace().nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(lag, 20);

    // Positions chosen by hand, and silence ends the command.
    let (ok, out, _) =
        runnel(dir.path(), &["consume", "lines", "--partition", "0", "--offset", "1", "--timeout-ms", "300"]);
    assert!(ok);
    assert!(!out.is_empty());
    let (ok, out, _) = runnel(dir.path(), &["groups", "list"]);
    assert!(ok && out.contains("readers"));
    let (ok, _, _) = runnel(dir.path(), &["groups", "delete", "readers"]);
    assert!(ok);
    let (ok, _, err) = runnel(dir.path(), &["groups", "describe", "readers"]);
    assert!(!ok && err.contains("unknown group 'readers'"), "{err}");
}

#[test]
fn bench_prints_throughput_and_latency_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = runnel(
        dir.path(),
        &[
            "bench",
            "produce",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--partitions",
            "4",
            "--json",
            "--reference",
        ],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["records"], 20000);
    assert!(v["records_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["latency"]["p99_ms"].as_f64().unwrap() >= v["latency"]["p50_ms"].as_f64().unwrap());
    assert!(v["client_to_log_ratio"].as_f64().unwrap() > 0.0);
    let (ok, out, err) = runnel(dir.path(), &["bench", "consume", "--json", "--reference"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["records"], 20000);
    let (ok, out, err) = runnel(
        dir.path(),
        &["bench", "end-to-end", "--num-records", "5000", "--throughput", "20000", "--json"],
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["latency"]["p99_ms"].as_f64().is_some());
    let (ok, _, err) = runnel(dir.path(), &["bench", "produce", "--num-records", "x"]);
    assert!(!ok && err.contains("invalid value 'x'"), "{err}");
}
