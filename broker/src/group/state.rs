//! The classic group state machine: [`GroupState`] with its legal transitions, and [`Group`],
//! which applies join/sync/heartbeat/leave and timeouts with the current time passed in.
//!
//! ```text
//!            join                 all joined / timeout          leader's SyncGroup
//!  Empty ───────────► Preparing ─────────────────► Completing ──────────────────► Stable
//!    ▲                Rebalance ◄──────────────────  Rebalance ◄──────────────────   │
//!    └── no member left ─┘        join, leave, expiry            join, leave, expiry ─┘
//! ```
//! (Stable also goes back to PreparingRebalance on join, leave or session expiry.) This follows
//! Kafka's `ClassicGroupState`; Dead is for deleted groups.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// States of a classic consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members (offsets may still be stored).
    Empty,
    /// Waiting for every known member to (re)join.
    PreparingRebalance,
    /// Join answered; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat.
    Stable,
    /// Deleted; never used again.
    Dead,
}

impl GroupState {
    /// Kafka's legal transitions, in one place.
    pub(crate) fn can_become(self, next: GroupState) -> bool {
        use GroupState::*;
        matches!(
            (self, next),
            (Stable | CompletingRebalance | Empty, PreparingRebalance)
                | (PreparingRebalance, CompletingRebalance)
                | (CompletingRebalance, Stable)
                | (PreparingRebalance, Empty)
                | (_, Dead)
        )
    }

    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup caller eventually gets.
#[derive(Debug, Clone, Default)]
pub(crate) struct JoinOutcome {
    pub(crate) error: Option<ResponseError>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// Filled for the leader only: (member id, instance id, metadata of the chosen protocol).
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    fn error(error: ResponseError, member_id: &str) -> Self {
        JoinOutcome {
            error: Some(error),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup caller eventually gets.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncOutcome {
    pub(crate) error: Option<ResponseError>,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncOutcome {
    fn error(error: ResponseError) -> Self {
        SyncOutcome {
            error: Some(error),
            ..Default::default()
        }
    }
}

/// Either an answer now, or a channel the answer will arrive on when the rebalance moves on.
#[derive(Debug)]
pub(crate) enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A JoinGroup request, stripped to what the state machine needs.
#[derive(Debug, Clone)]
pub(crate) struct JoinParams {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ asks unknown members to rejoin with an assigned id (MEMBER_ID_REQUIRED).
    pub(crate) require_known_member_id: bool,
}

/// One member of a group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    session_deadline: Instant,
    /// Present while the member's JoinGroup is parked until the rebalance completes.
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// Present while the member's SyncGroup waits for the leader's assignment.
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// Metadata this member sent for `protocol`.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A classic consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, valid until the instant given.
    pending: HashMap<String, Instant>,
    /// group.instance.id -> member id of static members.
    statics: HashMap<String, String>,
    rebalance_deadline: Option<Instant>,
    /// A rebalance of a group that was empty waits at least until then
    /// (group.initial.rebalance.delay.ms), so that a burst of joins gives one rebalance.
    initial_delay_until: Option<Instant>,
    initial_delay: Duration,
}

impl Group {
    pub(crate) fn new(id: &str, initial_delay: Duration) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            initial_delay,
        }
    }

    fn become_(&mut self, next: GroupState) {
        debug_assert!(
            self.state.can_become(next),
            "group {}: illegal transition {:?} -> {:?}",
            self.id,
            self.state,
            next
        );
        tracing::debug!(group = %self.id, from = ?self.state, to = ?next, generation = self.generation, "group state");
        self.state = next;
    }

    /// Handles JoinGroup.
    pub(crate) fn join(&mut self, p: JoinParams, now: Instant) -> Reply<JoinOutcome> {
        if !self.members.is_empty() {
            let same_type = self.protocol_type.as_deref() == Some(p.protocol_type.as_str());
            let common = p.protocols.iter().any(|(n, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(o, _)| o == n))
            });
            if !same_type || !common {
                return Reply::Now(JoinOutcome::error(
                    ResponseError::InconsistentGroupProtocol,
                    &p.member_id,
                ));
            }
        }
        let member_id = if p.member_id.is_empty() {
            let new_id = format!("{}-{}", p.client_id, crate::util::random_uuid());
            match &p.instance_id {
                Some(instance) => {
                    // A static member restarting: the new id replaces (fences) the old one
                    // and inherits its place, assignment included (KIP-345).
                    let old = self.statics.get(instance).cloned();
                    match old {
                        Some(old) if self.members.contains_key(&old) => {
                            let old_leader = self.leader.clone();
                            self.replace_static_member(&old, &new_id, instance, now);
                            if let Some(answer) = self.rejoin_stable_static(&new_id, &p, old_leader)
                            {
                                return Reply::Now(answer);
                            }
                            // Otherwise the group rebalances: in CompletingRebalance the leader
                            // may already be assigning to the old id.
                            return self.rejoin_and_rebalance(&new_id, p, now);
                        }
                        _ => {
                            self.statics.insert(instance.clone(), new_id.clone());
                        }
                    }
                }
                None if p.require_known_member_id => {
                    self.pending.insert(new_id.clone(), now + p.session_timeout);
                    return Reply::Now(JoinOutcome::error(
                        ResponseError::MemberIdRequired,
                        &new_id,
                    ));
                }
                None => {}
            }
            new_id
        } else {
            if let Some(instance) = &p.instance_id {
                if self
                    .statics
                    .get(instance)
                    .is_some_and(|m| *m != p.member_id)
                {
                    return Reply::Now(JoinOutcome::error(
                        ResponseError::FencedInstanceId,
                        &p.member_id,
                    ));
                }
            }
            if !self.members.contains_key(&p.member_id)
                && self.pending.remove(&p.member_id).is_none()
            {
                return Reply::Now(JoinOutcome::error(
                    ResponseError::UnknownMemberId,
                    &p.member_id,
                ));
            }
            p.member_id.clone()
        };

