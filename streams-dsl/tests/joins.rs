//! Semantics of the joins, through the TopologyTestDriver: stream-table, table-table,
//! foreign-key and global-table joins, with updates and tombstones on either side.

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::{StreamsConfig, TopologyTestDriver};
use streams_dsl::{Joined, Materialized, StreamsBuilder, TableJoined};

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

fn opt_s() -> SerdeRef<Option<String>> {
    Serdes::nullable(Serdes::string())
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

fn kov(k: &str, v: Option<&str>) -> (String, Option<String>) {
    (k.to_string(), v.map(str::to_string))
}

#[test]
fn stream_table_inner_join_looks_up_the_current_value_and_table_updates_emit_nothing() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("clicks")
        .join(&users, |click, region| format!("{click}@{region}"))
        .to("out");
    let d = driver(b);
    let clicks = d.create_input_topic("clicks", s(), s());
    let users = d.create_input_topic("users", s(), s());
    let out = d.create_output_topic("out", s(), s());

    clicks.pipe_input_at("ada".into(), "home".into(), 10);
    assert!(out.is_empty(), "no table row yet: no result");
    users.pipe_input_at("ada".into(), "eu".into(), 20);
    assert!(out.is_empty(), "a table update alone emits nothing");
    clicks.pipe_input_at("ada".into(), "docs".into(), 30);
    users.pipe_input_at("ada".into(), "us".into(), 40);
    clicks.pipe_input_at("ada".into(), "blog".into(), 50);
    users.pipe_tombstone("ada".into(), 60).unwrap();
    clicks.pipe_input_at("ada".into(), "gone".into(), 70);
    let results = out.read_records_to_list();
    let got: Vec<(String, String, i64)> = results
        .into_iter()
        .map(|r| (r.key, r.value, r.timestamp))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ada".into(), "docs@eu".into(), 30),
            ("ada".into(), "blog@us".into(), 50),
        ],
        "results carry the stream record's timestamp; a deleted row joins nothing"
    );
}

#[test]
fn stream_table_left_join_emits_for_every_record() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("clicks")
        .left_join(&users, |click, region| {
            format!("{click}@{}", region.map_or("unknown", String::as_str))
        })
        .to("out");
    let d = driver(b);
    let clicks = d.create_input_topic("clicks", s(), s());
    let users = d.create_input_topic("users", s(), s());
    let out = d.create_output_topic("out", s(), s());
    clicks.pipe_input("ada".into(), "a".into());
    users.pipe_input("ada".into(), "eu".into());
    clicks.pipe_input("ada".into(), "b".into());
    users.pipe_tombstone("ada".into(), 0).unwrap();
    clicks.pipe_input("ada".into(), "c".into());
    clicks.pipe_input("bob".into(), "d".into());
    assert_eq!(
        out.read_key_values_to_list(),
        vec![
            kv("ada", "a@unknown"),
            kv("ada", "b@eu"),
            kv("ada", "c@unknown"),
            kv("bob", "d@unknown"),
        ]
    );
}

#[test]
fn stream_table_join_drops_and_counts_null_keys_but_a_left_join_keeps_them() {
    let b = StreamsBuilder::new();
    let users = b.table::<Option<String>, String>("users");
    let clicks = b.stream::<Option<String>, String>("clicks");
    clicks
        .join(&users, |c, r| format!("{c}@{r}"))
        .to_with("inner", streams_dsl::Produced::with(opt_s(), s()));
    clicks
        .left_join(&users, |c, r| format!("{c}@{r:?}"))
        .to_with("left", streams_dsl::Produced::with(opt_s(), s()));
    let d = driver(b);
    let users = d.create_input_topic("users", opt_s(), s());
    let clicks = d.create_input_topic("clicks", opt_s(), s());
    users.pipe_input(Some("ada".into()), "eu".into());
    clicks.pipe_input(None, "anonymous".into());
    clicks.pipe_input(Some("ada".into()), "known".into());
    let inner = d.create_output_topic("inner", opt_s(), s());
    let left = d.create_output_topic("left", opt_s(), s());
    assert_eq!(
        inner.read_key_values_to_list(),
        vec![(Some("ada".to_string()), "known@eu".to_string())]
    );
    assert_eq!(
        left.read_key_values_to_list(),
        vec![
            (None, "anonymous@None".to_string()),
            (Some("ada".to_string()), "known@Some(\"eu\")".to_string())
        ]
    );
    assert_eq!(
        d.metrics().dropped,
        1,
        "the inner join dropped the null key"
    );
}

