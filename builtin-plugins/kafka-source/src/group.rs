//! Consumer-group membership (Kafka's classic group protocol, eager
//! rebalancing, the `range` assignor), driven a step at a time from
//! `read` so that no call blocks past its deadline: JoinGroup can wait at
//! the coordinator until every member rejoined, so its answer is polled
//! on a connection of its own across reads. The leader of a generation
//! assigns the topic's partitions in ranges over the members sorted by
//! id, as Kafka's `RangeAssignor` does, so Oort instances and other Kafka
//! consumers using `range` share a group.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_common::{
    code_name, topic_name, Cluster, Conn, HEARTBEAT_VERSION, JOIN_GROUP_VERSION,
    LEAVE_GROUP_VERSION, SYNC_GROUP_VERSION,
};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use oort_plugin_sdk::Error;

/// Without a heartbeat for this long the coordinator drops the member.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the coordinator waits for members to rejoin in a rebalance.
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
const PROTOCOL: &str = "range";

/// Error codes that mean "join again" (with the member id kept or not).
const REBALANCE_IN_PROGRESS: i16 = 27;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const MEMBER_ID_REQUIRED: i16 = 79;

enum State {
    /// Not in the group; join at the next step.
    Out,
    /// JoinGroup sent (correlation id).
    Joining(i32),
    /// SyncGroup sent.
    Syncing(i32),
    /// Member of `generation`; a heartbeat may be in flight.
    Stable { heartbeat: Option<i32> },
}

/// What a step brought.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed.
    Same,
    /// The partitions owned so far are no longer ours (a rebalance
    /// started): commit their positions now, the next steps rejoin.
    Revoked,
    /// A new generation: these partitions are ours.
    Assigned(Vec<i32>),
}

pub struct Group {
    pub id: String,
    topic: String,
    conn: Option<Conn>,
    coordinator: i32,
    member: String,
    pub generation: i32,
    state: State,
    last_beat: Instant,
    owned: bool,
    /// This member led the last generation (and assigned), with how many
    /// members.
    pub leader: bool,
    pub members: usize,
    /// The generation a rebalance started from (to see that it advanced).
    rebalancing_from: Option<i32>,
}

fn subscription(topic: &str) -> Result<Bytes, Error> {
    let s = ConsumerProtocolSubscription::default()
        .with_topics(vec![StrBytes::from_string(topic.to_string())]);
    let mut b = BytesMut::new();
    b.put_i16(0);
    s.encode(&mut b, 0)
        .map_err(|e| Error::internal(format!("kafka subscription: {e}")))?;
    Ok(b.freeze())
}

fn assignment_bytes(topic: &str, partitions: Vec<i32>) -> Result<Bytes, Error> {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions),
    ]);
    let mut b = BytesMut::new();
    b.put_i16(0);
    a.encode(&mut b, 0)
        .map_err(|e| Error::internal(format!("kafka assignment: {e}")))?;
    Ok(b.freeze())
}

/// The partitions of `topic` in an assignment (empty bytes: none).
fn parse_assignment(topic: &str, mut b: Bytes) -> Result<Vec<i32>, Error> {
    if b.len() < 2 {
        return Ok(Vec::new());
    }
    let v = b.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut b, v)
        .map_err(|e| Error::unavailable(format!("kafka: undecodable assignment: {e}")))?;
    let mut out: Vec<i32> = a
        .assigned_partitions
        .iter()
        .filter(|t| t.topic.0.as_str() == topic)
        .flat_map(|t| t.partitions.iter().copied())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Kafka's range assignment of `partitions` over `members` (ids).
pub fn range_assign(members: &[String], partitions: &[i32]) -> Vec<(String, Vec<i32>)> {
    let mut m: Vec<String> = members.to_vec();
    m.sort();
    let mut p: Vec<i32> = partitions.to_vec();
    p.sort_unstable();
    let n = m.len().max(1);
    let (each, extra) = (p.len() / n, p.len() % n);
    let mut at = 0;
    m.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let k = each + usize::from(i < extra);
            let part = p[at..at + k].to_vec();
            at += k;
            (id, part)
        })
        .collect()
}