        let (tx, rx) = oneshot::channel();
        if let Some(member) = self.members.get_mut(&member_id) {
            let unchanged = member.protocols == p.protocols;
            member.session_timeout = p.session_timeout;
            member.rebalance_timeout = p.rebalance_timeout;
            member.protocols = p.protocols;
            member.session_deadline = now + p.session_timeout;
            let is_leader = self.leader.as_deref() == Some(member_id.as_str());
            match self.state {
                GroupState::CompletingRebalance if unchanged => {
                    // The member missed its join answer: repeat it.
                    return Reply::Now(self.join_outcome_for(&member_id));
                }
                GroupState::Stable if unchanged && !is_leader => {
                    return Reply::Now(self.join_outcome_for(&member_id));
                }
                _ => {}
            }
            let member = self.members.get_mut(&member_id).expect("member present");
            member.join_waiter = Some(tx);
        } else {
            if self.members.is_empty() {
                // The first member decides the type; an empty group keeps its old type for
                // ListGroups until then, as Kafka does.
                self.protocol_type = Some(p.protocol_type.clone());
            }
            self.members.insert(
                member_id.clone(),
                Member {
                    id: member_id.clone(),
                    instance_id: p.instance_id.clone(),
                    client_id: p.client_id,
                    client_host: p.client_host,
                    session_timeout: p.session_timeout,
                    rebalance_timeout: p.rebalance_timeout,
                    protocols: p.protocols,
                    assignment: Bytes::new(),
                    session_deadline: now + p.session_timeout,
                    join_waiter: Some(tx),
                    sync_waiter: None,
                },
            );
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join(now);
        Reply::Later(rx)
    }

