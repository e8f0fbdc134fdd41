//! The path every aggregation (grouped stream or table, time or session windows) is built
//! through: [`Fold`] says what happens to each value (count, reduce or aggregate), [`Target`]
//! where the aggregation reads and writes (its input, node, store and the store's serdes).

use std::sync::Arc;

use streams_core::serde::SerdeRef;
use streams_core::{Change, Processor, ProcessorContext, Result};

use crate::builder::{store_builder, Shared};
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::options::Materialized;
use crate::Data;

/// Makes an aggregate's first value.
pub(crate) type Init<VA> = Arc<dyn Fn() -> VA + Send + Sync>;
/// Folds a value into an aggregate: `(key, value, aggregate) -> aggregate`.
pub(crate) type Folder<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;
/// Turns a group's first value into its aggregate (reduce).
type First<V, VA> = Arc<dyn Fn(V) -> VA + Send + Sync>;

/// What an aggregation does with the values of a group: folds each one in with `add`, starting
/// from `init()`, or for a reduce, from the group's first value.
pub(crate) struct Fold<K, V, VA> {
    init: Init<VA>,
    add: Folder<K, V, VA>,
    /// Reduce starts from the first value rather than from an initializer.
    first: Option<First<V, VA>>,
}

// By hand: a derive would require `K`, `V` and `VA` to be `Clone`, and only the `Arc`s are cloned.
impl<K, V, VA> Clone for Fold<K, V, VA> {
    fn clone(&self) -> Self {
        Fold {
            init: self.init.clone(),
            add: self.add.clone(),
            first: self.first.clone(),
        }
    }
}

impl<K: Data, V: Data> Fold<K, V, i64> {
    /// Count: from 0, one more per value.
    pub(crate) fn count() -> Self {
        Fold::aggregate(|| 0, |_: &K, _: V, n: i64| n + 1)
    }
}

impl<K: Data, V: Data> Fold<K, V, V> {
    /// Reduce: the group's first value, then `f(aggregate, value)` for each next one.
    pub(crate) fn reduce(f: impl Fn(V, V) -> V + Send + Sync + 'static) -> Self {
        Fold {
            init: Arc::new(|| unreachable!("reduce starts from the first value")),
            add: reducer(f),
            first: Some(Arc::new(|v| v)),
        }
    }
}

impl<K: Data, V: Data, VA: Data> Fold<K, V, VA> {
    /// Aggregate: from `init()`, then `agg(key, value, aggregate)` for each value.
    pub(crate) fn aggregate(
        init: impl Fn() -> VA + Send + Sync + 'static,
        agg: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> Self {
        Fold {
            init: Arc::new(init),
            add: Arc::new(agg),
            first: None,
        }
    }

    /// The aggregate after folding `value` into `old` (`None`: the group's first value).
    pub(crate) fn apply(&self, key: &K, value: V, old: Option<VA>) -> VA {
        match (old, &self.first) {
            (None, Some(first)) => first(value),
            (Some(o), _) => (self.add)(key, value, o),
            (None, None) => (self.add)(key, value, (self.init)()),
        }
    }

    /// The aggregate of a group that has none yet, for subtracting from it (not for a reduce,
    /// whose groups start from a value).
    pub(crate) fn initial(&self) -> VA {
        (self.init)()
    }

    /// Whether a group starts from its first value (reduce): before it, there is nothing to
    /// subtract from.
    pub(crate) fn starts_from_first_value(&self) -> bool {
        self.first.is_some()
    }
}

/// `f(aggregate, value)` as a [`Folder`]: reduce's adders and subtractors do not see the key.
pub(crate) fn reducer<K: Data, V: Data>(
    f: impl Fn(V, V) -> V + Send + Sync + 'static,
) -> Folder<K, V, V> {
    Arc::new(move |_: &K, v: V, agg: V| f(agg, v))
}

/// The options of a reduce's store: a reduce stores values of the grouped type, so when `m`
/// names no value serde it takes the grouping's (`values`).
pub(crate) fn reduce_materialized<K, V>(
    mut m: Materialized<K, V>,
    values: Option<SerdeRef<V>>,
) -> Materialized<K, V> {
    if m.value_serde.is_none() {
        m.value_serde = values;
    }
    m
}

/// Where an aggregation goes: the stream its node reads (repartitioned when needed), the node,
/// its store and the store's serdes.
pub(crate) struct Target<K, VIn, VA> {
    pub(crate) input: KStream<K, VIn>,
    pub(crate) node: String,
    pub(crate) store: String,
    pub(crate) key_serde: SerdeRef<K>,
    pub(crate) value_serde: SerdeRef<VA>,
}

impl<K: Data, VIn: Data, VA: Data> Target<K, VIn, VA> {
    /// Resolves the store's serdes: the key's from `m`, else `key`; the value's from `m`.
    pub(crate) fn new(
        input: KStream<K, VIn>,
        node: String,
        store: String,
        key: Option<SerdeRef<K>>,
        m: &Materialized<K, VA>,
    ) -> Self {
        let mut inner = input.b.borrow_mut();
        let key_serde = inner.serde(
            m.key_serde.clone().or(key),
            &format!("the key of store `{store}`"),
        );
        let value_serde = inner.serde(
            m.value_serde.clone(),
            &format!("the value of store `{store}`"),
        );
        drop(inner);
        Target {
            input,
            node,
            store,
            key_serde,
            value_serde,
        }
    }

    /// The builder the aggregation is added to.
    pub(crate) fn builder(&self) -> &Shared {
        &self.input.b
    }

    /// Adds the node, whose processor `make(context, store name)` makes in each task, with a
    /// key-value store as `m` says; returns the table it keeps.
    pub(crate) fn add_key_value<P, F>(self, m: &Materialized<K, VA>, make: F) -> KTable<K, VA>
    where
        P: Processor<KIn = K, VIn = VIn, KOut = K, VOut = Change<VA>>,
        F: Fn(&mut ProcessorContext<'_, K, Change<VA>>, &str) -> Result<P> + Send + Sync + 'static,
    {
        let b = self.builder().clone();
        let sb = store_builder(
            &self.store,
            self.key_serde.clone(),
            self.value_serde.clone(),
            m,
        );
        let (n, s, parent) = (
            self.node.clone(),
            self.store.clone(),
            self.input.node.clone(),
        );
        b.borrow_mut().apply(move |t| {
            t.add_processor(&n, move |ctx| make(ctx, &s), &[&parent])?;
            t.add_state_store(sb, &[&n])?;
            Ok(())
        });
        KTable::new(
            b,
            self.node,
            Some(self.key_serde),
            Some(self.value_serde),
            Some(self.store),
        )
    }
}
