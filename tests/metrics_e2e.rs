//! Metrics end to end on both brokers: `GET /metrics` scraped while the word count runs and
//! parsed with a Prometheus text parser; the processed, committed and restored totals match
//! what the test produced (and what the Rust API and the restore listener say), and every
//! series the shipped Grafana dashboard queries exists in the scrape.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use streams::KafkaStreams;

on_both_brokers!(the_scrape_counts_what_was_processed_committed_and_restored);

/// Every sample of a scrape: name -> (labels, value).
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

fn scrape(port: u16) -> Samples {
    let body = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.text())
        .expect("GET /metrics");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for s in parsed.samples {
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            other => panic!("{}: unexpected {other:?}", s.metric),
        };
        let labels = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.entry(s.metric).or_default().push((labels, value));
    }
    out
}

fn sum(s: &Samples, name: &str) -> f64 {
    s.get(name)
        .unwrap_or_else(|| panic!("no {name} in the scrape"))
        .iter()
        .map(|(_, v)| v)
        .sum()
}

/// The metric names a Grafana dashboard's queries use.
fn dashboard_series() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grafana/streams-dashboard.json"
    );
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if token.starts_with("kafka_streams_") || token.starts_with("kafka_consumer_") {
                    names.insert(token.to_string());
                }
            }
        }
    }
    names
}

fn start(
    wc: &WordCount,
    dir: &std::path::Path,
    port: u16,
) -> (KafkaStreams, std::sync::Arc<RestoreCounter>) {
    let (app, restores) = wc.start_with(
        dir,
        &[
            ("http.listen", &format!("127.0.0.1:{port}")),
            ("metrics.recording.level", "DEBUG"),
        ],
    );
    wait_running(&app);
    (app, restores)
}

fn the_scrape_counts_what_was_processed_committed_and_restored(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let input = lines(17, 400);
    let words: usize = input.iter().map(|l| wordcount::split_words(l).len()).sum();
    let expected = expected_counts(&input);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut app, _) = start(&wc, dir.path(), port);
    // All under one key, so on one input partition: the other, which no record comes from,
    // still has its lag reported (0), as Kafka's consumer reports it.
    streams_testkit::produce(
        bootstrap,
        &wc.input,
        input
            .iter()
            .map(|l| (Some(b"one".to_vec()), Some(l.as_bytes().to_vec()), None)),
    )
    .unwrap();
    read_counts(bootstrap, &wc.output, &expected);

    // Every line is processed once, and every word once more after the repartition.
    let processed = (input.len() + words) as f64;
    wait_until(
        "the threads report every record processed",
        Duration::from_secs(60),
        || {
            sum(
                &scrape(port),
                "kafka_streams_stream_thread_metrics_process_total",
            ) == processed
        },
    );
    let before = app.metrics().commits;
    let s = scrape(port);
    let after = app.metrics().commits;
    assert_eq!(
        sum(&s, "kafka_streams_stream_task_metrics_process_total"),
        processed
    );
    let commits = sum(&s, "kafka_streams_stream_thread_metrics_commit_total") as u64;
    assert!(
        commits >= 1 && (before..=after).contains(&commits),
        "{before} <= {commits} <= {after}"
    );
    assert_eq!(
        sum(&s, "kafka_streams_stream_metrics_alive_stream_threads"),
        1.0
    );
    assert_eq!(
        sum(&s, "kafka_streams_stream_metrics_client_state"),
        2.0,
        "RUNNING"
    );
    let tasks = &s["kafka_streams_stream_task_metrics_process_total"];
    assert_eq!(
        tasks.len(),
        4,
        "two sub-topologies of two partitions: {tasks:?}"
    );
    // The finer metrics (refreshed each second): every node's records, the sinks' end-to-end
    // latency, and each input partition's lag, none once everything is processed.
    // Sources and sinks: generated names, or the repartition topic's `-source` and `-sink`.
    let is = |node: &str, kind: &str| {
        node.starts_with(&format!("KSTREAM-{}-", kind.to_uppercase()))
            || node.ends_with(&format!("-{kind}"))
    };
    let by_node = |s: &Samples, name: &str, kind: &str| -> f64 {
        s.get(name)
            .into_iter()
            .flatten()
            .filter(|(l, _)| is(&l["processor_node_id"], kind))
            .map(|(_, v)| v)
            .sum()
    };
    wait_for(
        "the nodes report every record, and no lag",
        Duration::from_secs(30),
        || {
            let s = scrape(port);
            let lags = s
                .get("kafka_consumer_consumer_fetch_manager_metrics_records_lag")
                .cloned()
                .unwrap_or_default();
            let sources = by_node(
                &s,
                "kafka_streams_stream_processor_node_metrics_process_total",
                "source",
            );
            if sources == processed && lags.len() == 4 && lags.iter().all(|(_, v)| *v == 0.0) {
                return Ok(());
            }
            let lags: Vec<String> = lags
                .iter()
                .map(|(l, v)| format!("{}-{}: {v}", l["topic"], l["partition"]))
                .collect();
            Err(format!(
                "sources processed {sources} of {processed}; lags {lags:?}; nodes {:?}",
                s.get("kafka_streams_stream_processor_node_metrics_process_total")
            ))
        },
    );
    let s = scrape(port);
    let e2e = &s["kafka_streams_stream_processor_node_metrics_record_e2e_latency_max"];
    assert_eq!(
        e2e.len(),
        3,
        "a sink in each task but the one whose input partition is empty: {e2e:?}"
    );
    for (labels, v) in e2e {
        assert!(is(&labels["processor_node_id"], "sink"), "{labels:?}");
        assert!(*v >= 0.0, "{labels:?} {v}");
    }
    // The RocksDB store's properties: its memtables hold the counts, its block cache exists.
    let rocks = |name: &str| -> f64 {
        s[name]
            .iter()
            .filter(|(l, _)| l.get("rocksdb_state_id").map(String::as_str) == Some("counts-store"))
            .map(|(_, v)| v)
            .sum()
    };
    assert!(rocks("kafka_streams_stream_state_metrics_size_all_mem_tables") > 0.0);
    assert!(rocks("kafka_streams_stream_state_metrics_block_cache_capacity") > 0.0);
    assert_eq!(
        rocks("kafka_streams_stream_state_metrics_background_errors"),
        0.0
    );
    // At DEBUG each operation is timed: the count's gets and puts, in ns.
    for op in ["get", "put"] {
        assert!(rocks(&format!("kafka_streams_stream_state_metrics_{op}_rate")) > 0.0);
        assert!(
            rocks(&format!(
                "kafka_streams_stream_state_metrics_{op}_latency_max"
            )) > 0.0
        );
    }
    for series in dashboard_series() {
        assert!(
            s.contains_key(&series),
            "the dashboard queries {series}, which the scrape lacks"
        );
    }
    app.close().unwrap();
    app.cleanup().unwrap();

    // A restart without local state restores the counts from the changelog: the task metrics
    // count each restored record, as the restore listener does.
    let port = free_port();
    let (mut app, restores) = start(&wc, dir.path(), port);
    assert!(restores.total() > 0);
    wait_until(
        "the tasks report what they restored",
        Duration::from_secs(30),
        || {
            sum(
                &scrape(port),
                "kafka_streams_stream_task_metrics_restore_total",
            ) == restores.total() as f64
        },
    );
    app.close().unwrap();
}
