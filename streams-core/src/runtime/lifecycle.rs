//! How a stream thread's tasks come and go: an assignment is applied in two halves (revoke,
//! then add), new active tasks restore in slices between polls, standbys catch up, and a lost
//! membership closes everything without committing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::client::ThreadClient;
use super::group::CommitOutcome;
use super::restore::{self, RestoreJob};
use super::task_manager::TaskManager;
use crate::assignment::OwnedTasks;
use crate::error::{Result, StreamsError};
use crate::query::Role;
use crate::task::StreamTask;
use crate::task_id::TaskId;

/// How long one restoration slice reads before the thread goes back to its loop.
pub(super) const RESTORE_SLICE: Duration = Duration::from_millis(200);

/// Where a task is in its life on this thread; every legal move is in [`Self::can_become`].
/// There is no Suspended: under cooperative rebalancing a task kept across a rebalance keeps
/// running, and a revoked one is committed and closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// Made: stores open, nothing read yet.
    Created,
    /// An active task replaying its changelogs, a slice per loop turn.
    Restoring,
    /// Processing its partitions.
    Running,
    /// A copy of another instance's task, kept near its changelogs' ends.
    Standby,
    /// Stores closed; the task is gone from this thread.
    Closed,
}

impl TaskState {
    /// Whether `self -> next` is legal. All transitions are listed here.
    pub(crate) fn can_become(self, next: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, next),
            (Created, Restoring)
                | (Created, Standby)
                | (Created, Closed)
                | (Restoring, Running)
                | (Restoring, Closed)
                | (Running, Closed)
                | (Standby, Restoring)
                | (Standby, Closed)
        )
    }
}

/// An active task whose stores are being restored before it processes.
pub(super) struct Restoring {
    pub(super) id: TaskId,
    pub(super) task: StreamTask,
    pub(super) job: RestoreJob,
}

impl TaskManager {
    /// Moves task `id` to `next`, refusing an illegal move (a bug, reported as such).
    pub(super) fn become_(&mut self, id: TaskId, next: TaskState) -> Result<()> {
        let prev = self.states.get(&id).copied();
        let legal = match prev {
            None => next == TaskState::Created,
            Some(p) => p.can_become(next),
        };
        if !legal {
            return Err(StreamsError::illegal_state(
                format!("task {id}"),
                format!("task {id}: {prev:?} cannot become {next:?}"),
            ));
        }
        tracing::debug!(task = %id, from = ?prev, to = ?next, "task state");
        // Queries follow the task: a closing task's stores leave before they close.
        let hosted = &self.shared.hosted;
        let now = self.shared.now_ms();
        match next {
            TaskState::Created => self.sensors.task_created.record(1.0, now),
            TaskState::Restoring => hosted.set_role(id, Role::Restoring),
            TaskState::Running => hosted.set_role(id, Role::Running),
            TaskState::Standby => hosted.set_role(id, Role::Standby),
            TaskState::Closed => {
                hosted.remove(id);
                self.sensors.task_closed.record(1.0, now);
            }
        }
        if next == TaskState::Closed {
            self.states.remove(&id);
        } else {
            self.states.insert(id, next);
        }
        Ok(())
    }

    pub(super) fn close_task(&mut self, t: StreamTask) {
        tracing::info!(task = %t.id, "closing task");
        self.standby_lags.remove(&t.id);
        if let Err(e) = self.become_(t.id, TaskState::Closed) {
            tracing::error!(error = %e, "closing a task");
        }
        self.closed_totals.processed += t.metrics.processed;
        self.closed_totals.dropped += t.metrics.dropped;
        self.closed_totals.restored += t.metrics.restored;
        self.closed_totals.enforced += t.metrics.enforced;
        t.close();
    }

    /// Closes every task (active, restoring and standby); at shutdown after the final commit.
    pub(super) fn close_all(&mut self) {
        self.close_active();
        let standby: Vec<StreamTask> = std::mem::take(&mut self.standby).into_values().collect();
        for t in standby {
            self.close_task(t);
        }
    }

