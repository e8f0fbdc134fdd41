//! How a stream thread's tasks come and go: an assignment is applied in two halves (revoke,
//! then add), new active tasks restore in slices between polls, standbys catch up, and a lost
//! membership closes everything without committing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::restore::{self, RestoreJob};
use super::task_manager::TaskManager;
use crate::assignment::OwnedTasks;
use crate::error::{Result, StreamsError};
use crate::task::StreamTask;
use crate::task_id::TaskId;

/// Timeout of the committed-offset and watermark lookups made when a task starts processing.
const FETCH_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a new task waits for records known to be on the broker before it processes
/// what it has (a bound against a partition that cannot be fetched).
const FETCH_WAIT_MAX_MS: i64 = 10_000;
/// How long one restoration slice reads before the thread goes back to its loop.
const RESTORE_SLICE: Duration = Duration::from_millis(200);

/// An active task whose stores are being restored before it processes.
pub(super) struct Restoring {
    pub(super) id: TaskId,
    pub(super) task: StreamTask,
    job: RestoreJob,
}

impl TaskManager {
    pub(super) fn close_task(&mut self, t: StreamTask) {
        tracing::info!(task = %t.id, "closing task");
        self.closed_totals.processed += t.metrics.processed;
        self.closed_totals.dropped += t.metrics.dropped;
        self.closed_totals.restored += t.metrics.restored;
        t.close();
    }

    /// Closes every task (active, restoring and standby); at shutdown after the final commit.
    pub(super) fn close_all(&mut self) {
        let all: Vec<StreamTask> = std::mem::take(&mut self.active)
            .into_values()
            .chain(std::mem::take(&mut self.standby).into_values())
            .chain(
                std::mem::take(&mut self.restoring)
                    .into_iter()
                    .map(|r| r.task),
            )
            .collect();
        for t in all {
            self.close_task(t);
        }
        self.by_partition.clear();
        self.last_partition = None;
    }

    /// What this thread holds, for the member's next subscription. Restoring tasks are the
    /// thread's active tasks already: the leader must not give them to anyone else.
    pub(super) fn owned(&self) -> OwnedTasks {
        OwnedTasks {
            active: self
                .active
                .keys()
                .copied()
                .chain(self.restoring.iter().map(|r| r.id))
                .collect(),
            standby: self.standby.keys().copied().collect(),
        }
    }

    /// Whether tasks are still restoring.
    pub(super) fn is_restoring(&self) -> bool {
        !self.restoring.is_empty()
    }

