//! The topic registry: [`Topics`] creates, finds, grows and deletes topics, persists their
//! metadata in `topics.json`, and owns every partition's [`PartitionLog`].

use crate::error::{Error, Result};
use crate::log::{LogOptions, PartitionLog};
use crate::persist;
use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use uuid::Uuid;

/// Topic-level configs with Kafka's defaults, as DescribeConfigs reports them. A topic stores
/// only the overrides it was created or altered with.
pub(crate) const TOPIC_CONFIG_DEFAULTS: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("delete.retention.ms", "86400000"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("index.interval.bytes", "4096"),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("max.message.bytes", "1048588"),
    ("message.timestamp.type", "CreateTime"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("min.compaction.lag.ms", "0"),
    ("min.insync.replicas", "1"),
    ("retention.bytes", "-1"),
    ("retention.ms", "604800000"),
    ("segment.bytes", "1073741824"),
    ("segment.ms", "604800000"),
    ("unclean.leader.election.enable", "false"),
];

/// Kafka's default of a topic config, if it is one the broker knows.
pub(crate) fn topic_config_default(name: &str) -> Option<&'static str> {
    TOPIC_CONFIG_DEFAULTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
}

/// Largest topic name Kafka allows.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// Most partitions a topic may have. Every partition is a directory with open files, created
/// synchronously by the request: without a cap one CreateTopics or CreatePartitions asking for
/// `i32::MAX` would stall the broker and exhaust its disk and file descriptors.
pub(crate) const MAX_PARTITIONS: i32 = 10_000;

/// Why a topic may not have `count` partitions, if it may not (for the response's message).
pub(crate) fn partition_count_refusal(count: i32) -> Option<String> {
    (count > MAX_PARTITIONS).then(|| {
        format!(
            "{count} partitions asked for; this broker allows at most {MAX_PARTITIONS} per topic"
        )
    })
}

/// One partition: its index and its log behind a mutex. A std mutex, not tokio's: log
/// operations are short synchronous file calls and never held across an await.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) index: i32,
    pub(crate) log: Mutex<PartitionLog>,
}

impl Partition {
    /// The partition's log, locked. If a request panicked holding the lock (a bug), the log in
    /// memory may be half updated: it is reopened from its files first, with the recovery a
    /// crash gets (the files are written to survive one), and the panic is logged. If that
    /// reopen fails, this request fails with an error naming the partition and the next one
    /// tries again; other partitions are not affected.
    pub(crate) fn lock_log(&self) -> Result<MutexGuard<'_, PartitionLog>> {
        let poisoned = match self.log.lock() {
            Ok(guard) => return Ok(guard),
            Err(poisoned) => poisoned,
        };
        let mut guard = poisoned.into_inner();
        let dir = guard.dir().to_path_buf();
        let partition = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        tracing::error!(
            partition,
            "a request panicked holding this partition's log; reopening it from its files"
        );
        match PartitionLog::open(&dir, guard.options()) {
            Ok(log) => {
                *guard = log;
                self.log.clear_poison();
                Ok(guard)
            }
            Err(e) => {
                tracing::error!(partition, error = %e, "reopening the log failed");
                Err(Error::PartitionUnavailable {
                    partition,
                    source: Box::new(e),
                })
            }
        }
    }
}

