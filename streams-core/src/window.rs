//! Windows: [`Window`] and [`Windowed`] keys and the window definitions ([`TimeWindows`],
//! [`SlidingWindows`], [`SessionWindows`]). A leaf: the windowed key serdes live with the other
//! serdes (`Serdes::time_windowed`, `Serdes::session_windowed`).

use std::time::Duration;

/// A time interval: `[start, end)` for time and sliding windows, `[start, end]` for sessions
/// (a session of one record has `start == end`). Milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// First millisecond of the window.
    pub start: i64,
    /// End of the window (exclusive for time windows, inclusive for sessions).
    pub end: i64,
}

impl Window {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        Window { start, end }
    }
}

/// A key of a windowed aggregation: the record key and the window it was aggregated in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

impl<K> Windowed<K> {
    /// `key` in `window`.
    pub fn new(key: K, window: Window) -> Self {
        Windowed { key, window }
    }
}

impl<K: std::fmt::Display> std::fmt::Display for Windowed<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}@{}/{}]",
            self.key, self.window.start, self.window.end
        )
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Fixed-size windows aligned to the epoch: tumbling (advance = size) or hopping (advance <
/// size). A record belongs to every window whose `[start, start + size)` holds its timestamp.
///
/// Grace is always an explicit choice: records arriving more than `grace` after a window's end
/// (in stream time) are dropped and counted.
///
/// ```
/// use std::time::Duration;
/// use streams_core::window::{TimeWindows, Window};
/// let hopping = TimeWindows::of_size_and_grace(Duration::from_secs(10), Duration::from_secs(1))
///     .advance_by(Duration::from_secs(5));
/// assert_eq!(
///     hopping.windows_for(12_000),
///     vec![Window::new(5_000, 15_000), Window::new(10_000, 20_000)]
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    size_ms: i64,
    advance_ms: i64,
    grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` that accept no late records.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` that accept records up to `grace` after a window ends.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        TimeWindows {
            size_ms: ms(size),
            advance_ms: ms(size),
            grace_ms: ms(grace),
        }
    }

    /// Hopping windows: a new window starts every `advance` (at most the size).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = ms(advance);
        self
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// Advance in milliseconds (equal to the size for tumbling windows).
    pub fn advance_ms(&self) -> i64 {
        self.advance_ms
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// Why these windows are unusable, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if self.size_ms <= 0 {
            return Err(format!(
                "window size must be positive, got {} ms",
                self.size_ms
            ));
        }
        if self.advance_ms <= 0 || self.advance_ms > self.size_ms {
            return Err(format!(
                "window advance must be in (0, size = {} ms], got {} ms",
                self.size_ms, self.advance_ms
            ));
        }
        Ok(())
    }

    /// Every window holding `timestamp`, earliest first (none before the epoch).
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let mut start = (timestamp - self.size_ms + self.advance_ms).max(0);
        start -= start % self.advance_ms;
        let mut out = Vec::new();
        while start <= timestamp {
            out.push(Window::new(start, start.saturating_add(self.size_ms)));
            start += self.advance_ms;
        }
        out
    }
}

/// Windows of a fixed time difference defined by the records themselves: two records are in
/// one window when their timestamps are at most `time_difference` apart. Each record defines
/// the window `[ts - difference, ts]` ending at it and, when later records follow within the
/// difference, the window `[ts + 1, ts + 1 + difference]` starting just after it.
///
/// Windows are reported with an exclusive end like time windows: `[start, start + difference + 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    difference_ms: i64,
    grace_ms: i64,
}

impl SlidingWindows {
    /// Sliding windows of `difference` that accept no late records.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// Sliding windows of `difference` that accept records up to `grace` after a window ends.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            difference_ms: ms(difference),
            grace_ms: ms(grace),
        }
    }

    /// The maximum time difference in milliseconds.
    pub fn time_difference_ms(&self) -> i64 {
        self.difference_ms
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// Why these windows are unusable, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if self.difference_ms <= 0 {
            return Err(format!(
                "sliding window time difference must be positive, got {} ms",
                self.difference_ms
            ));
        }
        Ok(())
    }
}

/// Session windows: records of a key closer than the inactivity `gap` to each other form one
/// session; a record bridging two sessions merges them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    gap_ms: i64,
    grace_ms: i64,
}

impl SessionWindows {
    /// Sessions closed by `gap` of inactivity that accept no late records.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions closed by `gap` of inactivity that accept records up to `grace` after a session
    /// ends.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap_ms: ms(gap),
            grace_ms: ms(grace),
        }
    }

    /// Inactivity gap in milliseconds.
    pub fn gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// Grace period in milliseconds.
    pub fn grace_ms(&self) -> i64 {
        self.grace_ms
    }

    /// Why these windows are unusable, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if self.gap_ms <= 0 {
            return Err(format!(
                "session inactivity gap must be positive, got {} ms",
                self.gap_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_hold_one_window_each() {
        let w = TimeWindows::of_size_with_no_grace(Duration::from_secs(60));
        assert_eq!(w.windows_for(0), vec![Window::new(0, 60_000)]);
        assert_eq!(w.windows_for(59_999), vec![Window::new(0, 60_000)]);
        assert_eq!(w.windows_for(60_000), vec![Window::new(60_000, 120_000)]);
    }

    #[test]
    fn hopping_windows_do_not_start_before_the_epoch() {
        let w = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
            .advance_by(Duration::from_millis(3));
        assert_eq!(
            w.windows_for(4),
            vec![Window::new(0, 10), Window::new(3, 13)]
        );
        assert_eq!(
            w.windows_for(13),
            vec![Window::new(6, 16), Window::new(9, 19), Window::new(12, 22)]
        );
    }

    #[test]
    fn invalid_windows_are_explained() {
        let w = TimeWindows::of_size_with_no_grace(Duration::from_millis(10))
            .advance_by(Duration::from_millis(20));
        assert!(w.validate().unwrap_err().contains("advance"));
        assert!(
            SessionWindows::of_inactivity_gap_with_no_grace(Duration::ZERO)
                .validate()
                .is_err()
        );
    }
}
