//! The task assignor: [`assign`] turns the group's subscriptions into tasks per member and thread.
//!
//! A pure, deterministic function after Kafka Streams' high-availability assignor: no I/O,
//! no clock (the leader's time comes in), the same output for the same input whatever the
//! order of the members. The group leader runs it; [`wire`] encodes what members send it
//! and what it sends back. Its rules, in the order they run:
//! 1. Members are grouped by process id into clients weighted by their stream threads
//!    ([`clients`]); each client's lag on each stateful task comes from the offset sums it
//!    reports and the changelog end offsets.
//! 2. Stateful actives ([`high_availability`]): a balanced target per task that keeps tasks
//!    where they are caught up; a task runs on its target only if the target is caught up or
//!    no client is more caught up, otherwise it stays on the most caught-up client and moves
//!    later, through a warm-up replica and a probing rebalance.
//! 3. Standbys ([`standby`]): `num.standby.replicas` per stateful task, never on the
//!    active's instance, spread over `rack.aware.assignment.tags`.
//! 4. Warm-ups for the moves, at most `max.warmup.replicas`; then stateless actives even out
//!    the active counts.
//! 5. Each client's tasks spread over its threads, sticky ([`threads`]).
//! 6. Cooperative rebalancing: an active task another member still owns is withheld; that
//!    member revokes it now and a follow-up rebalance, right away, hands it over.
//! 7. The partition → host map of the actives (and of standbys and warm-ups) for
//!    interactive queries, and the follow-up time: right away after a revocation, after
//!    `probing.rebalance.interval.ms` while moves are pending, otherwise none.

mod balance;
mod clients;
mod high_availability;
mod standby;
mod threads;
mod types;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use clients::Clients;
use threads::ClientTasks;
pub(crate) use types::*;

use crate::task_id::TaskId;

/// The assignment of every task of `input`'s topology over its members.
pub(crate) fn assign(input: &AssignmentInput, config: &AssignmentConfig) -> GroupAssignment {
    let clients = Clients::new(&input.members);
    if clients.clients.is_empty() {
        return GroupAssignment::default();
    }
    let lags = clients.lags(&input.subtopologies, &input.changelog_end_offsets);
    let stateful =
        high_availability::place_stateful(&clients.clients, &lags, config.acceptable_recovery_lag);
    let move_targets: BTreeMap<TaskId, usize> =
        stateful.moves.iter().map(|m| (m.task, m.to)).collect();
    let standbys = standby::assign_standbys(
        &clients.clients,
        &lags,
        &stateful.active,
        &move_targets,
        config,
    );
    let (warmups, warming) =
        high_availability::assign_warmups(&stateful.moves, &standbys, config.max_warmup_replicas);
    let mut active = stateful.active;
    let stateless: BTreeSet<TaskId> = input
        .subtopologies
        .iter()
        .flat_map(|s| s.tasks())
        .filter(|t| !lags.contains_key(t))
        .collect();
    let stateless: Vec<TaskId> = stateless.into_iter().collect();
    high_availability::place_stateless(&clients.clients, &stateless, &mut active);

    let mut per_client = vec![ClientTasks::default(); clients.clients.len()];
    for (&task, &c) in &active {
        per_client[c].active.insert(task);
    }
    for (&task, cs) in &standbys {
        for &c in cs {
            per_client[c].standby.insert(task);
        }
    }
    for (&task, &c) in &warmups {
        per_client[c].warmup.insert(task);
    }
    let mut members = threads::split_over_threads(&clients, &per_client);
    let revocations = threads::withhold_owned_elsewhere(&clients, &mut members);

    let (active_by_host, standby_by_host) = host_maps(&clients, &members, &input.subtopologies);
    let follow_up = if !revocations.is_empty() {
        Some(FollowUp::Immediately)
    } else if !stateful.moves.is_empty() {
        let interval =
            i64::try_from(config.probing_rebalance_interval.as_millis()).unwrap_or(i64::MAX);
        Some(FollowUp::At(input.now_ms.saturating_add(interval)))
    } else {
        None
    };
    let movements = stateful
        .moves
        .iter()
        .zip(warming)
        .map(|(m, warming)| Movement {
            task: m.task,
            from: clients.clients[m.from].process,
            to: clients.clients[m.to].process,
            warming,
        })
        .collect();
    GroupAssignment {
        members,
        active_by_host,
        standby_by_host,
        follow_up,
        movements,
        revocations,
    }
}

/// Per host, the source partitions of the tasks its instance runs (actives handed out this
/// round, withheld ones excluded) and keeps (standbys and warm-ups).
fn host_maps(
    clients: &Clients<'_>,
    members: &BTreeMap<String, MemberAssignment>,
    subtopologies: &[Subtopology],
) -> (HostMap, HostMap) {
    let sources: BTreeMap<u32, &[String]> = subtopologies
        .iter()
        .map(|s| (s.id, s.source_topics.as_slice()))
        .collect();
    let partitions = |tasks: BTreeSet<TaskId>| -> BTreeSet<TopicPartition> {
        tasks
            .into_iter()
            .flat_map(|t| {
                sources
                    .get(&t.subtopology)
                    .copied()
                    .unwrap_or_default()
                    .iter()
                    .map(move |topic| TopicPartition {
                        topic: topic.clone(),
                        partition: t.partition,
                    })
            })
            .collect()
    };
    let mut active_by_host = HostMap::new();
    let mut standby_by_host = HostMap::new();
    for client in &clients.clients {
        let Some(host) = &client.host else { continue };
        let mut active = BTreeSet::new();
        let mut kept = BTreeSet::new();
        for &m in &client.members {
            let a = &members[&clients.members[m].member_id];
            active.extend(a.active());
            kept.extend(a.standby());
            kept.extend(a.warmup());
        }
        // Two instances announcing one host is a misconfiguration; the union keeps both.
        active_by_host
            .entry(host.clone())
            .or_default()
            .extend(partitions(active));
        standby_by_host
            .entry(host.clone())
            .or_default()
            .extend(partitions(kept));
    }
    (active_by_host, standby_by_host)
}
