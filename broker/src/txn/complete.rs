//! Ending transactions: [`finish`] writes a transaction's markers to its partitions, applies
//! its staged offsets on commit and records completion; [`finish_prepared`] does it at start-up
//! for Prepare* states a crash interrupted, and [`run_sweep`] periodically for timed-out and
//! stuck transactions.
//!
//! The order is what makes a crash between markers safe: the Prepare* state (with partitions
//! and offsets) is durable before the first marker is written, markers are fsynced (unless the
//! flush policy is `never`), and Complete* is written only after the last. A restart in between
//! writes every marker again; a second marker for a transaction that already ended in that
//! partition ends nothing (see `log::producers`), so nothing committed is lost and nothing
//! aborted shows.

use super::state::Completion;
use crate::config::FlushPolicy;
use crate::error::Result;
use crate::group::offsets::Committed;
use crate::log::control::Marker;
use crate::state::BrokerState;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One committed offset of a group: (topic, partition) and the offset.
type GroupOffset = ((String, i32), Committed);

/// Writes the markers of `c`, applies its offsets if it commits, and marks it complete.
pub(crate) fn finish(state: &BrokerState, c: &Completion) -> Result<()> {
    let marker = if c.commit {
        Marker::Commit
    } else {
        Marker::Abort
    };
    let fsync = state.config.flush != FlushPolicy::Never;
    let now = crate::util::now_ms();
    for (topic, index) in &c.partitions {
        // A topic deleted since it joined the transaction has nothing left to mark.
        let Some(partition) = state.topics.get(topic).and_then(|t| t.partition(*index)) else {
            continue;
        };
        let mut log = partition.lock_log()?;
        log.append_marker(c.producer_id, c.producer_epoch, marker, now, fsync)?;
    }
    if !c.partitions.is_empty() {
        state.appended.notify_waiters();
    }
    if c.commit {
        let mut by_group: BTreeMap<&str, Vec<GroupOffset>> = BTreeMap::new();
        for o in &c.offsets {
            by_group
                .entry(o.group.as_str())
                .or_default()
                .push(((o.topic.clone(), o.partition), o.committed.clone()));
        }
        for (group, offsets) in by_group {
            state.groups.apply_txn_offsets(group, offsets)?;
        }
    }
    state.txns.complete(c, now)?;
    tracing::debug!(transactional_id = %c.transactional_id, commit = c.commit, partitions = c.partitions.len(), "transaction completed");
    Ok(())
}

/// Finishes every transaction found in a Prepare* state (called at start-up, before clients
/// connect).
pub(crate) fn finish_prepared(state: &BrokerState) -> Result<()> {
    for c in state.txns.prepared() {
        tracing::info!(transactional_id = %c.transactional_id, commit = c.commit, "completing a transaction interrupted by a stop");
        finish(state, &c)?;
    }
    Ok(())
}

/// One sweep: aborts transactions past their timeout and retries stuck completions.
pub(crate) fn sweep(state: &BrokerState, now: i64) {
    let stuck_ms =
        i64::try_from(state.config.transaction_abort_interval.as_millis()).unwrap_or(i64::MAX);
    let work = match state.txns.sweep(now, stuck_ms) {
        Ok(work) => work,
        Err(e) => {
            tracing::error!(error = %e, "transaction sweep failed");
            return;
        }
    };
    for c in work {
        if let Err(e) = finish(state, &c) {
            tracing::error!(transactional_id = %c.transactional_id, error = %e, "cannot write transaction markers; will retry");
        }
    }
}

