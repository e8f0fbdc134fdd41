//! Rebalances while input flows, on both brokers: the counts must stay exact (at-least-once with
//! graceful rebalances processes every record once).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use streams_testkit as testing;

on_both_brokers!(
    a_member_joining_mid_input_leaves_the_counts_exact,
    scaling_one_two_three_two_while_input_flows_counts_exactly,
    a_long_restoration_runs_in_slices_between_polls,
    a_source_topic_that_gains_partitions_brings_new_tasks,
    a_grown_source_that_internal_topics_no_longer_fit_stops_the_instance_naming_them,
);

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
    // A newcomer counts as caught up on any task, so counting tasks move to it mid-input
    // (with the defaults they would stay with the instance that has the state, and the
    // newcomer would get only a splitting task, whose input may be all read already).
    let extra = [("acceptable.recovery.lag", "1000000000")];
    let (mut a, _) = wc.start_with(d1.path(), &extra);
    wait_until(
        "the first instance to be processing",
        Duration::from_secs(90),
        || a.metrics().processed >= 1_000,
    );
    let (mut b, _) = wc.start_with(d2.path(), &extra);
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

/// 1 -> 2 -> 3 -> 2 instances while a producer keeps writing, with graceful starts and stops
/// only: every instance processes records, and the final counts are exactly the input's.
fn scaling_one_two_three_two_while_input_flows_counts_exactly(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 4);
    // Batches of 200 lines, one every 100 ms, from before the first instance starts until the
    // scaling is over (at most the 400 batches there are); then the producer says how many it
    // wrote, and those are the input.
    let batches: Vec<Vec<String>> = lines(47, 80_000)
        .chunks(200)
        .map(<[String]>::to_vec)
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (bootstrap, topic, batches, stop) = (
            bootstrap.to_string(),
            wc.input.clone(),
            batches.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            let mut written = 0;
            for batch in &batches {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                produce_lines(&bootstrap, &topic, batch);
                written += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            written
        })
    };
    let owns_tasks = |app: &streams::KafkaStreams| app.tasks().values().any(|t| !t.is_empty());
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut a, _) = wc.start(dirs[0].path());
    wait_until(
        "the first instance to process",
        Duration::from_secs(90),
        || a.metrics().processed > 0,
    );
    let (mut b, _) = wc.start(dirs[1].path());
    wait_until(
        "the second instance to own tasks",
        Duration::from_secs(90),
        || owns_tasks(&b),
    );
    // Before the third joins: that rebalance may move the second's tasks on at once.
    wait_until(
        "the second instance to process",
        Duration::from_secs(90),
        || b.metrics().processed > 0,
    );
    let (mut c, _) = wc.start(dirs[2].path());
    wait_until(
        "the third instance to own tasks",
        Duration::from_secs(90),
        || owns_tasks(&c),
    );
    wait_until(
        "the third instance to process",
        Duration::from_secs(90),
        || c.metrics().processed > 0,
    );
    let processed = [
        a.metrics().processed,
        b.metrics().processed,
        c.metrics().processed,
    ];
    // A graceful stop: final commit, then the group hands its tasks to the other two.
    b.close().unwrap();
    wait_until(
        "the two left to own every task",
        Duration::from_secs(90),
        || {
            let owned =
                |app: &streams::KafkaStreams| -> usize { app.tasks().values().map(Vec::len).sum() };
            owned(&a) + owned(&c) == 8
        },
    );
    // Input keeps flowing to the two left for a while before it stops.
    let left = |a: &streams::KafkaStreams, c: &streams::KafkaStreams| {
        a.metrics().processed + c.metrics().processed
    };
    let before = left(&a, &c);
    wait_until(
        "the two left to process 5,000 more records",
        Duration::from_secs(90),
        || left(&a, &c) >= before + 5_000,
    );
    stop.store(true, Ordering::Release);
    let written = producer.join().unwrap();
    assert!(
        written < batches.len(),
        "the producer ran out of input before the scaling ended"
    );
    let input: Vec<String> = batches[..written].concat();
    let expected = expected_counts(&input);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    assert!(
        processed.iter().all(|&n| n > 0),
        "every instance processed records: {processed:?}"
    );
    a.close().unwrap();
    c.close().unwrap();
}

