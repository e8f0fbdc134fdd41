//! Joins of streams and tables, after Kafka Streams': [`KStream::join`] and
//! [`KStream::left_join`] with a [`KTable`]; [`KTable::join`], [`KTable::left_join`] and
//! [`KTable::outer_join`]; [`KStream::join_global`] and [`KStream::left_join_global`] with a
//! [`GlobalKTable`] from [`StreamsBuilder::global_table`]. Options: [`Joined`]. Foreign-key
//! table joins are in [`crate::fk_join`].
//!
//! A join reads the other side from its store. A table without a store (a `filter` or
//! `map_values` result) is first materialized by a node writing each change to a new store.
//! Both inputs of a stream-table or table-table join then run in one sub-topology, so their
//! topics must be co-partitioned: the runtime refuses to start when their partition counts
//! differ, naming the topics. A stream whose key changed upstream (`map`, `select_key`,
//! `flat_map`, ...) is repartitioned by key before the join, as Kafka Streams does. Global
//! tables need neither: every instance holds all of their topic.

use std::marker::PhantomData;
use std::sync::Arc;

use streams_core::serde::SerdeRef;
use streams_core::{Change, KeyValueStore, Processor, ProcessorContext, Record, Result};

use crate::builder::{store_builder, StreamsBuilder};
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::options::{Consumed, Materialized};
use crate::processors::{FnProcessor, TableSource};
use crate::Data;

/// Options of a stream-table join: the name of its node (and of its repartition topic
/// `<name>-repartition`, when the stream must be repartitioned) and serdes for the stream's key
/// and value (repartition topic) and the table's value (when the table must be materialized).
///
/// ```
/// use streams_dsl::Joined;
/// use streams_core::serde::Serdes;
/// let j: Joined<String, String, i64> = Joined::as_name("orders-with-prices")
///     .with_key_serde(Serdes::string())
///     .with_other_value_serde(Serdes::i64());
/// ```
pub struct Joined<K, V, VO> {
    pub(crate) name: Option<String>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    pub(crate) other_value_serde: Option<SerdeRef<VO>>,
}

impl<K, V, VO> Default for Joined<K, V, VO> {
    fn default() -> Self {
        Joined {
            name: None,
            key_serde: None,
            value_serde: None,
            other_value_serde: None,
        }
    }
}

impl<K, V, VO> Joined<K, V, VO> {
    /// Names the join node and its repartition topic.
    pub fn as_name(name: &str) -> Self {
        Joined {
            name: Some(name.to_string()),
            ..Default::default()
        }
    }
    /// Uses these serdes for the key, the stream's value and the table's value.
    pub fn with(
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        other_value_serde: SerdeRef<VO>,
    ) -> Self {
        Joined {
            name: None,
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            other_value_serde: Some(other_value_serde),
        }
    }
    /// Names the join node and its repartition topic.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// Sets the key serde.
    pub fn with_key_serde(mut self, serde: SerdeRef<K>) -> Self {
        self.key_serde = Some(serde);
        self
    }
    /// Sets the stream's value serde.
    pub fn with_value_serde(mut self, serde: SerdeRef<V>) -> Self {
        self.value_serde = Some(serde);
        self
    }
    /// Sets the table's value serde.
    pub fn with_other_value_serde(mut self, serde: SerdeRef<VO>) -> Self {
        self.other_value_serde = Some(serde);
        self
    }
}

/// A table of which every instance holds every partition (Kafka Streams' `GlobalKTable`): a
/// stream joins it on a key picked from each record, without co-partitioning or repartitioning.
pub struct GlobalKTable<K, V> {
    store: String,
    key_serde: SerdeRef<K>,
    _t: PhantomData<fn() -> V>,
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the global store holding the table (readable in the test driver).
    pub fn queryable_store_name(&self) -> &str {
        &self.store
    }
}

impl StreamsBuilder {
    /// A global table of `topic`: every instance of the application reads all of its partitions
    /// into a store before processing starts, and keeps reading while it runs.
    ///
    /// ```
    /// use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// let countries = b.global_table::<String, String>("countries");
    /// b.stream::<String, String>("visits")
    ///     .left_join_global(&countries, |_, code| code.clone(), |visit, country| {
    ///         format!("{visit} from {}", country.map_or("?", String::as_str))
    ///     })
    ///     .to("visits-with-country");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn global_table<K: Data, V: Data>(&self, topic: &str) -> GlobalKTable<K, V> {
        self.global_table_with(topic, Consumed::default(), Materialized::default())
    }

    /// A global table of `topic`, read as `consumed` says and stored as `materialized` says
    /// (its store name and serdes; global stores are kept in memory, rebuilt from the topic at
    /// each start, and have no changelog: the topic is one).
    pub fn global_table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        let mut b = self.inner.borrow_mut();
        let k = b.serde(
            consumed.key_serde.or(materialized.key_serde.clone()),
            &format!("the key of global table `{topic}`"),
        );
        let v = b.serde(
            consumed.value_serde.or(materialized.value_serde.clone()),
            &format!("the value of global table `{topic}`"),
        );
        let store = b.store_name(&materialized, &format!("{topic}-STATE-STORE-"));
        let sb = store_builder(&store, k.clone(), v, &materialized);
        b.apply(|t| t.add_global_store(sb, topic).map(|_| ()));
        GlobalKTable {
            store,
            key_serde: k,
            _t: PhantomData,
        }
    }
}

