//! `TaskManager`: the tasks of one stream thread, from assignment to commit.
//!
//! It routes polled records to their tasks, picks which task processes next, commits, and turns
//! an assignment into tasks (resumed, closed, or created and restored).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::collector::KafkaCollector;
use super::group::{CommitConnection, CommitOutcome, GroupShared};
use super::restore;
use super::topics::Layout;
use super::{Shared, ThreadMetrics};
use crate::assignment::OwnedTasks;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::record::RecordBytes;
use crate::task::{StreamTask, TaskEnv, TaskMetrics};
use crate::task_id::TaskId;
use crate::topology::Topology;

/// Most records a task processes before the thread looks again for the task whose next
/// record is the oldest.
const PROCESS_SLICE: usize = 256;
/// How far past the runner-up's next timestamp a slice may go: the disorder between tasks this
/// thread accepts, so that tasks at the same pace are not switched after every record.
const SLICE_SLACK_MS: i64 = 1_000;
/// Timeout of the committed-offset and watermark lookups made when tasks are assigned.
const FETCH_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a new task waits for records known to be on the broker before it processes
/// what it has (a bound against a partition that cannot be fetched).
const FETCH_WAIT_MAX_MS: i64 = 10_000;

/// The tasks of one stream thread. Fields are visible to `thread`, which builds it.
pub(super) struct TaskManager {
    pub(super) config: Arc<ResolvedConfig>,
    pub(super) topology: Arc<Topology>,
    pub(super) layout: Arc<Layout>,
    pub(super) env: TaskEnv,
    pub(super) collector: Arc<KafkaCollector>,
    pub(super) active: BTreeMap<TaskId, StreamTask>,
    /// Standby tasks (warm-ups included): stores kept close to their changelogs' ends, so that
    /// the task restores only the tail when it becomes active here.
    pub(super) standby: BTreeMap<TaskId, StreamTask>,
    /// The group member's state; commits go through it with the member's generation.
    pub(super) group: Arc<GroupShared>,
    /// This thread's connection to the group coordinator, for commits.
    pub(super) commit_conn: CommitConnection,
    pub(super) by_partition: HashMap<(Arc<str>, i32), TaskId>,
    /// The partition and task of the last consumed record: records arrive in runs from one
    /// partition, and this spares two hash lookups per record. Cleared with `by_partition`.
    pub(super) last_partition: Option<(Arc<str>, i32, TaskId)>,
    /// Interned topic names, so that a record does not allocate its topic.
    pub(super) topics: HashMap<String, Arc<str>>,
    pub(super) closed_totals: TaskMetrics,
    pub(super) commits: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) client_id: String,
    /// Reads changelogs when tasks are created; made on first use and kept.
    pub(super) restore_consumer: Option<BaseConsumer>,
    /// Deletes repartition records once their offsets are committed.
    /// `None` once handed to a background thread at shutdown.
    pub(super) admin: Option<AdminClient<DefaultClientContext>>,
    pub(super) last_purge: Instant,
}

impl TaskManager {
    pub(super) fn buffered(&self) -> usize {
        self.active.values().map(StreamTask::buffered).sum()
    }

    /// Whether a task has nothing queued (more polling may bring its records).
    pub(super) fn has_idle_task(&self) -> bool {
        self.active.len() > 1 && self.active.values().any(|t| t.buffered() == 0)
    }

