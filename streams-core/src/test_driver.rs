//! [`TopologyTestDriver`]: runs a topology synchronously without a broker, with the same task
//! code the runtime uses. Pipe input with timestamps, read outputs, read stores, move the wall clock.
//!
//! As in Kafka Streams' driver, every sub-topology runs as one task (partition 0), records sent
//! to repartition topics are processed at once, and the driver commits after every input record
//! (unless [`TopologyTestDriver::commit_only_when_told`]),
//! so caches are flushed and every update is visible right away. Records piped to the topic of a
//! global store go straight into that store.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use state_store::{CacheBudget, RocksDbConfig};

use crate::collector::RecordCollector;
use crate::config::{ResolvedConfig, StreamsConfig};
use crate::error::{Result, StreamsError};
use crate::query::{HostedStores, Query, Role, StateQueryRequest, StateQueryResult};
use crate::record::{Headers, RawRecord, Record};
use crate::serde::SerdeRef;
use crate::state::{GlobalStores, KeyValueStore};
use crate::task::{StreamTask, TaskEnv, TaskMetrics};
use crate::time::ManualClock;
use crate::topology::Topology;

#[derive(Debug, Clone)]
struct Sent {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
    headers: Headers,
}

struct CapturingCollector {
    sent: Mutex<Vec<Sent>>,
    error: Mutex<Option<String>>,
    /// The producer's `message.max.bytes`: a larger record is refused at send, as librdkafka
    /// refuses it, so that production handlers can be tested.
    max_message_bytes: usize,
}

impl RecordCollector for CapturingCollector {
    fn send(
        &self,
        topic: &str,
        _partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &Headers,
    ) -> Result<()> {
        let size = key.map_or(0, <[u8]>::len)
            + value.map_or(0, <[u8]>::len)
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        if size > self.max_message_bytes {
            return Err(StreamsError::Production {
                topic: topic.to_string(),
                message: format!(
                    "Message production error: MessageSizeTooLarge (Broker: Message size too large): \
                     {size} bytes, more than message.max.bytes {}",
                    self.max_message_bytes
                ),
                retriable: false,
            });
        }
        self.sent.lock().expect("collector lock").push(Sent {
            topic: topic.to_string(),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
            headers: headers.clone(),
        });
        Ok(())
    }
    fn fail(&self, error: StreamsError) {
        self.error
            .lock()
            .expect("collector lock")
            .get_or_insert(error.to_string());
    }
    fn check(&self) -> Result<()> {
        match &*self.error.lock().expect("collector lock") {
            Some(e) => Err(StreamsError::Production {
                topic: "<test driver>".into(),
                message: e.clone(),
                retriable: false,
            }),
            None => Ok(()),
        }
    }
}

struct Inner {
    config: ResolvedConfig,
    topology: Arc<Topology>,
    tasks: Vec<StreamTask>,
    /// Physical topic -> index of the task reading it.
    readers: HashMap<String, usize>,
    /// Global stores, filled at once by records piped to their topics.
    globals: Arc<GlobalStores>,
    collector: Arc<CapturingCollector>,
    outputs: BTreeMap<String, VecDeque<Sent>>,
    next_offset: HashMap<String, i64>,
    clock: ManualClock,
    /// Whether every input record is followed by a commit (Kafka Streams' driver does that);
    /// otherwise caches are flushed only by [`TopologyTestDriver::commit`], as the runtime
    /// flushes them once per commit interval.
    commit_each_record: bool,
}

/// Runs a [`Topology`] without Kafka.
///
/// ```
/// use streams_core::{Topology, TopologyTestDriver, StreamsConfig, serde::Serdes};
/// let mut t = Topology::new();
/// t.add_source("in", &["in"], Serdes::string(), Serdes::string()).unwrap();
/// t.add_sink("out", "out", Serdes::string(), Serdes::string(), &["in"]).unwrap();
/// let driver = TopologyTestDriver::new(t, StreamsConfig::new("app", "unused:9092")).unwrap();
/// let input = driver.create_input_topic("in", Serdes::string(), Serdes::string());
/// let output = driver.create_output_topic("out", Serdes::string(), Serdes::string());
/// input.pipe_input("k".to_string(), "v".to_string());
/// assert_eq!(output.read_key_value(), ("k".to_string(), "v".to_string()));
/// assert!(output.is_empty());
/// ```
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
}

