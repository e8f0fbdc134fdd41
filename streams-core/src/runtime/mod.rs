//! The runtime: [`KafkaStreams`] runs a topology on a Kafka cluster with rdkafka, one consumer and
//! one producer per stream thread, and tokio for waiting on signals and states. It is the only
//! module that does I/O.
//!
//! Start creates the internal topics (`<application.id>-<name>-repartition`,
//! `<application.id>-<store>-changelog`), checks that the source topics exist, and starts
//! `num.stream.threads` stream threads that join the consumer group `application.id`.

mod client;
mod collector;
mod global;
mod group;
mod http;
mod iq;
mod lifecycle;
#[cfg(test)]
mod lifecycle_tests;
mod metadata;
mod metrics;
mod multi_driver;
mod restore;
mod sim;
mod task_manager;
mod thread;
mod topics;
mod txn;
mod watermarks;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use state_store::{RocksDbConfig, StateDirectory};

pub use metadata::{KeyQueryMetadata, StreamsMetadata};
pub use metrics::StreamsMetrics;
pub use multi_driver::MultiInstanceTestDriver;

use crate::config::{ResolvedConfig, StreamsConfig};
use crate::error::{Result, StreamsError};
use crate::query::HostedStores;
use crate::task::TaskMetrics;
use crate::task_id::TaskId;
use crate::topology::Topology;

/// Lifecycle states of a [`KafkaStreams`] instance, after Kafka Streams'.
///
/// ```text
///  Created ──> Rebalancing <──> Running
///     │            │  │            │
///     │            │  └──> Error <─┤
///     └────────────┴──> PendingShutdown <─┘ ──> NotRunning
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Built, not started.
    Created,
    /// Joining the group, creating tasks or restoring their stores.
    Rebalancing,
    /// Every stream thread is processing its tasks.
    Running,
    /// Closing: final commit, stores closed, group left.
    PendingShutdown,
    /// Closed.
    NotRunning,
    /// A stream thread failed; see [`KafkaStreams::error`].
    Error,
}

impl State {
    /// Whether `self -> next` is a legal transition. All transitions are listed here.
    pub fn can_transition_to(self, next: State) -> bool {
        use State::*;
        matches!(
            (self, next),
            (Created, Rebalancing)
                | (Created, PendingShutdown)
                | (Created, Error)
                | (Rebalancing, Running)
                | (Rebalancing, PendingShutdown)
                | (Rebalancing, Error)
                | (Running, Rebalancing)
                | (Running, PendingShutdown)
                | (Running, Error)
                | (PendingShutdown, NotRunning)
                | (Error, PendingShutdown)
        )
    }

    /// Whether stream threads are (or may be) working.
    pub fn is_running_or_rebalancing(self) -> bool {
        matches!(self, State::Running | State::Rebalancing)
    }
}

/// Observes store restoration, per changelog partition (Kafka Streams' `StateRestoreListener`).
pub trait StateRestoreListener: Send + Sync {
    /// Restoration of `store` from `topic`/`partition` starts at `start_offset`; the changelog
    /// ends at `end_offset` (exclusive).
    fn on_restore_start(
        &self,
        topic: &str,
        partition: i32,
        store: &str,
        start_offset: i64,
        end_offset: i64,
    ) {
        let _ = (topic, partition, store, start_offset, end_offset);
    }
    /// A batch of `num_restored` records up to `batch_end_offset` was written to the store.
    fn on_batch_restored(
        &self,
        topic: &str,
        partition: i32,
        store: &str,
        batch_end_offset: i64,
        num_restored: u64,
    ) {
        let _ = (topic, partition, store, batch_end_offset, num_restored);
    }
    /// Restoration finished after `total_restored` records.
    fn on_restore_end(&self, topic: &str, partition: i32, store: &str, total_restored: u64) {
        let _ = (topic, partition, store, total_restored);
    }
}

type StateListener = Box<dyn Fn(State, State) + Send + Sync>;

