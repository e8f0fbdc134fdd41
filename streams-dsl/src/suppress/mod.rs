//! `KTable::suppress`: final results of windowed aggregations with
//! [`Suppressed::until_window_closes`], and rate limiting of any table with
//! [`Suppressed::until_time_limit`] (`buffer` holds the processor).
//!
//! Updates of a window wait in a buffer until the window closes, then the window's last value
//! is emitted once. The buffer is a store with a changelog, so a restart neither loses nor
//! repeats final results.
//!
//! # When windows close
//! Stream time here is the largest record timestamp the suppression has seen in its task (one
//! task per input partition). A window closes when stream time reaches its end plus the grace
//! period of the windowed aggregation; a session, its end plus the inactivity gap plus the grace
//! (until then a record within the gap can still extend it). Stream time only moves with records: if a partition goes
//! quiet, its last windows stay open. [`Suppressed::with_wall_clock_close`] also closes a
//! window once the wall clock passes its end + grace + a delay of your choice, for inputs that
//! may stop.

mod buffer;

use std::time::Duration;

use streams_core::serde::Serdes;
use streams_core::window::Windowed;
use streams_core::{Stores, StreamsError};

use crate::builder::BuilderInner;
use crate::ktable::KTable;
use crate::Data;
use buffer::{Due, Suppress};

/// What a full suppression buffer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferFull {
    /// Fail the task (the application stops) rather than emit anything but final results.
    ShutDown,
    /// Emit the oldest windows early (not final) to make room.
    EmitEarly,
}

/// How much a suppression buffer may hold.
///
/// ```
/// use streams_dsl::suppress::{BufferConfig, BufferFull};
/// let b = BufferConfig::max_records(10_000).with_max_bytes(8 << 20).shut_down_when_full();
/// assert_eq!(b.when_full(), BufferFull::ShutDown);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: Option<u64>,
    max_bytes: Option<u64>,
    when_full: BufferFull,
}

impl BufferConfig {
    /// No limit (memory is the limit).
    pub fn unbounded() -> Self {
        BufferConfig {
            max_records: None,
            max_bytes: None,
            when_full: BufferFull::ShutDown,
        }
    }
    /// At most `n` windows waiting; emits early when full unless told otherwise.
    pub fn max_records(n: u64) -> Self {
        BufferConfig {
            max_records: Some(n),
            max_bytes: None,
            when_full: BufferFull::EmitEarly,
        }
    }
    /// At most `n` bytes of keys and values waiting; emits early when full unless told
    /// otherwise.
    pub fn max_bytes(n: u64) -> Self {
        BufferConfig {
            max_records: None,
            max_bytes: Some(n),
            when_full: BufferFull::EmitEarly,
        }
    }
    /// Adds a record limit.
    pub fn with_max_records(mut self, n: u64) -> Self {
        self.max_records = Some(n);
        self
    }
    /// Adds a byte limit.
    pub fn with_max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }
    /// A full buffer fails the task.
    pub fn shut_down_when_full(mut self) -> Self {
        self.when_full = BufferFull::ShutDown;
        self
    }
    /// A full buffer emits its oldest windows early.
    pub fn emit_early_when_full(mut self) -> Self {
        self.when_full = BufferFull::EmitEarly;
        self
    }
    /// What a full buffer does.
    pub fn when_full(&self) -> BufferFull {
        self.when_full
    }
}

/// How a windowed table is suppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    name: Option<String>,
    buffer: BufferConfig,
    wall_clock_close: Option<Duration>,
}

impl Suppressed {
    /// Emit each window once, when it closes (its end + grace in stream time).
    pub fn until_window_closes(buffer: BufferConfig) -> Self {
        Suppressed {
            name: None,
            buffer,
            wall_clock_close: None,
        }
    }
    /// Names the suppression node; its buffer store is `<name>-store`.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// Also close a window when the wall clock passes its end + grace + `delay`, checked every
    /// second or `delay`, whichever is shorter: final results then come even when the input
    /// stops.
    pub fn with_wall_clock_close(mut self, delay: Duration) -> Self {
        self.wall_clock_close = Some(delay);
        self
    }
}

/// What [`KTable::suppress`] holds back: [`Suppressed::until_window_closes`] for the table of a
/// windowed aggregation, [`Suppressed::until_time_limit`] for any table.
pub trait Suppression<K, V> {
    /// Adds the suppression after `table`.
    fn suppress(self, table: &KTable<K, V>) -> KTable<K, V>;
}

