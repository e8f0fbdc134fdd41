//! [`StateDirectory`]: the `state.dir/<application.id>/<task id>/` layout and its per-task locks.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs2::FileExt;

use crate::{Result, StoreError};

/// Name of the lock file in each task directory.
pub const LOCK_FILE: &str = ".lock";

/// How long to sleep between attempts to lock a task directory: short next to a rebalance,
/// long enough not to spin.
const LOCK_RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// `state.dir/<application.id>/<task id>/` directories with an exclusive lock per task directory.
///
/// A task's directory holds its [checkpoint](crate::CHECKPOINT_FILE) and its RocksDB stores
/// ([`rocksdb_dir`](crate::rocksdb_dir)). Whoever processes a task must hold its lock: the lock
/// is what keeps two instances sharing a state directory (or a new owner and a zombie) from
/// writing the same RocksDB files.
///
/// ```
/// use state_store::StateDirectory;
/// use std::time::Duration;
///
/// let state_dir = tempfile::tempdir().unwrap();
/// let dirs = StateDirectory::new(state_dir.path(), "wordcount")?;
/// let lock = dirs.lock_task("0_1", Duration::from_secs(1))?;
/// assert_eq!(lock.dir(), state_dir.path().join("wordcount").join("0_1"));
/// // Another owner must wait until `lock` is dropped.
/// assert!(dirs.lock_task("0_1", Duration::ZERO).is_err());
/// drop(lock);
/// assert!(dirs.lock_task("0_1", Duration::ZERO).is_ok());
/// # Ok::<(), state_store::StoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StateDirectory {
    /// `state.dir/<application.id>`.
    app_dir: PathBuf,
}

impl StateDirectory {
    /// Uses (creating if missing) `state_dir/application_id`.
    pub fn new(state_dir: &Path, application_id: &str) -> Result<Self> {
        let app_dir = state_dir.join(application_id);
        fs::create_dir_all(&app_dir)
            .map_err(|e| StoreError::io("create application state directory", &app_dir, e))?;
        Ok(StateDirectory { app_dir })
    }

    /// `state.dir/<application.id>`, the parent of every task directory.
    pub fn app_dir(&self) -> &Path {
        &self.app_dir
    }

    /// The directory of task `task_id` (e.g. `0_3`); it may not exist yet.
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.app_dir.join(task_id)
    }

    /// Creates the task directory and takes an exclusive file lock on `<task dir>/.lock` (fs2),
    /// retrying until `timeout`; error names the directory when it stays locked (another instance
    /// owns it).
    ///
    /// The lock is per open file, so it also excludes other threads of this process.
    pub fn lock_task(&self, task_id: &str, timeout: Duration) -> Result<TaskDirLock> {
        let dir = self.task_dir(task_id);
        let lock_path = dir.join(LOCK_FILE);
        let deadline = Instant::now() + timeout;
        loop {
            fs::create_dir_all(&dir)
                .map_err(|e| StoreError::io("create task directory", &dir, e))?;
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| StoreError::io("open lock file", &lock_path, e))?;
            loop {
                match file.try_lock_exclusive() {
                    Ok(()) => break,
                    Err(e) if e.kind() == fs2::lock_contended_error().kind() => {
                        let now = Instant::now();
                        if now >= deadline {
                            return Err(StoreError::TaskDirLocked { dir, timeout });
                        }
                        std::thread::sleep(LOCK_RETRY_INTERVAL.min(deadline - now));
                    }
                    Err(e) => return Err(StoreError::io("lock", &lock_path, e)),
                }
            }
            // The holder we waited for may have been the cleaner, deleting the directory with
            // its lock file: then this lock is on a file that is gone, and we start over.
            if !lock_path.is_file() {
                continue;
            }
            tracing::debug!(task = task_id, dir = %dir.display(), "locked task directory");
            return Ok(TaskDirLock {
                task_id: task_id.to_string(),
                dir,
                file,
            });
        }
    }

    /// Deletes the directories of tasks nobody holds whose contents have not changed for
    /// `unused_for` (Kafka Streams' `state.cleanup.delay.ms`): the state of tasks that moved to
    /// other instances. Returns the task ids deleted.
    pub fn clean_unused(&self, unused_for: Duration) -> Result<Vec<String>> {
        let app = &self.app_dir;
        let entries =
            fs::read_dir(app).map_err(|e| StoreError::io("list state directory", app, e))?;
        let mut deleted = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list state directory", app, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_task = name.split_once('_').is_some_and(|(a, b)| {
                [a, b]
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            });
            let path = entry.path();
            if !is_task || !path.is_dir() {
                continue;
            }
            let modified = fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|e| StoreError::io("inspect", &path, e))?;
            if modified.elapsed().unwrap_or_default() < unused_for {
                continue;
            }
            let lock = match self.lock_task(&name, Duration::ZERO) {
                Ok(lock) => lock,
                Err(StoreError::TaskDirLocked { .. }) => continue,
                Err(e) => return Err(e),
            };
            fs::remove_dir_all(&path)
                .map_err(|e| StoreError::io("delete unused task state", &path, e))?;
            drop(lock);
            tracing::info!(task = %name, dir = %path.display(), "deleted the state of a task this instance no longer runs");
            deleted.push(name);
        }
        deleted.sort();
        Ok(deleted)
    }

    /// Deletes a task's state (caller holds the lock): everything in the directory but the lock
    /// file.
    ///
    /// Kafka Streams does this when local state cannot be trusted (e.g. corrupted, or the task's
    /// changelog was truncated); the task then restores from the changelog from scratch.
    pub fn wipe_task(&self, lock: &TaskDirLock) -> Result<()> {
        let dir = lock.dir();
        let entries =
            fs::read_dir(dir).map_err(|e| StoreError::io("list task directory", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list task directory", dir, e))?;
            if entry.file_name() == LOCK_FILE {
                continue;
            }
            let path = entry.path();
            let is_dir = entry
                .file_type()
                .map_err(|e| StoreError::io("inspect", &path, e))?
                .is_dir();
            let removed = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(|e| StoreError::io("delete task state", &path, e))?;
        }
        tracing::info!(task = lock.task_id(), dir = %dir.display(), "wiped task state");
        Ok(())
    }
}

