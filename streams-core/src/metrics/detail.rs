//! The finer metrics: per processor node, per input partition (the consumer's lag) and the
//! records a restoring task has left, named as Kafka Streams and Kafka's consumer name them.

use super::{metric, MetricValue, RecordingLevel, Sensor};

/// A processor node's metrics (`stream-processor-node-metrics`): `process-total` and
/// `-rate` from DEBUG up, and for a sink its records' end-to-end latency (`record-e2e-latency-
/// avg`, `-min`, `-max`, in ms: wall clock at the sink minus the record's timestamp), which
/// Kafka Streams records at INFO.
pub(crate) fn node_metrics(
    thread_id: &str,
    task_id: &str,
    node: &str,
    process: &Sensor,
    e2e_latency: Option<&Sensor>,
    level: RecordingLevel,
    now_ms: i64,
) -> Vec<MetricValue> {
    let group = "stream-processor-node-metrics";
    let tags = || {
        vec![
            ("thread-id", thread_id.to_string()),
            ("task-id", task_id.to_string()),
            ("processor-node-id", node.to_string()),
        ]
    };
    let mut out = Vec::new();
    if level >= RecordingLevel::Debug {
        out.push(metric(
            group,
            "process-total",
            tags(),
            process.sum_total(),
            true,
            "records the node processed",
        ));
        out.push(metric(
            group,
            "process-rate",
            tags(),
            process.value_rate(now_ms),
            false,
            "records the node processed per second",
        ));
    }
    if let Some(e2e) = e2e_latency {
        let nan = f64::NAN;
        for (name, value, help) in [
            (
                "record-e2e-latency-avg",
                e2e.avg(now_ms).unwrap_or(nan),
                "ms from a record's timestamp to its write by this sink, on average",
            ),
            (
                "record-e2e-latency-min",
                e2e.min(now_ms).unwrap_or(nan),
                "ms from a record's timestamp to its write by this sink, the least",
            ),
            (
                "record-e2e-latency-max",
                e2e.max(now_ms).unwrap_or(nan),
                "ms from a record's timestamp to its write by this sink, the most",
            ),
        ] {
            out.push(metric(group, name, tags(), value, false, help));
        }
    }
    out
}

/// An input partition's lag as Kafka's consumer reports it (`consumer-fetch-manager-metrics`,
/// `records-lag`): records on the cluster beyond what the stream thread fetched.
pub(crate) fn lag_metric(consumer_id: &str, topic: &str, partition: i32, lag: i64) -> MetricValue {
    metric(
        "consumer-fetch-manager-metrics",
        "records-lag",
        vec![
            ("client-id", consumer_id.to_string()),
            ("topic", topic.to_string()),
            ("partition", partition.to_string()),
        ],
        lag as f64,
        false,
        "records of the partition on the cluster not yet fetched",
    )
}

/// A restoring task's records left to restore (`stream-task-metrics`,
/// `restore-remaining-records-total`).
pub(crate) fn restore_remaining(thread_id: &str, task_id: &str, remaining: u64) -> MetricValue {
    metric(
        "stream-task-metrics",
        "restore-remaining-records-total",
        vec![
            ("thread-id", thread_id.to_string()),
            ("task-id", task_id.to_string()),
        ],
        remaining as f64,
        false,
        "records left to restore",
    )
}
