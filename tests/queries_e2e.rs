//! Interactive queries over HTTP, end to end on both brokers: two instances each serving
//! `http.listen`, every key of a key-value and of a window store read through either instance
//! (forwarded to the one holding it), ranges and window ranges exact; and queries in a loop
//! while one of two `tweets` example processes stops gracefully, comes back, and is killed.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use streams::{
    FailureReason, KafkaStreams, KeyQuery, Materialized, Serdes, StateQueryRequest, StreamsBuilder,
    StreamsConfig, TimeWindows,
};
use streams_testkit as testing;

on_both_brokers!(
    every_key_range_and_window_reads_the_same_through_either_instance,
    queries_during_a_graceful_stop_and_a_kill_give_right_values_or_defined_errors,
);

const BASE_MS: i64 = 1_700_000_000_000;
const WINDOW_MS: i64 = 10_000;

/// Counts per key (`counts`) and per key and 10 s window (`windowed`, kept for a year so that
/// every window stays queryable).
fn topology(input: &str) -> streams::Topology {
    let b = StreamsBuilder::new();
    let s = b.stream::<String, String>(input);
    s.group_by_key()
        .count_with(Materialized::as_store("counts"));
    s.group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_millis(WINDOW_MS as u64),
            Duration::from_secs(3600),
        ))
        .count_with(
            Materialized::as_store("windowed").with_retention(Duration::from_secs(365 * 86_400)),
        );
    b.build().unwrap()
}

/// `base` + `segments`, each segment percent-encoded.
fn url(base: &str, segments: &[&str], query: &str) -> String {
    let mut u = reqwest::Url::parse(base).unwrap();
    u.path_segments_mut().unwrap().clear().extend(segments);
    if !query.is_empty() {
        u.set_query(Some(query));
    }
    u.to_string()
}

