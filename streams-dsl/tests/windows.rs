//! Windowed aggregations and suppression, through the TopologyTestDriver: tumbling, hopping,
//! sliding and session windows, late records, emit-on-close and final results.

use std::time::Duration;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::window::{SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};
use streams_core::{StreamsConfig, TopologyTestDriver, WindowStore};
use streams_dsl::suppress::{BufferConfig, Suppressed};
use streams_dsl::{EmitStrategy, Materialized, StreamsBuilder};

fn driver(b: StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(
        b.build().expect("topology builds"),
        StreamsConfig::new("app", "unused:9092"),
    )
    .expect("driver starts")
}

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// (key, window start, window end, count) of each output record, in order.
fn windowed_counts(
    out: &streams_core::TestOutputTopic<Windowed<String>, Option<i64>>,
) -> Vec<(String, i64, i64, Option<i64>)> {
    out.read_key_values_to_list()
        .into_iter()
        .map(|(k, v)| (k.key, k.window.start, k.window.end, v))
        .collect()
}

fn w(k: &str, start: i64, end: i64, v: Option<i64>) -> (String, i64, i64, Option<i64>) {
    (k.to_string(), start, end, v)
}

fn time_windowed_out(
    d: &TopologyTestDriver,
    size: i64,
) -> streams_core::TestOutputTopic<Windowed<String>, Option<i64>> {
    d.create_output_topic(
        "out",
        Serdes::time_windowed(s(), size),
        Serdes::nullable(Serdes::i64()),
    )
}

#[test]
fn tumbling_count_updates_each_window_and_drops_records_later_than_grace() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(secs(10), secs(5)))
        .count_with(Materialized::as_store("counts"))
        .to_stream()
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 1_000);
    input.pipe_input_at("a".into(), "x".into(), 9_999);
    input.pipe_input_at("b".into(), "x".into(), 12_000);
    // Out of order but within grace: window [0, 10s) closes at 15s of stream time.
    input.pipe_input_at("a".into(), "x".into(), 3_000);
    input.pipe_input_at("a".into(), "x".into(), 16_000); // stream time 16s
                                                         // Late: window [0, 10s) has closed.
    input.pipe_input_at("a".into(), "x".into(), 4_000);
    let out = time_windowed_out(&d, 10_000);
    assert_eq!(
        windowed_counts(&out),
        vec![
            w("a", 0, 10_000, Some(1)),
            w("a", 0, 10_000, Some(2)),
            w("b", 10_000, 20_000, Some(1)),
            w("a", 0, 10_000, Some(3)),
            w("a", 10_000, 20_000, Some(1)),
        ]
    );
    assert_eq!(
        d.metrics().dropped,
        1,
        "the late record is counted as dropped"
    );
    let store: WindowStore<String, i64> = d.get_store("counts").expect("window store");
    assert_eq!(store.fetch(&"a".into(), 0).unwrap(), Some(3));
    assert_eq!(
        store.fetch_range(&"a".into(), 0, 20_000).unwrap(),
        vec![(0, 3), (10_000, 1)]
    );
}

#[test]
fn hopping_windows_count_a_record_in_every_window_holding_it() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(secs(10)).advance_by(secs(5)))
        .count()
        .to_stream()
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 7_000);
    input.pipe_input_at("a".into(), "x".into(), 11_000);
    let out = time_windowed_out(&d, 10_000);
    assert_eq!(
        windowed_counts(&out),
        vec![
            w("a", 0, 10_000, Some(1)),
            w("a", 5_000, 15_000, Some(1)),
            w("a", 5_000, 15_000, Some(2)),
            w("a", 10_000, 20_000, Some(1)),
        ]
    );
}

#[test]
fn windowed_keys_are_kafka_streams_bytes() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(secs(60)))
        .count()
        .to_stream()
        .to("out");
    let d = driver(b);
    d.create_input_topic("in", s(), s())
        .pipe_input_at("k".into(), "x".into(), 61_000);
    let out = d.create_output_topic("out", Serdes::bytes(), Serdes::bytes());
    let (k, v) = out.read_key_value();
    let mut expected = b"k".to_vec();
    expected.extend_from_slice(&60_000i64.to_be_bytes());
    assert_eq!(k, expected);
    assert_eq!(v, 1i64.to_be_bytes().to_vec());
}

