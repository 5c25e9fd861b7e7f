//! [`GroupMembership`]: membership in a group whose assignment the *leader*
//! computes (Kafka's classic group protocol with any protocol type, such
//! as Kafka Connect's `connect`), for runtimes that divide their own kind
//! of work: the coordinator passes each member's metadata to the leader and
//! the leader's assignment bytes back to each member.
//!
//! Two backends, chosen by the [`Cluster`]:
//!
//! - embedded (`file:`): direct calls into the broker's coordinator;
//! - `kafka://`: a small Kafka wire client (FindCoordinator, JoinGroup,
//!   SyncGroup, Heartbeat, LeaveGroup, one TCP connection to the
//!   coordinator, requests one at a time), so it works against a Runnel
//!   broker and against Apache Kafka. librdkafka only exposes consumer
//!   groups, hence this client.
//!
//! The caller drives the protocol: [`GroupMembership::join`], then (the leader
//! with every member's assignment) [`GroupMembership::sync`], then
//! [`GroupMembership::heartbeat`] every `heartbeat.interval.ms`; when a
//! heartbeat or sync says [`Rejoin`](MembershipEvent::Rejoin), join again.
//!
//! ```no_run
//! # async fn run(cluster: runnel_core::client::Cluster) -> runnel_core::Result<()> {
//! use bytes::Bytes;
//! use runnel_core::client::{GroupMembership, MembershipConfig, MembershipEvent};
//!
//! let mut member = GroupMembership::new(&cluster, MembershipConfig::new("workers", "connect")).await?;
//! let joined = member.join(vec![("v1".into(), Bytes::from_static(b"my metadata"))]).await?;
//! let plan = if joined.is_leader() {
//!     joined.members.iter().map(|(id, _)| (id.clone(), Bytes::from_static(b"work"))).collect()
//! } else {
//!     Vec::new()
//! };
//! if let MembershipEvent::Assigned(mine) = member.sync(plan).await? {
//!     // run `mine`, heartbeat, rejoin when told
//! }
//! member.leave().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::debug;

use super::Cluster;
use crate::broker::group::{
    GenericHeartbeatOutcome, GenericJoinError, GenericJoinOutcome, GenericJoinRequest, GenericSyncOutcome,
};
use crate::protocol::frame::{decode_response, encode_request, read_frame};
use crate::protocol::str_bytes as s;
use crate::vocabulary::ErrorCode;
use crate::{Error, Result};

/// Settings of a [`GroupMembership`], with Kafka's keys.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// `group.id`.
    pub group_id: String,
    /// The protocol type (`connect`, ...); every member must use the same.
    pub protocol_type: String,
    /// `client.id`, part of the member id.
    pub client_id: String,
    /// `session.timeout.ms`: silence after which the member is removed.
    pub session_timeout: Duration,
    /// `rebalance.timeout.ms`: how long a rebalance waits for members.
    pub rebalance_timeout: Duration,
    /// How long a request other than JoinGroup may take (`request.timeout.ms`).
    pub request_timeout: Duration,
}

impl MembershipConfig {
    /// Kafka Connect's defaults: 10 s session, 60 s rebalance, 40 s requests.
    pub fn new(group_id: &str, protocol_type: &str) -> Self {
        MembershipConfig {
            group_id: group_id.to_string(),
            protocol_type: protocol_type.to_string(),
            client_id: "runnel".to_string(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(40),
        }
    }
}

/// The outcome of a completed join phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The generation.
    pub generation: i32,
    /// This member's id.
    pub member_id: String,
    /// The leader's id.
    pub leader: String,
    /// The protocol chosen for the group.
    pub protocol: String,
    /// Every member's `(id, metadata)`; empty unless this member leads.
    pub members: Vec<(String, Bytes)>,
}

impl Joined {
    /// Whether this member is the leader (and must send the assignment).
    pub fn is_leader(&self) -> bool {
        self.leader == self.member_id
    }
}

/// What a sync or heartbeat tells the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// This member's assignment (sync), or "all is well" with empty bytes
    /// (heartbeat).
    Assigned(Bytes),
    /// The group is rebalancing, or this member's generation is stale:
    /// join again (keeping the member id).
    Rejoin,
    /// The group no longer knows this member (its session expired): it
    /// must give up its work and join again as a new member.
    Lost,
}

/// Membership in one group. See the [module docs](self).
#[derive(Debug)]
pub struct GroupMembership {
    config: MembershipConfig,
    backend: Backend,
    member_id: String,
    generation: i32,
    protocol: Option<String>,
}

