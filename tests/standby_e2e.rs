//! Standby replicas and the group member of our own, on both brokers: standbys keep copies of
//! the other instance's stores, a promoted standby restores only what it has not seen, and
//! Kafka's own group tooling sees our members.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use streams::TaskId;
use streams_testkit as testing;

on_both_brokers!(a_promoted_standby_restores_only_what_it_has_not_seen,);

fn ids(tasks: std::collections::BTreeMap<usize, Vec<TaskId>>) -> BTreeSet<TaskId> {
    tasks.into_values().flatten().collect()
}

/// Word count (sub-topology 1 holds the counts) on 2 partitions with one standby per task:
/// once a second instance joins, the first, which has the state, keeps the counting tasks and
/// the newcomer keeps their standbys. When the standby has caught up with the changelog and the active's
/// instance stops, the survivor takes the task over restoring exactly nothing, and goes on
/// counting exactly.
fn a_promoted_standby_restores_only_what_it_has_not_seen(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    // The newcomer starts with nothing: further behind than this, it may not take a counting
    // task over at once (it gets a standby, and the task would move once that caught up).
    let extra = [
        ("num.standby.replicas", "1"),
        ("acceptable.recovery.lag", "100"),
    ];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start_with(d1.path(), &extra);
    let first = lines(41, 5_000);
    produce_lines(bootstrap, &wc.input, &first);
    let expected = expected_counts(&first);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);

    let (mut b, restored_b) = wc.start_with(d2.path(), &extra);
    let counting: BTreeSet<TaskId> = [0, 1]
        .map(|partition| TaskId {
            subtopology: 1,
            partition,
        })
        .into();
    wait_until(
        "each counting task to run on one instance with a standby on the other",
        Duration::from_secs(90),
        || {
            counting.iter().all(|t| {
                let (aa, ab) = (ids(a.tasks()), ids(b.tasks()));
                let (sa, sb) = (ids(a.standby_tasks()), ids(b.standby_tasks()));
                (aa.contains(t) && sb.contains(t) && !ab.contains(t) && !sa.contains(t))
                    || (ab.contains(t) && sa.contains(t) && !aa.contains(t) && !sb.contains(t))
            })
        },
    );
    // The first instance had all the state: it keeps the counting tasks.
    assert!(
        counting.is_subset(&ids(a.tasks())),
        "the caught-up instance keeps its stateful tasks: a has {:?}, b has {:?}",
        a.tasks(),
        b.tasks()
    );
    let changelog = testing::record_count(bootstrap, &wc.changelog()).unwrap() as u64;
    assert!(changelog > 0);
    wait_until(
        "the standbys to read the whole changelog",
        Duration::from_secs(90),
        || b.metrics().restored >= changelog,
    );
    let before = restored_b.total();

    a.close().expect("graceful stop");
    wait_until(
        "the survivor to run every task",
        Duration::from_secs(90),
        || ids(b.tasks()).len() == 4,
    );
    assert_eq!(
        restored_b.total() - before,
        0,
        "the promoted standbys had the whole changelog already"
    );
    let second = lines(42, 1_000);
    produce_lines(bootstrap, &wc.input, &second);
    let expected = expected_counts(first.iter().chain(&second));
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    b.close().unwrap();
}