#[test]
fn emit_on_window_close_gives_one_final_result_per_window() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(secs(10), secs(2)))
        .emit_strategy(EmitStrategy::OnWindowClose)
        .count()
        .to_stream()
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    for ts in [1_000, 2_000, 9_000, 11_000] {
        input.pipe_input_at("a".into(), "x".into(), ts);
    }
    let out = time_windowed_out(&d, 10_000);
    assert!(out.is_empty(), "nothing closes before stream time 12s");
    input.pipe_input_at("b".into(), "x".into(), 12_000);
    assert_eq!(windowed_counts(&out), vec![w("a", 0, 10_000, Some(3))]);
    input.pipe_input_at("b".into(), "x".into(), 40_000);
    let mut rest = windowed_counts(&out);
    rest.sort();
    assert_eq!(
        rest,
        vec![
            w("a", 10_000, 20_000, Some(1)),
            w("b", 10_000, 20_000, Some(1))
        ]
    );
}

#[test]
fn suppress_until_window_closes_emits_final_counts_only() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(secs(10), secs(1)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    for (k, ts) in [
        ("a", 1_000),
        ("a", 5_000),
        ("b", 6_000),
        ("a", 10_500),
        ("b", 9_000),
    ] {
        input.pipe_input_at(k.into(), "x".into(), ts);
    }
    let out = time_windowed_out(&d, 10_000);
    assert!(out.is_empty(), "window [0, 10s) is open until 11s");
    input.pipe_input_at("c".into(), "x".into(), 11_000);
    let mut got = windowed_counts(&out);
    got.sort();
    assert_eq!(
        got,
        vec![w("a", 0, 10_000, Some(2)), w("b", 0, 10_000, Some(2))]
    );
    // A record for the closed window is dropped upstream and changes nothing.
    input.pipe_input_at("a".into(), "x".into(), 2_000);
    input.pipe_input_at("c".into(), "x".into(), 25_000);
    let mut got = windowed_counts(&out);
    got.sort();
    assert_eq!(
        got,
        vec![
            w("a", 10_000, 20_000, Some(1)),
            w("c", 10_000, 20_000, Some(1))
        ]
    );
    assert_eq!(d.metrics().dropped, 1);
}

#[test]
fn suppress_buffer_full_emits_early_or_fails_as_chosen() {
    let build = |buffer: BufferConfig| {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("in")
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(secs(10)))
            .count()
            .suppress(Suppressed::until_window_closes(buffer))
            .to_stream()
            .to("out");
        driver(b)
    };
    let d = build(BufferConfig::max_records(1));
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 1_000);
    input.pipe_input_at("b".into(), "x".into(), 1_000);
    let out = time_windowed_out(&d, 10_000);
    assert_eq!(
        windowed_counts(&out),
        vec![w("a", 0, 10_000, Some(1))],
        "emitted early"
    );

    let d = build(BufferConfig::max_records(1).shut_down_when_full());
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 1_000);
    let err = input
        .try_pipe_input("b".into(), "x".into(), 1_000)
        .expect_err("a full strict buffer fails");
    assert!(err.to_string().contains("full"), "{err}");
}

#[test]
fn suppress_with_wall_clock_close_emits_when_input_stops() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(secs(10)))
        .count()
        .suppress(
            Suppressed::until_window_closes(BufferConfig::unbounded())
                .with_wall_clock_close(secs(5)),
        )
        .to_stream()
        .to("out");
    let d = TopologyTestDriver::with_start_time(
        b.build().unwrap(),
        StreamsConfig::new("app", "unused:9092"),
        0,
    )
    .unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 1_000);
    let out = time_windowed_out(&d, 10_000);
    d.advance_wall_clock_time(secs(10)).unwrap();
    assert!(
        out.is_empty(),
        "10s of wall clock: window end + 5s not reached"
    );
    d.advance_wall_clock_time(secs(6)).unwrap();
    assert_eq!(windowed_counts(&out), vec![w("a", 0, 10_000, Some(1))]);
}

#[test]
fn session_windows_merge_and_retract_merged_sessions() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            secs(5),
            secs(0),
        ))
        .count()
        .to_stream()
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 1_000);
    input.pipe_input_at("a".into(), "x".into(), 10_000); // a new session (gap 5s)
    input.pipe_input_at("a".into(), "x".into(), 5_500); // bridges both
    let out = d.create_output_topic(
        "out",
        Serdes::session_windowed(s()),
        Serdes::nullable(Serdes::i64()),
    );
    let got: Vec<_> = out
        .read_key_values_to_list()
        .into_iter()
        .map(|(k, v)| (k.window, v))
        .collect();
    assert_eq!(
        got,
        vec![
            (Window::new(1_000, 1_000), Some(1)),
            (Window::new(10_000, 10_000), Some(1)),
            (Window::new(1_000, 1_000), None),
            (Window::new(10_000, 10_000), None),
            (Window::new(1_000, 10_000), Some(3)),
        ]
    );
    // Stream time 10s, no grace: a record whose session would end before 10s is late.
    input.pipe_input_at("b".into(), "x".into(), 2_000);
    assert!(out.is_empty());
    assert_eq!(d.metrics().dropped, 1);
}

