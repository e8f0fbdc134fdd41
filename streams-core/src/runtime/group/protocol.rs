//! The classic group protocol's calls, one function per request, over a [`Connection`].
//!
//! Each returns the broker's answer reduced to what the member acts on; error codes come back
//! as [`ResponseError`] so the caller decides (rejoin, rediscover, retry, fail).

use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::conn::{ConnError, Connection};

/// The consumer protocol type: Kafka's tooling decodes the subscriptions and assignments of
/// groups of this type (`kafka-consumer-groups --describe`).
pub(crate) const PROTOCOL_TYPE: &str = "consumer";
/// Our protocol name. Not Java's `stream`: a Kafka Streams (JVM) instance that joins the group
/// by mistake is refused with INCONSISTENT_GROUP_PROTOCOL instead of reading our userData.
pub(crate) const PROTOCOL_NAME: &str = "streams-rs";

/// Highest versions this code follows (JoinGroup v9 and SyncGroup v5 carry the protocol type
/// and name; OffsetCommit v9 is the consumer protocol's member epoch, not ours).
const JOIN_GROUP_MAX: i16 = 9;
const SYNC_GROUP_MAX: i16 = 5;
const HEARTBEAT_MAX: i16 = 4;
const LEAVE_GROUP_MAX: i16 = 5;
const OFFSET_COMMIT_MAX: i16 = 8;
const FIND_COORDINATOR_MAX: i16 = 5;

/// A call's failure: the connection, or an error code from the broker.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// The connection failed or the answer could not be read.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The broker answered with an error.
    #[error("{operation} answered {error}")]
    Code {
        /// The request.
        operation: &'static str,
        /// The error.
        error: ResponseError,
    },
}

impl CallError {
    /// The broker's error, if it answered with one.
    pub(crate) fn code(&self) -> Option<ResponseError> {
        match self {
            CallError::Code { error, .. } => Some(*error),
            CallError::Conn(_) => None,
        }
    }

    /// Whether the broker refused our credentials.
    pub(crate) fn is_auth(&self) -> bool {
        matches!(self, CallError::Conn(e) if e.auth)
    }

    /// Whether the group coordinator moved or is not ready: find it again and retry.
    pub(crate) fn coordinator_moved(&self) -> bool {
        !self.is_auth()
            && matches!(
                self.code(),
                None | Some(
                    ResponseError::NotCoordinator
                        | ResponseError::CoordinatorNotAvailable
                        | ResponseError::CoordinatorLoadInProgress
                )
            )
    }
}

fn check(operation: &'static str, code: i16) -> Result<(), CallError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(error) => Err(CallError::Code { operation, error }),
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The `host:port` of `group`'s coordinator.
pub(crate) fn find_coordinator(conn: &mut Connection, group: &str) -> Result<String, CallError> {
    let mut req = FindCoordinatorRequest::default();
    let version = conn.version::<FindCoordinatorRequest>(FIND_COORDINATOR_MAX)?;
    if version >= 4 {
        req.coordinator_keys = vec![s(group)];
    } else {
        req.key = s(group);
    }
    let (resp, version) = conn.call(&req, FIND_COORDINATOR_MAX)?;
    if version >= 4 {
        let c = resp.coordinators.first().ok_or(CallError::Code {
            operation: "FindCoordinator",
            error: ResponseError::CoordinatorNotAvailable,
        })?;
        check("FindCoordinator", c.error_code)?;
        Ok(format!("{}:{}", c.host.as_str(), c.port))
    } else {
        check("FindCoordinator", resp.error_code)?;
        Ok(format!("{}:{}", resp.host.as_str(), resp.port))
    }
}

/// Who is calling: the member id, and the static instance id if there is one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    pub(crate) id: &'a str,
    /// `group.instance.id`.
    pub(crate) instance: Option<&'a str>,
}

/// What JoinGroup answered.
pub(crate) struct Joined {
    pub(crate) generation: i32,
    pub(crate) member_id: String,
    pub(crate) leader: String,
    /// Every member's id and subscription bytes (only the leader gets them).
    pub(crate) members: Vec<(String, Bytes)>,
    /// A static leader rejoined a stable group (KIP-814): it must not assign, and gets its
    /// previous assignment back from SyncGroup.
    pub(crate) skip_assignment: bool,
}

/// Timeouts a member joins with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// `session.timeout.ms`.
    pub(crate) session_ms: i32,
    /// `max.poll.interval.ms`: how long the coordinator waits for members to rejoin.
    pub(crate) rebalance_ms: i32,
}

