//! [`assign_standbys`]: `num.standby.replicas` copies of each stateful task, off its active's
//! instance, spread over racks by `rack.aware.assignment.tags`.
//!
//! For each task, standby after standby goes to a client that holds no copy of it yet, and
//! - if rack-aware tags are set, whose value of each tag differs from every value the task's
//!   holders have, for each tag whose values the holders do not already cover; when no client
//!   qualifies, the tags are dropped for that standby, since a copy on a shared rack still
//!   beats none (Kafka Streams' tag-aware standby assignor does the same);
//! - among those, a client still under its share of the load first, then the one with the
//!   least lag, then the one that kept it until now (a standby stays where it is), then the
//!   least loaded.
//!
//! A task moving to another instance gets its first standby there: it warms the target up
//! as a warm-up would, without using the warm-up budget.

use std::collections::{BTreeMap, BTreeSet};

use super::balance::load_cmp;
use super::clients::{Client, ClientIdx, Lag};
use super::types::AssignmentConfig;
use crate::task_id::TaskId;

/// The standby clients of each stateful task (the keys of `lags`), given where the actives run
/// (`active`) and where moving tasks are going (`move_targets`).
pub(super) fn assign_standbys(
    clients: &[Client],
    lags: &BTreeMap<TaskId, Vec<Lag>>,
    active: &BTreeMap<TaskId, ClientIdx>,
    move_targets: &BTreeMap<TaskId, ClientIdx>,
    config: &AssignmentConfig,
) -> BTreeMap<TaskId, Vec<ClientIdx>> {
    let replicas = config.num_standby_replicas as usize;
    let mut standbys = BTreeMap::new();
    if replicas == 0 || clients.len() < 2 {
        return standbys;
    }
    let caps: Vec<u64> = clients.iter().map(|c| c.capacity).collect();
    let total_cap: u128 = caps.iter().map(|&c| u128::from(c.max(1))).sum();
    let mut active_count = vec![0usize; clients.len()];
    for (task, &c) in active {
        if lags.contains_key(task) {
            active_count[c] += 1;
        }
    }
    // Each client's share of all stateful copies (actives and standbys), less its actives:
    // the standbys it should take. A soft limit: rack constraints may need more.
    let copies = lags.len() * (1 + replicas.min(clients.len() - 1));
    let limit: Vec<usize> = (0..clients.len())
        .map(|c| {
            let share = (copies as u128 * u128::from(caps[c].max(1))).div_ceil(total_cap);
            (share as usize).saturating_sub(active_count[c])
        })
        .collect();
    let racks = Racks::new(clients, &config.rack_aware_assignment_tags);
    let mut standby_count = vec![0usize; clients.len()];
    for (task, lag) in lags {
        let Some(&active_client) = active.get(task) else {
            continue;
        };
        let mut holders = vec![active_client];
        let mut chosen = Vec::new();
        if let Some(&target) = move_targets.get(task) {
            if target != active_client {
                holders.push(target);
                chosen.push(target);
                standby_count[target] += 1;
            }
        }
        let kept = |c: ClientIdx| clients[c].previous_standby.contains(task);
        while chosen.len() < replicas {
            let free: Vec<ClientIdx> = (0..clients.len())
                .filter(|c| !holders.contains(c))
                .collect();
            if free.is_empty() {
                break; // fewer clients than copies: the task gets fewer standbys
            }
            let spread: Vec<ClientIdx> = free
                .iter()
                .copied()
                .filter(|&c| racks.differs(c, &holders))
                .collect();
            let pool = if spread.is_empty() { free } else { spread };
            let pick = pool
                .into_iter()
                .min_by(|&a, &b| {
                    (standby_count[a] >= limit[a])
                        .cmp(&(standby_count[b] >= limit[b]))
                        .then(lag[a].cmp(&lag[b]))
                        .then(kept(b).cmp(&kept(a)))
                        .then(load_cmp(
                            active_count[a] + standby_count[a],
                            caps[a],
                            active_count[b] + standby_count[b],
                            caps[b],
                        ))
                        .then(a.cmp(&b))
                })
                .expect("pool is not empty");
            holders.push(pick);
            chosen.push(pick);
            standby_count[pick] += 1;
        }
        standbys.insert(*task, chosen);
    }
    standbys
}

/// The clients' values of the rack-aware tags (a missing tag is a value of its own).
struct Racks<'a> {
    /// Per tag key, each client's value.
    values: Vec<Vec<Option<&'a str>>>,
    /// Per tag key, every value some client has.
    all: Vec<BTreeSet<Option<&'a str>>>,
}

impl<'a> Racks<'a> {
    fn new(clients: &'a [Client], tags: &'a [String]) -> Self {
        let values: Vec<Vec<Option<&str>>> = tags
            .iter()
            .map(|key| {
                clients
                    .iter()
                    .map(|c| c.tags.get(key).map(String::as_str))
                    .collect()
            })
            .collect();
        let all = values.iter().map(|v| v.iter().copied().collect()).collect();
        Racks { values, all }
    }

    /// Whether `client` differs from all `holders` on every tag whose values they do not cover.
    fn differs(&self, client: ClientIdx, holders: &[ClientIdx]) -> bool {
        self.values.iter().zip(&self.all).all(|(values, all)| {
            let used: BTreeSet<Option<&str>> = holders.iter().map(|&h| values[h]).collect();
            all.is_subset(&used) || !used.contains(&values[client])
        })
    }
}