impl TopologyTestDriver {
    /// Builds every task of `topology` (in memory) and initializes its processors. The wall
    /// clock starts at 0.
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        Self::with_start_time(topology, config, 0)
    }

    /// Like [`Self::new`] with the wall clock starting at `wall_clock_ms`.
    pub fn with_start_time(
        topology: Topology,
        config: StreamsConfig,
        wall_clock_ms: i64,
    ) -> Result<Self> {
        let config = config.resolve()?;
        topology.validate(config.ensure_explicit_naming)?;
        let topology = Arc::new(topology);
        let max_message_bytes = match config.producer.get("message.max.bytes") {
            Some(v) => v.trim().parse().map_err(|e| {
                StreamsError::config("message.max.bytes", format!("`{v}` is not valid: {e}"))
            })?,
            None => 1_000_000,
        };
        let collector = Arc::new(CapturingCollector {
            sent: Mutex::default(),
            error: Mutex::default(),
            max_message_bytes,
        });
        let clock = ManualClock::new(wall_clock_ms);
        let globals = Arc::new(topology.open_global_stores());
        let env = TaskEnv {
            application_id: config.application_id.as_str().into(),
            collector: collector.clone(),
            clock: Arc::new(clock.clone()),
            state_dir: None,
            cache_budget: (config.cache_max_bytes > 0)
                .then(|| CacheBudget::new(config.cache_max_bytes)),
            rocksdb: Arc::new(RocksDbConfig::default()),
            handlers: config.handlers.clone(),
            lock_timeout: Duration::from_secs(1),
            globals: globals.clone(),
            exactly_once: false,
            // Piped records are processed at once, as in Kafka Streams' driver: nothing is ever
            // left to fetch, so no task waits for a partition (KIP-695).
            max_task_idle_ms: -1,
            time_store_operations: false,
        };
        let mut tasks = Vec::new();
        let mut readers = HashMap::new();
        for sub in topology.subtopologies() {
            let mut task = StreamTask::new(topology.clone(), &sub, 0, &env)?;
            task.initialize()?;
            for (topic, _) in task.input_partitions() {
                readers.insert(topic, tasks.len());
            }
            tasks.push(task);
        }
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(Inner {
                config,
                topology,
                tasks,
                readers,
                globals,
                collector,
                outputs: BTreeMap::new(),
                next_offset: HashMap::new(),
                clock,
                commit_each_record: true,
            })),
        })
    }

    /// An input topic to pipe typed records into.
    pub fn create_input_topic<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            driver: self.inner.clone(),
            topic: topic.to_string(),
            key_serde,
            value_serde,
            next_timestamp: RefCell::new(0),
        }
    }

    /// An output topic to read typed records from.
    pub fn create_output_topic<K, V>(
        &self,
        topic: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            driver: self.inner.clone(),
            topic: topic.to_string(),
            key_serde,
            value_serde,
            _t: PhantomData,
        }
    }

    /// Pipes one raw record into `topic` and processes everything it causes.
    pub fn pipe_raw(
        &self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        self.inner
            .borrow_mut()
            .pipe(topic, key, value, timestamp, headers)
    }

    /// Stops committing after every input record: from now on caches are flushed (and what they
    /// hold forwarded) only when they evict, when a windowed store drops expired segments, or on
    /// [`Self::commit`]. This is how the runtime processes the records between two commits, so
    /// tests can drive the paths that per-record commits never reach.
    pub fn commit_only_when_told(&self) {
        self.inner.borrow_mut().commit_each_record = false;
    }

    /// Commits every task: writes out its caches, forwarding what they hold.
    pub fn commit(&self) -> Result<()> {
        self.inner.borrow_mut().commit_all()
    }

    /// Moves the wall clock forward and fires the wall-clock punctuations that are due.
    pub fn advance_wall_clock_time(&self, by: Duration) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.clock.advance(by.as_millis() as i64);
        for i in 0..inner.tasks.len() {
            inner.tasks[i].punctuate_wall_clock()?;
        }
        inner.settle().map(|_| ())
    }

    /// The store `name` of the task that owns it.
    pub fn get_key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Option<KeyValueStore<K, V>> {
        self.get_store::<KeyValueStore<K, V>>(name)
    }

    /// The store `name` as handle type `S` (`WindowStore<K, V>`, `SessionStore<K, V>`, ...),
    /// from the first task that has it.
    pub fn get_store<S: Clone + 'static>(&self, name: &str) -> Option<S> {
        let inner = self.inner.borrow();
        inner
            .tasks
            .iter()
            .find_map(|t| t.store_handle(name))
            .or_else(|| inner.globals.handle(name))
            .and_then(|h| h.downcast_ref::<S>().cloned())
    }

    /// Runs an interactive query as [`KafkaStreams::query`](crate::KafkaStreams::query) does,
    /// against the driver's tasks (one partition, 0, per store, always active).
    ///
    /// ```
    /// use streams_core::{KeyQuery, KeyValueStore, Processor, ProcessorContext, Record, Result};
    /// use streams_core::{StateQueryRequest, Stores, StreamsConfig, Topology, TopologyTestDriver};
    /// use streams_core::serde::Serdes;
    ///
    /// /// Keeps the last value of each key in its store.
    /// struct Last(KeyValueStore<String, String>);
    /// impl Processor for Last {
    ///     type KIn = String; type VIn = String; type KOut = String; type VOut = String;
    ///     fn process(&mut self, _: &mut ProcessorContext<'_, String, String>, r: Record<String, String>) -> Result<()> {
    ///         self.0.put(&r.key, &r.value)
    ///     }
    /// }
    /// let mut t = Topology::new();
    /// t.add_source("in", &["in"], Serdes::string(), Serdes::string()).unwrap();
    /// t.add_processor("last", |ctx| Ok(Last(ctx.get_state_store("last")?)), &["in"]).unwrap();
    /// t.add_state_store(Stores::persistent_key_value("last", Serdes::string(), Serdes::string()), &["last"]).unwrap();
    /// let driver = TopologyTestDriver::new(t, StreamsConfig::new("app", "unused:9092")).unwrap();
    /// driver.create_input_topic("in", Serdes::string(), Serdes::string()).pipe_input("k".into(), "v".into());
    /// let answer = driver
    ///     .query(StateQueryRequest::in_store("last").with_query(KeyQuery::<String, String>::with_key("k".into())))
    ///     .unwrap()
    ///     .into_only_partition_result();
    /// assert_eq!(answer.unwrap().unwrap(), Some("v".to_string()));
    /// ```
    pub fn query<Q: Query>(
        &self,
        request: StateQueryRequest<Q>,
    ) -> Result<StateQueryResult<Q::Output>> {
        let inner = self.inner.borrow();
        if !inner
            .topology
            .store_names()
            .iter()
            .any(|s| s == request.store())
        {
            return Err(StreamsError::StoreAccess {
                store: request.store().to_string(),
                message: "the topology has no store by that name".into(),
            });
        }
        let hosted = HostedStores::default();
        for task in &inner.tasks {
            hosted.add(task.id, 0, Role::Running, task.stores());
            hosted.set_position(task.id, &task.committable_offsets());
        }
        Ok(crate::query::execute(&hosted, &request, Some(1)))
    }

    /// Metrics summed over the tasks (processed, dropped records).
    pub fn metrics(&self) -> TaskMetrics {
        let inner = self.inner.borrow();
        inner.tasks.iter().fold(TaskMetrics::default(), |mut m, t| {
            m.processed += t.metrics.processed;
            m.dropped += t.metrics.dropped;
            m.restored += t.metrics.restored;
            m
        })
    }

    /// Names of the topics that received output (not counting internal topics).
    pub fn output_topic_names(&self) -> Vec<String> {
        self.inner.borrow().outputs.keys().cloned().collect()
    }

    /// The topology being driven, as text.
    pub fn describe(&self) -> String {
        self.inner.borrow().topology.describe().to_string()
    }
}

