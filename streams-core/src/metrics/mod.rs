//! Kafka Streams' metrics: [`Sensor`]s the stream threads record into, and [`MetricValue`]s,
//! the metrics as Kafka Streams names them (group, name, tags), which the runtime exposes
//! through a Rust call and as Prometheus text.

mod detail;
mod prometheus;
mod sensor;

pub(crate) use detail::{lag_metric, node_metrics, restore_remaining};
pub(crate) use prometheus::render as render_prometheus;
pub use sensor::Sensor;

/// Milliseconds since the first call, from a monotonic clock shared by the whole process: the
/// time base of sensors that are recorded where no stream thread's clock is at hand (store
/// operations) and read when scraped.
pub(crate) fn process_clock_ms() -> i64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as i64
}

/// The store operations timed at DEBUG (Kafka Streams' `put`, `put-if-absent`, `get`,
/// `delete`, `range`, `flush` store metrics), in the order of a store's sensors.
pub(crate) const STORE_OPERATIONS: [&str; 6] =
    ["put", "put-if-absent", "get", "delete", "range", "flush"];

/// `metrics.recording.level`: which metrics are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum RecordingLevel {
    /// Client, thread and the task metrics Kafka Streams records at INFO (the default).
    #[default]
    Info,
    /// Also the per-task processing metrics.
    Debug,
    /// Everything DEBUG records (nothing more yet).
    Trace,
}

/// What a stream thread measures, at the thread level (Kafka Streams' `stream-thread-metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadSensors {
    /// Records processed, each batch with its time in ms: process-total, -rate, -latency-*.
    pub process: Sensor,
    /// Records per processing round that processed any: process-records-avg/max.
    pub process_records: Sensor,
    /// Polls and their time in ms: poll-total, -rate, -latency-*.
    pub poll: Sensor,
    /// Records per poll: poll-records-avg/max.
    pub poll_records: Sensor,
    /// Commits and their time in ms: commit-total, -rate, -latency-*.
    pub commit: Sensor,
    /// Punctuation rounds that punctuated and their time in ms: punctuate-total, -rate, -latency-*.
    pub punctuate: Sensor,
    /// Tasks created: task-created-total, -rate.
    pub task_created: Sensor,
    /// Tasks closed: task-closed-total, -rate.
    pub task_closed: Sensor,
}

/// What a stream thread measures of one task (Kafka Streams' `stream-task-metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TaskSensors {
    /// Records processed: process-total, -rate (DEBUG).
    pub process: Sensor,
    /// Records skipped (deserialization handler): dropped-records-total, -rate.
    pub dropped: Sensor,
    /// Records restored from changelogs: restore-total, -rate.
    pub restore: Sensor,
    /// Records processed without waiting any longer for an empty partition with records left
    /// on the cluster (`max.task.idle.ms` passed): enforced-processing-total, -rate (DEBUG).
    pub enforced: Sensor,
}

/// One metric's current value, named as Kafka Streams names it: a group (the JMX bean's
/// `type`, such as `stream-thread-metrics`), a name (`process-total`) and tags (`thread-id`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    /// Kafka Streams' metric group.
    pub group: &'static str,
    /// Kafka Streams' metric name.
    pub name: &'static str,
    /// Kafka Streams' tags, in order.
    pub tags: Vec<(&'static str, String)>,
    /// What it says, as Kafka's metrics report it.
    pub value: f64,
    /// A count that only grows (a `-total`), as opposed to a gauge.
    pub counter: bool,
    /// Kafka Streams' description.
    pub help: &'static str,
}

impl MetricValue {
    /// The name the Prometheus JMX exporter gives Kafka Streams' JMX bean attribute:
    /// `kafka_streams_<group>_<name>`, dashes as underscores.
    ///
    /// ```
    /// use streams_core::MetricValue;
    /// let m = MetricValue {
    ///     group: "stream-thread-metrics", name: "process-total",
    ///     tags: vec![("thread-id", "app-StreamThread-1".into())],
    ///     value: 3.0, counter: true, help: "",
    /// };
    /// assert_eq!(m.prometheus_name(), "kafka_streams_stream_thread_metrics_process_total");
    /// let lag = MetricValue { group: "consumer-fetch-manager-metrics", name: "records-lag", ..m };
    /// assert_eq!(lag.prometheus_name(), "kafka_consumer_consumer_fetch_manager_metrics_records_lag");
    /// ```
    pub fn prometheus_name(&self) -> String {
        // The consumer's own metrics live under Kafka's consumer domain, as the exporter
        // renders `kafka.consumer` beans.
        let domain = if self.group.starts_with("consumer-") {
            "kafka_consumer"
        } else {
            "kafka_streams"
        };
        format!("{domain}_{}_{}", self.group, self.name).replace('-', "_")
    }
}

