//! A stream thread: its consumer and producer, its poll / process / commit loop, and the
//! assignments the group member hands it.
//!
//! Each loop turn applies the member's latest directive, restores one slice of a new task's
//! stores, polls, processes and commits when due: a long restoration neither stops the other
//! tasks nor keeps the thread from applying the next assignment or noticing `close()`.
//!
//! The consumer never subscribes: the member decides which tasks the thread runs, and the
//! thread assigns itself their partitions. An assignment is applied in two halves between
//! polls: first the tasks the thread loses are committed and closed (then the member may
//! rejoin, so their next owner starts where this one stopped), then the new tasks are created,
//! restored and their partitions read from the committed offsets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;

use state_store::{CacheBudget, RocksDbConfig, StateDirectory};

use super::client::{KafkaThreadClient, ThreadClient};
use super::collector::KafkaCollector;
use super::group::{Directive, GroupShared};
use super::task_manager::TaskManager;
use super::topics::Layout;
use super::Shared;
use crate::assignment::OwnedTasks;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::task::{TaskEnv, TaskMetrics};
use crate::time::SystemClock;
use crate::topology::Topology;

/// Records taken from the consumer per loop turn before processing them.
const POLL_BATCH: usize = 2000;
/// How often standbys read their changelogs between commits when the thread has nothing else to
/// do: they follow their actives closely, so that a promotion restores little, while
/// checkpoints stay at the commit interval.
const STANDBY_READ_INTERVAL: Duration = Duration::from_millis(250);
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
    pub(crate) group: Arc<GroupShared>,
    pub(crate) state_dir: Arc<StateDirectory>,
    pub(crate) rocksdb: Arc<RocksDbConfig>,
    pub(crate) globals: Arc<crate::state::GlobalStores>,
    /// This instance's process id (exactly-once: part of the transactional id).
    pub(crate) process: crate::assignment::ProcessId,
}

/// Entry point of a stream thread.
pub(crate) fn run(setup: ThreadSetup) {
    let shared = setup.shared.clone();
    let group = setup.group.clone();
    let index = setup.index;
    let span = tracing::info_span!("stream_thread", thread = index + 1);
    let _g = span.enter();
    shared.thread_started();
    // A panic in user code (a DSL closure, a processor) must not leave the instance looking
    // alive: it becomes an error like any other, naming the thread.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_loop(setup)));
    shared.thread_ended(!matches!(outcome, Ok(Ok(()))));
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => shared.fail(e),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            shared.fail(StreamsError::illegal_state(
                format!("stream thread {}", index + 1),
                format!("stream thread {} panicked: {what}", index + 1),
            ));
        }
    }
    group.exited(index);
    shared.set_rebalancing(index, false);
    tracing::info!("stream thread stopped");
}

