//! The interactive-queries example (`examples/interactive_queries.rs`,
//! issue 16 point 8) with two instances: each serves its own words over
//! HTTP and redirects to the other for the rest; following the redirect
//! gives every word's count.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[path = "../../examples/interactive_queries.rs"]
#[allow(dead_code)]
mod example;

use example::{http_get, start_instance, write_lines, LINES};
use runnel::core::client::Cluster;
use runnel::core::topic::NewTopic;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_serves_its_words_and_redirects_to_the_owner_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().join("data").display())).await.unwrap();
    cluster.admin().create_topic(NewTopic::new(LINES, 4)).await.unwrap();
    let (la, lb) = (
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (addr_a, addr_b) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    let a = start_instance(&cluster, &dir.path().join("a"), la).await.unwrap();
    let b = start_instance(&cluster, &dir.path().join("b"), lb).await.unwrap();
    let lines = ["the quick brown fox", "jumps over the lazy dog", "the dog sleeps", "a fox and a dog"];
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for word in lines.iter().flat_map(|l| l.split_whitespace()) {
        *expected.entry(word.to_string()).or_default() += 1;
    }
    // Both instances own partitions before the lines arrive.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let group = cluster.admin().describe_group("word-count-iq").await;
        if group
            .as_ref()
            .is_ok_and(|g| g.members.len() == 2 && g.members.iter().all(|m| !m.assignment.is_empty()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no two-member group: {group:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write_lines(&cluster, &lines).await.unwrap();
    let words: u64 = expected.values().sum::<i64>() as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Each word goes through the repartition topic: lines + words records.
    while a.metrics().process_total + b.metrics().process_total < lines.len() as u64 + words {
        assert!(Instant::now() < deadline, "not processed yet");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut redirects = 0;
    for (word, count) in &expected {
        let (status, location, body) = http_get(addr_a, &format!("/counts/{word}")).await.unwrap();
        let body = match status {
            200 => body,
            307 => {
                redirects += 1;
                let location = location.expect("a Location header");
                assert_eq!(location, format!("http://{addr_b}/counts/{word}"));
                let (status, _, body) = http_get(addr_b, &format!("/counts/{word}")).await.unwrap();
                assert_eq!(status, 200, "{word} on its owner");
                body
            }
            other => panic!("{word}: status {other}: {body}"),
        };
        assert_eq!(body, format!("{word} {count}\n"));
    }
    assert!(
        redirects > 0 && redirects < expected.len(),
        "{redirects} of {} words redirected",
        expected.len()
    );
    let (status, _, _) = http_get(addr_a, "/counts/unicorn").await.unwrap();
    assert!(status == 404 || status == 307, "{status}");
    let (_, _, all_a) = http_get(addr_a, "/counts").await.unwrap();
    let (_, _, all_b) = http_get(addr_b, "/counts").await.unwrap();
    assert_eq!(all_a.lines().count() + all_b.lines().count(), expected.len());
    a.close().await.unwrap();
    b.close().await.unwrap();
    cluster.close().await.unwrap();
}
