//! [`place_stateful`], [`assign_warmups`], [`place_stateless`]: where active tasks run.
//!
//! Kafka Streams' high-availability rules (KIP-441):
//! - every client gets a balanced share of the stateful tasks by its threads: the *target*;
//! - a task runs on its target only if the target is caught up (within
//!   `acceptable.recovery.lag`) or no client is more caught up; otherwise it stays on the most
//!   caught-up client, the target gets a warm-up replica (at most `max.warmup.replicas` in the
//!   group), and a probing rebalance checks later whether the warm-up has caught up;
//! - stateless tasks then even out the active counts.
//!
//! Unlike Kafka Streams, which deals targets round-robin without looking at state, the targets
//! here are chosen to keep tasks where their state is: caught-up clients are offered their
//! tasks first, most caught up first, so a joining instance's warm-ups replace only its share.

use std::collections::BTreeMap;

use super::balance::{load_cmp, Quota};
use super::clients::{Client, ClientIdx, Lag};
use crate::task_id::TaskId;

/// A stateful task running away from its target until the target has caught up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PendingMove {
    pub(super) task: TaskId,
    /// The most caught-up client, which runs it meanwhile.
    pub(super) from: ClientIdx,
    /// The target.
    pub(super) to: ClientIdx,
    /// How many clients are caught up on it: the fewer, the sooner it gets a warm-up.
    pub(super) caught_up_clients: usize,
}

/// Where the stateful actives run, and the moves still to make.
#[derive(Debug, Default)]
pub(super) struct StatefulPlacement {
    pub(super) active: BTreeMap<TaskId, ClientIdx>,
    pub(super) moves: Vec<PendingMove>,
}

/// Places every stateful task (the keys of `lags`) on a client. `clients` must not be empty.
pub(super) fn place_stateful(
    clients: &[Client],
    lags: &BTreeMap<TaskId, Vec<Lag>>,
    acceptable_recovery_lag: u64,
) -> StatefulPlacement {
    let caps: Vec<u64> = clients.iter().map(|c| c.capacity).collect();
    let targets = balanced_targets(&caps, lags, acceptable_recovery_lag);
    let mut target_count = vec![0usize; clients.len()];
    for &c in targets.values() {
        target_count[c] += 1;
    }
    let mut placement = StatefulPlacement::default();
    for (&task, &target) in &targets {
        let lag = &lags[&task];
        // The most caught-up client; among equals the one with the lightest target load.
        let best = (0..clients.len())
            .min_by(|&a, &b| {
                lag[a]
                    .cmp(&lag[b])
                    .then(load_cmp(target_count[a], caps[a], target_count[b], caps[b]))
                    .then(a.cmp(&b))
            })
            .expect("clients is not empty");
        if lag[target].caught_up(acceptable_recovery_lag) || lag[target] <= lag[best] {
            placement.active.insert(task, target);
        } else {
            placement.active.insert(task, best);
            placement.moves.push(PendingMove {
                task,
                from: best,
                to: target,
                caught_up_clients: lag
                    .iter()
                    .filter(|l| l.caught_up(acceptable_recovery_lag))
                    .count(),
            });
        }
    }
    placement
}

/// The balanced, state-preferring target of every stateful task.
///
/// Round r offers each task still without a target to its r-th most caught-up client among
/// the caught-up ones, which takes it if its quota has room; so a client's running tasks come
/// before tasks it merely has a fresh standby of. Tasks that no caught-up client could take go
/// to clients with room, least lag first (partial state is better than none), then least load.
fn balanced_targets(
    caps: &[u64],
    lags: &BTreeMap<TaskId, Vec<Lag>>,
    acceptable_recovery_lag: u64,
) -> BTreeMap<TaskId, ClientIdx> {
    let mut quota = Quota::new(lags.len(), caps);
    let mut count = vec![0usize; caps.len()];
    let caught_up: BTreeMap<TaskId, Vec<ClientIdx>> = lags
        .iter()
        .map(|(&task, lag)| {
            let mut cs: Vec<ClientIdx> = (0..caps.len())
                .filter(|&c| lag[c].caught_up(acceptable_recovery_lag))
                .collect();
            cs.sort_by_key(|&c| (lag[c], c));
            (task, cs)
        })
        .collect();
    let mut target = BTreeMap::new();
    for rank in 0.. {
        let mut offered = false;
        for (&task, cs) in &caught_up {
            if rank >= cs.len() || target.contains_key(&task) {
                continue;
            }
            offered = true;
            let c = cs[rank];
            if quota.has_room(c, count[c]) {
                quota.take(c, count[c]);
                count[c] += 1;
                target.insert(task, c);
            }
        }
        if !offered {
            break;
        }
    }
    for (&task, lag) in lags {
        if target.contains_key(&task) {
            continue;
        }
        let c = (0..caps.len())
            .filter(|&c| quota.has_room(c, count[c]))
            .min_by(|&a, &b| {
                lag[a]
                    .cmp(&lag[b])
                    .then(load_cmp(count[a], caps[a], count[b], caps[b]))
                    .then(a.cmp(&b))
            })
            // The quotas add up to the task count, so some client has room; least loaded
            // keeps this total if that ever changed.
            .unwrap_or_else(|| least_loaded(&count, caps));
        quota.take(c, count[c]);
        count[c] += 1;
        target.insert(task, c);
    }
    target
}