/// The thread-level metrics of `sensors` at `now_ms`, tagged with `thread_id`.
pub(crate) fn thread_metrics(thread_id: &str, s: &ThreadSensors, now_ms: i64) -> Vec<MetricValue> {
    let tags = || vec![("thread-id", thread_id.to_string())];
    let mut out = Vec::new();
    let mut push = |name, value: f64, counter, help| {
        out.push(MetricValue {
            group: "stream-thread-metrics",
            name,
            tags: tags(),
            value,
            counter,
            help,
        })
    };
    for (op, sensor, what) in [
        ("process", &s.process, "records processed"),
        ("poll", &s.poll, "polls"),
        ("commit", &s.commit, "commits"),
        ("punctuate", &s.punctuate, "punctuation rounds"),
    ] {
        let (total, rate, avg, max) = latency_names(op);
        push(total, sensor.total() as f64, true, what);
        push(rate, sensor.rate(now_ms), false, what);
        // Kafka reports NaN for an empty window; Prometheus reads NaN as well.
        push(
            avg,
            sensor.avg(now_ms).unwrap_or(f64::NAN),
            false,
            "ms per event",
        );
        push(
            max,
            sensor.max(now_ms).unwrap_or(f64::NAN),
            false,
            "ms, the largest",
        );
    }
    for (name, sensor) in [
        ("process-records-avg", &s.process_records),
        ("poll-records-avg", &s.poll_records),
    ] {
        push(
            name,
            sensor.avg(now_ms).unwrap_or(f64::NAN),
            false,
            "records per round",
        );
    }
    for (name, sensor) in [
        ("process-records-max", &s.process_records),
        ("poll-records-max", &s.poll_records),
    ] {
        push(
            name,
            sensor.max(now_ms).unwrap_or(f64::NAN),
            false,
            "records per round, the largest",
        );
    }
    for (total, rate, sensor) in [
        ("task-created-total", "task-created-rate", &s.task_created),
        ("task-closed-total", "task-closed-rate", &s.task_closed),
    ] {
        push(total, sensor.total() as f64, true, "tasks");
        push(rate, sensor.rate(now_ms), false, "tasks per second");
    }
    out
}

/// `(<op>-total, <op>-rate, <op>-latency-avg, <op>-latency-max)` as static names.
fn latency_names(op: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    match op {
        "process" => (
            "process-total",
            "process-rate",
            "process-latency-avg",
            "process-latency-max",
        ),
        "poll" => (
            "poll-total",
            "poll-rate",
            "poll-latency-avg",
            "poll-latency-max",
        ),
        "commit" => (
            "commit-total",
            "commit-rate",
            "commit-latency-avg",
            "commit-latency-max",
        ),
        _ => (
            "punctuate-total",
            "punctuate-rate",
            "punctuate-latency-avg",
            "punctuate-latency-max",
        ),
    }
}

