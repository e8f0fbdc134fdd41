//! Grouped streams and tables: [`KGroupedStream`] (count, reduce, aggregate) and
//! [`KGroupedTable`] (the same with an adder and a subtractor). Each gives a [`KTable`].

use std::sync::Arc;

use streams_core::serde::SerdeRef;
use streams_core::{Change, Processor};

use crate::builder::store_builder;
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::options::{Grouped, Materialized};
use crate::processors::{
    First, Folder, Init, StreamAggregate, TableAggregate, TableOp, TableOpSerde,
};
use crate::Data;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) grouped: Grouped<K, V>,
}

/// Adds aggregation node `node` after `parent`, with its store `store` (serdes from `m`, else
/// `key` for the key), the processor made by `make(store)` in each task; returns its table.
fn add_aggregation<K, VA, P, F>(
    b: &crate::builder::Shared,
    parent: &str,
    node: String,
    store: String,
    key: Option<SerdeRef<K>>,
    m: &Materialized<K, VA>,
    make: F,
) -> KTable<K, VA>
where
    K: Data,
    VA: Data,
    P: Processor<KOut = K, VOut = Change<VA>>,
    F: Fn(&str) -> P + Send + Sync + 'static,
{
    let mut inner = b.borrow_mut();
    let k = inner.serde(
        m.key_serde.clone().or(key),
        &format!("the key of store `{store}`"),
    );
    let v = inner.serde(
        m.value_serde.clone(),
        &format!("the value of store `{store}`"),
    );
    let sb = store_builder(&store, k.clone(), v.clone(), m);
    let (n, s, parent) = (node.clone(), store.clone(), parent.to_string());
    inner.apply(move |t| {
        t.add_processor(&n, move || make(&s), &[&parent])?;
        t.add_state_store(sb, &[&n])?;
        Ok(())
    });
    drop(inner);
    KTable::new(b.clone(), node, Some(k), Some(v), Some(store))
}

