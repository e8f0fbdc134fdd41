//! One transactional id's state machine: [`TxnState`] with its legal transitions in one place
//! ([`TxnState::can_follow`]), and [`TxnMetadata`], whose methods apply the coordinator APIs
//! to it synchronously, with the time passed in. Nothing here does I/O: the coordinator
//! persists the result and writes the markers.
//!
//! ```text
//!   InitProducerId          AddPartitions/AddOffsets        EndTxn
//! Empty ──────────────► Ongoing ─────────────────┬──► PrepareCommit ──► CompleteCommit
//!   ▲  ◄── (Complete*)    ▲  │ (timeout, fencing)  └──► PrepareAbort  ──► CompleteAbort
//!   │                     │  └─────────────────────────────▲
//!   └── Complete* ────────┘ (a new transaction)            Dead ◄── Empty/Complete* (expired id)
//! ```

use crate::group::offsets::Committed;
use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Where a transactional id is in its current transaction, Kafka's `TransactionState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TxnState {
    /// No transaction yet (after InitProducerId).
    Empty,
    /// Partitions or offsets were added; records may be written.
    Ongoing,
    /// EndTxn(commit) was accepted; commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fencing producer; abort markers are being written.
    PrepareAbort,
    /// Every commit marker is written and the offsets applied.
    CompleteCommit,
    /// Every abort marker is written.
    CompleteAbort,
    /// The id expired; it is forgotten.
    Dead,
}

impl TxnState {
    /// Every state, for filters.
    pub(crate) const ALL: [TxnState; 7] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
    ];

    /// The one place the legal transitions are defined: whether `self` may follow `from`.
    pub(crate) fn can_follow(self, from: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty => matches!(from, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(from, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit | PrepareAbort => from == Ongoing,
            CompleteCommit => from == PrepareCommit,
            CompleteAbort => from == PrepareAbort,
            Dead => matches!(from, Empty | CompleteCommit | CompleteAbort),
        }
    }

    /// Kafka's name, as DescribeTransactions and ListTransactions report it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
        }
    }

    /// Whether markers are being written (the id answers CONCURRENT_TRANSACTIONS meanwhile).
    pub(crate) fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// An offset staged by TxnOffsetCommit, applied to the group when the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingOffset {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) committed: Committed,
}

/// The work that ends a transaction: markers to write, offsets to apply on commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Completion {
    pub(crate) transactional_id: String,
    pub(crate) producer_id: i64,
    /// The epoch the markers carry (bumped when the coordinator aborts on its own).
    pub(crate) producer_epoch: i16,
    pub(crate) commit: bool,
    pub(crate) partitions: Vec<(String, i32)>,
    pub(crate) offsets: Vec<PendingOffset>,
}

/// What InitProducerId does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InitDecision {
    /// The producer id and epoch to hand out.
    Ready(i64, i16),
    /// A transaction was open: it was fenced and must be aborted first, then init retried.
    AbortFirst(Completion),
}

/// Epochs at or above this are not bumped further: the id gets a fresh producer id instead.
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// Everything the coordinator knows about one transactional id; persisted as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TxnMetadata {
    pub(crate) transactional_id: String,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    /// The epoch before the last bump: a producer retrying InitProducerId (KIP-360) may still
    /// name it.
    pub(crate) last_producer_epoch: i16,
    pub(crate) timeout_ms: i32,
    pub(crate) state: TxnState,
    /// Partitions of the open transaction (topic, partition).
    pub(crate) partitions: BTreeSet<(String, i32)>,
    /// Groups added with AddOffsetsToTxn.
    pub(crate) groups: BTreeSet<String>,
    pub(crate) pending_offsets: Vec<PendingOffset>,
    /// When the open transaction started (ms since the epoch), -1 without one.
    pub(crate) start_ms: i64,
    pub(crate) last_update_ms: i64,
}