/// What the stream threads and the handle share.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    watch: tokio::sync::watch::Sender<State>,
    listener: Mutex<Option<StateListener>>,
    pub(crate) restore_listener: Mutex<Option<Arc<dyn StateRestoreListener>>>,
    shutdown: AtomicBool,
    error: Mutex<Option<StreamsError>>,
    /// Per stream thread: whether it is rebalancing (joining, creating or restoring tasks).
    rebalancing: Mutex<Vec<bool>>,
    metrics: Mutex<Vec<ThreadMetrics>>,
    tasks: Mutex<Vec<Vec<TaskId>>>,
    /// Per thread: its standby tasks and the lag each found at its last update (`None`
    /// before the first).
    standbys: Mutex<Vec<BTreeMap<TaskId, Option<u64>>>>,
    /// The stores of the tasks the threads hold, for interactive queries.
    pub(crate) hosted: HostedStores,
    /// The origin of the metrics' clock.
    epoch: Instant,
    /// Stream threads running, and those that ended with an error.
    alive_threads: std::sync::atomic::AtomicUsize,
    failed_threads: std::sync::atomic::AtomicUsize,
}

/// Counters and metrics of one stream thread.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ThreadMetrics {
    pub(crate) tasks: TaskMetrics,
    pub(crate) commits: u64,
    pub(crate) sensors: crate::metrics::ThreadSensors,
    pub(crate) task_sensors: Vec<(TaskId, crate::metrics::TaskSensors)>,
    /// Refreshed about once a second, not every loop turn: they are many.
    pub(crate) details: Arc<ThreadDetails>,
}

/// A stream thread's finer metrics: per processor node, per input partition, per restoring task.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ThreadDetails {
    /// Per task and node: records processed, and a sink's end-to-end latency.
    pub(crate) nodes: Vec<(
        TaskId,
        String,
        crate::metrics::Sensor,
        Option<crate::metrics::Sensor>,
    )>,
    /// Per input partition with a known end: records on the cluster not yet fetched.
    pub(crate) lags: Vec<(String, i32, i64)>,
    /// Per restoring task: records left to restore.
    pub(crate) restore_remaining: Vec<(TaskId, u64)>,
}

impl Shared {
    fn new(threads: usize) -> Self {
        Shared {
            state: Mutex::new(State::Created),
            changed: Condvar::new(),
            watch: tokio::sync::watch::channel(State::Created).0,
            listener: Mutex::new(None),
            restore_listener: Mutex::new(None),
            shutdown: AtomicBool::new(false),
            error: Mutex::new(None),
            rebalancing: Mutex::new(vec![true; threads]),
            metrics: Mutex::new(vec![ThreadMetrics::default(); threads]),
            tasks: Mutex::new(vec![Vec::new(); threads]),
            standbys: Mutex::new(vec![BTreeMap::new(); threads]),
            hosted: HostedStores::default(),
            epoch: Instant::now(),
            alive_threads: Default::default(),
            failed_threads: Default::default(),
        }
    }

    pub(crate) fn thread_started(&self) {
        self.alive_threads.fetch_add(1, Ordering::AcqRel);
    }