/// Store name from `Materialized`, or a generated one (noted as generated).
pub(crate) fn store_name<K, V>(
    b: &crate::builder::Shared,
    m: &Materialized<K, V>,
    prefix: &str,
) -> String {
    match &m.store_name {
        Some(n) => n.clone(),
        None => {
            let mut b = b.borrow_mut();
            let n = b.new_name(prefix);
            b.topology.note_generated_name("store", &n);
            n
        }
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>) -> Self {
        KGroupedStream { stream, grouped }
    }

    /// Counts records per key.
    pub fn count(self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// Counts records per key, stored as `m` says.
    pub fn count_with(self, m: Materialized<K, i64>) -> KTable<K, i64> {
        self.fold(
            m,
            Arc::new(|| 0i64),
            Arc::new(|_: &K, _: V, n: i64| n + 1),
            None,
        )
    }

    /// Combines the values of each key with `f(aggregate, value)`, starting from the first value.
    pub fn reduce(self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        self.reduce_with(f, Materialized::default())
    }

    /// Like [`Self::reduce`], stored as `m` says.
    pub fn reduce_with(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        mut m: Materialized<K, V>,
    ) -> KTable<K, V> {
        if m.value_serde.is_none() {
            m.value_serde = self.value_serde();
        }
        let init: Init<V> = Arc::new(|| unreachable!("reduce starts from the first value"));
        self.fold(
            m,
            init,
            Arc::new(move |_: &K, v: V, agg: V| f(agg, v)),
            Some(Arc::new(|v| v)),
        )
    }

    /// Folds the values of each key with `agg(key, value, aggregate)`, starting from `init()`.
    pub fn aggregate<VA: Data>(
        self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        agg: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA> {
        self.aggregate_with(init, agg, Materialized::default())
    }

    /// Like [`Self::aggregate`], stored as `m` says.
    pub fn aggregate_with<VA: Data>(
        self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        agg: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.fold(m, Arc::new(init), Arc::new(agg), None)
    }

    fn fold<VA: Data>(
        self,
        m: Materialized<K, VA>,
        init: Init<VA>,
        agg: Folder<K, V, VA>,
        first: Option<First<V, VA>>,
    ) -> KTable<K, VA> {
        let b = self.stream.b.clone();
        let store = store_name(&b, &m, "KSTREAM-AGGREGATE-STATE-STORE-");
        let input = self.aggregation_input(&store, m.store_name.is_some());
        let node = input.node_name("KSTREAM-AGGREGATE-");
        let key = self.grouped.key_serde.clone().or(input.key_serde.clone());
        add_aggregation(&b, &input.node, node, store, key, &m, move |s| {
            StreamAggregate::new(s, init.clone(), agg.clone(), first.clone())
        })
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// The serde of the grouped values: the grouping's, else the stream's (a reduce stores
    /// values of this type).
    pub(crate) fn value_serde(&self) -> Option<SerdeRef<V>> {
        self.grouped
            .value_serde
            .clone()
            .or(self.stream.value_serde.clone())
    }

    /// The stream an aggregation into `store` reads: this one, or when the key was changed
    /// upstream, the same records through a repartition topic named after the grouping (or the
    /// store).
    pub(crate) fn aggregation_input(&self, store: &str, store_named: bool) -> KStream<K, V> {
        let b = self.stream.b.clone();
        if !self.stream.repartition_required {
            return self.stream.clone();
        }
        let base = match &self.grouped.name {
            Some(n) => n.clone(),
            None => {
                if !store_named {
                    b.borrow_mut()
                        .topology
                        .note_generated_name("repartition topic", &format!("{store}-repartition"));
                }
                store.to_string()
            }
        };
        self.stream.through_repartition_topic(
            &base,
            self.grouped.key_serde.clone(),
            self.grouped.value_serde.clone(),
            None,
        )
    }
}

/// A table re-keyed by `KTable::group_by`, ready to aggregate with an adder and a subtractor.
pub struct KGroupedTable<K, V> {
    /// Emits the row changes split into subtractions and additions, keyed by the new key.
    pub(crate) ops: KStream<K, TableOp<V>>,
    pub(crate) grouped: Grouped<K, V>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Counts rows per new key (a row moving to another key moves its count).
    pub fn count(self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// Counts rows per new key, stored as `m` says.
    pub fn count_with(self, m: Materialized<K, i64>) -> KTable<K, i64> {
        self.fold(
            m,
            Arc::new(|| 0),
            Arc::new(|_: &K, _: V, n: i64| n + 1),
            Arc::new(|_: &K, _: V, n: i64| n - 1),
            None,
        )
    }

    /// Combines rows with `adder(aggregate, value)` and takes old rows out with `subtractor(aggregate, value)`.
    pub fn reduce(
        self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        self.reduce_with(adder, subtractor, Materialized::default())
    }

    /// Like [`Self::reduce`], stored as `m` says.
    pub fn reduce_with(
        self,
        adder: impl Fn(V, V) -> V + Send + Sync + 'static,
        subtractor: impl Fn(V, V) -> V + Send + Sync + 'static,
        mut m: Materialized<K, V>,
    ) -> KTable<K, V> {
        if m.value_serde.is_none() {
            m.value_serde = self.grouped.value_serde.clone();
        }
        let init: Init<V> = Arc::new(|| unreachable!("reduce starts from the first value"));
        self.fold(
            m,
            init,
            Arc::new(move |_: &K, v: V, agg: V| adder(agg, v)),
            Arc::new(move |_: &K, v: V, agg: V| subtractor(agg, v)),
            Some(Arc::new(|v| v)),
        )
    }

    /// Folds rows with `adder(key, value, aggregate)` and `subtractor(key, value, aggregate)`, from `init()`.
    pub fn aggregate<VA: Data>(
        self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> KTable<K, VA> {
        self.aggregate_with(init, adder, subtractor, Materialized::default())
    }

    /// Like [`Self::aggregate`], stored as `m` says.
    pub fn aggregate_with<VA: Data>(
        self,
        init: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        m: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.fold(
            m,
            Arc::new(init),
            Arc::new(adder),
            Arc::new(subtractor),
            None,
        )
    }

    fn fold<VA: Data>(
        self,
        m: Materialized<K, VA>,
        init: Init<VA>,
        adder: Folder<K, V, VA>,
        subtractor: Folder<K, V, VA>,
        first: Option<First<V, VA>>,
    ) -> KTable<K, VA> {
        let b = self.ops.b.clone();
        let store = store_name(&b, &m, "KTABLE-AGGREGATE-STATE-STORE-");
        let base = match &self.grouped.name {
            Some(n) => n.clone(),
            None => {
                if m.store_name.is_none() {
                    b.borrow_mut()
                        .topology
                        .note_generated_name("repartition topic", &format!("{store}-repartition"));
                }
                store.clone()
            }
        };
        let value_serde = {
            let mut inner = b.borrow_mut();
            let v = inner.serde(
                self.grouped.value_serde.clone(),
                &format!("the value of repartition topic `{base}-repartition`"),
            );
            Arc::new(TableOpSerde(v)) as SerdeRef<TableOp<V>>
        };
        let input = self.ops.through_repartition_topic(
            &base,
            self.grouped.key_serde.clone(),
            Some(value_serde),
            None,
        );
        let node = input.node_name("KTABLE-AGGREGATE-");
        let key = self.grouped.key_serde.clone().or(input.key_serde.clone());
        add_aggregation(&b, &input.node, node, store, key, &m, move |s| {
            TableAggregate::new(
                s,
                init.clone(),
                adder.clone(),
                subtractor.clone(),
                first.clone(),
            )
        })
    }
}
