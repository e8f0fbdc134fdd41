//! Prometheus exposition of [`MetricValue`]s, through `prometheus-client` (OpenMetrics text),
//! under the names the Prometheus JMX exporter gives Kafka Streams' JMX beans.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::MetricValue;

/// The metrics of one scrape, grouped by name into families.
#[derive(Debug)]
struct Scrape(BTreeMap<String, Vec<MetricValue>>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (name, family) in &self.0 {
            let first = &family[0];
            // The library writes a counter's samples as `<family>_total`.
            let (family_name, kind) = if first.counter {
                (
                    name.strip_suffix("_total").unwrap_or(name),
                    MetricType::Counter,
                )
            } else {
                (name.as_str(), MetricType::Gauge)
            };
            let mut metric = encoder.encode_descriptor(family_name, first.help, None, kind)?;
            for m in family {
                let labels: Vec<(String, String)> = m
                    .tags
                    .iter()
                    .map(|(k, v)| (k.replace('-', "_"), v.clone()))
                    .collect();
                let sample = metric.encode_family(&labels)?;
                if m.counter {
                    ConstCounter::new(m.value).encode(sample)?;
                } else {
                    ConstGauge::new(m.value).encode(sample)?;
                }
            }
        }
        Ok(())
    }
}

/// `metrics` as OpenMetrics text, the format Prometheus scrapes.
pub(crate) fn render(metrics: Vec<MetricValue>) -> String {
    let mut families: BTreeMap<String, Vec<MetricValue>> = BTreeMap::new();
    for m in metrics {
        families.entry(m.prometheus_name()).or_default().push(m);
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(families)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::render;
    use crate::metrics::{thread_metrics, MetricValue, ThreadSensors};

    #[test]
    fn metrics_render_under_the_jmx_exporters_names_with_their_tags() {
        let mut s = ThreadSensors::default();
        s.process.record_many(3, 1.5, 0);
        s.commit.record(2.0, 0);
        let mut values = thread_metrics("app-StreamThread-1", &s, 0);
        values.push(MetricValue {
            group: "stream-metrics",
            name: "alive-stream-threads",
            tags: vec![("client-id", "app-1".into())],
            value: 1.0,
            counter: false,
            help: "threads",
        });
        let text = render(values);
        for line in [
            "# TYPE kafka_streams_stream_thread_metrics_process counter",
            "kafka_streams_stream_thread_metrics_process_total{thread_id=\"app-StreamThread-1\"} 3",
            "kafka_streams_stream_thread_metrics_commit_total{thread_id=\"app-StreamThread-1\"} 1",
            "# TYPE kafka_streams_stream_thread_metrics_process_latency_avg gauge",
            "kafka_streams_stream_thread_metrics_process_latency_avg{thread_id=\"app-StreamThread-1\"} 0.5",
            "kafka_streams_stream_metrics_alive_stream_threads{client_id=\"app-1\"} 1",
            "# EOF",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
    }
}
