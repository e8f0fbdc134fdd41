//! Broker settings: [`BrokerConfig`] and the fsync policy [`FlushPolicy`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// When appended record batches are forced to disk with fsync.
///
/// A write that reached the OS survives `kill -9` of the broker whatever the policy; the policy
/// decides what survives a power loss or kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FlushPolicy {
    /// fsync before acknowledging every produce request, whatever its acks.
    Always,
    /// fsync before acknowledging produce requests with acks=all (-1); acks=0/1 rely on the OS.
    /// This is the default: acknowledged acks=all records survive power loss.
    #[default]
    AcksAll,
    /// Never fsync while running (only on clean shutdown); fastest, for tests and development.
    Never,
}

/// Everything a [`crate::Broker`] needs to start. `Default` listens on an ephemeral loopback port
/// and keeps data in a temporary directory removed on shutdown.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Host advertised to clients in Metadata and FindCoordinator; `None` uses the listen IP
    /// (127.0.0.1 when listening on an unspecified address).
    pub advertised_host: Option<String>,
    /// Where topics, offsets and broker identity live; `None` means a fresh temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Node id reported as the only broker and as controller.
    pub node_id: i32,
    /// Partitions of auto-created topics and of CreateTopics with num_partitions = -1.
    pub default_partitions: i32,
    /// Whether Metadata creates topics that clients ask for and allow to be created.
    pub auto_create_topics: bool,
    /// Whether CreateTopics accepts replication factors above 1 (keeping one copy, the only
    /// one a single node has) instead of refusing them; for client test suites written for
    /// three-broker clusters.
    pub accept_any_replication_factor: bool,
    /// Largest request frame accepted (Kafka's socket.request.max.bytes).
    pub max_request_bytes: usize,
    /// Largest record batch accepted per partition (Kafka's message.max.bytes).
    pub max_message_bytes: usize,
    /// Size at which a partition's active segment is rolled (Kafka's log.segment.bytes).
    pub segment_bytes: u64,
    /// When batches are fsynced.
    pub flush: FlushPolicy,
    /// Delay before the first rebalance of an empty group completes
    /// (Kafka's group.initial.rebalance.delay.ms; 0 here, Kafka defaults to 3 s).
    pub group_initial_rebalance_delay: Duration,
    /// Smallest and largest session timeout a group member may ask for.
    pub group_min_session_timeout: Duration,
    /// See `group_min_session_timeout`.
    pub group_max_session_timeout: Duration,
    /// How often retention and compaction run.
    pub log_cleanup_interval: Duration,
    /// Largest transaction timeout a producer may ask for (Kafka's
    /// `transaction.max.timeout.ms`, 15 minutes).
    pub transaction_max_timeout: Duration,
    /// How often transactions past their timeout are aborted (Kafka's
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`, 10 s).
    pub transaction_abort_interval: Duration,
    /// How long an unused transactional id is remembered (Kafka's
    /// `transactional.id.expiration.ms`, 7 days).
    pub transactional_id_expiration: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertised_host: None,
            data_dir: None,
            node_id: 1,
            default_partitions: 4,
            auto_create_topics: true,
            accept_any_replication_factor: false,
            max_request_bytes: 100 * 1024 * 1024,
            max_message_bytes: 1024 * 1024 + 12,
            segment_bytes: 1024 * 1024 * 1024,
            flush: FlushPolicy::default(),
            group_initial_rebalance_delay: Duration::ZERO,
            group_min_session_timeout: Duration::from_millis(6_000),
            group_max_session_timeout: Duration::from_millis(1_800_000),
            log_cleanup_interval: Duration::from_secs(30),
            transaction_max_timeout: Duration::from_millis(900_000),
            transaction_abort_interval: Duration::from_secs(10),
            transactional_id_expiration: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
