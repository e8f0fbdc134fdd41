//! Restoration: replaying a new task's changelogs into its stores before it processes.
//!
//! Each changelog is read from the task's checkpoint (or the beginning) to its end, with a
//! restore consumer that only assigns partitions and never joins the group.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::client::{RestorePoll, ThreadClient};
use super::StateRestoreListener;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::task::{ChangelogPartition, StreamTask};

/// Creates the restore consumer of the stream thread `client_id`.
pub(super) fn consumer(config: &ResolvedConfig, client_id: &str) -> Result<BaseConsumer> {
    let mut cc = ClientConfig::new();
    for (k, v) in &config.consumer {
        cc.set(k, v);
    }
    cc.set("client.id", format!("{}-restore-consumer", client_id));
    cc.set("enable.partition.eof", "true");
    // Changelogs are read one partition after another to their end: a fetch the broker
    // holds for `fetch.wait.max.ms` (500 ms by default) at the end of one partition
    // would delay the next by as much.
    cc.set("fetch.wait.max.ms", "10");
    // rdkafka delivers assigned partitions' records through the group queue, so the
    // restore consumer needs a group id; it only assigns, so it never joins that group
    // and never commits.
    cc.set(
        "group.id",
        format!("{}-restore-consumer", config.application_id),
    );
    cc.create()
        .map_err(|e| StreamsError::kafka("creating the restore consumer", e))
}

/// Brings a standby's stores to their changelogs' ends in one go; returns the lag it found
/// (the changelog records it had not read yet, over all its stores). Standby updates do not
/// tell the restore listener: they are not restorations of a task about to run (Kafka Streams
/// has a separate standby listener for them).
pub(super) fn update_standby(
    client: &mut dyn ThreadClient,
    timeout: Duration,
    task: &mut StreamTask,
    budget: Duration,
) -> Result<StandbyUpdate> {
    let mut job = RestoreJob::new(task.changelogs(), None, timeout);
    job.standby = true;
    let caught_up = job.step(client, task, budget)?;
    if !caught_up {
        job.suspend(client, task)?;
    }
    Ok(StandbyUpdate {
        lag: job.found_lag,
        caught_up,
    })
}

/// What one slice of a standby's update found and did.
pub(super) struct StandbyUpdate {
    /// Records between where the standby's changelogs were and their ends when looked at.
    pub(super) lag: u64,
    /// Whether every changelog was read to its end; if not, the next update goes on from
    /// where this one stopped.
    pub(super) caught_up: bool,
}

/// A restoration that runs in slices: [`RestoreJob::step`] reads for a bounded time and
/// returns, so that the stream thread goes on processing its other tasks, applies assignments
/// and notices `close()` between slices. One job at a time uses the restore consumer.
pub(super) struct RestoreJob {
    pending: VecDeque<ChangelogPartition>,
    current: Option<Current>,
    listener: Option<Arc<dyn StateRestoreListener>>,
    timeout: Duration,
    /// A standby's update: logged at debug, every commit interval.
    standby: bool,
    /// Records between where each changelog started and its end when it was looked at.
    found_lag: u64,
    /// Each changelog's (low, high) watermarks, looked up once for all of them at the first
    /// step, so that the records left to restore are known from the start (for the metric
    /// only: each changelog's end is looked up again when its turn comes).
    ranges: Option<std::collections::HashMap<(String, i32), (i64, i64)>>,
}

/// The changelog partition being read.
struct Current {
    cl: ChangelogPartition,
    next: i64,
    high: i64,
    total: u64,
    began: Instant,
    last_progress: Instant,
    batch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Whether the consumer was assigned the partition (not when there was nothing to read).
    assigned: bool,
}

impl RestoreJob {
    pub(super) fn new(
        changelogs: Vec<ChangelogPartition>,
        listener: Option<Arc<dyn StateRestoreListener>>,
        timeout: Duration,
    ) -> Self {
        RestoreJob {
            pending: changelogs.into(),
            current: None,
            listener,
            timeout,
            standby: false,
            found_lag: 0,
            ranges: None,
        }
    }