impl TxnMetadata {
    /// A new id with a fresh producer id, epoch 0, no transaction.
    pub(crate) fn new(id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: id.to_string(),
            producer_id,
            producer_epoch: 0,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            pending_offsets: Vec::new(),
            start_ms: -1,
            last_update_ms: now,
        }
    }

    /// Moves to `to` if that transition is legal; INVALID_TXN_STATE otherwise.
    fn transition(&mut self, to: TxnState, now: i64) -> Result<(), ResponseError> {
        if !to.can_follow(self.state) {
            return Err(ResponseError::InvalidTxnState);
        }
        self.state = to;
        self.last_update_ms = now;
        Ok(())
    }

    /// The producer must be the id's current one: another producer id is not mapped to it,
    /// another epoch was fenced (PRODUCER_FENCED; handlers of older versions report
    /// INVALID_PRODUCER_EPOCH).
    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
        if producer_id != self.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if epoch != self.producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(())
    }

    /// InitProducerId: a new epoch (or a new producer id once epochs run out), which fences
    /// every older producer of this id. `expected` is what a KIP-360 producer says it holds.
    pub(crate) fn init(
        &mut self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now: i64,
        fresh_producer_id: impl FnOnce() -> Option<i64>,
    ) -> Result<InitDecision, ResponseError> {
        if self.state.is_prepare() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            let known = pid == self.producer_id
                && (epoch == self.producer_epoch || epoch == self.last_producer_epoch);
            if !known {
                return Err(ResponseError::ProducerFenced);
            }
        }
        if self.state == TxnState::Ongoing {
            return Ok(InitDecision::AbortFirst(self.fence_and_abort(now)?));
        }
        self.transition(TxnState::Empty, now)?;
        if self.producer_epoch >= EPOCH_EXHAUSTED {
            self.producer_id = fresh_producer_id().ok_or(ResponseError::CoordinatorNotAvailable)?;
            self.producer_epoch = 0;
            self.last_producer_epoch = -1;
        } else {
            self.last_producer_epoch = self.producer_epoch;
            self.producer_epoch += 1;
        }
        self.timeout_ms = timeout_ms;
        Ok(InitDecision::Ready(self.producer_id, self.producer_epoch))
    }

    /// Starts the open transaction if there is none; Prepare* states refuse.
    fn ensure_ongoing(&mut self, now: i64) -> Result<(), ResponseError> {
        match self.state {
            TxnState::Ongoing => Ok(()),
            s if s.is_prepare() => Err(ResponseError::ConcurrentTransactions),
            _ => {
                self.transition(TxnState::Ongoing, now)?;
                self.start_ms = now;
                Ok(())
            }
        }
    }

    /// AddPartitionsToTxn. Returns whether anything changed (and must be persisted).
    pub(crate) fn add_partitions(
        &mut self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now: i64,
    ) -> Result<bool, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        let was = self.state;
        self.ensure_ongoing(now)?;
        let mut changed = was != TxnState::Ongoing;
        for p in partitions {
            changed |= self.partitions.insert(p.clone());
        }
        Ok(changed)
    }

    /// AddOffsetsToTxn. Returns whether anything changed.
    pub(crate) fn add_group(
        &mut self,
        producer_id: i64,
        epoch: i16,
        group: &str,
        now: i64,
    ) -> Result<bool, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        let was = self.state;
        self.ensure_ongoing(now)?;
        Ok(self.groups.insert(group.to_string()) || was != TxnState::Ongoing)
    }

    /// TxnOffsetCommit: stages offsets of a group added to the open transaction; a later
    /// offset for the same partition replaces the earlier one.
    pub(crate) fn stage_offsets(
        &mut self,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<PendingOffset>,
        now: i64,
    ) -> Result<(), ResponseError> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::Ongoing => {}
            s if s.is_prepare() => return Err(ResponseError::ConcurrentTransactions),
            _ => return Err(ResponseError::InvalidTxnState),
        }
        if offsets.iter().any(|o| !self.groups.contains(&o.group)) {
            return Err(ResponseError::InvalidTxnState);
        }
        for o in offsets {
            self.pending_offsets
                .retain(|p| (&p.group, &p.topic, p.partition) != (&o.group, &o.topic, o.partition));
            self.pending_offsets.push(o);
        }
        self.last_update_ms = now;
        Ok(())
    }

    /// EndTxn: `Some` work to do when an open transaction moves to Prepare*; `None` when it is
    /// a retry of an EndTxn that completed already.
    pub(crate) fn end(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now: i64,
    ) -> Result<Option<Completion>, ResponseError> {
        self.check_producer(producer_id, epoch)?;
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let to = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                self.transition(to, now)?;
                Ok(Some(self.completion()))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// The coordinator aborts the open transaction on its own (timeout, or a new producer's
    /// InitProducerId): the epoch is bumped first, so the markers fence the old producer.
    pub(crate) fn fence_and_abort(&mut self, now: i64) -> Result<Completion, ResponseError> {
        self.transition(TxnState::PrepareAbort, now)?;
        if self.producer_epoch < EPOCH_EXHAUSTED {
            self.last_producer_epoch = self.producer_epoch;
            self.producer_epoch += 1;
        }
        Ok(self.completion())
    }

    /// The work a Prepare* state stands for (markers still to write).
    pub(crate) fn completion(&self) -> Completion {
        Completion {
            transactional_id: self.transactional_id.clone(),
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            commit: self.state == TxnState::PrepareCommit,
            partitions: self.partitions.iter().cloned().collect(),
            offsets: self.pending_offsets.clone(),
        }
    }

    /// Every marker is written (and offsets applied): Prepare* becomes Complete*, and the
    /// transaction's partitions, groups and staged offsets are forgotten.
    pub(crate) fn complete(&mut self, now: i64) -> Result<(), ResponseError> {
        let to = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return Err(ResponseError::InvalidTxnState),
        };
        self.transition(to, now)?;
        self.partitions.clear();
        self.groups.clear();
        self.pending_offsets.clear();
        self.start_ms = -1;
        Ok(())
    }

    /// Whether the open transaction has run past its timeout.
    pub(crate) fn has_timed_out(&self, now: i64) -> bool {
        self.state == TxnState::Ongoing
            && now.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// Marks an idle id dead once it has been unused for `expiration_ms`.
    pub(crate) fn expire(&mut self, now: i64, expiration_ms: i64) -> bool {
        now.saturating_sub(self.last_update_ms) > expiration_ms
            && self.transition(TxnState::Dead, now).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::TxnState::*;
    use super::*;

    fn offset(group: &str, partition: i32, offset: i64) -> PendingOffset {
        PendingOffset {
            group: group.into(),
            topic: "t".into(),
            partition,
            committed: Committed {
                offset,
                leader_epoch: -1,
                metadata: None,
            },
        }
    }

    fn ongoing() -> TxnMetadata {
        let mut m = TxnMetadata::new("tx", 5, 60_000, 0);
        assert!(m.add_partitions(5, 0, &[("t".into(), 0)], 10).unwrap());
        m
    }

    #[test]
    fn transitions_are_exactly_kafkas() {
        let legal: &[(TxnState, TxnState)] = &[
            (Empty, Empty),
            (CompleteCommit, Empty),
            (CompleteAbort, Empty),
            (Empty, Ongoing),
            (Ongoing, Ongoing),
            (CompleteCommit, Ongoing),
            (CompleteAbort, Ongoing),
            (Ongoing, PrepareCommit),
            (Ongoing, PrepareAbort),
            (PrepareCommit, CompleteCommit),
            (PrepareAbort, CompleteAbort),
            (Empty, Dead),
            (CompleteCommit, Dead),
            (CompleteAbort, Dead),
        ];
        for from in TxnState::ALL {
            for to in TxnState::ALL {
                assert_eq!(
                    to.can_follow(from),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn init_bumps_the_epoch_and_renews_an_exhausted_id() {
        let mut m = TxnMetadata::new("tx", 5, 60_000, 0);
        assert_eq!(
            m.init(1000, None, 1, || None),
            Ok(InitDecision::Ready(5, 1))
        );
        assert_eq!(m.timeout_ms, 1000);
        // KIP-360: the producer names the epoch it holds, or the one before a bump.
        assert_eq!(
            m.init(1000, Some((5, 1)), 2, || None),
            Ok(InitDecision::Ready(5, 2))
        );
        assert_eq!(
            m.init(1000, Some((5, 1)), 3, || None),
            Ok(InitDecision::Ready(5, 3))
        );
        assert_eq!(
            m.init(1000, Some((5, 0)), 4, || None),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            m.init(1000, Some((6, 3)), 4, || None),
            Err(ResponseError::ProducerFenced)
        );
        m.producer_epoch = EPOCH_EXHAUSTED;
        assert_eq!(
            m.init(1000, None, 5, || Some(9)),
            Ok(InitDecision::Ready(9, 0))
        );
    }

    #[test]
    fn init_during_a_transaction_fences_and_aborts_it_first() {
        let mut m = ongoing();
        let decision = m.init(1000, None, 20, || None).unwrap();
        let InitDecision::AbortFirst(c) = decision else {
            panic!("{decision:?}")
        };
        assert_eq!((c.producer_epoch, c.commit), (1, false));
        assert_eq!(c.partitions, vec![("t".to_string(), 0)]);
        assert_eq!(m.state, PrepareAbort);
        // Until the markers are written, everyone is told to come back.
        assert_eq!(
            m.init(1000, None, 21, || None),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            m.add_partitions(5, 1, &[("t".into(), 1)], 21),
            Err(ResponseError::ConcurrentTransactions)
        );
        m.complete(22).unwrap();
        assert_eq!(
            m.init(1000, None, 23, || None),
            Ok(InitDecision::Ready(5, 2))
        );
        // The old producer is fenced everywhere.
        assert_eq!(
            m.add_partitions(5, 0, &[("t".into(), 0)], 24),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(m.end(5, 1, true, 24), Err(ResponseError::ProducerFenced));
        assert_eq!(
            m.add_partitions(6, 2, &[("t".into(), 0)], 24),
            Err(ResponseError::InvalidProducerIdMapping)
        );
    }

    #[test]
    fn commit_carries_partitions_and_offsets_and_retries_are_answered() {
        let mut m = ongoing();
        assert!(
            !m.add_partitions(5, 0, &[("t".into(), 0)], 11).unwrap(),
            "no change"
        );
        assert_eq!(
            m.stage_offsets(5, 0, vec![offset("g", 0, 7)], 12),
            Err(ResponseError::InvalidTxnState),
            "the group was not added"
        );
        assert!(m.add_group(5, 0, "g", 12).unwrap());
        m.stage_offsets(5, 0, vec![offset("g", 0, 7), offset("g", 1, 3)], 13)
            .unwrap();
        m.stage_offsets(5, 0, vec![offset("g", 0, 9)], 14).unwrap();
        let c = m.end(5, 0, true, 15).unwrap().unwrap();
        assert!(c.commit);
        assert_eq!(c.producer_epoch, 0);
        assert_eq!(c.offsets, vec![offset("g", 1, 3), offset("g", 0, 9)]);
        assert_eq!(
            m.end(5, 0, true, 16),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(m.end(5, 0, false, 16), Err(ResponseError::InvalidTxnState));
        m.complete(17).unwrap();
        assert_eq!(m.state, CompleteCommit);
        assert!(m.partitions.is_empty() && m.pending_offsets.is_empty() && m.groups.is_empty());
        assert_eq!(m.end(5, 0, true, 18), Ok(None), "a retried commit");
        assert_eq!(m.end(5, 0, false, 18), Err(ResponseError::InvalidTxnState));
        assert_eq!(m.complete(18), Err(ResponseError::InvalidTxnState));
        // A new transaction starts from CompleteCommit.
        assert!(m.add_partitions(5, 0, &[("t".into(), 2)], 19).unwrap());
        assert_eq!((m.state, m.start_ms), (Ongoing, 19));
    }

    #[test]
    fn end_without_a_transaction_and_timeouts() {
        let mut m = TxnMetadata::new("tx", 5, 100, 0);
        assert_eq!(m.end(5, 0, true, 1), Err(ResponseError::InvalidTxnState));
        assert_eq!(m.end(5, 0, false, 1), Err(ResponseError::InvalidTxnState));
        assert!(!m.has_timed_out(1_000_000), "nothing open");
        m.add_partitions(5, 0, &[("t".into(), 0)], 1000).unwrap();
        assert!(!m.has_timed_out(1100));
        assert!(m.has_timed_out(1101));
        let c = m.fence_and_abort(1101).unwrap();
        assert_eq!((c.producer_epoch, c.commit), (1, false));
        assert_eq!(m.fence_and_abort(1102), Err(ResponseError::InvalidTxnState));
        assert!(!m.expire(1_000_000, 10), "not while markers are pending");
        m.complete(1102).unwrap();
        assert_eq!(m.state, CompleteAbort);
        assert!(!m.expire(1110, 10));
        assert!(m.expire(1200, 10));
        assert_eq!(m.state, Dead);
    }
}