fn run_loop(setup: ThreadSetup) -> Result<()> {
    let config = setup.config.clone();
    let client_id = format!(
        "{}-StreamThread-{}",
        config.client_prefix(),
        setup.index + 1
    );
    // Kafka Streams' transactional id: a restarted instance (same process id, kept in the
    // state directory) fences its own zombie's thread.
    let transactional_id = config.exactly_once.then(|| {
        format!(
            "{}-{}-{}",
            config.application_id,
            setup.process,
            setup.index + 1
        )
    });
    let producer_id = format!("{client_id}-producer");
    let collector = Arc::new(KafkaCollector::new(
        &config,
        &producer_id,
        transactional_id.clone(),
    )?);
    let cache_bytes = config.cache_max_bytes / config.num_stream_threads;
    let env = TaskEnv {
        application_id: config.application_id.as_str().into(),
        collector: collector.clone(),
        clock: Arc::new(SystemClock),
        state_dir: Some(setup.state_dir.clone()),
        cache_budget: (cache_bytes > 0).then(|| CacheBudget::new(cache_bytes)),
        rocksdb: setup.rocksdb.clone(),
        handlers: config.handlers.clone(),
        lock_timeout: Duration::from_secs(60),
        globals: setup.globals.clone(),
        exactly_once: config.exactly_once,
        max_task_idle_ms: config.max_task_idle_ms,
        time_store_operations: config.recording_level >= crate::metrics::RecordingLevel::Debug,
    };
    let mut tm = TaskManager {
        config: config.clone(),
        topology: setup.topology.clone(),
        layout: setup.layout.clone(),
        env,
        active: BTreeMap::new(),
        standby: BTreeMap::new(),
        restore_slice: super::lifecycle::RESTORE_SLICE,
        states: BTreeMap::new(),
        standby_lags: BTreeMap::new(),
        standby_behind: None,
        last_position_lookup: None,
        by_partition: HashMap::new(),
        last_partition: None,
        topics: HashMap::new(),
        closed_totals: TaskMetrics::default(),
        commits: 0,
        sensors: Default::default(),
        task_sensors: BTreeMap::new(),
        shared: setup.shared.clone(),
        index: setup.index,
        restoring: Default::default(),
        admin: Some({
            let mut cc = ClientConfig::new();
            for (k, v) in &config.admin {
                cc.set(k, v);
            }
            cc.create()
                .map_err(|e| StreamsError::kafka("creating the admin client", e))?
        }),
        last_purge: Instant::now(),
        last_cleanup: Instant::now(),
        paused: Default::default(),
        node_sensors: Default::default(),
        details: Default::default(),
    };
    let mut cc = ClientConfig::new();
    cc.set("client.id", format!("{client_id}-consumer"));
    for (k, v) in &config.consumer {
        cc.set(k, v);
    }
    // The group id stays: librdkafka reads the committed offsets of assigned partitions with
    // it. The consumer never subscribes, so it never joins the group itself.
    let consumer: BaseConsumer = cc
        .create()
        .map_err(|e| StreamsError::kafka("creating the consumer", e))?;
    let mut client = KafkaThreadClient::new(
        consumer,
        collector,
        setup.group.clone(),
        config.clone(),
        client_id.clone(),
    );

    let result = loop {
        let result = poll_loop(&mut client, &mut tm, &setup);
        let Err(e) = &result else { break result };
        let Some(why) = client.producer_lost() else {
            break result;
        };
        // Kafka Streams' task migration: whatever the tasks did since the last commit belongs
        // to a transaction that can never commit. They close without committing (their stores
        // drop the held writes), a new producer fences the old epoch (aborting what the old one
        // left open), and the member rejoins; the tasks come back, here or elsewhere, as of the
        // last commit.
        tracing::warn!(reason = %why, error = %e, "the producer was fenced or stuck: closing the tasks without committing, starting a new producer, rejoining the group");
        tm.lose_all(&mut client);
        setup.group.set_owned(setup.index, OwnedTasks::default());
        let collector = Arc::new(KafkaCollector::new(
            &config,
            &producer_id,
            transactional_id.clone(),
        )?);
        let for_tasks: Arc<dyn crate::collector::RecordCollector> = collector.clone();
        tm.env.collector = for_tasks;
        client.replace_collector(collector);
        setup.group.request_rejoin();
    };
    if let Some(admin) = tm.admin.take() {
        super::topics::drop_in_background(admin);
    }
    match &result {
        Ok(()) => {
            // Clean shutdown: final commit, then stores closed; the member leaves the group
            // once every thread is done.
            let committed = tm.commit(&mut client).and_then(|outcome| {
                // Under exactly-once the checkpoints exist only after a clean close.
                if outcome == super::group::CommitOutcome::Committed && config.exactly_once {
                    tm.checkpoint_active()
                } else {
                    Ok(())
                }
            });
            tm.close_all();
            drop(client);
            committed
        }
        Err(_) => {
            tm.close_all();
            drop(client);
            result
        }
    }
}

/// Applies the member's directive: revocations first (then the member may rejoin), then the
/// new tasks.
fn apply(
    seq: u64,
    directive: Directive,
    client: &mut dyn ThreadClient,
    tm: &mut TaskManager,
    setup: &ThreadSetup,
) -> Result<()> {
    setup.shared.set_rebalancing(setup.index, true);
    // The member replaces the layout before an assignment that needs it (more tasks once a
    // source topic gained partitions).
    if let Some(layout) = setup.group.layout() {
        tm.layout = layout;
    }
    match directive {
        Directive::Assign { active, standby } => {
            tm.revoke(&active, &standby, client)?;
            setup.group.applied(setup.index, seq, tm.owned());
            tm.add(&active, &standby)?;
            setup.group.set_owned(setup.index, tm.owned());
        }
        Directive::Lost => {
            tm.lose_all(client);
            setup.group.applied(setup.index, seq, OwnedTasks::default());
        }
    }
    // Rebalancing lasts until the new tasks are restored, as in Kafka Streams.
    setup.shared.set_rebalancing(setup.index, tm.is_restoring());
    Ok(())
}

