//! [`StreamsConfig`]: Kafka Streams' property names and defaults, checked at start.
//!
//! Properties Kafka Streams defines are parsed here; any other property passes through to the
//! Kafka clients (rdkafka): unprefixed to all of them, `consumer.` / `producer.` / `admin.`
//! prefixed to one, and `topic.` prefixed to the internal topics this application creates.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::assignment::{AssignmentConfig, HostInfo};
use crate::error::{Result, StreamsError};
use crate::handlers::{
    DeserializationExceptionHandler, ErrorHandlers, ProcessingExceptionHandler,
    ProductionExceptionHandler, UserHandlers,
};

mod handlers;
mod security;
pub(crate) use security::{Mechanism, Pem, Sasl, Security, Tls};

/// `application.id`: group id, prefix of internal topics and state directory name.
pub const APPLICATION_ID: &str = "application.id";
/// `bootstrap.servers`.
pub const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";
/// `num.stream.threads` (default 1).
pub const NUM_STREAM_THREADS: &str = "num.stream.threads";
/// `state.dir` (default `<temp dir>/kafka-streams`).
pub const STATE_DIR: &str = "state.dir";
/// `processing.guarantee`: `at_least_once` (default) or `exactly_once_v2`.
pub const PROCESSING_GUARANTEE: &str = "processing.guarantee";
/// `commit.interval.ms` (default 30000).
pub const COMMIT_INTERVAL_MS: &str = "commit.interval.ms";
/// `statestore.cache.max.bytes` (default 10485760), shared by the stream threads.
pub const STATESTORE_CACHE_MAX_BYTES: &str = "statestore.cache.max.bytes";
/// `statestore.uncommitted.max.bytes` (KIP-892; default 67108864): under exactly-once, the most
/// bytes of store writes a stream thread holds in memory until their transaction commits; a
/// thread that holds more commits early.
pub const STATESTORE_UNCOMMITTED_MAX_BYTES: &str = "statestore.uncommitted.max.bytes";
/// `deserialization.exception.handler`: log-and-fail (default) or log-and-continue (or Kafka's
/// class names); a handler of your own is set with
/// [`StreamsConfig::with_deserialization_exception_handler`].
pub const DESERIALIZATION_EXCEPTION_HANDLER: &str = "deserialization.exception.handler";
/// `processing.exception.handler` (KIP-1033): log-and-fail (default) or log-and-continue.
pub const PROCESSING_EXCEPTION_HANDLER: &str = "processing.exception.handler";
/// `production.exception.handler`: default (fail; retry what may succeed later), log-and-fail
/// or log-and-continue.
pub const PRODUCTION_EXCEPTION_HANDLER: &str = "production.exception.handler";
/// `errors.dead.letter.queue.topic.name` (KIP-1034, default none): where the records a handler
/// continues past are written, with headers saying what failed; created when missing.
pub const DEAD_LETTER_QUEUE_TOPIC_NAME: &str = "errors.dead.letter.queue.topic.name";
/// `max.task.idle.ms` (default 0).
pub const MAX_TASK_IDLE_MS: &str = "max.task.idle.ms";
/// `buffered.records.per.partition` (default 1000).
pub const BUFFERED_RECORDS_PER_PARTITION: &str = "buffered.records.per.partition";
/// `replication.factor` of internal topics (default -1: the broker's default).
pub const REPLICATION_FACTOR: &str = "replication.factor";
/// `poll.ms` (default 100): how long a stream thread blocks polling when it has nothing to do.
pub const POLL_MS: &str = "poll.ms";
/// `num.standby.replicas` (default 0): standby copies of each stateful task, kept on other
/// instances and brought up to their changelogs' ends every commit interval.
pub const NUM_STANDBY_REPLICAS: &str = "num.standby.replicas";
/// `acceptable.recovery.lag` (default 10000, at least 0): how close to a changelog's end an
/// instance must be to take a task over at once.
pub const ACCEPTABLE_RECOVERY_LAG: &str = "acceptable.recovery.lag";
/// `max.warmup.replicas` (default 2, at least 1): warm-up replicas in the group at once.
pub const MAX_WARMUP_REPLICAS: &str = "max.warmup.replicas";
/// `probing.rebalance.interval.ms` (default 600000, at least 60000): how often the group
/// rebalances while warm-ups catch up.
pub const PROBING_REBALANCE_INTERVAL_MS: &str = "probing.rebalance.interval.ms";
/// `rack.aware.assignment.tags` (default empty): comma-separated client tag keys (at most 5)
/// over whose values standbys are spread; each must be set with [`CLIENT_TAG_PREFIX`].
pub const RACK_AWARE_ASSIGNMENT_TAGS: &str = "rack.aware.assignment.tags";
/// `client.tag.<key>`: where this instance runs (at most 5 tags, keys up to 20 characters,
/// values up to 30), for [`RACK_AWARE_ASSIGNMENT_TAGS`].
pub const CLIENT_TAG_PREFIX: &str = "client.tag.";
/// `application.server` (`host:port`, default none): where this instance serves interactive
/// queries; it travels to the other instances in the group's assignment.
pub const APPLICATION_SERVER: &str = "application.server";
/// `http.listen` (`ip:port`, default none): serve interactive queries (and the application's
/// pages) over HTTP on this address; it is also the `application.server` other instances
/// forward queries to, unless that is set.
pub const HTTP_LISTEN: &str = "http.listen";
/// `metrics.recording.level` (`INFO`, `DEBUG` or `TRACE`; default `INFO`): which metrics are
/// recorded.
pub const METRICS_RECORDING_LEVEL: &str = "metrics.recording.level";
/// `http.forward.timeout.ms` (default 5000): how long a query forwarded to another instance
/// may take before it fails.
pub const HTTP_FORWARD_TIMEOUT_MS: &str = "http.forward.timeout.ms";
/// `ensure.explicit.internal.resource.naming` (default false): refuse generated store and topic names.
pub const ENSURE_EXPLICIT_NAMING: &str = "ensure.explicit.internal.resource.naming";
/// `repartition.purge.interval.ms` (default 30000): how often consumed repartition records are deleted.
pub const REPARTITION_PURGE_INTERVAL_MS: &str = "repartition.purge.interval.ms";
/// `task.timeout.ms` (default 300000).
pub const TASK_TIMEOUT_MS: &str = "task.timeout.ms";

