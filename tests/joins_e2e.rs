//! End-to-end tests of the joins on real brokers: every scenario runs on the Apache Kafka test
//! bed and on the bundled broker.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use streams::{
    Joined, KafkaStreams, Serdes, StreamsBuilder, StreamsConfig, StreamsError, TableJoined,
};
use streams_testkit as testing;

on_both_brokers!(
    stream_table_left_join_after_a_key_change_sees_table_updates,
    foreign_key_join_across_differently_partitioned_tables,
    global_table_join_bootstraps_and_follows_updates,
    a_join_of_differently_partitioned_topics_fails_start_naming_them,
    a_table_written_before_the_stream_is_loaded_before_the_stream_joins,
);

fn config(app_id: &str, bootstrap: &str, dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app_id, bootstrap)
        .set("state.dir", dir.to_str().unwrap())
        .set("commit.interval.ms", "200")
        .set("statestore.cache.max.bytes", "0")
}

fn string_records<'a>(
    records: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Vec<testing::Outgoing> {
    records
        .into_iter()
        .map(|(k, v)| {
            (
                k.map(|k| k.as_bytes().to_vec()),
                v.map(|v| v.as_bytes().to_vec()),
                None,
            )
        })
        .collect()
}

fn produce(bootstrap: &str, topic: &str, records: &[(Option<&str>, Option<&str>)]) {
    testing::produce(bootstrap, topic, string_records(records.iter().copied())).unwrap();
}

fn read_strings(
    bootstrap: &str,
    topic: &str,
    expected: &HashMap<String, String>,
) -> HashMap<String, String> {
    testing::read_table(
        bootstrap,
        topic,
        Serdes::string(),
        Serdes::nullable(Serdes::string()),
        Duration::from_secs(90),
        |t| t == expected,
    )
    .unwrap()
}

/// Asserts that `topic` comes to hold `expected`, naming the application's state, error and
/// metrics when it does not (its log lines are in the test's captured output).
fn assert_output(
    app: &KafkaStreams,
    bootstrap: &str,
    topic: &str,
    expected: &HashMap<String, String>,
) {
    let got = read_strings(bootstrap, topic, expected);
    assert_eq!(
        &got,
        expected,
        "output topic `{topic}`; application state {:?}, error {:?}, metrics {:?}",
        app.state(),
        app.error(),
        app.metrics()
    );
}

fn partition_count(bootstrap: &str, topic: &str) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap();
    md.topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len())
}

fn map(entries: &[(&str, &str)]) -> HashMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Clicks (no key, value `user:click`, 1 partition) are re-keyed by user and left-joined with
/// the users table (3 partitions): the join repartitions the clicks into as many partitions as
/// the table has. Table updates and deletes change later results and emit nothing themselves.
fn stream_table_left_join_after_a_key_change_sees_table_updates(bootstrap: &str) {
    let (clicks, users, out) = (unique("clicks"), unique("users"), unique("clicks-out"));
    testing::create_topic(bootstrap, &clicks, 1).unwrap();
    testing::create_topic(bootstrap, &users, 3).unwrap();
    testing::create_topic(bootstrap, &out, 2).unwrap();
    let user_rows: Vec<(String, String)> = (1..=5)
        .map(|i| (format!("u{i}"), "eu".to_string()))
        .collect();
    produce(
        bootstrap,
        &users,
        &user_rows
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))
            .collect::<Vec<_>>(),
    );

    let b = StreamsBuilder::new();
    let table = b.table::<String, String>(&users);
    b.stream::<Option<String>, String>(&clicks)
        .map(|_, v| {
            let (user, click) = v.split_once(':').unwrap();
            (user.to_string(), click.to_string())
        })
        .left_join_with(
            &table,
            |click, region| format!("{click}@{}", region.map_or("unknown", String::as_str)),
            Joined::as_name("clicks-by-user"),
        )
        .to(&out);
    let dir = tempfile::tempdir().unwrap();
    let app_id = unique("join-app");
    let mut app =
        KafkaStreams::new(b.build().unwrap(), config(&app_id, bootstrap, dir.path())).unwrap();
    app.start().unwrap();
    wait_running(&app);
    // The table is loaded before any click is produced, so every lookup sees it.
    wait_until("the users to be loaded", Duration::from_secs(60), || {
        app.metrics().processed >= 5
    });
    let first: Vec<String> = (1..=6).map(|i| format!("u{i}:c1")).collect();
    produce(
        bootstrap,
        &clicks,
        &first
            .iter()
            .map(|v| (None, Some(v.as_str())))
            .collect::<Vec<_>>(),
    );
    let expected = map(&[
        ("u1", "c1@eu"),
        ("u2", "c1@eu"),
        ("u3", "c1@eu"),
        ("u4", "c1@eu"),
        ("u5", "c1@eu"),
        ("u6", "c1@unknown"),
    ]);
    assert_output(&app, bootstrap, &out, &expected);
    // 5 users + 6 clicks read + 6 clicks read back from the repartition topic.
    wait_until(
        "the clicks to be processed",
        Duration::from_secs(60),
        || app.metrics().processed == 17,
    );

    produce(
        bootstrap,
        &users,
        &[(Some("u1"), Some("us")), (Some("u2"), None)],
    );
    wait_until(
        "the user updates to be processed",
        Duration::from_secs(60),
        || app.metrics().processed == 19,
    );
    produce(
        bootstrap,
        &clicks,
        &[(None, Some("u1:c2")), (None, Some("u2:c2"))],
    );
    let mut expected = expected;
    expected.insert("u1".into(), "c2@us".into());
    expected.insert("u2".into(), "c2@unknown".into());
    assert_output(&app, bootstrap, &out, &expected);
    assert_eq!(
        testing::record_count(bootstrap, &out).unwrap(),
        8,
        "one result per click; table updates emit nothing"
    );
    // The repartition topic has the table's partition count, not the clicks' (co-partitioning).
    let repartition = format!("{app_id}-clicks-by-user-repartition");
    assert_eq!(partition_count(bootstrap, &repartition), 3);
    app.close().unwrap();
}

