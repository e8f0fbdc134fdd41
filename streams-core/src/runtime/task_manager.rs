//! `TaskManager`: the tasks of one stream thread, from assignment to commit.
//!
//! It routes polled records to their tasks, picks which task processes next, commits, and turns
//! an assignment into tasks (resumed, closed, or created and restored).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::client::ThreadClient;
use super::group::CommitOutcome;
use super::lifecycle::{Restoring, TaskState};
use super::topics::Layout;
use super::{Shared, ThreadDetails, ThreadMetrics};
use crate::config::ResolvedConfig;
use crate::error::Result;
use crate::metrics::{TaskSensors, ThreadSensors};
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

/// The tasks of one stream thread. Fields are visible to `thread`, which builds it.
pub(super) struct TaskManager {
    pub(super) config: Arc<ResolvedConfig>,
    pub(super) topology: Arc<Topology>,
    pub(super) layout: Arc<Layout>,
    pub(super) env: TaskEnv,
    pub(super) active: BTreeMap<TaskId, StreamTask>,
    /// Active tasks whose stores are being restored, one slice per loop turn, oldest first:
    /// they process once restored.
    pub(super) restoring: VecDeque<Restoring>,
    /// Standby tasks (warm-ups included): stores kept close to their changelogs' ends, so that
    /// the task restores only the tail when it becomes active here.
    pub(super) standby: BTreeMap<TaskId, StreamTask>,
    /// Per standby task, the changelog records its last update found unread.
    pub(super) standby_lags: BTreeMap<TaskId, u64>,
    /// Set when a standby's update was cut short at the end of a slice (or not reached): the
    /// standby the next update starts with, which comes soon, as if the thread were restoring.
    pub(super) standby_behind: Option<TaskId>,
    /// When positions were last looked up for the lag metric (see `note_high_watermarks`).
    pub(super) last_position_lookup: Option<Instant>,
    /// Every task's state on this thread (closed ones are gone).
    pub(super) states: BTreeMap<TaskId, TaskState>,
    /// How long one restoration slice reads (tests shorten it).
    pub(super) restore_slice: Duration,
    pub(super) by_partition: HashMap<(Arc<str>, i32), TaskId>,
    /// The partition and task of the last consumed record: records arrive in runs from one
    /// partition, and this spares two hash lookups per record. Cleared with `by_partition`.
    pub(super) last_partition: Option<(Arc<str>, i32, TaskId)>,
    /// Interned topic names, so that a record does not allocate its topic.
    pub(super) topics: HashMap<String, Arc<str>>,
    pub(super) closed_totals: TaskMetrics,
    pub(super) commits: u64,
    /// The thread's own metrics (Kafka Streams' `stream-thread-metrics`).
    pub(super) sensors: ThreadSensors,
    /// Per task: its counts at the last publication, and its metrics.
    pub(super) task_sensors: BTreeMap<TaskId, (TaskMetrics, TaskSensors)>,
    pub(super) shared: Arc<Shared>,
    /// The stream thread's index (0-based), under which it publishes its tasks and metrics.
    pub(super) index: usize,
    /// Deletes repartition records once their offsets are committed.
    /// `None` once handed to a background thread at shutdown.
    pub(super) admin: Option<AdminClient<DefaultClientContext>>,
    pub(super) last_purge: Instant,
    /// When thread 0 last deleted the state of tasks no longer run here.
    pub(super) last_cleanup: Instant,
    /// Input partitions not fetched while their queues are full
    /// (`buffered.records.per.partition`).
    pub(super) paused: BTreeSet<(Arc<str>, i32)>,
    /// Per task and node: the count last recorded, the node's processing sensor and, for a
    /// sink, its end-to-end latency sensor.
    pub(super) node_sensors: BTreeMap<(TaskId, String), NodeSensors>,
    /// The finer metrics last published, and when.
    pub(super) details: (Arc<ThreadDetails>, Option<Instant>),
}

/// A node's count last recorded, its processing sensor, and a sink's end-to-end latency.
pub(super) type NodeSensors = (u64, crate::metrics::Sensor, Option<crate::metrics::Sensor>);

/// How far past `buffered.records.per.partition` a partition's queue may run before the
/// partition is paused (see [`TaskManager::apply_backpressure`]).
const PAUSE_FACTOR: usize = 4;

/// How often the finer metrics (per node, per partition) are brought up to date.
const DETAILS_INTERVAL: Duration = Duration::from_secs(1);
/// How often partitions with no known position have it looked up, at most.
const POSITION_LOOKUP_INTERVAL: Duration = Duration::from_secs(10);

