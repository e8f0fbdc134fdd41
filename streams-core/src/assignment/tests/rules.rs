//! One test per assignor rule, on small groups whose right answer is known.

use std::time::Duration;

use super::support::*;
use crate::assignment::{assign, AssignmentConfig, FollowUp, Revocation};

fn defaults() -> AssignmentConfig {
    AssignmentConfig::default()
}

#[test]
fn a_fresh_group_gets_shares_proportional_to_threads_and_no_follow_up() {
    let subs = vec![stateful(0, 8), stateless(1, 4)];
    let members = vec![member("a", 1, 1), member("b", 2, 1), member("c", 3, 2)];
    let a = assign(&input(members, subs, 1000), &defaults());
    assert_eq!(active(&a, "a").len(), 3);
    assert_eq!(active(&a, "b").len(), 3);
    assert_eq!(active(&a, "c").len(), 6);
    // Stateful tasks are spread by the same shares (2, 2, 4), not piled on one instance.
    let stateful_on = |m: &str| active(&a, m).iter().filter(|t| t.subtopology == 0).count();
    assert_eq!(
        [stateful_on("a"), stateful_on("b"), stateful_on("c")],
        [2, 2, 4]
    );
    assert!(a.movements.is_empty() && a.revocations.is_empty());
    assert_eq!(a.follow_up, None);
}

#[test]
fn running_tasks_stay_with_their_owners() {
    let subs = vec![stateful(0, 4), stateless(1, 2)];
    let members = vec![
        member("a", 1, 1).running(&[t(0, 0), t(0, 2), t(1, 1)]),
        member("b", 2, 1).running(&[t(0, 1), t(0, 3), t(1, 0)]),
    ];
    let a = assign(&input(members, subs, 1000), &defaults());
    assert_eq!(active(&a, "a"), tasks(&[(0, 0), (0, 2), (1, 1)]));
    assert_eq!(active(&a, "b"), tasks(&[(0, 1), (0, 3), (1, 0)]));
    assert_eq!(a.follow_up, None);
}

#[test]
fn a_joining_instance_gets_warmups_and_a_probing_rebalance_not_actives() {
    let subs = vec![stateful(0, 6)];
    let all: Vec<_> = (0..6).map(|p| t(0, p)).collect();
    let members = vec![member("a", 1, 1).running(&all), member("b", 2, 1)];
    let a = assign(&input(members, subs, 1_000_000), &defaults());
    // Everything stays available on the caught-up instance.
    assert_eq!(active(&a, "a").len(), 6);
    assert!(active(&a, "b").is_empty());
    // b's share is 3 tasks; two warm up now (max.warmup.replicas), one waits.
    assert_eq!(a.movements.len(), 3);
    assert_eq!(a.movements.iter().filter(|m| m.warming).count(), 2);
    assert!(a
        .movements
        .iter()
        .all(|m| m.from == pid(1) && m.to == pid(2)));
    assert_eq!(warmup(&a, "b").len(), 2);
    assert_eq!(a.follow_up, Some(FollowUp::At(NOW + 600_000)));
}

#[test]
fn max_warmup_replicas_bounds_the_warmups_of_the_whole_group() {
    let subs = vec![stateful(0, 9)];
    let all: Vec<_> = (0..9).map(|p| t(0, p)).collect();
    let members = || {
        vec![
            member("a", 1, 1).running(&all),
            member("b", 2, 1),
            member("c", 3, 1),
        ]
    };
    let warmups = |max| {
        let config = AssignmentConfig {
            max_warmup_replicas: max,
            ..defaults()
        };
        let a = assign(&input(members(), subs.clone(), 1_000_000), &config);
        warmup(&a, "b").len() + warmup(&a, "c").len()
    };
    assert_eq!(warmups(1), 1);
    assert_eq!(warmups(2), 2);
    assert_eq!(warmups(6), 6);
    assert_eq!(warmups(100), 6); // only the six moves need one
}

