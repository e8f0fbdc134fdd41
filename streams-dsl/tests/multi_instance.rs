//! The multi-instance test driver with a DSL topology: word count over four partitions while
//! instances start, stop and crash between batches of input. Graceful changes keep the counts
//! exact, equal to a single-instance run's; a crash costs duplicates only (at-least-once), and
//! with a standby the crashed instance's counting tasks move without a full restore.

use std::collections::HashMap;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::{MultiInstanceTestDriver, StreamsConfig, TaskId, TopologyTestDriver};
use streams_dsl::{Materialized, StreamsBuilder};

fn wordcount() -> StreamsBuilder {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("lines")
        .flat_map_values(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_store("counts"))
        .to_stream()
        .to("counts-out");
    b
}

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn counts() -> SerdeRef<Option<i64>> {
    Serdes::nullable(Serdes::i64())
}

/// Batch `n` of input: 50 lines over a small vocabulary.
fn batch(n: usize) -> Vec<(String, String)> {
    let words = [
        "kafka", "streams", "rust", "state", "task", "store", "join", "window",
    ];
    (0..50)
        .map(|i| {
            let line: Vec<&str> = (0..5)
                .map(|j| words[(n * 7 + i * 3 + j * 5) % words.len()])
                .collect();
            (format!("line-{n}-{i}"), line.join(" "))
        })
        .collect()
}

/// The last count per word on the output topic.
fn latest(out: Vec<(String, Option<i64>)>) -> HashMap<String, i64> {
    out.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// What one instance computes from the same batches: the reference.
fn reference(batches: usize) -> HashMap<String, i64> {
    let driver = TopologyTestDriver::new(
        wordcount().build().unwrap(),
        StreamsConfig::new("wc", "unused:9092"),
    )
    .unwrap();
    let input = driver.create_input_topic("lines", s(), s());
    let output = driver.create_output_topic("counts-out", s(), counts());
    for n in 0..batches {
        for (k, v) in batch(n) {
            input.pipe_input(k, v);
        }
    }
    output
        .read_key_values_to_map()
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

fn pipe(d: &mut MultiInstanceTestDriver, n: usize) {
    for (i, (k, v)) in batch(n).into_iter().enumerate() {
        d.pipe_input("lines", &s(), &s(), k, v, (n * 100 + i) as i64)
            .unwrap();
    }
}

fn driver(config: StreamsConfig) -> MultiInstanceTestDriver {
    MultiInstanceTestDriver::new(wordcount().build().unwrap(), config, 4).unwrap()
}

#[test]
fn scaling_one_two_three_two_one_counts_exactly_like_one_instance() {
    let mut d = driver(StreamsConfig::new("wc", "unused:9092"));
    let a = d.start_instance().unwrap();
    pipe(&mut d, 0);
    d.run_until_idle().unwrap();
    let b = d.start_instance().unwrap();
    pipe(&mut d, 1);
    // Half processed, not committed, when the third instance joins: the tasks that move are
    // committed by their old owner before they go.
    d.process().unwrap();
    let c = d.start_instance().unwrap();
    pipe(&mut d, 2);
    d.run_until_idle().unwrap();
    let tasks = d.tasks();
    assert_eq!(tasks.values().map(Vec::len).sum::<usize>(), 8, "{tasks:?}");
    assert!(tasks.values().all(|t| !t.is_empty()), "{tasks:?}");
    d.stop_instance(b).unwrap();
    pipe(&mut d, 3);
    d.process().unwrap();
    d.stop_instance(a).unwrap();
    pipe(&mut d, 4);
    d.run_until_idle().unwrap();
    assert_eq!(d.tasks()[&c].len(), 8);
    let out = latest(d.read_output("counts-out", &s(), &counts()).unwrap());
    assert_eq!(out, reference(5));
}

#[test]
fn a_crash_costs_duplicates_only_and_a_standby_takes_over_without_a_full_restore() {
    let mut d = driver(StreamsConfig::new("wc", "unused:9092").set("num.standby.replicas", "1"));
    let a = d.start_instance().unwrap();
    let b = d.start_instance().unwrap();
    for n in 0..4 {
        pipe(&mut d, n);
        d.run_until_idle().unwrap();
    }
    let counting = |t: &Vec<TaskId>| t.iter().filter(|t| t.subtopology == 1).count();
    assert_eq!(counting(&d.tasks()[&a]) + counting(&d.tasks()[&b]), 4);
    assert_eq!(
        counting(&d.standby_tasks()[&a]) + counting(&d.standby_tasks()[&b]),
        4,
        "each counting task has a standby on the other instance"
    );
    // Processed but not committed when `a` dies: its successor reads those records again.
    pipe(&mut d, 4);
    d.process().unwrap();
    let restored_before = d.restored()[&b];
    d.crash_instance(a).unwrap();
    assert_eq!(d.tasks()[&b].len(), 8);
    let restored_at_takeover = d.restored()[&b] - restored_before;
    d.run_until_idle().unwrap();

    let out = latest(d.read_output("counts-out", &s(), &counts()).unwrap());
    let expected = reference(5);
    assert_eq!(
        out.keys().collect::<std::collections::BTreeSet<_>>(),
        expected.keys().collect()
    );
    for (w, n) in &expected {
        assert!(out[w] >= *n, "{w}: {} < {n}", out[w]);
    }
    assert_ne!(
        out, expected,
        "lines the crashed instance processed after its last commit were counted twice"
    );
    // The standbys had every changelog record up to the last commit: at most the updates of
    // the uncommitted batch (250 words) were restored at the takeover, not four batches' worth.
    assert!(
        restored_at_takeover <= 250,
        "{restored_at_takeover} restored at the takeover"
    );
}
