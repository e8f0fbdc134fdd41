//! `KTable::suppress(Suppressed::until_time_limit(..))`: at most one update per key per wait of
//! stream time, the wait counted from the key's first buffered update; late records, a zero wait
//! and a full buffer.

use std::time::Duration;

use streams_core::serde::Serdes;
use streams_dsl::suppress::{BufferConfig, Suppressed};
use streams_dsl::StreamsBuilder;

use super::{driver, s};

fn limited(wait: Duration, buffer: BufferConfig) -> streams_core::TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.table::<String, String>("state")
        .suppress(Suppressed::until_time_limit(wait, buffer))
        .to_stream()
        .to("limited");
    driver(b)
}

/// The key, value and timestamp of each output record.
fn read(d: &streams_core::TopologyTestDriver) -> Vec<(String, Option<String>, i64)> {
    d.create_output_topic("limited", s(), Serdes::nullable(s()))
        .read_records_to_list()
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect()
}

fn out(k: &str, v: Option<&str>, ts: i64) -> (String, Option<String>, i64) {
    (k.to_string(), v.map(str::to_string), ts)
}

#[test]
fn each_key_waits_from_its_first_buffered_update_and_emits_its_latest() {
    let d = limited(Duration::from_secs(10), BufferConfig::unbounded());
    let input = d.create_input_topic("state", s(), s());
    input.pipe_input_at("a".into(), "a1".into(), 0);
    input.pipe_input_at("a".into(), "a2".into(), 3_000);
    input.pipe_input_at("b".into(), "b1".into(), 5_000);
    // A later update does not restart a's wait.
    input.pipe_input_at("a".into(), "a3".into(), 9_000);
    assert_eq!(read(&d), vec![]);
    // Stream time 10 s: a's wait (from 0) is over; b's (from 5 s) is not.
    input.pipe_input_at("c".into(), "c1".into(), 10_000);
    assert_eq!(read(&d), vec![out("a", Some("a3"), 9_000)]);
    // A new update of a starts a new wait; b's ends at 15 s.
    input.pipe_input_at("a".into(), "a4".into(), 12_000);
    input.pipe_input_at("d".into(), "d1".into(), 15_000);
    assert_eq!(read(&d), vec![out("b", Some("b1"), 5_000)]);
    // A late record whose wait is already over passes at once; a delete is emitted too.
    input.pipe_input_at("e".into(), "e1".into(), 1_000);
    assert_eq!(read(&d), vec![out("e", Some("e1"), 1_000)]);
    input.pipe_tombstone("c".into(), 16_000).unwrap();
    input.pipe_input_at("f".into(), "f1".into(), 26_000);
    assert_eq!(
        read(&d),
        vec![
            out("c", None, 16_000),
            out("a", Some("a4"), 12_000),
            out("d", Some("d1"), 15_000),
        ]
    );
}

#[test]
fn a_zero_wait_passes_every_update() {
    let d = limited(Duration::ZERO, BufferConfig::unbounded());
    let input = d.create_input_topic("state", s(), s());
    input.pipe_input_at("a".into(), "a1".into(), 0);
    input.pipe_input_at("a".into(), "a2".into(), 0);
    input.pipe_input_at("b".into(), "b1".into(), 5);
    assert_eq!(
        read(&d),
        vec![
            out("a", Some("a1"), 0),
            out("a", Some("a2"), 0),
            out("b", Some("b1"), 5)
        ]
    );
}

#[test]
fn a_full_buffer_emits_its_oldest_key_early_or_fails() {
    let d = limited(Duration::from_secs(60), BufferConfig::max_records(2));
    let input = d.create_input_topic("state", s(), s());
    input.pipe_input_at("a".into(), "a1".into(), 0);
    input.pipe_input_at("b".into(), "b1".into(), 1_000);
    input.pipe_input_at("a".into(), "a2".into(), 2_000);
    assert_eq!(read(&d), vec![]);
    input.pipe_input_at("c".into(), "c1".into(), 3_000);
    assert_eq!(read(&d), vec![out("a", Some("a2"), 2_000)]);

    let d = limited(
        Duration::from_secs(60),
        BufferConfig::max_records(1).shut_down_when_full(),
    );
    let input = d.create_input_topic("state", s(), s());
    input.pipe_input_at("a".into(), "a1".into(), 0);
    let err = input
        .try_pipe_input("b".into(), "b1".into(), 1_000)
        .unwrap_err()
        .to_string();
    assert!(err.contains("suppression buffer is full"), "{err}");
}