#[test]
fn a_caught_up_instance_takes_its_share_once_the_owner_has_revoked() {
    let subs = vec![stateful(0, 2)];
    let members = vec![
        member("a", 1, 1).running(&[t(0, 0), t(0, 1)]),
        // Within acceptable.recovery.lag (10,000) of the end: caught up.
        member("b", 2, 1).standby(&[t(0, 1)], 995_000),
    ];
    let round1 = input(members, subs, 1_000_000);
    let a = assign(&round1, &defaults());
    assert_eq!(active(&a, "a"), tasks(&[(0, 0)]));
    // Withheld from b until a has committed and closed it.
    assert!(active(&a, "b").is_empty());
    assert_eq!(
        a.revocations,
        [Revocation {
            task: t(0, 1),
            from: "a".into(),
            to: "b".into()
        }]
    );
    assert_eq!(a.follow_up, Some(FollowUp::Immediately));
    assert!(a.movements.is_empty());

    let a = assign(&next_round(&round1, &a), &defaults());
    assert_eq!(active(&a, "a"), tasks(&[(0, 0)]));
    assert_eq!(active(&a, "b"), tasks(&[(0, 1)]));
    assert_eq!(a.follow_up, None);
}

#[test]
fn without_a_caught_up_instance_the_most_caught_up_one_keeps_the_task() {
    let subs = vec![stateful(0, 3)];
    let all = [t(0, 0), t(0, 1), t(0, 2)];
    // The owner left; a has old checkpoints (lag 50,000), b and c have nothing.
    let members = vec![
        member("a", 1, 1).checkpoint(&all, 950_000),
        member("b", 2, 1),
        member("c", 3, 1),
    ];
    let a = assign(&input(members, subs, 1_000_000), &defaults());
    assert_eq!(active(&a, "a").len(), 3);
    assert_eq!(a.movements.len(), 2);
    assert_eq!(warmup(&a, "b").len() + warmup(&a, "c").len(), 2);
    assert_eq!(a.follow_up, Some(FollowUp::At(NOW + 600_000)));
}

#[test]
fn when_no_one_has_state_tasks_go_straight_to_their_balanced_owner() {
    let subs = vec![stateful(0, 4)];
    let members = vec![
        member("a", 1, 1).checkpoint(&[t(0, 0)], 0),
        member("b", 2, 1),
    ];
    let a = assign(&input(members, subs, 1_000_000), &defaults());
    assert_eq!(active(&a, "a").len(), 2);
    assert_eq!(active(&a, "b").len(), 2);
    assert!(a.movements.is_empty());
}

#[test]
fn stateless_tasks_even_out_the_active_counts() {
    let subs = vec![stateful(0, 4), stateless(1, 4)];
    let stateful_tasks: Vec<_> = (0..4).map(|p| t(0, p)).collect();
    let members = vec![
        member("a", 1, 1).running(&stateful_tasks),
        member("b", 2, 1),
    ];
    let a = assign(&input(members, subs, 1_000_000), &defaults());
    // a keeps its four stateful tasks while b warms up; b gets the stateless ones.
    assert_eq!(active(&a, "a"), tasks(&[(0, 0), (0, 1), (0, 2), (0, 3)]));
    assert_eq!(active(&a, "b"), tasks(&[(1, 0), (1, 1), (1, 2), (1, 3)]));
}

#[test]
fn stateless_tasks_stay_with_their_owners_while_balanced() {
    let subs = vec![stateless(0, 6)];
    let members = vec![
        member("a", 1, 1).running(&[t(0, 5), t(0, 3)]),
        member("b", 2, 1).running(&[t(0, 0), t(0, 1), t(0, 2), t(0, 4)]),
        member("c", 3, 1),
    ];
    let a = assign(&input(members, subs, 0), &defaults());
    assert_eq!(active(&a, "a"), tasks(&[(0, 3), (0, 5)]));
    // b keeps two of its four; the joiner c gets the other two.
    assert_eq!(active(&a, "b"), tasks(&[(0, 0), (0, 1)]));
    assert!(a.revocations.iter().all(|r| r.from == "b" && r.to == "c"));
    assert_eq!(a.revocations.len(), 2);
}

