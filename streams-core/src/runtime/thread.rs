//! A stream thread: one consumer in the group and one producer, the tasks of the partitions
//! assigned to it, and the poll / process / punctuate / commit loop.
//!
//! Rebalances run inside `poll` (rdkafka's callbacks): on revoke the thread commits and suspends
//! its tasks; on assign it resumes the tasks it keeps, closes the others, and creates, restores
//! and initializes the new ones before processing their records.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use state_store::{CacheBudget, RocksDbConfig, StateDirectory};

use super::collector::KafkaCollector;
use super::topics::Layout;
use super::{Shared, ThreadMetrics};
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::record::RecordBytes;
use crate::task::{StreamTask, TaskEnv, TaskMetrics};
use crate::task_id::TaskId;
use crate::time::SystemClock;
use crate::topology::Topology;

/// Records taken from the consumer per loop turn before processing them.
const POLL_BATCH: usize = 2000;
/// A loop turn polls past `POLL_BATCH`, up to this many records per task (the consumer's
/// prefetch per partition, `queued.min.messages`), while a task has nothing queued and the
/// consumer has more: the consumer hands out one partition's fetched records after another, and
/// processing the first partition's before the others' are polled would write minutes of
/// event time out of order (see `TaskManager::process`).
const POLL_MAX_PER_TASK: usize = 20_000;
/// Most records a task processes before the thread looks again for the task whose next
/// record is the oldest.
const PROCESS_SLICE: usize = 256;
/// How far past the runner-up's next timestamp a slice may go: the disorder between tasks this
/// thread accepts, so that tasks at the same pace are not switched after every record.
const SLICE_SLACK_MS: i64 = 1_000;
/// Poll timeout while queued records wait for another partition's fetch.
const STALLED_POLL: Duration = Duration::from_millis(5);
/// Timeout of the committed-offset and watermark lookups made when tasks are assigned.
const FETCH_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a new task waits for records known to be on the broker before it processes
/// what it has (a bound against a partition that cannot be fetched).
const FETCH_WAIT_MAX_MS: i64 = 10_000;

pub(crate) struct ThreadSetup {
    pub(crate) index: usize,
    pub(crate) config: Arc<ResolvedConfig>,
    pub(crate) topology: Arc<Topology>,
    pub(crate) layout: Arc<Layout>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) state_dir: Arc<StateDirectory>,
    pub(crate) rocksdb: Arc<RocksDbConfig>,
    pub(crate) globals: Arc<crate::state::GlobalStores>,
}

/// Entry point of a stream thread.
pub(crate) fn run(setup: ThreadSetup) {
    let shared = setup.shared.clone();
    let index = setup.index;
    let span = tracing::info_span!("stream_thread", thread = index + 1);
    let _g = span.enter();
    // A panic in user code (a DSL closure, a processor) must not leave the instance looking
    // alive: it becomes an error like any other, naming the thread.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_loop(setup))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => shared.fail(e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            shared.fail(StreamsError::IllegalState(format!(
                "stream thread {} panicked: {what}",
                index + 1
            )));
        }
    }
    shared.set_rebalancing(index, false);
    tracing::info!("stream thread stopped");
}

/// The consumer's context: holds the task manager so that rebalance callbacks (which run inside
/// `poll`, on this same thread) can commit and suspend tasks. The loop never holds the lock
/// across `poll`, so the callbacks never wait on it.
struct ThreadContext {
    tasks: Mutex<TaskManager>,
    /// Partitions assigned by the last rebalance, to be turned into tasks after `poll` returns.
    pending: Mutex<Option<Vec<(String, i32)>>>,
    /// An error raised inside a callback, where it cannot be returned.
    error: Mutex<Option<StreamsError>>,
    /// Set by the callbacks when they leave an assignment or an error behind, so that the loop
    /// looks at `pending` and `error` only then (it polls once per record).
    callback_news: AtomicBool,
    shared: Arc<Shared>,
    index: usize,
}

impl ClientContext for ThreadContext {}

