//! Grouped streams: grouping (repartitioning when the key changed), count, reduce, aggregate and their stores.

use streams_core::serde::Serdes;
use streams_core::TopologyTestDriver;
use streams_dsl::{Grouped, Materialized, Produced, StreamsBuilder};

use super::{config, driver, opt_i64, s};

#[test]
fn select_key_then_grouping_repartitions() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .select_key(|_, v| v.clone())
        .group_by_key_with(Grouped::as_name("by-value"))
        .count_with(Materialized::as_store("value-counts"))
        .to_stream()
        .to("out");
    let t = b.build().unwrap();
    let text = t.describe().to_string();
    assert!(
        text.contains("Sink: by-value-repartition-sink (topic: by-value-repartition)"),
        "{text}"
    );
    assert!(
        text.contains("Source: by-value-repartition-source (topics: [by-value-repartition])"),
        "{text}"
    );
    assert_eq!(t.describe().subtopology_count(), 2);
    let d = TopologyTestDriver::new(t, config()).unwrap();
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input("a".into(), "x".into());
    input.pipe_input("b".into(), "x".into());
    input.pipe_input("c".into(), "y".into());
    let out = d
        .create_output_topic("out", s(), opt_i64())
        .read_key_values_to_list();
    assert_eq!(
        out,
        vec![
            ("x".into(), Some(1)),
            ("x".into(), Some(2)),
            ("y".into(), Some(1))
        ]
    );
    let store = d
        .get_key_value_store::<String, i64>("value-counts")
        .expect("store");
    assert_eq!(store.get(&"x".into()).unwrap(), Some(2));
}

#[test]
fn grouped_stream_count_reduce_and_aggregate() {
    let b = StreamsBuilder::new();
    let src = b.stream::<String, i64>("in");
    let grouped = src.group_by_key();
    grouped
        .count_with(Materialized::as_store("counts"))
        .to_stream()
        .to("count");
    src.group_by_key()
        .reduce_with(|a, v| a.max(v), Materialized::as_store("max"))
        .to_stream()
        .to("max");
    src.group_by_key()
        .aggregate_with(
            String::new,
            |_, v, agg: String| format!("{agg}{v}"),
            Materialized::as_store("concat"),
        )
        .to_stream()
        .to("concat");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), Serdes::i64());
    for (k, v) in [("a", 3), ("b", 1), ("a", 7), ("a", 5)] {
        input.pipe_input(k.into(), v);
    }
    let count = d
        .create_output_topic("count", s(), opt_i64())
        .read_key_values_to_map();
    assert_eq!(count["a"], Some(3));
    assert_eq!(count["b"], Some(1));
    let max = d
        .create_output_topic("max", s(), opt_i64())
        .read_key_values_to_list();
    assert_eq!(max.last().unwrap(), &("a".to_string(), Some(7)));
    let concat = d
        .create_output_topic("concat", s(), Serdes::nullable(s()))
        .read_key_values_to_map();
    assert_eq!(concat["a"].as_deref(), Some("375"));
    assert_eq!(
        d.get_key_value_store::<String, i64>("counts")
            .unwrap()
            .get(&"a".into())
            .unwrap(),
        Some(3)
    );
}

#[test]
fn group_by_with_a_new_key_counts_per_new_key() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .group_by(|_, v| v.len() as i64)
        .count()
        .to_stream()
        .to_with("out", Produced::with(Serdes::i64(), opt_i64()));
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    for v in ["aa", "bb", "c", "dd"] {
        input.pipe_input("k".into(), v.into());
    }
    let out = d
        .create_output_topic("out", Serdes::i64(), opt_i64())
        .read_key_values_to_map();
    assert_eq!(out[&2], Some(3));
    assert_eq!(out[&1], Some(1));
}

#[test]
fn caching_folds_updates_between_commits_and_writes_through_without() {
    // The driver commits after every record, so both emit the same; what differs is how the
    // store is built, which the runtime tests cover. Here: both are correct.
    for caching in [true, false] {
        let b = StreamsBuilder::new();
        let m = Materialized::as_store("c");
        let m = if caching {
            m
        } else {
            m.with_caching_disabled()
        };
        b.stream::<String, String>("in")
            .group_by_key()
            .count_with(m)
            .to_stream()
            .to("out");
        let d = driver(b);
        let input = d.create_input_topic("in", s(), s());
        for _ in 0..3 {
            input.pipe_input("k".into(), "v".into());
        }
        let out = d
            .create_output_topic("out", s(), opt_i64())
            .read_values_to_list();
        assert_eq!(out, vec![Some(1), Some(2), Some(3)], "caching={caching}");
    }
}
