//! Windowed aggregations, final results and stream-stream joins end to end, on Apache Kafka and
//! on the bundled broker: the same tests against both.

mod common;

use std::time::Duration;

use common::{unique, wait_running, wait_until};
use std::collections::BTreeMap;

use common::tweets::{self, Tweet};
use streams::{KafkaStreams, Serdes, StreamsBuilder, StreamsConfig};
use streams_core::window::{TimeWindows, Windowed};
use streams_dsl::stream_join::JoinWindows;
use streams_dsl::suppress::{BufferConfig, Suppressed};
use streams_dsl::Materialized;
use streams_testkit as testing;

on_both_brokers!(
    final_window_counts_survive_a_restart_mid_window,
    tweets_final_minute_counts_survive_a_jump_of_days,
    stream_stream_left_join_emits_matches_then_unmatched
);

fn config(bootstrap: &str, app_id: &str, dir: &std::path::Path) -> StreamsConfig {
    StreamsConfig::new(app_id, bootstrap)
        .set("state.dir", dir.to_str().unwrap())
        .set("commit.interval.ms", "200")
        .set("consumer.session.timeout.ms", "10000")
        .set("consumer.heartbeat.interval.ms", "500")
}

/// The start of a 10 s window about a minute ago: record times in these tests are offsets from
/// it. Real times matter: windowed changelogs are `compact,delete` with retention relative to
/// the wall clock (window retention + 1 day), so records stamped in 1970 can be deleted by
/// the broker's retention check before a restart restores them, as in Kafka Streams.
fn base_time() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now - now % 10_000 - 60_000
}

/// Produces (key, value, time offset from `base`) records.
fn produce(bootstrap: &str, topic: &str, base: i64, records: &[(&str, &str, i64)]) {
    testing::produce(
        bootstrap,
        topic,
        records.iter().map(|(k, v, ts)| {
            (
                Some(k.as_bytes().to_vec()),
                Some(v.as_bytes().to_vec()),
                Some(base + *ts),
            )
        }),
    )
    .expect("produce");
}

fn final_counts_app(
    bootstrap: &str,
    app_id: &str,
    input: &str,
    output: &str,
    dir: &std::path::Path,
) -> KafkaStreams {
    let b = StreamsBuilder::new();
    b.stream::<String, String>(input)
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(10)))
        .count_with(Materialized::as_store("counts"))
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()).with_name("final"))
        .to_stream()
        .to(output);
    let mut app = KafkaStreams::new(b.build().unwrap(), config(bootstrap, app_id, dir)).unwrap();
    app.start().unwrap();
    app
}

