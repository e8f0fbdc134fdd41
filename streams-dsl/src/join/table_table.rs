//! Joins of two tables on their key: [`KTable::join`], [`KTable::left_join`] and
//! [`KTable::outer_join`]. Each side's changes are joined with the other side's store, and the
//! result retracts rows that stop joining.

use std::sync::Arc;

use streams_core::{Change, KeyValueStore, Processor, ProcessorContext, Record, Result};

use crate::ktable::KTable;
use crate::options::Materialized;
use crate::processors::FnProcessor;
use crate::Data;

/// `(this side's value, the other side's value) -> result row`, `None` for no row.
type RowJoiner<VA, VB, VR> = Arc<dyn Fn(Option<&VA>, Option<&VB>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KTable<K, V> {
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
                move |ctx| TableJoinSide::<K, V, VO, VR>::init(ctx, &os, rows.clone()),
                &[&this_node],
            )?;
            t.connect_processor_and_state_stores(&tj, &[&other_store])?;
            let ts = this_store.clone();
            t.add_processor(
                &oj,
                move |ctx| TableJoinSide::<K, VO, V, VR>::init(ctx, &ts, flipped.clone()),
                &[&other_node],
            )?;
            t.connect_processor_and_state_stores(&oj, &[&this_store])?;
            t.add_processor(
                &m,
                |_| {
                    Ok(FnProcessor::<
                        K,
                        Change<VR>,
                        K,
                        Change<VR>,
                        PassThrough<K, VR>,
                    >::new(Arc::new(|ctx, r| {
                        ctx.forward(r)
                    })))
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

/// One side of a table-table join: a change of this side is joined with the other side's
/// current value, for the new and for the old value, so that the result can retract.
struct TableJoinSide<K, VA, VB, VR> {
    /// The other side's store.
    store: KeyValueStore<K, VB>,
    rows: RowJoiner<VA, VB, VR>,
}

impl<K: Data, VA: Data, VB: Data, VR: Data> TableJoinSide<K, VA, VB, VR> {
    fn init(
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        other_store: &str,
        rows: RowJoiner<VA, VB, VR>,
    ) -> Result<Self> {
        Ok(TableJoinSide {
            store: ctx.get_state_store(other_store)?,
            rows,
        })
    }
}

impl<K: Data, VA: Data, VB: Data, VR: Data> Processor for TableJoinSide<K, VA, VB, VR> {
    type KIn = K;
    type VIn = Change<VA>;
    type KOut = K;
    type VOut = Change<VR>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
        r: Record<K, Change<VA>>,
    ) -> Result<()> {
        let other = self.store.get(&r.key)?;
        let new = (self.rows)(r.value.new_value.as_ref(), other.as_ref());
        let old = (self.rows)(r.value.old_value.as_ref(), other.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(r.with_value(Change::new(new, old)))
    }
}
