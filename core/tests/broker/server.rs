//! The Kafka-protocol server over real sockets: raw requests built with
//! `kafka-protocol`, bad input of every kind, idempotent produce, long
//! polls, sharing with embedded clients, and a mutation fuzzer.

use crate::common;

#[global_allocator]
static ALLOC: runnel_core::server::LargeAllocGuard = runnel_core::server::LargeAllocGuard;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use runnel_core::client::{Cluster, ConsumerConfig, ProducerConfig, ProducerRecord};
use runnel_core::record::{Compression, RecordBatchBuilder};
use runnel_core::server::{KafkaServer, ServerConfig};
use runnel_core::topic::NewTopic;

struct Raw {
    stream: TcpStream,
    next_id: i32,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw { stream, next_id: 0 }
    }

    fn send_raw(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(&(frame.len() as i32).to_be_bytes())?;
        self.stream.write_all(frame)
    }

    fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    fn call(&mut self, api: ApiKey, version: i16, body: &impl Encodable) -> ResponseKind {
        self.next_id += 1;
        let frame = encode_request(api, version, self.next_id, body);
        self.send_raw(&frame).unwrap();
        let mut resp = self.read_frame().unwrap();
        let header = ResponseHeader::decode(&mut resp, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.next_id);
        ResponseKind::decode(api, &mut resp, version).unwrap()
    }

    /// Whether the server closed this connection (EOF within 5 s).
    fn closed(&mut self) -> bool {
        self.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
            || matches!(self.stream.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }
}

fn encode_request(api: ApiKey, version: i16, correlation_id: i32, body: &impl Encodable) -> BytesMut {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-test")))
        .encode(&mut out, api.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    out
}

async fn start() -> (tempfile::TempDir, Cluster, KafkaServer) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::open(&format!("file:{}", dir.path().display())).await.unwrap();
    let server =
        KafkaServer::start(&cluster, ServerConfig::new("127.0.0.1:0".parse().unwrap())).await.unwrap();
    (dir, cluster, server)
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn batch_bytes(n: usize, producer: Option<(i64, i16, i32)>) -> Bytes {
    let mut b = RecordBatchBuilder::new(Compression::None);
    for i in 0..n {
        b.append(1_700_000_000_000, None, Some(format!("v{i}").as_bytes()), &[]);
    }
    let mut bytes = b.build(0).unwrap();
    if let Some((pid, epoch, seq)) = producer {
        bytes[43..51].copy_from_slice(&pid.to_be_bytes());
        bytes[51..53].copy_from_slice(&epoch.to_be_bytes());
        bytes[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    Bytes::from(bytes)
}

fn produce_req(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
        TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![
            PartitionProduceData::default().with_index(0).with_records(Some(records)),
        ]),
    ])
}

/// InitProducerId without a transactional id: a new id (`-1, -1`) or an epoch bump.
fn init_producer_id(c: &mut Raw, producer_id: i64, epoch: i16) -> InitProducerIdResponse {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60000)
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch);
    let ResponseKind::InitProducerId(resp) = c.call(ApiKey::InitProducerId, 4, &req) else {
        panic!("not an InitProducerId response")
    };
    resp
}

