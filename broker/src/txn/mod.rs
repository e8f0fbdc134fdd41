//! The transaction coordinator: [`TxnCoordinator`] owns every transactional id's state machine
//! ([`state::TxnMetadata`]) and its persistence ([`store::TxnStore`]); [`complete`] writes the
//! markers that end a transaction, runs the timeout sweep and finishes, at start-up,
//! transactions a crash left in a Prepare* state.
//!
//! Every change is persisted before it is acknowledged: the new state is built on a copy, the
//! copy written to disk, and only then does it replace the state in memory. The coordinator's
//! mutex is never held while a partition log is locked by the same thread, so the produce path
//! may ask the coordinator while holding a log's lock without risk of deadlock.

pub(crate) mod complete;
pub(crate) mod state;
mod store;

use crate::config::BrokerConfig;
use crate::error::Result;
use kafka_protocol::error::ResponseError;
use state::{Completion, InitDecision, PendingOffset, TxnMetadata, TxnState};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use store::TxnStore;

/// Transaction state of every id, behind one mutex: each operation is a short in-memory
/// update plus one small file write.
#[derive(Debug)]
pub(crate) struct TxnCoordinator {
    inner: Mutex<Inner>,
    /// Kafka's `transaction.max.timeout.ms`.
    pub(crate) max_timeout_ms: i32,
    /// Kafka's `transactional.id.expiration.ms`.
    expiration_ms: i64,
}

#[derive(Debug)]
struct Inner {
    store: TxnStore,
    txns: HashMap<String, TxnMetadata>,
    /// Producer id to transactional id, for the produce path.
    by_producer: HashMap<i64, String>,
}

impl Inner {
    /// Applies `change` to a copy of `id`'s state, persists the copy if `change` says it
    /// changed something, then keeps it.
    fn update<T>(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut TxnMetadata) -> Result<(T, bool), ResponseError>,
    ) -> Result<Result<T, ResponseError>> {
        let Some(current) = self.txns.get(id) else {
            return Ok(Err(ResponseError::InvalidProducerIdMapping));
        };
        let mut next = current.clone();
        let (out, changed) = match change(&mut next) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if changed {
            self.store.write(&next)?;
            self.keep(next);
        }
        Ok(Ok(out))
    }

    fn keep(&mut self, meta: TxnMetadata) {
        if let Some(old) = self.txns.get(&meta.transactional_id) {
            if old.producer_id != meta.producer_id {
                self.by_producer.remove(&old.producer_id);
            }
        }
        self.by_producer
            .insert(meta.producer_id, meta.transactional_id.clone());
        self.txns.insert(meta.transactional_id.clone(), meta);
    }
}

impl TxnCoordinator {
    /// Loads the state of every transactional id kept in `dir`.
    pub(crate) fn open(dir: &Path, config: &BrokerConfig) -> Result<TxnCoordinator> {
        let (store, all) = TxnStore::open(dir)?;
        let mut inner = Inner {
            store,
            txns: HashMap::new(),
            by_producer: HashMap::new(),
        };
        for meta in all {
            inner.keep(meta);
        }
        Ok(TxnCoordinator {
            inner: Mutex::new(inner),
            max_timeout_ms: i32::try_from(config.transaction_max_timeout.as_millis())
                .unwrap_or(i32::MAX),
            expiration_ms: i64::try_from(config.transactional_id_expiration.as_millis())
                .unwrap_or(i64::MAX),
        })
    }

    /// InitProducerId for a transactional id. `allocate` hands out a fresh producer id.
    pub(crate) fn init(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now: i64,
        allocate: impl Fn() -> Result<i64>,
    ) -> Result<Result<InitDecision, ResponseError>> {
        let mut inner = crate::sync::lock(&self.inner, "txn coordinator");
        if !inner.txns.contains_key(id) {
            if expected.is_some() {
                // A KIP-360 producer whose id the coordinator does not know (expired).
                return Ok(Err(ResponseError::InvalidProducerIdMapping));
            }
            let meta = TxnMetadata::new(id, allocate()?, timeout_ms, now);
            inner.store.write(&meta)?;
            let ready = InitDecision::Ready(meta.producer_id, meta.producer_epoch);
            inner.keep(meta);
            return Ok(Ok(ready));
        }
        // Allocation may write the broker identity file: do it before, outside the closure.
        let exhausted = inner.txns[id].producer_epoch >= i16::MAX - 1;
        let fresh = if exhausted { Some(allocate()?) } else { None };
        inner.update(id, |m| {
            m.init(timeout_ms, expected, now, || fresh)
                .map(|decision| (decision, true))
        })
    }

