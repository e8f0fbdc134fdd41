//! Group membership of our own: one member per instance speaks the classic group protocol,
//! its leader runs the task assignor, and the stream threads run what it hands them.
//!
//! librdkafka has no custom-assignor API, so the stream threads' consumers never subscribe:
//! they only `incremental_assign` the partitions of the tasks the member gives them. The
//! member ([`member`]) joins with our userData inside the consumer protocol's envelope
//! ([`leader`]), heartbeats, and turns each assignment into a [`Directive`] per thread.
//! Offsets are committed with the member's id and generation ([`GroupShared::commit`]), as the
//! broker requires while the group has members.
//!
//! Rebalances are cooperative: a thread keeps the tasks it is given again and keeps
//! processing them; it commits and closes only the tasks it loses. The leader withholds a task
//! another member still owns until that member has revoked it and rejoined (the assignor's
//! follow-up rebalance), so no task ever runs in two places.

mod conn;
mod identity;
mod leader;
pub(crate) mod member;
mod protocol;
mod scram;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::metadata::Hosts;
use super::topics::Layout;
use crate::assignment::OwnedTasks;
use crate::config::Security;
use crate::error::{Result, StreamsError};
use crate::task_id::TaskId;
use conn::Connection;
pub(crate) use identity::process_id;

/// How long a request to the coordinator may take (JoinGroup waits longer: the rebalance).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a commit keeps trying while the coordinator moves.
const COMMIT_RETRY_FOR: Duration = Duration::from_secs(30);

/// The member's current membership, which commits name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generation {
    pub(crate) member_id: String,
    /// `group.instance.id`, for a static member.
    pub(crate) instance: Option<String>,
    pub(crate) generation: i32,
    /// `host:port` of the group coordinator.
    pub(crate) coordinator: String,
}

impl Generation {
    /// The member as the protocol's calls name it.
    pub(crate) fn member(&self) -> protocol::Member<'_> {
        protocol::Member {
            id: &self.member_id,
            instance: self.instance.as_deref(),
        }
    }
}

/// What the member tells one stream thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Directive {
    /// Run exactly these tasks: keep those already running, commit and close the others,
    /// create the new ones. Standbys (warm-ups included) keep copies of state only.
    Assign {
        active: BTreeSet<TaskId>,
        standby: BTreeSet<TaskId>,
    },
    /// The membership was lost (fenced, or the session expired): another member may already
    /// run these tasks, so close them all without committing.
    Lost,
}

/// Shared by the member and the stream threads.
pub(crate) struct GroupShared {
    inner: Mutex<Inner>,
    changed: Condvar,
    group_id: String,
    client_id: String,
    /// The group's hosts from the last assignment, for interactive queries.
    hosts: Mutex<Hosts>,
    /// Per thread: when its loop last turned, in milliseconds since `epoch`.
    turns: Vec<AtomicU64>,
    epoch: Instant,
    security: Security,
    /// The topology's layout on the cluster: set at start, replaced when a source topic gains
    /// partitions (more tasks). The member sets it before the assignment that uses it.
    layout: Mutex<Option<Arc<Layout>>>,
    /// The member has sent JoinGroup and not yet published the new generation: exactly-once
    /// commits wait, since the generation they would carry may be ending.
    rejoining: std::sync::atomic::AtomicBool,
    /// A stream thread asks the member to rejoin (its producer was fenced: it closed its tasks
    /// and gets them, or others, back through a rebalance).
    rejoin_requested: std::sync::atomic::AtomicBool,
}

struct Inner {
    generation: Option<Generation>,
    /// Sequence number of the last directives published.
    published: u64,
    /// Per thread: the directive not taken yet.
    inbox: Vec<Option<(u64, Directive)>>,
    /// Per thread: the last sequence it has applied (its revocations committed and closed).
    applied: Vec<u64>,
    /// Per thread: the tasks it holds, for the next subscription.
    owned: Vec<OwnedTasks>,
    /// Per thread: whether it has stopped.
    exited: Vec<bool>,
}

/// What a commit came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitOutcome {
    /// The offsets are committed.
    Committed,
    /// Nothing to commit, or no membership yet.
    Skipped,
    /// The group is rebalancing or this member's generation is gone: the offsets were not
    /// committed, and the records after the last commit will be read again by whoever owns
    /// the task next (at-least-once).
    Rejected,
    /// Exactly-once: the transaction was aborted; the tasks' local state must be rebuilt from
    /// what the cluster committed.
    Aborted,
}