#[test]
fn standbys_go_off_the_active_instance_and_stay_where_they_are_caught_up() {
    let subs = vec![stateful(0, 3)];
    let config = AssignmentConfig {
        num_standby_replicas: 1,
        ..defaults()
    };
    let members = vec![
        member("a", 1, 1)
            .running(&[t(0, 0)])
            .standby(&[t(0, 1)], 1_000),
        member("b", 2, 1)
            .running(&[t(0, 1)])
            .standby(&[t(0, 2)], 1_000),
        member("c", 3, 1)
            .running(&[t(0, 2)])
            .standby(&[t(0, 0)], 1_000),
    ];
    let a = assign(&input(members, subs, 1_000), &config);
    assert_eq!(standby(&a, "a"), tasks(&[(0, 1)]));
    assert_eq!(standby(&a, "b"), tasks(&[(0, 2)]));
    assert_eq!(standby(&a, "c"), tasks(&[(0, 0)]));
    assert_eq!(a.follow_up, None);
}

#[test]
fn a_standby_stays_with_its_keeper_among_equally_caught_up_instances() {
    let subs = vec![stateful(0, 1)];
    let config = AssignmentConfig {
        num_standby_replicas: 1,
        ..defaults()
    };
    let members = vec![
        member("a", 1, 1).running(&[t(0, 0)]),
        // b has an old checkpoint as good as c's standby; c keeps the standby.
        member("b", 2, 1).checkpoint(&[t(0, 0)], 1_000),
        member("c", 3, 1).standby(&[t(0, 0)], 1_000),
    ];
    let a = assign(&input(members, subs, 1_000), &config);
    assert!(standby(&a, "b").is_empty());
    assert_eq!(standby(&a, "c"), tasks(&[(0, 0)]));
}

#[test]
fn fewer_instances_than_copies_mean_fewer_standbys() {
    let subs = vec![stateful(0, 2)];
    let config = AssignmentConfig {
        num_standby_replicas: 3,
        ..defaults()
    };
    let a = assign(
        &input(vec![member("a", 1, 1), member("b", 2, 1)], subs, 0),
        &config,
    );
    for m in ["a", "b"] {
        assert_eq!(active(&a, m).len(), 1);
        assert_eq!(standby(&a, m).len(), 1);
        assert!(active(&a, m).is_disjoint(&standby(&a, m)));
    }
}

#[test]
fn standbys_spread_over_the_rack_aware_tags() {
    let subs = vec![stateful(0, 4)];
    let config = AssignmentConfig {
        num_standby_replicas: 1,
        rack_aware_assignment_tags: vec!["zone".into()],
        ..defaults()
    };
    let members = vec![
        member("a1", 1, 1).tag("zone", "a"),
        member("a2", 2, 1).tag("zone", "a"),
        member("b1", 3, 1).tag("zone", "b"),
        member("b2", 4, 1).tag("zone", "b"),
    ];
    let a = assign(&input(members, subs, 0), &config);
    let zone = |m: &str| m.chars().next().unwrap();
    let ids = ["a1", "a2", "b1", "b2"];
    for task in (0..4).map(|p| t(0, p)) {
        let owner = ids.iter().find(|m| active(&a, m).contains(&task)).unwrap();
        let keeper = ids.iter().find(|m| standby(&a, m).contains(&task)).unwrap();
        assert_ne!(
            zone(owner),
            zone(keeper),
            "{task}: active on {owner}, standby on {keeper}"
        );
    }
}