/// Most client tags (`client.tag.*`) and rack-aware tags, as in Kafka Streams: they travel in
/// every subscription.
const MAX_CLIENT_TAGS: usize = 5;

/// `topology.optimization` (default `none`): only `none` is accepted until the optimizations
/// are implemented; any other value is refused rather than silently not applied.
pub const TOPOLOGY_OPTIMIZATION: &str = "topology.optimization";
/// `windowstore.changelog.additional.retention.ms` (default 86400000, one day): how much longer
/// than its store a windowed changelog keeps records.
pub const WINDOWSTORE_CHANGELOG_ADDITIONAL_RETENTION_MS: &str =
    "windowstore.changelog.additional.retention.ms";
/// `state.cleanup.delay.ms` (default 600000): how long the state of a task this instance no
/// longer runs stays on disk, untouched, before it is deleted.
pub const STATE_CLEANUP_DELAY_MS: &str = "state.cleanup.delay.ms";
/// `client.id` (default `<application.id>`): the prefix of the Kafka clients' ids and of the
/// stream threads' names (`<client.id>-StreamThread-<n>`), and the client metrics' tag.
pub const CLIENT_ID: &str = "client.id";

/// Kafka Streams properties that have no meaning here, refused with the reason.
const REFUSED: &[(&str, &str)] = &[
    (
        "default.key.serde",
        "serdes are chosen by type in Rust: pass them to the operations (Consumed, Produced, \
         Grouped, Materialized) or register one with StreamsBuilder::with_default_serde",
    ),
    (
        "default.value.serde",
        "serdes are chosen by type in Rust: pass them to the operations (Consumed, Produced, \
         Grouped, Materialized) or register one with StreamsBuilder::with_default_serde",
    ),
];