/// Kafka Streams' `Suppressed.untilTimeLimit`: made by [`Suppressed::until_time_limit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeLimit {
    name: Option<String>,
    buffer: BufferConfig,
    wait: Duration,
}

impl TimeLimit {
    /// Names the suppression node; its buffer store is `<name>-store`.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

impl Suppressed {
    /// Rate limiting: each key's latest update is emitted once `wait` of stream time has passed
    /// since the first update the buffer held for it; updates in between replace it without
    /// restarting the wait. A full buffer emits its oldest keys early or shuts down, as
    /// `buffer` says. Works on any table.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_dsl::suppress::{BufferConfig, Suppressed};
    /// use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// b.table::<String, String>("sensor-state")
    ///     .suppress(Suppressed::until_time_limit(
    ///         Duration::from_secs(30),
    ///         BufferConfig::max_records(10_000),
    ///     ))
    ///     .to_stream()
    ///     .to("sensor-state-at-most-every-30s");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn until_time_limit(wait: Duration, buffer: BufferConfig) -> TimeLimit {
        TimeLimit {
            name: None,
            buffer,
            wait,
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Holds back updates as `s` says: final results of windows
    /// ([`Suppressed::until_window_closes`]), or at most one update per key per time limit
    /// ([`Suppressed::until_time_limit`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::window::TimeWindows;
    /// use streams_dsl::suppress::{BufferConfig, Suppressed};
    /// use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// b.stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
    ///     .count()
    ///     .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
    ///     .to_stream()
    ///     .to("final-counts");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn suppress<S: Suppression<K, V>>(&self, s: S) -> KTable<K, V> {
        s.suppress(self)
    }

    /// Adds the suppression node and its buffer.
    fn add_suppression(
        &self,
        config: Suppressed,
        due: impl FnOnce(&mut BuilderInner) -> Due<K>,
    ) -> KTable<K, V> {
        let b = self.b.clone();
        let mut inner = b.borrow_mut();
        let node = match &config.name {
            Some(n) => n.clone(),
            None => inner.new_name("KTABLE-SUPPRESS-"),
        };
        let store = match &config.name {
            Some(n) => format!("{n}-store"),
            None => {
                let n = inner.new_name("KTABLE-SUPPRESS-STATE-STORE-");
                inner.topology.note_generated_name("store", &n);
                n
            }
        };
        let due = due(&mut inner);
        let k = inner.serde(
            self.key_serde.clone(),
            &format!("the key of suppression buffer `{store}`"),
        );
        let v = inner.serde(
            self.value_serde.clone(),
            &format!("the value of suppression buffer `{store}`"),
        );
        let sb = Stores::in_memory_key_value(&store, Serdes::bytes(), Serdes::bytes())
            .with_caching_disabled()
            .with_logging_enabled(Vec::<(String, String)>::new());
        let (n, st, parent) = (node.clone(), store.clone(), self.node.clone());
        let (ks, vs) = (k.clone(), v.clone());
        inner.apply(move |t| {
            t.add_processor(
                &n,
                move |ctx| Suppress::init(ctx, &st, ks.clone(), vs.clone(), config.clone(), due),
                &[&parent],
            )?;
            t.add_state_store(sb, &[&n])?;
            Ok(())
        });
        drop(inner);
        KTable::new(b, node, Some(k), Some(v), None)
    }
}

/// Final results of the windows of a windowed aggregation's table.
impl<K: Data, V: Data> Suppression<Windowed<K>, V> for Suppressed {
    fn suppress(self, table: &KTable<Windowed<K>, V>) -> KTable<Windowed<K>, V> {
        let node = table.node.clone();
        table.add_suppression(self, move |inner| {
            let grace = match inner.window_grace.get(&node) {
                Some(g) => *g,
                None => {
                    inner.fail(StreamsError::topology(node.as_str(), format!(
                        "suppress(until_window_closes) needs the table of a windowed aggregation, and `{node}` is not one"
                    )));
                    0
                }
            };
            Due::WindowClose {
                window_end: |k: &Windowed<K>| k.window.end,
                grace,
            }
        })
    }
}

/// Rate limiting of any table.
impl<K: Data, V: Data> Suppression<K, V> for TimeLimit {
    fn suppress(self, table: &KTable<K, V>) -> KTable<K, V> {
        let wait = i64::try_from(self.wait.as_millis()).unwrap_or(i64::MAX);
        let config = Suppressed {
            name: self.name,
            buffer: self.buffer,
            wall_clock_close: None,
        };
        table.add_suppression(config, move |_| Due::TimeLimit { wait })
    }
}