fn every_key_range_and_window_reads_the_same_through_either_instance(bootstrap: &str) {
    let input = unique("iq-in");
    testing::create_topic(bootstrap, &input, 4).unwrap();
    // 300 keys and two that need encoding in a URL, 3000 records over 300 s of event time.
    let keys: Vec<String> = (0..300)
        .map(|i| format!("w{i:03}"))
        .chain(["a/b c".to_string(), "ключ".to_string()])
        .collect();
    let records: Vec<(String, i64)> = (0..3000u64)
        .map(|i| {
            let k = keys[((i * 7919) % keys.len() as u64) as usize].clone();
            (k, BASE_MS + i as i64 * 100)
        })
        .collect();
    let mut counts: HashMap<String, i64> = HashMap::new();
    let mut windows: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (k, ts) in &records {
        *counts.entry(k.clone()).or_default() += 1;
        *windows.entry((k.clone(), ts - ts % WINDOW_MS)).or_default() += 1;
    }
    testing::produce(
        bootstrap,
        &input,
        records
            .iter()
            .map(|(k, ts)| (Some(k.clone().into_bytes()), Some(b"x".to_vec()), Some(*ts))),
    )
    .unwrap();

    let app_id = unique("iq");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let ports = [free_port(), free_port()];
    let mut apps: Vec<KafkaStreams> = (0..2)
        .map(|i| {
            let config = StreamsConfig::new(&app_id, bootstrap)
                .set("state.dir", dirs[i].path().to_str().unwrap())
                .set("http.listen", format!("127.0.0.1:{}", ports[i]))
                .set("commit.interval.ms", "200")
                .set("num.standby.replicas", "1");
            let mut app = KafkaStreams::new(topology(&input), config).unwrap();
            app.start().unwrap();
            app
        })
        .collect();
    let bases: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/"))
        .collect();

    // Ready once both instances run tasks and a whole-store range through each is complete.
    let all_counts = |base: &str| {
        let (status, body) = http_get(&url(
            base,
            &["v1", "stores", "counts", "range"],
            "limit=100000",
        ));
        (status == 200).then_some(body)
    };
    wait_until(
        "both instances answer every count",
        Duration::from_secs(120),
        || {
            apps.iter().all(|a| !a.tasks().values().all(Vec::is_empty))
                && bases.iter().all(|b| {
                    all_counts(b).is_some_and(|body| {
                        let e = body["entries"].as_array().unwrap();
                        e.len() == counts.len()
                            && e.iter()
                                .all(|e| counts[e["key"].as_str().unwrap()] == e["value"])
                    })
                })
        },
    );

    // Every key through either instance: the same value, served by the key's owner.
    let mut owners = BTreeMap::new();
    for k in &keys {
        for base in &bases {
            let (status, body) = http_get(&url(base, &["v1", "stores", "counts", "keys", k], ""));
            assert_eq!(status, 200, "{k} through {base}: {body}");
            assert_eq!(body["key"], json!(k));
            assert_eq!(body["value"], json!(counts[k]), "{k} through {base}");
            let owner = body["served_by"].as_str().unwrap().to_string();
            assert_eq!(owners.entry(k.clone()).or_insert(owner.clone()), &owner);
        }
    }
    let served: std::collections::BTreeSet<&String> = owners.values().collect();
    assert_eq!(served.len(), 2, "both instances hold keys: {served:?}");

    // Ranges: all, bounded, prefix, descending with a limit; exactly the expected entries in
    // key-byte order, through either instance.
    let mut sorted: Vec<(&String, &i64)> = counts.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let entries = |v: Vec<(&String, &i64)>| -> Value {
        Value::Array(
            v.into_iter()
                .map(|(k, n)| json!({"key": k, "value": n}))
                .collect(),
        )
    };
    for base in &bases {
        let range = |q: &str| http_get(&url(base, &["v1", "stores", "counts", "range"], q)).1;
        assert_eq!(range("limit=100000")["entries"], entries(sorted.clone()));
        let within: Vec<_> = sorted
            .iter()
            .copied()
            .filter(|(k, _)| k.as_str() >= "w010" && k.as_str() <= "w020")
            .collect();
        assert_eq!(within.len(), 11);
        assert_eq!(range("from=w010&to=w020")["entries"], entries(within));
        let prefixed: Vec<_> = sorted
            .iter()
            .copied()
            .filter(|(k, _)| k.starts_with("w29"))
            .collect();
        assert_eq!(range("prefix=w29")["entries"], entries(prefixed));
        let top = range("order=desc&limit=3");
        let last3: Vec<_> = sorted.iter().rev().take(3).copied().collect();
        assert_eq!(top["entries"], entries(last3));
        assert_eq!(top["truncated"], json!(true));
    }

    // Windows: each key's, exactly; and every key's windows in a time range, exactly.
    for (i, k) in keys.iter().enumerate() {
        let base = &bases[i % 2];
        let (status, body) = http_get(&url(base, &["v1", "stores", "windowed", "windows", k], ""));
        assert_eq!(status, 200, "{k}: {body}");
        let got: Vec<(i64, i64, i64)> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["start"].as_i64().unwrap(),
                    w["end"].as_i64().unwrap(),
                    w["value"].as_i64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(i64, i64, i64)> = windows
            .iter()
            .filter(|((key, _), _)| key == k)
            .map(|((_, s), n)| (*s, s + WINDOW_MS, *n))
            .collect();
        assert_eq!(got, want, "windows of {k}");
    }
    let (from, to) = (BASE_MS + 50_000, BASE_MS + 79_999);
    let mut want: Vec<(i64, Vec<u8>, i64)> = windows
        .iter()
        .filter(|((_, s), _)| (from..=to).contains(s))
        .map(|((k, s), n)| (*s, k.clone().into_bytes(), *n))
        .collect();
    want.sort();
    for base in &bases {
        let body = http_get(&url(
            base,
            &["v1", "stores", "windowed", "windows"],
            &format!("from={from}&to={to}&limit=100000"),
        ))
        .1;
        let got: Vec<(i64, Vec<u8>, i64)> = body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["start"].as_i64().unwrap(),
                    w["key"].as_str().unwrap().as_bytes().to_vec(),
                    w["value"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    // Defined errors, naming what they concern.
    let (status, body) = http_get(&url(
        &bases[0],
        &["v1", "stores", "counts", "keys", "absent"],
        "",
    ));
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("absent"));
    let (status, body) = http_get(&url(&bases[0], &["v1", "stores", "nope", "keys", "x"], ""));
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_store")),
        "{body}"
    );
    let (status, body) = http_get(&url(
        &bases[0],
        &["v1", "stores", "counts", "range"],
        "limit=0",
    ));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let elsewhere = owners
        .iter()
        .find(|(_, o)| **o != format!("127.0.0.1:{}", ports[0]))
        .unwrap()
        .0;
    let (status, body) = http_get(&url(
        &bases[0],
        &["v1", "stores", "counts", "keys", elsewhere],
        "local=true",
    ));
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_hosted")),
        "{body}"
    );
    assert_eq!(body["owner"], json!(format!("127.0.0.1:{}", ports[1])));
    let (status, body) = http_get(&url(&bases[1], &["v1", "metadata"], ""));
    assert_eq!(status, 200);
    assert_eq!(body["hosts"].as_array().unwrap().len(), 2, "{body}");

    // In the application: a standby partition answers only a query that accepts stale
    // stores, and then (once caught up) with the active's value.
    let key = "w007".to_string();
    let meta = apps[0]
        .query_metadata_for_key("counts", &key, Serdes::string().as_ref())
        .unwrap()
        .unwrap();
    let active = owners[&key].clone();
    let standby = &apps[if active == format!("127.0.0.1:{}", ports[0]) {
        1
    } else {
        0
    }];
    let request = || {
        StateQueryRequest::in_store("counts")
            .with_query(KeyQuery::<String, i64>::with_key(key.clone()))
            .with_partitions([meta.partition])
    };
    wait_until(
        "the other instance keeps a standby of the key's task",
        Duration::from_secs(60),
        || {
            standby
                .standby_tasks()
                .values()
                .flatten()
                .any(|t| t.partition == meta.partition)
        },
    );
    let failure = standby
        .query(request())
        .unwrap()
        .into_only_partition_result()
        .unwrap()
        .unwrap_err();
    assert_eq!(failure.reason, FailureReason::NotActive, "{failure}");
    wait_until(
        "the standby serves the active's value to a stale query",
        Duration::from_secs(60),
        || {
            let answer = standby.query(request().enable_stale_stores()).unwrap();
            answer.into_only_partition_result().and_then(Result::ok) == Some(Some(counts[&key]))
        },
    );

    for app in &mut apps {
        app.close().unwrap();
    }
}

