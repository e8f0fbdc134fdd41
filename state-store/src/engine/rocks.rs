//! [`RocksDbEngine`]: the persistent engine, one RocksDB instance per store per task.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rocksdb::{
    BlockBasedOptions, Cache, DBCompactionStyle, DBCompressionType, Direction, IteratorMode,
    LogLevel, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use super::ChangelogOffsets;
use crate::{KeyValue, KeyValueEngine, Result, StoreError};

/// The column family holding the changelog offsets the store reflects (see
/// [`KeyValueEngine::write_atomically`]): one entry per partition, `<topic>:<partition>` (a
/// topic name cannot hold `:`) to the next offset as 8 big-endian bytes. A column family of its
/// own, so that no key a user writes can collide with them.
const OFFSETS_CF: &str = "streams.changelog-offsets";

/// The RocksDB directory of store `store` in a task directory: `<task dir>/rocksdb/<store>`, as
/// Kafka Streams lays it out.
pub fn rocksdb_dir(task_dir: &Path, store: &str) -> PathBuf {
    task_dir.join("rocksdb").join(store)
}

/// Memory settings of a RocksDB store.
///
/// [`Default`] gives Kafka Streams' per-store defaults: 50 MiB block cache, 16 MiB write buffer,
/// 3 write buffers, 4 KiB blocks. Every store also gets a bloom filter (10 bits per key) on its
/// files, LZ4 compression and universal compaction, and (unlike Kafka Streams) a bloom filter over
/// each memtable's keys.
///
/// Unlike Kafka Streams, the block cache is not per store: all stores of the process opened with
/// the same `block_cache_bytes` share one LRU cache of that size, so with the default settings
/// block cache memory stays at 50 MiB however many tasks and stores the process runs. Memtables
/// are still per store: up to `write_buffer_bytes * max_write_buffers` each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksDbConfig {
    /// Capacity of the (shared) LRU block cache, in bytes.
    pub block_cache_bytes: usize,
    /// Size of one memtable, in bytes.
    pub write_buffer_bytes: usize,
    /// How many memtables a store may hold before writes stall.
    pub max_write_buffers: i32,
    /// Size of an SST data block, in bytes.
    pub block_size: usize,
}

impl Default for RocksDbConfig {
    fn default() -> Self {
        RocksDbConfig {
            block_cache_bytes: 50 * 1024 * 1024,
            write_buffer_bytes: 16 * 1024 * 1024,
            max_write_buffers: 3,
            block_size: 4 * 1024,
        }
    }
}

/// The process-wide block cache of the given capacity, created on first use.
fn shared_block_cache(capacity: usize) -> Cache {
    // A Mutex rather than a lock-free map: it is taken once per store open, never on reads.
    static CACHES: OnceLock<Mutex<HashMap<usize, Cache>>> = OnceLock::new();
    let caches = CACHES.get_or_init(Default::default);
    // A panic while holding this lock cannot leave the map half-updated, so a poisoned lock is
    // still usable.
    let mut caches = caches
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    caches
        .entry(capacity)
        .or_insert_with(|| Cache::new_lru_cache(capacity))
        .clone()
}

/// A persistent engine backed by one RocksDB instance.
///
/// Writes go with the write-ahead log disabled, as in Kafka Streams: durability comes from the
/// changelog topic plus [`flush`](KeyValueEngine::flush) at every commit, after which the task's
/// checkpoint records how far the changelog is reflected on disk. After a crash, whatever was not
/// flushed is restored from the changelog.
///
/// ```
/// use state_store::{KeyValueEngine, RocksDbConfig, RocksDbEngine};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut engine = RocksDbEngine::open("counts", dir.path(), &RocksDbConfig::default())?;
/// engine.put(b"apple", b"1")?;
/// engine.flush()?;
/// engine.close()?;
///
/// let engine = RocksDbEngine::open("counts", dir.path(), &RocksDbConfig::default())?;
/// assert_eq!(engine.get(b"apple")?, Some(b"1".to_vec()));
/// # Ok::<(), state_store::StoreError>(())
/// ```
pub struct RocksDbEngine {
    name: String,
    path: PathBuf,
    /// `None` once closed: dropping the handle is what closes RocksDB and releases its LOCK file.
    db: Option<DB>,
    /// WAL disabled; built once because every write uses it.
    write_options: WriteOptions,
    /// WAL enabled: for [`KeyValueEngine::write_atomically`] only.
    logged_write_options: WriteOptions,
}