/// `(stream value, table value if any) -> result`, `None` for no result.
type LookupJoiner<V, VT, VR> = Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>;
/// Picks the lookup key of a stream record.
type KeyPicker<K, V, LK> = Arc<dyn Fn(&K, &V) -> LK + Send + Sync>;
/// `(this side's value, the other side's value) -> result row`, `None` for no row.
type RowJoiner<VA, VB, VR> = Arc<dyn Fn(Option<&VA>, Option<&VB>) -> Option<VR> + Send + Sync>;

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
            move || LookupJoin {
                store_name: store.clone(),
                store: None,
                key_serde: lookup_key_serde.clone(),
                key: key.clone(),
                joiner: joiner.clone(),
                left,
            },
            &[&parent],
        )?;
        t.connect_processor_and_state_stores(&n, &[&s])?;
        Ok(())
    });
}

impl<K: Data, V: Data> KTable<K, V> {
    /// This table's node and store; a table without a store gets a node that writes every change
    /// into a new (uncached, logged) store and forwards it.
    pub(crate) fn materialized_store(&self, value_serde: Option<SerdeRef<V>>) -> (String, String) {
        if let Some(s) = &self.store {
            return (self.node.clone(), s.clone());
        }
        let mut b = self.b.borrow_mut();
        let node = b.new_name("KTABLE-MATERIALIZE-");
        let store = b.new_name("KTABLE-MATERIALIZE-STATE-STORE-");
        b.topology.note_generated_name("store", &store);
        let k = b.serde(
            self.key_serde.clone(),
            &format!("the key of store `{store}`"),
        );
        let v = b.serde(
            value_serde.or(self.value_serde.clone()),
            &format!("the value of store `{store}`"),
        );
        let sb = store_builder(
            &store,
            k,
            v,
            &Materialized::<K, V>::default().with_caching_disabled(),
        );
        let (n, s, parent) = (node.clone(), store.clone(), self.node.clone());
        b.apply(move |t| {
            t.add_processor(
                &n,
                move || TableSource::<K, V, Change<V>>::new(&s),
                &[&parent],
            )?;
            t.add_state_store(sb, &[&n])?;
            Ok(())
        });
        (node, store)
    }

    /// Joins two tables on their key (inner join): the result has a row for each key in both,
    /// `joiner(left, right)`, recomputed when either side changes; a row leaving either side
    /// leaves the result (a `Change` with the old joined value and no new one).
    ///
    /// ```
    /// use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// let names = b.table::<String, String>("user-names");
    /// let emails = b.table::<String, String>("user-emails");
    /// names
    ///     .join(&emails, |name, email| format!("{name} <{email}>"))
    ///     .to_stream()
    ///     .to("user-contacts");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(other, inner_rows(joiner), None)
    }

    /// Like [`Self::join`], with the result stored as `materialized` says.
    pub fn join_with<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(other, inner_rows(joiner), Some(materialized))
    }

    /// Left join: a row for each key of this table, `joiner(left, right if any)`.
    pub fn left_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(other, left_rows(joiner), None)
    }

    /// Like [`Self::left_join`], with the result stored as `materialized` says.
    pub fn left_join_with<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(other, left_rows(joiner), Some(materialized))
    }

    /// Outer join: a row for each key of either table, `joiner(left if any, right if any)`.
    pub fn outer_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(other, outer_rows(joiner), None)
    }

    /// Like [`Self::outer_join`], with the result stored as `materialized` says.
    pub fn outer_join_with<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        materialized: Materialized<K, VR>,
    ) -> KTable<K, VR> {
        self.table_join(other, outer_rows(joiner), Some(materialized))
    }

    fn table_join<VO: Data, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        rows: RowJoiner<V, VO, VR>,
        materialized: Option<Materialized<K, VR>>,
    ) -> KTable<K, VR> {
        let (this_node, this_store) = self.materialized_store(None);
        let (other_node, other_store) = other.materialized_store(None);
        let (this_join, other_join, merge) = {
            let mut b = self.b.borrow_mut();
            (
                b.new_name("KTABLE-JOINTHIS-"),
                b.new_name("KTABLE-JOINOTHER-"),
                b.new_name("KTABLE-MERGE-"),
            )
        };
        let flipped: RowJoiner<VO, V, VR> = {
            let rows = rows.clone();
            Arc::new(move |o, t| rows(t, o))
        };
        let names = (this_join.clone(), other_join.clone(), merge.clone());
        self.b.borrow_mut().apply(move |t| {
            let (tj, oj, m) = names;
            let os = other_store.clone();
            t.add_processor(
                &tj,
                move || TableJoinSide::<K, V, VO, VR>::new(&os, rows.clone()),
                &[&this_node],
            )?;
            t.connect_processor_and_state_stores(&tj, &[&other_store])?;
            let ts = this_store.clone();
            t.add_processor(
                &oj,
                move || TableJoinSide::<K, VO, V, VR>::new(&ts, flipped.clone()),
                &[&other_node],
            )?;
            t.connect_processor_and_state_stores(&oj, &[&this_store])?;
            t.add_processor(
                &m,
                || {
                    FnProcessor::<K, Change<VR>, K, Change<VR>, PassThrough<K, VR>>::new(Arc::new(
                        |ctx, r| ctx.forward(r),
                    ))
                },
                &[&tj, &oj],
            )?;
            Ok(())
        });
        let joined = KTable::new(self.b.clone(), merge, self.key_serde.clone(), None, None);
        match materialized {
            None => joined,
            Some(m) => joined.materialize_as(m),
        }
    }

    /// Stores this table as `m` says, in a new node after it.
    pub(crate) fn materialize_as(&self, m: Materialized<K, V>) -> KTable<K, V> {
        let mut b = self.b.borrow_mut();
        let node = b.new_name("KTABLE-MATERIALIZE-");
        let store = b.store_name(&m, "KTABLE-MATERIALIZE-STATE-STORE-");
        let k = b.serde(
            m.key_serde.clone().or(self.key_serde.clone()),
            &format!("the key of store `{store}`"),
        );
        let v = b.serde(
            m.value_serde.clone().or(self.value_serde.clone()),
            &format!("the value of store `{store}`"),
        );
        let sb = store_builder(&store, k.clone(), v.clone(), &m);
        let (n, s, parent) = (node.clone(), store.clone(), self.node.clone());
        b.apply(move |t| {
            t.add_processor(
                &n,
                move || TableSource::<K, V, Change<V>>::new(&s),
                &[&parent],
            )?;
            t.add_state_store(sb, &[&n])?;
            Ok(())
        });
        drop(b);
        KTable::new(self.b.clone(), node, Some(k), Some(v), Some(store))
    }
}