/// Orders (order -> `customer:amount`, 2 partitions) joined on their customer with customers
/// (customer -> name, 3 partitions): no co-partitioning is needed.
fn foreign_key_join_across_differently_partitioned_tables(bootstrap: &str) {
    let (orders, customers, out) = (unique("orders"), unique("customers"), unique("orders-out"));
    testing::create_topic(bootstrap, &orders, 2).unwrap();
    testing::create_topic(bootstrap, &customers, 3).unwrap();
    testing::create_topic(bootstrap, &out, 2).unwrap();
    produce(
        bootstrap,
        &customers,
        &[(Some("c1"), Some("Ada")), (Some("c2"), Some("Bob"))],
    );
    produce(
        bootstrap,
        &orders,
        &[
            (Some("o1"), Some("c1:10")),
            (Some("o2"), Some("c2:20")),
            (Some("o3"), Some("c3:30")), // no such customer
            (Some("o4"), Some("c1:40")),
        ],
    );

    let b = StreamsBuilder::new();
    let orders_t = b.table::<String, String>(&orders);
    let customers_t = b.table::<String, String>(&customers);
    orders_t
        .join_on_foreign_key_with(
            &customers_t,
            |o| o.split(':').next().unwrap().to_string(),
            |o, name| format!("{} by {name}", o.split(':').nth(1).unwrap()),
            TableJoined::as_name("orders-customers"),
            streams::Materialized::as_store("orders-with-customers"),
        )
        .to_stream()
        .to(&out);
    let dir = tempfile::tempdir().unwrap();
    let app_id = unique("fk-app");
    let mut app =
        KafkaStreams::new(b.build().unwrap(), config(&app_id, bootstrap, dir.path())).unwrap();
    app.start().unwrap();
    let expected = map(&[
        ("o1", "10 by Ada"),
        ("o2", "20 by Bob"),
        ("o4", "40 by Ada"),
    ]);
    assert_output(&app, bootstrap, &out, &expected);
    // The internal topics are co-partitioned with the table of the side that reads them.
    let registration = format!("{app_id}-orders-customers-subscription-registration-topic");
    let response = format!("{app_id}-orders-customers-subscription-response-topic");
    assert_eq!(partition_count(bootstrap, &registration), 3);
    assert_eq!(partition_count(bootstrap, &response), 2);
    assert!(testing::record_count(bootstrap, &registration).unwrap() >= 4);

    // A right update reaches both subscribers; a foreign key change moves o2; a right delete
    // retracts; a left delete retracts; a new customer completes o3.
    produce(bootstrap, &customers, &[(Some("c1"), Some("Ada L."))]);
    produce(bootstrap, &orders, &[(Some("o2"), Some("c1:20"))]);
    produce(
        bootstrap,
        &customers,
        &[(Some("c2"), None), (Some("c3"), Some("Cy"))],
    );
    produce(bootstrap, &orders, &[(Some("o4"), None)]);
    let expected = map(&[
        ("o1", "10 by Ada L."),
        ("o2", "20 by Ada L."),
        ("o3", "30 by Cy"),
    ]);
    assert_output(&app, bootstrap, &out, &expected);
    app.close().unwrap();
}