fn produce_result(resp: ResponseKind) -> (i16, i64, Option<String>) {
    let ResponseKind::Produce(p) = resp else { panic!("not a produce response") };
    let part = &p.responses[0].partition_responses[0];
    (part.error_code, part.base_offset, part.error_message.as_ref().map(|m| m.to_string()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_advertises_what_decodes_and_answers_a_too_new_request_in_v0() {
    let (_dir, cluster, server) = start().await;
    let addr = server.local_addr();
    blocking(move || {
        let mut c = Raw::connect(addr);
        let ResponseKind::ApiVersions(v) = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        else {
            panic!()
        };
        assert_eq!(v.error_code, 0);
        let produce = v.api_keys.iter().find(|k| k.api_key == ApiKey::Produce as i16).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (3, 12));
        assert!(v.api_keys.iter().all(|k| k.api_key != ApiKey::SaslHandshake as i16));

        // Version 99: UNSUPPORTED_VERSION in a v0 body, connection kept.
        c.send_raw(&encode_request(ApiKey::ApiVersions, 3, 5, &ApiVersionsRequest::default())[..2]).ok();
        let mut c = Raw::connect(addr);
        let mut frame = encode_request(ApiKey::ApiVersions, 0, 9, &ApiVersionsRequest::default());
        frame[2..4].copy_from_slice(&99i16.to_be_bytes());
        c.send_raw(&frame).unwrap();
        let mut resp = c.read_frame().unwrap();
        let header = ResponseHeader::decode(&mut resp, 0).unwrap();
        assert_eq!(header.correlation_id, 9);
        let body = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
        assert_eq!(body.error_code, 35);
        assert!(!body.api_keys.is_empty());
        assert!(matches!(
            c.call(ApiKey::Metadata, 12, &MetadataRequest::default()),
            ResponseKind::Metadata(_)
        ));
    })
    .await;
    server.shutdown().await;
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_own_connection_and_harm_nothing_stored() {
    let (_dir, cluster, server) = start().await;
    let addr = server.local_addr();
    cluster.admin().create_topic(NewTopic::new("safe", 1)).await.unwrap();
    blocking(move || {
        let mut good = Raw::connect(addr);
        let (code, base, _) =
            produce_result(good.call(ApiKey::Produce, 9, &produce_req("safe", batch_bytes(3, None))));
        assert_eq!((code, base), (0, 0));

        let metadata = encode_request(ApiKey::Metadata, 9, 1, &MetadataRequest::default());
        let mut leftover = metadata.clone();
        leftover.extend_from_slice(&[1, 2, 3]);
        let mut unknown_key = metadata.clone();
        unknown_key[0..2].copy_from_slice(&(-5i16).to_be_bytes());
        let mut old_produce =
            encode_request(ApiKey::Produce, 3, 1, &produce_req("safe", batch_bytes(1, None)));
        old_produce[2..4].copy_from_slice(&2i16.to_be_bytes());
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("garbage", vec![0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 9, 9, 9]),
            ("header cut short", metadata[..5].to_vec()),
            ("body cut short", metadata[..metadata.len() - 1].to_vec()),
            ("bytes left over", leftover.to_vec()),
            ("unknown api key", unknown_key.to_vec()),
            ("produce v2 (below the floor)", old_produce.to_vec()),
        ];
        for (what, frame) in cases {
            let mut c = Raw::connect(addr);
            c.send_raw(&frame).unwrap();
            assert!(c.closed(), "{what}: connection not closed");
        }
        // Oversized and negative lengths are refused before reading a body.
        for len in [i32::MAX, -7] {
            let mut c = Raw::connect(addr);
            c.stream.write_all(&len.to_be_bytes()).unwrap();
            assert!(c.closed(), "length {len}: connection not closed");
        }
        // A batch with a bad CRC: an error response, nothing stored.
        let mut bad = batch_bytes(2, None).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let (code, _, msg) =
            produce_result(good.call(ApiKey::Produce, 9, &produce_req("safe", Bytes::from(bad))));
        assert_eq!(code, 2, "CORRUPT_MESSAGE expected: {msg:?}");
        assert!(
            msg.as_deref().unwrap_or("").contains("crc mismatch"),
            "the error names the problem: {msg:?}"
        );
        // Two batches in one partition's records: refused (Kafka's rule for v3+).
        let mut two = batch_bytes(1, None).to_vec();
        two.extend_from_slice(&batch_bytes(1, None));
        let (code, _, _) =
            produce_result(good.call(ApiKey::Produce, 9, &produce_req("safe", Bytes::from(two))));
        assert_eq!(code, 87);
        // An illegal topic name.
        let (code, _, _) =
            produce_result(good.call(ApiKey::Produce, 9, &produce_req("bad/name", batch_bytes(1, None))));
        assert_eq!(code, 17);
        // The connection that behaved was served throughout, and the log
        // holds exactly the first three records.
        let (code, base, _) =
            produce_result(good.call(ApiKey::Produce, 9, &produce_req("safe", batch_bytes(1, None))));
        assert_eq!((code, base), (0, 3));
    })
    .await;
    let log = cluster.broker().unwrap().log("safe", 0).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.read_records(0, 1 << 20).unwrap().len(), 4);
    server.shutdown().await;
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_produce_drops_retries_refuses_gaps_and_fences_old_epochs() {
    let (_dir, cluster, server) = start().await;
    let addr = server.local_addr();
    cluster.admin().create_topic(NewTopic::new("idem", 1)).await.unwrap();
    blocking(move || {
        let mut c = Raw::connect(addr);
        let init = init_producer_id(&mut c, -1, -1);
        assert_eq!(init.error_code, 0);
        let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
        assert!(pid >= 0);
        let send = |c: &mut Raw, n: usize, e: i16, seq: i32| {
            produce_result(c.call(
                ApiKey::Produce,
                9,
                &produce_req("idem", batch_bytes(n, Some((pid, e, seq)))),
            ))
        };
        assert_eq!(send(&mut c, 5, epoch, 0).0, 0);
        // A retry of the same batch: acknowledged with the original offset, not stored twice.
        let (code, base, _) = send(&mut c, 5, epoch, 0);
        assert_eq!((code, base), (0, 0));
        // A gap.
        let (code, _, msg) = send(&mut c, 1, epoch, 10);
        assert_eq!(code, 45, "{msg:?}");
        assert!(msg.unwrap().contains("expected 5"));
        let (code, base, _) = send(&mut c, 2, epoch, 5);
        assert_eq!((code, base), (0, 5));
        // A bumped epoch (KIP-360) restarts sequences; the old epoch is fenced.
        let bumped = init_producer_id(&mut c, pid, epoch);
        assert_eq!((bumped.producer_id.0, bumped.producer_epoch), (pid, epoch + 1));
        assert_eq!(send(&mut c, 1, epoch + 1, 0).0, 0);
        assert_eq!(send(&mut c, 1, epoch, 7).0, 47);
        // A second producer gets a different id.
        let other = init_producer_id(&mut c, -1, -1);
        assert_ne!(other.producer_id.0, pid);
    })
    .await;
    assert_eq!(cluster.broker().unwrap().log("idem", 0).unwrap().log_end_offset(), 8);
    server.shutdown().await;
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_long_polls_until_an_embedded_producer_appends() {
    let (_dir, cluster, server) = start().await;
    let addr = server.local_addr();
    cluster.admin().create_topic(NewTopic::new("poll", 1)).await.unwrap();
    let waiting = blocking(move || {
        let mut c = Raw::connect(addr);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(10_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default().with_topic(name("poll")).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ])]);
        let started = Instant::now();
        let ResponseKind::Fetch(f) = c.call(ApiKey::Fetch, 12, &req) else { panic!() };
        (started.elapsed(), f)
    });
    let waiting = tokio::spawn(waiting);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let producer = cluster.producer(ProducerConfig::default()).unwrap();
    producer.send(ProducerRecord::new("poll").value("hello")).await.unwrap();
    let (elapsed, fetched) = waiting.await.unwrap();
    assert!(elapsed >= Duration::from_millis(250), "answered before the append: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(9), "did not wake on the append: {elapsed:?}");
    let part = &fetched.responses[0].partitions[0];
    assert_eq!((part.error_code, part.high_watermark), (0, 1));
    let records = part.records.clone().unwrap();
    let stored = cluster.broker().unwrap().log("poll", 0).unwrap().read(0, 1 << 20).unwrap();
    assert_eq!(&records[..], &stored.bytes[..], "fetch serves the stored bytes unchanged");
    producer.close().await.unwrap();
    server.shutdown().await;
    cluster.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_committed_over_the_wire_are_seen_by_embedded_consumers_and_admin() {
    let (_dir, cluster, server) = start().await;
    let addr = server.local_addr();
    cluster.admin().create_topic(NewTopic::new("shared", 2)).await.unwrap();
    blocking(move || {
        let mut c = Raw::connect(addr);
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g1")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name("shared"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(42),
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(9)
                        .with_committed_offset(1),
                ])]);
        let ResponseKind::OffsetCommit(r) = c.call(ApiKey::OffsetCommit, 8, &req) else { panic!() };
        let codes: Vec<i16> = r.topics[0].partitions.iter().map(|p| p.error_code).collect();
        assert_eq!(codes, vec![0, 3], "partition 9 does not exist");
    })
    .await;
    let committed = cluster.broker().unwrap().committed_offsets("g1");
    assert_eq!(committed.values().map(|o| o.offset).collect::<Vec<_>>(), vec![42]);
    let consumer = cluster.consumer(ConsumerConfig::group("g1")).unwrap();
    let tp = runnel_core::topic::TopicPartition::new("shared", 1);
    let got = consumer.committed(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(got[&tp].as_ref().map(|o| o.offset), Some(42));
    server.shutdown().await;
    cluster.close().await.unwrap();
}

