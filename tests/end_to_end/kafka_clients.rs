//! Real Kafka clients against `runnel broker`, run as its own process:
//! kcat (librdkafka) and kafka-python. Without the tools these tests skip
//! loudly, unless `RUNNEL_REQUIRE_CLIENTS=1` (CI sets it) makes that a
//! failure.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct BrokerProcess {
    child: Child,
    addr: String,
    metrics: String,
}

impl BrokerProcess {
    fn start(dir: &Path) -> BrokerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["broker", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--data"])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start runnel broker");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("broker printed nothing").unwrap();
        let addr = first.rsplit(' ').next().unwrap().to_string();
        let second = lines.next().expect("no metrics line").unwrap();
        let metrics = second.trim_start_matches("metrics at ").to_string();
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        BrokerProcess { child, addr, metrics }
    }

    /// SIGTERM, then the exit status (it must stop within 20 s).
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "broker did not stop within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `tool` runs here; panics instead of skipping under
/// `RUNNEL_REQUIRE_CLIENTS=1`.
fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("RUNNEL_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!("{tool} is required (RUNNEL_REQUIRE_CLIENTS=1) but `{tool} {}` failed", probe.join(" "));
        }
        eprintln!(
            "\n*** SKIPPING: {tool} is not installed (apt-get install kcat / pip install kafka-python) ***\n"
        );
    }
    ok
}

fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kcat {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn kafka_python_creates_produces_consumes_and_resumes_a_group() {
    if !have("python3", &["-c", "import kafka"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/kafka_python_check.py");
    let out = Command::new("python3").arg(script).arg(&broker.addr).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "kafka-python check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
    assert!(broker.stop().success());
}

#[test]
fn kcat_produces_consumes_lists_and_resumes_a_group_and_the_broker_stops_cleanly() {
    if !have("kcat", &["-V"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let b = broker.addr.clone();
    let lines: Vec<String> = (0..500).map(|i| format!("key{}:line {i}", i % 7)).collect();
    kcat(&["-b", &b, "-P", "-t", "kc", "-K", ":", "-z", "lz4"], Some(&(lines.join("\n") + "\n")));

    let read = kcat(&["-b", &b, "-C", "-t", "kc", "-o", "beginning", "-e", "-q", "-f", "%k:%s\n"], None);
    assert_eq!(read.lines().collect::<Vec<_>>(), lines, "kcat read back something else");

    let listing = kcat(&["-b", &b, "-L", "-t", "kc"], None);
    assert!(listing.contains("topic \"kc\" with 1 partitions"), "{listing}");

    // A balanced consumer (group protocol) reads everything and commits;
    // after more is produced, the same group resumes with only the new part.
    let group_args = [
        "-b",
        &b,
        "-G",
        "kc-group",
        "-X",
        "auto.offset.reset=earliest",
        "-e",
        "-q",
        "-f",
        "%s\n",
        "-X",
        "auto.commit.interval.ms=100",
        "kc",
    ];
    let first = kcat(&group_args, None);
    assert_eq!(first.lines().count(), 500, "group read {first}");
    kcat(&["-b", &b, "-P", "-t", "kc"], Some("late 1\nlate 2\n"));
    let second = kcat(&group_args, None);
    assert_eq!(second.lines().collect::<Vec<_>>(), vec!["late 1", "late 2"], "group did not resume");

    // Metrics report what went through.
    let metrics = http_get(&broker.metrics);
    assert!(metrics.contains("runnel_topic_records_in_total{topic=\"kc\"} 502"), "{metrics}");
    assert!(metrics.contains("runnel_request_duration_seconds_count{api=\"JoinGroup\"}"), "{metrics}");
    assert!(
        metrics.contains("runnel_consumer_lag{group=\"kc-group\",topic=\"kc\",partition=\"0\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("runnel_topic_records_out_total{topic=\"kc\"}"), "{metrics}");
    assert!(metrics.contains("# TYPE runnel_connections gauge"), "{metrics}");

    // SIGTERM: a clean stop (logs fsynced and marked clean), and everything
    // is there after a restart.
    let status = broker.stop();
    assert!(status.success(), "broker exited with {status}");
    assert!(dir.path().join("kc-0/.clean-shutdown").exists(), "the log was closed cleanly");
    let broker = BrokerProcess::start(dir.path());
    let again =
        kcat(&["-b", &broker.addr, "-C", "-t", "kc", "-o", "beginning", "-e", "-q", "-f", "%s\n"], None);
    assert_eq!(again.lines().count(), 502);
    assert!(broker.stop().success());
}

fn http_get(url: &str) -> String {
    let hostport = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut stream = std::net::TcpStream::connect(hostport).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {hostport}\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}
