//! The instance's group member: finds the coordinator, joins, leads when elected, heartbeats,
//! and leaves on close. It runs on a thread of its own, so that a stream thread busy
//! processing or restoring never misses a heartbeat.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::conn::Connection;
use super::protocol::{self, CallError, Timeouts};
use super::{leader, Directive, Generation, GroupShared, REQUEST_TIMEOUT};
use crate::assignment::{AssignmentConfig, FollowUp, HostInfo, OffsetSum, ProcessId, Subscription};
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::runtime::topics::Layout;
use crate::runtime::Shared;

/// Pause before retrying after a failure that is not the coordinator's answer.
const RETRY: Duration = Duration::from_millis(500);
/// Longest sleep between looks at shutdown, deadlines and acknowledgements.
const TICK: Duration = Duration::from_millis(50);

/// Everything the member needs, built by the runtime at start.
pub(crate) struct MemberSetup {
    pub(crate) config: Arc<ResolvedConfig>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) group: Arc<GroupShared>,
    /// For laying the topology out again when a source topic gains partitions.
    pub(crate) topology: Arc<crate::topology::Topology>,
    pub(crate) assignment: AssignmentConfig,
    pub(crate) host: Option<HostInfo>,
    pub(crate) client_tags: BTreeMap<String, String>,
    pub(crate) app_dir: PathBuf,
    pub(crate) process: ProcessId,
}

/// Where the member is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Must (re)join before the next heartbeat.
    Unjoined,
    /// Has a generation; heartbeats, and rejoins at `rejoin_at` if the assignor asked.
    Stable { rejoin_at: Option<Instant> },
    /// Left the group because a stream thread stalled past `max.poll.interval.ms`; rejoins
    /// once every thread turns its loop again.
    Left,
}

struct Member {
    setup: MemberSetup,
    timeouts: Timeouts,
    heartbeat_interval: Duration,
    conn: Option<Connection>,
    member_id: String,
    state: State,
    next_heartbeat: Instant,
    /// Lists the changelogs' end offsets when this member leads, and the source topics'
    /// partitions; made on first use.
    offsets: Option<rdkafka::consumer::BaseConsumer>,
    /// Whether this member led the last rebalance: the leader watches the source topics.
    leader: bool,
    /// `metadata.max.age.ms`: how often the leader looks for source topics that grew.
    metadata_age: Duration,
    next_metadata_check: Instant,
}

/// Entry point of the member thread.
pub(crate) fn run(setup: MemberSetup) {
    let span = tracing::info_span!("group_member", group = %setup.config.application_id);
    let _g = span.enter();
    let shared = setup.shared.clone();
    let mut m = match Member::new(setup) {
        Ok(m) => m,
        Err(e) => {
            shared.fail(e);
            return;
        }
    };
    while !m.setup.shared.shutdown_requested() {
        if let Err(e) = m.step() {
            shared.fail(e);
            break;
        }
    }
    m.leave_after_threads();
    tracing::info!("group member stopped");
}

fn ms(config: &ResolvedConfig, key: &str, default: u64) -> Result<u64> {
    match config.consumer.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|e| {
            StreamsError::config(key, format!("`{v}` is not a number of milliseconds: {e}"))
        }),
    }
}

impl Member {
    fn new(setup: MemberSetup) -> Result<Self> {
        let session = ms(&setup.config, "session.timeout.ms", 45_000)?;
        let rebalance = ms(&setup.config, "max.poll.interval.ms", 300_000)?;
        let heartbeat = ms(&setup.config, "heartbeat.interval.ms", 3_000)?;
        let metadata_age =
            Duration::from_millis(ms(&setup.config, "metadata.max.age.ms", 300_000)?);
        let to_i32 = |key: &str, v: u64| {
            i32::try_from(v).map_err(|_| StreamsError::config(key, "is too large"))
        };
        Ok(Member {
            timeouts: Timeouts {
                session_ms: to_i32("session.timeout.ms", session)?,
                rebalance_ms: to_i32("max.poll.interval.ms", rebalance)?,
            },
            heartbeat_interval: Duration::from_millis(heartbeat),
            setup,
            conn: None,
            member_id: String::new(),
            state: State::Unjoined,
            next_heartbeat: Instant::now(),
            offsets: None,
            leader: false,
            metadata_age,
            next_metadata_check: Instant::now() + metadata_age,
        })
    }

