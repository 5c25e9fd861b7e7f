//! Interactive queries over HTTP: a word-count app whose store is served
//! by a small HTTP server, as a Kafka Streams application would expose it.
//!
//! ```text
//! GET /counts/<word>   200 "<word> <count>"    (this instance holds the word)
//!                      307 Location: http://<owner>/counts/<word>   (another instance does)
//!                      404                     (no count yet)
//! GET /counts          200 one "<word> <count>" line per word held here
//! ```
//!
//! `cargo run --release --example interactive_queries` starts an embedded
//! cluster in a temporary directory, counts the words of a few lines, then
//! asks its own HTTP server for some of them and prints the answers.
//! `tests/end_to_end/interactive_queries.rs` runs the same server with two instances
//! and checks the answers and the redirects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use runnel::core::client::{Cluster, ProducerConfig, ProducerRecord};
use runnel::core::topic::NewTopic;
use runnel::streams::{
    Consumed, Grouped, Materialized, Serdes, StoreQueryParameters, Streams, StreamsBuilder, StreamsConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The input topic: one line of text per record.
pub const LINES: &str = "lines";
/// The store the counts live in.
pub const STORE: &str = "word-counts";

/// Splits lines into words and counts them (Kafka's WordCount).
pub fn topology() -> runnel::streams::Topology {
    let mut b = StreamsBuilder::new();
    b.stream::<String, String>(LINES, Consumed::with(Serdes::string(), Serdes::string()))
        .flat_map_values(|line: String| line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>())
        .select_key(|_, word| word.clone())
        .group_by_key(Grouped::with(Serdes::string(), Serdes::string()))
        .count(Materialized::as_(STORE));
    b.build().expect("a valid topology")
}

/// Starts an instance of the word count whose `application.server` is
/// `listener`'s address, and serves its store there until the process
/// ends. Returns the instance.
pub async fn start_instance(
    cluster: &Cluster,
    state_dir: &std::path::Path,
    listener: TcpListener,
) -> anyhow::Result<Arc<Streams>> {
    let addr = listener.local_addr()?;
    let config = StreamsConfig::new("word-count-iq")
        .with_state_dir(state_dir)
        .with_commit_interval(Duration::from_millis(100))
        .with_application_server(addr.to_string());
    let streams = Arc::new(Streams::new(topology(), config, cluster.clone())?);
    streams.start().await?;
    let served = Arc::clone(&streams);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let streams = Arc::clone(&served);
            tokio::spawn(async move {
                let _ = answer(socket, &streams).await;
            });
        }
    });
    Ok(streams)
}

/// Answers one HTTP request.
async fn answer(mut socket: TcpStream, streams: &Arc<Streams>) -> anyhow::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request);
    let mut parts = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let (status, headers, body) = match (method, path.strip_prefix("/counts")) {
        ("GET", Some("")) => {
            let streams = Arc::clone(streams);
            let all = tokio::task::spawn_blocking(move || {
                streams.store(StoreQueryParameters::from_name(STORE, Serdes::string(), Serdes::i64()))?.all()
            })
            .await??;
            let body: String = all.iter().map(|(w, n)| format!("{w} {n}\n")).collect();
            ("200 OK", String::new(), body)
        }
        ("GET", Some(word)) if word.starts_with('/') && word.len() > 1 => lookup(streams, &word[1..]).await?,
        _ => ("404 Not Found", String::new(), "try GET /counts or /counts/<word>\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await?;
    Ok(())
}

/// The count of `word`, or where to ask for it.
async fn lookup(streams: &Arc<Streams>, word: &str) -> anyhow::Result<(&'static str, String, String)> {
    let word = word.to_lowercase();
    let meta = streams.query_metadata_for_key(STORE, &word, &Serdes::string()).await?;
    let own = streams.config().application_server().map(str::to_string);
    match meta.active_host {
        Some(host) if Some(host.to_string()) != own => Ok((
            "307 Temporary Redirect",
            format!("Location: http://{host}/counts/{word}\r\n"),
            String::new(),
        )),
        _ => {
            let (streams, key) = (Arc::clone(streams), word.clone());
            let count = tokio::task::spawn_blocking(move || {
                streams
                    .store(StoreQueryParameters::from_name(STORE, Serdes::string(), Serdes::i64()))?
                    .get(&key)
            })
            .await??;
            Ok(match count {
                Some(n) => ("200 OK", String::new(), format!("{word} {n}\n")),
                None => ("404 Not Found", String::new(), format!("no count for {word:?} yet\n")),
            })
        }
    }
}

/// A minimal HTTP GET: the status code, the `Location` header if any, and
/// the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Option<String>, String)> {
    let mut socket = TcpStream::connect(addr).await?;
    socket
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").context("a response without headers")?;
    let status: u16 = head.split_whitespace().nth(1).context("no status")?.parse()?;
    let location = head.lines().find_map(|l| l.strip_prefix("Location: ")).map(str::to_string);
    Ok((status, location, body.to_string()))
}

/// Writes `lines` to the input topic.
pub async fn write_lines(cluster: &Cluster, lines: &[&str]) -> anyhow::Result<()> {
    let producer = cluster.producer(ProducerConfig::default())?;
    for (i, line) in lines.iter().enumerate() {
        producer.send(ProducerRecord::new(LINES).key(format!("line{i}")).value(line.to_string())).await?;
    }
    producer.close().await?;
    Ok(())
}

#[allow(dead_code, reason = "the test includes this file for its functions")]
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::open(&format!("file:{}", dir.path().join("data").display())).await?;
    cluster.admin().create_topic(NewTopic::new(LINES, 2)).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let streams = start_instance(&cluster, &dir.path().join("state"), listener).await?;
    println!("serving the word counts at http://{addr}/counts");
    let lines = ["the quick brown fox", "jumps over the lazy dog", "the dog sleeps"];
    write_lines(&cluster, &lines).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while streams.metrics().process_total < 13 {
        anyhow::ensure!(Instant::now() < deadline, "the app did not process the lines");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for path in ["/counts/the", "/counts/dog", "/counts/cat", "/counts"] {
        let (status, _, body) = http_get(addr, path).await?;
        println!("GET {path} -> {status}\n{body}");
    }
    streams.close().await?;
    cluster.close().await?;
    Ok(())
}