/// The exclusive lock on a task directory; unlocks on drop.
#[derive(Debug)]
pub struct TaskDirLock {
    task_id: String,
    dir: PathBuf,
    /// The locked `.lock` file; the lock lives as long as this handle.
    file: File,
}

impl TaskDirLock {
    /// The locked task directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The task whose directory this is.
    pub fn task_id(&self) -> &str {
        &self.task_id
    }
}

impl Drop for TaskDirLock {
    fn drop(&mut self) {
        // Closing the file would release the lock too; unlocking explicitly releases it even if
        // the descriptor were somehow shared. Nothing useful can be done with an error here.
        let _ = FileExt::unlock(&self.file);
        tracing::debug!(task = %self.task_id, "unlocked task directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirectory::new(root.path(), "app").unwrap();
        assert_eq!(dirs.app_dir(), root.path().join("app"));
        assert!(dirs.app_dir().is_dir());
        assert_eq!(dirs.task_dir("1_2"), root.path().join("app").join("1_2"));
    }

    #[test]
    fn second_lock_times_out_naming_the_directory_and_drop_releases() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirectory::new(root.path(), "app").unwrap();
        let lock = dirs.lock_task("0_0", Duration::from_millis(10)).unwrap();
        assert!(lock.dir().join(LOCK_FILE).is_file());
        assert_eq!(lock.task_id(), "0_0");

        // A second owner, as another instance sharing the state directory would be.
        let other = StateDirectory::new(root.path(), "app").unwrap();
        let started = Instant::now();
        let err = other
            .lock_task("0_0", Duration::from_millis(200))
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(matches!(err, StoreError::TaskDirLocked { .. }));
        let message = err.to_string();
        assert!(
            message.contains(&dirs.task_dir("0_0").display().to_string()),
            "{message}"
        );

        // Other tasks are independent.
        let _other_task = other.lock_task("0_1", Duration::ZERO).unwrap();

        drop(lock);
        other.lock_task("0_0", Duration::ZERO).unwrap();
    }

    #[test]
    fn waiting_lock_gets_it_when_released() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirectory::new(root.path(), "app").unwrap();
        let lock = dirs.lock_task("0_0", Duration::ZERO).unwrap();
        let waiter = {
            let dirs = dirs.clone();
            std::thread::spawn(move || dirs.lock_task("0_0", Duration::from_secs(10)).map(|_| ()))
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(lock);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn cleaning_deletes_unused_task_directories_and_keeps_held_and_recent_ones() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirectory::new(root.path(), "app").unwrap();
        let held = dirs.lock_task("0_0", Duration::ZERO).unwrap();
        drop(dirs.lock_task("0_1", Duration::ZERO).unwrap());
        drop(dirs.lock_task("1_0", Duration::ZERO).unwrap());
        fs::write(dirs.task_dir("1_0").join(crate::CHECKPOINT_FILE), b"0\n0\n").unwrap();
        fs::write(dirs.app_dir().join("process.id"), b"x").unwrap();
        fs::create_dir_all(dirs.app_dir().join("not-a-task")).unwrap();

        // Recently changed: kept.
        assert!(dirs
            .clean_unused(Duration::from_secs(3600))
            .unwrap()
            .is_empty());
        // Unused for long enough (here: at all): deleted, unless held.
        assert_eq!(
            dirs.clean_unused(Duration::ZERO).unwrap(),
            vec!["0_1", "1_0"]
        );
        assert!(held.dir().join(LOCK_FILE).is_file());
        assert!(!dirs.task_dir("0_1").exists() && !dirs.task_dir("1_0").exists());
        assert!(dirs.app_dir().join("process.id").is_file());
        assert!(dirs.app_dir().join("not-a-task").is_dir());
        // A task that comes back gets a fresh directory.
        let again = dirs.lock_task("0_1", Duration::ZERO).unwrap();
        assert!(again.dir().join(LOCK_FILE).is_file());
    }

    #[test]
    fn wipe_keeps_only_the_lock_file() {
        let root = tempfile::tempdir().unwrap();
        let dirs = StateDirectory::new(root.path(), "app").unwrap();
        let lock = dirs.lock_task("0_0", Duration::ZERO).unwrap();
        let store_dir = crate::rocksdb_dir(lock.dir(), "counts");
        fs::create_dir_all(&store_dir).unwrap();
        fs::write(store_dir.join("000001.sst"), b"x").unwrap();
        fs::write(lock.dir().join(crate::CHECKPOINT_FILE), b"0\n0\n").unwrap();

        dirs.wipe_task(&lock).unwrap();
        let left: Vec<_> = fs::read_dir(lock.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![LOCK_FILE]);
        // Still locked after the wipe.
        assert!(dirs.lock_task("0_0", Duration::ZERO).is_err());
    }
}
