//! [`GlobalStores`]: the global stores of one instance (or test driver), shared by all its tasks
//! and written only by whoever reads their topics (the runtime's global thread, the test driver).

use std::any::Any;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use state_store::{InMemoryEngine, KeyValueStoreStack};

use super::{StoreCell, StoreFactory};
use crate::error::{Result, StreamsError};
use crate::task_id::TaskId;

/// One global store.
pub(crate) struct GlobalStore {
    pub(crate) name: String,
    /// The topic it mirrors.
    pub(crate) topic: String,
    cell: Arc<StoreCell>,
    /// The typed `KeyValueStore<K, V>` processors read.
    pub(crate) handle: Arc<dyn Any + Send + Sync>,
}

/// Every global store of a topology. Cheap to share: tasks on all stream threads read the same
/// cells (a store cell locks per call), the global thread writes them.
#[derive(Default)]
pub(crate) struct GlobalStores {
    stores: Vec<GlobalStore>,
}

impl GlobalStores {
    /// Opens (empty, in memory) the global stores declared as `(name, topic, factory)`; their
    /// errors name `id`. [`Topology::open_global_stores`](crate::topology::Topology) calls it.
    pub(crate) fn new<'a>(
        id: TaskId,
        declared: impl IntoIterator<Item = (&'a str, &'a str, &'a dyn StoreFactory)>,
    ) -> Self {
        let stores = declared
            .into_iter()
            .map(|(name, topic, factory)| {
                let stack =
                    KeyValueStoreStack::new(Box::new(InMemoryEngine::new(name.to_string())));
                let cell = Arc::new(StoreCell::new(id, stack, Arc::new(AtomicI64::new(0))));
                GlobalStore {
                    name: name.to_string(),
                    topic: topic.to_string(),
                    handle: factory.open(cell.clone()).handle,
                    cell,
                }
            })
            .collect();
        GlobalStores { stores }
    }

    /// Whether the topology has no global store.
    pub(crate) fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// The typed handle of global store `name`.
    pub(crate) fn handle(&self, name: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        self.stores
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.handle.clone())
    }

    /// The topics backing the stores.
    pub(crate) fn topics(&self) -> Vec<String> {
        self.stores.iter().map(|s| s.topic.clone()).collect()
    }

    /// Whether `topic` backs a global store.
    pub(crate) fn reads(&self, topic: &str) -> bool {
        self.stores.iter().any(|s| s.topic == topic)
    }

    /// Applies records of `topic` to the store it backs: puts, and deletes for null values.
    pub(crate) fn apply(&self, topic: &str, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        let store = self
            .stores
            .iter()
            .find(|s| s.topic == topic)
            .ok_or_else(|| StreamsError::StoreAccess {
                store: format!("<global store of `{topic}`>"),
                message: format!("no global store reads topic `{topic}`"),
            })?;
        store.cell.with_stack(|s| s.restore_batch(batch))
    }
}
