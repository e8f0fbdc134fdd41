//! Final results of windowed aggregations: `KTable<Windowed<K>, V>::suppress` with
//! [`Suppressed::until_window_closes`].
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

use std::time::Duration;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::window::Windowed;
use streams_core::{
    Change, KeyValueStore, Processor, ProcessorContext, PunctuationId, PunctuationType, Record,
    Result, Stores, StreamsError,
};

use crate::ktable::KTable;
use crate::Data;

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

impl<K: Data, V: Data> KTable<Windowed<K>, V> {
    /// Holds back the updates of each window and emits only its final result, when it closes.
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
    pub fn suppress(&self, s: Suppressed) -> KTable<Windowed<K>, V> {
        let b = self.b.clone();
        let mut inner = b.borrow_mut();
        let node = match &s.name {
            Some(n) => n.clone(),
            None => inner.new_name("KTABLE-SUPPRESS-"),
        };
        let store = match &s.name {
            Some(n) => format!("{n}-store"),
            None => {
                let n = inner.new_name("KTABLE-SUPPRESS-STATE-STORE-");
                inner.topology.note_generated_name("store", &n);
                n
            }
        };
        let grace = match inner.window_grace.get(&self.node) {
            Some(g) => *g,
            None => {
                inner.fail(StreamsError::topology(self.node.as_str(), format!(
                    "suppress(until_window_closes) at `{node}` needs the table of a windowed aggregation, and `{}` is not one",
                    self.node
                )));
                0
            }
        };
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
                move |ctx| Suppress::init(ctx, &st, ks.clone(), vs.clone(), s.clone(), grace),
                &[&parent],
            )?;
            t.add_state_store(sb, &[&n])?;
            Ok(())
        });
        drop(inner);
        KTable::new(b, node, Some(k), Some(v), None)
    }
}

/// One buffered window: the last update's timestamp, the value before the first buffered
/// update (`prior`) and the latest value.
struct Entry {
    timestamp: i64,
    prior: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let prior = self.prior.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(13 + prior.len() + self.new.as_ref().map_or(0, Vec::len));
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.push(u8::from(self.prior.is_some()) | if self.new.is_some() { 2 } else { 0 });
        out.extend_from_slice(&(prior.len() as u32).to_be_bytes());
        out.extend_from_slice(prior);
        if let Some(n) = &self.new {
            out.extend_from_slice(n);
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Entry> {
        let timestamp = i64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let flags = *b.get(8)?;
        let len = u32::from_be_bytes(b.get(9..13)?.try_into().ok()?) as usize;
        let prior = b.get(13..13usize.checked_add(len)?)?;
        let rest = &b[13 + len..];
        Some(Entry {
            timestamp,
            prior: (flags & 1 != 0).then(|| prior.to_vec()),
            new: (flags & 2 != 0).then(|| rest.to_vec()),
        })
    }
}

/// The buffer key: window end (so the buffer is ordered by closing time), then the key.
fn buffer_key(end: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + key.len());
    k.extend_from_slice(&end.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The suppression processor.
struct Suppress<K, V> {
    store_name: String,
    buffer: KeyValueStore<Vec<u8>, Vec<u8>>,
    key_serde: SerdeRef<Windowed<K>>,
    value_serde: SerdeRef<V>,
    config: Suppressed,
    grace: i64,
    observed: i64,
    records: u64,
    bytes: u64,
    /// The wall-clock close delay, when one is set.
    wall_clock_delay_ms: Option<i64>,
}

impl<K: Data, V: Data> Suppress<K, V> {
    /// Opens the buffer (counting what it holds) and schedules the wall-clock close, if any.
    fn init(
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        store: &str,
        key_serde: SerdeRef<Windowed<K>>,
        value_serde: SerdeRef<V>,
        config: Suppressed,
        grace: i64,
    ) -> Result<Self> {
        let buffer: KeyValueStore<Vec<u8>, Vec<u8>> = ctx.get_state_store(store)?;
        let (mut records, mut bytes) = (0, 0);
        for (k, v) in buffer.all()? {
            records += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        let wall_clock_delay_ms = config.wall_clock_close.map(|delay| {
            let every = delay
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(1));
            ctx.schedule_punctuation(every, PunctuationType::WallClockTime);
            i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)
        });
        Ok(Suppress {
            store_name: store.to_string(),
            buffer,
            key_serde,
            value_serde,
            config,
            grace,
            observed: -1,
            records,
            bytes,
            wall_clock_delay_ms,
        })
    }

    fn err(&self, message: String) -> StreamsError {
        StreamsError::StoreAccess {
            store: self.store_name.clone(),
            message,
        }
    }

    fn ser<T: 'static>(&self, serde: &SerdeRef<T>, v: &T) -> Result<Option<Vec<u8>>> {
        serde
            .serialize(&self.store_name, v)
            .map_err(|source| StreamsError::Serialization {
                target: format!("suppression buffer `{}`", self.store_name),
                source,
            })
    }

