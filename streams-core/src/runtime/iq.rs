//! Interactive queries of a running instance: where state lives (the group's metadata) and the
//! IQv2 queries of the stores this instance hosts.

use super::{metadata, KafkaStreams, KeyQueryMetadata, StreamsMetadata};
use crate::error::{Result, StreamsError};
use crate::query::{Query, StateQueryRequest, StateQueryResult};
use crate::serde::Serde;

impl KafkaStreams {
    /// Every instance of the application that set `application.server`, with the stores and
    /// partitions it runs and keeps, as the last assignment said (empty before the first).
    pub fn metadata_for_all_clients(&self) -> Vec<StreamsMetadata> {
        match &self.group {
            Some(g) => g
                .layout()
                .map_or_else(Vec::new, |l| metadata::all_clients(&l, &g.hosts())),
            None => Vec::new(),
        }
    }

    /// The instances that run or keep `store`.
    pub fn streams_metadata_for_store(&self, store: &str) -> Vec<StreamsMetadata> {
        match &self.group {
            Some(g) => g
                .layout()
                .map_or_else(Vec::new, |l| metadata::for_store(&l, &g.hosts(), store)),
            None => Vec::new(),
        }
    }

    /// Where `key` of `store` lives: its partition (Kafka's default partitioner over the key
    /// as `serializer` writes it) and the instances running and keeping that partition's task.
    /// `Ok(None)` before start or if no sub-topology has `store`.
    pub fn query_metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
        serializer: &dyn Serde<K>,
    ) -> Result<Option<KeyQueryMetadata>> {
        let Some((g, layout)) = self.group.as_ref().and_then(|g| Some((g, g.layout()?))) else {
            return Ok(None);
        };
        let bytes = serializer
            .serialize(store, key)
            .map_err(|source| StreamsError::Serialization {
                target: format!("the key of a query on store `{store}`"),
                source,
            })?
            .ok_or_else(|| {
                StreamsError::illegal_state(
                    store,
                    format!("a null key cannot be located in store `{store}`"),
                )
            })?;
        Ok(metadata::for_key(&layout, &g.hosts(), store, &bytes))
    }

    /// Runs an interactive query on the partitions of a store this instance hosts (Kafka
    /// Streams' IQv2 `query`): each partition answers with a result or a failure saying why
    /// not. Fails when the instance is not running or rebalancing, or when the topology has
    /// no such store.
    ///
    /// ```no_run
    /// # fn f(app: &streams_core::KafkaStreams) -> streams_core::Result<()> {
    /// use streams_core::{KeyQuery, StateQueryRequest};
    /// let request = StateQueryRequest::in_store("counts")
    ///     .with_query(KeyQuery::<String, i64>::with_key("rust".to_string()));
    /// for (partition, answer) in app.query(request)?.partition_results() {
    ///     println!("partition {partition}: {answer:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn query<Q: Query>(
        &self,
        request: StateQueryRequest<Q>,
    ) -> Result<StateQueryResult<Q::Output>> {
        let state = self.shared.state();
        if !state.is_running_or_rebalancing() {
            return Err(StreamsError::illegal_state(
                "the application",
                format!(
                "cannot query store `{}`: the instance is {state:?}, not running or rebalancing",
                request.store()
            ),
            ));
        }
        let partitions = self.store_partitions(request.store())?;
        Ok(crate::query::execute(
            &self.shared.hosted,
            &request,
            partitions,
        ))
    }

    /// The number of partitions of `store` (its sub-topology's task count), once known; an
    /// error naming the store when the topology has none by that name.
    fn store_partitions(&self, store: &str) -> Result<Option<i32>> {
        if !self.topology.store_names().iter().any(|s| s == store) {
            return Err(StreamsError::StoreAccess {
                store: store.to_string(),
                message: format!(
                    "the topology has no store by that name (it has: {})",
                    self.topology.store_names().join(", ")
                ),
            });
        }
        let Some(layout) = self.group.as_ref().and_then(|g| g.layout()) else {
            return Ok(None);
        };
        Ok(layout.store_partitions(store).map(|n| n as i32))
    }
}
