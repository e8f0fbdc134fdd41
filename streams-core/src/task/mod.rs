//! The stream task: timestamp-ordered processing of one partition of a sub-topology.
//!
//! A task owns partition p of each of its sub-topology's source topics, its processors and its
//! stores, and processes its records in timestamp order. Synchronous and deterministic: no I/O
//! here but the stores'.
//!
//! `queue` decodes and orders the input records, `stores` opens the stores and restores and
//! checkpoints them; running the nodes is the engine's (`crate::processor`).

mod queue;
mod stores;

use queue::{PartitionGroup, Readiness};
pub(crate) use stores::ChangelogPartition;

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use state_store::{CacheBudget, Checkpoint, RocksDbConfig, StateDirectory, TaskDirLock};

use crate::collector::RecordCollector;
use crate::error::{Result, StreamsError};
use crate::handlers::{dead_letter_record, ErrorHandlerContext, ErrorHandlers};
use crate::processor::{PunctuationType, TaskCore, TaskNode};
use crate::record::{RawRecord, RecordBytes, RecordMetadata};
use crate::state::GlobalStores;
use crate::task_id::TaskId;
use crate::time::Clock;
use crate::topology::{Subtopology, Topology};

/// What a task needs from its surroundings (the runtime or the test driver).
#[derive(Clone)]
pub(crate) struct TaskEnv {
    pub(crate) application_id: Arc<str>,
    pub(crate) collector: Arc<dyn RecordCollector>,
    pub(crate) clock: Arc<dyn Clock>,
    /// `None` (the test driver): every store lives in memory and nothing is locked or checkpointed.
    pub(crate) state_dir: Option<Arc<StateDirectory>>,
    /// `None`: caching is off whatever the stores ask for (statestore.cache.max.bytes = 0).
    pub(crate) cache_budget: Option<Arc<CacheBudget>>,
    pub(crate) rocksdb: Arc<RocksDbConfig>,
    /// The exception handlers and the dead-letter topic.
    pub(crate) handlers: ErrorHandlers,
    pub(crate) lock_timeout: Duration,
    /// The instance's global stores, which every task can read.
    pub(crate) globals: Arc<GlobalStores>,
    /// `exactly_once_v2`: persistent stores hold writes back until the transaction commits and
    /// keep their own changelog offsets (see `StreamTask::new`); no checkpoint file while running.
    pub(crate) exactly_once: bool,
    /// `max.task.idle.ms` (KIP-695).
    pub(crate) max_task_idle_ms: i64,
    /// `metrics.recording.level=DEBUG`: time each store operation.
    pub(crate) time_store_operations: bool,
}

/// Metrics of one task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records processed.
    pub processed: u64,
    /// Records dropped: skipped by an exception handler, or dropped by a processor (late for
    /// their window, null join keys...): Kafka Streams' dropped-records.
    pub dropped: u64,
    /// Records restored into the task's stores from their changelogs.
    pub restored: u64,
    /// Records processed while a partition with unfetched records was empty, once
    /// `max.task.idle.ms` had passed (Kafka Streams' enforced processing).
    pub enforced: u64,
}

/// A running task.
pub(crate) struct StreamTask {
    pub(crate) id: TaskId,
    core: TaskCore,
    queues: PartitionGroup,
    /// Changelog offsets to checkpoint: the next offset to restore from, per changelog partition.
    changelog_offsets: BTreeMap<(String, i32), i64>,
    checkpoint_path: Option<PathBuf>,
    /// Exactly-once with persistent stores: they hold writes back until
    /// [`Self::commit_stores`], and keep their changelog offsets themselves.
    transactional: bool,
    pub(crate) metrics: TaskMetrics,
    initialized: bool,
    /// `max.task.idle.ms`.
    max_task_idle_ms: i64,
    /// Whether the last processing round stopped to wait for an empty partition (KIP-695):
    /// the stream thread then polls on for its records.
    pub(crate) waiting: bool,
    /// Held for the task's lifetime so no other instance on this machine opens its stores.
    _lock: Option<TaskDirLock>,
}