#[derive(Debug)]
enum Backend {
    Embedded(Cluster),
    /// The bootstrap servers and the coordinator connection (`None` after
    /// a failed request: the next one finds the coordinator again).
    Wire(Vec<String>, Option<WireConnection>),
}

/// The coordinator connection, (re)connecting first if needed.
async fn wire<'a>(
    bootstrap: &[String],
    conn: &'a mut Option<WireConnection>,
    config: &MembershipConfig,
) -> Result<&'a mut WireConnection> {
    if conn.is_none() {
        *conn = Some(WireConnection::to_coordinator(bootstrap, config).await?);
    }
    Ok(conn.as_mut().expect("set above"))
}

/// Drops the connection when a request on it failed (the stream may be out
/// of step or the coordinator gone).
fn forget_on_error<T>(conn: &mut Option<WireConnection>, result: Result<T>) -> Result<T> {
    if result.is_err() {
        *conn = None;
    }
    result
}

impl GroupMembership {
    /// Prepares membership (for `kafka://`, finds and connects to the
    /// group's coordinator). Nothing is joined yet.
    ///
    /// # Errors
    /// [`Error::Kafka`] when no bootstrap server answers or none names a
    /// coordinator.
    pub async fn new(cluster: &Cluster, config: MembershipConfig) -> Result<GroupMembership> {
        let backend = match cluster.broker() {
            Some(_) => Backend::Embedded(cluster.clone()),
            None => {
                let bootstrap = cluster.bootstrap_servers();
                let conn = WireConnection::to_coordinator(&bootstrap, &config).await?;
                Backend::Wire(bootstrap, Some(conn))
            }
        };
        Ok(GroupMembership { config, backend, member_id: String::new(), generation: -1, protocol: None })
    }

    /// The member id (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation of the last completed join (-1 before).
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// Joins (or rejoins) the group with these `(protocol, metadata)`
    /// pairs and waits until the join phase completes (up to the rebalance
    /// timeout). A member the group forgot joins again as a new one.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the coordinator refuses (another protocol
    /// type, no common protocol, a session timeout outside the broker's
    /// bounds) or cannot be reached.
    pub async fn join(&mut self, protocols: Vec<(String, Bytes)>) -> Result<Joined> {
        for _ in 0..5 {
            let outcome = match &mut self.backend {
                Backend::Embedded(cluster) => {
                    embedded_join(cluster, &self.config, &self.member_id, &protocols).await?
                }
                Backend::Wire(bootstrap, conn) => {
                    let c = wire(bootstrap, conn, &self.config).await?;
                    let r = c.join(&self.config, &self.member_id, &protocols).await;
                    forget_on_error(conn, r)?
                }
            };
            match outcome {
                JoinAnswer::Joined(j) => {
                    self.member_id = j.member_id.clone();
                    self.generation = j.generation;
                    self.protocol = Some(j.protocol.clone());
                    return Ok(j);
                }
                JoinAnswer::Retry(member_id) => self.member_id = member_id,
            }
        }
        Err(Error::kafka(
            format!("joining group '{}'", self.config.group_id),
            "the coordinator kept asking to join again",
            true,
        ))
    }

    /// Sends this member's part of the sync (the leader: every member's
    /// assignment; the others: nothing) and waits for this member's
    /// assignment.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the coordinator cannot be reached or answers
    /// with an unexpected error.
    pub async fn sync(&mut self, assignments: Vec<(String, Bytes)>) -> Result<MembershipEvent> {
        let event = match &mut self.backend {
            Backend::Embedded(cluster) => {
                embedded_sync(cluster, &self.config, &self.member_id, self.generation, assignments).await?
            }
            Backend::Wire(bootstrap, conn) => {
                let c = wire(bootstrap, conn, &self.config).await?;
                let r = c
                    .sync(
                        &self.config,
                        &self.member_id,
                        self.generation,
                        self.protocol.as_deref(),
                        assignments,
                    )
                    .await;
                forget_on_error(conn, r)?
            }
        };
        self.after(&event);
        Ok(event)
    }

