//! Standby replicas and the group member of our own, on both brokers: standbys keep copies of
//! the other instance's stores, a promoted standby restores only what it has not seen, and
//! Kafka's own group tooling sees our members.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use streams::{
    KafkaStreams, Processor, ProcessorContext, Record, Serdes, StreamsConfig, TaskId, Topology,
};
use streams_testkit as testing;

on_both_brokers!(
    a_promoted_standby_restores_only_what_it_has_not_seen,
    another_kind_of_member_in_the_group_fails_start_naming_the_group,
    kafka_consumer_groups_lists_our_members_and_their_partitions,
    every_instance_knows_where_each_key_lives,
    a_stalled_stream_thread_leaves_the_group_and_its_tasks_move,
    a_stateful_task_moves_to_a_newcomer_only_through_a_caught_up_warm_up,
    a_static_member_restarting_within_its_session_gets_its_tasks_back_without_a_rebalance,
    standbys_follow_the_changelog_between_commits,
);

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
    // Caught up: their last update found nothing new to read. (Once caught up, a task may
    // also move to the newcomer at the next rebalance: then it is no standby any more.)
    wait_until(
        "the standbys to report no lag",
        Duration::from_secs(30),
        || {
            let lags = b.standby_lags();
            !lags.is_empty() && lags.values().all(|l| *l == 0)
        },
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

/// A plain consumer (as a Java Kafka Streams instance would be) already holds the group
/// `application.id`: our member is refused by the coordinator, and the instance fails with an
/// error naming the group and the reason, instead of sharing partitions with a stranger.
fn another_kind_of_member_in_the_group_fails_start_naming_the_group(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let stranger: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &wc.app_id)
        .set("session.timeout.ms", "10000")
        .create()
        .unwrap();
    stranger.subscribe(&[wc.input.as_str()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stranger.assignment().unwrap().count() == 0 {
        assert!(Instant::now() < deadline, "the plain consumer never joined");
        let _ = stranger.poll(Duration::from_millis(100));
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut app, _) = wc.start(dir.path());
    assert!(
        app.wait_for_state(streams::State::Error, Duration::from_secs(60)),
        "state {:?}",
        app.state()
    );
    let e = app.error().unwrap();
    assert!(
        e.contains(&wc.app_id) && e.contains("InconsistentGroupProtocol"),
        "{e}"
    );
    assert!(app.close().is_err());
    drop(stranger);
}

/// Kafka's own `kafka-consumer-groups --describe --members --verbose` (its jars from the test
/// bed's Maven classpath) lists both instances as members, and between them every partition of
/// the input and repartition topics exactly once: our subscriptions and assignments are in
/// the consumer protocol's format.
///
/// Kafka 4.3 prints the assignment as `topic:0;topic2:1` (older releases: `topic(0)`).
fn kafka_consumer_groups_lists_our_members_and_their_partitions(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start(d1.path());
    let (mut b, _) = wc.start(d2.path());
    wait_until(
        "both instances to run all tasks between them",
        Duration::from_secs(90),
        || {
            let (na, nb) = (ids(a.tasks()).len(), ids(b.tasks()).len());
            na > 0 && nb > 0 && na + nb == 4
        },
    );
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cp = Command::new(root.join("scripts/kafka-testbed"))
        .arg("classpath")
        .output()
        .expect("scripts/kafka-testbed classpath");
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    let cp = String::from_utf8(cp.stdout).unwrap();
    let describe = || {
        let out = Command::new("java")
            .args(["-cp", cp.trim()])
            .arg("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand")
            .args([
                "--bootstrap-server",
                bootstrap,
                "--describe",
                "--members",
                "--verbose",
            ])
            .args(["--group", &wc.app_id])
            .output()
            .expect("java");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mut text = describe();
    // The group is stable once the follow-up rebalance after the second join is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    while text.contains("rebalancing") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        text = describe();
    }
    let members: Vec<&str> = text.lines().filter(|l| l.starts_with(&wc.app_id)).collect();
    assert_eq!(members.len(), 2, "two members:\n{text}");
    for topic in [wc.input.clone(), wc.repartition()] {
        let mut owners: BTreeMap<i32, usize> = BTreeMap::new();
        for m in &members {
            for p in partitions_of(m, &topic) {
                *owners.entry(p).or_default() += 1;
            }
        }
        assert_eq!(
            owners,
            BTreeMap::from([(0, 1), (1, 1)]),
            "each partition of {topic} on one member:\n{text}"
        );
    }
    a.close().unwrap();
    b.close().unwrap();
}

/// The partitions of `topic` in a `--members --verbose` row's CURRENT-ASSIGNMENT column, which
/// Kafka 4.3 prints as `topic:0,1;other:2`.
fn partitions_of(row: &str, topic: &str) -> Vec<i32> {
    row.split_whitespace()
        .flat_map(|column| column.split(';'))
        .filter_map(|entry| entry.strip_prefix(topic)?.strip_prefix(':'))
        .flat_map(|list| list.split(','))
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Two instances announcing `application.server`, one standby per task: both know both hosts
/// and the stores they hold, and for every word both say the same thing: its partition is the
/// one its count was written to (Kafka's default partitioner), its active host is the instance
/// running that counting task, and its standby host the other instance.
fn every_instance_knows_where_each_key_lives(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start_with(
        d1.path(),
        &[
            ("application.server", "a.example:7001"),
            ("num.standby.replicas", "1"),
        ],
    );
    let (mut b, _) = wc.start_with(
        d2.path(),
        &[
            ("application.server", "b.example:7002"),
            ("num.standby.replicas", "1"),
        ],
    );
    let input = lines(43, 300);
    produce_lines(bootstrap, &wc.input, &input);
    let expected = expected_counts(&input);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    let host_of_task = |p: i32| {
        let t = TaskId {
            subtopology: 1,
            partition: p,
        };
        if ids(a.tasks()).contains(&t) {
            ("a.example".to_string(), 7001)
        } else {
            ("b.example".to_string(), 7002)
        }
    };
    wait_until(
        "both instances to see both hosts, each running a counting task",
        Duration::from_secs(60),
        || {
            [&a, &b].iter().all(|app| {
                let all = app.metadata_for_all_clients();
                all.len() == 2
                    && all
                        .iter()
                        .all(|m| m.state_stores.contains(wordcount::STORE))
                    && app.streams_metadata_for_store(wordcount::STORE).len() == 2
            })
        },
    );
    let landed = partitions_of_keys(bootstrap, &wc.output, 2);
    assert_eq!(landed.len(), expected.len());
    for (word, partition) in &landed {
        let from_a = a
            .query_metadata_for_key(wordcount::STORE, word, &*Serdes::string())
            .unwrap()
            .unwrap();
        let from_b = b
            .query_metadata_for_key(wordcount::STORE, word, &*Serdes::string())
            .unwrap()
            .unwrap();
        assert_eq!(from_a, from_b, "{word}");
        assert_eq!(from_a.partition, *partition, "{word}");
        let active = host_of_task(*partition);
        assert_eq!(from_a.active_host.as_ref(), Some(&active), "{word}");
        assert_eq!(from_a.standby_hosts.len(), 1, "{word}");
        assert_ne!(from_a.standby_hosts[0], active, "{word}");
    }
    assert!(a
        .query_metadata_for_key("no-such-store", &"x".to_string(), &*Serdes::string())
        .unwrap()
        .is_none());
    a.close().unwrap();
    b.close().unwrap();
}

/// Per key of `topic` (string keys), the partition it was written to.
fn partitions_of_keys(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<String, i32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "partitions-of-keys")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = BTreeMap::new();
    let mut at_end = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions as usize {
        assert!(Instant::now() < deadline, "reading {topic} to its end");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                use rdkafka::Message;
                let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
                if let Some(p) = out.insert(key.clone(), m.partition()) {
                    assert_eq!(p, m.partition(), "{key} written to two partitions");
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            _ => {}
        }
    }
    out
}

/// Forwards every record; the first `stall` record of the whole test blocks its thread until
/// the test releases it (as user code stuck on an external call would).
struct Stall {
    here: Arc<AtomicBool>,
    once: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
}

impl Processor for Stall {
    type KIn = String;
    type VIn = String;
    type KOut = String;
    type VOut = String;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        r: Record<String, String>,
    ) -> streams::Result<()> {
        if r.value == "stall" && !self.once.swap(true, Ordering::SeqCst) {
            self.here.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(120);
            while !self.release.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.here.store(false, Ordering::SeqCst);
        }
        ctx.forward(r)
    }
}

/// A stream thread stuck in user code longer than `max.poll.interval.ms` must not keep its
/// tasks: its instance leaves the group, the other instance takes every task over while it is
/// still stuck, and once unstuck it closes its tasks without committing and rejoins. Every
/// record reaches the output (at least once).
fn a_stalled_stream_thread_leaves_the_group_and_its_tasks_move(bootstrap: &str) {
    let (input, output) = (unique("stall-in"), unique("stall-out"));
    testing::create_topic(bootstrap, &input, 2).unwrap();
    testing::create_topic(bootstrap, &output, 2).unwrap();
    let app_id = unique("stall");
    let once = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let start = |dir: &std::path::Path, here: &Arc<AtomicBool>| {
        let mut t = Topology::new();
        t.add_source("in", &[input.as_str()], Serdes::string(), Serdes::string())
            .unwrap();
        let (here, once, release) = (here.clone(), once.clone(), release.clone());
        t.add_processor(
            "stall",
            move |_| {
                Ok(Stall {
                    here: here.clone(),
                    once: once.clone(),
                    release: release.clone(),
                })
            },
            &["in"],
        )
        .unwrap();
        t.add_sink(
            "out",
            &output,
            Serdes::string(),
            Serdes::string(),
            &["stall"],
        )
        .unwrap();
        let config = StreamsConfig::new(&app_id, bootstrap)
            .set("state.dir", dir.to_str().unwrap())
            .set("commit.interval.ms", "200")
            .set("consumer.session.timeout.ms", "10000")
            .set("consumer.heartbeat.interval.ms", "500")
            .set("consumer.max.poll.interval.ms", "10000");
        let mut app = KafkaStreams::new(t, config).unwrap();
        app.start().unwrap();
        app
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (here_a, here_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut a = start(d1.path(), &here_a);
    let mut b = start(d2.path(), &here_b);
    wait_until(
        "both instances to own a task",
        Duration::from_secs(90),
        || ids(a.tasks()).len() == 1 && ids(b.tasks()).len() == 1,
    );
    let values: Vec<String> = std::iter::once("stall".to_string())
        .chain((0..100).map(|i| format!("v{i}")))
        .collect();
    let send = |vals: &[String]| {
        testing::produce(
            bootstrap,
            &input,
            vals.iter().map(|v| {
                (
                    Some(v.clone().into_bytes()),
                    Some(v.clone().into_bytes()),
                    None,
                )
            }),
        )
        .unwrap();
    };
    send(&values);
    wait_until("a thread to stall", Duration::from_secs(60), || {
        here_a.load(Ordering::SeqCst) || here_b.load(Ordering::SeqCst)
    });
    let (stuck, other, flag) = if here_a.load(Ordering::SeqCst) {
        (&a, &b, &here_a)
    } else {
        (&b, &a, &here_b)
    };
    wait_until(
        "the other instance to run both tasks",
        Duration::from_secs(60),
        || ids(other.tasks()).len() == 2,
    );
    assert!(
        flag.load(Ordering::SeqCst),
        "still stuck when its tasks moved"
    );
    let more: Vec<String> = (100..200).map(|i| format!("v{i}")).collect();
    send(&more);
    release.store(true, Ordering::SeqCst);
    wait_until(
        "the unstuck instance to rejoin and run a task again",
        Duration::from_secs(90),
        || ids(stuck.tasks()).len() == 1 && ids(other.tasks()).len() == 1,
    );
    let all: BTreeSet<String> = values.iter().chain(&more).cloned().collect();
    let seen = testing::read_records(
        bootstrap,
        &output,
        Serdes::string(),
        Serdes::string(),
        Duration::from_secs(60),
        |rs| all.iter().all(|v| rs.iter().any(|(_, x)| x == v)),
    )
    .unwrap();
    let seen: BTreeSet<String> = seen.into_iter().map(|(_, v)| v).collect();
    assert_eq!(seen, all);
    a.close().unwrap();
    b.close().unwrap();
}

/// Warm-ups: a newcomer without state does not take a counting task at once (it is further
/// behind than `acceptable.recovery.lag`); it gets a warm-up replica, which reads the
/// changelog, and at a later rebalance (at the latest the probing one,
/// `probing.rebalance.interval.ms`, at its minimum of one minute) the task moves to it,
/// committed by its old owner first, and the newcomer restores at most the tail its warm-up
/// had not read. Counts stay exact.
fn a_stateful_task_moves_to_a_newcomer_only_through_a_caught_up_warm_up(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let extra = [
        ("acceptable.recovery.lag", "100"),
        ("probing.rebalance.interval.ms", "60000"),
    ];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start_with(d1.path(), &extra);
    let first = lines(71, 2_000);
    produce_lines(bootstrap, &wc.input, &first);
    let expected = expected_counts(&first);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);

    let (mut b, restored_b) = wc.start_with(d2.path(), &extra);
    let counting = |app: &KafkaStreams| -> BTreeSet<TaskId> {
        ids(app.tasks())
            .into_iter()
            .filter(|t| t.subtopology == 1)
            .collect()
    };
    // The warm-up may catch up before the follow-up rebalance of the join (then the task moves
    // then) or only by the probing rebalance a minute later; either way it moves only once
    // caught up, which the restore listener shows: a warm-up's reading is not a restoration,
    // the move's tail restore is.
    wait_until(
        "a counting task to move to the newcomer",
        Duration::from_secs(150),
        || !counting(&b).is_empty(),
    );
    let moved = counting(&b);
    assert!(
        counting(&a).is_disjoint(&moved),
        "a: {:?}, b: {:?}",
        a.tasks(),
        b.tasks()
    );
    assert!(
        restored_b.total() <= 100,
        "the warm-up had all but a tail: {} records restored at the move",
        restored_b.total()
    );
    // Everything the newcomer ever read (warm-up and move) is exactly the moved task's
    // changelog partition: no input arrived meanwhile.
    let [moved_task] = moved.iter().copied().collect::<Vec<_>>()[..] else {
        panic!("one counting task moves: {moved:?}");
    };
    let probe: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let (low, high) = probe
        .fetch_watermarks(
            &wc.changelog(),
            moved_task.partition,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(b.metrics().restored, (high - low) as u64);
    let second = lines(72, 500);
    produce_lines(bootstrap, &wc.input, &second);
    let expected = expected_counts(first.iter().chain(&second));
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    a.close().unwrap();
    b.close().unwrap();
}

/// Static membership (`group.instance.id`): an instance that stops and starts again within
/// `session.timeout.ms` does not leave the group, and gets its own tasks back without a
/// rebalance: the other instance never enters Rebalancing. Counts stay exact.
fn a_static_member_restarting_within_its_session_gets_its_tasks_back_without_a_rebalance(
    bootstrap: &str,
) {
    let wc = WordCount::new(bootstrap, 2);
    let props = |instance: &'static str| {
        [
            ("group.instance.id", instance),
            // Long enough that only a rebalance, not the session's end, could move the tasks.
            ("consumer.session.timeout.ms", "60000"),
        ]
    };
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Both start before any input: no instance has state, so no warm-ups and no probing.
    let (mut a, _) = wc.start_with(d1.path(), &props("a"));
    let (mut b, _) = wc.start_with(d2.path(), &props("b"));
    wait_until(
        "the four tasks to be spread over both instances",
        Duration::from_secs(90),
        || {
            let (ta, tb) = (ids(a.tasks()), ids(b.tasks()));
            ta.len() == 2 && tb.len() == 2 && ta.is_disjoint(&tb)
        },
    );
    let first = lines(44, 1_000);
    produce_lines(bootstrap, &wc.input, &first);
    let expected = expected_counts(&first);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    let a_tasks = ids(a.tasks());

    let rebalances = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = rebalances.clone();
    b.set_state_listener(move |new, old| {
        if new == streams::State::Rebalancing {
            seen.lock().unwrap().push(format!("{old:?} -> {new:?}"));
        }
    });
    let stopped = Instant::now();
    a.close().expect("graceful stop");
    let (mut a, _) = wc.start_with(d1.path(), &props("a"));
    wait_until(
        "the restarted instance to run its own tasks again",
        Duration::from_secs(60),
        || a.state() == streams::State::Running && ids(a.tasks()) == a_tasks,
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(60),
        "back within the session timeout"
    );
    let second = lines(45, 1_000);
    produce_lines(bootstrap, &wc.input, &second);
    let expected = expected_counts(first.iter().chain(&second));
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    assert!(
        rebalances.lock().unwrap().is_empty(),
        "the other instance rebalanced: {:?}",
        rebalances.lock().unwrap()
    );
    a.close().unwrap();
    b.close().unwrap();
}

/// Standbys read their changelogs continuously, not only when their thread commits: with a
/// commit interval of two minutes, the standby of each counting task has read the whole
/// changelog (and reports no lag) long before the first commit.
fn standbys_follow_the_changelog_between_commits(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let extra = [
        ("num.standby.replicas", "1"),
        ("commit.interval.ms", "120000"),
    ];
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start_with(d1.path(), &extra);
    let (mut b, _) = wc.start_with(d2.path(), &extra);
    wait_until(
        "both instances to run tasks and keep standbys",
        Duration::from_secs(90),
        || {
            [&a, &b]
                .iter()
                .all(|i| !ids(i.tasks()).is_empty() && !ids(i.standby_tasks()).is_empty())
        },
    );
    let started = Instant::now();
    let input = lines(46, 2_000);
    produce_lines(bootstrap, &wc.input, &input);
    let expected = expected_counts(&input);
    assert_eq!(read_counts(bootstrap, &wc.output, &expected), expected);
    let changelog = testing::record_count(bootstrap, &wc.changelog()).unwrap() as u64;
    wait_until(
        "the standbys to have read the whole changelog",
        Duration::from_secs(60),
        || a.metrics().restored + b.metrics().restored >= changelog,
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "within the first commit interval"
    );
    a.close().unwrap();
    b.close().unwrap();
}