impl Inner {
    fn pipe(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        if self.globals.reads(topic) {
            // A global store is updated at once, as if its global thread were always caught up.
            // Records without a key cannot be stored and are ignored, as Kafka Streams does.
            return match key {
                Some(k) => self.globals.apply(topic, &[(k, value)]),
                None => Ok(()),
            };
        }
        let Some(&task) = self.readers.get(topic) else {
            return Err(StreamsError::topology(
                topic,
                format!("topic `{topic}` is not read by the topology"),
            ));
        };
        self.feed(task, topic, key, value, timestamp, headers)?;
        self.settle()?;
        if self.commit_each_record {
            // As Kafka Streams' driver does.
            self.commit_all()?;
        }
        Ok(())
    }

    fn commit_all(&mut self) -> Result<()> {
        // A task's flush can send records that another task (or an earlier one in this round)
        // processes into its cache: flush again until a round moves nothing, so that a record's
        // whole path through repartition topics reaches the outputs.
        loop {
            let mut moved = false;
            for i in 0..self.tasks.len() {
                self.tasks[i].flush()?;
                moved |= self.settle()?;
            }
            if !moved {
                return Ok(());
            }
        }
    }

    fn feed(
        &mut self,
        task: usize,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<()> {
        let offset = self.next_offset.entry(topic.to_string()).or_insert(0);
        let raw = RawRecord {
            topic: topic.into(),
            partition: 0,
            offset: *offset,
            timestamp,
            key,
            value,
            headers,
        };
        *offset += 1;
        self.tasks[task].add_records([raw])?;
        self.tasks[task].process(usize::MAX)?;
        Ok(())
    }

    /// Routes what the tasks sent: repartition topics back into their reading task, changelogs
    /// nowhere, the rest to the output queues; repeats until nothing moves. Whether anything
    /// but changelog records moved.
    fn settle(&mut self) -> Result<bool> {
        let mut moved = false;
        loop {
            let sent = std::mem::take(&mut *self.collector.sent.lock().expect("collector lock"));
            if sent.is_empty() {
                return Ok(moved);
            }
            let prefix = format!("{}-", self.config.application_id);
            for s in sent {
                let changelog = s.topic.starts_with(&prefix) && s.topic.ends_with("-changelog");
                if changelog {
                    continue;
                }
                moved = true;
                let internal = s.topic.starts_with(&prefix)
                    && self.topology.repartition_topics.keys().any(|t| {
                        self.topology.physical_topic(&self.config.application_id, t) == s.topic
                    });
                if let (true, Some(k)) = (self.globals.reads(&s.topic), &s.key) {
                    self.globals
                        .apply(&s.topic, &[(k.clone(), s.value.clone())])?;
                }
                // A topic the topology also reads is processed again, as on a real cluster.
                if let Some(&task) = self.readers.get(&s.topic) {
                    self.feed(
                        task,
                        &s.topic,
                        s.key.clone(),
                        s.value.clone(),
                        s.timestamp,
                        s.headers.clone(),
                    )?;
                }
                if internal {
                    continue;
                }
                self.outputs
                    .entry(s.topic.clone())
                    .or_default()
                    .push_back(s);
            }
        }
    }
}

/// Typed input for the driver; records get increasing offsets and, unless given, timestamps.
pub struct TestInputTopic<K, V> {
    driver: Rc<RefCell<Inner>>,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    next_timestamp: RefCell<i64>,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Pipes a record with the topic's current timestamp (0, or the last one given); panics on error.
    pub fn pipe_input(&self, key: K, value: V) {
        let ts = *self.next_timestamp.borrow();
        self.try_pipe_input(key, value, ts)
            .unwrap_or_else(|e| panic!("pipe_input to `{}`: {e}", self.topic))
    }