impl StreamTask {
    /// Creates the task of `subtopology` for `partition`: locks its directory, opens its stores
    /// and makes its processors (not yet initialized: restore first, then [`Self::initialize`]).
    pub(crate) fn new(
        topology: Arc<Topology>,
        subtopology: &Subtopology,
        partition: i32,
        env: &TaskEnv,
    ) -> Result<Self> {
        let id = TaskId {
            subtopology: subtopology.id,
            partition,
        };
        let lock = match &env.state_dir {
            Some(dir) => Some(dir.lock_task(&id.to_string(), env.lock_timeout).map_err(
                |source| StreamsError::Store {
                    task: id,
                    store: "<task directory>".into(),
                    source,
                },
            )?),
            None => None,
        };
        let checkpoint_path = lock
            .as_ref()
            .map(|l| l.dir().join(state_store::CHECKPOINT_FILE));
        let checkpoint = match &checkpoint_path {
            Some(p) => Checkpoint::read(p).map_err(|source| StreamsError::Store {
                task: id,
                store: "<checkpoint>".into(),
                source,
            })?,
            None => HashMap::new(),
        };
        // Under exactly-once, persistent stores hold back their writes until the transaction
        // commits, and record with each commit the changelog offsets it reflects: whether the
        // task closed cleanly or crashed, a store is as of a commit and says which. (Kafka
        // Streams cannot tell, and wipes a task that did not close cleanly.)
        let transactional = env.exactly_once && lock.is_some();
        let current_ts = Arc::new(AtomicI64::new(0));
        let stores = stores::open(&topology, subtopology, id, env, lock.as_ref(), &current_ts)?;
        let mut stored = HashMap::new();
        // Stores with no commit recorded (new, or written before stores kept their offsets):
        // what they hold cannot be placed, so they start empty.
        let mut unplaced = Vec::new();
        if transactional {
            for s in stores.iter().filter(|s| s.persistent) {
                let Some(key) = &s.changelog else { continue };
                let offsets = s.cell.with_stack(|st| st.stored_offsets())?;
                match offsets.get(key) {
                    Some(off) => {
                        stored.insert(key.clone(), *off);
                    }
                    None => unplaced.push(s.name.clone()),
                }
            }
        }

        let mut nodes: Vec<Option<TaskNode>> = (0..topology.nodes.len()).map(|_| None).collect();
        for &i in &subtopology.nodes {
            let def = &topology.nodes[i];
            nodes[i] = Some(TaskNode {
                processor: Some((def.factory)()),
                children: Arc::from(def.children.as_slice()),
                processed: 0,
                e2e_latency: None,
            });
        }

        // The stores' own offsets under exactly-once, the checkpoint file's otherwise.
        let checkpoint = if transactional { stored } else { checkpoint };
        let mut changelog_offsets = BTreeMap::new();
        for s in &stores {
            if let (Some((topic, p)), true) = (&s.changelog, s.persistent) {
                if let Some(off) = checkpoint.get(&(topic.clone(), *p)) {
                    changelog_offsets.insert((topic.clone(), *p), *off);
                }
            }
        }

        let queues = PartitionGroup::new(
            &topology,
            subtopology,
            partition,
            &env.application_id,
            env.handlers.dead_letter_topic.is_some(),
        );
        let core = TaskCore {
            id,
            application_id: env.application_id.clone(),
            topology,
            nodes,
            stores,
            meta: None,
            current_ts,
            stream_time: -1,
            clock: env.clock.clone(),
            collector: env.collector.clone(),
            punctuations: Vec::new(),
            next_punctuation_id: 0,
            globals: env.globals.clone(),
            dropped: 0,
            handlers: env.handlers.clone(),
            source: None,
            round_started_ms: 0,
        };
        let mut task = StreamTask {
            id,
            core,
            queues,
            changelog_offsets,
            checkpoint_path,
            transactional,
            metrics: TaskMetrics::default(),
            initialized: false,
            max_task_idle_ms: env.max_task_idle_ms,
            waiting: false,
            _lock: lock,
        };
        for store in unplaced {
            tracing::debug!(task = %id, %store, "no stored changelog offsets: emptied, restoring from the beginning");
            task.clear_store(&store)?;
        }
        Ok(task)
    }

