//! A task's stores: opening them, restoring them from their changelogs, checkpointing them.
//!
//! Persistent stores live in RocksDB under the task's directory, the others in memory; logged
//! stores write their changelog partition through the task's collector.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use state_store::{
    ChangelogOffsets, Checkpoint, InMemoryEngine, KeyValueEngine, KeyValueStoreStack,
    RocksDbEngine, TaskDirLock, TransactionalEngine,
};

use super::{StreamTask, TaskEnv};
use crate::error::{Result, StreamsError};
use crate::processor::TaskStore;
use crate::state::{changelog_topic, CollectorChangelogWriter, StoreCell};
use crate::task_id::TaskId;
use crate::topology::{Subtopology, Topology};

/// A changelog partition a task restores one store from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangelogPartition {
    pub(crate) store: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// Where restoration starts: the checkpointed offset, or `None` for the beginning.
    pub(crate) checkpoint: Option<i64>,
}

/// Opens the stores of task `id` of `subtopology`: persistent ones in RocksDB under the task's
/// directory when it has one (`lock`), the rest in memory; logged ones write their changelog
/// partition through the task's collector. Sorted so that flushing in order flushes upstream
/// stores first.
pub(super) fn open(
    topology: &Topology,
    subtopology: &Subtopology,
    id: TaskId,
    env: &TaskEnv,
    lock: Option<&TaskDirLock>,
    current_ts: &Arc<AtomicI64>,
) -> Result<Vec<TaskStore>> {
    let partition = id.partition;
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| StreamsError::Io { path, source }
    };
    let mut stores = Vec::new();
    for name in &subtopology.stores {
        let def = &topology.stores[name];
        let f = &def.factory;
        let engine: Box<dyn KeyValueEngine> = match (&lock, f.persistent()) {
            (Some(lock), true) => {
                let dir = state_store::rocksdb_dir(lock.dir(), name);
                std::fs::create_dir_all(&dir).map_err(io(&dir))?;
                let engine = Box::new(
                    RocksDbEngine::open(name.clone(), &dir, &env.rocksdb).map_err(|source| {
                        StreamsError::Store {
                            task: id,
                            store: name.clone(),
                            source,
                        }
                    })?,
                );
                if env.exactly_once {
                    // Nothing uncommitted reaches disk: a crash leaves the store as of the last
                    // committed transaction, and it knows which (see `StreamTask::new`).
                    Box::new(TransactionalEngine::new(engine))
                } else {
                    engine
                }
            }
            _ => Box::new(InMemoryEngine::new(name.clone())),
        };
        let persistent = engine.persistent();
        let mut stack = KeyValueStoreStack::new(engine);
        let changelog = f
            .logging()
            .then(|| (changelog_topic(&env.application_id, name), partition));
        if let Some((topic, partition)) = &changelog {
            stack = stack.with_changelog(Box::new(CollectorChangelogWriter {
                collector: env.collector.clone(),
                topic: topic.clone(),
                partition: *partition,
                key_offset: f.changelog_key_offset(),
            }));
        }
        if f.caching() {
            if let Some(budget) = &env.cache_budget {
                stack = stack.with_cache(budget.clone());
            }
        }
        let cell = Arc::new(StoreCell::new(id, stack, current_ts.clone()));
        if env.time_store_operations {
            cell.time_operations();
        }
        let opened = f.open(cell.clone());
        stores.push(TaskStore {
            name: name.clone(),
            handle: opened.handle,
            raw: opened.raw,
            restore_key: opened.restore_key,
            cell,
            changelog,
            persistent,
            listener: None,
            order: def.processors.iter().copied().min().unwrap_or(usize::MAX),
        });
    }
    stores.sort_by_key(|s| s.order);
    Ok(stores)
}

impl StreamTask {
    /// The changelog partitions to restore, with where to start: the offset the store is
    /// known to have reached. For a persistent store that comes from its checkpoint file at
    /// first; an in-memory store starts empty and knows an offset only once this task has
    /// restored or committed it, so a standby kept in memory catches up, and is promoted, by
    /// reading only what it has not seen.
    pub(crate) fn changelogs(&self) -> Vec<ChangelogPartition> {
        self.core
            .stores
            .iter()
            .filter_map(|s| {
                let (topic, partition) = s.changelog.clone()?;
                let checkpoint = self
                    .changelog_offsets
                    .get(&(topic.clone(), partition))
                    .copied();
                Some(ChangelogPartition {
                    store: s.name.clone(),
                    topic,
                    partition,
                    checkpoint,
                })
            })
            .collect()
    }

    /// The task's store `store`, or an error naming it and the task.
    fn own_store(&self, store: &str) -> Result<&TaskStore> {
        self.core
            .store(store)
            .ok_or_else(|| StreamsError::StoreAccess {
                store: store.to_string(),
                message: format!("not a store of task {}", self.id),
            })
    }