#[test]
fn rack_tags_give_way_when_no_other_rack_is_left() {
    let subs = vec![stateful(0, 2)];
    let config = AssignmentConfig {
        num_standby_replicas: 2,
        rack_aware_assignment_tags: vec!["zone".into()],
        ..defaults()
    };
    // Two zones, three instances: the second standby must share a zone.
    let members = vec![
        member("a1", 1, 1).tag("zone", "a"),
        member("a2", 2, 1).tag("zone", "a"),
        member("b1", 3, 1).tag("zone", "b"),
    ];
    let a = assign(&input(members, subs, 0), &config);
    let copies: usize = ["a1", "a2", "b1"]
        .iter()
        .map(|m| active(&a, m).len() + standby(&a, m).len())
        .sum();
    assert_eq!(copies, 6);
}

#[test]
fn a_moving_task_warms_up_in_a_standby_when_standbys_are_configured() {
    let subs = vec![stateful(0, 4)];
    let all: Vec<_> = (0..4).map(|p| t(0, p)).collect();
    let config = AssignmentConfig {
        num_standby_replicas: 1,
        max_warmup_replicas: 1,
        ..defaults()
    };
    let members = vec![member("a", 1, 1).running(&all), member("b", 2, 1)];
    let a = assign(&input(members, subs, 1_000_000), &config);
    assert_eq!(active(&a, "a").len(), 4);
    assert_eq!(a.movements.len(), 2);
    // Both moving tasks warm up in b's standbys; the warm-up budget is not needed.
    assert!(a.movements.iter().all(|m| m.warming));
    assert!(warmup(&a, "b").is_empty());
    assert_eq!(standby(&a, "b").len(), 4);
}

#[test]
fn probing_rebalances_hand_tasks_over_until_the_group_is_balanced() {
    let subs = vec![stateful(0, 6), stateless(1, 3)];
    let stateful_tasks: Vec<_> = (0..6).map(|p| t(0, p)).collect();
    let mut round = input(
        vec![
            member("a", 1, 1).running(&stateful_tasks),
            member("b", 2, 1),
            member("c", 3, 1),
        ],
        subs,
        1_000_000,
    );
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 10, "no convergence");
        let a = assign(&round, &defaults());
        // Every stateful task runs somewhere caught up, or is being handed over.
        for task in &stateful_tasks {
            let holders = ["a", "b", "c"]
                .iter()
                .filter(|m| active(&a, m).contains(task))
                .count();
            let handing_over = a.revocations.iter().any(|r| r.task == *task);
            assert_eq!(
                holders + usize::from(handing_over),
                1,
                "{task} in round {rounds}"
            );
        }
        if a.follow_up.is_none() {
            for m in ["a", "b", "c"] {
                assert_eq!(active(&a, m).len(), 3, "{m} after {rounds} rounds");
            }
            break;
        }
        round = next_round(&round, &a);
    }
    // Warm-up (2 tasks), hand-over, then the rest: b and c need 4 warm-ups in all.
    assert!(rounds >= 3, "handed over in {rounds} rounds");
}

#[test]
fn threads_share_an_instances_tasks_evenly_and_keep_them() {
    let subs = vec![stateless(0, 6)];
    let members = vec![member("a", 1, 3)
        .running_on(0, &[t(0, 0), t(0, 1)])
        .running_on(1, &[t(0, 2), t(0, 3), t(0, 4)])
        .running_on(2, &[t(0, 5)])];
    let a = assign(&input(members, subs, 0), &defaults());
    let threads: Vec<_> = a.members["a"]
        .threads
        .iter()
        .map(|t| t.active.clone())
        .collect();
    assert_eq!(threads[0], tasks(&[(0, 0), (0, 1)]));
    // Thread 1 had one too many: it keeps two, thread 2 gets the third.
    assert_eq!(threads[1], tasks(&[(0, 2), (0, 3)]));
    assert_eq!(threads[2], tasks(&[(0, 4), (0, 5)]));
    assert!(
        a.revocations.is_empty(),
        "a move between threads of a member needs none"
    );
}

#[test]
fn tasks_of_an_owner_that_left_need_no_revocation() {
    let subs = vec![stateless(0, 2)];
    let a = assign(&input(vec![member("b", 2, 1)], subs, 0), &defaults());
    assert_eq!(active(&a, "b").len(), 2);
    assert_eq!(a.follow_up, None);
}

