//! [`Clients::new`]: the members grouped by process, and each process's [`Lag`] on each stateful task.
//!
//! The assignor places tasks on processes ("clients"), not on members: a process's state
//! directory is what holds a task's state, and its thread count is its capacity. Normally a
//! process is one member; two members share a process id only while a restarted instance's
//! old member has not yet left the group, and then they are treated as one process.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{HostInfo, Member, OffsetSum, ProcessId, Subtopology, TopicPartition};
use crate::task_id::TaskId;

/// Index of a client in [`Clients::clients`] (which is sorted by process id).
pub(super) type ClientIdx = usize;

/// How far a client's state of a task is behind the task's changelog end. Orders from the
/// most caught up: a running active before any checkpoint, then by records to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Lag {
    /// The client runs the task and processes it: nothing to restore.
    Running,
    /// Records to restore.
    Behind(u64),
}

impl Lag {
    /// Within `acceptable.recovery.lag`: the client may take the task at once.
    pub(super) fn caught_up(self, acceptable_recovery_lag: u64) -> bool {
        match self {
            Lag::Running => true,
            Lag::Behind(n) => n <= acceptable_recovery_lag,
        }
    }
}

/// One process of the group.
#[derive(Debug)]
pub(super) struct Client {
    /// Its identity.
    pub(super) process: ProcessId,
    /// Its members, as indices into [`Clients::members`], in member-id order.
    pub(super) members: Vec<usize>,
    /// Its stream threads over all its members: its weight in every balance.
    pub(super) capacity: u64,
    /// Its `application.server` (the first member's that has one).
    pub(super) host: Option<HostInfo>,
    /// Its client tags (the first member's).
    pub(super) tags: BTreeMap<String, String>,
    /// Active tasks its members owned until now.
    pub(super) previous_active: BTreeSet<TaskId>,
    /// Standby (and warm-up) tasks its members kept until now.
    pub(super) previous_standby: BTreeSet<TaskId>,
}

/// The group seen as processes; everything sorted, so that input order cannot matter.
#[derive(Debug)]
pub(super) struct Clients<'a> {
    /// The members sorted by (process id, member id).
    pub(super) members: Vec<&'a Member>,
    /// The processes sorted by process id.
    pub(super) clients: Vec<Client>,
}

impl<'a> Clients<'a> {
    /// Groups the members by process.
    pub(super) fn new(members: &'a [Member]) -> Self {
        let mut sorted: Vec<&Member> = members.iter().collect();
        // A member id twice would be a coordinator bug; keeping one (the lowest process id)
        // keeps the output a map of members.
        sorted.sort_by(|a, b| {
            (&a.member_id, a.subscription.process_id)
                .cmp(&(&b.member_id, b.subscription.process_id))
        });
        sorted.dedup_by(|a, b| a.member_id == b.member_id);
        sorted.sort_by(|a, b| {
            (a.subscription.process_id, &a.member_id)
                .cmp(&(b.subscription.process_id, &b.member_id))
        });
        let mut clients: Vec<Client> = Vec::new();
        for (i, m) in sorted.iter().enumerate() {
            let s = &m.subscription;
            let same_process = clients.last().is_some_and(|c| c.process == s.process_id);
            if !same_process {
                clients.push(Client {
                    process: s.process_id,
                    members: Vec::new(),
                    capacity: 0,
                    host: None,
                    tags: s.client_tags.clone(),
                    previous_active: BTreeSet::new(),
                    previous_standby: BTreeSet::new(),
                });
            }
            let c = clients.last_mut().expect("pushed above");
            c.members.push(i);
            // A thread count of 0 cannot come off the wire; counted as 1 so no weight is 0.
            c.capacity += u64::from(s.num_threads.max(1));
            if c.host.is_none() {
                c.host = s.host.clone();
            }
            for owned in &s.owned {
                c.previous_active.extend(owned.active.iter().copied());
                c.previous_standby.extend(owned.standby.iter().copied());
            }
        }
        Clients {
            members: sorted,
            clients,
        }
    }

    /// Every stateful task's lag on every client (index = client), in task order.
    ///
    /// A task's end is the sum of its changelog partitions' end offsets. A checkpoint past
    /// the end means the changelog was truncated or recreated: the state is useless and the
    /// whole changelog must be restored, as for a client without a checkpoint. If an end
    /// offset is missing, the end is taken as the furthest checkpoint any member reports.
    /// A client with several members has the least lag any of them reports.
    pub(super) fn lags(
        &self,
        subtopologies: &[Subtopology],
        end_offsets: &BTreeMap<TopicPartition, i64>,
    ) -> BTreeMap<TaskId, Vec<Lag>> {
        let mut lags = BTreeMap::new();
        for sub in subtopologies
            .iter()
            .filter(|s| !s.changelog_topics.is_empty())
        {
            for task in sub.tasks() {
                let end = task_end(sub, task, end_offsets).unwrap_or_else(|| {
                    self.members
                        .iter()
                        .filter_map(|m| match m.subscription.task_offset_sums.get(&task) {
                            Some(OffsetSum::Checkpointed(s)) => Some(*s),
                            _ => None,
                        })
                        .max()
                        .unwrap_or(0)
                });
                let lag_of =
                    |m: usize| match self.members[m].subscription.task_offset_sums.get(&task) {
                        Some(OffsetSum::RunningActive) => Lag::Running,
                        Some(OffsetSum::Checkpointed(s)) if *s <= end => Lag::Behind(end - s),
                        Some(OffsetSum::Checkpointed(_)) | None => Lag::Behind(end),
                    };
                let per_client = self
                    .clients
                    .iter()
                    .map(|c| {
                        c.members
                            .iter()
                            .map(|&m| lag_of(m))
                            .min()
                            .unwrap_or(Lag::Behind(end))
                    })
                    .collect();
                lags.insert(task, per_client);
            }
        }
        lags
    }
}

