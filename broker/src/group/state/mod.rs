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
//!
//! [`Group`]'s handlers are spread over files by phase: [`join`] (JoinGroup and static members),
//! [`rebalance`] (completing the join phase, then SyncGroup) and [`membership`] (heartbeats,
//! leaving, session expiry, commit checks).

mod join;
mod membership;
mod rebalance;
#[cfg(test)]
mod test_support;

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
    /// A new, empty group; `initial_delay` is `group.initial.rebalance.delay.ms`.
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

    /// Moves to `next`, which must be a legal transition from the current state.
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

    /// Marks a deleted group; it is never used again.
    pub(crate) fn mark_dead(&mut self) {
        self.become_(GroupState::Dead);
    }
}

#[cfg(test)]
mod tests {
    use super::GroupState;

    #[test]
    fn transitions_follow_kafka() {
        use GroupState::*;
        assert!(Empty.can_become(PreparingRebalance));
        assert!(!Empty.can_become(Stable));
        assert!(!Stable.can_become(CompletingRebalance));
        assert!(CompletingRebalance.can_become(Stable));
    }
}