#[test]
fn the_old_member_of_a_restarted_instance_is_asked_to_revoke() {
    // Same process id: the instance restarted and rejoined before its old member left.
    let subs = vec![stateless(0, 2)];
    let members = vec![
        member("old", 1, 1).running(&[t(0, 0), t(0, 1)]),
        member("new", 1, 1),
    ];
    let a = assign(&input(members, subs, 0), &defaults());
    assert_eq!(active(&a, "old").len(), 1);
    assert!(active(&a, "new").is_empty());
    assert_eq!(a.revocations.len(), 1);
    assert_eq!(a.revocations[0].from, "old");
    assert_eq!(a.follow_up, Some(FollowUp::Immediately));
}

#[test]
fn the_host_map_routes_source_partitions_of_what_each_instance_runs_and_keeps() {
    let mut sub = stateful(0, 2);
    sub.source_topics.push("app-rep-repartition".into());
    let subs = vec![sub];
    let config = AssignmentConfig {
        num_standby_replicas: 1,
        ..defaults()
    };
    let members = vec![
        member("a", 1, 1).running(&[t(0, 0)]).host("a.local", 8080),
        member("b", 2, 1).running(&[t(0, 1)]).host("b.local", 8080),
        member("c", 3, 1),
    ];
    let a = assign(&input(members, subs, 0), &config);
    let host = |h: &str| crate::assignment::HostInfo {
        host: h.into(),
        port: 8080,
    };
    let tps = |ps: &[(&str, i32)]| {
        ps.iter()
            .map(|&(topic, partition)| crate::assignment::TopicPartition {
                topic: topic.into(),
                partition,
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        a.active_by_host[&host("a.local")],
        tps(&[("in-0", 0), ("app-rep-repartition", 0)])
    );
    assert_eq!(
        a.active_by_host[&host("b.local")],
        tps(&[("in-0", 1), ("app-rep-repartition", 1)])
    );
    // c announces no host, so it is not in the map.
    assert_eq!(a.active_by_host.len(), 2);
    let standby_tasks: usize = a.standby_by_host.values().map(|s| s.len()).sum();
    assert!(standby_tasks <= 4);
}

#[test]
fn the_probing_deadline_is_the_leaders_time_plus_the_interval() {
    let subs = vec![stateful(0, 2)];
    let members = vec![
        member("a", 1, 1).running(&[t(0, 0), t(0, 1)]),
        member("b", 2, 1),
    ];
    let config = AssignmentConfig {
        probing_rebalance_interval: Duration::from_secs(90),
        ..defaults()
    };
    let a = assign(&input(members, subs, 1_000_000), &config);
    assert_eq!(a.follow_up, Some(FollowUp::At(NOW + 90_000)));
}

#[test]
fn the_member_order_does_not_matter() {
    let subs = vec![stateful(0, 5), stateless(1, 3)];
    let members = vec![
        member("a", 1, 2)
            .running(&[t(0, 0), t(1, 2)])
            .tag("zone", "x"),
        member("b", 2, 1)
            .standby(&[t(0, 0)], 999_000)
            .tag("zone", "y"),
        member("c", 3, 1)
            .checkpoint(&[t(0, 3)], 10)
            .tag("zone", "x"),
    ];
    let config = AssignmentConfig {
        num_standby_replicas: 1,
        rack_aware_assignment_tags: vec!["zone".into()],
        ..defaults()
    };
    let forward = assign(&input(members.clone(), subs.clone(), 1_000_000), &config);
    let mut reversed = members;
    reversed.reverse();
    assert_eq!(forward, assign(&input(reversed, subs, 1_000_000), &config));
}

#[test]
fn no_members_no_assignment() {
    let a = assign(&input(Vec::new(), vec![stateful(0, 3)], 0), &defaults());
    assert!(a.members.is_empty());
    assert_eq!(a.follow_up, None);
}