impl ConsumerContext for ThreadContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                tracing::info!(
                    partitions = tpl.count(),
                    "partitions revoked: committing and suspending tasks"
                );
                self.shared.set_rebalancing(self.index, true);
                let mut tm = lock(&self.tasks);
                if let Err(e) = tm.commit(consumer) {
                    lock(&self.error).get_or_insert(e);
                    self.callback_news.store(true, AtomicOrdering::Release);
                }
                tm.suspend_all();
            }
            Rebalance::Assign(_) => self.shared.set_rebalancing(self.index, true),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            tracing::info!(partitions = parts.len(), "partitions assigned");
            *lock(&self.pending) = Some(parts);
            self.callback_news.store(true, AtomicOrdering::Release);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn run_loop(setup: ThreadSetup) -> Result<()> {
    let config = setup.config.clone();
    let client_id = format!("{}-StreamThread-{}", config.application_id, setup.index + 1);
    let collector = Arc::new(KafkaCollector::new(
        &config,
        &format!("{client_id}-producer"),
    )?);
    let cache_bytes = config.cache_max_bytes / config.num_stream_threads;
    let env = TaskEnv {
        application_id: config.application_id.as_str().into(),
        collector: collector.clone(),
        clock: Arc::new(SystemClock),
        state_dir: Some(setup.state_dir.clone()),
        cache_budget: (cache_bytes > 0).then(|| CacheBudget::new(cache_bytes)),
        rocksdb: setup.rocksdb.clone(),
        deserialization_handler: config.deserialization_handler,
        lock_timeout: Duration::from_secs(60),
        globals: setup.globals.clone(),
    };
    let tm = TaskManager {
        config: config.clone(),
        topology: setup.topology.clone(),
        layout: setup.layout.clone(),
        env,
        collector,
        active: BTreeMap::new(),
        suspended: BTreeMap::new(),
        by_partition: HashMap::new(),
        last_partition: None,
        topics: HashMap::new(),
        closed_totals: TaskMetrics::default(),
        commits: 0,
        shared: setup.shared.clone(),
        client_id: client_id.clone(),
        restore_consumer: None,
        admin: Some({
            let mut cc = ClientConfig::new();
            for (k, v) in &config.admin {
                cc.set(k, v);
            }
            cc.create()
                .map_err(|e| StreamsError::kafka("creating the admin client", e))?
        }),
        last_purge: Instant::now(),
    };
    let ctx = ThreadContext {
        tasks: Mutex::new(tm),
        pending: Mutex::new(None),
        error: Mutex::new(None),
        callback_news: AtomicBool::new(false),
        shared: setup.shared.clone(),
        index: setup.index,
    };
    let mut cc = ClientConfig::new();
    cc.set("client.id", format!("{client_id}-consumer"));
    for (k, v) in &config.consumer {
        cc.set(k, v);
    }
    let consumer: BaseConsumer<ThreadContext> = cc
        .create_with_context(ctx)
        .map_err(|e| StreamsError::kafka("creating the consumer", e))?;
    let topics = setup.layout.subscriptions();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(|e| StreamsError::kafka(format!("subscribing to {topics:?}"), e))?;
    tracing::info!(?topics, "subscribed");

    let result = poll_loop(&consumer, &setup);
    let ctx = consumer.context();
    let mut tm = lock(&ctx.tasks);
    if let Some(admin) = tm.admin.take() {
        super::topics::drop_in_background(admin);
    }
    match &result {
        Ok(()) => {
            // Clean shutdown: final commit, then stores closed; dropping the consumer leaves the group.
            let committed = tm.commit(&consumer);
            tm.close_all();
            drop(tm);
            drop(consumer);
            committed
        }
        Err(_) => {
            tm.close_all();
            drop(tm);
            drop(consumer);
            result
        }
    }
}

