//! Who is in the group: member checks, heartbeats, LeaveGroup, session expiry, and whether an
//! OffsetCommit comes from a current member.

use super::{Group, GroupState, JoinOutcome, SyncOutcome};
use kafka_protocol::error::ResponseError;
use tokio::time::Instant;

impl Group {
    /// Checks that a member id (and instance id) belongs to the group.
    pub(super) fn check_member(
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

    /// A member left or expired: a running or finished rebalance starts over without it.
    fn after_membership_loss(&mut self, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now),
            _ => {}
        }
        self.maybe_complete_join(now);
    }

    /// Drops a member, answering its parked requests with `error`.
    pub(super) fn remove_member(&mut self, id: &str, error: ResponseError) {
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

    /// Checks a TxnOffsetCommit (Kafka's transactional branch of `validateOffsetCommit`): the
    /// member and generation only when given, and no refusal during a rebalance.
    pub(crate) fn validate_txn_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if !member_id.is_empty() || instance_id.is_some() {
            self.check_member(member_id, instance_id)?;
        }
        if generation >= 0 && generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::group::state::Group;
    use std::time::Duration;

    #[test]
    fn manual_commits_only_for_empty_groups() {
        let g = Group::new("g", Duration::ZERO);
        assert_eq!(g.validate_commit("", None, -1), Ok(()));
    }

    #[test]
    fn transactional_commits_check_only_the_fields_given() {
        use kafka_protocol::error::ResponseError;
        let g = Group::new("g", Duration::ZERO);
        assert_eq!(g.validate_txn_commit("", None, -1), Ok(()));
        assert_eq!(
            g.validate_txn_commit("m-1", None, -1),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(
            g.validate_txn_commit("", None, 3),
            Err(ResponseError::IllegalGeneration)
        );
    }
}