    /// The input partitions of this task (topic as named on the cluster, partition).
    /// The task's stores (for the registry interactive queries read).
    pub(crate) fn stores(&self) -> &[crate::processor::TaskStore] {
        &self.core.stores
    }

    pub(crate) fn input_partitions(&self) -> Vec<(String, i32)> {
        self.queues.partitions()
    }

    /// Initializes the processors, in topological order, once the stores are restored.
    pub(crate) fn initialize(&mut self) -> Result<()> {
        if self.initialized {
            return Ok(());
        }
        self.core.init_processors()?;
        self.initialized = true;
        Ok(())
    }

    /// Decodes and queues records of one input partition. A record that fails to deserialize
    /// fails here (log-and-fail) or is queued as skipped (log-and-continue), so that offsets only
    /// move past it in order.
    pub(crate) fn add_records(
        &mut self,
        records: impl IntoIterator<Item = RawRecord>,
    ) -> Result<()> {
        for raw in records {
            self.add_record(raw.bytes())?;
        }
        Ok(())
    }

    /// Decodes and queues one record, as [`Self::add_records`] does; returns how many records
    /// its partition then holds.
    pub(crate) fn add_record(&mut self, raw: RecordBytes<'_>) -> Result<usize> {
        self.queues.add(raw, &self.core.handlers)
    }

    /// Records queued and not yet processed.
    pub(crate) fn buffered(&self) -> usize {
        self.queues.len()
    }

    /// Each of the task's nodes: its name, the records it processed and, for a sink, its
    /// records' end-to-end latencies since the last call (taken).
    pub(crate) fn take_node_metrics(
        &mut self,
    ) -> Vec<(String, u64, Option<crate::processor::Latencies>)> {
        let core = &mut self.core;
        let mut out = Vec::new();
        for i in 0..core.nodes.len() {
            let Some(n) = core.nodes[i].as_mut() else {
                continue;
            };
            let (processed, latencies) = (n.processed, n.e2e_latency.take().map(|l| *l));
            out.push((core.topology.node_name(i).to_string(), processed, latencies));
        }
        out
    }

    /// Each input partition with the records the cluster holds beyond what was fetched
    /// (the consumer's `records-lag`), where its end is known.
    pub(crate) fn lags(&self) -> impl Iterator<Item = (&Arc<str>, i32, i64)> {
        self.queues.lags()
    }

    /// The input partitions with no record fetched yet and no known start (see
    /// [`Self::note_position`]).
    pub(crate) fn unpositioned(&self) -> impl Iterator<Item = (&Arc<str>, i32)> {
        self.queues.unpositioned()
    }

    /// Each input partition with the number of its records queued.
    pub(crate) fn queued_per_partition(&self) -> impl Iterator<Item = (&Arc<str>, i32, usize)> {
        self.queues.lengths()
    }

    /// What the consumer knows of one of this task's partitions: where reading starts (at
    /// assignment) and its high watermark. Kafka Streams' KIP-695 rule uses them: while a
    /// partition with records left on the cluster is empty, the task waits for them (up to
    /// `max.task.idle.ms`) rather than pick records by timestamp from the others; at start, a
    /// stream would otherwise run ahead of the table it joins with.
    pub(crate) fn note_position(
        &mut self,
        topic: &str,
        partition: i32,
        start: Option<i64>,
        high_watermark: Option<i64>,
    ) {
        self.queues
            .note_position(topic, partition, start, high_watermark);
    }

    /// The timestamp of the record this task would process next, if it has one queued.
    pub(crate) fn head_timestamp(&self) -> Option<i64> {
        self.queues.head_timestamp()
    }

    /// The largest timestamp queued, if any record is.
    pub(crate) fn queued_until(&self) -> Option<i64> {
        self.queues.queued_until()
    }

    /// Processes up to `max` queued records, smallest timestamp first across partitions.
    pub(crate) fn process(&mut self, max: usize) -> Result<usize> {
        self.process_until(max, i64::MAX)
    }

