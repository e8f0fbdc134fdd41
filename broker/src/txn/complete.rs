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
        let mut log = partition.log.lock().expect("log lock");
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
