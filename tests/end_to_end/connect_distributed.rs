//! `runnel connect --distributed` end to end (issue 6, point 7): a
//! `runnel broker` process and two distributed worker processes sharing
//! config, offsets and status topics through it.
//!
//! - A file → topic → file pipeline split over both workers; one worker is
//!   SIGKILLed mid-stream; the survivor takes its connector and task (the
//!   status API shows everything RUNNING on the survivor) and the output
//!   file equals the input file exactly.
//! - Adding a second connector does not restart the first one's task
//!   (incremental assignment).
//!
//! Every wait is on a condition with a generous deadline, never a fixed
//! sleep, so a loaded two-core machine only makes the tests slower.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The tests start several processes each: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const DEADLINE: Duration = Duration::from_secs(120);

/// A child process killed when dropped (a failed test leaves nothing behind).
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    fn sigterm(&mut self) -> bool {
        assert!(Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success());
        self.child.wait().unwrap().success()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `runnel broker` on a free port; returns it and its address.
fn start_broker(dir: &Path) -> (Proc, String) {
    let log = dir.join("broker.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["broker", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("broker-data"))
        .env("RUNNEL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the broker exited before serving").unwrap();
        if let Some((_, addr)) = line.split_once(" on ") {
            break addr.trim().to_string();
        }
    };
    (Proc { child, log }, addr)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a distributed worker; returns it and its REST address.
fn start_worker(dir: &Path, name: &str, broker: &str) -> (Proc, String) {
    let rest = format!("127.0.0.1:{}", free_port());
    let props = dir.join(format!("{name}.properties"));
    std::fs::write(
        &props,
        format!(
            "bootstrap.servers={broker}\ngroup.id=connect-cluster\nlisteners=http://{rest}\n\
             key.converter=org.apache.kafka.connect.storage.StringConverter\n\
             value.converter=org.apache.kafka.connect.storage.StringConverter\n\
             offset.flush.interval.ms=100\noffset.storage.partitions=3\n\
             heartbeat.interval.ms=500\nsession.timeout.ms=6000\nscheduled.rebalance.max.delay.ms=2000\n\
             consumer.session.timeout.ms=6000\nconsumer.heartbeat.interval.ms=500\n"
        ),
    )
    .unwrap();
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("connect")
        .arg("--distributed")
        .arg(&props)
        .env("RUNNEL_LOG", "warn,runnel_connect=info,runnel_connectors=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut proc = Proc { child, log };
    wait_until("the worker's REST API", &mut [&mut proc], || try_http(&rest, "GET", "/", None).is_some());
    (proc, rest)
}

/// A blocking HTTP/1.1 request; `None` when nothing listens.
fn try_http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_string()))
}

fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    try_http(addr, method, path, body).unwrap_or_else(|| panic!("{method} {path} on {addr} failed"))
}