impl TaskManager {
    /// Gives each task of several partitions their high watermarks as the consumer last saw
    /// them, for KIP-695's rule (see `StreamTask::note_position`).
    /// Every partition's when the finer metrics are due (the consumer's lag is one); then a
    /// partition that no record came from yet has where reading starts looked up (once), so
    /// that its lag is known too, as Kafka's consumer knows it after its first fetch.
    pub(super) fn note_high_watermarks(&mut self, client: &mut dyn ThreadClient) {
        let all = self
            .details
            .1
            .is_none_or(|at| at.elapsed() >= DETAILS_INTERVAL);
        let lookup_due = self
            .last_position_lookup
            .is_none_or(|at| at.elapsed() >= POSITION_LOOKUP_INTERVAL);
        if all && lookup_due {
            let unpositioned: Vec<(String, i32)> = self
                .active
                .values()
                .flat_map(|t| t.unpositioned().map(|(topic, p)| (topic.to_string(), p)))
                .collect();
            if !unpositioned.is_empty() {
                // Network lookups: not again for a while if some fail (a broker away).
                self.last_position_lookup = Some(Instant::now());
                for (topic, p, start, high) in client.positions(&unpositioned) {
                    let id = self.by_partition.get(&(Arc::from(topic.as_str()), p));
                    if let Some(t) = id.and_then(|id| self.active.get_mut(id)) {
                        t.note_position(&topic, p, Some(start), Some(high));
                    }
                }
            }
        }
        for t in self.active.values_mut() {
            let parts: Vec<(Arc<str>, i32)> = t
                .queued_per_partition()
                .map(|(topic, p, _)| (topic.clone(), p))
                .collect();
            if parts.len() < 2 && !all {
                continue;
            }
            for (topic, p) in parts {
                let high = client.high_watermark(&topic, p);
                t.note_position(&topic, p, None, high);
            }
        }
    }

    /// `buffered.records.per.partition`, second line: the poll loop takes no more records once
    /// a partition holds more than the limit (see the stream thread), and this pauses fetching
    /// a partition that still ran to `PAUSE_FACTOR` times the limit (polling went on to feed
    /// a task with nothing queued), resuming it once processing brought it back to the limit.
    /// Not at the limit itself: librdkafka drops a paused partition's prefetched records and
    /// fetches them again on resume, which, pausing at every full queue, cost a quarter more
    /// CPU on the passthrough benchmark.
    pub(super) fn apply_backpressure(&mut self, client: &mut dyn ThreadClient) -> Result<()> {
        let limit = self.config.buffered_records_per_partition;
        let (mut pause, mut resume) = (Vec::new(), Vec::new());
        // Once per loop turn: no allocation unless something changes.
        for t in self.active.values() {
            for (topic, p, n) in t.queued_per_partition() {
                if n > limit.saturating_mul(PAUSE_FACTOR) {
                    pause.push((topic.clone(), p));
                } else if n <= limit && !self.paused.is_empty() {
                    resume.push((topic.clone(), p));
                }
            }
        }
        pause.retain(|tp| !self.paused.contains(tp));
        resume.retain(|tp| self.paused.contains(tp));
        // A paused partition whose task is gone (no longer mapped to a running task): fetch it
        // again if it comes back.
        let gone: Vec<(Arc<str>, i32)> = self
            .paused
            .iter()
            .filter(|tp| !self.by_partition.contains_key(*tp))
            .cloned()
            .collect();
        for tp in gone {
            self.paused.remove(&tp);
            let _ = client.pause(&[(tp.0.to_string(), tp.1)], false);
        }
        let owned = |v: &[(Arc<str>, i32)]| -> Vec<(String, i32)> {
            v.iter().map(|(t, p)| (t.to_string(), *p)).collect()
        };
        if !pause.is_empty() {
            client.pause(&owned(&pause), true)?;
            tracing::debug!(partitions = ?pause, "paused full partitions");
            self.paused.extend(pause);
        }
        if !resume.is_empty() {
            client.pause(&owned(&resume), false)?;
            tracing::debug!(partitions = ?resume, "resumed partitions");
            for tp in &resume {
                self.paused.remove(tp);
            }
        }
        Ok(())
    }

    pub(super) fn buffered(&self) -> usize {
        self.active.values().map(StreamTask::buffered).sum()
    }

    /// Whether a task has nothing queued (more polling may bring its records).
    pub(super) fn has_idle_task(&self) -> bool {
        self.active.len() > 1 && self.active.values().any(|t| t.buffered() == 0)
    }