fn poll_loop(consumer: &BaseConsumer<ThreadContext>, setup: &ThreadSetup) -> Result<()> {
    let ctx = consumer.context();
    let config = &setup.config;
    let mut last_commit = Instant::now();
    // Whether the last round processed nothing although records were queued (tasks waiting for
    // a partition's records to be fetched): then poll with a short wait instead of spinning.
    let mut stalled = false;
    while !setup.shared.shutdown_requested() {
        let idle = lock(&ctx.tasks).buffered() == 0;
        let mut timeout = match (idle, stalled) {
            (true, _) => config.poll,
            (false, true) => STALLED_POLL,
            (false, false) => Duration::ZERO,
        };
        let mut polled = 0;
        loop {
            let msg = consumer.poll(timeout);
            timeout = Duration::ZERO;
            if ctx.callback_news.swap(false, AtomicOrdering::Acquire) {
                if let Some(e) = lock(&ctx.error).take() {
                    return Err(e);
                }
                if let Some(parts) = lock(&ctx.pending).take() {
                    // What was polled before is queued in its task already; rebuild the tasks.
                    let mut tm = lock(&ctx.tasks);
                    tm.assign(parts, consumer)?;
                    drop(tm);
                    setup.shared.set_rebalancing(setup.index, false);
                }
            }
            match msg {
                None => break,
                Some(Err(e)) => {
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::Fatal)
                    ) {
                        return Err(StreamsError::kafka("consuming", e));
                    }
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => {
                    let mut tm = lock(&ctx.tasks);
                    tm.add_message(&m)?;
                    polled += 1;
                    // Past the batch, whether a task is still idle is asked every 256 records.
                    if polled >= POLL_BATCH
                        && polled % 256 == 0
                        && (!tm.has_idle_task() || polled >= POLL_MAX_PER_TASK * tm.active.len())
                    {
                        break;
                    }
                }
            }
        }
        let mut tm = lock(&ctx.tasks);
        stalled = tm.process()? == 0 && tm.buffered() > 0;
        tm.punctuate()?;
        if last_commit.elapsed() >= config.commit_interval {
            tm.commit(consumer)?;
            last_commit = Instant::now();
        }
        tm.publish(setup.index);
    }
    Ok(())
}

/// The tasks of one stream thread.
struct TaskManager {
    config: Arc<ResolvedConfig>,
    topology: Arc<Topology>,
    layout: Arc<Layout>,
    env: TaskEnv,
    collector: Arc<KafkaCollector>,
    active: BTreeMap<TaskId, StreamTask>,
    /// Tasks revoked by a rebalance in progress: kept open in case they come back.
    suspended: BTreeMap<TaskId, StreamTask>,
    by_partition: HashMap<(Arc<str>, i32), TaskId>,
    /// The partition and task of the last consumed record: records arrive in runs from one
    /// partition, and this spares two hash lookups per record. Cleared with `by_partition`.
    last_partition: Option<(Arc<str>, i32, TaskId)>,
    /// Interned topic names, so that a record does not allocate its topic.
    topics: HashMap<String, Arc<str>>,
    closed_totals: TaskMetrics,
    commits: u64,
    shared: Arc<Shared>,
    client_id: String,
    /// Reads changelogs when tasks are created; made on first use and kept.
    restore_consumer: Option<BaseConsumer>,
    /// Deletes repartition records once their offsets are committed.
    /// `None` once handed to a background thread at shutdown.
    admin: Option<AdminClient<DefaultClientContext>>,
    last_purge: Instant,
}

impl TaskManager {
    fn buffered(&self) -> usize {
        self.active.values().map(StreamTask::buffered).sum()
    }

    /// Whether a task has nothing queued (more polling may bring its records).
    fn has_idle_task(&self) -> bool {
        self.active.len() > 1 && self.active.values().any(|t| t.buffered() == 0)
    }