/// Counts of window [0, 10 s) are final only once stream time reaches 10 s. The application
/// stops half-way through the window and a new instance with empty local state finishes it: the
/// window store and the suppression buffer come back from their changelogs, and each final
/// count is emitted exactly once.
fn final_window_counts_survive_a_restart_mid_window(bootstrap: &str) {
    let (input, output, app_id) = (unique("clicks"), unique("final-counts"), unique("win"));
    testing::create_topic(bootstrap, &input, 1).unwrap();
    testing::create_topic(bootstrap, &output, 1).unwrap();
    let base = base_time();
    produce(
        bootstrap,
        &input,
        base,
        &[
            ("a", "x", 1_000),
            ("b", "x", 2_000),
            ("a", "x", 3_000),
            ("a", "x", 4_000),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut app = final_counts_app(bootstrap, &app_id, &input, &output, dir.path());
    wait_running(&app);
    wait_until(
        "the first records to be processed",
        Duration::from_secs(60),
        || app.metrics().processed >= 4,
    );
    app.close().unwrap();
    assert_eq!(
        testing::record_count(bootstrap, &output).unwrap(),
        0,
        "no window has closed"
    );

    // The rest of the window, then a record at 12 s that closes it.
    produce(
        bootstrap,
        &input,
        base,
        &[("b", "x", 9_000), ("a", "x", 12_000)],
    );
    let other_dir = tempfile::tempdir().unwrap();
    let mut app = final_counts_app(bootstrap, &app_id, &input, &output, other_dir.path());
    wait_running(&app);
    let got: Vec<(Windowed<String>, Option<i64>)> = testing::read_records(
        bootstrap,
        &output,
        Serdes::time_windowed(Serdes::string(), 10_000),
        Serdes::nullable(Serdes::i64()),
        Duration::from_secs(60),
        |r| r.len() >= 2,
    )
    .unwrap();
    let mut finals: Vec<(String, i64, Option<i64>)> = got
        .into_iter()
        .map(|(k, v)| (k.key, k.window.start, v))
        .collect();
    finals.sort();
    assert_eq!(
        finals,
        vec![
            ("a".to_string(), base, Some(3)),
            ("b".to_string(), base, Some(2))
        ]
    );
    // Later commits change nothing: no repeats, and [10 s, 20 s) is still open. Two more
    // commits (each flushes the caches downstream) and the closing one must add nothing.
    let commits = app.metrics().commits;
    wait_until("two more commits", Duration::from_secs(30), || {
        app.metrics().commits >= commits + 2
    });
    app.close().unwrap();
    assert_eq!(testing::record_count(bootstrap, &output).unwrap(), 2);
}

/// A left join within 5 s: matched pairs come out as they meet; left records without a partner
/// come out once stream time has passed their window.
fn stream_stream_left_join_emits_matches_then_unmatched(bootstrap: &str) {
    let (left, right, output, app_id) = (
        unique("orders"),
        unique("payments"),
        unique("joined"),
        unique("join"),
    );
    for t in [&left, &right, &output] {
        testing::create_topic(bootstrap, t, 1).unwrap();
    }
    let b = StreamsBuilder::new();
    let orders = b.stream::<String, String>(&left);
    let payments = b.stream::<String, String>(&right);
    orders
        .left_join_windowed(
            &payments,
            |o, p| format!("{o}/{}", p.map_or("unpaid", String::as_str)),
            JoinWindows::of_time_difference_with_no_grace(Duration::from_secs(5)),
        )
        .to(&output);
    let dir = tempfile::tempdir().unwrap();
    let mut app =
        KafkaStreams::new(b.build().unwrap(), config(bootstrap, &app_id, dir.path())).unwrap();
    app.start().unwrap();
    wait_running(&app);
    // One side at a time, each processed before the next: the task must not see the later
    // payment first (stream time would make the orders late).
    let processed = |n: u64| {
        wait_until("records to be processed", Duration::from_secs(60), || {
            app.metrics().processed >= n
        })
    };
    let base = base_time();
    produce(
        bootstrap,
        &left,
        base,
        &[
            ("o1", "book", 1_000),
            ("o2", "pen", 1_500),
            ("o3", "ink", 2_000),
        ],
    );
    processed(3);
    produce(bootstrap, &right, base, &[("o1", "paid", 2_500)]);
    processed(4);
    // Stream time moves to 30 s: o2 (no payment) and o3 (payment 28 s late) are unpaid.
    produce(bootstrap, &right, base, &[("o3", "paid", 30_000)]);
    processed(5);
    produce(bootstrap, &left, base, &[("tick", "-", 40_000)]);
    let got = testing::read_records(
        bootstrap,
        &output,
        Serdes::string(),
        Serdes::string(),
        Duration::from_secs(60),
        |r| r.len() >= 3,
    )
    .unwrap();
    let mut got: Vec<(String, String)> = got;
    got.sort();
    assert_eq!(
        got,
        vec![
            ("o1".to_string(), "book/paid".to_string()),
            ("o2".to_string(), "pen/unpaid".to_string()),
            ("o3".to_string(), "ink/unpaid".to_string()),
        ]
    );
    app.close().unwrap();
}

/// The tweets example's final per-minute hashtag counts on the shape that lost 90 of 100 of
/// them: ten minutes of tweets in order on one partition (ten a second, 0-3 of ten hashtags
/// each), then 64 tweets two days later with hashtags of their own, which close every window.
/// Every (hashtag, minute) count comes out exactly once and exactly right, and nothing else.
fn tweets_final_minute_counts_survive_a_jump_of_days(bootstrap: &str) {
    const TAGS: [&str; 10] = [
        "rust",
        "kafka",
        "streaming",
        "tokio",
        "rocksdb",
        "async",
        "devops",
        "cloud",
        "bigdata",
        "realtime",
    ];
    let (input, app_id) = (unique("tweets"), unique("tweets-jump"));
    let (tags_topic, users_topic, minutes_topic) = (
        unique("hashtag-counts"),
        unique("user-tweet-counts"),
        unique("hashtag-counts-1m"),
    );
    for t in [&input, &tags_topic, &users_topic, &minutes_topic] {
        testing::create_topic(bootstrap, t, 1).unwrap();
    }
    // The ten minutes end two days before now, so that the later tweets are stamped about now
    // (brokers refuse timestamps far in the future).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 24 * 60 * 60 * 1000;
    let start = now - now % 60_000 - 2 * day - 10 * 60_000;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut all = Vec::new();
    for i in 0..6_000i64 {
        let mut text = format!("tweet {i}");
        for _ in 0..next() % 4 {
            text.push_str(&format!(" #{}", TAGS[(next() % 10) as usize]));
        }
        all.push(Tweet {
            id: i.to_string(),
            user: format!("user{}", i % 7),
            text,
            timestamp_ms: start + i * 100,
            lang: "en".into(),
        });
    }
    for i in 0..64i64 {
        all.push(Tweet {
            id: format!("later-{i}"),
            user: "later".into(),
            text: format!("two days on #later{}", i % 4),
            timestamp_ms: start + 10 * 60_000 + 2 * day + i * 100,
            lang: "en".into(),
        });
    }
    let mut expected: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for t in &all[..6_000] {
        for tag in tweets::hashtags(&t.text) {
            *expected
                .entry((tag, t.timestamp_ms - t.timestamp_ms % 60_000))
                .or_insert(0) += 1;
        }
    }
    assert_eq!(expected.len(), 100, "ten hashtags in ten minutes");
    testing::produce(
        bootstrap,
        &input,
        all.iter()
            .map(|t| (None, Some(serde_json::to_vec(t).unwrap()), None)),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    // The default commit interval: the ten minutes go through the caches between commits.
    let config = StreamsConfig::new(&app_id, bootstrap)
        .set("state.dir", dir.path().to_str().unwrap())
        .set("consumer.session.timeout.ms", "10000")
        .set("consumer.heartbeat.interval.ms", "500");
    let mut app = KafkaStreams::new(
        tweets::topology_to(&input, &tags_topic, &users_topic, &minutes_topic).unwrap(),
        config,
    )
    .unwrap();
    app.start().unwrap();
    wait_running(&app);
    let got: Vec<(Windowed<String>, Option<i64>)> = testing::read_records(
        bootstrap,
        &minutes_topic,
        Serdes::time_windowed(Serdes::string(), 60_000),
        Serdes::nullable(Serdes::i64()),
        Duration::from_secs(120),
        |r| r.len() >= expected.len(),
    )
    .unwrap();
    // Closing commits: whatever the application still had to emit is out once it returns.
    app.close().unwrap();
    let mut finals: BTreeMap<(String, i64), Vec<Option<i64>>> = BTreeMap::new();
    for (k, v) in got {
        finals.entry((k.key, k.window.start)).or_default().push(v);
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !finals.contains_key(*k))
        .collect();
    let wrong: Vec<_> = finals
        .iter()
        .filter(|(k, v)| expected.get(*k).map(|e| vec![Some(*e)]) != Some(v.to_vec()))
        .collect();
    assert!(
        missing.is_empty() && wrong.is_empty(),
        "{} of 100 final counts missing (first {:?}); {} wrong or repeated (first {:?})",
        missing.len(),
        missing.first(),
        wrong.len(),
        wrong.first()
    );
    assert_eq!(
        testing::record_count(bootstrap, &minutes_topic).unwrap(),
        100,
        "nothing but the 100 final counts, each once"
    );
}
