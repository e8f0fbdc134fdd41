//! [`HostedStores`]: which partitions of which stores this instance holds now, and in what role,
//! as the stream threads publish them for interactive queries.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What the metrics read of one hosted store.
pub(crate) struct StoreStatistics {
    pub(crate) thread: usize,
    pub(crate) task: TaskId,
    pub(crate) store: String,
    pub(crate) persistent: bool,
    /// Estimated number of keys.
    pub(crate) keys: u64,
    /// The engine's statistics (RocksDB properties).
    pub(crate) engine: Vec<(&'static str, u64)>,
    /// The operations' sensors, when timed (DEBUG).
    pub(crate) operations: Option<[crate::metrics::Sensor; 6]>,
}

use super::Position;
use crate::processor::TaskStore;
use crate::state::RawStore;
use crate::task_id::TaskId;

/// What a hosted task is to queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Active and processing: what queries read by default.
    Running,
    /// Active, its stores still being restored (or just created).
    Restoring,
    /// A standby (or warm-up) copy of another instance's task.
    Standby,
}

impl Role {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Role::Running => "active",
            Role::Restoring => "restoring",
            Role::Standby => "a standby",
        }
    }
}

/// One partition of one store, ready to query.
#[derive(Clone)]
pub(crate) struct HostedStore {
    pub(crate) role: Role,
    pub(crate) position: Position,
    pub(crate) raw: RawStore,
    pub(crate) handle: Arc<dyn Any + Send + Sync>,
}

struct HostedTask {
    role: Role,
    /// The stream thread (0-based) that runs the task.
    thread: usize,
    position: Position,
    stores: Vec<(String, RawStore, Arc<dyn Any + Send + Sync>)>,
}

/// The tasks this instance hosts, with their stores. Queries take a snapshot of the handles and
/// run without the lock; a task closed meanwhile closes its stores, and a query still holding
/// one gets the store's closed error.
#[derive(Default)]
pub(crate) struct HostedStores {
    tasks: Mutex<BTreeMap<TaskId, HostedTask>>,
}

impl HostedStores {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<TaskId, HostedTask>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Task `id`, run by stream thread `thread`, now holds `stores`, in `role`.
    pub(crate) fn add(&self, id: TaskId, thread: usize, role: Role, stores: &[TaskStore]) {
        let stores = stores
            .iter()
            .map(|s| (s.name.clone(), s.raw.clone(), s.handle.clone()))
            .collect();
        self.lock().insert(
            id,
            HostedTask {
                role,
                thread,
                position: Position::empty(),
                stores,
            },
        );
    }

    /// Task `id` changed role.
    pub(crate) fn set_role(&self, id: TaskId, role: Role) {
        if let Some(t) = self.lock().get_mut(&id) {
            t.role = role;
        }
    }

    /// Task `id` has processed its input up to (excluding) these next offsets.
    pub(crate) fn set_position(&self, id: TaskId, next_offsets: &[(String, i32, i64)]) {
        if let Some(t) = self.lock().get_mut(&id) {
            t.position = Position::from_next_offsets(next_offsets);
        }
    }

    /// Task `id` is gone (closed, or moving away).
    pub(crate) fn remove(&self, id: TaskId) {
        self.lock().remove(&id);
    }

    /// Every hosted store with its thread and task, whether it is persistent, its estimated
    /// number of keys and its engine's statistics (for the metrics). A store that fails to
    /// answer is left out.
    pub(crate) fn store_statistics(&self) -> Vec<StoreStatistics> {
        let stores: Vec<(usize, TaskId, String, RawStore)> = self
            .lock()
            .iter()
            .flat_map(|(id, t)| {
                t.stores
                    .iter()
                    .map(move |(name, raw, _)| (t.thread, *id, name.clone(), raw.clone()))
            })
            .collect();
        stores
            .into_iter()
            .filter_map(|(thread, id, name, raw)| {
                let (persistent, keys, engine) = raw
                    .cell()
                    .with_stack(|s| {
                        Ok((
                            s.persistent(),
                            s.approximate_num_entries()?,
                            s.engine_statistics()?,
                        ))
                    })
                    .ok()?;
                Some(StoreStatistics {
                    thread,
                    task: id,
                    store: name,
                    persistent,
                    keys,
                    engine,
                    operations: raw.cell().operation_sensors(),
                })
            })
            .collect()
    }

    /// Every hosted partition of `store`.
    pub(crate) fn find(&self, store: &str) -> BTreeMap<i32, HostedStore> {
        self.lock()
            .iter()
            .filter_map(|(id, t)| {
                let (_, raw, handle) = t.stores.iter().find(|(n, _, _)| n == store)?;
                Some((
                    id.partition,
                    HostedStore {
                        role: t.role,
                        position: t.position.clone(),
                        raw: raw.clone(),
                        handle: handle.clone(),
                    },
                ))
            })
            .collect()
    }
}
