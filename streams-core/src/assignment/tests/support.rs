//! Builders for assignor tests: members, topologies, end offsets, and the next round of a group.

use std::collections::{BTreeMap, BTreeSet};

use crate::assignment::{
    AssignmentInput, GroupAssignment, HostInfo, Member, OffsetSum, OwnedTasks, ProcessId,
    Subscription, Subtopology, TopicPartition,
};
use crate::task_id::TaskId;

pub(super) const NOW: i64 = 1_000_000;

pub(super) fn pid(n: u8) -> ProcessId {
    ProcessId([n; 16])
}

pub(super) fn t(subtopology: u32, partition: i32) -> TaskId {
    TaskId {
        subtopology,
        partition,
    }
}

pub(super) fn tasks(ids: &[(u32, i32)]) -> BTreeSet<TaskId> {
    ids.iter().map(|&(s, p)| t(s, p)).collect()
}

/// A member `id` of process `process` with `threads` threads and nothing else.
pub(super) fn member(id: &str, process: u8, threads: u32) -> Member {
    Member {
        member_id: id.to_string(),
        subscription: Subscription {
            process_id: pid(process),
            num_threads: threads,
            task_offset_sums: BTreeMap::new(),
            host: None,
            client_tags: BTreeMap::new(),
            owned: vec![OwnedTasks::default(); threads as usize],
        },
    }
}

/// Builder-style setters for a test member.
pub(super) trait MemberExt {
    /// Runs these tasks as actives on thread 0 (owned, offset sum "running").
    fn running(self, tasks: &[TaskId]) -> Self;
    /// Owns these as actives on `thread` (offset sum "running").
    fn running_on(self, thread: usize, tasks: &[TaskId]) -> Self;
    /// Holds these as standbys on thread 0, checkpointed at `sum`.
    fn standby(self, tasks: &[TaskId], sum: u64) -> Self;
    /// Has checkpoints of these tasks at `sum`, without owning them.
    fn checkpoint(self, tasks: &[TaskId], sum: u64) -> Self;
    fn host(self, host: &str, port: u16) -> Self;
    fn tag(self, key: &str, value: &str) -> Self;
}

impl MemberExt for Member {
    fn running(self, tasks: &[TaskId]) -> Self {
        self.running_on(0, tasks)
    }
    fn running_on(mut self, thread: usize, tasks: &[TaskId]) -> Self {
        let s = &mut self.subscription;
        for &task in tasks {
            s.owned[thread].active.insert(task);
            s.task_offset_sums.insert(task, OffsetSum::RunningActive);
        }
        self
    }
    fn standby(mut self, tasks: &[TaskId], sum: u64) -> Self {
        let s = &mut self.subscription;
        for &task in tasks {
            s.owned[0].standby.insert(task);
            s.task_offset_sums
                .insert(task, OffsetSum::Checkpointed(sum));
        }
        self
    }
    fn checkpoint(mut self, tasks: &[TaskId], sum: u64) -> Self {
        for &task in tasks {
            self.subscription
                .task_offset_sums
                .insert(task, OffsetSum::Checkpointed(sum));
        }
        self
    }
    fn host(mut self, host: &str, port: u16) -> Self {
        self.subscription.host = Some(HostInfo {
            host: host.to_string(),
            port,
        });
        self
    }
    fn tag(mut self, key: &str, value: &str) -> Self {
        self.subscription
            .client_tags
            .insert(key.to_string(), value.to_string());
        self
    }
}

/// A stateful sub-topology: source `in-<id>`, one changelog `store-<id>-changelog`.
pub(super) fn stateful(id: u32, partitions: u32) -> Subtopology {
    Subtopology {
        id,
        partitions,
        source_topics: vec![format!("in-{id}")],
        changelog_topics: vec![format!("store-{id}-changelog")],
    }
}

/// A stateless sub-topology: source `in-<id>`, no changelog.
pub(super) fn stateless(id: u32, partitions: u32) -> Subtopology {
    Subtopology {
        id,
        partitions,
        source_topics: vec![format!("in-{id}")],
        changelog_topics: Vec::new(),
    }
}

/// Every changelog partition of `subs` ends at `end`.
pub(super) fn ends(subs: &[Subtopology], end: i64) -> BTreeMap<TopicPartition, i64> {
    let mut out = BTreeMap::new();
    for s in subs {
        for topic in &s.changelog_topics {
            for p in 0..s.partitions as i32 {
                out.insert(
                    TopicPartition {
                        topic: topic.clone(),
                        partition: p,
                    },
                    end,
                );
            }
        }
    }
    out
}

pub(super) fn input(members: Vec<Member>, subs: Vec<Subtopology>, end: i64) -> AssignmentInput {
    AssignmentInput {
        changelog_end_offsets: ends(&subs, end),
        members,
        subtopologies: subs,
        now_ms: NOW,
    }
}

pub(super) fn active(a: &GroupAssignment, member: &str) -> BTreeSet<TaskId> {
    a.members[member].active()
}

pub(super) fn standby(a: &GroupAssignment, member: &str) -> BTreeSet<TaskId> {
    a.members[member].standby()
}

pub(super) fn warmup(a: &GroupAssignment, member: &str) -> BTreeSet<TaskId> {
    a.members[member].warmup()
}

/// The subscriptions of the next round, as members would send them after carrying out
/// `a`: they own what they got, actives run, and standbys and warm-ups have restored to the
/// changelog end (the probing interval was long enough; with an end offset unknown, to the
/// furthest checkpoint, which is what lags are measured from then). Checkpoints of tasks
/// they gave up stay.
pub(super) fn next_round(input: &AssignmentInput, a: &GroupAssignment) -> AssignmentInput {
    let end_of = |task: TaskId| -> u64 {
        let sub = input
            .subtopologies
            .iter()
            .find(|s| s.id == task.subtopology)
            .expect("a task of the topology");
        let ends: Option<u64> = sub.changelog_topics.iter().try_fold(0, |sum, topic| {
            let tp = TopicPartition {
                topic: topic.clone(),
                partition: task.partition,
            };
            input
                .changelog_end_offsets
                .get(&tp)
                .map(|&e| sum + e.max(0) as u64)
        });
        ends.unwrap_or_else(|| {
            input
                .members
                .iter()
                .filter_map(|m| match m.subscription.task_offset_sums.get(&task) {
                    Some(OffsetSum::Checkpointed(s)) => Some(*s),
                    _ => None,
                })
                .max()
                .unwrap_or(0)
        })
    };
    let members = input
        .members
        .iter()
        .map(|m| {
            let mut m = m.clone();
            let got = &a.members[&m.member_id];
            let s = &mut m.subscription;
            for (&task, sum) in s.task_offset_sums.iter_mut() {
                if *sum == OffsetSum::RunningActive {
                    *sum = OffsetSum::Checkpointed(end_of(task));
                }
            }
            s.owned = got
                .threads
                .iter()
                .map(|th| OwnedTasks {
                    active: th.active.clone(),
                    standby: th.standby.union(&th.warmup).copied().collect(),
                })
                .collect();
            for th in &got.threads {
                for &task in &th.active {
                    s.task_offset_sums.insert(task, OffsetSum::RunningActive);
                }
                for &task in th.standby.iter().chain(&th.warmup) {
                    s.task_offset_sums
                        .insert(task, OffsetSum::Checkpointed(end_of(task)));
                }
            }
            m
        })
        .collect();
    AssignmentInput {
        members,
        ..input.clone()
    }
}