    /// A stream thread ended, `failed` or not.
    pub(crate) fn thread_ended(&self, failed: bool) {
        self.alive_threads.fetch_sub(1, Ordering::AcqRel);
        if failed {
            self.failed_threads.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Milliseconds since the instance was made: the clock the metrics' windows run on.
    pub(crate) fn now_ms(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    pub(crate) fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves to `next` if that is a legal transition; tells the listener and waiters.
    pub(crate) fn transition(&self, next: State) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let prev = *s;
        if prev == next || !prev.can_transition_to(next) {
            return false;
        }
        *s = next;
        drop(s);
        tracing::info!(from = ?prev, to = ?next, "state transition");
        if let Some(l) = &*self.listener.lock().unwrap_or_else(|e| e.into_inner()) {
            l(next, prev);
        }
        self.watch.send_replace(next);
        self.changed.notify_all();
        true
    }

    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }

    /// A stream thread failed: remember the first error, enter Error and stop the other threads.
    pub(crate) fn fail(&self, error: StreamsError) {
        tracing::error!(%error, "stream thread failed");
        self.error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(error);
        self.transition(State::Error);
        self.request_shutdown();
    }

    pub(crate) fn set_rebalancing(&self, thread: usize, rebalancing: bool) {
        let mut r = self.rebalancing.lock().unwrap_or_else(|e| e.into_inner());
        r[thread] = rebalancing;
        let any = r.iter().any(|b| *b);
        drop(r);
        let next = if any {
            State::Rebalancing
        } else {
            State::Running
        };
        if self.state().is_running_or_rebalancing() {
            self.transition(next);
        }
    }

    pub(crate) fn publish(
        &self,
        thread: usize,
        metrics: ThreadMetrics,
        tasks: Vec<TaskId>,
        standbys: BTreeMap<TaskId, Option<u64>>,
    ) {
        self.standbys.lock().unwrap_or_else(|e| e.into_inner())[thread] = standbys;
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())[thread] = metrics;
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())[thread] = tasks;
    }

    pub(crate) fn restore_listener(&self) -> Option<Arc<dyn StateRestoreListener>> {
        self.restore_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A streams application instance: runs a [`Topology`] on a Kafka cluster.
///
/// ```no_run
/// use streams_core::{KafkaStreams, StreamsConfig, Topology, serde::Serdes};
/// # async fn run() -> streams_core::Result<()> {
/// let mut topology = Topology::new();
/// topology.add_source("in", &["input"], Serdes::string(), Serdes::string())?;
/// topology.add_sink("out", "output", Serdes::string(), Serdes::string(), &["in"])?;
/// let mut app = KafkaStreams::new(topology, StreamsConfig::new("copy", "127.0.0.1:9092"))?;
/// app.start()?;
/// app.run_until_signal().await?; // SIGINT or SIGTERM: final commit, stores closed, group left
/// # Ok(()) }
/// ```
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: Arc<ResolvedConfig>,
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Set by `start`: the group member's state and the topology's layout, for metadata.
    group: Option<Arc<group::GroupShared>>,
    /// Kafka Streams' client id, `<application.id>-<process id>` once started: the
    /// `client-id` of the client metrics.
    client_id: String,
    /// Pages the HTTP server serves besides the query endpoints.
    pages: Vec<http::HttpPage>,
    /// The HTTP server, started with the instance when `http.listen` is set.
    http: Option<http::HttpServer>,
}

impl KafkaStreams {
    /// Checks the configuration and the topology; connects to nothing yet.
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self> {
        let config = config.resolve()?;
        topology.validate(config.ensure_explicit_naming)?;
        let threads = config.num_stream_threads;
        Ok(KafkaStreams {
            client_id: config.application_id.clone(),
            topology: Arc::new(topology),
            config: Arc::new(config),
            shared: Arc::new(Shared::new(threads)),
            threads: Vec::new(),
            group: None,
            pages: Vec::new(),
            http: None,
        })
    }

    /// Serves `body` at `path` (`/` included) with `content_type` on the HTTP server of
    /// `http.listen`, beside the query endpoints: how an application ships a dashboard in its
    /// binary. Call before [`start`](Self::start); without `http.listen` it serves nothing.
    pub fn add_http_page(&mut self, path: &str, content_type: &str, body: &'static str) {
        self.pages.push(http::HttpPage {
            path: path.to_string(),
            content_type: content_type.to_string(),
            body,
        });
    }