impl std::fmt::Debug for RocksDbEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbEngine")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("open", &self.db.is_some())
            .finish()
    }
}

impl RocksDbEngine {
    /// Opens (creating if missing) the store `name` in directory `dir` (the directory is the
    /// RocksDB directory itself; create parents).
    ///
    /// Fails if the directory cannot be created or RocksDB cannot open it, e.g. because another
    /// open engine (in this process or another) holds it.
    pub fn open(name: impl Into<String>, dir: &Path, config: &RocksDbConfig) -> Result<Self> {
        let name = name.into();
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io("create store directory", dir, e))?;

        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&shared_block_cache(config.block_cache_bytes));
        table.set_block_size(config.block_size);
        // 10 bits per key, full (not block-based) filter: Kafka Streams' BloomFilter() default.
        table.set_bloom_filter(10.0, false);

        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_block_based_table_factory(&table);
        options.set_write_buffer_size(config.write_buffer_bytes);
        options.set_max_write_buffer_number(config.max_write_buffers);
        // A bloom filter over each memtable's whole keys (2% of its size): aggregations read
        // mostly keys that do not exist yet (a new key, a new window), and without it every
        // such read searches the memtables' skip lists.
        options.set_memtable_prefix_bloom_ratio(0.02);
        options.set_memtable_whole_key_filtering(true);
        options.set_compression_type(DBCompressionType::Lz4);
        // Kafka Streams' choice: fewer rewrites of the data than level compaction for an
        // update-heavy workload.
        options.set_compaction_style(DBCompactionStyle::Universal);
        // RocksDB's own info log is noise next to our tracing; keep only its errors.
        options.set_log_level(LogLevel::Error);

        options.create_missing_column_families(true);
        let cfs = [rocksdb::DEFAULT_COLUMN_FAMILY_NAME, OFFSETS_CF];
        let db = DB::open_cf(&options, dir, cfs).map_err(|source| StoreError::RocksDb {
            store: name.clone(),
            path: dir.to_path_buf(),
            operation: "open",
            source,
        })?;
        tracing::debug!(store = %name, path = %dir.display(), "opened RocksDB store");

        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        Ok(RocksDbEngine {
            name,
            path: dir.to_path_buf(),
            db: Some(db),
            write_options,
            // Through the write-ahead log, not synced: a process crash (kill -9) keeps what the
            // operating system was handed; a machine crash may lose the last commits, and the
            // log's checksums still leave a whole prefix of them.
            logged_write_options: WriteOptions::default(),
        })
    }

    /// The RocksDB directory of this store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> Result<&DB> {
        self.db.as_ref().ok_or_else(|| StoreError::Closed {
            store: self.name.clone(),
        })
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(rocksdb::Error) -> StoreError + '_ {
        move |source| StoreError::RocksDb {
            store: self.name.clone(),
            path: self.path.clone(),
            operation,
            source,
        }
    }
}