    /// Tells the coordinator this member is alive; says whether to rejoin.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the coordinator cannot be reached or answers
    /// with an unexpected error.
    pub async fn heartbeat(&mut self) -> Result<MembershipEvent> {
        let event = match &mut self.backend {
            Backend::Embedded(cluster) => {
                let broker = embedded_broker(cluster)?;
                let outcome = broker.groups().generic().heartbeat(
                    &self.config.group_id,
                    &self.member_id,
                    self.generation,
                    broker.now_ms(),
                );
                match outcome {
                    GenericHeartbeatOutcome::Ok => MembershipEvent::Assigned(Bytes::new()),
                    GenericHeartbeatOutcome::RebalanceInProgress
                    | GenericHeartbeatOutcome::IllegalGeneration => MembershipEvent::Rejoin,
                    GenericHeartbeatOutcome::UnknownMember => MembershipEvent::Lost,
                }
            }
            Backend::Wire(bootstrap, conn) => {
                let c = wire(bootstrap, conn, &self.config).await?;
                let r = c.heartbeat(&self.config, &self.member_id, self.generation).await;
                forget_on_error(conn, r)?
            }
        };
        self.after(&event);
        Ok(event)
    }

    /// Leaves the group (the others rebalance at once rather than after
    /// the session timeout).
    ///
    /// # Errors
    /// [`Error::Kafka`] when the coordinator cannot be reached.
    pub async fn leave(&mut self) -> Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        match &mut self.backend {
            Backend::Embedded(cluster) => {
                let broker = embedded_broker(cluster)?;
                broker.groups().generic().leave(&self.config.group_id, &self.member_id, broker.now_ms());
            }
            Backend::Wire(bootstrap, conn) => {
                let c = wire(bootstrap, conn, &self.config).await?;
                let r = c.leave(&self.config, &self.member_id).await;
                forget_on_error(conn, r)?
            }
        }
        self.member_id.clear();
        self.generation = -1;
        Ok(())
    }

    fn after(&mut self, event: &MembershipEvent) {
        if *event == MembershipEvent::Lost {
            self.member_id.clear();
            self.generation = -1;
        }
    }
}

enum JoinAnswer {
    Joined(Joined),
    /// Join again with this member id (Kafka's MEMBER_ID_REQUIRED, or a
    /// forgotten member starting over with none).
    Retry(String),
}

fn embedded_broker(cluster: &Cluster) -> Result<&crate::broker::Broker> {
    cluster.broker().ok_or_else(|| Error::Closed("embedded cluster".into()))
}