    /// Calls `listener(new, old)` on every state change.
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *self
            .shared
            .listener
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(listener));
    }

    /// Observes store restoration.
    pub fn set_restore_listener(&self, listener: Arc<dyn StateRestoreListener>) {
        *self
            .shared
            .restore_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    /// Creates the internal topics, checks the source topics and starts the stream threads.
    /// Blocks only for those admin calls; processing runs on the stream threads.
    pub fn start(&mut self) -> Result<()> {
        if self.shared.state() != State::Created {
            return Err(StreamsError::illegal_state(
                "the application",
                format!(
                    "start() called in state {:?}; an instance starts once",
                    self.shared.state()
                ),
            ));
        }
        if let Err(e) = group::check_credentials(&self.config) {
            self.shared.transition(State::Error);
            return Err(e);
        }
        let layout = match topics::prepare(&self.topology, &self.config) {
            Ok(l) => Arc::new(l),
            Err(e) => {
                self.shared.transition(State::Error);
                return Err(e);
            }
        };
        let state_dir = Arc::new(
            StateDirectory::new(&self.config.state_dir, &self.config.application_id).map_err(
                |e| StreamsError::Io {
                    path: self.config.state_dir.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                },
            )?,
        );
        let rocksdb = Arc::new(RocksDbConfig::default());
        let process = group::process_id(state_dir.app_dir());
        self.client_id = self
            .config
            .client_id
            .clone()
            .unwrap_or_else(|| format!("{}-{process}", self.config.application_id));
        let group = Arc::new(group::GroupShared::new(
            &self.config.application_id,
            &format!("{}-{process}", self.config.application_id),
            self.config.num_stream_threads,
            self.config.security.clone(),
        ));
        group.set_layout(layout.clone());
        self.shared.transition(State::Rebalancing);
        // Global stores are complete before any task reads them, as in Kafka Streams.
        let globals = Arc::new(self.topology.open_global_stores());
        match global::bootstrap(&self.config, &globals) {
            Ok(None) => {}
            Ok(Some(consumer)) => {
                let name = format!("{}-GlobalStreamThread", self.config.application_id);
                let handle = global::spawn(consumer, globals.clone(), self.shared.clone(), name)?;
                self.threads.push(handle);
            }
            Err(e) => {
                self.shared.transition(State::Error);
                return Err(e);
            }
        }
        for index in 0..self.config.num_stream_threads {
            let setup = thread::ThreadSetup {
                index,
                config: self.config.clone(),
                topology: self.topology.clone(),
                layout: layout.clone(),
                shared: self.shared.clone(),
                group: group.clone(),
                state_dir: state_dir.clone(),
                rocksdb: rocksdb.clone(),
                globals: globals.clone(),
                process,
            };
            let name = format!("{}-StreamThread-{}", self.config.client_prefix(), index + 1);
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || thread::run(setup))
                .map_err(|source| StreamsError::Io { path: name, source })?;
            self.threads.push(handle);
        }
        // The member goes last: `close` joins the stream threads (final commits) before it,
        // and it leaves the group only once they are done.
        self.group = Some(group.clone());
        let member = group::member::MemberSetup {
            config: self.config.clone(),
            shared: self.shared.clone(),
            group,
            topology: self.topology.clone(),
            assignment: self.config.assignment.clone(),
            host: self.config.application_server.clone(),
            client_tags: self.config.client_tags.clone(),
            app_dir: state_dir.app_dir().to_path_buf(),
            process,
        };
        let name = format!("{}-GroupMember", self.config.application_id);
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || group::member::run(member))
            .map_err(|source| StreamsError::Io { path: name, source })?;
        self.threads.push(handle);
        if let Some(addr) = self.config.http_listen {
            let own = self
                .config
                .application_server
                .as_ref()
                .map(|h| format!("{}:{}", h.host, h.port))
                .unwrap_or_else(|| addr.to_string());
            let ctx = http::HttpContext {
                shared: self.shared.clone(),
                topology: self.topology.clone(),
                group: self.group.clone().expect("set above"),
                config: self.config.clone(),
                client_id: self.client_id.clone(),
                own,
                client: reqwest::Client::new(),
                forward_timeout: self.config.http_forward_timeout,
            };
            let name = format!("{}-HttpServer", self.config.application_id);
            match http::HttpServer::start(addr, ctx, std::mem::take(&mut self.pages), name) {
                Ok(server) => self.http = Some(server),
                Err(e) => {
                    self.close()?;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// The error that put the instance in [`State::Error`], if any.
    pub fn error(&self) -> Option<String> {
        self.shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|e| e.to_string())
    }

    /// Blocks until the instance is in `state` (true) or `timeout` passes (false). Returns early
    /// with false when the instance fails.
    pub fn wait_for_state(&self, state: State, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *s == state {
                return true;
            }
            if *s == State::Error && state != State::Error {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The tasks each stream thread runs now.
    pub fn tasks(&self) -> BTreeMap<usize, Vec<TaskId>> {
        self.shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .enumerate()
            .collect()
    }

    /// The standby tasks (warm-ups included) each stream thread keeps now: copies of other
    /// instances' task state, ready to take over with a short restore.
    pub fn standby_tasks(&self) -> BTreeMap<usize, Vec<TaskId>> {
        self.shared
            .standbys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| s.keys().copied().collect())
            .enumerate()
            .collect()
    }

    /// Per standby task (warm-ups included), how far behind its changelogs it was when it
    /// last caught up (every `commit.interval.ms`): the records that update had to read.
    /// A standby not updated yet is not listed.
    pub fn standby_lags(&self) -> BTreeMap<TaskId, u64> {
        self.shared
            .standbys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flatten()
            .filter_map(|(t, lag)| lag.map(|lag| (*t, lag)))
            .collect()
    }

    /// Stops the stream threads cleanly: each commits, closes its tasks and stores and leaves the
    /// group. Waits for them. Returns the error that stopped the instance, if one did.
    pub fn close(&mut self) -> Result<()> {
        self.shared.transition(State::PendingShutdown);
        self.shared.request_shutdown();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Queries are answered until the tasks are gone (with "not running" errors at the end).
        if let Some(mut server) = self.http.take() {
            server.stop();
        }
        let failed = self
            .shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if self.shared.state() == State::Error {
            self.shared.transition(State::PendingShutdown);
        }
        self.shared.transition(State::NotRunning);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits for SIGINT or SIGTERM (or for a stream thread to fail), then closes.
    pub async fn run_until_signal(&mut self) -> Result<()> {
        let mut states = self.shared.watch.subscribe();
        let failed = async {
            loop {
                if *states.borrow_and_update() == State::Error {
                    return;
                }
                if states.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: closing"),
            _ = term => tracing::info!("SIGTERM: closing"),
            _ = failed => tracing::error!("a stream thread failed: closing"),
        }
        let shared = self.shared.clone();
        let threads: Vec<_> = self.threads.drain(..).collect();
        let mut this = KafkaStreams {
            topology: self.topology.clone(),
            config: self.config.clone(),
            shared,
            threads,
            group: self.group.clone(),
            client_id: self.client_id.clone(),
            pages: Vec::new(),
            http: self.http.take(),
        };
        tokio::task::spawn_blocking(move || this.close())
            .await
            .map_err(|e| {
                StreamsError::illegal_state("the application", format!("close task failed: {e}"))
            })?
    }

    /// Deletes this application's local state directory (`state.dir/<application.id>`), as Kafka
    /// Streams' `cleanUp()`: the next start restores every store from its changelog. Only while
    /// not running.
    pub fn cleanup(&self) -> Result<()> {
        if self.state().is_running_or_rebalancing() {
            return Err(StreamsError::illegal_state(
                "the application",
                "cleanup() while running; close first",
            ));
        }
        let dir = self.config.state_dir.join(&self.config.application_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StreamsError::Io {
                path: dir.display().to_string(),
                source,
            }),
        }
    }

    /// The topology this instance runs.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.http.is_some() {
            let _ = self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::State::*;

    #[test]
    fn transitions_follow_kafka_streams() {
        assert!(Created.can_transition_to(Rebalancing));
        assert!(Rebalancing.can_transition_to(Running));
        assert!(Running.can_transition_to(Rebalancing));
        assert!(Running.can_transition_to(PendingShutdown));
        assert!(PendingShutdown.can_transition_to(NotRunning));
        assert!(!NotRunning.can_transition_to(Running));
        assert!(!Created.can_transition_to(Running));
        assert!(!Error.can_transition_to(Running));
    }
}