/// Frames built from valid requests of every API, then mutated (bytes
/// flipped, cut, extended, versions moved), sent to a live server. The
/// server must answer or close each connection, never crash, and keep
/// serving. `RUNNEL_FUZZ_SECS` runs it for that long (the default is a
/// short pass); `RUNNEL_TEST_SEED` replays a seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_frames_never_take_the_server_down() {
    let (_dir, cluster, server) = start().await;
    let addr = server.local_addr();
    cluster.admin().create_topic(NewTopic::new("fz", 2)).await.unwrap();
    let seed = std::env::var("RUNNEL_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let secs: u64 = std::env::var("RUNNEL_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    println!("fuzz seed {seed} (replay with RUNNEL_TEST_SEED={seed})");
    let (frames, closes) = blocking(move || {
        let seeds = seed_frames();
        let mut rng = common::Rng(seed);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let (mut frames, mut closes) = (0u64, 0u64);
        let mut conn = Raw::connect(addr);
        conn.stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        while frames < 1500 || Instant::now() < deadline {
            let mut frame = seeds[rng.below(seeds.len() as u64) as usize].to_vec();
            mutate(&mut frame, &mut rng);
            frames += 1;
            let answered = conn.send_raw(&frame).is_ok() && conn.read_frame().is_ok();
            if !answered {
                closes += 1;
                conn = Raw::connect(addr);
                conn.stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            }
            if frames % 500 == 0 {
                // Still serving a well-formed request on a fresh connection.
                let mut probe = Raw::connect(addr);
                assert!(matches!(
                    probe.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
                    ResponseKind::ApiVersions(_)
                ));
            }
        }
        (frames, closes)
    })
    .await;
    println!("fuzz: {frames} frames, {closes} connections closed by the server, seed {seed}");
    let mut probe = Raw::connect(addr);
    assert!(matches!(
        blocking(move || probe.call(ApiKey::Metadata, 12, &MetadataRequest::default())).await,
        ResponseKind::Metadata(_)
    ));
    server.shutdown().await;
    cluster.close().await.unwrap();
}