type PassThrough<K, V> = dyn Fn(&mut ProcessorContext<'_, K, Change<V>>, Record<K, Change<V>>) -> Result<()>
    + Send
    + Sync;

fn inner_rows<V: Data, VO: Data, VR: Data>(
    joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
) -> RowJoiner<V, VO, VR> {
    Arc::new(move |l, r| match (l, r) {
        (Some(l), Some(r)) => Some(joiner(l, r)),
        _ => None,
    })
}

fn left_rows<V: Data, VO: Data, VR: Data>(
    joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
) -> RowJoiner<V, VO, VR> {
    Arc::new(move |l, r| l.map(|l| joiner(l, r)))
}

fn outer_rows<V: Data, VO: Data, VR: Data>(
    joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
) -> RowJoiner<V, VO, VR> {
    Arc::new(move |l, r| (l.is_some() || r.is_some()).then(|| joiner(l, r)))
}

/// Looks each stream record up in a table or global table store.
struct LookupJoin<K, V, LK, VT, VR> {
    store_name: String,
    store: Option<KeyValueStore<LK, VT>>,
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

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<()> {
        self.store = Some(ctx.get_state_store::<LK, VT>(&self.store_name)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessorContext<'_, K, VR>, r: Record<K, V>) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
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
            store.get(&lookup)?
        };
        match (self.joiner)(&r.value, found.as_ref()) {
            Some(v) => ctx.forward(r.with_value(v)),
            None => Ok(()),
        }
    }
}

/// One side of a table-table join: a change of this side is joined with the other side's
/// current value, for the new and for the old value, so that the result can retract.
struct TableJoinSide<K, VA, VB, VR> {
    other_store: String,
    store: Option<KeyValueStore<K, VB>>,
    rows: RowJoiner<VA, VB, VR>,
}

impl<K, VA, VB, VR> TableJoinSide<K, VA, VB, VR> {
    fn new(other_store: &str, rows: RowJoiner<VA, VB, VR>) -> Self {
        TableJoinSide {
            other_store: other_store.to_string(),
            store: None,
            rows,
        }
    }
}

impl<K: Data, VA: Data, VB: Data, VR: Data> Processor for TableJoinSide<K, VA, VB, VR> {
    type KIn = K;
    type VIn = Change<VA>;
    type KOut = K;
    type VOut = Change<VR>;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<()> {
        self.store = Some(ctx.get_state_store::<K, VB>(&self.other_store)?);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        r: Record<K, Change<VA>>,
    ) -> Result<()> {
        let store = self.store.as_ref().expect("initialized");
        let other = store.get(&r.key)?;
        let new = (self.rows)(r.value.new_value.as_ref(), other.as_ref());
        let old = (self.rows)(r.value.old_value.as_ref(), other.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(r.with_value(Change::new(new, old)))
    }
}
