//! Building topologies: missing serdes, generated names and `describe`.

use streams_core::TopologyTestDriver;
use streams_dsl::{Materialized, StreamsBuilder};

use super::config;

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