impl Group {
    pub fn new(id: String, topic: String) -> Group {
        Group {
            id,
            topic,
            conn: None,
            coordinator: -1,
            member: String::new(),
            generation: -1,
            state: State::Out,
            last_beat: Instant::now(),
            owned: false,
            leader: false,
            members: 0,
            rebalancing_from: None,
        }
    }

    fn gid(&self) -> GroupId {
        GroupId(StrBytes::from_string(self.id.clone()))
    }

    /// The member id and generation to commit offsets with (those of the
    /// last generation joined, during a rebalance too).
    pub fn member_generation(&self) -> (String, i32) {
        (self.member.clone(), self.generation)
    }

    /// Starts over: a new coordinator lookup and a fresh join.
    fn reset(&mut self, forget_member: bool) -> Step {
        self.conn = None;
        self.state = State::Out;
        if forget_member {
            self.member.clear();
            self.generation = -1;
        }
        if std::mem::take(&mut self.owned) {
            Step::Revoked
        } else {
            Step::Same
        }
    }

    /// A rejoin after `code`; `Revoked` when partitions were owned.
    fn rejoin(&mut self, code: i16) -> Step {
        oort_plugin_sdk::logging::info(&format!(
            "kafka group {}: rejoining ({}, generation {})",
            self.id,
            code_name(code),
            self.generation
        ));
        if code == REBALANCE_IN_PROGRESS && self.generation >= 0 {
            self.rebalancing_from = Some(self.generation);
        }
        let forget = matches!(code, ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID);
        if matches!(
            code,
            NOT_COORDINATOR | COORDINATOR_NOT_AVAILABLE | COORDINATOR_LOAD_IN_PROGRESS
        ) {
            self.coordinator = -1;
        }
        self.reset(forget)
    }