/// Joins (or rejoins) `group`. MEMBER_ID_REQUIRED is answered by joining again with the
/// member id the coordinator gave, as the protocol asks from JoinGroup v4 on. A static member
/// (`instance`, `group.instance.id`) gets its id at once.
pub(crate) fn join(
    conn: &mut Connection,
    group: &str,
    member_id: &mut String,
    instance: Option<&str>,
    timeouts: Timeouts,
    subscription: Bytes,
) -> Result<Joined, CallError> {
    loop {
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(s(group));
        req.session_timeout_ms = timeouts.session_ms;
        req.rebalance_timeout_ms = timeouts.rebalance_ms;
        req.member_id = s(member_id);
        req.group_instance_id = instance.map(s);
        req.protocol_type = s(PROTOCOL_TYPE);
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s(PROTOCOL_NAME);
        p.metadata = subscription.clone();
        req.protocols = vec![p];
        req.reason = Some(s("streams member (re)joining"));
        let (resp, _) = conn.call(&req, JOIN_GROUP_MAX)?;
        match ResponseError::try_from_code(resp.error_code) {
            Some(ResponseError::MemberIdRequired) => {
                *member_id = resp.member_id.as_str().to_string();
                continue;
            }
            Some(ResponseError::UnknownMemberId) => {
                member_id.clear();
                return Err(CallError::Code {
                    operation: "JoinGroup",
                    error: ResponseError::UnknownMemberId,
                });
            }
            _ => check("JoinGroup", resp.error_code)?,
        }
        *member_id = resp.member_id.as_str().to_string();
        return Ok(Joined {
            generation: resp.generation_id,
            member_id: member_id.clone(),
            leader: resp.leader.as_str().to_string(),
            skip_assignment: resp.skip_assignment,
            members: resp
                .members
                .into_iter()
                .map(|m| (m.member_id.as_str().to_string(), m.metadata))
                .collect(),
        });
    }
}

/// Syncs generation `generation`: the leader sends every member's assignment; every member gets
/// its own bytes back.
pub(crate) fn sync(
    conn: &mut Connection,
    group: &str,
    member: Member<'_>,
    generation: i32,
    assignments: Vec<(String, Bytes)>,
) -> Result<Bytes, CallError> {
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(s(group));
    req.generation_id = generation;
    req.member_id = s(member.id);
    req.group_instance_id = member.instance.map(s);
    req.protocol_type = Some(s(PROTOCOL_TYPE));
    req.protocol_name = Some(s(PROTOCOL_NAME));
    req.assignments = assignments
        .into_iter()
        .map(|(m, a)| {
            let mut x = SyncGroupRequestAssignment::default();
            x.member_id = s(&m);
            x.assignment = a;
            x
        })
        .collect();
    let (resp, _) = conn.call(&req, SYNC_GROUP_MAX)?;
    check("SyncGroup", resp.error_code)?;
    Ok(resp.assignment)
}

/// One heartbeat of `member_id` in `generation`.
pub(crate) fn heartbeat(
    conn: &mut Connection,
    group: &str,
    member: Member<'_>,
    generation: i32,
) -> Result<(), CallError> {
    let mut req = HeartbeatRequest::default();
    req.group_id = GroupId(s(group));
    req.generation_id = generation;
    req.member_id = s(member.id);
    req.group_instance_id = member.instance.map(s);
    let (resp, _) = conn.call(&req, HEARTBEAT_MAX)?;
    check("Heartbeat", resp.error_code)
}

/// Leaves the group, so that it rebalances now instead of after the session timeout.
pub(crate) fn leave(conn: &mut Connection, group: &str, member_id: &str) -> Result<(), CallError> {
    let mut req = LeaveGroupRequest::default();
    req.group_id = GroupId(s(group));
    if conn.version::<LeaveGroupRequest>(LEAVE_GROUP_MAX)? >= 3 {
        let mut m = MemberIdentity::default();
        m.member_id = s(member_id);
        m.reason = Some(s("the instance is closing"));
        req.members = vec![m];
    } else {
        req.member_id = s(member_id);
    }
    let (resp, _) = conn.call(&req, LEAVE_GROUP_MAX)?;
    check("LeaveGroup", resp.error_code)?;
    for m in &resp.members {
        check("LeaveGroup", m.error_code)?;
    }
    Ok(())
}

/// Commits `offsets` (topic, partition, next offset to read) as `member_id` of `generation`.
/// The first partition error fails the whole commit: the caller treats a commit as one thing.
pub(crate) fn commit(
    conn: &mut Connection,
    group: &str,
    member: Member<'_>,
    generation: i32,
    offsets: &[(String, i32, i64)],
) -> Result<(), CallError> {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<(i32, i64)>> = Default::default();
    for (t, p, o) in offsets {
        by_topic.entry(t.as_str()).or_default().push((*p, *o));
    }
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(group));
    req.generation_id_or_member_epoch = generation;
    req.member_id = s(member.id);
    req.group_instance_id = member.instance.map(s);
    req.retention_time_ms = -1;
    req.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut topic = OffsetCommitRequestTopic::default();
            topic.name = TopicName(s(t));
            topic.partitions = ps
                .into_iter()
                .map(|(p, o)| {
                    let mut x = OffsetCommitRequestPartition::default();
                    x.partition_index = p;
                    x.committed_offset = o;
                    x.committed_leader_epoch = -1;
                    x
                })
                .collect();
            topic
        })
        .collect();
    let (resp, _) = conn.call(&req, OFFSET_COMMIT_MAX)?;
    for t in &resp.topics {
        for p in &t.partitions {
            check("OffsetCommit", p.error_code)?;
        }
    }
    Ok(())
}
