//! The rebalance protocol: the join phase (PreparingRebalance until every member rejoined or
//! the deadline passed) and the sync phase, in which the leader's assignment is handed out.

use super::{Group, GroupState, Reply, SyncOutcome};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use std::collections::HashMap;
use tokio::sync::oneshot;
use tokio::time::Instant;

impl Group {
    /// Starts a rebalance: parked SyncGroups are told one is in progress and the join deadline is
    /// set from the members' rebalance timeouts.
    pub(super) fn prepare_rebalance(&mut self, now: Instant) {
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
    pub(super) fn maybe_complete_join(&mut self, now: Instant) {
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

    /// Ends the join phase: members that did not rejoin are dropped, the generation moves on, a
    /// protocol and leader are chosen, and every parked JoinGroup is answered.
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
    pub(super) fn select_protocol(&self) -> Option<String> {
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

    /// The SyncGroup answer for `member_id`: its part of the current assignment.
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
}

#[cfg(test)]
mod tests {
    use crate::group::state::test_support::{later, now_or_panic, params};
    use crate::group::state::{Group, GroupState};
    use bytes::Bytes;
    use kafka_protocol::error::ResponseError;
    use std::time::Duration;
    use tokio::time::Instant;

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
}
