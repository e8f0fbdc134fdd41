//! An in-memory cluster for the multi-instance test driver: topics of partitions of records,
//! committed offsets, and the client and collector each simulated instance uses on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::client::{RestorePoll, ThreadClient};
use super::group::CommitOutcome;
use super::metadata::default_partition;
use crate::collector::RecordCollector;
use crate::error::{Result, StreamsError};
use crate::record::Headers;

/// One stored record.
#[derive(Debug, Clone)]
pub(crate) struct SimRecord {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) timestamp: i64,
    pub(crate) headers: Headers,
}

/// The cluster: every topic has `partitions` partitions, created on first write.
pub(crate) struct Cluster {
    partitions: i32,
    topics: HashMap<String, Vec<Vec<SimRecord>>>,
    committed: HashMap<(String, i32), i64>,
}

/// The cluster, shared by the driver and every instance.
pub(crate) type SharedCluster = Arc<Mutex<Cluster>>;

pub(crate) fn lock(c: &SharedCluster) -> MutexGuard<'_, Cluster> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    pub(crate) fn new(partitions: i32) -> SharedCluster {
        Arc::new(Mutex::new(Cluster {
            partitions,
            topics: HashMap::new(),
            committed: HashMap::new(),
        }))
    }

    fn topic(&mut self, topic: &str) -> &mut Vec<Vec<SimRecord>> {
        let n = self.partitions as usize;
        self.topics
            .entry(topic.to_string())
            .or_insert_with(|| vec![Vec::new(); n])
    }

    /// Appends a record; without a partition, Kafka's default partitioner picks one from the
    /// key (round robin over partition 0 for a null key: one partition, deterministic).
    pub(crate) fn append(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        r: SimRecord,
    ) -> Result<i32> {
        let n = self.partitions;
        let p = match partition {
            Some(p) => p,
            None => r.key.as_deref().map_or(0, |k| default_partition(k, n)),
        };
        let parts = self.topic(topic);
        let Some(log) = parts.get_mut(p as usize) else {
            return Err(StreamsError::Production {
                topic: topic.to_string(),
                message: format!("partition {p} does not exist (the topic has {n})"),
                retriable: false,
            });
        };
        log.push(r);
        Ok(p)
    }

    /// Records of `topic` partition `p` from `from` on.
    pub(crate) fn read(&self, topic: &str, p: i32, from: i64) -> &[SimRecord] {
        self.topics
            .get(topic)
            .and_then(|parts| parts.get(p as usize))
            .map_or(&[][..], |log| {
                log.get(from.max(0) as usize..).unwrap_or(&[])
            })
    }

    /// Every record of `topic`, partition by partition.
    pub(crate) fn all(&self, topic: &str) -> Vec<SimRecord> {
        self.topics
            .get(topic)
            .map(|parts| parts.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    fn len(&self, topic: &str, p: i32) -> i64 {
        self.read(topic, p, 0).len() as i64
    }

    /// End offsets of `partitions` of `topics`.
    pub(crate) fn ends(&self, topics: &[String], partitions: u32) -> Vec<(String, i32, i64)> {
        topics
            .iter()
            .flat_map(|t| (0..partitions as i32).map(move |p| (t.clone(), p)))
            .map(|(t, p)| {
                let n = self.len(&t, p);
                (t, p, n)
            })
            .collect()
    }
}

/// Sends an instance's records into the cluster.
pub(crate) struct SimCollector(pub(crate) SharedCluster);

impl RecordCollector for SimCollector {
    fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &Headers,
    ) -> Result<()> {
        lock(&self.0).append(
            topic,
            partition,
            SimRecord {
                key: key.map(<[u8]>::to_vec),
                value: value.map(<[u8]>::to_vec),
                timestamp,
                headers: headers.clone(),
            },
        )?;
        Ok(())
    }
    fn fail(&self, _: StreamsError) {}
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// One instance's consumer, restore consumer and commits, on the cluster.
pub(crate) struct SimClient {
    pub(crate) cluster: SharedCluster,
    /// Assigned partitions and the next offset to read.
    pub(crate) positions: BTreeMap<(String, i32), i64>,
    restoring: Option<((String, i32), i64)>,
}

impl SimClient {
    pub(crate) fn new(cluster: SharedCluster) -> Self {
        SimClient {
            cluster,
            positions: BTreeMap::new(),
            restoring: None,
        }
    }
}

impl ThreadClient for SimClient {
    fn assign(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        let c = lock(&self.cluster);
        for tp in partitions {
            let from = c.committed.get(tp).copied().unwrap_or(0);
            self.positions.insert(tp.clone(), from);
        }
        Ok(())
    }
    fn unassign(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        for tp in partitions {
            self.positions.remove(tp);
        }
        Ok(())
    }
    fn unassign_all(&mut self) {
        self.positions.clear();
        self.restoring = None;
    }
    fn positions(&mut self, _: &[(String, i32)]) -> Vec<(String, i32, i64, i64)> {
        // Every record is "fetched" at once: nothing to wait for.
        Vec::new()
    }
    fn high_watermark(&self, topic: &str, p: i32) -> Option<i64> {
        Some(lock(&self.cluster).len(topic, p))
    }
    fn pause(&mut self, _: &[(String, i32)], _: bool) -> Result<()> {
        // Records are handed over as the driver decides; there is no fetching to pause.
        Ok(())
    }
    fn flush(&mut self) -> Result<HashMap<(String, i32), i64>> {
        Ok(HashMap::new())
    }
    fn commit(&mut self, offsets: &[(String, i32, i64)]) -> Result<CommitOutcome> {
        let mut c = lock(&self.cluster);
        for (t, p, o) in offsets {
            c.committed.insert((t.clone(), *p), *o);
        }
        Ok(CommitOutcome::Committed)
    }
    fn changelog_range(&mut self, topic: &str, p: i32) -> std::result::Result<(i64, i64), String> {
        Ok((0, lock(&self.cluster).len(topic, p)))
    }
    fn restore_assign(
        &mut self,
        topic: &str,
        p: i32,
        offset: i64,
    ) -> std::result::Result<(), String> {
        self.restoring = Some(((topic.to_string(), p), offset));
        Ok(())
    }
    fn restore_poll(&mut self, _: Duration) -> RestorePoll {
        let Some(((t, p), pos)) = self.restoring.clone() else {
            return RestorePoll::Nothing;
        };
        let c = lock(&self.cluster);
        match c.read(&t, p, pos).first() {
            Some(r) => {
                let out = RestorePoll::Record {
                    offset: pos,
                    key: r.key.clone(),
                    value: r.value.clone(),
                };
                drop(c);
                self.restoring = Some(((t, p), pos + 1));
                out
            }
            None => RestorePoll::End,
        }
    }
    fn restore_unassign(&mut self) -> std::result::Result<(), String> {
        self.restoring = None;
        Ok(())
    }
}
