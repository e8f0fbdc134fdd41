//! Semantics of every DSL operator, through the TopologyTestDriver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::{
    Processor, ProcessorContext, PunctuationType, Record, Result, Stores, StreamsConfig, Topology,
    TopologyTestDriver,
};
use streams_dsl::{Consumed, Grouped, Materialized, Produced, Repartitioned, StreamsBuilder};

fn config() -> StreamsConfig {
    StreamsConfig::new("app", "unused:9092")
}

fn driver(b: StreamsBuilder) -> TopologyTestDriver {
    TopologyTestDriver::new(b.build().expect("topology builds"), config()).expect("driver starts")
}

fn s() -> SerdeRef<String> {
    Serdes::string()
}

fn opt_i64() -> SerdeRef<Option<i64>> {
    Serdes::nullable(Serdes::i64())
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

#[test]
fn filter_and_filter_not_keep_the_matching_records() {
    let b = StreamsBuilder::new();
    let src = b.stream::<String, String>("in");
    src.filter(|_, v| v.starts_with('a')).to("a");
    src.filter_not(|_, v| v.starts_with('a')).to("not-a");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    for (k, v) in [kv("1", "apple"), kv("2", "banana"), kv("3", "avocado")] {
        input.pipe_input(k, v);
    }
    let a = d.create_output_topic("a", s(), s());
    let not_a = d.create_output_topic("not-a", s(), s());
    assert_eq!(
        a.read_key_values_to_list(),
        vec![kv("1", "apple"), kv("3", "avocado")]
    );
    assert_eq!(not_a.read_key_values_to_list(), vec![kv("2", "banana")]);
}

#[test]
fn map_and_map_values_transform_keeping_timestamps() {
    let b = StreamsBuilder::new();
    let src = b.stream::<String, String>("in");
    src.map(|k, v| (v, k.len() as i64)).to("swapped");
    src.map_values(|v| v.to_uppercase()).to("upper");
    src.map_values_with_key(|k, v| format!("{k}:{v}"))
        .to("joined");
    let d = driver(b);
    d.create_input_topic("in", s(), s())
        .pipe_input_at("key".into(), "value".into(), 42);
    let swapped = d
        .create_output_topic("swapped", s(), Serdes::i64())
        .read_record();
    assert_eq!(
        (swapped.key.as_str(), swapped.value, swapped.timestamp),
        ("value", 3, 42)
    );
    assert_eq!(
        d.create_output_topic("upper", s(), s()).read_key_value(),
        kv("key", "VALUE")
    );
    assert_eq!(
        d.create_output_topic("joined", s(), s()).read_value(),
        "key:value"
    );
}

#[test]
fn flat_map_and_flat_map_values_emit_zero_or_more_records() {
    let b = StreamsBuilder::new();
    let src = b.stream::<String, String>("in");
    src.flat_map_values(|v: String| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .to("words");
    src.flat_map(|k: String, v: String| {
        v.chars()
            .map(move |c| (c.to_string(), k.clone()))
            .collect::<Vec<_>>()
    })
    .to("chars");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input("k".into(), "ab cd".into());
    input.pipe_input("e".into(), "".into());
    assert_eq!(
        d.create_output_topic("words", s(), s())
            .read_key_values_to_list(),
        vec![kv("k", "ab"), kv("k", "cd"), kv("e", "")]
    );
    let chars = d
        .create_output_topic("chars", s(), s())
        .read_key_values_to_list();
    assert_eq!(chars.len(), 5);
    assert_eq!(chars[2], kv(" ", "k"));
}

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
fn peek_and_foreach_see_every_record() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Mutex::new(Vec::new()));
    let b = StreamsBuilder::new();
    let (s1, d1) = (seen.clone(), done.clone());
    b.stream::<String, String>("in")
        .peek(move |k, _| s1.lock().unwrap().push(k.clone()))
        .foreach(move |_, v| d1.lock().unwrap().push(v.clone()));
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    input.pipe_input("1".into(), "one".into());
    input.pipe_input("2".into(), "two".into());
    assert_eq!(*seen.lock().unwrap(), vec!["1", "2"]);
    assert_eq!(*done.lock().unwrap(), vec!["one", "two"]);
}

