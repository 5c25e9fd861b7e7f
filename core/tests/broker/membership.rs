//! Leader-assigned group membership (`GroupMembership`, protocol type
//! `connect`) through a real Kafka-wire server on 127.0.0.1 and through the
//! embedded coordinator, in the same group: joins, the leader's assignment,
//! rebalances on join and leave, a silent member removed after its session
//! timeout, and a member of another protocol type refused.

use std::time::Duration;

use bytes::Bytes;
use runnel_core::client::{Cluster, GroupMembership, MembershipConfig, MembershipEvent};
use runnel_core::server::{KafkaServer, ServerConfig};

async fn start() -> (tempfile::TempDir, Cluster, KafkaServer, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.group_min_session_timeout_ms = 100;
    let server = KafkaServer::start(&cluster, config).await.unwrap();
    let wire = Cluster::open(&format!("kafka://{}", server.local_addr())).await.unwrap();
    (dir, cluster, server, wire)
}

fn config(session_ms: u64) -> MembershipConfig {
    let mut c = MembershipConfig::new("workers", "connect");
    c.session_timeout = Duration::from_millis(session_ms);
    c.rebalance_timeout = Duration::from_secs(20);
    c
}

fn meta(v: &'static str) -> Vec<(String, Bytes)> {
    vec![("v1".to_string(), Bytes::from_static(v.as_bytes()))]
}

fn assigned(event: MembershipEvent) -> Bytes {
    match event {
        MembershipEvent::Assigned(b) => b,
        other => panic!("expected an assignment, got {other:?}"),
    }
}

#[tokio::test]
async fn wire_and_embedded_members_share_a_group_and_the_leader_assigns() {
    let (_dir, embedded, server, wire) = start().await;
    let mut a = GroupMembership::new(&wire, config(10_000)).await.unwrap();
    let joined = a.join(meta("a1")).await.unwrap();
    assert!(joined.is_leader());
    assert_eq!(joined.members, vec![(joined.member_id.clone(), Bytes::from_static(b"a1"))]);
    let plan = vec![(joined.member_id.clone(), Bytes::from_static(b"all"))];
    assert_eq!(assigned(a.sync(plan).await.unwrap()), Bytes::from_static(b"all"));
    assert_eq!(a.heartbeat().await.unwrap(), MembershipEvent::Assigned(Bytes::new()));

    // b (embedded, same broker) joins; a hears of it and rejoins.
    let mut b = GroupMembership::new(&embedded, config(10_000)).await.unwrap();
    let b_join = tokio::spawn(async move {
        let j = b.join(meta("b1")).await.unwrap();
        (b, j)
    });
    let mut heartbeats = 0;
    while a.heartbeat().await.unwrap() != MembershipEvent::Rejoin {
        heartbeats += 1;
        assert!(heartbeats < 200, "a never heard of the rebalance");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ja = a.join(meta("a2")).await.unwrap();
    let (mut b, jb) = b_join.await.unwrap();
    assert_eq!(ja.generation, jb.generation);
    assert!(ja.is_leader(), "the leader keeps leading");
    assert!(!jb.is_leader() && jb.members.is_empty());
    let mut metas: Vec<Bytes> = ja.members.iter().map(|(_, m)| m.clone()).collect();
    metas.sort();
    assert_eq!(metas, vec![Bytes::from_static(b"a2"), Bytes::from_static(b"b1")]);
    let plan = vec![
        (ja.member_id.clone(), Bytes::from_static(b"for-a")),
        (jb.member_id.clone(), Bytes::from_static(b"for-b")),
    ];
    let b_sync = tokio::spawn(async move {
        let e = b.sync(Vec::new()).await.unwrap();
        (b, e)
    });
    assert_eq!(assigned(a.sync(plan).await.unwrap()), Bytes::from_static(b"for-a"));
    let (mut b, eb) = b_sync.await.unwrap();
    assert_eq!(assigned(eb), Bytes::from_static(b"for-b"));

    // Kafka clients see the group (librdkafka's ListGroups over the wire).
    let listed = wire.admin().list_groups().await.unwrap();
    assert!(listed.iter().any(|g| g.group_id == "workers" && g.state == "Stable"), "{listed:?}");

    // a leaves: b is told to rejoin and leads alone.
    a.leave().await.unwrap();
    assert_eq!(b.heartbeat().await.unwrap(), MembershipEvent::Rejoin);
    let jb = b.join(meta("b2")).await.unwrap();
    assert!(jb.is_leader());
    assert_eq!(jb.members.len(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_wire_member_is_removed_after_its_session_timeout() {
    let (_dir, _embedded, server, wire) = start().await;
    let mut a = GroupMembership::new(&wire, config(500)).await.unwrap();
    let ja = a.join(meta("a")).await.unwrap();
    assigned(a.sync(ja.members).await.unwrap());
    let mut b = GroupMembership::new(&wire, config(500)).await.unwrap();
    let b_join = tokio::spawn(async move {
        let j = b.join(meta("b")).await.unwrap();
        (b, j)
    });
    while a.heartbeat().await.unwrap() != MembershipEvent::Rejoin {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ja = a.join(meta("a")).await.unwrap();
    let (mut b, jb) = b_join.await.unwrap();
    assert!(ja.is_leader() && !jb.is_leader());
    let (l, f) = tokio::join!(a.sync(ja.members.clone()), b.sync(Vec::new()));
    assigned(l.unwrap());
    assigned(f.unwrap());
    let (leader, follower) = (&mut a, &mut b);
    // The follower goes silent; the leader keeps heartbeating until told to rejoin.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match leader.heartbeat().await.unwrap() {
            MembershipEvent::Rejoin => break,
            MembershipEvent::Assigned(_) => {}
            MembershipEvent::Lost => panic!("the live member was removed"),
        }
        assert!(std::time::Instant::now() < deadline, "the silent member was never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let j = leader.join(meta("again")).await.unwrap();
    assert_eq!(j.members.len(), 1, "only the live member is left");
    // The silent one learns it was removed and starts over as a new member.
    assert_eq!(follower.heartbeat().await.unwrap(), MembershipEvent::Lost);
    assert!(follower.member_id().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn a_member_with_another_protocol_type_is_refused() {
    let (_dir, _embedded, server, wire) = start().await;
    let mut a = GroupMembership::new(&wire, config(10_000)).await.unwrap();
    a.join(meta("a")).await.unwrap();
    let mut other = config(10_000);
    other.protocol_type = "something-else".into();
    let mut c = GroupMembership::new(&wire, other).await.unwrap();
    let err = c.join(meta("c")).await.unwrap_err().to_string();
    assert!(err.contains("JoinGroup") && err.contains("23"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_wire_member_reconnects_after_the_coordinator_connection_breaks() {
    let (_dir, embedded, server, wire) = start().await;
    let addr = server.local_addr();
    let mut a = GroupMembership::new(&wire, config(30_000)).await.unwrap();
    let ja = a.join(meta("a")).await.unwrap();
    assigned(a.sync(ja.members).await.unwrap());
    // The server goes away and comes back on the same address (same broker).
    server.shutdown().await;
    let mut server_config = ServerConfig::new(addr);
    server_config.group_min_session_timeout_ms = 100;
    let server = KafkaServer::start(&embedded, server_config).await.unwrap();
    // The first request after the break may fail; the member reconnects.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match a.heartbeat().await {
            Ok(event) => {
                assert_eq!(
                    event,
                    MembershipEvent::Assigned(Bytes::new()),
                    "the member is still in the group"
                );
                break;
            }
            Err(e) => assert!(std::time::Instant::now() < deadline, "never reconnected: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}