/// The configuration of a streams application: a map of Kafka Streams properties.
///
/// ```
/// use streams_core::StreamsConfig;
/// let config = StreamsConfig::new("wordcount", "127.0.0.1:9092")
///     .set("commit.interval.ms", "1000")
///     .set("consumer.fetch.min.bytes", "1");
/// let resolved = config.resolve().unwrap();
/// assert_eq!(resolved.commit_interval.as_millis(), 1000);
/// assert_eq!(resolved.num_stream_threads, 1);
///
/// let bad = StreamsConfig::new("app", "b:9092").set("num.stream.threads", "many");
/// assert!(bad.resolve().unwrap_err().to_string().contains("num.stream.threads"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct StreamsConfig {
    props: BTreeMap<String, String>,
    handlers: UserHandlers,
}

/// A checked configuration, as the runtime uses it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResolvedConfig {
    /// `application.id`.
    pub application_id: String,
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `num.stream.threads`.
    pub num_stream_threads: usize,
    /// `state.dir`.
    pub state_dir: PathBuf,
    /// `commit.interval.ms` (100 ms by default under exactly-once, 30 s otherwise).
    pub commit_interval: Duration,
    /// `processing.guarantee=exactly_once_v2`.
    pub exactly_once: bool,
    /// `statestore.cache.max.bytes`.
    pub cache_max_bytes: usize,
    /// `statestore.uncommitted.max.bytes` (exactly-once only).
    pub uncommitted_max_bytes: usize,
    /// The exception handlers and the dead-letter topic.
    pub(crate) handlers: ErrorHandlers,
    /// `max.task.idle.ms`.
    pub max_task_idle_ms: i64,
    /// `buffered.records.per.partition`.
    pub buffered_records_per_partition: usize,
    /// `replication.factor`.
    pub replication_factor: i32,
    /// `poll.ms`.
    pub poll: Duration,
    /// `task.timeout.ms`.
    pub task_timeout: Duration,
    /// `ensure.explicit.internal.resource.naming`.
    pub ensure_explicit_naming: bool,
    /// `repartition.purge.interval.ms`.
    pub repartition_purge_interval: Duration,
    /// `http.listen`.
    pub http_listen: Option<std::net::SocketAddr>,
    /// `metrics.recording.level`.
    pub recording_level: crate::metrics::RecordingLevel,
    /// `http.forward.timeout.ms`.
    pub http_forward_timeout: Duration,
    /// `windowstore.changelog.additional.retention.ms`.
    pub window_changelog_additional_retention_ms: i64,
    /// `state.cleanup.delay.ms`.
    pub state_cleanup_delay: Duration,
    /// `client.id`, if set.
    pub client_id: Option<String>,
    /// The task assignor's settings.
    pub(crate) assignment: AssignmentConfig,
    /// How the group member connects (the consumers' security settings).
    pub(crate) security: Security,
    /// `group.instance.id`: static membership of the group member (one per instance).
    pub(crate) group_instance_id: Option<String>,
    /// `client.tag.*`.
    pub(crate) client_tags: BTreeMap<String, String>,
    /// `application.server`: where this instance serves interactive queries.
    pub(crate) application_server: Option<HostInfo>,
    /// Properties for the consumers (Kafka Streams' overrides, then pass-through, then `consumer.`).
    pub consumer: BTreeMap<String, String>,
    /// Properties for the producers.
    pub producer: BTreeMap<String, String>,
    /// Properties for the admin client.
    pub admin: BTreeMap<String, String>,
    /// Configs for the internal topics this application creates (`topic.` prefix removed).
    pub topic: BTreeMap<String, String>,
}

impl ResolvedConfig {
    /// The prefix of client ids and thread names: `client.id`, or else `application.id`.
    pub(crate) fn client_prefix(&self) -> &str {
        self.client_id.as_deref().unwrap_or(&self.application_id)
    }
}

