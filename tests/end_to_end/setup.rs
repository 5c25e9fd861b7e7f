//! `scripts/setup`, the set-up code both README commands and `.ci/run`
//! call, run against this machine: what is present is reported present and
//! not installed again, and a missing package is named.

use std::process::{Command, Output};

const SETUP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/setup");

fn setup(args: &[&str], extra_debs: Option<&str>) -> Output {
    let mut command = Command::new(SETUP);
    command.args(args).env_remove("RUNNEL_SETUP_EXTRA_DEBS");
    if let Some(extra) = extra_debs {
        command.env("RUNNEL_SETUP_EXTRA_DEBS", extra);
    }
    command.output().expect("run scripts/setup")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Whether dpkg records `package` as installed.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout == b"installed")
}

fn debian() -> bool {
    let ok = Command::new("dpkg-query").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("\n*** SKIPPING: not a Debian/Ubuntu machine (no dpkg-query) ***\n");
    }
    ok
}

#[test]
fn detection_names_a_missing_package_and_only_the_missing_ones() {
    if !debian() {
        return;
    }
    let missing = "runnel-no-such-package";
    let out = setup(&["--check", "test"], Some(missing));
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let line = said.lines().find(|l| l.starts_with("setup: missing debian packages:")).unwrap_or_else(|| {
        panic!("no `missing debian packages` line in:\n{said}");
    });
    let named: Vec<&str> =
        line.trim_start_matches("setup: missing debian packages:").split_whitespace().collect();
    assert!(named.contains(&missing), "{line}");
    for package in ["build-essential", "pkg-config", "libclang-dev", "kcat"] {
        assert_eq!(named.contains(&package), !installed(package), "{package} in {line:?}");
    }
}

#[test]
fn a_machine_with_everything_is_left_alone() {
    if !debian() {
        return;
    }
    let check = setup(&["--check", "build"], None);
    if !check.status.success() {
        // Only on a developer machine that lacks packages: this test never
        // installs anything itself. CI runs scripts/setup first, so there
        // everything is present and the rest of the test runs.
        eprintln!("\n*** SKIPPING: build packages are missing here:\n{} ***\n", text(&check));
        return;
    }
    assert_eq!(text(&check).trim(), "setup: nothing missing for build");
    let run = setup(&["build"], None);
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(text(&run), "", "nothing to install, so nothing to say");
}

#[test]
fn an_unknown_purpose_is_refused_with_its_name() {
    let out = setup(&["deploy"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("unknown purpose 'deploy'"), "{}", text(&out));
}
