//! The plain data the assignor reads ([`AssignmentInput`]) and writes ([`GroupAssignment`]).
//!
//! The same types are what [`super::wire`] encodes, so a decoded subscription is directly an
//! assignor input and a member's slice of the output is directly an encodable assignment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::task_id::TaskId;

/// An instance's identity, stable across restarts (the runtime keeps it in its state
/// directory). Members of one process share it; member ids change on every rejoin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ProcessId(pub(crate) [u8; 16]);

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Where an instance serves interactive queries: its `application.server`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct HostInfo {
    /// Host name or address.
    pub(crate) host: String,
    /// Port.
    pub(crate) port: u16,
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TopicPartition {
    /// The topic.
    pub(crate) topic: String,
    /// The partition.
    pub(crate) partition: i32,
}

/// Per host, a set of partitions: the routing table of interactive queries.
pub(crate) type HostMap = BTreeMap<HostInfo, BTreeSet<TopicPartition>>;

/// How far a member's local state of a task has got, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffsetSum {
    /// The member runs the task as an active and is processing: its state is current.
    /// Distinct from a checkpoint because a running task's checkpoint lags behind its store.
    RunningActive,
    /// The sum over the task's changelog partitions of the checkpointed offsets.
    Checkpointed(u64),
}

/// What one stream thread of a member held until this rebalance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OwnedTasks {
    /// Active tasks.
    pub(crate) active: BTreeSet<TaskId>,
    /// Standby tasks, warm-ups included (to the member they are the same thing).
    pub(crate) standby: BTreeSet<TaskId>,
}

/// What a member tells the leader when it joins: the versioned subscription userData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// The member's process.
    pub(crate) process_id: ProcessId,
    /// Its stream threads (at least 1): its share of the work is proportional to them.
    pub(crate) num_threads: u32,
    /// Per task with local state (a checkpoint, or running), how far that state has got.
    pub(crate) task_offset_sums: BTreeMap<TaskId, OffsetSum>,
    /// `application.server`, if set.
    pub(crate) host: Option<HostInfo>,
    /// `client.tag.*`: where the instance runs (zone, rack, ...), for rack-aware standbys.
    pub(crate) client_tags: BTreeMap<String, String>,
    /// What each of its threads held, index = thread; may be shorter or longer than
    /// `num_threads` when the thread count changed.
    pub(crate) owned: Vec<OwnedTasks>,
}

/// One member of the group: its member id (from the group coordinator) and subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// The coordinator's member id.
    pub(crate) member_id: String,
    /// What it sent.
    pub(crate) subscription: Subscription,
}

/// A sub-topology as the assignor needs it: its tasks, and which topics name their partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subtopology {
    /// Its id: the tasks are `id_0 .. id_{partitions-1}`.
    pub(crate) id: u32,
    /// Partition count of its (co-partitioned) source topics, hence its task count.
    pub(crate) partitions: u32,
    /// Source topics (repartition topics included): task p reads partition p of each. They
    /// make the partition → host map that routes interactive queries.
    pub(crate) source_topics: Vec<String>,
    /// Changelog topics of its logged stores: task p restores partition p of each. A
    /// sub-topology without any is stateless for the assignor: its tasks can go anywhere.
    pub(crate) changelog_topics: Vec<String>,
}

impl Subtopology {
    /// Its tasks, in partition order.
    pub(crate) fn tasks(&self) -> impl Iterator<Item = TaskId> + '_ {
        (0..self.partitions).map(move |p| TaskId {
            subtopology: self.id,
            partition: p as i32,
        })
    }
}

/// The assignor's settings, with Kafka Streams' names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssignmentConfig {
    /// `num.standby.replicas` (0): standby copies of each stateful task, off its active's instance.
    pub(crate) num_standby_replicas: u32,
    /// `max.warmup.replicas` (2): warm-ups in the whole group at once.
    pub(crate) max_warmup_replicas: u32,
    /// `acceptable.recovery.lag` (10,000): an instance this close to a task's changelog end
    /// counts as caught up and may take the task at once.
    pub(crate) acceptable_recovery_lag: u64,
    /// `probing.rebalance.interval.ms` (10 min): when to look again at warm-ups in progress.
    pub(crate) probing_rebalance_interval: Duration,
    /// `rack.aware.assignment.tags` (none): client tag keys whose values a task's standbys
    /// should not share with its active nor with each other.
    pub(crate) rack_aware_assignment_tags: Vec<String>,
}

impl Default for AssignmentConfig {
    fn default() -> Self {
        AssignmentConfig {
            num_standby_replicas: 0,
            max_warmup_replicas: 2,
            acceptable_recovery_lag: 10_000,
            probing_rebalance_interval: Duration::from_millis(600_000),
            rack_aware_assignment_tags: Vec::new(),
        }
    }
}

/// Everything one assignment is computed from. Time is passed in, never read.
#[derive(Debug, Clone)]
pub(crate) struct AssignmentInput {
    /// The group's members, in any order.
    pub(crate) members: Vec<Member>,
    /// The topology.
    pub(crate) subtopologies: Vec<Subtopology>,
    /// End offsets of the changelog partitions, as the leader listed them. A missing one
    /// makes its task's lags relative to the furthest checkpoint any member reports.
    pub(crate) changelog_end_offsets: BTreeMap<TopicPartition, i64>,
    /// The leader's clock, in epoch milliseconds: the base of the probing deadline.
    pub(crate) now_ms: i64,
}