    /// AddPartitionsToTxn.
    pub(crate) fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now: i64,
    ) -> Result<Result<(), ResponseError>> {
        let mut inner = crate::sync::lock(&self.inner, "txn coordinator");
        inner.update(id, |m| {
            m.add_partitions(producer_id, epoch, partitions, now)
                .map(|changed| ((), changed))
        })
    }

    /// AddOffsetsToTxn.
    pub(crate) fn add_group(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        now: i64,
    ) -> Result<Result<(), ResponseError>> {
        let mut inner = crate::sync::lock(&self.inner, "txn coordinator");
        inner.update(id, |m| {
            m.add_group(producer_id, epoch, group, now)
                .map(|changed| ((), changed))
        })
    }

    /// TxnOffsetCommit: stages offsets until the transaction ends.
    pub(crate) fn stage_offsets(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        offsets: Vec<PendingOffset>,
        now: i64,
    ) -> Result<Result<(), ResponseError>> {
        let mut inner = crate::sync::lock(&self.inner, "txn coordinator");
        inner.update(id, |m| {
            m.stage_offsets(producer_id, epoch, offsets, now)
                .map(|()| ((), true))
        })
    }

    /// EndTxn: the work to do, or `None` for a retry of a completed EndTxn.
    pub(crate) fn end(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now: i64,
    ) -> Result<Result<Option<Completion>, ResponseError>> {
        let mut inner = crate::sync::lock(&self.inner, "txn coordinator");
        inner.update(id, |m| {
            m.end(producer_id, epoch, commit, now).map(|c| {
                let changed = c.is_some();
                (c, changed)
            })
        })
    }

    /// Records that every marker of `done` is written (and its offsets applied).
    pub(crate) fn complete(&self, done: &Completion, now: i64) -> Result<()> {
        let mut inner = crate::sync::lock(&self.inner, "txn coordinator");
        let outcome = inner.update(&done.transactional_id, |m| {
            // Someone else (the sweep, a retry) may have finished it first.
            let same = m.producer_id == done.producer_id
                && m.producer_epoch == done.producer_epoch
                && m.state.is_prepare();
            if !same {
                return Ok(((), false));
            }
            m.complete(now).map(|()| ((), true))
        })?;
        if let Err(e) = outcome {
            tracing::warn!(transactional_id = %done.transactional_id, error = ?e, "completed transaction is gone");
        }
        Ok(())
    }

    /// Whether `producer_id` at `epoch` may write a transactional batch to this partition:
    /// its transaction is open and holds the partition. A newer epoch means the producer was
    /// fenced (INVALID_PRODUCER_EPOCH, the produce path's code); anything else is
    /// INVALID_TXN_STATE.
    pub(crate) fn verify_produce(
        &self,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        let inner = crate::sync::lock(&self.inner, "txn coordinator");
        let meta = inner
            .by_producer
            .get(&producer_id)
            .and_then(|id| inner.txns.get(id))
            .filter(|m| m.producer_id == producer_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if epoch < meta.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        let added = meta.state == TxnState::Ongoing
            && epoch == meta.producer_epoch
            && meta.partitions.contains(&(topic.to_string(), partition));
        if added {
            Ok(())
        } else {
            Err(ResponseError::InvalidTxnState)
        }
    }

    /// Whether an unfinished transaction holds a staged offset for this group's partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub(crate) fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let inner = crate::sync::lock(&self.inner, "txn coordinator");
        inner.txns.values().any(|m| {
            m.pending_offsets
                .iter()
                .any(|o| o.group == group && o.topic == topic && o.partition == partition)
        })
    }

    /// The periodic sweep: open transactions past their timeout are fenced and moved to
    /// PrepareAbort, and their work returned with that of Prepare* states older than
    /// `stuck_ms` (their markers failed or a crash interrupted them); ids unused for
    /// `transactional.id.expiration.ms` are forgotten.
    pub(crate) fn sweep(&self, now: i64, stuck_ms: i64) -> Result<Vec<Completion>> {
        let mut inner = crate::sync::lock(&self.inner, "txn coordinator");
        let ids: Vec<String> = inner.txns.keys().cloned().collect();
        let mut work = Vec::new();
        for id in ids {
            let meta = &inner.txns[&id];
            if meta.has_timed_out(now) {
                tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
                if let Ok(c) = inner.update(&id, |m| m.fence_and_abort(now).map(|c| (c, true)))? {
                    work.push(c);
                }
            } else if meta.state.is_prepare() && now.saturating_sub(meta.last_update_ms) > stuck_ms
            {
                work.push(meta.completion());
            } else {
                let mut copy = meta.clone();
                if copy.expire(now, self.expiration_ms) {
                    tracing::info!(transactional_id = %id, "transactional id expired");
                    inner.store.remove(&id)?;
                    inner.by_producer.remove(&copy.producer_id);
                    inner.txns.remove(&id);
                }
            }
        }
        Ok(work)
    }

    /// The work of every Prepare* state (at start-up: what a crash interrupted).
    pub(crate) fn prepared(&self) -> Vec<Completion> {
        let inner = crate::sync::lock(&self.inner, "txn coordinator");
        inner
            .txns
            .values()
            .filter(|m| m.state.is_prepare())
            .map(|m| m.completion())
            .collect()
    }

    /// One id's state (DescribeTransactions).
    pub(crate) fn describe(&self, id: &str) -> Option<TxnMetadata> {
        let inner = crate::sync::lock(&self.inner, "txn coordinator");
        inner.txns.get(id).cloned()
    }

    /// Every id's state, sorted by id (ListTransactions).
    pub(crate) fn list(&self) -> Vec<TxnMetadata> {
        let inner = crate::sync::lock(&self.inner, "txn coordinator");
        let mut all: Vec<TxnMetadata> = inner.txns.values().cloned().collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn coordinator(dir: &Path) -> TxnCoordinator {
        TxnCoordinator::open(dir, &BrokerConfig::default()).unwrap()
    }

    #[test]
    fn state_survives_reopen_and_the_sweep_aborts_expired_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let next = AtomicI64::new(100);
        let allocate = || Ok(next.fetch_add(1, Ordering::SeqCst));
        let c = coordinator(dir.path());
        let ready = c.init("a", 1000, None, 0, allocate).unwrap().unwrap();
        assert_eq!(ready, InitDecision::Ready(100, 0));
        assert_eq!(
            c.init("b", 1000, Some((100, 0)), 0, allocate).unwrap(),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        c.add_partitions("a", 100, 0, &[("t".into(), 0)], 10)
            .unwrap()
            .unwrap();
        assert_eq!(c.verify_produce(100, 0, "t", 0), Ok(()));
        assert_eq!(
            c.verify_produce(100, 0, "t", 1),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            c.verify_produce(101, 0, "t", 0),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        drop(c);
        let c = coordinator(dir.path());
        assert_eq!(c.describe("a").unwrap().state, TxnState::Ongoing);
        assert!(c.sweep(1010, 10_000).unwrap().is_empty(), "not yet");
        let work = c.sweep(1011, 10_000).unwrap();
        assert_eq!(work.len(), 1);
        assert_eq!((work[0].producer_epoch, work[0].commit), (1, false));
        assert_eq!(
            c.verify_produce(100, 0, "t", 0),
            Err(ResponseError::InvalidProducerEpoch)
        );
        // A crash before completion: the Prepare* state is found again.
        drop(c);
        let c = coordinator(dir.path());
        assert_eq!(c.prepared(), work);
        assert!(c.sweep(1012, 10_000).unwrap().is_empty(), "being completed");
        assert_eq!(c.sweep(20_000, 10_000).unwrap(), work, "stuck: done again");
        c.complete(&work[0], 20_001).unwrap();
        c.complete(&work[0], 20_002).unwrap(); // a second completion changes nothing
        assert_eq!(c.describe("a").unwrap().state, TxnState::CompleteAbort);
        assert!(c.prepared().is_empty());
        // Unused for longer than transactional.id.expiration.ms: forgotten, file included.
        let week = 7 * 24 * 3600 * 1000;
        c.sweep(20_001 + week + 1, 10_000).unwrap();
        assert!(c.describe("a").is_none());
        drop(c);
        assert!(coordinator(dir.path()).list().is_empty());
    }
}
