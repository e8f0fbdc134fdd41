//! The dead-letter queue end to end, on both brokers: the tweets example, configured to
//! continue past bad records, is fed malformed JSON (deserialization), tweets without a user
//! (its fallible check: processing) and tweets too large to repartition (production) among good
//! ones, while it runs. Every bad record lands in the dead-letter topic, which the application
//! creates, with its original bytes and headers and KIP-1034's headers naming what failed and
//! where it came from; every good one is counted, and the counts are exact.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::tweets::{self, Tweet};
use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

on_both_brokers!(
    bad_tweets_are_dead_lettered_and_good_ones_counted_exactly,
    under_exactly_once_dead_letters_are_written_in_the_transaction,
);

fn bad_tweets_are_dead_lettered_and_good_ones_counted_exactly(bootstrap: &str) {
    run(bootstrap, "at_least_once");
}

/// The same run under exactly-once: the dead letters join each task's transaction, so a
/// `read_committed` reader sees each of them exactly once.
fn under_exactly_once_dead_letters_are_written_in_the_transaction(bootstrap: &str) {
    run(bootstrap, "exactly_once_v2");
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// One record of a topic, as read back.
#[derive(Debug, Clone)]
struct Read {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Read {
    fn header(&self, name: &str) -> String {
        let v = self
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("no header {name}: {:?}", self.headers))
            .1
            .clone()
            .unwrap_or_default();
        String::from_utf8(v).unwrap()
    }
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "2000000")
        .create()
        .unwrap()
}

/// Every partition of `topic` with its high watermark.
fn ends(c: &BaseConsumer, topic: &str) -> BTreeMap<i32, i64> {
    let md = c.fetch_metadata(Some(topic), TIMEOUT).unwrap();
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            (
                p.id(),
                c.fetch_watermarks(topic, p.id(), TIMEOUT).unwrap().1,
            )
        })
        .collect()
}

/// Every committed record of `topic` there is now.
fn read_all(bootstrap: &str, topic: &str) -> Vec<Read> {
    let c = consumer(bootstrap, &unique("dlq-reader"));
    let ends = ends(&c, topic);
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    // Done when every partition has reported its end (with `read_committed`, the end of its
    // committed records) after its last record.
    let mut at_end = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while at_end.len() < ends.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}: {} records, partitions {at_end:?} of {} at their end",
            out.len(),
            ends.len()
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(m) => {
                let m = m.unwrap();
                at_end.remove(&m.partition());
                out.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            None => {}
        }
    }
    out
}

/// Produces `records` (key, value, timestamp, headers) and waits for every acknowledgement.
fn produce(bootstrap: &str, topic: &str, records: &[(Vec<u8>, Vec<u8>, i64)]) {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("acks", "all")
        .create()
        .unwrap();
    for (k, v, ts) in records {
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "origin",
            value: Some("dead-letter-test"),
        });
        p.send(
            BaseRecord::to(topic)
                .key(k.as_slice())
                .payload(v.as_slice())
                .timestamp(*ts)
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    }
    p.flush(TIMEOUT).unwrap();
}

fn tweet_record(t: &Tweet) -> (Vec<u8>, Vec<u8>, i64) {
    (
        t.id.clone().into_bytes(),
        serde_json::to_vec(t).unwrap(),
        t.timestamp_ms,
    )
}

/// The running example; its log is printed if the test fails.
struct App(Child, std::path::PathBuf);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- the example's log ---\n{}",
                std::fs::read_to_string(&self.1).unwrap_or_default()
            );
        }
    }
}

