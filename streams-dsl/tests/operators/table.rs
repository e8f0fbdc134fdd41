//! Tables: upserts, deletes, filter, map_values and re-keyed aggregation with a subtractor.

use streams_core::serde::Serdes;
use streams_dsl::{Consumed, Materialized, StreamsBuilder};

use super::{driver, opt_i64, s};

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
