//! The classic group coordinator: [`GroupCoordinator`] owns every consumer group's state machine
//! ([`state::Group`]) and the committed offsets ([`offsets::OffsetStore`]), and parks JoinGroup
//! and SyncGroup callers until their rebalance moves on.

pub(crate) mod offsets;
pub(crate) mod state;

use crate::config::BrokerConfig;
use crate::error::Result;
use kafka_protocol::error::ResponseError;
use offsets::{Committed, OffsetStore};
use state::{Group, GroupState, JoinOutcome, JoinParams, Reply, SyncOutcome};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A snapshot of a group for DescribeGroups / ListGroups.
#[derive(Debug, Clone)]
pub(crate) struct GroupSummary {
    pub(crate) state: GroupState,
    pub(crate) protocol_type: String,
    pub(crate) protocol_name: String,
    pub(crate) members: Vec<MemberSummary>,
}

/// One member in a [`GroupSummary`].
#[derive(Debug, Clone)]
pub(crate) struct MemberSummary {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) metadata: bytes::Bytes,
    pub(crate) assignment: bytes::Bytes,
}

/// All groups and their offsets. One std mutex each: every operation is a short in-memory
/// update (plus a small file write for commits), never held across an await.
#[derive(Debug)]
pub(crate) struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    offsets: Mutex<OffsetStore>,
    initial_delay: Duration,
    min_session: Duration,
    max_session: Duration,
}

impl GroupCoordinator {
    /// Opens the offsets kept in `dir`.
    pub(crate) fn open(dir: &Path, config: &BrokerConfig) -> Result<GroupCoordinator> {
        Ok(GroupCoordinator {
            groups: Mutex::new(HashMap::new()),
            offsets: Mutex::new(OffsetStore::open(dir)?),
            initial_delay: config.group_initial_rebalance_delay,
            min_session: config.group_min_session_timeout,
            max_session: config.group_max_session_timeout,
        })
    }

