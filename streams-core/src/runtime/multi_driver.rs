//! [`MultiInstanceTestDriver`]: several instances of one topology over an in-memory cluster,
//! with rebalances and crashes injected deterministically, so that scaling and failover are
//! tested like single-instance semantics are with the `TopologyTestDriver`.
//!
//! Each instance runs the real task lifecycle (assignment halves, restoration, standbys,
//! commits) behind a simulated client; the group's assignments come from the real task
//! assignor, cooperative follow-ups included. Time does not pass on its own: wall-clock
//! punctuation does not run.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use state_store::RocksDbConfig;

use super::client::ThreadClient;
use super::sim::{lock, Cluster, SharedCluster, SimClient, SimCollector, SimRecord};
use super::task_manager::TaskManager;
use super::topics::Layout;
use super::Shared;
use crate::assignment::{
    self, AssignmentInput, FollowUp, Member, OffsetSum, ProcessId, Subscription, TopicPartition,
};
use crate::config::{ResolvedConfig, StreamsConfig};
use crate::error::{Result, StreamsError};
use crate::record::RecordBytes;
use crate::serde::SerdeRef;
use crate::task::{TaskEnv, TaskMetrics};
use crate::task_id::TaskId;
use crate::time::ManualClock;
use crate::topology::Topology;

/// Several instances of one application on a simulated cluster.
///
/// ```
/// use streams_core::{MultiInstanceTestDriver, Processor, ProcessorContext, Record, StreamsConfig, Topology, serde::Serdes};
///
/// struct Upper;
/// impl Processor for Upper {
///     type KIn = String; type VIn = String; type KOut = String; type VOut = String;
///     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> streams_core::Result<()> {
///         let v = r.value.to_uppercase();
///         ctx.forward(r.with_value(v))
///     }
/// }
/// let mut t = Topology::new();
/// t.add_source("in", &["input"], Serdes::string(), Serdes::string()).unwrap();
/// t.add_processor("upper", |_| Ok(Upper), &["in"]).unwrap();
/// t.add_sink("out", "output", Serdes::string(), Serdes::string(), &["upper"]).unwrap();
/// let mut d = MultiInstanceTestDriver::new(t, StreamsConfig::new("app", "unused:9092"), 4).unwrap();
/// let a = d.start_instance().unwrap();
/// let b = d.start_instance().unwrap();
/// for i in 0..20 {
///     d.pipe_input("input", &Serdes::string(), &Serdes::string(), format!("k{i}"), "x".into(), i).unwrap();
/// }
/// d.run_until_idle().unwrap();
/// d.stop_instance(a).unwrap(); // b takes every task over
/// assert_eq!(d.tasks()[&b].len(), 4);
/// let out = d.read_output("output", &Serdes::string(), &Serdes::string()).unwrap();
/// assert_eq!(out.len(), 20);
/// ```
pub struct MultiInstanceTestDriver {
    config: Arc<ResolvedConfig>,
    topology: Arc<Topology>,
    layout: Arc<Layout>,
    cluster: SharedCluster,
    clock: Arc<ManualClock>,
    instances: BTreeMap<usize, Instance>,
    next_id: usize,
    rebalances: u64,
}

struct Instance {
    tm: TaskManager,
    client: SimClient,
}

impl MultiInstanceTestDriver {
    /// A driver for `topology`, every topic of which has `partitions` partitions. Topologies
    /// with global tables are refused (the driver has no global thread yet).
    pub fn new(topology: Topology, config: StreamsConfig, partitions: i32) -> Result<Self> {
        let config = config.resolve()?;
        topology.validate(config.ensure_explicit_naming)?;
        if !topology.global_topics().is_empty() {
            return Err(StreamsError::topology(
                "",
                "the multi-instance test driver does not run global tables yet",
            ));
        }
        if partitions < 1 {
            return Err(StreamsError::topology(
                "",
                format!("{partitions} partitions: the driver needs at least 1"),
            ));
        }
        let layout = Layout::uniform(&topology, &config.application_id, partitions);
        Ok(MultiInstanceTestDriver {
            config: Arc::new(config),
            topology: Arc::new(topology),
            layout: Arc::new(layout),
            cluster: Cluster::new(partitions),
            clock: Arc::new(ManualClock::new(0)),
            instances: BTreeMap::new(),
            next_id: 0,
            rebalances: 0,
        })
    }