#[test]
fn split_sends_each_record_to_the_first_matching_branch() {
    let b = StreamsBuilder::new();
    let branches = b
        .stream::<String, i64>("numbers")
        .split("n-")
        .branch("negative", |_, v| *v < 0)
        .branch("small", |_, v| *v < 10)
        .default_branch("large");
    assert_eq!(branches.len(), 3);
    for (name, stream) in &branches {
        stream.to(name);
    }
    let d = driver(b);
    let input = d.create_input_topic("numbers", s(), Serdes::i64());
    for v in [-1, 5, 50, -7, 9] {
        input.pipe_input("k".into(), v);
    }
    let read = |t: &str| {
        d.create_output_topic(t, s(), Serdes::i64())
            .read_values_to_list()
    };
    assert_eq!(read("n-negative"), vec![-1, -7]);
    assert_eq!(read("n-small"), vec![5, 9]);
    assert_eq!(read("n-large"), vec![50]);

    let b = StreamsBuilder::new();
    let branches = b
        .stream::<String, i64>("numbers")
        .split("")
        .branch("even", |_, v| v % 2 == 0)
        .no_default_branch();
    branches["even"].to("even");
    let d = driver(b);
    let input = d.create_input_topic("numbers", s(), Serdes::i64());
    for v in 1..=4 {
        input.pipe_input("k".into(), v);
    }
    assert_eq!(
        d.create_output_topic("even", s(), Serdes::i64())
            .read_values_to_list(),
        vec![2, 4]
    );
}

#[test]
fn merge_interleaves_both_inputs() {
    let b = StreamsBuilder::new();
    let a = b.stream::<String, String>("a");
    let c = b.stream::<String, String>("b");
    a.merge(&c).to("merged");
    let d = driver(b);
    d.create_input_topic("a", s(), s())
        .pipe_input("1".into(), "from-a".into());
    d.create_input_topic("b", s(), s())
        .pipe_input("2".into(), "from-b".into());
    assert_eq!(
        d.create_output_topic("merged", s(), s())
            .read_values_to_list(),
        vec!["from-a", "from-b"]
    );
}

#[test]
fn to_with_serdes_and_a_topic_chosen_per_record() {
    let b = StreamsBuilder::new();
    let src = b.stream::<String, i64>("in");
    src.to_with(
        "as-i32",
        Produced::with(s(), Serdes::i64()).with_name("fixed-sink"),
    );
    src.to_dynamic(
        |_, v| {
            if *v % 2 == 0 {
                "even".into()
            } else {
                "odd".into()
            }
        },
        Produced::default(),
    );
    let t = b.build().unwrap();
    assert!(t
        .describe()
        .to_string()
        .contains("Sink: fixed-sink (topic: as-i32)"));
    let d = TopologyTestDriver::new(t, config()).unwrap();
    let input = d.create_input_topic("in", s(), Serdes::i64());
    input.pipe_input("k".into(), 1);
    input.pipe_input("k".into(), 2);
    assert_eq!(
        d.create_output_topic("odd", s(), Serdes::i64())
            .read_values_to_list(),
        vec![1]
    );
    assert_eq!(
        d.create_output_topic("even", s(), Serdes::i64())
            .read_values_to_list(),
        vec![2]
    );
    assert_eq!(
        d.create_output_topic("as-i32", s(), Serdes::i64())
            .queue_size(),
        2
    );
}