    /// Whether a task waits for the records of one of its partitions (KIP-695): polling must
    /// go on to reach them, past a full queue of another partition.
    pub(super) fn has_waiting_task(&self) -> bool {
        self.active.values().any(|t| t.waiting)
    }

    /// Decodes a consumed record straight from the consumer's buffer into its task's queue.
    /// Queues a consumed record (see [`Self::add_record`]); true when its partition now holds
    /// more than `buffered.records.per.partition`.
    pub(super) fn add_message(&mut self, m: &BorrowedMessage<'_>) -> Result<bool> {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        self.add_record(RecordBytes {
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp().to_millis().unwrap_or(-1),
            key: m.key(),
            value: m.payload(),
            headers,
        })
    }

    /// Queues a fetched record in the task of its partition. A record of a partition no task
    /// owns (any more) is dropped: it was not processed, so its offset is not committed here.
    /// True when the partition now holds more than `buffered.records.per.partition`.
    pub(super) fn add_record(&mut self, r: RecordBytes<'_>) -> Result<bool> {
        let id = match &self.last_partition {
            Some((topic, p, id)) if *p == r.partition && **topic == *r.topic => *id,
            _ => {
                let topic = match self.topics.get(r.topic) {
                    Some(t) => t.clone(),
                    None => {
                        let t: Arc<str> = r.topic.into();
                        self.topics.insert(r.topic.to_string(), t.clone());
                        t
                    }
                };
                let Some(id) = self
                    .by_partition
                    .get(&(topic.clone(), r.partition))
                    .copied()
                else {
                    tracing::debug!(
                        topic = r.topic,
                        partition = r.partition,
                        "record for a partition without a task"
                    );
                    return Ok(false);
                };
                self.last_partition = Some((topic, r.partition, id));
                id
            }
        };
        match self.active.get_mut(&id) {
            Some(task) => Ok(task.add_record(r)? > self.config.buffered_records_per_partition),
            None => Ok(false),
        }
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
        let n = self.process_in_order()?;
        if n > 0 {
            // Queries bounded by a position see what these records wrote.
            for (id, t) in &self.active {
                self.shared
                    .hosted
                    .set_position(*id, &t.committable_offsets());
            }
        }
        Ok(n)
    }

    fn process_in_order(&mut self) -> Result<usize> {
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

    /// Fires the wall-clock punctuations that are due; returns whether any fired.
    pub(super) fn punctuate(&mut self) -> Result<bool> {
        let mut fired = false;
        for t in self.active.values_mut() {
            fired |= t.punctuate_wall_clock()?;
        }
        Ok(fired)
    }

    /// The commit: flush caches and stores, wait for every produced record to be acknowledged,
    /// then commit input offsets with the member's generation. At-least-once writes checkpoints
    /// first; exactly-once commits the transaction with the offsets, and rebuilds the tasks
    /// from their changelogs if it was aborted.
    pub(super) fn commit(&mut self, client: &mut dyn ThreadClient) -> Result<CommitOutcome> {
        if self.active.is_empty() {
            return Ok(CommitOutcome::Skipped);
        }
        let started = Instant::now();
        for t in self.active.values_mut() {
            t.flush()?;
        }
        let acked = client.flush()?;
        let mut offsets = Vec::new();
        for t in self.active.values_mut() {
            if self.config.exactly_once {
                // No checkpoint file while running (see `StreamTask::delete_checkpoint_file`);
                // the offsets are written when the task closes cleanly.
                t.note_acked(&acked);
            } else {
                t.checkpoint(&acked)?;
            }
            offsets.extend(t.committable_offsets());
        }
        let outcome = client.commit(&offsets)?;
        if outcome == CommitOutcome::Aborted {
            self.revive_all(client)?;
        }
        if outcome == CommitOutcome::Committed {
            // Under exactly-once the stores take the transaction's writes only now that it
            // committed. A crash before this leaves them as of the previous commit, with that
            // commit's offsets: the restart restores this transaction from the changelog.
            for t in self.active.values_mut() {
                t.commit_stores()?;
            }
            self.commits += 1;
            if self.last_purge.elapsed() >= self.config.repartition_purge_interval {
                self.purge_repartition_topics(&offsets);
                self.last_purge = Instant::now();
            }
            // One thread cleans for the instance, as Kafka Streams' state cleaner does.
            if self.index == 0 && self.last_cleanup.elapsed() >= self.config.state_cleanup_delay {
                self.clean_unused_state();
                self.last_cleanup = Instant::now();
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

    /// Whether the store writes held back for the open transaction exceed
    /// `statestore.uncommitted.max.bytes`: then the thread commits early.
    pub(super) fn uncommitted_over_limit(&self) -> bool {
        self.config.exactly_once
            && self
                .active
                .values()
                .map(StreamTask::uncommitted_bytes)
                .sum::<usize>()
                > self.config.uncommitted_max_bytes
    }

    /// Deletes the state directories of tasks no thread here holds that have not changed for
    /// `state.cleanup.delay.ms`. A failure is logged; it never fails processing.
    fn clean_unused_state(&self) {
        let Some(dir) = &self.env.state_dir else {
            return;
        };
        if let Err(e) = dir.clean_unused(self.config.state_cleanup_delay) {
            tracing::warn!(error = %e, "deleting unused task state failed");
        }
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

    pub(super) fn totals(&self) -> TaskMetrics {
        self.active
            .values()
            .chain(self.standby.values())
            .chain(self.restoring.iter().map(|r| &r.task))
            .fold(self.closed_totals, |mut m, t| {
                m.processed += t.metrics.processed;
                m.dropped += t.metrics.dropped;
                m.restored += t.metrics.restored;
                m.enforced += t.metrics.enforced;
                m
            })
    }

    /// How far standby `id` has read its changelogs (0 if it is not a standby here).
    pub(super) fn standby_offset_sum(&self, id: TaskId) -> u64 {
        self.standby
            .get(&id)
            .map_or(0, StreamTask::changelog_offset_sum)
    }

    pub(super) fn publish(&mut self, index: usize) {
        self.record_task_metrics();
        if self
            .details
            .1
            .is_none_or(|at| at.elapsed() >= DETAILS_INTERVAL)
        {
            self.details = (Arc::new(self.collect_details()), Some(Instant::now()));
        }
        self.shared.publish(
            index,
            ThreadMetrics {
                tasks: self.totals(),
                commits: self.commits,
                sensors: self.sensors,
                task_sensors: self
                    .task_sensors
                    .iter()
                    .map(|(id, (_, s))| (*id, *s))
                    .collect(),
                details: self.details.0.clone(),
            },
            self.active.keys().copied().collect(),
            self.standby
                .keys()
                .map(|t| (*t, self.standby_lags.get(t).copied()))
                .collect(),
        );
    }

    pub(super) fn publish_tasks(&mut self) {
        self.publish(self.index);
    }

    /// The finer metrics now: each active task's nodes (their processing recorded into
    /// their sensors since the last time) and input partitions' lags, and what each restoring
    /// task has left.
    pub(super) fn collect_details(&mut self) -> ThreadDetails {
        let now = self.shared.now_ms();
        let mut details = ThreadDetails::default();
        let mut seen = BTreeSet::new();
        for (id, t) in &mut self.active {
            for (node, processed, latencies) in t.take_node_metrics() {
                let key = (*id, node);
                let (last, sensor, e2e) = self.node_sensors.entry(key.clone()).or_default();
                if processed > *last {
                    sensor.record((processed - *last) as f64, now);
                    *last = processed;
                }
                if let Some(l) = latencies {
                    e2e.get_or_insert_with(Default::default)
                        .record_stats(l.count, l.sum, l.min, l.max, now);
                }
                details.nodes.push((*id, key.1.clone(), *sensor, *e2e));
                seen.insert(key);
            }
            for (topic, p, lag) in t.lags() {
                details.lags.push((topic.to_string(), p, lag));
            }
        }
        self.node_sensors.retain(|k, _| seen.contains(k));
        for r in &self.restoring {
            details.restore_remaining.push((r.id, r.job.remaining()));
        }
        details
    }

    /// Records what each active and restoring task did since the last publication into its
    /// sensors; forgets the tasks that are gone.
    fn record_task_metrics(&mut self) {
        let now = self.shared.now_ms();
        let tasks = self
            .active
            .iter()
            .chain(self.restoring.iter().map(|r| (&r.id, &r.task)));
        let mut seen = Vec::new();
        for (id, t) in tasks {
            let (last, sensors) = self.task_sensors.entry(*id).or_default();
            let m = t.metrics;
            for (sensor, now_count, then) in [
                (&mut sensors.process, m.processed, last.processed),
                (&mut sensors.dropped, m.dropped, last.dropped),
                (&mut sensors.restore, m.restored, last.restored),
                (&mut sensors.enforced, m.enforced, last.enforced),
            ] {
                if now_count > then {
                    sensor.record((now_count - then) as f64, now);
                }
            }
            *last = m;
            seen.push(*id);
        }
        self.task_sensors.retain(|id, _| seen.contains(id));
    }
}