    /// Pipes a record with `timestamp`; panics on error.
    pub fn pipe_input_at(&self, key: K, value: V, timestamp: i64) {
        self.try_pipe_input(key, value, timestamp)
            .unwrap_or_else(|e| panic!("pipe_input to `{}`: {e}", self.topic))
    }

    /// Pipes a record with `timestamp` and returns what processing it raised.
    pub fn try_pipe_input(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        let ser = |e| StreamsError::Serialization {
            target: self.topic.clone(),
            source: e,
        };
        let k = self.key_serde.serialize(&self.topic, &key).map_err(ser)?;
        let v = self
            .value_serde
            .serialize(&self.topic, &value)
            .map_err(ser)?;
        *self.next_timestamp.borrow_mut() = timestamp;
        self.driver
            .borrow_mut()
            .pipe(&self.topic, k, v, timestamp, Vec::new())
    }

    /// Pipes a record whose value is null (a tombstone for tables).
    pub fn pipe_tombstone(&self, key: K, timestamp: i64) -> Result<()> {
        let k = self.key_serde.serialize(&self.topic, &key).map_err(|e| {
            StreamsError::Serialization {
                target: self.topic.clone(),
                source: e,
            }
        })?;
        self.driver
            .borrow_mut()
            .pipe(&self.topic, k, None, timestamp, Vec::new())
    }

