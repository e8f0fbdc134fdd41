//! kill -9 of one of two word count processes in the middle of the input loses nothing: every
//! final count is at least the expected one (at-least-once). Runs the `wordcount` example binary
//! on the Apache Kafka test bed and on the bundled broker; `cargo build --examples` must have
//! built it (scripts/test does).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use streams::{Serdes, TaskId};
use streams_testkit as testing;

on_both_brokers!(
    kill_minus_9_loses_nothing,
    kill_minus_9_of_the_active_fails_over_to_a_standby_with_a_tail_restore,
);

fn spawn(wc: &WordCount, state_dir: &std::path::Path) -> Child {
    spawn_with(wc, state_dir, &[])
}

fn spawn_with(wc: &WordCount, state_dir: &std::path::Path, extra: &[&str]) -> Child {
    Command::new(example_binary())
        .args([
            "--bootstrap-servers",
            &wc.bootstrap,
            "--application-id",
            &wc.app_id,
        ])
        .args(["--input-topic", &wc.input, "--output-topic", &wc.output])
        .args(["--state-dir", state_dir.to_str().unwrap()])
        .args([
            "--config",
            "commit.interval.ms=300",
            "--config",
            "consumer.session.timeout.ms=6000",
        ])
        .args(["--config", "consumer.heartbeat.interval.ms=500"])
        .args(extra.iter().flat_map(|kv| ["--config", kv]))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the wordcount example")
}

fn kill_minus_9_loses_nothing(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 4);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut victim = spawn(&wc, d1.path());
    let mut survivor = spawn(&wc, d2.path());
    let first = lines(11, 3000);
    let second = lines(12, 3000);
    produce_lines(bootstrap, &wc.input, &first);
    // Kill one as soon as output flows: both have joined and the input is still being processed.
    let some = testing::read_table(
        bootstrap,
        &wc.output,
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
        Duration::from_secs(90),
        |t| t.values().sum::<i64>() > 100,
    )
    .unwrap();
    assert!(!some.is_empty(), "output flows before the kill");
    victim.kill().expect("kill -9");
    victim.wait().unwrap();
    produce_lines(bootstrap, &wc.input, &second);

    let expected = expected_counts(first.iter().chain(&second));
    assert_counts_at_least(bootstrap, &wc, &expected);
    // The survivor still stops cleanly on SIGTERM.
    let pid = survivor.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = survivor.wait().unwrap();
    assert!(
        status.success(),
        "survivor exits cleanly after SIGTERM: {status:?}"
    );
}

/// Failover from a standby: the counting store holds 200,000 keys (its changelog written
/// directly), the `wordcount` example process runs every task, and an in-process instance
/// keeps standbys of the counting tasks. kill -9 of the process: the survivor takes the tasks
/// over restoring only what its standbys had not read (far from the 200,000 records of a full
/// restore), and output resumes with every count at least right.
fn kill_minus_9_of_the_active_fails_over_to_a_standby_with_a_tail_restore(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    testing::create_topic(bootstrap, &wc.changelog(), 2).unwrap();
    let keys: u64 = 200_000;
    testing::produce(
        bootstrap,
        &wc.changelog(),
        (0..keys).map(|i| {
            (
                Some(format!("key{i}").into_bytes()),
                Some(1i64.to_be_bytes().to_vec()),
                None,
            )
        }),
    )
    .unwrap();
    let settings = ["num.standby.replicas=1", "acceptable.recovery.lag=100"];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut victim = spawn_with(&wc, d1.path(), &settings);
    let first = lines(13, 2000);
    produce_lines(bootstrap, &wc.input, &first);
    let expected = expected_counts(&first);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);

    let extra: Vec<(&str, &str)> = settings
        .iter()
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let (mut survivor, restored) = wc.start_with(d2.path(), &extra);
    let counting: Vec<TaskId> = (0..2)
        .map(|partition| TaskId {
            subtopology: 1,
            partition,
        })
        .collect();
    wait_until(
        "the survivor's standbys to read the whole changelog",
        Duration::from_secs(120),
        || {
            let standby: Vec<TaskId> = survivor.standby_tasks().into_values().flatten().collect();
            counting.iter().all(|t| standby.contains(t)) && survivor.metrics().restored >= keys
        },
    );
    assert!(
        survivor
            .tasks()
            .into_values()
            .flatten()
            .all(|t| t.subtopology == 0),
        "the victim keeps the counting tasks: {:?}",
        survivor.tasks()
    );
    let read_before_kill = survivor.metrics().restored;
    victim.kill().expect("kill -9");
    victim.wait().unwrap();
    let second = lines(14, 2000);
    produce_lines(bootstrap, &wc.input, &second);
    wait_until(
        "the survivor to run every task",
        Duration::from_secs(90),
        || survivor.tasks().into_values().flatten().count() == 4,
    );
    let expected = expected_counts(first.iter().chain(&second));
    assert_counts_at_least(bootstrap, &wc, &expected);
    let changelog_end = testing::record_count(bootstrap, &wc.changelog()).unwrap() as u64;
    let promotion = restored.total();
    assert!(
        promotion <= changelog_end - read_before_kill.min(changelog_end),
        "the promotion restored {promotion} records; the standbys had read {read_before_kill} of {changelog_end}"
    );
    assert!(
        promotion < keys / 10,
        "a tail, not a full restore: {promotion} records"
    );
    survivor.close().unwrap();
}

/// Waits until every word's count on the output is at least the expected one (at-least-once
/// after a crash: records processed since the last commit count twice), or fails naming the
/// first word short of it.
fn assert_counts_at_least(
    bootstrap: &str,
    wc: &WordCount,
    expected: &std::collections::HashMap<String, i64>,
) {
    let counts = testing::read_table(
        bootstrap,
        &wc.output,
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
        Duration::from_secs(120),
        |t| {
            expected
                .iter()
                .all(|(w, n)| t.get(w).is_some_and(|c| c >= n))
        },
    )
    .unwrap();
    for (w, n) in expected {
        let c = counts.get(w).copied().unwrap_or(0);
        assert!(c >= *n, "count of `{w}` is {c}, expected at least {n}");
    }
}
