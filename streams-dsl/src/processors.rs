//! The processors behind DSL operations: a closure processor for stateless operations, and the
//! table source, aggregations and table operations, which keep state and forward [`Change`]s.

use std::marker::PhantomData;
use std::sync::Arc;

use streams_core::{
    CachedStore, Change, KeyValueStore, Processor, ProcessorContext, Record, Result,
};

use crate::aggregation::{Fold, Folder};
use crate::Data;

type Types<KI, VI, KO, VO> = PhantomData<fn(KI, VI) -> (KO, VO)>;

/// A stateless operation: `f` gets the context and the record.
pub(crate) struct FnProcessor<KI, VI, KO, VO, F: ?Sized> {
    f: Arc<F>,
    _t: Types<KI, VI, KO, VO>,
}

impl<KI, VI, KO, VO, F: ?Sized> FnProcessor<KI, VI, KO, VO, F> {
    pub(crate) fn new(f: Arc<F>) -> Self {
        FnProcessor { f, _t: PhantomData }
    }
}

impl<KI, VI, KO, VO, F> Processor for FnProcessor<KI, VI, KO, VO, F>
where
    KI: Data,
    VI: Data,
    KO: Data,
    VO: Data,
    F: Fn(&mut ProcessorContext<'_, KO, VO>, Record<KI, VI>) -> Result<()>
        + Send
        + Sync
        + ?Sized
        + 'static,
{
    type KIn = KI;
    type VIn = VI;
    type KOut = KO;
    type VOut = VO;
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KO, VO>,
        record: Record<KI, VI>,
    ) -> Result<()> {
        (self.f)(ctx, record)
    }
}

/// Opens a table processor's store and, when it is cached, forwards what the cache writes out
/// as `Change`s: how cached tables emit one update per key per commit.
pub(crate) fn open_table_store<K: Data, V: Data>(
    ctx: &mut ProcessorContext<'_, K, Change<V>>,
    name: &str,
) -> Result<KeyValueStore<K, V>> {
    let store = ctx.get_state_store::<K, V>(name)?;
    if store.is_cached() {
        forward_cache_flushes(ctx, &store)?;
    }
    Ok(store)
}

/// Forwards the entries a store's record cache writes out (on commit or eviction) as changes
/// of the table the store holds (key-value, window or session store).
pub(crate) fn forward_cache_flushes<S: CachedStore>(
    ctx: &mut ProcessorContext<'_, S::Key, Change<S::Value>>,
    store: &S,
) -> Result<()>
where
    S::Key: Data,
    S::Value: Data,
{
    ctx.on_cache_flush(store, |ctx, f| {
        if f.new_value.is_none() && f.old_value.is_none() {
            return Ok(());
        }
        ctx.forward(Record::new(
            f.key,
            Change::new(f.new_value, f.old_value),
            f.timestamp,
        ))
    })
}

/// Writes rows into a table's store and forwards them as changes with the old value the store
/// held: a table from its source topic (`I = Option<V>`, `None` a tombstone), a stream turned
/// into a table (`I = V`), or a store-less table materialized for a join (`I = Change<V>`).
pub(crate) struct TableSource<K, V, I> {
    store: KeyValueStore<K, V>,
    cached: bool,
    /// The row a record sets (`None`: delete it).
    row: fn(&I) -> Option<&V>,
}

impl<K: Data, V: Data, I> TableSource<K, V, I> {
    pub(crate) fn init(
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        store: &str,
        row: fn(&I) -> Option<&V>,
    ) -> Result<Self> {
        let store = open_table_store(ctx, store)?;
        Ok(TableSource {
            cached: store.is_cached(),
            store,
            row,
        })
    }
}

impl<K: Data, V: Data, I: Data> Processor for TableSource<K, V, I> {
    type KIn = K;
    type VIn = I;
    type KOut = K;
    type VOut = Change<V>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        r: Record<K, I>,
    ) -> Result<()> {
        let store = &self.store;
        let old = store.get(&r.key)?;
        let row = (self.row)(&r.value).cloned();
        match &row {
            Some(v) => store.put(&r.key, v)?,
            None => {
                if old.is_none() {
                    return Ok(()); // deleting nothing changes nothing
                }
                store.delete(&r.key)?;
            }
        }
        if !self.cached {
            ctx.forward(r.with_value(Change::new(row, old)))?;
        }
        Ok(())
    }
}

/// Folds a grouped stream into a table: count, reduce and aggregate.
pub(crate) struct StreamAggregate<K, V, VA> {
    store: KeyValueStore<K, VA>,
    cached: bool,
    fold: Fold<K, V, VA>,
}