/// Polls `done` until true; fails (with the processes' logs) when one of
/// them exits or the deadline passes.
fn wait_until(what: &str, procs: &mut [&mut Proc], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        for p in procs.iter_mut() {
            if let Some(status) = p.child.try_wait().unwrap() {
                panic!("a process exited early ({status}) while waiting for {what}:\n{}", p.log());
            }
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = procs.iter().map(|p| p.log()).collect();
            panic!("timed out waiting for {what}; logs:\n{}", logs.join("\n-----\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(rest: &str, connector: &str) -> Option<Value> {
    let (code, body) = try_http(rest, "GET", &format!("/connectors/{connector}/status"), None)?;
    (code == 200).then(|| serde_json::from_str(&body).unwrap())
}

/// `(worker of the connector, workers of its tasks)` once the connector
/// and all its tasks are RUNNING.
fn running(rest: &str, connector: &str) -> Option<(String, Vec<String>)> {
    let s = status(rest, connector)?;
    if s["connector"]["state"] != "RUNNING" {
        return None;
    }
    let tasks = s["tasks"].as_array()?;
    if tasks.is_empty() || tasks.iter().any(|t| t["state"] != "RUNNING") {
        return None;
    }
    Some((
        s["connector"]["worker_id"].as_str()?.to_string(),
        tasks.iter().map(|t| t["worker_id"].as_str().unwrap_or_default().to_string()).collect(),
    ))
}

fn post_connector(rest: &str, name: &str, config: Value) {
    let body = json!({"name": name, "config": config}).to_string();
    let (code, answer) = http(rest, "POST", "/connectors", Some(&body));
    assert_eq!(code, 201, "{answer}");
}

/// The output length recorded by the file sink's last flush.
fn flushed_length(output: &Path) -> u64 {
    let mut path = output.as_os_str().to_owned();
    path.push(".offsets");
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v["length"].as_u64())
        .unwrap_or(0)
}

fn line_count(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0)
}

#[test]
fn two_workers_share_a_pipeline_and_the_survivor_of_a_sigkill_finishes_it_exactly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.txt"), dir.path().join("out.txt"));
    std::fs::write(&input, "").unwrap();
    let (mut broker, addr) = start_broker(dir.path());
    let (mut w1, rest1) = start_worker(dir.path(), "w1", &addr);
    let (mut w2, rest2) = start_worker(dir.path(), "w2", &addr);

    // Each connector through a different worker's REST API.
    post_connector(
        &rest1,
        "src",
        json!({"connector.class": "FileStreamSource", "file": input, "topic": "lines", "batch.size": "200", "tasks.max": "2"}),
    );
    post_connector(
        &rest2,
        "sink",
        json!({"connector.class": "FileStreamSink", "file": output, "topics": "lines", "tasks.max": "2"}),
    );
    let (mut src, mut sink) = (None, None);
    wait_until("both connectors RUNNING", &mut [&mut broker, &mut w1, &mut w2], || {
        src = running(&rest1, "src");
        sink = running(&rest2, "sink");
        src.is_some() && sink.is_some()
    });
    let (src, sink) = (src.unwrap(), sink.unwrap());
    let workers: std::collections::BTreeSet<&String> =
        [&src.0, &sink.0].into_iter().chain(&src.1).chain(&sink.1).collect();
    assert_eq!(workers.len(), 2, "both workers get work: src {src:?}, sink {sink:?}");
    // The status of the whole cluster is the same from either worker.
    wait_until("the same statuses from the other worker", &mut [&mut broker, &mut w1, &mut w2], || {
        running(&rest2, "src") == Some(src.clone()) && running(&rest1, "sink") == Some(sink.clone())
    });

    // A writer appends 20,000 lines while the pipeline runs.
    const TOTAL: usize = 20_000;
    let writer_input = input.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(writer_input).unwrap();
        for chunk in 0..(TOTAL / 500) {
            let mut buf = String::new();
            for i in chunk * 500..(chunk + 1) * 500 {
                buf.push_str(&format!("line {i} {}\n", "y".repeat(i % 29)));
            }
            f.write_all(buf.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    wait_until("the first lines through the pipeline", &mut [&mut broker, &mut w1, &mut w2], || {
        line_count(&output) >= 2_000
    });

    // Kill the worker running the source task; the other one survives.
    let src_rest = src.1[0].clone();
    let (victim, survivor, survivor_rest) =
        if src_rest == rest1 { (&mut w1, &mut w2, rest2.clone()) } else { (&mut w2, &mut w1, rest1.clone()) };
    victim.sigkill();
    let survivor_id = survivor_rest.clone();
    wait_until("the survivor running everything", &mut [&mut broker, &mut *survivor], || {
        let all_here = |r: Option<(String, Vec<String>)>| {
            r.is_some_and(|(c, t)| c == survivor_id && t.iter().all(|w| *w == survivor_id))
        };
        all_here(running(&survivor_rest, "src")) && all_here(running(&survivor_rest, "sink"))
    });

    writer.join().unwrap();
    let input_len = std::fs::metadata(&input).unwrap().len();
    let what = format!("a sink flush covering the whole input ({input_len} bytes, {TOTAL} lines)");
    let deadline = Instant::now() + DEADLINE;
    while flushed_length(&output) != input_len {
        if Instant::now() > deadline {
            let out = std::fs::read_to_string(&output).unwrap_or_default();
            let inp = std::fs::read_to_string(&input).unwrap();
            let first_diff = inp.lines().zip(out.lines()).position(|(a, b)| a != b);
            panic!(
                "timed out waiting for {what}: flushed {} bytes, output {} lines, first difference at line \
                 {first_diff:?}; survivor log:\n{}",
                flushed_length(&output),
                out.lines().count(),
                plain(&survivor.log())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(survivor.sigterm(), "{}", survivor.log());
    assert!(survivor.log().contains("stopped cleanly"), "{}", survivor.log());
    let (inp, out) = (std::fs::read_to_string(&input).unwrap(), std::fs::read_to_string(&output).unwrap());
    assert_eq!(out.lines().count(), TOTAL);
    for (n, (a, b)) in inp.lines().zip(out.lines()).enumerate() {
        assert_eq!(a, b, "line {n} differs");
    }
    assert_eq!(inp, out);
    assert!(broker.sigterm(), "{}", broker.log());
}

/// A log without its colour escapes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// How often the worker logs say `event` for `connector`.
fn task_events(procs: &[&Proc], connector: &str, event: &str) -> usize {
    task_events_in(&procs.iter().map(|p| p.log.clone()).collect::<Vec<_>>(), connector, event)
}

/// [`task_events`] over log files.
fn task_events_in(logs: &[PathBuf], connector: &str, event: &str) -> usize {
    logs.iter()
        .map(|l| {
            plain(&std::fs::read_to_string(l).unwrap_or_default())
                .lines()
                .filter(|l| l.contains(event) && l.contains(&format!("connector=\"{connector}\"")))
                .count()
        })
        .sum()
}

#[test]
fn adding_a_connector_leaves_the_running_ones_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (a_in, b_in) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    std::fs::write(&a_in, "a1\na2\n").unwrap();
    std::fs::write(&b_in, "b1\n").unwrap();
    let (mut broker, addr) = start_broker(dir.path());
    let (mut w1, rest1) = start_worker(dir.path(), "w1", &addr);
    let (mut w2, rest2) = start_worker(dir.path(), "w2", &addr);
    post_connector(&rest1, "a", json!({"connector.class": "FileStreamSource", "file": a_in, "topic": "ta"}));
    wait_until("connector a RUNNING", &mut [&mut broker, &mut w1, &mut w2], || {
        running(&rest2, "a").is_some()
    });
    assert_eq!(task_events(&[&w1, &w2], "a", "task started here"), 1);

    let logs = [w1.log.clone(), w2.log.clone()];
    post_connector(&rest2, "b", json!({"connector.class": "FileStreamSource", "file": b_in, "topic": "tb"}));
    wait_until("connector b RUNNING", &mut [&mut broker, &mut w1, &mut w2], || {
        running(&rest1, "b").is_some()
    });
    // b's arrival rebalanced the group; a's task kept running where it was.
    assert_eq!(task_events(&[&w1, &w2], "a", "task started here"), 1, "{}\n{}", w1.log(), w2.log());
    assert_eq!(task_events(&[&w1, &w2], "a", "task stopped here"), 0, "{}\n{}", w1.log(), w2.log());
    assert_eq!(task_events(&[&w1, &w2], "a", "connector stopped here"), 0);
    assert!(running(&rest1, "a").is_some());
    let (code, list) = http(&rest2, "GET", "/connectors", None);
    assert_eq!((code, serde_json::from_str::<Value>(&list).unwrap()), (200, json!(["a", "b"])));

    // A task restart asked of either worker happens where the task runs.
    assert_eq!(http(&rest2, "POST", "/connectors/a/tasks/0/restart", None).0, 204);
    wait_until("a's task restarted", &mut [&mut broker, &mut w1, &mut w2], || {
        running(&rest1, "a").is_some() && task_events_in(&logs, "a", "task started here") == 2
    });
    assert_eq!(task_events_in(&logs, "a", "task restarting on request"), 1);
    assert_eq!(http(&rest2, "POST", "/connectors/a/tasks/7/restart", None).0, 404);

    // Deleting b (through either worker) stops only b.
    assert_eq!(http(&rest1, "DELETE", "/connectors/b", None).0, 204);
    wait_until("b's task stopped", &mut [&mut broker, &mut w1, &mut w2], || {
        task_events_in(&logs, "b", "task stopped here") == 1
    });
    assert_eq!(http(&rest2, "GET", "/connectors/b/status", None).0, 404);
    assert_eq!(task_events(&[&w1, &w2], "a", "task stopped here"), 0);
    assert!(w1.sigterm() && w2.sigterm());
    assert!(broker.sigterm());
}