    /// Decodes a consumed record straight from the consumer's buffer into its task's queue.
    pub(super) fn add_message(&mut self, m: &BorrowedMessage<'_>) -> Result<()> {
        let id = match &self.last_partition {
            Some((topic, p, id)) if *p == m.partition() && **topic == *m.topic() => *id,
            _ => {
                let topic = match self.topics.get(m.topic()) {
                    Some(t) => t.clone(),
                    None => {
                        let t: Arc<str> = m.topic().into();
                        self.topics.insert(m.topic().to_string(), t.clone());
                        t
                    }
                };
                let Some(id) = self
                    .by_partition
                    .get(&(topic.clone(), m.partition()))
                    .copied()
                else {
                    // Not ours (any more): it was not processed, so its offset is not committed
                    // here.
                    tracing::debug!(
                        topic = m.topic(),
                        partition = m.partition(),
                        "record for a partition without a task"
                    );
                    return Ok(());
                };
                self.last_partition = Some((topic, m.partition(), id));
                id
            }
        };
        let Some(task) = self.active.get_mut(&id) else {
            return Ok(());
        };
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        task.add_record(RecordBytes {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis().unwrap_or(-1),
            key: m.key(),
            value: m.payload(),
            headers,
        })
    }

    /// Processes the queued records of every task, the task with the smallest next timestamp
    /// first, a slice at a time: a slice stops a second past the runner-up's next timestamp
    /// (`SLICE_SLACK_MS`). And no task runs past the point up to which every task of its
    /// sub-topology that has records queued knows its input (the smallest of their largest
    /// queued timestamps): the rest waits for the next poll, which refills the tasks that ran
    /// dry; a task with nothing queued holds no one back. Records this thread writes to repartition topics then stay close to
    /// event-time order although the consumer hands out one partition's records after
    /// another: task by task, a replay wrote minutes (or hours) of one partition, then jumped
    /// back for the next, and the windows downstream dropped the records of the jump as late.
    pub(super) fn process(&mut self) -> Result<usize> {
        if self.active.len() == 1 {
            let t = self.active.values_mut().next().expect("one task");
            return t.process(usize::MAX);
        }
        let mut horizon: HashMap<u32, i64> = HashMap::new();
        for (id, t) in &self.active {
            if let Some(until) = t.queued_until() {
                let h = horizon.entry(id.subtopology).or_insert(i64::MAX);
                *h = (*h).min(until);
            }
        }
        // How far each task (in `active`'s order) may run this turn; `None` once it is done for
        // the turn (nothing left up to its limit, or waiting for a fetch).
        let mut limits: Vec<Option<i64>> = self
            .active
            .keys()
            .map(|id| Some(horizon.get(&id.subtopology).copied().unwrap_or(i64::MAX)))
            .collect();
        let mut n = 0;
        loop {
            let mut first: Option<(i64, usize)> = None;
            let mut runner_up = i64::MAX;
            for (i, t) in self.active.values().enumerate() {
                let (Some(limit), Some(ts)) = (limits[i], t.head_timestamp()) else {
                    continue;
                };
                if ts > limit {
                    continue;
                }
                match first {
                    Some((best, _)) if ts >= best => runner_up = runner_up.min(ts),
                    _ => {
                        if let Some((best, _)) = first {
                            runner_up = runner_up.min(best);
                        }
                        first = Some((ts, i));
                    }
                }
            }
            let Some((_, i)) = first else {
                return Ok(n);
            };
            let until = runner_up
                .saturating_add(SLICE_SLACK_MS)
                .min(limits[i].unwrap_or(i64::MAX));
            let task = self.active.values_mut().nth(i).expect("picked from active");
            let processed = task.process_until(PROCESS_SLICE, until)?;
            if processed == 0 {
                limits[i] = None;
            }
            n += processed;
        }
    }

    pub(super) fn punctuate(&mut self) -> Result<()> {
        for t in self.active.values_mut() {
            t.punctuate_wall_clock()?;
        }
        Ok(())
    }