    /// Decodes a consumed record straight from the consumer's buffer into its task's queue.
    fn add_message(&mut self, m: &BorrowedMessage<'_>) -> Result<()> {
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
    fn process(&mut self) -> Result<usize> {
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

    fn punctuate(&mut self) -> Result<()> {
        for t in self.active.values_mut() {
            t.punctuate_wall_clock()?;
        }
        Ok(())
    }

    /// At-least-once commit: flush caches and stores, wait for every produced record to be
    /// acknowledged, write checkpoints, then commit input offsets.
    fn commit(&mut self, consumer: &BaseConsumer<ThreadContext>) -> Result<()> {
        if self.active.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        for t in self.active.values_mut() {
            t.flush()?;
        }
        self.collector.flush()?;
        let acked = self.collector.take_acked();
        let mut tpl = TopicPartitionList::new();
        for t in self.active.values_mut() {
            t.checkpoint(&acked)?;
            for (topic, p, off) in t.committable_offsets() {
                tpl.add_partition_offset(&topic, p, Offset::Offset(off))
                    .map_err(|e| {
                        StreamsError::kafka(
                            format!("committing offset {off} of `{topic}` partition {p}"),
                            e,
                        )
                    })?;
            }
        }
        if tpl.count() > 0 {
            consumer.commit(&tpl, CommitMode::Sync).map_err(|e| {
                StreamsError::kafka(
                    format!("committing offsets of {} partitions", tpl.count()),
                    e,
                )
            })?;
        }
        self.commits += 1;
        if self.last_purge.elapsed() >= self.config.repartition_purge_interval {
            self.purge_repartition_topics(&tpl);
            self.last_purge = Instant::now();
        }
        tracing::debug!(
            tasks = self.active.len(),
            partitions = tpl.count(),
            took_ms = started.elapsed().as_millis() as u64,
            "committed"
        );
        Ok(())
    }

    /// Deletes the repartition records below the offsets just committed, as Kafka Streams does:
    /// repartition topics keep records forever otherwise (retention -1). A failure is logged and
    /// retried at the next purge; it never fails processing.
    fn purge_repartition_topics(&self, committed: &TopicPartitionList) {
        let prefix = format!("{}-", self.config.application_id);
        let mut tpl = TopicPartitionList::new();
        for e in committed.elements() {
            if e.topic().starts_with(&prefix) && e.topic().ends_with("-repartition") {
                if let Offset::Offset(o) = e.offset() {
                    let _ = tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
                }
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

    fn suspend_all(&mut self) {
        let active = std::mem::take(&mut self.active);
        self.suspended.extend(active);
        self.by_partition.clear();
        self.last_partition = None;
    }

    fn close_task(&mut self, t: StreamTask) {
        tracing::info!(task = %t.id, "closing task");
        self.closed_totals.processed += t.metrics.processed;
        self.closed_totals.dropped += t.metrics.dropped;
        self.closed_totals.restored += t.metrics.restored;
        t.close();
    }

    fn close_all(&mut self) {
        let all: Vec<StreamTask> = std::mem::take(&mut self.active)
            .into_values()
            .chain(std::mem::take(&mut self.suspended).into_values())
            .collect();
        for t in all {
            self.close_task(t);
        }
        self.by_partition.clear();
        self.last_partition = None;
    }

    /// Turns an assignment into tasks: keeps suspended tasks that stay, closes the rest, creates
    /// and restores new ones.
    fn assign(
        &mut self,
        partitions: Vec<(String, i32)>,
        consumer: &BaseConsumer<ThreadContext>,
    ) -> Result<()> {
        // With the eager protocol every task was revoked (and committed) before an assignment;
        // anything still active is treated like a revoked task.
        self.suspend_all();
        let mut wanted: BTreeMap<TaskId, Vec<(String, i32)>> = BTreeMap::new();
        for (topic, p) in partitions {
            let Some(&sub) = self.layout.topic_to_sub.get(&topic) else {
                tracing::warn!(%topic, "assigned a topic the topology does not read");
                continue;
            };
            wanted
                .entry(TaskId {
                    subtopology: sub,
                    partition: p,
                })
                .or_default()
                .push((topic, p));
        }
        // Close first, so that task directories are unlocked before anyone waits for them.
        let gone: Vec<TaskId> = self
            .suspended
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(t) = self.suspended.remove(&id) {
                self.close_task(t);
            }
        }
        for (id, parts) in &wanted {
            let task = match self.suspended.remove(id) {
                Some(t) => {
                    tracing::info!(task = %id, "resuming task");
                    t
                }
                None => {
                    tracing::info!(task = %id, "creating task");
                    let sub = &self.layout.subtopologies[id.subtopology as usize];
                    let mut t =
                        StreamTask::new(self.topology.clone(), sub, id.partition, &self.env)?;
                    self.restore(&mut t)?;
                    t.initialize()?;
                    t
                }
            };
            for (topic, p) in parts {
                let topic: Arc<str> = topic.as_str().into();
                self.by_partition.insert((topic, *p), *id);
                self.last_partition = None;
            }
            let mut task = task;
            if parts.len() > 1 {
                self.await_unfetched(&mut task, parts, consumer);
            }
            self.active.insert(*id, task);
        }
        self.publish_tasks();
        Ok(())
    }

    /// Makes `task` wait for the records its partitions hold on the broker beyond the group's
    /// committed offsets (Kafka Streams' KIP-695), so that its first records are picked in
    /// timestamp order across all of them. Best effort: a failed lookup only logs.
    fn await_unfetched(
        &mut self,
        task: &mut StreamTask,
        parts: &[(String, i32)],
        consumer: &BaseConsumer<ThreadContext>,
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

    /// Replays each changelog of `task` from its checkpoint (or the beginning) to its end.
    fn restore(&mut self, task: &mut StreamTask) -> Result<()> {
        let changelogs = task.changelogs();
        if changelogs.is_empty() {
            return Ok(());
        }
        if self.restore_consumer.is_none() {
            let mut cc = ClientConfig::new();
            for (k, v) in &self.config.consumer {
                cc.set(k, v);
            }
            cc.set("client.id", format!("{}-restore-consumer", self.client_id));
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
                format!("{}-restore-consumer", self.config.application_id),
            );
            let c: BaseConsumer = cc
                .create()
                .map_err(|e| StreamsError::kafka("creating the restore consumer", e))?;
            self.restore_consumer = Some(c);
        }
        let consumer = self.restore_consumer.as_ref().expect("created above");
        let listener = self.shared.restore_listener();
        let timeout = self.config.task_timeout;
        let task_id = task.id;
        for cl in changelogs {
            let err = |message: String| StreamsError::Restore {
                task: task_id,
                store: cl.store.clone(),
                changelog: cl.topic.clone(),
                message,
            };
            let (low, high) = changelog_watermarks(consumer, &cl.topic, cl.partition)
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
            if let Some(l) = &listener {
                l.on_restore_start(&cl.topic, cl.partition, &cl.store, start, high);
            }
            let began = Instant::now();
            let mut total = 0u64;
            if start < high {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&cl.topic, cl.partition, Offset::Offset(start))
                    .map_err(|e| err(e.to_string()))?;
                consumer
                    .assign(&tpl)
                    .map_err(|e| err(format!("assigning: {e}")))?;
                let mut next = start;
                let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(10_000);
                let mut write =
                    |batch: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>, next: i64| -> Result<()> {
                        if batch.is_empty() {
                            return Ok(());
                        }
                        task.restore_batch(&cl.store, batch)?;
                        total += batch.len() as u64;
                        if let Some(l) = &listener {
                            l.on_batch_restored(
                                &cl.topic,
                                cl.partition,
                                &cl.store,
                                next,
                                batch.len() as u64,
                            );
                        }
                        batch.clear();
                        Ok(())
                    };
                let mut last_progress = Instant::now();
                while next < high {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => {
                            next = m.offset() + 1;
                            last_progress = Instant::now();
                            if let Some(k) = m.key() {
                                batch.push((k.to_vec(), m.payload().map(<[u8]>::to_vec)));
                            }
                        }
                        Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "restore consumer error");
                            if last_progress.elapsed() > timeout {
                                return Err(err(format!("no progress for {timeout:?}: {e}")));
                            }
                        }
                        None => {
                            if last_progress.elapsed() > timeout {
                                return Err(err(format!(
                                    "no progress for {timeout:?} at offset {next} of {high}"
                                )));
                            }
                        }
                    }
                    if batch.len() >= 10_000 || next >= high {
                        write(&mut batch, next)?;
                    }
                }
                write(&mut batch, next)?;
                consumer
                    .unassign()
                    .map_err(|e| err(format!("unassigning: {e}")))?;
            }
            if total > 0 {
                // Written out now (RocksDB memtables to files), so that the memory of a restored
                // store is given back before the next one is restored.
                task.flush_store(&cl.store)?;
            }
            task.restored_to(&cl.topic, cl.partition, high);
            tracing::info!(task = %task.id, store = %cl.store, changelog = %cl.topic, partition = cl.partition,
                start, end = high, restored = total, took_ms = began.elapsed().as_millis() as u64, "restored");
            if let Some(l) = &listener {
                l.on_restore_end(&cl.topic, cl.partition, &cl.store, total);
            }
        }
        Ok(())
    }

    fn totals(&self) -> TaskMetrics {
        self.active
            .values()
            .chain(self.suspended.values())
            .fold(self.closed_totals, |mut m, t| {
                m.processed += t.metrics.processed;
                m.dropped += t.metrics.dropped;
                m.restored += t.metrics.restored;
                m
            })
    }

    fn publish(&self, index: usize) {
        self.shared.publish(
            index,
            ThreadMetrics {
                tasks: self.totals(),
                commits: self.commits,
            },
            self.active.keys().copied().collect(),
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

/// The watermarks of a changelog partition. A changelog created at start-up may have no leader
/// yet (Apache Kafka answers NOT_LEADER_OR_FOLLOWER for a moment), so errors are retried for up
/// to 30 s before they fail the restore.
fn changelog_watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> std::result::Result<(i64, i64), rdkafka::error::KafkaError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(30)) {
            Ok(w) => return Ok(w),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(topic, partition, error = %e, "retrying a changelog watermark lookup");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}
