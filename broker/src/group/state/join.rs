//! JoinGroup: new and returning members, the member-id handshake, and static members
//! (KIP-345) whose restart replaces their old id, without a rebalance when the group is Stable.

use super::{Group, GroupState, JoinOutcome, JoinParams, Member, Reply, SyncOutcome};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

impl Group {
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

    /// The JoinGroup answer for `member_id` in the current generation; only the leader's lists
    /// the members.
    pub(super) fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
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
}
