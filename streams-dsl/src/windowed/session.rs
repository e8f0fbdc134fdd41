//! Session-windowed aggregations: [`SessionWindowedKStream`] and its processor, which merges
//! the sessions a record bridges.

use std::sync::Arc;

use streams_core::serde::Serdes;
use streams_core::window::{SessionWindows, Window, Windowed};
use streams_core::{
    Change, KeyValueStore, Processor, ProcessorContext, Record, Result, SessionStore, Stores,
    StreamsError,
};

use super::{configure, emitted_store, retention_ms, EmitStrategy, WindowedStores, EMITTED_KEY};
use crate::aggregation::{reduce_materialized, Fold};
use crate::grouped::KGroupedStream;
use crate::ktable::KTable;
use crate::options::Materialized;
use crate::processors::forward_cache_flushes;
use crate::Data;

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Aggregates per key and session: records closer than the inactivity gap.
    pub fn windowed_by_session(self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: self,
            windows,
            emit: EmitStrategy::OnWindowUpdate,
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
        self.build(m, Fold::count(), Arc::new(|_: &K, a: i64, b: i64| a + b))
    }

    /// Combines the values of each session with `f(aggregate, value)`; merged sessions combine
    /// their aggregates with `f` too.
    pub fn reduce(self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<Windowed<K>, V> {
        let m = reduce_materialized(Materialized::default(), self.grouped.value_serde());
        let f = Arc::new(f);
        let g = f.clone();
        self.build(
            m,
            Fold::reduce(move |agg, v| f(agg, v)),
            Arc::new(move |_: &K, a: V, b: V| g(a, b)),
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
        self.build(m, Fold::aggregate(init, agg), Arc::new(merger))
    }

    /// The one path of count, reduce and aggregate: a node folding each key's values into its
    /// sessions in a session store, merging with `merger` the sessions a record bridges.
    fn build<VA: Data>(
        self,
        m: Materialized<K, VA>,
        fold: Fold<K, V, VA>,
        merger: Merger<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let windows = self.windows;
        if let Err(e) = windows.validate() {
            self.grouped
                .stream
                .b
                .borrow_mut()
                .fail(StreamsError::topology("", e));
        }
        let t = self.grouped.target(&m, "KSTREAM-SESSION-WINDOW-AGGREGATE-");
        let (k, store) = (t.key_serde.clone(), t.store.clone());
        let min = windows.gap_ms().saturating_add(windows.grace_ms());
        let retention = retention_ms(&m, min, &store, &mut t.builder().borrow_mut());
        let final_only = self.emit == EmitStrategy::OnWindowClose;
        let stores = WindowedStores {
            aggregates: configure(
                Stores::persistent_session_store(
                    &store,
                    retention,
                    k.clone(),
                    t.value_serde.clone(),
                ),
                &m,
                !final_only,
            ),
            records: None,
            emitted: final_only.then(|| emitted_store(&store, &m)),
        };
        // A session can still grow until stream time passes its end by the gap (a record within
        // the gap extends it) plus the grace: that is when its result is final, as in Kafka
        // Streams, whose suppression takes gap + grace for session windows.
        t.add_windowed(
            windows.grace_ms().saturating_add(windows.gap_ms()),
            Serdes::session_windowed(k),
            stores,
            move |ctx| {
                let aggregates: SessionStore<K, VA> = ctx.get_store(&store)?;
                let cached = aggregates.is_cached();
                if cached {
                    forward_cache_flushes(ctx, &aggregates)?;
                }
                let emitted = match final_only {
                    true => Some(ctx.get_state_store(&format!("{store}-emitted"))?),
                    false => None,
                };
                Ok(SessionAggregate {
                    store: aggregates,
                    cached,
                    emitted,
                    final_only,
                    windows,
                    observed: -1,
                    fold: fold.clone(),
                    merger: merger.clone(),
                })
            },
        )
    }
}

/// Folds a grouped stream per key and session, merging sessions a record bridges.
struct SessionAggregate<K, V, VA> {
    store: SessionStore<K, VA>,
    cached: bool,
    /// Emit-on-close: the session end up to which final results were emitted.
    emitted: Option<KeyValueStore<String, i64>>,
    final_only: bool,
    windows: SessionWindows,
    observed: i64,
    fold: Fold<K, V, VA>,
    merger: Merger<K, VA>,
}

impl<K: Data, V: Data, VA: Data> Processor for SessionAggregate<K, V, VA> {
    type KIn = K;
    type VIn = V;
    type KOut = Windowed<K>;
    type VOut = Change<VA>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<()> {
        let store = self.store.clone();
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
        self.emit_closed(ctx, close)?;
        let new = self.fold.apply(&r.key, r.value, agg);
        let merged = Windowed::new(r.key.clone(), window);
        let mut old = None;
        for (s, v) in overlapping {
            if s.window == window {
                old = Some(v);
                continue;
            }
            // A merged-away session is deleted downstream.
            store.remove(&s)?;
            if !self.cached && !self.final_only {
                ctx.forward(Record::new(s, Change::new(None, Some(v)), ts))?;
            }
        }
        store.put(&merged, &new)?;
        if !self.cached && !self.final_only {
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
        let Some(emitted) = &self.emitted else {
            return Ok(());
        };
        let up_to = close - self.windows.gap_ms() - 1;
        let last = emitted.get(&EMITTED_KEY.to_string())?.unwrap_or(-1);
        if up_to <= last {
            return Ok(());
        }
        for (s, v) in self.store.fetch_ending(last + 1, up_to)? {
            let end = s.window.end;
            ctx.forward(Record::new(s, Change::new(Some(v), None), end))?;
        }
        emitted.put(&EMITTED_KEY.to_string(), &up_to)
    }
}
