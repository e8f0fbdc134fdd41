//! [`GlobalKTable`]: a table every instance holds whole, made by
//! [`StreamsBuilder::global_table`]; streams join it with `KStream::join_global`.

use std::marker::PhantomData;

use streams_core::serde::SerdeRef;

use crate::builder::{store_builder, StreamsBuilder};
use crate::options::{Consumed, Materialized};
use crate::Data;

/// A table of which every instance holds every partition (Kafka Streams' `GlobalKTable`): a
/// stream joins it on a key picked from each record, without co-partitioning or repartitioning.
pub struct GlobalKTable<K, V> {
    pub(super) store: String,
    pub(super) key_serde: SerdeRef<K>,
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