/// Milliseconds since `start`, fractional: what latency metrics record.
fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Whether standbys read their changelogs now, between commits. A standby that caught up
/// reads only when the thread is idle, every `STANDBY_READ_INTERVAL`: active tasks' records
/// come first, and each read asks the changelogs' ends over the network. One that is behind
/// reads a slice every loop turn when idle, and shares the thread with active tasks, a slice
/// every `STANDBY_READ_INTERVAL`, when busy.
fn standby_read_due(idle: bool, behind: bool, since_last: Duration) -> bool {
    match (idle, behind) {
        (true, true) => true,
        (true, false) | (false, true) => since_last >= STANDBY_READ_INTERVAL,
        (false, false) => false,
    }
}

fn poll_loop(
    client: &mut KafkaThreadClient,
    tm: &mut TaskManager,
    setup: &ThreadSetup,
) -> Result<()> {
    let config = &setup.config;
    let mut last_commit = Instant::now();
    let mut last_standby_read = Instant::now();
    // Whether the last round processed nothing although records were queued (tasks waiting for
    // a partition's records to be fetched): then poll with a short wait instead of spinning.
    let mut stalled = false;
    while !setup.shared.shutdown_requested() {
        setup.group.alive(setup.index);
        let poll_start = Instant::now();
        if let Some((seq, directive)) = setup.group.take(setup.index) {
            apply(seq, directive, client, tm, setup)?;
        }
        if tm.is_restoring() && !tm.restore_slice(client)? {
            setup.shared.set_rebalancing(setup.index, false);
        }
        let idle = tm.buffered() == 0;
        let mut timeout = match (idle, stalled) {
            // A restoring task has work waiting: the poll must not sleep between its slices.
            _ if tm.is_restoring() => Duration::ZERO,
            (true, _) if tm.standby_behind.is_some() => Duration::ZERO,
            (true, _) => config.poll,
            (false, true) => STALLED_POLL,
            (false, false) => Duration::ZERO,
        };
        let mut polled = 0;
        loop {
            let msg = client.consumer.poll(timeout);
            timeout = Duration::ZERO;
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
                    let full = tm.add_message(&m)?;
                    polled += 1;
                    // `buffered.records.per.partition`: no more records this turn once a
                    // partition holds more than that, unless a task has none queued or waits for
                    // one of its partitions (what it needs may be behind them), and then for at
                    // most that many records more (a queue that still reaches four times the
                    // limit is paused, which lets the consumer hand out the others). The rest
                    // waits in the consumer's prefetch, which stops fetching when full.
                    if full
                        && (!(tm.has_idle_task() || tm.has_waiting_task())
                            || polled >= config.buffered_records_per_partition.max(POLL_BATCH))
                    {
                        break;
                    }
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
        tm.note_high_watermarks(client);
        let now = setup.shared.now_ms();
        tm.sensors.poll.record(ms_since(poll_start), now);
        tm.sensors.poll_records.record(polled as f64, now);
        let process_start = Instant::now();
        let processed = tm.process()?;
        if processed > 0 {
            let sensors = &mut tm.sensors;
            sensors
                .process
                .record_many(processed as u64, ms_since(process_start), now);
            sensors.process_records.record(processed as f64, now);
        }
        stalled = processed == 0 && tm.buffered() > 0;
        tm.apply_backpressure(client)?;
        let punctuate_start = Instant::now();
        if tm.punctuate()? {
            tm.sensors.punctuate.record(ms_since(punctuate_start), now);
        }
        if last_commit.elapsed() >= config.commit_interval || tm.uncommitted_over_limit() {
            let (commit_start, commits) = (Instant::now(), tm.commits);
            tm.commit(client)?;
            // As in Kafka Streams, a commit is counted when it committed something.
            if tm.commits > commits {
                tm.sensors.commit.record(ms_since(commit_start), now);
            }
            tm.update_standbys(client, true)?;
            last_commit = Instant::now();
            last_standby_read = last_commit;
        } else if standby_read_due(
            tm.buffered() == 0,
            tm.standby_behind.is_some(),
            last_standby_read.elapsed(),
        ) {
            tm.update_standbys(client, false)?;
            last_standby_read = Instant::now();
        }
        tm.publish(setup.index);
    }
    Ok(())
}