    /// Starts an instance; the group rebalances to completion. Returns the instance's id.
    pub fn start_instance(&mut self) -> Result<usize> {
        let id = self.next_id;
        self.next_id += 1;
        let config = &self.config;
        let tm = TaskManager {
            config: config.clone(),
            topology: self.topology.clone(),
            layout: self.layout.clone(),
            env: TaskEnv {
                application_id: config.application_id.as_str().into(),
                collector: Arc::new(SimCollector(self.cluster.clone())),
                clock: self.clock.clone(),
                state_dir: None,
                cache_budget: None,
                rocksdb: Arc::new(RocksDbConfig::default()),
                handlers: config.handlers.clone(),
                lock_timeout: Duration::from_secs(1),
                globals: Arc::default(),
                exactly_once: false,
                // The simulated cluster hands every record over at once: nothing to wait for.
                max_task_idle_ms: -1,
                time_store_operations: false,
            },
            active: BTreeMap::new(),
            restoring: VecDeque::new(),
            standby: BTreeMap::new(),
            states: BTreeMap::new(),
            standby_lags: BTreeMap::new(),
            standby_behind: None,
            last_position_lookup: None,
            restore_slice: Duration::MAX,
            by_partition: HashMap::new(),
            last_partition: None,
            topics: HashMap::new(),
            closed_totals: TaskMetrics::default(),
            commits: 0,
            sensors: Default::default(),
            task_sensors: BTreeMap::new(),
            shared: Arc::new(Shared::new(1)),
            index: 0,
            admin: None,
            last_purge: Instant::now(),
            last_cleanup: Instant::now(),
            paused: Default::default(),
            node_sensors: Default::default(),
            details: Default::default(),
        };
        let client = SimClient::new(self.cluster.clone());
        self.instances.insert(id, Instance { tm, client });
        self.rebalance()?;
        Ok(id)
    }

    /// Stops an instance gracefully: it commits and closes its tasks, then the group
    /// rebalances. Nothing is processed twice.
    pub fn stop_instance(&mut self, id: usize) -> Result<()> {
        let mut inst = self.take(id)?;
        inst.tm.commit(&mut inst.client)?;
        inst.tm.close_all();
        self.rebalance()
    }

    /// Kills an instance: nothing more is committed and its local state is gone. Its tasks
    /// move, restore from their changelogs (or promote a standby) and read from the last
    /// commit: records processed since are processed again (at-least-once).
    pub fn crash_instance(&mut self, id: usize) -> Result<()> {
        drop(self.take(id)?);
        self.rebalance()
    }

    fn take(&mut self, id: usize) -> Result<Instance> {
        self.instances.remove(&id).ok_or_else(|| {
            StreamsError::illegal_state(
                format!("instance {id}"),
                format!("no running instance {id}"),
            )
        })
    }

    /// Appends a record to `topic`, in the partition Kafka's default partitioner gives its key.
    pub fn pipe_input<K: 'static, V: 'static>(
        &mut self,
        topic: &str,
        key_serde: &SerdeRef<K>,
        value_serde: &SerdeRef<V>,
        key: K,
        value: V,
        timestamp: i64,
    ) -> Result<()> {
        let ser = |target: &str, r: std::result::Result<Option<Vec<u8>>, _>| {
            r.map_err(|source| StreamsError::Serialization {
                target: target.to_string(),
                source,
            })
        };
        let k = ser(topic, key_serde.serialize(topic, &key))?;
        let v = ser(topic, value_serde.serialize(topic, &value))?;
        lock(&self.cluster).append(
            topic,
            None,
            SimRecord {
                key: k,
                value: v,
                timestamp,
                headers: Vec::new(),
            },
        )?;
        Ok(())
    }

    /// Every instance, in id order, reads what is new on its partitions and processes it,
    /// without committing. Returns the records processed.
    pub fn process(&mut self) -> Result<u64> {
        let mut n = 0;
        for inst in self.instances.values_mut() {
            let before = inst.tm.totals().processed;
            let mut fetched = Vec::new();
            {
                let c = lock(&self.cluster);
                for ((t, p), pos) in inst.client.positions.iter_mut() {
                    let new = c.read(t, *p, *pos);
                    for (i, r) in new.iter().enumerate() {
                        fetched.push((t.clone(), *p, *pos + i as i64, r.clone()));
                    }
                    *pos += new.len() as i64;
                }
            }
            for (t, p, offset, r) in &fetched {
                inst.tm.add_record(RecordBytes {
                    topic: t,
                    partition: *p,
                    offset: *offset,
                    timestamp: r.timestamp,
                    key: r.key.as_deref(),
                    value: r.value.as_deref(),
                    headers: r.headers.clone(),
                })?;
            }
            while inst.tm.process()? > 0 {}
            n += inst.tm.totals().processed - before;
        }
        Ok(n)
    }

    /// Every instance commits, and brings its standbys up to date.
    pub fn commit(&mut self) -> Result<()> {
        for inst in self.instances.values_mut() {
            inst.tm.commit(&mut inst.client)?;
            inst.tm.update_standbys(&mut inst.client, true)?;
        }
        Ok(())
    }