    fn de<T: 'static>(&self, serde: &SerdeRef<T>, b: Option<&[u8]>) -> Result<Option<T>> {
        b.map(|b| serde.deserialize(&self.store_name, Some(b)))
            .transpose()
            .map_err(|e| self.err(format!("buffered bytes do not deserialize: {e}")))
    }

    /// Forwards and removes the buffered window stored under `k`.
    fn emit(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        k: &[u8],
        v: &[u8],
    ) -> Result<()> {
        let e = Entry::decode(v).ok_or_else(|| self.err("corrupt buffered entry".into()))?;
        let key = self
            .de(&self.key_serde, k.get(8..))?
            .ok_or_else(|| self.err("buffered key without bytes".into()))?;
        let new = self.de(&self.value_serde, e.new.as_deref())?;
        let prior = self.de(&self.value_serde, e.prior.as_deref())?;
        self.buffer.delete(&k.to_vec())?;
        self.records = self.records.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub((k.len() + v.len()) as u64);
        if new.is_none() && prior.is_none() {
            return Ok(());
        }
        ctx.forward(Record::new(key, Change::new(new, prior), e.timestamp))
    }

    /// Emits every window whose end is at or before `close`.
    fn evict_closed(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        close: i64,
    ) -> Result<()> {
        if close < 0 {
            return Ok(());
        }
        let from = vec![0u8; 8];
        let to = close.saturating_add(1).to_be_bytes().to_vec();
        for (k, v) in self.buffer.range(&from, &to)? {
            if k.len() > 8 && k[..8] <= close.to_be_bytes()[..] {
                self.emit(ctx, &k, &v)?;
            }
        }
        Ok(())
    }

    fn buffer(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        r: Record<Windowed<K>, Change<V>>,
    ) -> Result<()> {
        self.observed = self.observed.max(r.timestamp);
        let key = self
            .ser(&self.key_serde, &r.key)?
            .ok_or_else(|| self.err("a windowed key must not serialize to null".into()))?;
        let bk = buffer_key(r.key.window.end, &key);
        let existing = self.buffer.get(&bk)?;
        let prior = match &existing {
            Some(e) => {
                Entry::decode(e)
                    .ok_or_else(|| self.err("corrupt buffered entry".into()))?
                    .prior
            }
            None => match &r.value.old_value {
                Some(o) => self.ser(&self.value_serde, o)?,
                None => None,
            },
        };
        let new = match &r.value.new_value {
            Some(n) => self.ser(&self.value_serde, n)?,
            None => None,
        };
        let entry = Entry {
            timestamp: r.timestamp,
            prior,
            new,
        }
        .encode();
        match &existing {
            Some(e) => self.bytes = self.bytes.saturating_sub((bk.len() + e.len()) as u64),
            None => self.records += 1,
        }
        self.bytes += (bk.len() + entry.len()) as u64;
        self.buffer.put(&bk, &entry)?;
        self.evict_closed(ctx, self.observed - self.grace)?;
        self.enforce_limits(ctx)
    }

    fn over_limit(&self) -> bool {
        let b = &self.config.buffer;
        b.max_records.is_some_and(|m| self.records > m)
            || b.max_bytes.is_some_and(|m| self.bytes > m)
    }

    fn enforce_limits(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
    ) -> Result<()> {
        if !self.over_limit() {
            return Ok(());
        }
        if self.config.buffer.when_full == BufferFull::ShutDown {
            return Err(self.err(format!(
                "suppression buffer is full ({} windows, {} bytes; limits {:?} windows, {:?} bytes) and is set to shut down when full",
                self.records, self.bytes, self.config.buffer.max_records, self.config.buffer.max_bytes
            )));
        }
        for (k, v) in self.buffer.all()? {
            if !self.over_limit() {
                break;
            }
            self.emit(ctx, &k, &v)?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data> Processor for Suppress<K, V> {
    type KIn = Windowed<K>;
    type VIn = Change<V>;
    type KOut = Windowed<K>;
    type VOut = Change<V>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        r: Record<Windowed<K>, Change<V>>,
    ) -> Result<()> {
        self.buffer(ctx, r)
    }

    /// The wall-clock close: windows whose end is `delay + grace` behind the wall clock.
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
        _: PunctuationId,
        now: i64,
    ) -> Result<()> {
        let Some(delay_ms) = self.wall_clock_delay_ms else {
            return Ok(());
        };
        let close = now.saturating_sub(delay_ms).saturating_sub(self.grace);
        self.evict_closed(ctx, close)
    }
}
