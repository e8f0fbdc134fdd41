//! Windowed aggregations: [`TimeWindowedKStream`] (tumbling, hopping and sliding windows) and
//! [`SessionWindowedKStream`], made by `KGroupedStream::windowed_by*`. Each gives a table keyed
//! by [`Windowed<K>`].
//!
//! A record belongs to its windows by its timestamp. The aggregation keeps its own stream time
//! (the largest timestamp it has seen); a window closes when stream time passes its end plus the
//! grace period, and a record arriving for closed windows only is dropped and counted in the
//! task's dropped-records metric.
//!
//! This module holds what both kinds share: [`EmitStrategy`], the configuration of their stores
//! and the adding of their node; `time` and `session` hold each kind's DSL and processor.

mod session;
mod time;

pub use session::{Merger, SessionWindowedKStream};
pub use time::TimeWindowedKStream;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::window::Windowed;
use streams_core::{
    Change, Processor, ProcessorContext, Result, StoreBuilder, Stores, StreamsError,
};

use crate::aggregation::Target;
use crate::builder::BuilderInner;
use crate::ktable::KTable;
use crate::options::Materialized;
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

/// The retention of a window or session store: as `m` says (refused when below the minimum), or
/// the minimum.
fn retention_ms<K, V>(m: &Materialized<K, V>, min: i64, store: &str, b: &mut BuilderInner) -> i64 {
    match m.retention {
        None => min,
        Some(r) => {
            let r = i64::try_from(r.as_millis()).unwrap_or(i64::MAX);
            if r < min {
                b.fail(StreamsError::topology(store, format!(
                    "retention of store `{store}` ({r} ms) must be at least window size + grace ({min} ms)"
                )));
            }
            r.max(min)
        }
    }
}

/// A windowed aggregation's store as `m` says: engine, changelog and, where the store may be
/// cached at all (`cache`), caching.
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

/// The stores of a windowed aggregation node.
struct WindowedStores<K, V, VA> {
    /// The aggregates, by key and window (a window or a session store).
    aggregates: StoreBuilder<K, VA>,
    /// Sliding windows: every record, by timestamp.
    records: Option<StoreBuilder<K, V>>,
    /// Emit-on-close: up to where final results went out.
    emitted: Option<StoreBuilder<String, i64>>,
}

impl<K: Data, V: Data, VA: Data> Target<K, V, VA> {
    /// Adds a windowed aggregation's node, whose processor `make()` makes in each task, with
    /// its `stores`; its windows are final `close_after` ms after their end (what
    /// `suppress(until_window_closes)` waits for). Returns its table, keyed by `windowed_key`.
    fn add_windowed<P>(
        self,
        close_after: i64,
        windowed_key: SerdeRef<Windowed<K>>,
        stores: WindowedStores<K, V, VA>,
        make: impl Fn(&mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<P>
            + Send
            + Sync
            + 'static,
    ) -> KTable<Windowed<K>, VA>
    where
        P: Processor<KIn = K, VIn = V, KOut = Windowed<K>, VOut = Change<VA>>,
    {
        let b = self.builder().clone();
        let mut inner = b.borrow_mut();
        inner.window_grace.insert(self.node.clone(), close_after);
        let (n, parent) = (self.node.clone(), self.input.node.clone());
        inner.apply(move |t| {
            t.add_processor(&n, make, &[&parent])?;
            t.add_state_store(stores.aggregates, &[&n])?;
            if let Some(records) = stores.records {
                t.add_state_store(records, &[&n])?;
            }
            if let Some(emitted) = stores.emitted {
                t.add_state_store(emitted, &[&n])?;
            }
            Ok(())
        });
        drop(inner);
        KTable::new(
            b,
            self.node,
            Some(windowed_key),
            Some(self.value_serde),
            Some(self.store),
        )
    }
}