    /// Records left to restore (Kafka Streams' `restore-remaining-records-total`): from each
    /// changelog's position (or checkpoint) to its end, once the ends are known.
    pub(super) fn remaining(&self) -> u64 {
        let current = self
            .current
            .as_ref()
            .map_or(0, |c| (c.high - c.next).max(0) as u64);
        let Some(ranges) = &self.ranges else {
            return current;
        };
        let pending: i64 = self
            .pending
            .iter()
            .filter_map(|cl| {
                let (low, high) = ranges.get(&(cl.topic.clone(), cl.partition))?;
                Some((high - cl.checkpoint.unwrap_or(*low).max(*low)).max(0))
            })
            .sum();
        current + pending as u64
    }

    /// Restores `task` for about `budget`; true once every changelog is at its end. The
    /// consumer must not be used for anything else until the job is done or dropped.
    pub(super) fn step(
        &mut self,
        client: &mut dyn ThreadClient,
        task: &mut StreamTask,
        budget: Duration,
    ) -> Result<bool> {
        let started = Instant::now();
        if self.ranges.is_none() && !self.standby {
            let ranges = self
                .pending
                .iter()
                .filter_map(|cl| {
                    let r = client.changelog_range(&cl.topic, cl.partition).ok()?;
                    Some(((cl.topic.clone(), cl.partition), r))
                })
                .collect();
            self.ranges = Some(ranges);
        }
        loop {
            if self.current.is_none() {
                let Some(cl) = self.pending.pop_front() else {
                    return Ok(true);
                };
                self.begin(client, task, cl)?;
                continue;
            }
            let cur = self.current.as_mut().expect("checked above");
            let err = |message: String| StreamsError::Restore {
                task: task.id,
                store: cur.cl.store.clone(),
                changelog: cur.cl.topic.clone(),
                message,
            };
            let mut at_end = cur.next >= cur.high;
            if !at_end {
                match client.restore_poll(Duration::from_millis(100)) {
                    RestorePoll::Record { offset, key, value } => {
                        cur.next = offset + 1;
                        cur.last_progress = Instant::now();
                        if let Some(k) = key {
                            cur.batch.push((k, value));
                        }
                    }
                    RestorePoll::End => at_end = true,
                    RestorePoll::Error(e) => {
                        tracing::warn!(error = %e, "restore consumer error");
                        if cur.last_progress.elapsed() > self.timeout {
                            return Err(err(format!("no progress for {:?}: {e}", self.timeout)));
                        }
                    }
                    RestorePoll::Nothing => {
                        if cur.last_progress.elapsed() > self.timeout {
                            return Err(err(format!(
                                "no progress for {:?} at offset {} of {}",
                                self.timeout, cur.next, cur.high
                            )));
                        }
                    }
                }
                at_end |= cur.next >= cur.high;
            }
            if cur.batch.len() >= 10_000 || at_end {
                self.write(task)?;
            }
            if at_end {
                self.finish(client, task)?;
            } else if started.elapsed() >= budget {
                return Ok(false);
            }
        }
    }

    /// Starts reading `cl` from its checkpoint (or its beginning).
    fn begin(
        &mut self,
        client: &mut dyn ThreadClient,
        task: &mut StreamTask,
        cl: ChangelogPartition,
    ) -> Result<()> {
        let task_id = task.id;
        let err = |message: String| StreamsError::Restore {
            task: task_id,
            store: cl.store.clone(),
            changelog: cl.topic.clone(),
            message,
        };
        // Looked up again, not taken from `ranges`: the end is where this restore stops, and
        // it must not be an older one.
        let (low, high) = client
            .changelog_range(&cl.topic, cl.partition)
            .map_err(|e| err(format!("reading watermarks: {e}")))?;
        let mut start = cl.checkpoint.unwrap_or(low).max(low);
        if cl.checkpoint.is_some_and(|c| c > high) {
            // The changelog is shorter than our checkpoint (it was recreated): the local
            // store cannot be trusted, rebuild it.
            tracing::warn!(task = %task.id, store = %cl.store, checkpoint = ?cl.checkpoint, high, "checkpoint beyond changelog end: restoring from scratch");
            task.clear_store(&cl.store)?;
            task.forget_checkpoint(&cl.topic, cl.partition);
            start = low;
        }
        if let Some(l) = &self.listener {
            l.on_restore_start(&cl.topic, cl.partition, &cl.store, start, high);
        }
        self.found_lag += u64::try_from(high - start).unwrap_or(0);
        if start < high {
            client
                .restore_assign(&cl.topic, cl.partition, start)
                .map_err(err)?;
        }
        let now = Instant::now();
        self.current = Some(Current {
            cl,
            next: start,
            high,
            total: 0,
            began: now,
            last_progress: now,
            batch: Vec::with_capacity(10_000),
            assigned: start < high,
        });
        Ok(())
    }