/// When the group should rebalance again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FollowUp {
    /// Right away: tasks were withheld until their previous owners have revoked them.
    Immediately,
    /// At this epoch millisecond (the probing rebalance): warm-ups are catching up.
    At(i64),
}

/// What one stream thread of a member gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ThreadAssignment {
    /// Active tasks.
    pub(crate) active: BTreeSet<TaskId>,
    /// Standby tasks.
    pub(crate) standby: BTreeSet<TaskId>,
    /// Warm-up tasks: standbys that exist only so the task can move here later.
    pub(crate) warmup: BTreeSet<TaskId>,
}

/// What one member gets, per stream thread (index = thread).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberAssignment {
    /// One entry per thread of the member.
    pub(crate) threads: Vec<ThreadAssignment>,
}

impl MemberAssignment {
    /// All its active tasks.
    pub(crate) fn active(&self) -> BTreeSet<TaskId> {
        self.threads
            .iter()
            .flat_map(|t| t.active.iter().copied())
            .collect()
    }
    /// All its standby tasks.
    pub(crate) fn standby(&self) -> BTreeSet<TaskId> {
        self.threads
            .iter()
            .flat_map(|t| t.standby.iter().copied())
            .collect()
    }
    /// All its warm-up tasks.
    pub(crate) fn warmup(&self) -> BTreeSet<TaskId> {
        self.threads
            .iter()
            .flat_map(|t| t.warmup.iter().copied())
            .collect()
    }
}

/// A stateful task kept on a caught-up instance although the balanced plan wants it
/// elsewhere: it moves once `to` has caught up (checked at the probing rebalance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Movement {
    /// The task.
    pub(crate) task: TaskId,
    /// Where it runs meanwhile: the most caught-up instance.
    pub(crate) from: ProcessId,
    /// Where the balanced plan wants it.
    pub(crate) to: ProcessId,
    /// Whether `to` got a warm-up or standby of it this round (`max.warmup.replicas` may
    /// leave a movement waiting for a later round).
    pub(crate) warming: bool,
}

/// An active task withheld this round because another member still owns it: that member
/// revokes it (commits and flushes) now, and the follow-up rebalance gives it to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Revocation {
    /// The task.
    pub(crate) task: TaskId,
    /// The member that owns it now (the first by member id if several claim it).
    pub(crate) from: String,
    /// The member that gets it in the follow-up.
    pub(crate) to: String,
}

/// The assignor's answer for the whole group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GroupAssignment {
    /// Per member id, what it gets.
    pub(crate) members: BTreeMap<String, MemberAssignment>,
    /// Per host, the source partitions of the active tasks its instance got this round:
    /// where interactive queries go.
    pub(crate) active_by_host: HostMap,
    /// Per host, the source partitions of its standby and warm-up tasks (stale reads).
    pub(crate) standby_by_host: HostMap,
    /// When to rebalance again, if needed.
    pub(crate) follow_up: Option<FollowUp>,
    /// Stateful tasks waiting for a warm-up to catch up.
    pub(crate) movements: Vec<Movement>,
    /// Active tasks withheld until their previous owners have revoked them.
    pub(crate) revocations: Vec<Revocation>,
}

/// Why a leader could not give a member a normal assignment (a wire error code, not a Rust error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AssignmentErrorCode {
    /// No error.
    None,
    /// A source topic is missing or its partition count is unknown: the member waits.
    IncompleteSourceTopicMetadata,
    /// The leader reads an older version than the member sent: resend in the version given.
    VersionProbing,
    /// A member asked for the whole application to shut down.
    ShutdownApplication,
}

impl AssignmentErrorCode {
    /// Its wire value.
    pub(crate) fn code(self) -> u16 {
        match self {
            AssignmentErrorCode::None => 0,
            AssignmentErrorCode::IncompleteSourceTopicMetadata => 1,
            AssignmentErrorCode::VersionProbing => 2,
            AssignmentErrorCode::ShutdownApplication => 3,
        }
    }

    /// The error code of a wire value, if known.
    pub(crate) fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            0 => AssignmentErrorCode::None,
            1 => AssignmentErrorCode::IncompleteSourceTopicMetadata,
            2 => AssignmentErrorCode::VersionProbing,
            3 => AssignmentErrorCode::ShutdownApplication,
            _ => return None,
        })
    }
}

/// What the leader sends one member: the versioned assignment userData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssignmentInfo {
    /// An error instead of (or with) the assignment.
    pub(crate) error: AssignmentErrorCode,
    /// When to rebalance again.
    pub(crate) follow_up: Option<FollowUp>,
    /// The member's tasks per thread.
    pub(crate) threads: Vec<ThreadAssignment>,
    /// The group's active partitions per host (every member gets the whole map).
    pub(crate) active_by_host: HostMap,
    /// The group's standby and warm-up partitions per host.
    pub(crate) standby_by_host: HostMap,
}

impl GroupAssignment {
    /// The userData for one member, or `None` if it is not in the assignment.
    pub(crate) fn info_for(&self, member_id: &str) -> Option<AssignmentInfo> {
        let member = self.members.get(member_id)?;
        Some(AssignmentInfo {
            error: AssignmentErrorCode::None,
            follow_up: self.follow_up,
            threads: member.threads.clone(),
            active_by_host: self.active_by_host.clone(),
            standby_by_host: self.standby_by_host.clone(),
        })
    }
}