#[test]
fn a_key_changing_operation_before_a_join_repartitions_the_stream() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("orders")
        // order id -> user: the key changes, so the join must repartition by user first.
        .select_key(|_, user| user.clone())
        .join_with(
            &users,
            |user, region| format!("{user} in {region}"),
            Joined::as_name("orders-by-user"),
        )
        .to("out");
    let topology = b.build().unwrap();
    let text = topology.describe().to_string();
    assert!(
        text.contains("Sink: orders-by-user-repartition-sink (topic: orders-by-user-repartition)"),
        "{text}"
    );
    assert!(
        text.contains(
            "Source: orders-by-user-repartition-source (topics: [orders-by-user-repartition])"
        ),
        "{text}"
    );
    assert_eq!(topology.describe().subtopology_count(), 2, "{text}");
    let d = TopologyTestDriver::new(topology, StreamsConfig::new("app", "unused:9092")).unwrap();
    d.create_input_topic("users", s(), s())
        .pipe_input("ada".into(), "eu".into());
    d.create_input_topic("orders", s(), s())
        .pipe_input("order-1".into(), "ada".into());
    assert_eq!(
        d.create_output_topic("out", s(), s())
            .read_key_values_to_list(),
        vec![kv("ada", "ada in eu")]
    );
}

#[test]
fn a_join_without_a_key_change_needs_no_repartition() {
    let b = StreamsBuilder::new();
    let users = b.table::<String, String>("users");
    b.stream::<String, String>("clicks")
        .map_values(|v| v.to_uppercase())
        .join(&users, |c, r| format!("{c}{r}"))
        .to("out");
    let t = b.build().unwrap();
    let text = t.describe().to_string();
    assert!(!text.contains("repartition"), "{text}");
    assert_eq!(
        t.describe().subtopology_count(),
        1,
        "stream and table tasks are one: {text}"
    );
}

#[test]
fn a_table_without_a_store_is_materialized_for_the_join() {
    let b = StreamsBuilder::new();
    let users = b
        .table::<String, String>("users")
        .filter(|_, region| region != "hidden");
    b.stream::<String, String>("clicks")
        .left_join(&users, |c, r| format!("{c}@{r:?}"))
        .to("out");
    let d = driver(b);
    let users = d.create_input_topic("users", s(), s());
    let clicks = d.create_input_topic("clicks", s(), s());
    users.pipe_input("ada".into(), "eu".into());
    clicks.pipe_input("ada".into(), "1".into());
    // The row stops matching the filter: the materialized table deletes it.
    users.pipe_input("ada".into(), "hidden".into());
    clicks.pipe_input("ada".into(), "2".into());
    assert_eq!(
        d.create_output_topic("out", s(), s())
            .read_key_values_to_list(),
        vec![kv("ada", "1@Some(\"eu\")"), kv("ada", "2@None")]
    );
}

/// Pipes the same sequence into `left` and `right` for the table-table tests.
fn table_table_sequence(d: &TopologyTestDriver) {
    let left = d.create_input_topic("left", s(), s());
    let right = d.create_input_topic("right", s(), s());
    left.pipe_input_at("a".into(), "1".into(), 1); // left only
    right.pipe_input_at("a".into(), "x".into(), 2); // both
    left.pipe_input_at("a".into(), "2".into(), 3); // left update
    right.pipe_tombstone("a".into(), 4).unwrap(); // right deleted
    left.pipe_tombstone("a".into(), 5).unwrap(); // left deleted: nothing left
    right.pipe_input_at("b".into(), "y".into(), 6); // right only
    right.pipe_input_at("b".into(), "z".into(), 7); // right update
}

fn show(l: Option<&String>, r: Option<&String>) -> String {
    format!(
        "{}-{}",
        l.map_or("null", String::as_str),
        r.map_or("null", String::as_str)
    )
}