fn run(bootstrap: &str, guarantee: &str) {
    let input = unique("tweets-dlq-in");
    let dlq = unique("tweets-dlq");
    let app_id = unique("tweets-dlq-app");
    streams_testkit::create_topic(bootstrap, &input, 4).unwrap();
    streams_testkit::create_topic(bootstrap, tweets::USERS_TOPIC, 4).unwrap();
    let users: Vec<_> = tweets::generated_users()
        .iter()
        .map(|u| {
            (
                u.user.clone().into_bytes(),
                serde_json::to_vec(u).unwrap(),
                tweets::GENERATED_START_MS - 60_000,
            )
        })
        .collect();
    produce(bootstrap, tweets::USERS_TOPIC, &users);

    let good = tweets::generated_tweets(300);
    let at = |i: i64| tweets::GENERATED_START_MS + 1_000 * i;
    let malformed: Vec<(Vec<u8>, Vec<u8>, i64)> = (0..3)
        .map(|i| {
            (
                format!("m{i}").into_bytes(),
                format!("{{\"id\": \"m{i}\", oops").into_bytes(),
                at(i),
            )
        })
        .collect();
    let poisonous: Vec<Tweet> = (0..3)
        .map(|i| Tweet {
            id: format!("p{i}"),
            user: String::new(),
            text: "no author #rust".into(),
            timestamp_ms: at(i),
            lang: "en".into(),
        })
        .collect();
    // A hashtag of 60,000 characters: the tweet (about 60 KB) is read and counted per user and
    // country, but its hashtag record (the tag as key and value, 120 KB) is larger than the
    // application's producers accept (message.max.bytes 100000), once per hashtag repartition.
    let oversized: Vec<Tweet> = (0..2)
        .map(|i| Tweet {
            id: format!("o{i}"),
            user: "ada".into(),
            text: format!("#{}{i}", "z".repeat(60_000)),
            timestamp_ms: at(i),
            lang: "en".into(),
        })
        .collect();

    // Half the good tweets first, the bad ones and the rest while the application runs.
    let first: Vec<_> = good[..150].iter().map(tweet_record).collect();
    produce(bootstrap, &input, &first);

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tweets.log");
    let _app = App(
        Command::new(example("tweets"))
            .args(["--bootstrap-servers", bootstrap, "--application-id", &app_id])
            .args(["--input-topic", &input, "--http", &format!("127.0.0.1:{port}")])
            .args(["--state-dir", dir.path().to_str().unwrap()])
            .args(["--config", "commit.interval.ms=200"])
            .args(["--config", &format!("processing.guarantee={guarantee}")])
            .args(["--config", "deserialization.exception.handler=log-and-continue"])
            .args([
                "--config",
                "processing.exception.handler=org.apache.kafka.streams.errors.LogAndContinueProcessingExceptionHandler",
            ])
            .args(["--config", "production.exception.handler=log-and-continue"])
            .args(["--config", &format!("errors.dead.letter.queue.topic.name={dlq}")])
            .args(["--config", "producer.message.max.bytes=100000"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the tweets example"),
        log.clone(),
    );
    let user_store = |port: u16| {
        let (status, body) = http_get(&format!(
            "http://127.0.0.1:{port}/v1/stores/user-tweet-counts-store/range?limit=100000"
        ));
        (status == 200).then_some(body)
    };
    wait_until(
        "the application answers queries",
        Duration::from_secs(60),
        || user_store(port).is_some(),
    );
    let mut bad: Vec<(Vec<u8>, Vec<u8>, i64)> = malformed.clone();
    bad.extend(poisonous.iter().map(tweet_record));
    bad.extend(oversized.iter().map(tweet_record));
    produce(bootstrap, &input, &bad);
    let rest: Vec<_> = good[150..].iter().map(tweet_record).collect();
    produce(bootstrap, &input, &rest);

    // Done when the application has committed past every input record: whatever it
    // dead-letters is written before the offsets that move past it are committed.
    let watcher = consumer(bootstrap, &app_id);
    let input_ends = ends(&watcher, &input);
    wait_until(
        "the input committed to its end",
        Duration::from_secs(120),
        || {
            let mut tpl = TopicPartitionList::new();
            for p in input_ends.keys() {
                tpl.add_partition(&input, *p);
            }
            let committed = watcher.committed_offsets(tpl, TIMEOUT).unwrap();
            input_ends.iter().all(|(p, end)| {
                committed.find_partition(&input, *p).map(|e| e.offset())
                    == Some(Offset::Offset(*end))
            })
        },
    );

    // The input as it is on the cluster, to check each dead letter's coordinates.
    let on_input: HashMap<(i32, i64), Read> = read_all(bootstrap, &input)
        .into_iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    let dead = read_all(bootstrap, &dlq);
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &dead {
        assert_eq!(d.header("__streams.errors.topic"), input);
        let partition: i32 = d.header("__streams.errors.partition").parse().unwrap();
        let offset: i64 = d.header("__streams.errors.offset").parse().unwrap();
        let source = &on_input[&(partition, offset)];
        assert_eq!(
            (&d.key, &d.value),
            (&source.key, &source.value),
            "the original bytes"
        );
        assert_eq!(
            d.headers[0],
            ("origin".to_string(), Some(b"dead-letter-test".to_vec()))
        );
        let exception = d.header("__streams.errors.exception");
        let kind = exception.split(':').next().unwrap().to_string();
        assert!(!d.header("__streams.errors.message").is_empty());
        assert!(!d.header("__streams.errors.stacktrace").is_empty());
        kinds
            .entry(kind)
            .or_default()
            .push(String::from_utf8(d.key.clone().unwrap()).unwrap());
    }
    for ids in kinds.values_mut() {
        ids.sort();
    }
    let expected: BTreeMap<String, Vec<String>> = [
        ("Deserialization", vec!["m0", "m1", "m2"]),
        ("Production", vec!["o0", "o0", "o1", "o1"]),
        ("User", vec!["p0", "p1", "p2"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(
        kinds, expected,
        "every bad record dead-lettered, once per failure"
    );

    // Every good tweet counted, the oversized ones per user and country but not per hashtag.
    let mut counted: Vec<Tweet> = good.clone();
    counted.extend(oversized.iter().cloned());
    let mut users: BTreeMap<String, i64> = BTreeMap::new();
    for t in &counted {
        *users.entry(t.user.clone()).or_default() += 1;
    }
    let mut tags: BTreeMap<String, i64> = BTreeMap::new();
    for t in &good {
        for h in tweets::hashtags(&t.text) {
            *tags.entry(h).or_default() += 1;
        }
    }
    let countries = tweets::country_counts(&counted);
    // The counts come from sub-topologies behind repartition topics: wait until they are
    // complete. A count only grows, so one that went past its expected value fails the wait.
    let store = |name: &str| -> BTreeMap<String, i64> {
        let (status, body) = http_get(&format!(
            "http://127.0.0.1:{port}/v1/stores/{name}/range?limit=100000"
        ));
        assert_eq!(status, 200, "{body}");
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["key"].as_str().unwrap().to_string(),
                    e["value"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    for (name, want) in [
        ("user-tweet-counts-store", &users),
        ("hashtag-counts-store", &tags),
        ("country-tweet-counts-store", &countries),
    ] {
        let mut last = BTreeMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            last = store(name);
            if &last == want {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(&last, want, "{name}");
    }
}
