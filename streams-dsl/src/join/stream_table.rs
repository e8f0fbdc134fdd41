//! Joins of a stream with a table or a global table: each record looks its key (or the key it
//! picks) up in the table's store ([`KStream::join`], [`KStream::join_global`] and their left
//! joins).

use std::sync::Arc;

use streams_core::serde::SerdeRef;
use streams_core::{KeyValueStore, Processor, ProcessorContext, Record, Result};

use super::{GlobalKTable, Joined};
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::Data;

/// `(stream value, table value if any) -> result`, `None` for no result.
type LookupJoiner<V, VT, VR> = Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>;
/// Picks the lookup key of a stream record.
type KeyPicker<K, V, LK> = Arc<dyn Fn(&K, &V) -> LK + Send + Sync>;

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with the table's current value for its key (inner join): records whose
    /// key is not in the table, or whose key is null, produce nothing (null keys are counted as
    /// dropped records). Table updates alone produce nothing.
    ///
    /// ```
    /// use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// let prices = b.table::<String, i64>("prices");
    /// b.stream::<String, i64>("orders")
    ///     .join(&prices, |quantity, price| quantity * price)
    ///     .to("order-totals");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.join_with(table, joiner, Joined::default())
    }

    /// Like [`Self::join`], as `joined` says.
    pub fn join_with<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR> {
        self.stream_table_join(
            table,
            joined,
            false,
            Arc::new(move |v, t| t.map(|t| joiner(v, t))),
        )
    }

    /// Joins each record with the table's current value for its key, if any (left join): every
    /// record produces one result, with `None` when the key is not in the table or is null.
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.left_join_with(table, joiner, Joined::default())
    }

    /// Like [`Self::left_join`], as `joined` says.
    pub fn left_join_with<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
        joined: Joined<K, V, VT>,
    ) -> KStream<K, VR> {
        self.stream_table_join(
            table,
            joined,
            true,
            Arc::new(move |v, t| Some(joiner(v, t))),
        )
    }

    fn stream_table_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joined: Joined<K, V, VT>,
        left: bool,
        joiner: LookupJoiner<V, VT, VR>,
    ) -> KStream<K, VR> {
        let name = match &joined.name {
            Some(n) => n.clone(),
            None => self.node_name("KSTREAM-JOIN-"),
        };
        let key_serde = joined
            .key_serde
            .clone()
            .or(self.key_serde.clone())
            .or(table.key_serde.clone());
        let input = if self.repartition_required {
            if joined.name.is_none() {
                self.b
                    .borrow_mut()
                    .topology
                    .note_generated_name("repartition topic", &format!("{name}-repartition"));
            }
            self.through_repartition_topic(
                &name,
                key_serde.clone(),
                joined.value_serde.clone(),
                None,
            )
        } else {
            self.clone()
        };
        let (_, store) = table.materialized_store(joined.other_value_serde);
        let k = self
            .b
            .borrow_mut()
            .serde(key_serde, &format!("the key of join `{name}`"));
        add_lookup_join(
            &input,
            &name,
            &store,
            k.clone(),
            Arc::new(|k: &K, _: &V| k.clone()),
            joiner,
            left,
        );
        KStream::new(self.b.clone(), name, Some(k), None, false)
    }

    /// Joins each record with the global table's value for the key `key_selector` picks from
    /// it (inner join): records whose lookup key is absent or null produce nothing.
    pub fn join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_selector: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            table,
            Arc::new(key_selector),
            false,
            Arc::new(move |v, t| t.map(|t| joiner(v, t))),
        )
    }

    /// Joins each record with the global table's value for the key `key_selector` picks from
    /// it, if any (left join): every record produces one result.
    pub fn left_join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_selector: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            table,
            Arc::new(key_selector),
            true,
            Arc::new(move |v, t| Some(joiner(v, t))),
        )
    }

    fn global_join<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_selector: KeyPicker<K, V, GK>,
        left: bool,
        joiner: LookupJoiner<V, GV, VR>,
    ) -> KStream<K, VR> {
        let name = self.node_name("KSTREAM-JOIN-");
        add_lookup_join(
            self,
            &name,
            &table.store,
            table.key_serde.clone(),
            key_selector,
            joiner,
            left,
        );
        // The key is unchanged and nothing was repartitioned: a later grouping still needs to.
        KStream::new(
            self.b.clone(),
            name,
            self.key_serde.clone(),
            None,
            self.repartition_required,
        )
    }
}

/// Adds a [`LookupJoin`] node `name` after `input`, reading `store`.
fn add_lookup_join<K: Data, V: Data, LK: Data, VT: Data, VR: Data>(
    input: &KStream<K, V>,
    name: &str,
    store: &str,
    lookup_key_serde: SerdeRef<LK>,
    key: KeyPicker<K, V, LK>,
    joiner: LookupJoiner<V, VT, VR>,
    left: bool,
) {
    let (n, s, parent) = (name.to_string(), store.to_string(), input.node.clone());
    input.b.borrow_mut().apply(move |t| {
        let store = s.clone();
        t.add_processor(
            &n,
            move |ctx| {
                Ok(LookupJoin {
                    store_name: store.clone(),
                    store: ctx.get_state_store(&store)?,
                    key_serde: lookup_key_serde.clone(),
                    key: key.clone(),
                    joiner: joiner.clone(),
                    left,
                })
            },
            &[&parent],
        )?;
        t.connect_processor_and_state_stores(&n, &[&s])?;
        Ok(())
    });
}

/// Looks each stream record up in a table or global table store.
struct LookupJoin<K, V, LK, VT, VR> {
    store_name: String,
    store: KeyValueStore<LK, VT>,
    /// Tells null lookup keys (which serialize to null) from others.
    key_serde: SerdeRef<LK>,
    key: KeyPicker<K, V, LK>,
    joiner: LookupJoiner<V, VT, VR>,
    /// A left join joins a null lookup key with no table value instead of dropping the record.
    left: bool,
}

impl<K: Data, V: Data, LK: Data, VT: Data, VR: Data> Processor for LookupJoin<K, V, LK, VT, VR> {
    type KIn = K;
    type VIn = V;
    type KOut = K;
    type VOut = VR;

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, r: Record<K, V>) -> Result<()> {
        let lookup = (self.key)(&r.key, &r.value);
        let null_key = matches!(
            self.key_serde.serialize(&self.store_name, &lookup),
            Ok(None)
        );
        let found = if null_key {
            if !self.left {
                tracing::debug!(
                    processor = ctx.processor_name(),
                    "dropping a record with a null join key"
                );
                ctx.record_dropped();
                return Ok(());
            }
            None
        } else {
            self.store.get(&lookup)?
        };
        match (self.joiner)(&r.value, found.as_ref()) {
            Some(v) => ctx.forward(r.with_value(v)),
            None => Ok(()),
        }
    }
}