#[test]
fn table_table_inner_join_updates_and_retracts() {
    let b = StreamsBuilder::new();
    let left = b.table::<String, String>("left");
    let right = b.table::<String, String>("right");
    let joined = left.join_with(
        &right,
        |l, r| show(Some(l), Some(r)),
        Materialized::as_store("joined-store"),
    );
    joined.to_stream().to("out");
    // Counting the result's rows checks the old values: every change retracts the previous row.
    joined
        .group_by(|_, _| ("rows".to_string(), 1i64))
        .count()
        .to_stream()
        .to("rows");
    let d = driver(b);
    table_table_sequence(&d);
    let out = d.create_output_topic("out", s(), opt_s());
    let got: Vec<((String, Option<String>), i64)> = out
        .read_records_to_list()
        .into_iter()
        .map(|r| ((r.key, r.value), r.timestamp))
        .collect();
    assert_eq!(
        got,
        vec![
            (kov("a", Some("1-x")), 2),
            (kov("a", Some("2-x")), 3),
            (kov("a", None), 4), // the right row left: the result row is deleted
        ]
    );
    let rows = d.create_output_topic("rows", s(), Serdes::nullable(Serdes::i64()));
    let counts: Vec<Option<i64>> = rows.read_values_to_list();
    assert_eq!(counts.last(), Some(&Some(0)), "{counts:?}");
    assert!(
        counts.iter().all(|c| matches!(c, Some(0..=1))),
        "{counts:?}"
    );
    let store = d
        .get_key_value_store::<String, String>("joined-store")
        .unwrap();
    assert_eq!(store.get(&"a".to_string()).unwrap(), None);
}

#[test]
fn table_table_left_join_keeps_left_rows() {
    let b = StreamsBuilder::new();
    let left = b.table::<String, String>("left");
    let right = b.table::<String, String>("right");
    left.left_join(&right, |l, r| show(Some(l), r))
        .to_stream()
        .to("out");
    let d = driver(b);
    table_table_sequence(&d);
    assert_eq!(
        d.create_output_topic("out", s(), opt_s())
            .read_key_values_to_list(),
        vec![
            kov("a", Some("1-null")),
            kov("a", Some("1-x")),
            kov("a", Some("2-x")),
            kov("a", Some("2-null")),
            kov("a", None),
        ],
        "right-only rows (b) are not in a left join"
    );
}

#[test]
fn table_table_outer_join_keeps_rows_of_either_side() {
    let b = StreamsBuilder::new();
    let left = b.table::<String, String>("left");
    let right = b.table::<String, String>("right");
    let joined = left.outer_join(&right, show);
    joined.to_stream().to("out");
    joined
        .group_by(|_, _| ("rows".to_string(), 1i64))
        .count()
        .to_stream()
        .to("rows");
    let d = driver(b);
    table_table_sequence(&d);
    assert_eq!(
        d.create_output_topic("out", s(), opt_s())
            .read_key_values_to_list(),
        vec![
            kov("a", Some("1-null")),
            kov("a", Some("1-x")),
            kov("a", Some("2-x")),
            kov("a", Some("2-null")),
            kov("a", None),
            kov("b", Some("null-y")),
            kov("b", Some("null-z")),
        ]
    );
    let counts = d
        .create_output_topic("rows", s(), Serdes::nullable(Serdes::i64()))
        .read_values_to_list();
    assert_eq!(counts.last(), Some(&Some(1)), "only b is left: {counts:?}");
}

#[test]
fn table_table_join_of_filtered_tables_sees_rows_leave_the_filter() {
    let b = StreamsBuilder::new();
    let left = b
        .table::<String, String>("left")
        .filter(|_, v| !v.starts_with('-'));
    let right = b
        .table::<String, String>("right")
        .map_values(|v| v.to_uppercase());
    left.join(&right, |l, r| format!("{l}{r}"))
        .to_stream()
        .to("out");
    let d = driver(b);
    let l = d.create_input_topic("left", s(), s());
    let r = d.create_input_topic("right", s(), s());
    l.pipe_input("k".into(), "a".into());
    r.pipe_input("k".into(), "x".into());
    l.pipe_input("k".into(), "-hidden".into());
    l.pipe_input("k".into(), "b".into());
    assert_eq!(
        d.create_output_topic("out", s(), opt_s())
            .read_key_values_to_list(),
        vec![kov("k", Some("aX")), kov("k", None), kov("k", Some("bX"))]
    );
}