fn metric(
    group: &'static str,
    name: &'static str,
    tags: Vec<(&'static str, String)>,
    value: f64,
    counter: bool,
    help: &'static str,
) -> MetricValue {
    MetricValue {
        group,
        name,
        tags,
        value,
        counter,
        help,
    }
}

/// The task-level metrics of `s` at `now_ms` (the process ones only from DEBUG up, as in
/// Kafka Streams).
pub(crate) fn task_metrics(
    thread_id: &str,
    task_id: &str,
    s: &TaskSensors,
    level: RecordingLevel,
    now_ms: i64,
) -> Vec<MetricValue> {
    let tags = || {
        vec![
            ("thread-id", thread_id.to_string()),
            ("task-id", task_id.to_string()),
        ]
    };
    let group = "stream-task-metrics";
    let mut out = vec![
        metric(
            group,
            "dropped-records-total",
            tags(),
            s.dropped.sum_total(),
            true,
            "records dropped",
        ),
        metric(
            group,
            "dropped-records-rate",
            tags(),
            s.dropped.value_rate(now_ms),
            false,
            "records dropped per second",
        ),
        metric(
            group,
            "restore-total",
            tags(),
            s.restore.sum_total(),
            true,
            "records restored",
        ),
        metric(
            group,
            "restore-rate",
            tags(),
            s.restore.value_rate(now_ms),
            false,
            "records restored per second",
        ),
    ];
    if level >= RecordingLevel::Debug {
        out.push(metric(
            group,
            "process-total",
            tags(),
            s.process.sum_total(),
            true,
            "records processed",
        ));
        out.push(metric(
            group,
            "process-rate",
            tags(),
            s.process.value_rate(now_ms),
            false,
            "records processed per second",
        ));
        out.push(metric(
            group,
            "enforced-processing-total",
            tags(),
            s.enforced.sum_total(),
            true,
            "records processed while a partition with unfetched records was empty (max.task.idle.ms passed)",
        ));
        out.push(metric(
            group,
            "enforced-processing-rate",
            tags(),
            s.enforced.value_rate(now_ms),
            false,
            "enforced processings per second",
        ));
    }
    out
}

/// The client-level metrics (`stream-metrics`): its state as Kafka Streams' `State` ordinal,
/// and its live and failed stream threads.
pub(crate) fn client_metrics(
    client_id: &str,
    state_ordinal: u8,
    alive_threads: usize,
    failed_threads: usize,
) -> Vec<MetricValue> {
    let tags = || vec![("client-id", client_id.to_string())];
    let group = "stream-metrics";
    vec![
        metric(group, "client-state", tags(), f64::from(state_ordinal), false, "the client's state (CREATED 0, REBALANCING 1, RUNNING 2, PENDING_SHUTDOWN 3, NOT_RUNNING 4, PENDING_ERROR 5, ERROR 6)"),
        metric(group, "alive-stream-threads", tags(), alive_threads as f64, false, "stream threads running"),
        metric(group, "failed-stream-threads", tags(), failed_threads as f64, false, "stream threads that failed"),
    ]
}

/// A store's metrics (`stream-state-metrics`): its estimated number of keys
/// (`estimate-num-keys`) and its engine's statistics, RocksDB's memory, compaction and block
/// cache properties, under RocksDB's names as Kafka Streams reports them (KIP-607:
/// `size-all-mem-tables`, `estimate-pending-compaction-bytes`, `block-cache-usage`...).
pub(crate) fn store_metrics(
    thread_id: &str,
    task_id: &str,
    store: &str,
    persistent: bool,
    keys: u64,
    engine: &[(&'static str, u64)],
    operations: Option<&[Sensor; 6]>,
) -> Vec<MetricValue> {
    let scope = if persistent {
        "rocksdb-state-id"
    } else {
        "in-memory-state-id"
    };
    let tags = || {
        vec![
            ("thread-id", thread_id.to_string()),
            ("task-id", task_id.to_string()),
            (scope, store.to_string()),
        ]
    };
    let mut out = vec![metric(
        "stream-state-metrics",
        "estimate-num-keys",
        tags(),
        keys as f64,
        false,
        "keys in the store, estimated",
    )];
    for (name, value) in engine {
        out.push(metric(
            "stream-state-metrics",
            name,
            tags(),
            *value as f64,
            false,
            "a RocksDB property of the store (bytes, counts or flags, as RocksDB reports it)",
        ));
    }
    // Operation rates and latencies (ns, as Kafka Streams reports them), timed at DEBUG.
    let now = process_clock_ms();
    for (op, sensor) in STORE_OPERATIONS
        .iter()
        .zip(operations.into_iter().flatten())
    {
        let names: [&'static str; 3] = match *op {
            "put" => ["put-rate", "put-latency-avg", "put-latency-max"],
            "put-if-absent" => [
                "put-if-absent-rate",
                "put-if-absent-latency-avg",
                "put-if-absent-latency-max",
            ],
            "get" => ["get-rate", "get-latency-avg", "get-latency-max"],
            "delete" => ["delete-rate", "delete-latency-avg", "delete-latency-max"],
            "range" => ["range-rate", "range-latency-avg", "range-latency-max"],
            _ => ["flush-rate", "flush-latency-avg", "flush-latency-max"],
        };
        let values = [
            sensor.rate(now),
            sensor.avg(now).unwrap_or(f64::NAN),
            sensor.max(now).unwrap_or(f64::NAN),
        ];
        let helps = [
            "operations per second",
            "ns per operation, on average",
            "ns per operation, the most",
        ];
        for ((name, value), help) in names.into_iter().zip(values).zip(helps) {
            out.push(metric(
                "stream-state-metrics",
                name,
                tags(),
                value,
                false,
                help,
            ));
        }
    }
    out
}