    /// Writes restored changelog records straight into `store`.
    pub(crate) fn restore_batch(
        &mut self,
        store: &str,
        batch: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<()> {
        let s = self.own_store(store)?;
        match &s.restore_key {
            None => s.cell.with_stack(|stack| stack.restore_batch(batch))?,
            Some(map) => {
                let mapped: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                    batch.iter().map(|(k, v)| (map(k), v.clone())).collect();
                s.cell.with_stack(|stack| stack.restore_batch(&mapped))?
            }
        }
        self.metrics.restored += batch.len() as u64;
        Ok(())
    }

    /// Deletes every entry of `store` (before a restore from scratch).
    pub(crate) fn clear_store(&mut self, store: &str) -> Result<()> {
        let s = self.own_store(store)?;
        let keys: Vec<(Vec<u8>, Option<Vec<u8>>)> = s
            .cell
            .with_stack(|st| st.all())?
            .into_iter()
            .map(|(k, _)| (k, None))
            .collect();
        s.cell.with_stack(|st| st.restore_batch(&keys))
    }

    /// Makes `store` durable (after a restore: its writes leave memory for files).
    pub(crate) fn flush_store(&mut self, store: &str) -> Result<()> {
        let s = self.own_store(store)?;
        s.cell.with_stack(|st| st.flush())
    }

    /// Notes that `store`'s changelog partition has been restored up to (excluding) `next_offset`.
    /// The sum of the changelog offsets the task's stores are known to have reached: how far
    /// a standby has got, for the assignor.
    pub(crate) fn changelog_offset_sum(&self) -> u64 {
        self.changelog_offsets
            .values()
            .map(|o| u64::try_from(*o).unwrap_or(0))
            .fold(0, u64::saturating_add)
    }

    /// Under exactly-once the offset is also stored in the (flushed) store itself, so that a
    /// crash before the next commit does not restore it again.
    pub(crate) fn restored_to(
        &mut self,
        topic: &str,
        partition: i32,
        next_offset: i64,
    ) -> Result<()> {
        let key = (topic.to_string(), partition);
        self.changelog_offsets.insert(key.clone(), next_offset);
        if !self.transactional {
            return Ok(());
        }
        let Some(s) = self
            .core
            .stores
            .iter()
            .find(|s| s.persistent && s.changelog.as_ref() == Some(&key))
        else {
            return Ok(());
        };
        let offsets = ChangelogOffsets::from([(key, next_offset)]);
        // Restored records (and a clearing) go to the engine without its write-ahead log: they
        // are on disk before the offset that covers them is.
        s.cell.with_stack(|st| {
            st.flush()?;
            st.commit(&offsets)
        })
    }

    /// Under exactly-once, after the task's transaction committed: each persistent store takes
    /// the writes it held back, with its changelog's offset, in one atomic write.
    pub(crate) fn commit_stores(&mut self) -> Result<()> {
        if !self.transactional {
            return Ok(());
        }
        for s in &self.core.stores {
            if !s.persistent {
                continue;
            }
            let offsets: ChangelogOffsets = s
                .changelog
                .as_ref()
                .and_then(|key| Some((key.clone(), *self.changelog_offsets.get(key)?)))
                .into_iter()
                .collect();
            s.cell.with_stack(|st| st.commit(&offsets))?;
        }
        Ok(())
    }

    /// The bytes of store writes held back until the transaction commits.
    pub(crate) fn uncommitted_bytes(&self) -> usize {
        if !self.transactional {
            return 0;
        }
        self.core
            .stores
            .iter()
            .map(|s| {
                s.cell
                    .with_stack(|st| Ok(st.uncommitted_bytes()))
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Throws away the local state of the task's persistent stores (for a checkpoint that no
    /// longer matches its changelog): the caller then restores from the beginning.
    pub(crate) fn forget_checkpoint(&mut self, topic: &str, partition: i32) {
        self.changelog_offsets
            .remove(&(topic.to_string(), partition));
    }

    /// Last half of a commit, after the producer acknowledged everything: record how far each
    /// changelog is reflected in the local stores. `acked` gives the next offset per changelog
    /// partition written since the last checkpoint.
    pub(crate) fn checkpoint(&mut self, acked: &HashMap<(String, i32), i64>) -> Result<()> {
        self.note_acked(acked);
        self.write_checkpoint()
    }

    /// Records how far each changelog is written (the offsets a later checkpoint writes).
    pub(crate) fn note_acked(&mut self, acked: &HashMap<(String, i32), i64>) {
        for s in &self.core.stores {
            if let Some(key) = &s.changelog {
                if let Some(off) = acked.get(key) {
                    self.changelog_offsets.insert(key.clone(), *off);
                }
            }
        }
    }

    /// Under exactly-once, a running task keeps no checkpoint: a crash must find none, so that
    /// stores which may hold uncommitted writes are wiped (see `StreamTask::new`).
    pub(crate) fn delete_checkpoint_file(&self) -> Result<()> {
        match &self.checkpoint_path {
            Some(p) => match std::fs::remove_file(p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StreamsError::Io {
                    path: p.display().to_string(),
                    source: e,
                }),
            },
            None => Ok(()),
        }
    }

    /// Writes the checkpoint file from the offsets noted so far.
    pub(crate) fn write_checkpoint(&mut self) -> Result<()> {
        let Some(path) = &self.checkpoint_path else {
            return Ok(());
        };
        let persistent: HashMap<(String, i32), i64> = self
            .core
            .stores
            .iter()
            .filter(|s| s.persistent)
            .filter_map(|s| {
                let key = s.changelog.clone()?;
                let off = self.changelog_offsets.get(&key)?;
                Some((key, *off))
            })
            .collect();
        if persistent.is_empty() {
            return Ok(());
        }
        Checkpoint::write(path, &persistent).map_err(|source| StreamsError::Store {
            task: self.id,
            store: "<checkpoint>".into(),
            source,
        })
    }
}
