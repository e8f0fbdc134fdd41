//! Background log cleanup: [`run`] periodically applies time and size retention to topics whose
//! `cleanup.policy` includes `delete`, and compacts those whose policy includes `compact`.

use crate::error::Result;
use crate::state::BrokerState;
use crate::topics::Partition;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs until shutdown, cleaning every `log_cleanup_interval`.
pub(crate) async fn run(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(state.config.log_cleanup_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let state = state.clone();
                // File deletion and compaction do blocking I/O.
                let _ = tokio::task::spawn_blocking(move || clean_all(&state)).await;
            }
            _ = crate::server::stopped(&mut shutdown) => break,
        }
    }
}

/// One cleanup pass over every topic.
pub(crate) fn clean_all(state: &BrokerState) {
    let now = crate::util::now_ms();
    for topic in state.topics.list() {
        if topic.is_compacted() {
            let delete_retention = topic.config_i64("delete.retention.ms", 86_400_000);
            for p in topic.partitions() {
                match compact_partition(&p, now.saturating_sub(delete_retention)) {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(topic = %topic.name, partition = p.index, removed = n, "compacted")
                    }
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = p.index, error = %e, "compaction failed")
                    }
                }
            }
        }
        if !topic.has_retention() {
            continue;
        }
        let retention_ms = topic.config_i64("retention.ms", 604_800_000);
        let retention_bytes = topic.config_i64("retention.bytes", -1);
        for p in topic.partitions() {
            let Ok(mut log) = p.lock_log() else { continue };
            if let Err(e) = log.apply_retention(retention_ms, retention_bytes, now) {
                tracing::error!(topic = %topic.name, partition = p.index, error = %e, "retention failed");
            }
        }
    }
}

/// Compacts one partition, holding its lock only to plan and to swap each rewritten segment
/// in: reading the log twice and writing the new segments happen while producers and consumers
/// go on. Returns how many records were removed.
pub(crate) fn compact_partition(p: &Partition, drop_tombstones_before: i64) -> Result<usize> {
    let Some(plan) = p.lock_log()?.plan_compaction()? else {
        return Ok(0);
    };
    let (cleaned, removed) = plan.run(drop_tombstones_before)?;
    for c in cleaned {
        p.lock_log()?.install_cleaned(c)?;
    }
    p.lock_log()?.compaction_done(plan.clean_end());
    Ok(removed)
}