    /// Processes up to `max` queued records whose timestamps are at most `until`, smallest
    /// timestamp first across partitions.
    pub(crate) fn process_until(&mut self, max: usize, until: i64) -> Result<usize> {
        self.waiting = false;
        self.core.collector.set_task(self.id);
        self.core.round_started_ms = self.core.clock.now_ms();
        let mut n = 0;
        while n < max {
            if self.queues.head_timestamp().is_none_or(|ts| ts > until) {
                break;
            }
            // Checked per record: a partition catching up can run dry in the middle of a batch.
            let clock = &self.core.clock;
            let enforced = match self
                .queues
                .readiness(|| clock.now_ms(), self.max_task_idle_ms)
            {
                Readiness::Wait => {
                    self.waiting = true;
                    break;
                }
                Readiness::Enforced => true,
                Readiness::Ready => false,
            };
            let Some(next) = self.queues.next() else {
                break;
            };
            n += 1;
            let Some(mut payload) = next.payload else {
                if let Some(error) = next.skipped {
                    self.dead_letter_skipped(
                        &next.topic,
                        next.partition,
                        next.offset,
                        next.timestamp,
                        next.source.as_deref(),
                        &error,
                        next.source_node,
                    )?;
                }
                continue;
            };
            self.core.meta = Some(RecordMetadata {
                topic: next.topic,
                partition: next.partition,
                offset: next.offset,
            });
            self.core.source = next.source;
            self.core.set_timestamp(next.timestamp);
            if next.timestamp > self.core.stream_time {
                self.core.stream_time = next.timestamp;
            }
            self.core.process_node(next.source_node, &mut *payload)?;
            self.core.forward_evicted()?;
            self.metrics.processed += 1;
            self.metrics.enforced += u64::from(enforced);
            self.metrics.dropped += std::mem::take(&mut self.core.dropped);
            let st = self.core.stream_time;
            self.core.meta = None;
            self.core.source = None;
            self.core.punctuate(PunctuationType::StreamTime, st)?;
        }
        self.core.collector.check()?;
        Ok(n)
    }

    /// Counts a record the deserialization handler skipped, now that its turn has come, and
    /// writes it to the dead-letter topic if one is set.
    #[allow(clippy::too_many_arguments)]
    fn dead_letter_skipped(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp: i64,
        source: Option<&crate::record::SourceBytes>,
        error: &StreamsError,
        source_node: usize,
    ) -> Result<()> {
        self.metrics.dropped += 1;
        let Some(dlq) = self.core.handlers.dead_letter_topic.clone() else {
            return Ok(());
        };
        let no_headers = Vec::new();
        let context = ErrorHandlerContext {
            topic: Some(topic),
            partition: Some(partition),
            offset: Some(offset),
            timestamp,
            headers: source.map_or(&no_headers, |s| &s.headers),
            processor_node_id: self.core.node_name(source_node),
            task_id: self.id,
            source_raw_key: source.and_then(|s| s.key.as_deref()),
            source_raw_value: source.and_then(|s| s.value.as_deref()),
        };
        let headers = dead_letter_record(&context, error, None);
        self.core.collector.send(
            &dlq,
            None,
            context.source_raw_key,
            context.source_raw_value,
            timestamp,
            &headers,
        )
    }

    /// Fires wall-clock punctuations due at the clock's current time.
    pub(crate) fn punctuate_wall_clock(&mut self) -> Result<bool> {
        let now = self.core.clock.now_ms();
        self.core.collector.set_task(self.id);
        self.core.round_started_ms = now;
        let fired = self.core.punctuate(PunctuationType::WallClockTime, now);
        self.metrics.dropped += std::mem::take(&mut self.core.dropped);
        fired
    }

