//! Rebalances while input flows, on both brokers: the counts must stay exact (at-least-once with
//! graceful rebalances processes every record once).

mod common;

use std::time::Duration;

use common::*;

on_both_brokers!(a_member_joining_mid_input_leaves_the_counts_exact);

/// A second instance joins while the first is in the middle of a backlog, so the first has
/// records fetched and queued, not yet processed, when its tasks are revoked. It keeps some of
/// its tasks, and the consumer fetches their partitions again from the committed offsets: a
/// task that kept its queued records processed them twice.
fn a_member_joining_mid_input_leaves_the_counts_exact(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let input = lines(31, 60_000);
    produce_lines(bootstrap, &wc.input, &input);
    let expected = expected_counts(&input);
    let words = expected.values().sum::<i64>() as u64;
    // Each line is processed once by the splitting sub-topology, each word once by the counting one.
    let all_records = input.len() as u64 + words;

    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start(d1.path());
    wait_until(
        "the first instance to be processing",
        Duration::from_secs(90),
        || a.metrics().processed >= 1_000,
    );
    let (mut b, _) = wc.start(d2.path());
    wait_until(
        "the second instance to own tasks",
        Duration::from_secs(90),
        || b.tasks().values().any(|t| !t.is_empty()),
    );
    let a_at_join = a.metrics().processed;
    assert!(
        a_at_join < all_records,
        "the first instance finished before the second joined ({a_at_join} records processed): \
         the rebalance did not happen mid-input"
    );

    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    assert!(
        b.metrics().processed > 0,
        "the second instance processed records"
    );
    a.close().unwrap();
    b.close().unwrap();
}