    /// Closes the active and restoring tasks and forgets their partitions.
    fn close_active(&mut self) {
        let tasks: Vec<StreamTask> = std::mem::take(&mut self.active)
            .into_values()
            .chain(
                std::mem::take(&mut self.restoring)
                    .into_iter()
                    .map(|r| r.task),
            )
            .collect();
        for t in tasks {
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
        client: &mut dyn ThreadClient,
    ) -> Result<()> {
        let revoked: Vec<TaskId> = self
            .active
            .keys()
            .filter(|id| !active.contains(id))
            .copied()
            .collect();
        if !revoked.is_empty() {
            tracing::info!(tasks = ?revoked, "revoking tasks: committing, then closing them");
            let committed = self.commit(client)? == CommitOutcome::Committed;
            let mut partitions = Vec::new();
            for id in revoked {
                if let Some(mut t) = self.active.remove(&id) {
                    if committed && self.config.exactly_once {
                        t.write_checkpoint()?;
                    }
                    for (topic, p) in self.layout.task_partitions(id) {
                        self.by_partition.remove(&(Arc::from(topic.as_str()), p));
                        partitions.push((topic, p));
                    }
                    self.close_task(t);
                }
            }
            self.last_partition = None;
            client.unassign(&partitions)?;
        }
        let restoring = std::mem::take(&mut self.restoring);
        for r in restoring {
            if active.contains(&r.id) {
                self.restoring.push_back(r);
            } else {
                tracing::info!(task = %r.id, "revoked while restoring");
                self.close_task(r.task);
                // The restore consumer may still hold one of its changelogs.
                if let Err(e) = client.restore_unassign() {
                    tracing::warn!(error = %e, "releasing a revoked task's changelog");
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
                    self.standby_lags.remove(&id);
                    t
                }
                None => {
                    tracing::info!(task = %id, "creating task");
                    let sub = &self.layout.subtopologies[id.subtopology as usize];
                    let t = StreamTask::new(self.topology.clone(), sub, id.partition, &self.env)?;
                    self.become_(id, TaskState::Created)?;
                    self.shared
                        .hosted
                        .add(id, self.index, Role::Restoring, t.stores());
                    t
                }
            };
            self.become_(id, TaskState::Restoring)?;
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
            self.become_(id, TaskState::Created)?;
            self.shared
                .hosted
                .add(id, self.index, Role::Standby, task.stores());
            self.become_(id, TaskState::Standby)?;
            // Filled by the next standby update, between polls.
            self.standby.insert(id, task);
        }
        self.publish_tasks();
        Ok(())
    }

    /// Restores the oldest restoring task for one slice; once it is restored, it starts
    /// processing: initialized, and its partitions read from the committed offsets. Returns
    /// whether tasks are still restoring.
    pub(super) fn restore_slice(&mut self, client: &mut dyn ThreadClient) -> Result<bool> {
        let Some(mut r) = self.restoring.pop_front() else {
            return Ok(false);
        };
        let done = match r.job.step(client, &mut r.task, self.restore_slice) {
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
        self.start_processing(r.id, r.task, client)?;
        Ok(self.is_restoring())
    }

    fn start_processing(
        &mut self,
        id: TaskId,
        mut task: StreamTask,
        client: &mut dyn ThreadClient,
    ) -> Result<()> {
        if self.config.exactly_once {
            task.delete_checkpoint_file()?;
        }
        task.initialize()?;
        self.become_(id, TaskState::Running)?;
        let parts = self.layout.task_partitions(id);
        for (topic, p) in &parts {
            self.by_partition
                .insert((Arc::from(topic.as_str()), *p), id);
        }
        self.last_partition = None;
        client.assign(&parts)?;
        if parts.len() > 1 {
            // Kafka Streams' KIP-695: the task picks records in timestamp order across its
            // partitions once it knows what each has left to fetch; where it starts and what the
            // partitions hold now says so before the first fetch comes back.
            for (topic, p, start, high) in client.positions(&parts) {
                task.note_position(&topic, p, Some(start), Some(high));
            }
        }
        tracing::info!(task = %id, "task restored: processing");
        self.active.insert(id, task);
        self.publish_tasks();
        Ok(())
    }

    /// The membership was lost: another member may run these tasks already, so nothing is
    /// committed; every task closes and every partition is released.
    pub(super) fn lose_all(&mut self, client: &mut dyn ThreadClient) {
        tracing::warn!(
            tasks = self.active.len(),
            "membership lost: closing every task without committing"
        );
        self.close_all();
        client.unassign_all();
        // Under exactly-once, what the lost tasks sent must never commit.
        if let Err(e) = client.abort_transaction() {
            tracing::warn!(error = %e, "aborting the lost tasks' transaction");
        }
        self.publish_tasks();
    }

    /// Exactly-once, after an aborted transaction: the active tasks' stores hold writes the
    /// cluster threw away. Each is closed without a checkpoint and created again, which wipes
    /// its state and restores it from the changelogs' committed records; its input is read
    /// again from the committed offsets (Kafka Streams does the same with a corrupted task).
    pub(super) fn revive_all(&mut self, client: &mut dyn ThreadClient) -> Result<()> {
        let active: BTreeSet<TaskId> = self
            .active
            .keys()
            .copied()
            .chain(self.restoring.iter().map(|r| r.id))
            .collect();
        tracing::warn!(tasks = ?active, "rebuilding the active tasks from their changelogs");
        self.close_active();
        let partitions: Vec<(String, i32)> = active
            .iter()
            .flat_map(|id| self.layout.task_partitions(*id))
            .collect();
        client.unassign(&partitions)?;
        if let Err(e) = client.restore_unassign() {
            tracing::debug!(error = %e, "releasing the restore consumer");
        }
        let standby: BTreeSet<TaskId> = self.standby.keys().copied().collect();
        self.add(&active, &standby)
    }

    /// Writes the checkpoints of the active tasks (after a commit, before they close cleanly:
    /// under exactly-once they keep none while running).
    pub(super) fn checkpoint_active(&mut self) -> Result<()> {
        for t in self.active.values_mut() {
            t.write_checkpoint()?;
        }
        Ok(())
    }

    /// Brings the standbys towards their changelogs' ends for about one restoration slice, and
    /// checkpoints each one updated if `checkpoint` (at commits). A standby far behind (a new
    /// one, or one whose active wrote much) takes several calls: one that read everything at
    /// once could keep the thread from polling past `max.poll.interval.ms`. The next call starts
    /// with the standby after the one cut short, so that each one is served in turn. Not while
    /// active tasks restore: they hold the restore consumer, and come first.
    pub(super) fn update_standbys(
        &mut self,
        client: &mut dyn ThreadClient,
        checkpoint: bool,
    ) -> Result<()> {
        if self.is_restoring() || self.standby.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let first = self.standby_behind.take();
        let mut ids: Vec<TaskId> = self.standby.keys().copied().collect();
        if let Some(at) = first.and_then(|f| ids.iter().position(|id| *id == f)) {
            ids.rotate_left(at);
        }
        for (i, &id) in ids.iter().enumerate() {
            let budget = self.restore_slice.saturating_sub(started.elapsed());
            if budget.is_zero() {
                // Out of time before this one was looked at: it goes first next time.
                self.standby_behind = Some(id);
                break;
            }
            let mut t = self.standby.remove(&id).expect("listed above");
            let update = restore::update_standby(client, self.config.task_timeout, &mut t, budget);
            let r = update.and_then(|update| {
                self.standby_lags.insert(id, update.lag);
                if !update.caught_up {
                    // The others come first next time, then this one goes on.
                    self.standby_behind = Some(ids[(i + 1) % ids.len()]);
                }
                if checkpoint {
                    t.checkpoint(&HashMap::new())
                } else {
                    Ok(())
                }
            });
            self.standby.insert(id, t);
            r?;
            if self.standby_behind.is_some() {
                break;
            }
        }
        Ok(())
    }
}
