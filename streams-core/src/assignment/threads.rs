//! [`split_over_threads`]: each instance's tasks spread over its stream threads, sticky; and
//! [`withhold_owned_elsewhere`], the cooperative rule that a task changes member only after a
//! revocation.
//!
//! Actives and standbys (warm-ups included) are split separately, each evenly (thread counts
//! differ by at most one). A task stays on the thread that had it while that thread is under
//! its share, so a rebalance that changes nothing for an instance changes nothing for its
//! threads. The slots are the threads of all the instance's members, in member order.

use std::collections::{BTreeMap, BTreeSet};

use super::balance::Quota;
use super::clients::Clients;
use super::types::{MemberAssignment, Revocation, ThreadAssignment};
use crate::task_id::TaskId;

/// What one client runs and keeps, before the split over threads.
#[derive(Debug, Clone, Default)]
pub(super) struct ClientTasks {
    pub(super) active: BTreeSet<TaskId>,
    pub(super) standby: BTreeSet<TaskId>,
    pub(super) warmup: BTreeSet<TaskId>,
}

/// Every member's assignment per thread. `tasks` is indexed like `clients.clients`.
pub(super) fn split_over_threads(
    clients: &Clients<'_>,
    tasks: &[ClientTasks],
) -> BTreeMap<String, MemberAssignment> {
    let mut out = BTreeMap::new();
    for (client, tasks) in clients.clients.iter().zip(tasks) {
        // (member index, thread index) of every thread of the client.
        let slots: Vec<(usize, usize)> = client
            .members
            .iter()
            .flat_map(|&m| {
                let threads = clients.members[m].subscription.num_threads.max(1) as usize;
                (0..threads).map(move |t| (m, t))
            })
            .collect();
        let owned = |slot: usize| {
            let (m, t) = slots[slot];
            clients.members[m].subscription.owned.get(t)
        };
        let active = distribute(slots.len(), &tasks.active, |slot, task| {
            owned(slot).is_some_and(|o| o.active.contains(&task))
        });
        // Standbys prefer the thread that had the task in any role: its restore consumer
        // already follows the changelog.
        let copies: BTreeSet<TaskId> = tasks.standby.union(&tasks.warmup).copied().collect();
        let standby = distribute(slots.len(), &copies, |slot, task| {
            owned(slot).is_some_and(|o| o.standby.contains(&task) || o.active.contains(&task))
        });
        for &m in &client.members {
            let threads = clients.members[m].subscription.num_threads.max(1) as usize;
            out.insert(
                clients.members[m].member_id.clone(),
                MemberAssignment {
                    threads: vec![ThreadAssignment::default(); threads],
                },
            );
        }
        for (slot, &(m, t)) in slots.iter().enumerate() {
            let member = out
                .get_mut(&clients.members[m].member_id)
                .expect("inserted above");
            let thread = &mut member.threads[t];
            thread.active = active[slot].clone();
            for &task in &standby[slot] {
                if tasks.warmup.contains(&task) {
                    thread.warmup.insert(task);
                } else {
                    thread.standby.insert(task);
                }
            }
        }
    }
    out
}

/// Splits `tasks` evenly over `slots` slots, keeping a task in a slot that `previously_in`
/// says had it while that slot is under its share.
fn distribute(
    slots: usize,
    tasks: &BTreeSet<TaskId>,
    previously_in: impl Fn(usize, TaskId) -> bool,
) -> Vec<BTreeSet<TaskId>> {
    let mut quota = Quota::new(tasks.len(), &vec![1; slots]);
    let mut count = vec![0usize; slots];
    let mut out = vec![BTreeSet::new(); slots];
    let mut rest = Vec::new();
    for &task in tasks {
        match (0..slots).find(|&s| previously_in(s, task) && quota.has_room(s, count[s])) {
            Some(s) => {
                quota.take(s, count[s]);
                count[s] += 1;
                out[s].insert(task);
            }
            None => rest.push(task),
        }
    }
    for task in rest {
        let s = (0..slots)
            .min_by_key(|&s| (count[s], s))
            .expect("a client has at least one thread");
        count[s] += 1;
        out[s].insert(task);
    }
    out
}

/// Removes from `assignments` every active task another member of the group still owns as
/// active, and returns those revocations, by task.
///
/// The owner is told nothing more: a member revokes (commits, flushes, closes) what it owns
/// and is not assigned. The follow-up rebalance, once no one else claims the task, gives it
/// to its new member. A move between threads of one member needs no revocation.
pub(super) fn withhold_owned_elsewhere(
    clients: &Clients<'_>,
    assignments: &mut BTreeMap<String, MemberAssignment>,
) -> Vec<Revocation> {
    let mut owners: BTreeMap<TaskId, BTreeSet<&str>> = BTreeMap::new();
    for m in &clients.members {
        for owned in &m.subscription.owned {
            for &task in &owned.active {
                owners.entry(task).or_default().insert(&m.member_id);
            }
        }
    }
    let mut revocations = Vec::new();
    for (member_id, assignment) in assignments.iter_mut() {
        for thread in &mut assignment.threads {
            thread.active.retain(|task| {
                let other = owners
                    .get(task)
                    .and_then(|o| o.iter().find(|&&owner| owner != member_id));
                match other {
                    Some(from) => {
                        revocations.push(Revocation {
                            task: *task,
                            from: from.to_string(),
                            to: member_id.clone(),
                        });
                        false
                    }
                    None => true,
                }
            });
        }
    }
    revocations.sort_by_key(|r| r.task);
    revocations
}
