//! Time-windowed aggregations: [`TimeWindowedKStream`] (tumbling, hopping and sliding windows)
//! and its processor.

use streams_core::serde::Serdes;
use streams_core::window::{SlidingWindows, TimeWindows, Window, Windowed};
use streams_core::{
    Change, KeyValueStore, Processor, ProcessorContext, Record, Result, Stores, StreamsError,
    WindowStore,
};

use super::{configure, emitted_store, retention_ms, EmitStrategy, WindowedStores, EMITTED_KEY};
use crate::aggregation::{reduce_materialized, Fold};
use crate::grouped::KGroupedStream;
use crate::ktable::KTable;
use crate::options::Materialized;
use crate::processors::forward_cache_flushes;
use crate::Data;

/// The windows of a time-windowed aggregation: fixed (tumbling or hopping) or sliding.
#[derive(Debug, Clone, Copy)]
enum Spec {
    Time(TimeWindows),
    Sliding(SlidingWindows),
}

impl Spec {
    fn grace_ms(&self) -> i64 {
        match self {
            Spec::Time(w) => w.grace_ms(),
            Spec::Sliding(w) => w.grace_ms(),
        }
    }
    /// Width of a window, end exclusive.
    fn size_ms(&self) -> i64 {
        match self {
            Spec::Time(w) => w.size_ms(),
            Spec::Sliding(w) => w.time_difference_ms() + 1,
        }
    }
    fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Spec::Time(w) => w.validate(),
            Spec::Sliding(w) => w.validate(),
        }
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Aggregates per key and tumbling or hopping time window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use streams_core::window::TimeWindows;
    /// use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// let per_minute = b
    ///     .stream::<String, String>("clicks")
    ///     .group_by_key()
    ///     .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10)))
    ///     .count();
    /// per_minute.to_stream().to("clicks-per-minute");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn windowed_by(self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: self,
            spec: Spec::Time(windows),
            emit: EmitStrategy::OnWindowUpdate,
        }
    }

    /// Aggregates per key and sliding window: every window of the time difference that some
    /// record starts or ends.
    pub fn windowed_by_sliding(self, windows: SlidingWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: self,
            spec: Spec::Sliding(windows),
            emit: EmitStrategy::OnWindowUpdate,
        }
    }
}