    /// JoinGroup: answers at once or when the rebalance completes.
    pub(crate) async fn join(&self, group_id: &str, params: JoinParams) -> JoinOutcome {
        if group_id.is_empty() {
            return JoinOutcome {
                error: Some(ResponseError::InvalidGroupId),
                generation: -1,
                ..Default::default()
            };
        }
        if params.session_timeout < self.min_session || params.session_timeout > self.max_session {
            return JoinOutcome {
                error: Some(ResponseError::InvalidSessionTimeout),
                generation: -1,
                member_id: params.member_id,
                ..Default::default()
            };
        }
        let member_id = params.member_id.clone();
        let reply = {
            let mut groups = crate::sync::lock(&self.groups, "groups");
            let group = groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, self.initial_delay));
            group.join(params, Instant::now())
        };
        match reply {
            Reply::Now(outcome) => outcome,
            Reply::Later(rx) => rx.await.unwrap_or_else(|_| JoinOutcome {
                error: Some(ResponseError::UnknownMemberId),
                generation: -1,
                member_id,
                ..Default::default()
            }),
        }
    }

    /// SyncGroup: answers at once or when the leader's assignment arrives.
    pub(crate) async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, bytes::Bytes)>,
    ) -> SyncOutcome {
        let reply = {
            let mut groups = crate::sync::lock(&self.groups, "groups");
            match groups.get_mut(group_id) {
                Some(group) => group.sync(member_id, instance_id, generation, assignments),
                None => Reply::Now(SyncOutcome {
                    error: Some(ResponseError::UnknownMemberId),
                    ..Default::default()
                }),
            }
        };
        match reply {
            Reply::Now(outcome) => outcome,
            Reply::Later(rx) => rx.await.unwrap_or_else(|_| SyncOutcome {
                error: Some(ResponseError::UnknownMemberId),
                ..Default::default()
            }),
        }
    }

    /// Heartbeat.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let mut groups = crate::sync::lock(&self.groups, "groups");
        let group = groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        group.heartbeat(member_id, instance_id, generation, Instant::now())
    }

    /// LeaveGroup for one member.
    pub(crate) fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let mut groups = crate::sync::lock(&self.groups, "groups");
        let group = groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        group.leave(member_id, instance_id, Instant::now())
    }

    /// Applies session and rebalance timeouts; called periodically by the server.
    pub(crate) fn tick(&self, now: Instant) {
        let mut groups = crate::sync::lock(&self.groups, "groups");
        for group in groups.values_mut() {
            group.tick(now);
        }
    }

    /// Validates and stores an OffsetCommit; the error applies to every partition.
    pub(crate) fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        commits: Vec<((String, i32), Committed)>,
    ) -> Result<Result<(), ResponseError>> {
        {
            let groups = crate::sync::lock(&self.groups, "groups");
            let check = match groups.get(group_id) {
                Some(group) => group.validate_commit(member_id, instance_id, generation),
                None if generation < 0 => Ok(()),
                None => Err(ResponseError::IllegalGeneration),
            };
            if let Err(e) = check {
                return Ok(Err(e));
            }
        }
        crate::sync::lock(&self.offsets, "offsets").commit(group_id, commits)?;
        Ok(Ok(()))
    }

    /// Checks a TxnOffsetCommit's group fields (KIP-447, v3+): a given member id must be a
    /// member, a given generation the current one. Transactional commits are not refused
    /// during a rebalance, and without member fields (v0-2) they are always accepted.
    pub(crate) fn validate_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let groups = crate::sync::lock(&self.groups, "groups");
        match groups.get(group_id) {
            Some(group) => group.validate_txn_commit(member_id, instance_id, generation),
            None if generation < 0 => Ok(()),
            None => Err(ResponseError::IllegalGeneration),
        }
    }

    /// Stores the offsets of a committed transaction (validated when they were staged).
    pub(crate) fn apply_txn_offsets(
        &self,
        group_id: &str,
        commits: Vec<((String, i32), Committed)>,
    ) -> Result<()> {
        crate::sync::lock(&self.offsets, "offsets").commit(group_id, commits)
    }

    /// One committed offset.
    pub(crate) fn committed(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<Committed> {
        crate::sync::lock(&self.offsets, "offsets")
            .get(group_id, topic, partition)
            .cloned()
    }

    /// All committed offsets of a group.
    pub(crate) fn all_committed(&self, group_id: &str) -> Vec<((String, i32), Committed)> {
        crate::sync::lock(&self.offsets, "offsets").all(group_id)
    }

    /// A snapshot of one group; groups known only by their offsets are Empty.
    pub(crate) fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let groups = crate::sync::lock(&self.groups, "groups");
        if let Some(g) = groups.get(group_id) {
            let protocol = g.protocol_name.clone().unwrap_or_default();
            return Some(GroupSummary {
                state: g.state,
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                protocol_name: protocol.clone(),
                members: g
                    .members
                    .values()
                    .map(|m| MemberSummary {
                        id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: m.metadata(&protocol),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
            });
        }
        drop(groups);
        crate::sync::lock(&self.offsets, "offsets")
            .has_group(group_id)
            .then(|| GroupSummary {
                state: GroupState::Empty,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            })
    }

    /// Every group id with its state and protocol type.
    pub(crate) fn list(&self) -> Vec<(String, GroupState, String)> {
        let groups = crate::sync::lock(&self.groups, "groups");
        let mut out: Vec<(String, GroupState, String)> = groups
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.state,
                    g.protocol_type.clone().unwrap_or_default(),
                )
            })
            .collect();
        let offsets = crate::sync::lock(&self.offsets, "offsets");
        for id in offsets.groups() {
            if !groups.contains_key(id) {
                out.push((id.clone(), GroupState::Empty, "consumer".to_string()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// DeleteGroups for one group: only groups without members can go.
    pub(crate) fn delete(&self, group_id: &str) -> Result<Result<(), ResponseError>> {
        let mut groups = crate::sync::lock(&self.groups, "groups");
        let mut offsets = crate::sync::lock(&self.offsets, "offsets");
        match groups.get(group_id) {
            Some(g) if g.state != GroupState::Empty => {
                return Ok(Err(ResponseError::NonEmptyGroup))
            }
            None if !offsets.has_group(group_id) => return Ok(Err(ResponseError::GroupIdNotFound)),
            _ => {}
        }
        if let Some(mut g) = groups.remove(group_id) {
            g.mark_dead();
        }
        offsets.delete_group(group_id)?;
        Ok(Ok(()))
    }

    /// Drops committed offsets of a deleted topic.
    pub(crate) fn forget_topic(&self, topic: &str) -> Result<()> {
        crate::sync::lock(&self.offsets, "offsets").delete_topic(topic)
    }
}
