//! [`ThreadClient`]: what a stream thread's task lifecycle needs from Kafka, behind one small
//! trait, so that assignment, restoration, commits and lost memberships run in unit tests
//! against a fake client; [`KafkaThreadClient`] is the real one (rdkafka and the group member).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::collector::{KafkaCollector, TxnOutcome};
use super::group::{CommitConnection, CommitOutcome, GroupShared};
use super::restore;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};

/// Timeout of the committed-offset and watermark lookups made when a task starts processing.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What one poll of the restore consumer gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RestorePoll {
    /// A changelog record.
    Record {
        offset: i64,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    },
    /// The partition's end.
    End,
    /// Nothing within the timeout.
    Nothing,
    /// A consumer error (retried until the task timeout).
    Error(String),
}

/// The Kafka operations of one stream thread's lifecycle.
pub(crate) trait ThreadClient {
    /// Starts reading `partitions`, each from its committed offset (or per `auto.offset.reset`).
    fn assign(&mut self, partitions: &[(String, i32)]) -> Result<()>;
    /// Stops reading `partitions`.
    fn unassign(&mut self, partitions: &[(String, i32)]) -> Result<()>;
    /// Stops reading everything, changelogs included.
    fn unassign_all(&mut self);
    /// Per partition: where reading starts (committed offset, or the low watermark) and the
    /// high watermark. Best effort: partitions whose lookup failed are left out.
    fn positions(&mut self, partitions: &[(String, i32)]) -> Vec<(String, i32, i64, i64)>;
    /// A partition's high watermark as the consumer last saw it (no network), if it has.
    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64>;
    /// Stops fetching the partitions (their queues are full) or fetches them again.
    fn pause(&mut self, partitions: &[(String, i32)], pause: bool) -> Result<()>;
    /// Waits until every record sent is acknowledged; returns the next changelog offsets
    /// acknowledged since the last call.
    fn flush(&mut self) -> Result<HashMap<(String, i32), i64>>;
    /// Commits input offsets (topic, partition, next offset) with the member's generation;
    /// under exactly-once, commits the open transaction with them.
    fn commit(&mut self, offsets: &[(String, i32, i64)]) -> Result<CommitOutcome>;
    /// Under exactly-once, aborts the open transaction (its tasks were closed without
    /// committing); otherwise nothing.
    fn abort_transaction(&mut self) -> Result<()> {
        Ok(())
    }
    /// The low and high watermarks of a changelog partition.
    fn changelog_range(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> std::result::Result<(i64, i64), String>;
    /// Reads one changelog partition from `offset` (one at a time).
    fn restore_assign(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> std::result::Result<(), String>;
    /// The next changelog record, the partition's end, or nothing within `timeout`.
    fn restore_poll(&mut self, timeout: Duration) -> RestorePoll;
    /// Stops reading the changelog partition.
    fn restore_unassign(&mut self) -> std::result::Result<(), String>;
}

/// How long a changelog's watermarks are asked for with the restore consumer at hand before a
/// new one is made (see `KafkaThreadClient::changelog_range`).
const WATERMARKS_BEFORE_NEW_CONSUMER: Duration = Duration::from_secs(5);

/// The real client: the thread's consumer (assign-only), its restore consumer (made on first
/// use), its producer, and the group member's commits.
pub(crate) struct KafkaThreadClient {
    pub(crate) consumer: BaseConsumer,
    restore: Option<BaseConsumer>,
    collector: Arc<KafkaCollector>,
    group: Arc<GroupShared>,
    commit_conn: CommitConnection,
    config: Arc<ResolvedConfig>,
    client_id: String,
}

impl KafkaThreadClient {
    pub(crate) fn new(
        consumer: BaseConsumer,
        collector: Arc<KafkaCollector>,
        group: Arc<GroupShared>,
        config: Arc<ResolvedConfig>,
        client_id: String,
    ) -> Self {
        KafkaThreadClient {
            consumer,
            restore: None,
            collector,
            group,
            commit_conn: None,
            config,
            client_id,
        }
    }

    /// Why the producer must be replaced, if it must (see [`KafkaCollector::must_replace`]).
    pub(crate) fn producer_lost(&self) -> Option<String> {
        self.collector.must_replace()
    }

    /// Sends through `collector` from now on (a new producer after fencing).
    pub(crate) fn replace_collector(&mut self, collector: Arc<KafkaCollector>) {
        self.collector = collector;
    }

    fn restore_consumer(&mut self) -> std::result::Result<&BaseConsumer, String> {
        if self.restore.is_none() {
            self.restore =
                Some(restore::consumer(&self.config, &self.client_id).map_err(|e| e.to_string())?);
        }
        Ok(self.restore.as_ref().expect("created above"))
    }
}

fn list(partitions: &[(String, i32)], offset: Option<Offset>) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for (topic, p) in partitions {
        match offset {
            Some(o) => tpl.add_partition_offset(topic, *p, o).map_err(|e| {
                StreamsError::kafka(format!("assigning `{topic}` partition {p}"), e)
            })?,
            None => {
                tpl.add_partition(topic, *p);
            }
        }
    }
    Ok(tpl)
}

impl ThreadClient for KafkaThreadClient {
    fn assign(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        let tpl = list(partitions, Some(Offset::Stored))?;
        self.consumer
            .incremental_assign(&tpl)
            .map_err(|e| StreamsError::kafka(format!("assigning {} partitions", tpl.count()), e))
    }

