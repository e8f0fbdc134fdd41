//! The example topologies' semantics, through the TopologyTestDriver (no broker).

// The examples' own topologies (and their unit tests), so that these tests drive exactly what
// the examples run.
#[path = "../examples/tweets/topology.rs"]
#[allow(dead_code)]
pub mod tweets;
#[path = "../examples/wordcount/topology.rs"]
#[allow(dead_code)]
pub mod wordcount;

use streams::{Serdes, StreamsConfig, TopologyTestDriver};
use tweets::{Tweet, TweetGenerator, User};

#[test]
fn wordcount_matches_the_java_demo() {
    let t = wordcount::topology(wordcount::INPUT_TOPIC, wordcount::OUTPUT_TOPIC).unwrap();
    let d = TopologyTestDriver::new(
        t,
        StreamsConfig::new(wordcount::APPLICATION_ID, "unused:9092")
            .set("statestore.cache.max.bytes", "0"),
    )
    .unwrap();
    let input = d.create_input_topic(
        wordcount::INPUT_TOPIC,
        Serdes::nullable(Serdes::bytes()),
        Serdes::string(),
    );
    input.pipe_input(None, "Hello Kafka Streams".into());
    input.pipe_input(None, "All streams lead to Kafka".into());
    input.pipe_input(None, "Join Kafka Summit".into());
    // The raw bytes are what Java's StringSerializer / LongSerializer write.
    let raw = d.create_output_topic(wordcount::OUTPUT_TOPIC, Serdes::bytes(), Serdes::bytes());
    let first = raw.read_record();
    assert_eq!(first.key, b"hello".to_vec());
    assert_eq!(first.value, 1i64.to_be_bytes().to_vec());
    let rest: Vec<(String, i64)> = raw
        .read_key_values_to_list()
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k).unwrap(),
                i64::from_be_bytes(v.try_into().unwrap()),
            )
        })
        .collect();
    // One update per word read (the demo runs without cache), in input order.
    assert_eq!(
        rest,
        vec![
            ("kafka".into(), 1),
            ("streams".into(), 1),
            ("all".into(), 1),
            ("streams".into(), 2),
            ("lead".into(), 1),
            ("to".into(), 1),
            ("kafka".into(), 2),
            ("join".into(), 1),
            ("kafka".into(), 3),
            ("summit".into(), 1),
        ]
    );
    let store = d
        .get_key_value_store::<String, i64>(wordcount::STORE)
        .unwrap();
    assert_eq!(store.get(&"kafka".into()).unwrap(), Some(3));
}