fn seed_frames() -> Vec<BytesMut> {
    let g = || GroupId(StrBytes::from_static_str("fz-group"));
    let sub = {
        let mut m = BytesMut::new();
        m.extend_from_slice(&0i16.to_be_bytes());
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_static_str("fz")])
            .encode(&mut m, 0)
            .unwrap();
        m.freeze()
    };
    vec![
        encode_request(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default()),
        encode_request(
            ApiKey::Metadata,
            12,
            1,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("fz"))),
            ])),
        ),
        encode_request(ApiKey::Metadata, 1, 1, &MetadataRequest::default()),
        encode_request(ApiKey::Produce, 9, 1, &produce_req("fz", batch_bytes(3, None))),
        encode_request(ApiKey::Produce, 3, 1, &produce_req("fz", batch_bytes(2, Some((5, 0, 0))))),
        encode_request(
            ApiKey::Fetch,
            12,
            1,
            &FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![
                FetchTopic::default().with_topic(name("fz")).with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 16)]),
            ]),
        ),
        encode_request(
            ApiKey::Fetch,
            4,
            1,
            &FetchRequest::default().with_max_wait_ms(0).with_topics(vec![FetchTopic::default()
                .with_topic(name("fz"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(1)
                    .with_partition_max_bytes(1 << 16)])]),
        ),
        encode_request(
            ApiKey::ListOffsets,
            7,
            1,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(name("fz")).with_partitions(
                    vec![list_offsets_request::ListOffsetsPartition::default().with_timestamp(-2)],
                ),
            ]),
        ),
        encode_request(
            ApiKey::FindCoordinator,
            3,
            1,
            &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("fz-group")),
        ),
        encode_request(
            ApiKey::JoinGroup,
            5,
            1,
            &JoinGroupRequest::default()
                .with_group_id(g())
                .with_session_timeout_ms(6000)
                .with_rebalance_timeout_ms(100)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(sub)]),
        ),
        encode_request(
            ApiKey::SyncGroup,
            3,
            1,
            &SyncGroupRequest::default()
                .with_group_id(g())
                .with_generation_id(1)
                .with_member_id(StrBytes::from_static_str("m")),
        ),
        encode_request(
            ApiKey::Heartbeat,
            3,
            1,
            &HeartbeatRequest::default().with_group_id(g()).with_member_id(StrBytes::from_static_str("m")),
        ),
        encode_request(
            ApiKey::LeaveGroup,
            4,
            1,
            &LeaveGroupRequest::default()
                .with_group_id(g())
                .with_members(vec![leave_group_request::MemberIdentity::default()
                    .with_member_id(StrBytes::from_static_str("m"))]),
        ),
        encode_request(
            ApiKey::OffsetCommit,
            8,
            1,
            &OffsetCommitRequest::default()
                .with_group_id(g())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(name("fz"))
                    .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_offset(1)])]),
        ),
        encode_request(ApiKey::OffsetFetch, 7, 1, &OffsetFetchRequest::default().with_group_id(g())),
        encode_request(ApiKey::ListGroups, 4, 1, &ListGroupsRequest::default()),
        encode_request(
            ApiKey::DescribeGroups,
            5,
            1,
            &DescribeGroupsRequest::default().with_groups(vec![g()]),
        ),
        encode_request(
            ApiKey::DeleteGroups,
            2,
            1,
            &DeleteGroupsRequest::default().with_groups_names(vec![g()]),
        ),
        encode_request(
            ApiKey::CreateTopics,
            5,
            1,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(name("fz-new"))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]),
        ),
        encode_request(
            ApiKey::DeleteTopics,
            4,
            1,
            &DeleteTopicsRequest::default().with_topic_names(vec![name("fz-new")]),
        ),
        encode_request(
            ApiKey::CreatePartitions,
            2,
            1,
            &CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name("fz"))
                    .with_count(2),
            ]),
        ),
        encode_request(
            ApiKey::DescribeConfigs,
            3,
            1,
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("fz")),
            ]),
        ),
        encode_request(
            ApiKey::IncrementalAlterConfigs,
            1,
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("fz"))
                    .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("100000")))]),
            ]),
        ),
        encode_request(
            ApiKey::AlterConfigs,
            1,
            1,
            &AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("fz")),
            ]),
        ),
        encode_request(ApiKey::DescribeCluster, 1, 1, &DescribeClusterRequest::default()),
        encode_request(
            ApiKey::InitProducerId,
            4,
            1,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
    ]
}