/// Gives the targets of pending moves their warm-ups, within `max.warmup.replicas`.
///
/// A target that already got a standby of the task needs no warm-up: the standby catches up
/// the same way. The budget goes first to the tasks with the fewest caught-up clients, whose
/// availability is most at risk. Returns the warm-ups, and per move whether its target is
/// warming up (a move left without one waits for a later probing rebalance).
pub(super) fn assign_warmups(
    moves: &[PendingMove],
    standbys: &BTreeMap<TaskId, Vec<ClientIdx>>,
    max_warmup_replicas: u32,
) -> (BTreeMap<TaskId, ClientIdx>, Vec<bool>) {
    let mut order: Vec<usize> = (0..moves.len()).collect();
    order.sort_by_key(|&i| (moves[i].caught_up_clients, moves[i].task));
    let mut budget = max_warmup_replicas;
    let mut warmups = BTreeMap::new();
    let mut warming = vec![false; moves.len()];
    for i in order {
        let m = &moves[i];
        if standbys.get(&m.task).is_some_and(|s| s.contains(&m.to)) {
            warming[i] = true;
        } else if budget > 0 {
            budget -= 1;
            warmups.insert(m.task, m.to);
            warming[i] = true;
        }
    }
    (warmups, warming)
}

/// Places the stateless tasks so that every client's active count ends balanced.
///
/// A task stays with its previous owner while that owner is under its share of all actives
/// (stateful ones included); the others go to the least-loaded client with room in its share,
/// or the least-loaded one if stateful tasks kept on caught-up clients left no room. `active` holds the
/// stateful placement and receives the stateless one.
pub(super) fn place_stateless(
    clients: &[Client],
    tasks: &[TaskId],
    active: &mut BTreeMap<TaskId, ClientIdx>,
) {
    let caps: Vec<u64> = clients.iter().map(|c| c.capacity).collect();
    let mut count = vec![0usize; clients.len()];
    for &c in active.values() {
        count[c] += 1;
    }
    let mut quota = Quota::new(active.len() + tasks.len(), &caps);
    for (c, &n) in count.iter().enumerate() {
        quota.prefill(c, n);
    }
    let mut rest = Vec::new();
    for &task in tasks {
        let owner = (0..clients.len())
            .find(|&c| clients[c].previous_active.contains(&task) && quota.has_room(c, count[c]));
        match owner {
            Some(c) => {
                quota.take(c, count[c]);
                count[c] += 1;
                active.insert(task, c);
            }
            None => rest.push(task),
        }
    }
    // Within the shares while they have room, so that the next rebalance, offering each
    // task to its owner first, finds every owner within its share and moves nothing.
    for task in rest {
        let c = (0..clients.len())
            .filter(|&c| quota.has_room(c, count[c]))
            .min_by(|&a, &b| load_cmp(count[a], caps[a], count[b], caps[b]).then(a.cmp(&b)))
            .unwrap_or_else(|| least_loaded(&count, &caps));
        if quota.has_room(c, count[c]) {
            quota.take(c, count[c]);
        }
        count[c] += 1;
        active.insert(task, c);
    }
}

/// The client with the lowest count per capacity; the first one among equals.
fn least_loaded(count: &[usize], caps: &[u64]) -> ClientIdx {
    (0..count.len())
        .min_by(|&a, &b| load_cmp(count[a], caps[a], count[b], caps[b]).then(a.cmp(&b)))
        .expect("at least one client")
}