/// A global table (3 partitions) read whole before processing, joined with a stream
/// (2 partitions) on a key taken from the value; updates while running are seen.
fn global_table_join_bootstraps_and_follows_updates(bootstrap: &str) {
    let (countries, visits, out) = (unique("countries"), unique("visits"), unique("visits-out"));
    testing::create_topic(bootstrap, &countries, 3).unwrap();
    testing::create_topic(bootstrap, &visits, 2).unwrap();
    testing::create_topic(bootstrap, &out, 2).unwrap();
    let names: Vec<(String, String)> = (0..30)
        .map(|i| (format!("c{i}"), format!("country {i}")))
        .collect();
    produce(
        bootstrap,
        &countries,
        &names
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))
            .collect::<Vec<_>>(),
    );

    let b = StreamsBuilder::new();
    let table = b.global_table::<String, String>(&countries);
    b.stream::<String, String>(&visits)
        .left_join_global(
            &table,
            |_, code| code.clone(),
            |code, name| format!("{code}={}", name.map_or("?", String::as_str)),
        )
        .to(&out);
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(
        b.build().unwrap(),
        config(&unique("global-app"), bootstrap, dir.path()),
    )
    .unwrap();
    // start() returns once the global store holds the whole topic.
    app.start().unwrap();
    let visit_rows: Vec<(String, String)> = (0..30)
        .map(|i| (format!("visitor{i}"), format!("c{i}")))
        .chain([("visitor-x".to_string(), "nowhere".to_string())])
        .collect();
    produce(
        bootstrap,
        &visits,
        &visit_rows
            .iter()
            .map(|(k, v)| (Some(k.as_str()), Some(v.as_str())))
            .collect::<Vec<_>>(),
    );
    let mut expected: HashMap<String, String> = (0..30)
        .map(|i| (format!("visitor{i}"), format!("c{i}=country {i}")))
        .collect();
    expected.insert("visitor-x".into(), "nowhere=?".into());
    assert_output(&app, bootstrap, &out, &expected);

    // An update while running reaches the store through the global thread.
    produce(
        bootstrap,
        &countries,
        &[(Some("nowhere"), Some("Atlantis"))],
    );
    let mut seen = false;
    for attempt in 0..60 {
        let probe = format!("probe{attempt}");
        produce(
            bootstrap,
            &visits,
            &[(Some(probe.as_str()), Some("nowhere"))],
        );
        let t = testing::read_table(
            bootstrap,
            &out,
            Serdes::string(),
            Serdes::nullable(Serdes::string()),
            Duration::from_secs(2),
            |t| t.contains_key(&probe),
        )
        .unwrap();
        if t.get(&probe).map(String::as_str) == Some("nowhere=Atlantis") {
            seen = true;
            break;
        }
    }
    assert!(seen, "the global table update was never seen by the join");
    app.close().unwrap();
}

fn a_join_of_differently_partitioned_topics_fails_start_naming_them(bootstrap: &str) {
    let (clicks, users) = (unique("clicks"), unique("users"));
    testing::create_topic(bootstrap, &clicks, 2).unwrap();
    testing::create_topic(bootstrap, &users, 3).unwrap();
    let b = StreamsBuilder::new();
    let table = b.table::<String, String>(&users);
    b.stream::<String, String>(&clicks)
        .join(&table, |c, u| format!("{c}{u}"))
        .to(&unique("out"));
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(
        b.build().unwrap(),
        config(&unique("copart-app"), bootstrap, dir.path()),
    )
    .unwrap();
    match app.start() {
        Err(e @ StreamsError::CoPartitioning { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("{clicks}: 2")), "{msg}");
            assert!(msg.contains(&format!("{users}: 3")), "{msg}");
        }
        other => panic!("expected a co-partitioning error, got {other:?}"),
    }
}

/// Table rows stamped before every stream record, all on the broker before the application
/// starts: as in Kafka Streams (KIP-695), a task waits until each of its partitions has fetched
/// what the broker held at assignment, then takes records in timestamp order, so every stream
/// record finds its row (none joins with `None`).
fn a_table_written_before_the_stream_is_loaded_before_the_stream_joins(bootstrap: &str) {
    let (table, stream, output) = (unique("profiles"), unique("visits"), unique("enriched"));
    for t in [&table, &stream, &output] {
        testing::create_topic(bootstrap, t, 2).unwrap();
    }
    let n = 20_000;
    // Times near now: the brokers' retention would delete records stamped in 1970.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rows: Vec<testing::Outgoing> = (0..n)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(format!("row{i}").into_bytes()),
                Some(now - 60_000),
            )
        })
        .collect();
    // The stream first, so that its records are the first the broker can hand out.
    let visits: Vec<testing::Outgoing> = (0..n)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(b"visit".to_vec()),
                Some(now - 30_000),
            )
        })
        .collect();
    testing::produce(bootstrap, &stream, visits).unwrap();
    testing::produce(bootstrap, &table, rows).unwrap();

    let b = StreamsBuilder::new();
    let t = b.table::<String, String>(&table);
    b.stream::<String, String>(&stream)
        .left_join(&t, |v, row| {
            format!("{v}+{}", row.map_or("none", String::as_str))
        })
        .to(&output);
    let dir = tempfile::tempdir().unwrap();
    let mut app = KafkaStreams::new(
        b.build().unwrap(),
        config(&unique("kip695"), bootstrap, dir.path()),
    )
    .unwrap();
    app.start().unwrap();
    let got = testing::read_records(
        bootstrap,
        &output,
        Serdes::string(),
        Serdes::string(),
        Duration::from_secs(90),
        |r| r.len() >= n,
    )
    .unwrap();
    app.close().unwrap();
    assert_eq!(got.len(), n);
    let unjoined = got.iter().filter(|(_, v)| v.ends_with("+none")).count();
    assert_eq!(
        unjoined, 0,
        "stream records processed before their table rows were loaded"
    );
}
