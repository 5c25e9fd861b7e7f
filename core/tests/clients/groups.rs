//! Consumer groups on the embedded coordinator: joins, leaves, crashes
//! detected by session timeout, added partitions, cooperative rebalancing,
//! zombie fencing, idle members, independent groups, and at-least-once
//! delivery while members churn.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runnel_core::broker::BrokerConfig;
use runnel_core::client::{
    AssignmentStrategy, Consumer, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord,
    RebalanceListener,
};
use runnel_core::topic::{NewTopic, TopicPartition};
use runnel_core::Error;

/// These tests measure timeouts and rebalances; run them one at a time so
/// they do not starve each other's heartbeats on a small machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn open(dir: &std::path::Path) -> common::TestCluster {
    let config =
        BrokerConfig { background_maintenance: false, auto_create_topics: false, ..Default::default() };
    common::TestCluster::open(dir, config).await
}

fn config(group: &str, strategy: AssignmentStrategy) -> ConsumerConfig {
    ConsumerConfig::group(group)
        .strategy(strategy)
        .offset_reset(OffsetReset::Earliest)
        .set("session.timeout.ms", "2000")
        .unwrap()
        .set("heartbeat.interval.ms", "50")
        .unwrap()
        .set("auto.commit.interval.ms", "100")
        .unwrap()
}

/// (event kind, partitions) as the listener heard them.
type Event = (String, Vec<String>);

#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

impl RebalanceListener for Events {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(("revoked".into(), p.iter().map(|t| t.to_string()).collect()));
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(("assigned".into(), p.iter().map(|t| t.to_string()).collect()));
    }
    fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(("lost".into(), p.iter().map(|t| t.to_string()).collect()));
    }
}

/// A member polling in its own task until stopped.
struct Member {
    stop: Arc<AtomicBool>,
    assignment: Arc<Mutex<Vec<TopicPartition>>>,
    records: Arc<Mutex<Vec<(i32, i64)>>>,
    events: Events,
    task: tokio::task::JoinHandle<Consumer>,
}

impl Member {
    fn start(cluster: &common::TestCluster, config: ConsumerConfig, topics: &[&str]) -> Member {
        let mut consumer = cluster.consumer(config).unwrap();
        let events = Events::default();
        consumer.set_rebalance_listener(events.clone());
        consumer.subscribe(topics.iter().map(|t| t.to_string())).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let assignment = Arc::new(Mutex::new(Vec::new()));
        let records = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (stop, assignment, records) = (stop.clone(), assignment.clone(), records.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Acquire) {
                    let batch = consumer.poll(Duration::from_millis(20)).await.unwrap();
                    records.lock().unwrap().extend(batch.iter().map(|r| (r.partition, r.offset)));
                    *assignment.lock().unwrap() = consumer.assignment();
                }
                consumer
            })
        };
        Member { stop, assignment, records, events, task }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.lock().unwrap().clone()
    }

    async fn stop(self) -> Consumer {
        self.stop.store(true, Ordering::Release);
        self.task.await.unwrap()
    }
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sizes(members: &[&Member]) -> Vec<usize> {
    members.iter().map(|m| m.assignment().len()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_partitions_and_the_survivor_takes_over_when_one_leaves() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 4)).unwrap();
    let a = Member::start(&cluster, config("g", AssignmentStrategy::Range), &["t"]);
    eventually("a owns all 4", || a.assignment().len() == 4).await;
    let b = Member::start(&cluster, config("g", AssignmentStrategy::Range), &["t"]);
    eventually("a and b own 2 each", || sizes(&[&a, &b]) == vec![2, 2]).await;
    let events = a.events.all();
    assert!(
        events.iter().any(|(kind, p)| kind == "revoked" && p.len() == 4),
        "eager: a revoked all: {events:?}"
    );
    let mut b = b.stop().await;
    b.close().await.unwrap();
    eventually("a owns all 4 again", || a.assignment().len() == 4).await;
    a.stop().await.close().await.unwrap();
}

