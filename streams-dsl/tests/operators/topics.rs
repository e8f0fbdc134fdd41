//! Reading and writing topics: sinks, repartition topics, timestamp extractors and records that do not deserialize.

use streams_core::serde::Serdes;
use streams_core::TopologyTestDriver;
use streams_dsl::{Consumed, Produced, Repartitioned, StreamsBuilder};

use super::{config, driver, kv, s};

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