    fn group_id(&self) -> &str {
        &self.setup.config.application_id
    }

    /// The connection to the coordinator, found through the bootstrap servers.
    fn coordinator(&mut self) -> std::result::Result<&mut Connection, CallError> {
        if self.conn.is_none() {
            let client_id = format!("{}-member", self.group_id());
            let mut last = None;
            for broker in self.setup.config.bootstrap_servers.split(',') {
                let broker = broker.trim();
                let security = &self.setup.config.security;
                let found = Connection::open(broker, &client_id, REQUEST_TIMEOUT, security)
                    .map_err(CallError::from)
                    .and_then(|mut c| protocol::find_coordinator(&mut c, self.group_id()));
                match found {
                    Ok(addr) => {
                        self.conn = Some(Connection::open(
                            &addr,
                            &client_id,
                            REQUEST_TIMEOUT,
                            security,
                        )?);
                        tracing::info!(coordinator = %addr, "found the group coordinator");
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    fn step(&mut self) -> Result<()> {
        let limit = Duration::from_millis(self.timeouts.rebalance_ms as u64);
        match self.state {
            State::Left => {
                if self.setup.group.stalled(limit).is_none() {
                    tracing::info!("every stream thread is polling again: rejoining");
                    self.state = State::Unjoined;
                } else {
                    std::thread::sleep(TICK);
                }
                Ok(())
            }
            State::Stable { .. } | State::Unjoined
                if self.setup.group.generation().is_some()
                    && self.setup.group.stalled(limit).is_some() =>
            {
                let (thread, idle) = self.setup.group.stalled(limit).expect("checked");
                tracing::warn!(
                    thread = thread + 1,
                    idle_ms = idle.as_millis() as u64,
                    "a stream thread has not polled for longer than max.poll.interval.ms: \
                     leaving the group so that its tasks move; rejoining when it polls again"
                );
                self.leave();
                let threads = self.setup.config.num_stream_threads;
                self.setup.group.publish(vec![Directive::Lost; threads]);
                self.state = State::Left;
                Ok(())
            }
            State::Unjoined => self.join(),
            State::Stable { rejoin_at } => {
                if self.setup.group.take_rejoin_request() {
                    tracing::info!("rejoining: a stream thread closed its tasks after fencing");
                    self.state = State::Unjoined;
                    return Ok(());
                }
                if rejoin_at.is_some_and(|t| Instant::now() >= t) {
                    tracing::info!("rejoining as the assignor asked (probing or handover)");
                    self.state = State::Unjoined;
                    return Ok(());
                }
                if self.leader && Instant::now() >= self.next_metadata_check {
                    self.next_metadata_check = Instant::now() + self.metadata_age;
                    if self.relayout_if_sources_grew()? {
                        self.state = State::Unjoined;
                        return Ok(());
                    }
                }
                self.heartbeat_when_due()
            }
        }
    }

    /// Sends a heartbeat if one is due, otherwise sleeps a tick.
    fn heartbeat_when_due(&mut self) -> Result<()> {
        let now = Instant::now();
        if now < self.next_heartbeat {
            std::thread::sleep((self.next_heartbeat - now).min(TICK));
            return Ok(());
        }
        let Some(g) = self.setup.group.generation() else {
            self.state = State::Unjoined;
            return Ok(());
        };
        let group = self.group_id().to_string();
        let result = self
            .coordinator()
            .and_then(|c| protocol::heartbeat(c, &group, g.member(), g.generation));
        self.next_heartbeat = Instant::now() + self.heartbeat_interval;
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.on_error("heartbeating", e),
        }
    }

    fn join(&mut self) -> Result<()> {
        // Threads commit and close what they lose before the member rejoins, so that the
        // next owner of a task reads from where this one stopped. Heartbeats go on meanwhile.
        if !self.setup.group.wait_applied(TICK) {
            if self.setup.group.generation().is_some() {
                let _ = self.heartbeat_when_due();
            }
            return Ok(());
        }
        // Every member, not only the leader, must know the tasks a grown topic brings.
        self.relayout_if_sources_grew()?;
        let subscription = self.subscription()?;
        let group = self.group_id().to_string();
        let timeouts = self.timeouts;
        let mut member_id = std::mem::take(&mut self.member_id);
        let instance = self.setup.config.group_instance_id.clone();
        // Until the new generation is published, exactly-once commits hold back.
        self.setup.group.set_rejoining(true);
        let joined = self.coordinator().and_then(|c| {
            c.set_timeout(Duration::from_millis(timeouts.rebalance_ms as u64) + REQUEST_TIMEOUT)?;
            let joined = protocol::join(
                c,
                &group,
                &mut member_id,
                instance.as_deref(),
                timeouts,
                subscription,
            );
            c.set_timeout(REQUEST_TIMEOUT)?;
            joined
        });
        self.member_id = member_id;
        let joined = match joined {
            Ok(j) => j,
            Err(e) => return self.on_error("joining", e),
        };
        let leader = joined.leader == joined.member_id;
        self.leader = leader;
        let layout = self.layout();
        if joined.skip_assignment {
            tracing::info!(
                "rejoined a stable group as its static leader: keeping the current assignment"
            );
        }
        let assignments = if leader && !joined.skip_assignment {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let ends = match self.offsets_consumer() {
                Ok(()) => leader::changelog_end_offsets(
                    self.offsets.as_ref().expect("made by offsets_consumer"),
                    &layout.assignor,
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "no consumer to list end offsets with");
                    BTreeMap::new()
                }
            };
            leader::assign(
                &joined.members,
                &layout.assignor,
                ends,
                &self.setup.assignment,
                now_ms,
            )
        } else {
            Vec::new()
        };
        let bytes = match self.coordinator().and_then(|c| {
            let me = protocol::Member {
                id: &joined.member_id,
                instance: instance.as_deref(),
            };
            protocol::sync(c, &group, me, joined.generation, assignments)
        }) {
            Ok(b) => b,
            Err(e) => return self.on_error("syncing", e),
        };
        let info = leader::decode_assignment(bytes).map_err(|message| StreamsError::Group {
            group: group.clone(),
            operation: format!("reading the assignment of generation {}", joined.generation),
            message,
        })?;
        let coordinator = self
            .conn
            .as_ref()
            .map(|c| c.broker().to_string())
            .unwrap_or_default();
        // The generation first: threads commit what they lose with it.
        self.setup.group.set_generation(Some(Generation {
            member_id: joined.member_id.clone(),
            instance: instance.clone(),
            generation: joined.generation,
            coordinator,
        }));
        self.setup.group.set_rejoining(false);

        let threads = self.setup.config.num_stream_threads;
        let mut directives = vec![
            Directive::Assign {
                active: Default::default(),
                standby: Default::default(),
            };
            threads
        ];
        let mut follow_up = None;
        if let Some(info) = &info {
            for (i, t) in info.threads.iter().enumerate().take(threads) {
                directives[i] = Directive::Assign {
                    active: t.active.clone(),
                    standby: t.standby.union(&t.warmup).copied().collect(),
                };
            }
            follow_up = info.follow_up;
            self.setup.group.set_hosts(crate::runtime::metadata::Hosts {
                active: info.active_by_host.clone(),
                standby: info.standby_by_host.clone(),
            });
        }
        tracing::info!(
            generation = joined.generation,
            member = %joined.member_id,
            leader,
            active = info.as_ref().map_or(0, |i| i.threads.iter().map(|t| t.active.len()).sum::<usize>()),
            standby = info.as_ref().map_or(0, |i| i.threads.iter().map(|t| t.standby.len() + t.warmup.len()).sum::<usize>()),
            "joined the group"
        );
        self.setup.group.publish(directives);
        self.next_heartbeat = Instant::now() + self.heartbeat_interval;
        self.state = match follow_up {
            Some(FollowUp::Immediately) => State::Unjoined,
            Some(FollowUp::At(at_ms)) => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let wait = u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0);
                State::Stable {
                    rejoin_at: Some(Instant::now() + Duration::from_millis(wait)),
                }
            }
            None => State::Stable { rejoin_at: None },
        };
        Ok(())
    }

    /// The topology's current layout (set at start).
    fn layout(&self) -> Arc<Layout> {
        self.setup
            .group
            .layout()
            .expect("the layout is set before the member starts")
    }

    /// Lays the topology out again if a source topic gained partitions, as Kafka Streams'
    /// leader rebalances when its subscription's metadata changes: new partitions are new
    /// tasks. Internal topics that no longer fit (a repartition topic or changelog sized for
    /// the old count) fail the instance naming the topic and both counts, as in Kafka Streams.
    /// Returns whether the layout changed. Metadata that cannot be fetched is retried later.
    fn relayout_if_sources_grew(&mut self) -> Result<bool> {
        let layout = self.layout();
        self.offsets_consumer()?;
        let consumer = self.offsets.as_ref().expect("made by offsets_consumer");
        let now = match super::super::topics::current_source_partitions(consumer, &layout) {
            Ok(now) => now,
            Err(e) => {
                tracing::warn!(error = %e, "could not check the source topics' partitions");
                return Ok(false);
            }
        };
        let grown: Vec<(String, i32, i32)> = now
            .iter()
            .filter_map(|(t, n)| {
                let before = *layout.source_partitions.get(t)?;
                (before != *n).then(|| (t.clone(), before, *n))
            })
            .collect();
        if grown.is_empty() {
            return Ok(false);
        }
        for (topic, before, after) in &grown {
            tracing::info!(%topic, before, after, "a source topic's partition count changed: laying the tasks out again and rebalancing");
        }
        let next = super::super::topics::prepare(&self.setup.topology, &self.setup.config)?;
        self.setup.group.set_layout(Arc::new(next));
        Ok(true)
    }

    /// Makes the consumer that lists end offsets, once.
    fn offsets_consumer(&mut self) -> Result<()> {
        if self.offsets.is_none() {
            let mut cc = rdkafka::config::ClientConfig::new();
            for (k, v) in &self.setup.config.consumer {
                cc.set(k, v);
            }
            cc.set("client.id", format!("{}-member-offsets", self.group_id()));
            self.offsets = Some(cc.create().map_err(|e| {
                StreamsError::kafka("creating the leader's offset lookup consumer", e)
            })?);
        }
        Ok(())
    }

    /// What this instance tells the leader: identity, threads, state and what it owns.
    fn subscription(&self) -> Result<bytes::Bytes> {
        let owned = self.setup.group.owned();
        let mut sums = super::identity::checkpointed_offset_sums(&self.setup.app_dir);
        for t in owned.iter().flat_map(|o| o.active.iter()) {
            sums.insert(*t, OffsetSum::RunningActive);
        }
        let s = Subscription {
            process_id: self.setup.process,
            num_threads: u32::try_from(self.setup.config.num_stream_threads).unwrap_or(u32::MAX),
            task_offset_sums: sums,
            host: self.setup.host.clone(),
            client_tags: self.setup.client_tags.clone(),
            owned,
        };
        leader::encode_subscription(&self.layout().subscriptions(), &s).map_err(|message| {
            StreamsError::Group {
                group: self.group_id().to_string(),
                operation: "encoding the subscription".into(),
                message,
            }
        })
    }

    /// Acts on a failed call: find the coordinator again, rejoin, give the tasks up, or fail.
    fn on_error(&mut self, operation: &str, e: CallError) -> Result<()> {
        if e.is_auth() {
            return Err(StreamsError::Group {
                group: self.group_id().to_string(),
                operation: operation.to_string(),
                message: e.to_string(),
            });
        }
        match e.code() {
            _ if e.coordinator_moved() => {
                tracing::warn!(error = %e, "{operation}: looking for the coordinator again");
                self.conn = None;
                std::thread::sleep(RETRY);
            }
            Some(ResponseError::RebalanceInProgress) => {
                tracing::info!("the group is rebalancing: rejoining");
                self.state = State::Unjoined;
            }
            Some(ResponseError::FencedInstanceId) => {
                // Another process joined with our group.instance.id: rejoining would fence it
                // in turn, and the two would take the tasks from each other forever.
                return Err(StreamsError::Group {
                    group: self.group_id().to_string(),
                    operation: operation.to_string(),
                    message: format!(
                        "{e}: another instance joined with group.instance.id `{}`; each \
                         instance needs its own",
                        self.setup.config.group_instance_id.as_deref().unwrap_or("")
                    ),
                });
            }
            Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                tracing::warn!(error = %e, "{operation}: membership lost; closing every task and rejoining");
                if e.code() == Some(ResponseError::UnknownMemberId) {
                    self.member_id.clear();
                }
                self.setup.group.set_generation(None);
                let threads = self.setup.config.num_stream_threads;
                self.setup.group.publish(vec![Directive::Lost; threads]);
                self.state = State::Unjoined;
            }
            Some(
                ResponseError::InconsistentGroupProtocol
                | ResponseError::GroupAuthorizationFailed
                | ResponseError::GroupMaxSizeReached
                | ResponseError::InvalidSessionTimeout
                | ResponseError::UnsupportedVersion,
            ) => {
                let hint = if e.code() == Some(ResponseError::InconsistentGroupProtocol) {
                    " (another kind of client, such as a Java Kafka Streams instance, uses this application.id)"
                } else {
                    ""
                };
                return Err(StreamsError::Group {
                    group: self.group_id().to_string(),
                    operation: operation.to_string(),
                    message: format!("{e}{hint}"),
                });
            }
            _ => {
                tracing::warn!(error = %e, "{operation} failed: rejoining");
                self.state = State::Unjoined;
                std::thread::sleep(RETRY);
            }
        }
        Ok(())
    }

