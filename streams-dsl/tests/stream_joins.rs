//! Windowed KStream-KStream joins through the TopologyTestDriver: inner, left and outer, and when
//! unmatched results come out.

use std::time::Duration;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::{StreamsConfig, TestInputTopic, TestOutputTopic, TopologyTestDriver};
use streams_dsl::stream_join::JoinWindows;
use streams_dsl::StreamsBuilder;

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// A 5 s window with 1 s grace.
fn windows() -> JoinWindows {
    JoinWindows::of_time_difference_and_grace(Duration::from_secs(5), Duration::from_secs(1))
}

type Topics = (
    TopologyTestDriver,
    TestInputTopic<String, String>,
    TestInputTopic<String, String>,
    TestOutputTopic<String, String>,
);

fn run(build: impl FnOnce(&StreamsBuilder)) -> Topics {
    let b = StreamsBuilder::new();
    build(&b);
    let d = TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app", "unused:9092"))
        .unwrap();
    let left = d.create_input_topic("left", s(), s());
    let right = d.create_input_topic("right", s(), s());
    let out = d.create_output_topic("out", s(), s());
    (d, left, right, out)
}

fn at(topic: &TestInputTopic<String, String>, key: &str, value: &str, ts: i64) {
    topic.pipe_input_at(key.to_string(), value.to_string(), ts);
}

fn records(out: &TestOutputTopic<String, String>) -> Vec<(String, String, i64)> {
    out.read_records_to_list()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

fn r(k: &str, v: &str, ts: i64) -> (String, String, i64) {
    (k.to_string(), v.to_string(), ts)
}

#[test]
fn inner_join_pairs_records_within_the_window() {
    let (d, left, right, out) = run(|b| {
        let l = b.stream::<String, String>("left");
        let rt = b.stream::<String, String>("right");
        l.join_windowed(&rt, |a, b| format!("{a}+{b}"), windows())
            .to("out");
    });
    at(&left, "a", "L1", 1_000);
    at(&right, "a", "R1", 3_000);
    at(&right, "a", "R2", 7_000); // 6 s after L1: outside the window
    at(&left, "a", "L2", 8_000); // pairs with R1 (5 s before) and R2
    at(&right, "b", "R3", 8_000); // no partner: nothing for an inner join
    assert_eq!(
        records(&out),
        vec![
            r("a", "L1+R1", 3_000),
            r("a", "L2+R1", 8_000),
            r("a", "L2+R2", 8_000),
        ]
    );
    // Stream time 8 s; a left record at 1.5 s is later than its window (5 s) + grace (1 s).
    at(&left, "a", "late", 1_500);
    assert!(out.is_empty());
    assert_eq!(d.metrics().dropped, 1);
}

#[test]
fn left_join_emits_unmatched_records_only_after_their_window_closes() {
    let (_d, left, right, out) = run(|b| {
        let l = b.stream::<String, String>("left");
        let rt = b.stream::<String, String>("right");
        l.left_join_windowed(
            &rt,
            |a, b| format!("{a}+{}", b.map_or("null", String::as_str)),
            windows(),
        )
        .to("out");
    });
    at(&left, "a", "L1", 1_000);
    at(&left, "b", "L2", 2_000);
    at(&right, "b", "R1", 4_000);
    assert_eq!(records(&out), vec![r("b", "L2+R1", 4_000)]);
    // L1's window closes when stream time passes 1 s + 5 s + 1 s.
    at(&right, "z", "tick", 7_000);
    assert!(out.is_empty(), "stream time 7 s: L1 could still be joined");
    at(&right, "z", "tick", 7_001);
    assert_eq!(records(&out), vec![r("a", "L1+null", 1_000)]);
    // Right records without a partner give nothing in a left join; L2 was matched.
    at(&right, "z", "tick", 60_000);
    assert!(out.is_empty());
}

#[test]
fn outer_join_emits_both_sides_unmatched_records() {
    let (_d, left, right, out) = run(|b| {
        let l = b.stream::<String, String>("left");
        let rt = b.stream::<String, String>("right");
        l.outer_join_windowed(
            &rt,
            |a, b| {
                format!(
                    "{}+{}",
                    a.map_or("null", String::as_str),
                    b.map_or("null", String::as_str)
                )
            },
            windows(),
        )
        .to("out");
    });
    at(&right, "a", "R1", 1_000);
    at(&left, "b", "L1", 2_000);
    at(&left, "c", "L2", 3_000);
    at(&right, "c", "R2", 3_500);
    assert_eq!(records(&out), vec![r("c", "L2+R2", 3_500)]);
    at(&left, "z", "tick", 20_000);
    let got = records(&out);
    assert!(got.contains(&r("a", "null+R1", 1_000)), "{got:?}");
    assert!(got.contains(&r("b", "L1+null", 2_000)), "{got:?}");
    assert_eq!(got.len(), 2, "{got:?}");
}

#[test]
fn asymmetric_windows_bound_each_direction() {
    let (_d, left, right, out) = run(|b| {
        let l = b.stream::<String, String>("left");
        let rt = b.stream::<String, String>("right");
        // A right record may be at most 0 s before and 10 s after the left one.
        let w = JoinWindows::of_time_difference_with_no_grace(Duration::ZERO)
            .after(Duration::from_secs(10));
        l.join_windowed(&rt, |a, b| format!("{a}+{b}"), w).to("out");
    });
    at(&left, "a", "L1", 10_000);
    at(&right, "a", "R-before", 9_000);
    at(&right, "a", "R-after", 19_000);
    assert_eq!(records(&out), vec![r("a", "L1+R-after", 19_000)]);
}