fn mutate(frame: &mut Vec<u8>, rng: &mut common::Rng) {
    match rng.below(6) {
        0 => {
            // Flip a few bytes after the api key and version.
            for _ in 0..1 + rng.below(4) {
                if frame.len() > 4 {
                    let at = 4 + rng.below(frame.len() as u64 - 4) as usize;
                    frame[at] ^= 1 << rng.below(8);
                }
            }
        }
        1 => frame.truncate(rng.below(frame.len() as u64 + 1) as usize),
        2 => {
            for _ in 0..rng.below(16) {
                frame.push(rng.below(256) as u8);
            }
        }
        3 => {
            // Another version of the same API.
            let v = rng.below(20) as i16 - 2;
            frame[2..4].copy_from_slice(&v.to_be_bytes());
        }
        4 if frame.len() > 8 => {
            let at = 8 + rng.below(frame.len() as u64 - 8) as usize;
            frame[at] = [0x00, 0xff, 0x7f, 0x80][rng.below(4) as usize];
        }
        _ => {}
    }
}

/// librdkafka's idempotent producer against the server: InitProducerId,
/// then batches carrying the producer id and consecutive sequences, all
/// stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafkas_idempotent_producer_stores_every_record_once_with_its_producer_id() {
    let (_dir, cluster, server) = start().await;
    cluster.admin().create_topic(NewTopic::new("idem-rd", 4)).await.unwrap();
    let remote = Cluster::open(&format!("kafka://{}", server.local_addr())).await.unwrap();
    let producer = remote
        .producer(ProducerConfig::default().linger_ms(2).set("enable.idempotence", "true").unwrap())
        .unwrap();
    let mut deliveries = Vec::new();
    for i in 0..20_000 {
        deliveries.push(
            producer
                .enqueue(ProducerRecord::new("idem-rd").key(format!("k{}", i % 101)).value(format!("{i}")))
                .await
                .unwrap(),
        );
    }
    for d in deliveries {
        d.await.unwrap();
    }
    producer.close().await.unwrap();
    let broker = cluster.broker().unwrap();
    let mut values = std::collections::BTreeSet::new();
    let mut producer_ids = std::collections::BTreeSet::new();
    for p in 0..4 {
        let log = broker.log("idem-rd", p).unwrap();
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let fetched = log.read(offset, 1 << 20).unwrap();
            for batch in runnel_core::record::batches(&fetched.bytes) {
                let batch = batch.unwrap();
                producer_ids.insert(batch.header().producer_id);
                for r in batch.to_records(offset).unwrap() {
                    assert!(
                        values.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
                        "stored twice"
                    );
                }
                offset = batch.header().next_offset();
            }
        }
    }
    assert_eq!(values.len(), 20_000);
    assert_eq!(producer_ids.len(), 1, "one producer id: {producer_ids:?}");
    assert!(*producer_ids.iter().next().unwrap() >= 0, "batches carry the id from InitProducerId");
    server.shutdown().await;
    cluster.close().await.unwrap();
}