impl KeyValueEngine for RocksDbEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn persistent(&self) -> bool {
        true
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db()?.get(key).map_err(self.error("get"))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.db()?
            .put_opt(key, value, &self.write_options)
            .map_err(self.error("put"))
    }

    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.db()?
            .delete_opt(key, &self.write_options)
            .map_err(self.error("delete"))
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Vec<KeyValue>> {
        let db = self.db()?;
        let mut read_options = ReadOptions::default();
        if let Some(to) = to {
            // RocksDB's upper bound is exclusive; `to` followed by a zero byte is the smallest
            // key greater than `to`, so this makes it inclusive.
            let mut bound = to.to_vec();
            bound.push(0);
            read_options.set_iterate_upper_bound(bound);
        }
        let mode = match from {
            Some(from) => IteratorMode::From(from, Direction::Forward),
            None => IteratorMode::Start,
        };
        db.iterator_opt(mode, read_options)
            .map(|item| {
                item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                    .map_err(self.error("iterate"))
            })
            .collect()
    }

    fn scan(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        let db = self.db()?;
        if limit == 0 || super::is_empty_range(from, to) {
            return Ok(Vec::new());
        }
        // RocksDB's bounds are an inclusive lower and an exclusive upper one.
        let lower = match from {
            Bound::Included(k) => Some(k.to_vec()),
            Bound::Excluded(k) => Some(super::successor(k)),
            Bound::Unbounded => None,
        };
        let mut read_options = ReadOptions::default();
        if let Some(l) = &lower {
            read_options.set_iterate_lower_bound(l.clone());
        }
        match to {
            Bound::Included(k) => read_options.set_iterate_upper_bound(super::successor(k)),
            Bound::Excluded(k) => read_options.set_iterate_upper_bound(k.to_vec()),
            Bound::Unbounded => {}
        }
        let mode = match (&lower, reverse) {
            // The last key below the upper bound.
            (_, true) => IteratorMode::End,
            (Some(l), false) => IteratorMode::From(l, Direction::Forward),
            (None, false) => IteratorMode::Start,
        };
        db.iterator_opt(mode, read_options)
            .take(limit)
            .map(|item| {
                item.map(|(k, v)| (k.into_vec(), v.into_vec()))
                    .map_err(self.error("iterate"))
            })
            .collect()
    }

    fn approximate_num_entries(&self) -> Result<u64> {
        Ok(self
            .db()?
            .property_int_value(rocksdb::properties::ESTIMATE_NUM_KEYS)
            .map_err(self.error("read estimate-num-keys"))?
            .unwrap_or(0))
    }

    fn statistics(&self) -> Result<Vec<(&'static str, u64)>> {
        use rocksdb::properties as p;
        let db = self.db()?;
        let mut out = Vec::new();
        for (name, property) in [
            ("cur-size-all-mem-tables", p::CUR_SIZE_ALL_MEM_TABLES),
            ("size-all-mem-tables", p::SIZE_ALL_MEM_TABLES),
            ("num-immutable-mem-table", p::NUM_IMMUTABLE_MEM_TABLE),
            ("mem-table-flush-pending", p::MEM_TABLE_FLUSH_PENDING),
            ("num-running-flushes", p::NUM_RUNNING_FLUSHES),
            ("compaction-pending", p::COMPACTION_PENDING),
            ("num-running-compactions", p::NUM_RUNNING_COMPACTIONS),
            (
                "estimate-pending-compaction-bytes",
                p::ESTIMATE_PENDING_COMPACTION_BYTES,
            ),
            ("total-sst-files-size", p::TOTAL_SST_FILES_SIZE),
            ("live-sst-files-size", p::LIVE_SST_FILES_SIZE),
            ("estimate-table-readers-mem", p::ESTIMATE_TABLE_READERS_MEM),
            ("block-cache-capacity", p::BLOCK_CACHE_CAPACITY),
            ("block-cache-usage", p::BLOCK_CACHE_USAGE),
            ("block-cache-pinned-usage", p::BLOCK_CACHE_PINNED_USAGE),
            ("background-errors", p::BACKGROUND_ERRORS),
        ] {
            let value = db
                .property_int_value(property)
                .map_err(self.error("read a property"))?;
            if let Some(v) = value {
                out.push((name, v));
            }
        }
        Ok(out)
    }

    fn write_batch(&mut self, batch: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<()> {
        let db = self.db()?;
        let mut write = WriteBatch::default();
        for (key, value) in batch {
            match value {
                Some(value) => write.put(key, value),
                None => write.delete(key),
            }
        }
        db.write_opt(write, &self.write_options)
            .map_err(self.error("write batch"))
    }

    fn write_atomically(
        &mut self,
        ranges: &[(Vec<u8>, Vec<u8>)],
        batch: &[(Vec<u8>, Option<Vec<u8>>)],
        offsets: &ChangelogOffsets,
    ) -> Result<()> {
        let db = self.db()?;
        let cf = db
            .cf_handle(OFFSETS_CF)
            .expect("opened with the offsets column family");
        let mut write = WriteBatch::default();
        for (from, to) in ranges {
            if from < to {
                write.delete_range(from, to);
            }
        }
        for (key, value) in batch {
            match value {
                Some(value) => write.put(key, value),
                None => write.delete(key),
            }
        }
        for ((topic, partition), offset) in offsets {
            write.put_cf(cf, format!("{topic}:{partition}"), offset.to_be_bytes());
        }
        db.write_opt(write, &self.logged_write_options)
            .map_err(self.error("write a commit"))
    }

    fn stored_offsets(&self) -> Result<ChangelogOffsets> {
        let db = self.db()?;
        let cf = db
            .cf_handle(OFFSETS_CF)
            .expect("opened with the offsets column family");
        let mut out = ChangelogOffsets::new();
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(self.error("read the stored offsets"))?;
            let corrupt = |what: &str| StoreError::Corrupt {
                store: self.name.clone(),
                path: self.path.clone(),
                message: format!("stored changelog offset {what}"),
            };
            let key = std::str::from_utf8(&k).map_err(|_| corrupt("with a key not UTF-8"))?;
            let (topic, partition) = key
                .rsplit_once(':')
                .and_then(|(t, p)| Some((t, p.parse::<i32>().ok()?)))
                .ok_or_else(|| corrupt(&format!("`{key}` not <topic>:<partition>")))?;
            let offset: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| corrupt(&format!("of `{key}` not 8 bytes")))?;
            out.insert((topic.to_string(), partition), i64::from_be_bytes(offset));
        }
        Ok(out)
    }

    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let db = self.db()?;
        let mut write = WriteBatch::default();
        write.delete_range(from, to);
        db.write_opt(write, &self.write_options)
            .map_err(self.error("delete range"))
    }

    fn flush(&mut self) -> Result<()> {
        // With the WAL off, memtables are the only copy of recent writes: flushing them to SST
        // files is what makes a commit's checkpoint truthful.
        let db = self.db()?;
        db.flush().map_err(self.error("flush"))?;
        // The stored offsets came through the write-ahead log; flushing them too lets RocksDB
        // drop log files that only they still needed.
        let cf = db
            .cf_handle(OFFSETS_CF)
            .expect("opened with the offsets column family");
        db.flush_cf(cf)
            .map_err(self.error("flush the stored offsets"))
    }

    fn close(&mut self) -> Result<()> {
        if self.db.is_none() {
            return Ok(());
        }
        // RocksDB would flush on close anyway (the WAL is off), but an explicit flush turns a
        // failure into an error instead of silent loss.
        let flushed = self.flush();
        self.db = None;
        tracing::debug!(store = %self.name, path = %self.path.display(), "closed RocksDB store");
        flushed
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> KeyValue {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    /// Small memory settings for the engines of tests.
    pub(in crate::engine) fn small_config() -> RocksDbConfig {
        RocksDbConfig {
            block_cache_bytes: 1024 * 1024,
            write_buffer_bytes: 1024 * 1024,
            ..RocksDbConfig::default()
        }
    }

    #[test]
    fn defaults_match_kafka_streams() {
        let c = RocksDbConfig::default();
        assert_eq!(c.block_cache_bytes, 50 * 1024 * 1024);
        assert_eq!(c.write_buffer_bytes, 16 * 1024 * 1024);
        assert_eq!(c.max_write_buffers, 3);
        assert_eq!(c.block_size, 4096);
    }

    #[test]
    fn rocksdb_dir_layout() {
        assert_eq!(
            rocksdb_dir(Path::new("/state/app/0_1"), "counts"),
            PathBuf::from("/state/app/0_1/rocksdb/counts")
        );
    }

    #[test]
    fn data_survives_flush_close_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = rocksdb_dir(dir.path(), "s");
        let mut e = RocksDbEngine::open("s", &path, &small_config()).unwrap();
        e.put(b"k1", b"v1").unwrap();
        e.write_batch(&[(b"k2".to_vec(), Some(b"v2".to_vec()))])
            .unwrap();
        e.flush().unwrap();
        e.close().unwrap();
        e.close().unwrap();
        assert!(matches!(e.get(b"k1"), Err(StoreError::Closed { .. })));

        let e = RocksDbEngine::open("s", &path, &small_config()).unwrap();
        assert_eq!(e.all().unwrap(), vec![kv("k1", "v1"), kv("k2", "v2")]);
    }

    #[test]
    fn second_open_of_same_directory_fails_naming_store_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RocksDbEngine::open("owned", dir.path(), &small_config()).unwrap();
        let err = RocksDbEngine::open("owned", dir.path(), &small_config()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(
            err,
            StoreError::RocksDb {
                operation: "open",
                ..
            }
        ));
        assert!(message.contains("owned"), "{message}");
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
    }
}