/// A stable member learns of a new member's join from its next poll, not
/// from its next heartbeat: with a one-minute heartbeat interval the
/// rebalance still completes within seconds (it waited a full interval
/// before the embedded consumer watched the group while polling).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_member_rejoins_from_its_poll_without_waiting_for_a_heartbeat() {
    if common::skip_on_kafka(
        "over the Kafka protocol a member hears of a rebalance in its heartbeat's answer, as with Kafka's own brokers",
    ) {
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 4)).unwrap();
    let slow_heartbeat = || {
        ConsumerConfig::group("g")
            .strategy(AssignmentStrategy::Range)
            .set("session.timeout.ms", "120000")
            .unwrap()
            .set("heartbeat.interval.ms", "60000")
            .unwrap()
    };
    let a = Member::start(&cluster, slow_heartbeat(), &["t"]);
    eventually("a owns all 4", || a.assignment().len() == 4).await;
    let b = Member::start(&cluster, slow_heartbeat(), &["t"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sizes(&[&a, &b]) != vec![2, 2] {
        assert!(
            Instant::now() < deadline,
            "no rebalance 10 s after b joined (heartbeats every 60 s): {:?}",
            sizes(&[&a, &b])
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.stop().await.close().await.unwrap();
    a.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_is_detected_by_session_timeout() {
    if common::skip_on_kafka(
        "librdkafka keeps heartbeating until max.poll.interval.ms; a crash needs a separate process",
    ) {
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 4)).unwrap();
    let a = Member::start(&cluster, config("g", AssignmentStrategy::RoundRobin), &["t"]);
    let b = Member::start(&cluster, config("g", AssignmentStrategy::RoundRobin), &["t"]);
    eventually("split", || sizes(&[&a, &b]) == vec![2, 2]).await;
    let crashed_at = Instant::now();
    b.stop().await.abandon();
    eventually("a takes over after the session timeout", || a.assignment().len() == 4).await;
    // The last heartbeat can precede the crash by up to one heartbeat interval.
    assert!(crashed_at.elapsed() >= Duration::from_millis(2000 - 60), "not before session.timeout.ms");
    let group = cluster.broker().unwrap().groups().describe("g", cluster.broker().unwrap().now_ms()).unwrap();
    assert_eq!(group.members.len(), 1);
    a.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_rebalancing_revokes_only_the_partitions_that_move() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 6)).unwrap();
    let coop = AssignmentStrategy::CooperativeSticky;
    let a = Member::start(&cluster, config("g", coop), &["t"]);
    eventually("a owns all 6", || a.assignment().len() == 6).await;
    let b = Member::start(&cluster, config("g", coop), &["t"]);
    let c = Member::start(&cluster, config("g", coop), &["t"]);
    eventually("2 each", || sizes(&[&a, &b, &c]) == vec![2, 2, 2]).await;
    let revoked: BTreeSet<String> =
        a.events.all().into_iter().filter(|(k, _)| k == "revoked").flat_map(|(_, p)| p).collect();
    let kept: BTreeSet<String> = a.assignment().iter().map(|t| t.to_string()).collect();
    assert_eq!(revoked.len(), 4, "a gave up exactly the 4 partitions that moved: {revoked:?}");
    assert!(revoked.is_disjoint(&kept), "a never revoked what it kept");
    for m in [a, b, c] {
        m.stop().await.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_partitions_and_idle_members_are_picked_up_by_rebalances() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    let broker = cluster.broker().unwrap();
    broker.create_topic(NewTopic::new("t", 2)).unwrap();
    let members: Vec<Member> = (0..3)
        .map(|_| Member::start(&cluster, config("g", AssignmentStrategy::RoundRobin), &["t"]))
        .collect();
    eventually("two busy, one idle", || {
        let mut s = sizes(&members.iter().collect::<Vec<_>>());
        s.sort();
        s == vec![0, 1, 1]
    })
    .await;
    broker.create_partitions("t", 6).unwrap();
    eventually("the new partitions are assigned", || {
        sizes(&members.iter().collect::<Vec<_>>()) == vec![2, 2, 2]
    })
    .await;
    for m in members {
        m.stop().await.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_members_commit_is_rejected() {
    if common::skip_on_kafka(
        "librdkafka leaves the group itself when max.poll.interval.ms passes, so nothing is left to fence",
    ) {
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 2)).unwrap();
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    for i in 0..10 {
        producer.send(ProducerRecord::new("t").partition(i % 2).value("x")).await.unwrap();
    }
    // A member that stops polling longer than max.poll.interval.ms is removed.
    let slow =
        config("g", AssignmentStrategy::Range).auto_commit(false).set("max.poll.interval.ms", "300").unwrap();
    let mut zombie = cluster.consumer(slow).unwrap();
    let zombie_events = Events::default();
    zombie.set_rebalance_listener(zombie_events.clone());
    zombie.subscribe(["t"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while zombie.assignment().len() < 2 {
        zombie.poll(Duration::from_millis(20)).await.unwrap();
        assert!(Instant::now() < deadline);
    }
    zombie.commit_sync().await.unwrap();
    let live = Member::start(&cluster, config("g", AssignmentStrategy::Range), &["t"]);
    eventually("the live member takes everything", || live.assignment().len() == 2).await;
    let err = zombie.commit_sync().await.unwrap_err();
    assert!(matches!(err, Error::CommitFailed { .. }), "{err}");
    assert!(err.to_string().contains("no longer in the group"), "{err}");
    // Its next poll finds it was removed: the partitions are reported lost, not revoked.
    zombie.poll(Duration::from_millis(10)).await.unwrap();
    let events = zombie_events.all();
    assert!(events.iter().any(|(kind, p)| kind == "lost" && p.len() == 2), "{events:?}");
    assert!(!events.iter().any(|(kind, _)| kind == "revoked"), "{events:?}");
    zombie.close().await.unwrap();
    live.stop().await.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscriptions_follow_new_topics_and_groups_are_independent() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    let broker = cluster.broker().unwrap();
    broker.create_topic(NewTopic::new("metrics.cpu", 1)).unwrap();
    broker.create_topic(NewTopic::new("logs", 1)).unwrap();
    let mut consumer = cluster.consumer(config("patterns", AssignmentStrategy::Range)).unwrap();
    consumer.subscribe_pattern(r"metrics\..*").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while consumer.assignment().is_empty() {
        consumer.poll(Duration::from_millis(20)).await.unwrap();
        assert!(Instant::now() < deadline);
    }
    assert_eq!(consumer.assignment(), vec![TopicPartition::new("metrics.cpu", 0)]);
    broker.create_topic(NewTopic::new("metrics.mem", 1)).unwrap();
    while consumer.assignment().len() < 2 {
        consumer.poll(Duration::from_millis(20)).await.unwrap();
        assert!(Instant::now() < deadline, "the new topic was never assigned");
    }
    consumer.close().await.unwrap();

    // Two groups each read everything.
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    for i in 0..100 {
        producer.send(ProducerRecord::new("logs").value(format!("{i}"))).await.unwrap();
    }
    let g1 = Member::start(&cluster, config("one", AssignmentStrategy::Range), &["logs"]);
    let g2 = Member::start(&cluster, config("two", AssignmentStrategy::Range), &["logs"]);
    eventually("both groups read all 100", || {
        g1.records.lock().unwrap().len() == 100 && g2.records.lock().unwrap().len() == 100
    })
    .await;
    for m in [g1, g2] {
        m.stop().await.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_consumed_at_least_once_while_members_join_and_leave() {
    if common::skip_on_kafka(
        "intermittent hang under churn (librdkafka's consumer close during a cooperative rebalance \
         against our broker); the embedded variant runs, the kafka one is under investigation",
    ) {
        return;
    }
    let _serial = SERIAL.lock().await;
    let kafka = common::kafka_backend();
    // Over the network (librdkafka, debug build) a smaller run keeps this quick.
    let default_total = if kafka { 100_000 } else { 1_000_000 };
    let total: usize =
        std::env::var("RUNNEL_CHURN_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_total);
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("events", 8)).unwrap();
    // Producer in the background.
    let producer_cluster = cluster.clone();
    let producing = tokio::spawn(async move {
        let producer = producer_cluster.producer(ProducerConfig::default()).unwrap();
        for i in 0..total {
            producer
                .enqueue(ProducerRecord::new("events").key(format!("k{}", i % 1000)).value(format!("{i}")))
                .await
                .unwrap();
        }
        producer.close().await.unwrap();
    });
    let coop =
        |i: usize| if i % 2 == 0 { AssignmentStrategy::CooperativeSticky } else { AssignmentStrategy::Range };
    let both = |i: usize| {
        let mut c = config("churn", coop(i));
        c.assignment_strategies = vec![AssignmentStrategy::CooperativeSticky, AssignmentStrategy::Range];
        c.assignment_strategies.rotate_left(i % 2);
        if kafka {
            // librdkafka cannot mix eager and cooperative assignors in one member.
            c.assignment_strategies = vec![AssignmentStrategy::CooperativeSticky];
        }
        c
    };
    let mut members: Vec<Member> = (0..2).map(|i| Member::start(&cluster, both(i), &["events"])).collect();
    let mut consumed: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    let mut round = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        round += 1;
        // Churn: every round one member leaves (cleanly or by crashing) and a new one joins.
        if round % 2 == 0 && members.len() > 1 {
            let leaving = members.remove(round % members.len());
            let records = leaving.records.clone();
            let mut consumer = leaving.stop().await;
            if round % 4 == 0 && !kafka {
                // (librdkafka keeps heartbeating a leaked client: no crash to simulate)
                consumer.abandon(); // uncommitted work is re-delivered to others
            } else {
                consumer.close().await.unwrap();
            }
            for (p, o) in records.lock().unwrap().drain(..) {
                consumed.entry(p).or_default().insert(o);
            }
        }
        if members.len() < 4 {
            members.push(Member::start(&cluster, both(round), &["events"]));
        }
        let done = producing.is_finished();
        let log_ends: Vec<i64> =
            (0..8).map(|p| cluster.broker().unwrap().log("events", p).unwrap().log_end_offset()).collect();
        let seen = |p: i32| {
            let mut set = consumed.get(&p).cloned().unwrap_or_default();
            for m in &members {
                set.extend(m.records.lock().unwrap().iter().filter(|(mp, _)| *mp == p).map(|(_, o)| *o));
            }
            set.len() as i64
        };
        if done && (0..8).all(|p| seen(p) == log_ends[p as usize]) {
            break;
        }
        assert!(
            round < 2000,
            "records were lost: {:?} of {:?}",
            (0..8).map(seen).collect::<Vec<_>>(),
            log_ends
        );
    }
    let produced: i64 =
        (0..8).map(|p| cluster.broker().unwrap().log("events", p).unwrap().log_end_offset()).sum();
    assert_eq!(produced as usize, total);
    assert!(round >= 4, "members churned while records flowed ({round} rounds)");
    eprintln!("{total} records consumed at least once across {round} churn rounds");
    for m in members {
        m.stop().await.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_long_gaps_between_polls_does_not_cause_endless_rebalances() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 4)).unwrap();
    // A polls only every 400 ms (8 heartbeat intervals); B polls constantly.
    let mut a = cluster.consumer(config("g", AssignmentStrategy::Range)).unwrap();
    a.subscribe(["t"]).unwrap();
    let b = Member::start(&cluster, config("g", AssignmentStrategy::Range), &["t"]);
    let broker = cluster.broker().unwrap();
    let generation = || broker.groups().describe("g", broker.now_ms()).map_or(0, |d| d.generation);
    let mut settled_at = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        a.poll(Duration::from_millis(10)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        if a.assignment().len() == 2 && b.assignment().len() == 2 {
            let g = generation();
            match settled_at {
                None => settled_at = Some((g, Instant::now())),
                Some((seen, since)) if seen == g && since.elapsed() > Duration::from_secs(3) => break,
                Some((seen, _)) if seen != g => settled_at = Some((g, Instant::now())),
                _ => {}
            }
        }
    }
    let (g, since) = settled_at.expect("the group settled");
    assert!(since.elapsed() > Duration::from_secs(3), "the generation kept moving (last {g})");
    assert!(g <= 3, "one rebalance per join, not a storm: generation {g}");
    a.close().await.unwrap();
    b.stop().await.close().await.unwrap();
}

#[tokio::test]
async fn members_without_a_common_assignor_are_refused() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 2)).unwrap();
    let mut coop = cluster.consumer(config("g", AssignmentStrategy::CooperativeSticky)).unwrap();
    coop.subscribe(["t"]).unwrap();
    // The first member must be in the group before the second tries to join
    // (over the network the join takes a moment).
    let joined_by = Instant::now() + Duration::from_secs(10);
    while coop.assignment().is_empty() && Instant::now() < joined_by {
        coop.poll(Duration::from_millis(10)).await.unwrap();
    }
    let mut range = cluster.consumer(config("g", AssignmentStrategy::Range)).unwrap();
    range.subscribe(["t"]).unwrap();
    // The refusal arrives with the join (at once when embedded; over the
    // network librdkafka reports it a moment later).
    let mut err = None;
    for _ in 0..200 {
        if let Err(e) = range.poll(Duration::from_millis(50)).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the join is refused");
    assert!(matches!(err, Error::InconsistentGroupProtocol { .. }), "{err}");
    assert!(err.to_string().contains("offered: range"), "{err}");
    coop.close().await.unwrap();
}

/// The heartbeat runs on a thread of its own (as Kafka's consumer's does):
/// a member whose task keeps its single-threaded runtime busy for longer
/// than the session timeout, but less than `max.poll.interval.ms`, stays
/// in the group (a stream thread in a long flush or a RocksDB write stall
/// used to lose its partitions this way).
#[tokio::test(flavor = "current_thread")]
async fn a_member_busy_longer_than_its_session_timeout_keeps_its_membership() {
    if common::skip_on_kafka("librdkafka heartbeats from its own thread already") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path()).await;
    cluster.broker().unwrap().create_topic(NewTopic::new("t", 2)).unwrap();
    let mut config = config("busy", AssignmentStrategy::Range);
    config.session_timeout_ms = 1_000;
    config.heartbeat_interval_ms = 100;
    config.max_poll_interval_ms = 30_000;
    let mut consumer = cluster.client.consumer(config).unwrap();
    consumer.subscribe(["t"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while consumer.assignment().len() != 2 {
        assert!(Instant::now() < deadline, "never assigned");
        consumer.poll(Duration::from_millis(50)).await.unwrap();
    }
    // Busy without yielding: the runtime cannot run anything else.
    std::thread::sleep(Duration::from_millis(2_500));
    consumer.commit_sync().await.expect("still a member after 2.5 s busy with a 1 s session timeout");
    consumer.poll(Duration::from_millis(50)).await.unwrap();
    assert_eq!(consumer.assignment().len(), 2);
    consumer.close().await.unwrap();
}