/// One group, two kinds of member: an embedded consumer in this process
/// and a librdkafka consumer over the wire split the partitions, and the
/// survivor takes them all when the other leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_and_wire_members_share_one_group() {
    let (_dir, cluster, server) = start().await;
    cluster.admin().create_topic(NewTopic::new("mixed", 4)).await.unwrap();
    let remote = Cluster::open(&format!("kafka://{}", server.local_addr())).await.unwrap();
    let config = || {
        ConsumerConfig::group("mixed-group")
            .set("session.timeout.ms", "6000")
            .unwrap()
            .set("heartbeat.interval.ms", "200")
            .unwrap()
    };
    let mut embedded = cluster.consumer(config()).unwrap();
    embedded.subscribe(["mixed"]).unwrap();
    let mut wire = remote.consumer(config()).unwrap();
    wire.subscribe(["mixed"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        embedded.poll(Duration::from_millis(50)).await.unwrap();
        wire.poll(Duration::from_millis(50)).await.unwrap();
        let (a, b) = (embedded.assignment(), wire.assignment());
        if a.len() == 2 && b.len() == 2 {
            assert!(a.iter().all(|tp| !b.contains(tp)), "no partition twice: {a:?} {b:?}");
            break;
        }
        assert!(Instant::now() < deadline, "never split 2/2: embedded {a:?}, wire {b:?}");
    }
    let described = cluster
        .broker()
        .unwrap()
        .groups()
        .describe("mixed-group", cluster.broker().unwrap().now_ms())
        .unwrap();
    assert_eq!(described.members.len(), 2, "one coordinator holds both members");
    wire.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while embedded.assignment().len() < 4 {
        embedded.poll(Duration::from_millis(50)).await.unwrap();
        assert!(
            Instant::now() < deadline,
            "the embedded member did not take over: {:?}",
            embedded.assignment()
        );
    }
    embedded.close().await.unwrap();
    server.shutdown().await;
    cluster.close().await.unwrap();
}
