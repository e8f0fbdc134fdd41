//! `KStream::to_table` (upserts, old values, repartitioning a re-keyed stream) and
//! `KStream::print` (to a file, labelled).

use streams_core::serde::Serdes;
use streams_dsl::{Materialized, Printed, StreamsBuilder};

use super::{driver, opt_i64, s};

#[test]
fn to_table_upserts_each_key_and_forwards_the_row_it_replaced() {
    let b = StreamsBuilder::new();
    let table = b
        .stream::<String, i64>("readings")
        .to_table_with(Materialized::as_store("latest-reading"));
    table.to_stream().to("latest");
    // A re-keying group-by needs the old row to subtract it from its old group.
    table
        .group_by(|k, v| (if *v >= 10 { "high" } else { "low" }.to_string(), k.clone()))
        .count()
        .to_stream()
        .to("per-level");
    let d = driver(b);
    let input = d.create_input_topic("readings", s(), Serdes::i64());
    input.pipe_input("a".into(), 5);
    input.pipe_input("b".into(), 12);
    input.pipe_input("a".into(), 15);
    assert_eq!(
        d.create_output_topic("latest", s(), opt_i64())
            .read_key_values_to_list(),
        vec![
            ("a".into(), Some(5)),
            ("b".into(), Some(12)),
            ("a".into(), Some(15)),
        ]
    );
    let levels = d
        .create_output_topic("per-level", s(), opt_i64())
        .read_key_values_to_map();
    assert_eq!(levels["high"], Some(2));
    assert_eq!(
        levels["low"],
        Some(0),
        "a left the low group when it rose to 15"
    );
    let store = d
        .get_key_value_store::<String, i64>("latest-reading")
        .unwrap();
    assert_eq!(
        store.all().unwrap(),
        vec![("a".to_string(), 15), ("b".to_string(), 12)]
    );
}

#[test]
fn to_table_of_a_rekeyed_stream_goes_through_a_repartition_topic() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("moves")
        .map(|_, v| {
            let (driver, place) = v.split_once('@').unwrap();
            (driver.to_string(), place.to_string())
        })
        .to_table()
        .to_stream()
        .to("where");
    let topology = b.build().unwrap();
    let described = topology.describe().to_string();
    assert!(
        described.contains("KSTREAM-TOTABLE-0000000002-repartition")
            && described.contains("KSTREAM-TOTABLE-STATE-STORE-0000000003"),
        "{described}"
    );
    let d = streams_core::TopologyTestDriver::new(topology, super::config()).unwrap();
    let input = d.create_input_topic("moves", s(), s());
    input.pipe_input("x".into(), "ann@depot".into());
    input.pipe_input("y".into(), "bob@airport".into());
    input.pipe_input("z".into(), "ann@airport".into());
    let out = d
        .create_output_topic("where", s(), Serdes::nullable(s()))
        .read_key_values_to_list();
    assert_eq!(
        out,
        vec![
            ("ann".into(), Some("depot".into())),
            ("bob".into(), Some("airport".into())),
            ("ann".into(), Some("airport".into())),
        ]
    );
}

#[test]
fn print_writes_labelled_lines_to_a_file() {
    let dir = std::env::temp_dir().join(format!("streams-print-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (plain, labelled) = (dir.join("plain.txt"), dir.join("labelled.txt"));
    // Whatever the file held before is replaced when the topology is built.
    std::fs::write(&plain, "old line\n").unwrap();
    let b = StreamsBuilder::new();
    let counts = b.stream::<String, i64>("counts");
    counts.print(Printed::to_file(&plain));
    counts.print(
        Printed::to_file_with(&labelled, |k: &String, v: &i64| format!("{k}={v}"))
            .with_label("counts"),
    );
    let d = driver(b);
    let input = d.create_input_topic("counts", s(), Serdes::i64());
    input.pipe_input("a".into(), 1);
    input.pipe_input("b".into(), 2);
    drop(d);
    assert_eq!(
        std::fs::read_to_string(&plain).unwrap(),
        "[KSTREAM-PRINTER-0000000001]: a, 1\n[KSTREAM-PRINTER-0000000001]: b, 2\n"
    );
    assert_eq!(
        std::fs::read_to_string(&labelled).unwrap(),
        "[counts]: a=1\n[counts]: b=2\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn print_to_a_file_that_cannot_be_created_fails_the_build_naming_it() {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("in")
        .print(Printed::to_file("/nonexistent-dir/out.txt"));
    let Err(err) = b.build() else {
        panic!("the build succeeded")
    };
    let err = err.to_string();
    assert!(
        err.contains("KSTREAM-PRINTER-0000000001") && err.contains("nonexistent-dir/out.txt"),
        "{err}"
    );
}