#[test]
fn repartition_goes_through_a_named_internal_topic() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .repartition_with(Repartitioned::as_name("rekeyed").with_partitions(3))
        .to("out");
    let t = b.build().unwrap();
    assert!(t
        .describe()
        .to_string()
        .contains("(topic: rekeyed-repartition)"));
    let d = TopologyTestDriver::new(t, config()).unwrap();
    d.create_input_topic("in", s(), s())
        .pipe_input("k".into(), "v".into());
    assert_eq!(
        d.create_output_topic("out", s(), s()).read_key_value(),
        kv("k", "v")
    );
    assert!(!d
        .output_topic_names()
        .iter()
        .any(|t| t.contains("repartition")));
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
fn tables_upsert_delete_filter_and_map() {
    let b = StreamsBuilder::new();
    let t = b.table_with::<String, i64>(
        "prices",
        Consumed::default(),
        Materialized::as_store("prices-store"),
    );
    assert_eq!(t.queryable_store_name(), Some("prices-store"));
    t.to_stream().to("all");
    t.filter(|_, v| *v >= 10).to_stream().to("expensive");
    t.map_values(|v| v * 2).to_stream().to("doubled");
    let d = driver(b);
    let input = d.create_input_topic("prices", s(), Serdes::i64());
    input.pipe_input("apple".into(), 5);
    input.pipe_input("pear".into(), 12);
    input.pipe_input("apple".into(), 15);
    input.pipe_input("pear".into(), 3);
    input.pipe_tombstone("apple".into(), 0).unwrap();
    input.pipe_tombstone("nothing".into(), 0).unwrap();

    let all = d
        .create_output_topic("all", s(), opt_i64())
        .read_key_values_to_list();
    assert_eq!(
        all,
        vec![
            ("apple".into(), Some(5)),
            ("pear".into(), Some(12)),
            ("apple".into(), Some(15)),
            ("pear".into(), Some(3)),
            ("apple".into(), None),
        ]
    );
    // The filtered table deletes a row downstream once it stops matching.
    let expensive = d
        .create_output_topic("expensive", s(), opt_i64())
        .read_key_values_to_list();
    assert_eq!(
        expensive,
        vec![
            ("pear".into(), Some(12)),
            ("apple".into(), Some(15)),
            ("pear".into(), None),
            ("apple".into(), None),
        ]
    );
    let doubled = d
        .create_output_topic("doubled", s(), opt_i64())
        .read_key_values_to_map();
    assert_eq!(doubled["pear"], Some(6));
    assert_eq!(doubled["apple"], None);
    let store = d
        .get_key_value_store::<String, i64>("prices-store")
        .unwrap();
    assert_eq!(store.get(&"apple".into()).unwrap(), None);
    assert_eq!(store.all().unwrap(), vec![("pear".to_string(), 3)]);
}

#[test]
fn table_group_by_moves_rows_between_groups_with_the_subtractor() {
    // users -> country; count users per country, sum ages per country, reduce names.
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    users
        .group_by(|_, v| (v.split(',').next().unwrap().to_string(), 1i64))
        .count_with(Materialized::as_store("per-country"))
        .to_stream()
        .to("count");
    users
        .group_by(|_, v| {
            let mut p = v.split(',');
            (
                p.next().unwrap().to_string(),
                p.next().unwrap().parse::<i64>().unwrap(),
            )
        })
        .aggregate(|| 0i64, |_, age, sum| sum + age, |_, age, sum| sum - age)
        .to_stream()
        .to("ages");
    users
        .group_by(|k, v| (v.split(',').next().unwrap().to_string(), k.clone()))
        .reduce(
            |a, b| format!("{a}+{b}"),
            |a, b| a.replace(&format!("+{b}"), "").replace(&b, ""),
        )
        .to_stream()
        .to("names");
    let d = driver(b);
    let input = d.create_input_topic("users", s(), s());
    input.pipe_input("ann".into(), "de,30".into());
    input.pipe_input("bob".into(), "de,40".into());
    input.pipe_input("cid".into(), "fr,20".into());
    input.pipe_input("bob".into(), "fr,41".into()); // bob moves from de to fr
    input.pipe_tombstone("ann".into(), 0).unwrap(); // ann leaves
    let count = d
        .create_output_topic("count", s(), opt_i64())
        .read_key_values_to_map();
    assert_eq!(count["de"], Some(0));
    assert_eq!(count["fr"], Some(2));
    let ages = d
        .create_output_topic("ages", s(), opt_i64())
        .read_key_values_to_map();
    assert_eq!(ages["de"], Some(0));
    assert_eq!(ages["fr"], Some(61));
    let names = d
        .create_output_topic("names", s(), Serdes::nullable(s()))
        .read_key_values_to_map();
    assert_eq!(names["fr"].as_deref(), Some("cid+bob"));
}

