//! A stream thread: its consumer and producer, its poll / process / commit loop, its rebalances.
//!
//! One consumer in the group and one producer per thread; the thread's tasks are its
//! `TaskManager`'s.
//!
//! Rebalances run inside `poll` (rdkafka's callbacks): on revoke the thread commits and suspends
//! its tasks; on assign it resumes the tasks it keeps, closes the others, and creates, restores
//! and initializes the new ones before processing their records.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

use state_store::{CacheBudget, RocksDbConfig, StateDirectory};

use super::collector::KafkaCollector;
use super::task_manager::TaskManager;
use super::topics::Layout;
use super::Shared;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::task::{TaskEnv, TaskMetrics};
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
/// Poll timeout while queued records wait for another partition's fetch.
const STALLED_POLL: Duration = Duration::from_millis(5);

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