/// A grouped stream cut into time windows (tumbling, hopping or sliding), ready to aggregate.
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    spec: Spec,
    emit: EmitStrategy,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// Chooses when results are emitted (every update by default).
    pub fn emit_strategy(mut self, emit: EmitStrategy) -> Self {
        self.emit = emit;
        self
    }

    /// Counts records per key and window.
    pub fn count(self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// Counts records per key and window, stored as `m` says.
    pub fn count_with(self, m: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.build(m, Fold::count())
    }

    /// Combines the values of each key and window with `f(aggregate, value)`.
    pub fn reduce(self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        self.reduce_with(f, Materialized::default())
    }

    /// Like [`Self::reduce`], stored as `m` says.
    pub fn reduce_with(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        m: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let m = reduce_materialized(m, self.grouped.value_serde());
        self.build(m, Fold::reduce(f))
    }

    /// Folds the values of each key and window with `agg(key, value, aggregate)` from `init()`.
    pub fn aggregate<VA: Data>(
        self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        agg: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(init, agg, Materialized::default())
    }

    /// Like [`Self::aggregate`], stored as `m` says.
    pub fn aggregate_with<VA: Data>(
        self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        agg: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.build(m, Fold::aggregate(init, agg))
    }

    /// The one path of count, reduce and aggregate: a node folding each key's values into its
    /// windows in a window store (sliding windows also keep the records, to recompute windows).
    fn build<VA: Data>(
        self,
        m: Materialized<K, VA>,
        fold: Fold<K, V, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let spec = self.spec;
        if let Err(e) = spec.validate() {
            self.grouped
                .stream
                .b
                .borrow_mut()
                .fail(StreamsError::topology("", e));
        }
        let prefix = match spec {
            Spec::Time(_) => "KSTREAM-AGGREGATE-",
            Spec::Sliding(_) => "KSTREAM-SLIDINGWINDOWAGGREGATE-",
        };
        let t = self.grouped.target(&m, prefix);
        let (k, store) = (t.key_serde.clone(), t.store.clone());
        let mut inner = t.builder().borrow_mut();
        let min_retention = spec.size_ms().saturating_add(spec.grace_ms());
        let retention = retention_ms(&m, min_retention, &store, &mut inner);
        let final_only = self.emit == EmitStrategy::OnWindowClose;
        let size = spec.size_ms();
        let aggregates = configure(
            Stores::persistent_window_store(
                &store,
                retention,
                size,
                false,
                k.clone(),
                t.value_serde.clone(),
            ),
            &m,
            !final_only,
        );
        // Sliding windows are recomputed from the records they hold, kept for as long as a late
        // record can still change a window.
        let records = matches!(spec, Spec::Sliding(_)).then(|| {
            let vs = inner.serde(
                self.grouped
                    .grouped
                    .value_serde
                    .clone()
                    .or(t.input.value_serde.clone()),
                &format!("the value of store `{store}-records`"),
            );
            configure(
                Stores::persistent_window_store(
                    &format!("{store}-records"),
                    // A late record still within grace recomputes windows reaching 2 * size
                    // before it.
                    retention.saturating_add(2 * size),
                    1,
                    true,
                    k.clone(),
                    vs,
                ),
                &m,
                false,
            )
        });
        drop(inner);
        let has_raw = records.is_some();
        let stores = WindowedStores {
            aggregates,
            records,
            emitted: final_only.then(|| emitted_store(&store, &m)),
        };
        t.add_windowed(
            spec.grace_ms(),
            Serdes::time_windowed(k, size),
            stores,
            move |ctx| WindowAggregate::init(ctx, &store, has_raw, final_only, spec, fold.clone()),
        )
    }
}

/// Folds a grouped stream per key and time window (tumbling, hopping, sliding).
struct WindowAggregate<K, V, VA> {
    store: WindowStore<K, VA>,
    cached: bool,
    /// Sliding windows: every record, by timestamp.
    raw: Option<WindowStore<K, V>>,
    /// Emit-on-close: the close time up to which final results were emitted.
    emitted: Option<KeyValueStore<String, i64>>,
    final_only: bool,
    spec: Spec,
    observed: i64,
    fold: Fold<K, V, VA>,
}

impl<K: Data, V: Data, VA: Data> WindowAggregate<K, V, VA> {
    fn init(
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        store_name: &str,
        has_raw: bool,
        final_only: bool,
        spec: Spec,
        fold: Fold<K, V, VA>,
    ) -> Result<Self> {
        let store: WindowStore<K, VA> = ctx.get_store(store_name)?;
        let cached = store.is_cached();
        if cached {
            forward_cache_flushes(ctx, &store)?;
        }
        let raw = match has_raw {
            true => Some(ctx.get_store(&format!("{store_name}-records"))?),
            false => None,
        };
        let emitted = match final_only {
            true => Some(ctx.get_state_store(&format!("{store_name}-emitted"))?),
            false => None,
        };
        Ok(WindowAggregate {
            observed: store.observed_stream_time()?,
            store,
            cached,
            raw,
            emitted,
            final_only,
            spec,
            fold,
        })
    }

    fn emit(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        key: &K,
        window: Window,
        new: VA,
        old: Option<VA>,
        ts: i64,
    ) -> Result<()> {
        self.store.put(key, Some(&new), window.start)?;
        if !self.final_only && !self.cached {
            ctx.forward(Record::new(
                Windowed::new(key.clone(), window),
                Change::new(Some(new), old),
                ts,
            ))?;
        }
        Ok(())
    }