    /// On close: heartbeat while the stream threads make their final commits, then leave so
    /// that the group rebalances at once rather than after the session timeout.
    fn leave_after_threads(&mut self) {
        while !self.setup.group.all_exited() {
            if self.setup.group.generation().is_some() {
                let now = Instant::now();
                if now >= self.next_heartbeat {
                    let g = self.setup.group.generation().expect("checked");
                    let group = self.group_id().to_string();
                    let r = self
                        .coordinator()
                        .and_then(|c| protocol::heartbeat(c, &group, g.member(), g.generation));
                    if let Err(e) = r {
                        if e.coordinator_moved() {
                            self.conn = None;
                        }
                    }
                    self.next_heartbeat = Instant::now() + self.heartbeat_interval;
                }
            }
            std::thread::sleep(TICK);
        }
        self.leave();
    }

    /// Sends LeaveGroup (when joined) and forgets the membership. A static member does not
    /// leave, as Kafka's consumers do not: the group keeps its place and tasks until its session
    /// times out, so a restart within `session.timeout.ms` moves nothing.
    fn leave(&mut self) {
        self.setup.group.set_generation(None);
        if self.member_id.is_empty() {
            return;
        }
        if let Some(instance) = &self.setup.config.group_instance_id {
            tracing::info!(
                %instance,
                "static member: not leaving the group; its tasks wait for it until the session \
                 timeout"
            );
            self.member_id.clear();
            return;
        }
        let group = self.group_id().to_string();
        let member_id = std::mem::take(&mut self.member_id);
        match self
            .coordinator()
            .and_then(|c| protocol::leave(c, &group, &member_id))
        {
            Ok(()) => tracing::info!(member = %member_id, "left the group"),
            Err(e) => {
                tracing::warn!(error = %e, "leaving the group failed; the session timeout will remove this member")
            }
        }
    }
}