#[test]
fn sliding_windows_follow_the_records() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(
            secs(10),
            secs(30),
        ))
        .count_with(Materialized::as_store("sliding"))
        .to_stream()
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 20_000);
    input.pipe_input_at("a".into(), "x".into(), 25_000);
    input.pipe_input_at("a".into(), "x".into(), 40_000);
    let store: WindowStore<String, i64> = d.get_store("sliding").unwrap();
    let mut windows: Vec<(i64, i64)> = store.fetch_range(&"a".into(), 0, 100_000).unwrap();
    windows.sort();
    // Left windows [t-10s, t] of each record, and the right window [20001, 30001] of the first
    // record, which holds the second; the second's right window holds nothing.
    assert_eq!(
        windows,
        vec![(10_000, 1), (15_000, 2), (20_001, 1), (30_000, 1)]
    );
    let out = d.create_output_topic(
        "out",
        Serdes::time_windowed(s(), 10_001),
        Serdes::nullable(Serdes::i64()),
    );
    let got = out.read_key_values_to_list();
    assert_eq!(
        got.last().map(|(k, v)| (k.window, *v)),
        Some((Window::new(30_000, 40_001), Some(1)))
    );
}

#[test]
fn windowed_change_values_reach_the_table() {
    // The windowed table forwards changes with old values (for downstream table operations).
    let b = StreamsBuilder::new();
    let t = b
        .stream::<String, String>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(secs(10)))
        .count_with(Materialized::as_store("c").with_caching_disabled());
    t.filter(|_, v| *v >= 2).to_stream().to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 1_000);
    input.pipe_input_at("a".into(), "x".into(), 2_000);
    let out = time_windowed_out(&d, 10_000);
    assert_eq!(windowed_counts(&out), vec![w("a", 0, 10_000, Some(2))]);
}

#[test]
fn session_emit_on_close_gives_each_final_session_once() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            secs(5),
            secs(1),
        ))
        .emit_strategy(EmitStrategy::OnWindowClose)
        .count()
        .to_stream()
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input_at("a".into(), "x".into(), 1_000);
    input.pipe_input_at("a".into(), "x".into(), 4_000); // same session [1 s, 4 s]
    input.pipe_input_at("b".into(), "x".into(), 9_000);
    let out = d.create_output_topic(
        "out",
        Serdes::session_windowed(s()),
        Serdes::nullable(Serdes::i64()),
    );
    // [1 s, 4 s] could still be extended by a record at 9 s (within the gap) until stream time
    // passes 4 s + 5 s + 1 s.
    input.pipe_input_at("b".into(), "x".into(), 10_000);
    assert!(out.is_empty());
    input.pipe_input_at("b".into(), "x".into(), 10_001);
    let got: Vec<_> = out
        .read_key_values_to_list()
        .into_iter()
        .map(|(k, v)| (k.key, k.window, v))
        .collect();
    assert_eq!(
        got,
        vec![("a".to_string(), Window::new(1_000, 4_000), Some(2))]
    );
    input.pipe_input_at("c".into(), "x".into(), 60_000);
    let got: Vec<_> = out
        .read_key_values_to_list()
        .into_iter()
        .map(|(k, v)| (k.key, k.window, v))
        .collect();
    assert_eq!(
        got,
        vec![("b".to_string(), Window::new(9_000, 10_001), Some(3))]
    );
}

#[test]
fn suppressed_sessions_wait_for_the_gap_as_well_as_the_grace() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(secs(5)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic(
        "out",
        Serdes::session_windowed(s()),
        Serdes::nullable(Serdes::i64()),
    );
    input.pipe_input_at("a".into(), "x".into(), 1_000);
    // Stream time 5 s: [1 s, 1 s] is past its end + grace but a record within the gap can
    // still extend it, so it is not final.
    input.pipe_input_at("b".into(), "x".into(), 5_000);
    assert!(out.is_empty());
    input.pipe_input_at("a".into(), "x".into(), 5_500);
    let finals = || -> Vec<_> {
        out.read_key_values_to_list()
            .into_iter()
            .map(|(k, v)| (k.key, k.window, v))
            .collect()
    };
    // [5 s, 5 s] of b is final at 10 s; a's session [1 s, 5.5 s] only at 10.5 s.
    input.pipe_input_at("c".into(), "x".into(), 10_499);
    assert_eq!(
        finals(),
        vec![("b".to_string(), Window::new(5_000, 5_000), Some(1))]
    );
    input.pipe_input_at("c".into(), "x".into(), 10_500);
    let got = finals();
    assert_eq!(
        got,
        vec![("a".to_string(), Window::new(1_000, 5_500), Some(2))]
    );
}