    /// Pipes values with null keys.
    pub fn pipe_value_list(&self, values: impl IntoIterator<Item = V>)
    where
        K: Default,
    {
        for v in values {
            self.pipe_input(K::default(), v);
        }
    }
}

/// Typed output of the driver, read in the order it was produced.
pub struct TestOutputTopic<K, V> {
    driver: Rc<RefCell<Inner>>,
    topic: String,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// Reads the next record, if any; panics if it does not deserialize.
    pub fn read_record_opt(&self) -> Option<Record<K, V>> {
        let s = self
            .driver
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)?
            .pop_front()?;
        let key = self
            .key_serde
            .deserialize(&self.topic, s.key.as_deref())
            .unwrap_or_else(|e| panic!("key of a record on `{}`: {e}", self.topic));
        let value = self
            .value_serde
            .deserialize(&self.topic, s.value.as_deref())
            .unwrap_or_else(|e| panic!("value of a record on `{}`: {e}", self.topic));
        Some(Record {
            key,
            value,
            timestamp: s.timestamp,
            headers: s.headers,
        })
    }

    /// Reads the next record; panics when there is none.
    pub fn read_record(&self) -> Record<K, V> {
        self.read_record_opt()
            .unwrap_or_else(|| panic!("no record left on output topic `{}`", self.topic))
    }

    /// Reads the next key and value; panics when there is none.
    pub fn read_key_value(&self) -> (K, V) {
        let r = self.read_record();
        (r.key, r.value)
    }

    /// Reads the next value; panics when there is none.
    pub fn read_value(&self) -> V {
        self.read_record().value
    }

    /// Reads every remaining record.
    pub fn read_records_to_list(&self) -> Vec<Record<K, V>> {
        std::iter::from_fn(|| self.read_record_opt()).collect()
    }

    /// Reads every remaining key and value.
    pub fn read_key_values_to_list(&self) -> Vec<(K, V)> {
        self.read_records_to_list()
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect()
    }

    /// Reads every remaining value.
    pub fn read_values_to_list(&self) -> Vec<V> {
        self.read_records_to_list()
            .into_iter()
            .map(|r| r.value)
            .collect()
    }

    /// Reads every remaining record, keeping the last value per key (a table's view).
    pub fn read_key_values_to_map(&self) -> std::collections::HashMap<K, V>
    where
        K: std::hash::Hash + Eq,
    {
        self.read_key_values_to_list().into_iter().collect()
    }

    /// Whether every record has been read.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }

    /// Records not yet read.
    pub fn queue_size(&self) -> usize {
        self.driver
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, VecDeque::len)
    }
}
