//! [`KStream::to_table`]: a stream read as a table's changes (each record the latest value of
//! its key), kept in a store, as Kafka Streams' `toTable`.

use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::options::Materialized;
use crate::Data;

impl<K: Data, V: Data> KStream<K, V> {
    /// The table whose row for each key is the latest record of that key: each record upserts
    /// its key, and the table forwards the change with the row it replaced. A stream whose key
    /// changed upstream is repartitioned first, through `<node>-repartition`.
    ///
    /// ```
    /// use streams_dsl::StreamsBuilder;
    /// let b = StreamsBuilder::new();
    /// let locations = b.stream::<String, String>("driver-locations").to_table();
    /// locations
    ///     .filter(|_, place| place.starts_with("airport"))
    ///     .to_stream()
    ///     .to("drivers-at-airports");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn to_table(&self) -> KTable<K, V> {
        self.to_table_with(Materialized::default())
    }

    /// Like [`Self::to_table`], with the table's store named and configured as `materialized`
    /// says (its serdes, when given, are also the repartition topic's).
    pub fn to_table_with(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        let node = self.node_name("KSTREAM-TOTABLE-");
        let store = self
            .b
            .borrow_mut()
            .store_name(&materialized, "KSTREAM-TOTABLE-STATE-STORE-");
        let input = if self.repartition_required {
            self.through_repartition_topic(
                &node,
                materialized.key_serde.clone(),
                materialized.value_serde.clone(),
                None,
            )
        } else {
            self.clone()
        };
        KTable::of_rows::<V>(
            &self.b,
            node,
            store,
            &input.node,
            input.key_serde.clone(),
            input.value_serde.clone(),
            &materialized,
            |v| Some(v),
        )
    }
}
