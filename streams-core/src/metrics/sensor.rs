//! [`Sensor`]: one kind of event, with Kafka's windowed statistics over it (total, rate,
//! average and maximum), measured against an injected clock.

/// Kafka's `metrics.sample.window.ms` default: each sample spans 30 s.
pub(crate) const SAMPLE_WINDOW_MS: i64 = 30_000;
/// Kafka's `metrics.num.samples` default: rates, averages and maxima are over two samples.
const SAMPLES: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    start_ms: i64,
    count: u64,
    sum: f64,
    max: f64,
    min: f64,
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            start_ms: i64::MIN,
            count: 0,
            sum: 0.0,
            max: f64::NEG_INFINITY,
            min: f64::INFINITY,
        }
    }
}

/// Counts events and the values they carry (a latency, a record count): the total ever, and
/// over the last two 30 s samples the rate per second, the average and the maximum, as Kafka's
/// metrics compute them.
///
/// ```
/// use streams_core::Sensor;
/// let mut s = Sensor::default();
/// s.record(4.0, 1_000);
/// s.record(2.0, 2_000);
/// assert_eq!(s.total(), 2);
/// assert_eq!(s.avg(2_000), Some(3.0));
/// assert_eq!(s.max(2_000), Some(4.0));
/// assert_eq!(s.min(2_000), Some(2.0));
/// // Two events over the minimum window of 30 s.
/// assert!((s.rate(2_000) - 2.0 / 30.0).abs() < 1e-9);
/// // A minute later both samples are obsolete.
/// assert_eq!(s.avg(100_000), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sensor {
    total: u64,
    sum_total: f64,
    samples: [Sample; SAMPLES],
    current: usize,
}

impl Sensor {
    /// One event carrying `value`, at `now_ms`.
    pub fn record(&mut self, value: f64, now_ms: i64) {
        self.record_many(1, value, now_ms);
    }

    /// `count` events at once whose values sum to `sum` (a batch of records), at `now_ms`.
    /// The maximum is of the batch's mean value.
    pub fn record_many(&mut self, count: u64, sum: f64, now_ms: i64) {
        self.total += count;
        self.sum_total += sum;
        let mut s = self.samples[self.current];
        if s.start_ms == i64::MIN || now_ms >= s.start_ms.saturating_add(SAMPLE_WINDOW_MS) {
            self.current = (self.current + 1) % SAMPLES;
            s = Sample {
                start_ms: now_ms,
                ..Sample::default()
            };
        }
        s.count += count;
        s.sum += sum;
        if count > 0 {
            s.max = s.max.max(sum / count as f64);
            s.min = s.min.min(sum / count as f64);
        }
        self.samples[self.current] = s;
    }

    /// `count` events whose values sum to `sum`, the least `min` and the largest `max`
    /// (values gathered elsewhere since the last call), at `now_ms`.
    pub fn record_stats(&mut self, count: u64, sum: f64, min: f64, max: f64, now_ms: i64) {
        if count == 0 {
            return;
        }
        self.record_many(count, sum, now_ms);
        let s = &mut self.samples[self.current];
        s.max = s.max.max(max);
        s.min = s.min.min(min);
    }

    /// Events ever recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The sum of every value ever recorded.
    pub fn sum_total(&self) -> f64 {
        self.sum_total
    }

    /// The samples still inside the window at `now_ms`.
    fn live(&self, now_ms: i64) -> impl Iterator<Item = &Sample> {
        let horizon = now_ms.saturating_sub(SAMPLE_WINDOW_MS * SAMPLES as i64);
        self.samples
            .iter()
            .filter(move |s| s.start_ms != i64::MIN && s.start_ms > horizon)
    }

    /// Events per second over the live samples; as in Kafka, over at least one full window
    /// fewer than the samples kept (30 s), so that a fresh sensor does not report a burst.
    pub fn rate(&self, now_ms: i64) -> f64 {
        let (count, oldest) = self
            .live(now_ms)
            .fold((0u64, now_ms), |(c, o), s| (c + s.count, o.min(s.start_ms)));
        let span = (now_ms - oldest).max(SAMPLE_WINDOW_MS * (SAMPLES as i64 - 1));
        count as f64 * 1000.0 / span as f64
    }

    /// The values' sum per second over the live samples (a throughput of records, when each
    /// event carries a record count).
    pub fn value_rate(&self, now_ms: i64) -> f64 {
        let (sum, oldest) = self
            .live(now_ms)
            .fold((0.0, now_ms), |(c, o), s| (c + s.sum, o.min(s.start_ms)));
        let span = (now_ms - oldest).max(SAMPLE_WINDOW_MS * (SAMPLES as i64 - 1));
        sum * 1000.0 / span as f64
    }

    /// The values' mean over the live samples; `None` when there are none.
    pub fn avg(&self, now_ms: i64) -> Option<f64> {
        let (count, sum) = self
            .live(now_ms)
            .fold((0u64, 0.0), |(c, s), x| (c + x.count, s + x.sum));
        (count > 0).then(|| sum / count as f64)
    }

    /// The smallest value over the live samples; `None` when there are none.
    pub fn min(&self, now_ms: i64) -> Option<f64> {
        self.live(now_ms)
            .filter(|s| s.count > 0)
            .map(|s| s.min)
            .reduce(f64::min)
    }

    /// The largest value over the live samples; `None` when there are none.
    pub fn max(&self, now_ms: i64) -> Option<f64> {
        self.live(now_ms)
            .filter(|s| s.count > 0)
            .map(|s| s.max)
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::{Sensor, SAMPLE_WINDOW_MS};

    #[test]
    fn samples_roll_over_and_expire_like_kafkas() {
        let mut s = Sensor::default();
        for t in 0..60 {
            // One event a second for a minute, each worth `t`.
            s.record(t as f64, t * 1000);
        }
        // Samples [30 s, 60 s) and [0, 30 s) are live at 59 s: every event counts.
        assert_eq!(s.total(), 60);
        assert!((s.rate(59_000) - 60.0 / 59.0).abs() < 1e-9);
        assert_eq!(s.max(59_000), Some(59.0));
        // A sample is obsolete two windows after it started: just before 90 s only the second
        // one (events 30..59) is left.
        assert_eq!(s.avg(3 * SAMPLE_WINDOW_MS - 1), Some(44.5));
        assert_eq!(s.max(200_000), None);
        assert_eq!(s.rate(200_000), 0.0);
        let mut batch = Sensor::default();
        batch.record_many(10, 50.0, 0);
        assert_eq!(batch.total(), 10);
        assert_eq!(batch.avg(0), Some(5.0));
        assert!((batch.value_rate(0) - 50.0 / 30.0).abs() < 1e-9);
    }
}