    /// First half of a commit: write every cache out (forwarding what it emits, upstream stores
    /// first) and make the stores durable. The caller then waits for the producer, checkpoints
    /// and commits [`Self::committable_offsets`].
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.core.collector.set_task(self.id);
        self.core.round_started_ms = self.core.clock.now_ms();
        for i in 0..self.core.stores.len() {
            let entries = self.core.stores[i].cell.with_stack(|s| s.flush_cache())?;
            if !entries.is_empty() {
                self.core.run_listener(i, entries)?;
            }
            self.core.forward_evicted()?;
        }
        for s in &self.core.stores {
            s.cell.flush()?;
        }
        self.core.collector.check()
    }

    /// Offsets to commit: the next offset of every input partition this task has moved on.
    pub(crate) fn committable_offsets(&self) -> Vec<(String, i32, i64)> {
        self.queues.offsets()
    }

    /// Closes processors and stores. The caller commits first when closing cleanly.
    pub(crate) fn close(mut self) {
        self.core.close_processors();
        for s in &self.core.stores {
            if let Err(e) = s.cell.with_stack(|st| st.close()) {
                tracing::warn!(task = %self.id, store = %s.name, error = %e, "closing store failed");
            }
        }
    }

    /// Direct access to a store's typed handle (the test driver reads stores with it).
    pub(crate) fn store_handle(&self, name: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        self.core.store(name).map(|s| s.handle.clone())
    }

    /// The task's stream time.
    #[cfg(test)]
    pub(crate) fn stream_time(&self) -> i64 {
        self.core.stream_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::NullCollector;
    use crate::processor::{Processor, ProcessorContext};
    use crate::record::Record;
    use crate::serde::Serdes;
    use crate::time::ManualClock;
    use std::sync::Mutex;

    struct Recorder(Arc<Mutex<Vec<(String, i64)>>>);
    impl Processor for Recorder {
        type KIn = String;
        type VIn = String;
        type KOut = String;
        type VOut = String;
        fn process(
            &mut self,
            ctx: &mut ProcessorContext<'_, String, String>,
            r: Record<String, String>,
        ) -> Result<()> {
            self.0.lock().unwrap().push((
                format!("{}:{}", ctx.topic().unwrap(), r.value),
                ctx.current_stream_time_ms(),
            ));
            Ok(())
        }
    }

    fn env() -> TaskEnv {
        TaskEnv {
            application_id: "app".into(),
            collector: Arc::new(NullCollector),
            clock: Arc::new(ManualClock::new(0)),
            state_dir: None,
            cache_budget: None,
            rocksdb: Arc::new(RocksDbConfig::default()),
            handlers: crate::handlers::ErrorHandlers::default(),
            lock_timeout: Duration::from_secs(1),
            globals: Arc::default(),
            exactly_once: false,
            max_task_idle_ms: -1,
            time_store_operations: false,
        }
    }

    fn raw(topic: &str, offset: i64, ts: i64, value: &str) -> RawRecord {
        RawRecord {
            topic: topic.into(),
            partition: 2,
            offset,
            timestamp: ts,
            key: Some(b"k".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_task_processes_its_partitions_in_timestamp_order_and_tracks_offsets() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut t = Topology::new();
        t.add_source("src", &["a", "b"], Serdes::string(), Serdes::string())
            .unwrap();
        let s2 = seen.clone();
        t.add_processor("rec", move |_| Ok(Recorder(s2.clone())), &["src"])
            .unwrap();
        let t = Arc::new(t);
        let sub = t.subtopologies().remove(0);
        let env = env();
        let mut task = StreamTask::new(t, &sub, 2, &env).unwrap();
        assert_eq!(task.id.to_string(), "0_2");
        task.initialize().unwrap();
        task.add_records([raw("a", 10, 300, "a1"), raw("a", 11, 100, "a2")])
            .unwrap();
        task.add_records([raw("b", 5, 200, "b1"), raw("b", 6, 400, "b2")])
            .unwrap();
        assert_eq!(task.buffered(), 4);
        assert_eq!(task.process(usize::MAX).unwrap(), 4);
        let seen = seen.lock().unwrap().clone();
        // Heads are compared across partitions; within a partition the order is kept.
        assert_eq!(
            seen,
            vec![
                ("b:b1".into(), 200),
                ("a:a1".into(), 300),
                ("a:a2".into(), 300),
                ("b:b2".into(), 400)
            ]
        );
        let mut offsets = task.committable_offsets();
        offsets.sort();
        assert_eq!(offsets, vec![("a".into(), 2, 12), ("b".into(), 2, 7)]);
        assert_eq!(task.stream_time(), 400);
    }

    /// KIP-695 (`max.task.idle.ms`): an empty partition whose lag is not known, or with
    /// records left on the cluster, holds the task back until they come; one fetched to its end
    /// holds it back `max.task.idle.ms` longer, then the task goes on and counts enforced
    /// processing; `-1` never waits.
    #[test]
    fn an_empty_partition_holds_the_task_back_while_its_records_come_and_max_task_idle_after() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut t = Topology::new();
        t.add_source("src", &["a", "b"], Serdes::string(), Serdes::string())
            .unwrap();
        let s2 = seen.clone();
        t.add_processor("rec", move |_| Ok(Recorder(s2.clone())), &["src"])
            .unwrap();
        let t = Arc::new(t);
        let sub = t.subtopologies().remove(0);
        let clock = ManualClock::new(1_000);
        let mut env = env();
        env.clock = Arc::new(clock.clone());
        env.max_task_idle_ms = 500;
        let mut task = StreamTask::new(t.clone(), &sub, 2, &env).unwrap();
        task.initialize().unwrap();
        task.add_records([raw("a", 10, 300, "a1")]).unwrap();

        // `b`'s lag is unknown: wait, however long.
        assert_eq!(task.process(usize::MAX).unwrap(), 0);
        assert!(task.waiting);
        // `b` holds records 0..2 not fetched yet: wait for them while they move closer.
        task.note_position("b", 2, Some(0), Some(2));
        assert_eq!(task.process(usize::MAX).unwrap(), 0);
        clock.advance(999);
        assert_eq!(task.process(usize::MAX).unwrap(), 0);
        // They come: ordered against `a`'s. Then `b` is fetched to its end (2): `a`'s records
        // wait 500 ms for more of `b`'s.
        task.add_records([raw("b", 0, 100, "b0"), raw("b", 1, 200, "b1")])
            .unwrap();
        assert_eq!(task.process(usize::MAX).unwrap(), 2);
        task.add_records([raw("a", 11, 500, "a2")]).unwrap();
        clock.advance(499);
        assert_eq!(task.process(usize::MAX).unwrap(), 0);
        clock.advance(1);
        assert_eq!(task.process(usize::MAX).unwrap(), 2);
        assert!(!task.waiting);
        assert_eq!(task.metrics.enforced, 2);
        assert_eq!(
            seen.lock()
                .unwrap()
                .iter()
                .map(|(v, _)| v.as_str())
                .collect::<Vec<_>>(),
            vec!["b:b0", "b:b1", "a:a1", "a:a2"]
        );

        // `b`'s log ends with a transaction marker (offset 2): its lag of 1 never moves, and
        // after a second it counts as fetched to its end.
        task.note_position("b", 2, None, Some(3));
        task.add_records([raw("a", 12, 700, "a3")]).unwrap();
        assert_eq!(task.process(usize::MAX).unwrap(), 0);
        clock.advance(999);
        assert_eq!(task.process(usize::MAX).unwrap(), 0);
        clock.advance(1);
        assert_eq!(
            task.process(usize::MAX).unwrap(),
            0,
            "then max.task.idle.ms"
        );
        clock.advance(500);
        assert_eq!(task.process(usize::MAX).unwrap(), 1);
        assert_eq!(task.metrics.enforced, 3);

        // `max.task.idle.ms=-1`: never wait.
        env.max_task_idle_ms = -1;
        let mut task = StreamTask::new(t, &sub, 2, &env).unwrap();
        task.initialize().unwrap();
        task.add_records([raw("a", 10, 300, "a1")]).unwrap();
        assert_eq!(task.process(usize::MAX).unwrap(), 1);
    }

    #[test]
    fn a_record_for_another_partition_is_refused() {
        let mut t = Topology::new();
        t.add_source("src", &["a"], Serdes::string(), Serdes::string())
            .unwrap();
        let t = Arc::new(t);
        let sub = t.subtopologies().remove(0);
        let env = env();
        let mut task = StreamTask::new(t, &sub, 0, &env).unwrap();
        let err = task
            .add_records([raw("a", 1, 1, "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("topic `a` partition 2 offset 1"), "{err}");
    }

    /// Exactly-once: a persistent store holds writes back until the task's transaction
    /// commits, and records the changelog offset of each commit itself. However the task ended
    /// (here: dropped, as a crash leaves it), the store comes back as of its last commit, and
    /// restoration starts from that commit's offset, not from the beginning.
    #[test]
    fn under_exactly_once_a_store_comes_back_as_of_its_last_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Topology::new();
        t.add_source("src", &["in"], Serdes::string(), Serdes::string())
            .unwrap();
        t.add_processor("rec", |_| Ok(Recorder(Arc::default())), &["src"])
            .unwrap();
        t.add_state_store(
            crate::state::Stores::persistent_key_value("counts", Serdes::string(), Serdes::i64()),
            &["rec"],
        )
        .unwrap();
        let t = Arc::new(t);
        let sub = t.subtopologies().remove(0);
        let mut env = env();
        env.exactly_once = true;
        env.state_dir = Some(Arc::new(
            state_store::StateDirectory::new(dir.path(), "app").unwrap(),
        ));
        const CHANGELOG: &str = "app-counts-changelog";
        let store = |task: &StreamTask| {
            task.store_handle("counts")
                .and_then(|h| {
                    h.downcast_ref::<crate::state::KeyValueStore<String, i64>>()
                        .cloned()
                })
                .unwrap()
        };
        let count = |task: &StreamTask| store(task).get(&"k".to_string()).unwrap();
        let restored_from = |task: &StreamTask| task.changelogs()[0].checkpoint;

        // Restored up to offset 1: the store records it with the restored record.
        let mut task = StreamTask::new(t.clone(), &sub, 0, &env).unwrap();
        assert_eq!(
            restored_from(&task),
            None,
            "a new store restores from the beginning"
        );
        let v = 7i64.to_be_bytes().to_vec();
        task.restore_batch("counts", &[(b"k".to_vec(), Some(v))])
            .unwrap();
        task.restored_to(CHANGELOG, 0, 1).unwrap();
        drop(task);
        let task = StreamTask::new(t.clone(), &sub, 0, &env).unwrap();
        assert_eq!(count(&task), Some(7));
        assert_eq!(restored_from(&task), Some(1));

        // A write the transaction never committed: read back while it is held, gone after.
        store(&task).put(&"k".to_string(), &9).unwrap();
        assert_eq!(count(&task), Some(9), "reads see the writes held back");
        assert!(task.uncommitted_bytes() > 0);
        drop(task);
        let mut task = StreamTask::new(t.clone(), &sub, 0, &env).unwrap();
        assert_eq!(
            count(&task),
            Some(7),
            "the uncommitted write never reached disk"
        );

        // Committed: the store takes it with the changelog offset the commit reached.
        store(&task).put(&"k".to_string(), &9).unwrap();
        task.note_acked(&HashMap::from([((CHANGELOG.to_string(), 0), 5)]));
        task.commit_stores().unwrap();
        assert_eq!(task.uncommitted_bytes(), 0);
        drop(task);
        let task = StreamTask::new(t.clone(), &sub, 0, &env).unwrap();
        assert_eq!(count(&task), Some(9));
        assert_eq!(restored_from(&task), Some(5), "only the tail is restored");
        drop(task);

        // A store written under at-least-once has no stored offsets: under exactly-once it
        // cannot be placed, so it is emptied and restored from the beginning.
        let dir = tempfile::tempdir().unwrap();
        env.state_dir = Some(Arc::new(
            state_store::StateDirectory::new(dir.path(), "app").unwrap(),
        ));
        env.exactly_once = false;
        let task = StreamTask::new(t.clone(), &sub, 0, &env).unwrap();
        store(&task).put(&"k".to_string(), &3).unwrap();
        task.close();
        env.exactly_once = true;
        let task = StreamTask::new(t, &sub, 0, &env).unwrap();
        assert_eq!(count(&task), None);
        assert_eq!(restored_from(&task), None);
    }
}