    /// The first half of applying an assignment: commits, then closes the active tasks not in
    /// `active` and stops reading their partitions. Tasks that stay keep their queues and their
    /// consumer positions: nothing is read twice. Restoring tasks and standbys no longer
    /// wanted are closed too.
    pub(super) fn revoke(
        &mut self,
        active: &BTreeSet<TaskId>,
        standby: &BTreeSet<TaskId>,
        consumer: &BaseConsumer,
    ) -> Result<()> {
        let revoked: Vec<TaskId> = self
            .active
            .keys()
            .filter(|id| !active.contains(id))
            .copied()
            .collect();
        if !revoked.is_empty() {
            tracing::info!(tasks = ?revoked, "revoking tasks: committing, then closing them");
            self.commit()?;
            let mut tpl = TopicPartitionList::new();
            for id in revoked {
                if let Some(t) = self.active.remove(&id) {
                    for (topic, p) in self.layout.task_partitions(id) {
                        tpl.add_partition(&topic, p);
                        self.by_partition.remove(&(Arc::from(topic.as_str()), p));
                    }
                    self.close_task(t);
                }
            }
            self.last_partition = None;
            consumer.incremental_unassign(&tpl).map_err(|e| {
                StreamsError::kafka(format!("unassigning {} revoked partitions", tpl.count()), e)
            })?;
        }
        let restoring = std::mem::take(&mut self.restoring);
        for r in restoring {
            if active.contains(&r.id) {
                self.restoring.push_back(r);
            } else {
                tracing::info!(task = %r.id, "revoked while restoring");
                self.close_task(r.task);
                // The restore consumer may still hold one of its changelogs.
                if let Some(c) = &self.restore_consumer {
                    let _ = c.unassign();
                }
            }
        }
        let gone: Vec<TaskId> = self
            .standby
            .keys()
            .filter(|id| !standby.contains(id) && !active.contains(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(t) = self.standby.remove(&id) {
                self.close_task(t);
            }
        }
        self.publish_tasks();
        Ok(())
    }

    /// The second half: queues the new active tasks for restoration (a standby of the task is
    /// promoted, and restores only the tail of its changelogs), and creates the new standbys.
    pub(super) fn add(
        &mut self,
        active: &BTreeSet<TaskId>,
        standby: &BTreeSet<TaskId>,
    ) -> Result<()> {
        let restoring: BTreeSet<TaskId> = self.restoring.iter().map(|r| r.id).collect();
        let new: Vec<TaskId> = active
            .iter()
            .filter(|id| !self.active.contains_key(id) && !restoring.contains(id))
            .copied()
            .collect();
        for id in new {
            let task = match self.standby.remove(&id) {
                Some(t) => {
                    tracing::info!(task = %id, "promoting a standby task to active");
                    t
                }
                None => {
                    tracing::info!(task = %id, "creating task");
                    let sub = &self.layout.subtopologies[id.subtopology as usize];
                    StreamTask::new(self.topology.clone(), sub, id.partition, &self.env)?
                }
            };
            let job = RestoreJob::new(
                task.changelogs(),
                self.shared.restore_listener(),
                self.config.task_timeout,
            );
            self.restoring.push_back(Restoring { id, task, job });
        }
        let new: Vec<TaskId> = standby
            .iter()
            .filter(|id| !self.standby.contains_key(id) && !self.active.contains_key(id))
            .copied()
            .collect();
        for id in new {
            tracing::info!(task = %id, "creating standby task");
            let sub = &self.layout.subtopologies[id.subtopology as usize];
            let task = StreamTask::new(self.topology.clone(), sub, id.partition, &self.env)?;
            // Filled by the next standby update, between polls.
            self.standby.insert(id, task);
        }
        self.publish_tasks();
        Ok(())
    }

    /// Restores the oldest restoring task for one slice; once it is restored, it starts
    /// processing: initialized, and its partitions read from the committed offsets. Returns
    /// whether tasks are still restoring.
    pub(super) fn restore_slice(&mut self, consumer: &BaseConsumer) -> Result<bool> {
        let Some(mut r) = self.restoring.pop_front() else {
            return Ok(false);
        };
        if self.restore_consumer.is_none() {
            self.restore_consumer = Some(restore::consumer(&self.config, &self.client_id)?);
        }
        let restore_consumer = self.restore_consumer.as_ref().expect("created above");
        let done = match r.job.step(restore_consumer, &mut r.task, RESTORE_SLICE) {
            Ok(done) => done,
            Err(e) => {
                self.close_task(r.task);
                return Err(e);
            }
        };
        if !done {
            self.restoring.push_front(r);
            return Ok(true);
        }
        self.start_processing(r.id, r.task, consumer)?;
        Ok(self.is_restoring())
    }

    fn start_processing(
        &mut self,
        id: TaskId,
        mut task: StreamTask,
        consumer: &BaseConsumer,
    ) -> Result<()> {
        task.initialize()?;
        let parts = self.layout.task_partitions(id);
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in &parts {
            tpl.add_partition_offset(topic, *p, Offset::Stored)
                .map_err(|e| {
                    StreamsError::kafka(format!("assigning `{topic}` partition {p}"), e)
                })?;
            self.by_partition
                .insert((Arc::from(topic.as_str()), *p), id);
        }
        self.last_partition = None;
        consumer
            .incremental_assign(&tpl)
            .map_err(|e| StreamsError::kafka(format!("assigning {} partitions", tpl.count()), e))?;
        if parts.len() > 1 {
            await_unfetched(&mut task, &parts, consumer);
        }
        tracing::info!(task = %id, "task restored: processing");
        self.active.insert(id, task);
        self.publish_tasks();
        Ok(())
    }

    /// The membership was lost: another member may run these tasks already, so nothing is
    /// committed; every task closes and every partition is released.
    pub(super) fn lose_all(&mut self, consumer: &BaseConsumer) {
        tracing::warn!(
            tasks = self.active.len(),
            "membership lost: closing every task without committing"
        );
        self.close_all();
        if let Err(e) = consumer.unassign() {
            tracing::warn!(error = %e, "unassigning after a lost membership");
        }
        if let Some(c) = &self.restore_consumer {
            let _ = c.unassign();
        }
        self.publish_tasks();
    }

    /// Brings every standby up to its changelogs' ends and checkpoints it. Not while active
    /// tasks restore: they hold the restore consumer, and come first.
    pub(super) fn update_standbys(&mut self) -> Result<()> {
        if self.is_restoring() || self.standby.is_empty() {
            return Ok(());
        }
        if self.restore_consumer.is_none() {
            self.restore_consumer = Some(restore::consumer(&self.config, &self.client_id)?);
        }
        let ids: Vec<TaskId> = self.standby.keys().copied().collect();
        for id in ids {
            let mut t = self.standby.remove(&id).expect("listed above");
            let consumer = self.restore_consumer.as_ref().expect("created above");
            let r = restore::update_standby(consumer, self.config.task_timeout, &mut t)
                .and_then(|()| t.checkpoint(&HashMap::new()));
            self.standby.insert(id, t);
            r?;
        }
        Ok(())
    }
}

/// Makes `task` wait for the records its partitions hold on the broker beyond the group's
/// committed offsets (Kafka Streams' KIP-695), so that its first records are picked in
/// timestamp order across all of them. Best effort: a failed lookup only logs.
fn await_unfetched(task: &mut StreamTask, parts: &[(String, i32)], consumer: &BaseConsumer) {
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in parts {
        tpl.add_partition(topic, *p);
    }
    let committed = match consumer.committed_offsets(tpl, FETCH_LOOKUP_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(task = %task.id, error = %e, "no committed offsets: not waiting for fetches");
            return;
        }
    };
    for (topic, p) in parts {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, *p, FETCH_LOOKUP_TIMEOUT) else {
            continue;
        };
        let start = match committed.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => low,
        };
        if start < high {
            task.await_fetch(topic, *p, high, FETCH_WAIT_MAX_MS);
        }
    }
}