/// A topic: name, stable id, config overrides and partitions.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) id: Uuid,
    configs: RwLock<BTreeMap<String, String>>,
    /// Grows with CreatePartitions; never shrinks.
    partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    /// The partition with this index, if it exists.
    pub(crate) fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let parts = crate::sync::read(&self.partitions, "partitions");
        usize::try_from(index)
            .ok()
            .and_then(|i| parts.get(i).cloned())
    }

    /// All partitions in index order.
    pub(crate) fn partitions(&self) -> Vec<Arc<Partition>> {
        crate::sync::read(&self.partitions, "partitions").clone()
    }

    pub(crate) fn partition_count(&self) -> i32 {
        crate::sync::read(&self.partitions, "partitions").len() as i32
    }

    /// The config overrides the topic was created with.
    pub(crate) fn config_overrides(&self) -> BTreeMap<String, String> {
        crate::sync::read(&self.configs, "configs").clone()
    }

    /// The override of a config, if the topic has one.
    pub(crate) fn config_override(&self, name: &str) -> Option<String> {
        crate::sync::read(&self.configs, "configs")
            .get(name)
            .cloned()
    }

    /// The effective value of a config: the override, else Kafka's default.
    pub(crate) fn config(&self, name: &str) -> Option<String> {
        crate::sync::read(&self.configs, "configs")
            .get(name)
            .cloned()
            .or_else(|| {
                TOPIC_CONFIG_DEFAULTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_string())
            })
    }

    /// An integer config, falling back to `default` when unset or unparsable.
    pub(crate) fn config_i64(&self, name: &str, default: i64) -> i64 {
        self.config(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// Whether `cleanup.policy` includes compaction.
    pub(crate) fn is_compacted(&self) -> bool {
        self.config("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|p| p.trim() == "compact"))
    }

    /// Whether `cleanup.policy` includes deletion by retention.
    pub(crate) fn has_retention(&self) -> bool {
        self.config("cleanup.policy")
            .is_some_and(|p| p.split(',').any(|p| p.trim() == "delete"))
    }

    fn meta(&self) -> TopicMeta {
        TopicMeta {
            name: self.name.clone(),
            id: self.id.to_string(),
            partitions: self.partition_count(),
            configs: self.config_overrides(),
        }
    }
}

/// What `topics.json` stores per topic.
#[derive(Debug, Serialize, Deserialize)]
struct TopicMeta {
    name: String,
    id: String,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// All topics of the broker.
#[derive(Debug)]
pub(crate) struct Topics {
    logs_dir: PathBuf,
    meta_path: PathBuf,
    default_segment_bytes: u64,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises create/delete/grow so topics.json is rewritten in the order changes happen.
    admin: Mutex<()>,
}

/// Checks a topic name the way Kafka does.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), ResponseError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-';
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > MAX_TOPIC_NAME_LEN
        || !name.chars().all(legal)
    {
        return Err(ResponseError::InvalidTopicException);
    }
    Ok(())
}

impl Topics {
    /// Loads every topic listed in `data_dir/topics.json` and recovers its partition logs.
    pub(crate) fn open(data_dir: &Path, default_segment_bytes: u64) -> Result<Topics> {
        let logs_dir = data_dir.join("logs");
        std::fs::create_dir_all(&logs_dir).map_err(|e| Error::storage(&logs_dir, e))?;
        let meta_path = data_dir.join("topics.json");
        let metas: Vec<TopicMeta> = persist::read_json(&meta_path)?.unwrap_or_default();
        let topics = Topics {
            logs_dir,
            meta_path,
            default_segment_bytes,
            topics: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
        };
        for meta in metas {
            let id = Uuid::parse_str(&meta.id).map_err(|e| Error::CorruptMetadata {
                path: topics.meta_path.clone(),
                reason: format!("topic {}: bad id: {e}", meta.name),
            })?;
            let topic = topics.build_topic(&meta.name, id, meta.partitions, meta.configs)?;
            crate::sync::write(&topics.topics, "topics").insert(meta.name, Arc::new(topic));
        }
        Ok(topics)
    }

    fn log_options(&self, configs: &BTreeMap<String, String>) -> LogOptions {
        LogOptions {
            segment_bytes: configs
                .get("segment.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.default_segment_bytes),
            index_interval_bytes: configs
                .get("index.interval.bytes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(crate::log::DEFAULT_INDEX_INTERVAL_BYTES),
        }
    }

    fn open_partition(
        &self,
        name: &str,
        index: i32,
        options: LogOptions,
    ) -> Result<Arc<Partition>> {
        let log = PartitionLog::open(&self.logs_dir.join(format!("{name}-{index}")), options)?;
        Ok(Arc::new(Partition {
            index,
            log: Mutex::new(log),
        }))
    }

    fn build_topic(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Topic> {
        let options = self.log_options(&configs);
        let parts = (0..partitions)
            .map(|i| self.open_partition(name, i, options))
            .collect::<Result<Vec<_>>>()?;
        Ok(Topic {
            name: name.to_string(),
            id,
            configs: RwLock::new(configs),
            partitions: RwLock::new(parts),
        })
    }

    fn persist(&self) -> Result<()> {
        let mut metas: Vec<TopicMeta> = crate::sync::read(&self.topics, "topics")
            .values()
            .map(|t| t.meta())
            .collect();
        metas.sort_by(|a, b| a.name.cmp(&b.name));
        persist::write_json(&self.meta_path, &metas)
    }

    /// The topic with this name.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Topic>> {
        crate::sync::read(&self.topics, "topics").get(name).cloned()
    }

    /// The topic with this id.
    pub(crate) fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        crate::sync::read(&self.topics, "topics")
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Every topic, sorted by name.
    pub(crate) fn list(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = crate::sync::read(&self.topics, "topics")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Creates a topic. Wire-level refusals come back as `Ok(Err(code))`.
    pub(crate) fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Result<Arc<Topic>, ResponseError>> {
        if let Err(e) = validate_topic_name(name) {
            return Ok(Err(e));
        }
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Ok(Err(ResponseError::InvalidPartitions));
        }
        let _admin = crate::sync::lock(&self.admin, "admin");
        if self.get(name).is_some() {
            return Ok(Err(ResponseError::TopicAlreadyExists));
        }
        let id = crate::util::random_uuid();
        if validate_only {
            return Ok(Ok(Arc::new(Topic {
                name: name.to_string(),
                id,
                configs: RwLock::new(configs),
                partitions: RwLock::new(Vec::new()),
            })));
        }
        // A leftover directory of a deleted topic with the same name must not leak old data.
        for i in 0..partitions {
            let dir = self.logs_dir.join(format!("{name}-{i}"));
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Error::storage(&dir, e))?;
            }
        }
        let topic = Arc::new(self.build_topic(name, id, partitions, configs)?);
        crate::sync::write(&self.topics, "topics").insert(name.to_string(), topic.clone());
        self.persist()?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(Ok(topic))
    }

    /// Deletes a topic and its data.
    pub(crate) fn delete(&self, name: &str) -> Result<Result<Arc<Topic>, ResponseError>> {
        let _admin = crate::sync::lock(&self.admin, "admin");
        let Some(topic) = crate::sync::write(&self.topics, "topics").remove(name) else {
            return Ok(Err(ResponseError::UnknownTopicOrPartition));
        };
        self.persist()?;
        for p in topic.partitions() {
            let dir = crate::sync::lock(&p.log, "log").dir().to_path_buf();
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove deleted topic data");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(Ok(topic))
    }

    /// Changes a topic's config overrides (AlterConfigs, IncrementalAlterConfigs): `change`
    /// edits a copy of the overrides and may refuse with a wire error; the result is stored and
    /// persisted unless `validate_only`. Settings read when a partition log is opened
    /// (`segment.bytes`, `index.interval.bytes`) take effect for partitions opened afterwards.
    pub(crate) fn alter_configs(
        &self,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), ResponseError>,
    ) -> Result<Result<(), ResponseError>> {
        let _admin = crate::sync::lock(&self.admin, "admin");
        let Some(topic) = self.get(name) else {
            return Ok(Err(ResponseError::UnknownTopicOrPartition));
        };
        let mut configs = topic.config_overrides();
        if let Err(e) = change(&mut configs) {
            return Ok(Err(e));
        }
        if validate_only {
            return Ok(Ok(()));
        }
        *crate::sync::write(&topic.configs, "configs") = configs;
        self.persist()?;
        tracing::info!(topic = name, "altered topic configs");
        Ok(Ok(()))
    }

    /// Grows a topic to `count` partitions (CreatePartitions).
    pub(crate) fn grow(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<Result<(), ResponseError>> {
        let _admin = crate::sync::lock(&self.admin, "admin");
        let Some(topic) = self.get(name) else {
            return Ok(Err(ResponseError::UnknownTopicOrPartition));
        };
        let current = topic.partition_count();
        if count <= current || count > MAX_PARTITIONS {
            return Ok(Err(ResponseError::InvalidPartitions));
        }
        if validate_only {
            return Ok(Ok(()));
        }
        let options = self.log_options(&topic.config_overrides());
        let mut added = Vec::new();
        for i in current..count {
            added.push(self.open_partition(name, i, options)?);
        }
        crate::sync::write(&topic.partitions, "partitions").extend(added);
        self.persist()?;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::make_batch;

    fn options() -> LogOptions {
        LogOptions {
            segment_bytes: 1 << 20,
            index_interval_bytes: crate::log::DEFAULT_INDEX_INTERVAL_BYTES,
        }
    }

    /// Panics holding the partition's log lock, as a bug in a request would.
    fn poison(p: &Partition) {
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let _log = p.log.lock().unwrap();
                    panic!("a request panics holding the log");
                })
                .join();
        });
        assert!(p.log.is_poisoned());
    }

    #[test]
    fn a_panic_holding_a_log_reopens_it_or_fails_naming_the_partition() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("orders-3");
        let p = Partition {
            index: 3,
            log: Mutex::new(PartitionLog::open(&dir, options()).unwrap()),
        };
        p.lock_log()
            .unwrap()
            .append(&mut make_batch(2, 1000, None), false)
            .unwrap();
        poison(&p);
        // Reopened from its files: what was appended is there, and appends go on.
        let mut log = p.lock_log().unwrap();
        assert_eq!(log.next_offset(), 2);
        assert_eq!(
            log.append(&mut make_batch(1, 1000, None), false).unwrap(),
            2
        );
        drop(log);
        assert!(!p.log.is_poisoned());

        // A log that cannot be reopened fails the request, naming the partition.
        poison(&p);
        std::fs::rename(&dir, root.path().join("moved")).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
        let e = p.lock_log().unwrap_err();
        assert!(
            matches!(&e, Error::PartitionUnavailable { partition, .. } if partition == "orders-3"),
            "{e}"
        );
        // The next request tries again, and succeeds once the files are back.
        std::fs::remove_file(&dir).unwrap();
        std::fs::rename(root.path().join("moved"), &dir).unwrap();
        assert_eq!(p.lock_log().unwrap().next_offset(), 3);
    }
}
