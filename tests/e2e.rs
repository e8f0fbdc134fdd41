//! End-to-end tests on real brokers: every scenario runs on the Apache Kafka test bed and on the
//! bundled broker.

mod common;

use std::time::Duration;

use common::tweets::{self, TweetGenerator};
use common::*;
use streams::{KafkaStreams, Serdes, State, StreamsConfig, StreamsError};
use streams_testkit as testing;

on_both_brokers!(
    one_instance_counts_exactly,
    two_instances_share_the_tasks,
    graceful_stop_hands_tasks_over_with_their_state,
    restarts_replay_only_the_changelog_tail_or_everything_without_state,
    missing_source_topic_fails_start,
    bad_records_follow_the_deserialization_policy,
    stream_threads_split_the_tasks_of_one_instance,
);

fn stream_threads_split_the_tasks_of_one_instance(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 4);
    let dir = tempfile::tempdir().unwrap();
    let topology = wordcount::topology(&wc.input, &wc.output).unwrap();
    let mut app = KafkaStreams::new(
        topology,
        wc.config(dir.path()).set("num.stream.threads", "2"),
    )
    .unwrap();
    app.start().unwrap();
    wait_until(
        "both stream threads to own tasks",
        Duration::from_secs(90),
        || {
            let t = app.tasks();
            t.len() == 2
                && t.values().all(|v| !v.is_empty())
                && t.values().map(Vec::len).sum::<usize>() == 8
        },
    );
    let input = lines(8, 500);
    produce_lines(bootstrap, &wc.input, &input);
    let expected = expected_counts(&input);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    app.close().unwrap();
}

fn one_instance_counts_exactly(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 4);
    let input = lines(1, 500);
    produce_lines(bootstrap, &wc.input, &input);
    let dir = tempfile::tempdir().unwrap();
    let (mut app, _) = wc.start(dir.path());
    let expected = expected_counts(&input);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    assert_eq!(app.metrics().dropped, 0);
    // Consumed repartition records are purged after commits (DeleteRecords), as Kafka Streams does.
    let words: i64 = expected.values().sum();
    wait_until(
        "repartition records to be purged",
        Duration::from_secs(60),
        || testing::record_count(bootstrap, &wc.repartition()).unwrap() < words,
    );
    app.close().expect("clean close");
    assert_eq!(app.state(), State::NotRunning);
    // The internal topics were created with the task count of their sub-topology.
    assert!(testing::record_count(bootstrap, &wc.changelog()).unwrap() > 0);
}

fn two_instances_share_the_tasks(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 4);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start(d1.path());
    let (mut b, _) = wc.start(d2.path());
    wait_until(
        "both instances to own tasks",
        Duration::from_secs(90),
        || {
            let (ta, tb) = (a.tasks(), b.tasks());
            let (na, nb) = (ta.values().flatten().count(), tb.values().flatten().count());
            na > 0
                && nb > 0
                && na + nb == 8
                && a.state() == State::Running
                && b.state() == State::Running
        },
    );
    let input = lines(2, 2000);
    produce_lines(bootstrap, &wc.input, &input);
    let expected = expected_counts(&input);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    let (pa, pb) = (a.metrics().processed, b.metrics().processed);
    assert!(
        pa > 0 && pb > 0,
        "both instances process records: {pa} and {pb}"
    );
    a.close().unwrap();
    b.close().unwrap();
}

fn graceful_stop_hands_tasks_over_with_their_state(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 4);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start(d1.path());
    let (mut b, restored_b) = wc.start(d2.path());
    wait_until(
        "both instances to own tasks",
        Duration::from_secs(90),
        || a.tasks().values().flatten().count() > 0 && b.tasks().values().flatten().count() > 0,
    );
    let first = lines(3, 1000);
    produce_lines(bootstrap, &wc.input, &first);
    let expected = expected_counts(&first);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    let before = restored_b.total();

    a.close().expect("graceful stop");
    wait_until(
        "the survivor to own every task",
        Duration::from_secs(90),
        || b.tasks().values().flatten().count() == 8 && b.state() == State::Running,
    );
    assert!(
        restored_b.total() > before,
        "the survivor restores the moved stores from their changelogs ({} records)",
        restored_b.total()
    );
    let second = lines(4, 1000);
    produce_lines(bootstrap, &wc.input, &second);
    let expected = expected_counts(first.iter().chain(&second));
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    b.close().unwrap();
}