#[test]
fn stream_global_table_joins_on_a_selected_key() {
    let b = StreamsBuilder::new();
    let countries = b.global_table::<String, String>("countries");
    let store_name = countries.queryable_store_name().to_string();
    assert!(
        store_name.starts_with("countries-STATE-STORE-"),
        "{store_name}"
    );
    let visits = b.stream::<String, String>("visits");
    visits
        .join_global(
            &countries,
            |_, code| code.clone(),
            |code, name| format!("{code}: {name}"),
        )
        .to("inner");
    visits
        .left_join_global(
            &countries,
            |_, code| code.clone(),
            |code, name| format!("{code}: {}", name.map_or("?", String::as_str)),
        )
        .to("left");
    let topology = b.build().unwrap();
    assert_eq!(
        topology.describe().subtopology_count(),
        1,
        "a global table is not part of the stream's sub-topology"
    );
    let d = TopologyTestDriver::new(topology, StreamsConfig::new("app", "unused:9092")).unwrap();
    let countries = d.create_input_topic("countries", s(), s());
    let visits = d.create_input_topic("visits", s(), s());
    visits.pipe_input("ada".into(), "fr".into());
    countries.pipe_input("fr".into(), "France".into());
    visits.pipe_input("ada".into(), "fr".into());
    countries.pipe_input("fr".into(), "République française".into());
    visits.pipe_input("bob".into(), "fr".into());
    countries.pipe_tombstone("fr".into(), 0).unwrap();
    visits.pipe_input("eve".into(), "fr".into());
    assert_eq!(
        d.create_output_topic("inner", s(), s())
            .read_key_values_to_list(),
        vec![
            kv("ada", "fr: France"),
            kv("bob", "fr: République française")
        ]
    );
    assert_eq!(
        d.create_output_topic("left", s(), s())
            .read_key_values_to_list(),
        vec![
            kv("ada", "fr: ?"),
            kv("ada", "fr: France"),
            kv("bob", "fr: République française"),
            kv("eve", "fr: ?"),
        ]
    );
    assert!(
        !d.output_topic_names().contains(&"countries".to_string()),
        "records piped to a global table's topic are input, not output"
    );
    let store = d
        .get_key_value_store::<String, String>(&store_name)
        .expect("the global store is readable");
    assert_eq!(
        store.get(&"fr".to_string()).unwrap(),
        None,
        "the tombstone deleted it"
    );
}

#[test]
fn a_global_table_topic_cannot_also_be_a_stream_source() {
    let b = StreamsBuilder::new();
    b.global_table::<String, String>("countries");
    b.stream::<String, String>("countries").to("out");
    let err = b.build().unwrap_err().to_string();
    assert!(err.contains("`countries` backs global store"), "{err}");
}

/// Orders (order id -> "customer id:amount") joined with customers (i64 id -> name).
fn fk_join_driver(left: bool) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    let orders = b.table::<String, String>("orders");
    let customers = b.table::<i64, String>("customers");
    let customer_of = |order: &String| -> i64 { order.split(':').next().unwrap().parse().unwrap() };
    let amount = |order: &String| order.split(':').nth(1).unwrap().to_string();
    let joined = if left {
        orders.left_join_on_foreign_key_with(
            &customers,
            customer_of,
            move |order, name| format!("{} by {}", amount(order), name.map_or("?", String::as_str)),
            TableJoined::as_name("orders-customers"),
            Materialized::as_store("orders-with-customers"),
        )
    } else {
        orders.join_on_foreign_key(&customers, customer_of, move |order, name| {
            format!("{} by {name}", amount(order))
        })
    };
    joined.to_stream().to("out");
    driver(b)
}

fn fk_join_sequence(d: &TopologyTestDriver) -> Vec<(String, Option<String>)> {
    let orders = d.create_input_topic("orders", s(), s());
    let customers = d.create_input_topic("customers", Serdes::i64(), s());
    orders.pipe_input("o1".into(), "1:10".into()); // customer 1 unknown yet
    customers.pipe_input(1, "Ada".into());
    orders.pipe_input("o1".into(), "2:10".into()); // the foreign key moves to an unknown customer
    customers.pipe_input(2, "Bob".into());
    customers.pipe_input(2, "Robert".into()); // right update
    orders.pipe_input("o2".into(), "2:5".into());
    customers.pipe_tombstone(2, 0).unwrap(); // right delete: both orders lose it
    orders.pipe_tombstone("o1".into(), 0).unwrap(); // left delete
    customers.pipe_input(1, "Ada L.".into()); // o1 no longer subscribes to customer 1
    d.create_output_topic("out", s(), opt_s())
        .read_key_values_to_list()
}

#[test]
fn foreign_key_inner_join_follows_key_changes_updates_and_deletes() {
    let d = fk_join_driver(false);
    assert_eq!(
        fk_join_sequence(&d),
        vec![
            kov("o1", Some("10 by Ada")),
            kov("o1", None), // moved to customer 2, who does not exist yet
            kov("o1", Some("10 by Bob")),
            kov("o1", Some("10 by Robert")),
            kov("o2", Some("5 by Robert")),
            kov("o1", None),
            kov("o2", None),
        ]
    );
    let text = d.describe();
    assert!(
        text.contains("-subscription-registration-topic")
            && text.contains("-subscription-response-topic"),
        "{text}"
    );
    assert!(
        !d.output_topic_names()
            .iter()
            .any(|t| t.contains("subscription")),
        "internal topics are not outputs: {:?}",
        d.output_topic_names()
    );
}