impl GroupShared {
    pub(crate) fn new(group_id: &str, client_id: &str, threads: usize, security: Security) -> Self {
        GroupShared {
            inner: Mutex::new(Inner {
                generation: None,
                published: 0,
                inbox: vec![None; threads],
                applied: vec![0; threads],
                owned: vec![OwnedTasks::default(); threads],
                exited: vec![false; threads],
            }),
            changed: Condvar::new(),
            group_id: group_id.to_string(),
            client_id: client_id.to_string(),
            hosts: Mutex::new(Hosts::default()),
            turns: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            security,
            layout: Mutex::new(None),
            rejoining: std::sync::atomic::AtomicBool::new(false),
            rejoin_requested: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether a rebalance of this member is under way (see the field).
    pub(crate) fn rejoining(&self) -> bool {
        self.rejoining.load(Ordering::Acquire)
    }

    pub(crate) fn set_rejoining(&self, on: bool) {
        self.rejoining.store(on, Ordering::Release);
    }

    /// The group id (the application id).
    /// Asks the member to rejoin the group (see the field).
    pub(crate) fn request_rejoin(&self) {
        self.rejoin_requested.store(true, Ordering::Release);
    }

    /// Whether a thread asked for a rejoin since the last call.
    fn take_rejoin_request(&self) -> bool {
        self.rejoin_requested.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The current layout (`None` before start).
    pub(crate) fn layout(&self) -> Option<Arc<Layout>> {
        self.layout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the layout; stream threads take it with their next assignment.
    pub(crate) fn set_layout(&self, layout: Arc<Layout>) {
        *self.layout.lock().unwrap_or_else(|e| e.into_inner()) = Some(layout);
    }

    /// Thread `index` is turning its loop (it polls, processes, restores a slice).
    pub(crate) fn alive(&self, index: usize) {
        self.alive_at(index, self.epoch.elapsed());
    }

    /// [`Self::alive`] at `now` (time since this value was made).
    pub(crate) fn alive_at(&self, index: usize, now: Duration) {
        self.turns[index].store(now.as_millis() as u64, Ordering::Relaxed);
    }

    /// The first running thread whose loop has not turned for longer than `limit`, and for
    /// how long: a stream thread stuck in user code must not keep its tasks from the group.
    fn stalled(&self, limit: Duration) -> Option<(usize, Duration)> {
        self.stalled_at(self.epoch.elapsed(), limit)
    }

    /// [`Self::stalled`] at `now` (time since this value was made): time injected for tests.
    pub(crate) fn stalled_at(&self, now: Duration, limit: Duration) -> Option<(usize, Duration)> {
        let now = now.as_millis() as u64;
        let exited = self.lock().exited.clone();
        self.turns.iter().enumerate().find_map(|(i, t)| {
            let idle = Duration::from_millis(now.saturating_sub(t.load(Ordering::Relaxed)));
            (!exited[i] && idle > limit).then_some((i, idle))
        })
    }

    /// The group's hosts as the last assignment told them.
    pub(crate) fn hosts(&self) -> Hosts {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_hosts(&self, hosts: Hosts) {
        *self.hosts.lock().unwrap_or_else(|e| e.into_inner()) = hosts;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn generation(&self) -> Option<Generation> {
        self.lock().generation.clone()
    }

    fn set_generation(&self, g: Option<Generation>) {
        self.lock().generation = g;
    }

    /// Hands every thread its directive (index = thread).
    fn publish(&self, directives: Vec<Directive>) {
        let mut inner = self.lock();
        inner.published += 1;
        let seq = inner.published;
        for (i, d) in directives.into_iter().enumerate() {
            if let Some(slot) = inner.inbox.get_mut(i) {
                *slot = Some((seq, d));
            }
        }
        drop(inner);
        self.changed.notify_all();
    }

    /// The directive waiting for thread `index`, if any.
    pub(crate) fn take(&self, index: usize) -> Option<(u64, Directive)> {
        self.lock().inbox.get_mut(index)?.take()
    }

    /// Thread `index` has applied directive `seq` (revocations done) and now holds `owned`.
    pub(crate) fn applied(&self, index: usize, seq: u64, owned: OwnedTasks) {
        let mut inner = self.lock();
        inner.applied[index] = inner.applied[index].max(seq);
        inner.owned[index] = owned;
        drop(inner);
        self.changed.notify_all();
    }

    /// Thread `index` now holds `owned` (tasks created after the acknowledgement).
    pub(crate) fn set_owned(&self, index: usize, owned: OwnedTasks) {
        self.lock().owned[index] = owned;
    }

    /// Thread `index` has stopped; it no longer holds anything up.
    pub(crate) fn exited(&self, index: usize) {
        let mut inner = self.lock();
        inner.exited[index] = true;
        inner.inbox[index] = None;
        inner.owned[index] = OwnedTasks::default();
        drop(inner);
        self.changed.notify_all();
    }

    fn all_exited(&self) -> bool {
        self.lock().exited.iter().all(|e| *e)
    }

    /// Waits up to `timeout` until every running thread has applied the last directives.
    fn wait_applied(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        loop {
            let done = (0..inner.applied.len())
                .all(|i| inner.exited[i] || inner.applied[i] >= inner.published);
            if done {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            inner = self
                .changed
                .wait_timeout(inner, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn owned(&self) -> Vec<OwnedTasks> {
        self.lock().owned.clone()
    }

    /// Commits `offsets` (topic, partition, next offset) with the member's id and generation,
    /// over the calling thread's own connection to the coordinator (`conn`, opened on demand).
    pub(crate) fn commit(
        &self,
        conn: &mut Option<Connection>,
        offsets: &[(String, i32, i64)],
    ) -> Result<CommitOutcome> {
        if offsets.is_empty() {
            return Ok(CommitOutcome::Skipped);
        }
        let deadline = Instant::now() + COMMIT_RETRY_FOR;
        loop {
            let Some(g) = self.generation() else {
                return Ok(CommitOutcome::Skipped);
            };
            let attempt = (|| {
                if conn.as_ref().is_none_or(|c| c.broker() != g.coordinator) {
                    *conn = Some(Connection::open(
                        &g.coordinator,
                        &self.client_id,
                        REQUEST_TIMEOUT,
                        &self.security,
                    )?);
                }
                let c = conn.as_mut().expect("opened above");
                protocol::commit(c, &self.group_id, g.member(), g.generation, offsets)
            })();
            let e = match attempt {
                Ok(()) => return Ok(CommitOutcome::Committed),
                Err(e) => e,
            };
            match e.code() {
                Some(
                    ResponseError::RebalanceInProgress
                    | ResponseError::IllegalGeneration
                    | ResponseError::UnknownMemberId
                    | ResponseError::FencedInstanceId,
                ) => {
                    tracing::warn!(generation = g.generation, error = %e, partitions = offsets.len(), "offsets not committed: the group is rebalancing");
                    return Ok(CommitOutcome::Rejected);
                }
                _ if e.coordinator_moved() && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "retrying a commit");
                    *conn = None;
                    std::thread::sleep(Duration::from_millis(200));
                }
                _ => {
                    return Err(StreamsError::Group {
                        group: self.group_id.clone(),
                        operation: format!("committing offsets of {} partitions", offsets.len()),
                        message: e.to_string(),
                    })
                }
            }
        }
    }
}

/// Logs in to the first bootstrap server that answers, so that wrong credentials fail start
/// with an error naming the broker and the mechanism (rdkafka's clients would only log them).
/// Unreachable brokers are left to the start-up checks that follow, which report them.
pub(crate) fn check_credentials(config: &crate::config::ResolvedConfig) -> Result<()> {
    if config.security == Security::default() {
        return Ok(());
    }
    let client_id = format!("{}-member", config.application_id);
    for broker in config.bootstrap_servers.split(',').map(str::trim) {
        match Connection::open(broker, &client_id, REQUEST_TIMEOUT, &config.security) {
            Ok(_) => return Ok(()),
            Err(e) if e.auth => {
                return Err(StreamsError::Group {
                    group: config.application_id.clone(),
                    operation: "logging in".into(),
                    message: e.to_string(),
                })
            }
            Err(e) => tracing::debug!(error = %e, "bootstrap server not reachable"),
        }
    }
    Ok(())
}

/// A stream thread's connection to the coordinator for its commits.
pub(crate) type CommitConnection = Option<Connection>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_stops_turning_its_loop_is_found_stalled_until_it_turns_again() {
        let g = GroupShared::new("app", "app-1", 2, Security::default());
        let limit = Duration::from_secs(10);
        let s = Duration::from_secs;
        g.alive_at(0, s(1));
        g.alive_at(1, s(1));
        assert_eq!(g.stalled_at(s(11), limit), None);
        g.alive_at(1, s(11));
        assert_eq!(g.stalled_at(s(12), limit), Some((0, s(11))));
        g.alive_at(0, s(12));
        assert_eq!(g.stalled_at(s(12), limit), None);
        // A thread that has stopped holds nothing up.
        g.exited(1);
        assert_eq!(g.stalled_at(s(60), limit), Some((0, s(48))));
        g.exited(0);
        assert_eq!(g.stalled_at(s(60), limit), None);
    }

    #[test]
    fn the_member_waits_for_every_running_thread_to_apply_its_directive() {
        let g = GroupShared::new("app", "app-1", 2, Security::default());
        assert!(g.wait_applied(Duration::ZERO), "nothing published yet");
        let none = Directive::Assign {
            active: BTreeSet::new(),
            standby: BTreeSet::new(),
        };
        g.publish(vec![none.clone(), Directive::Lost]);
        assert!(!g.wait_applied(Duration::ZERO));
        let (seq, d) = g.take(0).unwrap();
        assert_eq!(d, none);
        assert!(g.take(0).is_none(), "taken once");
        g.applied(0, seq, OwnedTasks::default());
        assert!(
            !g.wait_applied(Duration::ZERO),
            "thread 2 has not applied yet"
        );
        g.exited(1);
        assert!(
            g.wait_applied(Duration::ZERO),
            "an exited thread holds nothing up"
        );
    }
}
