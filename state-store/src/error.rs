//! [`StoreError`], the one error type of this crate, and its [`Result`](crate::Result) alias.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong in a state store, its checkpoint or its state directory.
///
/// Messages name the store, file or directory involved so that a log line alone says where to look.
/// Expected conditions (a missing key, a missing checkpoint file) are not errors.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A RocksDB call failed.
    #[error("store `{store}`: RocksDB {operation} failed in {path}: {source}")]
    RocksDb {
        /// The store whose engine failed.
        store: String,
        /// The RocksDB directory of the store.
        path: PathBuf,
        /// What was being done: `open`, `get`, `put`, `delete`, `iterate`, `write batch`, `flush`, ...
        operation: &'static str,
        /// RocksDB's own error.
        source: rocksdb::Error,
    },

    /// The store was used after [`close`](crate::KeyValueEngine::close).
    #[error("store `{store}` is closed")]
    Closed {
        /// The closed store.
        store: String,
    },

    /// A file-system operation failed (creating a store or task directory, reading or writing a
    /// checkpoint, wiping a task directory).
    #[error("{operation} failed for {path}: {source}")]
    Io {
        /// What was being done, e.g. `create directory` or `write checkpoint`.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// A checkpoint file does not follow the format described at [`Checkpoint`](crate::Checkpoint).
    #[error("malformed checkpoint file {path}, line {line}: {reason}")]
    MalformedCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// The 1-based line number at fault (the line after the last one when lines are missing).
        line: usize,
        /// What is wrong with that line.
        reason: String,
    },

    /// What a store keeps for itself is not what it wrote (its stored changelog offsets).
    #[error("store `{store}` in {path}: {message}")]
    Corrupt {
        /// The store.
        store: String,
        /// Its directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A task directory stayed locked for the whole timeout: another instance (or another stream
    /// thread of this one) owns the task.
    #[error("task directory {dir} is still locked after {timeout:?}; another instance or thread owns it")]
    TaskDirLocked {
        /// The task directory whose `.lock` file could not be locked.
        dir: PathBuf,
        /// How long we kept retrying.
        timeout: Duration,
    },
}

impl StoreError {
    /// Shorthand for an [`Io`](StoreError::Io) error.
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}