fn restarts_replay_only_the_changelog_tail_or_everything_without_state(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let changelog_size = || testing::record_count(bootstrap, &wc.changelog()).unwrap() as u64;

    // A counts the first batch and stops; its checkpoint covers the whole changelog.
    let first = lines(5, 300);
    produce_lines(bootstrap, &wc.input, &first);
    let (mut a, restored) = wc.start(dir_a.path());
    let expected = expected_counts(&first);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    a.close().unwrap();
    assert_eq!(
        restored.total(),
        0,
        "nothing to restore on a fresh changelog"
    );
    let after_a = changelog_size();
    assert!(after_a > 0);

    // B, with empty local state, restores all of it, then writes more.
    let (mut b, restored) = wc.start(dir_b.path());
    wait_running(&b);
    assert_eq!(
        restored.total(),
        after_a,
        "empty local state replays the whole changelog"
    );
    let second = lines(6, 300);
    produce_lines(bootstrap, &wc.input, &second);
    let expected = expected_counts(first.iter().chain(&second));
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    b.close().unwrap();
    let after_b = changelog_size();
    assert!(after_b > after_a);

    // A again, its local state intact: only what B wrote after A's checkpoint.
    let (mut a, restored) = wc.start(dir_a.path());
    wait_running(&a);
    assert_eq!(
        restored.total(),
        after_b - after_a,
        "intact local state replays only the changelog tail"
    );
    assert_eq!(a.metrics().restored, after_b - after_a);
    a.close().unwrap();

    // A with its local state deleted: everything.
    a.cleanup().unwrap();
    let (mut a, restored) = wc.start(dir_a.path());
    wait_running(&a);
    assert_eq!(
        restored.total(),
        after_b,
        "deleted local state replays the whole changelog"
    );
    let third = lines(7, 100);
    produce_lines(bootstrap, &wc.input, &third);
    let expected = expected_counts(first.iter().chain(&second).chain(&third));
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    a.close().unwrap();
}

fn missing_source_topic_fails_start(bootstrap: &str) {
    let missing = unique("no-such-topic");
    let topology = wordcount::topology(&missing, "whatever").unwrap();
    let mut app =
        KafkaStreams::new(topology, StreamsConfig::new(unique("app"), bootstrap)).unwrap();
    match app.start() {
        Err(StreamsError::MissingSourceTopic { topic }) => assert_eq!(topic, missing),
        other => panic!("expected a missing source topic error, got {other:?}"),
    }
}

fn bad_records_follow_the_deserialization_policy(bootstrap: &str) {
    let input = unique("tweets");
    testing::create_topic(bootstrap, &input, 1).unwrap();
    let mut g = TweetGenerator::new(7, 1_700_000_000_000);
    let good: Vec<_> = (0..20).map(|_| g.next_tweet()).collect();
    let mut records: Vec<testing::Outgoing> = good
        .iter()
        .map(|t| (None, Some(serde_json::to_vec(t).unwrap()), None))
        .collect();
    records.insert(10, (None, Some(b"{not json".to_vec()), None));
    testing::produce(bootstrap, &input, records).unwrap();

    // log-and-continue: the bad record is skipped and counted; the rest is counted.
    let dir = tempfile::tempdir().unwrap();
    let app_id = unique("tweets-app");
    let config = StreamsConfig::new(&app_id, bootstrap)
        .set("state.dir", dir.path().to_str().unwrap())
        .set("commit.interval.ms", "200")
        .set(
            "deserialization.exception.handler",
            "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler",
        );
    let (tags_topic, users_topic) = (unique("hashtag-counts"), unique("user-tweet-counts"));
    testing::create_topic(bootstrap, &tags_topic, 1).unwrap();
    testing::create_topic(bootstrap, &users_topic, 1).unwrap();
    let mut app = KafkaStreams::new(
        tweets::topology_to(
            &input,
            &tags_topic,
            &users_topic,
            &unique("hashtag-counts-1m"),
        )
        .unwrap(),
        config,
    )
    .unwrap();
    app.start().unwrap();
    let users = testing::read_table(
        bootstrap,
        &users_topic,
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
        Duration::from_secs(90),
        |t| t.values().sum::<i64>() == 20,
    )
    .unwrap();
    assert_eq!(
        users.values().sum::<i64>(),
        20,
        "every good tweet counted once: {users:?}"
    );
    wait_until(
        "the skipped record to be counted",
        Duration::from_secs(30),
        || app.metrics().dropped == 1,
    );
    app.close().unwrap();

    // log-and-fail (the default): the application stops with an error naming the record.
    let config = StreamsConfig::new(unique("tweets-fail"), bootstrap)
        .set("state.dir", dir.path().to_str().unwrap())
        .set("commit.interval.ms", "200");
    let mut app = KafkaStreams::new(
        tweets::topology_to(
            &input,
            &tags_topic,
            &users_topic,
            &unique("hashtag-counts-1m"),
        )
        .unwrap(),
        config,
    )
    .unwrap();
    app.start().unwrap();
    assert!(
        app.wait_for_state(State::Error, Duration::from_secs(90)),
        "state {:?}",
        app.state()
    );
    let err = app.error().unwrap();
    assert!(
        err.contains(&format!("topic `{input}` partition 0 offset 10")),
        "{err}"
    );
    assert!(app.close().is_err());
}