impl<K: Data, V: Data, VA: Data> StreamAggregate<K, V, VA> {
    pub(crate) fn init(
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        store: &str,
        fold: Fold<K, V, VA>,
    ) -> Result<Self> {
        let store = open_table_store(ctx, store)?;
        Ok(StreamAggregate {
            cached: store.is_cached(),
            store,
            fold,
        })
    }
}

impl<K: Data, V: Data, VA: Data> Processor for StreamAggregate<K, V, VA> {
    type KIn = K;
    type VIn = V;
    type KOut = K;
    type VOut = Change<VA>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        r: Record<K, V>,
    ) -> Result<()> {
        let store = &self.store;
        let old = store.get(&r.key)?;
        let new = self.fold.apply(&r.key, r.value, old.clone());
        store.put(&r.key, &new)?;
        if !self.cached {
            ctx.forward(Record {
                key: r.key,
                value: Change::new(Some(new), old),
                timestamp: r.timestamp,
                headers: r.headers,
            })?;
        }
        Ok(())
    }
}

/// One half of a table row change after a re-keying `group_by`: the value to add to or to
/// subtract from its group's aggregate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableOp<V> {
    pub(crate) value: V,
    pub(crate) add: bool,
}

/// Serde of [`TableOp`] on the repartition topic: one flag byte (bit 0 add, bit 1 null value),
/// then the value's bytes.
pub(crate) struct TableOpSerde<V>(pub(crate) streams_core::serde::SerdeRef<V>);

impl<V: 'static> streams_core::serde::Serde<TableOp<V>> for TableOpSerde<V> {
    fn serialize(
        &self,
        topic: &str,
        op: &TableOp<V>,
    ) -> std::result::Result<Option<Vec<u8>>, streams_core::serde::SerdeError> {
        let inner = self.0.serialize(topic, &op.value)?;
        let flag = u8::from(op.add) | if inner.is_none() { 2 } else { 0 };
        let mut out = Vec::with_capacity(1 + inner.as_ref().map_or(0, Vec::len));
        out.push(flag);
        if let Some(b) = inner {
            out.extend_from_slice(&b);
        }
        Ok(Some(out))
    }
    fn deserialize(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> std::result::Result<TableOp<V>, streams_core::serde::SerdeError> {
        let b = bytes.ok_or_else(|| streams_core::serde::SerdeError("null table change".into()))?;
        let (&flag, rest) = b
            .split_first()
            .ok_or_else(|| streams_core::serde::SerdeError("empty table change".into()))?;
        let value = self
            .0
            .deserialize(topic, if flag & 2 != 0 { None } else { Some(rest) })?;
        Ok(TableOp {
            value,
            add: flag & 1 != 0,
        })
    }
}

/// Folds a re-keyed table into a table: additions go through the fold (its adder), retractions
/// through the subtractor.
pub(crate) struct TableAggregate<K, V, VA> {
    store: KeyValueStore<K, VA>,
    cached: bool,
    fold: Fold<K, V, VA>,
    subtractor: Folder<K, V, VA>,
}

impl<K: Data, V: Data, VA: Data> TableAggregate<K, V, VA> {
    pub(crate) fn init(
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        store: &str,
        fold: Fold<K, V, VA>,
        subtractor: Folder<K, V, VA>,
    ) -> Result<Self> {
        let store = open_table_store(ctx, store)?;
        Ok(TableAggregate {
            cached: store.is_cached(),
            store,
            fold,
            subtractor,
        })
    }
}

impl<K: Data, V: Data, VA: Data> Processor for TableAggregate<K, V, VA> {
    type KIn = K;
    type VIn = TableOp<V>;
    type KOut = K;
    type VOut = Change<VA>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
        r: Record<K, TableOp<V>>,
    ) -> Result<()> {
        let store = &self.store;
        let old = store.get(&r.key)?;
        let new = if r.value.add {
            self.fold.apply(&r.key, r.value.value, old.clone())
        } else {
            let base = match &old {
                Some(o) => o.clone(),
                // A reduce's group starts from a value: there is nothing to subtract from.
                None if self.fold.starts_from_first_value() => return Ok(()),
                None => self.fold.initial(),
            };
            (self.subtractor)(&r.key, r.value.value, base)
        };
        store.put(&r.key, &new)?;
        if !self.cached {
            ctx.forward(Record {
                key: r.key,
                value: Change::new(Some(new), old),
                timestamp: r.timestamp,
                headers: r.headers,
            })?;
        }
        Ok(())
    }
}