#[test]
fn tweets_count_hashtags_once_per_tweet_and_tweets_per_user() {
    let d = TopologyTestDriver::new(
        tweets::topology(tweets::INPUT_TOPIC).unwrap(),
        StreamsConfig::new("tweets", "unused:9092"),
    )
    .unwrap();
    let input = d.create_input_topic(
        tweets::INPUT_TOPIC,
        Serdes::nullable(Serdes::string()),
        Serdes::json::<Tweet>(),
    );
    let tweet = |id: &str, user: &str, text: &str, ts: i64| Tweet {
        id: id.into(),
        user: user.into(),
        text: text.into(),
        timestamp_ms: ts,
        lang: "en".into(),
    };
    input.pipe_input(None, tweet("1", "ada", "#Rust and #rust and #Kafka", 1000));
    input.pipe_input(None, tweet("2", "ada", "more #kafka", 2000));
    input.pipe_input(None, tweet("3", "alan", "no tags", 3000));
    let tags = d.create_output_topic(
        tweets::HASHTAG_TOPIC,
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
    );
    let records = tags.read_records_to_list();
    assert_eq!(
        records[0].timestamp, 1000,
        "event time comes from timestamp_ms"
    );
    let tags: std::collections::HashMap<String, Option<i64>> =
        records.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(
        tags["rust"],
        Some(1),
        "a tweet counts once per distinct hashtag"
    );
    assert_eq!(tags["kafka"], Some(2));
    let users = d
        .create_output_topic(
            tweets::USER_TOPIC,
            Serdes::string(),
            Serdes::nullable(Serdes::i64()),
        )
        .read_key_values_to_map();
    assert_eq!(users["ada"], Some(2));
    assert_eq!(users["alan"], Some(1));

    // Per-minute final counts: nothing until the minute closes (end + 5 s grace).
    let minute = d.create_output_topic(
        tweets::HASHTAG_MINUTE_TOPIC,
        Serdes::time_windowed(Serdes::string(), 60_000),
        Serdes::nullable(Serdes::i64()),
    );
    assert!(minute.is_empty());
    input.pipe_input(None, tweet("4", "alan", "#rust late in the minute", 59_000));
    input.pipe_input(None, tweet("5", "alan", "#rust next minute", 64_000));
    assert!(minute.is_empty(), "the first minute closes at 65 s");
    input.pipe_input(None, tweet("6", "alan", "#kafka", 65_000));
    let mut finals: Vec<(String, i64, Option<i64>)> = minute
        .read_key_values_to_list()
        .into_iter()
        .map(|(k, v)| (k.key, k.window.start, v))
        .collect();
    finals.sort();
    assert_eq!(
        finals,
        vec![
            ("kafka".to_string(), 0, Some(2)),
            ("rust".to_string(), 0, Some(2)),
        ]
    );
    // The windowed key is Kafka Streams' bytes: hashtag then the 8-byte window start.
    input.pipe_input(None, tweet("7", "alan", "#x", 200_000));
    let raw = d.create_output_topic(
        tweets::HASHTAG_MINUTE_TOPIC,
        Serdes::bytes(),
        Serdes::bytes(),
    );
    let (k, v) = raw.read_key_value();
    assert!(k.ends_with(&60_000i64.to_be_bytes()), "{k:?}");
    assert_eq!(v.len(), 8);

    let mut g = TweetGenerator::new(1, 0);
    let a = g.next_tweet();
    let b = g.next_tweet();
    assert_ne!(a.id, b.id);
    assert!(b.timestamp_ms > a.timestamp_ms);
}

#[test]
fn tweets_count_per_country_of_their_user_and_unknown_users_under_unknown() {
    let d = TopologyTestDriver::new(
        tweets::topology(tweets::INPUT_TOPIC).unwrap(),
        StreamsConfig::new("tweets", "unused:9092"),
    )
    .unwrap();
    let users = d.create_input_topic(
        tweets::USERS_TOPIC,
        Serdes::string(),
        Serdes::json::<User>(),
    );
    let input = d.create_input_topic(
        tweets::INPUT_TOPIC,
        Serdes::nullable(Serdes::string()),
        Serdes::json::<Tweet>(),
    );
    let tweet = |id: &str, user: &str, ts: i64| Tweet {
        id: id.into(),
        user: user.into(),
        text: "hello".into(),
        timestamp_ms: ts,
        lang: "en".into(),
    };
    let user = |name: &str, country: &str| User {
        user: name.into(),
        country: country.into(),
    };
    users.pipe_input("ada".into(), user("ada", "gb"));
    users.pipe_input("alan".into(), user("alan", "gb"));
    input.pipe_input(None, tweet("1", "ada", 1000));
    input.pipe_input(None, tweet("2", "alan", 2000));
    input.pipe_input(None, tweet("3", "grace", 3000)); // not in the table
                                                       // A user who moves: earlier tweets stay where they were counted, later ones count anew.
    users.pipe_input("ada".into(), user("ada", "fr"));
    input.pipe_input(None, tweet("4", "ada", 4000));
    let counts = d
        .create_output_topic(
            tweets::COUNTRY_TOPIC,
            Serdes::string(),
            Serdes::nullable(Serdes::i64()),
        )
        .read_key_values_to_map();
    assert_eq!(counts["gb"], Some(2));
    assert_eq!(counts["fr"], Some(1));
    assert_eq!(counts[tweets::UNKNOWN_COUNTRY], Some(1));
    assert_eq!(counts.len(), 3, "{counts:?}");
    let text = d.describe();
    assert!(text.contains("tweets-by-user-repartition"), "{text}");
    assert!(text.contains("countries-repartition"), "{text}");
    assert_eq!(tweets::generated_users().len(), 18);
}