/// The sum of a task's changelog end offsets, or `None` if one is missing.
fn task_end(
    sub: &Subtopology,
    task: TaskId,
    end_offsets: &BTreeMap<TopicPartition, i64>,
) -> Option<u64> {
    sub.changelog_topics.iter().try_fold(0u64, |sum, topic| {
        let tp = TopicPartition {
            topic: topic.clone(),
            partition: task.partition,
        };
        // A negative end offset (an unknown one, in Kafka's encoding) counts as empty.
        end_offsets
            .get(&tp)
            .map(|&end| sum.saturating_add(end.max(0) as u64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assignment::types::{OwnedTasks, Subscription};

    fn member(id: &str, process: u8, threads: u32, sums: &[(TaskId, OffsetSum)]) -> Member {
        Member {
            member_id: id.to_string(),
            subscription: Subscription {
                process_id: ProcessId([process; 16]),
                num_threads: threads,
                task_offset_sums: sums.iter().copied().collect(),
                host: None,
                client_tags: BTreeMap::new(),
                owned: vec![OwnedTasks::default()],
            },
        }
    }

    fn t(s: u32, p: i32) -> TaskId {
        TaskId {
            subtopology: s,
            partition: p,
        }
    }

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }

    #[test]
    fn lag_is_end_sum_minus_checkpoint_sum_over_the_task_changelogs() {
        let sub = Subtopology {
            id: 0,
            partitions: 2,
            source_topics: vec!["in".into()],
            changelog_topics: vec!["a-changelog".into(), "b-changelog".into()],
        };
        let ends = [
            (tp("a-changelog", 0), 1000),
            (tp("b-changelog", 0), 500),
            (tp("a-changelog", 1), 10),
            (tp("b-changelog", 1), 10),
        ]
        .into_iter()
        .collect();
        let members = [
            member("m1", 1, 1, &[(t(0, 0), OffsetSum::Checkpointed(1200))]),
            member("m2", 2, 1, &[(t(0, 0), OffsetSum::RunningActive)]),
            // Past the end: the changelog was recreated, the state is worthless.
            member("m3", 3, 1, &[(t(0, 1), OffsetSum::Checkpointed(99))]),
        ];
        let clients = Clients::new(&members);
        let lags = clients.lags(&[sub], &ends);
        assert_eq!(
            lags[&t(0, 0)],
            vec![Lag::Behind(300), Lag::Running, Lag::Behind(1500)]
        );
        assert_eq!(
            lags[&t(0, 1)],
            vec![Lag::Behind(20), Lag::Behind(20), Lag::Behind(20)]
        );
    }

    #[test]
    fn missing_end_offsets_measure_lag_from_the_furthest_checkpoint() {
        let sub = Subtopology {
            id: 0,
            partitions: 1,
            source_topics: vec!["in".into()],
            changelog_topics: vec!["c".into()],
        };
        let members = [
            member("m1", 1, 1, &[(t(0, 0), OffsetSum::Checkpointed(900))]),
            member("m2", 2, 1, &[(t(0, 0), OffsetSum::Checkpointed(100))]),
            member("m3", 3, 1, &[]),
        ];
        let lags = Clients::new(&members).lags(&[sub], &BTreeMap::new());
        assert_eq!(
            lags[&t(0, 0)],
            vec![Lag::Behind(0), Lag::Behind(800), Lag::Behind(900)]
        );
    }

    #[test]
    fn members_of_one_process_form_one_client_with_their_threads_and_least_lag() {
        let members = [
            member("b", 7, 2, &[(t(0, 0), OffsetSum::Checkpointed(90))]),
            member("z", 1, 1, &[]),
            // Past the end: worse than b's, although a larger offset.
            member("a", 7, 3, &[(t(0, 0), OffsetSum::Checkpointed(150))]),
        ];
        let clients = Clients::new(&members);
        assert_eq!(clients.clients.len(), 2);
        assert_eq!(clients.clients[0].process, ProcessId([1; 16]));
        let c = &clients.clients[1];
        assert_eq!(c.capacity, 5);
        let sub = Subtopology {
            id: 0,
            partitions: 1,
            source_topics: vec!["in".into()],
            changelog_topics: vec!["c".into()],
        };
        let ends = [(tp("c", 0), 100)].into_iter().collect();
        assert_eq!(
            clients.lags(&[sub], &ends)[&t(0, 0)],
            vec![Lag::Behind(100), Lag::Behind(10)]
        );
        let ids: Vec<&str> = c
            .members
            .iter()
            .map(|&i| clients.members[i].member_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn a_member_id_listed_twice_counts_once() {
        let members = [
            member("m", 9, 1, &[]),
            member("x", 5, 1, &[]),
            member("m", 2, 4, &[]),
        ];
        let clients = Clients::new(&members);
        let ids: Vec<&str> = clients
            .members
            .iter()
            .map(|m| m.member_id.as_str())
            .collect();
        assert_eq!(ids, ["m", "x"]);
        assert_eq!(clients.clients[0].process, ProcessId([2; 16]));
        assert_eq!(clients.clients.len(), 2);
    }

    #[test]
    fn running_is_more_caught_up_than_any_checkpoint() {
        assert!(Lag::Running < Lag::Behind(0));
        assert!(Lag::Running.caught_up(0));
        assert!(Lag::Behind(10).caught_up(10));
        assert!(!Lag::Behind(11).caught_up(10));
    }
}