    /// Moves a static member's place in the group from `old` to `new_id`: the old id is fenced
    /// (its parked requests get FENCED_INSTANCE_ID), the assignment and leadership carry over.
    fn replace_static_member(&mut self, old: &str, new_id: &str, instance: &str, now: Instant) {
        let Some(mut member) = self.members.remove(old) else {
            return;
        };
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinOutcome::error(ResponseError::FencedInstanceId, old));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncOutcome::error(ResponseError::FencedInstanceId));
        }
        member.id = new_id.to_string();
        member.session_deadline = now + member.session_timeout;
        self.members.insert(new_id.to_string(), member);
        if self.leader.as_deref() == Some(old) {
            self.leader = Some(new_id.to_string());
        }
        self.statics
            .insert(instance.to_string(), new_id.to_string());
    }

    /// A restarted static member rejoining a Stable group with protocols that do not change the
    /// group's protocol gets the current generation at once, without a rebalance, as in Kafka.
    /// The answer names the previous leader id, so even a replaced leader does not compute a new
    /// assignment (a Stable group would not distribute it); SyncGroup then returns the member's
    /// inherited assignment. `None` means the caller must rebalance as usual.
    fn rejoin_stable_static(
        &mut self,
        member_id: &str,
        p: &JoinParams,
        old_leader: Option<String>,
    ) -> Option<JoinOutcome> {
        if self.state != GroupState::Stable {
            return None;
        }
        let member = self.members.get_mut(member_id).expect("replaced member");
        let previous = std::mem::replace(&mut member.protocols, p.protocols.clone());
        if self.select_protocol() != self.protocol_name {
            // Leave the protocols as they were: the caller's join path compares and updates.
            self.members.get_mut(member_id).expect("member").protocols = previous;
            return None;
        }
        let member = self.members.get_mut(member_id).expect("member");
        member.client_id = p.client_id.clone();
        member.client_host = p.client_host.clone();
        member.session_timeout = p.session_timeout;
        member.rebalance_timeout = p.rebalance_timeout;
        Some(JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: old_leader.unwrap_or_default(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        })
    }

    /// Parks a known member's JoinGroup and starts (or joins) a rebalance.
    fn rejoin_and_rebalance(
        &mut self,
        member_id: &str,
        p: JoinParams,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let m = self.members.get_mut(member_id).expect("known member");
        m.client_id = p.client_id;
        m.client_host = p.client_host;
        m.session_timeout = p.session_timeout;
        m.rebalance_timeout = p.rebalance_timeout;
        m.protocols = p.protocols;
        m.session_deadline = now + p.session_timeout;
        m.join_waiter = Some(tx);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.maybe_complete_join(now);
        Reply::Later(rx)
    }

    fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                self.members
                    .values()
                    .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        if self.state == GroupState::Empty {
            self.initial_delay_until = Some(now + self.initial_delay.min(timeout));
        }
        self.rebalance_deadline = Some(now + timeout);
        self.become_(GroupState::PreparingRebalance);
    }

    /// Completes the join phase once every member has rejoined (after the initial delay).
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined =
            self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        let deadline_passed = self.rebalance_deadline.is_some_and(|t| now >= t);
        if (all_joined && delay_over) || deadline_passed {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        // Members that did not rejoin in time are out.
        let laggards: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in laggards {
            self.remove_member(&id, ResponseError::UnknownMemberId);
        }
        self.pending.clear();
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.become_(GroupState::Empty);
            return;
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.become_(GroupState::CompletingRebalance);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.join_outcome_for(&id);
            let m = self.members.get_mut(&id).expect("member present");
            m.session_deadline = now + m.session_timeout;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(outcome);
            }
        }
    }

    /// The leader's first protocol that every member supports.
    fn select_protocol(&self) -> Option<String> {
        let leader = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?;
        leader
            .protocols
            .iter()
            .map(|(n, _)| n)
            .find(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(o, _)| o == *n))
            })
            .cloned()
    }

    /// Checks that a member id (and instance id) belongs to the group.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            if let Some(current) = self.statics.get(instance) {
                if current != member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    /// Handles SyncGroup.
    pub(crate) fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Reply<SyncOutcome> {
        if let Err(e) = self.check_member(member_id, instance_id) {
            return Reply::Now(SyncOutcome::error(e));
        }
        if generation != self.generation {
            return Reply::Now(SyncOutcome::error(ResponseError::IllegalGeneration));
        }
        match self.state {
            GroupState::PreparingRebalance => {
                Reply::Now(SyncOutcome::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => Reply::Now(self.sync_outcome_for(member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                self.members
                    .get_mut(member_id)
                    .expect("checked")
                    .sync_waiter = Some(tx);
                if self.leader.as_deref() == Some(member_id) {
                    let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = by_member.remove(&m.id).unwrap_or_default();
                    }
                    self.become_(GroupState::Stable);
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let outcome = self.sync_outcome_for(&id);
                        if let Some(w) =
                            self.members.get_mut(&id).and_then(|m| m.sync_waiter.take())
                        {
                            let _ = w.send(outcome);
                        }
                    }
                }
                Reply::Later(rx)
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncOutcome::error(ResponseError::UnknownMemberId))
            }
        }
    }

    fn sync_outcome_for(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Handles Heartbeat.
    pub(crate) fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        let m = self.members.get_mut(member_id).expect("checked");
        m.session_deadline = now + m.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
            GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
        }
    }

    /// Handles one member of LeaveGroup; the instance id alone identifies static members.
    pub(crate) fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), ResponseError> {
        let id = match instance_id {
            Some(instance) => {
                let current = self
                    .statics
                    .get(instance)
                    .cloned()
                    .ok_or(ResponseError::UnknownMemberId)?;
                if !member_id.is_empty() && member_id != current {
                    return Err(ResponseError::FencedInstanceId);
                }
                current
            }
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            self.maybe_complete_join(now);
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.remove_member(&id, ResponseError::UnknownMemberId);
        self.after_membership_loss(now);
        Ok(())
    }

    fn after_membership_loss(&mut self, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            _ => {}
        }
        self.maybe_complete_join(now);
    }

    fn remove_member(&mut self, id: &str, error: ResponseError) {
        if let Some(m) = self.members.remove(id) {
            if let Some(instance) = &m.instance_id {
                if self.statics.get(instance).is_some_and(|cur| cur == id) {
                    self.statics.remove(instance);
                }
            }
            if let Some(w) = m.join_waiter {
                let _ = w.send(JoinOutcome::error(error, id));
            }
            if let Some(w) = m.sync_waiter {
                let _ = w.send(SyncOutcome::error(error));
            }
            if self.leader.as_deref() == Some(id) {
                self.leader = None;
            }
        }
    }

    /// Applies timeouts: expired sessions, expired pending ids, the rebalance deadline.
    pub(crate) fn tick(&mut self, now: Instant) {
        self.pending.retain(|_, until| *until > now);
        let preparing = self.state == GroupState::PreparingRebalance;
        let expired: Vec<String> = self
            .members
            .values()
            // A member parked in JoinGroup is waiting on us, not the other way round.
            .filter(|m| now >= m.session_deadline && !(preparing && m.join_waiter.is_some()))
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "session timeout, removing member");
            self.remove_member(id, ResponseError::UnknownMemberId);
        }
        if !expired.is_empty() {
            self.after_membership_loss(now);
        } else {
            self.maybe_complete_join(now);
        }
    }

    /// Marks a deleted group; it is never used again.
    pub(crate) fn mark_dead(&mut self) {
        self.become_(GroupState::Dead);
    }

    /// Checks the member and generation of an OffsetCommit; `Ok` means the commit may be stored.
    pub(crate) fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            // A commit from outside the group (admin tools, manual assignment) is only allowed
            // while nobody consumes as a member.
            return if self.state == GroupState::Empty {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(member_id: &str) -> JoinParams {
        JoinParams {
            member_id: member_id.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    fn now_or_panic<T: std::fmt::Debug>(r: Reply<T>) -> T {
        match r {
            Reply::Now(t) => t,
            Reply::Later(_) => panic!("expected an immediate reply"),
        }
    }

    fn later<T: std::fmt::Debug>(r: Reply<T>) -> oneshot::Receiver<T> {
        match r {
            Reply::Later(rx) => rx,
            Reply::Now(t) => panic!("expected a parked reply, got {t:?}"),
        }
    }

    #[test]
    fn transitions_follow_kafka() {
        use GroupState::*;
        assert!(Empty.can_become(PreparingRebalance));
        assert!(!Empty.can_become(Stable));
        assert!(!Stable.can_become(CompletingRebalance));
        assert!(CompletingRebalance.can_become(Stable));
    }

    #[tokio::test(start_paused = true)]
    async fn two_members_rebalance_and_session_expiry() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        // Handshake: first join gets MEMBER_ID_REQUIRED and an id.
        let first = now_or_panic(g.join(params(""), t0));
        assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
        let mut rx1 = later(g.join(params(&first.member_id), t0));
        let j1 = rx1.try_recv().expect("single member completes at once");
        assert_eq!(j1.generation, 1);
        assert_eq!(j1.leader, first.member_id);
        assert_eq!(j1.members.len(), 1);
        let mut s1 = later(g.sync(
            &first.member_id,
            None,
            1,
            vec![(first.member_id.clone(), Bytes::from_static(b"a1"))],
        ));
        assert_eq!(s1.try_recv().unwrap().assignment, Bytes::from_static(b"a1"));
        assert_eq!(g.state, GroupState::Stable);

        // Second member joins: the first must rejoin before generation 2 completes.
        let second = now_or_panic(g.join(params(""), t0));
        let mut rx2 = later(g.join(params(&second.member_id), t0));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat(&first.member_id, None, 1, t0),
            Err(ResponseError::RebalanceInProgress)
        );
        assert!(rx2.try_recv().is_err());
        let mut rx1 = later(g.join(params(&first.member_id), t0));
        let j1 = rx1.try_recv().unwrap();
        let j2 = rx2.try_recv().unwrap();
        assert_eq!((j1.generation, j2.generation), (2, 2));
        assert_eq!(j1.members.len(), 2, "leader sees every member");
        assert!(j2.members.is_empty());
        let mut s2 = later(g.sync(&second.member_id, None, 2, vec![]));
        let mut s1 = later(g.sync(
            &first.member_id,
            None,
            2,
            vec![
                (first.member_id.clone(), Bytes::from_static(b"x")),
                (second.member_id.clone(), Bytes::from_static(b"y")),
            ],
        ));
        assert_eq!(s1.try_recv().unwrap().assignment, Bytes::from_static(b"x"));
        assert_eq!(s2.try_recv().unwrap().assignment, Bytes::from_static(b"y"));

        // The second member stops heartbeating: after its session timeout it is removed.
        let t1 = t0 + Duration::from_secs(8);
        g.heartbeat(&first.member_id, None, 2, t1).unwrap();
        g.tick(t0 + Duration::from_secs(11));
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert!(!g.members.contains_key(&second.member_id));
        let mut rx1 = later(g.join(params(&first.member_id), t1));
        assert_eq!(rx1.try_recv().unwrap().generation, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let a = now_or_panic(g.join(params(""), t0)).member_id;
        let _ = later(g.join(params(&a), t0)).try_recv().unwrap();
        let b = now_or_panic(g.join(params(""), t0)).member_id;
        let mut rb = later(g.join(params(&b), t0));
        // `a` keeps heartbeating but never rejoins.
        for s in 1..30 {
            let _ = g.heartbeat(&a, None, 1, t0 + Duration::from_secs(s));
            g.tick(t0 + Duration::from_secs(s));
        }
        assert!(rb.try_recv().is_err());
        g.tick(t0 + Duration::from_secs(31));
        let j = rb.try_recv().unwrap();
        assert_eq!(j.generation, 2);
        assert_eq!(j.leader, b);
        assert!(!g.members.contains_key(&a));
    }

    #[tokio::test(start_paused = true)]
    async fn static_member_rejoin_fences_old_id() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let mut p = params("");
        p.instance_id = Some("i1".into());
        let old = later(g.join(p.clone(), t0)).try_recv().unwrap().member_id;
        let new = later(g.join(p, t0)).try_recv().unwrap().member_id;
        assert_ne!(old, new);
        assert_eq!(
            g.heartbeat(&old, Some("i1"), 2, t0),
            Err(ResponseError::FencedInstanceId)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn static_member_restart_in_stable_group_keeps_assignment_without_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new("g", Duration::ZERO);
        let mut p1 = params("");
        p1.instance_id = Some("i1".into());
        let mut p2 = params("");
        p2.instance_id = Some("i2".into());
        let a = later(g.join(p1.clone(), t0)).try_recv().unwrap().member_id;
        let mut sa = later(g.sync(
            &a,
            Some("i1"),
            1,
            vec![(a.clone(), Bytes::from_static(b"a"))],
        ));
        assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"a"));
        // i2 joins: generation 2 with both members.
        let mut rb = later(g.join(p2.clone(), t0));
        let mut p1_again = p1.clone();
        p1_again.member_id = a.clone();
        let _ = later(g.join(p1_again, t0)).try_recv().unwrap();
        let b = rb.try_recv().unwrap().member_id;
        let mut sb = later(g.sync(&b, Some("i2"), 2, vec![]));
        let mut sa = later(g.sync(
            &a,
            Some("i1"),
            2,
            vec![
                (a.clone(), Bytes::from_static(b"x")),
                (b.clone(), Bytes::from_static(b"y")),
            ],
        ));
        assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"x"));
        assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from_static(b"y"));
        assert_eq!(g.state, GroupState::Stable);

        // i2 restarts (no LeaveGroup, as static members do) and rejoins with an empty id.
        let j = now_or_panic(g.join(p2.clone(), t0 + Duration::from_secs(1)));
        assert_eq!(j.error, None);
        assert_eq!(j.generation, 2, "no new generation");
        assert_eq!(j.leader, a);
        assert_ne!(j.member_id, b);
        assert_eq!(g.state, GroupState::Stable);
        let s = now_or_panic(g.sync(&j.member_id, Some("i2"), 2, vec![]));
        assert_eq!(
            s.assignment,
            Bytes::from_static(b"y"),
            "assignment inherited"
        );
        assert_eq!(
            g.heartbeat(&a, Some("i1"), 2, t0),
            Ok(()),
            "the other member is undisturbed"
        );
        assert_eq!(
            g.heartbeat(&b, Some("i2"), 2, t0),
            Err(ResponseError::FencedInstanceId)
        );

        // The leader restarting is answered the same way, naming its old id as leader, so it
        // does not compute an assignment that a Stable group would never distribute.
        let j = now_or_panic(g.join(p1, t0 + Duration::from_secs(2)));
        assert_eq!((j.generation, j.leader.as_str()), (2, a.as_str()));
        assert!(j.members.is_empty());
        let s = now_or_panic(g.sync(&j.member_id, Some("i1"), 2, vec![]));
        assert_eq!(s.assignment, Bytes::from_static(b"x"));
    }

    #[test]
    fn manual_commits_only_for_empty_groups() {
        let g = Group::new("g", Duration::ZERO);
        assert_eq!(g.validate_commit("", None, -1), Ok(()));
    }
}
