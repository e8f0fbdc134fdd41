//! The instance's metrics as Kafka Streams names them: gathered from what the stream threads
//! publish and from the hosted stores, for `KafkaStreams::metric_values` and `GET /metrics`.

use std::sync::atomic::Ordering;

use super::{KafkaStreams, Shared, State};
use crate::config::ResolvedConfig;
use crate::metrics::{self, MetricValue};

/// Kafka Streams' `State` ordinal, as its `client-state` metric reports it.
fn state_ordinal(s: State) -> u8 {
    match s {
        State::Created => 0,
        State::Rebalancing => 1,
        State::Running => 2,
        State::PendingShutdown => 3,
        State::NotRunning => 4,
        State::Error => 6,
    }
}

/// Every metric of the instance now.
pub(crate) fn collect(
    shared: &Shared,
    config: &ResolvedConfig,
    client_id: &str,
) -> Vec<MetricValue> {
    let now = shared.now_ms();
    let thread_id = |i: usize| format!("{}-StreamThread-{}", config.client_prefix(), i + 1);
    let mut out = metrics::client_metrics(
        client_id,
        state_ordinal(shared.state()),
        shared.alive_threads.load(Ordering::Acquire),
        shared.failed_threads.load(Ordering::Acquire),
    );
    let threads = shared
        .metrics
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (i, t) in threads.iter().enumerate() {
        let id = thread_id(i);
        out.extend(metrics::thread_metrics(&id, &t.sensors, now));
        for (task, sensors) in &t.task_sensors {
            out.extend(metrics::task_metrics(
                &id,
                &task.to_string(),
                sensors,
                config.recording_level,
                now,
            ));
        }
        let d = &t.details;
        for (task, node, process, e2e) in &d.nodes {
            out.extend(metrics::node_metrics(
                &id,
                &task.to_string(),
                node,
                process,
                e2e.as_ref(),
                config.recording_level,
                now,
            ));
        }
        let consumer = format!("{id}-consumer");
        for (topic, p, lag) in &d.lags {
            out.push(metrics::lag_metric(&consumer, topic, *p, *lag));
        }
        for (task, remaining) in &d.restore_remaining {
            out.push(metrics::restore_remaining(
                &id,
                &task.to_string(),
                *remaining,
            ));
        }
    }
    for s in shared.hosted.store_statistics() {
        out.extend(metrics::store_metrics(
            &thread_id(s.thread),
            &s.task.to_string(),
            &s.store,
            s.persistent,
            s.keys,
            &s.engine,
            s.operations.as_ref(),
        ));
    }
    out
}

/// Metrics of a running application, summed over its stream threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamsMetrics {
    /// Records processed.
    pub processed: u64,
    /// Records skipped by the deserialization handler.
    pub dropped: u64,
    /// Records restored into stores from changelogs.
    pub restored: u64,
    /// Commits completed.
    pub commits: u64,
}

impl KafkaStreams {
    /// Metrics summed over the stream threads.
    pub fn metrics(&self) -> StreamsMetrics {
        let m = self
            .shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.iter().fold(StreamsMetrics::default(), |mut acc, t| {
            acc.processed += t.tasks.processed;
            acc.dropped += t.tasks.dropped;
            acc.restored += t.tasks.restored;
            acc.commits += t.commits;
            acc
        })
    }

    /// Every metric of the instance, named as Kafka Streams names them (group, name, tags):
    /// the client's state and threads, each thread's process, poll, commit and punctuate
    /// totals, rates and latencies, each task's dropped and restored records (and, from
    /// `metrics.recording.level=DEBUG`, processed ones), each store's estimated keys. The
    /// HTTP server of `http.listen` serves the same as Prometheus text at `GET /metrics`.
    pub fn metric_values(&self) -> Vec<crate::metrics::MetricValue> {
        collect(&self.shared, &self.config, &self.client_id)
    }
}