/// Keeps the latest value per key in a store and emits the store's size on punctuation.
struct Latest {
    store: Option<streams_core::KeyValueStore<String, String>>,
}

impl Processor for Latest {
    type KIn = String;
    type VIn = String;
    type KOut = String;
    type VOut = i64;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
        let store = ctx.get_state_store::<String, String>("latest")?;
        let s2 = store.clone();
        ctx.schedule(
            Duration::from_secs(10),
            PunctuationType::WallClockTime,
            move |ctx, now| {
                let n = s2.approximate_num_entries()? as i64;
                ctx.forward(Record::new("wall".to_string(), n, now))
            },
        );
        ctx.schedule(
            Duration::from_millis(100),
            PunctuationType::StreamTime,
            move |ctx, st| ctx.forward(Record::new("stream".to_string(), st, st)),
        );
        self.store = Some(store);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        r: Record<String, String>,
    ) -> Result<()> {
        if r.value == "boom" {
            return Err(streams_core::StreamsError::user("refusing boom"));
        }
        let store = self.store.as_ref().unwrap();
        store.put(&r.key, &r.value)?;
        assert_eq!(ctx.topic(), Some("in"));
        assert!(ctx.offset().is_some());
        Ok(())
    }
}

#[test]
fn process_with_store_and_both_punctuations() {
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::in_memory_key_value("latest", s(), s()));
    b.stream::<String, String>("in")
        .process(|| Latest { store: None }, &["latest"])
        .to("out");
    let d = driver(b);
    let input = d.create_input_topic("in", s(), s());
    let out = d.create_output_topic("out", s(), Serdes::i64());
    input.pipe_input_at("a".into(), "1".into(), 1000);
    // The first stream-time punctuation fires with the first record.
    assert_eq!(out.read_key_value(), ("stream".to_string(), 1000));
    input.pipe_input_at("b".into(), "2".into(), 1050);
    assert!(out.is_empty(), "not due before 1100");
    input.pipe_input_at("a".into(), "3".into(), 1100);
    assert_eq!(out.read_key_value(), ("stream".to_string(), 1100));
    d.advance_wall_clock_time(Duration::from_secs(9)).unwrap();
    assert!(out.is_empty());
    d.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
    assert_eq!(out.read_key_value(), ("wall".to_string(), 2));
    let store = d.get_key_value_store::<String, String>("latest").unwrap();
    assert_eq!(store.get(&"a".into()).unwrap().as_deref(), Some("3"));
    // Errors from a processor name the task and the processor.
    let err = input
        .try_pipe_input("c".into(), "boom".into(), 1200)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("KSTREAM-PROCESSOR-") && err.contains("0_0") && err.contains("refusing boom"),
        "{err}"
    );
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

#[test]
fn timestamps_come_from_the_extractor() {
    let b = StreamsBuilder::new();
    b.stream_with::<String, i64>(
        &["in"],
        Consumed::default().with_timestamp_extractor(|r, _| r.value * 1000),
    )
    .to("out");
    let d = driver(b);
    d.create_input_topic("in", s(), Serdes::i64())
        .pipe_input_at("k".into(), 7, 1);
    assert_eq!(
        d.create_output_topic("out", s(), Serdes::i64())
            .read_record()
            .timestamp,
        7000
    );
}