/// Expected per-user counts of the tweets example's first `n` generated tweets.
fn user_counts(n: u64) -> BTreeMap<String, i64> {
    let mut c = BTreeMap::new();
    for t in tweets::generated_tweets(n) {
        *c.entry(t.user).or_insert(0) += 1;
    }
    c
}

struct Instance {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Instance {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn start(&mut self, bootstrap: &str, app_id: &str, input: &str, generate: Option<u64>) {
        let mut cmd = Command::new(example("tweets"));
        cmd.args(["--bootstrap-servers", bootstrap, "--application-id", app_id])
            .args([
                "--input-topic",
                input,
                "--http",
                &format!("127.0.0.1:{}", self.port),
            ])
            .args(["--state-dir", self.dir.path().to_str().unwrap()])
            .args(["--config", "consumer.session.timeout.ms=6000"])
            .args(["--config", "consumer.heartbeat.interval.ms=500"])
            .args(["--config", "commit.interval.ms=200"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = generate {
            cmd.args(["--generate", &n.to_string()]);
        }
        self.child = Some(cmd.spawn().expect("start the tweets example"));
    }

    fn signal(&mut self, signal: &str) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether every user's count read through `base` is the expected one.
fn answers_all(base: &str, expected: &BTreeMap<String, i64>) -> bool {
    expected.iter().all(|(u, n)| {
        let (status, body) = http_get(&url(
            base,
            &["v1", "stores", "user-tweet-counts-store", "keys", u],
            "",
        ));
        status == 200 && body["value"] == json!(n)
    })
}

fn queries_during_a_graceful_stop_and_a_kill_give_right_values_or_defined_errors(bootstrap: &str) {
    const N: u64 = 1000;
    let expected = user_counts(N);
    let (app_id, input) = (unique("iq-tweets"), unique("iq-tweets-in"));
    let mut a = Instance {
        port: free_port(),
        dir: tempfile::tempdir().unwrap(),
        child: None,
    };
    let mut b = Instance {
        port: free_port(),
        dir: tempfile::tempdir().unwrap(),
        child: None,
    };
    a.start(bootstrap, &app_id, &input, Some(N));
    wait_until(
        "the first instance counts every tweet",
        Duration::from_secs(120),
        || answers_all(&a.base(), &expected),
    );
    b.start(bootstrap, &app_id, &input, None);
    let two_hosts = |base: &str| {
        let (_, m) = http_get(&url(base, &["v1", "metadata"], ""));
        m["hosts"].as_array().is_some_and(|h| h.len() == 2)
    };
    wait_until(
        "both instances answer for the whole application",
        Duration::from_secs(120),
        || {
            two_hosts(&a.base())
                && answers_all(&a.base(), &expected)
                && answers_all(&b.base(), &expected)
        },
    );

    // Queries in a loop through both instances from here on.
    let stop = Arc::new(AtomicBool::new(false));
    let (right, defined, down) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let wrong = Arc::new(std::sync::Mutex::new(Vec::new()));
    let looper = {
        let (stop, right, defined, down, wrong) = (
            stop.clone(),
            right.clone(),
            defined.clone(),
            down.clone(),
            wrong.clone(),
        );
        let (bases, expected) = ([a.base(), b.base()], expected.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for base in &bases {
                    for (u, n) in &expected {
                        let (status, body) = http_get(&url(
                            base,
                            &["v1", "stores", "user-tweet-counts-store", "keys", u],
                            "",
                        ));
                        let code = body["code"].as_str().unwrap_or("");
                        match status {
                            200 if body["value"] == json!(n) => {
                                right.fetch_add(1, Ordering::Relaxed)
                            }
                            // The instance asked is down itself.
                            0 => down.fetch_add(1, Ordering::Relaxed),
                            502..=504 if !code.is_empty() => {
                                defined.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => {
                                wrong
                                    .lock()
                                    .unwrap()
                                    .push(format!("{u} via {base}: {status} {body}"));
                                0
                            }
                        };
                    }
                }
            }
        })
    };

    b.signal("-TERM");
    wait_until(
        "the survivor answers everything after the graceful stop",
        Duration::from_secs(120),
        || answers_all(&a.base(), &expected),
    );
    b.start(bootstrap, &app_id, &input, None);
    wait_until(
        "both answer again after the restart",
        Duration::from_secs(120),
        || {
            two_hosts(&a.base())
                && answers_all(&a.base(), &expected)
                && answers_all(&b.base(), &expected)
        },
    );
    b.signal("-KILL");
    wait_until(
        "the survivor answers everything after the kill",
        Duration::from_secs(120),
        || answers_all(&a.base(), &expected),
    );
    stop.store(true, Ordering::Relaxed);
    looper.join().unwrap();
    let wrong = wrong.lock().unwrap();
    assert!(
        wrong.is_empty(),
        "wrong answers: {:?}",
        &wrong[..wrong.len().min(10)]
    );
    let (right, defined, down) = (
        right.load(Ordering::Relaxed),
        defined.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
    );
    eprintln!("queries: {right} right, {defined} defined errors, {down} to a stopped instance");
    assert!(right > 0);
}