    /// At-least-once commit: flush caches and stores, wait for every produced record to be
    /// acknowledged, write checkpoints, then commit input offsets with the member's generation.
    pub(super) fn commit(&mut self) -> Result<CommitOutcome> {
        if self.active.is_empty() {
            return Ok(CommitOutcome::Skipped);
        }
        let started = Instant::now();
        for t in self.active.values_mut() {
            t.flush()?;
        }
        self.collector.flush()?;
        let acked = self.collector.take_acked();
        let mut offsets = Vec::new();
        for t in self.active.values_mut() {
            t.checkpoint(&acked)?;
            offsets.extend(t.committable_offsets());
        }
        let outcome = self.group.commit(&mut self.commit_conn, &offsets)?;
        if outcome == CommitOutcome::Committed {
            self.commits += 1;
            if self.last_purge.elapsed() >= self.config.repartition_purge_interval {
                self.purge_repartition_topics(&offsets);
                self.last_purge = Instant::now();
            }
        }
        tracing::debug!(
            tasks = self.active.len(),
            partitions = offsets.len(),
            ?outcome,
            took_ms = started.elapsed().as_millis() as u64,
            "committed"
        );
        Ok(outcome)
    }

    /// Deletes the repartition records below the offsets just committed, as Kafka Streams does:
    /// repartition topics keep records forever otherwise (retention -1). A failure is logged and
    /// retried at the next purge; it never fails processing.
    fn purge_repartition_topics(&self, committed: &[(String, i32, i64)]) {
        let prefix = format!("{}-", self.config.application_id);
        let mut tpl = TopicPartitionList::new();
        for (topic, p, o) in committed {
            if topic.starts_with(&prefix) && topic.ends_with("-repartition") {
                let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*o));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let Some(admin) = &self.admin else {
            return;
        };
        match futures::executor::block_on(admin.delete_records(&tpl, &opts)) {
            Ok(_) => tracing::debug!(partitions = tpl.count(), "purged repartition records"),
            Err(e) => tracing::warn!(error = %e, "purging repartition records failed"),
        }
    }

    fn close_task(&mut self, t: StreamTask) {
        tracing::info!(task = %t.id, "closing task");
        self.closed_totals.processed += t.metrics.processed;
        self.closed_totals.dropped += t.metrics.dropped;
        self.closed_totals.restored += t.metrics.restored;
        t.close();
    }

    /// Closes every task (active and standby); used at shutdown after the final commit.
    pub(super) fn close_all(&mut self) {
        let all: Vec<StreamTask> = std::mem::take(&mut self.active)
            .into_values()
            .chain(std::mem::take(&mut self.standby).into_values())
            .collect();
        for t in all {
            self.close_task(t);
        }
        self.by_partition.clear();
        self.last_partition = None;
    }

    /// What this thread holds, for the member's next subscription.
    pub(super) fn owned(&self) -> OwnedTasks {
        OwnedTasks {
            active: self.active.keys().copied().collect(),
            standby: self.standby.keys().copied().collect(),
        }
    }

    /// The first half of applying an assignment: commits, then closes the active tasks not in
    /// `active` and stops reading their partitions. Tasks that stay keep their queues and their
    /// consumer positions: nothing is read twice. Standbys no longer wanted are closed too.
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

