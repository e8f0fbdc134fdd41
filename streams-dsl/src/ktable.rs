//! [`KTable`]: a changelog stream (upsert semantics: the latest value per key, a delete removes
//! the key). Table operations forward [`Change`]s (new and old value) so that downstream
//! aggregations can retract old values.

use std::sync::Arc;

use streams_core::serde::{SerdeRef, Serdes};
use streams_core::{Change, ProcessorContext, Record, Result};

use crate::builder::{store_builder, Shared};
use crate::grouped::KGroupedTable;
use crate::kstream::KStream;
use crate::options::{Grouped, Materialized};
use crate::processors::{FnProcessor, TableOp, TableSource};
use crate::Data;

/// A table: for each key, its latest value.
pub struct KTable<K, V> {
    pub(crate) b: Shared,
    pub(crate) node: String,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) store: Option<String>,
}

type ChangeBody<K, V, KO, VO> =
    dyn Fn(&mut ProcessorContext<'_, KO, VO>, Record<K, Change<V>>) -> Result<()> + Send + Sync;

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(
        b: Shared,
        node: String,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        store: Option<String>,
    ) -> Self {
        KTable {
            b,
            node,
            key_serde,
            value_serde,
            store,
        }
    }

    /// Adds node `node` after `parent`, writing the row each record sets (`row`) into store
    /// `store`, declared as `m` says with its serdes from `m`, else `key` and `value`: the table
    /// of a stream (`to_table`) or of a table without a store (`materialize_as`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn of_rows<I: Data>(
        b: &Shared,
        node: String,
        store: String,
        parent: &str,
        key: Option<SerdeRef<K>>,
        value: Option<SerdeRef<V>>,
        m: &Materialized<K, V>,
        row: fn(&I) -> Option<&V>,
    ) -> KTable<K, V> {
        let mut inner = b.borrow_mut();
        let k = inner.serde(
            m.key_serde.clone().or(key),
            &format!("the key of store `{store}`"),
        );
        let v = inner.serde(
            m.value_serde.clone().or(value),
            &format!("the value of store `{store}`"),
        );
        let sb = store_builder(&store, k.clone(), v.clone(), m);
        let (n, s, parent) = (node.clone(), store.clone(), parent.to_string());
        inner.apply(move |t| {
            t.add_processor(
                &n,
                move |ctx| TableSource::<K, V, I>::init(ctx, &s, row),
                &[&parent],
            )?;
            t.add_state_store(sb, &[&n])?;
            Ok(())
        });
        drop(inner);
        KTable::new(b.clone(), node, Some(k), Some(v), Some(store))
    }

    /// The name of the store holding this table, when it is materialized (queryable in the test driver).
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    fn add<KO: Data, VO: Data>(&self, prefix: &str, body: Arc<ChangeBody<K, V, KO, VO>>) -> String {
        let name = self.b.borrow_mut().new_name(prefix);
        let parent = self.node.clone();
        let n = name.clone();
        self.b.borrow_mut().apply(move |t| {
            t.add_processor(
                &n,
                move |_| {
                    Ok(
                        FnProcessor::<K, Change<V>, KO, VO, ChangeBody<K, V, KO, VO>>::new(
                            body.clone(),
                        ),
                    )
                },
                &[&parent],
            )
            .map(|_| ())
        });
        name
    }

    /// Keeps the rows for which `pred` holds; a row that stops matching is deleted downstream.
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        self.filter_inner(move |k, v| pred(k, v))
    }

    /// Drops the rows for which `pred` holds.
    pub fn filter_not(
        &self,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.filter_inner(move |k, v| !pred(k, v))
    }

    fn filter_inner(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let node = self.add::<K, Change<V>>(
            "KTABLE-FILTER-",
            Arc::new(move |ctx, r| {
                let new = r.value.new_value.clone().filter(|v| pred(&r.key, v));
                let old = r.value.old_value.clone().filter(|v| pred(&r.key, v));
                if new.is_none() && old.is_none() {
                    return Ok(());
                }
                let change = Change::new(new, old);
                ctx.forward(r.with_value(change))
            }),
        );
        KTable::new(
            self.b.clone(),
            node,
            self.key_serde.clone(),
            self.value_serde.clone(),
            None,
        )
    }

    /// Replaces each row's value.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let node = self.add::<K, Change<V2>>(
            "KTABLE-MAPVALUES-",
            Arc::new(move |ctx, r| {
                let change = Change::new(
                    r.value.new_value.clone().map(&f),
                    r.value.old_value.clone().map(&f),
                );
                ctx.forward(r.with_value(change))
            }),
        );
        KTable::new(self.b.clone(), node, self.key_serde.clone(), None, None)
    }

    /// The table's updates as a stream; a deleted row is a `None` value (a tombstone on a topic).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let node = self.add::<K, Option<V>>(
            "KTABLE-TOSTREAM-",
            Arc::new(|ctx, r| {
                let v = r.value.new_value.clone();
                ctx.forward(r.with_value(v))
            }),
        );
        KStream::new(
            self.b.clone(),
            node,
            self.key_serde.clone(),
            self.value_serde.clone().map(Serdes::nullable),
            false,
        )
    }

    /// Re-keys the rows with `f(key, value) -> (new key, new value)` for an aggregation; every
    /// change retracts the old row from its group and adds the new one to its group.
    pub fn group_by<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<K2, V2> {
        self.group_by_with(f, Grouped::default())
    }

    /// Like [`Self::group_by`], as `grouped` says.
    pub fn group_by_with<K2: Data, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        let node = self.add::<K2, TableOp<V2>>(
            "KTABLE-SELECT-",
            Arc::new(move |ctx, r| {
                // Retract first, then add: downstream sees the row leave its old group before
                // it joins the new one.
                if let Some(old) = &r.value.old_value {
                    let (k, v) = f(&r.key, old);
                    ctx.forward(Record {
                        key: k,
                        value: TableOp {
                            value: v,
                            add: false,
                        },
                        timestamp: r.timestamp,
                        headers: r.headers.clone(),
                    })?;
                }
                if let Some(new) = &r.value.new_value {
                    let (k, v) = f(&r.key, new);
                    ctx.forward(Record {
                        key: k,
                        value: TableOp {
                            value: v,
                            add: true,
                        },
                        timestamp: r.timestamp,
                        headers: r.headers.clone(),
                    })?;
                }
                Ok(())
            }),
        );
        KGroupedTable {
            ops: KStream::new(self.b.clone(), node, grouped.key_serde.clone(), None, true),
            grouped,
        }
    }
}
