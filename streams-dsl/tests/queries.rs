//! Interactive queries through the TopologyTestDriver: the IQv2 query types on key-value,
//! window and session stores, their failure reasons, and scans that go on while the store is
//! written.

use std::time::Duration;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::window::{SessionWindows, TimeWindows};
use streams_core::{
    ApproximateCountQuery, FailureReason, KeyQuery, PrefixScanQuery, RangeQuery, StateQueryRequest,
    StreamsConfig, TopologyTestDriver, WindowKeyQuery, WindowRangeQuery,
};
use streams_dsl::{Materialized, StreamsBuilder};

fn s() -> SerdeRef<String> {
    Serdes::string()
}

/// Counts per key into `counts`, per key and 10 s window into `windowed`, per key and session
/// (5 s gap) into `sessions`.
fn driver() -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    let input = b.stream::<String, String>("in");
    input
        .group_by_key()
        .count_with(Materialized::as_store("counts"));
    input
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(10),
            Duration::from_secs(60),
        ))
        .count_with(Materialized::as_store("windowed"));
    input
        .group_by_key()
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(
            Duration::from_secs(5),
            Duration::from_secs(60),
        ))
        .count_with(Materialized::as_store("sessions"));
    TopologyTestDriver::new(b.build().unwrap(), StreamsConfig::new("app", "unused:9092")).unwrap()
}

fn only<R>(r: streams_core::StateQueryResult<R>) -> R {
    r.into_only_partition_result()
        .expect("one partition")
        .expect("a result")
}

fn collect<T>(it: streams_core::StoreIterator<T>) -> Vec<T> {
    it.map(|e| e.expect("entry")).collect()
}

#[test]
fn key_range_prefix_and_count_queries_read_a_key_value_store() {
    let d = driver();
    let input = d.create_input_topic("in", s(), s());
    for (k, n) in [("apple", 3), ("apricot", 1), ("banana", 2), ("cherry", 4)] {
        for _ in 0..n {
            input.pipe_input(k.to_string(), "x".to_string());
        }
    }
    let q = |k: &str| {
        StateQueryRequest::in_store("counts")
            .with_query(KeyQuery::<String, i64>::with_key(k.into()))
    };
    assert_eq!(only(d.query(q("apple")).unwrap()), Some(3));
    assert_eq!(only(d.query(q("durian")).unwrap()), None);

    let range = |r: RangeQuery<String, i64>| {
        collect(only(
            d.query(StateQueryRequest::in_store("counts").with_query(r))
                .unwrap(),
        ))
    };
    let kv = |k: &str, v: i64| (k.to_string(), v);
    assert_eq!(
        range(RangeQuery::with_range("apricot".into(), "banana".into())),
        [kv("apricot", 1), kv("banana", 2)]
    );
    assert_eq!(
        range(RangeQuery::with_no_bounds().with_descending_keys()),
        [
            kv("cherry", 4),
            kv("banana", 2),
            kv("apricot", 1),
            kv("apple", 3)
        ]
    );
    assert_eq!(
        range(RangeQuery::with_lower_bound("c".into())),
        [kv("cherry", 4)]
    );
    assert_eq!(
        range(RangeQuery::with_upper_bound("b".into())),
        [kv("apple", 3), kv("apricot", 1)]
    );
    let prefix = only(
        d.query(
            StateQueryRequest::in_store("counts")
                .with_query(PrefixScanQuery::<String, i64>::with_prefix("ap".into())),
        )
        .unwrap(),
    );
    assert_eq!(collect(prefix), [kv("apple", 3), kv("apricot", 1)]);
    let count = only(
        d.query(StateQueryRequest::in_store("counts").with_query(ApproximateCountQuery))
            .unwrap(),
    );
    assert!(
        count <= 4,
        "an estimate of at most the entries written: {count}"
    );
}

#[test]
fn window_and_session_queries_return_exactly_the_windows_asked_for() {
    let d = driver();
    let input = d.create_input_topic("in", s(), s());
    for (k, t) in [
        ("a", 1_000),
        ("a", 2_000),
        ("a", 12_000),
        ("b", 3_000),
        ("a", 30_000),
    ] {
        input.pipe_input_at(k.to_string(), "x".to_string(), t);
    }
    let windows = only(
        d.query(StateQueryRequest::in_store("windowed").with_query(
            WindowKeyQuery::<String, i64>::with_key_and_window_start_range("a".into(), 0, 20_000),
        ))
        .unwrap(),
    );
    assert_eq!(collect(windows), [(0, 2), (10_000, 1)]);
    let all = only(
        d.query(StateQueryRequest::in_store("windowed").with_query(
            WindowRangeQuery::<String, i64>::with_window_start_range(0, 9_999),
        ))
        .unwrap(),
    );
    let all: Vec<_> = collect(all)
        .into_iter()
        .map(|(w, n)| (w.key, w.window.start, w.window.end, n))
        .collect();
    assert_eq!(
        all,
        [
            ("a".to_string(), 0, 10_000, 2),
            ("b".to_string(), 0, 10_000, 1)
        ]
    );
    let sessions = only(
        d.query(
            StateQueryRequest::in_store("sessions")
                .with_query(WindowRangeQuery::<String, i64>::with_key("a".into())),
        )
        .unwrap(),
    );
    let sessions: Vec<_> = collect(sessions)
        .into_iter()
        .map(|(w, n)| (w.window.start, w.window.end, n))
        .collect();
    assert_eq!(
        sessions,
        [(1_000, 2_000, 2), (12_000, 12_000, 1), (30_000, 30_000, 1)]
    );
}