    fn conn(&mut self, cluster: &mut Cluster) -> Result<&mut Conn, Error> {
        if self.conn.is_none() {
            if self.coordinator < 0 {
                self.coordinator = cluster.coordinator(&self.id)?;
            }
            let addr = cluster.broker_addr(self.coordinator).ok_or_else(|| {
                Error::unavailable(format!("kafka group {}: coordinator unknown", self.id))
            })?;
            self.conn = Some(Conn::connect(&addr, cluster.timeout, &cluster.security)?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::internal("kafka group: no connection"))
    }

    /// One step of membership, waiting for an answer until `deadline`.
    /// `partitions`: the topic's partitions (for the leader's assignment).
    pub fn step(
        &mut self,
        cluster: &mut Cluster,
        partitions: &[i32],
        deadline: Instant,
    ) -> Result<Step, Error> {
        match self.drive(cluster, partitions, deadline) {
            Ok(s) => Ok(s),
            Err(e) => {
                // A broken connection: rejoin through a fresh lookup.
                self.coordinator = -1;
                let revoked = self.reset(false);
                if revoked == Step::Revoked {
                    oort_plugin_sdk::logging::warn(&format!(
                        "kafka group {}: {}; rejoining",
                        self.id, e.message
                    ));
                    return Ok(Step::Revoked);
                }
                Err(e)
            }
        }
    }

    fn drive(
        &mut self,
        cluster: &mut Cluster,
        partitions: &[i32],
        deadline: Instant,
    ) -> Result<Step, Error> {
        loop {
            match self.state {
                State::Out => {
                    let req = JoinGroupRequest::default()
                        .with_group_id(self.gid())
                        .with_session_timeout_ms(SESSION_TIMEOUT.as_millis() as i32)
                        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT.as_millis() as i32)
                        .with_member_id(StrBytes::from_string(self.member.clone()))
                        .with_protocol_type(StrBytes::from_static_str("consumer"))
                        .with_protocols(vec![JoinGroupRequestProtocol::default()
                            .with_name(StrBytes::from_static_str(PROTOCOL))
                            .with_metadata(subscription(&self.topic)?)]);
                    let id =
                        self.conn(cluster)?
                            .send(ApiKey::JoinGroup, JOIN_GROUP_VERSION, &req)?;
                    self.state = State::Joining(id);
                }
                State::Joining(id) => {
                    let conn = self.conn(cluster)?;
                    let Some(r): Option<JoinGroupResponse> =
                        conn.poll(ApiKey::JoinGroup, JOIN_GROUP_VERSION, id, deadline)?
                    else {
                        return Ok(Step::Same);
                    };
                    if r.error_code == MEMBER_ID_REQUIRED {
                        // KIP-394: join again with the id the coordinator gave.
                        self.member = r.member_id.as_str().to_string();
                        self.state = State::Out;
                        continue;
                    }
                    if r.error_code != 0 {
                        if r.error_code == REBALANCE_IN_PROGRESS
                            || r.error_code == UNKNOWN_MEMBER_ID
                            || r.error_code == NOT_COORDINATOR
                            || r.error_code == COORDINATOR_NOT_AVAILABLE
                            || r.error_code == COORDINATOR_LOAD_IN_PROGRESS
                        {
                            self.rejoin(r.error_code);
                            return Ok(Step::Same);
                        }
                        return Err(Error::unavailable(format!(
                            "kafka group {}: join: {} (error {})",
                            self.id,
                            code_name(r.error_code),
                            r.error_code
                        )));
                    }
                    if let Some(was) = self.rebalancing_from.take() {
                        if r.generation_id <= was && !self.member.is_empty() {
                            // A rebalance always makes a new generation in
                            // Kafka; a coordinator that kept the old one
                            // (Tansu 0.6 after a member expired) keeps the
                            // old assignment too. Leave and join as a new
                            // member, which makes a new generation.
                            oort_plugin_sdk::logging::info(&format!(
                                "kafka group {}: the coordinator kept generation {} after a rebalance; joining as a new member",
                                self.id, r.generation_id
                            ));
                            self.leave(cluster);
                            self.state = State::Out;
                            continue;
                        }
                    }
                    self.member = r.member_id.as_str().to_string();
                    self.generation = r.generation_id;
                    self.leader = r.leader.as_str() == self.member;
                    self.members = r.members.len();
                    let assignments = if self.leader {
                        let ids: Vec<String> = r
                            .members
                            .iter()
                            .map(|m| m.member_id.as_str().to_string())
                            .collect();
                        range_assign(&ids, partitions)
                            .into_iter()
                            .map(|(m, p)| {
                                Ok(SyncGroupRequestAssignment::default()
                                    .with_member_id(StrBytes::from_string(m))
                                    .with_assignment(assignment_bytes(&self.topic, p)?))
                            })
                            .collect::<Result<Vec<_>, Error>>()?
                    } else {
                        Vec::new()
                    };
                    let req = SyncGroupRequest::default()
                        .with_group_id(self.gid())
                        .with_generation_id(self.generation)
                        .with_member_id(StrBytes::from_string(self.member.clone()))
                        .with_assignments(assignments);
                    let id =
                        self.conn(cluster)?
                            .send(ApiKey::SyncGroup, SYNC_GROUP_VERSION, &req)?;
                    self.state = State::Syncing(id);
                }
                State::Syncing(id) => {
                    let conn = self.conn(cluster)?;
                    let Some(r): Option<SyncGroupResponse> =
                        conn.poll(ApiKey::SyncGroup, SYNC_GROUP_VERSION, id, deadline)?
                    else {
                        return Ok(Step::Same);
                    };
                    if r.error_code != 0 {
                        self.rejoin(r.error_code);
                        return Ok(Step::Same);
                    }
                    let mine = parse_assignment(&self.topic, r.assignment)?;
                    self.state = State::Stable { heartbeat: None };
                    self.last_beat = Instant::now();
                    self.owned = true;
                    return Ok(Step::Assigned(mine));
                }
                State::Stable { heartbeat: None } => {
                    if self.last_beat.elapsed() < HEARTBEAT_EVERY {
                        return Ok(Step::Same);
                    }
                    let req = HeartbeatRequest::default()
                        .with_group_id(self.gid())
                        .with_generation_id(self.generation)
                        .with_member_id(StrBytes::from_string(self.member.clone()));
                    let id =
                        self.conn(cluster)?
                            .send(ApiKey::Heartbeat, HEARTBEAT_VERSION, &req)?;
                    self.last_beat = Instant::now();
                    self.state = State::Stable {
                        heartbeat: Some(id),
                    };
                }
                State::Stable {
                    heartbeat: Some(id),
                } => {
                    let conn = self.conn(cluster)?;
                    let Some(r): Option<HeartbeatResponse> =
                        conn.poll(ApiKey::Heartbeat, HEARTBEAT_VERSION, id, deadline)?
                    else {
                        return Ok(Step::Same);
                    };
                    self.state = State::Stable { heartbeat: None };
                    if r.error_code != 0 {
                        return Ok(self.rejoin(r.error_code));
                    }
                    return Ok(Step::Same);
                }
            }
        }
    }

