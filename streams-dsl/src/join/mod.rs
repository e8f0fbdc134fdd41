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
//!
//! This module holds [`Joined`] and the materializing of tables for joins; `stream_table`,
//! `table_table` and `global_table` hold each kind of join.
//!
//! [`KStream::join`]: crate::KStream::join
//! [`KStream::left_join`]: crate::KStream::left_join
//! [`KStream::join_global`]: crate::KStream::join_global
//! [`KStream::left_join_global`]: crate::KStream::left_join_global
//! [`StreamsBuilder::global_table`]: crate::StreamsBuilder::global_table

mod global_table;
mod stream_table;
mod table_table;

pub use global_table::GlobalKTable;

use streams_core::serde::SerdeRef;
use streams_core::Change;

use crate::ktable::KTable;
use crate::options::Materialized;
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

impl<K: Data, V: Data> KTable<K, V> {
    /// This table's node and store; a table without a store gets a node that writes every change
    /// into a new (uncached, logged) store and forwards it.
    pub(crate) fn materialized_store(&self, value_serde: Option<SerdeRef<V>>) -> (String, String) {
        if let Some(s) = &self.store {
            return (self.node.clone(), s.clone());
        }
        let m = Materialized {
            value_serde,
            ..Materialized::default()
        };
        let table = self.materialize_as(m.with_caching_disabled());
        let store = table.store.expect("a materialized table has a store");
        (table.node, store)
    }

    /// Stores this table as `m` says, in a new node after it.
    pub(crate) fn materialize_as(&self, m: Materialized<K, V>) -> KTable<K, V> {
        let (node, store) = {
            let mut b = self.b.borrow_mut();
            let node = b.new_name("KTABLE-MATERIALIZE-");
            (node, b.store_name(&m, "KTABLE-MATERIALIZE-STATE-STORE-"))
        };
        KTable::of_rows::<Change<V>>(
            &self.b,
            node,
            store,
            &self.node,
            self.key_serde.clone(),
            self.value_serde.clone(),
            &m,
            |c| c.new_value.as_ref(),
        )
    }
}
