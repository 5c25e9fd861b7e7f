//! `runnel connect` end to end: a file → topic → file pipeline whose worker
//! process is SIGKILLed twice mid-stream and restarted on the same embedded
//! data directory; the output file must equal the input file line for line.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn_worker(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("connect")
        .arg(dir.join("worker.properties"))
        .arg(dir.join("source.json"))
        .arg(dir.join("sink.toml"))
        .env("RUNNEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn line_count(path: &Path) -> usize {
    std::fs::read(path).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0)
}

/// Polls `progress` until it reaches `goal`, failing if the worker exits
/// or a minute passes.
fn wait_until(what: &str, goal: u64, progress: impl Fn() -> u64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress() < goal {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("worker exited early ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "timed out at {} of {goal} {what}", progress());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_lines(path: &Path, n: usize, child: &mut Child) {
    wait_until("lines", n as u64, || line_count(path) as u64, child);
}

/// The output length recorded by the file sink's last flush (its
/// `<file>.offsets` companion), or 0 before the first flush.
fn flushed_length(output: &Path) -> u64 {
    let mut path = output.as_os_str().to_owned();
    path.push(".offsets");
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["length"].as_u64())
        .unwrap_or(0)
}

#[test]
fn file_to_topic_to_file_survives_sigkill_with_output_equal_to_input() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.txt"), dir.path().join("out.txt"));
    std::fs::write(
        dir.path().join("worker.properties"),
        format!(
            "cluster=file:{}\nkey.converter=org.apache.kafka.connect.storage.StringConverter\n\
             value.converter=org.apache.kafka.connect.storage.StringConverter\noffset.flush.interval.ms=100\n\
             listeners=http://127.0.0.1:0\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("source.json"),
        serde_json::json!({"name": "src", "config": {
            "connector.class": "FileStreamSource", "file": input, "topic": "lines", "batch.size": 300}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sink.toml"),
        format!(
            "name = \"sink\"\n\"connector.class\" = \"org.apache.kafka.connect.file.FileStreamSinkConnector\"\n\
             file = {:?}\ntopics = \"lines\"\n",
            output.display().to_string()
        ),
    )
    .unwrap();

    // A writer appends 30,000 lines of varying length while workers come and go.
    const TOTAL: usize = 30_000;
    let writer_input = input.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(writer_input).unwrap();
        for chunk in 0..(TOTAL / 500) {
            let mut buf = String::new();
            for i in chunk * 500..(chunk + 1) * 500 {
                buf.push_str(&format!("line {i} {}\n", "x".repeat(i % 37)));
            }
            f.write_all(buf.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
    });

    let mut worker = spawn_worker(dir.path());
    wait_for_lines(&output, 3_000, &mut worker);
    worker.kill().unwrap(); // SIGKILL
    worker.wait().unwrap();

    let mut worker = spawn_worker(dir.path());
    // Under load the first worker may have written most of the file
    // before the kill: never wait for more lines than exist.
    wait_for_lines(&output, (line_count(&output) + 5_000).min(TOTAL), &mut worker);
    worker.kill().unwrap();
    worker.wait().unwrap();

    writer.join().unwrap();
    let mut worker = spawn_worker(dir.path());
    // The killed worker may have left lines past its last flush, which this
    // worker's sink cuts off at start and writes again: counting lines could
    // end the wait before that. Wait for a flush that covers the whole input.
    let input_len = std::fs::metadata(&input).unwrap().len();
    wait_until("flushed bytes", input_len, || flushed_length(&output), &mut worker);
    // A clean stop: SIGTERM, final flush and commit.
    std::thread::sleep(Duration::from_millis(300));
    assert!(Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status().unwrap().success());
    let status = worker.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(worker.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("stopped cleanly"), "{err}");

    let (inp, out) = (std::fs::read_to_string(&input).unwrap(), std::fs::read_to_string(&output).unwrap());
    assert_eq!(out.lines().count(), TOTAL);
    for (n, (a, b)) in inp.lines().zip(out.lines()).enumerate() {
        assert_eq!(a, b, "line {n} differs");
    }
    assert_eq!(inp, out);
}

#[test]
fn connect_config_mistakes_name_the_key_or_the_class() {
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("worker.properties");
    std::fs::write(&worker, format!("cluster=file:{}\noffset.flush.intervl.ms=5\n", dir.path().display()))
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_runnel")).arg("connect").arg(&worker).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown configuration `offset.flush.intervl.ms`"), "{err}");

    std::fs::write(&worker, format!("cluster=file:{}\n", dir.path().join("data").display())).unwrap();
    let conn = dir.path().join("c.properties");
    std::fs::write(&conn, "name=c\nconnector.class=FileStreamSorce\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_runnel")).arg("connect").arg(&worker).arg(&conn).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown connector class `FileStreamSorce`") && err.contains("FileStreamSource"),
        "{err}"
    );
}

/// A blocking HTTP/1.1 request (`Connection: close`); returns the status and body.
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_string())
}

#[test]
fn connect_serves_the_rest_api_while_running_and_stops_it_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\nb\n").unwrap();
    let worker = dir.path().join("worker.properties");
    std::fs::write(
        &worker,
        format!("cluster=file:{}\nlisteners=http://127.0.0.1:0\n", dir.path().join("data").display()),
    )
    .unwrap();
    let conn = dir.path().join("src.properties");
    std::fs::write(
        &conn,
        format!("name=src\nconnector.class=FileStreamSource\nfile={}\ntopic=t\n", input.display()),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .arg("connect")
        .arg(&worker)
        .arg(&conn)
        .env("RUNNEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the worker exited before serving").unwrap();
        if let Some(url) = line.strip_prefix("runnel connect: REST API at http://") {
            break url.trim().to_string();
        }
    };
    assert_eq!(http(&addr, "GET", "/connectors", None), (200, "[\"src\"]".to_string()));
    let (code, body) = http(&addr, "GET", "/connectors/nope/status", None);
    assert_eq!(code, 404);
    assert!(body.contains("\"error_code\":404") && body.contains("nope"), "{body}");

    assert!(Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap().success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("stopped cleanly")), "{rest:?}");
    assert!(std::net::TcpStream::connect(&addr).is_err(), "the REST API still listens after shutdown");
}