    /// Leaves the group (at close) so the others rebalance at once.
    pub fn leave(&mut self, cluster: &mut Cluster) {
        if self.member.is_empty() {
            return;
        }
        let req = LeaveGroupRequest::default()
            .with_group_id(self.gid())
            .with_member_id(StrBytes::from_string(self.member.clone()));
        // A join or heartbeat answer may still be on the way: a new
        // connection keeps the two apart.
        self.conn = None;
        let left = self.conn(cluster).and_then(|c| {
            c.call::<_, kafka_protocol::messages::LeaveGroupResponse>(
                ApiKey::LeaveGroup,
                LEAVE_GROUP_VERSION,
                &req,
            )
        });
        match left {
            Ok(r) if r.error_code == 0 => oort_plugin_sdk::logging::info(&format!(
                "kafka group {}: left (member {})",
                self.id, self.member
            )),
            Ok(r) => oort_plugin_sdk::logging::warn(&format!(
                "kafka group {}: leaving: {} (error {})",
                self.id,
                code_name(r.error_code),
                r.error_code
            )),
            Err(e) => oort_plugin_sdk::logging::warn(&format!(
                "kafka group {}: leaving: {}",
                self.id, e.message
            )),
        }
        self.conn = None;
        self.member.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_go_to_members_in_id_order_the_first_ones_one_more() {
        let members = vec!["b".to_string(), "a".to_string(), "c".to_string()];
        let got = range_assign(&members, &[4, 0, 1, 2, 3, 5, 6]);
        assert_eq!(
            got,
            vec![
                ("a".to_string(), vec![0, 1, 2]),
                ("b".to_string(), vec![3, 4]),
                ("c".to_string(), vec![5, 6]),
            ]
        );
        let got = range_assign(&["x".to_string(), "y".to_string()], &[0]);
        assert_eq!(got[1], ("y".to_string(), vec![]));
    }

    #[test]
    fn an_assignment_round_trips_in_the_consumer_protocol() {
        let b = assignment_bytes("t", vec![2, 0]).unwrap();
        assert_eq!(&b[..2], &[0, 0], "version 0 first");
        assert_eq!(parse_assignment("t", b).unwrap(), vec![0, 2]);
        assert_eq!(
            parse_assignment("t", Bytes::new()).unwrap(),
            Vec::<i32>::new()
        );
        assert!(subscription("t").unwrap().len() > 2);
    }
}