#[test]
fn foreign_key_left_join_keeps_every_left_row() {
    let d = fk_join_driver(true);
    assert_eq!(
        fk_join_sequence(&d),
        vec![
            kov("o1", Some("10 by ?")),
            kov("o1", Some("10 by Ada")),
            kov("o1", Some("10 by ?")),
            kov("o1", Some("10 by Bob")),
            kov("o1", Some("10 by Robert")),
            kov("o2", Some("5 by Robert")),
            kov("o1", Some("10 by ?")),
            kov("o2", Some("5 by ?")),
            kov("o1", None),
        ]
    );
    let store = d
        .get_key_value_store::<String, String>("orders-with-customers")
        .unwrap();
    assert_eq!(
        store.get(&"o2".to_string()).unwrap().as_deref(),
        Some("5 by ?")
    );
    assert_eq!(store.get(&"o1".to_string()).unwrap(), None);
    let text = d.describe();
    assert!(
        text.contains("Sink: orders-customers-subscription-registration-topic-sink (topic: orders-customers-subscription-registration-topic)"),
        "{text}"
    );
    assert!(
        text.contains("orders-customers-subscription-store"),
        "{text}"
    );
}

/// Orders ("customer" or "" for none) joined with customers on a nullable foreign key.
fn null_fk_driver(left: bool) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    let orders = b.table::<String, String>("orders");
    let customers = b.table::<Option<String>, String>("customers");
    let customer_of = |order: &String| (!order.is_empty()).then(|| order.clone());
    if left {
        orders.left_join_on_foreign_key(&customers, customer_of, |_, name| {
            name.cloned().unwrap_or_else(|| "?".into())
        })
    } else {
        orders.join_on_foreign_key(&customers, customer_of, |_, name| name.clone())
    }
    .to_stream()
    .to("out");
    driver(b)
}

fn null_fk_sequence(d: &TopologyTestDriver) -> Vec<(String, Option<String>)> {
    let orders = d.create_input_topic("orders", s(), s());
    let customers = d.create_input_topic("customers", opt_s(), s());
    customers.pipe_input(Some("c1".into()), "Ada".into());
    orders.pipe_input("o1".into(), "".into()); // no customer
    orders.pipe_input("o2".into(), "c1".into());
    orders.pipe_input("o2".into(), "".into()); // the customer is removed from the order
    d.create_output_topic("out", s(), opt_s())
        .read_key_values_to_list()
}

#[test]
fn a_null_foreign_key_joins_with_none_in_a_left_join_and_retracts_in_an_inner_join() {
    let d = null_fk_driver(true);
    assert_eq!(
        null_fk_sequence(&d),
        vec![
            kov("o1", Some("?")),
            kov("o2", Some("Ada")),
            kov("o2", Some("?")),
        ]
    );
    assert_eq!(d.metrics().dropped, 0);
    let d = null_fk_driver(false);
    assert_eq!(
        null_fk_sequence(&d),
        vec![kov("o2", Some("Ada")), kov("o2", None)]
    );
    assert_eq!(d.metrics().dropped, 2, "both null foreign keys are counted");
}

#[test]
fn the_foreign_key_can_come_from_the_key() {
    let b = StreamsBuilder::new();
    // Line items keyed `order/line`, joined with their order.
    let items = b.table::<String, String>("items");
    let orders = b.table::<String, String>("orders");
    items
        .left_join_on_foreign_key_kv(
            &orders,
            |key, _| key.split('/').next().unwrap().to_string(),
            |item, order| format!("{item} in {}", order.map_or("?", String::as_str)),
            TableJoined::default(),
            Materialized::default(),
        )
        .to_stream()
        .to("out");
    let d = driver(b);
    d.create_input_topic("orders", s(), s())
        .pipe_input("A".into(), "order A".into());
    let items = d.create_input_topic("items", s(), s());
    items.pipe_input("A/1".into(), "pen".into());
    items.pipe_input("B/1".into(), "ink".into());
    assert_eq!(
        d.create_output_topic("out", s(), opt_s())
            .read_key_values_to_list(),
        vec![
            kov("A/1", Some("pen in order A")),
            kov("B/1", Some("ink in ?")),
        ]
    );
}
