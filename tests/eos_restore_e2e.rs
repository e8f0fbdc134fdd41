//! Exactly-once without Kafka Streams' full restore after a crash, on both brokers: an instance
//! whose count store holds 100,000 keys is killed with SIGKILL and restarted on the same state
//! directory; the restart restores at most the last transaction's records from the changelog
//! (Kafka Streams wipes the store and restores all of them), and counting goes on from the
//! right state.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use streams::{KafkaStreams, StreamsBuilder, StreamsConfig};
use streams_testkit as testing;

on_both_brokers!(
    a_killed_exactly_once_instance_restores_at_most_its_last_interval,
    store_writes_past_statestore_uncommitted_max_bytes_commit_early,
);

/// Distinct words, one per line: the count store's keys and its changelog's records.
const KEYS: usize = 100_000;

fn spawn(wc: &WordCount, state_dir: &Path, log: &Path) -> Child {
    spawn_wordcount_eos(
        wc,
        state_dir,
        "warn,streams_core::runtime=info",
        std::fs::File::create(log).unwrap(),
    )
}

/// The log without terminal colour codes.
fn read_log(path: &Path) -> String {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... m
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Records restored into the count store, as the restore log lines say.
fn restored_counts(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(" restored ") || l.ends_with(" restored"))
        .filter(|l| l.contains("store=counts-store"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("restored="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

fn a_killed_exactly_once_instance_restores_at_most_its_last_interval(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let input: Vec<String> = (0..KEYS).map(|i| format!("w{i}")).collect();
    produce_lines(bootstrap, &wc.input, &input);

    let first_log = dir.path().join("first.log");
    let mut app = spawn(&wc, &state, &first_log);
    let counted = read_committed_updates(bootstrap, &wc.output, Duration::from_secs(300), |u| {
        u.len() == KEYS
    });
    assert_eq!(counted.len(), KEYS);
    // One more word, in a transaction of its own: once its count is committed, every earlier
    // transaction's writes are in the store (the thread applies them before it processes
    // anything else), and the only changelog record a kill can leave to restore is its own.
    produce_lines(bootstrap, &wc.input, &["marker".to_string()]);
    read_committed_updates(bootstrap, &wc.output, Duration::from_secs(60), |u| {
        u.contains_key("marker")
    });
    app.kill().expect("kill -9");
    app.wait().unwrap();

    let second_log = dir.path().join("second.log");
    let mut app = spawn(&wc, &state, &second_log);
    // Both counting tasks (1_0, 1_1) restored and processing: a positive event, after which
    // no restoration of theirs can still be logged.
    wait_until(
        "the restarted instance's counting tasks to process",
        Duration::from_secs(120),
        || {
            let log = read_log(&second_log);
            ["task=1_0", "task=1_1"].iter().all(|t| {
                log.lines()
                    .any(|l| l.contains("task restored: processing") && l.contains(t))
            })
        },
    );
    let restored = restored_counts(&read_log(&second_log));
    println!("restored after kill -9: {restored} of the {KEYS} records in the changelog");
    // At most the last transaction's one record, if the kill came between its commit and the
    // store taking its writes.
    assert!(
        restored <= 1,
        "the restart restored {restored} of the {KEYS} changelog records, where at most the \
         last transaction's one may need restoring"
    );

    // The state is right: ten words seen once before the kill now count 2, once each.
    let again: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    produce_lines(bootstrap, &wc.input, &again);
    let mut expected: std::collections::HashMap<String, i64> =
        input.iter().map(|w| (w.clone(), 1)).collect();
    for w in &again {
        expected.insert(w.clone(), 2);
    }
    expected.insert("marker".to_string(), 1);
    let updates = read_committed_updates(bootstrap, &wc.output, Duration::from_secs(120), |u| {
        again
            .iter()
            .all(|w| u.get(w).and_then(|v| v.last()).is_some_and(|l| *l >= 2))
    });
    assert_each_update_once(&updates, &expected);

    let pid = app.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(app.wait().unwrap().success(), "exits cleanly after SIGTERM");
}

/// `statestore.uncommitted.max.bytes`: a count by key under exactly-once with a commit
/// interval of ten minutes and no record cache, fed 20,000 distinct keys (about 1.4 MB of held
/// writes against a bound of 100,000 bytes). Half of its output is committed within two
/// minutes: only commits the bound forced can have made it visible. The rest (at most the
/// bound's worth stays held) is committed by the close, once everything is processed.
fn store_writes_past_statestore_uncommitted_max_bytes_commit_early(bootstrap: &str) {
    const KEYS: usize = 20_000;
    let (input, output) = (unique("keys"), unique("key-counts"));
    testing::create_topic(bootstrap, &input, 2).unwrap();
    testing::create_topic(bootstrap, &output, 2).unwrap();
    let b = StreamsBuilder::new();
    b.stream::<String, String>(&input)
        .group_by_key()
        .count()
        .to_stream()
        .to(&output);
    let dir = tempfile::tempdir().unwrap();
    let config = StreamsConfig::new(unique("early-commit"), bootstrap)
        .set("state.dir", dir.path().to_str().unwrap())
        .set("processing.guarantee", "exactly_once_v2")
        .set("commit.interval.ms", "600000")
        .set("statestore.cache.max.bytes", "0")
        .set("statestore.uncommitted.max.bytes", "100000");
    let mut app = KafkaStreams::new(b.build().unwrap(), config).unwrap();
    app.start().unwrap();
    testing::produce(
        bootstrap,
        &input,
        (0..KEYS).map(|i| {
            (
                Some(format!("u{i}").into_bytes()),
                Some(b"x".to_vec()),
                None,
            )
        }),
    )
    .unwrap();
    read_committed_updates(bootstrap, &output, Duration::from_secs(120), |u| {
        u.len() >= KEYS / 2
    });
    let commits = app.metrics().commits;
    assert!(commits >= 2, "{commits} commits");
    wait_until("every key processed", Duration::from_secs(120), || {
        app.metrics().processed == KEYS as u64
    });
    app.close().unwrap();
    let counts = read_committed_updates(bootstrap, &output, Duration::from_secs(60), |u| {
        u.len() == KEYS
    });
    let expected = (0..KEYS).map(|i| (format!("u{i}"), 1)).collect();
    assert_each_update_once(&counts, &expected);
}