    fn process_time(
        &mut self,
        w: TimeWindows,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<()> {
        let close = self.observed - w.grace_ms();
        for window in w.windows_for(r.timestamp) {
            if window.end <= close {
                tracing::debug!(
                    window_start = window.start,
                    window_end = window.end,
                    timestamp = r.timestamp,
                    "dropping a record for a closed window"
                );
                ctx.record_dropped();
                continue;
            }
            let old = self.store.fetch(&r.key, window.start)?;
            let new = self.fold.apply(&r.key, r.value.clone(), old.clone());
            self.emit(ctx, &r.key, window, new, old, r.timestamp)?;
        }
        Ok(())
    }

    fn process_sliding(
        &mut self,
        w: SlidingWindows,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<()> {
        let d = w.time_difference_ms();
        let ts = r.timestamp;
        let close = self.observed - w.grace_ms();
        // The last window holding the record ends at ts + d (inclusive).
        if ts + d < close {
            tracing::debug!(
                timestamp = ts,
                "dropping a record for closed sliding windows"
            );
            ctx.record_dropped();
            return Ok(());
        }
        let raw = self.raw.as_ref().ok_or_else(|| {
            StreamsError::topology(
                ctx.processor_name(),
                "a sliding-window aggregation has no records store",
            )
        })?;
        raw.put(&r.key, Some(&r.value), ts)?;
        let records = raw.fetch_range(&r.key, (ts - 2 * d - 1).max(0), ts + 2 * d + 1)?;
        let store = self.store.clone();
        // Windows holding the new record: those ending at a record within d after it (its own
        // left window included), and those starting just after a record within d before it.
        let mut starts: Vec<i64> = records
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| (ts..=ts + d).contains(t))
            .map(|t| (t - d).max(0))
            .chain(
                records
                    .iter()
                    .map(|(t, _)| *t)
                    .filter(|t| (ts - d - 1..ts).contains(t))
                    .map(|t| t + 1),
            )
            .collect();
        starts.sort_unstable();
        starts.dedup();
        let fold_window = |start: i64| -> Option<VA> {
            let mut agg: Option<VA> = None;
            for (t, v) in &records {
                if (start..=start + d).contains(t) {
                    agg = Some(self.fold.apply(&r.key, v.clone(), agg));
                }
            }
            agg
        };
        for start in starts {
            let window = Window::new(start, start + d + 1);
            if start + d < close {
                continue;
            }
            if let Some(new) = fold_window(start) {
                let old = store.fetch(&r.key, start)?;
                self.emit(ctx, &r.key, window, new, old, ts)?;
            }
        }
        // The record's own right window, if later records make it non-empty and it is new.
        let right = ts + 1;
        if records.iter().any(|(t, _)| (right..=right + d).contains(t))
            && store.fetch(&r.key, right)?.is_none()
        {
            if let Some(new) = fold_window(right) {
                self.emit(
                    ctx,
                    &r.key,
                    Window::new(right, right + d + 1),
                    new,
                    None,
                    ts,
                )?;
            }
        }
        Ok(())
    }

    /// Emit-on-close: forwards every window that closed since the last call, once.
    fn emit_closed(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<()> {
        let Some(emitted) = &self.emitted else {
            return Ok(());
        };
        let close = self.observed - self.spec.grace_ms();
        let last = emitted.get(&EMITTED_KEY.to_string())?.unwrap_or(-1);
        if close <= last {
            return Ok(());
        }
        let size = self.spec.size_ms();
        // Windows with last < end <= close, end = start + size.
        let from = (last - size + 1).max(0);
        let to = close - size;
        if to >= from {
            for (w, v) in self.store.fetch_all(from, to)? {
                let end = w.window.end;
                ctx.forward(Record::new(w, Change::new(Some(v), None), end - 1))?;
            }
        }
        emitted.put(&EMITTED_KEY.to_string(), &close)
    }
}

impl<K: Data, V: Data, VA: Data> Processor for WindowAggregate<K, V, VA> {
    type KIn = K;
    type VIn = V;
    type KOut = Windowed<K>;
    type VOut = Change<VA>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<()> {
        self.observed = self.observed.max(r.timestamp);
        // Windows this record closes are emitted before its own put can expire their segment.
        self.emit_closed(ctx)?;
        match self.spec {
            Spec::Time(w) => self.process_time(w, ctx, r),
            Spec::Sliding(w) => self.process_sliding(w, ctx, r),
        }
    }
}