    /// Processes and commits until no instance has anything left to process (repartition
    /// topics included).
    pub fn run_until_idle(&mut self) -> Result<()> {
        loop {
            let n = self.process()?;
            self.commit()?;
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// Each running instance's active tasks.
    pub fn tasks(&self) -> BTreeMap<usize, Vec<TaskId>> {
        self.instances
            .iter()
            .map(|(id, i)| (*id, i.tm.active.keys().copied().collect()))
            .collect()
    }

    /// Each running instance's standby tasks.
    pub fn standby_tasks(&self) -> BTreeMap<usize, Vec<TaskId>> {
        self.instances
            .iter()
            .map(|(id, i)| (*id, i.tm.standby.keys().copied().collect()))
            .collect()
    }

    /// Records restored into stores so far, per running instance (standby reads included).
    pub fn restored(&self) -> BTreeMap<usize, u64> {
        self.instances
            .iter()
            .map(|(id, i)| (*id, i.tm.totals().restored))
            .collect()
    }

    /// How many rebalances (assignments, follow-ups included) the group went through.
    pub fn rebalances(&self) -> u64 {
        self.rebalances
    }

    /// Every record written to `topic`, partition by partition, in offset order.
    pub fn read_output<K: 'static, V: 'static>(
        &self,
        topic: &str,
        key_serde: &SerdeRef<K>,
        value_serde: &SerdeRef<V>,
    ) -> Result<Vec<(K, V)>> {
        let de = |part: &'static str, source| StreamsError::Deserialization {
            part,
            topic: topic.to_string(),
            partition: -1,
            offset: -1,
            source,
        };
        lock(&self.cluster)
            .all(topic)
            .into_iter()
            .map(|r| {
                Ok((
                    key_serde
                        .deserialize(topic, r.key.as_deref())
                        .map_err(|e| de("key", e))?,
                    value_serde
                        .deserialize(topic, r.value.as_deref())
                        .map_err(|e| de("value", e))?,
                ))
            })
            .collect()
    }

    /// Runs the assignor over the running instances and applies its answer the way the
    /// member and the stream threads do: everyone revokes first, then everyone adds and
    /// restores; a follow-up (tasks withheld until revoked) runs at once.
    fn rebalance(&mut self) -> Result<()> {
        loop {
            self.rebalances += 1;
            let members = self
                .instances
                .iter()
                .map(|(id, inst)| {
                    let owned = inst.tm.owned();
                    let mut sums = BTreeMap::new();
                    for t in &owned.active {
                        sums.insert(*t, OffsetSum::RunningActive);
                    }
                    for t in &owned.standby {
                        sums.insert(*t, OffsetSum::Checkpointed(inst.tm.standby_offset_sum(*t)));
                    }
                    let mut process = [0u8; 16];
                    process[..8].copy_from_slice(&(*id as u64).to_be_bytes());
                    Member {
                        member_id: member_id(*id),
                        subscription: Subscription {
                            process_id: ProcessId(process),
                            num_threads: 1,
                            task_offset_sums: sums,
                            host: None,
                            client_tags: BTreeMap::new(),
                            owned: vec![owned],
                        },
                    }
                })
                .collect();
            let ends = {
                let c = lock(&self.cluster);
                self.layout
                    .assignor
                    .iter()
                    .flat_map(|s| c.ends(&s.changelog_topics, s.partitions))
                    .map(|(topic, partition, end)| (TopicPartition { topic, partition }, end))
                    .collect()
            };
            let input = AssignmentInput {
                members,
                subtopologies: self.layout.assignor.clone(),
                changelog_end_offsets: ends,
                now_ms: 0,
            };
            let group = assignment::assign(&input, &self.config.assignment);
            let mut plan = Vec::new();
            for (id, inst) in self.instances.iter_mut() {
                let t = group
                    .members
                    .get(&member_id(*id))
                    .and_then(|m| m.threads.first().cloned())
                    .unwrap_or_default();
                let standby: BTreeSet<TaskId> = t.standby.union(&t.warmup).copied().collect();
                inst.tm.revoke(&t.active, &standby, &mut inst.client)?;
                plan.push((*id, t.active, standby));
            }
            for (id, active, standby) in plan {
                let inst = self.instances.get_mut(&id).expect("planned above");
                inst.tm.add(&active, &standby)?;
                while inst.tm.restore_slice(&mut inst.client)? {}
                inst.tm.update_standbys(&mut inst.client, true)?;
            }
            if group.follow_up != Some(FollowUp::Immediately) {
                return Ok(());
            }
        }
    }
}

fn member_id(instance: usize) -> String {
    format!("instance-{instance}")
}

impl Drop for MultiInstanceTestDriver {
    fn drop(&mut self) {
        for (_, mut inst) in std::mem::take(&mut self.instances) {
            inst.tm.close_all();
            inst.client.unassign_all();
        }
    }
}