impl StreamsConfig {
    /// A configuration with the two required properties.
    pub fn new(application_id: impl Into<String>, bootstrap_servers: impl Into<String>) -> Self {
        StreamsConfig::default()
            .set(APPLICATION_ID, application_id)
            .set(BOOTSTRAP_SERVERS, bootstrap_servers)
    }

    /// Sets a property (Kafka Streams' name, or a prefixed client property).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.props.insert(key.into(), value.into());
        self
    }

    /// Runs `handler` for records that do not deserialize (instead of the property
    /// `deserialization.exception.handler`, which must then not be set).
    pub fn with_deserialization_exception_handler(
        mut self,
        handler: impl DeserializationExceptionHandler,
    ) -> Self {
        self.handlers.deserialization = Some(Arc::new(handler));
        self
    }

    /// Runs `handler` for records a processor fails on (instead of the property
    /// `processing.exception.handler`, which must then not be set).
    pub fn with_processing_exception_handler(
        mut self,
        handler: impl ProcessingExceptionHandler,
    ) -> Self {
        self.handlers.processing = Some(Arc::new(handler));
        self
    }

    /// Runs `handler` for records that cannot be sent (instead of the property
    /// `production.exception.handler`, which must then not be set).
    pub fn with_production_exception_handler(
        mut self,
        handler: impl ProductionExceptionHandler,
    ) -> Self {
        self.handlers.production = Some(Arc::new(handler));
        self
    }

    /// The property's value, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    /// `application.id`, if set.
    pub fn application_id(&self) -> Option<&str> {
        self.get(APPLICATION_ID)
    }

    /// Checks every property and fills in defaults; errors name the property.
    pub fn resolve(&self) -> Result<ResolvedConfig> {
        let application_id = self.required(APPLICATION_ID)?;
        if !application_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(StreamsError::config(
                APPLICATION_ID,
                format!("`{application_id}` may only contain ASCII letters, digits, '.', '_' and '-' (it prefixes topic names)"),
            ));
        }
        let bootstrap_servers = self.required(BOOTSTRAP_SERVERS)?;
        let num_stream_threads: usize = self.parse(NUM_STREAM_THREADS, 1)?;
        if num_stream_threads == 0 {
            return Err(StreamsError::config(
                NUM_STREAM_THREADS,
                "must be at least 1",
            ));
        }
        let exactly_once = match self.get(PROCESSING_GUARANTEE).unwrap_or("at_least_once") {
            "at_least_once" => false,
            "exactly_once_v2" => true,
            old @ ("exactly_once" | "exactly_once_beta") => {
                return Err(StreamsError::config(
                    PROCESSING_GUARANTEE,
                    format!("`{old}` was removed in Kafka Streams 4.0; use exactly_once_v2"),
                ))
            }
            other => {
                return Err(StreamsError::config(
                    PROCESSING_GUARANTEE,
                    format!("`{other}` is not one of at_least_once, exactly_once_v2"),
                ))
            }
        };
        let assignment = self.assignment_config()?;
        let client_tags = self.client_tags()?;
        let http_listen = self.http_listen()?;
        let application_server = match (self.application_server()?, http_listen) {
            (Some(a), _) => Some(a),
            (None, Some(addr)) if addr.ip().is_unspecified() => {
                return Err(StreamsError::config(
                    HTTP_LISTEN,
                    format!(
                        "listens on every interface ({addr}); set {APPLICATION_SERVER} to the host:port other instances reach it at"
                    ),
                ))
            }
            (None, Some(addr)) => Some(HostInfo {
                host: addr.ip().to_string(),
                port: addr.port(),
            }),
            (None, None) => None,
        };
        let recording_level = match self.get(METRICS_RECORDING_LEVEL).map(str::trim) {
            None | Some("INFO") => crate::metrics::RecordingLevel::Info,
            Some("DEBUG") => crate::metrics::RecordingLevel::Debug,
            Some("TRACE") => crate::metrics::RecordingLevel::Trace,
            Some(other) => {
                return Err(StreamsError::config(
                    METRICS_RECORDING_LEVEL,
                    format!("`{other}` is not one of INFO, DEBUG, TRACE"),
                ))
            }
        };
        let http_forward_timeout =
            Duration::from_millis(self.parse(HTTP_FORWARD_TIMEOUT_MS, 5_000u64)?);
        let state_dir = self
            .get(STATE_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("kafka-streams"));
        // Kafka Streams' defaults: a transaction per 100 ms under exactly-once.
        let commit_ms: u64 =
            self.parse(COMMIT_INTERVAL_MS, if exactly_once { 100 } else { 30_000 })?;
        let cache_max_bytes: usize = match self.get(STATESTORE_CACHE_MAX_BYTES) {
            Some(_) => self.parse(STATESTORE_CACHE_MAX_BYTES, 0)?,
            None => self.parse("cache.max.bytes.buffering", 10_485_760)?,
        };
        let uncommitted_max_bytes: usize =
            self.parse(STATESTORE_UNCOMMITTED_MAX_BYTES, 64 * 1024 * 1024)?;
        if self.get(STATESTORE_UNCOMMITTED_MAX_BYTES).is_some() && !exactly_once {
            return Err(StreamsError::config(
                STATESTORE_UNCOMMITTED_MAX_BYTES,
                "applies under processing.guarantee=exactly_once_v2 only: \
                 at-least-once stores write through",
            ));
        }
        let handlers = self.error_handlers()?;
        let max_task_idle_ms: i64 = self.parse(MAX_TASK_IDLE_MS, 0)?;
        let buffered_records_per_partition: usize =
            self.parse(BUFFERED_RECORDS_PER_PARTITION, 1000)?;
        let replication_factor: i32 = self.parse(REPLICATION_FACTOR, -1)?;
        if replication_factor == 0 || replication_factor < -1 {
            return Err(StreamsError::config(
                REPLICATION_FACTOR,
                "must be -1 (broker default) or at least 1",
            ));
        }
        let poll_ms: u64 = self.parse(POLL_MS, 100)?;
        let task_timeout_ms: u64 = self.parse(TASK_TIMEOUT_MS, 300_000)?;
        let ensure_explicit_naming: bool = self.parse(ENSURE_EXPLICIT_NAMING, false)?;
        let purge_ms: u64 = self.parse(REPARTITION_PURGE_INTERVAL_MS, 30_000)?;
        let window_changelog_additional_retention_ms: i64 =
            self.parse(WINDOWSTORE_CHANGELOG_ADDITIONAL_RETENTION_MS, 86_400_000)?;
        if window_changelog_additional_retention_ms < 0 {
            return Err(StreamsError::config(
                WINDOWSTORE_CHANGELOG_ADDITIONAL_RETENTION_MS,
                "must be at least 0",
            ));
        }
        let cleanup_ms: u64 = self.parse(STATE_CLEANUP_DELAY_MS, 600_000)?;
        match self.get(TOPOLOGY_OPTIMIZATION).map(str::trim) {
            None | Some("none") | Some("NONE") => {}
            Some(other) => {
                return Err(StreamsError::config(
                    TOPOLOGY_OPTIMIZATION,
                    format!(
                        "`{other}` is not applied yet; only `none` is accepted (the topology runs \
                         as built: no source-topic reuse for tables, no merged repartition topics)"
                    ),
                ))
            }
        }
        for (name, why) in REFUSED {
            if self.get(name).is_some() {
                return Err(StreamsError::config(name, why));
            }
        }
        let client_id = match self.get(CLIENT_ID).map(str::trim) {
            Some("") => {
                return Err(StreamsError::config(CLIENT_ID, "must not be empty"));
            }
            other => other.map(str::to_string),
        };

        // Kafka Streams' client overrides come first; the user's settings win over them.
        let mut consumer: BTreeMap<String, String> = [
            ("auto.offset.reset", "earliest"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("allow.auto.create.topics", "false"),
            // librdkafka prefetches up to 100,000 records and 64 MiB per partition, and once a
            // partition holds more than `queued.min.messages` it postpones that partition's
            // next fetch by `fetch.queue.backoff.ms` (1 s by default). With those defaults a
            // pipeline ran at a quarter of its speed, waiting on postponed fetches, and each
            // changelog partition took a second per 100,000 records to restore. A smaller
            // prefetch, refilled promptly, is both faster and lighter.
            ("queued.max.messages.kbytes", "16384"),
            ("queued.min.messages", "20000"),
            ("fetch.queue.backoff.ms", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut producer: BTreeMap<String, String> = [
            ("linger.ms", "100"),
            // Java's default partitioner, so keys land where a Java application would put them.
            ("partitioner", "murmur2_random"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if exactly_once {
            // Kafka Streams' exactly-once overrides: committed data only, and transactions
            // that the broker aborts 10 s after their producer stops.
            consumer.insert("isolation.level".into(), "read_committed".into());
            producer.insert("transaction.timeout.ms".into(), "10000".into());
        }
        let mut admin = BTreeMap::new();
        let mut topic = BTreeMap::new();
        for (k, v) in &self.props {
            if let Some(rest) = k.strip_prefix("consumer.") {
                consumer.insert(rest.to_string(), v.clone());
            } else if let Some(rest) = k.strip_prefix("producer.") {
                producer.insert(rest.to_string(), v.clone());
            } else if let Some(rest) = k.strip_prefix("admin.") {
                admin.insert(rest.to_string(), v.clone());
            } else if let Some(rest) = k.strip_prefix("topic.") {
                topic.insert(rest.to_string(), v.clone());
            } else if !is_streams_property(k) {
                for m in [&mut consumer, &mut producer, &mut admin] {
                    m.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        // Settings the runtime depends on. Kafka Streams overrides them; refusing says why
        // instead of silently ignoring what the user asked for.
        for named in [
            "consumer.partition.assignment.strategy",
            "partition.assignment.strategy",
        ] {
            if let Some(value) = self.get(named) {
                return Err(StreamsError::config(
                    named,
                    format!(
                        "`{value}` is not used: tasks are assigned by this library's own group \
                         member and task assignor, and the consumers only read the partitions \
                         they are given; remove the property"
                    ),
                ));
            }
        }
        for named in ["consumer.enable.auto.commit", "enable.auto.commit"] {
            match self.get(named) {
                Some(value) if value != "false" => {
                    return Err(StreamsError::config(
                        named,
                        format!(
                            "`{value}` is not supported: it must be `false`, because offsets are \
                             committed by the stream threads only after the records before them \
                             are processed and their results flushed (at-least-once)"
                        ),
                    ))
                }
                _ => {}
            }
        }
        if exactly_once {
            if consumer.get("isolation.level").map(String::as_str) != Some("read_committed") {
                return Err(StreamsError::config(
                    "isolation.level",
                    "must be read_committed under exactly_once_v2: a task must never read \
                     records of an aborted transaction",
                ));
            }
            if producer.contains_key("transactional.id") {
                return Err(StreamsError::config(
                    "transactional.id",
                    "is set by each stream thread under exactly_once_v2 \
                     (<application.id>-<process id>-<thread>); remove the property",
                ));
            }
            if producer
                .get("enable.idempotence")
                .is_some_and(|v| v != "true")
            {
                return Err(StreamsError::config(
                    "enable.idempotence",
                    "must be true under exactly_once_v2 (transactions need it)",
                ));
            }
        }
        for m in [&mut consumer, &mut producer, &mut admin] {
            m.insert(BOOTSTRAP_SERVERS.to_string(), bootstrap_servers.clone());
        }
        consumer.insert("group.id".to_string(), application_id.clone());
        let security = security::security(&consumer)?;
        // Static membership belongs to the group member alone: the consumers never join.
        let group_instance_id = consumer.remove("group.instance.id");
        producer.remove("group.instance.id");
        admin.remove("group.instance.id");
        if let Some(id) = &group_instance_id {
            if id.trim().is_empty() || id.len() > 249 {
                return Err(StreamsError::config(
                    "group.instance.id",
                    "must be 1 to 249 characters (a static member's id in the group)",
                ));
            }
        }

        Ok(ResolvedConfig {
            application_id,
            bootstrap_servers,
            num_stream_threads,
            state_dir,
            commit_interval: Duration::from_millis(commit_ms),
            exactly_once,
            cache_max_bytes,
            uncommitted_max_bytes,
            handlers,
            max_task_idle_ms,
            buffered_records_per_partition,
            replication_factor,
            poll: Duration::from_millis(poll_ms),
            task_timeout: Duration::from_millis(task_timeout_ms),
            ensure_explicit_naming,
            repartition_purge_interval: Duration::from_millis(purge_ms),
            http_listen,
            http_forward_timeout,
            window_changelog_additional_retention_ms,
            state_cleanup_delay: Duration::from_millis(cleanup_ms),
            client_id,
            recording_level,
            assignment,
            security,
            group_instance_id,
            client_tags,
            application_server,
            consumer,
            producer,
            admin,
            topic,
        })
    }

    /// The task assignor's settings, checked (errors name the property).
    pub(crate) fn assignment_config(&self) -> Result<AssignmentConfig> {
        let defaults = AssignmentConfig::default();
        let max_warmup_replicas: u32 =
            self.parse(MAX_WARMUP_REPLICAS, defaults.max_warmup_replicas)?;
        if max_warmup_replicas == 0 {
            return Err(StreamsError::config(
                MAX_WARMUP_REPLICAS,
                "must be at least 1",
            ));
        }
        let probing_ms: u64 = self.parse(
            PROBING_REBALANCE_INTERVAL_MS,
            defaults.probing_rebalance_interval.as_millis() as u64,
        )?;
        if probing_ms < 60_000 {
            return Err(StreamsError::config(
                PROBING_REBALANCE_INTERVAL_MS,
                format!("is {probing_ms}; must be at least 60000 (one minute)"),
            ));
        }
        let tags: Vec<String> = self
            .get(RACK_AWARE_ASSIGNMENT_TAGS)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if tags.len() > MAX_CLIENT_TAGS {
            return Err(StreamsError::config(
                RACK_AWARE_ASSIGNMENT_TAGS,
                format!("lists {} tags; at most {MAX_CLIENT_TAGS}", tags.len()),
            ));
        }
        let client_tags = self.client_tags()?;
        if let Some(missing) = tags.iter().find(|t| !client_tags.contains_key(*t)) {
            return Err(StreamsError::config(
                RACK_AWARE_ASSIGNMENT_TAGS,
                format!("names `{missing}`, which is not a client tag (set {CLIENT_TAG_PREFIX}{missing})"),
            ));
        }
        Ok(AssignmentConfig {
            num_standby_replicas: self
                .parse(NUM_STANDBY_REPLICAS, defaults.num_standby_replicas)?,
            max_warmup_replicas,
            acceptable_recovery_lag: self
                .parse(ACCEPTABLE_RECOVERY_LAG, defaults.acceptable_recovery_lag)?,
            probing_rebalance_interval: Duration::from_millis(probing_ms),
            rack_aware_assignment_tags: tags,
        })
    }

    /// This instance's `client.tag.*` properties, checked: at most 5, keys of 1 to 20
    /// characters, values of at most 30 (they travel in every subscription).
    pub(crate) fn client_tags(&self) -> Result<BTreeMap<String, String>> {
        let mut tags = BTreeMap::new();
        for (k, v) in &self.props {
            let Some(key) = k.strip_prefix(CLIENT_TAG_PREFIX) else {
                continue;
            };
            if key.is_empty() || key.chars().count() > 20 {
                return Err(StreamsError::config(
                    k,
                    "the tag key must have 1 to 20 characters",
                ));
            }
            if v.chars().count() > 30 {
                return Err(StreamsError::config(
                    k,
                    "the tag value must have at most 30 characters",
                ));
            }
            tags.insert(key.to_string(), v.clone());
        }
        if tags.len() > MAX_CLIENT_TAGS {
            return Err(StreamsError::config(
                CLIENT_TAG_PREFIX,
                format!(
                    "{} client tags are set; at most {MAX_CLIENT_TAGS}",
                    tags.len()
                ),
            ));
        }
        Ok(tags)
    }

    /// `http.listen` (`ip:port`, a port other than 0), if set.
    fn http_listen(&self) -> Result<Option<std::net::SocketAddr>> {
        let Some(v) = self.get(HTTP_LISTEN).map(str::trim) else {
            return Ok(None);
        };
        let addr: std::net::SocketAddr = v.parse().map_err(|_| {
            StreamsError::config(
                HTTP_LISTEN,
                format!("`{v}` is not ip:port, like 127.0.0.1:8080"),
            )
        })?;
        if addr.port() == 0 {
            return Err(StreamsError::config(
                HTTP_LISTEN,
                "needs a port other than 0: the other instances forward queries to it",
            ));
        }
        Ok(Some(addr))
    }

    /// `application.server` (`host:port`), if set.
    fn application_server(&self) -> Result<Option<HostInfo>> {
        let Some(v) = self.get(APPLICATION_SERVER).map(str::trim) else {
            return Ok(None);
        };
        let bad = || {
            StreamsError::config(
                APPLICATION_SERVER,
                format!("`{v}` is not host:port (a port from 0 to 65535)"),
            )
        };
        let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Some(HostInfo {
            host: host.to_string(),
            port: port.parse().map_err(|_| bad())?,
        }))
    }

    fn required(&self, key: &str) -> Result<String> {
        match self.get(key) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(StreamsError::config(key, "is required but not set")),
        }
    }

    fn parse<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| StreamsError::config(key, format!("`{v}` is not valid: {e}"))),
        }
    }
}

/// Every Kafka Streams property this library reads (besides `client.tag.*`); the others go to
/// the Kafka clients.
pub(crate) const STREAMS_PROPERTIES: &[&str] = &[
    APPLICATION_ID,
    BOOTSTRAP_SERVERS,
    NUM_STREAM_THREADS,
    STATE_DIR,
    PROCESSING_GUARANTEE,
    COMMIT_INTERVAL_MS,
    STATESTORE_CACHE_MAX_BYTES,
    STATESTORE_UNCOMMITTED_MAX_BYTES,
    "cache.max.bytes.buffering",
    DESERIALIZATION_EXCEPTION_HANDLER,
    "default.deserialization.exception.handler",
    PROCESSING_EXCEPTION_HANDLER,
    PRODUCTION_EXCEPTION_HANDLER,
    "default.production.exception.handler",
    DEAD_LETTER_QUEUE_TOPIC_NAME,
    MAX_TASK_IDLE_MS,
    BUFFERED_RECORDS_PER_PARTITION,
    REPLICATION_FACTOR,
    POLL_MS,
    NUM_STANDBY_REPLICAS,
    ACCEPTABLE_RECOVERY_LAG,
    MAX_WARMUP_REPLICAS,
    PROBING_REBALANCE_INTERVAL_MS,
    RACK_AWARE_ASSIGNMENT_TAGS,
    APPLICATION_SERVER,
    HTTP_LISTEN,
    HTTP_FORWARD_TIMEOUT_MS,
    METRICS_RECORDING_LEVEL,
    ENSURE_EXPLICIT_NAMING,
    TASK_TIMEOUT_MS,
    REPARTITION_PURGE_INTERVAL_MS,
    TOPOLOGY_OPTIMIZATION,
    WINDOWSTORE_CHANGELOG_ADDITIONAL_RETENTION_MS,
    STATE_CLEANUP_DELAY_MS,
    CLIENT_ID,
];

fn is_streams_property(key: &str) -> bool {
    STREAMS_PROPERTIES.contains(&key)
        || key.starts_with(CLIENT_TAG_PREFIX)
        || REFUSED.iter().any(|(k, _)| *k == key)
}

#[cfg(test)]
mod tests;
