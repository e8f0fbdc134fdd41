//! Windowed aggregations: [`TimeWindowedKStream`] (tumbling, hopping and sliding windows) and
//! [`SessionWindowedKStream`], made by `KGroupedStream::windowed_by*`. Each gives a table keyed
//! by [`Windowed<K>`].
//!
//! A record belongs to its windows by its timestamp. The aggregation keeps its own stream time
//! (the largest timestamp it has seen); a window closes when stream time passes its end plus the
//! grace period, and a record arriving for closed windows only is dropped and counted in the
//! task's dropped-records metric.

use std::sync::Arc;

use streams_core::serde::Serdes;
use streams_core::window::{SessionWindows, SlidingWindows, TimeWindows, Window, Windowed};
use streams_core::{
    Change, KeyValueStore, Processor, ProcessorContext, Record, Result, SessionStore, StoreBuilder,
    Stores, StreamsError, WindowStore,
};

use crate::grouped::{store_name, KGroupedStream};
use crate::ktable::KTable;
use crate::options::Materialized;
use crate::processors::{forward_cache_flushes, First, Folder, Init};
use crate::Data;

/// When a windowed aggregation emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmitStrategy {
    /// Every update of a window (folded by the record cache until commit, when caching is on).
    #[default]
    OnWindowUpdate,
    /// Once per window, its final result, when the window closes (stream time passes its end
    /// plus grace). The store is then not cached.
    OnWindowClose,
}

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

    /// Aggregates per key and session: records closer than the inactivity gap.
    pub fn windowed_by_session(self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: self,
            windows,
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
        self.fold(
            m,
            Arc::new(|| 0i64),
            Arc::new(|_: &K, _: V, n: i64| n + 1),
            None,
        )
    }

    /// Combines the values of each key and window with `f(aggregate, value)`.
    pub fn reduce(self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        self.reduce_with(f, Materialized::default())
    }

    /// Like [`Self::reduce`], stored as `m` says.
    pub fn reduce_with(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        mut m: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        if m.value_serde.is_none() {
            m.value_serde = self.grouped.value_serde();
        }
        let init: Init<V> = Arc::new(|| unreachable!("reduce starts from the first value"));
        self.fold(
            m,
            init,
            Arc::new(move |_: &K, v: V, agg: V| f(agg, v)),
            Some(Arc::new(|v| v)),
        )
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
        self.fold(m, Arc::new(init), Arc::new(agg), None)
    }

    fn fold<VA: Data>(
        self,
        m: Materialized<K, VA>,
        init: Init<VA>,
        agg: Folder<K, V, VA>,
        first: Option<First<V, VA>>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.stream.b.clone();
        let spec = self.spec;
        if let Err(e) = spec.validate() {
            b.borrow_mut().fail(StreamsError::Topology(e));
        }
        let store = store_name(&b, &m, "KSTREAM-AGGREGATE-STATE-STORE-");
        let input = self
            .grouped
            .aggregation_input(&store, m.store_name.is_some());
        let prefix = match spec {
            Spec::Time(_) => "KSTREAM-AGGREGATE-",
            Spec::Sliding(_) => "KSTREAM-SLIDINGWINDOWAGGREGATE-",
        };
        let node = input.node_name(prefix);
        let key = self
            .grouped
            .grouped
            .key_serde
            .clone()
            .or(input.key_serde.clone());
        let mut inner = b.borrow_mut();
        let k = inner.serde(
            m.key_serde.clone().or(key),
            &format!("the key of store `{store}`"),
        );
        let v = inner.serde(
            m.value_serde.clone(),
            &format!("the value of store `{store}`"),
        );
        let min_retention = spec.size_ms().saturating_add(spec.grace_ms());
        let retention = retention_ms(&m, min_retention, &store, &mut inner);
        let final_only = self.emit == EmitStrategy::OnWindowClose;
        let size = spec.size_ms();
        let sb = configure(
            Stores::persistent_window_store(&store, retention, size, false, k.clone(), v.clone()),
            &m,
            !final_only,
        );
        // Sliding windows are recomputed from the records they hold, kept for as long as a late
        // record can still change a window.
        let raw = matches!(spec, Spec::Sliding(_)).then(|| {
            let vs = inner.serde(
                self.grouped
                    .grouped
                    .value_serde
                    .clone()
                    .or(input.value_serde.clone()),
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
        let emitted = final_only.then(|| emitted_store(&store, &m));
        inner.window_grace.insert(node.clone(), spec.grace_ms());
        let (n, s, parent) = (node.clone(), store.clone(), input.node.clone());
        let has_raw = raw.is_some();
        inner.apply(move |t| {
            t.add_processor(
                &n,
                move || WindowAggregate {
                    store_name: s.clone(),
                    store: None,
                    raw: None,
                    emitted: None,
                    has_raw,
                    final_only,
                    spec,
                    observed: -1,
                    init: init.clone(),
                    agg: agg.clone(),
                    first: first.clone(),
                },
                &[&parent],
            )?;
            t.add_state_store(sb, &[&n])?;
            if let Some(raw) = raw {
                t.add_state_store(raw, &[&n])?;
            }
            if let Some(e) = emitted {
                t.add_state_store(e, &[&n])?;
            }
            Ok(())
        });
        drop(inner);
        KTable::new(
            b,
            node,
            Some(Serdes::time_windowed(k, size)),
            Some(v),
            Some(store),
        )
    }
}

/// The retention of a window or session store: as `m` says (refused when below the minimum), or
/// the minimum.
fn retention_ms<K, V>(
    m: &Materialized<K, V>,
    min: i64,
    store: &str,
    b: &mut crate::builder::BuilderInner,
) -> i64 {
    match m.retention {
        None => min,
        Some(r) => {
            let r = i64::try_from(r.as_millis()).unwrap_or(i64::MAX);
            if r < min {
                b.fail(StreamsError::Topology(format!(
                    "retention of store `{store}` ({r} ms) must be at least window size + grace ({min} ms)"
                )));
            }
            r.max(min)
        }
    }
}

fn configure<K, V>(
    sb: StoreBuilder<K, V>,
    m: &Materialized<impl Sized, impl Sized>,
    cache: bool,
) -> StoreBuilder<K, V> {
    let sb = sb.persistent(m.persistent);
    let sb = if m.caching && cache {
        sb.with_caching_enabled()
    } else {
        sb.with_caching_disabled()
    };
    if m.logging {
        sb.with_logging_enabled(m.log_config.clone())
    } else {
        sb.with_logging_disabled()
    }
}

/// The store of an emit-on-close aggregation that remembers up to where final results went
/// out, so that a restart does not emit them again.
fn emitted_store<K, V>(store: &str, m: &Materialized<K, V>) -> StoreBuilder<String, i64> {
    configure(
        Stores::persistent_key_value(&format!("{store}-emitted"), Serdes::string(), Serdes::i64()),
        m,
        false,
    )
}

/// The one key of an emit-on-close aggregation's `<store>-emitted` store.
const EMITTED_KEY: &str = "last-emitted-close-time";

/// Folds a grouped stream per key and time window (tumbling, hopping, sliding).
struct WindowAggregate<K, V, VA> {
    store_name: String,
    store: Option<WindowStore<K, VA>>,
    /// Sliding windows: every record, by timestamp.
    raw: Option<WindowStore<K, V>>,
    has_raw: bool,
    /// Emit-on-close: the close time up to which final results were emitted.
    emitted: Option<KeyValueStore<String, i64>>,
    final_only: bool,
    spec: Spec,
    observed: i64,
    init: Init<VA>,
    agg: Folder<K, V, VA>,
    first: Option<First<V, VA>>,
}

impl<K: Data, V: Data, VA: Data> WindowAggregate<K, V, VA> {
    fn fold_in(&self, key: &K, value: V, old: Option<VA>) -> VA {
        match (old, &self.first) {
            (None, Some(first)) => first(value),
            (Some(o), _) => (self.agg)(key, value, o),
            (None, None) => (self.agg)(key, value, (self.init)()),
        }
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
        let store = self.store.as_ref().expect("initialized");
        store.put(key, Some(&new), window.start)?;
        if !self.final_only && !store.is_cached() {
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
            let old = self
                .store
                .as_ref()
                .expect("initialized")
                .fetch(&r.key, window.start)?;
            let new = self.fold_in(&r.key, r.value.clone(), old.clone());
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
        let raw = self.raw.as_ref().expect("initialized");
        raw.put(&r.key, Some(&r.value), ts)?;
        let records = raw.fetch_range(&r.key, (ts - 2 * d - 1).max(0), ts + 2 * d + 1)?;
        let store = self.store.as_ref().expect("initialized").clone();
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
                    agg = Some(self.fold_in(&r.key, v.clone(), agg));
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
            let store = self.store.as_ref().expect("initialized");
            for (w, v) in store.fetch_all(from, to)? {
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

    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<()> {
        let store: WindowStore<K, VA> = ctx.get_store(&self.store_name)?;
        if store.is_cached() {
            forward_cache_flushes(ctx, &store)?;
        }
        self.observed = store.observed_stream_time()?;
        self.store = Some(store);
        if self.has_raw {
            self.raw = Some(ctx.get_store(&format!("{}-records", self.store_name))?);
        }
        if self.final_only {
            self.emitted = Some(ctx.get_state_store(&format!("{}-emitted", self.store_name))?);
        }
        Ok(())
    }

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

/// A grouped stream cut into sessions, ready to aggregate.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
    emit: EmitStrategy,
}

/// Merges two session aggregates when a record bridges their sessions: `(key, agg1, agg2)`.
pub type Merger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Chooses when results are emitted (every update by default). On close, a session is
    /// final once stream time passes its end + gap + grace: no accepted record can extend it.
    pub fn emit_strategy(mut self, emit: EmitStrategy) -> Self {
        self.emit = emit;
        self
    }

    /// Counts records per key and session.
    pub fn count(self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// Counts records per key and session, stored as `m` says.
    pub fn count_with(self, m: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.fold(
            m,
            Arc::new(|| 0i64),
            Arc::new(|_: &K, _: V, n: i64| n + 1),
            Arc::new(|_: &K, a: i64, b: i64| a + b),
            None,
        )
    }

    /// Combines the values of each session with `f(aggregate, value)`; merged sessions combine
    /// their aggregates with `f` too.
    pub fn reduce(self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        let m = Materialized {
            value_serde: self.grouped.value_serde(),
            ..Materialized::default()
        };
        let f = Arc::new(f);
        let g = f.clone();
        let init: Init<V> = Arc::new(|| unreachable!("reduce starts from the first value"));
        self.fold(
            m,
            init,
            Arc::new(move |_: &K, v: V, agg: V| f(agg, v)),
            Arc::new(move |_: &K, a: V, b: V| g(a, b)),
            Some(Arc::new(|v| v)),
        )
    }

    /// Folds the values of each session with `agg` from `init()`; `merger(key, a, b)` combines
    /// the aggregates of sessions a record merges.
    pub fn aggregate<VA: Data>(
        self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        agg: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_with(init, agg, merger, Materialized::default())
    }

    /// Like [`Self::aggregate`], stored as `m` says.
    pub fn aggregate_with<VA: Data>(
        self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        agg: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.fold(m, Arc::new(init), Arc::new(agg), Arc::new(merger), None)
    }

    fn fold<VA: Data>(
        self,
        m: Materialized<K, VA>,
        init: Init<VA>,
        agg: Folder<K, V, VA>,
        merger: Merger<K, VA>,
        first: Option<First<V, VA>>,
    ) -> KTable<Windowed<K>, VA> {
        let b = self.grouped.stream.b.clone();
        let windows = self.windows;
        if let Err(e) = windows.validate() {
            b.borrow_mut().fail(StreamsError::Topology(e));
        }
        let store = store_name(&b, &m, "KSTREAM-AGGREGATE-STATE-STORE-");
        let input = self
            .grouped
            .aggregation_input(&store, m.store_name.is_some());
        let node = input.node_name("KSTREAM-SESSION-WINDOW-AGGREGATE-");
        let key = self
            .grouped
            .grouped
            .key_serde
            .clone()
            .or(input.key_serde.clone());
        let mut inner = b.borrow_mut();
        let k = inner.serde(
            m.key_serde.clone().or(key),
            &format!("the key of store `{store}`"),
        );
        let v = inner.serde(
            m.value_serde.clone(),
            &format!("the value of store `{store}`"),
        );
        let min = windows.gap_ms().saturating_add(windows.grace_ms());
        let retention = retention_ms(&m, min, &store, &mut inner);
        let final_only = self.emit == EmitStrategy::OnWindowClose;
        let sb = configure(
            Stores::persistent_session_store(&store, retention, k.clone(), v.clone()),
            &m,
            !final_only,
        );
        let emitted = final_only.then(|| emitted_store(&store, &m));
        // A session can still grow until stream time passes its end by the gap (a record within
        // the gap extends it) plus the grace: that is when its result is final, as in Kafka
        // Streams, whose suppression takes gap + grace for session windows.
        inner.window_grace.insert(
            node.clone(),
            windows.grace_ms().saturating_add(windows.gap_ms()),
        );
        let (n, s, parent) = (node.clone(), store.clone(), input.node.clone());
        inner.apply(move |t| {
            t.add_processor(
                &n,
                move || SessionAggregate {
                    store_name: s.clone(),
                    store: None,
                    emitted: None,
                    final_only,
                    windows,
                    observed: -1,
                    init: init.clone(),
                    agg: agg.clone(),
                    merger: merger.clone(),
                    first: first.clone(),
                },
                &[&parent],
            )?;
            t.add_state_store(sb, &[&n])?;
            if let Some(e) = emitted {
                t.add_state_store(e, &[&n])?;
            }
            Ok(())
        });
        drop(inner);
        KTable::new(
            b,
            node,
            Some(Serdes::session_windowed(k)),
            Some(v),
            Some(store),
        )
    }
}

/// Folds a grouped stream per key and session, merging sessions a record bridges.
struct SessionAggregate<K, V, VA> {
    store_name: String,
    store: Option<SessionStore<K, VA>>,
    /// Emit-on-close: the session end up to which final results were emitted.
    emitted: Option<KeyValueStore<String, i64>>,
    final_only: bool,
    windows: SessionWindows,
    observed: i64,
    init: Init<VA>,
    agg: Folder<K, V, VA>,
    merger: Merger<K, VA>,
    first: Option<First<V, VA>>,
}

impl<K: Data, V: Data, VA: Data> Processor for SessionAggregate<K, V, VA> {
    type KIn = K;
    type VIn = V;
    type KOut = Windowed<K>;
    type VOut = Change<VA>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<()> {
        let store: SessionStore<K, VA> = ctx.get_store(&self.store_name)?;
        if store.is_cached() {
            forward_cache_flushes(ctx, &store)?;
        }
        self.store = Some(store);
        if self.final_only {
            self.emitted = Some(ctx.get_state_store(&format!("{}-emitted", self.store_name))?);
        }
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<()> {
        let store = self.store.clone().expect("initialized");
        let ts = r.timestamp;
        self.observed = self.observed.max(ts);
        let close = self.observed - self.windows.grace_ms();
        let gap = self.windows.gap_ms();
        let overlapping = store.find_sessions(&r.key, ts - gap, ts + gap)?;
        let mut window = Window::new(ts, ts);
        let mut agg: Option<VA> = None;
        for (s, v) in &overlapping {
            window.start = window.start.min(s.window.start);
            window.end = window.end.max(s.window.end);
            agg = Some(match agg {
                None => v.clone(),
                Some(a) => (self.merger)(&r.key, a, v.clone()),
            });
        }
        if window.end < close {
            tracing::debug!(timestamp = ts, "dropping a record for a closed session");
            ctx.record_dropped();
            return Ok(());
        }
        if self.final_only {
            self.emit_closed(ctx, close)?;
        }
        let new = match (agg, &self.first) {
            (None, Some(first)) => first(r.value),
            (Some(a), _) => (self.agg)(&r.key, r.value, a),
            (None, None) => (self.agg)(&r.key, r.value, (self.init)()),
        };
        let merged = Windowed::new(r.key.clone(), window);
        let mut old = None;
        for (s, v) in overlapping {
            if s.window == window {
                old = Some(v);
                continue;
            }
            // A merged-away session is deleted downstream.
            store.remove(&s)?;
            if !store.is_cached() && !self.final_only {
                ctx.forward(Record::new(s, Change::new(None, Some(v)), ts))?;
            }
        }
        store.put(&merged, &new)?;
        if !store.is_cached() && !self.final_only {
            ctx.forward(Record::new(merged, Change::new(Some(new), old), ts))?;
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VA: Data> SessionAggregate<K, V, VA> {
    /// Emit-on-close: forwards, once, every session that no accepted record can extend any
    /// more (end + gap before the close time).
    fn emit_closed(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        close: i64,
    ) -> Result<()> {
        let emitted = self.emitted.as_ref().expect("initialized");
        let up_to = close - self.windows.gap_ms() - 1;
        let last = emitted.get(&EMITTED_KEY.to_string())?.unwrap_or(-1);
        if up_to <= last {
            return Ok(());
        }
        let store = self.store.as_ref().expect("initialized");
        for (s, v) in store.fetch_ending(last + 1, up_to)? {
            let end = s.window.end;
            ctx.forward(Record::new(s, Change::new(Some(v), None), end))?;
        }
        emitted.put(&EMITTED_KEY.to_string(), &up_to)
    }
}