/// Runs [`sweep`] every `transaction_abort_interval` until shutdown (Kafka's
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
pub(crate) async fn run_sweep(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let period = state
        .config
        .transaction_abort_interval
        .max(Duration::from_millis(10));
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let state = state.clone();
                // Markers are fsynced: keep that off the async workers.
                let _ = tokio::task::spawn_blocking(move || sweep(&state, crate::util::now_ms())).await;
            }
            _ = crate::server::stopped(&mut shutdown) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{BrokerConfig, FlushPolicy};
    use crate::group::offsets::Committed;
    use crate::log::batch::tests::make_txn_batch;
    use crate::log::control::Marker;
    use crate::state::BrokerState;
    use crate::txn::state::{InitDecision, PendingOffset, TxnState};
    use std::path::Path;

    fn open(dir: &Path) -> BrokerState {
        let config = BrokerConfig {
            flush: FlushPolicy::Never,
            ..BrokerConfig::default()
        };
        BrokerState::open(config, dir, "127.0.0.1".into(), 9092).unwrap()
    }

    /// (high watermark, last stable offset, aborted transactions) of partition `p` of "t".
    fn partition(state: &BrokerState, p: i32) -> (i64, i64, Vec<(i64, i64)>) {
        let partition = state.topics.get("t").unwrap().partition(p).unwrap();
        let log = partition.log.lock().unwrap();
        (
            log.next_offset(),
            log.last_stable_offset(),
            log.aborted_transactions(0, i64::MAX),
        )
    }

    /// A crash (the state dropped without a clean stop: every write already reached the OS)
    /// after the first of two markers: the restart writes them all, applies the offsets of a
    /// commit, and exposes an abort's records to no read_committed reader.
    #[test]
    fn a_crash_between_markers_is_completed_at_start() {
        for commit in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let state = open(dir.path());
            state
                .topics
                .create("t", 2, Default::default(), false)
                .unwrap()
                .unwrap();
            let allocate = || state.producer_ids.allocate();
            let decision = state.txns.init("tx", 60_000, None, 0, allocate).unwrap();
            let Ok(InitDecision::Ready(pid, epoch)) = decision else {
                panic!("{decision:?}")
            };
            let both = [("t".to_string(), 0), ("t".to_string(), 1)];
            let txns = &state.txns;
            txns.add_partitions("tx", pid, epoch, &both, 1)
                .unwrap()
                .unwrap();
            txns.add_group("tx", pid, epoch, "g", 1).unwrap().unwrap();
            let staged = PendingOffset {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                committed: Committed {
                    offset: 42,
                    leader_epoch: -1,
                    metadata: None,
                },
            };
            txns.stage_offsets("tx", pid, epoch, vec![staged.clone()], 1)
                .unwrap()
                .unwrap();
            for p in 0..2 {
                let partition = state.topics.get("t").unwrap().partition(p).unwrap();
                let mut log = partition.log.lock().unwrap();
                log.append(&mut make_txn_batch(2, 1000, (pid, epoch, 0)), false)
                    .unwrap();
            }
            assert_eq!(partition(&state, 1), (2, 0, vec![]));
            let work = txns.end("tx", pid, epoch, commit, 2).unwrap().unwrap();
            let work = work.expect("markers to write");
            let marker = if commit {
                Marker::Commit
            } else {
                Marker::Abort
            };
            {
                let partition = state.topics.get("t").unwrap().partition(0).unwrap();
                let mut log = partition.log.lock().unwrap();
                log.append_marker(pid, work.producer_epoch, marker, 3, false)
                    .unwrap();
            }
            assert_eq!(partition(&state, 1).1, 0, "still open in partition 1");
            drop(state);

            let state = open(dir.path());
            let aborted = if commit { vec![] } else { vec![(pid, 0)] };
            // Partition 0 got its marker twice; the second ended nothing.
            assert_eq!(partition(&state, 0), (4, 4, aborted.clone()), "{commit}");
            assert_eq!(partition(&state, 1), (3, 3, aborted), "{commit}");
            let meta = state.txns.describe("tx").unwrap();
            let expected = if commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            };
            assert_eq!(meta.state, expected);
            assert_eq!(
                state.groups.committed("g", "t", 0),
                commit.then_some(staged.committed),
                "offsets applied exactly when committed"
            );
            assert!(!state.txns.has_pending_offset("g", "t", 0));
        }
    }
}