#[test]
fn bad_records_fail_by_default_and_are_skipped_with_log_and_continue() {
    let build = || {
        let b = StreamsBuilder::new();
        b.stream::<String, i64>("numbers").to("out");
        b.build().unwrap()
    };
    let d = TopologyTestDriver::new(build(), config()).unwrap();
    d.pipe_raw("numbers", Some(b"k".to_vec()), Some(vec![0; 8]), 0, vec![])
        .unwrap();
    let err = d
        .pipe_raw(
            "numbers",
            Some(b"k".to_vec()),
            Some(b"abc".to_vec()),
            0,
            vec![],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("topic `numbers` partition 0 offset 1"),
        "{err}"
    );

    let d = TopologyTestDriver::new(
        build(),
        config().set("deserialization.exception.handler", "log-and-continue"),
    )
    .unwrap();
    d.pipe_raw(
        "numbers",
        Some(b"k".to_vec()),
        Some(b"abc".to_vec()),
        0,
        vec![],
    )
    .unwrap();
    d.pipe_raw(
        "numbers",
        Some(b"k".to_vec()),
        Some(vec![0, 0, 0, 0, 0, 0, 0, 9]),
        0,
        vec![],
    )
    .unwrap();
    assert_eq!(
        d.create_output_topic("out", s(), Serdes::i64())
            .read_values_to_list(),
        vec![9]
    );
    assert_eq!(d.metrics().dropped, 1);
    assert_eq!(d.metrics().processed, 1);
}

#[test]
fn missing_serdes_fail_the_build_naming_the_node() {
    #[derive(Clone)]
    struct Opaque;
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .map_values(|_| Opaque)
        .to("out");
    let err = b.build().expect_err("no serde for Opaque").to_string();
    assert!(
        err.contains("Opaque") && err.contains("KSTREAM-SINK-"),
        "{err}"
    );
}

#[test]
fn generated_names_are_deterministic_and_can_be_refused() {
    let build = || {
        let b = StreamsBuilder::new();
        b.stream::<String, String>("in")
            .group_by(|_, v| v.clone())
            .count()
            .to_stream()
            .to("out");
        b.build().unwrap()
    };
    let (a, c) = (
        build().describe().to_string(),
        build().describe().to_string(),
    );
    assert_eq!(a, c);
    assert!(
        a.contains("KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition"),
        "{a}"
    );
    let err = TopologyTestDriver::new(
        build(),
        config().set("ensure.explicit.internal.resource.naming", "true"),
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(
        err.contains("KSTREAM-AGGREGATE-STATE-STORE-0000000002"),
        "{err}"
    );
}

#[test]
fn describe_has_kafka_streams_shape() {
    let b = StreamsBuilder::new();
    b.stream::<Option<String>, String>("streams-plaintext-input")
        .flat_map_values(|v: String| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .group_by(|_, w| w.clone())
        .count_with(Materialized::as_store("counts-store"))
        .to_stream()
        .to("streams-wordcount-output");
    let text = b.build().unwrap().describe().to_string();
    let expected = "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [streams-plaintext-input])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> counts-store-repartition-sink
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Sink: counts-store-repartition-sink (topic: counts-store-repartition)
      <-- KSTREAM-KEY-SELECT-0000000002

   Sub-topology: 1
    Source: counts-store-repartition-source (topics: [counts-store-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts-store])
      --> KTABLE-TOSTREAM-0000000004
      <-- counts-store-repartition-source
    Processor: KTABLE-TOSTREAM-0000000004 (stores: [])
      --> KSTREAM-SINK-0000000005
      <-- KSTREAM-AGGREGATE-0000000003
    Sink: KSTREAM-SINK-0000000005 (topic: streams-wordcount-output)
      <-- KTABLE-TOSTREAM-0000000004
";
    assert_eq!(text, expected);
}

#[test]
fn processor_api_topology_by_hand() {
    let mut t = Topology::new();
    t.add_source("src", &["in"], s(), s()).unwrap();
    let err = t
        .add_sink("bad", "x", s(), Serdes::i64(), &["src"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`src` forwards") && err.contains("`bad` takes"),
        "{err}"
    );
    t.add_sink("sink", "out", s(), s(), &["src"]).unwrap();
    assert!(t.add_sink("sink", "out", s(), s(), &["src"]).is_err());
    let d = TopologyTestDriver::new(t, config()).unwrap();
    d.create_input_topic("in", s(), s())
        .pipe_input("k".into(), "v".into());
    let mut out: HashMap<String, String> = d
        .create_output_topic("out", s(), s())
        .read_key_values_to_map();
    assert_eq!(out.remove("k").as_deref(), Some("v"));
}