    fn unassign(&mut self, partitions: &[(String, i32)]) -> Result<()> {
        let tpl = list(partitions, None)?;
        self.consumer.incremental_unassign(&tpl).map_err(|e| {
            StreamsError::kafka(format!("unassigning {} revoked partitions", tpl.count()), e)
        })
    }

    fn unassign_all(&mut self) {
        if let Err(e) = self.consumer.unassign() {
            tracing::warn!(error = %e, "unassigning every partition");
        }
        if let Some(c) = &self.restore {
            let _ = c.unassign();
        }
    }

    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        super::watermarks::cached_high_watermark(&self.consumer, topic, partition)
    }

    fn pause(&mut self, partitions: &[(String, i32)], pause: bool) -> Result<()> {
        let tpl = list(partitions, None)?;
        let r = if pause {
            self.consumer.pause(&tpl)
        } else {
            self.consumer.resume(&tpl)
        };
        r.map_err(|e| {
            let what = if pause { "pausing" } else { "resuming" };
            StreamsError::kafka(format!("{what} {} partitions", tpl.count()), e)
        })
    }

    fn positions(&mut self, partitions: &[(String, i32)]) -> Vec<(String, i32, i64, i64)> {
        let Ok(tpl) = list(partitions, None) else {
            return Vec::new();
        };
        let committed = match self.consumer.committed_offsets(tpl, LOOKUP_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "no committed offsets");
                return Vec::new();
            }
        };
        partitions
            .iter()
            .filter_map(|(topic, p)| {
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(topic, *p, LOOKUP_TIMEOUT)
                    .ok()?;
                let start = match committed.find_partition(topic, *p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => low,
                };
                Some((topic.clone(), *p, start, high))
            })
            .collect()
    }

    fn flush(&mut self) -> Result<HashMap<(String, i32), i64>> {
        self.collector.flush()?;
        Ok(self.collector.take_acked())
    }

    fn commit(&mut self, offsets: &[(String, i32, i64)]) -> Result<CommitOutcome> {
        if !self.config.exactly_once {
            return self.group.commit(&mut self.commit_conn, offsets);
        }
        // No generation, or a new one on its way: keep the transaction open until the member
        // has one to fence this commit with.
        let Some(g) = self.group.generation().filter(|_| !self.group.rejoining()) else {
            return Ok(CommitOutcome::Skipped);
        };
        let member = super::txn::GroupMember {
            group: self.group.group_id(),
            generation: g.generation,
            member_id: &g.member_id,
            instance_id: g.instance.as_deref(),
        };
        match self.collector.commit_transaction(offsets, &member)? {
            TxnOutcome::Committed => Ok(CommitOutcome::Committed),
            TxnOutcome::Aborted(why) => {
                tracing::warn!(reason = %why, "transaction aborted: rebuilding the tasks' state from the committed changelogs");
                Ok(CommitOutcome::Aborted)
            }
        }
    }

    fn abort_transaction(&mut self) -> Result<()> {
        if self.config.exactly_once {
            self.collector.abort_open()?;
        }
        Ok(())
    }

    fn changelog_range(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> std::result::Result<(i64, i64), String> {
        let c = self.restore_consumer()?;
        match restore::changelog_watermarks(c, topic, partition, WATERMARKS_BEFORE_NEW_CONSUMER) {
            Ok(w) => Ok(w),
            Err(e) => {
                // A consumer that knew the partition's leader as a broker that has since left
                // the cluster may not find the new leader (librdkafka forgets the departed
                // broker, not the cached leader): a new one starts from fresh metadata.
                tracing::warn!(topic, partition, error = %e, "changelog watermarks: trying again with a new restore consumer");
                self.restore = None;
                let c = self.restore_consumer()?;
                restore::changelog_watermarks(c, topic, partition, Duration::from_secs(30))
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn restore_assign(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> std::result::Result<(), String> {
        let c = self.restore_consumer()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(|e| e.to_string())?;
        c.assign(&tpl).map_err(|e| format!("assigning: {e}"))
    }

    fn restore_poll(&mut self, timeout: Duration) -> RestorePoll {
        let c = match self.restore_consumer() {
            Ok(c) => c,
            Err(e) => return RestorePoll::Error(e),
        };
        match c.poll(timeout) {
            Some(Ok(m)) => RestorePoll::Record {
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
            },
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => RestorePoll::End,
            Some(Err(e)) => RestorePoll::Error(e.to_string()),
            None => RestorePoll::Nothing,
        }
    }

    fn restore_unassign(&mut self) -> std::result::Result<(), String> {
        match &self.restore {
            Some(c) => c.unassign().map_err(|e| format!("unassigning: {e}")),
            None => Ok(()),
        }
    }
}