async fn embedded_join(
    cluster: &Cluster,
    config: &MembershipConfig,
    member_id: &str,
    protocols: &[(String, Bytes)],
) -> Result<JoinAnswer> {
    let broker = embedded_broker(cluster)?;
    let generic = broker.groups().generic();
    let mut changes = generic.watch(&config.group_id, &config.protocol_type);
    let req = GenericJoinRequest {
        group_id: config.group_id.clone(),
        member_id: (!member_id.is_empty()).then(|| member_id.to_string()),
        client_id: config.client_id.clone(),
        protocol_type: config.protocol_type.clone(),
        protocols: protocols.to_vec(),
        session_timeout_ms: config.session_timeout.as_millis() as u64,
        rebalance_timeout_ms: config.rebalance_timeout.as_millis() as u64,
    };
    let id = match generic.join(req, broker.now_ms()) {
        Ok(id) => id,
        Err(GenericJoinError::UnknownMember) => return Ok(JoinAnswer::Retry(String::new())),
        Err(GenericJoinError::InconsistentProtocol(reason)) => {
            return Err(Error::kafka(format!("joining group '{}'", config.group_id), reason, false))
        }
    };
    loop {
        changes.borrow_and_update();
        match generic.join_outcome(&config.group_id, &id, broker.now_ms()) {
            GenericJoinOutcome::Joined(j) => {
                return Ok(JoinAnswer::Joined(Joined {
                    generation: j.generation,
                    member_id: j.member_id,
                    leader: j.leader,
                    protocol: j.protocol,
                    members: j.members,
                }))
            }
            GenericJoinOutcome::UnknownMember => return Ok(JoinAnswer::Retry(String::new())),
            GenericJoinOutcome::Pending => {}
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

async fn embedded_sync(
    cluster: &Cluster,
    config: &MembershipConfig,
    member_id: &str,
    generation: i32,
    mut assignments: Vec<(String, Bytes)>,
) -> Result<MembershipEvent> {
    let broker = embedded_broker(cluster)?;
    let generic = broker.groups().generic();
    let mut changes = generic.watch(&config.group_id, &config.protocol_type);
    loop {
        changes.borrow_and_update();
        let outcome = generic.sync(
            &config.group_id,
            member_id,
            generation,
            std::mem::take(&mut assignments),
            broker.now_ms(),
        );
        match outcome {
            GenericSyncOutcome::Assigned(bytes) => return Ok(MembershipEvent::Assigned(bytes)),
            GenericSyncOutcome::RebalanceInProgress | GenericSyncOutcome::IllegalGeneration => {
                return Ok(MembershipEvent::Rejoin)
            }
            GenericSyncOutcome::UnknownMember => return Ok(MembershipEvent::Lost),
            GenericSyncOutcome::Pending => {}
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

// Request versions: the newest before flexible encoding, which Kafka 4.x
// still accepts and a Runnel broker implements.
const FIND_COORDINATOR_VERSION: i16 = 2;
const JOIN_GROUP_VERSION: i16 = 5;
const SYNC_GROUP_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 3;
const LEAVE_GROUP_VERSION: i16 = 3;

/// The largest coordinator answer read (a JoinGroup response lists every
/// member's metadata).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

fn refused(config: &MembershipConfig, what: &str, code: i16) -> Error {
    Error::kafka_code(format!("{what} (group '{}')", config.group_id), code, None)
}

/// One connection to the group coordinator; requests go one at a time.
#[derive(Debug)]
struct WireConnection {
    stream: TcpStream,
    address: String,
    client_id: String,
    correlation_id: i32,
}

impl WireConnection {
    async fn open(address: &str, client_id: &str, timeout: Duration) -> Result<WireConnection> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| Error::Timeout {
                ms: timeout.as_millis() as u64,
                what: "a connection to the group coordinator",
            })?
            .map_err(|e| Error::kafka(format!("connecting to {address}"), e.to_string(), true))?;
        let _ = stream.set_nodelay(true);
        Ok(WireConnection {
            stream,
            address: address.to_string(),
            client_id: client_id.to_string(),
            correlation_id: 0,
        })
    }

    /// Asks the bootstrap servers, in turn, for the group's coordinator and
    /// connects to it.
    async fn to_coordinator(bootstrap: &[String], config: &MembershipConfig) -> Result<WireConnection> {
        let mut last = String::from("no bootstrap servers");
        for _ in 0..10 {
            for server in bootstrap {
                match Self::find(server, config).await {
                    Ok(Some(coordinator)) => {
                        return Self::open(&coordinator, &config.client_id, config.request_timeout).await
                    }
                    Ok(None) => last = format!("{server}: coordinator not available yet"),
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(Error::kafka(format!("finding the coordinator of group '{}'", config.group_id), last, true))
    }

    async fn find(server: &str, config: &MembershipConfig) -> Result<Option<String>> {
        let mut conn = Self::open(server, &config.client_id, config.request_timeout).await?;
        let req = FindCoordinatorRequest::default().with_key(s(&config.group_id)).with_key_type(0);
        let resp: FindCoordinatorResponse = conn
            .call(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &req, config.request_timeout)
            .await?;
        match ErrorCode::from_code(resp.error_code) {
            Some(ErrorCode::None) => Ok(Some(format!("{}:{}", resp.host, resp.port))),
            Some(ErrorCode::CoordinatorNotAvailable) | Some(ErrorCode::CoordinatorLoadInProgress) => Ok(None),
            _ => Err(refused(config, "FindCoordinator", resp.error_code)),
        }
    }

    async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp> {
        let address = self.address.clone();
        let op = format!("{api:?} to {address}");
        match tokio::time::timeout(timeout, self.exchange(api, version, req)).await {
            Ok(result) => result.map_err(|reason| Error::kafka(op, reason, false)),
            Err(_) => Err(Error::kafka(op, format!("no answer within {} ms", timeout.as_millis()), true)),
        }
    }

    async fn exchange<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> std::result::Result<Resp, String> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let out = encode_request(api, version, correlation_id, &self.client_id, req)?;
        self.stream.write_all(&out).await.map_err(|e| format!("write failed: {e}"))?;
        let frame = read_frame(&mut self.stream, MAX_RESPONSE_BYTES)
            .await?
            .ok_or_else(|| "the coordinator closed the connection".to_string())?;
        decode_response(frame, api, version, correlation_id)
    }

    async fn join(
        &mut self,
        config: &MembershipConfig,
        member_id: &str,
        protocols: &[(String, Bytes)],
    ) -> Result<JoinAnswer> {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&config.group_id)))
            .with_session_timeout_ms(config.session_timeout.as_millis() as i32)
            .with_rebalance_timeout_ms(config.rebalance_timeout.as_millis() as i32)
            .with_member_id(s(member_id))
            .with_protocol_type(s(&config.protocol_type))
            .with_protocols(
                protocols
                    .iter()
                    .map(|(name, metadata)| {
                        JoinGroupRequestProtocol::default().with_name(s(name)).with_metadata(metadata.clone())
                    })
                    .collect(),
            );
        // The coordinator holds a join until every member rejoined.
        let timeout = config.rebalance_timeout + config.request_timeout;
        let resp: JoinGroupResponse = self.call(ApiKey::JoinGroup, JOIN_GROUP_VERSION, &req, timeout).await?;
        match ErrorCode::from_code(resp.error_code) {
            Some(ErrorCode::None) => Ok(JoinAnswer::Joined(Joined {
                generation: resp.generation_id,
                member_id: resp.member_id.to_string(),
                leader: resp.leader.to_string(),
                protocol: resp.protocol_name.map(|p| p.to_string()).unwrap_or_default(),
                members: resp.members.into_iter().map(|m| (m.member_id.to_string(), m.metadata)).collect(),
            })),
            Some(ErrorCode::MemberIdRequired) => Ok(JoinAnswer::Retry(resp.member_id.to_string())),
            Some(ErrorCode::UnknownMemberId) => Ok(JoinAnswer::Retry(String::new())),
            Some(ErrorCode::RebalanceInProgress) => Ok(JoinAnswer::Retry(member_id.to_string())),
            _ => Err(refused(config, "JoinGroup", resp.error_code)),
        }
    }

    async fn sync(
        &mut self,
        config: &MembershipConfig,
        member_id: &str,
        generation: i32,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<MembershipEvent> {
        let _ = protocol; // carried from SyncGroup v5 on; this client speaks v3
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&config.group_id)))
            .with_generation_id(generation)
            .with_member_id(s(member_id))
            .with_assignments(
                assignments
                    .into_iter()
                    .map(|(id, bytes)| {
                        SyncGroupRequestAssignment::default().with_member_id(s(&id)).with_assignment(bytes)
                    })
                    .collect(),
            );
        // Followers wait for the leader's assignment.
        let timeout = config.rebalance_timeout + config.request_timeout;
        let resp: SyncGroupResponse = self.call(ApiKey::SyncGroup, SYNC_GROUP_VERSION, &req, timeout).await?;
        event(config, "SyncGroup", resp.error_code, resp.assignment)
    }

    async fn heartbeat(
        &mut self,
        config: &MembershipConfig,
        member_id: &str,
        generation: i32,
    ) -> Result<MembershipEvent> {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&config.group_id)))
            .with_generation_id(generation)
            .with_member_id(s(member_id));
        let resp: HeartbeatResponse =
            self.call(ApiKey::Heartbeat, HEARTBEAT_VERSION, &req, config.request_timeout).await?;
        event(config, "Heartbeat", resp.error_code, Bytes::new())
    }

    async fn leave(&mut self, config: &MembershipConfig, member_id: &str) -> Result<()> {
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(&config.group_id)))
            .with_members(vec![MemberIdentity::default().with_member_id(s(member_id))]);
        let resp: LeaveGroupResponse =
            self.call(ApiKey::LeaveGroup, LEAVE_GROUP_VERSION, &req, config.request_timeout).await?;
        match ErrorCode::from_code(resp.error_code) {
            Some(ErrorCode::None) | Some(ErrorCode::UnknownMemberId) => Ok(()),
            _ => Err(refused(config, "LeaveGroup", resp.error_code)),
        }
    }
}

fn event(config: &MembershipConfig, what: &str, code: i16, assignment: Bytes) -> Result<MembershipEvent> {
    match ErrorCode::from_code(code) {
        Some(ErrorCode::None) => Ok(MembershipEvent::Assigned(assignment)),
        Some(ErrorCode::RebalanceInProgress) | Some(ErrorCode::IllegalGeneration) => {
            Ok(MembershipEvent::Rejoin)
        }
        Some(ErrorCode::UnknownMemberId) => Ok(MembershipEvent::Lost),
        Some(ErrorCode::NotCoordinator) | Some(ErrorCode::CoordinatorNotAvailable) => {
            debug!(group = config.group_id, what, "coordinator moved");
            Err(refused(config, what, code))
        }
        _ => Err(refused(config, what, code)),
    }
}