    /// The second half: creates the new active tasks (a standby of the task is promoted and
    /// restores only the tail of its changelogs), starts reading their partitions from the
    /// committed offsets, and creates the new standbys.
    pub(super) fn add(
        &mut self,
        active: &BTreeSet<TaskId>,
        standby: &BTreeSet<TaskId>,
        consumer: &BaseConsumer,
    ) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        let mut created = Vec::new();
        let new: Vec<TaskId> = active
            .iter()
            .filter(|id| !self.active.contains_key(id))
            .copied()
            .collect();
        for id in &new {
            let mut task = match self.standby.remove(id) {
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
            self.restore(&mut task)?;
            task.initialize()?;
            let parts = self.layout.task_partitions(*id);
            for (topic, p) in &parts {
                tpl.add_partition_offset(topic, *p, Offset::Stored)
                    .map_err(|e| {
                        StreamsError::kafka(format!("assigning `{topic}` partition {p}"), e)
                    })?;
                self.by_partition
                    .insert((Arc::from(topic.as_str()), *p), *id);
            }
            self.last_partition = None;
            self.active.insert(*id, task);
            created.push((*id, parts));
        }
        if tpl.count() > 0 {
            consumer.incremental_assign(&tpl).map_err(|e| {
                StreamsError::kafka(format!("assigning {} partitions", tpl.count()), e)
            })?;
        }
        for (id, parts) in created {
            if parts.len() > 1 {
                let mut task = self.active.remove(&id).expect("inserted above");
                self.await_unfetched(&mut task, &parts, consumer);
                self.active.insert(id, task);
            }
        }
        let new: Vec<TaskId> = standby
            .iter()
            .filter(|id| !self.standby.contains_key(id) && !self.active.contains_key(id))
            .copied()
            .collect();
        for id in &new {
            tracing::info!(task = %id, "creating standby task");
            let sub = &self.layout.subtopologies[id.subtopology as usize];
            let mut task = StreamTask::new(self.topology.clone(), sub, id.partition, &self.env)?;
            self.restore_standby(&mut task)?;
            task.checkpoint(&HashMap::new())?;
            self.standby.insert(*id, task);
        }
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
        self.publish_tasks();
    }

    /// Brings every standby up to its changelogs' ends and checkpoints it.
    pub(super) fn update_standbys(&mut self) -> Result<()> {
        let ids: Vec<TaskId> = self.standby.keys().copied().collect();
        for id in ids {
            let mut t = self.standby.remove(&id).expect("listed above");
            let r = self
                .restore_standby(&mut t)
                .and_then(|()| t.checkpoint(&HashMap::new()));
            self.standby.insert(id, t);
            r?;
        }
        Ok(())
    }

    /// Makes `task` wait for the records its partitions hold on the broker beyond the group's
    /// committed offsets (Kafka Streams' KIP-695), so that its first records are picked in
    /// timestamp order across all of them. Best effort: a failed lookup only logs.
    fn await_unfetched(
        &mut self,
        task: &mut StreamTask,
        parts: &[(String, i32)],
        consumer: &BaseConsumer,
    ) {
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

    /// Replays each changelog of `task` from its checkpoint (or the beginning) to its end, with
    /// the restore consumer (made on first use and kept).
    fn restore(&mut self, task: &mut StreamTask) -> Result<()> {
        let listener = self.shared.restore_listener();
        self.restore_with(task, listener)
    }

    /// Standby updates do not tell the restore listener: they are not restorations of a task
    /// about to run (Kafka Streams has a separate standby listener for them).
    fn restore_standby(&mut self, task: &mut StreamTask) -> Result<()> {
        self.restore_with(task, None)
    }

    fn restore_with(
        &mut self,
        task: &mut StreamTask,
        listener: Option<Arc<dyn super::StateRestoreListener>>,
    ) -> Result<()> {
        let changelogs = task.changelogs();
        if changelogs.is_empty() {
            return Ok(());
        }
        if self.restore_consumer.is_none() {
            self.restore_consumer = Some(restore::consumer(&self.config, &self.client_id)?);
        }
        let consumer = self.restore_consumer.as_ref().expect("created above");
        let timeout = self.config.task_timeout;
        restore::changelogs(consumer, changelogs, listener, timeout, task)
    }

    fn totals(&self) -> TaskMetrics {
        self.active
            .values()
            .chain(self.standby.values())
            .fold(self.closed_totals, |mut m, t| {
                m.processed += t.metrics.processed;
                m.dropped += t.metrics.dropped;
                m.restored += t.metrics.restored;
                m
            })
    }

    pub(super) fn publish(&self, index: usize) {
        self.shared.publish(
            index,
            ThreadMetrics {
                tasks: self.totals(),
                commits: self.commits,
            },
            self.active.keys().copied().collect(),
            self.standby.keys().copied().collect(),
        );
    }

    fn publish_tasks(&self) {
        let index = self
            .client_id
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(0, |n| n - 1);
        self.publish(index);
    }
}
