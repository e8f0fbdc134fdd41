//! State stores for `streams`: the byte-level key-value stores a stream task keeps its state in.
//!
//! This crate knows nothing of Kafka. Typed access (serdes) lives in the streams core, and so does
//! producing changelog records: a logged store hands its writes to a [`ChangelogWriter`] the core
//! implements.
//!
//! # Map
//!
//! | module | entry points | purpose |
//! |---|---|---|
//! | `engine` | [`KeyValueEngine`], [`InMemoryEngine`], [`RocksDbEngine`], [`RocksDbConfig`], [`rocksdb_dir`], [`TransactionalEngine`], [`ChangelogOffsets`] | the bytes store at the bottom of every stack, and the layer that holds writes back until their transaction commits |
//! | `changelog` | [`ChangelogWriter`] | where logged writes go |
//! | `cache` | [`CacheBudget`], [`FlushedEntry`], [`CACHE_ENTRY_OVERHEAD`] | the record cache and its per-thread memory budget |
//! | `stack` | [`KeyValueStoreStack`], [`ScanPage`] | cache -> changelogging -> engine, as Kafka Streams layers stores |
//! | `checkpoint` | [`Checkpoint`], [`CHECKPOINT_FILE`] | the task's changelog offsets file |
//! | `state_dir` | [`StateDirectory`], [`TaskDirLock`], [`LOCK_FILE`] | `state.dir/<application.id>/<task id>/` and its lock |
//! | `error` | [`StoreError`], [`Result`] | the crate's one error type |
//!
//! # On disk
//!
//! ```text
//! <state.dir>/<application.id>/<task id>/   StateDirectory::task_dir, locked by StateDirectory::lock_task
//!     .lock                                 LOCK_FILE
//!     .checkpoint                           CHECKPOINT_FILE, written by Checkpoint::write
//!     rocksdb/<store name>/                 rocksdb_dir, opened by RocksDbEngine::open (its column
//!                                           family `streams.changelog-offsets`: stored offsets)
//! ```
//!
//! # Guarantees
//!
//! * Keys are ordered lexicographically by bytes in every engine, and ranges are inclusive at both
//!   ends.
//! * A stack never logs a write its engine refused, and the changelog receives writes in the order
//!   the engine applied them.
//! * A cache folds repeated writes of a key into one engine write, one changelog record and one
//!   [`FlushedEntry`]; its entries are charged to a [`CacheBudget`] shared by all caches of a
//!   stream thread, and evicted least recently written first when the budget is exceeded.
//! * RocksDB writes skip the write-ahead log: what is on disk is what was there at the last
//!   [`KeyValueEngine::flush`]; the changelog from the [`Checkpoint`]ed offset restores the rest.
//! * [`Checkpoint::write`] is atomic: a crash leaves the old file or the new one.
//! * A [`TransactionalEngine`] (exactly-once) writes nothing to disk before its commit, and its
//!   commit goes through RocksDB's write-ahead log in one batch with the changelog offsets it
//!   reflects (kept in the store, [`KeyValueEngine::stored_offsets`]): after a crash the store is
//!   as of a commit, and knows which.
//! * A task directory is used only under its [`TaskDirLock`], exclusive across processes and
//!   threads.
//!
//! # Commit order (at-least-once), as the core drives it
//!
//! 1. [`KeyValueStoreStack::flush_cache`] on every store, forwarding the returned entries;
//! 2. [`KeyValueStoreStack::flush`] on every store;
//! 3. flush the producer, so every changelog record is acknowledged;
//! 4. [`Checkpoint::write`] the changelog offsets, then commit the input offsets.

mod cache;
mod changelog;
mod checkpoint;
mod engine;
mod error;
mod stack;
mod state_dir;

pub use cache::{CacheBudget, FlushedEntry, CACHE_ENTRY_OVERHEAD};
pub use changelog::ChangelogWriter;
pub use checkpoint::{Checkpoint, CHECKPOINT_FILE};
pub use engine::{
    rocksdb_dir, ChangelogOffsets, InMemoryEngine, KeyValueEngine, RocksDbConfig, RocksDbEngine,
    TransactionalEngine,
};
pub use error::StoreError;
pub use stack::{KeyValueStoreStack, ScanPage};
pub use state_dir::{StateDirectory, TaskDirLock, LOCK_FILE};

/// The result of every fallible operation of this crate.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A key and its value, as ranges return them.
pub type KeyValue = (Vec<u8>, Vec<u8>);
