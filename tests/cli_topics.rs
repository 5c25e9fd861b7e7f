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

    let (ok, out, _) = runnel(dir.path(), &["topics", "add-partitions", "clicks", "--total", "4"]);
    assert!(ok, "{out}");
    let (ok, out, _) = runnel(dir.path(), &["topics", "describe", "clicks"]);
    assert!(ok);
    assert!(out.contains("partitions: 4") && out.contains("retention.ms=3600000"), "{out}");
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
        .args(["--cluster", "kafka://localhost:9092", "topics", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not available yet"));
}