/// Restoration runs in slices between polls (the third fault: it ran inside the
/// assignment, holding the thread). An instance with a large changelog to restore, and a
/// `max.poll.interval.ms` far below the restore's length, meanwhile processes its stateless
/// tasks' records, takes part in the rebalance when a second instance joins (both end up with
/// tasks while it still restores), and is closed in the middle of the restoration.
fn a_long_restoration_runs_in_slices_between_polls(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    // The count store's changelog, written directly: 1,200,000 counts to restore, which takes
    // longer than `max.poll.interval.ms` (10 s, the least librdkafka accepts with the tests'
    // session timeout) on this machine's debug builds.
    testing::create_topic(bootstrap, &wc.changelog(), 2).unwrap();
    let records: u64 = 1_200_000;
    testing::produce(
        bootstrap,
        &wc.changelog(),
        (0..records).map(|i| {
            (
                Some(format!("w{i}").into_bytes()),
                Some((i as i64).to_be_bytes().to_vec()),
                None,
            )
        }),
    )
    .unwrap();
    let extra = [("consumer.max.poll.interval.ms", "10000")];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, restored_a) = wc.start_with(d1.path(), &extra);
    let restoring = |app: &streams::KafkaStreams| {
        let restored = app.metrics().restored;
        restored > 0 && restored < records
    };
    wait_until("the restoration to start", Duration::from_secs(60), || {
        restoring(&a)
    });
    produce_lines(bootstrap, &wc.input, &lines(51, 200));
    wait_until(
        "the stateless tasks to process while the counts restore",
        Duration::from_secs(60),
        || a.metrics().processed > 0,
    );
    assert!(restoring(&a), "still restoring: {:?}", a.metrics());
    let (mut b, _) = wc.start_with(d2.path(), &extra);
    wait_until(
        "the second instance to run tasks",
        Duration::from_secs(60),
        || b.tasks().values().any(|t| !t.is_empty()),
    );
    assert!(
        restoring(&a),
        "the rebalance completed while the first instance restored: {:?}",
        a.metrics()
    );
    a.close().unwrap();
    assert!(
        a.metrics().restored < records,
        "close interrupted the restoration ({} of {records} restored)",
        a.metrics().restored
    );
    assert!(
        *restored_a.ends.lock().unwrap() < 2,
        "both counting tasks' restorations ended"
    );
    b.close().unwrap();
}

/// Records with explicit partitions (a fresh producer, so it sees the topic's current size).
fn produce_to_partitions(bootstrap: &str, topic: &str, records: &[(i32, String)]) {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (p, v) in records {
        producer
            .send(
                BaseRecord::to(topic)
                    .key(v.as_str())
                    .payload(v)
                    .partition(*p),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// A stateless copy reads a 2-partition topic that grows to 4 while the application runs:
/// the group member's leader sees it within `metadata.max.age.ms`, lays the tasks out again and
/// rebalances, and the records of the new partitions are copied too, exactly once each.
fn a_source_topic_that_gains_partitions_brings_new_tasks(bootstrap: &str) {
    use streams::{KafkaStreams, Serdes, StreamsConfig, Topology};
    let (input, output) = (unique("grow-in"), unique("grow-out"));
    testing::create_topic(bootstrap, &input, 2).unwrap();
    testing::create_topic(bootstrap, &output, 1).unwrap();
    let mut t = Topology::new();
    t.add_source("in", &[input.as_str()], Serdes::string(), Serdes::string())
        .unwrap();
    t.add_sink("out", &output, Serdes::string(), Serdes::string(), &["in"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new(unique("grow"), bootstrap)
        .set("state.dir", dir.path().to_str().unwrap())
        .set("commit.interval.ms", "200")
        .set("metadata.max.age.ms", "500");
    let mut app = KafkaStreams::new(t, config).unwrap();
    app.start().unwrap();
    let first: Vec<(i32, String)> = (0..40).map(|i| (i % 2, format!("first-{i}"))).collect();
    produce_to_partitions(bootstrap, &input, &first);
    let read = |n: usize| {
        testing::read_records(
            bootstrap,
            &output,
            Serdes::string(),
            Serdes::string(),
            Duration::from_secs(60),
            |rs| rs.len() >= n,
        )
        .unwrap()
    };
    assert_eq!(read(first.len()).len(), first.len());
    testing::add_partitions(bootstrap, &input, 4).unwrap();
    wait_until(
        "the instance to run a task per partition",
        Duration::from_secs(60),
        || app.tasks().values().map(Vec::len).sum::<usize>() == 4,
    );
    let second: Vec<(i32, String)> = (0..40).map(|i| (i % 4, format!("second-{i}"))).collect();
    produce_to_partitions(bootstrap, &input, &second);
    let all = first.len() + second.len();
    let mut got: Vec<String> = read(all).into_iter().map(|(_, v)| v).collect();
    got.sort();
    let mut want: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|(_, v)| v.clone())
        .collect();
    want.sort();
    assert_eq!(got, want);
    app.close().unwrap();
}

/// The word count's repartition topic and changelog were made for a 2-partition input; when
/// the input grows to 3 they no longer fit, and the instance stops with an error naming an
/// internal topic (the changelog, checked first) and both counts, instead of counting some
/// words in the wrong place.
fn a_grown_source_that_internal_topics_no_longer_fit_stops_the_instance_naming_them(
    bootstrap: &str,
) {
    let wc = WordCount::new(bootstrap, 2);
    let dir = tempfile::tempdir().unwrap();
    let (mut app, _) = wc.start_with(dir.path(), &[("metadata.max.age.ms", "500")]);
    let input = lines(52, 100);
    produce_lines(bootstrap, &wc.input, &input);
    let expected = expected_counts(&input);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    testing::add_partitions(bootstrap, &wc.input, 3).unwrap();
    assert!(
        app.wait_for_state(streams::State::Error, Duration::from_secs(60)),
        "state {:?}",
        app.state()
    );
    let e = app.error().unwrap();
    assert!(
        e.contains(&wc.changelog()) && e.contains("has 2 partitions but the topology needs 3"),
        "{e}"
    );
    let _ = app.close();
}
