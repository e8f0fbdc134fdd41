//! Grouped streams and tables: [`KGroupedStream`] (count, reduce, aggregate) and
//! [`KGroupedTable`] (the same with an adder and a subtractor). Each gives a [`KTable`].

use std::sync::Arc;

use streams_core::serde::SerdeRef;

use crate::aggregation::{reduce_materialized, reducer, Fold, Folder, Target};
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::options::{Grouped, Materialized};
use crate::processors::{StreamAggregate, TableAggregate, TableOp, TableOpSerde};
use crate::Data;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) grouped: Grouped<K, V>,
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
        self.build(m, Fold::count())
    }

    /// Combines the values of each key with `f(aggregate, value)`, starting from the first value.
    pub fn reduce(self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        self.reduce_with(f, Materialized::default())
    }

    /// Like [`Self::reduce`], stored as `m` says.
    pub fn reduce_with(
        self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        m: Materialized<K, V>,
    ) -> KTable<K, V> {
        let m = reduce_materialized(m, self.value_serde());
        self.build(m, Fold::reduce(f))
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
        self.build(m, Fold::aggregate(init, agg))
    }

    /// The one path of count, reduce and aggregate: a node folding each key's values into a
    /// key-value store.
    fn build<VA: Data>(self, m: Materialized<K, VA>, fold: Fold<K, V, VA>) -> KTable<K, VA> {
        self.target(&m, "KSTREAM-AGGREGATE-")
            .add_key_value(&m, move |ctx, s| {
                StreamAggregate::init(ctx, s, fold.clone())
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

    /// Where an aggregation of this stream as `m` says goes: its store (named by `m` or
    /// generated), its input (repartitioned when needed), its node (named after
    /// `node_prefix` unless the stream was `named`) and the store's serdes.
    pub(crate) fn target<VA: Data>(
        &self,
        m: &Materialized<K, VA>,
        node_prefix: &str,
    ) -> Target<K, V, VA> {
        let store = self
            .stream
            .b
            .borrow_mut()
            .store_name(m, "KSTREAM-AGGREGATE-STATE-STORE-");
        let input = self.aggregation_input(&store, m.store_name.is_some());
        let node = input.node_name(node_prefix);
        let key = self.grouped.key_serde.clone().or(input.key_serde.clone());
        Target::new(input, node, store, key, m)
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
        self.build(m, Fold::count(), Arc::new(|_: &K, _: V, n: i64| n - 1))
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
        m: Materialized<K, V>,
    ) -> KTable<K, V> {
        let m = reduce_materialized(m, self.grouped.value_serde.clone());
        self.build(m, Fold::reduce(adder), reducer(subtractor))
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
        self.build(m, Fold::aggregate(init, adder), Arc::new(subtractor))
    }

    /// The one path of count, reduce and aggregate: the row changes go through a repartition
    /// topic (keyed by the new key) to a node that adds new rows to their group with `fold` and
    /// takes old rows out of theirs with `subtractor`.
    fn build<VA: Data>(
        self,
        m: Materialized<K, VA>,
        fold: Fold<K, V, VA>,
        subtractor: Folder<K, V, VA>,
    ) -> KTable<K, VA> {
        let b = self.ops.b.clone();
        let store = b
            .borrow_mut()
            .store_name(&m, "KTABLE-AGGREGATE-STATE-STORE-");
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
        Target::new(input, node, store, key, &m).add_key_value(&m, move |ctx, s| {
            TableAggregate::init(ctx, s, fold.clone(), subtractor.clone())
        })
    }
}