    /// Stops a standby's update before its end: what was read is written and made durable,
    /// and the position recorded, so that a later update (or a checkpoint) starts from there.
    /// The restore consumer is released, as an active task's restoration may need it next.
    fn suspend(&mut self, client: &mut dyn ThreadClient, task: &mut StreamTask) -> Result<()> {
        self.write(task)?;
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let err = |message: String| StreamsError::Restore {
            task: task.id,
            store: cur.cl.store.clone(),
            changelog: cur.cl.topic.clone(),
            message,
        };
        if cur.assigned {
            client.restore_unassign().map_err(err)?;
        }
        if cur.total > 0 {
            // A checkpoint may record this position: what it covers must be on disk first.
            task.flush_store(&cur.cl.store)?;
        }
        task.restored_to(&cur.cl.topic, cur.cl.partition, cur.next)
    }

    /// Writes the records read so far into the store.
    fn write(&mut self, task: &mut StreamTask) -> Result<()> {
        let cur = self.current.as_mut().expect("a changelog is being read");
        if cur.batch.is_empty() {
            return Ok(());
        }
        task.restore_batch(&cur.cl.store, &cur.batch)?;
        let n = cur.batch.len() as u64;
        cur.total += n;
        if let Some(l) = &self.listener {
            l.on_batch_restored(&cur.cl.topic, cur.cl.partition, &cur.cl.store, cur.next, n);
        }
        cur.batch.clear();
        Ok(())
    }

    /// The changelog is at its end: release it, flush the store, record the offset.
    fn finish(&mut self, client: &mut dyn ThreadClient, task: &mut StreamTask) -> Result<()> {
        let cur = self.current.take().expect("a changelog is being read");
        let cl = &cur.cl;
        if cur.assigned {
            client
                .restore_unassign()
                .map_err(|message| StreamsError::Restore {
                    task: task.id,
                    store: cl.store.clone(),
                    changelog: cl.topic.clone(),
                    message,
                })?;
        }
        if cur.total > 0 {
            // Written out now (RocksDB memtables to files), so that the memory of a restored
            // store is given back before the next one is restored.
            task.flush_store(&cl.store)?;
            let took_ms = cur.began.elapsed().as_millis() as u64;
            if !self.standby {
                tracing::info!(task = %task.id, store = %cl.store, changelog = %cl.topic, partition = cl.partition,
                    end = cur.high, restored = cur.total, took_ms, "restored");
            } else {
                // A standby's update, every commit interval.
                tracing::debug!(task = %task.id, store = %cl.store, changelog = %cl.topic, partition = cl.partition,
                    end = cur.high, restored = cur.total, took_ms, "standby updated");
            }
        } else {
            tracing::debug!(task = %task.id, store = %cl.store, changelog = %cl.topic, partition = cl.partition, end = cur.high, "nothing to restore");
        }
        task.restored_to(&cl.topic, cl.partition, cur.high)?;
        if let Some(l) = &self.listener {
            l.on_restore_end(&cl.topic, cl.partition, &cl.store, cur.total);
        }
        Ok(())
    }
}

/// The watermarks of a changelog partition. A changelog created at start-up may have no leader
/// yet (Apache Kafka answers NOT_LEADER_OR_FOLLOWER for a moment), so errors are retried for up
/// to `within` before they fail the restore.
pub(super) fn changelog_watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    within: Duration,
) -> std::result::Result<(i64, i64), rdkafka::error::KafkaError> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.fetch_watermarks(topic, partition, left.max(Duration::from_millis(100))) {
            Ok(w) => return Ok(w),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(topic, partition, error = %e, "retrying a changelog watermark lookup");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}