#[test]
fn partitions_that_cannot_answer_say_why() {
    let d = driver();
    let kv = StateQueryRequest::in_store("counts")
        .with_query(KeyQuery::<String, i64>::with_key("a".into()));
    let results = d
        .query(kv.clone().with_partitions([0, 1]))
        .unwrap()
        .into_partition_results();
    assert_eq!(results[&0].as_ref().unwrap(), &None);
    let missing = results[&1].as_ref().unwrap_err();
    assert_eq!(missing.reason, FailureReason::DoesNotExist);
    assert!(missing.message.contains("`counts`"), "{}", missing.message);

    // Other types than the store's, and a window query of a key-value store.
    let wrong = d
        .query(
            StateQueryRequest::in_store("counts")
                .with_query(KeyQuery::<String, String>::with_key("a".into())),
        )
        .unwrap()
        .into_only_partition_result()
        .unwrap()
        .unwrap_err();
    assert_eq!(wrong.reason, FailureReason::UnknownQueryType);
    assert!(wrong.message.contains("types"), "{}", wrong.message);
    let kind = d
        .query(StateQueryRequest::in_store("counts").with_query(
            WindowKeyQuery::<String, i64>::with_key_and_window_start_range("a".into(), 0, 1),
        ))
        .unwrap()
        .into_only_partition_result()
        .unwrap()
        .unwrap_err();
    assert_eq!(kind.reason, FailureReason::UnknownQueryType);
    assert!(kind.message.contains("window store"), "{}", kind.message);

    let e = d
        .query(
            StateQueryRequest::in_store("nope")
                .with_query(KeyQuery::<String, i64>::with_key("a".into())),
        )
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn a_scan_sees_each_key_once_in_order_while_the_store_is_written() {
    let d = driver();
    let input = d.create_input_topic("in", s(), s());
    for i in 0..3000 {
        input.pipe_input(format!("k{i:05}"), "x".into());
    }
    let mut it = only(
        d.query(
            StateQueryRequest::in_store("counts")
                .with_query(RangeQuery::<String, i64>::with_no_bounds()),
        )
        .unwrap(),
    );
    let mut seen = Vec::new();
    for _ in 0..1000 {
        seen.push(it.next().unwrap().unwrap());
    }
    // Writes behind the scan, ahead of it, and new keys ahead of it.
    for i in (0..3000).step_by(7) {
        input.pipe_input(format!("k{i:05}"), "x".into());
    }
    input.pipe_input("k02500a".into(), "x".into());
    seen.extend(it.map(|e| e.unwrap()));
    let keys: Vec<&String> = seen.iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "ascending, no key twice");
    assert_eq!(
        seen.len(),
        3001,
        "every key, and the new one ahead of the scan"
    );
    // Ahead of the scan the new counts show; behind it the old ones stay.
    let count = |k: &str| seen.iter().find(|(s, _)| s == k).unwrap().1;
    assert_eq!(count("k00007"), 1);
    assert_eq!(count("k02996"), 2);
}

#[test]
fn a_position_bound_holds_back_partitions_that_have_not_read_that_far() {
    use streams_core::{Position, PositionBound};
    let d = driver();
    let input = d.create_input_topic("in", s(), s());
    for k in ["a", "b", "a"] {
        input.pipe_input(k.to_string(), "x".to_string());
    }
    let request = |bound: Position| {
        StateQueryRequest::in_store("counts")
            .with_query(KeyQuery::<String, i64>::with_key("a".into()))
            .with_position_bound(PositionBound::at(bound))
    };
    // Offsets 0, 1 and 2 of `in` partition 0 are processed.
    let result = d
        .query(request(Position::empty().with_component("in", 0, 2)))
        .unwrap();
    assert_eq!(
        result.position(0),
        Some(&Position::empty().with_component("in", 0, 2))
    );
    assert_eq!(only(result), Some(2));
    for ahead in [
        Position::empty().with_component("in", 0, 3),
        Position::empty().with_component("in", 1, 0),
    ] {
        let failure = d
            .query(request(ahead.clone()))
            .unwrap()
            .into_only_partition_result()
            .unwrap()
            .unwrap_err();
        assert_eq!(failure.reason, FailureReason::NotUpToBound, "{ahead:?}");
    }
    input.pipe_input("a".to_string(), "x".to_string());
    let caught_up = d
        .query(request(Position::empty().with_component("in", 0, 3)))
        .unwrap();
    assert_eq!(only(caught_up), Some(3));
}
